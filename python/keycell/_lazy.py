"""``keycell.lazy(loader)``: a key loaded once per process, on first use."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._text_refusal import RefusesText

__all__ = ["LazyKey", "lazy"]

T = TypeVar("T")

_instances: weakref.WeakSet[LazyKey[Any]] = weakref.WeakSet()


class LazyKey(RefusesText, Generic[T]):
    """A key that ``loader()`` loads on first use, once per process (see :func:`lazy`).

    ``get()`` returns the loaded handle; any other attribute is the handle's
    (``lazy_key.sign(data)`` is ``lazy_key.get().sign(data)``; special methods such as
    ``with`` are not delegated: use ``get()``). Concurrent first uses from several threads
    call ``loader`` once; the others wait for it. A fork child does not use the parent's
    handle (unusable there by design, ``ForkedKeyError``): its first use calls ``loader``
    again, in the child. A failed load raises the loader's exception and the next use tries
    again. Pickling gives an unloaded ``LazyKey`` of the same loader (for spawn workers).
    """

    __slots__ = ("__weakref__", "_loader", "_lock", "_state")

    def __init__(self, loader: Callable[[], T]) -> None:
        if not callable(loader):
            raise TypeError(f"loader must be callable, not {type(loader).__name__}")
        self._loader = loader
        self._lock = threading.Lock()
        #: (pid of the process that loaded it, the handle): one attribute, read atomically.
        self._state: tuple[int, T] | None = None
        _instances.add(self)

    def get(self) -> T:
        """The loaded handle, loading it first in this process if needed."""
        pid = os.getpid()
        state = self._state
        if state is not None and state[0] == pid:
            return state[1]
        with self._lock:
            state = self._state
            if state is not None and state[0] == pid:
                return state[1]
            value = self._loader()
            self._state = (pid, value)
            return value

    @property
    def loaded(self) -> bool:
        """Whether this process has loaded the key."""
        state = self._state
        return state is not None and state[0] == os.getpid()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in LazyKey.__slots__:
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        what = getattr(self._loader, "__qualname__", type(self._loader).__name__)
        return f"<keycell.LazyKey of {what} ({'loaded' if self.loaded else 'not loaded'})>"

    def __reduce__(self) -> tuple[type[LazyKey[T]], tuple[Callable[[], T]]]:
        return (type(self), (self._loader,))


def _after_fork_in_child() -> None:
    # A lock another thread of the parent held at fork() stays held in the child, and the
    # parent's handles are unusable here: fresh locks, nothing loaded.
    for k in list(_instances):
        k._lock = threading.Lock()
        k._state = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def lazy(loader: Callable[[], T]) -> LazyKey[T]:
    """A key that ``loader`` (no arguments, returns a handle) loads on the first use, once
    per process, and again in a fork child (see :class:`LazyKey`)::

        SIGNING_KEY = keycell.lazy(lambda: keycell.Ed25519PrivateKey.from_file("k.pem"))
        ...
        signature = SIGNING_KEY.get().sign(payload)   # or SIGNING_KEY.sign(payload)

    For pre-fork servers (gunicorn, uWSGI, ``multiprocessing``): define keys at import
    time, and each worker loads its own on its first request."""
    return LazyKey(loader)
