"""`SecretKey.from_file`: safe opening of key files (invariants 1 and 7).

Every refusal is a typed exception (`InsecureKeyFileError` for files that are not safe to
read, `KeyFileError` for files that cannot be used) whose message names the problem and
never contains key bytes nor the size of the file.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import InsecureKeyFileError, KeycellError, KeyFileError, SecretKey, _native
from support import NOBODY, drop_privileges, privilege_drop_reason, run_forked, write_key_file

MAX = _native.MAX_KEY_LEN


def printable_secret(n: int = 32) -> bytes:
    """Random printable key bytes: any leak into a message would be readable there."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n)).encode()


def contents(key: SecretKey) -> bytes:
    with key.expose() as view:
        return view.tobytes()


def assert_clean_message(
    exc: BaseException, secret: bytes, *, size: int | None = None, path: Path | None = None
) -> None:
    """No part of ``secret`` in the message, nor the file's ``size`` as a number of its own
    (digits inside the file's ``path``, which the message names, do not count: pytest's
    temporary directories are numbered)."""
    text = str(exc) + repr(exc)
    for part in (secret, secret[:8], secret[-8:]):
        assert part.decode("latin-1") not in text
    assert secret.hex() not in text
    if size is not None:
        if path is not None:
            text = text.replace(str(path), "<path>")
        assert not re.search(rf"(?<!\d){size}(?!\d)", text), f"message reveals the size: {text}"


# --------------------------------------------------------------------------- good files


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o500])
def test_good_file(tmp_path: Path, mode: int) -> None:
    secret = printable_secret()
    path = write_key_file(tmp_path / "key", secret, mode)
    key = SecretKey.from_file(path)
    assert len(key) == 32
    assert contents(key) == secret
    assert key.protection.complete
    key.destroy()


def test_path_types(tmp_path: Path) -> None:
    secret = printable_secret(16)
    path = write_key_file(tmp_path / "key", secret)
    assert contents(SecretKey.from_file(str(path))) == secret
    assert contents(SecretKey.from_file(path)) == secret
    with pytest.raises(TypeError):
        SecretKey.from_file(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SecretKey.from_file(None)  # type: ignore[arg-type]


@settings(max_examples=40)
@given(st.binary(min_size=1, max_size=600))
def test_any_content_roundtrips(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = write_key_file(tmp_path_factory.mktemp("kf") / "key", data)
    key = SecretKey.from_file(path, length=len(data))
    assert contents(key) == data
    assert key == SecretKey.from_buffer(data)


def test_expected_length_matches(tmp_path: Path) -> None:
    secret = printable_secret(48)
    path = write_key_file(tmp_path / "key", secret)
    assert contents(SecretKey.from_file(path, length=48)) == secret


def test_max_size_file(tmp_path: Path) -> None:
    data = os.urandom(MAX)
    key = SecretKey.from_file(write_key_file(tmp_path / "key", data))
    assert len(key) == MAX
    assert contents(key) == data


# --------------------------------------------------------------------------- refusals


def test_length_mismatch(tmp_path: Path) -> None:
    secret = printable_secret(33)
    path = write_key_file(tmp_path / "key", secret)
    for expected in (32, 34, 1):
        with pytest.raises(KeyFileError, match="does not match the expected length") as e:
            SecretKey.from_file(path, length=expected)
        assert not isinstance(e.value, InsecureKeyFileError)
        assert e.value.errno is None
        assert str(path) in str(e.value)
        assert_clean_message(e.value, secret, size=33, path=path)


@pytest.mark.parametrize("length", [0, MAX + 1, -1, 2**64, -(2**70)])
def test_length_argument_out_of_range(tmp_path: Path, length: int) -> None:
    path = write_key_file(tmp_path / "key", printable_secret())
    with pytest.raises(ValueError, match="between 1 and"):
        SecretKey.from_file(path, length=length)


@pytest.mark.parametrize("length", ["32", 32.0, b"32"])
def test_length_argument_type(tmp_path: Path, length: Any) -> None:
    path = write_key_file(tmp_path / "key", printable_secret())
    with pytest.raises(TypeError):
        SecretKey.from_file(path, length=length)


def test_length_is_keyword_only(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "key", printable_secret())
    with pytest.raises(TypeError):
        SecretKey.from_file(path, 32)  # type: ignore[misc]


def test_symlink_refused(tmp_path: Path) -> None:
    secret = printable_secret()
    target = write_key_file(tmp_path / "key", secret)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(InsecureKeyFileError, match="symbolic link") as e:
        SecretKey.from_file(link)
    assert_clean_message(e.value, secret)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        SecretKey.from_file(dangling)


def test_symlink_to_directory_refused(tmp_path: Path) -> None:
    link = tmp_path / "dirlink"
    link.symlink_to(tmp_path)
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        SecretKey.from_file(link)


def test_directory_refused(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(InsecureKeyFileError, match="directory"):
        SecretKey.from_file(d)


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InsecureKeyFileError, match="not a regular file"):
        SecretKey.from_file(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_character_device_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    with pytest.raises(InsecureKeyFileError, match="not a regular file"):
        SecretKey.from_file(device)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o660, 0o604, 0o620, 0o602, 0o610, 0o601, 0o666])
def test_loose_permissions_refused(tmp_path: Path, mode: int) -> None:
    secret = printable_secret()
    path = write_key_file(tmp_path / "key", secret, mode)
    with pytest.raises(InsecureKeyFileError, match=f"{mode:04o}.*chmod 600") as e:
        SecretKey.from_file(path)
    assert_clean_message(e.value, secret)
    assert isinstance(e.value, KeyFileError)
    assert isinstance(e.value, KeycellError)


def test_empty_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "key", b"")
    with pytest.raises(KeyFileError, match="empty") as e:
        SecretKey.from_file(path)
    assert not isinstance(e.value, InsecureKeyFileError)


