"""The key cell every handle is built on (``src/py/key_cell.rs``): the same life cycle for
``SecretKey``, ``Ed25519PrivateKey`` and ``X25519PrivateKey`` — fork check before any lock,
destroy, seal and its inheritance by derived keys, scoped views, constant-time ``==``, no
hashing — and no heap copies of a caller's buffer.

Each test here pins a finding of a security review: it failed on the code before the key
cell existed.
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
import platform
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import keycell
import pytest
from keycell import (
    Ed25519PrivateKey,
    KeyNotExportableError,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
    hkdf,
    hkdf_expand,
    hkdf_extract,
)
from keycell.exceptions import KeyInUseError
from memscan import scan_phases, summarize

HANDLES: list[Any] = [
    lambda exportable=True: SecretKey.generate(32, exportable=exportable),
    lambda exportable=True: Ed25519PrivateKey.generate(exportable=exportable),
    lambda exportable=True: X25519PrivateKey.generate(exportable=exportable),
    lambda exportable=True: RSAPrivateKey.generate(2048, exportable=exportable),
]
HANDLE_IDS = ["SecretKey", "Ed25519PrivateKey", "X25519PrivateKey", "RSAPrivateKey"]


# --- one life cycle for every handle ------------------------------------------------------


@pytest.mark.parametrize("make", HANDLES, ids=HANDLE_IDS)
def test_no_handle_is_hashable(make: Any) -> None:
    key = make()
    assert type(key).__hash__ is None
    with pytest.raises(TypeError, match="unhashable"):
        hash(key)
    with pytest.raises(TypeError):
        {key}  # noqa: B018
    key.destroy()


@pytest.mark.parametrize("make", HANDLES, ids=HANDLE_IDS)
def test_every_handle_refuses_pickle_and_copy(make: Any) -> None:
    key = make()
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be"):
            attempt(key)
    key.destroy()


@pytest.mark.parametrize("make", HANDLES, ids=HANDLE_IDS)
def test_every_handle_has_the_same_life_cycle(make: Any) -> None:
    key = make()
    name = type(key).__name__
    assert repr(key).startswith(f"<{name} ")
    assert "destroyed" not in repr(key)
    assert key.protection.backend
    assert key.exportable
    key.seal_export()
    assert not key.exportable
    with key as same:
        assert same is key
    assert key.destroyed
    assert repr(key) == f"<{name} destroyed>"
    key.destroy()  # idempotent
    with pytest.raises(keycell.KeyDestroyedError):
        key.protection  # noqa: B018
    with pytest.raises(keycell.KeyDestroyedError):
        key.seal_export()


def test_private_keys_compare_in_constant_time_by_value() -> None:
    seed = bytearray(secrets.token_bytes(32))
    a = Ed25519PrivateKey.from_private_bytes(seed, wipe=False)
    b = Ed25519PrivateKey.from_private_bytes(seed)
    c = Ed25519PrivateKey.generate()
    assert a == b
    assert not (a != b)
    assert a != c
    assert a != X25519PrivateKey.generate()
    b.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        a == b  # noqa: B015


# --- derived keys inherit the seal -------------------------------------------------------


@pytest.mark.parametrize("exportable", [True, False])
def test_keys_derived_from_a_key_inherit_its_seal(exportable: bool) -> None:
    ikm = SecretKey.generate(32, exportable=exportable)
    derived = [
        hkdf(ikm, length=32, info=b"x"),
        hkdf_extract(ikm),
        hkdf_expand(hkdf_extract(ikm), length=32),
    ]
    for k in derived:
        assert k.exportable is exportable
        if not exportable:
            with pytest.raises(KeyNotExportableError):
                k.expose()
    sealed_later = SecretKey.generate(32)
    sealed_later.seal_export()
    assert not hkdf(sealed_later, length=16).exportable


@pytest.mark.parametrize("exportable", [True, False])
def test_exchange_inherits_the_private_keys_seal(exportable: bool) -> None:
    ours = X25519PrivateKey.generate(exportable=exportable)
    theirs = X25519PrivateKey.generate()
    shared = ours.exchange(theirs.public_key())
    assert shared.exportable is exportable
    assert theirs.exchange(ours.public_key()).exportable
    if not exportable:
        with pytest.raises(KeyNotExportableError):
            shared.expose()
        with pytest.raises(KeyNotExportableError):
            hkdf(shared, length=32).expose()


# --- views are valid only inside their block ----------------------------------------------


@pytest.mark.parametrize(
    "escape",
    [
        lambda v: v[1:5],
        lambda v: v.cast("c"),
        lambda v: v.toreadonly(),
        lambda v: memoryview(v),
        lambda v: memoryview(v.obj),
    ],
    ids=["slice", "cast", "toreadonly", "memoryview", "exporter"],
)
def test_a_view_escaping_its_block_is_loud(escape: Any) -> None:
    data = secrets.token_bytes(32)
    key = SecretKey.from_buffer(bytearray(data))
    kept = []
    with pytest.raises(BufferError, match="still alive after its with-block"):
        with key.expose() as view:
            kept.append(escape(view))
    with pytest.raises(KeyInUseError):
        key.destroy()  # the escaped view pins the key: nothing is freed under it
    kept.clear()
    gc.collect()
    key.destroy()


def test_a_view_used_only_inside_its_block_is_quiet() -> None:
    key = SecretKey.generate(32)
    with key.expose() as view:
        part = view[1:5]
        assert len(part.tobytes()) == 4
        part.release()
        with view.cast("c") as cast:
            assert len(cast) == 32
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    key.destroy()


def test_retained_exporter_refuses_after_block_and_after_seal() -> None:
    key = SecretKey.generate(32)
    with key.expose() as view:
        exporter = view.obj
        inner = memoryview(exporter)  # a new export while the block is open: allowed
        assert inner.tobytes() == view.tobytes()
        inner.release()
    with pytest.raises(BufferError, match="ended"):
        memoryview(exporter)
    with key.expose() as view:
        exporter = view.obj
        key.seal_export()
        with pytest.raises(keycell.KeyNotExportableError):
            memoryview(exporter)
    with pytest.raises(keycell.KeyNotExportableError):
        key.expose().__enter__()
    key.destroy()



# --- a fork child never hangs on a key's lock ----------------------------------------------

RAW_FORK = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the raw fork syscall number is known for x86_64"
)

FORK_HANG_CHILD = """
import faulthandler, os, sys, threading, time
faulthandler.dump_traceback_later(100, exit=True)   # a hang fails loudly
import ctypes
import keycell
from keycell import Ed25519PrivateKey, SecretKey

