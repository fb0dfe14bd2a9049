"""Test support: forked children (crashes, fork semantics, resource limits, dropped
privileges), fresh interpreters, the ``keycell`` command, raw memory access through
ctypes, key files.

A forked child runs a function and sends its result (or the exception it raised) back as
JSON over a pipe; its stderr is captured through another pipe; the parent reports how it
ended (exit code or signal). Children never run pytest's teardown: they leave with
``os._exit``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import encodings.ascii
import encodings.latin_1
import faulthandler
import gc
import json
import mmap
import os
import pwd
import resource
import select
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KEYCELL",
    "NOBODY",
    "PAGE",
    "ForkResult",
    "drop_privileges",
    "libc",
    "mprotect",
    "privilege_drop_reason",
    "run_as_nobody",
    "run_cli",
    "run_forked",
    "run_python",
    "view_address",
    "write_key_file",
]

PAGE = os.sysconf("SC_PAGE_SIZE")

# Codecs used by open(..., encoding=...) are imported lazily; load them now, because a child
# that became nobody may not be able to read the interpreter's files any more.
_PRELOADED = (encodings.ascii, encodings.latin_1)

try:
    _nobody = pwd.getpwnam("nobody")
    NOBODY: tuple[int, int] | None = (_nobody.pw_uid, _nobody.pw_gid)
except KeyError:  # pragma: no cover - every Linux distribution has nobody
    NOBODY = None

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mprotect.restype = ctypes.c_int


def mprotect(addr: int, length: int, prot: int) -> None:
    """``mprotect`` through libc (``addr`` is rounded down to its page)."""
    start = addr - addr % PAGE
    end = addr + length
    if libc.mprotect(start, end - start, prot) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mprotect: {os.strerror(e)}")


def flip_bytes(addr: int, count: int = 1) -> None:
    """Invert ``count`` bytes at ``addr`` of a key region (made writable for the write and
    read-only again): the memory corruption the canary and fork tests simulate."""
    mprotect(addr, count, mmap.PROT_READ | mmap.PROT_WRITE)
    for i in range(count):
        b = ctypes.c_ubyte.from_address(addr + i)
        b.value ^= 0xFF
    mprotect(addr, count, mmap.PROT_READ)


def free_key(key: Any, how: str) -> None:
    """Free ``key`` by ``destroy()`` (``how == "destroy"``) or by dropping the last
    reference and collecting."""
    if how == "destroy":
        key.destroy()
    else:
        del key
        gc.collect()


class _PyBuffer(ctypes.Structure):
    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    )


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
PYBUF_SIMPLE = 0
PYBUF_WRITABLE = 1


def view_address(obj: Any, flags: int = PYBUF_SIMPLE) -> tuple[int, int, bool]:
    """``(address, length, readonly)`` of a buffer, through ``PyObject_GetBuffer``.

    Works on read-only buffers (unlike ``ctypes.c_char.from_buffer``). The buffer is
    released again before returning. A failing request raises the exporter's exception.
    """
    view = _PyBuffer()
    _get_buffer(obj, ctypes.byref(view), flags)
    try:
        return int(view.buf or 0), int(view.len), bool(view.readonly)
    finally:
        _release_buffer(ctypes.byref(view))


@dataclass
class ForkResult:
    """How a forked child ended and what it reported."""

    exitcode: int | None
    signal: int | None
    value: Any = None
    error: str | None = None
    message: str | None = None
    errno: int | None = None
    traceback: str | None = None
    stderr: str = ""

    def unwrap(self) -> Any:
        """The child's return value; fail with its traceback if it crashed or raised."""
        if self.signal is not None or self.exitcode != 0:
            raise AssertionError(
                f"child ended with signal={self.signal} exit={self.exitcode}\n{self.stderr}"
            )
        if self.error is not None:
            raise AssertionError(f"child raised {self.error}: {self.message}\n{self.traceback}")
        return self.value


def _child_main(
    fn: Callable[..., Any], args: tuple[Any, ...], w: int, ew: int, timeout: int
) -> None:
    out: dict[str, Any]
    try:
        os.dup2(ew, 2)
        faulthandler.disable()  # die by the signal itself, without a traceback dump
        # Never leave core files behind from the deliberate crashes.
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(timeout)
        out = {"value": fn(*args)}
    except BaseException as e:
        out = {
            "error": type(e).__name__,
            "message": str(e),
            "errno": getattr(e, "errno", None),
            "traceback": traceback.format_exc(),
        }
    try:
        data = json.dumps(out, default=repr).encode()
        while data:
            data = data[os.write(w, data) :]
    finally:
        os._exit(0)


