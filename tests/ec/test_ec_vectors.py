"""P-256 and P-384 test vectors: every case of the Wycheproof ECDSA (DER and P1363) and
ECDH (SPKI and X9.62 point) files.

keycell's documented behaviour, case by case:

- ECDSA ``valid``: ``ECPublicKey.verify`` accepts the signature (``encoding="der"`` for
  the DER files, ``"raw"`` for ``_p1363``); ``invalid`` (BER and other malformed DER,
  wrong lengths, r or s out of range, ...): it raises ``InvalidSignature``.
- ECDH ``valid``: the public key loads and ``exchange`` returns a ``SecretKey`` holding
  exactly ``shared``; ``invalid`` (points off the curve, wrong curves, malformed DER): the
  public key is refused with ``ValueError``. ``acceptable`` (compressed points, unusual
  but decodable SPKI parameters): either refused with ``ValueError`` or exactly
  ``shared``.

The shared secret is read back only through ``SecretKey.expose()``, for the comparison.
"""

from __future__ import annotations

import pytest
from asym_support import ec_sec1_der
from keycell import ECPrivateKey, ECPublicKey, InvalidSignature, SecretKey
from vectors import WycheproofCase, result_counts, wycheproof_params

CURVE = {"secp256r1": "P-256", "secp384r1": "P-384"}
WIDTH = {"P-256": 32, "P-384": 48}
ECDSA_DER = ["ecdsa_secp256r1_sha256_test.json", "ecdsa_secp384r1_sha384_test.json"]
ECDSA_RAW = [
    "ecdsa_secp256r1_sha256_p1363_test.json",
    "ecdsa_secp384r1_sha384_p1363_test.json",
]
ECDH = [
    "ecdh_secp256r1_test.json",
    "ecdh_secp256r1_ecpoint_test.json",
    "ecdh_secp384r1_test.json",
    "ecdh_secp384r1_ecpoint_test.json",
]


def test_file_inventory() -> None:
    assert result_counts(ECDSA_DER[0]) == {"valid": 174, "invalid": 310}
    assert result_counts(ECDSA_DER[1]) == {"valid": 194, "invalid": 310}
    assert result_counts(ECDSA_RAW[0]) == {"valid": 173, "invalid": 89}
    assert result_counts(ECDSA_RAW[1]) == {"valid": 193, "invalid": 87}
    assert result_counts(ECDH[0]) == {"valid": 330, "invalid": 52, "acceptable": 230}
    assert result_counts(ECDH[2]) == {"valid": 771, "invalid": 46, "acceptable": 230}


def _verify(case: WycheproofCase, encoding: str) -> None:
    curve = CURVE[case.group["publicKey"]["curve"]]
    point = bytes.fromhex(case.group["publicKey"]["uncompressed"])
    pk = ECPublicKey.from_public_bytes(curve, point)
    assert pk == ECPublicKey.from_der(bytes.fromhex(case.group["publicKeyDer"]))
    sig, msg = case.hex("sig"), case.hex("msg")
    if case.result == "valid":
        pk.verify(sig, msg, encoding=encoding)  # type: ignore[arg-type]
    else:
        assert case.result == "invalid"
        with pytest.raises(InvalidSignature):
            pk.verify(sig, msg, encoding=encoding)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", wycheproof_params(*ECDSA_DER))
def test_ecdsa_der_vector(case: WycheproofCase) -> None:
    _verify(case, "der")


@pytest.mark.parametrize("case", wycheproof_params(*ECDSA_RAW))
def test_ecdsa_p1363_vector(case: WycheproofCase) -> None:
    _verify(case, "raw")


def shared_bytes(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("case", wycheproof_params(*ECDH))
def test_ecdh_vector(case: WycheproofCase) -> None:
    curve = CURVE[case.group["curve"]]
    d = int(case.test["private"], 16).to_bytes(WIDTH[curve], "big")
    private = ECPrivateKey.from_der(ec_sec1_der(curve, d))
    try:
        if case.group["encoding"] == "asn":
            peer = ECPublicKey.from_der(case.hex("public"))
        else:
            peer = ECPublicKey.from_public_bytes(curve, case.hex("public"))
        shared = private.exchange(peer)
    except ValueError:
        assert case.result in ("invalid", "acceptable"), case.test["comment"]
        return
    assert case.result in ("valid", "acceptable"), case.test["comment"]
    assert shared_bytes(shared) == case.hex("shared")
