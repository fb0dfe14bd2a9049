"""Memory isolation, in child processes where a test must crash or change its identity
(invariants as numbered in docs/invariants.md).

- guard pages: a write or read one byte past the end of a key (or before its data pages)
  dies by SIGSEGV; the key's own bytes are read-only while idle (invariants 2, 5);
- canary: a write in front of the key's region that corrupts the canary makes destroy()
  (or garbage collection) abort with a message, and nothing else does (invariant 5);
- fork: a key inherited by a child raises ForkedKeyError, its memory reads as zeros, and
  destroying it there does not abort; the parent is unaffected (invariant 8);
- /proc/self/smaps: the kernel's view of a key's pages (invariants 2, 3);
- RLIMIT_MEMLOCK lowered as an unprivileged user: the "warn" and "raise" policies
  (invariant 3).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keycell
import pytest
from keycell import (
    ForkedKeyError,
    KeycellError,
    MemoryLockError,
    ProtectionError,
    ProtectionWarning,
    SecretKey,
    _native,
    _smaps,
)
from memscan import MapArea, read_maps
from support import (
    PAGE,
    drop_privileges,
    flip_bytes,
    free_key,
    privilege_drop_reason,
    run_forked,
    run_python,
    view_address,
)

TESTS_DIR = str(Path(__file__).resolve().parent.parent)

# Layout of a page-isolated SecretKey region (src/crypto/symmetric.rs,
# src/memory/guarded.rs; HMAC pads get a region of their own on first use):
# | guard | data pages: zero padding [canary 16][key] | guard |
CANARY_LEN = 16
LENGTHS = [1, 32, PAGE - CANARY_LEN, PAGE, 5000]


@pytest.fixture(autouse=True)
def _page_isolation() -> Iterator[None]:
    """Everything here is about page isolation (forked children inherit the override)."""
    with keycell.policy(isolation="page"):
        yield


def key_area(key: SecretKey) -> MapArea:
    """The mapping holding the key's data pages (from /proc/self/smaps)."""
    addr = _native._key_address(key)
    for area in read_maps("self"):
        if area.start <= addr < area.end:
            return area
    raise AssertionError(f"no mapping holds {addr:#x}")


def canary_addr(key: SecretKey) -> int:
    """The canary of the region (in front of the key)."""
    return _native._key_address(key) - CANARY_LEN


def test_layout_assumptions_hold() -> None:
    """Guards the constants above: the canary is the same 16 random bytes in front of the
    key in every region of this process, preceded by zero padding;
    the key ends at the guard page."""
    keys = [SecretKey.generate(n) for n in (1, 32, 1000)]
    canaries = {ctypes.string_at(canary_addr(k), CANARY_LEN) for k in keys}
    canaries |= {ctypes.string_at(_native._key_address(k) - CANARY_LEN, CANARY_LEN) for k in keys}
    assert len(canaries) == 1
    (canary,) = canaries
    assert canary != bytes(CANARY_LEN)
    for k in keys:
        area = key_area(k)
        addr = _native._key_address(k)
        assert addr + len(k) == area.end
        padding = ctypes.string_at(area.start, canary_addr(k) - area.start)
        assert padding == bytes(len(padding))


# --------------------------------------------------------------------------- guard pages


def _touch(length: int, where: str, write: bool) -> dict[str, Any]:
    key = SecretKey.generate(length)
    addr = _native._key_address(key)
    with key.expose() as view:
        vaddr, vlen, _ = view_address(view)
        assert (vaddr, vlen) == (addr, length)
    # Control: the key's own last byte is readable through the same ctypes route.
    last = ctypes.string_at(addr + length - 1, 1)
    target = {
        "after_end": addr + length,
        "key_start": addr,
        "key_last": addr + length - 1,
        "before_data": key_area(key).start - 1,
    }[where]
    os.write(2, b"about to touch\n")
    if write:
        ctypes.memset(target, 0x41, 1)
    else:
        ctypes.string_at(target, 1)
    return {"survived": True, "last": last.hex()}


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize(
    ("where", "write"),
    [
        ("after_end", True),  # overflow by one byte: trailing guard page
        ("after_end", False),
        ("before_data", True),  # underflow past the data pages: leading guard page
        ("before_data", False),
        ("key_start", True),  # the key itself is read-only while idle (invariant 2)
        ("key_last", True),
    ],
)
def test_out_of_bounds_access_faults(length: int, where: str, write: bool) -> None:
    res = run_forked(_touch, length, where, write)
    assert res.signal == signal.SIGSEGV, res
    assert "about to touch" in res.stderr, "the child must die at the access, not before"


