"""The secret heap (``src/memory/secret_heap.rs``) when its chunks cannot be locked.

Under a one-page ``RLIMIT_MEMLOCK`` as an unprivileged user (root ignores the limit), an
RSA key's own region takes the budget and the heap's 64 KiB chunks cannot be locked:

- ``on_lock_failure="warn"``: the key works, ``protection.locked`` is ``False`` (the
  weaker of its region and the heap) and a ``ProtectionWarning`` says so;
- ``on_lock_failure="raise"``: generating, loading and signing raise ``MemoryLockError``.
"""

from __future__ import annotations

import warnings
from typing import Any

import keycell
import pytest
from keycell import MemoryLockError, RSAPrivateKey
from support import PAGE, drop_privileges, privilege_drop_reason, run_forked


def _child() -> dict[str, Any]:
    drop_privileges(PAGE)
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
    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)
    out = run_forked(_child, timeout=120).unwrap()
    assert out["locked"] is False, out
    assert out["dontdump"] is True, out
    assert any("mlock failed" in w for w in out["warnings"]), out
    assert out["raise"] == "MemoryLockError", out
