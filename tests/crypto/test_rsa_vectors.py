"""RSA signature vectors: every case of six Wycheproof files (verify only; the files have
no private keys).

- RSASSA-PSS, MGF1-SHA-256: 2048-bit keys with salt lengths 0 and 32, 3072-bit with 32.
  ``valid`` verifies with the file's salt length (32 goes through ring, 0 through
  keycell's own EMSA-PSS-VERIFY) and with ``salt_length="auto"``; ``invalid`` raises
  ``InvalidSignature`` with the file's salt length.
- RSASSA-PKCS1-v1_5 with SHA-256, SHA-512 (2048-bit) and SHA-384 (3072-bit): ``valid``
  verifies, ``invalid`` raises ``InvalidSignature``. Each file has one ``acceptable`` case
  (a legacy encoding); keycell must either accept it or raise ``InvalidSignature``,
  nothing else.

Every group's public key loads from its SPKI DER and PEM to equal keys.
"""

from __future__ import annotations

import pytest
from keycell import InvalidSignature, RSAPublicKey
from vectors import WycheproofCase, result_counts, wycheproof_params

PSS = {
    "rsa_pss_2048_sha256_mgf1_0_test.json": {"valid": 61, "invalid": 42},
    "rsa_pss_2048_sha256_mgf1_32_test.json": {"valid": 63, "invalid": 45},
    "rsa_pss_3072_sha256_mgf1_32_test.json": {"valid": 63, "invalid": 45},
}
PKCS1 = {
    "rsa_signature_2048_sha256_test.json": {"valid": 9, "invalid": 249, "acceptable": 1},
    "rsa_signature_2048_sha512_test.json": {"valid": 8, "invalid": 250, "acceptable": 1},
    "rsa_signature_3072_sha384_test.json": {"valid": 7, "invalid": 251, "acceptable": 1},
}
HASHES = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@pytest.mark.parametrize("name", sorted(PSS | PKCS1))
def test_file_inventory(name: str) -> None:
    assert result_counts(name) == (PSS | PKCS1)[name]


def _public(case: WycheproofCase) -> RSAPublicKey:
    key = RSAPublicKey.from_der(bytes.fromhex(case.group["publicKeyDer"]))
    assert RSAPublicKey.from_pem(case.group["publicKeyPem"]) == key
    assert key.key_size == case.group["keySize"]
    return key


def _pss_params() -> list[object]:
    return list(wycheproof_params(*sorted(PSS)))


def _pkcs1_params() -> list[object]:
    return list(wycheproof_params(*sorted(PKCS1)))


@pytest.mark.parametrize("case", _pss_params())
def test_pss_vector(case: WycheproofCase) -> None:
    group = case.group
    assert group["mgf"] == "MGF1"
    assert group["mgfSha"] == group["sha"]
    key = _public(case)
    hash_name = HASHES[group["sha"]]
    msg, sig = case.hex("msg"), case.hex("sig")
    salt = int(group["sLen"])
    if case.result == "valid":
        key.verify(sig, msg, padding="pss", hash=hash_name, salt_length=salt)
        key.verify(sig, msg, padding="pss", hash=hash_name, salt_length="auto")
        if salt == 32:
            key.verify(sig, msg, padding="pss", hash=hash_name)
    else:
        assert case.result == "invalid"
        with pytest.raises(InvalidSignature):
            key.verify(sig, msg, padding="pss", hash=hash_name, salt_length=salt)


@pytest.mark.parametrize("case", _pkcs1_params())
def test_pkcs1v15_vector(case: WycheproofCase) -> None:
    key = _public(case)
    hash_name = HASHES[case.group["sha"]]
    msg, sig = case.hex("msg"), case.hex("sig")
    if case.result == "valid":
        key.verify(sig, msg, padding="pkcs1v15", hash=hash_name)
    elif case.result == "invalid":
        with pytest.raises(InvalidSignature):
            key.verify(sig, msg, padding="pkcs1v15", hash=hash_name)
    else:
        try:
            key.verify(sig, msg, padding="pkcs1v15", hash=hash_name)
        except InvalidSignature:
            pass