def _write_while_exposed() -> None:
    key = SecretKey.generate(32)
    with key.expose() as view:
        addr, _, _ = view_address(view)
        os.write(2, b"about to touch\n")
        ctypes.memset(addr, 0, 1)


def test_region_stays_read_only_while_exposed() -> None:
    res = run_forked(_write_while_exposed)
    assert res.signal == signal.SIGSEGV, res
    assert "about to touch" in res.stderr


def _read_in_bounds(length: int) -> str:
    key = SecretKey.generate(length)
    addr = _native._key_address(key)
    data = ctypes.string_at(addr, length)
    with key.expose() as view:
        assert view.tobytes() == data
    key.destroy()
    return "ok"


@pytest.mark.parametrize("length", LENGTHS)
def test_in_bounds_read_is_fine(length: int) -> None:
    """Control for the fault tests: the same child code reading inside the key survives."""
    assert run_forked(_read_in_bounds, length).unwrap() == "ok"


# --------------------------------------------------------------------------- canary


def _corrupt(length: int, offset_from_canary: int, count: int, free: str) -> str:
    key = SecretKey.generate(length)
    flip_bytes(canary_addr(key) + offset_from_canary, count)
    os.write(2, b"corrupted\n")
    free_key(key, free)
    return "returned"


@pytest.mark.parametrize("length", [1, 32, 5000])
@pytest.mark.parametrize("free", ["destroy", "gc"])
@pytest.mark.parametrize(
    ("offset", "count"),
    [
        (CANARY_LEN - 1, 1),  # the byte right in front of the key: one-byte underflow
        (0, 1),  # first canary byte
        (0, CANARY_LEN),  # a long underflow from the key back over the whole canary
    ],
)
def test_canary_corruption_aborts(length: int, free: str, offset: int, count: int) -> None:
    res = run_forked(_corrupt, length, offset, count, free)
    assert res.signal == signal.SIGABRT, res
    assert "corrupted" in res.stderr
    assert "canary mismatch" in res.stderr
    assert "memory corruption detected" in res.stderr


def test_write_in_padding_does_not_abort() -> None:
    """Control: the same mprotect-and-write in front of the canary (padding) is harmless, so
    the abort above comes from the canary check."""
    res = run_forked(_corrupt, 32, -1, 1, "destroy")
    assert res.unwrap() == "returned"
    assert "canary" not in res.stderr


# --------------------------------------------------------------------------- fork


def _in_fork_child(addrs: list[tuple[int, int]], secret: bytes) -> dict[str, Any]:
    key, other = _FORK_KEYS
    out: dict[str, Any] = {}
    ops = {
        "eq_inherited": lambda: key == other,
        "eq_new": lambda: key == SecretKey.from_buffer(secret),
        "new_eq_inherited": lambda: SecretKey.from_buffer(secret) == key,
        "expose": lambda: key.expose(),
        "protection": lambda: key.protection,
        "enter": lambda: key.__enter__(),
        "address": lambda: _native._key_address(key),
    }
    for name, op in ops.items():
        try:
            op()
        except ForkedKeyError as e:
            out[name] = str(e)
        except Exception as e:
            out[name] = f"WRONG {type(e).__name__}: {e}"
        else:
            out[name] = "WRONG: no error"
    # The memory itself: wiped by MADV_WIPEONFORK, read through /proc/self/mem and ctypes.
    wiped = []
    with open("/proc/self/mem", "rb", buffering=0) as mem:
        for start, end in addrs:
            mem.seek(start)
            data = mem.read(end - start)
            wiped.append(data == bytes(end - start) and len(data) == end - start)
    out["wiped_proc_mem"] = wiped
    out["wiped_ctypes"] = ctypes.string_at(addrs[0][0], addrs[0][1] - addrs[0][0]) == bytes(
        addrs[0][1] - addrs[0][0]
    )
    # A key made in the child works normally.
    fresh = SecretKey.from_buffer(secret)
    with fresh.expose() as v:
        out["fresh_ok"] = v.tobytes() == secret and fresh.protection.complete
    # Destroying the inherited keys does not abort (no canary check on wiped memory).
    key.destroy()
    other.destroy()
    out["destroyed"] = key.destroyed and other.destroyed
    fresh.destroy()
    return out


