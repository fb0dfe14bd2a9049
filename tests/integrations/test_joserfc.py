"""joserfc signs with keycell keys (``keycell.compat.joserfc.import_key``), and the tokens
verify elsewhere: with joserfc given only the public key, and with pyca/cryptography
checking the JWS signature by hand (RFC 7515 section 5.2), independent of joserfc.
"""

from __future__ import annotations

import base64
import inspect
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey
from keycell import (
    ECPrivateKey,
    Ed25519PrivateKey,
    KeyNotExportableError,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
)
from keycell.compat.joserfc import import_key

try:
    from joserfc.errors import SecurityWarning
except ImportError:  # pragma: no cover - older joserfc
    SecurityWarning = UserWarning  # type: ignore[misc,assignment]


@pytest.fixture(scope="module")
def rsa_key() -> RSAPrivateKey:
    return RSAPrivateKey.generate(2048)


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify_with_pyca(token: str, key: Any) -> dict[str, Any]:
    """Check a compact JWS with pyca alone; return its header."""
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(_b64d(header_b64))
    signing_input = f"{header_b64}.{payload_b64}".encode()
    sig = _b64d(sig_b64)
    pub = key.public_key().to_cryptography()
    alg = header["alg"]
    if alg in ("EdDSA", "Ed25519"):
        pub.verify(sig, signing_input)
    elif alg in ("ES256", "ES384"):
        width = len(sig) // 2
        der = encode_dss_signature(
            int.from_bytes(sig[:width], "big"), int.from_bytes(sig[width:], "big")
        )
        h = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        pub.verify(der, signing_input, ec.ECDSA(h))
    elif alg == "RS256":
        pub.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        pub.verify(sig, signing_input, pss, hashes.SHA256())
    else:  # pragma: no cover
        raise AssertionError(alg)
    return dict(header)


CASES = {
    "Ed25519": lambda rsa: Ed25519PrivateKey.generate(),
    "ES256": lambda rsa: ECPrivateKey.generate("P-256"),
    "ES384": lambda rsa: ECPrivateKey.generate("P-384"),
    "RS256": lambda rsa: rsa,
    "PS256": lambda rsa: rsa,
}


@pytest.mark.parametrize("alg", sorted(CASES))
def test_jwt_signed_with_a_keycell_key_verifies_elsewhere(alg: str, rsa_key: RSAPrivateKey) -> None:
    key = CASES[alg](rsa_key)
    jwk = import_key(key, {"use": "sig"}, auto_kid=True)
    claims = {"sub": "alice", "n": 1}
    token = jwt.encode({"alg": alg, "kid": jwk.kid}, claims, jwk, algorithms=[alg])
    # joserfc, holding only the public key.
    public = type(jwk).import_key(key.public_key().to_cryptography())
    assert jwt.decode(token, public, algorithms=[alg]).claims == claims
    # pyca alone, by hand.
    header = _verify_with_pyca(token, key)
    assert header["kid"] == public.thumbprint()
    # The check can fail: another payload under the same signature is rejected.
    h, _, s = token.split(".")
    forged = ".".join([h, base64.urlsafe_b64encode(b'{"sub":"mallory"}').rstrip(b"=").decode(), s])
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, public, algorithms=[alg])


def test_eddsa_name_signs_too() -> None:
    """``EdDSA`` (RFC 8037), which joserfc marks deprecated in favour of ``Ed25519``."""
    key = Ed25519PrivateKey.generate()
    with pytest.warns(SecurityWarning):
        token = jwt.encode({"alg": "EdDSA"}, {"sub": "x"}, import_key(key), algorithms=["EdDSA"])
    assert _verify_with_pyca(token, key)["alg"] == "EdDSA"


def test_key_sets_select_keycell_keys_by_kid(rsa_key: RSAPrivateKey) -> None:
    keys = KeySet(
        [import_key(ECPrivateKey.generate(), auto_kid=True), import_key(rsa_key, {"kid": "r"})]
    )
    token = jwt.encode({"alg": "RS256", "kid": "r"}, {"a": 1}, keys, algorithms=["RS256"])
    assert _verify_with_pyca(token, rsa_key)["kid"] == "r"


def test_the_jwk_has_no_private_members(rsa_key: RSAPrivateKey) -> None:
    for key, cls in (
        (Ed25519PrivateKey.generate(), OKPKey),
        (X25519PrivateKey.generate(), OKPKey),
        (ECPrivateKey.generate(), ECKey),
        (rsa_key, RSAKey),
    ):
        jwk = import_key(key)
        assert type(jwk) is cls
        assert jwk.is_private
        members = jwk.as_dict(private=True)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(members)
        assert members == cls.import_key(key.public_key().to_cryptography()).as_dict()
        with pytest.raises(KeyNotExportableError):
            jwk.as_pem(private=True)


def test_importing_the_adapter_into_joserfc_directly_is_refused() -> None:
    """The catch ``import_key`` avoids: joserfc computes the private JWK of a pyca private
    key before it signs, and the adapter refuses to give it."""
    jwk = OKPKey.import_key(Ed25519PrivateKey.generate().to_cryptography())
    with pytest.raises(KeyNotExportableError, match="allow_export=True"):
        jwt.encode({"alg": "Ed25519"}, {"a": 1}, jwk, algorithms=["Ed25519"])


def test_import_key_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="not SecretKey"):
        import_key(SecretKey.generate(32))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameters must be a dict"):
        import_key(Ed25519PrivateKey.generate(), [("kid", "x")])  # type: ignore[arg-type]


def test_joserfc_hmac_needs_the_raw_key_bytes() -> None:
    """Why the docs say HMAC keys cannot be used safely with joserfc: its ``OctKey`` holds
    the secret as ``bytes`` and its HMAC algorithm calls ``hmac.new`` on them. If joserfc
    ever lets a key object compute the MAC, this fails and the docs must change."""
    from joserfc._rfc7518.jws_algs import HMACAlgorithm

    assert isinstance(OctKey.import_key(b"k" * 32).raw_value, bytes)
    assert "hmac.new(op_key" in inspect.getsource(HMACAlgorithm.sign)


def test_parameters_cannot_replace_the_keys_own_members() -> None:
    # Outside review: parameters={"x": other.x, "y": ..., "d": ...} published another key's
    # point (and a "d") under this key.
    with ECPrivateKey.generate("P-256") as key, ECPrivateKey.generate("P-256") as other:
        theirs = other.public_key().to_jwk()
        for bad in ({"x": theirs["x"], "y": theirs["y"]}, {"d": "AAAA"}, {"kty": "oct"}):
            with pytest.raises(ValueError, match="may not set the key's own JWK members"):
                import_key(key, bad)
        jwk = import_key(key, {"kid": "k1", "use": "sig"})
        assert jwk.as_dict()["x"] == key.public_key().to_jwk()["x"]
        assert "d" not in jwk.as_dict(private=True)
