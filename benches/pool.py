"""Pooled vs page isolation: allocation cost, scale under RLIMIT_MEMLOCK, thread scaling.

    python benches/pool.py            # everything
    python benches/pool.py alloc      # one section: alloc | scale | threads | hmac

A measurement, not a test: nothing here fails on timing. Scale runs in a forked child
that lowers RLIMIT_MEMLOCK to 8 MiB (and becomes ``nobody`` when run as root).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import threading
import time
import timeit
import warnings
from typing import Any

import keycell
from keycell import SecretKey

MIB = 1 << 20


def _best_ns(stmt: Any, number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9


def alloc() -> None:
    def raw() -> None:
        b = bytearray(os.urandom(32))
        b[:] = bytes(32)

    def keycell_key() -> None:
        SecretKey.generate(32).destroy()

    n = 20_000
    base = _best_ns(raw, n)
    print(f"bytearray(os.urandom(32)) + wipe      {base:8.0f} ns")
    for iso in ("page", "pool"):
        with keycell.policy(isolation=iso):  # type: ignore[arg-type]
            t = _best_ns(keycell_key, n if iso == "pool" else 2000)
        print(f"SecretKey.generate(32)+destroy {iso:<5}  {t:8.0f} ns  ({t / base:.2f}x)")
    with keycell.policy(isolation="pool"):
        firsts = []
        for _ in range(5):
            keys = [SecretKey.generate(32) for _ in range(2000)]
            t0 = time.perf_counter()
            for k in keys:
                k.hmac(b"m")
            firsts.append((time.perf_counter() - t0) / len(keys) * 1e9)
            for k in keys:
                k.destroy()
        print(f"first hmac (pads computed) pool       {min(firsts):8.0f} ns")
        key = SecretKey.generate(32)
        key.hmac(b"m")
        t = _best_ns(lambda: key.hmac(b"m"), n)
        print(f"later hmac (pads cached) pool         {t:8.0f} ns")
    # The default policy ("auto") once more than the page share is alive: pooled.
    live = [SecretKey.generate(32) for _ in range(400)]
    t = _best_ns(keycell_key, n)
    print(f"generate+destroy, auto, 400 live keys {t:8.0f} ns  ({t / base:.2f}x)")
    del live


def _maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def _drop(memlock: int) -> None:
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)


def scale() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _drop(8 * MIB)
            warnings.simplefilter("ignore")
            keys = []
            first_unlocked = None
            t0 = time.perf_counter()
            for i in range(400_000):
                k = SecretKey.generate(32)
                keys.append(k)
                if first_unlocked is None and not k.protection.locked:
                    first_unlocked = i
                    break
                if i + 1 == 100_000:
                    at_100k = (_maps(), time.perf_counter() - t0, keycell._native._pool_stats())
            msg = (
                f"100k keys: {at_100k[0]} mappings, {at_100k[1]:.2f} s, {at_100k[2]}\n"
                f"locked keys before the first unlocked one (8 MiB, default policy): "
                f"{first_unlocked if first_unlocked is not None else '>= 400000'}\n"
            )
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    print(os.read(r, 65536).decode(), end="")


def threads() -> None:
    def churn(stop: threading.Event, counts: list[int], i: int) -> None:
        n = 0
        with keycell.policy(isolation="pool"):
            while not stop.is_set():
                for _ in range(100):
                    SecretKey.generate(32).destroy()
                n += 100
        counts[i] = n

    for nthreads in (1, 2, 4):
        rates = []
        for _ in range(3):
            stop = threading.Event()
            counts = [0] * nthreads
            ts = [threading.Thread(target=churn, args=(stop, counts, i)) for i in range(nthreads)]
            for t in ts:
                t.start()
            time.sleep(1.0)
            stop.set()
            for t in ts:
                t.join()
            rates.append(sum(counts))
        print(f"{nthreads} thread(s): {statistics.median(rates):,.0f} generate+destroy/s (pool)")


SECTIONS = {"alloc": alloc, "scale": scale, "threads": threads}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(SECTIONS):
        print(f"## {name}")
        SECTIONS[name]()
