"""The mutation suite: every way of tampering with a log is detected and classified, with
the line number of the first failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from audit_support import (
    Log,
    epoch_key,
    leaf,
    make_log,
    parse,
    read_lines,
    rechain,
    remac,
    set_epoch,
    write_lines,
)
from keycell import Ed25519PrivateKey, SecretKey
from keycell.audit import AuditLog, verify

N = 30  # events; line 1 is the genesis record, so the log has N + 1 lines


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return make_log(tmp_path, N, epoch_records=7)


def check(log: Log, kind: str | None, line: int | None, **kw: object) -> None:
    r = log.verify(**kw)
    assert (r.kind, r.line) == (kind, line), r.detail
    assert r.valid == (kind is None)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_intact_log_verifies(log: Log) -> None:
    r = log.verify()
    assert r.valid
    assert r.records == N + 1
    assert r.checkpoint_size == N + 1
    assert r.epochs >= 4
    assert r.first_seq == 0
    assert r.last_seq == N
    assert r.origin == "test.example/audit"
    assert not r.tampered


@pytest.mark.parametrize("field", [b'"text":"event 1', b'"seq":1', b'"ts":"', b'"mac":"'])
def test_flip_a_byte(log: Log, field: bytes) -> None:
    lines = read_lines(log.path)
    at = lines[12].index(field) + len(field) + 1
    lines[12] = flip(lines[12], at)
    write_lines(log.path, lines)
    check(log, "modified", 13)


def test_flip_a_byte_in_every_position_of_one_line(log: Log) -> None:
    original = read_lines(log.path)
    for at in range(0, len(original[5]), 7):
        lines = list(original)
        lines[5] = flip(lines[5], at)
        write_lines(log.path, lines)
        r = log.verify()
        assert (r.kind, r.line) == ("modified", 6), (at, r.detail)


def test_flip_a_byte_in_the_last_line(tmp_path: Path) -> None:
    log = make_log(tmp_path, N, checkpoint=False)
    lines = read_lines(log.path)
    lines[-1] = flip(lines[-1], 40)
    write_lines(log.path, lines)
    check(log, "modified", N + 1)


def test_delete_a_line(log: Log) -> None:
    lines = read_lines(log.path)
    del lines[10]
    write_lines(log.path, lines)
    check(log, "deleted", 11)


def test_delete_several_lines(log: Log) -> None:
    lines = read_lines(log.path)
    del lines[10:14]
    write_lines(log.path, lines)
    check(log, "deleted", 11)


def test_delete_the_genesis_record(log: Log) -> None:
    write_lines(log.path, read_lines(log.path)[1:])
    check(log, "deleted", 1)


def test_swap_two_lines(log: Log) -> None:
    lines = read_lines(log.path)
    lines[8], lines[9] = lines[9], lines[8]
    write_lines(log.path, lines)
    check(log, "reordered", 9)


def test_move_a_line_later(log: Log) -> None:
    lines = read_lines(log.path)
    moved = lines.pop(8)
    lines.insert(20, moved)
    write_lines(log.path, lines)
    check(log, "reordered", 9)


def test_duplicate_a_line_in_place(log: Log) -> None:
    lines = read_lines(log.path)
    lines.insert(11, lines[10])
    write_lines(log.path, lines)
    check(log, "duplicated", 12)


def test_duplicate_an_earlier_line_later(log: Log) -> None:
    lines = read_lines(log.path)
    lines.insert(20, lines[3])
    write_lines(log.path, lines)
    check(log, "duplicated", 21)


def test_insert_a_forged_record(log: Log) -> None:
    lines = read_lines(log.path)
    p = parse(lines[15])
    forged = remac(lines[15].replace(b'"event 14"', b'"event 99"'), os.urandom(32))
    assert p.seq == 15
    lines.insert(16, forged)
    write_lines(log.path, lines)
    check(log, "inserted", 17)


def test_insert_a_line_that_is_not_a_record(log: Log) -> None:
    lines = read_lines(log.path)
    lines.insert(16, b'{"hello":"world"}')
    write_lines(log.path, lines)
    check(log, "inserted", 17)


def test_truncate_lines_covered_by_the_checkpoint(log: Log) -> None:
    write_lines(log.path, read_lines(log.path)[:-3])
    check(log, "truncated", N - 1)


def test_truncate_mid_line_covered_by_the_checkpoint(log: Log) -> None:
    data = log.path.read_bytes()
    log.path.write_bytes(data[: len(data) - 40])
    check(log, "truncated", N + 1)


def test_truncate_after_the_checkpoint_at_a_line_boundary_is_not_detectable(
    tmp_path: Path,
) -> None:
    # Documented limit: lines after the last checkpoint, cut at a line boundary, leave a
    # shorter log that is still a valid prefix.
    log = make_log(tmp_path, N, after=5)
    write_lines(log.path, read_lines(log.path)[:-2])
    r = log.verify()
    assert r.valid
    assert r.records == N + 4


def test_truncate_after_the_checkpoint_mid_line_is_a_torn_tail(tmp_path: Path) -> None:
    log = make_log(tmp_path, N, after=5)
    data = log.path.read_bytes()
    log.path.write_bytes(data[: len(data) - 40])
    r = log.verify()
    assert (r.kind, r.line) == ("torn_tail", N + 6)
    assert not r.valid
    assert not r.tampered


def test_splice_two_logs_with_different_keys(tmp_path: Path) -> None:
    a = make_log(tmp_path, N, checkpoint=False, name="a.log")
    b = make_log(tmp_path, N, checkpoint=False, name="b.log")
    write_lines(a.path, read_lines(a.path)[:12] + read_lines(b.path)[12:])
    check(a, "wrong_key", 13)


def test_splice_two_logs_under_the_same_key(tmp_path: Path) -> None:
    k0 = os.urandom(32)
    a = make_log(tmp_path, N, checkpoint=False, name="a.log", k0_bytes=k0)
    b = make_log(tmp_path, N, checkpoint=False, name="b.log", k0_bytes=k0)
    write_lines(a.path, read_lines(a.path)[:12] + read_lines(b.path)[12:])
    check(a, "inserted", 13)


def test_remac_with_a_wrong_key_and_rebuilt_chain(log: Log) -> None:
    lines = read_lines(log.path)
    lines[9] = lines[9].replace(b'"op":"sign"', b'"op":"nope"')
    wrong = os.urandom(32)
    write_lines(log.path, rechain(lines, 9, lambda e: wrong))
    check(log, "wrong_key", 10, checkpoint=False)


def test_remac_without_fixing_the_chain_is_a_modification(log: Log) -> None:
    lines = read_lines(log.path)
    lines[9] = remac(lines[9].replace(b'"op":"sign"', b'"op":"nope"'), os.urandom(32))
    write_lines(log.path, lines)
    check(log, "modified", 10)


def test_reseal_with_a_newer_epoch_key(log: Log) -> None:
    # journald CVE-2023-31439: an attacker holding a later epoch's key rewrites an earlier
    # record and seals it with that key, claiming the later epoch.
    lines = read_lines(log.path)
    last_epoch = parse(lines[-1]).epoch
    assert parse(lines[3]).epoch == 0
    assert last_epoch >= 3
    newer = epoch_key(log.k0_bytes, last_epoch)
    lines[3] = set_epoch(lines[3].replace(b'"op":"sign"', b'"op":"nope"'), last_epoch)
    write_lines(
        log.path,
        rechain(lines, 3, lambda e: epoch_key(log.k0_bytes, e) if e != last_epoch else newer),
    )
    check(log, "wrong_key", 4, checkpoint=False)


def test_whole_log_under_a_wrong_key(log: Log) -> None:
    r = verify(log.path, key=SecretKey.generate(32), public_key=log.public)
    assert (r.kind, r.line) == ("wrong_key", 1)


def test_forged_checkpoint_signature(log: Log, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    assert log.verify(checkpoint=False).valid
    r = verify(log.path, key=log.k0, public_key=other.public_key())
    assert (r.kind, r.line) == ("bad_checkpoint_signature", 0)
    cp = Path(str(log.path) + ".checkpoint")
    note = cp.read_bytes()
    forged = note.replace(f"\n{N + 1}\n".encode(), f"\n{N - 5}\n".encode(), 1)
    assert forged != note
    r = log.verify(checkpoint=forged)
    assert (r.kind, r.line) == ("bad_checkpoint_signature", 0)
    r = log.verify(checkpoint=b"not a checkpoint")
    assert r.kind == "bad_checkpoint_signature"


def test_checkpoint_of_a_rewritten_log(tmp_path: Path) -> None:
    # An attacker with the current epoch key rewrites records of the current epoch: every
    # MAC and the chain verify, but the signed Merkle root does not match.
    log = make_log(tmp_path, 10, epoch_records=100)
    state_key = epoch_key(log.k0_bytes, 0)
    lines = read_lines(log.path)
    lines[5] = lines[5].replace(b'"op":"sign"', b'"op":"nope"')
    write_lines(log.path, rechain(lines, 5, lambda e: state_key))
    assert log.verify(checkpoint=False).valid
    check(log, "checkpoint_mismatch", 11)


def test_checkpoint_of_another_log(tmp_path: Path) -> None:
    a = make_log(tmp_path, 10, name="a.log", origin="a.example/log")
    b = make_log(tmp_path, 10, name="b.log", origin="b.example/log")
    cp = Path(str(b.path) + ".checkpoint").read_bytes()
    r = verify(a.path, key=a.k0, public_key=b.public, checkpoint=cp)
    assert (r.kind, r.line) == ("checkpoint_mismatch", 0)


def test_state_file_key_cannot_remac_earlier_epochs(log: Log) -> None:
    # Forward security: the key in the state file (the current epoch's) used as K0 fails on
    # the first line, and lines re-MAC'd with it fail under the real K0.
    state = Path(str(log.path) + ".state").read_text().splitlines()
    state_key = bytes.fromhex(state[-1].split()[1])
    epoch = int(state[4].split()[1])
    assert epoch > 0
    assert state_key == epoch_key(log.k0_bytes, epoch)
    assert state_key not in {epoch_key(log.k0_bytes, e) for e in range(epoch)}
    r = verify(log.path, key=SecretKey.from_buffer(state_key), public_key=log.public)
    assert (r.kind, r.line) == ("wrong_key", 1)
    lines = read_lines(log.path)
    lines[2] = lines[2].replace(b'"op":"sign"', b'"op":"nope"')
    write_lines(log.path, rechain(lines, 2, lambda e: state_key))
    check(log, "wrong_key", 3, checkpoint=False)


def test_empty_file(tmp_path: Path) -> None:
    log = make_log(tmp_path, 1)
    log.path.write_bytes(b"")
    assert log.verify(checkpoint=False).kind == "truncated"


def test_verified_leaves_match_an_independent_reading(log: Log) -> None:
    lines = read_lines(log.path)
    prev = bytes(32)
    for i, line in enumerate(lines):
        p = parse(line)
        assert p.seq == i
        assert p.prev == prev
        assert remac(line, epoch_key(log.k0_bytes, p.epoch)) == line
        prev = leaf(line)
    assert AuditLog  # the writer is the library; everything above is independent
