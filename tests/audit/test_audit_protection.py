"""Issue 21, second review: an ``AuditLog`` allocated its epoch key without a
``ProtectionWarning`` when ``mlock`` failed, and had no ``protection`` to say so. Under a
one-page ``RLIMIT_MEMLOCK`` as an unprivileged user (root ignores the limit) K0 takes the
whole budget, so the epoch keys cannot be locked."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keycell
from keycell import ProtectionWarning, SecretKey
from keycell.audit import AuditLog
from support import run_as_nobody


def _child(d: str) -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    out: dict[str, Any] = {}
    k0 = SecretKey.generate(32)  # locked: the one page of the budget
    out["k0_locked"] = k0.protection.locked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = AuditLog.create(Path(d) / "a.log", key=k0, origin="test", epoch_records=2)
        p = log.protection
        out["is_protection"] = isinstance(p, keycell.Protection)
        out["created"] = (p.locked, p.complete, p.dontdump)
        for i in range(5):  # new epochs, new epoch keys
            log.append({"n": i})
        out["epoch"] = log.epoch
        out["later"] = log.protection.locked
    out["warnings"] = [(w.category.__name__, str(w.message)) for w in caught]
    log.close()
    try:
        _ = log.protection
        out["closed"] = "no error"
    except keycell.KeycellError as e:
        out["closed"] = type(e).__name__
    return out


def test_a_log_whose_epoch_key_is_not_locked_warns_and_reports_it(world_dir: Path) -> None:
    out = run_as_nobody(_child, str(world_dir), world_dir=world_dir)
    assert out["k0_locked"] is True, out
    assert out["is_protection"] is True, out
    assert out["created"] == [False, False, True], out
    assert out["epoch"] >= 2, out
    assert out["later"] is False, out
    # Once per process.
    assert len(out["warnings"]) == 1, out
    category, message = out["warnings"][0]
    assert category == "ProtectionWarning", out
    assert "mlock failed" in message, out
    assert out["closed"].endswith("Error"), out


def _strict_child(d: str) -> dict[str, Any]:
    keycell.set_policy(on_lock_failure="warn", isolation="page")
    k0 = SecretKey.generate(32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtectionWarning)
        try:
            AuditLog.create(Path(d) / "a.log", key=k0, origin="test")
        except ProtectionWarning as e:
            return {"raised": str(e)}
    return {"raised": None}


def test_under_w_error_creating_such_a_log_raises(world_dir: Path) -> None:
    out = run_as_nobody(_strict_child, str(world_dir), world_dir=world_dir)
    assert out["raised"] is not None, out
    assert "mlock failed" in out["raised"], out


def test_protection_of_an_open_log(tmp_path: Path) -> None:
    with SecretKey.generate(32) as k0:
        log = AuditLog.create(tmp_path / "a.log", key=k0, origin="test")
        p = log.protection
        assert isinstance(p, keycell.Protection)
        assert p.locked == k0.protection.locked
        log.close()
