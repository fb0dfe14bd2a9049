"""joserfc keys backed by keycell handles.

joserfc signs with pyca/cryptography key objects, so a keycell private key works through
its :meth:`to_cryptography` adapter, with one catch: ``joserfc.jwk.OKPKey.import_key``
(and ``ECKey``/``RSAKey``) of a pyca *private* key computes the key's private JWK (``d``,
through ``private_bytes()``/``private_numbers()``) the first time joserfc reads any of its
parameters, which it does before every signature. keycell's adapter refuses that (the key
would be copied onto the Python heap), so :func:`import_key` builds the joserfc key from
its public JWK instead, with the adapter as its private key: joserfc signs with it and
never asks for ``d``. ``as_dict(private=True)`` of such a key gives the public members
only (there is no ``d`` to give) and ``as_pem(private=True)`` raises
``KeyNotExportableError``.

HMAC (``HS256``/``HS384``/``HS512``) cannot be done safely with joserfc: its ``OctKey``
holds the secret as ``bytes`` and its HMAC algorithms call ``hmac.new`` on those bytes, so
the key must be copied onto the Python heap, where it cannot be wiped. Use
``keycell.jose`` for HMAC-signed tokens instead.

Needs ``joserfc`` (and ``cryptography``); importing this module without them raises
``ImportError``.
"""

from __future__ import annotations

from typing import Any

try:
    from joserfc.jwk import ECKey, OKPKey, RSAKey
except ImportError as error:  # pragma: no cover - exercised in a child without joserfc
    raise ImportError(
        "keycell.compat.joserfc needs the 'joserfc' package (pip install joserfc)"
    ) from error

from .._native import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey, X25519PrivateKey

__all__ = ["import_key"]

_KEY_CLASSES: dict[type, type[Any]] = {
    Ed25519PrivateKey: OKPKey,
    X25519PrivateKey: OKPKey,
    ECPrivateKey: ECKey,
    RSAPrivateKey: RSAKey,
}


# The members a JWK's key material is made of (RFC 7517/7518/8037): never taken from
# ``parameters``.
_KEY_MEMBERS = frozenset(
    {"kty", "crv", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "oth", "k"}
)


def import_key(
    key: Ed25519PrivateKey | X25519PrivateKey | ECPrivateKey | RSAPrivateKey,
    parameters: dict[str, Any] | None = None,
    *,
    auto_kid: bool = False,
) -> OKPKey | ECKey | RSAKey:
    """A joserfc key (``OKPKey`` for Ed25519 and X25519, ``ECKey``, ``RSAKey``) whose
    private operations run in keycell through ``key.to_cryptography()``.

    ``parameters`` are extra JWK members (``kid``, ``alg``, ``use``, ``key_ops``), as for
    joserfc's ``import_key``; ``auto_kid=True`` sets ``kid`` to the RFC 7638 thumbprint
    when ``parameters`` has none. The key's JWK holds only public members.
    """
    cls = _KEY_CLASSES.get(type(key))
    if cls is None:
        raise TypeError(
            "key must be a keycell Ed25519PrivateKey, X25519PrivateKey, ECPrivateKey or "
            f"RSAPrivateKey, not {type(key).__name__}"
        )
    if parameters is not None and not isinstance(parameters, dict):
        raise TypeError("parameters must be a dict of JWK members")
    key_members = sorted(_KEY_MEMBERS.intersection(parameters or ()))
    if key_members:
        # They would replace the key's own JWK members: publish another key's point, or
        # a private member, under this key (outside review).
        raise ValueError(
            f"parameters may not set the key's own JWK members ({', '.join(key_members)}); "
            "they come from the key"
        )
    adapter = key.to_cryptography()
    public_jwk = cls.import_key(adapter.public_key()).as_dict()
    # joserfc keeps a dict given as the key's original value as its JWK, and the pyca
    # object as the key it signs with: the private JWK is never computed.
    jwk = cls(adapter, public_jwk, parameters)
    if auto_kid:
        jwk.ensure_kid()
    return jwk  # type: ignore[no-any-return]
