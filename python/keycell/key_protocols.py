"""What a key can do, wherever it lives: protocols shared by local, token and agent keys.

A signing key may be a local :class:`~keycell.Ed25519PrivateKey` (guarded memory), a key in
a PKCS#11 token (:class:`keycell.pkcs11.Token` ``.ed25519_private_key(...)``) or a key
served by ``keycell agent`` (``keycell.agent.connect().ed25519(name)``). They are different
classes on purpose (a token or agent key has no bytes in this process, so it cannot be a
``KeyCell``), but they share the methods that use the key. Code that only uses those
methods can accept any of them:

>>> from keycell import Ed25519PrivateKey, Ed25519Signer
>>> def sign_release(signer: Ed25519Signer, digest: bytes) -> bytes:
...     return signer.sign(digest)
>>> key = Ed25519PrivateKey.generate()
>>> isinstance(key, Ed25519Signer)
True
>>> len(sign_release(key, b"sha256:..."))
64

:class:`ECSigner` is the sibling for ECDSA keys (P-256, P-384): a local
:class:`~keycell.ECPrivateKey` or a token key (``token.ec_private_key(...)``), and agent EC
keys as they come, with the same methods; :class:`RSASigner` the one for RSA signing keys
(a local :class:`~keycell.RSAPrivateKey`, a token key, or an agent RSA key, which signs
``padding="pkcs1v15"`` with SHA-256 or SHA-512 only, as the SSH agent protocol asks).
They are protocols of their own rather than one generic ``Signer`` because the calls
differ: an ECDSA signature has two encodings (``encoding="der"`` or ``"raw"``), an RSA one
a padding and a hash, and the public keys are different classes that a caller verifies
with different arguments.

The protocols are ``runtime_checkable``: ``isinstance`` checks that the methods and
attributes exist (not their signatures; a type checker checks those). ``ECSigner`` also
requires ``curve``, so an Ed25519 or RSA key is not taken for one, and ``RSASigner``
requires ``key_size``, which Ed25519 keys lack. An ``ECPrivateKey`` has ``sign``,
``public_key`` and ``key_size`` too, so ``isinstance(ec_key, Ed25519Signer)`` and
``isinstance(ec_key, RSASigner)`` are true at run time, as is ``isinstance(rsa_key,
Ed25519Signer)``: check for ``ECSigner`` first, then ``RSASigner``, or rely on the type
checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._native import ECPublicKey, Ed25519PublicKey, RSAPublicKey

__all__ = ["ECSigner", "Ed25519Signer", "HmacKey", "RSASigner"]


@runtime_checkable
class Ed25519Signer(Protocol):
    """An Ed25519 private key that signs where it lives: local, in a token or in an agent."""

    def sign(self, data: Buffer) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        ...

    def public_key(self) -> Ed25519PublicKey:
        """The matching public key (an ordinary local ``Ed25519PublicKey``)."""
        ...


@runtime_checkable
class ECSigner(Protocol):
    """An ECDSA private key (P-256 or P-384) that signs where it lives."""

    @property
    def curve(self) -> str:
        """The curve: "P-256" or "P-384"."""
        ...

    def sign(self, data: Buffer, *, encoding: Literal["der", "raw"] = "der") -> bytes:
        """The ECDSA signature of ``data`` with SHA-256 (P-256) or SHA-384 (P-384):
        ``encoding="der"`` (X.509, TLS) or ``"raw"`` (``r || s``: JOSE, WebAuthn)."""
        ...

    def public_key(self) -> ECPublicKey:
        """The matching public key (an ordinary local ``ECPublicKey``)."""
        ...


@runtime_checkable
class RSASigner(Protocol):
    """An RSA private key that signs where it lives."""

    @property
    def key_size(self) -> int:
        """The modulus size in bits (2048 to 4096)."""
        ...

    def sign(
        self,
        data: Buffer,
        *,
        padding: Literal["pss", "pkcs1v15"] = "pss",
        hash: Literal["sha256", "sha384", "sha512"] = "sha256",
    ) -> bytes:
        """The RSASSA-PSS (salt: the hash's length) or PKCS#1 v1.5 signature of ``data``."""
        ...

    def public_key(self) -> RSAPublicKey:
        """The matching public key (an ordinary local ``RSAPublicKey``)."""
        ...


@runtime_checkable
class HmacKey(Protocol):
    """A secret key that computes and checks HMACs where it lives: local, in a token or in
    an agent."""

    def hmac(self, data: Buffer, algorithm: str = "sha256") -> bytes:
        """The HMAC of ``data`` (``algorithm``: "sha256", "sha384" or "sha512")."""
        ...

    def verify_hmac(self, data: Buffer, tag: Buffer, algorithm: str = "sha256") -> None:
        """Check ``tag`` in constant time; raises ``keycell.InvalidSignature`` if it is
        not the HMAC of ``data``."""
        ...
