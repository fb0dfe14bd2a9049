"""``SecretKey.encrypt``/``decrypt``: XChaCha20-Poly1305 with a fresh random 24-byte nonce,
``nonce || ciphertext || tag`` (docs/aead.md), checked against an independent
XChaCha20-Poly1305 (keycell's own class, and pyca's ChaCha20-Poly1305 over the HChaCha20
subkey computed here in pure Python)."""

from __future__ import annotations

import struct

import keycell
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st
from keycell import SecretKey


def _hchacha20(key: bytes, nonce16: bytes) -> bytes:
    def rotl(x: int, n: int) -> int:
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF
        s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF
        s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12), qr(1, 5, 9, 13), qr(2, 6, 10, 14), qr(3, 7, 11, 15)
        qr(0, 5, 10, 15), qr(1, 6, 11, 12), qr(2, 7, 8, 13), qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def _reference_open(key: bytes, blob: bytes, aad: bytes | None) -> bytes:
    nonce, body = blob[:24], blob[24:]
    sub = _hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\0" * 4 + nonce[16:], body, aad)


@given(msg=st.binary(max_size=4000), aad=st.none() | st.binary(max_size=40))
def test_format_matches_reference(msg: bytes, aad: bytes | None) -> None:
    raw = bytes(range(32))
    key = SecretKey.from_buffer(bytearray(raw))
    blob = key.encrypt(msg, associated_data=aad)
    assert len(blob) == 24 + len(msg) + 16
    assert _reference_open(raw, blob, aad) == msg
    assert key.decrypt(blob, associated_data=aad) == msg
    x = keycell.XChaCha20Poly1305(key)
    assert x.decrypt(blob[:24], blob[24:], aad) == msg


def test_nonces_are_fresh() -> None:
    key = SecretKey.generate(32)
    blobs = [key.encrypt(b"same") for _ in range(200)]
    assert len({b[:24] for b in blobs}) == 200


def test_rejections_are_typed() -> None:
    key = SecretKey.generate(32)
    blob = key.encrypt(b"payload", associated_data=b"ctx")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(keycell.InvalidTag):
            key.decrypt(bytes(bad), associated_data=b"ctx")
    for n in range(0, 41):
        with pytest.raises(keycell.InvalidTag):
            key.decrypt(blob[:n], associated_data=b"ctx")
    with pytest.raises(keycell.InvalidTag):
        key.decrypt(blob)
    with pytest.raises(keycell.InvalidTag):
        SecretKey.generate(32).decrypt(blob, associated_data=b"ctx")
    assert key.decrypt(blob, associated_data=b"ctx") == b"payload"
    with pytest.raises(ValueError, match="key must be 256 bits"):
        SecretKey.generate(16).encrypt(b"x")
    with pytest.raises(TypeError):
        key.encrypt("text")  # type: ignore[arg-type]
    key.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        key.encrypt(b"x")
    with pytest.raises(keycell.KeyDestroyedError):
        key.decrypt(blob)


def test_session_keys_from_exchange_encrypt() -> None:
    a, b = keycell.X25519PrivateKey.generate(), keycell.X25519PrivateKey.generate()
    ka = keycell.hkdf(a.exchange(b.public_key()), length=32, info=b"chan")
    kb = keycell.hkdf(b.exchange(a.public_key()), length=32, info=b"chan")
    assert kb.decrypt(ka.encrypt(b"hello bob")) == b"hello bob"
