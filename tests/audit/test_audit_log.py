"""The writer API: create/open/append/checkpoint/rotate/close, events kept exactly, epochs,
checkpoints checked independently (hashlib Merkle root, pyca Ed25519), threads, errors."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from pathlib import Path

import keycell
import pytest
from audit_support import (
    epoch_key,
    events,
    leaf,
    make_log,
    mth,
    parse,
    read_lines,
    verify_note,
    write_lines,
)
from hypothesis import given
from hypothesis import strategies as st
from keycell import Ed25519PrivateKey, SecretKey
from keycell.audit import AuditHandler, AuditLog, AuditWriteWarning, prove, verify
from keycell.exceptions import AuditError, KeycellError


@pytest.fixture
def keys() -> tuple[SecretKey, Ed25519PrivateKey]:
    return SecretKey.generate(32), Ed25519PrivateKey.generate()


def test_events_are_stored_exactly(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    evs: list[object] = [
        {"op": "sign", "key": "deploy", "uid": 1000, "pid": 123, "result": "ok"},
        "a plain string",
        {"unicode": "é ü \u2014 \U0001f511", "nested": {"list": [1, 2.5, None, True]}},
        {"newline": "a\nb", "quote": '"', "backslash": "\\"},
    ]
    with AuditLog.create(p, key=k0, signer=signer, origin="t/log") as log:
        seqs = [log.append(e) for e in evs]  # type: ignore[arg-type]
    assert seqs == [1, 2, 3, 4]
    assert events(p) == evs
    data = p.read_bytes()
    assert data.count(b"\n") == 5
    assert data.endswith(b"\n")
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_bad_arguments(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuditLog.create(p, key=SecretKey.generate(31), signer=signer, origin="o")
    with pytest.raises(TypeError):
        AuditLog.create(p, key=b"x" * 32, signer=signer, origin="o")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AuditLog.create(p, key=k0, signer=k0, origin="o")  # type: ignore[arg-type]
    for origin in ("", "has space", "a+b", "x" * 256):
        with pytest.raises(ValueError, match="origin"):
            AuditLog.create(p, key=k0, signer=signer, origin=origin)
    with pytest.raises(ValueError, match="on_error"):
        AuditLog.create(p, key=k0, signer=signer, origin="o", on_error="ignore")  # type: ignore[arg-type]
    assert not p.exists()
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        with pytest.raises(TypeError):
            log.append(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            log.append({"x": float("nan")})
        with pytest.raises(TypeError):
            log.append({"x": object()})
    with pytest.raises(ValueError):
        verify(p, key=SecretKey.generate(16), public_key=signer.public_key())


def test_create_never_replaces(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    AuditLog.create(p, key=k0, signer=signer, origin="o").close()
    before = p.read_bytes()
    with pytest.raises(AuditError) as ei:
        AuditLog.create(p, key=k0, signer=signer, origin="o")
    assert ei.value.errno == errno.EEXIST
    assert p.read_bytes() == before


def test_files_and_modes(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        log.append("x")
        log.checkpoint()
    for suffix in ("", ".state", ".lock", ".checkpoint"):
        mode = stat.S_IMODE(os.stat(str(p) + suffix).st_mode)
        assert mode == 0o600, suffix


def test_checkpoint_matches_an_independent_merkle_root(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="example.org/audit") as log:
        for n in range(1, 40):
            log.append({"n": n})
            if n in (1, 2, 3, 7, 8, 16, 17, 39):
                note = log.checkpoint().encode()
                assert Path(str(p) + ".checkpoint").read_bytes() == note
                origin, size, root = verify_note(note, signer.public_key().public_bytes_raw())
                lines = read_lines(p)
                assert (origin, size) == ("example.org/audit", len(lines))
                assert root == mth([leaf(x) for x in lines])


def test_epochs_advance_by_count_and_at_checkpoints(tmp_path: Path) -> None:
    k0b = os.urandom(32)
    k0 = SecretKey.from_buffer(k0b)
    signer = Ed25519PrivateKey.generate()
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=5) as log:
        assert log.epoch == 0
        for _ in range(12):
            log.append("x")
        assert log.epoch == 2
        log.checkpoint()
        assert log.epoch == 3
        log.checkpoint()  # no records in epoch 3: no new epoch
        assert log.epoch == 3
        log.append("y")
    epochs = [parse(x).epoch for x in read_lines(p)]
    assert epochs == [0] * 5 + [1] * 5 + [2] * 3 + [3]
    # Each line's MAC is under its epoch's key, derived with pyca's HKDF.
    state = Path(str(p) + ".state").read_text().splitlines()
    assert state[-1] == "key " + epoch_key(k0b, 3).hex()
    r = verify(p, key=k0, public_key=signer.public_key())
    assert r.valid
    assert r.epochs == 4


def test_advance_epoch(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        assert log.advance_epoch() == 1  # the genesis record is in epoch 0
        assert log.advance_epoch() == 1  # no records in epoch 1: nothing to protect
        log.append("x")
        assert log.advance_epoch() == 2
        state = Path(str(p) + ".state").read_text().splitlines()
        assert state[4] == "epoch 2"
        log.append("y")
    assert [parse(x).epoch for x in read_lines(p)] == [0, 1, 2]
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_epochs_advance_by_time(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_seconds=1) as log:
        log.append("a")
        # Rewrite nothing: just wait until the epoch is older than 1 s.
        threading.Event().wait(1.1)
        log.append("b")
        assert log.epoch == 1
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_open_continues_after_restart(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    log = AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=3)
    for i in range(10):
        log.append({"i": i})
    del log  # no close(): the state file holds the snapshot of the last epoch step
    log2 = AuditLog.open(p, signer=signer)
    assert log2.next_seq == 11
    assert log2.repaired_bytes is None
    log2.append({"i": 10})
    log2.checkpoint()
    log2.close()
    log3 = AuditLog.open(p, signer=signer)
    log3.append({"i": 11})
    log3.close()
    assert [e["i"] for e in events(p)] == list(range(12))
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_open_refuses_a_tampered_tail(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=1000) as log:
        log.append("a")
    # The state snapshot was written by close(); a line appended after it (no close, so
    # no new snapshot) is then changed.
    log = AuditLog.open(p)
    log.append("b")
    del log
    st = Path(str(p) + ".state")
    text = st.read_text().splitlines()
    data = p.read_bytes()
    offset = int(text[8].split()[1])
    p.write_bytes(data[:offset] + data[offset:].replace(b'"b"', b'"c"'))
    with pytest.raises(keycell.AuditTamperedError) as ei:
        AuditLog.open(p)
    assert ei.value.kind == "modified"
    assert ei.value.line == 3


def test_torn_tail_is_repaired_on_open(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        log.append("a")
        log.checkpoint()
    with open(p, "ab") as f:
        f.write(b'{"seq":2,"ts":"2026-01-01T00:00:0')
    r = verify(p, key=k0, public_key=signer.public_key())
    assert (r.kind, r.line, r.tampered) == ("torn_tail", 3, False)
    with AuditLog.open(p) as log:
        assert log.repaired_bytes == 33
        log.append("b")
    lines = read_lines(p)
    assert b'"type":"repair","torn_bytes":33' in lines[2]
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_on_error_warn_and_raise(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    import fcntl

    k0, signer = keys
    p = tmp_path / "a.log"
    strict = AuditLog.create(p, key=k0, signer=signer, origin="o")
    lenient = AuditLog.open(p, on_error="warn")
    for log in (strict, lenient):
        log.set_lock_timeout(0.05)
    # Another writer holds the lock: appends cannot proceed.
    fd = os.open(str(p) + ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(AuditError, match="lock file"):
            strict.append("x")
        with pytest.warns(AuditWriteWarning, match="not recorded"):
            assert lenient.append("x") is None
        with pytest.raises(TypeError):  # a bad event raises in both modes
            lenient.append(3)  # type: ignore[arg-type]
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    assert lenient.append("y") == 1
    with pytest.raises(ValueError):
        lenient.set_lock_timeout(-1)
    strict.close()
    lenient.close()
    assert events(p) == ["y"]


def test_closed_log_raises(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    log = AuditLog.create(tmp_path / "a.log", key=k0, signer=signer, origin="o")
    log.close()
    log.close()
    assert log.closed
    with pytest.raises(AuditError, match="closed"):
        log.append("x")
    assert "closed" in repr(log)


def test_checkpoint_needs_a_signer(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, _ = keys
    with AuditLog.create(tmp_path / "a.log", key=k0, origin="o") as log:
        with pytest.raises(AuditError, match="signer"):
            log.checkpoint()


def test_threads_append_concurrently(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    log = AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=50)
    seqs: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(200):
            s = log.append(
                {"op": "sign", "key": f"k{t}", "uid": 1000, "pid": t, "result": "ok", "i": i}
            )
            assert s is not None
            with lock:
                seqs.append(s)
            if i % 50 == 0:
                log.checkpoint()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted(seqs) == list(range(1, 1601))
    r = verify(p, key=k0, public_key=signer.public_key())
    assert r.valid
    assert r.records == 1601


def test_audit_handler(tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    logger = logging.getLogger("keycell.test.audit")
    logger.propagate = False
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        handler = AuditHandler(log)
        logger.addHandler(handler)
        try:
            logger.warning("key %s used by uid %d", "deploy", 1000)
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("failed")
            handler.setFormatter(logging.Formatter("%(levelname)s:%(message)s"))
            logger.error("formatted")
        finally:
            logger.removeHandler(handler)
    ev = events(p)
    assert ev[0] == {
        "logger": "keycell.test.audit",
        "level": "WARNING",
        "message": "key deploy used by uid 1000",
    }
    assert ev[1]["message"] == "failed"
    assert "RuntimeError: boom" in ev[1]["exc"]
    assert ev[2]["message"] == "ERROR:formatted"
    assert verify(p, key=k0, public_key=signer.public_key()).valid


def test_rotation_continues_the_chain(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    archive = tmp_path / "a.log.1"
    with AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=4) as log:
        for i in range(10):
            log.append({"i": i})
        note = log.rotate(archive)
        for i in range(10, 15):
            log.append({"i": i})
        log.checkpoint()
    old, new = read_lines(archive), read_lines(p)
    _, size, root = verify_note(note.encode(), signer.public_key().public_bytes_raw())
    assert size == len(old)
    assert root == mth([leaf(x) for x in old])
    first = parse(new[0])
    assert first.seq == parse(old[-1]).seq + 1
    assert first.prev == leaf(old[-1])
    body = json.loads(first.body)
    assert body["type"] == "rotate"
    assert body["previous_size"] == len(old)
    pub = signer.public_key()
    assert verify(archive, key=k0, public_key=pub).valid
    # Alone, the file after the rotation is not a whole history: refused unless declared.
    r = verify(p, key=k0, public_key=pub)
    assert not r.valid
    assert (r.kind, r.line) == ("deleted", 1)
    assert "rotated_ok=True" in (r.detail or "")
    assert r.unchecked_before is None
    r = verify(p, key=k0, public_key=pub, rotated_ok=True)
    assert r.valid
    assert r.first_seq == first.seq
    assert r.unchecked_before == first.seq
    assert r.to_dict()["unchecked_before"] == first.seq
    # The genesis file has nothing unchecked.
    assert verify(archive, key=k0, public_key=pub, rotated_ok=True).unchecked_before is None
    with pytest.raises(AuditError):
        AuditLog.open(p, signer=signer).rotate(archive)


def test_verify_rotated_checks_the_link(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    from keycell.audit import verify_rotated

    k0, signer = keys
    p, archive = tmp_path / "a.log", tmp_path / "a.log.1"
    with AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=4) as log:
        for i in range(9):
            log.append({"i": i})
        log.rotate(archive)
        log.append("next")
    pub = signer.public_key()
    assert verify_rotated(archive, p, key=k0, public_key=pub).valid
    # Another log's file is not the continuation of this archive.
    other = tmp_path / "b.log"
    with AuditLog.create(other, key=k0, signer=signer, origin="o") as log:
        log.rotate(tmp_path / "b.log.1")
    r = verify_rotated(archive, other, key=k0, public_key=pub)
    assert (r.kind, r.line, r.valid) == ("modified", 1, False)
    # A truncated archive fails against its own checkpoint.
    write_lines(archive, read_lines(archive)[:-2])
    assert verify_rotated(archive, p, key=k0, public_key=pub).kind == "truncated"


def test_another_writer_follows_a_rotation(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    a = AuditLog.create(p, key=k0, signer=signer, origin="o", epoch_records=4)
    b = AuditLog.open(p, signer=signer)  # its own descriptors, like another process
    for i in range(5):
        a.append({"w": "a", "i": i})
        b.append({"w": "b", "i": i})
    a.rotate(tmp_path / "a.log.1")
    b.append({"w": "b", "i": 5})  # lands in the new file, after the rotate record
    a.append({"w": "a", "i": 5})
    a.close()
    b.close()
    old, new = read_lines(tmp_path / "a.log.1"), read_lines(p)
    assert b'"type":"end"' in old[-1]
    assert b'"type":"rotate"' in new[0]
    assert [json.loads(parse(x).body) for x in new[1:]] == [{"w": "b", "i": 5}, {"w": "a", "i": 5}]
    pub = signer.public_key()
    assert verify(tmp_path / "a.log.1", key=k0, public_key=pub).valid
    assert verify(p, key=k0, public_key=pub, rotated_ok=True).valid


def test_inclusion_proofs(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    note = Path(str(log.path) + ".checkpoint").read_bytes()
    _, size, root = verify_note(note, log.public.public_bytes_raw())
    lines = read_lines(log.path)
    for line in (1, 2, 11, size):
        pr = prove(log.path, line, size)
        assert pr.record == lines[line - 1]
        assert pr.leaf_hash == leaf(lines[line - 1])
        assert pr.root == root
        assert pr.verify(root)
        assert not pr.verify(bytes(32))
    assert prove(log.path, 3).size == len(lines)
    with pytest.raises(ValueError):
        prove(log.path, 0, size)


def test_fork_child_cannot_append(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    k0, signer = keys
    p = tmp_path / "a.log"
    log = AuditLog.create(p, key=k0, signer=signer, origin="o")
    r, w = os.pipe()
    import sys

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        sys.setswitchinterval(1000)
        try:
            log.append("from child")
            os.write(w, b"appended")
        except KeycellError as exc:
            os.write(w, type(exc).__name__.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 100) == b"ForkedKeyError"
    os.close(r)
    log.append("parent")
    log.close()
    assert events(p) == ["parent"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON)
def test_rust_encoder_matches_json_dumps(value: object) -> None:
    from keycell import _native

    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        want: bytes | None = expected.encode("utf-8")
    except UnicodeEncodeError:
        want = None  # a lone surrogate: the Rust encoder leaves it to Python (which refuses)
    assert _native._audit_encode(value) == want


def test_events_the_rust_encoder_leaves_to_json(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    k0, signer = keys
    p = tmp_path / "a.log"
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        log.append({1: "int key", None: "none key", "t": (1, 2), "e": Color.RED})
        with pytest.raises(ValueError, match="surrogate"):
            log.append({"s": "\ud800"})
        with pytest.raises(ValueError):
            log.append({"x": float("inf")})
    assert events(p) == [{"1": "int key", "null": "none key", "t": [1, 2], "e": 1}]


def test_a_later_epoch_key_cannot_rewrite_the_file_after_a_rotation(
    tmp_path: Path, keys: tuple[SecretKey, Ed25519PrivateKey]
) -> None:
    """Found by review: who takes the host at epoch n holds E_n (the state file) and could
    rewrite the whole file after the last rotation, records of epochs e+1..n-1 included,
    starting with a copy of the rotate record MAC'd at epoch n; verify_rotated said valid.
    The rotate record must be in the epoch after the archive's last line, which that
    attacker cannot MAC."""
    import hashlib
    import hmac as std_hmac

    from keycell.audit import verify_rotated

    k0, signer = keys
    p, archive = tmp_path / "a.log", tmp_path / "a.log.1"
    with AuditLog.create(p, key=k0, signer=signer, origin="o") as log:
        log.append("boot")
        log.checkpoint()
        log.append("epoch 1")
        log.rotate(archive)
        log.append({"who": "admin", "did": "deleted user bob"})  # the evidence
        log.checkpoint()
        log.append("more")
        log.checkpoint()
        log.append("latest")
    pub = signer.public_key()
    assert verify_rotated(archive, p, key=k0, public_key=pub).valid
    # The attacker: the state file's epoch key, the genuine first line's body and links.
    state = (tmp_path / "a.log.state").read_text()
    n = int(next(x for x in state.splitlines() if x.startswith("epoch ")).split()[1])
    e_n = bytes.fromhex(next(x for x in state.splitlines() if x.startswith("key ")).split()[1])
    first = p.read_bytes().split(b"\n")[0]
    head = json.loads(first[: first.index(b',"audit":')] + b"}")
    assert n > head["epoch"], "the attack needs a later epoch than the rotate record's"
    rotate_body = first[first.index(b',"audit":') + 9 : first.rindex(b',"mac":"')]
    prev = hashlib.sha256(b"\0" + archive.read_bytes().rstrip(b"\n").split(b"\n")[-1]).digest()
    forged = []
    for seq, field, body in (
        (head["seq"], b'"audit"', rotate_body),
        (head["seq"] + 1, b'"event"', b'"nothing happened"'),
    ):
        prefix = b'{"seq":%d,"ts":"%s","epoch":%d,"prev":"%s",%s:%s' % (
            seq, head["ts"].encode(), n, prev.hex().encode(), field, body,
        )  # fmt: skip
        line = prefix + b',"mac":"' + std_hmac.new(e_n, prefix, "sha256").hexdigest().encode()
        line += b'"}'
        prev = hashlib.sha256(b"\0" + line).digest()
        forged.append(line)
    p.write_bytes(b"\n".join(forged) + b"\n")
    (tmp_path / "a.log.checkpoint").unlink()  # the checkpoint beside the log goes too
    # Each line verifies under K0 on its own terms ...
    assert verify(p, key=k0, public_key=pub, rotated_ok=True).valid
    # ... but not as the continuation of the archive.
    r = verify_rotated(archive, p, key=k0, public_key=pub)
    assert not r.valid
    assert (r.kind, r.line) == ("modified", 1)
    assert "epoch" in (r.detail or "")
