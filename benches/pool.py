"""Pooled vs page isolation: allocation cost, scale under RLIMIT_MEMLOCK, thread scaling.

    python benches/pool.py            # everything
    python benches/pool.py alloc      # one section: alloc | scale | threads | hmac

A measurement, not a test: nothing here fails on timing. Scale runs in a forked child
that lowers RLIMIT_MEMLOCK to 8 MiB (and becomes ``nobody`` when run as root).
"""

from __future__ import annotations

import json
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


def population(n: int, isolation: str | None = None, unprivileged: bool = False) -> dict[str, Any]:
    """Hold ``n`` live 32-byte keys in a forked child and report how they are protected.

    ``isolation=None`` keeps the default policy ("auto"). ``unprivileged`` lowers
    RLIMIT_MEMLOCK to 8 MiB and, when run as root, becomes ``nobody`` first (root ignores
    the limit). Returns the number of keys made, how many are locked, the index of the first
    unlocked key (or None), the isolations seen, the process's mappings and locked bytes
    (``VmLck``), the seconds it took and the pool statistics; or ``{"error": ...}``.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        out: dict[str, Any]
        try:
            os.close(r)
            if unprivileged:
                _drop(8 * MIB)
            if isolation is not None:
                keycell.set_policy(isolation=isolation)  # type: ignore[arg-type]
            warnings.simplefilter("ignore")
            keys = []
            locked = 0
            first_unlocked = None
            isolations: set[str] = set()
            t0 = time.perf_counter()
            for i in range(n):
                k = SecretKey.generate(32)
                keys.append(k)
                prot = k.protection
                if prot.locked:
                    locked += 1
                elif first_unlocked is None:
                    first_unlocked = i
                isolations.add(prot.isolation)
            seconds = time.perf_counter() - t0
            out = {
                "keys": len(keys),
                "locked": locked,
                "first_unlocked": first_unlocked,
                "isolations": sorted(isolations),
                "maps": _maps(),
                "vmlck": _vmlck(),
                "seconds": seconds,
                "pool": dict(keycell._native._pool_stats()),
            }
            code = 0
        except BaseException as exc:  # reported to the parent
            out = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            with os.fdopen(w, "w") as f:
                f.write(json.dumps(out))
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(data) if data else {"error": "child wrote nothing"}
    return result


def _vmlck() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1]) * 1024
    return 0


def scale() -> None:
    row = population(100_000, unprivileged=True)
    print(f"100k keys, default policy, 8 MiB limit as nobody: {row}")
    if os.geteuid() == 0:
        row = population(1_000_000, isolation="pool")
        print(f"1M keys, pool, root: {row}")


def churn_rates(seconds: float = 1.0) -> dict[int, float]:
    """Pooled ``generate(32)`` + ``destroy()`` per second from 1, 2 and 4 Python threads.

    Median of 3 interleaved rounds. Each thread holds the GIL while it calls in, so Python
    threads cannot add throughput here; the numbers show that they do not lose it to a
    lock convoy in the pool either (benches/pool_threads.rs measures the pool without the
    GIL).
    """

    def churn(stop: threading.Event, counts: list[int], i: int) -> None:
        n = 0
        with keycell.policy(isolation="pool"):
            while not stop.is_set():
                for _ in range(100):
                    SecretKey.generate(32).destroy()
                n += 100
        counts[i] = n

    rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
    for _ in range(3):
        for nthreads in rates:
            stop = threading.Event()
            counts = [0] * nthreads
            ts = [threading.Thread(target=churn, args=(stop, counts, i)) for i in range(nthreads)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in ts:
                t.join()
            rates[nthreads].append(sum(counts) / (time.perf_counter() - t0))
    return {n: statistics.median(v) for n, v in rates.items()}


def threads() -> None:
    for nthreads, rate in churn_rates().items():
        print(f"{nthreads} thread(s): {rate:,.0f} generate+destroy/s (pool)")


SECTIONS = {"alloc": alloc, "scale": scale, "threads": threads}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(SECTIONS):
        print(f"## {name}")
        SECTIONS[name]()