_FORK_KEYS: tuple[SecretKey, SecretKey]


def test_fork_child_cannot_use_inherited_keys() -> None:
    global _FORK_KEYS
    secret = os.urandom(32)
    key = SecretKey.from_buffer(secret)
    other = SecretKey.from_buffer(secret)
    _FORK_KEYS = (key, other)
    areas = [(a.start, a.end) for a in (key_area(key), key_area(other))]
    res = run_forked(_in_fork_child, areas, secret)
    out = res.unwrap()
    for name in ("eq_inherited", "eq_new", "new_eq_inherited", "expose", "protection", "enter"):
        assert "created by the parent process before fork()" in out[name], (name, out[name])
    assert "before fork()" in out["address"]
    assert out["wiped_proc_mem"] == [True, True]
    assert out["wiped_ctypes"] is True
    assert out["fresh_ok"] is True
    assert out["destroyed"] is True
    assert "canary" not in res.stderr
    # The parent is unaffected.
    assert key == other
    with key.expose() as view:
        assert view.tobytes() == secret
    assert key.protection.complete
    assert _smaps.check_region(_native._key_address(key)).complete
    key.destroy()
    other.destroy()


def _grandchild_check() -> dict[str, Any]:
    # Runs in a child: make a key here, fork again, and check the grandchild's view of it.
    key = SecretKey.generate(32)
    inner = run_forked(lambda: _use(key))
    own = _use(key)
    return {"inner": inner.value, "inner_signal": inner.signal, "own": own}


def _use(key: SecretKey) -> str:
    try:
        with key.expose() as v:
            v.tobytes()
    except ForkedKeyError:
        return "ForkedKeyError"
    return "usable"


def test_fork_detection_per_generation() -> None:
    """A key created in a child works there and is refused in the grandchild."""
    out = run_forked(_grandchild_check).unwrap()
    assert out == {"inner": "ForkedKeyError", "inner_signal": None, "own": "usable"}


def _gc_inherited() -> str:
    global _FORK_KEYS
    _FORK_KEYS = ()  # type: ignore[assignment]
    import gc

    gc.collect()
    return "ok"


def test_fork_child_dropping_inherited_keys_does_not_abort() -> None:
    global _FORK_KEYS
    _FORK_KEYS = (SecretKey.generate(32), SecretKey.generate(64))
    res = run_forked(_gc_inherited)
    assert res.unwrap() == "ok"
    assert "canary" not in res.stderr
    assert _FORK_KEYS[0].protection.complete
    for k in _FORK_KEYS:
        k.destroy()


# --------------------------------------------------------------------------- smaps


def vmlck_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    raise AssertionError("no VmLck in /proc/self/status")


@pytest.mark.parametrize("length", LENGTHS)
def test_smaps_shows_locked_dontdump_readonly_guarded_pages(length: int) -> None:
    gc.collect()  # no unrelated key may be freed while VmLck is compared
    before = vmlck_kb()
    key = SecretKey.generate(length)
    addr = _native._key_address(key)
    maps = read_maps("self")
    i = next(i for i, a in enumerate(maps) if a.start <= addr < a.end)
    area, prev, nxt = maps[i], maps[i - 1], maps[i + 1]
    size = area.end - area.start
    assert size == -(-(length + CANARY_LEN) // PAGE) * PAGE
    assert addr + length == area.end, "the key is right-aligned against the guard page"
    assert area.perms == "r--p", "read-only while idle"
    assert {"lo", "dd", "wf"} <= area.vmflags, area.vmflags
    assert area.locked_kb * 1024 == size
    for guard in (prev, nxt):
        assert guard.perms == "---p"
        assert "dd" in guard.vmflags
        assert guard.end - guard.start >= PAGE
        assert "lo" not in guard.vmflags
    assert prev.end == area.start
    assert nxt.start == area.end
    assert vmlck_kb() - before == size // 1024
    # keycell's own smaps reader (used by `keycell doctor`) agrees.
    assert _smaps.check_region(addr).complete
    # Still read-only while a view is open: no per-use mprotect.
    with key.expose():
        assert key_area(key).perms == "r--p"
    key.destroy()
    # Destroy unlocks and unmaps.
    assert vmlck_kb() == before
    assert all(not (a.start <= addr < a.end and a.locked) for a in read_maps("self"))


# --------------------------------------------------------------------------- RLIMIT_MEMLOCK


def _skip_unless_memlock_can_fail() -> None:
    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)


