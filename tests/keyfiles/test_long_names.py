"""Key files and key stores under long but valid file names (up to NAME_MAX, 255 bytes).

The atomic writer's temporary name and the store's lock file name must fit NAME_MAX
whatever the target's length (src/fs/atomic_write.rs ``write_atomic``, src/store/lock.rs).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from keycell import Ed25519PrivateKey, KeyStore, SecretKey, X25519PrivateKey

LENGTHS = [250, 255]


def long_name(length: int, tail: str = "") -> str:
    # Multi-byte characters too: NAME_MAX counts bytes.
    stem = "é" * 20 + "k" * (length - 40 - len(tail.encode()))
    name = stem + tail
    assert len(name.encode()) == length
    return name


def leftovers(d: Path) -> list[str]:
    return [n for n in os.listdir(d) if n.endswith(".tmp")]


@pytest.mark.parametrize("length", LENGTHS)
def test_secret_key_to_file(tmp_path: Path, length: int) -> None:
    path = tmp_path / long_name(length)
    key = SecretKey.generate(32)
    key.to_file(path)
    key.to_file(path, format="hex", overwrite=True)
    loaded = SecretKey.from_file(path, format="hex")
    assert loaded == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("cls", [Ed25519PrivateKey, X25519PrivateKey])
def test_private_key_to_file(tmp_path: Path, length: int, cls: type) -> None:
    path = tmp_path / long_name(length)
    key = cls.generate()
    key.to_file(path)  # PEM
    loaded = cls.from_file(path)
    assert loaded.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("length", [246, 250, 251, 255])
def test_store_under_a_long_name(tmp_path: Path, length: int) -> None:
    path = tmp_path / long_name(length)
    master = SecretKey.generate(32)
    store = KeyStore.create(path, master=master)
    store.put("a", SecretKey.generate(32))
    store.delete("a")
    store.put("b", SecretKey.generate(16))
    assert KeyStore.open(path, master=master).names() == ["b"]
    assert leftovers(tmp_path) == []
    # Beside the store: its lock file only, whose name fits NAME_MAX as well.
    others = [n for n in os.listdir(tmp_path) if n != path.name]
    assert len(others) == 1
    assert others[0].endswith(".lock")
    assert len(others[0].encode()) <= 255
    if length + len(".lock") <= 255:
        assert others[0] == path.name + ".lock"
