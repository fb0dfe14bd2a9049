"""HMAC: SecretKey.hmac / verify_hmac and the streaming keycell.HMAC context."""

from __future__ import annotations

import array
import copy
import hmac
import os
import pickle
import threading

import keycell
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import (
    HMAC,
    AlreadyFinalized,
    InvalidSignature,
    KeycellError,
    KeyDestroyedError,
    SecretKey,
)

# SHA-1 for legacy protocols (tests/crypto/test_hmac_sha1.py has its own vectors).
ALGORITHMS = {"sha256": (32, 64), "sha384": (48, 128), "sha512": (64, 128), "sha1": (20, 64)}
THRESHOLD = keycell._native.GIL_RELEASE_THRESHOLD
# Around the SHA-256 and SHA-512 padding boundaries, the GIL-release threshold, and large.
LENGTHS = [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000]
LENGTHS += [THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 100_000, 1 << 20]


def make_key(raw: bytes) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


@pytest.fixture
def raw() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key(raw: bytes) -> SecretKey:
    return make_key(raw)


# --- one-shot ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("length", LENGTHS)
def test_oneshot_matches_stdlib(raw: bytes, key: SecretKey, algorithm: str, length: int) -> None:
    msg = os.urandom(length)
    expected = hmac.digest(raw, msg, algorithm)
    assert key.hmac(msg, algorithm) == expected
    assert key.hmac(msg, algorithm=algorithm) == expected
    key.verify_hmac(msg, expected, algorithm)


def test_default_algorithm_is_sha256(raw: bytes, key: SecretKey) -> None:
    assert key.hmac(b"msg") == hmac.digest(raw, b"msg", "sha256")
    key.verify_hmac(b"msg", hmac.digest(raw, b"msg", "sha256"))


@pytest.mark.parametrize("length", [10, THRESHOLD + 10])
@pytest.mark.parametrize(
    "wrap",
    [
        bytes,
        bytearray,
        memoryview,
        lambda b: memoryview(bytearray(b)),
        lambda b: array.array("B", b),
        lambda b: memoryview(b"xx" + b)[2:],
    ],
    ids=["bytes", "bytearray", "memoryview", "memoryview-bytearray", "array", "slice"],
)
def test_bytes_like_inputs(raw: bytes, key: SecretKey, length: int, wrap: object) -> None:
    """Every contiguous buffer works, below and above the GIL-release threshold."""
    msg = os.urandom(length)
    expected = hmac.digest(raw, msg, "sha256")
    assert key.hmac(wrap(msg)) == expected  # type: ignore[operator]
    key.verify_hmac(wrap(msg), wrap(expected))  # type: ignore[operator]
    h = HMAC(key)
    h.update(wrap(msg))  # type: ignore[operator]
    h.verify(wrap(expected))  # type: ignore[operator]


@pytest.mark.parametrize("length", [1, 64, 65, 128, 129, 200, 1000])
def test_long_keys_are_hashed_first(length: int) -> None:
    raw = os.urandom(length)
    key = make_key(raw)
    for algorithm in ALGORITHMS:
        assert key.hmac(b"abc", algorithm) == hmac.digest(raw, b"abc", algorithm)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(min_size=1, max_size=300),
    msg=st.binary(max_size=5000),
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=4),
)
def test_interop_with_stdlib(raw: bytes, msg: bytes, algorithm: str, cuts: list[int]) -> None:
    key = make_key(raw)
    expected = hmac.digest(raw, msg, algorithm)
    assert key.hmac(msg, algorithm) == expected
    key.verify_hmac(msg, expected, algorithm)
    h = HMAC(key, algorithm)
    start = 0
    for cut in sorted(min(c, len(msg)) for c in cuts):
        h.update(msg[start:cut])
        start = cut
    h.update(msg[start:])
    assert h.finalize() == expected
    key.destroy()


