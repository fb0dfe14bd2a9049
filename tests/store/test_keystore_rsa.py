"""RSA keys in the key store (entry type 6, the key's PKCS#1 DER): ``put`` and ``get`` give
back an ``RSAPrivateKey`` with the same key (compared with pyca through its PKCS#1 PEM), the
export seal is kept, an entry survives ``rotate_master`` and a re-open, the entry is type
6 of the documented length, and a modified entry is refused like any other."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from keycell import (
    KeyNotExportableError,
    KeyStore,
    RSAPrivateKey,
    SecretKey,
    StoreCorruptedError,
)

FAST: Any = {"memory_kib": 1024, "iterations": 1, "lanes": 1}


@pytest.fixture(scope="module")
def key() -> Any:
    k = RSAPrivateKey.generate(2048)
    yield k
    k.destroy()


def test_put_get_round_trip_and_seal(tmp_path: Path, key: RSAPrivateKey) -> None:
    path = tmp_path / "s.kcs"
    with RSAPrivateKey.generate(2048, exportable=False) as sealed:
        with KeyStore.create(path, master=bytearray(b"correct horse"), kdf_params=FAST) as s:
            s.put("rsa", key)
            s.put("sealed", sealed)
            assert s.names() == ["rsa", "sealed"]
        with KeyStore.open(path, master=bytearray(b"correct horse")) as s:
            back = s.get("rsa")
            sealed_back = s.get("sealed")
        assert isinstance(back, RSAPrivateKey)
        assert isinstance(sealed_back, RSAPrivateKey)
        with back, sealed_back:
            assert back.public_key() == key.public_key()
            assert sealed_back.public_key() == sealed.public_key()
            assert back.key_size == 2048
            # The same private key: the PKCS#1 files are equal, and pyca verifies.
            back.to_file(tmp_path / "a.pem", traditional=True)
            key.to_file(tmp_path / "b.pem", traditional=True)
            assert (tmp_path / "a.pem").read_bytes() == (tmp_path / "b.pem").read_bytes()
            theirs = serialization.load_pem_private_key(
                (tmp_path / "a.pem").read_bytes(), password=None
            )
            assert isinstance(theirs, pyca_rsa.RSAPrivateKey)
            sig = back.sign(b"message", padding="pkcs1v15")
            theirs.public_key().verify(sig, b"message", padding.PKCS1v15(), hashes.SHA256())
            with pytest.raises(KeyNotExportableError):
                sealed_back.to_file(tmp_path / "c.pem")
            assert not (tmp_path / "c.pem").exists()
            sealed_back.public_key().verify(sealed_back.sign(b"m"), b"m")


def test_rotate_reopen_and_tamper(tmp_path: Path, key: RSAPrivateKey) -> None:
    path = tmp_path / "s.kcs"
    with SecretKey.generate(32) as m1, SecretKey.generate(32) as m2:
        with KeyStore.create(path, master=m1) as s:
            s.put("rsa", key)
            s.rotate_master(m2)
        with KeyStore.open(path, master=m2) as s, s.get("rsa") as back:
            assert back.public_key() == key.public_key()
        data = bytearray(path.read_bytes())
        # The entry: after the 100-byte header, u16 name length, the name, the type byte.
        (name_len,) = struct.unpack(">H", data[100:102])
        assert bytes(data[102 : 102 + name_len]) == b"rsa"
        at = 102 + name_len
        assert data[at] == 6
        (length,) = struct.unpack(">I", data[at + 2 : at + 6])
        assert 1000 < length <= 8192
        # A flipped ciphertext byte, re-sealed file MAC or not, is refused.
        data[at + 6 + 24 + 10] ^= 1
        path.write_bytes(bytes(data))
        with pytest.raises(StoreCorruptedError):
            with KeyStore.open(path, master=m2) as s:
                s.get("rsa")
