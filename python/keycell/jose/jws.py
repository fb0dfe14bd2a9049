"""Compact JWS (RFC 7515) with keycell keys: :func:`sign` and :func:`verify`.

>>> from keycell import Ed25519PrivateKey
>>> from keycell.jose import jws
>>> key = Ed25519PrivateKey.generate()
>>> token = jws.sign(b"release 1.2 digest", key)
>>> jws.verify(token, key.public_key(), algorithms=["EdDSA"])
b'release 1.2 digest'

The protected header holds ``alg`` only (and ``kid`` or extra members when asked). The
signature or MAC is computed inside keycell (Rust, a PKCS#11 token or the agent); nothing
here reads key bytes. Verification is strict: see :func:`verify`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from . import _algorithms
from ._algorithms import Algorithm
from ._codec import (
    MAX_HEADER_BYTES,
    MAX_TOKEN_LENGTH,
    b64url_decode,
    b64url_encode,
    dumps,
    loads_object,
)
from .errors import (
    DecodeError,
    InvalidAlgorithmError,
    InvalidHeaderError,
    KeySelectionError,
)
from .jwk import JWK, JWKS, thumbprint

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["KeyOrJWKS", "sign", "verify"]

KeyOrJWKS: TypeAlias = "_algorithms.VerifyingKey | JWK | JWKS"

# Header members a caller may not set through ``headers=``: the algorithm comes from the
# key, and keycell understands no ``crit`` extension and never writes unencoded payloads.
_RESERVED = ("alg", "crit", "b64")
# Registered header members whose value must be a string (RFC 7515 §4.1), checked the same
# way on headers keycell writes (``kid=``, ``headers=``) and on headers it reads.
_STRING_MEMBERS = ("kid", "typ", "cty")


def _string_members_problem(header: Mapping[str, Any]) -> str | None:
    """What is wrong with ``header``'s string members, or ``None``."""
    for name in _STRING_MEMBERS:
        if name in header and not isinstance(header[name], str):
            return f"the header member {name!r} must be a string"
    return None


def _header(
    key: object,
    alg: Algorithm,
    kid: str | bool | None,
    headers: Mapping[str, Any] | None,
    typ: str | None,
) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": alg.name}
    if typ is not None:
        header["typ"] = typ
    if kid is True:
        if alg.family == "hmac":
            raise ValueError("kid=True needs a public key (RFC 7638): give an HMAC key's kid")
        header["kid"] = thumbprint(key)
    elif isinstance(kid, str):
        header["kid"] = kid
    elif kid is not None and kid is not False:
        raise TypeError("kid must be a str, True (the RFC 7638 thumbprint) or None")
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise TypeError("headers must be a mapping")
        for name, value in headers.items():
            if not isinstance(name, str):
                raise TypeError("header member names must be str")
            if name in _RESERVED:
                raise ValueError(f"the header member {name!r} cannot be set through headers=")
            if name == "kid" and "kid" in header:
                raise ValueError("kid given twice (kid= and headers=)")
            header[name] = value
    problem = _string_members_problem(header)
    if problem is not None:
        raise TypeError(problem)
    return header


def _payload_bytes(payload: Buffer) -> bytes:
    if isinstance(payload, str):
        raise TypeError("the payload must be bytes-like; encode a str first")
    return bytes(memoryview(payload))


