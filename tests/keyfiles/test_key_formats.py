"""Key file formats: raw, hex, base64 (and PKCS#8 PEM/DER for asymmetric keys), detected or
given with ``format=``, decoded inside Rust straight into the key's region."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keycell import InsecureKeyFileError, KeyFileError, SecretKey


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def key_bytes(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("fmt", ["raw", "hex", "base64"])
@pytest.mark.parametrize("length", [1, 2, 3, 16, 31, 32, 33, 64, 1000, 65536])
def test_round_trip_every_format(tmp_path: Path, fmt: str, length: int) -> None:
    key = SecretKey.generate(length)
    path = tmp_path / "k"
    key.to_file(path, format=fmt)
    assert SecretKey.from_file(path, format=fmt) == key  # type: ignore[arg-type]
    assert SecretKey.from_file(path, length=length) == key
    # Detection without a length: hex text is hex, base64 with its line break is base64,
    # binary is raw. Keys under 16 bytes are left to test_short_keys_without_length: a
    # random one may be printable text with a line break (raw), or text that is hex and
    # base64 at once (base64 of 3 bytes is all hex digits one time in 70), which detection
    # refuses rather than guesses, so whether it loads depends on the random key.
    if length >= 16:
        assert SecretKey.from_file(path) == key
    # The text formats are the standard encodings, readable by anything.
    data = path.read_bytes()
    if fmt == "hex":
        assert data == key_bytes(key).hex().encode() + b"\n"
    elif fmt == "base64":
        assert data == base64.b64encode(key_bytes(key)) + b"\n"
    else:
        assert data == key_bytes(key)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=1, max_size=200),
    fmt=st.sampled_from(["raw", "hex", "base64"]),
)
def test_round_trip_property(tmp_path: Path, data: bytes, fmt: str) -> None:
    path = tmp_path / "p"
    if path.exists():
        path.unlink()
    key = SecretKey.from_buffer(bytearray(data))
    key.to_file(path, format=fmt)
    loaded = SecretKey.from_file(path, format=fmt)  # type: ignore[arg-type]
    assert key_bytes(loaded) == data
    assert key_bytes(SecretKey.from_file(path, length=len(data))) == data


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
def test_short_keys_without_length(tmp_path: Path, length: int) -> None:
    """Without format= or length=, short text that reads both as hex and as base64 is
    refused as ambiguous; short text that reads one way only loads that way. Fixed keys:
    the outcome never depends on a random draw."""
    path = tmp_path / "k"
    hexable = bytes.fromhex("ab" * length)  # its hex is all hex digits, of course
    write(path, hexable.hex().encode() + b"\n")
    hex_is_base64 = (2 * length) % 4 == 0 and (2 * length) // 4 * 3 < 16
    if hex_is_base64:
        with pytest.raises(KeyFileError, match=r'ambiguous.*format="hex", format="base64"'):
            SecretKey.from_file(path)
    else:
        assert key_bytes(SecretKey.from_file(path)) == hexable
    assert key_bytes(SecretKey.from_file(path, format="hex")) == hexable
    assert key_bytes(SecretKey.from_file(path, length=length)) == hexable
    # Base64 whose characters are all hex digits (0x69 0xb7 0x1d... encode as "abcd...").
    if length % 3 == 0:
        b64_hexlike = base64.b64decode(b"abcd" * (length // 3))
        write(path, b"abcd" * (length // 3) + b"\n")
        with pytest.raises(KeyFileError, match="ambiguous"):
            SecretKey.from_file(path)
        assert key_bytes(SecretKey.from_file(path, format="base64")) == b64_hexlike
        assert key_bytes(SecretKey.from_file(path, length=length)) == b64_hexlike
    # Base64 with a character that is no hex digit, or with padding, is base64.
    other = bytes(range(0x70, 0x70 + length))
    write(path, base64.b64encode(other) + b"\n")
    assert not all(c in b"0123456789abcdefABCDEF\n" for c in path.read_bytes())
    assert key_bytes(SecretKey.from_file(path)) == other


def test_text_written_by_other_tools(tmp_path: Path) -> None:
    raw = os.urandom(32)
    cases = {
        "lower": raw.hex().encode() + b"\n",
        "upper-crlf": raw.hex().upper().encode() + b"\r\n",
        "spaced": b" ".join(raw.hex()[i : i + 2].encode() for i in range(0, 64, 2)) + b"\n",
        "wrapped": raw.hex()[:32].encode() + b"\n" + raw.hex()[32:].encode() + b"\n",
        "b64": base64.b64encode(raw) + b"\n",
        "b64-wrapped": base64.encodebytes(raw),
    }
    for name, content in cases.items():
        path = write(tmp_path / name, content)
        fmt = "base64" if name.startswith("b64") else "hex"
        assert key_bytes(SecretKey.from_file(path, format=fmt)) == raw, name  # type: ignore[arg-type]
        assert key_bytes(SecretKey.from_file(path, length=32)) == raw, name


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_rand_files_load(tmp_path: Path) -> None:
    for fmt, flag in [("hex", "-hex"), ("base64", "-base64")]:
        path = tmp_path / fmt
        out = subprocess.run(
            ["openssl", "rand", flag, "32"], check=True, capture_output=True
        ).stdout
        write(path, out)
        expected = bytes.fromhex(out.decode()) if fmt == "hex" else base64.b64decode(out)
        assert key_bytes(SecretKey.from_file(path, length=32)) == expected
        assert key_bytes(SecretKey.from_file(path, format=fmt)) == expected  # type: ignore[arg-type]


def test_detection_rules(tmp_path: Path) -> None:
    path = tmp_path / "k"
    # Exact length -> raw, even when the bytes happen to be text.
    write(path, b"0123456789abcdef")
    assert key_bytes(SecretKey.from_file(path, length=16)) == b"0123456789abcdef"
    # Without a length, these 16 characters are hex of 8 bytes and base64 of 12: refused
    # as ambiguous (test_short_keys_without_length) ...
    with pytest.raises(KeyFileError, match="ambiguous"):
        SecretKey.from_file(path)
    # ... longer hex text is hex ...
    write(path, b"0123456789abcdef" * 2)
    assert key_bytes(SecretKey.from_file(path)) == bytes.fromhex("0123456789abcdef" * 2)
    # ... binary is raw ...
    write(path, b"\x00\xffkey")
    assert key_bytes(SecretKey.from_file(path)) == b"\x00\xffkey"
    # ... one printable token without padding or line break is raw ...
    write(path, b"Password4Service")
    assert key_bytes(SecretKey.from_file(path)) == b"Password4Service"
    # ... base64 text (padding or a line break) is base64 ...
    raw = bytes(range(0xA0, 0xA0 + 24))  # fixed: its base64 has letters beyond a-f
    write(path, base64.b64encode(raw) + b"\n")
    assert key_bytes(SecretKey.from_file(path)) == raw
    assert key_bytes(SecretKey.from_file(path, length=24)) == raw
    assert len(SecretKey.from_file(path, format="raw")) == 33
    # ... and other text with line breaks is refused rather than guessed.
    write(path, b"correct horse battery staple\n")
    with pytest.raises(KeyFileError, match="format="):
        SecretKey.from_file(path)
    assert key_bytes(SecretKey.from_file(path, format="raw")) == (
        b"correct horse battery staple\n"
    )


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        (b"0g\n", {"format": "hex"}),
        (b"abc\n", {"format": "hex"}),
        (b"0x00ff\n", {"format": "hex"}),
        (b"Zh==\n", {"format": "base64"}),  # non-canonical trailing bits
        (b"Zm9v-_8=\n", {"format": "base64"}),  # URL-safe alphabet
        (b"Zm9\n", {"format": "base64"}),
        (b"Zg=a\n", {"format": "base64"}),
        (b"\n\n", {"format": "hex"}),
        (b"00" * 16 + b"\n", {"length": 32}),  # hex of 16 bytes, but 32 expected
        (b"\x00" * 31, {"length": 32}),
        (b"\x00" * 33, {"length": 32, "format": "raw"}),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", {}),
    ],
)
def test_malformed_files_are_refused(
    tmp_path: Path, content: bytes, kwargs: dict[str, object]
) -> None:
    path = write(tmp_path / "bad", content)
    with pytest.raises(KeyFileError) as info:
        SecretKey.from_file(path, **kwargs)  # type: ignore[arg-type]
    assert type(info.value) is KeyFileError
    # Messages never carry key bytes nor the size of the secret input.
    message = str(info.value).replace(str(path), "")
    assert not re.search(rf"\b{len(content)}\b", message)


def test_bad_format_arguments(tmp_path: Path) -> None:
    path = write(tmp_path / "k", os.urandom(32))
    with pytest.raises(ValueError, match="not available for secret keys"):
        SecretKey.from_file(path, format="pem")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format must be"):
        SecretKey.from_file(path, format="utf8")  # type: ignore[arg-type]
    key = SecretKey.generate(32)
    with pytest.raises(ValueError, match="not available for secret keys"):
        key.to_file(tmp_path / "x", format="der")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_file_safety_checks_apply_to_every_format(tmp_path: Path) -> None:
    key = SecretKey.generate(32)
    path = tmp_path / "k.hex"
    key.to_file(path, format="hex")
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError):
        SecretKey.from_file(path)
    path.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(InsecureKeyFileError):
        SecretKey.from_file(link, format="hex")
    with pytest.raises(InsecureKeyFileError):
        SecretKey.from_file(tmp_path)
    empty = write(tmp_path / "empty", b"")
    with pytest.raises(KeyFileError):
        SecretKey.from_file(empty)
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(10 * 1024 * 1024)
    huge.chmod(0o600)
    with pytest.raises(KeyFileError, match="larger than"):
        SecretKey.from_file(huge)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(65537))
    big.chmod(0o600)
    with pytest.raises(KeyFileError, match="larger than the 65536-byte limit"):
        SecretKey.from_file(big)
    with pytest.raises(KeyFileError) as info:
        SecretKey.from_file(tmp_path / "missing")
    assert info.value.errno == 2


def test_a_short_raw_key_of_hex_digits_is_not_read_as_hex(tmp_path: Path) -> None:
    """Found by review: ``to_file`` writes raw keys as they are, and a raw key whose bytes
    are all hex digits (``b"Fb"``) came back from ``from_file()`` as hex at half the length.
    A bare token of hex digits under 16 bytes of hex is now ambiguous; keycell's and
    openssl's hex files end with a newline and stay hex."""
    path = tmp_path / "k"
    for raw in (b"Fb", b"deadbeef", b"0123456789abcdef01234567890"):
        key = SecretKey.from_buffer(bytearray(raw))
        if path.exists():
            path.unlink()
        key.to_file(path)
        assert path.read_bytes() == raw
        with pytest.raises(KeyFileError, match="ambiguous"):
            SecretKey.from_file(path)
        assert key_bytes(SecretKey.from_file(path, format="raw")) == raw
        assert key_bytes(SecretKey.from_file(path, length=len(raw))) == raw
    write(path, b"deadbeef\n")  # hex as keycell and openssl write it
    with pytest.raises(KeyFileError, match="ambiguous"):  # ... but also base64 of 6 bytes
        SecretKey.from_file(path)
    write(path, b"deadbeefcafe\n")  # 12 digits: base64 of 9 bytes, hex of 6
    with pytest.raises(KeyFileError, match="ambiguous"):
        SecretKey.from_file(path)
    write(path, b"deadbeefca\n")  # 10 digits: not a base64 length, ends with a newline
    assert key_bytes(SecretKey.from_file(path)) == bytes.fromhex("deadbeefca")
