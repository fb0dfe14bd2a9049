"""Memory-scan harness: find secret byte patterns in another process's memory or a file.

The parent process scans a child: it reads ``/proc/PID/smaps`` (mappings, permissions and
``VmFlags``) and the memory itself through ``/proc/PID/mem``, and reports every place a
pattern occurs, with the protection of the mapping that holds it. The harness is
deliberately independent of the code under test (it does not use ``keycell._smaps``).

Typical use (see ``tests/test_memory_scan.py``)::

    child = PhasedChild(CHILD_CODE, key_path)     # child loads the key from a file
    child.wait_phase("alive")
    hits = scan_process(child.pid, {"key": key_bytes})
    assert hits["key"] and all(h.locked and h.dontdump for h in hits["key"])
    child.advance()                               # child destroys the key
    child.wait_phase("destroyed")
    assert scan_process(child.pid, {"key": key_bytes})["key"] == []
    child.finish()

The child never builds a pattern itself: it reads the secret from a file the parent wrote,
so the only copies in the child are the ones the code under test (or the deliberate
positive control) made. Children are started with ``exec`` (``subprocess``), never a bare
``fork()``, which would inherit the parent's copy of the pattern.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CHILD_PRELUDE",
    "Hit",
    "MapArea",
    "PhasedChild",
    "find_all",
    "read_maps",
    "scan_file",
    "scan_phases",
    "scan_process",
    "summarize",
]

PAGE = os.sysconf("SC_PAGE_SIZE")
_CHUNK = 1 << 20
# Kernel-provided areas that /proc/PID/mem cannot (vvar) or need not (vsyscall) read.
_SKIP = frozenset({"[vvar]", "[vvar_vclock]", "[vsyscall]"})


@dataclass(frozen=True)
class MapArea:
    """One virtual memory area of a process (from ``/proc/PID/smaps``)."""

    start: int
    end: int
    perms: str
    path: str
    vmflags: frozenset[str] = frozenset()
    locked_kb: int = 0

    @property
    def locked(self) -> bool:
        """``mlock``ed: the ``lo`` VmFlag is set."""
        return "lo" in self.vmflags

    @property
    def dontdump(self) -> bool:
        """``MADV_DONTDUMP``: the ``dd`` VmFlag is set."""
        return "dd" in self.vmflags

    @property
    def wipeonfork(self) -> bool:
        """``MADV_WIPEONFORK``: the ``wf`` VmFlag is set."""
        return "wf" in self.vmflags


@dataclass(frozen=True)
class Hit:
    """One occurrence of a pattern in a process's memory."""

    addr: int
    perms: str
    locked: bool
    dontdump: bool
    path: str = ""
    vmflags: frozenset[str] = field(default=frozenset(), compare=False)

    def __str__(self) -> str:
        flags = " ".join(sorted(self.vmflags))
        return f"{self.addr:#x} {self.perms} {self.path or '[anon]'} ({flags})"


def read_maps(pid: int | str) -> list[MapArea]:
    """Parse ``/proc/PID/smaps`` into areas, in address order."""
    areas: list[MapArea] = []
    cur: dict[str, object] | None = None

    def flush() -> None:
        if cur is not None:
            areas.append(MapArea(**cur))  # type: ignore[arg-type]

    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
        for line in f:
            first = line.split(None, 1)[0] if line.strip() else ""
            if "-" in first and not first.endswith(":"):
                lo, _, hi = first.partition("-")
                try:
                    start, end = int(lo, 16), int(hi, 16)
                except ValueError:
                    pass
                else:
                    flush()
                    parts = line.split(None, 5)
                    cur = {
                        "start": start,
                        "end": end,
                        "perms": parts[1],
                        "path": parts[5].strip() if len(parts) > 5 else "",
                    }
                    continue
            if cur is None:
                continue
            name, _, value = line.partition(":")
            if name == "VmFlags":
                cur["vmflags"] = frozenset(value.split())
            elif name == "Locked":
                cur["locked_kb"] = int(value.split()[0])
    flush()
    return areas


def find_all(data: bytes | memoryview, pattern: bytes) -> Iterator[int]:
    """Every offset of ``pattern`` in ``data`` (overlapping matches included)."""
    if not pattern:
        raise ValueError("empty pattern")
    raw = bytes(data) if isinstance(data, memoryview) else data
    i = raw.find(pattern)
    while i != -1:
        yield i
        i = raw.find(pattern, i + 1)


