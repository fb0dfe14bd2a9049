"""Memory scan of a child that loads a TOTP secret from base32 text in a ``bytearray``.

The child reads the base32 file straight into a ``bytearray`` (``readinto``, no other
copy), builds ``TOTP.from_base32`` from it and uses it. While the TOTP is alive, the
parent finds no base32 text anywhere in the child (the bytearray was wiped and decoding
happened in place), and every copy of the raw secret lies in locked, dump-excluded pages;
after ``destroy()`` the raw secret is gone. A ``bytes`` copy of another secret is the
positive control.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from memscan import scan_phases, summarize

pytestmark = pytest.mark.slow

CHILD = """
import gc, os, sys
from keycell.otp import TOTP

path = sys.argv[1]
buf = bytearray(os.path.getsize(path))
with open(path, "rb", buffering=0) as f:
    assert f.readinto(buf) == len(buf)
with open(sys.argv[2], "rb") as f:
    control = f.read()               # positive control, kept on purpose
totp = TOTP.from_base32(buf, algorithm=sys.argv[3])
assert not any(buf)
for t in (59, 1111111109, 2000000000):
    totp.verify(totp.at(t), at=t, past=2, future=2)
totp.now()
phase("alive")
totp.destroy()
gc.collect()
phase("destroyed")
"""


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_base32_secret_only_in_locked_pages(tmp_path: Path, algorithm: str) -> None:
    secret = secrets.token_bytes(20)
    text = base64.b32encode(secret)  # 32 characters, no padding
    spaced = b" ".join(text[i : i + 4] for i in range(0, len(text), 4)).lower()
    control = secrets.token_bytes(32)
    _write(tmp_path / "secret.b32", spaced + b"\n")
    _write(tmp_path / "control", control)
    patterns = {
        "secret": secret,
        "control": control,
        "base32 as written": spaced,
        "base32 first group": spaced[:9],
        "base32 upper": text,
        "base32 lower": text.lower(),
    }
    scans, _ = scan_phases(
        CHILD,
        str(tmp_path / "secret.b32"),
        str(tmp_path / "control"),
        algorithm,
        patterns=patterns,
    )
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["control"], summarize(alive)
    assert after["control"], summarize(after)
    for name in ("base32 as written", "base32 first group", "base32 upper", "base32 lower"):
        assert alive[name] == [], f"{name} found:\n{summarize(alive)}"
        assert after[name] == [], f"{name} found:\n{summarize(after)}"
    assert alive["secret"], summarize(alive)  # the scan sees the region
    assert all(h.locked and h.dontdump for h in alive["secret"]), summarize(alive)
    assert after["secret"] == [], summarize(after)
