"""A tamper-evident, forward-secure audit log with signed checkpoints.

Each record is one JSON line carrying a sequence number, a timestamp, its epoch, the hash
of the line before it, the event exactly as appended, and an HMAC-SHA256 over the bytes
of the line without its MAC field. The MAC key evolves by a one-way HKDF step every
``epoch_records`` records, every ``epoch_seconds`` seconds and at each checkpoint; every
epoch key lives in guarded memory and the old one is wiped, so whoever takes the host later
cannot forge or re-MAC earlier epochs. The initial key ``K0`` verifies the whole log and is
never stored beside it. Checkpoints are RFC 6962 Merkle roots over the lines in the C2SP
``tlog-checkpoint`` format, signed as C2SP signed notes with Ed25519, so anyone with the
public key can check them without the MAC key. Format and guarantees: ``docs/audit.md``.

>>> import tempfile, os
>>> from keycell import SecretKey, Ed25519PrivateKey
>>> from keycell.audit import AuditLog, verify
>>> d = tempfile.mkdtemp()
>>> k0, signer = SecretKey.generate(32), Ed25519PrivateKey.generate()
>>> with AuditLog.create(os.path.join(d, "audit.log"), key=k0, signer=signer,
...                      origin="example.org/audit") as log:
...     log.append({"op": "sign", "key": "deploy"})
...     _ = log.checkpoint()
1
>>> verify(os.path.join(d, "audit.log"), key=k0, public_key=signer.public_key()).valid
True
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from . import _native
from ._native import Ed25519PrivateKey, Ed25519PublicKey, SecretKey
from .exceptions import AuditError, AuditTamperedError, KeycellError

__all__ = [
    "FAILURE_KINDS",
    "AuditError",
    "AuditHandler",
    "AuditLog",
    "AuditTamperedError",
    "AuditWriteWarning",
    "InclusionProof",
    "VerifyResult",
    "prove",
    "verify",
    "verify_inclusion",
    "verify_rotated",
]

#: Every failure kind :func:`verify` reports.
FAILURE_KINDS = (
    "modified",
    "deleted",
    "reordered",
    "duplicated",
    "inserted",
    "truncated",
    "torn_tail",
    "wrong_key",
    "bad_checkpoint_signature",
    "checkpoint_mismatch",
)

OnError = Literal["raise", "warn"]


class AuditWriteWarning(UserWarning):
    """An append failed and the log was opened with ``on_error="warn"``: the event was
    not recorded, the program goes on."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode(event: dict[str, Any] | str) -> bytes:
    """``event`` as compact JSON (what :meth:`AuditLog.append` stores): the Rust encoder
    writes the same bytes for the plain JSON types; this one handles the rest."""
    try:
        text = _ENCODER.encode(event)
    except ValueError as exc:
        raise ValueError(f"the audit event is not JSON-serialisable: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the audit event holds a lone surrogate (not UTF-8)") from None


def _append(native: _native.AuditWriter, event: dict[str, Any] | str) -> int:
    if not isinstance(event, dict | str):
        raise TypeError(f"an audit event must be a dict or a str, not {type(event).__name__}")
    seq = native.append_event(event)
    return native.append(_encode(event)) if seq is None else seq


def _check_on_error(on_error: str) -> OnError:
    if on_error not in ("raise", "warn"):
        raise ValueError('on_error must be "raise" or "warn"')
    return on_error  # type: ignore[return-value]


