"""JOSE with keycell keys: compact JWS and JWT, JSON Web Keys and JWK Sets (RFC 7515,
7517, 7518, 7519, 7638, 8037, 9864).

>>> from keycell import ECPrivateKey
>>> from keycell.jose import JWKS, jwt
>>> key = ECPrivateKey.generate("P-256")
>>> token = jwt.encode({"sub": "alice"}, key, kid=True)
>>> jwks = JWKS([key.public_key()])
>>> jwt.decode(token, jwks, algorithms=["ES256"])
{'sub': 'alice'}

- :mod:`keycell.jose.jws`: ``sign(payload, key, ...)`` / ``verify(token, key_or_jwks,
  algorithms=...)`` for any payload;
- :mod:`keycell.jose.jwt`: ``encode(claims, key, ...)`` / ``decode(token, key_or_jwks,
  algorithms=..., audience=..., issuer=..., leeway=..., require=...)``;
- :class:`JWK`, :class:`JWKS`, :func:`thumbprint`: public keys as JSON (``pub.to_jwk()``
  is the encoding), RFC 7638 thumbprints as the default ``kid``;
- :mod:`keycell.jose.pyjwt`: lets PyJWT take keycell keys.

Algorithms: ``EdDSA`` (and ``Ed25519``), ``HS256``/``HS384``/``HS512``, ``ES256``,
``ES384``, ``RS256``/``RS384``/``RS512``, ``PS256``/``PS384``/``PS512``. Each key is
bound to its algorithms by its class: an HMAC key never verifies an RS/ES/EdDSA token, a
public key is never an HMAC secret, ``bytes`` are never keys, ``none`` is never accepted
and the ``algorithms`` list is required. Signing and MAC computation run inside keycell;
nothing in this package reads key bytes.

Errors: every refused token raises :class:`InvalidTokenError` (a
:class:`keycell.KeycellError`, deliberately not a ``ValueError``: see
:mod:`keycell.jose.errors`) or a subclass.
"""

from __future__ import annotations

from . import jws, jwt
from ._algorithms import ALGORITHMS as _ALGORITHMS
from ._codec import MAX_HEADER_BYTES, MAX_JSON_DEPTH, MAX_TOKEN_LENGTH
from .errors import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidClaimError,
    InvalidHeaderError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    KeySelectionError,
    MissingRequiredClaimError,
)
from .jwk import JWK, JWKS, thumbprint

#: The ``alg`` values keycell.jose signs and verifies.
ALGORITHMS: tuple[str, ...] = tuple(_ALGORITHMS)

__all__ = [
    "ALGORITHMS",
    "JWK",
    "JWKS",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_LENGTH",
    "DecodeError",
    "ExpiredSignatureError",
    "ImmatureSignatureError",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidClaimError",
    "InvalidHeaderError",
    "InvalidIssuerError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "KeySelectionError",
    "MissingRequiredClaimError",
    "jws",
    "jwt",
    "thumbprint",
]