def _memlock_child(memlock: int, policy: str) -> dict[str, Any]:
    """Child: lower RLIMIT_MEMLOCK, drop to nobody, then exercise the policy."""
    drop_privileges(memlock)
    out: dict[str, Any] = {"uid": os.geteuid(), "probe_mlock": _native._probe()["mlock"]}
    keycell.set_policy(on_lock_failure=policy)  # type: ignore[arg-type]
    dd_before = sum("dd" in a.vmflags and "wf" in a.vmflags for a in read_maps("self"))
    kept: list[SecretKey] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = []
        for n in (32, 32, 100):
            try:
                key = SecretKey.generate(n)
            except KeycellError as e:
                results.append(
                    {"error": type(e).__name__, "errno": getattr(e, "errno", None), "msg": str(e)}
                )
                continue
            ok = key == key and len(key) == n
            with key.expose() as v:
                ok = ok and len(v.tobytes()) == n
            check = _smaps.check_region(_native._key_address(key))
            results.append(
                {
                    "protection": key.protection.as_dict(),
                    "complete": key.protection.complete,
                    "works": ok,
                    "smaps_locked": check.locked,
                    "smaps_dd": check.dontdump,
                    "smaps_guards": check.guard_before and check.guard_after,
                }
            )
            kept.append(key)  # alive until the end: its locked pages stay counted
        buf = bytearray(b"s" * 32)
        try:
            SecretKey.from_buffer(buf)
            out["from_buffer"] = "ok"
        except MemoryLockError as e:
            out["from_buffer"] = f"MemoryLockError errno={e.errno}"
        out["buffer_intact"] = buf == b"s" * 32
    out["results"] = results
    out["warnings"] = [{"category": w.category.__name__, "message": str(w.message)} for w in caught]
    dd_after = sum("dd" in a.vmflags and "wf" in a.vmflags for a in read_maps("self"))
    out["regions_added"] = dd_after - dd_before
    out["kept"] = len(kept)
    return out


def test_memlock_warn_policy_keeps_working_unlocked() -> None:
    _skip_unless_memlock_can_fail()
    out = run_forked(_memlock_child, 0, "warn").unwrap()
    if out["probe_mlock"] is None:
        pytest.skip("mlock still succeeds with RLIMIT_MEMLOCK=0 (CAP_IPC_LOCK?)")
    assert out["uid"] != 0
    assert out["probe_mlock"] == errno.EPERM
    assert len(out["results"]) == 3
    for r in out["results"]:
        assert r["works"] is True
        assert r["protection"]["locked"] is False
        assert r["protection"]["dontdump"] is True
        assert r["protection"]["wipeonfork"] is True
        assert r["protection"]["guard_pages"] is True
        assert r["complete"] is False
        assert r["smaps_locked"] is False, "the report must match the kernel"
        assert r["smaps_dd"] is True
        assert r["smaps_guards"] is True
    assert out["from_buffer"] == "ok"
    assert out["buffer_intact"] is False, "a successful from_buffer wipes the source"
    protection_warnings = [w for w in out["warnings"] if w["category"] == "ProtectionWarning"]
    assert len(protection_warnings) == 1, out["warnings"]
    assert "mlock failed" in protection_warnings[0]["message"]
    assert "RLIMIT_MEMLOCK" in protection_warnings[0]["message"]
    assert len(out["warnings"]) == 1


