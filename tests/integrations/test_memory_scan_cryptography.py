"""Memory scan of keys used through the pyca/cryptography adapter and joserfc
(DESIGN.md invariants 1, 4, 10 and 11).

A child loads an Ed25519 key (raw seed), a P-256 key (PKCS#8 PEM) and an RSA key (PKCS#8
PEM) from files the parent wrote, converts each with ``to_cryptography()``, builds a
self-signed certificate and a CSR with pyca's x509 builders, signs a JWT with joserfc
(``keycell.compat.joserfc.import_key``), and keeps an ``Exposure`` of the Ed25519 key's
PKCS#8 encoding (made, never entered) across ``destroy()``. The parent searches the
child's memory for the Ed25519 seed and its expanded secret scalar, the EC scalar, and
32-byte windows of the RSA key's ``d``, ``p`` and ``q`` (both byte orders):

- after the certificates and tokens exist, every copy lies in locked, dump-excluded memory
  (the adapter and the libraries it serves never see a key byte);
- after ``destroy()``, no copy is left anywhere, the kept encoding included.

A ``bytes`` copy of another secret is the positive control.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import pytest
from asym_support import write_key_file
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from memscan import Hit, PhasedChild, scan_process, summarize

pytestmark = pytest.mark.slow

WINDOW = 32

CHILD = """
import datetime, gc, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from joserfc import jwt
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey
from keycell.compat.joserfc import import_key

ed = Ed25519PrivateKey.from_file(sys.argv[1], format="raw")
p256 = ECPrivateKey.from_file(sys.argv[2])
rsa = RSAPrivateKey.from_file(sys.argv[3])
with open(sys.argv[4], "rb") as f:
    control = f.read()               # positive control, kept on purpose
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scan")])
now = datetime.datetime.now(datetime.UTC)
made = []
for key, alg, jose in ((ed, None, "Ed25519"), (p256, hashes.SHA256(), "ES256"),
                       (rsa, hashes.SHA256(), "RS256")):
    adapter = key.to_cryptography()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(adapter.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(adapter, alg))
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(adapter, alg)
    assert csr.is_signature_valid
    token = jwt.encode({"alg": jose}, {"sub": "scan"}, import_key(key), algorithms=[jose])
    made += [cert, csr, token]
# An encoding of the seed made for export and kept: destroy() must wipe it too.
held = ed.expose(format="der")
phase("alive")
for key in (ed, p256, rsa):
    key.destroy()
del key, adapter
gc.collect()
phase("destroyed")
"""


def _windows(prefix: str, value: int) -> dict[str, bytes]:
    be = value.to_bytes((value.bit_length() + 7) // 8, "big")
    mid = len(be) // 2 - WINDOW // 2
    return {f"{prefix}.be": be[mid : mid + WINDOW], f"{prefix}.le": be[::-1][mid : mid + WINDOW]}


def _unlocked(hits: list[Hit]) -> list[Hit]:
    return [h for h in hits if not (h.locked and h.dontdump)]


def test_keys_used_by_x509_and_joserfc_stay_guarded(tmp_path: Path) -> None:
    seed = secrets.token_bytes(32)
    expanded = bytearray(hashlib.sha512(seed).digest()[:32])
    expanded[0] &= 248
    expanded[31] &= 127
    expanded[31] |= 64
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    nope = serialization.NoEncryption()
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    control = secrets.token_bytes(32)
    files = [
        write_key_file(tmp_path / "ed.raw", seed),
        write_key_file(tmp_path / "p256.pem", p256.private_bytes(pem, pkcs8, nope)),
        write_key_file(tmp_path / "rsa.pem", rsa_key.private_bytes(pem, pkcs8, nope)),
        write_key_file(tmp_path / "control", control),
    ]
    d = p256.private_numbers().private_value
    numbers = rsa_key.private_numbers()
    patterns = {
        "control": control,
        "ed25519 seed": seed,
        "ed25519 expanded scalar": bytes(expanded),
        "P-256 scalar": d.to_bytes(32, "big"),
    }
    for name, value in (("rsa.d", numbers.d), ("rsa.p", numbers.p), ("rsa.q", numbers.q)):
        patterns |= _windows(name, value)
    env = dict(os.environ, KEYCELL_ON_LOCK_FAILURE="raise")
    with PhasedChild(CHILD, *map(str, files), timeout=120, env=env) as child:
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
    ours = [n for n in patterns if n != "control"]
    # The scan sees the keys where keycell holds them.
    for name in ("ed25519 seed", "P-256 scalar", "rsa.p.le", "rsa.q.le"):
        assert alive[name], summarize(alive)
    leaks = {n: _unlocked(alive[n]) for n in ours if _unlocked(alive[n])}
    assert not leaks, summarize(leaks)
    left = {n: after[n] for n in ours if after[n]}
    assert not left, summarize(left)
