"""Shared fixtures of the keycell test suite (helpers for child processes, ctypes and key
files live in ``support.py``, the memory scanner in ``memscan.py``; the ``hsm`` fixture, a
throwaway SoftHSM2 token directory for tests/pkcs11 and tests/agent, in
``pkcs11_support.py``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keycell
import pytest
from hypothesis import HealthCheck, settings
from pkcs11_support import hsm

__all__ = ["hsm"]

# Tests never assert on timing: no hypothesis deadline (the machine is shared).
settings.register_profile(
    "keycell", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "keycell"))


@pytest.fixture(autouse=True)
def _restore_policy() -> Iterator[None]:
    """Every test starts and ends with the process policy it found (lock-failure policy,
    isolation and backend)."""
    before = keycell.get_policy()
    yield
    keycell.set_policy(**before)  # type: ignore[arg-type]


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A fresh directory that a child running as ``nobody`` can enter (pytest's own
    ``tmp_path`` sits below a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="keycell-test-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
