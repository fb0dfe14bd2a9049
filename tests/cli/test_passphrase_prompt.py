"""The passphrase typed on the terminal leaves no copy behind (python/keycell/cli/common.py
``master``): the confirmation compares the two buffers in place (``compare_digest`` over
memoryviews), never as ``bytes`` slices, and both buffers are wiped.

A child interpreter runs ``keycell store init`` in-process with a pseudo-terminal as its
controlling terminal; the parent types the passphrase twice, waits until the command has
returned, and scans the child's memory (tests/memscan.py) for the passphrase.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from keycell import KeyStore
from memscan import scan_process, summarize

pytestmark = pytest.mark.slow

CHILD = """
import os, sys
tty = os.open(sys.argv[1], os.O_RDWR)    # a session leader: this becomes its terminal
from keycell.cli import main
rc = main(["store", "init", sys.argv[2], "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
sys.stdout.write(f"done {rc}\\n")
sys.stdout.flush()
sys.stdin.readline()                      # stay alive while the parent scans
"""


def _read_until(fd: int, marker: bytes, seen: bytearray, deadline: float) -> None:
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} on the terminal; got {bytes(seen)!r}")
        seen += os.read(fd, 1024)


def test_prompted_passphrase_leaves_no_copy(tmp_path: Path) -> None:
    # Made here, typed into the terminal only: the child has no other way to get it.
    passphrase = ("pp-" + secrets.token_hex(40)).encode()
    master, slave = os.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), os.ttyname(slave), str(tmp_path / "s")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        seen = bytearray()
        deadline = time.monotonic() + 60
        _read_until(master, b"Passphrase for", seen, deadline)
        os.write(master, passphrase + b"\n")
        _read_until(master, b"Repeat it", seen, deadline)
        os.write(master, passphrase + b"\n")
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "done 0\n", (line, child.stderr.read() if child.stderr else "")
        # Without its first 16 bytes: a freed copy loses its start to the allocator's
        # free-list link, and the rest stays readable until the block is reused.
        hits = scan_process(child.pid, {"passphrase": passphrase[16:]})
        assert hits["passphrase"] == [], summarize(hits)
    finally:
        child.kill()
        child.communicate(timeout=30)
        os.close(master)
        os.close(slave)  # kept open until here: the master reads EIO while no slave is open
    assert passphrase not in seen  # echo was off
    KeyStore.open(tmp_path / "s", master=bytearray(passphrase)).close()
