"""Keys in a PKCS#11 token (an HSM, a smart card, SoftHSM2), as the same handles as local keys.

A token key never enters this process: keycell asks the token to sign (``CKM_EDDSA``;
``CKM_ECDSA`` over a SHA-256/384 digest computed here for P-256/P-384 keys;
``CKM_RSA_PKCS_PSS`` or ``CKM_RSA_PKCS`` over a digest computed here for RSA keys) or to
compute an HMAC (``CKM_SHA256_HMAC`` ...). The handles have the method names of the local
ones (``sign``, ``public_key()`` returning an ordinary :class:`keycell.Ed25519PublicKey`,
:class:`keycell.ECPublicKey` or :class:`keycell.RSAPublicKey`, ``hmac``, ``verify_hmac``,
``destroy``, ``destroyed``, ``protection`` with ``backend == "pkcs11"``), so code written for an
:class:`keycell.Ed25519PrivateKey` or :class:`keycell.ECPrivateKey` signs with a token
key unchanged (``token.ec_private_key(label=...)``, ``token.generate_ec(label=...,
curve="P-384")``; ``token.rsa_private_key(...)``, ``token.generate_rsa(label=...,
bits=3072)`` for :class:`keycell.RSAPrivateKey`'s methods)::

    from keycell import pkcs11

    with pkcs11.Token.open(module="/usr/lib/softhsm/libsofthsm2.so",
                           token_label="prod", pin_file="/run/secrets/pin") as token:
        signer = token.ed25519_private_key(label="release")
        signature = signer.sign(b"payload")
        signer.public_key().verify(signature, b"payload")

The PIN is never a ``str``: pass a ``bytearray`` (copied into guarded memory, then wiped)
or ``pin_file=`` (a 0600 file read straight into guarded memory). ``destroy()`` forgets a
handle; only ``delete_from_token()`` removes a key from the token.

Threads share a token safely (a pool of sessions; the module is initialised with
``CKF_OS_LOCKING_OK``). A fork child cannot use the parent's token or its keys
(:class:`keycell.exceptions.Pkcs11ForkedError`); it opens the token again.

Failures are :class:`keycell.exceptions.Pkcs11Error` subclasses naming the cause (wrong
PIN, missing module, token or object, unsupported mechanism), with the module's
``CKR_*`` value as ``code``. See docs/pkcs11.md.
"""

from __future__ import annotations

from os import PathLike

from . import _native
from ._native import (
    Pkcs11ECPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11RSAPrivateKey,
    Pkcs11SecretKey,
)
from ._native import Pkcs11Token as Token

__all__ = [
    "Pkcs11ECPrivateKey",
    "Pkcs11Ed25519PrivateKey",
    "Pkcs11RSAPrivateKey",
    "Pkcs11SecretKey",
    "Token",
    "list_tokens",
    "open_uri",
]


def list_tokens(module: str | PathLike[str]) -> list[dict[str, object]]:
    """The tokens present in ``module``'s slots (no login): slot, label, manufacturer,
    model, serial, login_required, user_pin_initialized."""
    return [dict(t) for t in _native.pkcs11_list_tokens(module)]


def open_uri(
    uri: str,
    *,
    module: str | PathLike[str] | None = None,
    pin: bytearray | memoryview | None = None,
) -> Pkcs11Ed25519PrivateKey | Pkcs11ECPrivateKey | Pkcs11RSAPrivateKey | Pkcs11SecretKey:
    """The key an RFC 7512 URI names, e.g.
    ``pkcs11:token=prod;object=release;type=private?module-path=/usr/lib/x.so&pin-source=file:/run/pin``.

    ``type=private`` (or no type) opens an Ed25519 private key, or when there is none by
    that name an EC (P-256/P-384) one, else an RSA one; ``type=secret-key`` a generic
    secret. The PIN comes from ``pin-source`` (a file) or ``pin`` (a ``bytearray``,
    wiped); ``pin-value`` is refused. ``module`` overrides ``module-path``, which
    overrides ``module-name`` (looked for in the usual library directories).
    The token stays open while the key is referenced.
    """
    _token, key = _native.pkcs11_open_uri(uri, module=module, pin=pin)
    return key
