"""JSON Web Tokens (RFC 7519) with keycell keys: :func:`encode` and :func:`decode`.

>>> from keycell import SecretKey
>>> from keycell.jose import jwt
>>> key = SecretKey.generate(32)
>>> token = jwt.encode({"sub": "alice", "aud": "api"}, key, algorithm="HS256")
>>> jwt.decode(token, key, algorithms=["HS256"], audience="api")["sub"]
'alice'

A token is a JWS (:mod:`keycell.jose.jws`) whose header has ``typ: JWT`` and whose payload
is a JSON object of claims; :func:`decode` checks the signature first, then the claims.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from . import _algorithms
from ._codec import MAX_TOKEN_LENGTH, dumps, loads_object
from .errors import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidHeaderError,
    InvalidIssuerError,
    MissingRequiredClaimError,
)
from .jws import KeyOrJWKS, _sign, _verify_compact

__all__ = ["decode", "encode"]

_TIME_CLAIMS = ("exp", "nbf", "iat")


def _numeric_date(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("a datetime claim must be timezone-aware (e.g. datetime.now(UTC))")
    return int(value.timestamp())


def encode(
    claims: Mapping[str, Any],
    key: _algorithms.SigningKey,
    *,
    algorithm: str | None = None,
    kid: str | bool | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` (a mapping, JSON-serializable) as a compact JWT.

    The header is ``{"alg": ..., "typ": "JWT"}`` plus ``kid`` and ``headers`` if given
    (``headers`` may replace ``typ``, e.g. ``"at+jwt"``). ``exp``, ``nbf`` and ``iat``
    may be timezone-aware ``datetime`` objects (written as integer seconds). Keys,
    ``algorithm`` and ``kid`` as :func:`keycell.jose.jws.sign`.
    """
    if not isinstance(claims, Mapping):
        raise TypeError(f"claims must be a mapping, not {type(claims).__name__}")
    body = dict(claims)
    for name in _TIME_CLAIMS:
        if isinstance(body.get(name), datetime):
            body[name] = _numeric_date(body[name])
    return _sign(dumps(body), key, algorithm, kid, headers, "JWT")


