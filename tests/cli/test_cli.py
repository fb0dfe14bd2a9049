"""The ``keycell`` command line: keygen, pubkey, store; exit codes; stdout hygiene."""

from __future__ import annotations

import os
import pty
import subprocess
import time
from pathlib import Path

import pytest
from asym_support import needs_openssl
from keycell import KeyStore, SecretKey
from keycell.cli import build_parser
from support import KEYCELL, run_cli

FAST = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]


def secret_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def every_command() -> list[list[str]]:
    cmds = [["doctor"], ["keygen"], ["pubkey"], ["store"]]
    cmds += [["store", a] for a in ("init", "put", "get", "list", "delete", "rotate")]
    return cmds


@pytest.mark.parametrize("cmd", every_command(), ids=" ".join)
def test_help_everywhere(cmd: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*cmd, "--help"])
    assert info.value.code == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["frobnicate"], ["keygen", "dsa", "-o", "x"], ["keygen", "secret"], ["store"]):
        r = run_cli(*args)
        assert r.returncode == 2, args
        assert r.stdout == ""
        assert "usage:" in r.stderr
    # A negative or huge --length is an error message, not a traceback.
    for length in ("-1", str(2**70)):
        r = run_cli("keygen", "secret", "-o", tmp_path / "k", "--length", length)
        assert r.returncode in (1, 2), r.stderr
        assert "Traceback" not in r.stderr
        assert "between 1 and" in r.stderr
    r = run_cli("store", "get", tmp_path / "s", "name", "--passphrase-file", tmp_path / "p")
    assert r.returncode == 2
    assert "-o FILE or --print-secret" in r.stderr


def test_keygen_and_store_workflow(tmp_path: Path) -> None:
    pw = secret_file(tmp_path / "pw", b"hunter2 but longer\n")
    store = tmp_path / "keys.kcs"
    r = run_cli("keygen", "secret", "-o", tmp_path / "k.hex", "--format", "hex", "--length", "24")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert (tmp_path / "k.hex").stat().st_mode & 0o777 == 0o600
    original = SecretKey.from_file(tmp_path / "k.hex")
    assert len(original) == 24
    # keygen never replaces a file without --force.
    r = run_cli("keygen", "secret", "-o", tmp_path / "k.hex")
    assert r.returncode == 1
    assert "already exists" in r.stderr
    assert SecretKey.from_file(tmp_path / "k.hex") == original

    assert run_cli("store", "init", store, "--passphrase-file", pw, *FAST).returncode == 0
    r = run_cli(
        "store", "put", store, "api", "--key-file", tmp_path / "k.hex", "--passphrase-file", pw
    )
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "put", store, "gen", "--generate", "secret", "--passphrase-file", pw)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "list", store, "--passphrase-file", pw)
    assert (r.returncode, r.stdout) == (0, "api\tsecret\ngen\tsecret\n")

    out = tmp_path / "out.key"
    r = run_cli("store", "get", store, "api", "-o", out, "--passphrase-file", pw)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # the secret never goes to stdout without --print-secret
    assert SecretKey.from_file(out, format="raw") == original
    r = run_cli("store", "get", store, "api", "--print-secret", "--passphrase-file", pw)
    assert r.returncode == 0
    with original.expose() as view:
        assert r.stdout == view.hex() + "\n"

    r = run_cli("store", "list", store, "--passphrase-file", secret_file(tmp_path / "bad", b"nope"))
    assert r.returncode == 1
    assert "wrong passphrase" in r.stderr
    assert r.stdout == ""

    master = tmp_path / "master.key"
    assert run_cli("keygen", "secret", "-o", master).returncode == 0
    r = run_cli("store", "rotate", store, "--passphrase-file", pw, "--new-master-key-file", master)
    assert r.returncode == 0, r.stderr
    assert run_cli("store", "list", store, "--passphrase-file", pw).returncode == 1
    r = run_cli("store", "delete", store, "gen", "--master-key-file", master)
    assert r.returncode == 0, r.stderr
    direct = KeyStore.open(store, master=SecretKey.from_file(master))
    assert direct.names() == ["api"]
    assert direct.get("api") == original
    r = run_cli("store", "delete", store, "gen", "--master-key-file", master)
    assert r.returncode == 1
    assert "no entry" in r.stderr


def test_passphrase_file_checks(tmp_path: Path) -> None:
    loose = tmp_path / "pw"
    loose.write_bytes(b"secret\n")
    loose.chmod(0o644)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", loose, *FAST)
    assert r.returncode == 1
    assert "permissions" in r.stderr
    assert not (tmp_path / "s").exists()
    link = tmp_path / "link"
    link.symlink_to(loose)
    loose.chmod(0o600)
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", link, *FAST)
    assert r.returncode == 1
    assert "symbolic link" in r.stderr
    empty = secret_file(tmp_path / "empty", b"\n")
    r = run_cli("store", "init", tmp_path / "s", "--passphrase-file", empty, *FAST)
    assert r.returncode == 1
    assert "empty" in r.stderr


def test_no_terminal_for_the_prompt(tmp_path: Path) -> None:
    r = run_cli(
        "store", "init", tmp_path / "s", *FAST, start_new_session=True  # no controlling terminal
    )
    assert r.returncode == 1
    assert "--passphrase-file" in r.stderr


