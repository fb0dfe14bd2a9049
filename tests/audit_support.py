"""Helpers of the audit log tests: an independent reading of the format (record layout,
epoch keys with pyca's HKDF, RFC 6962 Merkle root with hashlib, C2SP signed-note check with
pyca's Ed25519), so the tests check the library against the spec, not against itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keycell
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as PycaPublic
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from keycell import Ed25519PrivateKey, SecretKey
from keycell.audit import AuditLog

INFO = b"keycell audit v1 epoch key"
MAC_SUFFIX = re.compile(rb',"mac":"([0-9a-f]{64})"}$')
RECORD = re.compile(
    rb'^\{"seq":(\d+),"ts":"[^"]{27}","epoch":(\d+),"prev":"([0-9a-f]{64})","(event|audit)":'
)


def epoch_key(k0: bytes, epoch: int) -> bytes:
    """``E_epoch`` from ``K0``, with pyca/cryptography's HKDF."""
    k = k0
    for e in range(epoch + 1):
        k = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=INFO + e.to_bytes(8, "big")
        ).derive(k)
    return k


def leaf(line: bytes) -> bytes:
    """RFC 6962 leaf hash."""
    return hashlib.sha256(b"\x00" + line).digest()


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash, recursively, over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


@dataclass
class Parsed:
    seq: int
    epoch: int
    prev: bytes
    body: bytes
    mac: bytes


def parse(line: bytes) -> Parsed:
    """Parse a record line (without ``\\n``) with regular expressions."""
    m = RECORD.match(line)
    s = MAC_SUFFIX.search(line)
    assert m, line
    assert s, line
    return Parsed(
        seq=int(m.group(1)),
        epoch=int(m.group(2)),
        prev=bytes.fromhex(m.group(3).decode()),
        body=line[m.end() : s.start()],
        mac=bytes.fromhex(s.group(1).decode()),
    )


def remac(line: bytes, key: bytes) -> bytes:
    """``line`` with its MAC recomputed under ``key``."""
    s = MAC_SUFFIX.search(line)
    assert s
    prefix = line[: s.start()]
    mac = hmac.new(key, prefix, "sha256").hexdigest().encode()
    return prefix + b',"mac":"' + mac + b'"}'


def set_prev(line: bytes, prev: bytes) -> bytes:
    """``line`` with its ``prev`` field replaced (MAC not updated)."""
    return re.sub(
        rb'"prev":"[0-9a-f]{64}"', b'"prev":"' + prev.hex().encode() + b'"', line, count=1
    )


def set_epoch(line: bytes, epoch: int) -> bytes:
    """``line`` with its ``epoch`` field replaced (MAC not updated)."""
    return re.sub(rb'"epoch":\d+', b'"epoch":' + str(epoch).encode(), line, count=1)


def rechain(lines: list[bytes], start: int, key_for_epoch: Any) -> list[bytes]:
    """Rebuild the chain from index ``start`` on: fix each ``prev`` and re-MAC it with
    ``key_for_epoch(epoch)`` (what an attacker holding those keys would do)."""
    out = list(lines)
    for i in range(start, len(out)):
        line = out[i]
        if i > 0:
            line = set_prev(line, leaf(out[i - 1]))
        out[i] = remac(line, key_for_epoch(parse(line).epoch))
    return out


def read_lines(path: Path) -> list[bytes]:
    """The complete lines of a file, without their newlines."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def write_lines(path: Path, lines: list[bytes], tail: bytes = b"") -> None:
    """Write ``lines`` (each with ``\\n``) and then ``tail`` verbatim."""
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)


def verify_note(note: bytes, public_raw: bytes) -> tuple[str, int, bytes]:
    """Check a C2SP signed note with pyca's Ed25519, return ``(origin, size, root)``."""
    text = note.decode("utf-8")
    body, _, sigs = text.partition("\n\n")
    body += "\n"
    origin, size, root_b64 = body.splitlines()[:3]
    key_hash = hashlib.sha256(origin.encode() + b"\n\x01" + public_raw).digest()[:4]
    for line in sigs.splitlines():
        assert line.startswith("\u2014 ")
        name, blob_b64 = line[2:].split(" ")
        blob = base64.b64decode(blob_b64, validate=True)
        if name == origin and blob[:4] == key_hash:
            PycaPublic.from_public_bytes(public_raw).verify(blob[4:], body.encode())
            return origin, int(size), base64.b64decode(root_b64, validate=True)
    raise AssertionError("no signature by this key")


@dataclass
class Log:
    """A test log, its keys and paths."""

    path: Path
    k0_bytes: bytes
    k0: SecretKey
    signer: Ed25519PrivateKey

    @property
    def public(self) -> keycell.Ed25519PublicKey:
        return self.signer.public_key()

    def verify(self, **kw: Any) -> keycell.audit.VerifyResult:
        return keycell.audit.verify(self.path, key=self.k0, public_key=self.public, **kw)


def make_log(
    directory: Path,
    n: int = 30,
    *,
    epoch_records: int = 7,
    checkpoint: bool = True,
    after: int = 0,
    name: str = "audit.log",
    k0_bytes: bytes | None = None,
    origin: str = "test.example/audit",
) -> Log:
    """A log with ``n`` events, a checkpoint over them (optional) and ``after`` more."""
    k0_bytes = k0_bytes if k0_bytes is not None else os.urandom(32)
    k0 = SecretKey.from_buffer(k0_bytes)
    signer = Ed25519PrivateKey.generate()
    path = directory / name
    with AuditLog.create(
        path, key=k0, signer=signer, origin=origin, epoch_records=epoch_records
    ) as log:
        for i in range(n):
            log.append({"i": i, "op": "sign", "text": f"event {i}"})
        if checkpoint:
            log.checkpoint()
        for i in range(after):
            log.append({"i": n + i, "after": True})
    return Log(path, k0_bytes, k0, signer)


def events(path: Path) -> list[Any]:
    """The ``event`` values of a log, decoded (internal records skipped)."""
    out = []
    for line in read_lines(path):
        m = RECORD.match(line)
        assert m, line
        if m.group(4) == b"event":
            out.append(json.loads(parse(line).body))
    return out
