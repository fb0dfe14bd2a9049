"""pyca's x509 builders sign with keycell keys through ``to_cryptography()``, and the
``openssl`` command line verifies the results.

For Ed25519, P-256, P-384 and RSA (PKCS#1 v1.5 and, through ``rsa_padding=``, PSS): a
self-signed certificate (``openssl verify`` against itself as the trust anchor) and a CSR
(``openssl req -verify``), both also checked by pyca.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asym_support import OPENSSL, needs_openssl, openssl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey

pytestmark = needs_openssl

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

CASES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "ed25519": (Ed25519PrivateKey.generate, None, {}),
    "p256": (lambda: ECPrivateKey.generate("P-256"), hashes.SHA256(), {}),
    "p384": (lambda: ECPrivateKey.generate("P-384"), hashes.SHA384(), {}),
    "rsa-pkcs1v15": (lambda: RSAPrivateKey.generate(2048), hashes.SHA256(), {}),
    "rsa-pss": (lambda: RSAPrivateKey.generate(2048), hashes.SHA256(), {"rsa_padding": PSS}),
}
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keycell x509 test")])


def build_certificate(key: Any, algorithm: Any, **kwargs: Any) -> x509.Certificate:
    """A self-signed CA certificate for ``key`` (a pyca private key object)."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, algorithm, **kwargs)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_certificate_verified_by_openssl(case: str, tmp_path: Path) -> None:
    make, algorithm, kwargs = CASES[case]
    key = make()
    cert = build_certificate(key.to_cryptography(), algorithm, **kwargs)
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == key.public_key().to_cryptography()
    path = tmp_path / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = openssl("verify", "-CAfile", str(path), "-check_ss_sig", str(path))
    assert out.strip() == f"{path}: OK".encode()
    if kwargs:
        text = openssl("x509", "-in", str(path), "-noout", "-text").decode()
        assert "Signature Algorithm: rsassaPss" in text
        assert "Salt Length: 0x20" in text


@pytest.mark.parametrize("case", sorted(CASES))
def test_csr_verified_by_openssl(case: str, tmp_path: Path) -> None:
    make, algorithm, kwargs = CASES[case]
    key = make()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(NAME)
        .sign(key.to_cryptography(), algorithm, **kwargs)
    )
    assert csr.is_signature_valid
    path = tmp_path / "req.pem"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    assert OPENSSL is not None
    proc = subprocess.run(
        [OPENSSL, "req", "-in", str(path), "-verify", "-noout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "verify OK" in proc.stdout + proc.stderr
    pub = openssl("req", "-in", str(path), "-noout", "-pubkey")
    assert serialization.load_pem_public_key(pub) == key.public_key().to_cryptography()


def test_openssl_rejects_a_tampered_certificate(tmp_path: Path) -> None:
    """The check above can fail: a certificate whose signature was altered is refused."""
    key = ECPrivateKey.generate("P-256")
    der = bytearray(
        build_certificate(key.to_cryptography(), hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0x01  # inside the signature's BIT STRING
    path = tmp_path / "bad.der"
    path.write_bytes(bytes(der))
    pem = tmp_path / "bad.pem"
    pem.write_bytes(openssl("x509", "-inform", "DER", "-in", str(path)))
    with pytest.raises(Exception, match="returned non-zero exit status"):
        openssl("verify", "-CAfile", str(pem), "-check_ss_sig", str(pem))


def test_openssl_rejects_a_tampered_csr(tmp_path: Path) -> None:
    """And ``openssl req -verify`` refuses a CSR whose signed content was altered."""
    key = Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(NAME).sign(key.to_cryptography(), None)
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    at = der.index(b"keycell x509 test")
    bad = der[:at] + b"K" + der[at + 1 :]  # the subject's first letter
    path = tmp_path / "bad.der"
    path.write_bytes(bad)
    assert OPENSSL is not None
    proc = subprocess.run(
        [OPENSSL, "req", "-inform", "DER", "-in", str(path), "-verify", "-noout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # OpenSSL 3.0 exits 0 here and says so only in words: the words are what the CSR
    # test above checks.
    assert "verify OK" not in proc.stdout + proc.stderr
    assert "verify failure" in proc.stdout + proc.stderr
