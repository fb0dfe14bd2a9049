"""keyctl blocked by a seccomp profile (as Docker's default profile does): a typed
KeyringUnavailableError, and probe() says so. The child installs a filter that fails
add_key and keyctl with EPERM (or ENOSYS), then uses keycell."""

from __future__ import annotations

import errno
import platform

import pytest
from keyring_session import in_session, requires_keyring

pytestmark = [
    requires_keyring,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers are x86_64"),
]

BLOCK = """
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

def block_keyring(err):
    # BPF: load the syscall number; add_key (248), request_key (249), keyctl (250) fail
    # with err; everything else is allowed.
    ld, jeq, ret = 0x20, 0x15, 0x06
    allow, errno_action = 0x7FFF0000, 0x00050000 | err
    prog = [(ld, 0, 0, 0)]
    for nr in (248, 249, 250):
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, errno_action)]
    prog.append((ret, 0, 0, allow))
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
"""


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_blocked_keyctl_is_a_typed_error(err: int) -> None:
    r = in_session(
        BLOCK
        + """
key = SecretKey.generate(32)
block_keyring(int(sys.argv[1]))
done({"store": error(keyring.store, key, "kc:a"),
      "load": error(SecretKey.from_keyring, "kc:a"),
      "probe": keyring.probe()})
""",
        str(err),
    )
    for what in ("store", "load"):
        assert r[what]["type"] == "KeyringUnavailableError", what
        assert r[what]["errno"] == err, what
        assert "seccomp" in r[what]["message"], what
    assert r["probe"]["available"] is False
    assert r["probe"]["errno"] == err


def test_probe_when_available() -> None:
    assert in_session("done(keyring.probe())") == {"available": True}
