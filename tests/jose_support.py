"""Keys for the JOSE tests: one keycell signing key and its verifying key per algorithm,
and the pyca/cryptography twin of each (for the other libraries), made once per session."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cache
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


@cache
def _rsa() -> Pair:
    pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Pair(RSAPrivateKey.from_der(_pkcs8(pk)), pk)


@cache
def pair(alg: str) -> Pair:
    """The session's key for ``alg``."""
    if alg.startswith("HS"):
        secret = secrets.token_bytes(64)
        return Pair(SecretKey.from_buffer(bytearray(secret)), secret)
    if alg in ("EdDSA", "Ed25519"):
        pk = ed25519.Ed25519PrivateKey.generate()
        return Pair(Ed25519PrivateKey.from_private_bytes(bytearray(pk.private_bytes_raw())), pk)
    if alg in ("ES256", "ES384"):
        curve = ec.SECP256R1() if alg == "ES256" else ec.SECP384R1()
        pk = ec.generate_private_key(curve)
        return Pair(ECPrivateKey.from_der(_pkcs8(pk)), pk)
    return _rsa()
