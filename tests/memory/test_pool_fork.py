"""A fork child never uses a pooled key of its parent: ``ForkedKeyError``, whether the
child ran the atfork handlers (``os.fork``) or not (the raw ``fork`` system call, where
``MADV_WIPEONFORK`` zeroed the arena, canaries included). The child's own new keys come
from a fresh pool and work.
"""

from __future__ import annotations

import json
import platform

import pytest
from support import run_python

SYS_FORK = {"x86_64": 57}.get(platform.machine())

_CHILD = r"""
import ctypes, ctypes.util, json, os, sys
import keycell
from keycell import ForkedKeyError, SecretKey

how = sys.argv[1]
libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
keycell.set_policy(isolation="pool")
key = SecretKey.generate(32)
used = SecretKey.generate(13)
used.hmac(b"pads exist")
ops = {
    "hmac": lambda: key.hmac(b"x"),
    "hmac_cached_pads": lambda: used.hmac(b"x"),
    "len": lambda: len(key),
    "protection": lambda: key.protection,
    "hkdf": lambda: keycell.hkdf(key, length=32, info=b"i"),
    "eq": lambda: key == used,
}
FORKED, RETURNED, OTHER = 10, 11, 12
results = {}
for name, op in ops.items():
    pid = libc.syscall(int(sys.argv[2])) if how == "syscall" else os.fork()
    if pid == 0:
        code = OTHER
        try:
            op()
            code = RETURNED
        except ForkedKeyError:
            code = FORKED
        except BaseException:
            code = OTHER
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results[name] = os.waitstatus_to_exitcode(status)
# A child's own keys, after touching the inherited ones, work; destroying inherited keys in
# the child neither aborts nor frees anything of the parent's.
pid = libc.syscall(int(sys.argv[2])) if how == "syscall" else os.fork()
if pid == 0:
    try:
        try:
            key.hmac(b"x")
        except ForkedKeyError:
            pass
        fresh = [SecretKey.generate(32) for _ in range(3000)]
        ok = all(k.protection.isolation == "pool" and k.protection.locked for k in fresh)
        ok = ok and len({k.hmac(b"m") for k in fresh}) == 3000
        key.destroy()
        used.destroy()
        del fresh
        os._exit(RETURNED if ok else OTHER)
    except BaseException:
        os._exit(OTHER)
_, status = os.waitpid(pid, 0)
results["child_keys"] = os.waitstatus_to_exitcode(status)
results["parent_after"] = key.hmac(b"x") == key.hmac(b"x") and len(used) == 13
print(json.dumps(results))
"""


@pytest.mark.parametrize("how", ["os.fork", "syscall"])
def test_fork_child_gets_forked_key_error_for_pooled_keys(how: str) -> None:
    if how == "syscall" and SYS_FORK is None:
        pytest.skip("raw fork system call number known for x86_64 only")
    r = run_python(_CHILD, how, str(SYS_FORK or 0))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for name in ("hmac", "hmac_cached_pads", "len", "protection", "hkdf", "eq"):
        assert out[name] == 10, (name, out)
    assert out["child_keys"] == 11, out
    assert out["parent_after"] is True
