"""Threads using keys while another thread destroys them (invariants 4 and 5).

The stress runs in a forked child, so a crash shows up as the child's signal instead of
killing the test run. Every operation may only succeed or raise KeyDestroyedError (the key
is gone) or KeyInUseError (destroy() while a view is open); a deadlock shows up as a thread
that never finishes. Each runs with page-isolated and with pooled keys: destroy() frees a
pooled key without releasing the GIL when nobody holds its lock, and through the GIL-free
path otherwise.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import keycell
import pytest
from keycell import KeyDestroyedError, KeyInUseError, SecretKey
from support import run_forked

ALLOWED = {"KeyDestroyedError", "KeyInUseError"}
ISOLATIONS = pytest.mark.parametrize("isolation", ["page", "pool"])


def _stress(isolation: str, rounds: int, workers: int, iterations: int) -> dict[str, Any]:
    keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    hung = 0

    def record(name: str) -> None:
        with lock:
            outcomes[name] += 1

    secret = bytes(range(1, 33))
    for _ in range(rounds):
        a = SecretKey.from_buffer(secret)
        b = SecretKey.from_buffer(secret)
        assert a.protection.isolation == b.protection.isolation == isolation
        start = threading.Barrier(workers + 1)

        def worker(i: int, a: SecretKey = a, b: SecretKey = b, start: Any = start) -> None:
            start.wait()
            for j in range(iterations):
                op = (i + j) % 6
                try:
                    if op == 0:
                        assert (a == b) in (True, False)
                    elif op == 1:
                        assert (b == a) in (True, False)  # opposite lock order
                    elif op == 2:
                        with a.expose() as view:
                            data = view.tobytes()
                            assert data == secret, "a live view must show the key"
                    elif op == 3:
                        assert a.protection.locked
                    elif op == 4:
                        assert len(a) == 32
                        repr(a)
                    else:
                        # A slice escaping its block: leaving the block says so loudly
                        # (BufferError), and the slice keeps the key pinned until released.
                        try:
                            with b.expose() as view:
                                part = view[1:4]
                        except BufferError:
                            record("escaped")
                        part.tobytes()
                        part.release()
                    record("ok")
                except (KeyDestroyedError, KeyInUseError) as e:
                    record(type(e).__name__)
                except BaseException as e:
                    record(f"UNEXPECTED {type(e).__name__}: {e}")

        def destroyer(a: SecretKey = a, b: SecretKey = b, start: Any = start) -> None:
            start.wait()
            # Let the workers get going, so the destroy lands in the middle of their work.
            target = outcomes["ok"] + workers * iterations // 3
            deadline = time.monotonic() + 5
            while outcomes["ok"] < target and time.monotonic() < deadline:
                time.sleep(0)
            for key in (a, b):
                while True:
                    try:
                        key.destroy()
                        break
                    except KeyInUseError:
                        record("destroy retried (KeyInUseError)")
                    except BaseException as e:
                        record(f"UNEXPECTED destroy {type(e).__name__}: {e}")
                        break

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        threads.append(threading.Thread(target=destroyer))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
            hung += t.is_alive()
        if hung:
            break
        record("destroyed" if a.destroyed and b.destroyed else "NOT DESTROYED")
    return {"outcomes": dict(outcomes), "hung": hung}


@pytest.mark.slow
@ISOLATIONS
def test_threads_racing_destroy_never_crash(isolation: str) -> None:
    res = run_forked(_stress, isolation, 40, 6, 200, timeout=240)
    out = res.unwrap()
    assert out["hung"] == 0, "a thread never finished: deadlock"
    outcomes = out["outcomes"]
    unexpected = {k: v for k, v in outcomes.items() if k.startswith(("UNEXPECTED", "NOT"))}
    assert not unexpected, outcomes
    assert outcomes["destroyed"] == 40
    # The race was real: operations succeeded and failed because of the destroyer.
    assert outcomes.get("ok", 0) > 0, outcomes
    assert outcomes.get("KeyDestroyedError", 0) > 0, outcomes


def _destroy_waits_for_views(isolation: str) -> dict[str, Any]:
    """One thread holds a view across a sleep-free spin; others destroy repeatedly."""
    keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
    key = SecretKey.generate(64)
    assert key.protection.isolation == isolation
    stop = threading.Event()
    seen: Counter[str] = Counter()

    def reader() -> None:
        while not stop.is_set():
            try:
                with key.expose() as view:
                    for _ in range(50):
                        view.tobytes()  # the memory must stay mapped while the view exists
                seen["read"] += 1
            except KeyDestroyedError:
                seen["reader saw destroyed"] += 1
                return

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    attempts = 0
    while True:
        attempts += 1
        try:
            key.destroy()
            break
        except KeyInUseError:
            seen["in use"] += 1
    stop.set()
    for t in readers:
        t.join(timeout=60)
    return {"seen": dict(seen), "destroyed": key.destroyed, "attempts": attempts}


@pytest.mark.slow
@ISOLATIONS
def test_destroy_never_frees_under_an_open_view(isolation: str) -> None:
    out = run_forked(_destroy_waits_for_views, isolation, timeout=120).unwrap()
    assert out["destroyed"] is True
    assert set(out["seen"]) <= {"read", "in use", "reader saw destroyed"}


@ISOLATIONS
def test_concurrent_destroy_is_idempotent(isolation: str) -> None:
    def run() -> dict[str, int]:
        keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
        errors: Counter[str] = Counter()
        for _ in range(50):
            key = SecretKey.generate(32)
            start = threading.Barrier(4)

            def d(key: SecretKey = key, start: Any = start) -> None:
                start.wait()
                try:
                    key.destroy()
                except BaseException as e:
                    errors[type(e).__name__] += 1

            ts = [threading.Thread(target=d) for _ in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            errors["destroyed"] += key.destroyed
        return dict(errors)

    assert run_forked(run).unwrap() == {"destroyed": 50}
