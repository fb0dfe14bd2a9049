"""``key.to_file``: atomic, 0600, never replaces without ``overwrite``; the export seal."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from keycell import KeyFileError, KeyNotExportableError, SecretKey


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_mode_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        SecretKey.generate(32).to_file(tmp_path / "k")
    finally:
        os.umask(old)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600


def test_overwrite_false_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = SecretKey.generate(32)
    first.to_file(path)
    with pytest.raises(KeyFileError, match="already exists") as info:
        SecretKey.generate(32).to_file(path)
    assert info.value.errno == errno.EEXIST
    assert SecretKey.from_file(path) == first
    second = SecretKey.generate(32)
    second.to_file(path, overwrite=True)
    assert SecretKey.from_file(path) == second
    assert leftovers(tmp_path) == []


def test_symlink_target_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    link = tmp_path / "link"
    link.symlink_to(victim)
    key = SecretKey.generate(32)
    with pytest.raises(KeyFileError) as info:
        key.to_file(link)
    assert info.value.errno == errno.EEXIST
    # overwrite=True replaces the link itself; the file it pointed to is untouched.
    key.to_file(link, overwrite=True)
    assert not link.is_symlink()
    assert victim.read_bytes() == b"do not touch"
    assert SecretKey.from_file(link) == key


def test_temporary_file_removed_on_error(tmp_path: Path) -> None:
    target = tmp_path / "adir"
    target.mkdir()
    (target / "x").write_bytes(b"x")
    with pytest.raises(KeyFileError):
        SecretKey.generate(32).to_file(target, overwrite=True)
    assert leftovers(tmp_path) == []
    with pytest.raises(KeyFileError) as info:
        SecretKey.generate(32).to_file(tmp_path / "missing-dir" / "k")
    assert info.value.errno == errno.ENOENT


def test_export_seal(tmp_path: Path) -> None:
    for key in (
        SecretKey.generate(32, exportable=False),
        SecretKey.from_buffer(bytearray(32), exportable=False),
    ):
        assert not key.exportable
        with pytest.raises(KeyNotExportableError):
            key.expose()
        with pytest.raises(KeyNotExportableError):
            key.to_file(tmp_path / "nope")
        assert not (tmp_path / "nope").exists()
    key = SecretKey.generate(32)
    key.to_file(tmp_path / "k")
    loaded = SecretKey.from_file(tmp_path / "k", exportable=False)
    assert not loaded.exportable
    assert loaded == key  # still usable (constant-time comparison works)
    # An exposure made before the seal cannot be entered after it.
    exposure = key.expose()
    assert key.exportable
    key.seal_export()
    key.seal_export()  # idempotent
    assert not key.exportable
    with pytest.raises(KeyNotExportableError):
        exposure.__enter__()
    with pytest.raises(KeyNotExportableError, match="not exportable"):
        key.to_file(tmp_path / "k2")
    key.destroy()
    assert not key.exportable


WRITER = textwrap.dedent(
    """
    import sys
    from keycell import SecretKey
    path = sys.argv[1]
    i = 0
    while True:
        i += 1
        key = SecretKey.from_buffer(bytearray(i.to_bytes(4, "big") * 8))
        key.to_file(path, format="hex" if i % 2 else "raw", overwrite=True)
        print(i, flush=True)
    """
)


def test_killed_writer_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """A child rewrites a key file in a loop; SIGKILL at random moments; the file under
    the final name is always one complete key (the last reported or the next)."""
    path = tmp_path / "k"
    rng = random.Random(1234)
    kills = 0
    for _ in range(12):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # running and writing
            assert first.strip()
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        last = int((first + rest).split()[-1])
        key = SecretKey.from_file(path, length=32)
        with key.expose() as view:
            value = int.from_bytes(bytes(view[:4]), "big")
            assert bytes(view) == value.to_bytes(4, "big") * 8
        assert value in (last, last + 1)
    assert kills == 12
    # Temporary files of killed writers may remain (never under the final name).
    for name in leftovers(tmp_path):
        assert name.startswith(".keycell-")
