"""Crash safety and several processes: a writer killed with SIGKILL at random points loses
no acknowledged record, and writers in several processes keep one intact chain."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from audit_support import events, make_log, parse, read_lines
from keycell.audit import AuditLog, verify

pytestmark = pytest.mark.slow

WRITER = """
import sys
from keycell.audit import AuditLog
log = AuditLog.open(sys.argv[1])
run = int(sys.argv[2])
i = 0
while True:
    seq = log.append({"run": run, "n": i})
    print(seq, i, flush=True)
    i += 1
    if i % 37 == 0:
        log.close()
        log = AuditLog.open(sys.argv[1])
"""


def test_sigkill_loses_no_acknowledged_record(tmp_path: Path) -> None:
    log = make_log(tmp_path, 3, epoch_records=5, checkpoint=False)
    rng = random.Random(1234)
    acked: dict[int, tuple[int, int]] = {}
    for run in range(12):
        # A record is acknowledged once its whole line "seq n\n" was printed: a line the
        # kill cut short (no newline) acknowledges nothing.
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log.path), str(run)],
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdout is not None
            for _ in range(rng.randrange(1, 150)):
                line = child.stdout.readline()
                if not line.endswith("\n"):
                    break
                seq, n = map(int, line.split())
                acked[seq] = (run, n)
            child.send_signal(signal.SIGKILL)
            child.wait()
            # Whatever the child printed after we stopped reading was acknowledged too.
            for line in child.stdout.read().split("\n")[:-1]:
                seq, n = map(int, line.split())
                acked[seq] = (run, n)
        if run % 4 == 3:
            # Also a crash in the middle of a write: half a line at the end.
            with open(log.path, "ab") as f:
                f.write(b'{"seq":99999,"ts":"2026-')
    with AuditLog.open(log.path) as w:
        w.append("final")
    r = log.verify(checkpoint=False)
    assert r.valid, r.detail
    by_seq = {parse(x).seq: x for x in read_lines(log.path)}
    for seq, (run, n) in acked.items():
        rec = parse(by_seq[seq])
        assert json.loads(rec.body) == {"run": run, "n": n}
    assert len(acked) > 12
    repairs = [x for x in read_lines(log.path) if b'"type":"repair"' in x]
    assert len(repairs) >= 3


APPENDER = """
import sys
from keycell import Ed25519PrivateKey
from keycell.audit import AuditLog
name, count = sys.argv[2], int(sys.argv[3])
log = AuditLog.open(sys.argv[1], signer=Ed25519PrivateKey.from_file(sys.argv[4]))
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
for i in range(count):
    log.append({"op": "sign", "key": name, "i": i})
    if i % 97 == 0:
        log.checkpoint()
log.close()
"""


def test_processes_append_concurrently(tmp_path: Path) -> None:
    log = make_log(tmp_path, 1, epoch_records=11, checkpoint=False)
    signer_file = tmp_path / "signer.pem"
    log.signer.to_file(signer_file)
    count = 400
    children = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(log.path), f"p{k}", str(count), str(signer_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    for c in children:
        assert c.stdout is not None
        assert c.stdout.readline() == "ready\n"
    for c in children:
        assert c.stdin is not None
        c.stdin.write("go\n")
        c.stdin.close()
    for c in children:
        assert c.wait(timeout=120) == 0, c.stderr.read() if c.stderr else ""
        if c.stdout:
            c.stdout.close()
        if c.stderr:
            c.stderr.close()
    r = verify(log.path, key=log.k0, public_key=log.public)
    assert r.valid, r.detail
    evs = [e for e in events(log.path) if isinstance(e, dict) and "key" in e]
    for k in range(3):
        mine = [e["i"] for e in evs if e["key"] == f"p{k}"]
        assert mine == list(range(count))
    seqs = [parse(x).seq for x in read_lines(log.path)]
    assert seqs == list(range(len(seqs)))
    assert os.path.exists(str(log.path) + ".checkpoint")
