"""Reading ``/proc/<pid>/smaps``: which mapping holds an address, and its flags.

Used by ``keycell doctor`` to check a key's protection report against what the kernel
says, and by the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Mapping:
    """One virtual memory area from ``smaps``."""

    start: int
    end: int
    perms: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)
    vmflags: frozenset[str] = frozenset()

    @property
    def locked_kb(self) -> int:
        """The ``Locked:`` field in kB."""
        return int(self.fields.get("Locked", "0 kB").split()[0])

    def contains(self, addr: int) -> bool:
        """Whether ``addr`` lies in this mapping."""
        return self.start <= addr < self.end


def read_smaps(pid: int | str = "self") -> list[Mapping]:
    """Parse ``/proc/<pid>/smaps`` into a list of mappings, in address order."""
    maps: list[Mapping] = []
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as f:
        for line in f:
            head, _, rest = line.partition(":")
            if "-" in line.split(" ", 1)[0] and not head.endswith("VmFlags"):
                parts = line.split(None, 5)
                if len(parts) >= 5 and "-" in parts[0]:
                    lo, hi = parts[0].split("-")
                    try:
                        start, end = int(lo, 16), int(hi, 16)
                    except ValueError:
                        pass
                    else:
                        path = parts[5].strip() if len(parts) > 5 else ""
                        maps.append(Mapping(start, end, parts[1], path))
                        continue
            if not maps:
                continue
            if head == "VmFlags":
                maps[-1].vmflags = frozenset(rest.split())
            else:
                maps[-1].fields[head] = rest.strip()
    return maps


@dataclass
class RegionCheck:
    """What the kernel reports for the mapping holding a key."""

    found: bool
    locked: bool = False
    dontdump: bool = False
    wipeonfork: bool = False
    readonly: bool = False
    guard_before: bool = False
    guard_after: bool = False

    @property
    def complete(self) -> bool:
        """All protections present."""
        return all(
            (
                self.found,
                self.locked,
                self.dontdump,
                self.wipeonfork,
                self.readonly,
                self.guard_before,
                self.guard_after,
            )
        )


def check_region(addr: int, pid: int | str = "self") -> RegionCheck:
    """Check the mapping holding ``addr`` and its neighbours in ``/proc/<pid>/smaps``."""
    maps = read_smaps(pid)
    for i, m in enumerate(maps):
        if not m.contains(addr):
            continue
        before = maps[i - 1] if i > 0 else None
        after = maps[i + 1] if i + 1 < len(maps) else None
        return RegionCheck(
            found=True,
            locked="lo" in m.vmflags and m.locked_kb * 1024 >= (m.end - m.start),
            dontdump="dd" in m.vmflags,
            wipeonfork="wf" in m.vmflags,
            readonly=m.perms.startswith("r-"),
            guard_before=before is not None
            and before.end == m.start
            and before.perms.startswith("---"),
            guard_after=after is not None
            and after.start == m.end
            and after.perms.startswith("---"),
        )
    return RegionCheck(found=False)