def _seconds(value: float | timedelta, what: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or a timedelta")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        # NaN compares false with everything and an infinite leeway or clock accepts
        # every exp: either would switch the time checks off without saying so.
        raise ValueError(f"{what} must be a finite number of seconds")
    return seconds


def _names(value: str | Iterable[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{what} must be a str or a non-empty list of str")
    return names


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidClaimError(f"the {name!r} claim must be a number (NumericDate)")
    try:
        return float(value)
    except OverflowError:
        # An integer beyond a float's range (10**400): no real time, and float() fails.
        raise InvalidClaimError(f"the {name!r} claim is out of range for a NumericDate") from None


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    if "iat" in claims and _number(claims, "iat") > now + leeway:
        raise ImmatureSignatureError("the token was issued in the future (iat)")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise ImmatureSignatureError("the token is not yet valid (nbf)")
    if "exp" in claims and now >= _number(claims, "exp") + leeway:
        raise ExpiredSignatureError("the token has expired (exp)")


def _check_audience(claims: Mapping[str, Any], expected: tuple[str, ...] | None) -> None:
    if expected is None:
        if "aud" in claims:
            raise InvalidAudienceError(
                "the token names an audience (aud) and none was expected: pass audience="
            )
        return
    if "aud" not in claims:
        raise MissingRequiredClaimError("aud")
    aud = claims["aud"]
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidAudienceError("the 'aud' claim must be a string or an array of strings")
    if not set(values) & set(expected):
        raise InvalidAudienceError("the token is not for the expected audience")


def _media_type(value: str) -> str:
    """RFC 7515 §4.1.9: compared case-insensitively, ``application/`` may be left out."""
    lowered = value.lower()
    return lowered if "/" in lowered else "application/" + lowered


def _check_typ(header: Mapping[str, Any], expected: str | None) -> None:
    if expected is None or "typ" not in header:
        # RFC 7519 §5.1: typ is optional; a token without one is not refused (a caller who
        # needs explicit typing, RFC 8725 §3.11, passes require_typ=True).
        return
    if _media_type(header["typ"]) != _media_type(expected):
        raise InvalidHeaderError("the token's typ is not the expected one")


def _check_issuer(claims: Mapping[str, Any], expected: tuple[str, ...] | None) -> None:
    if expected is None:
        return
    if "iss" not in claims:
        raise MissingRequiredClaimError("iss")
    if not isinstance(claims["iss"], str) or claims["iss"] not in expected:
        raise InvalidIssuerError("the token is not from the expected issuer")


def decode(
    token: str | bytes,
    key_or_jwks: KeyOrJWKS,
    *,
    algorithms: Iterable[str],
    audience: str | Iterable[str] | None = None,
    issuer: str | Iterable[str] | None = None,
    leeway: float | timedelta = 0,
    require: Iterable[str] = (),
    now: float | datetime | None = None,
    typ: str | None = None,
    require_typ: bool = False,
) -> dict[str, Any]:
    """Verify a JWT and return its claims.

    The signature is checked first, as :func:`keycell.jose.jws.verify` does (same keys,
    ``algorithms`` and errors), then the claims:

    - ``exp`` (expired when now >= exp + leeway: ``ExpiredSignatureError``), ``nbf`` and
      ``iat`` (in the future beyond the leeway: ``ImmatureSignatureError``) when present,
      each a number (``InvalidClaimError`` otherwise);
    - ``audience`` (a str or a list): the token's ``aud`` (a string or an array) must name
      one of them (``InvalidAudienceError``; ``MissingRequiredClaimError`` if absent); a
      token naming an audience is refused when ``audience`` is not given (RFC 7519 §4.1.3);
    - ``issuer`` (a str or a list): ``iss`` must be one of them;
    - ``require``: claim names that must be present (``MissingRequiredClaimError``).

    ``typ``: the header ``typ`` expected (e.g. ``"JWT"``, or ``"at+jwt"`` for RFC 9068
    access tokens), compared as RFC 7515 §4.1.9 says (case-insensitively, with or without
    ``application/``); a token with another ``typ`` raises ``InvalidHeaderError``. A token
    without ``typ`` passes unless ``require_typ=True`` (RFC 8725 §3.11 explicit typing).
    The default ``typ=None`` checks nothing beyond ``typ`` being a string, so a signed
    JWS of another kind whose payload is a JSON object is read as claims: pass ``typ``
    when one key signs more than one kind of token.

    ``leeway``: seconds (or a ``timedelta``) of clock skew allowed. ``now``: the time to
    check against (POSIX seconds or an aware ``datetime``) instead of the system clock, for
    tests that must not depend on when they run and for checking a token as of a recorded
    time; production code leaves it ``None``.
    """
    if typ is not None and not isinstance(typ, str):
        raise TypeError("typ must be a str or None")
    if require_typ and typ is None:
        raise ValueError("require_typ=True needs typ=")
    leeway_s = _seconds(leeway, "leeway")
    if leeway_s < 0:
        raise ValueError("leeway must not be negative")
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        now_s = now.timestamp()
    elif now is None:
        now_s = time.time()
    else:
        now_s = _seconds(now, "now")
    if isinstance(require, str):
        raise TypeError("require must be a list of claim names, not one str")
    required = tuple(require)
    if not all(isinstance(r, str) for r in required):
        raise TypeError("require must be a list of claim names")
    expected_aud = _names(audience, "audience")
    expected_iss = _names(issuer, "issuer")

    header, payload = _verify_compact(token, key_or_jwks, algorithms)
    if require_typ and "typ" not in header:
        raise InvalidHeaderError("the token's header has no typ")
    _check_typ(header, typ)
    claims = loads_object(payload, "claims", MAX_TOKEN_LENGTH)
    for name in required:
        if name not in claims:
            raise MissingRequiredClaimError(name)
    _check_times(claims, now_s, leeway_s)
    _check_issuer(claims, expected_iss)
    _check_audience(claims, expected_aud)
    return claims
