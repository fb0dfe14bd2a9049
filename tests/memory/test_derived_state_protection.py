"""Issue 21 (3): ``protection`` describes every region behind a handle. State derived
from a key later (HMAC pads, the AEAD cipher state) is allocated on first use; when its
``mlock`` fails under ``on_lock_failure="warn"`` (the lock budget spent by then), the key's
own region is locked but the derived state is not, and the key must not report
``locked=True``; a ``ProtectionWarning`` says so. Under a one-page ``RLIMIT_MEMLOCK`` as
an unprivileged user (root ignores the limit), the key's page takes the whole budget."""

from __future__ import annotations

import warnings
from typing import Any

import keycell
import pytest
from keycell import AESGCM, HMAC, SecretKey
from support import run_as_nobody


def _child(use: str) -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        key = SecretKey.generate(32)
        out["before"] = key.protection.locked
        out["before_call"] = len(caught)
        if use == "hmac":
            key.hmac(b"x")
        elif use == "aead":
            AESGCM(key).encrypt(bytes(12), b"x", None)
        elif use == "encrypt_into":
            AESGCM(key).encrypt_into(bytes(12), b"x", None, bytearray(17))
        else:  # the streaming HMAC: its first block of data needs the pads
            h = HMAC(key, "sha256")
            h.update(bytes(64))
        # Reported by the call that made the state, not at the next keyed call.
        out["in_call"] = len(caught)
        if use == "hmac_stream":
            h.finalize()
        out["after"] = key.protection.locked
        out["complete"] = key.protection.complete
    out["warnings"] = [str(w.message) for w in caught]
    return out


@pytest.mark.parametrize("use", ["hmac", "aead", "encrypt_into", "hmac_stream"])
def test_unlocked_derived_state_makes_the_key_report_unlocked(use: str) -> None:
    """Issue 21 (3), and the second review: ``encrypt_into`` and the streaming ``HMAC``
    reported the shortfall only at the next keyed call (the streaming HMAC never did)."""
    out = run_as_nobody(_child, use)
    assert out["before"] is True, out
    assert out["after"] is False, out
    assert out["complete"] is False, out
    assert (out["before_call"], out["in_call"]) == (0, 1), out
    # One warning, naming the derived state (the key's own region was locked: no other).
    assert len(out["warnings"]) == 1, out
    assert "state derived from a key on first use" in out["warnings"][0], out


BACKEND_CHILD = """
import json, keycell
from keycell import AESGCM, SecretKey
keycell.set_policy(isolation="pool", backend="memfd_secret")
key = SecretKey.generate(32)
keycell.set_policy(backend="mmap")      # the policy changes before the key's first use
key.hmac(b"x")
AESGCM(key).encrypt(bytes(12), b"x", None)
print(json.dumps({"backend": key.protection.backend, "locked": key.protection.locked}))
"""


def test_derived_state_follows_the_keys_backend() -> None:
    """Issue 21 (3): HMAC pads and the AEAD cipher state of a key in ``memfd_secret`` arenas
    are allocated there too, even when the policy says ``mmap`` by the key's first use
    (they took the policy's backend at that time, and ``protection`` said so)."""
    import json

    from support import run_python

    if keycell._native._probe()["memfd_secret"] is not None:
        pytest.skip("memfd_secret is not available here")
    r = run_python(BACKEND_CHILD, drop_env=("KEYCELL_ON_LOCK_FAILURE", "KEYCELL_BACKEND"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"backend": "memfd_secret", "locked": True}


MEMFD_FALLBACK_CHILD = """
import json, warnings, keycell
from keycell import SecretKey
keycell.set_policy(backend="memfd_secret")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pooled = SecretKey.generate(32)
    big = SecretKey.generate(8160)           # too large for a pool slot: page-isolated
    with keycell.policy(isolation="page"):
        paged = SecretKey.generate(32)
print(json.dumps({"backends": [k.protection.backend for k in (pooled, big, paged)],
                  "warnings": [str(w.message) for w in caught]}))
"""


def test_a_key_outside_memfd_secret_under_that_backend_is_warned_about() -> None:
    """Issue 21 (3), found again by review: under ``backend="memfd_secret"`` a page-isolated
    key (asked for, or too large for a pool slot) is in guarded mmap memory that
    /proc/PID/mem can read; ``protection.backend`` said so, but nothing warned."""
    import json

    from support import run_python

    if keycell._native._probe()["memfd_secret"] is not None:
        pytest.skip("memfd_secret is not available here")
    r = run_python(
        MEMFD_FALLBACK_CHILD,
        drop_env=("KEYCELL_ON_LOCK_FAILURE", "KEYCELL_BACKEND", "KEYCELL_ISOLATION"),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backends"] == ["memfd_secret", "guarded-mmap", "guarded-mmap"]
    assert len(out["warnings"]) == 1, out  # once per process
    assert "memfd_secret" in out["warnings"][0]
    assert "backs pool arenas only" in out["warnings"][0]


def _error_child(call: str) -> dict[str, Any]:
    import hmac as std_hmac

    keycell.set_policy(on_lock_failure="warn", isolation="page")
    key_bytes = b"k" * 32
    key = SecretKey.from_buffer(bytearray(key_bytes))
    h = HMAC(key, "sha1")
    out: dict[str, Any] = {"key_locked": key.protection.locked}
    with warnings.catch_warnings():
        warnings.simplefilter("error", keycell.ProtectionWarning)
        try:
            if call == "update":
                h.update(b"A" * 100)
            else:
                h.finalize()
            out["raised"] = False
        except keycell.ProtectionWarning:
            out["raised"] = True
    # The failed call changed nothing: the same call again succeeds (the warning is once
    # per process) and the tag covers exactly what was absorbed by calls that returned.
    if call == "update":
        h.update(b"A" * 100)
        out["tag_right"] = h.finalize() == std_hmac.digest(key_bytes, b"A" * 100, "sha1")
    else:
        out["tag_right"] = h.finalize() == std_hmac.digest(key_bytes, b"", "sha1")
    return out


@pytest.mark.parametrize("call", ["update", "finalize"])
def test_a_shortfall_raised_as_an_error_leaves_the_hmac_context_unchanged(call: str) -> None:
    """Third review: under ``-W error`` the streaming ``HMAC.update`` raised the derived-state
    warning after absorbing the data, so a caller retrying the failed call got a tag over
    the data twice (and a failed ``finalize`` had consumed the context)."""
    out = run_as_nobody(_error_child, call)
    assert out["key_locked"] is True, out
    assert out["raised"] is True, out
    assert out["tag_right"] is True, out
