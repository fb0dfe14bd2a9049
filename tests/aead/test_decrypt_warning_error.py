"""Issue 21, second review: with ``ProtectionWarning`` turned into an error (``-W error``),
a ``decrypt()`` whose cipher state could not be locked failed after it had decrypted, and
CPython freed the plaintext ``bytes`` unwiped: the plaintext stayed in the heap. The
buffer is now wiped before the call raises.

The child is exec'd (not forked: a fork would inherit the test's copy of the plaintext),
gets the ciphertext only, and runs as ``nobody`` under a one-page ``RLIMIT_MEMLOCK`` (root
ignores the limit), so the key takes the whole budget and the AES state built on its first
use cannot be locked. The parent scans the child's memory for the plaintext."""

from __future__ import annotations

import os

import pytest
from keycell import AESGCM, ChaCha20Poly1305, SecretKey
from memscan import PhasedChild, scan_process, summarize
from support import NOBODY, PAGE

CHILD = """
import os, resource, sys, warnings
import keycell
from keycell import AESGCM, ChaCha20Poly1305, ProtectionWarning, SecretKey

cls = {"AESGCM": AESGCM, "ChaCha20Poly1305": ChaCha20Poly1305}[sys.argv[1]]
key_hex, page = sys.argv[2], int(sys.argv[5])
nonce, ct = bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
resource.setrlimit(resource.RLIMIT_MEMLOCK, (page, page))
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(sys.argv[7]))
    os.setuid(int(sys.argv[6]))
keycell.set_policy(on_lock_failure="warn", isolation="page")
key = SecretKey.from_buffer(bytearray.fromhex(key_hex))
assert key.protection.locked
aead = cls(key)
with warnings.catch_warnings():
    warnings.simplefilter("error", ProtectionWarning)
    try:
        aead.decrypt(nonce, ct, None)
        outcome = "returned"
    except ProtectionWarning:
        outcome = "raised"
phase(outcome)
kept = aead.decrypt(nonce, ct, None)  # the warning is spent: returned (positive control)
phase("kept")
"""


@pytest.mark.parametrize("cls", [AESGCM, ChaCha20Poly1305])
def test_a_decrypt_failing_on_its_warning_leaves_no_plaintext(
    cls: type[AESGCM] | type[ChaCha20Poly1305],
) -> None:
    if os.geteuid() == 0 and NOBODY is None:
        pytest.skip("running as root and there is no 'nobody' user to drop privileges to")
    key = os.urandom(32)
    plaintext = os.urandom(256)
    nonce = os.urandom(12)
    with SecretKey.from_buffer(bytearray(key)) as k:
        ct = cls(k).encrypt(nonce, plaintext, None)
    uid, gid = NOBODY or (os.getuid(), os.getgid())
    args = (cls.__name__, key.hex(), nonce.hex(), ct.hex(), str(PAGE), str(uid), str(gid))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYCELL_")}
    with PhasedChild(CHILD, *args, env=env, cwd="/") as child:
        child.wait_phase("raised")
        failed = scan_process(child.pid, {"plaintext": plaintext})
        child.advance()
        child.wait_phase("kept")
        kept = scan_process(child.pid, {"plaintext": plaintext})
        rc, _, err = child.finish()
    assert rc == 0, err
    assert failed["plaintext"] == [], summarize(failed)
    # The scan finds a plaintext that is there.
    assert kept["plaintext"], summarize(kept)
