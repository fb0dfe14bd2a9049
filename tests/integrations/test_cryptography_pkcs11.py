"""``to_cryptography()`` of keys in a PKCS#11 token (SoftHSM2): pyca's x509 builder signs
a certificate in the token, ``openssl verify`` accepts it, and nothing is ever exported."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from asym_support import needs_openssl, openssl
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from keycell import KeyNotExportableError, pkcs11
from pkcs11_support import Hsm

pytestmark = needs_openssl

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keycell token x509 test")])


def _make(token: pkcs11.Token, kind: str, label: str) -> Any:
    if kind == "ed25519":
        return token.generate_ed25519(label=label)
    if kind == "p256":
        return token.generate_ec(label=label, curve="P-256")
    return token.generate_rsa(label=label, bits=2048)


CASES: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "ed25519": ("ed25519", None, {}),
    "p256": ("p256", hashes.SHA256(), {}),
    "rsa-pkcs1v15": ("rsa", hashes.SHA256(), {}),
    "rsa-pss": ("rsa", hashes.SHA256(), {"rsa_padding": PSS}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_token_key_signs_a_certificate_openssl_accepts(
    hsm: Hsm, case: str, tmp_path: Path
) -> None:
    kind, algorithm, kwargs = CASES[case]
    label = f"kc-pyca-{case}"
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = _make(token, kind, label)
        try:
            signer = key.to_cryptography(allow_export=True)
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(NAME)
                .issuer_name(NAME)
                .public_key(signer.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(signer, algorithm, **kwargs)
            )
            cert.verify_directly_issued_by(cert)
            path = tmp_path / "cert.pem"
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            out = openssl("verify", "-CAfile", str(path), "-check_ss_sig", str(path))
            assert out.strip() == f"{path}: OK".encode()
            # Even with allow_export=True, a token key never leaves the token.
            with pytest.raises(KeyNotExportableError, match="PKCS#11 token"):
                signer.private_bytes(
                    serialization.Encoding.DER,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            if isinstance(signer, ec.EllipticCurvePrivateKey):
                peer = ec.generate_private_key(ec.SECP256R1()).public_key()
                with pytest.raises(UnsupportedAlgorithm, match="signs only"):
                    signer.exchange(ec.ECDH(), peer)
        finally:
            key.delete_from_token()
