"""Issue 21, second review: a ``KeyStore`` allocated its derived keys without a
``ProtectionWarning`` when ``mlock`` failed, and had no ``protection`` to say so. Under a
one-page ``RLIMIT_MEMLOCK`` as an unprivileged user (root ignores the limit) the master key
takes the whole budget, so the store's keys cannot be locked."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keycell
from keycell import KeyStore, ProtectionWarning, SecretKey
from support import run_as_nobody


def _child(d: str) -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    out: dict[str, Any] = {}
    master = SecretKey.generate(32)  # locked: the one page of the budget
    out["master_locked"] = master.protection.locked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = KeyStore.create(Path(d) / "s.kcs", master=master)
        p = store.protection
        out["is_protection"] = isinstance(p, keycell.Protection)
        out["locked"] = p.locked
        out["complete"] = p.complete
        out["dontdump"] = p.dontdump
        store.close()
    out["warnings"] = [(w.category.__name__, str(w.message)) for w in caught]
    # Once per process: a later store warns no more, whatever the filter.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtectionWarning)
        again = KeyStore.open(Path(d) / "s.kcs", master=master)
        out["again_locked"] = again.protection.locked
        again.close()
    try:
        _ = again.protection
        out["closed"] = "no error"
    except keycell.KeycellError as e:
        out["closed"] = type(e).__name__
    return out


def test_a_store_whose_keys_are_not_locked_warns_and_reports_it(world_dir: Path) -> None:
    out = run_as_nobody(_child, str(world_dir), world_dir=world_dir)
    assert out["master_locked"] is True, out
    assert out["is_protection"] is True, out
    assert (out["locked"], out["complete"], out["dontdump"]) == (False, False, True), out
    assert len(out["warnings"]) == 1, out
    category, message = out["warnings"][0]
    assert category == "ProtectionWarning", out
    assert "mlock failed" in message, out
    assert out["again_locked"] is False, out
    assert out["closed"] == "KeyDestroyedError", out


def test_protection_of_an_open_store_is_complete_when_locked(tmp_path: Path) -> None:
    with SecretKey.generate(32) as master, KeyStore.create(tmp_path / "s.kcs", master=master) as s:
        p = s.protection
        assert isinstance(p, keycell.Protection)
        assert p.locked == master.protection.locked
        assert p.as_dict().keys() == master.protection.as_dict().keys()
