"""A fork child never blocks on a ``KeyStore`` handle of its parent (src/py/keystore.rs):
the handle checks the fork before taking its mutex, so in the child every method raises
``ForkedKeyError``, ``close()`` returns at once, ``closed`` is true and ``repr()`` says
"forked", even when a thread of the parent held the mutex at the fork.

Runs in a child interpreter with a deadline, so a regression fails instead of hanging.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keycell
import pytest
from keycell import KeyStore, SecretKey

FORK_WHILE_MUTEX_HELD = """
import faulthandler, os, signal, sys, tempfile, threading, time, warnings
faulthandler.dump_traceback_later(60, exit=True)
warnings.simplefilter("ignore", DeprecationWarning)   # fork() with threads, on purpose
import keycell
from keycell import KeyStore, SecretKey

d = tempfile.mkdtemp()
slow = {"memory_kib": 64 * 1024, "iterations": 8, "lanes": 1}
store = KeyStore.create(os.path.join(d, "s.kcs"), master=bytearray(b"old pass"),
                        kdf_params={"memory_kib": 1024, "iterations": 1, "lanes": 1})
started = threading.Event()

def rotate():                      # holds the handle's mutex for the whole Argon2 run
    started.set()
    store.rotate_master(bytearray(b"new pass"), kdf_params=slow)

t = threading.Thread(target=rotate)
t.start()
started.wait()
time.sleep(0.1)
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGALRM, signal.SIG_DFL)   # a blocked child dies of SIGALRM
    signal.alarm(10)        # (not faulthandler: its re-arming blocks in a fork child)
    out = []
    out.append(repr(store))
    out.append(store.closed)
    for name, call in [
        ("names", lambda: store.names()),
        ("contains", lambda: "a" in store),
        ("len", lambda: len(store)),
        ("get", lambda: store.get("a")),
        ("delete", lambda: store.delete("a")),
        ("kdf_params", lambda: store.kdf_params),
        ("enter", lambda: store.__enter__()),
        ("rotate", lambda: store.rotate_master(bytearray(b"x"))),
    ]:
        try:
            call()
            out.append(name + ": no error")
        except keycell.ForkedKeyError as e:
            out.append(name + ": ForkedKeyError" + (" (names path)" if "s.kcs" in str(e) else ""))
    store.close()                  # returns at once
    store.close()
    out.append(store.closed)
    print(out, flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
t.join()
print("child", os.waitstatus_to_exitcode(status), "parent", store.closed, "forked" in repr(store))
"""


@pytest.mark.slow
def test_child_forked_while_the_store_mutex_is_held_never_blocks() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_WHILE_MUTEX_HELD)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout + proc.stderr[-3000:]
    child = eval(lines[0])  # a list of str and bool, printed by the child
    assert child[0].endswith(" forked>"), child
    assert child[1] is True
    assert child[2:-1] == [
        f"{n}: ForkedKeyError (names path)"
        for n in ("names", "contains", "len", "get", "delete", "kdf_params", "enter", "rotate")
    ]
    assert child[-1] is True
    # The parent's handle is untouched by the child's close().
    assert lines[1] == "child 0 parent False False", lines[1]


def test_handle_in_its_own_process_is_not_forked(tmp_path: object) -> None:
    store = KeyStore.create(f"{tmp_path}/s.kcs", master=SecretKey.generate(32))
    assert "forked" not in repr(store)
    assert not store.closed
    store.close()
    assert store.closed
    assert repr(store).endswith(" closed>")
    with pytest.raises(keycell.KeyDestroyedError):
        store.names()