def test_too_large_file(tmp_path: Path) -> None:
    data = printable_secret(64) * ((MAX // 64) + 1)
    path = write_key_file(tmp_path / "key", data[: MAX + 1])
    with pytest.raises(KeyFileError, match="larger than") as e:
        SecretKey.from_file(path)
    assert_clean_message(e.value, data[:64], size=MAX + 1, path=path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open") as e:
        SecretKey.from_file(tmp_path / "missing")
    assert e.value.errno == errno.ENOENT
    assert not isinstance(e.value, InsecureKeyFileError)
    assert not isinstance(e.value, OSError), "keycell errors are typed keycell exceptions"


def test_missing_directory_component(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as e:
        SecretKey.from_file(tmp_path / "nodir" / "key")
    assert e.value.errno == errno.ENOENT


def test_path_through_a_regular_file(tmp_path: Path) -> None:
    f = write_key_file(tmp_path / "key", printable_secret())
    with pytest.raises(KeyFileError) as e:
        SecretKey.from_file(f / "sub")
    assert e.value.errno == errno.ENOTDIR


def test_nul_in_path(tmp_path: Path) -> None:
    with pytest.raises((KeyFileError, ValueError)):
        SecretKey.from_file(str(tmp_path / "a\0b"))


def test_foreign_owner_refused_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0 or NOBODY is None:
        pytest.skip("needs root to chown a file to nobody; the forked test covers non-root")
    secret = printable_secret()
    path = write_key_file(tmp_path / "key", secret)
    os.chown(path, NOBODY[0], NOBODY[1])
    with pytest.raises(InsecureKeyFileError, match=f"owned by uid {NOBODY[0]}.*uid 0") as e:
        SecretKey.from_file(path)
    assert_clean_message(e.value, secret)


def _open_as_nobody(paths: list[str]) -> list[dict[str, Any]]:
    drop_privileges()
    out = []
    for p in paths:
        try:
            SecretKey.from_file(p)
        except KeyFileError as e:
            out.append(
                {
                    "type": type(e).__name__,
                    "message": str(e),
                    "errno": e.errno,
                    "uid": os.geteuid(),
                }
            )
        else:
            out.append({"type": None, "message": "", "errno": None, "uid": os.geteuid()})
    return out


def test_foreign_owner_refused_in_unprivileged_child(world_dir: Path) -> None:
    """A child that dropped to ``nobody`` refuses a file owned by someone else (even one it
    can read), and reports a file it cannot open with its errno."""
    if os.geteuid() != 0:
        pytest.skip("creating a key file owned by another user needs root")
    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)
    secret = printable_secret()
    readable = write_key_file(world_dir / "readable", secret, 0o604)
    private = write_key_file(world_dir / "private", secret, 0o600)
    res = run_forked(_open_as_nobody, [str(readable), str(private)])
    foreign, unreadable = res.unwrap()
    assert foreign["uid"] != 0
    assert foreign["type"] == "InsecureKeyFileError"
    assert f"owned by uid 0 but this process runs as uid {foreign['uid']}" in foreign["message"]
    assert unreadable["type"] == "KeyFileError"
    assert unreadable["errno"] == errno.EACCES
    for r in (foreign, unreadable):
        assert secret.decode() not in r["message"]
