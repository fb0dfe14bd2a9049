"""The one loader for test-vector files (Wycheproof JSON under ``tests/vectors/wycheproof/``).

Every vector test parametrizes over :func:`wycheproof_params`, one pytest case per ``tcId``,
so a failure names the file and the test case. :func:`load_wycheproof` checks that the file
holds as many cases as its header announces, so no case can be dropped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WYCHEPROOF_DIR = Path(__file__).parent / "vectors" / "wycheproof"


@dataclass(frozen=True)
class WycheproofCase:
    """One test case with the parameters of its group."""

    file: str
    algorithm: str
    group: dict[str, Any]
    test: dict[str, Any]

    @property
    def tc_id(self) -> int:
        return int(self.test["tcId"])

    @property
    def result(self) -> str:
        return str(self.test["result"])

    @property
    def flags(self) -> list[str]:
        return list(self.test.get("flags", []))

    def hex(self, field: str) -> bytes:
        """A hex field of the test case, decoded ("" is zero bytes)."""
        return bytes.fromhex(self.test[field])

    def __repr__(self) -> str:
        return f"<{self.file} tcId {self.tc_id} {self.result}>"


def load_wycheproof(name: str) -> list[WycheproofCase]:
    """All test cases of ``tests/vectors/wycheproof/<name>``, in file order."""
    data = json.loads((WYCHEPROOF_DIR / name).read_text())
    cases = [
        WycheproofCase(name, data["algorithm"], group, test)
        for group in data["testGroups"]
        for test in group["tests"]
    ]
    if len(cases) != data["numberOfTests"]:
        raise ValueError(f"{name}: {len(cases)} cases, header says {data['numberOfTests']}")
    ids = [c.tc_id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: duplicate tcId")
    return cases


def result_counts(name: str) -> Counter[str]:
    """How many cases of each result ("valid", "invalid", "acceptable") a file has."""
    return Counter(c.result for c in load_wycheproof(name))


def wycheproof_params(*names: str) -> list[Any]:
    """``pytest.param`` objects for every case of the named files, with ids
    ``<file stem>-tc<tcId>``."""
    return [
        pytest.param(case, id=f"{Path(name).stem.removesuffix('_test')}-tc{case.tc_id}")
        for name in names
        for case in load_wycheproof(name)
    ]
