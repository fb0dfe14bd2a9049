"""Regressions for the defects a security review found (each ran as a proof of concept).

1. Methods that held a key's lock across a GIL release (to_file, KeyStore.put/open with a
   master key) could freeze the interpreter with a concurrent destroy() and a reader.
2. KeyStore.rotate_master held the store's mutex across a GIL release, so `store.closed`
   on another thread froze the interpreter.
3. The exporter behind expose()'s memoryview (reachable as `memoryview.obj`) handed out
   fresh views after its block had ended and after seal_export().
4. A store header with large Argon2 parameters made open() abort the interpreter when the
   allocation failed (and allowed up to 1000 passes).

The deadlock scenarios run in a child interpreter with a deadline, so a regression fails
the test instead of hanging the suite.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import keycell
import pytest
from keycell import KeyStore, SecretKey

SMALL_KDF = {"memory_kib": 1024, "iterations": 1, "lanes": 1}


def _run_child(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DEADLOCK_CHILD = """
import faulthandler, os, sys, tempfile, threading, time
faulthandler.dump_traceback_later(40, exit=True)   # a deadlock fails loudly
import keycell
from keycell import KeyStore, SecretKey

d = tempfile.mkdtemp()
store = KeyStore.create(os.path.join(d, "s.kcs"), master=SecretKey.generate(32))
MODE = sys.argv[1]

for trial in range(30):
    key = SecretKey.generate(32)
    stop = False

    def slow_user():          # holds the key while the GIL is released (file I/O, KDF)
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
        while not stop:
            try:
                key.hmac(b"x")
            except keycell.KeyDestroyedError:
                return

    ts = [threading.Thread(target=slow_user), threading.Thread(target=reader)]
    for t in ts:
        t.start()
    time.sleep(0.005)
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


ROTATE_CHILD = """
import faulthandler, os, tempfile, threading
faulthandler.dump_traceback_later(40, exit=True)
from keycell import KeyStore, SecretKey
d = tempfile.mkdtemp(); p = os.path.join(d, "s.kcs")
params = {"memory_kib": 32 * 1024, "iterations": 2, "lanes": 1}
st = KeyStore.create(p, master=bytearray(b"old pass"), kdf_params=params)
st.put("a", SecretKey.generate(32))
t = threading.Thread(target=lambda: st.rotate_master(bytearray(b"new pass"), kdf_params=params))
t.start()
seen = [st.closed, repr(st).startswith("<KeyStore")]   # while the rotation runs
t.join()
print(seen, st.closed)
"""


@pytest.mark.slow
def test_store_state_readable_while_rotating() -> None:
    proc = _run_child(ROTATE_CHILD, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "[False, True] False\n"


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


def _tampered_params(path: Path, memory_kib: int, iterations: int) -> Path:
    """A copy of the store whose header asks for other Argon2 parameters, with the
    (unkeyed) header checksum recomputed, as anyone with write access could."""
    data = bytearray(path.read_bytes())
    data[44:48] = struct.pack(">I", memory_kib)
    data[48:52] = struct.pack(">I", iterations)
    data[-64:-32] = hashlib.sha256(bytes(data[:-64])).digest()
    out = path.with_name(f"t-{memory_kib}-{iterations}.kcs")
    out.write_bytes(bytes(data))
    out.chmod(0o600)
    return out


def test_tampered_kdf_params_are_bounded_and_never_abort(tmp_path: Path) -> None:
    path = tmp_path / "s.kcs"
    KeyStore.create(path, master=bytearray(b"pw"), kdf_params=SMALL_KDF).close()
    # Above the work bound (memory x passes): refused before any KDF work.
    for mem, it in ((1024 * 1024, 1000), (1024 * 1024, 5), (64 * 1024, 65)):
        with pytest.raises((keycell.KeycellError, ValueError)):
            KeyStore.open(_tampered_params(path, mem, it), master=bytearray(b"pw"))
    # Within the bounds but more memory than the process may have: a typed error, no abort.
    big = _tampered_params(path, 1024 * 1024, 1)
    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, (900 * 2**20, 900 * 2**20))
import keycell
try:
    keycell.KeyStore.open({str(big)!r}, master=bytearray(b"pw"))
except (keycell.KeycellError, ValueError, MemoryError) as e:
    print(type(e).__name__)
"""
    proc = _run_child(code)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip() in ("ValueError", "MemoryError") or "Error" in proc.stdout


def test_kdf_params_bounds_on_create(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="iterations"):
        KeyStore.create(
            tmp_path / "a.kcs",
            master=bytearray(b"pw"),
            kdf_params={"memory_kib": 1024, "iterations": 65, "lanes": 1},
        )
    with pytest.raises(ValueError, match="KiB-passes"):
        KeyStore.create(
            tmp_path / "b.kcs",
            master=bytearray(b"pw"),
            kdf_params={"memory_kib": 1024 * 1024, "iterations": 5, "lanes": 1},
        )
    assert not (tmp_path / "a.kcs").exists()
    assert not os.path.exists(tmp_path / "b.kcs")
