"""Memory scan of OpenSSH private keys loaded from encrypted files (DESIGN.md invariants 1,
4 and 6).

A child reads the passphrase from a file straight into a ``bytearray`` (``readinto``: no
``bytes`` copy), loads an Ed25519 key and a P-256 key from files ``ssh-keygen`` encrypted
with it (bcrypt-pbkdf with aes256-ctr; the P-256 one with aes256-gcm@openssh.com), and
signs with both. The parent knows the keys from the unencrypted originals (pyca reads
them) and searches the child's memory for the Ed25519 seed, the P-256 scalar (big- and
little-endian, and in ring's Montgomery form) and the passphrase:

- while the keys are alive, every copy of a key lies in locked, dump-excluded memory, and
  the passphrase (wiped from the ``bytearray``, its copy freed) is nowhere;
- after ``destroy()``, no copy of either key is left anywhere.

A ``bytes`` copy of another secret is the positive control.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca_ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed25519
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from memscan import Hit, PhasedChild, scan_process, summarize

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed"),
]

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

CHILD = """
import gc, sys
from keycell import ECPrivateKey, Ed25519PrivateKey

with open(sys.argv[1], "rb", buffering=0) as f:
    passphrase = bytearray(64)
    n = f.readinto(passphrase)
del passphrase[n:]
with open(sys.argv[4], "rb") as f:
    control = f.read()               # positive control, kept on purpose
ed = Ed25519PrivateKey.from_file(sys.argv[2], passphrase=passphrase)
assert passphrase == bytearray(n)
with open(sys.argv[1], "rb", buffering=0) as f:
    passphrase = bytearray(64)
    n = f.readinto(passphrase)
del passphrase[n:]
p256 = ECPrivateKey.from_file(sys.argv[3], passphrase=passphrase)
assert passphrase == bytearray(n)
for k in (ed, p256):
    k.sign(b"message")
gc.collect()
phase("alive")
ed.destroy()
p256.destroy()
gc.collect()
phase("destroyed")
"""


def _keygen(path: Path, *args: str) -> Path:
    r = subprocess.run(
        ["ssh-keygen", "-q", *args, "-N", "", "-f", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def _encrypt(src: Path, dst: Path, passphrase: str, cipher: str) -> Path:
    shutil.copyfile(src, dst)
    dst.chmod(0o600)
    r = subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-Z", cipher, "-f", str(dst)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return dst


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def test_encrypted_openssh_keys_stay_guarded(tmp_path: Path) -> None:
    passphrase = secrets.token_hex(12)
    ed_plain = _keygen(tmp_path / "ed", "-t", "ed25519")
    ec_plain = _keygen(tmp_path / "ec", "-t", "ecdsa", "-b", "256")
    ed_enc = _encrypt(ed_plain, tmp_path / "ed-enc", passphrase, "aes256-ctr")
    ec_enc = _encrypt(ec_plain, tmp_path / "ec-enc", passphrase, "aes256-gcm@openssh.com")
    ed = serialization.load_ssh_private_key(ed_plain.read_bytes(), password=None)
    ec = serialization.load_ssh_private_key(ec_plain.read_bytes(), password=None)
    assert isinstance(ed, pyca_ed25519.Ed25519PrivateKey)
    assert isinstance(ec, pyca_ec.EllipticCurvePrivateKey)
    d = ec.private_numbers().private_value
    control = secrets.token_bytes(32)
    patterns = {
        "control": control,
        "Ed25519 seed": ed.private_bytes_raw(),
        "P-256 scalar (big-endian)": d.to_bytes(32, "big"),
        "P-256 scalar (little-endian)": d.to_bytes(32, "little"),
        "P-256 scalar (Montgomery)": ((d << 256) % P256_ORDER).to_bytes(32, "little"),
        "passphrase": passphrase.encode(),
    }
    ed_plain.unlink()
    ec_plain.unlink()
    pfile = _write_private(tmp_path / "pass", passphrase.encode())
    fc = _write_private(tmp_path / "control", control)
    with PhasedChild(CHILD, str(pfile), str(ed_enc), str(ec_enc), str(fc), timeout=120) as child:
        child.wait_phase("alive")
        alive = scan_process(child.pid, patterns)
        child.advance()
        child.wait_phase("destroyed")
        after = scan_process(child.pid, patterns)
        rc, _, err = child.finish()
    assert rc == 0, err
    print("alive", {n: len(h) for n, h in alive.items()})
    print("after", {n: len(h) for n, h in after.items()})
    assert alive["control"], summarize(alive)
    assert after["control"], summarize(after)
    assert alive["Ed25519 seed"], summarize(alive)
    assert alive["P-256 scalar (big-endian)"], summarize(alive)
    hits: list[Hit]
    for name, hits in alive.items():
        if name in ("control", "passphrase"):
            continue
        for h in hits:
            assert h.locked, f"{name} in unlocked memory:\n{summarize(alive)}"
            assert h.dontdump, f"{name} in dumpable memory:\n{summarize(alive)}"
    assert alive["passphrase"] == [], summarize(alive)
    for name in patterns:
        if name != "control":
            assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"


RSA_CHILD = """
import gc, sys
from keycell import RSAPrivateKey

