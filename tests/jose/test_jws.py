"""keycell.jose.jws: round trips for every algorithm, the header it writes, key binding,
and every refusal of a malformed or dangerous token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from jose_support import ALGS, pair
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey, SecretKey
from keycell.exceptions import InvalidSignature, KeycellError
from keycell.jose import (
    JWK,
    JWKS,
    MAX_TOKEN_LENGTH,
    DecodeError,
    InvalidAlgorithmError,
    InvalidHeaderError,
    InvalidSignatureError,
    InvalidTokenError,
    KeySelectionError,
    jws,
    thumbprint,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_of(token: str) -> dict[str, object]:
    return json.loads(unb64(token.split(".")[0]))  # type: ignore[no-any-return]


def hs256_token(key: SecretKey, header: bytes | dict[str, object], payload: bytes) -> str:
    """A token with an arbitrary header, MAC'd by keycell (to test header refusals)."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    signing_input = f"{b64(raw)}.{b64(payload)}"
    return f"{signing_input}.{b64(key.hmac(signing_input.encode()))}"


@pytest.mark.parametrize("alg", ALGS)
def test_round_trip_every_algorithm(alg: str) -> None:
    p = pair(alg)
    token = jws.sign(b"payload \x00\xff", p.keycell, algorithm=alg)
    assert header_of(token) == {"alg": alg}
    assert jws.verify(token, p.public, algorithms=[alg]) == b"payload \x00\xff"
    # A private key verifies too (with its public key), and so do a JWK and a JWKS.
    assert jws.verify(token, p.keycell, algorithms=[alg]) == b"payload \x00\xff"
    if not alg.startswith("HS"):
        assert jws.verify(token, JWK(p.public), algorithms=[alg]) == b"payload \x00\xff"
        assert jws.verify(token, JWKS([p.public]), algorithms=[alg]) == b"payload \x00\xff"
    head, _, sig = token.split(".")
    forged = ".".join([head, b64(b"payload \x00\xfe"), sig])
    with pytest.raises(InvalidSignatureError):
        jws.verify(forged, p.public, algorithms=[alg])


def test_signature_errors_are_keycells_invalid_signature() -> None:
    p = pair("EdDSA")
    with Ed25519PrivateKey.generate() as other:
        token = jws.sign(b"x", other)
    with pytest.raises(InvalidSignature):
        jws.verify(token, p.public, algorithms=["EdDSA"])
    assert issubclass(InvalidTokenError, KeycellError)
    assert not issubclass(InvalidTokenError, ValueError)


# Keys are made inside the tests (a key made at collection would live for the whole
# session, and tests that fork count the live keys).
MAKERS: dict[str, Callable[[], Any]] = {
    "Ed25519": Ed25519PrivateKey.generate,
    "P-256": lambda: ECPrivateKey.generate("P-256"),
    "P-384": lambda: ECPrivateKey.generate("P-384"),
    "secret": lambda: SecretKey.generate(32),
}


@pytest.mark.parametrize(
    ("kind", "alg"), [("Ed25519", "EdDSA"), ("P-256", "ES256"), ("P-384", "ES384")]
)
def test_the_key_fixes_the_algorithm(kind: str, alg: str) -> None:
    with MAKERS[kind]() as key:
        token = jws.sign(b"x", key)
    assert header_of(token) == {"alg": alg}


@pytest.mark.parametrize("alg", ["HS256", "RS256"])
def test_hmac_and_rsa_keys_need_the_algorithm_named(alg: str) -> None:
    with pytest.raises(ValueError, match="name it"):
        jws.sign(b"x", pair(alg).keycell)


def test_ed25519_per_rfc_9864() -> None:
    key = pair("EdDSA").keycell
    token = jws.sign(b"x", key, algorithm="Ed25519")
    assert header_of(token) == {"alg": "Ed25519"}
    assert jws.verify(token, key.public_key(), algorithms=["Ed25519"]) == b"x"
    # The list names algorithms exactly: an EdDSA token is not accepted as Ed25519.
    with pytest.raises(InvalidAlgorithmError):
        jws.verify(jws.sign(b"x", key), key.public_key(), algorithms=["Ed25519"])
    # A JWK bound to EdDSA verifies Ed25519 tokens (one algorithm, two names).
    bound = JWK(key.public_key(), alg="EdDSA")
    assert jws.verify(token, bound, algorithms=["Ed25519"]) == b"x"


@pytest.mark.parametrize(
    ("kind", "alg"),
    [
        ("P-256", "ES384"),
        ("P-384", "ES256"),
        ("Ed25519", "ES256"),
        ("secret", "EdDSA"),
        ("secret", "RS256"),
    ],
)
def test_an_algorithm_that_does_not_fit_the_key_is_refused(kind: str, alg: str) -> None:
    with MAKERS[kind]() as key, pytest.raises(ValueError, match="does not fit"):
        jws.sign(b"x", key, algorithm=alg)


