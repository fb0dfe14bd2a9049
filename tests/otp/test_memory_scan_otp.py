"""Memory scan of a child that loads a TOTP secret from base32 text in a ``bytearray``.

The child reads the base32 file straight into a ``bytearray`` (``readinto``, no other
copy), builds ``TOTP.from_base32`` from it and uses it. While the TOTP is alive, the
parent finds no base32 text anywhere in the child (the bytearray was wiped and decoding
happened in place), and every copy of the raw secret lies in locked, dump-excluded pages;
after ``destroy()`` the raw secret is gone. For SHA-1 the HMAC-SHA1 midstates (computed
here by an independent pure-Python SHA-1 compression, checked against ``hashlib``) are
found exactly once each, in locked memory, and the ``K ^ ipad``/``K ^ opad`` blocks
nowhere. A ``bytes`` copy of another secret is the positive control.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
from pathlib import Path

import pytest
from memscan import scan_phases, summarize
from sha1_reference import SHA1_IV, hmac_sha1_midstates, sha1_compress

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


def test_reference_sha1_is_right() -> None:
    msg = b"abc"
    block = msg + b"\x80" + bytes(64 - len(msg) - 9) + struct.pack(">Q", 8 * len(msg))
    digest = struct.pack(">5I", *sha1_compress(SHA1_IV, block))
    assert digest == hashlib.sha1(msg).digest()


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
        "key ^ ipad": bytes(b ^ 0x36 for b in secret),
        "key ^ opad": bytes(b ^ 0x5C for b in secret),
    }
    if algorithm == "sha1":
        patterns.update(hmac_sha1_midstates(secret))
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
    assert alive["key ^ ipad"] == alive["key ^ opad"] == [], summarize(alive)
    for name in ("sha1 inner midstate", "sha1 outer midstate"):
        if name in patterns:
            assert len(alive[name]) == 1, summarize(alive)
            assert all(h.locked and h.dontdump for h in alive[name]), summarize(alive)
            assert after[name] == [], summarize(after)


REVOKE_CHILD = """
import gc, sys
from keycell import SecretKey
from keycell.exceptions import KeyDestroyedError
from keycell.otp import HOTP, TOTP

key = SecretKey.from_file(sys.argv[1])
totp, hotp = TOTP(key), HOTP(key)
totp.now(); hotp.at(1)
phase("alive")
key.destroy()                   # only the key: the objects made from it go with it
gc.collect()
out = []
for use in (totp.now, lambda: hotp.at(1), lambda: totp.verify("123456", at=59)):
    try:
        use()
        out.append("worked")
    except KeyDestroyedError:
        out.append("KeyDestroyedError")
phase("destroyed")
print("USES", out, totp.destroyed, hotp.destroyed)
"""


def test_destroying_the_key_revokes_otp_objects_made_from_it(tmp_path: Path) -> None:
    """Issue 21 (5): ``TOTP(key)`` kept its own copy of the secret and its HMAC midstates,
    and after ``key.destroy()`` still generated and verified codes. Now destroying the key
    destroys every OTP object made from it: every use raises ``KeyDestroyedError`` and no
    copy of the secret or of its midstates is left anywhere in the process."""
    secret = secrets.token_bytes(20)
    _write(tmp_path / "key", secret)
    patterns = {"secret": secret, **hmac_sha1_midstates(secret)}
    scans, out = scan_phases(REVOKE_CHILD, str(tmp_path / "key"), patterns=patterns)
    alive, after = scans["alive"], scans["destroyed"]
    assert len(alive["secret"]) >= 3, summarize(alive)  # the key and the two OTP copies
    assert len(alive["sha1 inner midstate"]) == 2, summarize(alive)
    for name in patterns:
        assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"
    assert "USES ['KeyDestroyedError', 'KeyDestroyedError', 'KeyDestroyedError'] True True" in out
