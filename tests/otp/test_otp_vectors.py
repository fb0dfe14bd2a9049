"""RFC 4226 Appendix D (HOTP) and RFC 6238 Appendix B (TOTP, 8 digits, SHA-1/256/512),
through both loaders: a ``SecretKey`` and a base32 ``bytearray``."""

from __future__ import annotations

import base64

import pytest
from keycell import SecretKey
from keycell.otp import HOTP, TOTP

RFC4226_SECRET = b"12345678901234567890"
RFC4226_CODES = [
    "755224", "287082", "359152", "969429", "338314",
    "254676", "287922", "162583", "399871", "520489",
]  # fmt: skip

RFC6238_SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
# (time, {algorithm: code}) from RFC 6238 Appendix B; 20000000000 is in the year 2603.
RFC6238_ROWS = [
    (59, {"sha1": "94287082", "sha256": "46119246", "sha512": "90693936"}),
    (1111111109, {"sha1": "07081804", "sha256": "68084774", "sha512": "25091201"}),
    (1111111111, {"sha1": "14050471", "sha256": "67062674", "sha512": "99943326"}),
    (1234567890, {"sha1": "89005924", "sha256": "91819424", "sha512": "93441116"}),
    (2000000000, {"sha1": "69279037", "sha256": "90698825", "sha512": "38618901"}),
    (20000000000, {"sha1": "65353130", "sha256": "77737706", "sha512": "47863826"}),
]


@pytest.mark.parametrize("counter", range(10))
def test_rfc4226_appendix_d(counter: int) -> None:
    hotp = HOTP(SecretKey.from_buffer(bytearray(RFC4226_SECRET)))
    assert hotp.at(counter) == RFC4226_CODES[counter]
    assert hotp.verify(RFC4226_CODES[counter], counter) == counter


@pytest.mark.parametrize("algorithm", sorted(RFC6238_SEEDS))
@pytest.mark.parametrize(("t", "codes"), RFC6238_ROWS, ids=[str(r[0]) for r in RFC6238_ROWS])
def test_rfc6238_appendix_b(algorithm: str, t: int, codes: dict[str, str]) -> None:
    seed = RFC6238_SEEDS[algorithm]
    from_key = TOTP(
        SecretKey.from_buffer(bytearray(seed)),
        digits=8,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    from_b32 = TOTP.from_base32(
        bytearray(base64.b32encode(seed)),
        digits=8,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    for totp in (from_key, from_b32):
        assert totp.at(t) == codes[algorithm]
        assert totp.counter(t) == t // 30
        assert totp.verify(codes[algorithm], at=t, past=0, future=0) == t // 30
