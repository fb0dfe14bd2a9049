"""OpenSSH keys: private key files made by ``ssh-keygen`` (Ed25519, ECDSA P-256/P-384,
unencrypted and with a passphrase: bcrypt-pbkdf with aes256-ctr, the default, or
aes256-gcm@openssh.com) load through ``from_file`` (detected or ``format="openssh"``) and
``from_openssh``, and sign verifiably (pyca/cryptography and ``ssh-keygen -Y verify``);
``to_file(format="openssh")`` writes files ``ssh-keygen -y`` reads; public key lines round
trip with ``ssh-keygen``'s; bad input (wrong or missing passphrase, truncated files,
unsupported ciphers, another key type) gets typed errors that carry no secret bytes."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed25519
from cryptography.hazmat.primitives.asymmetric import padding as pyca_pad
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from keycell import (
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyFileError,
    Passphrase,
    RSAPrivateKey,
    RSAPublicKey,
    X25519PrivateKey,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed (openssh-client)"
)

PASSPHRASE = b"correct horse battery"


@dataclass(frozen=True)
class SshType:
    """One OpenSSH key type: ssh-keygen's arguments and keycell's classes."""

    name: str
    keygen: tuple[str, ...]
    cls: Any
    public_cls: Any
    curve: str | None


TYPES = [
    SshType("ed25519", ("-t", "ed25519"), Ed25519PrivateKey, Ed25519PublicKey, None),
    SshType("ecdsa-p256", ("-t", "ecdsa", "-b", "256"), ECPrivateKey, ECPublicKey, "P-256"),
    SshType("ecdsa-p384", ("-t", "ecdsa", "-b", "384"), ECPrivateKey, ECPublicKey, "P-384"),
]
IDS = [t.name for t in TYPES]


def keygen(path: Path, t: SshType, *extra: str, passphrase: bytes = b"") -> Path:
    """``ssh-keygen`` a key of type ``t`` at ``path`` (and ``path.pub``)."""
    r = subprocess.run(
        ["ssh-keygen", "-q", *t.keygen, "-N", passphrase.decode(), "-C", "test@keycell",
         *extra, "-f", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def encrypt_copy(src: Path, dst: Path, *extra: str) -> Path:
    """A copy of the unencrypted key ``src`` at ``dst``, encrypted by ``ssh-keygen -p``."""
    shutil.copyfile(src, dst)
    dst.chmod(0o600)
    r = subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", PASSPHRASE.decode(), *extra, "-f", str(dst)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return dst


def pyca_key(path: Path) -> Any:
    """pyca's reading of an unencrypted OpenSSH private key."""
    return serialization.load_ssh_private_key(path.read_bytes(), password=None)


def verify_with_pyca(t: SshType, pyca_private: Any, sig: bytes, msg: bytes) -> None:
    """Verify keycell's signature with pyca's copy of the key (raises if it fails)."""
    if t.curve is None:
        pyca_private.public_key().verify(sig, msg)
    else:
        h = hashes.SHA256() if t.curve == "P-256" else hashes.SHA384()
        pyca_private.public_key().verify(sig, msg, pyca_ec.ECDSA(h))


def body(path: Path) -> bytes:
    """The decoded base64 body of an OpenSSH private key file."""
    return base64.b64decode(b"".join(path.read_bytes().splitlines()[1:-1]))


@pytest.mark.parametrize("t", TYPES, ids=IDS)
@pytest.mark.parametrize("cipher", [None, "aes256-ctr", "aes256-gcm@openssh.com"])
def test_ssh_keygen_keys_load_and_sign(tmp_path: Path, t: SshType, cipher: str | None) -> None:
    plain = keygen(tmp_path / "id", t)
    reference = pyca_key(plain)
    path = plain
    if cipher is not None:
        path = encrypt_copy(plain, tmp_path / "id-enc", "-Z", cipher)
        assert cipher.encode() in body(path)
        assert b"bcrypt" in body(path)
    passphrase = bytearray(PASSPHRASE) if cipher else None
    key = t.cls.from_file(path, passphrase=passphrase)
    if passphrase is not None:
        assert passphrase == bytearray(len(PASSPHRASE)), "the passphrase buffer is wiped"
    line = (tmp_path / "id.pub").read_text().split()
    assert key.public_key().to_openssh() == " ".join(line[:2])
    assert key.public_key() == t.public_cls.from_openssh(" ".join(line))
    msg = b"signed by a key ssh-keygen made"
    verify_with_pyca(t, reference, key.sign(msg), msg)
    if t.curve is not None:
        assert key.curve == t.curve
    # The same key through from_openssh and format="openssh".
    again = t.cls.from_openssh(
        bytearray(path.read_bytes()),
        passphrase=bytearray(PASSPHRASE) if cipher else None,
    )
    assert again.public_key() == key.public_key()
    third = t.cls.from_file(
        path,
        format="openssh",
        passphrase=bytearray(PASSPHRASE) if cipher else None,
    )
    assert third.public_key() == key.public_key()
    for k in (key, again, third):
        k.destroy()