def test_passphrase_prompt_on_a_terminal(tmp_path: Path) -> None:
    """`store init` asks twice on the terminal with echo off; the store opens with it."""
    store = tmp_path / "s"
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(KEYCELL[0], [*KEYCELL, "store", "init", str(store), *FAST])
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        deadline = time.monotonic() + 30
        while marker not in output and time.monotonic() < deadline:
            try:
                output += os.read(fd, 1024)
            except OSError:
                break

    read_until(b"Passphrase for")
    os.write(fd, b"typed secret\n")
    read_until(b"Repeat it")
    os.write(fd, b"typed secret\n")
    read_until(b"created key store")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b"typed secret" not in output  # echo was off
    assert KeyStore.open(store, master=bytearray(b"typed secret")).names() == []


@pytest.mark.skipif(
    not hasattr(__import__("keycell"), "Ed25519PrivateKey"), reason="needs Ed25519 keys"
)
def test_keygen_asymmetric_and_pubkey(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    for kind in ("ed25519", "x25519"):
        path = tmp_path / f"{kind}.pem"
        assert run_cli("keygen", kind, "-o", path).returncode == 0
        theirs = serialization.load_pem_private_key(path.read_bytes(), password=None)
        r = run_cli("pubkey", path)
        assert r.returncode == 0, r.stderr
        raw = theirs.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        assert r.stdout == raw.hex() + "\n"
        r = run_cli("pubkey", path, "--pem")
        pem = theirs.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert r.stdout == pem.decode()
        rawfile = tmp_path / f"{kind}.raw"
        assert run_cli("keygen", kind, "-o", rawfile, "--format", "raw").returncode == 0
        r = run_cli("pubkey", rawfile)
        assert r.returncode == 1
        assert "--type" in r.stderr
        assert run_cli("pubkey", rawfile, "--type", kind).returncode == 0


@needs_openssl
def test_store_holds_private_keys(tmp_path: Path) -> None:
    from keycell import Ed25519PrivateKey, X25519PrivateKey

    master = tmp_path / "master.key"
    assert run_cli("keygen", "secret", "-o", master).returncode == 0
    store = tmp_path / "keys.kcs"
    m = ["--master-key-file", master]
    assert run_cli("store", "init", store, *m).returncode == 0
    # An openssl key file goes in with its type named; a generated one by type.
    ossl = tmp_path / "ossl.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "x25519", "-out", str(ossl)], check=True)
    ossl.chmod(0o600)
    r = run_cli("store", "put", store, "dh", "--key-file", ossl, "--type", "x25519", *m)
    assert r.returncode == 0, r.stderr
    # Without --type a PKCS#8 file is stored as the type it names, never as a secret key.
    r = run_cli("store", "put", store, "dh2", "--key-file", ossl, *m)
    assert r.returncode == 0, r.stderr
    der = tmp_path / "ossl.der"
    der.write_bytes(
        subprocess.run(
            ["openssl", "pkey", "-in", str(ossl), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
    )
    der.chmod(0o600)
    r = run_cli("store", "put", store, "dh3", "--key-file", der, *m)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "put", store, "dh4", "--key-file", der, "--format", "der", *m)
    assert r.returncode == 0, r.stderr
    r = run_cli("store", "put", store, "signer", "--generate", "ed25519", *m)
    assert r.returncode == 0, r.stderr
    opened = KeyStore.open(store, master=SecretKey.from_file(master))
    signer = opened.get("signer")
    dh = opened.get("dh")
    assert isinstance(signer, Ed25519PrivateKey)
    assert isinstance(dh, X25519PrivateKey)
    assert dh.public_key() == X25519PrivateKey.from_file(ossl).public_key()
    for name in ("dh2", "dh3", "dh4"):
        again = opened.get(name)
        assert isinstance(again, X25519PrivateKey)
        assert again.public_key() == dh.public_key()
    # store get writes PKCS#8 PEM by default for private keys; pubkey reads it.
    out = tmp_path / "signer.pem"
    r = run_cli("store", "get", store, "signer", "-o", out, *m)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    r = run_cli("pubkey", out)
    assert (r.returncode, r.stdout) == (0, signer.public_key().public_bytes_raw().hex() + "\n")
    r = run_cli("store", "get", store, "dh", "-o", tmp_path / "dh.der", "--format", "der", *m)
    assert r.returncode == 0, r.stderr
    r = run_cli("pubkey", tmp_path / "dh.der", "--pem")
    assert (r.returncode, r.stdout) == (0, dh.public_key().public_bytes_pem().decode())
    # A private key is never printed.
    r = run_cli("store", "get", store, "signer", "--print-secret", *m)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "-o FILE" in r.stderr


def test_pubkey_needs_type_for_raw_formats(tmp_path: Path) -> None:
    path = tmp_path / "k.hex"
    assert run_cli("keygen", "ed25519", "-o", path, "--format", "hex").returncode == 0
    for fmt in ("raw", "hex", "base64"):
        r = run_cli("pubkey", path, "--format", fmt)
        assert r.returncode == 2, fmt
        assert "--type" in r.stderr
    r = run_cli("pubkey", path, "--format", "hex", "--type", "ed25519")
    assert r.returncode == 0, r.stderr
    r = run_cli("pubkey", path, "--type", "x25519")  # hex is detected; the type is trusted
    assert r.returncode == 0, r.stderr
    r = run_cli("pubkey", path)
    assert r.returncode == 1
    assert "--type" in r.stderr
