"""Agreement with pyotp (an independent implementation) on random secrets, digits,
periods, algorithms, times and counters; and provisioning URIs that pyotp parses back."""

from __future__ import annotations

import base64
import hashlib

import pyotp
from hypothesis import given
from hypothesis import strategies as st
from keycell import SecretKey
from keycell.otp import HOTP, TOTP

ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}

secrets_ = st.binary(min_size=16, max_size=80)
algorithms = st.sampled_from(sorted(ALGORITHMS))
digits_ = st.integers(min_value=6, max_value=10)


@given(
    secret=secrets_,
    algorithm=algorithms,
    digits=digits_,
    period=st.integers(min_value=1, max_value=120),  # pyotp >= 2.10 refuses longer periods
    t=st.integers(min_value=0, max_value=2**35),
)
def test_totp_agrees_with_pyotp(
    secret: bytes, algorithm: str, digits: int, period: int, t: int
) -> None:
    b32 = base64.b32encode(secret).decode()
    ref = pyotp.TOTP(b32, digits=digits, digest=ALGORITHMS[algorithm], interval=period)
    ours = TOTP.from_base32(
        bytearray(b32.lower().rstrip("=").encode()),
        digits=digits,
        period=period,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    assert ours.at(t) == ref.at(t)
    # pyotp's window and ours agree on a code from the previous step.
    if t >= period:
        prev = ref.at(t - period)
        assert ref.verify(prev, for_time=t, valid_window=1)
        assert ours.verify(prev, at=t) in (t // period - 1, t // period)


@given(
    secret=secrets_,
    algorithm=algorithms,
    digits=digits_,
    counter=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_hotp_agrees_with_pyotp(secret: bytes, algorithm: str, digits: int, counter: int) -> None:
    ref = pyotp.HOTP(base64.b32encode(secret).decode(), digits=digits, digest=ALGORITHMS[algorithm])
    ours = HOTP(SecretKey.from_buffer(bytearray(secret)), digits=digits, algorithm=algorithm)  # type: ignore[arg-type]
    assert ours.at(counter) == ref.at(counter)


@given(secret=secrets_, algorithm=algorithms, digits=st.integers(min_value=6, max_value=8))
def test_provisioning_uri_parses_in_pyotp(secret: bytes, algorithm: str, digits: int) -> None:
    totp = TOTP(
        SecretKey.from_buffer(bytearray(secret)),
        digits=digits,
        period=60,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    uri = totp.provisioning_uri("alice@example.com", issuer="ACME Co")
    assert "=" not in uri.split("secret=")[1].split("&")[0]  # unpadded base32
    ref = pyotp.parse_uri(uri)
    assert isinstance(ref, pyotp.TOTP)
    assert ref.name == "alice@example.com"
    assert ref.issuer == "ACME Co"
    assert ref.digits == digits
    assert ref.interval == 60
    assert ref.at(1_700_000_000) == totp.at(1_700_000_000)
