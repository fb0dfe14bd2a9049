"""``TOTP.from_uri`` / ``HOTP.from_uri``: ``otpauth://`` URIs parsed in place, the secret
decoded straight into guarded memory, the buffer wiped; round trips with
``provisioning_uri`` and pyotp."""

from __future__ import annotations

import pyotp
import pytest
from keycell import SecretKey
from keycell.otp import HOTP, TOTP

SECRET = b"12345678901234567890"
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
T = 1_111_111_111


def test_totp_from_uri_reads_parameters_and_wipes() -> None:
    uri = f"otpauth://totp/ACME:alice?secret={B32}&issuer=ACME&algorithm=SHA256&digits=8&period=60"
    buf = bytearray(uri.encode())
    totp = TOTP.from_uri(buf)
    assert buf == bytearray(len(buf))
    assert (totp.digits, totp.period, totp.algorithm) == (8, 60, "sha256")
    ref = pyotp.parse_uri(uri)
    assert totp.at(T) == ref.at(T)


def test_round_trip_through_provisioning_uri() -> None:
    made = TOTP(SecretKey.from_buffer(bytearray(SECRET)), digits=7, period=45, algorithm="sha512")
    again = TOTP.from_uri(bytearray(made.provisioning_uri("bob", issuer="Example Org").encode()))
    assert again.at(T) == made.at(T)
    h = HOTP(SecretKey.from_buffer(bytearray(SECRET)))
    h2 = HOTP.from_uri(bytearray(h.provisioning_uri("bob", initial_count=42).encode()))
    assert h2.initial_count == 42
    assert h2.at(0) == "755224"


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        (f"otpauth://hotp/x?secret={B32}", "use HOTP.from_uri"),
        (f"https://totp/x?secret={B32}", "otpauth://"),
        ("otpauth://totp/x?issuer=a", "no secret"),
        (f"otpauth://totp/x?secret={B32}&digits=5", "digits"),
        (f"otpauth://totp/x?secret={B32}&algorithm=MD5", "algorithm"),
        ("otpauth://totp/x?secret=GEZDGNB1", "base32"),
        ("otpauth://totp/x?secret=GEZDGNBV", "shorter than 128 bits"),
    ],
)
def test_bad_uris_are_value_errors_and_wiped(uri: str, match: str) -> None:
    buf = bytearray(uri.encode())
    with pytest.raises(ValueError, match=match) as info:
        TOTP.from_uri(buf)
    assert buf == bytearray(len(buf))
    assert B32 not in str(info.value)


def test_uri_as_str_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot be wiped"):
        TOTP.from_uri(f"otpauth://totp/x?secret={B32}")  # type: ignore[arg-type]
