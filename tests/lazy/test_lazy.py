"""``keycell.lazy``: a key loaded once per process on first use; a fork child loads its
own (never the parent's, unusable there: ForkedKeyError); one load under racing first
uses."""

from __future__ import annotations

import hmac as std_hmac
import multiprocessing
import os
import pickle
import threading
import warnings

import keycell
import pytest
from keycell import ForkedKeyError, LazyKey, SecretKey

RAW = bytes(range(32))
DEADLINE = 30.0


def _load() -> SecretKey:
    return SecretKey.from_buffer(bytearray(RAW))


LAZY = keycell.lazy(_load)


def _worker(msg: bytes) -> tuple[int, bytes, bool]:
    """In a pool worker: the module's lazy key, used (loads the worker's own)."""
    return os.getpid(), LAZY.hmac(msg), LAZY.loaded


def test_loads_once_on_first_use_and_delegates() -> None:
    calls: list[int] = []

    def loader() -> SecretKey:
        calls.append(1)
        return _load()

    k = keycell.lazy(loader)
    assert isinstance(k, LazyKey)
    assert not k.loaded
    assert calls == []
    handle = k.get()
    assert k.loaded
    assert k.get() is handle
    assert k.hmac(b"m") == std_hmac.new(RAW, b"m", "sha256").digest()  # delegated
    assert calls == [1]
    assert "loaded" in repr(k)
    assert "loader" in repr(k)
    with pytest.raises(TypeError, match="cannot be converted to text"):
        str(k)
    with pytest.raises(TypeError, match="cannot be converted to text"):
        f"{k}"
    with pytest.raises(AttributeError):
        _ = k.no_such_method
    handle.destroy()


def test_a_failed_load_raises_and_the_next_use_retries() -> None:
    attempts: list[int] = []

    def loader() -> SecretKey:
        attempts.append(1)
        if len(attempts) == 1:
            raise FileNotFoundError("key file not there yet")
        return _load()

    k = keycell.lazy(loader)
    with pytest.raises(FileNotFoundError):
        k.get()
    assert not k.loaded
    assert len(k.get()) == 32
    assert len(attempts) == 2


def test_loader_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        keycell.lazy(b"key")  # type: ignore[arg-type]


def test_pickles_unloaded() -> None:
    LAZY.get()
    copy = pickle.loads(pickle.dumps(LAZY))
    assert isinstance(copy, LazyKey)
    assert not copy.loaded
    assert copy.hmac(b"x") == LAZY.hmac(b"x")


class CountingLock:
    """A lock that counts the threads that tried to take it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tries = 0
        self.cond = threading.Condition()

    def __enter__(self) -> None:
        with self.cond:
            self.tries += 1
            self.cond.notify_all()
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_racing_first_uses_load_once() -> None:
    n = 8
    calls: list[int] = []
    lock = CountingLock()

    def loader() -> SecretKey:
        calls.append(1)
        # The load holds until every thread is at the lock: all of them race this load.
        with lock.cond:
            if not lock.cond.wait_for(lambda: lock.tries == n, DEADLINE):
                raise AssertionError("not every first use reached the lock")
        return _load()

    k = keycell.lazy(loader)
    k._lock = lock  # type: ignore[assignment]
    barrier = threading.Barrier(n)
    got: list[SecretKey] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            barrier.wait(DEADLINE)
            got.append(k.get())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert errors == []
    assert calls == [1]
    assert len(got) == n
    assert all(h is got[0] for h in got)


def _fork() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads (3.12+)
        return os.fork()


def test_a_fork_child_loads_its_own_key() -> None:
    parent = LAZY.get()
    r, w = os.pipe()
    pid = _fork()
    if pid == 0:  # the child
        code = 1
        try:
            try:
                parent.hmac(b"m")
            except ForkedKeyError:
                code = 2  # the parent's handle is unusable here, by design
            if code == 2 and not LAZY.loaded:
                mine = LAZY.get()
                ok = mine is not parent and LAZY.hmac(b"m") == std_hmac.new(
                    RAW, b"m", "sha256"
                ).digest()
                code = 0 if ok else 3
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        result = f.read()
    os.waitpid(pid, 0)
    assert result == b"\0"
    assert LAZY.get() is parent  # the parent keeps its key


def test_a_fork_pool_worker_loads_its_own_key() -> None:
    LAZY.get()  # loaded in the parent before the workers fork
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with ctx.Pool(2) as pool:
            results = pool.map(_worker, [b"m%d" % i for i in range(8)])
    for i, (pid, tag, loaded) in enumerate(results):
        assert pid != os.getpid()
        assert loaded
        assert tag == std_hmac.new(RAW, b"m%d" % i, "sha256").digest()
