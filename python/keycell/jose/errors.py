"""The errors of :mod:`keycell.jose`: a refused token raises :class:`InvalidTokenError`
or one of its subclasses.

A refused token is something keycell detects in untrusted input, so the errors derive
from :class:`keycell.KeycellError` and not from :class:`ValueError`: ``ValueError`` and
``TypeError`` stay reserved for mistakes in the call itself (an empty ``algorithms`` list,
a key that fits none of them, a ``bytes`` object passed as a key), so a bug in the caller
is never mistaken for an attacker's token, nor the other way round.
:class:`InvalidSignatureError` is also a :class:`keycell.InvalidSignature`. Messages name
the check that failed (and claim or header names), never key bytes or expected values.
"""

from __future__ import annotations

from ..exceptions import InvalidSignature, KeycellError

__all__ = [
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
]


class InvalidTokenError(KeycellError):
    """A token (JWS or JWT) was refused; the subclass says which check failed."""


class DecodeError(InvalidTokenError):
    """The token is malformed: not three base64url parts, non-canonical base64url, JSON
    that is invalid, not an object, has repeated member names, or exceeds a size or depth
    limit."""


class InvalidHeaderError(InvalidTokenError):
    """The protected header asks for something keycell does not do (``crit`` extensions,
    an unencoded payload with ``b64: false``) or has a member of the wrong type."""


class InvalidAlgorithmError(InvalidTokenError):
    """The token's ``alg`` is not in the caller's ``algorithms`` list, is ``none``, or does
    not fit the key."""


class KeySelectionError(InvalidTokenError):
    """No key of the JWK Set can verify the token: its ``kid`` matches no entry, or it has
    none and not exactly one entry fits its algorithm."""


class InvalidSignatureError(InvalidTokenError, InvalidSignature):
    """The signature or MAC does not verify under the key."""


class InvalidClaimError(InvalidTokenError):
    """A JWT claim is refused (base class of the claim checks; also a registered claim of
    the wrong type)."""


class ExpiredSignatureError(InvalidClaimError):
    """The token's ``exp`` has passed (beyond the leeway)."""


class ImmatureSignatureError(InvalidClaimError):
    """The token's ``nbf`` or ``iat`` is in the future (beyond the leeway)."""


class InvalidAudienceError(InvalidClaimError):
    """The token's ``aud`` does not name the expected audience (or the caller expected
    none and the token names one)."""


class InvalidIssuerError(InvalidClaimError):
    """The token's ``iss`` is not the expected issuer."""


class MissingRequiredClaimError(InvalidClaimError):
    """A claim the caller requires (``require=`` or implied by ``audience=``/``issuer=``)
    is absent; ``claim`` names it."""

    claim: str

    def __init__(self, claim: str) -> None:
        super().__init__(f"the token has no {claim!r} claim, which is required")
        self.claim = claim
