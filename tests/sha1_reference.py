"""An independent SHA-1 (FIPS 180-4) in pure Python for the memory-scan tests: the
HMAC-SHA1 midstates keycell keeps in a key's region, computed without keycell (checked
against ``hashlib`` in ``tests/otp/test_memory_scan_otp.py``)."""

from __future__ import annotations

import struct
import sys


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def sha1_compress(state: list[int], block: bytes) -> list[int]:
    """One SHA-1 compression (FIPS 180-4), independent of keycell."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 80):
        w.append(_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1))
    a, b, c, d, e = state
    for i in range(80):
        if i < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif i < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif i < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rol(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, _rol(b, 30), c, d
    return [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e), strict=True)]


SHA1_IV = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]


def hmac_sha1_midstates(key: bytes) -> dict[str, bytes]:
    """The inner and outer HMAC-SHA1 midstates of ``key`` in native word order (as keycell
    stores them in the region)."""
    block = key.ljust(64, b"\0")
    order = "<" if sys.byteorder == "little" else ">"
    out = {}
    for name, pad in (("inner", 0x36), ("outer", 0x5C)):
        state = sha1_compress(SHA1_IV, bytes(b ^ pad for b in block))
        out[f"sha1 {name} midstate"] = struct.pack(f"{order}5I", *state)
    return out
