"""``keycell keygen otp`` and ``keycell otp code|verify``: codes from raw and base32 key
files, verification exit codes, the replay state file, and the URI printed only on
request."""

from __future__ import annotations

import base64
from pathlib import Path

import pyotp
from support import run_cli

SECRET = b"12345678901234567890"
T = "1111111111"


def secret_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def test_code_from_raw_and_base32_files(tmp_path: Path) -> None:
    raw = secret_file(tmp_path / "raw", SECRET)
    b32 = secret_file(tmp_path / "b32", base64.b32encode(SECRET).lower() + b"\n")
    want = pyotp.TOTP(base64.b32encode(SECRET).decode()).at(int(T))
    r = run_cli("otp", "code", "--key-file", raw, "--key-format", "raw", "--at", T)
    assert (r.returncode, r.stdout) == (0, want + "\n"), r.stderr
    r = run_cli("otp", "code", "--key-file", b32, "--key-format", "base32", "--at", T)
    assert (r.returncode, r.stdout) == (0, want + "\n"), r.stderr
    r = run_cli("otp", "code", "--key-file", raw, "--key-format", "raw", "--hotp", "0")
    assert r.stdout == "755224\n", r.stderr
    r = run_cli("otp", "code", "--key-file", raw, "--key-format", "raw", "--digits", "8", "--at", T)
    assert r.stdout == "14050471\n", r.stderr


def test_base32_file_permissions_are_checked(tmp_path: Path) -> None:
    b32 = secret_file(tmp_path / "b32", base64.b32encode(SECRET))
    b32.chmod(0o644)
    r = run_cli("otp", "code", "--key-file", b32, "--key-format", "base32")
    assert r.returncode == 1
    assert "chmod 600" in r.stderr


def test_verify_and_replay_state(tmp_path: Path) -> None:
    raw = secret_file(tmp_path / "raw", SECRET)
    state = tmp_path / "state.json"
    code = pyotp.TOTP(base64.b32encode(SECRET).decode()).at(int(T))
    base = ["otp", "verify", "--key-file", raw, "--key-format", "raw", "--at", T]
    r = run_cli(*base, code, "--state", state)
    assert (r.returncode, r.stdout) == (0, f"{int(T) // 30}\n"), r.stderr
    r = run_cli(*base, code, "--state", state)
    assert r.returncode == 1
    assert "already used" in r.stderr
    assert r.stdout == ""
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert run_cli(*base, wrong).returncode == 1
    assert run_cli(*base, "12ab56").returncode == 1
    r = run_cli("otp", "verify", "--key-file", raw, "--key-format", "raw", "--hotp", "3", "162583")
    assert r.returncode == 1
    r = run_cli(
        "otp", "verify", "--key-file", raw, "--key-format", "raw", "--hotp", "3",
        "--look-ahead", "5", "162583",
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "7\n"), r.stderr


def test_keygen_otp_prints_uri_only_on_request(tmp_path: Path) -> None:
    r = run_cli("keygen", "otp", "-o", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert len((tmp_path / "k").read_bytes()) == 20
    r = run_cli("keygen", "otp", "-o", tmp_path / "k2", "--print-uri", "--issuer", "ACME")
    assert r.returncode == 0, r.stderr
    uri = r.stdout.strip()
    assert uri.startswith("otpauth://totp/ACME:keycell?secret=")
    ref = pyotp.parse_uri(uri)
    mine = run_cli("otp", "code", "--key-file", tmp_path / "k2", "--key-format", "raw", "--at", T)
    assert mine.stdout.strip() == ref.at(int(T))
    assert run_cli("keygen", "secret", "-o", tmp_path / "k3", "--print-uri").returncode == 2
