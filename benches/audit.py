"""Audit log benchmarks: ``AuditHandler`` vs ``logging.FileHandler`` on the same records,
and the streaming verifier's throughput and memory on a large log.

    python benches/audit.py                   # both, 1 GiB log
    python benches/audit.py --size-mb 256     # a smaller log
    python benches/audit.py handler           # one section: handler | verify

Called from ``benches/run.py`` (``make bench``). A measurement, not a test: nothing here
fails on timing. The verifier runs in a child process, so its peak RSS (``ru_maxrss``) is
its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keycell import Ed25519PrivateKey, SecretKey
from keycell.audit import AuditHandler, AuditLog

MIB = 1 << 20
HANDLER_TARGET = 1.5


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    lg = logging.getLogger(f"keycell.bench.{name}")
    lg.handlers.clear()
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    lg.propagate = False
    return lg


def handler(records: int = 5000, rounds: int = 11) -> dict[str, float]:
    """Time ``logger.info`` through each handler, ``records`` per batch, in interleaved
    rounds; return the medians (seconds per record) and the paired ratio."""
    d = Path(tempfile.mkdtemp(prefix="keycell-bench-"))
    try:
        log = AuditLog.create(
            d / "audit.log",
            key=SecretKey.generate(32),
            signer=Ed25519PrivateKey.generate(),
            origin="bench.example/audit",
        )
        fh = logging.FileHandler(d / "plain.log")
        loggers = {"audit": _logger("audit", AuditHandler(log)), "file": _logger("file", fh)}

        def batch(lg: logging.Logger) -> float:
            t = time.perf_counter()
            for i in range(records):
                lg.info("key %s used by uid %d pid %d: %s", "deploy", 1000, i, "ok")
            return (time.perf_counter() - t) / records

        for lg in loggers.values():
            batch(lg)  # warm up
        times: dict[str, list[float]] = {"audit": [], "file": []}
        for r in range(rounds):
            order = ["audit", "file"] if r % 2 == 0 else ["file", "audit"]
            for name in order:
                times[name].append(batch(loggers[name]))
        ratio = statistics.median(a / b for a, b in zip(times["audit"], times["file"], strict=True))
        # The cost of one epoch step (state file written and fsynced), amortised over
        # epoch_records appends in the numbers above.
        t = time.perf_counter()
        log.checkpoint()
        step = time.perf_counter() - t
        log.close()
        fh.close()
        return {
            "audit_s": statistics.median(times["audit"]),
            "file_s": statistics.median(times["file"]),
            "ratio": ratio,
            "checkpoint_s": step,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_log(
    path: Path, size_bytes: int, payload: int
) -> tuple[SecretKey, Ed25519PrivateKey, int]:
    """Append events with a ``payload``-byte field until the log reaches ``size_bytes``."""
    k0, signer = SecretKey.generate(32), Ed25519PrivateKey.generate()
    filler = "x" * payload
    with AuditLog.create(path, key=k0, signer=signer, origin="bench.example/audit") as log:
        n = 0
        while True:
            for _ in range(1000):
                log.append({"op": "sign", "key": "deploy", "uid": 1000, "pid": n, "data": filler})
                n += 1
            if os.path.getsize(path) >= size_bytes:
                break
        log.checkpoint()
    return k0, signer, n


CHILD = """
import json, resource, sys, time
from keycell import SecretKey, Ed25519PublicKey
from keycell.audit import verify
k0 = SecretKey.from_file(sys.argv[2])
pub = Ed25519PublicKey.from_pem(open(sys.argv[3], "rb").read())
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time()
r = verify(sys.argv[1], key=k0, public_key=pub)
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"valid": r.valid, "records": r.records, "bytes": r.byte_count, "seconds": dt,
                  "cpu_seconds": dc,
                  "rss_before_kib": base,
                  "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def verify_throughput(size_mb: int, payload: int) -> dict[str, float]:
    """Build a log of ``size_mb`` MiB with ``payload``-byte events, verify it in a child."""
    d = Path(tempfile.mkdtemp(prefix="keycell-bench-"))
    try:
        path = d / "big.log"
        t = time.perf_counter()
        k0, signer, n = build_log(path, size_mb * MIB, payload)
        build_s = time.perf_counter() - t
        key_file = d / "k0.key"
        k0.to_file(key_file)
        pub = d / "pub.pem"
        pub.write_bytes(signer.public_key().public_bytes_pem())
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(key_file), str(pub)],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
        r = json.loads(out.stdout)
        assert r["valid"], "the benchmark log must verify"
        return {
            "size_mb": os.path.getsize(path) / MIB,
            "records": r["records"],
            "seconds": r["seconds"],
            "cpu_s": r["cpu_seconds"],
            "mb_per_s": r["bytes"] / MIB / r["seconds"],
            "mb_per_cpu_s": r["bytes"] / MIB / r["cpu_seconds"],
            "lines_per_s": r["records"] / r["seconds"],
            "rss_before_mib": r["rss_before_kib"] / 1024,
            "rss_peak_mib": r["rss_peak_kib"] / 1024,
            "build_s": build_s,
            "appends": n,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def report(sections: tuple[str, ...] = ("handler", "verify"), size_mb: int = 1024) -> str:
    """Run the sections and return a markdown report."""
    lines = ["", "## Audit log (`benches/audit.py`)", ""]
    if "handler" in sections:
        h = handler()
        met = "yes" if h["ratio"] <= HANDLER_TARGET else "**no**"
        lines += [
            "| case | keycell | reference | reference time | ratio | target | met |",
            "|---|---|---|---|---|---|---|",
            f"| logger.info via AuditHandler (JSON line, HMAC, chain, lock, write) | "
            f"{h['audit_s'] * 1e6:.2f} µs | logging.FileHandler | {h['file_s'] * 1e6:.2f} µs | "
            f"{h['ratio']:.3f} | <= {HANDLER_TARGET} | {met} |",
            "",
            f"One checkpoint (sign, write `.checkpoint` atomically, epoch step with the state "
            f"file fsynced): {h['checkpoint_s'] * 1e3:.2f} ms. An epoch step by count costs the "
            f"same state-file write, once per `epoch_records` (default 10,000) appends.",
            "",
        ]
    if "verify" in sections:
        lines += [
            "| log | records | verify time (CPU) | MB/s (per CPU s) | lines/s | peak RSS "
            "(before verify) |",
            "|---|---|---|---|---|---|",
        ]
        for size, payload in ((size_mb, 800), (max(16, size_mb // 8), 20)):
            print(
                f"audit: building and verifying a {size} MiB log ({payload}-byte payloads)",
                file=sys.stderr,
                flush=True,
            )
            v = verify_throughput(size, payload)
            lines.append(
                f"| {v['size_mb']:.0f} MiB, ~{v['size_mb'] * MIB / v['records']:.0f} B/line | "
                f"{v['records']:,} | {v['seconds']:.2f} s ({v['cpu_s']:.2f} s) | "
                f"{v['mb_per_s']:.0f} ({v['mb_per_cpu_s']:.0f}) | "
                f"{v['lines_per_s']:,.0f} | {v['rss_peak_mib']:.1f} MiB "
                f"({v['rss_before_mib']:.1f} MiB) |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run from the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", help="handler and/or verify (default: both)")
    p.add_argument("--size-mb", type=int, default=1024, help="size of the large log (MiB)")
    args = p.parse_args(argv)
    sections = tuple(args.sections) or ("handler", "verify")
    if not set(sections) <= {"handler", "verify"}:
        p.error("sections are: handler, verify")
    print(report(sections, args.size_mb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
