"""``keycell audit verify`` and ``keycell audit prove``: exit codes 0/1/2, ``--json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from audit_support import Log, leaf, make_log, read_lines, verify_note, write_lines
from keycell.audit import AuditLog
from support import run_cli, write_key_file


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return make_log(tmp_path, 20)


@pytest.fixture
def files(log: Log, tmp_path: Path) -> tuple[str, str]:
    k = write_key_file(tmp_path / "k0.key", log.k0_bytes)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(log.public.public_bytes_pem())
    return str(k), str(pub)


def test_valid_log(log: Log, files: tuple[str, str]) -> None:
    k, pub = files
    p = run_cli("audit", "verify", str(log.path), "--key-file", k, "--public-key", pub)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("valid: 21 records")
    assert "checkpoint of 21 lines" in p.stdout
    p = run_cli("audit", "verify", str(log.path), "--key-file", k, "--public-key", pub, "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == 0
    assert doc["valid"]
    assert doc["failure"] is None
    assert doc["records"] == 21
    assert doc["checkpoint_size"] == 21


def test_tampered_log(log: Log, files: tuple[str, str]) -> None:
    k, pub = files
    lines = read_lines(log.path)
    del lines[5]
    write_lines(log.path, lines)
    p = run_cli("audit", "verify", str(log.path), "--key-file", k, "--public-key", pub, "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == 1
    assert doc["failure"] == {"kind": "deleted", "line": 6, "detail": doc["failure"]["detail"]}
    assert doc["tampered"]
    assert not doc["valid"]
    p = run_cli("audit", "verify", str(log.path), "--key-file", k, "--public-key", pub)
    assert p.returncode == 1
    assert p.stdout.startswith("INVALID: deleted at line 6")


def test_torn_tail_and_checkpoint_choice(log: Log, files: tuple[str, str], tmp_path: Path) -> None:
    k, pub = files
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-30])
    p = run_cli("audit", "verify", str(log.path), "--key-file", k, "--public-key", pub, "--json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["failure"]["kind"] == "truncated"
    p = run_cli(
        "audit",
        "verify", str(log.path), "--key-file", k, "--public-key", pub, "--no-checkpoint", "--json"
    )
    doc = json.loads(p.stdout)
    assert p.returncode == 1
    assert doc["failure"]["kind"] == "torn_tail"
    assert not doc["tampered"]
    other = tmp_path / "other.checkpoint"
    other.write_text("forged\n1\n" + "A" * 43 + "=\n\n\u2014 forged AAAAAAAA\n")
    p = run_cli(
        "audit",
        "verify", str(log.path), "--key-file", k, "--public-key", pub, "--checkpoint", str(other)
    )
    assert p.returncode == 1
    assert "bad_checkpoint_signature at the checkpoint" in p.stdout


def test_usage_errors(log: Log, files: tuple[str, str], tmp_path: Path) -> None:
    k, pub = files
    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text("not a key")
    short = write_key_file(tmp_path / "short.key", b"x" * 16)
    cases = [
        ("verify", str(log.path), "--key-file", str(tmp_path / "missing"), "--public-key", pub),
        ("verify", str(log.path), "--key-file", k, "--public-key", str(bad_pem)),
        ("verify", str(tmp_path / "missing.log"), "--key-file", k, "--public-key", pub),
        ("verify", str(log.path), "--key-file", str(short), "--public-key", pub),
        ("verify", str(log.path), "--public-key", pub),
        (
            "verify",
            str(log.path),
            "--key-file",
            k,
            "--public-key",
            pub,
            "--checkpoint",
            "x",
            "--no-checkpoint",
        ),
        ("prove", str(log.path), "0"),
        ("prove", str(log.path), "x"),
    ]
    for args in cases:
        p = run_cli("audit", *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "error" in p.stderr


def test_prove(log: Log) -> None:
    note = Path(str(log.path) + ".checkpoint").read_bytes()
    _, size, root = verify_note(note, log.public.public_bytes_raw())
    lines = read_lines(log.path)
    p = run_cli("audit", "prove", str(log.path), "7", "--size", str(size), "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["record"].encode() == lines[6]
    assert bytes.fromhex(doc["leaf_hash"]) == leaf(lines[6])
    # Check the proof independently (RFC 9162 2.1.3.2) against the signed root.
    fn, sn, r = doc["index"], size - 1, leaf(lines[6])
    for h in map(bytes.fromhex, doc["proof"]):
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + h + r).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + h).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    assert r == root
    p = run_cli("audit", "prove", str(log.path), "3")
    assert p.returncode == 0
    assert p.stdout.startswith("line 3 of 21")


def test_verify_previous(tmp_path: Path, files: tuple[str, str], log: Log) -> None:
    k, pub = files
    archive = tmp_path / "audit.log.1"
    with AuditLog.open(log.path, signer=log.signer) as w:
        w.append("before rotation")
        w.rotate(archive)
        w.append("after rotation")
    p = run_cli(
        "audit",
        "verify", str(log.path), "--key-file", k, "--public-key", pub, "--previous", str(archive)
    )
    assert p.returncode == 0, p.stdout + p.stderr
    other = make_log(tmp_path, 2, name="other.log", k0_bytes=log.k0_bytes, checkpoint=False)
    p = run_cli(
        "audit",
        "verify", str(other.path), "--key-file", k, "--public-key", pub, "--previous", str(archive)
    )
    assert p.returncode == 1
    assert "at line 1" in p.stdout


def test_a_rotated_file_alone_is_not_a_whole_history(
    tmp_path: Path, files: tuple[str, str], log: Log
) -> None:
    """A file whose first line is a rotate record verifies only when declared (--rotated),
    and then says from which seq it was checked; before, it was 'valid' as it was, so whoever
    held the current epoch key could replace the whole history with one rotate line and
    records after it."""
    k, pub = files
    archive = tmp_path / "audit.log.1"
    with AuditLog.open(log.path, signer=log.signer) as w:
        w.append("before rotation")
        w.rotate(archive)
        first_seq = w.next_seq
        w.append("after rotation")
    base = ("verify", str(log.path), "--key-file", k, "--public-key", pub)
    p = run_cli("audit", *base)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "INVALID: deleted at line 1" in p.stdout
    assert "--rotated" in p.stdout
    p = run_cli("audit", *base, "--rotated")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"checked from seq {first_seq - 1}" in p.stdout
    p = run_cli("audit", *base, "--rotated", "--json")
    assert p.returncode == 0
    assert json.loads(p.stdout)["unchecked_before"] == first_seq - 1
    p = run_cli("audit", *base, "--json")
    doc = json.loads(p.stdout)
    assert (doc["valid"], doc["unchecked_before"]) == (False, None)
    assert doc["failure"]["kind"] == "deleted"
    # --rotated is one of the ways to choose what is checked, like --previous.
    p = run_cli("audit", *base, "--rotated", "--previous", str(archive))
    assert p.returncode == 2
    assert "not allowed with" in p.stderr
