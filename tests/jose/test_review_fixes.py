"""Findings of the outside review of ``keycell.jose`` (each test failed on the code before
the fix): the linear depth scan, finite ``leeway``/``now``, out-of-range time claims,
``typ``, ``key_ops``, strict JWK Set entries, ``headers=`` validation and the PyJWT
adapter's own key checks."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator

import jwt as pyjwt_module
import pytest
from jose_support import pair
from jwt.exceptions import InvalidKeyError
from keycell.jose import (
    JWK,
    JWKS,
    DecodeError,
    InvalidAlgorithmError,
    InvalidClaimError,
    InvalidHeaderError,
    KeySelectionError,
    _codec,
    jws,
    jwt,
)
from keycell.jose import pyjwt as adapter


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- 1. the depth scan is one linear pass ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('{"a":[[1]]}', 3),
        ('{"a":"[[[[{{{{"}', 1),  # brackets inside strings do not count
        ('{"a":"\\"[[["}', 1),  # an escaped quote does not end the string
        ('{"a":"\\\\"}', 1),  # an escaped backslash does not escape the quote
        ('{"a":"\\\\","b":[[]]}', 3),
        ('{"a":"\\u005b[","b":{}}', 2),
        ('"' + '\\"' * 1000, 0),  # unterminated: everything after the quote is string
    ],
)
def test_depth_scan_tracks_strings(text: str, depth: int) -> None:
    assert _codec._depth(text) == depth


def test_depth_scan_visits_each_character_once() -> None:
    """The scan walks the scanned characters once each: count its steps on the input
    that made the old regex quadratic (an unterminated string of ``\\"``)."""
    steps = 0
    saved = _codec._SCAN

    class Counting:
        def finditer(self, text: str) -> Iterator[object]:
            nonlocal steps
            for m in saved.finditer(text):
                steps += 1
                yield m

    text = '{"a":"' + '\\"' * 4000
    _codec._SCAN = Counting()  # type: ignore[assignment]
    try:
        _codec._depth(text)
    finally:
        _codec._SCAN = saved
    assert steps <= len(text)


def test_pathological_header_and_jwks_are_refused() -> None:
    """An 8 KiB header and a 1 MiB JWK Set of unterminated ``\\"`` strings are refused as
    malformed JSON (the old scan took ~0.26 s per such header and about an hour for the
    JWK Set; pytest-timeout bounds this test)."""
    key = pair("HS256").keycell
    header = ('{"alg":"HS256","x":"' + '\\"' * 4000)[: _codec.MAX_HEADER_BYTES]
    token = f"{_b64(header.encode())}.{_b64(b'{}')}.{_b64(bytes(32))}"
    with pytest.raises(DecodeError, match="not valid JSON"):
        jws.verify(token, key, algorithms=["HS256"])
    text = ('{"keys":["' + '\\"' * (1 << 19))[: 1 << 20]
    with pytest.raises(ValueError, match="not valid JSON"):
        JWKS.from_json(text)


def test_deep_nesting_is_refused_typed() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nests deeper"):
        JWKS.from_json('{"keys":' + deep + "}")


# -- 2. and 3. time checks -----------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["leeway", "now"])
def test_non_finite_leeway_or_now_is_refused(name: str, value: float) -> None:
    key = pair("HS256").keycell
    token = jwt.encode({"exp": 1}, key, algorithm="HS256")
    kwargs = {"leeway": 0, "now": 100, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a finite"):
        jwt.decode(token, key, algorithms=["HS256"], **kwargs)  # type: ignore[arg-type]


def test_integer_leeway_beyond_float_range_is_refused() -> None:
    key = pair("HS256").keycell
    token = jwt.encode({}, key, algorithm="HS256")
    with pytest.raises(ValueError, match="finite"):
        jwt.decode(token, key, algorithms=["HS256"], leeway=10**400)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_time_claim_beyond_float_range_is_invalid_claim(name: str, value: int) -> None:
    key = pair("HS256").keycell
    token = jwt.encode({name: value}, key, algorithm="HS256")
    with pytest.raises(InvalidClaimError, match=f"'{name}' claim is out of range"):
        jwt.decode(token, key, algorithms=["HS256"], now=0)


# -- 6. typ ----------------------------------------------------------------------------------


def test_typ_is_checked_when_asked() -> None:
    key = pair("EdDSA").keycell
    pub = key.public_key()
    document = jws.sign(b'{"sub":"admin"}', key)  # no typ
    access = jwt.encode({"sub": "x"}, key, headers={"typ": "at+jwt"})
    plain = jwt.encode({"sub": "y"}, key)
    # Default: typ is not checked.
    assert jwt.decode(document, pub, algorithms=["EdDSA"]) == {"sub": "admin"}
    # typ= compares case-insensitively, application/ optional; absent passes...
    assert jwt.decode(plain, pub, algorithms=["EdDSA"], typ="jwt") == {"sub": "y"}
    assert jwt.decode(plain, pub, algorithms=["EdDSA"], typ="application/JWT")
    assert jwt.decode(access, pub, algorithms=["EdDSA"], typ="AT+JWT") == {"sub": "x"}
    assert jwt.decode(document, pub, algorithms=["EdDSA"], typ="JWT")
    # ...unless require_typ=True.
    with pytest.raises(InvalidHeaderError, match="no typ"):
        jwt.decode(document, pub, algorithms=["EdDSA"], typ="JWT", require_typ=True)
    with pytest.raises(InvalidHeaderError, match="typ is not"):
        jwt.decode(access, pub, algorithms=["EdDSA"], typ="JWT")
    with pytest.raises(InvalidHeaderError, match="typ is not"):
        jwt.decode(plain, pub, algorithms=["EdDSA"], typ="at+jwt")
    with pytest.raises(ValueError, match="require_typ"):
        jwt.decode(plain, pub, algorithms=["EdDSA"], require_typ=True)
    with pytest.raises(TypeError, match="typ must be"):
        jwt.decode(plain, pub, algorithms=["EdDSA"], typ=1)  # type: ignore[arg-type]


def test_non_string_typ_in_a_token_is_refused() -> None:
    key = pair("HS256").keycell
    header = _b64(b'{"alg":"HS256","typ":["JWT"]}')
    signing_input = f"{header}.{_b64(b'{}')}"
    token = f"{signing_input}.{_b64(key.hmac(signing_input.encode(), 'sha256'))}"
    with pytest.raises(InvalidHeaderError, match="'typ' must be a string"):
        jwt.decode(token, key, algorithms=["HS256"])


# -- 9. headers= gets the checks verify makes ------------------------------------------------


@pytest.mark.parametrize("name", ["kid", "typ", "cty"])
def test_headers_string_members_are_checked(name: str) -> None:
    key = pair("HS256").keycell
    with pytest.raises(TypeError, match=f"'{name}' must be a string"):
        jwt.encode({}, key, algorithm="HS256", headers={name: {"$ne": None}})
    with pytest.raises(TypeError, match=f"'{name}' must be a string"):
        jws.sign(b"x", key, algorithm="HS256", headers={name: 1})


# -- 5. JWK Set entries ----------------------------------------------------------------------


def _rsa_members() -> dict[str, str]:
    members: dict[str, str] = pair("RS256").keycell.public_key().to_jwk()
    return members


def _good() -> dict[str, str]:
    members: dict[str, str] = pair("EdDSA").keycell.public_key().to_jwk()
    return members


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"kty": "RSA", "n": "", "e": ""}, "'n' is empty"),
        ({"kty": "RSA", "n": "AA", "e": "AQAB"}, "leading zero"),
        ({"kty": "RSA", "n": "AQ", "e": "AQAB"}, "modulus n is not an odd number above 2"),
        ({"kty": "RSA", "n": "AAAAAQ", "e": "AQAB"}, "leading zero"),
        ({"n": "AQAB"}, "no 'kty'"),
        ({"kty": ["RSA"]}, "no 'kty'"),
        ({"kty": None, "x": "AA"}, "no 'kty'"),
        (1, "not a JSON object"),
        ("x", "not a JSON object"),
        (None, "not a JSON object"),
    ],
)
@pytest.mark.parametrize("skip", [False, True])
def test_malformed_jwks_entries_are_refused_either_way(
    entry: object, reason: str, skip: bool
) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        JWKS.from_dict({"keys": [entry, _good()]}, skip_unsupported=skip)
    assert type(info.value) is ValueError


