"""Memory scan of EC private keys (DESIGN.md invariants 1, 4, 6 and 10).

A child loads a P-256 key and a P-384 key from files the parent wrote (PKCS#8 and the
traditional SEC1 form), generates one key of each curve (and writes it with ``to_file``,
encoded in guarded memory, so that the parent learns the scalar), signs with every key in
both encodings, runs ECDH with each loaded key (the shared secrets stay ``SecretKey``s),
and wraps and unwraps each loaded key (``wrap_key``: the scalar is encrypted from guarded
memory and decrypted into a new key's region). The parent searches the child's memory for
each private scalar in big-endian and little-endian byte order, the scalar in the
Montgomery form ring keeps (``d * 2^(64 * limbs) mod n``, little-endian limbs), and the
shared secrets:

- while the keys are alive, every copy lies in locked, dump-excluded memory;
- after ``destroy()`` of every key and shared secret, no copy is left anywhere.

A ``bytes`` copy of another secret is the positive control.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca
from memscan import Hit, PhasedChild, scan_process, summarize

pytestmark = pytest.mark.slow

ORDER = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
}
WIDTH = {"P-256": 32, "P-384": 48}
PYCA = {"P-256": pyca.SECP256R1(), "P-384": pyca.SECP384R1()}

CHILD = """
import gc, sys
from keycell import ECPrivateKey, ECPublicKey, SecretKey, unwrap_key, wrap_key

a256 = ECPrivateKey.from_file(sys.argv[1])
a384 = ECPrivateKey.from_file(sys.argv[2])
with open(sys.argv[3], "rb") as f:
    control = f.read()               # positive control, kept on purpose
g256 = ECPrivateKey.generate("P-256")
g384 = ECPrivateKey.generate("P-384")
g256.to_file(sys.argv[4])
g384.to_file(sys.argv[5])
phase("generated")
peer256 = ECPublicKey.from_pem(open(sys.argv[6], "rb").read())
peer384 = ECPublicKey.from_pem(open(sys.argv[7], "rb").read())
keys = [a256, a384, g256, g384]
for k in keys:
    for msg in (b"short", b"m" * 5000):
        for enc in ("der", "raw"):
            k.public_key().verify(k.sign(msg, encoding=enc), msg, encoding=enc)
s256 = a256.exchange(peer256)
s384 = a384.exchange(peer384)
kek = SecretKey.generate(32)
unwrapped = [unwrap_key(kek, wrap_key(kek, k)) for k in (a256, a384)]
for u in unwrapped:
    u.public_key().verify(u.sign(b"unwrapped"), b"unwrapped")
phase("alive")
for k in keys + unwrapped + [s256, s384, kek]:
    k.destroy()
del keys
gc.collect()
phase("destroyed")
"""


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _scalar_patterns(name: str, curve: str, d: int) -> dict[str, bytes]:
    width = WIDTH[curve]
    mont = (d << (8 * width)) % ORDER[curve]
    return {
        f"{name} scalar (big-endian)": d.to_bytes(width, "big"),
        f"{name} scalar (little-endian)": d.to_bytes(width, "little"),
        f"{name} scalar (Montgomery, little-endian limbs)": mont.to_bytes(width, "little"),
    }


def _assert_alive_only_locked(alive: dict[str, list[Hit]], names: list[str]) -> None:
    for name in names:
        for h in alive[name]:
            assert h.locked, f"{name} found in unlocked memory:\n{summarize(alive)}"
            assert h.dontdump, f"{name} found in dumpable memory:\n{summarize(alive)}"


def test_ec_keys_and_shared_secrets_stay_guarded(tmp_path: Path) -> None:
    a256 = pyca.generate_private_key(PYCA["P-256"])
    a384 = pyca.generate_private_key(PYCA["P-384"])
    p256 = pyca.generate_private_key(PYCA["P-256"])
    p384 = pyca.generate_private_key(PYCA["P-384"])
    f256 = _write_private(
        tmp_path / "a256.pem",
        a256.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    f384 = _write_private(
        tmp_path / "a384.der",
        a384.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    control = secrets.token_bytes(32)
    fc = _write_private(tmp_path / "control", control)
    peers = []
    for name, peer in (("peer256.pem", p256), ("peer384.pem", p384)):
        path = tmp_path / name
        path.write_bytes(
            peer.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        peers.append(str(path))
    g_paths = [tmp_path / "g256.pem", tmp_path / "g384.pem"]
    args = [str(f256), str(f384), str(fc), *map(str, g_paths), *peers]
    patterns: dict[str, bytes] = {"control": control}
    patterns |= _scalar_patterns("loaded P-256", "P-256", a256.private_numbers().private_value)
    patterns |= _scalar_patterns("loaded P-384", "P-384", a384.private_numbers().private_value)
    patterns["P-256 shared secret"] = p256.exchange(pyca.ECDH(), a256.public_key())
    patterns["P-384 shared secret"] = p384.exchange(pyca.ECDH(), a384.public_key())

    with PhasedChild(CHILD, *args, timeout=120) as child:
        child.wait_phase("generated")
        for curve, path in zip(("P-256", "P-384"), g_paths, strict=True):
            g = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(g, pyca.EllipticCurvePrivateKey)
            patterns |= _scalar_patterns(
                f"generated {curve}", curve, g.private_numbers().private_value
            )
        child.advance()
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
    names = [n for n in patterns if n != "control"]
    # The scalars are held (big-endian in keycell's region, Montgomery form in ring's).
    for label in ("loaded P-256", "loaded P-384", "generated P-256", "generated P-384"):
        assert alive[f"{label} scalar (big-endian)"], summarize(alive)
    _assert_alive_only_locked(alive, names)
    for name in names:
        assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"
