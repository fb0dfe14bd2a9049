"""Keys for the JOSE tests: one keycell signing key and its verifying key per algorithm,
and the pyca/cryptography twin of each (for the other libraries), made once per test
module and destroyed after it (``tests/jose/conftest.py``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey, SecretKey

ALGS = [
    "HS256", "HS384", "HS512", "EdDSA", "ES256", "ES384",
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
]  # fmt: skip


@dataclass(frozen=True)
class Pair:
    """A keycell key and the same key for pyca/cryptography-based libraries (for HMAC
    algorithms ``pyca`` is the secret's bytes)."""

    keycell: Any
    pyca: Any

    @property
    def public(self) -> Any:
        return self.keycell if isinstance(self.keycell, SecretKey) else self.keycell.public_key()

    @property
    def pyca_public(self) -> Any:
        return self.pyca if isinstance(self.pyca, bytes) else self.pyca.public_key()


def _pkcs8(key: Any) -> bytearray:
    return bytearray(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


_CACHE: dict[str, Pair] = {}


def pair(alg: str) -> Pair:
    """The key for ``alg``, made once per test module (``destroy_all`` ends them)."""
    family = "RSA" if alg[:2] in ("RS", "PS") else "Ed25519" if alg == "EdDSA" else alg
    if family not in _CACHE:
        _CACHE[family] = _make(family)
    return _CACHE[family]


def destroy_all() -> None:
    """Destroy the keys :func:`pair` made (tests that fork count live keys)."""
    for p in _CACHE.values():
        p.keycell.destroy()
    _CACHE.clear()


def _make(alg: str) -> Pair:
    if alg == "RSA":
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return Pair(RSAPrivateKey.from_der(_pkcs8(pk)), pk)
    if alg.startswith("HS"):
        secret = secrets.token_bytes(64)
        return Pair(SecretKey.from_buffer(bytearray(secret)), secret)
    if alg == "Ed25519":
        pk = ed25519.Ed25519PrivateKey.generate()
        return Pair(Ed25519PrivateKey.from_private_bytes(bytearray(pk.private_bytes_raw())), pk)
    if alg in ("ES256", "ES384"):
        curve = ec.SECP256R1() if alg == "ES256" else ec.SECP384R1()
        pk = ec.generate_private_key(curve)
        return Pair(ECPrivateKey.from_der(_pkcs8(pk)), pk)
    raise ValueError(alg)