def test_rsa_leading_zero_and_bad_exponent_are_refused() -> None:
    members = _rsa_members()
    n = base64.urlsafe_b64decode(members["n"] + "==")
    with pytest.raises(ValueError, match="leading zero"):
        JWK.from_dict({**members, "n": _b64(b"\0" + n)})
    with pytest.raises(ValueError, match="leading zero"):
        JWK.from_dict({**members, "e": "AAEAAQ"})
    with pytest.raises(ValueError, match="exponent e is not an odd"):
        JWK.from_dict({**members, "e": _b64(b"\x01\x00\x00")})  # even
    with pytest.raises(ValueError, match="modulus n is not an odd"):
        JWK.from_dict({**members, "n": _b64(n[:-1] + bytes([n[-1] & 0xFE]))})


def test_unsupported_rsa_sizes_are_skipped_and_say_why() -> None:
    members = _rsa_members()
    n = int.from_bytes(base64.urlsafe_b64decode(members["n"] + "=="), "big")
    big = (1 << 8191) | 1
    small = n >> 1100 | 1  # 948 bits, odd
    for bad, reason in (
        ({**members, "n": _b64(big.to_bytes(1024, "big"))}, "8192 bits"),
        ({**members, "n": _b64(small.to_bytes((small.bit_length() + 7) // 8, "big"))}, "948 bits"),
        ({**members, "e": "Aw"}, "exponent"),
    ):
        with pytest.raises(ValueError, match=reason):
            JWKS.from_dict({"keys": [bad, _good()]})
        assert len(JWKS.from_dict({"keys": [bad, _good()]}, skip_unsupported=True)) == 1


# -- 7. key_ops ------------------------------------------------------------------------------


def test_key_ops_is_honoured_and_kept() -> None:
    key = pair("EdDSA").keycell
    token = jwt.encode({"x": 1}, key, kid="a")
    encrypt_only = {**_good(), "kid": "a", "key_ops": ["encrypt"]}
    with pytest.raises(InvalidAlgorithmError):
        jwt.decode(token, JWKS.from_dict({"keys": [encrypt_only]}), algorithms=["EdDSA"])
    unnamed = jwt.encode({"x": 1}, key)
    with pytest.raises(KeySelectionError):
        jwt.decode(unnamed, JWKS.from_dict({"keys": [encrypt_only]}), algorithms=["EdDSA"])
    with pytest.raises(ValueError, match="fits none"):
        jwt.decode(token, JWK.from_dict(encrypt_only), algorithms=["EdDSA"])
    verify = {**_good(), "kid": "a", "key_ops": ["verify"]}
    assert jwt.decode(token, JWKS.from_dict({"keys": [verify]}), algorithms=["EdDSA"]) == {"x": 1}
    parsed = JWK.from_dict(verify)
    assert parsed.key_ops == ("verify",)
    assert parsed.to_dict()["key_ops"] == ["verify"]
    assert JWK.from_json(parsed.to_json()) == parsed
    assert JWK(key, key_ops=["verify"]).to_dict()["key_ops"] == ["verify"]
    assert not JWK(key, key_ops=["sign"]).fits("EdDSA")


@pytest.mark.parametrize("key_ops", ["verify", ["verify", 1], ["verify", "verify"]])
def test_malformed_key_ops_is_refused(key_ops: object) -> None:
    with pytest.raises(ValueError, match="key_ops"):
        JWK.from_dict({**_good(), "key_ops": key_ops})


def test_key_ops_argument_is_checked() -> None:
    key = pair("EdDSA").keycell
    with pytest.raises(TypeError, match="key_ops"):
        JWK(key, key_ops="verify")
    with pytest.raises(ValueError, match="repeat"):
        JWK(key, key_ops=["verify", "verify"])


# -- 8. the PyJWT adapter's sign and verify check the key ------------------------------------


@pytest.fixture
def installed() -> Iterator[None]:
    adapter.install()
    yield
    adapter.uninstall()


@pytest.mark.usefixtures("installed")
def test_adapter_algorithm_objects_check_the_key() -> None:
    objects = pyjwt_module.api_jws._jws_global_obj
    es256 = objects.get_algorithm_by_name("ES256")
    hs256 = objects.get_algorithm_by_name("HS256")
    p384 = pair("ES384").keycell
    p256 = pair("ES256").keycell
    with pytest.raises(InvalidKeyError, match="does not fit ES256"):
        es256.sign(b"msg", p384)
    with pytest.raises(InvalidKeyError, match="does not fit ES256"):
        es256.verify(b"msg", p384.public_key(), bytes(96))
    with pytest.raises(InvalidKeyError, match="does not fit HS256"):
        hs256.verify(b"msg", p256.public_key(), bytes(32))
    with pytest.raises(InvalidKeyError, match="public key"):
        es256.sign(b"msg", JWK(p256))
    sig = es256.sign(b"msg", p256)
    assert es256.verify(b"msg", JWK(p256), sig)
    assert not es256.verify(b"other", p256.public_key(), sig)


def test_jwks_entry_json_round_trip_keeps_members() -> None:
    entry = {**_good(), "kid": "k", "use": "sig", "key_ops": ["verify"]}
    assert json.loads(JWKS.from_dict({"keys": [entry]}).to_json()) == {"keys": [entry]}
