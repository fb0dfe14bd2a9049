"""The integration pages' Python examples run as written (docs that match the code).

Every fenced ```python block in ``docs/integrations/*.md`` runs in a fresh interpreter, in an
empty directory, with warnings as errors. A page with no runnable example fails: each
integration page promises one. Blocks run in page order and are independent of each other.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "integrations"
PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [
    (page.name, index, block)
    for page in PAGES
    for index, block in enumerate(
        re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    )
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_integration_page_has_an_example(page: Path) -> None:
    assert "```python\n" in page.read_text(encoding="utf-8"), f"{page.name} has no example"


@pytest.mark.parametrize(
    ("page", "index", "source"), BLOCKS, ids=[f"{p}#{i}" for p, i, _ in BLOCKS]
)
def test_integration_example_runs(page: str, index: int, source: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{page} example {index}: {proc.stderr}"