class AuditLog:
    """An open audit log (writer). Thread-safe; several processes may append to one log
    (a lock file ``<path>.lock`` serialises them and each continues the others' chain).

    Create one with :meth:`create` or :meth:`open`. Files beside the log: ``<path>.state``
    (0600: the current epoch key and a snapshot, replaced atomically at each epoch step),
    ``<path>.checkpoint`` (the latest signed checkpoint), ``<path>.lock``.
    """

    __slots__ = ("_native", "_on_error", "_signer")

    def __init__(
        self, native: _native.AuditWriter, signer: Ed25519PrivateKey | None, on_error: str
    ):
        self._native = native
        self._signer = signer
        self._on_error = _check_on_error(on_error)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        key: SecretKey,
        signer: Ed25519PrivateKey | None = None,
        origin: str,
        epoch_records: int = 10_000,
        epoch_seconds: int = 3600,
        on_error: OnError = "raise",
        sync: bool = False,
    ) -> AuditLog:
        """Create a new log at ``path`` (an existing file is never replaced: ``AuditError``
        with ``errno`` ``EEXIST``).

        ``key`` is ``K0``, a :class:`~keycell.SecretKey` of at least 32 bytes: keep it
        away from this host (it verifies the whole log); only the epoch key derived from
        it is kept, in ``<path>.state``. ``signer`` signs checkpoints. ``origin`` names the
        log in its checkpoints (printable ASCII, no spaces or ``+``). ``sync=True``
        ``fdatasync``s every record (survives power loss, costs a disk flush per record).
        """
        _check_on_error(on_error)
        if not isinstance(key, SecretKey):
            raise TypeError(f"key must be a keycell.SecretKey, not {type(key).__name__}")
        if len(key) < 32:
            raise ValueError("the audit key (K0) must be at least 32 bytes")
        _check_signer(signer)
        native = _native.AuditWriter.create(
            os.fspath(path),
            key=key,
            origin=origin,
            epoch_records=epoch_records,
            epoch_seconds=epoch_seconds,
            sync=sync,
        )
        return cls(native, signer, on_error)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        signer: Ed25519PrivateKey | None = None,
        on_error: OnError = "raise",
        sync: bool = False,
    ) -> AuditLog:
        """Open an existing log to continue appending (e.g. after a restart). A last line
        cut short by a crash is cut off and a ``repair`` record says so
        (:attr:`repaired_bytes`). Raises :class:`AuditTamperedError` if the lines written
        since the state file's snapshot do not check out."""
        _check_on_error(on_error)
        _check_signer(signer)
        return cls(_native.AuditWriter.open(os.fspath(path), sync=sync), signer, on_error)

    def append(self, event: dict[str, Any] | str) -> int | None:
        """Append ``event`` (a dict or str, stored under ``"event"`` exactly as given, as
        compact JSON). Returns its sequence number after the line is written to the file,
        so a crash of this process after the return loses nothing. With
        ``on_error="warn"``, a failure warns (:class:`AuditWriteWarning`) and returns
        ``None``; a bad event raises ``TypeError``/``ValueError`` in both modes."""
        if self._on_error == "raise":
            return _append(self._native, event)
        if not isinstance(event, dict | str):
            raise TypeError(f"an audit event must be a dict or a str, not {type(event).__name__}")
        body = _encode(event)  # a bad event raises in both modes
        try:
            return self._native.append(body)
        except (KeycellError, OSError) as exc:
            warnings.warn(f"audit event not recorded: {exc}", AuditWriteWarning, stacklevel=2)
            return None

    def checkpoint(self) -> str:
        """Sign a checkpoint of the whole log with the signer, write it to
        ``<path>.checkpoint`` atomically and start a new epoch. Returns the signed note."""
        return self._native.checkpoint(self._require_signer())

    def rotate(self, archive: str | os.PathLike[str]) -> str:
        """Move the current file to ``archive`` (never replacing a file) with its final
        checkpoint in ``<archive>.checkpoint``, and continue in a new file at the log's
        path whose first record commits to the archived file's size, Merkle root and last
        line hash (the chain and the sequence continue); ``<path>.checkpoint`` then holds a
        checkpoint of the new file. Returns the archive's checkpoint."""
        return self._native.rotate(os.fspath(archive), self._require_signer())

    def advance_epoch(self) -> int:
        """Start a new epoch now (if the current one has records): the key that MACed the
        records so far is destroyed, in memory and in the state file. Epochs also advance
        by count, by age (checked at the next append) and at each checkpoint; call this
        from a timer when the writer may stay idle. Returns the current epoch."""
        return self._native.advance_epoch()

    def close(self) -> None:
        """Save the state file and wipe the epoch key. Idempotent."""
        self._native.close()

    def set_lock_timeout(self, seconds: float) -> None:
        """How long an append waits for another writer's lock (default 30 s)."""
        self._native.set_lock_timeout(seconds)

    def _require_signer(self) -> Ed25519PrivateKey:
        if self._signer is None:
            raise AuditError("this audit log has no signer: pass signer= to create() or open()")
        return self._signer

    @property
    def path(self) -> str:
        """The log's path."""
        return os.fspath(self._native.path)

    @property
    def origin(self) -> str:
        """The log's origin (the name in its checkpoints)."""
        return self._native.origin

    @property
    def size(self) -> int:
        """Lines in the current file, as far as this writer knows."""
        return self._native.size

    @property
    def next_seq(self) -> int:
        """The sequence number the next record gets (as far as this writer knows)."""
        return self._native.next_seq

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._native.epoch

    @property
    def protection(self) -> _native.Protection:
        """What protection the log's memory actually has: its current epoch key's region,
        the weakest of the key and its HMAC pads (the shape of ``SecretKey.protection``).
        Each new epoch's key is a new region; the call that made one with a protection
        missing warns (``ProtectionWarning``, once per process)."""
        return self._native.protection

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._native.closed

    @property
    def repaired_bytes(self) -> int | None:
        """Bytes of a torn last line that :meth:`open` cut off, or ``None``."""
        return self._native.repaired_bytes

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.size} lines"
        return f"<keycell.audit.AuditLog {state}>"