def test_kid_and_headers() -> None:
    key = pair("ES256").keycell
    token = jws.sign(b"x", key, kid=True, headers={"cty": "text/plain"})
    assert header_of(token) == {"alg": "ES256", "kid": thumbprint(key), "cty": "text/plain"}
    assert header_of(jws.sign(b"x", key, kid="k1")) == {"alg": "ES256", "kid": "k1"}
    for name in ("alg", "crit", "b64"):
        with pytest.raises(ValueError, match=name):
            jws.sign(b"x", key, headers={name: "x"})
    with pytest.raises(ValueError, match="twice"):
        jws.sign(b"x", key, kid="a", headers={"kid": "b"})
    with pytest.raises(ValueError, match="kid=True"):
        jws.sign(b"x", pair("HS256").keycell, algorithm="HS256", kid=True)


def test_keys_are_never_bytes() -> None:
    with pytest.raises(TypeError, match="SecretKey"):
        jws.sign(b"x", b"secret" * 8, algorithm="HS256")  # type: ignore[arg-type]
    token = jws.sign(b"x", pair("HS256").keycell, algorithm="HS256")
    for key in (b"secret" * 8, "secret" * 8, bytearray(48)):
        with pytest.raises(TypeError, match="SecretKey"):
            jws.verify(token, key, algorithms=["HS256"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="public key"):
        jws.sign(b"x", pair("EdDSA").public, algorithm="EdDSA")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        jws.sign("text", pair("EdDSA").keycell)  # type: ignore[arg-type]


def test_the_algorithms_list_is_required_and_checked() -> None:
    p = pair("EdDSA")
    token = jws.sign(b"x", p.keycell)
    with pytest.raises(ValueError, match="at least one"):
        jws.verify(token, p.public, algorithms=[])
    with pytest.raises(TypeError, match="list"):
        jws.verify(token, p.public, algorithms="EdDSA")
    with pytest.raises(ValueError, match="never accepts unsigned"):
        jws.verify(token, p.public, algorithms=["none"])
    with pytest.raises(ValueError, match="unsupported"):
        jws.verify(token, p.public, algorithms=["ES512"])
    with pytest.raises(ValueError, match="fits none"):
        jws.verify(token, p.public, algorithms=["HS256", "ES256"])


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_never_accepted(alg: str) -> None:
    key = pair("HS256").keycell
    token = f"{b64(json.dumps({'alg': alg}).encode())}.{b64(b'{}')}."
    with pytest.raises(InvalidAlgorithmError):
        jws.verify(token, key, algorithms=["HS256"])


def _public_texts(p: object) -> list[bytes]:
    pub = p.public  # type: ignore[attr-defined]
    texts = [
        json.dumps(pub.to_jwk()).encode(),
        json.dumps(pub.to_jwk(), separators=(",", ":")).encode(),
    ]
    if hasattr(pub, "public_bytes_pem"):
        texts += [pub.public_bytes_pem(), pub.public_bytes_der()]
    else:
        texts += [
            pub.public_bytes("pem"),
            pub.public_bytes("der"),
            pub.public_bytes("pem", "pkcs1"),
        ]
    return texts


@pytest.mark.parametrize("victim", ["RS256", "ES256", "EdDSA"])
def test_algorithm_confusion_is_impossible(victim: str) -> None:
    """The classic attack: an HS256 token whose MAC key is the victim's public key text
    (PEM, DER, JWK). keycell never takes the public key as an HMAC secret, whatever the
    algorithm list says."""
    p = pair(victim)
    for text in _public_texts(p):
        signing_input = b64(b'{"alg":"HS256"}') + "." + b64(b'{"admin":true}')
        mac = hmac.new(text, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{b64(mac)}"
        for key in (p.public, JWK(p.public), JWKS([p.public])):
            with pytest.raises((InvalidAlgorithmError, KeySelectionError)):
                jws.verify(token, key, algorithms=[victim, "HS256"])
        with pytest.raises(ValueError, match="fits none"):
            jws.verify(token, p.public, algorithms=["HS256"])


def test_an_hmac_key_never_verifies_asymmetric_tokens() -> None:
    secret = pair("HS256").keycell
    for alg in ("RS256", "ES256", "EdDSA"):
        token = jws.sign(b"x", pair(alg).keycell, algorithm=alg)
        with pytest.raises(InvalidAlgorithmError):
            jws.verify(token, secret, algorithms=["HS256", alg])


def test_an_algorithm_outside_the_list_is_refused() -> None:
    p = pair("RS256")
    token = jws.sign(b"x", p.keycell, algorithm="RS256")
    with pytest.raises(InvalidAlgorithmError, match="not in the allowed"):
        jws.verify(token, p.public, algorithms=["PS256"])
    hs = jws.sign(b"x", pair("HS512").keycell, algorithm="HS512")
    with pytest.raises(InvalidAlgorithmError):
        jws.verify(hs, pair("HS512").keycell, algorithms=["HS256"])


def test_crit_and_unencoded_payloads_are_refused() -> None:
    key = pair("HS256").keycell
    for header in (
        {"alg": "HS256", "crit": ["exp"], "exp": 1},
        {"alg": "HS256", "crit": []},
        {"alg": "HS256", "b64": False, "crit": ["b64"]},
        {"alg": "HS256", "b64": False},
    ):
        with pytest.raises(InvalidHeaderError):
            jws.verify(hs256_token(key, header, b"x"), key, algorithms=["HS256"])
    with pytest.raises(InvalidHeaderError, match="kid"):
        jws.verify(hs256_token(key, {"alg": "HS256", "kid": 7}, b"x"), key, algorithms=["HS256"])
    assert (
        jws.verify(hs256_token(key, {"alg": "HS256", "b64": True}, b"x"), key, algorithms=["HS256"])
        == b"x"
    )


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg":"HS256","alg":"none"}',
        b'{"alg":"HS256","x":{"a":1,"a":2}}',
        b'["HS256"]',
        b'{"alg":"HS256"',
        b'{"alg":"HS256","n":NaN}',
        b'{"alg":"HS256","n":1e999}',
        b'{"alg":"HS\xff256"}',
        b'{"alg":"HS256","x":' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"alg":"HS256","x":"' + b"a" * 9000 + b'"}',
    ],
    ids=["repeated", "nested-repeated", "array", "truncated", "nan", "inf", "utf8", "deep", "big"],
)
def test_malformed_headers_are_refused(header: bytes) -> None:
    key = pair("HS256").keycell
    with pytest.raises(DecodeError):
        jws.verify(hs256_token(key, header, b"x"), key, algorithms=["HS256"])