@pytest.mark.parametrize("t", TYPES, ids=IDS)
def test_passphrase_object_and_refusals(tmp_path: Path, t: SshType) -> None:
    plain = keygen(tmp_path / "id", t)
    path = encrypt_copy(plain, tmp_path / "id-enc")
    pfile = tmp_path / "pass"
    pfile.write_bytes(PASSPHRASE + b"\n")
    pfile.chmod(0o600)
    with Passphrase.from_file(pfile) as p:
        with t.cls.from_file(path, passphrase=p) as key:
            assert key.public_key() == t.cls.from_file(plain).public_key()
    # Wrong passphrase: a typed keycell error that names the problem, not the passphrase.
    with pytest.raises(KeyFileError, match="wrong passphrase") as e:
        t.cls.from_file(path, passphrase=bytearray(b"wrong horse battery"))
    assert "wrong horse" not in str(e.value)
    with pytest.raises(ValueError, match="wrong passphrase"):
        t.cls.from_openssh(path.read_bytes(), passphrase=bytearray(b"nope"))
    with pytest.raises(KeyFileError, match="encrypted: pass its passphrase"):
        t.cls.from_file(path)
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase was given"):
        t.cls.from_file(plain, passphrase=bytearray(PASSPHRASE))
    # A bytes or str passphrase cannot be wiped: refused.
    for bad in (PASSPHRASE, PASSPHRASE.decode()):
        with pytest.raises(TypeError, match="cannot be wiped"):
            t.cls.from_file(path, passphrase=bad)
    with pytest.raises(ValueError, match="empty"):
        t.cls.from_file(path, passphrase=bytearray())


@pytest.mark.parametrize("t", TYPES, ids=IDS)
def test_to_file_openssh_is_read_by_ssh_keygen(tmp_path: Path, t: SshType) -> None:
    key = t.cls.generate() if t.curve is None else t.cls.generate(t.curve)
    out = tmp_path / "written"
    key.to_file(out, format="openssh")
    assert out.stat().st_mode & 0o777 == 0o600
    r = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(out)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == key.public_key().to_openssh().split()
    assert t.cls.from_file(out).public_key() == key.public_key()
    # pyca reads it as the same key.
    theirs = pyca_key(out)
    msg = b"written by keycell"
    verify_with_pyca(t, theirs, key.sign(msg), msg)
    key.destroy()


