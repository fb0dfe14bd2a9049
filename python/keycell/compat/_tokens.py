"""Helpers shared by the token-signer compatibility modules (itsdangerous, Django).

Only public values pass through here: payloads, signatures and algorithm names. The keys
stay in keycell handles.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from .._native import SecretKey

__all__ = ["b64decode_nopad", "b64encode_nopad", "digest_name", "secret_key_list"]

_NAMES = ("sha1", "sha256", "sha384", "sha512")


def b64encode_nopad(data: bytes) -> bytes:
    """URL-safe base64 without ``=`` padding (the encoding of both signers)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64decode_nopad(data: bytes) -> bytes:
    """Decode URL-safe base64 with or without padding; ``ValueError`` if malformed."""
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("invalid base64") from e


def digest_name(digest: Any) -> str:
    """The keycell name of a digest given as a name ("sha256") or a :mod:`hashlib`
    constructor (``hashlib.sha256``), as itsdangerous's ``digest_method`` takes it.
    ``ValueError`` for a hash keycell does not sign with."""
    if isinstance(digest, str):
        name = digest.lower().replace("-", "")
    elif callable(digest):
        name = str(getattr(digest(), "name", "")).lower()
    else:
        raise TypeError(
            f"the digest must be a name or a hashlib constructor, not {type(digest).__name__}"
        )
    if name not in _NAMES:
        raise ValueError(
            f"unsupported digest {name!r}: keycell signs with sha1, sha256, sha384 and sha512"
        )
    return name


def secret_key_list(keys: SecretKey | Iterable[SecretKey], what: str) -> list[SecretKey]:
    """``keys`` as a non-empty list of :class:`~keycell.SecretKey` handles; ``TypeError``
    for anything else (a ``str``/``bytes`` secret is refused: it is already in the heap,
    and keycell keeps keys out of it)."""
    if isinstance(keys, SecretKey):
        return [keys]
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            f"{what} must be a keycell.SecretKey (or a list of them), not "
            f"{type(keys).__name__}: load the secret with SecretKey.from_buffer(), "
            "from_file() or a key store"
        )
    try:
        out = list(keys)
    except TypeError:
        raise TypeError(
            f"{what} must be a keycell.SecretKey or a list of them, not {type(keys).__name__}"
        ) from None
    if not out:
        raise ValueError(f"{what} must hold at least one key")
    for k in out:
        if not isinstance(k, SecretKey):
            raise TypeError(f"every {what} must be a keycell.SecretKey, not {type(k).__name__}")
    return out
