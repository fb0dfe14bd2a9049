"""Pool arenas backed by ``memfd_secret(2)`` (``set_policy(backend="memfd_secret")``):
the key bytes are not in the kernel's direct map, so ``/proc/PID/mem`` cannot read them
(EIO) while an ordinary buffer at a known address can be read; the arena is locked and not
mapped in fork children, which get ``ForkedKeyError`` (``os.fork`` and the raw ``fork``
system call alike) and make arenas of their own.
"""

from __future__ import annotations

import json
import platform

import keycell
import pytest
from support import run_python

AVAILABLE = keycell._native._probe()["memfd_secret"] is None
SYS_FORK = {"x86_64": 57}.get(platform.machine())
pytestmark = pytest.mark.skipif(not AVAILABLE, reason="memfd_secret is not available")

_SCAN = r"""
import ctypes, json, os
import keycell
from keycell import SecretKey

key = SecretKey.from_buffer(bytearray(b"\xa5" * 32))
control = ctypes.create_string_buffer(b"\x5a" * 32, 32)
out = {"protection": key.protection.as_dict()}
with open("/proc/self/mem", "rb", buffering=0) as mem:
    for name, addr in (("key", keycell._native._key_address(key)),
                       ("control", ctypes.addressof(control))):
        try:
            mem.seek(addr)
            out[name] = mem.read(32).hex()
        except OSError as e:
            out[name] = f"errno {e.errno}"
with open("/proc/self/smaps") as f:
    addr = keycell._native._key_address(key)
    flags, inside = "", False
    for line in f:
        head = line.split()[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and line.startswith("VmFlags:"):
            flags = line.split(":", 1)[1].split()
out["vmflags"] = flags
print(json.dumps(out))
"""


def test_proc_mem_cannot_read_a_memfd_secret_key() -> None:
    r = run_python(_SCAN, env={"KEYCELL_BACKEND": "memfd_secret"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["control"] == "5a" * 32, "the same read works on ordinary memory"
    assert out["key"] == "errno 5", out["key"]  # EIO: not in the direct map
    p = out["protection"]
    assert p["backend"] == "memfd_secret"
    assert p["isolation"] == "pool"
    for name in ("locked", "dontdump", "wipeonfork", "guard_pages"):
        assert p[name] is True, name
    assert {"lo", "dd"} <= set(out["vmflags"]), out["vmflags"]


_FORK = r"""
import ctypes, ctypes.util, json, os, sys
import keycell
from keycell import ForkedKeyError, SecretKey

libc = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
keycell.set_policy(backend="memfd_secret")
key = SecretKey.generate(32)
assert key.protection.backend == "memfd_secret"
tag = key.hmac(b"m")
pid = libc.syscall(int(sys.argv[2])) if sys.argv[1] == "syscall" else os.fork()
if pid == 0:
    code = 12
    try:
        key.hmac(b"m")
        code = 11
    except ForkedKeyError:
        try:
            fresh = SecretKey.generate(32)
            ok = fresh.protection.backend == "memfd_secret" and len(fresh.hmac(b"m")) == 32
            key.destroy()
            fresh.destroy()
            code = 10 if ok else 13
        except BaseException:
            code = 14
    except BaseException:
        code = 15
    os._exit(code)
_, status = os.waitpid(pid, 0)
print(json.dumps({"child": os.waitstatus_to_exitcode(status), "parent": key.hmac(b"m") == tag}))
"""


@pytest.mark.parametrize("how", ["os.fork", "syscall"])
def test_fork_child_gets_forked_key_error(how: str) -> None:
    if how == "syscall" and SYS_FORK is None:
        pytest.skip("raw fork system call number known for x86_64 only")
    r = run_python(_FORK, how, str(SYS_FORK or 0))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"child": 10, "parent": True}


def test_backend_policy_round_trip() -> None:
    keycell.set_policy(backend="memfd_secret")
    try:
        assert keycell.get_policy()["backend"] == "memfd_secret"
        with keycell.policy(isolation="auto"), keycell.SecretKey.generate(32) as key:
            assert key.protection.backend == "memfd_secret"
    finally:
        keycell.set_policy(backend="mmap")
    with pytest.raises(ValueError, match="mmap"):
        keycell.set_policy(backend="secret")  # type: ignore[arg-type]
    r = run_python("import keycell", env={"KEYCELL_BACKEND": "memfd"})
    assert r.returncode != 0
    assert "KEYCELL_BACKEND must be 'mmap' or 'memfd_secret'" in r.stderr
