"""The process-wide policy for a protection that cannot be established (invariant 3 of
docs/invariants.md).

What the policy does when `mlock` really fails is tested in ``test_isolation.py`` (a child
with a lowered RLIMIT_MEMLOCK); here: the switch itself and its environment variable.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import keycell
import pytest
from keycell import SecretKey
from support import run_python

SHOW_POLICY = "import json, keycell; print(json.dumps(keycell.get_policy()))"


def test_default_is_warn_in_a_fresh_process() -> None:
    r = run_python(SHOW_POLICY)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "on_lock_failure": "warn",
        "isolation": "auto",
        "backend": "mmap",
    }


def test_set_and_get_roundtrip() -> None:
    keycell.set_policy(on_lock_failure="raise")
    assert keycell.get_policy()["on_lock_failure"] == "raise"
    # Under "raise" a key still works where every protection holds (this machine).
    with SecretKey.generate(16) as key:
        assert key.protection.complete
    keycell.set_policy(on_lock_failure="warn")
    assert keycell.get_policy()["on_lock_failure"] == "warn"


def test_native_setter_roundtrip() -> None:
    keycell._native.set_policy(on_lock_failure="raise")
    assert keycell._native.get_policy()["on_lock_failure"] == "raise"
    keycell._native.set_policy(on_lock_failure="warn")
    assert keycell.get_policy()["on_lock_failure"] == "warn"


def test_get_policy_returns_a_copy() -> None:
    d = keycell.get_policy()
    d["on_lock_failure"] = "raise"
    assert keycell.get_policy()["on_lock_failure"] == "warn"


@pytest.mark.parametrize("value", ["RAISE", "Warn", "ignore", "", "raise ", "strict"])
def test_invalid_values(value: str) -> None:
    with pytest.raises(ValueError, match=r"warn.*raise"):
        keycell.set_policy(on_lock_failure=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"warn.*raise"):
        keycell._native.set_policy(on_lock_failure=value)  # type: ignore[arg-type]
    assert keycell.get_policy()["on_lock_failure"] == "warn"


@pytest.mark.parametrize("value", [1, b"raise", True, ["raise"]])
def test_invalid_types(value: Any) -> None:
    with pytest.raises(TypeError):
        keycell.set_policy(on_lock_failure=value)
    with pytest.raises(TypeError):
        keycell._native.set_policy(on_lock_failure=value)
    assert keycell.get_policy()["on_lock_failure"] == "warn"


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        keycell.set_policy("raise")  # type: ignore[misc]
    keycell.set_policy()  # every keyword is optional: nothing changes
    with pytest.raises(TypeError):
        keycell.set_policy(on_lock_failure="raise", other=1)  # type: ignore[call-arg]
    assert keycell.get_policy()["on_lock_failure"] == "warn"


@pytest.mark.parametrize(
    ("value", "expected"), [("raise", "raise"), ("warn", "warn"), ("", "warn")]
)
def test_environment_variable(value: str, expected: str) -> None:
    r = run_python(SHOW_POLICY, env={"KEYCELL_ON_LOCK_FAILURE": value})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "on_lock_failure": expected,
        "isolation": "auto",
        "backend": "mmap",
    }


def test_environment_variable_can_be_overridden_by_set_policy() -> None:
    code = (
        "import keycell; keycell.set_policy(on_lock_failure='warn'); "
        "print(keycell.get_policy()['on_lock_failure'])"
    )
    r = run_python(code, env={"KEYCELL_ON_LOCK_FAILURE": "raise"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == "warn\n"


@pytest.mark.parametrize("value", ["RAISE", "strict", "1", "raise,warn", " warn"])
def test_invalid_environment_variable_fails_import(value: str) -> None:
    """A typo must not silently leave the weaker policy in place: importing keycell fails."""
    r = run_python("import keycell", env={"KEYCELL_ON_LOCK_FAILURE": value})
    assert r.returncode != 0
    assert "ValueError" in r.stderr
    assert "KEYCELL_ON_LOCK_FAILURE must be 'warn' or 'raise'" in r.stderr
    assert repr(value) in r.stderr


def test_a_scope_entered_in_a_suspended_generator_is_seen_by_the_caller() -> None:
    """Documented (keycell.policy's docstring): generators share the caller's context, so a
    block left open across a ``yield`` applies to the caller's keys until it resumes."""

    def gen() -> Iterator[None]:
        with keycell.policy(isolation="pool"):
            yield

    with keycell.policy(isolation="page"):
        g = gen()
        next(g)
        inside = keycell.SecretKey.generate(16)
        with contextlib.suppress(StopIteration):
            next(g)
        after = keycell.SecretKey.generate(16)
    assert (inside.protection.isolation, after.protection.isolation) == ("pool", "page")


DERIVED_ISOLATION = """
import json, keycell
from keycell import SecretKey, X25519PrivateKey, hkdf, hkdf_extract

def kinds():
    ikm = SecretKey.generate(32)
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    return {
        "generated": ikm.protection.isolation,
        "hkdf": hkdf(ikm, length=32, info=b"c").protection.isolation,
        "extract": hkdf_extract(ikm).protection.isolation,
        "exchange": a.exchange(b.public_key()).protection.isolation,
        "long": hkdf(ikm, length=4096).protection.isolation,
    }

out = {"default": kinds()}
with keycell.policy(isolation="page"):
    out["page"] = kinds()
with keycell.policy(isolation="pool"):
    out["pool"] = kinds()
print(json.dumps(out))
"""


def test_derived_keys_are_pooled_by_default_and_follow_an_explicit_policy() -> None:
    """Issue 21 (9): a key derived per operation (HKDF output, an X25519 shared secret) is
    pooled under the default "auto" policy, while a generated or loaded key keeps page
    isolation for the first keys; an explicit policy applies to both; a key too large for
    a pool slot is page-isolated."""
    r = run_python(DERIVED_ISOLATION, drop_env=("KEYCELL_ON_LOCK_FAILURE", "KEYCELL_ISOLATION"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["default"] == {
        "generated": "page",
        "hkdf": "pool",
        "extract": "pool",
        "exchange": "pool",
        "long": "page",
    }
    assert set(out["page"].values()) == {"page"}
    assert out["pool"] == {**dict.fromkeys(out["pool"], "pool"), "long": "page"}
