"""The secret heap (``src/memory/secret_heap.rs``) when its chunks cannot be locked.

Under a one-page ``RLIMIT_MEMLOCK`` as an unprivileged user (root ignores the limit), an
RSA key's own region takes the budget and the heap's 64 KiB chunks cannot be locked:

- ``on_lock_failure="warn"``: the key works, ``protection.locked`` is ``False`` (the
  weaker of its region and the heap) and a ``ProtectionWarning`` says so;
- ``on_lock_failure="raise"``: generating, loading and signing raise ``MemoryLockError``.

A shortfall belongs to the operation that met it (RSA review): once the limit allows it,
the next operation under ``"raise"`` succeeds and gets locked memory, and the error names
the real cause (a chunk ``mlock`` refused, or no address space for the heap at all).
"""

from __future__ import annotations

import errno
import resource
import warnings
from typing import Any

import keycell
from keycell import MemoryLockError, RSAPrivateKey
from support import PAGE, run_as_nobody, run_python


def _child() -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        key = RSAPrivateKey.generate(2048)
        key.public_key().verify(key.sign(b"x"), b"x")
        out["locked"] = key.protection.locked
        out["dontdump"] = key.protection.dontdump
    out["warnings"] = [str(w.message) for w in caught]
    key.destroy()
    keycell.set_policy(on_lock_failure="raise")
    try:
        RSAPrivateKey.generate(2048)
        out["raise"] = "no error"
    except MemoryLockError as e:
        out["raise"] = type(e).__name__
    return out


def test_an_unlocked_heap_is_reported_or_refused() -> None:
    out = run_as_nobody(_child, timeout=120)
    assert out["locked"] is False, out
    assert out["dontdump"] is True, out
    assert any("mlock failed" in w for w in out["warnings"]), out
    assert out["raise"] == "MemoryLockError", out


def _recovery_child() -> dict[str, Any]:
    # The soft limit is one page, the hard one as it was: this user may raise it later.
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (PAGE, hard))
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        early = RSAPrivateKey.generate(2048)
        early.sign(b"x")  # reports (and clears) the shortfalls of this block
        out["early_locked"] = early.protection.locked
    keycell.set_policy(on_lock_failure="raise")
    try:
        RSAPrivateKey.generate(2048)
        out["low"] = "no error"
    except MemoryLockError as e:
        out["low"] = str(e)
        out["low_errno"] = e.errno
    # The limit allows the heap's chunks now: the next operations succeed under "raise".
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
    try:
        key = RSAPrivateKey.generate(2048)
        key.public_key().verify(key.sign(b"x"), b"x")
        early.public_key().verify(early.sign(b"x"), b"x")
        out["after"] = "ok"
        out["after_locked"] = key.protection.locked
        # The early key's limbs were built where mlock failed: it says so still.
        out["early_locked_after"] = early.protection.locked
    except MemoryLockError as e:
        out["after"] = str(e)
    return out


def test_a_heap_shortfall_is_the_operations_own_and_names_its_cause() -> None:
    """RSA review: after one shortfall every later RSA operation under "raise" failed,
    and the message blamed RLIMIT_MEMLOCK with a fixed errno whatever the cause."""
    # The child sets its own soft limit below the hard one, before dropping privileges.
    out = run_as_nobody(_recovery_child, memlock=None, timeout=120)
    assert out["early_locked"] is False, out
    assert out["low"].startswith("the secret heap could not lock a chunk of "), out
    assert "mlock failed: Cannot allocate memory" in out["low"], out
    assert "(RLIMIT_MEMLOCK too low? see `keycell doctor`)" in out["low"], out
    assert out["low_errno"] == errno.ENOMEM, out
    assert out["after"] == "ok", out
    assert out["after_locked"] is True, out
    assert out["early_locked_after"] is False, out


NO_ADDRESS_SPACE = """
import errno, resource
import keycell
from keycell import MemoryLockError, RSAPrivateKey

keycell.set_policy(on_lock_failure="raise")
# Address space for everything but the heap's 256 MiB reservation (a fresh interpreter:
# the heap was never reserved here).
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (128 << 20), resource.RLIM_INFINITY))
try:
    RSAPrivateKey.generate(2048)
    print("no error")
except MemoryLockError as e:
    print("errno", errno.errorcode.get(e.errno or 0), "|", e)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
key = RSAPrivateKey.generate(2048)
key.public_key().verify(key.sign(b"x"), b"x")
print("after", key.protection.locked)
"""


def test_no_address_space_for_the_heap_is_named_and_recovered_from() -> None:
    """RSA review: a heap that could not reserve its address space was reported as
    "mlock of 65536 bytes failed (RLIMIT_MEMLOCK too low?)", and every later operation
    under "raise" failed."""
    run = run_python(NO_ADDRESS_SPACE, timeout=120)
    assert run.returncode == 0, run.stderr
    first, after = run.stdout.splitlines()
    assert first.startswith("errno ENOMEM | the secret heap could not reserve its 256 MiB"), first
    assert "mmap failed: Cannot allocate memory" in first, first
    assert "(an address-space limit, RLIMIT_AS?)" in first, first
    assert "went to the process heap" in first, first
    assert "RLIMIT_MEMLOCK" not in first, first
    assert after == "after True", run.stdout
