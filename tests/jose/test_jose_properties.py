"""Properties (hypothesis): base64url has one spelling per byte string, and whatever text
or mutated token comes in, verification either returns the signed payload or raises an
``InvalidTokenError``, never another exception."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from jose_support import pair
from keycell.jose import InvalidTokenError, jws, jwt
from keycell.jose._codec import b64url_decode, b64url_encode

CLAIM_NAMES = ["exp", "nbf", "iat", "aud", "iss", "sub"]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@given(st.binary(max_size=200))
def test_base64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert text == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(text, "x") == data


@given(st.text(alphabet=ALPHABET, max_size=80))
def test_base64url_accepts_only_canonical_text(text: str) -> None:
    try:
        data = b64url_decode(text, "x")
    except InvalidTokenError:
        return
    assert b64url_encode(data) == text


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_arbitrary_text_is_refused_with_a_token_error(text: str) -> None:
    key = pair("HS256").keycell
    try:
        jws.verify(text, key, algorithms=["HS256"])
    except InvalidTokenError:
        return
    raise AssertionError("arbitrary text verified")  # pragma: no cover


@settings(max_examples=300)
@given(st.data())
def test_mutated_tokens_are_refused_with_a_token_error(data: st.DataObject) -> None:
    key = pair("ES256").keycell
    claims = {"sub": "alice", "exp": 4_000_000_000, "aud": ["a", "b"]}
    token = jwt.encode(claims, key, kid=True)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from([*ALPHABET, ".", "=", " ", "+", "/", "é"]))
    mutated = token[:i] + c + token[i + 1 :]
    try:
        got = jwt.decode(mutated, key.public_key(), algorithms=["ES256"], audience="a")
    except InvalidTokenError:
        return
    # Only a mutation that leaves the token's meaning intact may verify (a character
    # replaced by itself).
    assert mutated == token
    assert got == claims


@settings(max_examples=200)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        # Integers beyond a float's range (the time claims once raised OverflowError).
        | st.sampled_from([10**400, -(10**400), 2**1024])
        | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(CLAIM_NAMES) | st.text(max_size=3), inner)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_signed_json_claims(value: object) -> None:
    """Whatever JSON is signed, decode returns it (an object) or refuses it typed."""
    key = pair("HS256").keycell
    token = jws.sign(json.dumps(value).encode(), key, algorithm="HS256")
    try:
        got = jwt.decode(token, key, algorithms=["HS256"], now=0)
    except InvalidTokenError:
        return
    assert got == value