MODE, KIND, HOW = sys.argv[1:4]
big = b"m" * (256 << 20)
libc = ctypes.PyDLL(None, use_errno=True)   # PyDLL keeps the GIL across the call
libc.syscall.restype = ctypes.c_long
# A thread that waits for the GIL asks its holder to drop it (after the switch interval),
# and the holder then waits until another thread has taken it. A child made by a raw fork
# has no other threads: with such a request pending at the fork it would wait forever in
# the interpreter, whatever keycell does. A long interval means no request is ever made,
# so a thread waiting for the GIL gets it only when its holder releases it on its own (in
# a call that releases it, or time.sleep(0) in the polling loops below).
sys.setswitchinterval(1000)
cpu = time.thread_time
# CPU time a call spends outside the key's lock (entering and leaving the call, the GIL
# handover): microseconds; this bound is far above it and far below the lock's hold.
OUTSIDE = 0.005

def child(key, w):
    import signal
    signal.alarm(20)              # a child that hangs dies instead of blocking the test
    out = []
    try:
        out.append(repr(key))
        out.append(str(key.destroyed))
        try:
            key.protection
        except keycell.ForkedKeyError:
            out.append("ForkedKeyError")
        except keycell.KeyDestroyedError:
            out.append("KeyDestroyedError")
        key.destroy()
        out.append(repr(key))
        os.write(w, ("CHILD " + "|".join(out) + "\\n").encode())
        os._exit(0)
    except BaseException as e:
        os.write(w, ("CHILD ERROR " + repr(e) + "\\n").encode())
        os._exit(1)