def run_forked(fn: Callable[..., Any], *args: Any, timeout: int = 60) -> ForkResult:
    """Run ``fn(*args)`` in a forked child; return how it ended and what it returned.

    The return value must be JSON-serializable (other values are sent as their repr).
    """
    r, w = os.pipe()
    er, ew = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            os.close(er)
            _child_main(fn, args, w, ew, timeout)
        finally:
            os._exit(70)
    os.close(w)
    os.close(ew)
    chunks: dict[int, list[bytes]] = {r: [], er: []}
    open_fds = [r, er]
    try:
        while open_fds:
            ready, _, _ = select.select(open_fds, [], [], timeout + 5)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                break
            for fd in ready:
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.remove(fd)
    finally:
        os.close(r)
        os.close(er)
        _, status = os.waitpid(pid, 0)
    payload = b"".join(chunks[r])
    res = ForkResult(
        exitcode=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        stderr=b"".join(chunks[er]).decode(errors="replace"),
    )
    if payload:
        d = json.loads(payload)
        res.value = d.get("value")
        res.error = d.get("error")
        res.message = d.get("message")
        res.errno = d.get("errno")
        res.traceback = d.get("traceback")
    return res


def privilege_drop_reason() -> str | None:
    """Why an RLIMIT_MEMLOCK test cannot run here, or None when it can.

    Root ignores RLIMIT_MEMLOCK, so a root test process must be able to become ``nobody``;
    an unprivileged one only lowers its own limit.
    """
    if os.geteuid() != 0:
        return None
    if NOBODY is None:
        return "running as root and there is no 'nobody' user to drop privileges to"
    return None


def drop_privileges(memlock: int | None = None) -> None:
    """In a child: lower RLIMIT_MEMLOCK to ``memlock`` bytes, then, if root, become
    ``nobody`` (no supplementary groups). Everything the child needs must already be
    imported: the interpreter's files may not be readable by ``nobody``."""
    if memlock is not None:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
    if os.geteuid() == 0:
        if NOBODY is None:
            raise RuntimeError("no nobody user")
        uid, gid = NOBODY
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.geteuid() == 0 or os.getuid() == 0:
            raise RuntimeError("still root after setuid")


def _dropped(memlock: int | None, fn: Callable[..., Any], *args: Any) -> Any:
    drop_privileges(memlock)
    return fn(*args)


def run_as_nobody(
    fn: Callable[..., Any],
    *args: Any,
    memlock: int | None = PAGE,
    world_dir: Path | None = None,
    timeout: int = 60,
) -> Any:
    """Run ``fn(*args)`` in a forked child under an ``RLIMIT_MEMLOCK`` of ``memlock``
    bytes (one page unless told), as ``nobody`` when this is root (root ignores the
    limit); return what it returned, failing with its traceback if it raised. Skips the
    test where privileges cannot be dropped. ``world_dir`` (the fixture) is given to
    ``nobody`` first, for a child that writes files there."""
    import pytest

    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)
    if world_dir is not None and os.geteuid() == 0:
        assert NOBODY is not None
        os.chown(world_dir, *NOBODY)
    return run_forked(_dropped, memlock, fn, *args, timeout=timeout).unwrap()


def run_python(
    code: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    drop_env: tuple[str, ...] = ("KEYCELL_ON_LOCK_FAILURE",),
    timeout: float = 60,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (this one), with ``env`` added to a copy of the
    environment minus ``drop_env``. Returns the completed process (text output)."""
    full = {k: v for k, v in os.environ.items() if k not in drop_env}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        check=False,
        **kwargs,
    )


#: The ``keycell`` command as this interpreter runs it (``python -m keycell``).
KEYCELL = (sys.executable, "-m", "keycell")


def run_cli(
    *args: str | Path,
    command: Sequence[str] = KEYCELL,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    drop_env: tuple[str, ...] = (),
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``keycell ARGS`` to completion: ``python -m keycell`` of this interpreter, or
    ``command`` (the console script), with stdin from ``/dev/null``, ``env`` added to a
    copy of the environment minus ``drop_env``, and text output captured. ``timeout`` only
    bounds a hang; ``kwargs`` go to ``subprocess.run`` (``start_new_session``)."""
    full = {k: v for k, v in os.environ.items() if k not in drop_env}
    full.update(env or {})
    return subprocess.run(
        [*command, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def write_key_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Create ``path`` with ``data`` and exactly ``mode`` (umask does not apply)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)
    return path
