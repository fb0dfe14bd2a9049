"""keycell.jose.pyjwt: after ``install()`` PyJWT signs and verifies with keycell keys for
every algorithm, and behaves exactly as before for every other key."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose_support import ALGS, pair
from jwt.algorithms import get_default_algorithms
from jwt.warnings import InsecureKeyLengthWarning
from keycell import ECPrivateKey, SecretKey
from keycell.jose import JWK
from keycell.jose import jwt as kjwt
from keycell.jose import pyjwt as adapter

CLAIMS = {"sub": "alice"}


@pytest.fixture
def installed() -> Iterator[None]:
    adapter.install()
    yield
    adapter.uninstall()


def test_install_and_uninstall() -> None:
    jws = jwt.api_jws._jws_global_obj
    before = {n: jws.get_algorithm_by_name(n) for n in jws.get_algorithms()}
    adapter.install()
    adapter.install()  # idempotent
    try:
        assert adapter.installed()
        assert set(jws.get_algorithms()) == set(before)  # no algorithm added
        wrapped = jws.get_algorithm_by_name("ES256")
        assert wrapped is not before["ES256"]
        assert wrapped.original is before["ES256"]  # type: ignore[attr-defined]
        assert jws.get_algorithm_by_name("none") is before["none"]
        assert "Ed25519" not in jws.get_algorithms()
    finally:
        adapter.uninstall()
    assert not adapter.installed()
    assert {n: jws.get_algorithm_by_name(n) for n in jws.get_algorithms()} == before


def test_install_into_a_pyjws_object() -> None:
    restricted = jwt.PyJWS(algorithms=["HS256"])
    adapter.install(restricted)
    assert restricted.get_algorithms() == ["HS256"]
    assert adapter.installed(restricted)
    assert not adapter.installed()
    key = pair("HS256").keycell
    token = restricted.encode(b"payload", key, algorithm="HS256")
    assert restricted.decode(token, key, algorithms=["HS256"]) == b"payload"
    with pytest.raises(TypeError):
        adapter.install(object())  # type: ignore[arg-type]
    own = jwt.PyJWT()
    adapter.install(own)
    try:
        assert adapter.installed(own)
        assert not adapter.installed()
        token = own.encode({"sub": "a"}, key, algorithm="HS256")
        assert own.decode(token, key, algorithms=["HS256"]) == {"sub": "a"}
    finally:
        adapter.uninstall(own)
    assert not adapter.installed(own)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.usefixtures("installed")
def test_every_algorithm_with_keycell_keys(alg: str) -> None:
    p = pair(alg)
    token = jwt.encode(CLAIMS, p.keycell, algorithm=alg)
    assert jwt.decode(token, p.public, algorithms=[alg]) == CLAIMS
    assert jwt.decode(token, p.keycell, algorithms=[alg]) == CLAIMS
    # The same token for keycell.jose and for PyJWT's own algorithm with the pyca key.
    assert kjwt.decode(token, p.public, algorithms=[alg]) == CLAIMS
    adapter.uninstall()
    try:
        assert jwt.decode(token, p.pyca_public, algorithms=[alg]) == CLAIMS
        theirs = jwt.encode(CLAIMS, p.pyca, algorithm=alg)
    finally:
        adapter.install()
    assert jwt.decode(theirs, p.public, algorithms=[alg]) == CLAIMS
    if not alg.startswith("HS"):
        assert jwt.decode(token, JWK(p.public), algorithms=[alg]) == CLAIMS
        assert jwt.decode(token, JWK(p.public, alg=alg), algorithms=[alg]) == CLAIMS
    other = pair("HS512" if alg != "HS512" else "HS384").keycell
    if alg.startswith("HS"):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, other, algorithms=[alg])


@pytest.mark.usefixtures("installed")
def test_other_keys_keep_pyjwts_behaviour() -> None:
    secret = b"s" * 64
    token = jwt.encode(CLAIMS, secret, algorithm="HS256")
    assert jwt.decode(token, secret, algorithms=["HS256"]) == CLAIMS
    assert jwt.decode(token, secret.decode(), algorithms=["HS256"]) == CLAIMS
    pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(CLAIMS, pk, algorithm="RS256")
    assert jwt.decode(token, pk.public_key(), algorithms=["RS256"]) == CLAIMS
    pem = pk.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert jwt.decode(token, pem, algorithms=["RS256"]) == CLAIMS
    # PyJWT's own refusal of a PEM public key as an HMAC secret still happens.
    with pytest.raises(jwt.InvalidKeyError):
        jwt.encode(CLAIMS, pem, algorithm="HS256")
    # Its JWK handling too (the algorithm objects' to_jwk/from_jwk).
    es = jwt.api_jws._jws_global_obj.get_algorithm_by_name("ES256")
    own = get_default_algorithms()["ES256"]
    ec_key = ECPrivateKey.generate("P-256")
    assert es.to_jwk(ec_key.public_key(), as_dict=True) == ec_key.public_key().to_jwk()
    from_jwk = es.from_jwk(ec_key.public_key().to_jwk())
    assert own.to_jwk(from_jwk, as_dict=True)["x"] == ec_key.public_key().to_jwk()["x"]


@pytest.mark.usefixtures("installed")
def test_keys_are_bound_to_their_algorithms() -> None:
    rsa_pub = pair("RS256").public
    secret = pair("HS256").keycell
    # An HS256 token made with the RSA public key's PEM as the secret.
    pem = rsa_pub.public_bytes()
    adapter.uninstall()
    try:
        header, payload = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiJhbGljZSJ9"
        mac = std_hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        forged = f"{header}.{payload}.{jwt.utils.base64url_encode(mac).decode()}"
    finally:
        adapter.install()
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(forged, rsa_pub, algorithms=["RS256", "HS256"])
    token = jwt.encode(CLAIMS, pair("RS256").keycell, algorithm="RS256")
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, secret, algorithms=["RS256", "HS256"])
    with pytest.raises(jwt.InvalidKeyError):
        jwt.encode(CLAIMS, pair("ES256").keycell, algorithm="ES384")
    with pytest.raises(jwt.InvalidKeyError):
        jwt.encode(CLAIMS, rsa_pub, algorithm="RS256")
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(jwt.encode(CLAIMS, secret, algorithm="HS256"), secret, algorithms=["none"])


@pytest.mark.usefixtures("installed")
def test_short_hmac_keys_warn_as_pyjwt_does() -> None:
    short = SecretKey.generate(16)
    with pytest.warns(InsecureKeyLengthWarning, match="HMAC key is shorter"):
        jwt.encode(CLAIMS, short, algorithm="HS256")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.usefixtures("installed")
def test_truncated_macs_are_refused(alg: str) -> None:
    key = pair(alg).keycell
    token = jwt.encode(CLAIMS, key, algorithm=alg)
    head, body, sig = token.split(".")
    short = jwt.utils.base64url_encode(jwt.utils.base64url_decode(sig)[:16]).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{body}.{short}", key, algorithms=[alg])
