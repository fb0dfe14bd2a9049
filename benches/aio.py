"""``keycell.aio``: how long the event loop stalls while keycell works.

A ticker task sleeps 1 ms at a time and records how late each wake-up is; its worst
lateness is the loop's longest stall. Measured, in one run:

- during ``await aio.KeyStore.open`` of a store under a passphrase with the default
  Argon2id parameters (the Argon2id runs in a worker thread, without the GIL), next to the
  same opens run by another process (the control: what the CPU contention alone costs the
  loop; equal stalls mean the GIL adds nothing) and to the stall of a plain
  ``KeyStore.open`` called on the loop (what ``aio`` avoids);
- during 1,000 sequential Ed25519 signatures through ``await aio.connect(...)`` to a
  ``keycell agent serve`` process;
- the ticker alone, idle, for the machine's own noise.

Target: the worst stall under 5 ms for both. Run alone (``python benches/aio.py``) or
from ``benches/run.py`` (``make bench``). A measurement, not a test: nothing fails on
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from keycell import Ed25519PrivateKey, KeyStore, Passphrase, SecretKey, aio

TARGET_MS = 5.0
PERIOD = 0.001


async def _stall_during(work: Callable[[], Awaitable[Any]]) -> tuple[list[float], float]:
    """(every lateness of a 1 ms ticker in ms, seconds ``work`` took)."""
    done = asyncio.Event()
    late: list[float] = []

    async def tick() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(PERIOD)
            late.append(time.perf_counter() - t0 - PERIOD)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(PERIOD * 3)  # the ticker is running
    t0 = time.perf_counter()
    await work()
    took = time.perf_counter() - t0
    done.set()
    await ticker
    return [x * 1000 for x in late], took


def _wait_socket(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def measure(opens: int = 5, signatures: int = 1000) -> dict[str, Any]:
    """The stalls, in ms (lists over repetitions), and the timings."""
    d = Path(tempfile.mkdtemp(prefix="keycell-aio-bench-"))
    d.chmod(0o700)
    agent: subprocess.Popen[bytes] | None = None
    try:
        (d / "pw").write_bytes(b"a passphrase for the bench")
        (d / "pw").chmod(0o600)
        with Passphrase.from_file(d / "pw") as pw:
            KeyStore.create(d / "pw.kcs", master=pw).close()  # the default Argon2id

        # The control: the same open in another process. Its stalls are what the CPU
        # contention alone costs the loop (two busy threads on the machine), without the GIL.
        child = (
            "import sys\nfrom keycell import KeyStore, Passphrase\n"
            f"with Passphrase.from_file({str(d / 'pw')!r}) as pw:\n"
            "    for _ in sys.stdin:\n"
            f"        KeyStore.open({str(d / 'pw.kcs')!r}, master=pw).close()\n"
            "        print('ok', flush=True)\n"
        )

        async def store_opens() -> dict[str, Any]:
            out: dict[str, Any] = {"aio": [], "sync": [], "secs": [], "idle": [], "other": []}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", child, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert proc.stdin is not None
            assert proc.stdout is not None
            stdin, stdout = proc.stdin, proc.stdout

            async def open_elsewhere() -> None:
                stdin.write(b"open\n")
                await stdin.drain()
                if await stdout.readline() != b"ok\n":
                    raise RuntimeError("the control process failed")

            with Passphrase.from_file(d / "pw") as pw:
                for _ in range(opens):

                    async def open_aio() -> None:
                        s = await aio.KeyStore.open(d / "pw.kcs", master=pw)
                        await s.close()

                    async def open_sync() -> None:
                        KeyStore.open(d / "pw.kcs", master=pw).close()

                    stall, took = await _stall_during(open_aio)

                    async def idle(secs: float = took) -> None:
                        await asyncio.sleep(secs)

                    out["aio"] += stall
                    out["secs"].append(took)
                    out["sync"].append(max((await _stall_during(open_sync))[0]))
                    out["idle"] += (await _stall_during(idle))[0]
                    out["other"] += (await _stall_during(open_elsewhere))[0]
            stdin.close()
            await proc.wait()
            return out

        result: dict[str, Any] = {"store": asyncio.run(store_opens())}

        key = Ed25519PrivateKey.generate()
        with SecretKey.generate(32) as m:
            m.to_file(d / "master.key", format="raw")
            with KeyStore.create(d / "store.kcs", master=m) as s:
                s.put("bench", key)
        pub = key.public_key()
        key.destroy()
        sock = d / "agent.sock"
        agent = subprocess.Popen(
            [sys.executable, "-m", "keycell", "agent", "serve", "--store", str(d / "store.kcs"),
             "--master-key-file", str(d / "master.key"), "--socket", str(sock)],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_socket(sock, agent)

        async def signs() -> dict[str, Any]:
            client = await aio.connect(sock)
            k = await client.ed25519("bench")
            sigs: list[bytes] = []

            async def work() -> None:
                for i in range(signatures):
                    sigs.append(await k.sign(b"message %d" % i))

            stall, took = await _stall_during(work)
            client.close()
            for i, sig in enumerate(sigs):
                pub.verify(sig, b"message %d" % i)
            return {"stall": stall, "secs": took}

        result["agent"] = asyncio.run(signs())
        result["signatures"] = signatures
        return result
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        shutil.rmtree(d, ignore_errors=True)


def _p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


def report(opens: int = 5, signatures: int = 1000) -> str:
    """The measurements as a Markdown section."""
    r = measure(opens, signatures)
    st, ag = r["store"], r["agent"]
    n = r["signatures"]
    lines = [
        "",
        "## asyncio: the event loop's longest stall (benches/aio.py)",
        "",
        f"A 1 ms ticker task's lateness (worst and 99th percentile); target: worst < "
        f"{TARGET_MS:.0f} ms. The idle row is the ticker alone for as long as the opens: the "
        "machine's own noise (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs).",
        "",
        "| work | worst (ms) | p99 (ms) | time |",
        "|---|---|---|---|",
        f"| `await aio.KeyStore.open` (default Argon2id), {opens} opens "
        f"| {max(st['aio']):.2f} | {_p99(st['aio']):.2f} "
        f"| {statistics.median(st['secs']) * 1000:.0f} ms each |",
        f"| the same opens in another process (CPU contention alone, no GIL) "
        f"| {max(st['other']):.2f} | {_p99(st['other']):.2f} | |",
        f"| `KeyStore.open` called on the loop (for contrast), median of {opens} "
        f"| {statistics.median(st['sync']):.2f} | | |",
        f"| {n} signatures via `aio.connect` (Ed25519, sequential) "
        f"| {max(ag['stall']):.2f} | {_p99(ag['stall']):.2f} "
        f"| {ag['secs'] * 1e6 / n:.0f} us per signature |",
        f"| the ticker alone (machine noise) | {max(st['idle']):.2f} | {_p99(st['idle']):.2f} | |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run alone."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--opens", type=int, default=5)
    p.add_argument("--signatures", type=int, default=1000)
    args = p.parse_args()
    print(report(args.opens, args.signatures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
