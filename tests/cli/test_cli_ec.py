"""EC keys on the command line: ``keycell keygen ec --curve``, ``keycell pubkey`` (hex,
PEM, JWK) checked against pyca, ``keycell store put --key-file ec.pem`` (PKCS#8 and
openssl's SEC1) and ``--generate ec``."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from asym_support import needs_openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from keycell import ECPrivateKey, KeyStore, SecretKey
from support import run_cli

PYCA_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


def b64url_int(text: str, width: int) -> int:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert len(raw) == width
    assert "=" not in text
    return int.from_bytes(raw)


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_keygen_ec_and_pubkey(tmp_path: Path, curve: str) -> None:
    path = tmp_path / "ec.pem"
    r = run_cli("keygen", "ec", "--curve", curve, "-o", path)
    assert r.returncode == 0, r.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(theirs, ec.EllipticCurvePrivateKey)
    assert isinstance(theirs.curve, PYCA_CURVES[curve])
    pub = theirs.public_key()
    r = run_cli("pubkey", path)
    assert r.returncode == 0, r.stderr
    point = pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert r.stdout == point.hex() + "\n"
    r = run_cli("pubkey", path, "--pem")
    spki = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (r.returncode, r.stdout) == (0, spki.decode())
    r = run_cli("pubkey", path, "--jwk")
    assert r.returncode == 0, r.stderr
    jwk = json.loads(r.stdout)
    assert sorted(jwk) == ["crv", "kty", "x", "y"]
    assert (jwk["kty"], jwk["crv"]) == ("EC", curve)
    width = theirs.curve.key_size // 8
    numbers = pub.public_numbers()
    assert b64url_int(jwk["x"], width) == numbers.x
    assert b64url_int(jwk["y"], width) == numbers.y
    # One line, members sorted, no whitespace: the RFC 7638 thumbprint input.
    assert r.stdout == json.dumps(jwk, separators=(",", ":"), sort_keys=True) + "\n"
    # DER key files too, with --type or detected.
    der = tmp_path / "ec.der"
    assert run_cli("keygen", "ec", "--curve", curve, "-o", der, "--format", "der").returncode == 0
    assert der.read_bytes()[0] == 0x30
    for extra in ([], ["--type", "ec"], ["--format", "der"]):
        r = run_cli("pubkey", der, *extra)
        assert r.returncode == 0, (extra, r.stderr)
        assert r.stdout == ECPrivateKey.from_file(der).public_key().public_bytes_x962().hex() + "\n"


def test_keygen_ec_defaults_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    assert run_cli("keygen", "ec", "-o", path).returncode == 0
    assert ECPrivateKey.from_file(path).curve == "P-256"
    r = run_cli("keygen", "ec", "-o", tmp_path / "raw", "--format", "raw")
    assert r.returncode == 2
    assert "an EC key file is PKCS#8 or OpenSSH: --format pem, der or openssh" in r.stderr
    r = run_cli("keygen", "ed25519", "-o", tmp_path / "ed", "--curve", "P-256")
    assert r.returncode == 2
    assert "--curve is for ec keys" in r.stderr
    r = run_cli("keygen", "ec", "-o", tmp_path / "len", "--length", "32")
    assert r.returncode == 1
    assert "--length does not apply" in r.stderr
    r = run_cli("keygen", "ec", "-o", tmp_path / "p521", "--curve", "P-521")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    for p in ("raw", "ed", "len", "p521"):
        assert not (tmp_path / p).exists()
    # An existing file is never replaced without --force.
    before = path.read_bytes()
    assert run_cli("keygen", "ec", "-o", path).returncode == 1
    assert path.read_bytes() == before


def test_pubkey_jwk_of_okp_keys(tmp_path: Path) -> None:
    # RFC 8037: Ed25519 and X25519 public keys as OKP JWKs.
    path = tmp_path / "ed.pem"
    assert run_cli("keygen", "ed25519", "-o", path).returncode == 0
    theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(theirs, ed25519.Ed25519PrivateKey)
    r = run_cli("pubkey", path, "--jwk")
    assert r.returncode == 0, r.stderr
    jwk = json.loads(r.stdout)
    raw = theirs.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert jwk == {
        "crv": "Ed25519",
        "kty": "OKP",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }
    x = tmp_path / "x.pem"
    assert run_cli("keygen", "x25519", "-o", x).returncode == 0
    r = run_cli("pubkey", x, "--jwk")
    assert (r.returncode, json.loads(r.stdout)["crv"]) == (0, "X25519")
    r = run_cli("pubkey", path, "--jwk", "--pem")
    assert r.returncode == 2
    assert "not allowed with" in r.stderr


@needs_openssl
def test_store_put_ec_key_files(tmp_path: Path) -> None:
    master = tmp_path / "master.key"
    assert run_cli("keygen", "secret", "-o", master).returncode == 0
    store = tmp_path / "keys.kcs"
    m = ["--master-key-file", master]
    assert run_cli("store", "init", store, *m).returncode == 0
    # openssl ecparam -genkey: SEC1 "EC PRIVATE KEY" after an "EC PARAMETERS" block.
    sec1 = tmp_path / "sec1.pem"
    subprocess.run(
        ["openssl", "ecparam", "-name", "secp384r1", "-genkey", "-out", str(sec1)], check=True
    )
    sec1.chmod(0o600)
    assert b"BEGIN EC PRIVATE KEY" in sec1.read_bytes()
    pkcs8 = tmp_path / "pkcs8.pem"
    assert run_cli("keygen", "ec", "-o", pkcs8).returncode == 0
    for name, path, extra in (
        ("sec1", sec1, []),
        ("pkcs8", pkcs8, []),
        ("typed", pkcs8, ["--type", "ec"]),
    ):
        r = run_cli("store", "put", store, name, "--key-file", path, *extra, *m)
        assert r.returncode == 0, (name, r.stderr)
    r = run_cli("store", "put", store, "gen", "--generate", "ec", "--curve", "P-384", *m)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "put", store, "gen256", "--generate", "ec", *m)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "put", store, "x", "--key-file", pkcs8, "--curve", "P-384", *m)
    assert r.returncode == 2
    assert "--curve is for --generate ec" in r.stderr
    r = run_cli("store", "put", store, "y", "--generate", "ed25519", "--curve", "P-384", *m)
    assert r.returncode == 2
    with SecretKey.from_file(master) as mk, KeyStore.open(store, master=mk) as opened:
        got = {n: opened.get(n) for n in ("sec1", "pkcs8", "typed", "gen", "gen256")}
        assert "x" not in opened.names()
        assert "y" not in opened.names()
    for k in got.values():
        assert isinstance(k, ECPrivateKey)
    assert [got[n].curve for n in ("sec1", "pkcs8", "gen", "gen256")] == [
        "P-384",
        "P-256",
        "P-384",
        "P-256",
    ]
    assert got["sec1"].public_key() == ECPrivateKey.from_file(sec1).public_key()
    assert got["pkcs8"].public_key() == got["typed"].public_key()
    # store get writes PKCS#8 PEM; openssl reads it back as the same key.
    out = tmp_path / "out.pem"
    r = run_cli("store", "get", store, "sec1", "-o", out, *m)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    ours = subprocess.run(
        ["openssl", "pkey", "-in", str(out), "-pubout"], check=True, capture_output=True
    ).stdout
    assert ours == got["sec1"].public_key().public_bytes_pem()
    for k in got.values():
        k.destroy()


def test_pubkey_ssh_lines(tmp_path: Path) -> None:
    # keycell pubkey --ssh: the authorized_keys line pyca writes for the same key.
    for kind, extra in (("ec", ["--curve", "P-384"]), ("ed25519", []), ("rsa", ["--bits", "2048"])):
        path = tmp_path / f"{kind}.pem"
        assert run_cli("keygen", kind, *extra, "-o", path).returncode == 0
        theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
        want = theirs.public_key().public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        r = run_cli("pubkey", path, "--ssh", "--comment", "me@host")
        assert r.returncode == 0, r.stderr
        assert r.stdout == want.decode() + " me@host\n", kind
    x = tmp_path / "x.pem"
    assert run_cli("keygen", "x25519", "-o", x).returncode == 0
    r = run_cli("pubkey", x, "--ssh")
    assert r.returncode == 1
    assert "no OpenSSH form" in r.stderr
