"""The JOSE tests' keys (``jose_support.pair``) are destroyed after each module: a key
left alive for the session would be counted by later tests that fork and check the
process's locked memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jose_support import destroy_all


@pytest.fixture(autouse=True, scope="module")
def _destroy_jose_keys() -> Iterator[None]:
    yield
    destroy_all()
