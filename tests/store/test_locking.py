"""The key store's writer lock (src/store/lock.rs): a fork child never holds it, and a
writer that cannot get it in time raises ``StoreLockedError`` instead of waiting forever.

The scenarios run in a child interpreter with a deadline, so a regression fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import keycell
import keycell.exceptions
import pytest
from keycell import KeyStore, SecretKey


def _run_child(code: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


FORK_DURING_PUT = """
import faulthandler, os, signal, sys, tempfile, threading, time, warnings
faulthandler.dump_traceback_later(90, exit=True)
warnings.simplefilter("ignore", DeprecationWarning)   # fork() with threads, on purpose
from keycell import KeyStore, SecretKey

d = tempfile.mkdtemp()
path = os.path.join(d, "s.kcs")
master = SecretKey.generate(32)
master.to_file(os.path.join(d, "master.key"))
store = KeyStore.create(path, master=master)
big = SecretKey.generate(64 * 1024)
for i in range(48):                # a 3 MiB store: each put holds the lock for milliseconds
    store.put(f"big{i:02}", big)
key = SecretKey.generate(32)
stop = False
puts = 0

def writer():                      # almost always inside put(), holding the writer lock
    global puts
    while not stop:
        store.put("k", key, overwrite=True)
        puts += 1

lock_file = os.stat(path + ".lock")
lock_id = f"{os.major(lock_file.st_dev):02x}:{os.minor(lock_file.st_dev):02x}:{lock_file.st_ino}"

def lock_held():
    # Whether this process holds its POSIX lock on the lock file (its line in /proc/locks).
    with open("/proc/locks") as f:
        return any(
            line.split()[-4:-2] == [str(os.getpid()), lock_id] and "->" not in line
            for line in f
        )

t = threading.Thread(target=writer)
t.start()
children = []
verified = 0
deadline = time.monotonic() + 60    # bounds a failure only
while verified < 25:
    if time.monotonic() > deadline:
        sys.exit(f"only {verified} forks while the writer lock was held")
    # Only the writer thread takes the lock, once per put(), and it counts a put after it
    # returns, which needs the GIL. Lock seen held before the fork and after it, with the
    # count unchanged from before the first look to after the second: one put held it
    # throughout, so the child was forked while the lock was held.
    before = puts
    if not lock_held():
        continue
    pid = os.fork()
    if pid == 0:
        time.sleep(30)             # a long-lived child that never writes
        os._exit(0)
    children.append(pid)
    if lock_held() and puts == before:
        verified += 1
start = time.monotonic()
stop = True
t.join()                           # the writer's last put ...
store.put("after-fork", key)       # ... and a new one
in_parent = time.monotonic() - start
start = time.monotonic()
rc = os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", sys.argv[1], path])
in_other = time.monotonic() - start
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
names = [n for n in store.names() if not n.startswith("big")]
print(f"{in_parent:.3f} {in_other:.3f} {rc} {names}")
"""

OTHER_PROCESS_PUT = """
import os, sys
from keycell import KeyStore, SecretKey
path = sys.argv[1]
master = SecretKey.from_file(os.path.join(os.path.dirname(path), "master.key"))
KeyStore.open(path, master=master).put("other", SecretKey.generate(32))
"""


@pytest.mark.slow
def test_child_forked_during_put_does_not_hold_the_writer_lock() -> None:
    proc = _run_child(FORK_DURING_PUT, OTHER_PROCESS_PUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    in_parent, in_other, rc, names = proc.stdout.split(" ", 3)
    # The 25 children sleep for 30 s; with an inherited lock both writers would wait
    # for them (or forever).
    assert float(in_parent) < 5.0, proc.stdout
    assert float(in_other) < 5.0, proc.stdout
    assert rc == "0"
    assert names.strip() == "['after-fork', 'k', 'other']"


def test_lock_wait_times_out_with_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s.kcs"
    store = KeyStore.create(path, master=SecretKey.generate(32), lock_timeout=0.3)
    store.put("a", SecretKey.generate(32))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(path) + ".lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        start = time.monotonic()
        with pytest.raises(keycell.exceptions.StoreLockedError) as info:
            store.put("b", SecretKey.generate(32))
        waited = time.monotonic() - start
        assert 0.25 <= waited < 5.0
        assert isinstance(info.value, keycell.KeyStoreError)
        assert isinstance(info.value, keycell.KeycellError)
        message = str(info.value)
        assert str(path) + ".lock" in message
        assert "0.300 s" in message
        with pytest.raises(keycell.exceptions.StoreLockedError):
            store.delete("a")
        with pytest.raises(keycell.exceptions.StoreLockedError):
            store.rotate_master(SecretKey.generate(32))
        assert store.names() == ["a"]  # readers need no lock; nothing was changed
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    store.put("b", SecretKey.generate(32))  # the holder is gone: the lock is free again
    assert store.names() == ["a", "b"]


def test_lock_timeout_is_validated(tmp_path: Path) -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lock_timeout"):
            KeyStore.create(tmp_path / "s.kcs", master=SecretKey.generate(32), lock_timeout=bad)
    assert not (tmp_path / "s.kcs").exists()
    master = SecretKey.generate(32)
    KeyStore.create(tmp_path / "s.kcs", master=master).close()
    store = KeyStore.open(tmp_path / "s.kcs", master=master, lock_timeout=0)
    store.put("a", SecretKey.generate(32))  # a free lock needs no waiting
    assert store.names() == ["a"]


def test_threads_of_one_process_still_exclude_each_other(tmp_path: Path) -> None:
    # POSIX record locks are per process: the in-process claim must serialise threads,
    # or concurrent puts from two handles would lose entries.
    master = SecretKey.generate(32)
    KeyStore.create(tmp_path / "s.kcs", master=master).close()
    handles = [KeyStore.open(tmp_path / "s.kcs", master=master) for _ in range(4)]
    key = SecretKey.generate(16)

    def work(i: int) -> None:
        for j in range(15):
            handles[i].put(f"t{i}-{j}", key)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(handles[0].names()) == 60
    assert os.path.exists(str(tmp_path / "s.kcs") + ".lock")
