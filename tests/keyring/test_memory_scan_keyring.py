"""Memory scan of a child that loads keys from the kernel keyring: while alive, every copy
of the key in the child's memory is in locked, dump-excluded pages; after ``destroy()``
none is left. The payload reaches the keyring through ``keyctl padd`` reading a file, so
the child never holds it in a Python object; a ``bytes`` copy of another secret is the
positive control."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from keyring_session import requires_keyring
from memscan import scan_phases, summarize

pytestmark = [pytest.mark.slow, requires_keyring]

CHILD = """
import ctypes, gc, subprocess, sys
import keycell
from keycell import keyring

# A new anonymous session keyring of its own (keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)).
assert ctypes.CDLL(None, use_errno=True).syscall(250, 1, None) > 0
with open(sys.argv[2], "rb") as f:
    subprocess.run(["keyctl", "padd", "user", "kc:scan", "@s"], stdin=f, check=True,
                   capture_output=True)
with open(sys.argv[3], "rb") as f:
    control = f.read()
cls = getattr(keycell, sys.argv[1])
key = cls.from_keyring("kc:scan", consume=True)
if sys.argv[1] == "SecretKey":
    key.hmac(b"message")
else:
    key.sign(b"message")
# A round trip: stored from the region, read back into a new one.
again = cls.from_keyring(keyring.store(key, "kc:again"), consume=True)
gc.collect()
phase("alive")
key.destroy()
again.destroy()
gc.collect()
phase("destroyed")
"""


@pytest.mark.parametrize("cls_name", ["SecretKey", "Ed25519PrivateKey", "ECPrivateKey"])
def test_key_loaded_from_the_keyring_is_only_in_locked_memory(
    tmp_path: Path, cls_name: str
) -> None:
    secret = secrets.token_bytes(32)
    if cls_name == "ECPrivateKey":
        # A P-256 scalar below the group order whatever the draw (n > 2^255).
        secret = bytes([secret[0] & 0x7F]) + secret[1:]
    control = secrets.token_bytes(32)
    (tmp_path / "key").write_bytes(secret)
    (tmp_path / "control").write_bytes(control)
    scans, _ = scan_phases(
        CHILD,
        cls_name,
        str(tmp_path / "key"),
        str(tmp_path / "control"),
        patterns={"key": secret, "control": control},
    )
    alive, after = scans["alive"], scans["destroyed"]
    print(cls_name, {n: len(h) for n, h in alive.items()})
    assert alive["control"], summarize(alive)  # the scan sees what is there
    assert alive["key"], summarize(alive)
    for h in alive["key"]:
        assert h.locked, summarize(alive)
        assert h.dontdump, summarize(alive)
    assert after["key"] == [], summarize(after)
