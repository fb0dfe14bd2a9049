"""Memory scan of a child that encrypts and decrypts with AES-256-GCM, ChaCha20-Poly1305 and
the easy API: the key, the AES-256 round keys beyond the key itself (the expanded key
schedule, kept beside the key in a guarded value) and the GHASH key ``H = AES_K(0^128)`` are
found only in locked, dump-excluded pages while alive (the round keys are found there: the
schedule is cached, not rebuilt per call), and nowhere after ``destroy()``. A ``bytes`` copy
of another secret is the positive control."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from memscan import scan_phases, summarize

pytestmark = pytest.mark.slow

_SBOX: list[int] = []


def _sbox() -> list[int]:
    if not _SBOX:
        # The AES S-box from its definition (inverse in GF(2^8), then the affine map).
        def mul(a: int, b: int) -> int:
            r = 0
            while b:
                if b & 1:
                    r ^= a
                a = ((a << 1) ^ 0x11B) if a & 0x80 else a << 1
                b >>= 1
            return r

        for x in range(256):
            inv = next((y for y in range(1, 256) if mul(x, y) == 1), 0)
            s = inv
            for i in range(1, 5):
                s ^= ((inv << i) | (inv >> (8 - i))) & 0xFF
            _SBOX.append(s ^ 0x63)
    return _SBOX


def aes256_round_keys(key: bytes) -> bytes:
    """The 240-byte AES-256 expanded encryption key (FIPS 197 section 5.2)."""
    sbox = _sbox()
    w = [list(key[i : i + 4]) for i in range(0, 32, 4)]
    rcon = 1
    for i in range(8, 60):
        t = list(w[i - 1])
        if i % 8 == 0:
            t = [sbox[b] for b in t[1:] + t[:1]]
            t[0] ^= rcon
            rcon = ((rcon << 1) ^ 0x11B) if rcon & 0x80 else rcon << 1
        elif i % 8 == 4:
            t = [sbox[b] for b in t]
        w.append([a ^ b for a, b in zip(w[i - 8], t, strict=True)])
    return bytes(b for word in w for b in word)


def test_round_keys_match_fips197() -> None:
    key = bytes(range(32))
    assert aes256_round_keys(key)[-16:].hex() == "24fc79ccbf0979e9371ac23c6d68de36"


CHILD = """
import gc, sys
import keycell
from keycell import SecretKey

key = SecretKey.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    control = f.read()
for cls in (keycell.AESGCM, keycell.ChaCha20Poly1305):
    a = cls(key)
    for n, msg in enumerate((b"short", b"L" * 100_000)):
        nonce = n.to_bytes(12, "big")
        assert a.decrypt(nonce, a.encrypt(nonce, msg, b"ad"), b"ad") == msg
assert key.decrypt(key.encrypt(b"easy")) == b"easy"
phase("alive")
key.destroy()
del a
gc.collect()
phase("destroyed")
"""


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_aead_key_only_in_locked_pages_and_no_schedule_left(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    _write(tmp_path / "key", key)
    _write(tmp_path / "control", control)
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    ghash_key = enc.update(bytes(16)) + enc.finalize()
    patterns = {
        "key": key,
        "control": control,
        "round keys 2-14": aes256_round_keys(key)[32:],
        "ghash key": ghash_key,
    }
    scans, _ = scan_phases(
        CHILD, str(tmp_path / "key"), str(tmp_path / "control"), patterns=patterns
    )
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["control"], summarize(alive)
    assert after["control"], summarize(after)
    assert alive["key"], summarize(alive)
    assert alive["round keys 2-14"], summarize(alive)
    for name in ("key", "round keys 2-14", "ghash key"):
        for h in alive[name]:
            assert h.locked, (name, summarize(alive))
            assert h.dontdump, (name, summarize(alive))
    for name in ("key", "round keys 2-14", "ghash key"):
        assert after[name] == [], summarize(after)


HALVES_CHILD = """
import gc, sys, threading
import keycell
from keycell import SecretKey

key = SecretKey.from_file(sys.argv[1])
CLASSES = (keycell.AESGCM, keycell.ChaCha20Poly1305, keycell.XChaCha20Poly1305,
           keycell.AESGCMSIV)

def work():
    for cls in CLASSES:
        a = cls(key)
        n = 24 if cls is keycell.XChaCha20Poly1305 else 12
        for size in (64, 4096):  # 4096: the GIL is released
            msg = b"m" * size
            for i in range(2):  # the first use builds the cipher state, the second uses it
                nonce = bytes([i]) * n
                ct = a.encrypt(nonce, msg, b"ad")
                assert a.decrypt(nonce, ct, b"ad") == msg
                out = bytearray(len(ct))
                a.encrypt_into(nonce, msg, b"ad", out)
                back = bytearray(size)
                a.decrypt_into(nonce, bytes(out), b"ad", back)
    assert key.decrypt(key.encrypt(b"easy")) == b"easy"
    other = SecretKey.generate(32)
    assert keycell.unwrap_key(key, keycell.wrap_key(key, other)) == other

work()                          # on the main thread
t = threading.Thread(target=work)
t.start(); t.join()             # and on another (its stack stays mapped for reuse)
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


def test_no_half_of_the_key_is_left_in_unlocked_memory(tmp_path: Path) -> None:
    """Issue 21 (2): after the first ``AESGCM(key).encrypt``, the key's first 16 bytes were
    on the calling thread's stack (unlocked, in core dumps): AES-NI code left them in a
    vector register and the dynamic linker's lazy-binding trampoline saved the registers on
    the stack. Each half of the key, for every AEAD class and every path (first and later
    use, 64 B and 4 KiB, decrypt, ``_into``, key wrapping, the easy API, on the main and on
    another thread), is only ever in locked pages, and nowhere after ``destroy()``."""
    key = secrets.token_bytes(32)
    _write(tmp_path / "key", key)
    patterns = {"first half": key[:16], "second half": key[16:]}
    scans, _ = scan_phases(HALVES_CHILD, str(tmp_path / "key"), patterns=patterns)
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["first half"], summarize(alive)  # the key itself: found where it lives
    for name in patterns:
        assert all(h.locked for h in alive[name]), summarize(alive)
        assert after[name] == [], summarize(after)