def test_base64url_is_strict() -> None:
    key = pair("HS256").keycell
    token = jws.sign(b"abcd", key, algorithm="HS256")
    head, body, sig = token.split(".")
    assert body == "YWJjZA"
    bad = [
        f"{head}.YWJjZA==.{sig}",  # padding
        f"{head}.YWJjZB.{sig}",  # non-canonical trailing bits (decodes to the same bytes)
        f"{head}.YWJj ZA.{sig}",  # whitespace
        f"{head}.{body}.{sig.replace('-', '+').replace('_', '/')}"
        if ("-" in sig or "_" in sig)
        else f"{head}.YW+jZA.{sig}",
        f"{head}.YWJjZ.{sig}",  # a length no encoding produces
        f"{head}.{body}.{sig}=",
    ]
    for t in bad:
        with pytest.raises(DecodeError):
            jws.verify(t, key, algorithms=["HS256"])


def test_structure_and_size_limits() -> None:
    key = pair("HS256").keycell
    token = jws.sign(b"x", key, algorithm="HS256")
    for t in (token + ".x", token.rsplit(".", 1)[0], ""):
        with pytest.raises(DecodeError, match="three"):
            jws.verify(t, key, algorithms=["HS256"])
    with pytest.raises(DecodeError, match="JWE"):
        jws.verify("a.b.c.d.e", key, algorithms=["HS256"])
    big = jws.sign(b"x" * MAX_TOKEN_LENGTH, key, algorithm="HS256")
    with pytest.raises(DecodeError, match="longer"):
        jws.verify(big, key, algorithms=["HS256"])
    fits = jws.sign(b"x" * (MAX_TOKEN_LENGTH // 2), key, algorithm="HS256")
    assert len(jws.verify(fits, key, algorithms=["HS256"])) == MAX_TOKEN_LENGTH // 2
    assert jws.verify(token.encode(), key, algorithms=["HS256"]) == b"x"
    with pytest.raises(DecodeError, match="ASCII"):
        jws.verify(token.encode() + b"\xff", key, algorithms=["HS256"])


def test_es256_signatures_are_raw_r_s() -> None:
    key = pair("ES256").keycell
    token = jws.sign(b"x", key)
    head, body, sig = token.split(".")
    assert len(unb64(sig)) == 64
    der = key.sign(f"{head}.{body}".encode())  # DER, as X.509 uses
    with pytest.raises(InvalidSignatureError):
        jws.verify(f"{head}.{body}.{b64(der)}", key.public_key(), algorithms=["ES256"])


def test_jwks_selection() -> None:
    ed, p256, rsa_ = pair("EdDSA").keycell, pair("ES256").keycell, pair("RS256").keycell
    other_p256 = ECPrivateKey.generate("P-256")
    jwks = JWKS([ed.public_key(), p256.public_key(), rsa_.public_key()])
    # By kid (the thumbprint is every entry's default kid).
    for key, alg in ((ed, "EdDSA"), (p256, "ES256"), (rsa_, "PS256")):
        token = jws.sign(b"x", key, algorithm=alg, kid=True)
        assert jws.verify(token, jwks, algorithms=[alg]) == b"x"
    # Without a kid: used when exactly one entry fits the algorithm.
    assert jws.verify(jws.sign(b"x", p256), jwks, algorithms=["ES256"]) == b"x"
    two = JWKS([p256.public_key(), other_p256.public_key()])
    with pytest.raises(KeySelectionError, match="2 keys"):
        jws.verify(jws.sign(b"x", p256), two, algorithms=["ES256"])
    assert jws.verify(jws.sign(b"x", p256, kid=True), two, algorithms=["ES256"]) == b"x"
    # An unknown kid is refused, even when one entry would fit.
    with pytest.raises(KeySelectionError, match="kid"):
        jws.verify(jws.sign(b"x", p256, kid="unknown"), jwks, algorithms=["ES256"])
    # A kid naming an entry of another type: the algorithm does not fit it.
    forged = jws.sign(b"x", p256, kid=thumbprint(ed))
    with pytest.raises(InvalidAlgorithmError):
        jws.verify(forged, jwks, algorithms=["ES256", "EdDSA"])
    # A token signed by a key outside the set, naming a set member's kid.
    stranger = jws.sign(b"x", other_p256, kid=thumbprint(p256))
    with pytest.raises(InvalidSignatureError):
        jws.verify(stranger, jwks, algorithms=["ES256"])
    # Entries bound by alg or use.
    bound = JWKS([JWK(rsa_.public_key(), alg="RS256"), JWK(ed.public_key(), use="enc")])
    with pytest.raises(InvalidAlgorithmError):
        jws.verify(jws.sign(b"x", rsa_, algorithm="PS256", kid=True), bound, algorithms=["PS256"])
    with pytest.raises(KeySelectionError):
        jws.verify(jws.sign(b"x", ed), bound, algorithms=["EdDSA"])


def test_error_messages_carry_no_key_bytes() -> None:
    secret = bytes(range(1, 65))
    key = SecretKey.from_buffer(bytearray(secret))
    other = SecretKey.from_buffer(bytearray(secret[::-1]))
    token = jws.sign(b"x", key, algorithm="HS256")
    head, body, _ = token.split(".")
    messages = []
    for call in (
        lambda: jws.verify(token, other, algorithms=["HS256"]),
        lambda: jws.verify(f"{head}.{body}.AAAA", key, algorithms=["HS256"]),
        lambda: jws.verify(token, key, algorithms=["HS384"]),
        lambda: jws.sign(b"x", key, algorithm="RS256"),
    ):
        with pytest.raises((InvalidTokenError, ValueError)) as info:
            call()
        messages.append(str(info.value))
    for m in messages:
        for form in (secret.hex(), b64(secret), secret.decode("latin-1")):
            assert form not in m
    assert "does not verify" in messages[0]


def test_pkcs1_rsa_keys_sign_every_rsa_algorithm() -> None:
    key = pair("RS256").keycell
    assert isinstance(key, RSAPrivateKey)
    tokens = {alg: jws.sign(b"x", key, algorithm=alg) for alg in ("RS256", "RS384", "RS512")}
    # PKCS#1 v1.5 is deterministic: the same input signs the same way.
    assert tokens["RS256"] == jws.sign(b"x", key, algorithm="RS256")
    assert len(set(tokens.values())) == 3


@pytest.mark.parametrize("alg", ALGS)
def test_signatures_of_another_length_are_refused(alg: str) -> None:
    """Truncated MACs included: keycell's verify_hmac takes tags truncated to 16 bytes or
    more (RFC 2104 §5), a JWS takes the full HMAC output only (RFC 7518 §3.2), so a token
    has one spelling."""
    p = pair(alg)
    head, body, sig = jws.sign(b"x", p.keycell, algorithm=alg).split(".")
    raw = unb64(sig)
    for bad in (b"", raw[:16], raw[: len(raw) // 2], raw[:-1], raw + b"\0", raw + raw):
        with pytest.raises(InvalidSignatureError):
            jws.verify(f"{head}.{body}.{b64(bad)}", p.public, algorithms=[alg])
