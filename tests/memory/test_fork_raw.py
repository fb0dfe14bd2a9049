"""Fork detection that does not depend on ``pthread_atfork`` handlers.

A child made by the raw ``fork`` system call, or by glibc's ``_Fork()``, runs no atfork
handler, so the fork generation counter in ``src/memory/sys.rs`` does not change there.
``MADV_WIPEONFORK`` still zeroes the child's copy of every key region, including the random
canary in front of the key (``src/memory/guarded.rs``): a region whose canary reads as
zeros is refused with ``ForkedKeyError``; no operation ever computes with the zeroed key.

Each case runs in a fresh interpreter (single-threaded, so a raw fork leaves no lock held by
a thread that does not exist in the child). The child does as little as possible: one
operation, then ``os._exit`` with a status that encodes the outcome.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import platform

import pytest
from support import run_python

LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
HAS_UNDERSCORE_FORK = hasattr(LIBC, "_Fork")  # glibc >= 2.34
SYS_FORK = {"x86_64": 57}.get(platform.machine())

_CHILD = r"""
import ctypes, ctypes.util, json, os, sys
import keycell
from keycell import (
    Ed25519PrivateKey, ForkedKeyError, KeycellError, SecretKey, X25519PrivateKey,
)

how, sys_fork = sys.argv[1], int(sys.argv[2])
# PyDLL: the call keeps the GIL, so the child resumes as the only thread, holding it.
libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long

key = SecretKey.generate(32)
other = SecretKey.generate(32)
ed = Ed25519PrivateKey.generate()
xk = X25519PrivateKey.generate()
peer = X25519PrivateKey.generate().public_key()
ops = {
    "hmac": lambda: key.hmac(b"x" * 64),
    "verify_hmac": lambda: key.verify_hmac(b"x" * 64, other.hmac(b"x" * 64)),
    "sign": lambda: ed.sign(b"message"),
    "exchange": lambda: xk.exchange(peer),
    "hkdf": lambda: keycell.hkdf(key, length=32, salt=b"salt", info=b"info"),
}
# Parent-side control: every operation works here.
for op in ops.values():
    try:
        op()
    except keycell.InvalidSignature:
        pass

FORKED, RETURNED, OTHER_KEYCELL, OTHER = 10, 11, 12, 13
results = {}
for name, op in ops.items():
    if how == "syscall":
        pid = libc.syscall(sys_fork)
    elif how == "_Fork":
        pid = libc._Fork()
    else:
        pid = os.fork()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "fork failed")
    if pid == 0:
        code = OTHER
        try:
            op()
            code = RETURNED
        except ForkedKeyError:
            code = FORKED
        except KeycellError:
            code = OTHER_KEYCELL
        except BaseException:
            code = OTHER
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    results[name] = {
        FORKED: "ForkedKeyError",
        RETURNED: "returned",
        OTHER_KEYCELL: "other KeycellError",
        OTHER: "other exception",
    }.get(code, f"status {code}")
# The parent still works after the children are gone.
key.hmac(b"x"); ed.sign(b"x"); xk.exchange(peer)
print(json.dumps(results))
"""

OPS = ["hmac", "verify_hmac", "sign", "exchange", "hkdf"]


def _run(how: str) -> dict[str, str]:
    res = run_python(_CHILD, how, str(SYS_FORK or -1))
    assert res.returncode == 0, res.stderr
    out: dict[str, str] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.skipif(SYS_FORK is None, reason="the raw fork syscall number is known for x86_64")
def test_raw_syscall_fork_child_gets_forked_key_error() -> None:
    assert _run("syscall") == dict.fromkeys(OPS, "ForkedKeyError")


@pytest.mark.skipif(not HAS_UNDERSCORE_FORK, reason="glibc < 2.34 has no _Fork()")
def test_underscore_fork_child_gets_forked_key_error() -> None:
    assert _run("_Fork") == dict.fromkeys(OPS, "ForkedKeyError")


def test_os_fork_child_gets_forked_key_error() -> None:
    """Control: the ordinary fork (atfork handlers run) was already refused."""
    assert _run("os.fork") == dict.fromkeys(OPS, "ForkedKeyError")
