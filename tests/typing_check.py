"""Checked by ``mypy --strict`` (not run by pytest): the public API types as documented."""

from __future__ import annotations

import keycell
from keycell import Protection, SecretKey


def use() -> None:
    key: SecretKey = SecretKey.generate(32)
    prot: Protection = key.protection
    locked: bool = prot.locked
    with key.expose() as view:
        data: memoryview = view
        assert data.readonly
    same: bool = keycell.compare_digest(b"a", bytearray(b"a"))
    n: int = len(key)
    key.destroy()
    del locked, same, n


def use_asymmetric() -> None:
    from keycell import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
        X25519PrivateKey,
        X25519PublicKey,
        ed25519_verify_batch,
    )

    with Ed25519PrivateKey.generate() as sk:
        sig: bytes = sk.sign(b"message")
        pk: Ed25519PublicKey = sk.public_key()
        pk.verify(sig, bytearray(b"message"))
        ed25519_verify_batch([(pk, sig, b"message")])
        raw: bytes = pk.public_bytes_raw()
        same: bool = Ed25519PublicKey.from_pem(pk.public_bytes_pem()) == pk
        del raw, same
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    peer: X25519PublicKey = b.public_key()
    shared: SecretKey = a.exchange(peer)
    shared.destroy()
    a.destroy()
