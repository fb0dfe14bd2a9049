"""RSA keys on the command line: ``keycell keygen rsa --bits``, ``keycell pubkey`` (PEM,
JWK) checked against pyca, openssl's PKCS#1 files detected and stored in the key store."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from asym_support import needs_openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support import run_cli


def b64url_int(text: str) -> int:
    assert "=" not in text
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def test_keygen_rsa_and_pubkey(tmp_path: Path) -> None:
    path = tmp_path / "rsa.pem"
    r = run_cli("keygen", "rsa", "--bits", "2048", "-o", path)
    assert r.returncode == 0, r.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(theirs, rsa.RSAPrivateKey)
    assert theirs.key_size == 2048
    spki = theirs.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for extra in ([], ["--pem"], ["--type", "rsa"]):
        r = run_cli("pubkey", path, *extra)
        assert (r.returncode, r.stdout) == (0, spki.decode()), (extra, r.stderr)
    r = run_cli("pubkey", path, "--jwk")
    assert r.returncode == 0, r.stderr
    jwk = json.loads(r.stdout)
    assert sorted(jwk) == ["e", "kty", "n"]
    assert jwk["kty"] == "RSA"
    numbers = theirs.public_key().public_numbers()
    assert b64url_int(jwk["n"]) == numbers.n
    assert b64url_int(jwk["e"]) == numbers.e == 65537
    assert jwk["e"] == "AQAB"  # RFC 7518: minimal big-endian, no leading zero
    assert r.stdout == json.dumps(jwk, separators=(",", ":"), sort_keys=True) + "\n"


def test_keygen_rsa_refusals(tmp_path: Path) -> None:
    r = run_cli("keygen", "rsa", "--bits", "1024", "-o", tmp_path / "small")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    r = run_cli("keygen", "rsa", "-o", tmp_path / "raw", "--format", "hex")
    assert r.returncode == 2
    assert "an RSA key file is PKCS#8 or OpenSSH: --format pem, der or openssh" in r.stderr
    r = run_cli("keygen", "ec", "--bits", "2048", "-o", tmp_path / "ec")
    assert r.returncode == 2
    assert "--bits is for rsa keys" in r.stderr
    for p in ("small", "raw", "ec"):
        assert not (tmp_path / p).exists()


@needs_openssl
def test_openssl_pkcs1_files_are_detected_and_stored(tmp_path: Path) -> None:
    pkcs1 = tmp_path / "trad.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(pkcs1), "2048"],
        check=True,
        capture_output=True,
    )
    pkcs1.chmod(0o600)
    assert b"BEGIN RSA PRIVATE KEY" in pkcs1.read_bytes()
    r = run_cli("pubkey", pkcs1)
    assert r.returncode == 0, r.stderr
    ours = subprocess.run(
        ["openssl", "rsa", "-in", str(pkcs1), "-pubout"], check=True, capture_output=True
    ).stdout
    assert r.stdout.encode() == ours
    master = tmp_path / "master.key"
    assert run_cli("keygen", "secret", "-o", master).returncode == 0
    store = tmp_path / "keys.kcs"
    m = ["--master-key-file", master]
    assert run_cli("store", "init", store, *m).returncode == 0
    r = run_cli("store", "put", store, "rsa", "--key-file", pkcs1, *m)
    assert r.returncode == 0, r.stderr
    assert run_cli("store", "list", store, *m).stdout == "rsa\trsa\n"
    out = tmp_path / "out.pem"
    r = run_cli("store", "get", store, "rsa", "-o", out, *m)
    assert r.returncode == 0, r.stderr
    assert run_cli("pubkey", out).stdout.encode() == ours
