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

The protocols are ``runtime_checkable``: ``isinstance`` checks that the methods exist (not
their signatures; a type checker checks those).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from ._native import Ed25519PublicKey

__all__ = ["Ed25519Signer", "HmacKey"]


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
