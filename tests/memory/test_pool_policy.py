"""Isolation as policy: ``set_policy(isolation=...)``, ``KEYCELL_ISOLATION``, and the
scoped ``keycell.policy(isolation=...)`` override, which affects only the ``with`` block in
its own context: its thread, its asyncio task (and tasks created inside it)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import keycell
import pytest
from keycell import SecretKey
from support import run_python

SHOW = "import json, keycell; print(json.dumps(keycell.get_policy()))"


def test_defaults_in_a_fresh_process() -> None:
    envs = ("KEYCELL_ON_LOCK_FAILURE", "KEYCELL_ISOLATION", "KEYCELL_BACKEND")
    r = run_python(SHOW, drop_env=envs)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "on_lock_failure": "warn",
        "isolation": "auto",
        "backend": "mmap",
    }


@pytest.mark.parametrize("value", ["page", "pool", "auto"])
def test_environment_variable(value: str) -> None:
    r = run_python(SHOW, env={"KEYCELL_ISOLATION": value})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["isolation"] == value


@pytest.mark.parametrize("value", ["Page", "pooled", "none", " pool"])
def test_invalid_environment_variable_fails_the_import(value: str) -> None:
    r = run_python("import keycell", env={"KEYCELL_ISOLATION": value})
    assert r.returncode != 0
    assert "KEYCELL_ISOLATION must be 'page', 'pool' or 'auto'" in r.stderr


def test_keywords_are_optional_and_independent() -> None:
    keycell.set_policy(isolation="pool")
    assert keycell.get_policy() == {
        "on_lock_failure": "warn",
        "isolation": "pool",
        "backend": "mmap",
    }
    keycell.set_policy(on_lock_failure="raise")
    assert keycell.get_policy() == {
        "on_lock_failure": "raise",
        "isolation": "pool",
        "backend": "mmap",
    }
    keycell.set_policy()
    assert keycell.get_policy() == {
        "on_lock_failure": "raise",
        "isolation": "pool",
        "backend": "mmap",
    }
    with pytest.raises(ValueError, match=r"page.*pool.*auto"):
        keycell.set_policy(on_lock_failure="warn", isolation="strict")  # type: ignore[arg-type]
    assert keycell.get_policy() == {
        "on_lock_failure": "raise",
        "isolation": "pool",
        "backend": "mmap",
    }, (
        "a rejected call changes nothing"
    )
    with pytest.raises(TypeError):
        keycell.set_policy(isolation=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("isolation", ["page", "pool"])
def test_process_policy_applies_to_new_keys(isolation: str) -> None:
    keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
    with SecretKey.generate(32) as key:
        p = key.protection
        assert p.isolation == isolation
        assert p.read_only_idle is (isolation == "page")
        assert p.as_dict()["isolation"] == isolation
        assert p.complete
        # Derived keys follow the policy too.
        with keycell.hkdf(key, length=32, info=b"i") as derived:
            assert derived.protection.isolation == isolation


def test_pool_falls_back_to_page_for_large_keys() -> None:
    keycell.set_policy(isolation="pool")
    with SecretKey.generate(4096) as key:
        assert key.protection.isolation == "page"


def test_scoped_override_inside_only() -> None:
    keycell.set_policy(isolation="pool")
    with keycell.policy(isolation="page"):
        inside = SecretKey.generate(32)
        with keycell.policy(isolation="pool"):
            nested = SecretKey.generate(32)
        again = SecretKey.generate(32)
    outside = SecretKey.generate(32)
    assert inside.protection.isolation == "page"
    assert nested.protection.isolation == "pool"
    assert again.protection.isolation == "page"
    assert outside.protection.isolation == "pool"
    assert keycell.get_policy()["isolation"] == "pool", "the process policy is untouched"


def test_scoped_override_restored_after_an_exception() -> None:
    keycell.set_policy(isolation="pool")
    with pytest.raises(RuntimeError), keycell.policy(isolation="page"):
        raise RuntimeError
    assert SecretKey.generate(32).protection.isolation == "pool"


def test_scoped_override_does_not_leak_across_threads() -> None:
    keycell.set_policy(isolation="pool")
    entered = threading.Event()
    release = threading.Event()
    seen: dict[str, str] = {}

    def other() -> None:
        entered.wait()
        seen["other"] = SecretKey.generate(32).protection.isolation
        release.set()

    t = threading.Thread(target=other)
    t.start()
    with keycell.policy(isolation="page"):
        entered.set()
        release.wait(10)
        seen["inside"] = SecretKey.generate(32).protection.isolation
    t.join()
    assert seen == {"other": "pool", "inside": "page"}


def test_scoped_override_is_per_asyncio_task() -> None:
    """A task suspended inside a scope does not lend its override to the task that runs
    meanwhile on the same thread; a task created inside the scope inherits it."""
    keycell.set_policy(isolation="pool")
    seen: dict[str, str] = {}

    async def scoped(entered: asyncio.Event, release: asyncio.Event) -> None:
        with keycell.policy(isolation="page"):
            entered.set()
            await release.wait()  # the other task runs now, on this thread
            seen["scoped, after await"] = SecretKey.generate(32).protection.isolation
            child = asyncio.create_task(make("child task"))
        await child

    async def make(name: str) -> None:
        await asyncio.sleep(0)
        seen[name] = SecretKey.generate(32).protection.isolation

    async def other(entered: asyncio.Event, release: asyncio.Event) -> None:
        await entered.wait()
        seen["other task"] = SecretKey.generate(32).protection.isolation
        release.set()

    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()
        await asyncio.gather(scoped(entered, release), other(entered, release))

    asyncio.run(main())
    assert seen == {
        "other task": "pool",
        "scoped, after await": "page",
        "child task": "page",
    }


def test_scoped_override_reaches_work_done_without_the_gil(tmp_path: Path) -> None:
    """Calls that release the GIL (large HKDF input, key file reads) allocate with the
    override of the Python code that made them."""
    keycell.set_policy(isolation="pool")
    path = tmp_path / "k.key"
    SecretKey.generate(32).to_file(path)
    ikm = SecretKey.generate(32)
    big_info = b"i" * 1000  # with the salt, past the 2 KiB GIL release threshold
    with keycell.policy(isolation="page"):
        derived = keycell.hkdf(ikm, length=32, salt=b"s" * 2048, info=big_info)
        loaded = SecretKey.from_file(path)
    assert derived.protection.isolation == "page"
    assert loaded.protection.isolation == "page"
    outside = keycell.hkdf(ikm, length=32, salt=b"s" * 2048, info=big_info)
    assert outside.protection.isolation == "pool"


def test_scoped_override_validates() -> None:
    with pytest.raises(ValueError):
        with keycell.policy(isolation="both"):  # type: ignore[arg-type]
            pass
    with pytest.raises(TypeError):
        keycell.policy("page")  # type: ignore[misc]


def test_auto_page_share_is_reported() -> None:
    stats = keycell._native._pool_stats()
    assert 0 <= stats["page_share"] <= 1 << 20


@pytest.mark.parametrize("isolation", ["page", "pool"])
def test_curve_keys_and_shared_secrets_follow_the_policy(isolation: str) -> None:
    keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
    ed = keycell.Ed25519PrivateKey.generate()
    xk = keycell.X25519PrivateKey.generate()
    shared = xk.exchange(keycell.X25519PrivateKey.generate().public_key())
    for key in (ed, xk, shared):
        assert key.protection.isolation == isolation
        assert key.protection.locked
    sig = ed.sign(b"m")
    ed.public_key().verify(sig, b"m")
    for key in (ed, xk, shared):
        key.destroy()


def test_pads_follow_the_key_not_the_current_policy() -> None:
    """HMAC pads are computed on first use, into a region isolated like the key."""
    with keycell.policy(isolation="pool"):
        pooled = SecretKey.generate(32)
    before = keycell._native._pool_stats()["live_slots"]
    with keycell.policy(isolation="page"):
        pooled.hmac(b"x", "sha384")
    assert keycell._native._pool_stats()["live_slots"] == before + 1
    pooled.destroy()
    assert keycell._native._pool_stats()["live_slots"] == before - 1
