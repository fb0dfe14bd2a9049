"""HKDF (RFC 5869): keycell.hkdf, hkdf_extract and hkdf_expand."""

from __future__ import annotations

import hmac
import os
import threading

import keycell
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import KeyDestroyedError, SecretKey

HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
DIGEST = {"sha256": 32, "sha384": 48, "sha512": 64}
THRESHOLD = keycell._native.GIL_RELEASE_THRESHOLD


def make_key(raw: bytes) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


def exposed(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


def pyca_hkdf(algorithm: str, ikm: bytes, length: int, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(HASHES[algorithm](), length, salt, info).derive(ikm)


@settings(max_examples=200, deadline=None)
@given(
    ikm=st.binary(min_size=1, max_size=200),
    salt=st.none() | st.binary(max_size=200),
    info=st.binary(max_size=200),
    algorithm=st.sampled_from(sorted(HASHES)),
    data=st.data(),
)
def test_interop_with_pyca(
    ikm: bytes, salt: bytes | None, info: bytes, algorithm: str, data: st.DataObject
) -> None:
    length = data.draw(st.integers(min_value=1, max_value=255 * DIGEST[algorithm]))
    expected = pyca_hkdf(algorithm, ikm, length, salt, info)
    key = make_key(ikm)
    out = keycell.hkdf(key, length=length, salt=salt, info=info, algorithm=algorithm)
    assert isinstance(out, SecretKey)
    assert len(out) == length
    assert exposed(out) == expected

    prk = keycell.hkdf_extract(key, salt=salt, algorithm=algorithm)
    assert len(prk) == DIGEST[algorithm]
    assert exposed(prk) == HKDF.extract(HASHES[algorithm](), salt, ikm)
    out2 = keycell.hkdf_expand(prk, length=length, info=info, algorithm=algorithm)
    assert exposed(out2) == expected
    assert exposed(out2) == HKDFExpand(HASHES[algorithm](), length, info).derive(exposed(prk))
    for k in (key, out, prk, out2):
        k.destroy()


@pytest.mark.parametrize("algorithm", HASHES)
def test_extract_is_hmac_of_salt(algorithm: str) -> None:
    ikm, salt = os.urandom(40), os.urandom(20)
    prk = keycell.hkdf_extract(make_key(ikm), salt=salt, algorithm=algorithm)
    assert exposed(prk) == hmac.digest(salt, ikm, algorithm)


@pytest.mark.parametrize("algorithm", HASHES)
def test_default_salt_is_hashlen_zeros(algorithm: str) -> None:
    key = make_key(os.urandom(32))
    zeros = bytes(DIGEST[algorithm])
    a = keycell.hkdf(key, length=40, algorithm=algorithm)
    assert a == keycell.hkdf(key, length=40, salt=zeros, algorithm=algorithm)
    assert a == keycell.hkdf(key, length=40, salt=b"", algorithm=algorithm)
    assert a == keycell.hkdf(key, length=40, salt=None, info=b"", algorithm=algorithm)
    assert keycell.hkdf_extract(key, algorithm=algorithm) == keycell.hkdf_extract(
        key, salt=zeros, algorithm=algorithm
    )


def test_defaults_are_sha256_and_empty_info() -> None:
    ikm = os.urandom(32)
    out = keycell.hkdf(make_key(ikm), length=32)
    assert exposed(out) == pyca_hkdf("sha256", ikm, 32, None, b"")
    prk = keycell.hkdf_extract(make_key(ikm))
    assert len(prk) == 32
    assert keycell.hkdf_expand(prk, length=32) == out


@pytest.mark.parametrize("algorithm", HASHES)
def test_length_limits(algorithm: str) -> None:
    key = make_key(os.urandom(32))
    prk = keycell.hkdf_extract(key, algorithm=algorithm)
    top = 255 * DIGEST[algorithm]
    for length in (1, DIGEST[algorithm] - 1, DIGEST[algorithm], DIGEST[algorithm] + 1, top):
        out = keycell.hkdf(key, length=length, algorithm=algorithm)
        assert len(out) == length
        assert len(keycell.hkdf_expand(prk, length=length, algorithm=algorithm)) == length
    for bad in (0, -1, top + 1, 1 << 70, -(1 << 70)):
        with pytest.raises(ValueError, match=f"between 1 and {top} bytes"):
            keycell.hkdf(key, length=bad, algorithm=algorithm)
        with pytest.raises(ValueError, match=f"between 1 and {top} bytes"):
            keycell.hkdf_expand(prk, length=bad, algorithm=algorithm)


def test_outputs_are_prefixes_of_longer_outputs() -> None:
    key = make_key(os.urandom(32))
    long = exposed(keycell.hkdf(key, length=1000, info=b"ctx"))
    for n in (1, 31, 32, 33, 500):
        assert exposed(keycell.hkdf(key, length=n, info=b"ctx")) == long[:n]


@pytest.mark.parametrize("bad", [32.0, "32", None, b"\x20", [32]])
def test_length_type(bad: object) -> None:
    key = make_key(os.urandom(32))
    with pytest.raises(TypeError, match="length must be an int"):
        keycell.hkdf(key, length=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="length must be an int"):
        keycell.hkdf_expand(key, length=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [b"raw ikm", bytearray(32), "ikm", None, 7])
def test_key_must_be_secret_key(bad: object) -> None:
    with pytest.raises(TypeError, match=r"must be a keycell\.SecretKey"):
        keycell.hkdf(bad, length=32)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be a keycell\.SecretKey"):
        keycell.hkdf_extract(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be a keycell\.SecretKey"):
        keycell.hkdf_expand(bad, length=32)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["salt", 5, 1.0])
def test_salt_and_info_types(bad: object) -> None:
    key = make_key(os.urandom(32))
    with pytest.raises(TypeError, match="salt must be a bytes-like"):
        keycell.hkdf(key, length=32, salt=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="salt must be a bytes-like"):
        keycell.hkdf_extract(key, salt=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="info must be a bytes-like"):
        keycell.hkdf(key, length=32, info=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="info must be a bytes-like"):
        keycell.hkdf_expand(key, length=32, info=bad)  # type: ignore[arg-type]


def test_bytes_like_salt_and_info() -> None:
    ikm, salt, info = os.urandom(32), os.urandom(16), os.urandom(16)
    key = make_key(ikm)
    expected = pyca_hkdf("sha256", ikm, 64, salt, info)
    for wrap in (bytes, bytearray, memoryview):
        out = keycell.hkdf(key, length=64, salt=wrap(salt), info=wrap(info))
        assert exposed(out) == expected


def test_arguments_are_keyword_only() -> None:
    key = make_key(os.urandom(32))
    with pytest.raises(TypeError):
        keycell.hkdf(key, 32)  # type: ignore[misc]
    with pytest.raises(TypeError):
        keycell.hkdf_extract(key, b"salt")  # type: ignore[misc]
    with pytest.raises(TypeError):
        keycell.hkdf_expand(key, 32)  # type: ignore[misc]
    with pytest.raises(TypeError):
        keycell.hkdf(key)  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", ["md5", "sha1", "sha3-256", ""])
def test_unknown_algorithm(bad: str) -> None:
    key = make_key(os.urandom(32))
    with pytest.raises(ValueError, match="unsupported hash algorithm"):
        keycell.hkdf(key, length=32, algorithm=bad)
    with pytest.raises(ValueError, match="unsupported hash algorithm"):
        keycell.hkdf_extract(key, algorithm=bad)
    with pytest.raises(ValueError, match="unsupported hash algorithm"):
        keycell.hkdf_expand(key, length=32, algorithm=bad)
    with pytest.raises(TypeError):
        keycell.hkdf(key, length=32, algorithm=256)  # type: ignore[arg-type]


def test_destroyed_inputs() -> None:
    key = make_key(os.urandom(32))
    prk = keycell.hkdf_extract(key)
    key.destroy()
    prk.destroy()
    with pytest.raises(KeyDestroyedError):
        keycell.hkdf(key, length=32)
    with pytest.raises(KeyDestroyedError):
        keycell.hkdf(key, length=THRESHOLD)
    with pytest.raises(KeyDestroyedError):
        keycell.hkdf_extract(key)
    with pytest.raises(KeyDestroyedError):
        keycell.hkdf_expand(prk, length=32)


def test_output_is_an_independent_secret_key() -> None:
    ikm = os.urandom(32)
    key = make_key(ikm)
    out = keycell.hkdf(key, length=32, info=b"session")
    key.destroy()
    assert not out.destroyed
    assert exposed(out) == pyca_hkdf("sha256", ikm, 32, None, b"session")
    assert repr(out) == "<SecretKey 32 bytes>"
    assert out.protection.guard_pages
    # The derived key works as an HMAC key like any other.
    assert out.hmac(b"msg") == hmac.digest(exposed(out), b"msg", "sha256")
    out.destroy()
    assert out.destroyed


@pytest.mark.parametrize("algorithm", HASHES)
def test_large_outputs_and_inputs_release_path(algorithm: str) -> None:
    """Outputs and inputs above the GIL-release threshold."""
    ikm, salt, info = os.urandom(THRESHOLD + 1), os.urandom(THRESHOLD), os.urandom(THRESHOLD)
    length = 255 * DIGEST[algorithm]
    out = keycell.hkdf(make_key(ikm), length=length, salt=salt, info=info, algorithm=algorithm)
    assert exposed(out) == pyca_hkdf(algorithm, ikm, length, salt, info)


def test_threads_derive_while_the_key_is_destroyed() -> None:
    ikm = os.urandom(32)
    key = make_key(ikm)
    expected = pyca_hkdf("sha256", ikm, 4000, b"s", b"i")
    ready = threading.Semaphore(0)
    errors: list[BaseException] = []
    outcomes: list[str] = []

    def work() -> None:
        done = 0
        try:
            while True:
                out = keycell.hkdf(key, length=4000, salt=b"s", info=b"i")
                assert exposed(out) == expected
                out.destroy()
                done += 1
                if done == 10:
                    ready.release()
        except KeyDestroyedError:
            outcomes.append("destroyed")
            if done < 10:
                ready.release()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            ready.release()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in threads:
        assert ready.acquire(timeout=120)
    key.destroy()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert outcomes == ["destroyed"] * len(threads)
