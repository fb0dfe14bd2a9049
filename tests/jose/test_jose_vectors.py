"""Published examples: RFC 7515 Appendix A.1 (HS256), A.2 (RS256), A.3 (ES256), RFC 8037
Appendix A (Ed25519 JWK, thumbprint, JWS) and RFC 7638 §3.1 (thumbprint), from
``tests/vectors/rfc7515/jose_examples.json``. The RFCs' private keys are loaded into
keycell handles here (from bytes the test builds), never through ``JWK``, which refuses
private members."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey, SecretKey
from keycell.jose import (
    JWK,
    ExpiredSignatureError,
    InvalidSignatureError,
    jws,
    jwt,
    thumbprint,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "rfc7515" / "jose_examples.json").read_text()
)


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def num(jwk: dict[str, str], name: str) -> int:
    return int.from_bytes(unb64(jwk[name]), "big")


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}


def pkcs8(key: Any) -> bytearray:
    return bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


A1, A2, A3 = (VECTORS["rfc7515"][n] for n in ("A.1", "A.2", "A.3"))
ED = VECTORS["rfc8037"]["A.1-A.4"]
CLAIMS = {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


def test_rfc7515_a1_hs256() -> None:
    key = SecretKey.from_buffer(bytearray(unb64(A1["jwk"]["k"])))
    assert jws.verify(A1["compact"], key, algorithms=["HS256"]) == bytes.fromhex(A1["payload_hex"])
    # keycell's MAC over the RFC's signing input is the RFC's signature.
    signing_input, signature = A1["compact"].rsplit(".", 1)
    assert key.hmac(signing_input.encode()) == unb64(signature)
    # The token is a JWT expiring at 1300819380 (2011-03-22T18:43:00Z).
    assert jwt.decode(A1["compact"], key, algorithms=["HS256"], now=1300819379) == CLAIMS
    with pytest.raises(ExpiredSignatureError):
        jwt.decode(A1["compact"], key, algorithms=["HS256"], now=1300819380)
    other = SecretKey.from_buffer(bytearray(unb64(A1["jwk"]["k"])[::-1]))
    with pytest.raises(InvalidSignatureError):
        jws.verify(A1["compact"], other, algorithms=["HS256"])


def test_rfc7515_a2_rs256() -> None:
    jwk = A2["jwk"]
    public = JWK.from_dict(public_jwk(jwk))
    payload = bytes.fromhex(A2["payload_hex"])
    assert jws.verify(A2["compact"], public, algorithms=["RS256"]) == payload
    numbers = rsa.RSAPrivateNumbers(
        p=num(jwk, "p"),
        q=num(jwk, "q"),
        d=num(jwk, "d"),
        dmp1=num(jwk, "dp"),
        dmq1=num(jwk, "dq"),
        iqmp=num(jwk, "qi"),
        public_numbers=rsa.RSAPublicNumbers(num(jwk, "e"), num(jwk, "n")),
    )
    key = RSAPrivateKey.from_der(pkcs8(numbers.private_key()))
    assert key.public_key() == public.key
    # RS256 is deterministic and the RFC's header is exactly {"alg":"RS256"}: keycell
    # writes the RFC's token byte for byte.
    assert jws.sign(payload, key, algorithm="RS256") == A2["compact"]


def test_rfc7515_a3_es256() -> None:
    jwk = A3["jwk"]
    public = JWK.from_dict(public_jwk(jwk))
    payload = bytes.fromhex(A3["payload_hex"])
    assert jws.verify(A3["compact"], public, algorithms=["ES256"]) == payload
    private = ec.derive_private_key(num(jwk, "d"), ec.SECP256R1())
    key = ECPrivateKey.from_der(pkcs8(private))
    assert key.public_key() == public.key
    # ECDSA signatures are randomized: keycell's verifies under the RFC's public key.
    token = jws.sign(payload, key)
    assert token.split(".")[:2] == A3["compact"].split(".")[:2]
    assert jws.verify(token, public, algorithms=["ES256"]) == payload


def test_rfc8037_ed25519() -> None:
    jwk = ED["jwk"]
    key = Ed25519PrivateKey.from_private_bytes(bytearray(unb64(jwk["d"])))
    public = JWK.from_dict(public_jwk(jwk))
    assert key.public_key() == public.key
    assert key.public_key().to_jwk() == public_jwk(jwk)
    # A.3: the thumbprint; it is also the JWK's default kid.
    assert thumbprint(key) == thumbprint(public.key) == public.kid == ED["thumbprint"]
    # A.4: Ed25519 is deterministic, so keycell writes the RFC's JWS exactly.
    assert jws.sign(ED["payload"].encode(), key) == ED["compact"]
    assert jws.verify(ED["compact"], public, algorithms=["EdDSA"]) == ED["payload"].encode()


def test_rfc7638_thumbprint() -> None:
    v = VECTORS["rfc7638"]["3.1"]
    jwk = JWK.from_dict(v["jwk"])
    assert jwk.thumbprint() == v["thumbprint"]
    assert jwk.kid == "2011-04-29"  # a given kid is kept
    assert jwk.alg == "RS256"
    assert JWK(jwk.key).kid == v["thumbprint"]


@pytest.mark.parametrize("vector", [A1, A2, A3, ED], ids=["A.1", "A.2", "A.3", "8037"])
def test_the_rfcs_private_jwks_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="never loads secret keys from JSON"):
        JWK.from_dict(vector["jwk"])
