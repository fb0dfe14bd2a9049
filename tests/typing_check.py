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
    tag: bytes = key.hmac(b"message", "sha384")
    key.verify_hmac(memoryview(b"message"), tag, algorithm="sha384")
    ctx: keycell.HMAC = keycell.HMAC(key, "sha512")
    ctx.update(bytearray(b"part"))
    ctx2: keycell.HMAC = ctx.copy()
    size: int = ctx.digest_size + ctx.block_size
    name: str = ctx.algorithm
    ctx.verify(ctx2.finalize())
    derived: SecretKey = keycell.hkdf(key, length=32, salt=None, info=b"ctx")
    prk: SecretKey = keycell.hkdf_extract(key, salt=b"salt", algorithm="sha512")
    okm: SecretKey = keycell.hkdf_expand(prk, length=64, info=b"", algorithm="sha512")
    key.destroy()
    del locked, same, n, size, name, derived, okm
