"""The lock-failure policy applies to every pool arena: under a one-page
``RLIMIT_MEMLOCK`` the first arena (one page) locks, the next one cannot. Under "warn"
the keys in it work and report ``locked=False`` (with one ``ProtectionWarning``); under
"raise" creating a key that needs it raises ``MemoryLockError`` and the keys already made
keep working. Never silent.
"""

from __future__ import annotations

import errno
import warnings
from typing import Any

import keycell
from keycell import MemoryLockError, SecretKey
from support import PAGE, run_as_nobody

SLOT = 64  # a 32-byte key: canary 16 + key 32 + canary 16
FIRST_ARENA_SLOTS = (PAGE - 16) // SLOT


def _child(policy: str) -> dict[str, Any]:
    keycell.set_policy(on_lock_failure=policy, isolation="pool")  # type: ignore[arg-type]
    out: dict[str, Any] = {"locked": [], "error": None}
    keys = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for _ in range(FIRST_ARENA_SLOTS + 10):
                key = SecretKey.generate(32)
                keys.append(key)
                out["locked"].append(key.protection.locked)
        except MemoryLockError as e:
            out["error"] = {"errno": e.errno, "msg": str(e)}
    out["warnings"] = [str(w.message) for w in caught]
    out["all_work"] = all(len(k) == 32 and k == k for k in keys)
    out["stats"] = keycell._native._pool_stats()
    return out


def test_warn_reports_unlocked_arena() -> None:
    out = run_as_nobody(_child, "warn")
    assert out["error"] is None
    assert out["all_work"]
    locked = out["locked"]
    assert locked[:FIRST_ARENA_SLOTS] == [True] * FIRST_ARENA_SLOTS
    assert locked[FIRST_ARENA_SLOTS:] == [False] * 10
    assert len(out["warnings"]) == 1
    assert "mlock failed" in out["warnings"][0]
    assert out["stats"]["locked_bytes"] == PAGE


def test_raise_refuses_the_unlockable_arena() -> None:
    out = run_as_nobody(_child, "raise")
    assert out["locked"] == [True] * FIRST_ARENA_SLOTS
    assert out["error"] is not None
    assert out["error"]["errno"] in (errno.ENOMEM, errno.EPERM, errno.EAGAIN)
    assert "mlock of" in out["error"]["msg"]
    assert out["warnings"] == []
    # The failed arena was unmapped; the keys made before it still work.
    assert out["all_work"]
    assert out["stats"]["arenas"] >= 1
    assert out["stats"]["locked_bytes"] >= PAGE


def _switch_child() -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="pool")
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", keycell.ProtectionWarning)
        # The first arena (one page) takes the budget; the next one is made unlocked.
        warm = [SecretKey.generate(32) for _ in range(FIRST_ARENA_SLOTS + 1)]
    out["unlocked_under_warn"] = warm[-1].protection.locked is False
    keycell.set_policy(on_lock_failure="raise")
    try:
        key = SecretKey.generate(32)
        out["under_raise"] = {"locked": key.protection.locked}
    except MemoryLockError as e:
        out["under_raise"] = {"error": e.errno}
    out["old_keys_work"] = all(len(k) == 32 for k in warm)
    return out


def test_raise_never_places_a_key_in_an_arena_made_unlocked_under_warn() -> None:
    """EC review: after "warn" made an unlocked arena with free slots, switching to
    "raise" still placed new keys there (``locked=False``, no exception)."""
    out = run_as_nobody(_switch_child)
    assert out["unlocked_under_warn"] is True, out
    assert "error" in out["under_raise"], out
    assert out["under_raise"]["error"] in (errno.ENOMEM, errno.EPERM, errno.EAGAIN), out
    assert out["old_keys_work"] is True, out
