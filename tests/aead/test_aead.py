"""``AESGCM``, ``ChaCha20Poly1305``, ``XChaCha20Poly1305`` and ``AESGCMSIV`` over a
``SecretKey``: interop with pyca/cryptography both ways, typed errors for every kind of bad
input, no plaintext on failure, the key's life cycle, GIL release and threads."""

from __future__ import annotations

import threading
import time
from typing import Any

import keycell
import pytest
from cryptography.hazmat.primitives.ciphers import aead as pyca
from hypothesis import given
from hypothesis import strategies as st
from keycell import SecretKey

# (keycell class, pyca class or None, key sizes, nonce size)
ALGS: list[tuple[Any, Any, tuple[int, ...], int]] = [
    (keycell.AESGCM, pyca.AESGCM, (16, 24, 32), 12),
    (keycell.ChaCha20Poly1305, pyca.ChaCha20Poly1305, (32,), 12),
    (keycell.AESGCMSIV, getattr(pyca, "AESGCMSIV", None), (16, 32), 12),
    (keycell.XChaCha20Poly1305, None, (32,), 24),
]
IDS = [a[0].__name__ for a in ALGS]


def _pyca(cls: Any, key: bytes) -> Any:
    try:
        return cls(key)
    except Exception as exc:  # pragma: no cover - depends on the OpenSSL build
        pytest.skip(f"pyca {cls.__name__} unavailable here: {exc}")


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
@given(data=st.data())
def test_interop_with_pyca_both_ways(
    cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int, data: st.DataObject
) -> None:
    if ref is None:
        pytest.skip("pyca/cryptography has no such class")
    raw = data.draw(st.sampled_from(sizes).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
    nonce = data.draw(st.binary(min_size=nlen, max_size=nlen))
    msg = data.draw(st.binary(max_size=5000))
    aad = data.draw(st.none() | st.binary(max_size=64))
    ours = cls(SecretKey.from_buffer(bytearray(raw)))
    theirs = _pyca(ref, raw)
    ct = ours.encrypt(nonce, msg, aad)
    assert ct == theirs.encrypt(nonce, msg, aad)
    assert theirs.decrypt(nonce, ct, aad) == msg
    assert ours.decrypt(nonce, theirs.encrypt(nonce, msg, aad), aad) == msg


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
def test_forgeries_and_bad_sizes_are_typed(
    cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int
) -> None:
    key = SecretKey.generate(sizes[-1])
    a = cls(key)
    nonce = bytes(range(nlen))
    ct = a.encrypt(nonce, b"hello world", b"ad")
    assert len(ct) == len(b"hello world") + 16
    for i in range(len(ct)):
        bad = bytearray(ct)
        bad[i] ^= 0x80
        with pytest.raises(keycell.InvalidTag):
            a.decrypt(nonce, bytes(bad), b"ad")
    for cut in (1, 15, 16, len(ct)):
        with pytest.raises(keycell.InvalidTag):
            a.decrypt(nonce, ct[:-cut], b"ad")
    with pytest.raises(keycell.InvalidTag):
        a.decrypt(nonce, ct, b"other")
    with pytest.raises(keycell.InvalidTag):
        a.decrypt(nonce, ct, None)
    with pytest.raises(keycell.InvalidTag):
        a.decrypt(bytes(nlen), ct, b"ad")
    with pytest.raises(keycell.InvalidTag):
        cls(SecretKey.generate(sizes[-1])).decrypt(nonce, ct, b"ad")
    bad_sizes = (0, 7, 129, 1000) if cls is keycell.AESGCM else (0, nlen - 1, nlen + 1, 64)
    for n in bad_sizes:
        with pytest.raises(ValueError, match="nonce must be"):
            a.encrypt(bytes(n), b"x", None)
        with pytest.raises(ValueError, match="nonce must be"):
            a.decrypt(bytes(n), ct, b"ad")
    assert issubclass(keycell.InvalidTag, keycell.KeycellError)
    assert a.decrypt(nonce, ct, b"ad") == b"hello world"


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
def test_key_sizes_and_types(cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int) -> None:
    for n in (1, 8, 15, 17, 20, 31, 33, 64):
        if n not in sizes:
            with pytest.raises(ValueError, match="key must be"):
                cls(SecretKey.generate(n))
    for n in sizes:
        k = cls.generate_key(n * 8)
        assert isinstance(k, SecretKey)
        assert len(k) == n
        cls(k)
    with pytest.raises(ValueError):
        cls.generate_key(100)
    with pytest.raises(TypeError, match="SecretKey"):
        cls(bytes(sizes[0]))
    a = cls(SecretKey.generate(sizes[0]))
    with pytest.raises(TypeError):
        a.encrypt("nonce" * 3, b"x", None)
    with pytest.raises(TypeError):
        a.encrypt(bytes(nlen), "text", None)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(a)
    assert repr(a) == f"<{cls.__name__}>"


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
def test_buffers_and_empty_inputs(cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int) -> None:
    a = cls(SecretKey.generate(sizes[0]))
    nonce = bytearray(nlen)
    ct = a.encrypt(nonce, memoryview(b"abc"), bytearray(b"ad"))
    assert a.decrypt(memoryview(nonce), bytearray(ct), b"ad") == b"abc"
    empty = a.encrypt(nonce, b"", None)
    assert len(empty) == 16
    assert a.decrypt(nonce, empty, b"") == b""


def test_destroyed_key_raises() -> None:
    key = SecretKey.generate(32)
    a = keycell.AESGCM(key)
    assert a.key is key
    ct = a.encrypt(bytes(12), b"x", None)
    key.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        a.encrypt(bytes(12), b"x", None)
    with pytest.raises(keycell.KeyDestroyedError):
        a.decrypt(bytes(12), ct, None)
    with pytest.raises(keycell.KeyDestroyedError):
        a.decrypt(bytes(12), b"short", None)
    with pytest.raises(keycell.KeyDestroyedError):
        keycell.AESGCM(key)


def test_threads_share_one_object_large_and_small() -> None:
    key = SecretKey.generate(32)
    a = keycell.ChaCha20Poly1305(key)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(30):
                msg = bytes([i]) * (100_000 if j % 3 == 0 else 64)
                nonce = i.to_bytes(4, "big") + j.to_bytes(8, "big")
                ct = a.encrypt(nonce, msg, None)
                assert a.decrypt(nonce, ct, None) == msg
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_gil_is_released_for_large_inputs() -> None:
    """Another thread runs Python code in the middle of one 64 MiB encrypt call (with the
    GIL held it could not run at all between the call's start and end)."""
    a = keycell.AESGCM(SecretKey.generate(32))
    big = bytes(64 << 20)
    stamps: list[float] = []
    started = threading.Event()
    done = threading.Event()

    def spin() -> None:
        started.set()
        while not done.is_set():
            stamps.append(time.perf_counter())

    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    try:
        t0 = time.perf_counter()
        a.encrypt(bytes(12), big, None)
        t1 = time.perf_counter()
    finally:
        done.set()
        t.join()
    lo, hi = t0 + (t1 - t0) / 4, t1 - (t1 - t0) / 4
    assert any(lo < s < hi for s in stamps)


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
@given(data=st.data())
def test_encrypt_into_and_decrypt_into_match_bytes_calls(
    cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int, data: st.DataObject
) -> None:
    raw = data.draw(st.sampled_from(sizes).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
    nonce = data.draw(st.binary(min_size=nlen, max_size=nlen))
    msg = data.draw(st.binary(max_size=5000))
    aad = data.draw(st.none() | st.binary(max_size=64))
    extra = data.draw(st.integers(0, 40))
    ours = cls(SecretKey.from_buffer(bytearray(raw)))
    buf = bytearray(b"\xee" * (len(msg) + 16 + extra))
    assert ours.encrypt_into(nonce, msg, aad, buf) == len(msg) + 16
    ct = ours.encrypt(nonce, msg, aad)
    assert bytes(buf[: len(msg) + 16]) == ct
    assert buf[len(msg) + 16 :] == b"\xee" * extra  # nothing written past the result
    out = bytearray(len(msg) + extra)
    assert ours.decrypt_into(nonce, memoryview(bytearray(ct)), aad, memoryview(out)) == len(msg)
    assert bytes(out[: len(msg)]) == msg
    if ref is not None and hasattr(ref, "decrypt_into"):
        theirs = _pyca(ref, raw)
        exact = bytearray(len(msg))
        assert theirs.decrypt_into(nonce, bytes(buf[: len(msg) + 16]), aad, exact) == len(msg)
        assert exact == msg


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
@pytest.mark.parametrize("size", [0, 1, 100, 4096, 70_000])
def test_decrypt_into_leaves_no_plaintext_on_failure(
    cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int, size: int
) -> None:
    a = cls(SecretKey.generate(sizes[-1]))
    nonce = bytes(nlen)
    msg = b"P" * size
    ct = a.encrypt(nonce, msg, b"ad")
    forged = bytearray(ct)
    forged[-1] ^= 1
    for data, aad in ((bytes(forged), b"ad"), (ct, b"other"), (ct, None)):
        out = bytearray(b"\xaa" * (size + 8))
        with pytest.raises(keycell.InvalidTag):
            a.decrypt_into(nonce, data, aad, out)
        assert out[:size] == bytes(size), "plaintext area not zeroed"
        assert out[size:] == b"\xaa" * 8
    # A truncated message: InvalidTag, nothing written.
    out = bytearray(b"\xaa" * 8)
    with pytest.raises(keycell.InvalidTag):
        a.decrypt_into(nonce, ct[:15], b"ad", out)
    assert out == b"\xaa" * 8


@pytest.mark.parametrize(("cls", "ref", "sizes", "nlen"), ALGS, ids=IDS)
def test_into_buffer_errors_are_typed(
    cls: Any, ref: Any, sizes: tuple[int, ...], nlen: int
) -> None:
    key = SecretKey.generate(sizes[-1])
    a = cls(key)
    nonce = bytes(nlen)
    ct = a.encrypt(nonce, b"hello", None)
    with pytest.raises(ValueError, match="at least 21 bytes"):
        a.encrypt_into(nonce, b"hello", None, bytearray(20))
    with pytest.raises(ValueError, match="at least 5 bytes"):
        a.decrypt_into(nonce, ct, None, bytearray(4))
    for ro in (bytes(64), memoryview(bytearray(64)).toreadonly()):
        with pytest.raises(TypeError, match="writable"):
            a.encrypt_into(nonce, b"hello", None, ro)
        with pytest.raises(TypeError, match="writable"):
            a.decrypt_into(nonce, ct, None, ro)
    with pytest.raises(TypeError):
        a.encrypt_into(nonce, b"hello", None, "not a buffer")
    with pytest.raises(ValueError, match="nonce must be"):
        a.encrypt_into(bytes(0), b"hello", None, bytearray(64))
    # A non-contiguous writable view is refused, not written around.
    with pytest.raises(ValueError, match="contiguous"):
        a.encrypt_into(nonce, b"hello", None, memoryview(bytearray(64))[::2])
    key.destroy()
    buf = bytearray(b"\x01" * 64)
    with pytest.raises(keycell.KeyDestroyedError):
        a.encrypt_into(nonce, b"hello", None, buf)
    with pytest.raises(keycell.KeyDestroyedError):
        a.decrypt_into(nonce, ct, None, buf)
    assert buf == b"\x01" * 64


def test_encrypt_into_in_threads() -> None:
    a = keycell.AESGCM(SecretKey.generate(32))
    msg = bytes(range(256)) * 64
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                nonce = (i * 1000 + j).to_bytes(12, "big")
                buf = bytearray(len(msg) + 16)
                a.encrypt_into(nonce, msg, b"t", buf)
                out = bytearray(len(msg))
                a.decrypt_into(nonce, bytes(buf), b"t", out)
                assert out == msg
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


@given(data=st.data())
def test_aesgcm_nonces_of_8_to_128_bytes_interoperate_with_pyca(data: st.DataObject) -> None:
    """AES-GCM nonces other than 12 bytes (J0 derived with GHASH, NIST SP 800-38D 7.1), as
    pyca/cryptography takes them: 8 to 128 bytes, every key size, both directions, and the
    ``_into`` calls."""
    size = data.draw(st.sampled_from((16, 24, 32)))
    raw = data.draw(st.binary(min_size=size, max_size=size))
    nonce = data.draw(st.binary(min_size=8, max_size=128))
    msg = data.draw(st.binary(max_size=3000))
    aad = data.draw(st.none() | st.binary(max_size=64))
    ours = keycell.AESGCM(SecretKey.from_buffer(bytearray(raw)))
    theirs = pyca.AESGCM(raw)
    ct = ours.encrypt(nonce, msg, aad)
    assert ct == theirs.encrypt(nonce, msg, aad)
    assert ours.decrypt(nonce, ct, aad) == msg
    buf = bytearray(len(ct))
    assert ours.encrypt_into(nonce, msg, aad, buf) == len(ct)
    assert buf == ct
    out = bytearray(len(msg))
    assert ours.decrypt_into(nonce, ct, aad, out) == len(msg)
    assert out == msg
    forged = bytearray(ct)
    forged[-1] ^= 1
    with pytest.raises(keycell.InvalidTag):
        ours.decrypt(nonce, bytes(forged), aad)
    with pytest.raises(keycell.InvalidTag):
        ours.decrypt_into(nonce, bytes(forged), aad, out)
    assert out == bytes(len(msg))
    # The same key with a different nonce length is a different nonce.
    other = nonce + b"\x00" if len(nonce) < 128 else nonce[:-1]
    with pytest.raises(keycell.InvalidTag):
        ours.decrypt(other, ct, aad)
