"""Agreement with oathtool (OATH Toolkit, C; installed by scripts/install-test-tools.sh)
on random secrets, digits, algorithms, counters and times. Skipped without oathtool."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
from keycell import SecretKey
from keycell.otp import HOTP, TOTP

OATHTOOL = shutil.which("oathtool")
pytestmark = pytest.mark.skipif(OATHTOOL is None, reason="oathtool is not installed")


def oathtool(*args: str) -> str:
    assert OATHTOOL is not None
    out = subprocess.run([OATHTOOL, *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_oathtool(seed: int) -> None:
    rng = random.Random(seed)
    secret = os.urandom(rng.choice([16, 20, 32, 64]))
    digits = rng.choice([6, 7, 8])
    algorithm = ["sha1", "sha256", "sha512"][seed % 3]
    counter = rng.randrange(2**40)
    t = rng.randrange(2**33)
    period = rng.choice([30, 60, 15])
    key = SecretKey.from_buffer(bytearray(secret))
    if algorithm == "sha1":  # oathtool's HOTP mode is HMAC-SHA1 only
        hotp = HOTP(key, digits=digits)
        # The secret goes to oathtool as a command-line argument: test data only.
        want = oathtool("--hotp", f"--digits={digits}", f"--counter={counter}", secret.hex())
        assert hotp.at(counter) == want
    totp = TOTP(key, digits=digits, period=period, algorithm=algorithm)  # type: ignore[arg-type]
    want = oathtool(
        f"--totp={algorithm.upper()}",
        f"--digits={digits}",
        f"--time-step-size={period}s",
        f"--now=@{t}",
        secret.hex(),
    )
    assert totp.at(t) == want