def _read_area(fd: int, area: MapArea, overlap: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(address, data)`` chunks covering ``area``; consecutive chunks overlap by
    ``overlap`` bytes so a pattern spanning a boundary is found. Pages the kernel refuses
    to read are skipped (reported as gaps, never as data)."""
    addr = area.start
    while addr < area.end:
        size = min(_CHUNK, area.end - addr)
        try:
            data = os.pread(fd, size, addr)
        except OSError:
            data = b""
        if len(data) == size:
            yield addr, data
        else:
            # Fall back to page-sized reads to get everything readable in this chunk.
            pieces = bytearray()
            base = addr
            for page in range(addr, addr + size, PAGE):
                try:
                    p = os.pread(fd, min(PAGE, addr + size - page), page)
                except OSError:
                    p = b""
                if len(p) == min(PAGE, addr + size - page):
                    pieces += p
                    continue
                if pieces:
                    yield base, bytes(pieces)
                pieces = bytearray()
                base = page + PAGE
            if pieces:
                yield base, bytes(pieces)
        nxt = addr + size
        addr = nxt - overlap if nxt < area.end and overlap and size > overlap else nxt


def scan_process(
    pid: int,
    patterns: Mapping[str, bytes],
    *,
    skip_paths: Sequence[str] = (),
) -> dict[str, list[Hit]]:
    """Find every occurrence of each pattern in the memory of process ``pid``.

    Every mapping is read, including ``---p`` guard and reserved areas (``/proc/PID/mem``
    reads them with ``FOLL_FORCE``), except the kernel's ``[vvar]``/``[vsyscall]`` and any
    mapping whose path is in ``skip_paths``. Returns ``{name: [Hit, ...]}`` in address
    order. The caller needs ptrace access to ``pid`` (a parent scanning its own child, or
    root).
    """
    if not patterns:
        raise ValueError("no patterns")
    for name, p in patterns.items():
        if len(p) < 8:
            raise ValueError(f"pattern {name!r} is too short to be found by accident only")
    overlap = max(len(p) for p in patterns.values()) - 1
    hits: dict[str, dict[int, Hit]] = {name: {} for name in patterns}
    areas = read_maps(pid)
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)

    def record(name: str, a: int, area: MapArea) -> None:
        hits[name].setdefault(
            a,
            Hit(
                addr=a,
                perms=area.perms,
                locked=area.locked,
                dontdump=area.dontdump,
                path=area.path,
                vmflags=area.vmflags,
            ),
        )

    # The last bytes of the previous area, to find a pattern that straddles two adjacent
    # areas (e.g. one object split by an mprotect/mlock boundary).
    prev: tuple[MapArea, int, bytes] | None = None
    try:
        for area in areas:
            if area.path in _SKIP or area.path in skip_paths:
                prev = None
                continue
            first = True
            for addr, data in _read_area(fd, area, overlap):
                if first and prev is not None and overlap:
                    parea, paddr, ptail = prev
                    if paddr + len(ptail) == addr == area.start:
                        joined = ptail + data[:overlap]
                        for name, pattern in patterns.items():
                            for off in find_all(joined, pattern):
                                if off < len(ptail):
                                    record(name, paddr + off, parea)
                first = False
                for name, pattern in patterns.items():
                    for off in find_all(data, pattern):
                        record(name, addr + off, area)
                tail = data[-overlap:] if overlap else b""
                prev = (area, addr + len(data) - len(tail), tail)
    finally:
        os.close(fd)
    return {name: [h[a] for a in sorted(h)] for name, h in hits.items()}


def scan_file(path: str | os.PathLike[str], patterns: Mapping[str, bytes]) -> dict[str, int]:
    """Count the occurrences of each pattern in a file (e.g. a core dump)."""
    overlap = max(len(p) for p in patterns.values()) - 1
    counts = dict.fromkeys(patterns, 0)
    with open(path, "rb") as f:
        pos = 0
        tail = b""
        while True:
            block = f.read(_CHUNK)
            if not block:
                break
            data = tail + block
            start = pos - len(tail)
            for name, pattern in patterns.items():
                # Only count matches that end inside the new block (no double counting).
                counts[name] += sum(
                    1 for off in find_all(data, pattern) if start + off + len(pattern) > pos
                )
            pos += len(block)
            tail = data[-overlap:] if overlap else b""
    return counts


def summarize(hits: Mapping[str, Sequence[Hit]]) -> str:
    """A readable list of hits for assertion messages."""
    lines = []
    for name, hs in hits.items():
        lines.append(f"{name}: {len(hs)} copies")
        lines.extend(f"  {h}" for h in hs)
    return "\n".join(lines)


# Code the child runs first: ``phase(name)`` announces a phase on stdout and blocks until
# the parent says to go on (one line on stdin). The parent scans while the child blocks.
CHILD_PRELUDE = textwrap.dedent(
    """
    import sys as _sys

    def phase(name):
        _sys.stdout.write("phase " + name + "\\n")
        _sys.stdout.flush()
        if _sys.stdin.readline() == "":
            raise SystemExit(3)
    """
)


class PhasedChild:
    """A child interpreter running ``CHILD_PRELUDE + code`` with ``args`` as ``sys.argv[1:]``.

    The child calls ``phase(name)`` to stop at a point; the parent calls
    :meth:`wait_phase` and, after inspecting the child, :meth:`advance`.
    """

    def __init__(
        self,
        code: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def wait_phase(self, name: str) -> None:
        """Block until the child announces phase ``name``; fail if it says anything else."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != f"phase {name}\n":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=self.timeout)
            raise AssertionError(
                f"child did not reach phase {name!r}: got {line!r}, rc={self.proc.returncode}, "
                f"stderr:\n{err}"
            )

    def advance(self) -> None:
        """Let the child continue past its current phase."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str, str]:
        """Let the child go past its last phase, wait for it to exit and return
        ``(returncode, stdout, stderr)``."""
        out, err = self.proc.communicate(input="go\n", timeout=self.timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        """Kill the child if it still runs (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=self.timeout)

    def __enter__(self) -> PhasedChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def scan_phases(
    code: str,
    *args: str,
    patterns: Mapping[str, bytes],
    phases: Sequence[str] = ("alive", "destroyed"),
) -> tuple[dict[str, dict[str, list[Hit]]], str]:
    """Run ``code`` in a :class:`PhasedChild` with ``args``, scan it for ``patterns`` at
    each of ``phases`` in turn, and let it finish. Asserts that it exits with status 0;
    returns the hits of each phase (``{phase: {pattern name: hits}}``) and its stdout."""
    scans: dict[str, dict[str, list[Hit]]] = {}
    with PhasedChild(code, *args) as child:
        for i, phase in enumerate(phases):
            if i:
                child.advance()
            child.wait_phase(phase)
            scans[phase] = scan_process(child.pid, patterns)
        rc, out, err = child.finish()
    assert rc == 0, err
    return scans, out
