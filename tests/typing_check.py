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
