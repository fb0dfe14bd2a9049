"""``--passphrase-file`` goes through the Rust secure opener (``Passphrase.from_file``,
src/keyfile/load.rs ``read_passphrase_file``): the key file checks and typed errors, no blocking
on a FIFO, and the passphrase read straight into guarded memory."""

from __future__ import annotations

import os
from pathlib import Path

import keycell._native
import pytest
from keycell import KeyStore
from keycell.exceptions import InsecureKeyFileError, KeyDestroyedError, KeyFileError
from support import run_cli

FAST = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]
FAST_PARAMS = {"memory_kib": 1024, "iterations": 1, "lanes": 1}


class Passphrase:
    """``keycell._native.Passphrase``, looked up at call time (so the CLI checks in this
    file also run against builds without it)."""

    @staticmethod
    def from_file(path: Path) -> keycell._native.Passphrase:
        return keycell._native.Passphrase.from_file(path)


def secret_file(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo, 0o600)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", fifo, *FAST, timeout=20)
    assert r.returncode == 1
    assert "not a regular file" in r.stderr
    assert not (tmp_path / "s").exists()
    with pytest.raises(InsecureKeyFileError, match="not a regular file"):
        Passphrase.from_file(fifo)


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = secret_file(tmp_path / "real", b"secret\n")
    link = tmp_path / "pw"
    link.symlink_to(target)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", link, *FAST)
    assert r.returncode == 1
    assert "symbolic link" in r.stderr
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        Passphrase.from_file(link)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_loose_permissions_are_refused(tmp_path: Path, mode: int) -> None:
    pw = secret_file(tmp_path / "pw", b"secret\n", mode)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", pw, *FAST)
    assert r.returncode == 1
    assert f"{mode:04o}" in r.stderr
    with pytest.raises(InsecureKeyFileError, match="permissions"):
        Passphrase.from_file(pw)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_file_of_another_user_is_refused(tmp_path: Path) -> None:
    pw = secret_file(tmp_path / "pw", b"secret\n")
    os.chown(pw, 65534, 65534)
    with pytest.raises(InsecureKeyFileError, match="owned by uid 65534"):
        Passphrase.from_file(pw)


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"])
def test_empty_passphrase_files_are_refused(tmp_path: Path, content: bytes) -> None:
    pw = secret_file(tmp_path / "pw", content)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", pw, *FAST)
    assert r.returncode == 1
    assert "empty" in r.stderr
    with pytest.raises(KeyFileError, match="empty"):
        Passphrase.from_file(pw)


def test_missing_file_has_errno(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        Passphrase.from_file(tmp_path / "missing")
    assert info.value.errno == 2


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_one_trailing_newline_is_dropped(tmp_path: Path, ending: bytes) -> None:
    pw = secret_file(tmp_path / "pw", b"correct horse" + ending)
    assert run_cli("store", "init", tmp_path / "s", "--passphrase-file", pw, *FAST).returncode == 0
    KeyStore.open(tmp_path / "s", master=bytearray(b"correct horse")).close()
    with Passphrase.from_file(pw) as p:
        KeyStore.open(tmp_path / "s", master=p).close()
    assert p.destroyed
    with pytest.raises(KeyDestroyedError):
        KeyStore.open(tmp_path / "s", master=p)


def test_passphrase_object_is_opaque(tmp_path: Path) -> None:
    import copy
    import pickle

    p = Passphrase.from_file(secret_file(tmp_path / "pw", b"hunter2 hunter2\n"))
    assert repr(p) == "<Passphrase>"
    assert "hunter2" not in repr(p)
    with pytest.raises(TypeError, match="cannot be converted to text"):
        str(p)
    with pytest.raises(TypeError):
        pickle.dumps(p)
    with pytest.raises(TypeError):
        copy.copy(p)
    with pytest.raises(TypeError):
        memoryview(p)  # type: ignore[arg-type]
    store = KeyStore.create(tmp_path / "s", master=p, kdf_params=FAST_PARAMS)
    store.rotate_master(p, kdf_params=FAST_PARAMS)  # the same passphrase, a fresh salt
    store.close()
    p.destroy()
    p.destroy()
    assert repr(p) == "<Passphrase destroyed>"
