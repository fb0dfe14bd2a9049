"""keycell.jose.jwt: encode writes the header and claims it says; decode checks the
signature, then exp/nbf/iat (with leeway), aud, iss and required claims. Every time
check runs at a fixed ``now``, so no test depends on when it runs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from jose_support import pair
from keycell.jose import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    jws,
    jwt,
    thumbprint,
)

NOW = 1_700_000_000


def parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    h, p, _ = token.split(".")
    dec = [json.loads(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))) for x in (h, p)]
    return dec[0], dec[1]


@pytest.fixture
def key() -> object:
    return pair("HS256").keycell


def test_encode_writes_alg_and_typ_only(key: object) -> None:
    token = jwt.encode({"sub": "alice"}, key, algorithm="HS256")  # type: ignore[arg-type]
    assert parts(token) == ({"alg": "HS256", "typ": "JWT"}, {"sub": "alice"})
    at = jwt.encode({"sub": "a"}, key, algorithm="HS256", headers={"typ": "at+jwt"})  # type: ignore[arg-type]
    assert parts(at)[0] == {"alg": "HS256", "typ": "at+jwt"}


def test_datetimes_become_numeric_dates(key: object) -> None:
    exp = datetime.fromtimestamp(NOW + 60, UTC)
    token = jwt.encode(
        {"exp": exp, "iat": datetime.fromtimestamp(NOW, UTC)}, key, algorithm="HS256"
    )  # type: ignore[arg-type]
    assert parts(token)[1] == {"exp": NOW + 60, "iat": NOW}
    with pytest.raises(ValueError, match="timezone-aware"):
        jwt.encode({"exp": datetime(2030, 1, 1)}, key, algorithm="HS256")  # type: ignore[arg-type]


def test_claims_must_be_a_mapping(key: object) -> None:
    with pytest.raises(TypeError):
        jwt.encode([("sub", "a")], key, algorithm="HS256")  # type: ignore[arg-type]
    token = jws.sign(b'["not", "an", "object"]', key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="object"):
        jwt.decode(token, key, algorithms=["HS256"])  # type: ignore[arg-type]
    token = jws.sign(b'{"a":1,"a":2}', key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="repeats"):
        jwt.decode(token, key, algorithms=["HS256"])  # type: ignore[arg-type]


def test_signature_is_checked_before_claims(key: object) -> None:
    token = jwt.encode({"exp": NOW - 10}, pair("HS384").keycell, algorithm="HS256")
    with pytest.raises(InvalidSignatureError):
        jwt.decode(token, key, algorithms=["HS256"], now=NOW)  # type: ignore[arg-type]


def test_exp_with_leeway(key: object) -> None:
    token = jwt.encode({"exp": NOW}, key, algorithm="HS256")  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], now=NOW - 1) == {"exp": NOW}  # type: ignore[arg-type]
    with pytest.raises(ExpiredSignatureError):
        jwt.decode(token, key, algorithms=["HS256"], now=NOW)  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], now=NOW + 29, leeway=30)  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], now=NOW + 29, leeway=timedelta(seconds=30))  # type: ignore[arg-type]
    with pytest.raises(ExpiredSignatureError):
        jwt.decode(token, key, algorithms=["HS256"], now=NOW + 30, leeway=30)  # type: ignore[arg-type]
    at = datetime.fromtimestamp(NOW - 1, UTC)
    assert jwt.decode(token, key, algorithms=["HS256"], now=at)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        jwt.decode(token, key, algorithms=["HS256"], now=NOW, leeway=-1)  # type: ignore[arg-type]


def test_nbf_and_iat(key: object) -> None:
    nbf = jwt.encode({"nbf": NOW}, key, algorithm="HS256")  # type: ignore[arg-type]
    assert jwt.decode(nbf, key, algorithms=["HS256"], now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ImmatureSignatureError, match="nbf"):
        jwt.decode(nbf, key, algorithms=["HS256"], now=NOW - 1)  # type: ignore[arg-type]
    assert jwt.decode(nbf, key, algorithms=["HS256"], now=NOW - 5, leeway=5)  # type: ignore[arg-type]
    iat = jwt.encode({"iat": NOW}, key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(ImmatureSignatureError, match="iat"):
        jwt.decode(iat, key, algorithms=["HS256"], now=NOW - 1)  # type: ignore[arg-type]
    assert jwt.decode(iat, key, algorithms=["HS256"], now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1700000000", True, None, [1]])
def test_time_claims_must_be_numbers(key: object, claim: str, value: object) -> None:
    token = jwt.encode({claim: value}, key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidClaimError, match=claim):
        jwt.decode(token, key, algorithms=["HS256"], now=NOW)  # type: ignore[arg-type]


def test_audience(key: object) -> None:
    one = jwt.encode({"aud": "api"}, key, algorithm="HS256")  # type: ignore[arg-type]
    many = jwt.encode({"aud": ["web", "api"]}, key, algorithm="HS256")  # type: ignore[arg-type]
    none = jwt.encode({"sub": "a"}, key, algorithm="HS256")  # type: ignore[arg-type]
    for token in (one, many):
        assert jwt.decode(token, key, algorithms=["HS256"], audience="api")  # type: ignore[arg-type]
        assert jwt.decode(token, key, algorithms=["HS256"], audience=["other", "api"])  # type: ignore[arg-type]
        with pytest.raises(InvalidAudienceError):
            jwt.decode(token, key, algorithms=["HS256"], audience="other")  # type: ignore[arg-type]
        # A token naming an audience is refused by a caller expecting none.
        with pytest.raises(InvalidAudienceError, match="audience="):
            jwt.decode(token, key, algorithms=["HS256"])  # type: ignore[arg-type]
    with pytest.raises(MissingRequiredClaimError) as info:
        jwt.decode(none, key, algorithms=["HS256"], audience="api")  # type: ignore[arg-type]
    assert info.value.claim == "aud"
    bad = jwt.encode({"aud": ["api", 3]}, key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidAudienceError, match="array of strings"):
        jwt.decode(bad, key, algorithms=["HS256"], audience="api")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        jwt.decode(one, key, algorithms=["HS256"], audience=[])  # type: ignore[arg-type]


def test_issuer(key: object) -> None:
    token = jwt.encode({"iss": "https://issuer"}, key, algorithm="HS256")  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], issuer="https://issuer")  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], issuer=["a", "https://issuer"])  # type: ignore[arg-type]
    with pytest.raises(InvalidIssuerError):
        jwt.decode(token, key, algorithms=["HS256"], issuer="https://other")  # type: ignore[arg-type]
    no_iss = jwt.encode({}, key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(MissingRequiredClaimError, match="iss"):
        jwt.decode(no_iss, key, algorithms=["HS256"], issuer="https://issuer")  # type: ignore[arg-type]
    odd = jwt.encode({"iss": ["https://issuer"]}, key, algorithm="HS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidIssuerError):
        jwt.decode(odd, key, algorithms=["HS256"], issuer="https://issuer")  # type: ignore[arg-type]


def test_require(key: object) -> None:
    token = jwt.encode({"sub": "a", "exp": NOW + 60}, key, algorithm="HS256")  # type: ignore[arg-type]
    assert jwt.decode(token, key, algorithms=["HS256"], require=["sub", "exp"], now=NOW)  # type: ignore[arg-type]
    with pytest.raises(MissingRequiredClaimError, match="jti") as info:
        jwt.decode(token, key, algorithms=["HS256"], require=["sub", "jti"], now=NOW)  # type: ignore[arg-type]
    assert info.value.claim == "jti"
    with pytest.raises(TypeError):
        jwt.decode(token, key, algorithms=["HS256"], require="exp", now=NOW)  # type: ignore[arg-type]


def test_asymmetric_round_trip_with_kid() -> None:
    p = pair("ES384")
    token = jwt.encode({"sub": "a", "exp": NOW + 60}, p.keycell, kid=True)
    header, _ = parts(token)
    assert header == {"alg": "ES384", "typ": "JWT", "kid": thumbprint(p.keycell)}
    assert jwt.decode(token, p.public, algorithms=["ES384"], now=NOW) == {
        "sub": "a",
        "exp": NOW + 60,
    }
