"""Argon2 parameters are bounded: a store header with large parameters fails with a clear
error (never an abort of the interpreter on a failed allocation), and create() refuses
out-of-range parameters.
"""

from __future__ import annotations

import hashlib
import os
import struct
import textwrap
from pathlib import Path

import keycell
import pytest
from keycell import KeyStore
from support import run_python

SMALL_KDF = {"memory_kib": 1024, "iterations": 1, "lanes": 1}

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
    proc = run_python(textwrap.dedent(code))
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