with open(sys.argv[1], "rb", buffering=0) as f:
    passphrase = bytearray(64)
    n = f.readinto(passphrase)
del passphrase[n:]
key = RSAPrivateKey.from_file(sys.argv[2], passphrase=passphrase)
for padding in ("pss", "pkcs1v15"):
    key.public_key().verify(key.sign(b"m", padding=padding), b"m", padding=padding)
gc.collect()
phase("alive")
key.destroy()
del key
gc.collect()
phase("destroyed")
"""


def _rsa_windows(key: pyca_rsa.RSAPrivateKey) -> dict[str, bytes]:
    """32-byte windows from the middle of each private component, big- and little-endian
    (as tests/crypto/test_memory_scan_rsa.py searches them)."""
    nums = key.private_numbers()
    out = {}
    for name, value in {
        "d": nums.d, "p": nums.p, "q": nums.q, "dP": nums.dmp1, "dQ": nums.dmq1,
        "qInv": nums.iqmp,
    }.items():  # fmt: skip
        be = value.to_bytes((value.bit_length() + 7) // 8, "big")
        mid = len(be) // 2 - 16
        out[f"{name}.be"] = be[mid : mid + 32]
        out[f"{name}.le"] = be[::-1][mid : mid + 32]
    return out


def test_rsa_key_from_an_encrypted_openssh_file_stays_guarded(tmp_path: Path) -> None:
    passphrase = secrets.token_hex(12)
    plain = _keygen(tmp_path / "rsa", "-t", "rsa", "-b", "2048")
    enc = _encrypt(plain, tmp_path / "rsa-enc", passphrase, "aes256-ctr")
    reference = serialization.load_ssh_private_key(plain.read_bytes(), password=None)
    assert isinstance(reference, pyca_rsa.RSAPrivateKey)
    plain.unlink()
    patterns = _rsa_windows(reference) | {"passphrase": passphrase.encode()}
    pfile = _write_private(tmp_path / "pass", passphrase.encode())
    with PhasedChild(RSA_CHILD, str(pfile), str(enc), timeout=120) as child:
        child.wait_phase("alive")
        alive = scan_process(child.pid, patterns)
        child.advance()
        child.wait_phase("destroyed")
        after = scan_process(child.pid, patterns)
        rc, _, err = child.finish()
    assert rc == 0, err
    print("alive", {n: len(h) for n, h in alive.items()})
    # The scan sees the key (ring's limbs of p and q in the secret heap, the DER).
    assert alive["p.le"], summarize(alive)
    assert alive["d.be"], summarize(alive)
    for name, hits in alive.items():
        for h in hits:
            assert h.locked, f"{name} in unlocked memory:\n{summarize(alive)}"
            assert h.dontdump, f"{name} in dumpable memory:\n{summarize(alive)}"
    assert alive["passphrase"] == [], summarize(alive)
    left = {n: h for n, h in after.items() if h}
    assert not left, summarize(left)
