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
faulthandler.dump_traceback_later(100, exit=True)
warnings.simplefilter("ignore", DeprecationWarning)   # fork() with threads, on purpose
import keycell
from keycell import KeyStore, SecretKey

slow = {"memory_kib": 64 * 1024, "iterations": 8, "lanes": 1}

def kdf_mappings():
    # The Argon2 memory of rotate_master (64 MiB, mapped and unmapped inside the store's
    # mutex): read-write mappings of 64 MiB or more.
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if hi - lo >= slow["memory_kib"] << 10 and fields[1].startswith("rw"):
                found.add(fields[0])
    return found

def child(store, w):
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
    os.write(w, (repr(out) + "\\n").encode())
    os._exit(0)

def attempt():
    # Fork while rotate_master holds the handle's mutex. The KDF's mapping seen before the
    # fork and still there after it proves the mutex was held at the fork (one rotation,
    # one hold); when the fork missed it the attempt does not count.
    d = tempfile.mkdtemp()
    store = KeyStore.create(os.path.join(d, "s.kcs"), master=bytearray(b"old pass"),
                            kdf_params={"memory_kib": 1024, "iterations": 1, "lanes": 1})
    before = kdf_mappings()
    t = threading.Thread(target=store.rotate_master, args=(bytearray(b"new pass"),),
                         kwargs={"kdf_params": slow})
    t.start()
    while not (seen := kdf_mappings() - before):
        if not t.is_alive():
            sys.exit("rotate_master ended before its KDF memory was seen")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        child(store, w)
    held = bool(seen & kdf_mappings())
    os.close(w)
    with os.fdopen(r) as f:
        reported = f.read()
    _, status = os.waitpid(pid, 0)
    t.join()
    return held, reported, status, store

for _ in range(20):
    held, reported, status, store = attempt()
    if held:
        break
else:
    sys.exit("no fork happened while the store's mutex was held")
sys.stdout.write(reported)
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
