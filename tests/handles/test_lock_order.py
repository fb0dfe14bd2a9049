"""Lock order of key handles: no method holds a key's lock while it waits for the GIL.

Methods that held a key's lock across a GIL release (to_file, KeyStore.put/open with a
master key) could freeze the interpreter with a concurrent destroy() and a reader. The
scenarios run in a child interpreter with a deadline, so a regression fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

DEADLOCK_CHILD = """
import faulthandler, os, sys, tempfile, threading
faulthandler.dump_traceback_later(40, exit=True)   # a deadlock fails loudly
import keycell
from keycell import KeyStore, SecretKey

d = tempfile.mkdtemp()
store = KeyStore.create(os.path.join(d, "s.kcs"), master=SecretKey.generate(32))
MODE = sys.argv[1]

for trial in range(30):
    key = SecretKey.generate(32)
    stop = False

    running = [threading.Event(), threading.Event()]

    def slow_user():          # holds the key while the GIL is released (file I/O, KDF)
        running[0].set()
        while not stop:
            try:
                if MODE == "to_file":
                    key.to_file(os.path.join(d, "k"), overwrite=True)
                elif MODE == "put":
                    store.put("k", key, overwrite=True)
                else:
                    KeyStore.open(os.path.join(d, "s.kcs"), master=key)
            except (keycell.KeyDestroyedError, keycell.StoreAuthenticationError):
                return

    def reader():             # takes the key's lock with the GIL held
        running[1].set()
        while not stop:
            try:
                key.hmac(b"x")
            except keycell.KeyDestroyedError:
                return

    ts = [threading.Thread(target=slow_user), threading.Thread(target=reader)]
    for t in ts:
        t.start()
    for r in running:         # destroy() races both users, whatever the interleaving
        r.wait()
    key.destroy()
    stop = True
    for t in ts:
        t.join()
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["to_file", "put", "open_with_master_key"])
def test_destroy_while_key_used_without_gil_never_deadlocks(mode: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", DEADLOCK_CHILD, mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "ok\n"