def _check_signer(signer: object) -> None:
    if signer is not None and not isinstance(signer, Ed25519PrivateKey):
        raise TypeError(f"signer must be a keycell.Ed25519PrivateKey, not {type(signer).__name__}")


class AuditHandler(logging.Handler):
    """A :class:`logging.Handler` that appends every record to an :class:`AuditLog` as
    ``{"logger": name, "level": levelname, "message": formatted message}`` (plus
    ``"exc"`` with the formatted traceback when there is one). Failures go to
    :meth:`logging.Handler.handleError`, as with every handler."""

    def __init__(self, log: AuditLog, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        """Append ``record`` to the log."""
        try:
            event: dict[str, Any] = {
                "logger": record.name,
                "level": record.levelname,
                "message": record.getMessage() if self.formatter is None else self.format(record),
            }
            if record.exc_info and self.formatter is None:
                event["exc"] = logging.Formatter().formatException(record.exc_info)
            self.log.append(event)
        except Exception:
            self.handleError(record)


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found.

    ``valid`` is true when every line verified (and the checkpoint, if any, signed and
    matched). Otherwise ``kind`` (one of :data:`FAILURE_KINDS`) and ``line`` (1-based;
    ``0`` for the checkpoint itself) describe the first failure and ``detail`` explains
    it. ``records`` counts the lines that verified before it, ``byte_count`` their size.
    ``unchecked_before`` is set for a file verified with ``rotated_ok=True`` that begins
    with a rotate record: the sequence number before which nothing was checked.
    """

    valid: bool
    records: int
    byte_count: int
    epochs: int
    first_seq: int | None
    last_seq: int | None
    origin: str | None
    checkpoint_size: int | None
    root: bytes
    kind: str | None
    line: int | None
    detail: str | None
    unchecked_before: int | None = None

    @property
    def tampered(self) -> bool:
        """True for every failure except a torn tail (a crash while writing)."""
        return self.kind is not None and self.kind != "torn_tail"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the root in hex)."""
        return {
            "valid": self.valid,
            "tampered": self.tampered,
            "records": self.records,
            "bytes": self.byte_count,
            "epochs": self.epochs,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "origin": self.origin,
            "checkpoint_size": self.checkpoint_size,
            "root": self.root.hex(),
            "unchecked_before": self.unchecked_before,
            "failure": None
            if self.kind is None
            else {"kind": self.kind, "line": self.line, "detail": self.detail},
        }


def _read_checkpoint(checkpoint: str | os.PathLike[str] | bytes) -> bytes:
    if isinstance(checkpoint, bytes):
        return checkpoint
    with open(checkpoint, "rb") as f:
        return f.read(64 * 1024 + 1)


def verify(
    path: str | os.PathLike[str],
    *,
    key: SecretKey,
    public_key: Ed25519PublicKey | None = None,
    checkpoint: str | os.PathLike[str] | bytes | Literal[False] | None = None,
    rotated_ok: bool = False,
) -> VerifyResult:
    """Verify the log at ``path`` in one streaming pass (constant memory): every MAC under
    its epoch's key derived from ``key`` (``K0``), the hash chain, the sequence, the epoch
    order, and the Merkle root against a signed checkpoint.

    A log must begin with its genesis record. A file that begins with a ``rotate`` record
    (the file after a rotation) is ``deleted`` at line 1 unless ``rotated_ok=True``
    declares it so; then ``unchecked_before`` gives the sequence number from which it was
    checked. Whoever holds a later epoch key can write such a file, so prefer
    :func:`verify_rotated`, which also checks the archive and the link.

    ``checkpoint`` is a signed note (``bytes``) or the path of one; ``None`` uses
    ``<path>.checkpoint`` when it exists; ``False`` checks none. ``public_key`` (the
    checkpoint signer's) is needed when a checkpoint is checked, and only then
    (``ValueError`` without it). A checkpoint kept apart
    from the log (sent to a witness, say) is what makes a truncated tail detectable: the
    file beside the log can be deleted with the tail.

    Returns a :class:`VerifyResult`; raises :class:`AuditError` only when the log cannot
    be read, ``ValueError`` for a key shorter than 32 bytes.
    """
    if not isinstance(key, SecretKey):
        raise TypeError(f"key must be a keycell.SecretKey, not {type(key).__name__}")
    if len(key) < 32:
        raise ValueError("the audit key (K0) must be at least 32 bytes")
    note: bytes | None = None
    if checkpoint is None:
        default = os.fspath(path) + ".checkpoint"
        if os.path.exists(default):
            note = _read_checkpoint(default)
    elif checkpoint is not False:
        note = _read_checkpoint(checkpoint)
    r = _native.audit_verify(
        os.fspath(path), key=key, public_key=public_key, checkpoint=note, rotated_ok=rotated_ok
    )
    return VerifyResult(
        valid=r["valid"],
        records=r["records"],
        byte_count=r["bytes"],
        epochs=r["epochs"],
        first_seq=r["first_seq"],
        last_seq=r["last_seq"],
        origin=r["origin"],
        checkpoint_size=r["checkpoint_size"],
        root=r["root"],
        kind=r["kind"],
        line=r["line"],
        detail=r["detail"],
        unchecked_before=r["unchecked_before"],
    )


def _last_line(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, tail = end, b""
        while pos > 0 and tail.count(b"\n") < 2:
            step = min(pos, 64 * 1024)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    lines = tail.split(b"\n")
    return lines[-2] if len(lines) >= 2 else b""


def _internal_record(line: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header fields (seq, ts, epoch, prev) and the body of an internal record line,
    or two empty dicts when it is not one (the verifier has checked its MAC)."""
    head, _, rest = line.partition(b',"audit":')
    if not rest or b',"mac":"' not in rest:
        return {}, {}
    try:
        fields = json.loads(head + b"}")
        body = json.loads(rest[: rest.rindex(b',"mac":"')])
    except ValueError:
        return {}, {}
    if not isinstance(fields, dict) or not isinstance(body, dict):
        return {}, {}
    return fields, body


def verify_rotated(
    archive: str | os.PathLike[str],
    current: str | os.PathLike[str],
    *,
    key: SecretKey,
    public_key: Ed25519PublicKey,
    rotated_ok: bool = False,
) -> VerifyResult:
    """Verify a rotated log: the ``archive`` (against ``<archive>.checkpoint``), then the
    ``current`` file, and the link between them: the current file's first record (a
    ``rotate`` record) must continue the archive's sequence and hash chain and name the
    archive's size and Merkle root. Returns the first failing result (a broken link is
    reported as ``modified`` at line 1 of ``current``), else the current file's result.
    The archive must begin with its genesis unless ``rotated_ok`` (it was itself rotated
    from an earlier archive: verify that pair too)."""
    old = verify(archive, key=key, public_key=public_key, rotated_ok=rotated_ok)
    if not old.valid:
        return old
    new = verify(current, key=key, public_key=public_key, rotated_ok=True)
    if not new.valid:
        return new
    with open(current, "rb") as f:
        first = f.readline().rstrip(b"\n")
    last = _last_line(archive)
    head, body = _internal_record(first)
    last_head, last_body = _internal_record(last)
    # The rotate record is in the epoch after the archive's last line (the writer steps to
    # it for the new file): whoever took the host later holds only later epoch keys and
    # cannot write it, so cannot rewrite the current file's earlier epochs either.
    checks = (
        body.get("type") == "rotate"
        and last_body.get("type") == "end"
        and body.get("previous_size") == old.records
        and body.get("previous_root") == base64.b64encode(old.root).decode()
        and new.first_seq == (old.last_seq or 0) + 1
        and head.get("prev") == hashlib.sha256(b"\x00" + last).hexdigest()
        and isinstance(head.get("epoch"), int)
        and isinstance(last_head.get("epoch"), int)
        and head["epoch"] == last_head["epoch"] + 1
    )
    if checks:
        return new
    return dataclasses.replace(
        new,
        valid=False,
        kind="modified",
        line=1,
        detail="the first record does not continue the archived file (sequence, hash chain, "
        "epoch, size or Merkle root differ, or the archive does not end with its end record)",
    )


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 6962 inclusion proof of line ``line`` (1-based; its bytes: ``record``) in
    the first ``size`` lines of a log."""

    line: int
    size: int
    record: bytes
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes

    def verify(self, root: bytes | None = None) -> bool:
        """Check the proof against ``root`` (default: the root it was made for), without
        the log: e.g. against the root of a signed checkpoint of ``size`` lines."""
        return _native.audit_verify_inclusion(
            self.leaf_hash,
            self.line - 1,
            self.size,
            self.proof,
            self.root if root is None else root,
        )


def prove(path: str | os.PathLike[str], line: int, size: int | None = None) -> InclusionProof:
    """An inclusion proof of line ``line`` (1-based) in the first ``size`` lines of the
    log (default: all complete lines). One pass, ``O(log size)`` memory."""
    if size is None:
        size = 0
        with open(path, "rb") as f:
            for raw in f:
                if raw.endswith(b"\n"):
                    size += 1
    r = _native.audit_prove(os.fspath(path), line, size)
    return InclusionProof(
        line=r["line"],
        size=r["size"],
        record=r["bytes"],
        leaf_hash=r["leaf_hash"],
        proof=list(r["proof"]),
        root=r["root"],
    )


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool:
    """Check an RFC 6962 inclusion proof: leaf hash at 0-based ``index`` in a tree of
    ``size`` leaves with ``root``."""
    return _native.audit_verify_inclusion(leaf_hash, index, size, proof, root)


# Re-exported for `except keycell.audit.AuditTamperedError`.
_ = AuditTamperedError
