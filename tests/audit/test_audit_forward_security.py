"""Forward security in memory: after the epoch advances, no earlier epoch key (nor K0,
once the caller destroyed it) is anywhere in the writer's memory, while the current epoch
key is, in locked, dump-excluded memory (the positive control)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audit_support import epoch_key
from memscan import scan_phases, summarize
from support import write_key_file

pytestmark = pytest.mark.slow

CREATE = """
import sys
from keycell import SecretKey, Ed25519PrivateKey
from keycell.audit import AuditLog
k0 = SecretKey.from_file(sys.argv[1])
log = AuditLog.create(sys.argv[2], key=k0, signer=Ed25519PrivateKey.generate(),
                      origin="t/log", epoch_records=3)
k0.destroy()
log.append({"i": 0})
phase("epoch0")
for i in range(1, 8):
    log.append({"i": i})
log.checkpoint()
log.append({"i": 8})
phase("advanced")
log.close()
phase("closed")
"""

REOPEN = """
import sys
from keycell.audit import AuditLog
log = AuditLog.open(sys.argv[1])
log.append("reopened")
phase("opened")
for i in range(3):
    log.append({"i": i})
phase("advanced")
log.close()
"""


def test_old_epoch_keys_are_gone_from_the_writer(tmp_path: Path) -> None:
    k0 = os.urandom(32)
    key_file = write_key_file(tmp_path / "k0.key", k0)
    log = tmp_path / "a.log"
    keys = {f"E{e}": epoch_key(k0, e) for e in range(5)}
    scans, _ = scan_phases(
        CREATE,
        str(key_file),
        str(log),
        patterns={"K0": k0, **keys},
        phases=("epoch0", "advanced", "closed"),
    )
    first = scans["epoch0"]
    assert first["K0"] == [], summarize(first)
    assert first["E0"], summarize(first)
    assert all(h.locked and h.dontdump for h in first["E0"]), summarize(first)
    # Epochs 0-2 filled by count (3 records each, genesis included), the checkpoint ended
    # epoch 2, record 8 opened epoch 3.
    later = scans["advanced"]
    for name in ("K0", "E0", "E1", "E2"):
        assert later[name] == [], summarize(later)
    assert later["E3"], summarize(later)
    assert all(h.locked and h.dontdump for h in later["E3"]), summarize(later)
    closed = scans["closed"]
    assert all(closed[n] == [] for n in keys), summarize(closed)


def test_a_reopened_writer_drops_the_state_key(tmp_path: Path) -> None:
    k0 = os.urandom(32)
    key_file = write_key_file(tmp_path / "k0.key", k0)
    log = tmp_path / "a.log"
    scan_phases(
        CREATE,
        str(key_file),
        str(log),
        patterns={"K0": k0},
        phases=("epoch0", "advanced", "closed"),
    )
    state_epoch = int(Path(str(log) + ".state").read_text().splitlines()[4].split()[1])
    keys = {f"E{e}": epoch_key(k0, e) for e in range(state_epoch, state_epoch + 3)}
    scans, _ = scan_phases(REOPEN, str(log), patterns=keys, phases=("opened", "advanced"))
    now = f"E{state_epoch}"
    assert scans["opened"][now], summarize(scans["opened"])
    after = scans["advanced"]
    assert after[now] == [], summarize(after)
    assert after[f"E{state_epoch + 1}"], summarize(after)
