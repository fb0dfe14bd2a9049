"""``keycell pkcs11 list`` and ``keycell pkcs11 keygen`` against SoftHSM2, cross-checked
with pkcs11-tool."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from keycell import pkcs11
from keycell.exceptions import KeyFileError, Pkcs11PinFileError
from pkcs11_support import Hsm
from support import run_cli


def test_keygen_and_list(hsm: Hsm) -> None:
    r = run_cli(
        "pkcs11",
        "keygen",
        "ed25519",
        "--module",
        hsm.module,
        "--token",
        hsm.label,
        "--pin-file",
        str(hsm.pin_file),
        "--label",
        "kc-cli-ed",
    )
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert lines["label"] == "kc-cli-ed"
    # The key is in the token, sensitive, and pkcs11-tool sees it with that id.
    listing = hsm.tool("--list-objects").stdout.decode()
    assert f"ID:         {lines['id']}" in listing
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
        key = t.ed25519_private_key(label="kc-cli-ed")
        assert key.public_key().public_bytes_raw().hex() == lines["public key"]
        uri_key = pkcs11.open_uri(lines["uri"] + f"&pin-source=file:{hsm.pin_file}")
        assert uri_key.public_key() == key.public_key()  # type: ignore[union-attr]

    r = run_cli("pkcs11", "list", "--module", hsm.module)
    assert r.returncode == 0, r.stderr
    assert repr(hsm.label) in r.stdout
    assert repr(hsm.other) in r.stdout

    r = run_cli(
        "pkcs11",
        "list",
        "--module",
        hsm.module,
        "--token",
        hsm.label,
        "--pin-file",
        str(hsm.pin_file),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    objects = json.loads(r.stdout)
    mine = [o for o in objects if o["label"] == "kc-cli-ed" and o["class"] == "private"]
    assert mine
    assert mine[0]["sensitive"]
    assert mine[0]["never_extractable"]
    assert hsm.pin not in r.stdout

    r = run_cli("pkcs11", "list", "--module", hsm.module, "--token", hsm.label)
    assert r.returncode == 0, r.stderr
    assert "kc-cli-ed" in r.stdout  # the public key object is visible without a PIN
    assert "private" not in r.stdout


def test_keygen_secret_and_errors(hsm: Hsm) -> None:
    r = run_cli(
        "pkcs11",
        "keygen",
        "secret",
        "--module",
        hsm.module,
        "--token",
        hsm.label,
        "--pin-file",
        str(hsm.pin_file),
        "--label",
        "kc-cli-mac",
        "--length",
        "48",
    )
    assert r.returncode == 0, r.stderr
    assert "type=secret-key" in r.stdout
    assert "public key" not in r.stdout
    r = run_cli(
        "pkcs11",
        "keygen",
        "secret",
        "--module",
        hsm.module,
        "--token",
        hsm.label,
        "--pin-file",
        str(hsm.pin_file),
        "--label",
        "kc-cli-mac",
    )
    assert r.returncode == 1
    assert "the token already has a secret key labelled \"kc-cli-mac\"" in r.stderr
    r = run_cli("pkcs11", "list", "--module", "/nonexistent/module.so")
    assert r.returncode == 1
    assert "keycell: error:" in r.stderr
    r = run_cli("pkcs11", "list", "--module", hsm.module, "--token", "no-such-token")
    assert r.returncode == 1
    assert "no-such-token" in r.stderr


def test_keygen_ec(hsm: Hsm) -> None:
    token_args = ("--module", hsm.module, "--token", hsm.label, "--pin-file", str(hsm.pin_file))
    r = run_cli("pkcs11", "keygen", "ec", *token_args, "--label", "kc-cli-ec", "--curve", "P-384")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert (lines["label"], lines["curve"]) == ("kc-cli-ec", "P-384")
    assert "-----BEGIN PUBLIC KEY-----" in r.stdout
    try:
        with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
            key = t.ec_private_key(label="kc-cli-ec")
            assert key.id.hex() == lines["id"]
            assert key.public_key().public_bytes_x962().hex() == lines["public key"]
            uri_key = pkcs11.open_uri(lines["uri"] + f"&pin-source=file:{hsm.pin_file}")
            assert isinstance(uri_key, pkcs11.Pkcs11ECPrivateKey)
            assert uri_key.public_key() == key.public_key()
    finally:
        for kind in ("privkey", "pubkey"):
            hsm.tool("--delete-object", "--type", kind, "--label", "kc-cli-ec", check=False)
    r = run_cli("pkcs11", "keygen", "ed25519", *token_args, "--label", "x", "--curve", "P-256")
    assert r.returncode == 2
    assert "--curve is for ec keys" in r.stderr


def test_keygen_rsa(hsm: Hsm) -> None:
    token_args = ("--module", hsm.module, "--token", hsm.label, "--pin-file", str(hsm.pin_file))
    r = run_cli("pkcs11", "keygen", "rsa", *token_args, "--label", "kc-cli-rsa", "--bits", "2048")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    assert (lines["label"], lines["bits"]) == ("kc-cli-rsa", "2048")
    try:
        with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
            key = t.rsa_private_key(label="kc-cli-rsa")
            assert key.id.hex() == lines["id"]
            assert key.public_key().public_bytes().decode() in r.stdout
    finally:
        for kind in ("privkey", "pubkey"):
            hsm.tool("--delete-object", "--type", kind, "--label", "kc-cli-rsa", check=False)
    r = run_cli("pkcs11", "keygen", "ec", *token_args, "--label", "x", "--bits", "2048")
    assert r.returncode == 2
    assert "--bits is for rsa keys" in r.stderr


def test_keygen_names_an_existing_key_with_its_article(hsm: Hsm) -> None:
    token_args = ("--module", hsm.module, "--token", hsm.label, "--pin-file", str(hsm.pin_file))
    gen = ("pkcs11", "keygen", "ed25519", *token_args, "--label", "kc-cli-article")
    try:
        assert run_cli(*gen).returncode == 0
        r = run_cli(*gen)
        assert r.returncode == 1
        assert "already has an Ed25519 private key labelled \"kc-cli-article\"" in r.stderr
    finally:
        for kind in ("privkey", "pubkey"):
            hsm.tool("--delete-object", "--type", kind, "--label", "kc-cli-article", check=False)


def test_a_missing_pin_file_is_a_pin_error(hsm: Hsm, tmp_path: Path) -> None:
    """A PIN file that is missing or refused is reported as the PIN file's problem
    (`Pkcs11PinFileError`, also a `KeyFileError`), not as a key file's."""
    missing = tmp_path / "no-pin"
    r = run_cli(
        "pkcs11", "list", "--module", hsm.module, "--token", hsm.label, "--pin-file", missing
    )
    assert r.returncode == 1
    assert f'keycell: error: PIN file "{missing}": cannot open' in r.stderr
    assert "No such file" in r.stderr
    assert "key file" not in r.stderr
    with pytest.raises(Pkcs11PinFileError, match="PIN file") as e:
        pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin_file=missing)
    assert e.value.errno == errno.ENOENT
    assert isinstance(e.value, KeyFileError)
    loose = tmp_path / "loose-pin"
    loose.write_text(hsm.pin)
    loose.chmod(0o644)
    with pytest.raises(Pkcs11PinFileError, match="refusing it: its permissions 0644"):
        pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin_file=loose)
