"""`from_credential`: systemd credentials from `$CREDENTIALS_DIRECTORY`, straight into
guarded memory, under systemd's own layout (the directory read-only and owned by root or
this user; the file opened with `O_NOFOLLOW`, mode at most 0644). systemd is not PID 1 on
these machines: the tests set the variable themselves, and the read-only mount case uses
a real read-only bind mount in a private mount namespace (as root; it fails, not skips,
when one cannot be made)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from keycell import (
    CredentialUnavailableError,
    ECPrivateKey,
    Ed25519PrivateKey,
    InsecureKeyFileError,
    KeyFileError,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
)
from support import write_key_file

KEY = b"systemd-credential-0123456789abc"


def contents(key: SecretKey) -> bytes:
    with key.expose() as view:
        return view.tobytes()


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A credentials directory as systemd leaves it (0500, files 0400), named by
    `$CREDENTIALS_DIRECTORY`."""
    d = tmp_path / "credentials"
    d.mkdir()
    write_key_file(d / "api-key", KEY, 0o400)
    os.chmod(d, 0o500)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
    yield d
    os.chmod(d, 0o700)


def test_reads_a_credential(creds: Path) -> None:
    assert contents(SecretKey.from_credential("api-key")) == KEY
    key = SecretKey.from_credential("api-key", length=32, format="raw", exportable=False)
    assert len(key) == 32


def test_every_private_key_class_reads_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "credentials"
    d.mkdir()
    made = {
        "ed25519": Ed25519PrivateKey.generate(),
        "x25519": X25519PrivateKey.generate(),
        "ec": ECPrivateKey.generate("P-256"),
        "rsa": RSAPrivateKey.generate(2048),
    }
    for name, key in made.items():
        key.to_file(d / name)
    os.chmod(d, 0o500)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(d))
    try:
        ed = Ed25519PrivateKey.from_credential("ed25519")
        assert ed.public_key() == made["ed25519"].public_key()
        x = X25519PrivateKey.from_credential("x25519")
        assert x.public_key() == made["x25519"].public_key()
        ec = ECPrivateKey.from_credential("ec", curve="P-256")
        assert ec.public_key() == made["ec"].public_key()
        rsa = RSAPrivateKey.from_credential("rsa", format="pem")
        assert rsa.public_key() == made["rsa"].public_key()
    finally:
        os.chmod(d, 0o700)


def test_outside_a_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for load in (
        SecretKey.from_credential,
        Ed25519PrivateKey.from_credential,
        X25519PrivateKey.from_credential,
        ECPrivateKey.from_credential,
        RSAPrivateKey.from_credential,
    ):
        with pytest.raises(CredentialUnavailableError, match=r"\$CREDENTIALS_DIRECTORY is not set"):
            load("api-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "")
    with pytest.raises(CredentialUnavailableError, match="LoadCredential="):
        SecretKey.from_credential("api-key")
    assert issubclass(CredentialUnavailableError, KeyFileError)


def test_a_relative_credentials_directory_is_not_systemds(
    creds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd always sets an absolute $CREDENTIALS_DIRECTORY; a relative one would be
    resolved against the working directory, so it is refused though it names the right
    directory from here."""
    monkeypatch.chdir(creds.parent)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", creds.name)
    with pytest.raises(CredentialUnavailableError, match="not an absolute path"):
        SecretKey.from_credential("api-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert contents(SecretKey.from_credential("api-key")) == KEY


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must not be empty"),
        ("a/b", 'must not contain "/"'),
        ("../api-key", 'must not contain "/"'),
        ("/etc/shadow", 'must not contain "/"'),
        ("..", r'must not be "\." or "\.\."'),
        (".", r'must not be "\." or "\.\."'),
        ("a\0b", "must not contain a NUL"),
        ("x" * 256, "must be at most 255 bytes"),
    ],
)
def test_names_are_file_names(creds: Path, name: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"a credential name {why}"):
        SecretKey.from_credential(name)


def test_missing_credential(creds: Path) -> None:
    with pytest.raises(KeyFileError, match="No such file") as e:
        SecretKey.from_credential("absent")
    assert e.value.errno == 2
    assert not isinstance(e.value, CredentialUnavailableError)


def test_writable_directory_links_and_loose_files_are_refused(creds: Path) -> None:
    os.chmod(creds, 0o700)
    with pytest.raises(InsecureKeyFileError, match="credentials directory is writable"):
        SecretKey.from_credential("api-key")
    (creds / "link").symlink_to("api-key")
    write_key_file(creds / "loose", KEY, 0o664)
    os.chmod(creds, 0o500)
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        SecretKey.from_credential("link")
    with pytest.raises(InsecureKeyFileError, match="go beyond 0644"):
        SecretKey.from_credential("loose")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_directory_of_another_user_is_refused(creds: Path) -> None:
    os.chown(creds, 4242, 4242)
    try:
        with pytest.raises(InsecureKeyFileError, match="owned by uid 4242"):
            SecretKey.from_credential("api-key")
    finally:
        os.chown(creds, 0, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root (CI runs as root)")
def test_a_read_only_mount_is_a_read_only_directory(tmp_path: Path) -> None:
    """systemd mounts the credentials directory read-only; its mode may then be 0700."""
    d = tmp_path / "credentials"
    d.mkdir(mode=0o700)
    write_key_file(d / "api-key", KEY, 0o400)
    if shutil.which("unshare") is None:
        pytest.fail("unshare(1) is needed for the read-only mount test")
    code = (
        "from keycell import SecretKey\n"
        "with SecretKey.from_credential('api-key').expose() as v:\n"
        "    print(v.tobytes().decode())\n"
    )
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"',
            "sh",
            str(d),
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "CREDENTIALS_DIRECTORY": str(d),
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == KEY.decode()
    # Off the mount the same 0700 directory is writable, and refused.
    os.environ["CREDENTIALS_DIRECTORY"] = str(d)
    try:
        with pytest.raises(InsecureKeyFileError, match="writable"):
            SecretKey.from_credential("api-key")
    finally:
        del os.environ["CREDENTIALS_DIRECTORY"]
