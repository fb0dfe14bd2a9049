"""The scoped isolation override behind :func:`keycell.policy` (kept apart from the package
root so that :mod:`keycell.doctor` can use it without importing the root)."""

from __future__ import annotations

import contextvars
from contextlib import AbstractContextManager

from . import _native

__all__ = ["IsolationScope"]

# The override in force in the running context: each thread and each asyncio task sees its
# own (a task inherits the value of the context that created it). The allocator reads it,
# once the first scope has registered it, at every allocation.
_scoped_isolation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keycell_isolation", default=None
)
_registered = False


class IsolationScope(AbstractContextManager[None]):
    """Sets the override for the ``with`` block (a class, not a generator: entering and
    leaving cost a context variable set and reset)."""

    __slots__ = ("_isolation", "_token")

    def __init__(self, isolation: str) -> None:
        self._isolation = isolation

    def __enter__(self) -> None:
        global _registered
        if not _registered:
            _native._use_isolation_scopes(_scoped_isolation)
            _registered = True
        self._token = _scoped_isolation.set(self._isolation)

    def __exit__(self, *exc: object) -> None:
        _scoped_isolation.reset(self._token)
