"""Threads share a token (a pool of sessions); a fork child never uses the parent's
sessions: it gets a typed error, and opening the token again works. Never a crash."""

from __future__ import annotations

import threading

import pytest
from keycell import pkcs11
from pkcs11_support import Hsm
from support import run_python


def test_four_threads_sign_at_once(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = token.generate_ed25519(label="kc-threads")
        mac = token.generate_secret("kc-threads-mac", 32)
        public = key.public_key()
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def work(n: int) -> None:
            try:
                start.wait()
                for i in range(40):
                    msg = f"thread {n} message {i}".encode()
                    public.verify(key.sign(msg), msg)
                    mac.verify_hmac(msg, mac.hmac(msg))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not any(t.is_alive() for t in threads)
        assert errors == []


FORK_CHILD = r"""
import os, sys
from keycell import pkcs11
from keycell.exceptions import ForkedKeyError, Pkcs11ForkedError

module, label, pin_file = sys.argv[1:4]
token = pkcs11.Token.open(module=module, token_label=label, pin_file=pin_file)
key = token.ed25519_private_key(label="kc-fork")
mac = token.secret_key("kc-fork-mac")
key.public_key().verify(key.sign(b"parent"), b"parent")
sys.setswitchinterval(1000)
pid = os.fork()
if pid == 0:
    code = 0
    for op in (lambda: key.sign(b"child"), lambda: mac.hmac(b"child"),
               lambda: token.ed25519_private_key(label="kc-fork")):
        try:
            op()
            code = 10
        except Pkcs11ForkedError as e:
            if not isinstance(e, ForkedKeyError) or "fork" not in str(e):
                code = 11
        except BaseException:
            code = 12
    token.close()  # does nothing in the child
    if not token.closed:
        code = 13
    # The child opens the token again and works.
    try:
        again = pkcs11.Token.open(module=module, token_label=label, pin_file=pin_file)
        k2 = again.ed25519_private_key(label="kc-fork")
        k2.public_key().verify(k2.sign(b"child"), b"child")
        again.close()
    except BaseException as e:
        print("reopen failed:", type(e).__name__, e, file=sys.stderr)
        code = code or 14
    os._exit(code)
_, status = os.waitpid(pid, 0)
# The parent's sessions still work after the child used the module.
key.public_key().verify(key.sign(b"parent again"), b"parent again")
mac.verify_hmac(b"x", mac.hmac(b"x"))
token.close()
print("child", os.waitstatus_to_exitcode(status))
"""


def test_a_fork_child_gets_a_typed_error_and_can_reopen(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        token.generate_ed25519(label="kc-fork")
        token.generate_secret("kc-fork-mac", 32)
    r = run_python(FORK_CHILD, hsm.module, hsm.label, str(hsm.pin_file), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "child 0", (r.stdout, r.stderr)


@pytest.mark.parametrize("how", ["os.fork", "raw"])
def test_a_child_that_exits_normally_does_not_crash(hsm: Hsm, how: str) -> None:
    """A child that lets the interpreter finalise (dropping the parent's token and keys)
    exits cleanly: nothing is closed on the parent's behalf."""
    fork = (
        "os.fork()"
        if how == "os.fork"
        else "ctypes.CDLL(None, use_errno=True).syscall(57)"  # SYS_fork on x86_64
    )
    code = (
        "import ctypes, os, sys\n"
        "from keycell import pkcs11\n"
        "module, label, pin_file = sys.argv[1:4]\n"
        "token = pkcs11.Token.open(module=module, token_label=label, pin_file=pin_file)\n"
        "key = token.ed25519_private_key(label='kc-fork')\n"
        "sys.setswitchinterval(1000)\n"
        f"pid = {fork}\n"
        "if pid == 0:\n"
        "    del key, token\n"
        "    sys.exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "key.sign(b'still fine')\n"
        "print('child', os.waitstatus_to_exitcode(status))\n"
    )
    r = run_python(code, hsm.module, hsm.label, str(hsm.pin_file), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("child 0"), (r.stdout, r.stderr)