def _sign(
    payload: bytes,
    key: _algorithms.SigningKey,
    algorithm: str | None,
    kid: str | bool | None,
    headers: Mapping[str, Any] | None,
    typ: str | None,
) -> str:
    alg = _algorithms.signing_algorithm(key, algorithm)
    header = _header(key, alg, kid, headers, typ)
    signing_input = f"{b64url_encode(dumps(header))}.{b64url_encode(payload)}"
    signature = _algorithms.sign(alg, key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def sign(
    payload: Buffer,
    key: _algorithms.SigningKey,
    *,
    algorithm: str | None = None,
    kid: str | bool | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``payload`` (bytes-like) as a compact JWS.

    ``key``: an HMAC key (``SecretKey``, a token or agent secret key; ``algorithm`` one of
    ``HS256``/``HS384``/``HS512``, required), an Ed25519 private key (``EdDSA``, the
    default, or ``Ed25519``), an EC private key (``ES256`` on P-256, ``ES384`` on P-384,
    fixed by the curve) or an RSA private key (``RS256``...``PS512``, required).
    ``kid``: a key ID for the header, or ``True`` for the RFC 7638 thumbprint of the
    public key. ``headers``: extra protected header members (not ``alg``, ``crit``,
    ``b64``; ``kid``, ``typ`` and ``cty`` must be strings, as :func:`verify` requires:
    ``TypeError``). ``ValueError`` if the algorithm does not fit the key; ``TypeError`` for
    something that is not a keycell signing key (``bytes`` included).
    """
    return _sign(_payload_bytes(payload), key, algorithm, kid, headers, None)


def _allowed_algorithms(algorithms: Iterable[str]) -> tuple[Algorithm, ...]:
    """The caller's ``algorithms`` list, checked: a non-empty list of supported names."""
    if isinstance(algorithms, (str, bytes)) or not isinstance(algorithms, Iterable):
        raise TypeError("algorithms must be a list of algorithm names, e.g. ['EdDSA']")
    specs = tuple(_algorithms.algorithm_named(a) for a in algorithms)
    if not specs:
        raise ValueError("algorithms must name at least one algorithm")
    return specs


def _check_key_fits_some(key_or_jwks: object, allowed: tuple[Algorithm, ...]) -> None:
    if isinstance(key_or_jwks, JWKS):
        return
    if isinstance(key_or_jwks, JWK):
        ok = any(key_or_jwks.fits(a.name) for a in allowed)
    else:
        key = _algorithms.verifying_key(key_or_jwks)
        ok = any(_algorithms.fits(a, key) for a in allowed)
    if not ok:
        names = ", ".join(a.name for a in allowed)
        raise ValueError(f"the key fits none of the algorithms ({names})")


def _select(key_or_jwks: object, alg: Algorithm, header: Mapping[str, Any]) -> Any:
    if isinstance(key_or_jwks, JWKS):
        kid = header.get("kid")
        if kid is not None:
            entry = key_or_jwks.get(kid)
            if entry is None:
                raise KeySelectionError("no key of the JWK Set has the token's kid")
            if not entry.fits(alg.name):
                raise InvalidAlgorithmError("the key named by the token's kid does not fit its alg")
            return entry.key
        candidates = [e for e in key_or_jwks if e.fits(alg.name)]
        if len(candidates) != 1:
            raise KeySelectionError(
                f"the token names no kid and {len(candidates)} keys of the JWK Set fit "
                f"{alg.name} (exactly one must)"
            )
        return candidates[0].key
    if isinstance(key_or_jwks, JWK):
        if not key_or_jwks.fits(alg.name):
            raise InvalidAlgorithmError(f"the token's algorithm {alg.name} does not fit the key")
        return key_or_jwks.key
    key = _algorithms.verifying_key(key_or_jwks)
    if not _algorithms.fits(alg, key):
        raise InvalidAlgorithmError(f"the token's algorithm {alg.name} does not fit the key")
    return key


def _split(token: str | bytes) -> tuple[str, str, str]:
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("the token is not ASCII") from None
    if not isinstance(token, str):
        raise TypeError(f"a token must be a str, not {type(token).__name__}")
    if len(token) > MAX_TOKEN_LENGTH:
        raise DecodeError(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise DecodeError(
            "a compact JWS has three dot-separated parts"
            + (
                " (this looks like a JWE, which keycell.jose does not decrypt)"
                if len(parts) == 5
                else ""
            )
        )
    return parts[0], parts[1], parts[2]


def _check_header(header: Mapping[str, Any], allowed: tuple[Algorithm, ...]) -> Algorithm:
    name = header.get("alg")
    if not isinstance(name, str):
        raise InvalidAlgorithmError("the token's header names no algorithm")
    if "crit" in header:
        raise InvalidHeaderError(
            "the token's header has crit: keycell.jose understands no JWS extension"
        )
    if "b64" in header and header["b64"] is not True:
        raise InvalidHeaderError("unencoded payloads (b64: false, RFC 7797) are not accepted")
    problem = _string_members_problem(header)
    if problem is not None:
        raise InvalidHeaderError(problem.replace("the header", "the token's header", 1))
    for spec in allowed:
        if spec.name == name:
            return spec
    raise InvalidAlgorithmError("the token's algorithm is not in the allowed algorithms")


def _verify_compact(
    token: str | bytes, key_or_jwks: object, algorithms: Iterable[str]
) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS; its protected header and payload (see :func:`verify`)."""
    allowed = _allowed_algorithms(algorithms)
    _check_key_fits_some(key_or_jwks, allowed)
    header_b64, payload_b64, signature_b64 = _split(token)
    header = loads_object(b64url_decode(header_b64, "header"), "protected header", MAX_HEADER_BYTES)
    alg = _check_header(header, allowed)
    key = _select(key_or_jwks, alg, header)
    payload = b64url_decode(payload_b64, "payload")
    signature = b64url_decode(signature_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    _algorithms.verify(alg, key, signing_input, signature)
    return header, payload


def verify(token: str | bytes, key_or_jwks: KeyOrJWKS, *, algorithms: Iterable[str]) -> bytes:
    """Verify a compact JWS and return its payload.

    ``key_or_jwks``: a keycell key (public, private or HMAC), a :class:`~keycell.jose.JWK`
    or a :class:`~keycell.jose.JWKS` (selected by the token's ``kid``; without one, only
    if exactly one entry fits the algorithm). ``algorithms``: the non-empty list of
    algorithms accepted (``ValueError`` if the key fits none of them).

    Raises a :class:`~keycell.jose.InvalidTokenError` subclass: ``DecodeError``
    (malformed, non-canonical base64url, repeated JSON member names, over
    :data:`~keycell.jose.MAX_TOKEN_LENGTH` characters, a header over 8 KiB or JSON nested
    deeper than 32), ``InvalidAlgorithmError`` (an ``alg`` not in the list, ``none``, or
    one that does not fit the key), ``InvalidHeaderError`` (``crit``, ``b64: false``,
    a ``kid``, ``typ`` or ``cty`` that is not a string),
    ``KeySelectionError`` or ``InvalidSignatureError``.
    """
    return _verify_compact(token, key_or_jwks, algorithms)[1]