# --- verification and the tag-length rule ------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tag_length_rule(raw: bytes, key: SecretKey, algorithm: str) -> None:
    digest_size, _ = ALGORITHMS[algorithm]
    tag = hmac.digest(raw, b"message", algorithm)
    for n in range(16, digest_size + 1):
        key.verify_hmac(b"message", tag[:n], algorithm)
        h = HMAC(key, algorithm)
        h.update(b"message")
        h.verify(tag[:n])
    for n in range(16):
        with pytest.raises(InvalidSignature):
            key.verify_hmac(b"message", tag[:n], algorithm)
        h = HMAC(key, algorithm)
        h.update(b"message")
        with pytest.raises(InvalidSignature):
            h.verify(tag[:n])
    for longer in (tag + b"\x00", tag + tag):
        with pytest.raises(InvalidSignature):
            key.verify_hmac(b"message", longer, algorithm)
        h = HMAC(key, algorithm)
        h.update(b"message")
        with pytest.raises(InvalidSignature):
            h.verify(longer)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_flipped_bit_is_rejected(raw: bytes, key: SecretKey, algorithm: str) -> None:
    tag = hmac.digest(raw, b"m", algorithm)
    for i in range(len(tag) * 8):
        bad = bytearray(tag)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(InvalidSignature):
            key.verify_hmac(b"m", bytes(bad), algorithm)
    with pytest.raises(InvalidSignature):
        key.verify_hmac(b"other message", tag, algorithm)
    with pytest.raises(InvalidSignature):
        make_key(os.urandom(32)).verify_hmac(b"m", tag, algorithm)


def test_invalid_signature_is_a_keycell_error(key: SecretKey) -> None:
    with pytest.raises(KeycellError) as info:
        key.verify_hmac(b"m", bytes(32))
    assert isinstance(info.value, InvalidSignature)
    assert "does not match" in str(info.value)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["md5", "sha224", "sha3_256", "", "sha256 ", "sha1 "])