def test_memlock_raise_policy_raises_memory_lock_error() -> None:
    _skip_unless_memlock_can_fail()
    out = run_forked(_memlock_child, 0, "raise").unwrap()
    if out["probe_mlock"] is None:
        pytest.skip("mlock still succeeds with RLIMIT_MEMLOCK=0 (CAP_IPC_LOCK?)")
    assert out["uid"] != 0
    for r in out["results"]:
        assert r["error"] == "MemoryLockError"
        assert r["errno"] in (errno.EPERM, errno.ENOMEM)
        assert r["errno"] == errno.EPERM  # RLIMIT_MEMLOCK = 0: not allowed at all
        assert "mlock of" in r["msg"]
        assert "RLIMIT_MEMLOCK" in r["msg"]
    assert out["from_buffer"] == f"MemoryLockError errno={errno.EPERM}"
    assert out["buffer_intact"] is True, "a failed from_buffer must leave the source alone"
    assert out["warnings"] == []
    assert out["regions_added"] == 0, "failed allocations must unmap their regions"
    assert issubclass(MemoryLockError, ProtectionError)


def test_memlock_limit_of_one_page_locks_first_key_only() -> None:
    """The report is measured per region: with room for one page, the first one-page key is
    locked and the next ones are not (ENOMEM under "raise")."""
    _skip_unless_memlock_can_fail()
    out = run_forked(_memlock_child, PAGE, "warn").unwrap()
    if all(r["smaps_locked"] for r in out["results"]):
        pytest.skip("the kernel locks beyond a lowered RLIMIT_MEMLOCK here (CAP_IPC_LOCK?)")
    locked = [r["protection"]["locked"] for r in out["results"]]
    assert locked == [True, False, False]
    assert [r["smaps_locked"] for r in out["results"]] == locked
    assert len([w for w in out["warnings"] if w["category"] == "ProtectionWarning"]) == 1

    out = run_forked(_memlock_child, PAGE, "raise").unwrap()
    first, second, third = out["results"]
    assert first["protection"]["locked"] is True
    assert second["error"] == third["error"] == "MemoryLockError"
    assert second["errno"] == errno.ENOMEM
    assert out["regions_added"] == 1


def _switch_policy() -> dict[str, Any]:
    drop_privileges(0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        keycell.set_policy(on_lock_failure="warn")
        old = SecretKey.generate(32)
        keycell.set_policy(on_lock_failure="raise")
        try:
            SecretKey.generate(32)
            raised = False
        except MemoryLockError:
            raised = True
        with old.expose() as v:
            still_works = len(v.tobytes()) == 32
        old.destroy()
        keycell.set_policy(on_lock_failure="warn")
        again = SecretKey.generate(32).protection.locked
    return {"raised": raised, "old_works": still_works, "again_locked": again}


def test_policy_applies_to_keys_created_afterwards() -> None:
    _skip_unless_memlock_can_fail()
    out = run_forked(_switch_policy).unwrap()
    assert out == {"raised": True, "old_works": True, "again_locked": False}


FRESH_INTERPRETER = """
import json, os, sys, warnings
sys.path.insert(0, {tests!r})
import support
import keycell
from keycell import SecretKey
support.drop_privileges(0)
out = {{"uid": os.geteuid(), "policy": keycell.get_policy()["on_lock_failure"]}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        keys = [SecretKey.generate(32) for _ in range(5)]
        keys.append(SecretKey.from_buffer(bytearray(16)))
        out["locked"] = [k.protection.locked for k in keys]
    except keycell.MemoryLockError as e:
        out["error"] = ["MemoryLockError", e.errno]
out["warnings"] = [[w.category.__name__, str(w.message)] for w in caught]
print(json.dumps(out))
"""


def test_protection_warning_exactly_once_per_process() -> None:
    """A fresh interpreter (nothing warned before) drops to nobody and allocates six keys:
    one ProtectionWarning, six unlocked working keys."""
    _skip_unless_memlock_can_fail()
    r = run_python(FRESH_INTERPRETER.format(tests=TESTS_DIR))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] != 0
    assert out["policy"] == "warn"
    assert out["locked"] == [False] * 6
    assert [w[0] for w in out["warnings"]] == ["ProtectionWarning"]


def test_environment_variable_raise_under_lowered_limit() -> None:
    _skip_unless_memlock_can_fail()
    r = run_python(
        FRESH_INTERPRETER.format(tests=TESTS_DIR), env={"KEYCELL_ON_LOCK_FAILURE": "raise"}
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["policy"] == "raise"
    assert out["error"] == ["MemoryLockError", errno.EPERM]
    assert out["warnings"] == []
    assert "locked" not in out


def test_protection_warning_is_a_user_warning() -> None:
    assert issubclass(ProtectionWarning, UserWarning)
    assert not issubclass(ProtectionWarning, KeycellError)