def attempt():
    key = SecretKey.generate(32) if KIND == "secret" else Ed25519PrivateKey.generate()
    use = key.hmac if KIND == "secret" else key.sign
    calls = []            # (thread CPU time at the start, at the end) of each call
    current = []          # thread CPU time at the start of the call in progress
    done = False
    entering = False

    def busy():           # holds the key's read lock with the GIL released, call after call
        while not done:
            current.append(cpu())
            try:
                use(big)
            except keycell.KeyDestroyedError:
                return
            calls.append((current[-1], cpu()))

    def destroyer():
        nonlocal entering
        entering = True
        key.destroy()     # waits for the write lock while busy() holds the read lock

    threads = [threading.Thread(target=busy)]
    threads[0].start()
    clock = time.pthread_getcpuclockid(threads[0].ident)
    # busy() is inside a call and has run OUTSIDE seconds of it: it holds the read lock.
    while not current or time.clock_gettime(clock) - current[-1] < OUTSIDE:
        time.sleep(0)
    if MODE == "waiting-destroy":
        threads.append(threading.Thread(target=destroyer))
        threads[1].start()
        while not entering:   # this thread has the GIL back: destroy() released it
            time.sleep(0)
        # Not destroyed: destroy() is waiting for the lock (busy() still holds it, checked
        # below), not done. Destroyed: busy() was between calls; try again.
        if key.destroyed:
            for t in threads:
                t.join()
            return False, "", 0
    r, w = os.pipe()
    before = time.clock_gettime(clock)
    pid = libc.syscall(57) if HOW == "raw" else os.fork()   # 57: SYS_fork on x86_64
    if pid == 0:
        child(key, w)
    after = time.clock_gettime(clock)
    os.close(w)
    with os.fdopen(r) as f:
        reported = f.read()
    _, status = os.waitpid(pid, 0)
    done = True
    for t in threads:
        t.join()
    key.destroy()
    # The fork fell inside one call, at least OUTSIDE after its start and before its end:
    # busy() held the read lock at the fork (and destroy() was waiting for it).
    inside = any(s + OUTSIDE <= before and after + OUTSIDE <= e for s, e in calls)
    return inside, reported, status

for _ in range(20):
    ok, reported, status = attempt()
    if ok:
        break
else:
    sys.exit("the fork never fell inside a call that held the key's lock")
sys.stdout.write(reported)
print("STATUS", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["os.fork", pytest.param("raw", marks=RAW_FORK)])
@pytest.mark.parametrize("mode", ["busy", "waiting-destroy"])
@pytest.mark.parametrize("kind", ["secret", "ed25519"])
def test_fork_child_never_blocks_on_a_key_lock(how: str, mode: str, kind: str) -> None:
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FORK_HANG_CHILD), mode, kind, how],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "STATUS 0" in res.stdout, res.stdout + res.stderr
    child = next(line for line in res.stdout.splitlines() if line.startswith("CHILD"))
    parts = child.removeprefix("CHILD ").split("|")
    assert parts[1:3] == ["False", "ForkedKeyError"], child
    assert parts[-1].endswith("destroyed>"), child


def test_fork_child_gets_forked_key_error_for_every_handle() -> None:
    keys = [make() for make in HANDLES]
    pid = os.fork()
    if pid == 0:
        code = 0
        for key in keys:
            try:
                key.protection  # noqa: B018
                code = 1
            except keycell.ForkedKeyError:
                pass
            except BaseException:
                code = 2
            key.destroy()  # abandons the parent's key: no wait, no error
            if not key.destroyed:
                code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for key in keys:
        assert not key.destroyed  # the child's destroy() did not touch the parent's key
        key.destroy()


# --- no copy of a caller's buffer is left in the heap ---------------------------------------

BUFFER_COPY_CHILD = """
import gc, sys
import keycell
from keycell import HMAC, Ed25519PrivateKey, SecretKey, compare_digest, hkdf

key = SecretKey.from_file(sys.argv[1])             # the bytes we look for
other = SecretKey.generate(32)
signer = Ed25519PrivateKey.generate()
with open(sys.argv[2], "rb") as f:
    control = f.read()                             # positive control, kept on purpose
with key.expose() as view, key.expose() as view2:
    assert compare_digest(view, view2)
    assert compare_digest(view, bytearray(64)) is False
    tag = other.hmac(view)
    other.verify_hmac(view, tag)
    h = HMAC(other)
    h.update(view)
    h.verify(tag)
    signer.sign(view)
    signer.public_key().verify(signer.sign(view), view)
    hkdf(other, length=32, salt=view, info=view).destroy()
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


@pytest.mark.slow
def test_no_heap_copy_of_a_buffer_passed_to_keycell(tmp_path: Path) -> None:
    secret = secrets.token_bytes(64)
    control = secrets.token_bytes(32)
    for name, data in (("key", secret), ("control", control)):
        fd = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    # A freed heap chunk loses its first 16 bytes to the allocator's bookkeeping: look for
    # the tail of the key as well as the whole of it.
    patterns = {"key": secret, "key tail": secret[24:], "control": control}
    scans, _ = scan_phases(
        BUFFER_COPY_CHILD, str(tmp_path / "key"), str(tmp_path / "control"), patterns=patterns
    )
    after = scans["destroyed"]
    assert after["control"], summarize(after)
    assert after["key"] == [], summarize(after)
    assert after["key tail"] == [], summarize(after)