def test_public_lines_round_trip_and_refusals() -> None:
    ed = Ed25519PrivateKey.generate().public_key()
    ec = ECPrivateKey.generate("P-384").public_key()
    for pub, cls in ((ed, Ed25519PublicKey), (ec, ECPublicKey)):
        line = pub.to_openssh("me@host")
        assert line.endswith(" me@host")
        assert cls.from_openssh(line) == pub
        assert cls.from_openssh(line.encode() + b"\n") == pub
        assert pub.to_openssh() == line.rsplit(" ", 1)[0]
        with pytest.raises(ValueError, match="line break"):
            pub.to_openssh("a\nb")
    # pyca writes the same lines.
    assert (
        ed.to_openssh()
        == pyca_ed25519.Ed25519PublicKey.from_public_bytes(ed.public_bytes_raw())
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with pytest.raises(ValueError, match="not an ECDSA key"):
        ECPublicKey.from_openssh(ed.to_openssh())
    with pytest.raises(ValueError, match="not an Ed25519 key"):
        Ed25519PublicKey.from_openssh(ec.to_openssh())
    with pytest.raises(ValueError, match="does not match"):
        ECPublicKey.from_openssh(ec.to_openssh().replace("nistp384", "nistp256", 1))
    with pytest.raises(ValueError, match="base64"):
        Ed25519PublicKey.from_openssh("ssh-ed25519 !!!!")
    with pytest.raises(ValueError, match="ssh-dss keys are not supported"):
        ECPublicKey.from_openssh("ssh-dss AAAAB3NzaC1kc3M=")


def test_malformed_and_unsupported_files(tmp_path: Path) -> None:
    t = TYPES[1]
    plain = keygen(tmp_path / "id", t)
    data = plain.read_bytes()
    lines = data.splitlines(keepends=True)
    bad = tmp_path / "bad"
    # Truncated (whole lines dropped from the body, the armor kept).
    for n in range(2, len(lines) - 1):
        bad.write_bytes(b"".join(lines[:n] + lines[-1:]))
        bad.chmod(0o600)
        with pytest.raises(KeyFileError):
            ECPrivateKey.from_file(bad)
    # A cipher keycell does not read.
    chacha = encrypt_copy(plain, tmp_path / "chacha", "-Z", "chacha20-poly1305@openssh.com")
    with pytest.raises(KeyFileError, match=re.escape("chacha20-poly1305@openssh.com")):
        ECPrivateKey.from_file(chacha, passphrase=bytearray(PASSPHRASE))
    # Another key type.
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        Ed25519PrivateKey.from_file(plain)
    with pytest.raises(KeyFileError, match="not a P-384 key"):
        ECPrivateKey.from_file(plain, curve="P-384")
    with pytest.raises(KeyFileError, match="OpenSSH private key file"):
        X25519PrivateKey.from_file(plain)
    with pytest.raises(ValueError, match="not available for x25519"):
        X25519PrivateKey.from_file(plain, format="openssh")
    # A passphrase with another format.
    pem = tmp_path / "pem"
    with ECPrivateKey.generate() as k:
        k.to_file(pem)
    with pytest.raises(KeyFileError, match="only encrypted OpenSSH key files"):
        ECPrivateKey.from_file(pem, passphrase=bytearray(PASSPHRASE))
    # An RSA key file read as an EC key.
    rsa = keygen(tmp_path / "rsa", RSA)
    with pytest.raises(KeyFileError, match="ssh-rsa key, not an EC key"):
        ECPrivateKey.from_file(rsa)
    with pytest.raises(KeyFileError, match="ssh-rsa key, not an Ed25519 key"):
        Ed25519PrivateKey.from_file(rsa)
    with pytest.raises(KeyFileError, match="ecdsa-sha2-nistp256 key, not an RSA key"):
        RSAPrivateKey.from_file(plain)


RSA = SshType("rsa", ("-t", "rsa", "-b", "3072"), None, None, None)


@pytest.mark.parametrize("cipher", [None, "aes256-ctr", "aes256-gcm@openssh.com"])
def test_ssh_keygen_rsa_keys_load_and_sign(tmp_path: Path, cipher: str | None) -> None:
    plain = keygen(tmp_path / "id", RSA)
    reference = pyca_key(plain)
    path = plain if cipher is None else encrypt_copy(plain, tmp_path / "enc", "-Z", cipher)
    passphrase = bytearray(PASSPHRASE) if cipher else None
    key = RSAPrivateKey.from_file(path, passphrase=passphrase)
    if passphrase is not None:
        assert passphrase == bytearray(len(PASSPHRASE))
    assert key.key_size == 3072
    line = (tmp_path / "id.pub").read_text().split()
    assert key.public_key().to_openssh() == " ".join(line[:2])
    assert RSAPublicKey.from_openssh(" ".join(line)) == key.public_key()
    msg = b"signed by an RSA key ssh-keygen made"
    pss = pyca_pad.PSS(pyca_pad.MGF1(hashes.SHA256()), pyca_pad.PSS.DIGEST_LENGTH)
    for padding, pyca_padding in (("pss", pss), ("pkcs1v15", pyca_pad.PKCS1v15())):
        sig = key.sign(msg, padding=padding, hash="sha256")
        reference.public_key().verify(sig, msg, pyca_padding, hashes.SHA256())
    again = RSAPrivateKey.from_openssh(
        bytearray(path.read_bytes()), passphrase=bytearray(PASSPHRASE) if cipher else None
    )
    assert again.public_key() == key.public_key()
    if cipher is not None:
        with pytest.raises(KeyFileError, match="wrong passphrase"):
            RSAPrivateKey.from_file(path, passphrase=bytearray(b"wrong"))
        with pytest.raises(ValueError, match="wrong passphrase"):
            RSAPrivateKey.from_openssh(path.read_bytes(), passphrase=bytearray(b"wrong"))
    for k in (key, again):
        k.destroy()


def test_pyca_written_openssh_keys_load() -> None:
    """pyca/cryptography's OpenSSH writer (its padding differs from ssh-keygen's: a whole
    block when the section is aligned) is read for every key type."""
    pyca_keys: list[tuple[Any, Any]] = [
        (pyca_ed25519.Ed25519PrivateKey.generate(), Ed25519PrivateKey),
        (pyca_ec.generate_private_key(pyca_ec.SECP256R1()), ECPrivateKey),
        (pyca_ec.generate_private_key(pyca_ec.SECP384R1()), ECPrivateKey),
        (pyca_rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAPrivateKey),
    ]
    for _ in range(8):  # several keys of each type: the scalar's length varies the padding
        for pkey, cls in pyca_keys:
            data = pkey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            ours = cls.from_openssh(bytearray(data))
            theirs = pkey.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            assert ours.public_key().to_openssh() == theirs.decode()
            ours.destroy()
        pyca_keys = [(type_new(p), c) for p, c in pyca_keys]


def type_new(pkey: Any) -> Any:
    """A new pyca key of the same type as ``pkey``."""
    if isinstance(pkey, pyca_ed25519.Ed25519PrivateKey):
        return pyca_ed25519.Ed25519PrivateKey.generate()
    if isinstance(pkey, pyca_ec.EllipticCurvePrivateKey):
        return pyca_ec.generate_private_key(pkey.curve)
    return pkey  # RSA: one key (generation is slow)