def test_unknown_algorithm(key: SecretKey, bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported HMAC algorithm"):
        key.hmac(b"m", bad)
    with pytest.raises(ValueError, match="unsupported HMAC algorithm"):
        key.verify_hmac(b"m", bytes(32), bad)
    with pytest.raises(ValueError, match="unsupported HMAC algorithm"):
        HMAC(key, bad)


@pytest.mark.parametrize("spelling", ["SHA256", "SHA-256", "Sha-256"])
def test_algorithm_spellings(raw: bytes, key: SecretKey, spelling: str) -> None:
    assert key.hmac(b"m", spelling) == hmac.digest(raw, b"m", "sha256")
    assert HMAC(key, spelling).algorithm == "sha256"


@pytest.mark.parametrize("bad", [None, 256, b"sha256"])
def test_algorithm_must_be_str(key: SecretKey, bad: object) -> None:
    with pytest.raises(TypeError):
        key.hmac(b"m", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        key.verify_hmac(b"m", bytes(32), bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        HMAC(key, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["text", 5, None, 1.5, [1, 2]])
def test_data_and_tag_types(key: SecretKey, bad: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        key.hmac(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        key.verify_hmac(bad, bytes(32))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        key.verify_hmac(b"m", bad)  # type: ignore[arg-type]
    h = HMAC(key)
    with pytest.raises(TypeError, match="bytes-like"):
        h.update(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        h.verify(bad)  # type: ignore[arg-type]


def test_non_contiguous_buffer(key: SecretKey) -> None:
    strided = memoryview(b"abcdefgh")[::2]
    with pytest.raises(ValueError, match="contiguous"):
        key.hmac(strided)
    with pytest.raises(ValueError, match="contiguous"):
        HMAC(key).update(strided)


@pytest.mark.parametrize("bad", [b"raw key bytes", bytearray(32), "key", None, 42])
def test_hmac_key_must_be_secret_key(bad: object) -> None:
    with pytest.raises(TypeError, match="SecretKey"):
        HMAC(bad)  # type: ignore[arg-type]


def test_missing_arguments(key: SecretKey) -> None:
    with pytest.raises(TypeError):
        key.hmac()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        key.verify_hmac(b"m")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        HMAC()  # type: ignore[call-arg]


# --- the HMAC context ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_context_attributes(key: SecretKey, algorithm: str) -> None:
    h = HMAC(key, algorithm)
    digest_size, block_size = ALGORITHMS[algorithm]
    assert h.algorithm == algorithm
    assert h.digest_size == digest_size
    assert h.block_size == block_size
    ref = hmac.new(b"k", digestmod=algorithm)
    assert (h.digest_size, h.block_size) == (ref.digest_size, ref.block_size)
    assert repr(h) == f"<keycell.HMAC {algorithm}>"
    assert h.update(b"x") is None
    assert len(h.finalize()) == digest_size


def test_default_context_is_sha256(raw: bytes, key: SecretKey) -> None:
    h = HMAC(key)
    assert h.algorithm == "sha256"
    h.update(b"abc")
    assert h.finalize() == hmac.digest(raw, b"abc", "sha256")


def test_already_finalized(key: SecretKey) -> None:
    h = HMAC(key)
    h.update(b"data")
    h.finalize()
    for call in (lambda: h.update(b"x"), h.finalize, h.copy, lambda: h.verify(bytes(32))):
        with pytest.raises(AlreadyFinalized, match="already been finalized"):
            call()
    assert issubclass(AlreadyFinalized, KeycellError)


def test_verify_finalizes_on_success_and_failure(raw: bytes, key: SecretKey) -> None:
    good = HMAC(key)
    good.update(b"data")
    good.verify(hmac.digest(raw, b"data", "sha256"))
    with pytest.raises(AlreadyFinalized):
        good.finalize()
    bad = HMAC(key)
    bad.update(b"data")
    with pytest.raises(InvalidSignature):
        bad.verify(bytes(32))
    with pytest.raises(AlreadyFinalized):
        bad.verify(hmac.digest(raw, b"data", "sha256"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("first", [0, 10, 63, 64, 127, 128, 129, 3000])
def test_copy_is_independent(raw: bytes, key: SecretKey, algorithm: str, first: int) -> None:
    prefix = os.urandom(first)
    h = HMAC(key, algorithm)
    h.update(prefix)
    c = h.copy()
    assert isinstance(c, HMAC)
    assert c.algorithm == algorithm
    h.update(b"original")
    c.update(b"copy")
    assert h.finalize() == hmac.digest(raw, prefix + b"original", algorithm)
    # Finalizing the original does not affect the copy, and vice versa.
    c2 = c.copy()
    assert c.finalize() == hmac.digest(raw, prefix + b"copy", algorithm)
    c2.update(b"!" * 500)
    assert c2.finalize() == hmac.digest(raw, prefix + b"copy" + b"!" * 500, algorithm)


def test_streaming_equals_oneshot_for_every_split(raw: bytes, key: SecretKey) -> None:
    msg = os.urandom(300)
    for algorithm in ALGORITHMS:
        expected = key.hmac(msg, algorithm)
        for cut in range(len(msg) + 1):
            h = HMAC(key, algorithm)
            h.update(msg[:cut])
            h.update(msg[cut:])
            assert h.finalize() == expected


def test_many_small_updates(raw: bytes, key: SecretKey) -> None:
    msg = os.urandom(1000)
    h = HMAC(key, "sha512")
    for b in msg:
        h.update(bytes([b]))
    assert h.finalize() == hmac.digest(raw, msg, "sha512")


def test_large_updates_release_path(raw: bytes, key: SecretKey) -> None:
    """Updates above the GIL-release threshold, mixed with small ones and every buffer type."""
    parts = [os.urandom(n) for n in (5, THRESHOLD, 1, 3 * THRESHOLD + 7, 70, 1 << 20)]
    h = HMAC(key, "sha384")
    for i, p in enumerate(parts):
        h.update([bytes, bytearray, memoryview][i % 3](p))
    assert h.finalize() == hmac.digest(raw, b"".join(parts), "sha384")


def test_update_copies_mutable_input(raw: bytes, key: SecretKey) -> None:
    buf = bytearray(b"a" * 100)
    h = HMAC(key)
    h.update(buf)
    buf[:] = b"b" * 100
    assert h.finalize() == hmac.digest(raw, b"a" * 100, "sha256")


def test_context_is_not_picklable_or_copyable_by_copy_module(key: SecretKey) -> None:
    h = HMAC(key)
    h.update(b"x" * 200)
    with pytest.raises(TypeError):
        pickle.dumps(h)
    with pytest.raises(TypeError):
        copy.copy(h)


def test_context_is_final() -> None:
    with pytest.raises(TypeError):
        type("Sub", (HMAC,), {})


# --- destroyed keys -----------------------------------------------------------------------


def test_destroyed_key_oneshot(key: SecretKey) -> None:
    tag = key.hmac(b"m")
    key.destroy()
    with pytest.raises(KeyDestroyedError):
        key.hmac(b"m")
    with pytest.raises(KeyDestroyedError):
        key.hmac(b"m" * THRESHOLD)
    with pytest.raises(KeyDestroyedError):
        key.verify_hmac(b"m", tag)
    with pytest.raises(KeyDestroyedError):
        HMAC(key)


@pytest.mark.parametrize("absorbed", [0, 10, 200, THRESHOLD])
@pytest.mark.parametrize("method", ["update", "update-large", "finalize", "verify", "copy"])
def test_destroyed_key_stream(key: SecretKey, absorbed: int, method: str) -> None:
    h = HMAC(key)
    h.update(b"z" * absorbed)
    key.destroy()
    calls = {
        "update": lambda: h.update(b"y"),
        "update-large": lambda: h.update(b"y" * THRESHOLD),
        "finalize": h.finalize,
        "verify": lambda: h.verify(bytes(32)),
        "copy": h.copy,
    }
    with pytest.raises(KeyDestroyedError):
        calls[method]()
    # It stays unusable with the same error (its running state has been wiped).
    for again in calls.values():
        with pytest.raises(KeyDestroyedError):
            again()


def test_context_keeps_key_alive(raw: bytes) -> None:
    """The context holds a reference to the key handle: dropping the caller's reference
    does not destroy the key under it."""
    h = HMAC(make_key(raw))
    h.update(b"q" * 100)
    assert h.finalize() == hmac.digest(raw, b"q" * 100, "sha256")


# --- threads ------------------------------------------------------------------------------


def test_threads_share_a_key_while_it_is_destroyed(raw: bytes, key: SecretKey) -> None:
    """Many threads HMAC with one key (one-shot below and above the GIL-release
    threshold, verify, streaming) while the main thread destroys it: every call either
    returns the right answer or raises KeyDestroyedError; nothing else, no crash."""
    small, big = os.urandom(40), os.urandom(4 * THRESHOLD)
    expect = {
        "small": hmac.digest(raw, small, "sha256"),
        "big": hmac.digest(raw, big, "sha512"),
        "stream": hmac.digest(raw, big + small, "sha384"),
    }
    n_threads, warmup = 12, 30
    ready = threading.Semaphore(0)
    errors: list[BaseException] = []
    destroyed = []

    def work(i: int) -> None:
        done = 0
        try:
            while True:
                kind = i % 4
                if kind == 0:
                    assert key.hmac(small) == expect["small"]
                elif kind == 1:
                    assert key.hmac(big, "sha512") == expect["big"]
                elif kind == 2:
                    key.verify_hmac(memoryview(big), expect["big"], "sha512")
                else:
                    h = HMAC(key, "sha384")
                    h.update(bytearray(big))
                    h.update(small)
                    assert h.finalize() == expect["stream"]
                done += 1
                if done == warmup:
                    ready.release()
        except KeyDestroyedError:
            destroyed.append(i)
            if done < warmup:
                ready.release()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            ready.release()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for _ in threads:
        assert ready.acquire(timeout=120)
    key.destroy()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    assert errors == []
    assert sorted(destroyed) == list(range(n_threads))
    assert key.destroyed


def test_threads_share_one_context(raw: bytes, key: SecretKey) -> None:
    """Updates to one HMAC object from many threads are serialized: with identical chunks
    the order does not matter, so the result is exact."""
    chunk = os.urandom(THRESHOLD + 100)
    h = HMAC(key, "sha256")
    n_threads, per_thread = 8, 25

    def work() -> None:
        for j in range(per_thread):
            h.update(chunk if j % 2 else memoryview(chunk))

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.finalize() == hmac.digest(raw, chunk * (n_threads * per_thread), "sha256")
