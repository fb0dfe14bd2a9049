"""Writing OpenSSH private key files: ``to_file(path, format="openssh", passphrase=...)`` of
``Ed25519PrivateKey``, ``ECPrivateKey`` (P-256, P-384) and ``RSAPrivateKey``.

- ``ssh-keygen -y -f FILE -P PASS`` reads an encrypted file keycell wrote (and refuses a
  wrong passphrase), ``ssh-keygen -y -f FILE`` an unencrypted one; pyca reads both (an
  encrypted one after ``ssh-keygen -p`` decrypted it); keycell
  reads them back as the same key; the header names ``aes256-ctr`` and ``bcrypt`` with 16
  rounds, as ``ssh-keygen`` writes.
- The passphrase ``bytearray`` is wiped; refusals are typed: a passphrase with another
  format, a ``bytes`` passphrase, X25519 keys, ``traditional=True`` with ``"openssh"``, a
  sealed key.
- A memory scan of a child that writes encrypted files of each type finds the key
  components only in locked, dump-excluded memory, the passphrase nowhere, and nothing
  after ``destroy()``.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed25519
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from keycell import (
    ECPrivateKey,
    Ed25519PrivateKey,
    KeyFileError,
    KeyNotExportableError,
    Passphrase,
    RSAPrivateKey,
    X25519PrivateKey,
)
from memscan import Hit, PhasedChild, scan_process, summarize

NEEDS_SSH_KEYGEN = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed"
)
PASS = b"correct horse battery"

MAKERS: dict[str, Callable[[], Any]] = {
    "ed25519": Ed25519PrivateKey.generate,
    "p256": lambda: ECPrivateKey.generate("P-256"),
    "p384": lambda: ECPrivateKey.generate("P-384"),
    "rsa": lambda: RSAPrivateKey.generate(2048),
}
CLASSES = {
    "ed25519": Ed25519PrivateKey,
    "p256": ECPrivateKey,
    "p384": ECPrivateKey,
    "rsa": RSAPrivateKey,
}


def ssh_keygen_public(path: Path, passphrase: bytes | None) -> subprocess.CompletedProcess[str]:
    args = ["ssh-keygen", "-y", "-f", str(path), "-P", (passphrase or b"").decode()]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def decrypted(path: Path, passphrase: bytes, out: Path) -> bytes:
    """The file as ``ssh-keygen -p`` decrypts it (pyca needs the ``bcrypt`` module for
    encrypted files, which the tests do not install)."""
    shutil.copyfile(path, out)
    out.chmod(0o600)
    r = subprocess.run(
        ["ssh-keygen", "-q", "-p", "-f", str(out), "-P", passphrase.decode(), "-N", ""],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    out.unlink()
    return data


def header(path: Path) -> tuple[bytes, bytes, bytes]:
    """(cipher, kdf, kdf options) of an OpenSSH private key file."""
    lines = path.read_text().splitlines()
    assert lines[0] == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert lines[-1] == "-----END OPENSSH PRIVATE KEY-----"
    assert all(len(line) <= 70 for line in lines[1:-1])
    data = base64.b64decode("".join(lines[1:-1]))
    assert data.startswith(b"openssh-key-v1\0")
    pos = 15
    out = []
    for _ in range(3):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out[0], out[1], out[2]


@NEEDS_SSH_KEYGEN
@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_ssh_keygen_pyca_and_keycell_read_what_keycell_wrote(
    tmp_path: Path, kind: str, encrypted: bool
) -> None:
    with MAKERS[kind]() as key:
        line = key.public_key().to_openssh()
        path = tmp_path / f"id_{kind}"
        passphrase = bytearray(PASS) if encrypted else None
        key.to_file(path, format="openssh", passphrase=passphrase)
        if passphrase is not None:
            assert passphrase == bytearray(len(PASS)), "the passphrase buffer is wiped"
        assert path.stat().st_mode & 0o777 == 0o600
        cipher, kdf, options = header(path)
        if encrypted:
            assert (cipher, kdf) == (b"aes256-ctr", b"bcrypt")
            (salt_len,) = struct.unpack(">I", options[:4])
            assert salt_len == 16
            assert struct.unpack(">I", options[4 + salt_len :]) == (16,)
        else:
            assert (cipher, kdf, options) == (b"none", b"none", b"")
        # ssh-keygen reads it, with the passphrase only.
        r = ssh_keygen_public(path, PASS if encrypted else None)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[:2] == line.split()[:2]
        if encrypted:
            assert ssh_keygen_public(path, b"wrong horse").returncode != 0
        # pyca reads it (decrypted by ssh-keygen first).
        plain = decrypted(path, PASS, tmp_path / "plain") if encrypted else path.read_bytes()
        pyca = serialization.load_ssh_private_key(plain, password=None)
        pyca_line = pyca.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        assert pyca_line.decode() == line
        # keycell reads it back as the same key.
        again = bytearray(PASS) if encrypted else None
        with CLASSES[kind].from_file(path, passphrase=again) as back:
            assert back.public_key() == key.public_key()
            sig = back.sign(b"message")
            key.public_key().verify(sig, b"message")


@NEEDS_SSH_KEYGEN
def test_a_passphrase_object_and_ssh_keygen_rewrites(tmp_path: Path) -> None:
    """A ``Passphrase`` read from a file works too (and stays usable); ``ssh-keygen -p``
    re-encrypts keycell's file, which keycell then reads with the new passphrase."""
    pfile = tmp_path / "pass"
    fd = os.open(pfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PASS + b"\n")
    os.close(fd)
    with Passphrase.from_file(pfile) as p, RSAPrivateKey.generate(2048) as key:
        path = tmp_path / "id_rsa"
        key.to_file(path, format="openssh", passphrase=p)
        key.to_file(tmp_path / "again", format="openssh", passphrase=p)
        r = subprocess.run(
            ["ssh-keygen", "-q", "-p", "-f", str(path), "-P", PASS.decode(), "-N", "new pass"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        with RSAPrivateKey.from_file(path, passphrase=bytearray(b"new pass")) as back:
            assert back.public_key() == key.public_key()


def test_refusals_are_typed(tmp_path: Path) -> None:
    with Ed25519PrivateKey.generate() as ed, RSAPrivateKey.generate(2048) as rsa:
        for key in (ed, rsa):
            buf = bytearray(PASS)
            with pytest.raises(ValueError, match='passphrase is only for format="openssh"'):
                key.to_file(tmp_path / "k.pem", format="pem", passphrase=buf)
            assert not (tmp_path / "k.pem").exists()
            with pytest.raises(TypeError, match="cannot be wiped"):
                key.to_file(tmp_path / "k", format="openssh", passphrase=bytes(PASS))
            with pytest.raises(ValueError, match="empty"):
                key.to_file(tmp_path / "k", format="openssh", passphrase=bytearray())
        with pytest.raises(ValueError, match="traditional"):
            rsa.to_file(tmp_path / "k", format="openssh", traditional=True)
        with pytest.raises(ValueError, match="format must be"):
            rsa.to_file(tmp_path / "k", format="hex")
    with X25519PrivateKey.generate() as x:
        with pytest.raises(ValueError, match="not available for x25519"):
            x.to_file(tmp_path / "x", format="openssh", passphrase=bytearray(PASS))
    with ECPrivateKey.generate("P-256", exportable=False) as sealed:
        with pytest.raises(KeyNotExportableError):
            sealed.to_file(tmp_path / "s", format="openssh", passphrase=bytearray(PASS))
    with RSAPrivateKey.generate(2048, exportable=False) as sealed_rsa:
        with pytest.raises(KeyNotExportableError):
            sealed_rsa.to_file(tmp_path / "s", format="openssh", passphrase=bytearray(PASS))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # An existing file is not replaced without overwrite=True.
    with Ed25519PrivateKey.generate() as ed:
        ed.to_file(tmp_path / "k", format="openssh")
        with pytest.raises(KeyFileError, match="already exists"):
            ed.to_file(tmp_path / "k", format="openssh", passphrase=bytearray(PASS))
        ed.to_file(tmp_path / "k", format="openssh", passphrase=bytearray(PASS), overwrite=True)
        assert header(tmp_path / "k")[0] == b"aes256-ctr"


WRITER = """
import gc, sys
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey

keys = [Ed25519PrivateKey.generate(), ECPrivateKey.generate("P-256"), RSAPrivateKey.generate(2048)]
for key, out in zip(keys, sys.argv[2:5]):
    with open(sys.argv[1], "rb", buffering=0) as f:
        passphrase = bytearray(64)
        n = f.readinto(passphrase)
    del passphrase[n:]
    key.to_file(out, format="openssh", passphrase=passphrase)
    assert passphrase == bytearray(n)
gc.collect()
phase("written")
for key in keys:
    key.destroy()
del keys, key
gc.collect()
phase("destroyed")
"""


def _windows(value: int, name: str) -> dict[str, bytes]:
    """32-byte windows from the middle of a private component, big- and little-endian."""
    be = value.to_bytes((value.bit_length() + 7) // 8, "big")
    mid = max(0, len(be) // 2 - 16)
    return {f"{name}.be": be[mid : mid + 32], f"{name}.le": be[::-1][mid : mid + 32]}


@NEEDS_SSH_KEYGEN
@pytest.mark.slow
def test_writing_encrypted_files_leaves_no_key_outside_guarded_memory(tmp_path: Path) -> None:
    passphrase = secrets.token_hex(12).encode()
    pfile = tmp_path / "pass"
    fd = os.open(pfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, passphrase)
    os.close(fd)
    outs = [tmp_path / "ed", tmp_path / "ec", tmp_path / "rsa"]
    with PhasedChild(WRITER, str(pfile), *map(str, outs), timeout=180) as child:
        child.wait_phase("written")
        # The parent learns the keys from the files the child wrote.
        ed, ec, rsa = (
            serialization.load_ssh_private_key(
                decrypted(p, passphrase, tmp_path / "plain"), password=None
            )
            for p in outs
        )
        assert isinstance(ed, pyca_ed25519.Ed25519PrivateKey)
        assert isinstance(ec, pyca_ec.EllipticCurvePrivateKey)
        assert isinstance(rsa, pyca_rsa.RSAPrivateKey)
        d = ec.private_numbers().private_value
        nums = rsa.private_numbers()
        patterns = {
            "Ed25519 seed": ed.private_bytes_raw(),
            "P-256 scalar (big-endian)": d.to_bytes(32, "big"),
            "P-256 scalar (little-endian)": d.to_bytes(32, "little"),
            "passphrase": passphrase,
        }
        for name, value in {
            "d": nums.d, "p": nums.p, "q": nums.q, "dP": nums.dmp1, "dQ": nums.dmq1,
            "qInv": nums.iqmp,
        }.items():  # fmt: skip
            patterns |= _windows(value, name)
        alive = scan_process(child.pid, patterns)
        child.advance()
        child.wait_phase("destroyed")
        after = scan_process(child.pid, patterns)
        rc, _, err = child.finish()
    assert rc == 0, err
    print("alive", {n: len(h) for n, h in alive.items()})
    # The scan sees the keys (their guarded regions).
    assert alive["Ed25519 seed"], summarize(alive)
    assert alive["P-256 scalar (big-endian)"], summarize(alive)
    assert alive["p.le"], summarize(alive)
    hits: list[Hit]
    for name, hits in alive.items():
        for h in hits:
            assert h.locked, f"{name} in unlocked memory:\n{summarize(alive)}"
            assert h.dontdump, f"{name} in dumpable memory:\n{summarize(alive)}"
    assert alive["passphrase"] == [], summarize(alive)
    left = {n: h for n, h in after.items() if h}
    assert not left, summarize(left)
