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
import sys
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


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def sha1_compress(state: list[int], block: bytes) -> list[int]:
    """One SHA-1 compression (FIPS 180-4), independent of keycell."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 80):
        w.append(_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1))
    a, b, c, d, e = state
    for i in range(80):
        if i < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif i < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif i < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_rol(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, _rol(b, 30), c, d
    return [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e), strict=True)]


SHA1_IV = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]


def test_reference_sha1_is_right() -> None:
    msg = b"abc"
    block = msg + b"\x80" + bytes(64 - len(msg) - 9) + struct.pack(">Q", 8 * len(msg))
    digest = struct.pack(">5I", *sha1_compress(SHA1_IV, block))
    assert digest == hashlib.sha1(msg).digest()


def hmac_sha1_midstates(key: bytes) -> dict[str, bytes]:
    """The inner and outer HMAC-SHA1 midstates of ``key`` in native word order (as keycell
    stores them in the region)."""
    block = key.ljust(64, b"\0")
    order = "<" if sys.byteorder == "little" else ">"
    out = {}
    for name, pad in (("inner", 0x36), ("outer", 0x5C)):
        state = sha1_compress(SHA1_IV, bytes(b ^ pad for b in block))
        out[f"sha1 {name} midstate"] = struct.pack(f"{order}5I", *state)
    return out


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
