"""Cost per key and locked memory as the number of live keys grows: page vs pool.

    python benches/scale.py                 # 1 .. 1,000,000 live keys (pool), .. 15,000 (page)
    python benches/scale.py --max 100000    # a shorter run

For each isolation, each population size runs in a fresh child process: it creates that
many live 32-byte keys (``SecretKey.generate(32)``), then times ``generate + destroy`` of
one more key at that population (median of 7 batches), an HMAC with a key picked at
random from the population, and reads the process's locked bytes (``VmLck`` in
``/proc/self/status``) and its number of mappings (lines of ``/proc/self/maps``).

Page isolation stops where the kernel stops it: three mappings per key against
``vm.max_map_count`` (65,530 by default), so the page series stops at 15,000 keys
(plus the HMAC midstate regions of the sampled keys).

Writes ``benches/results/scale.md`` (the table) and ``benches/results/scale.svg`` (the
plot: µs per generate+destroy and locked MiB, log-log). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, os, random, statistics, sys, time, warnings
import keycell
from keycell import SecretKey

isolation, n = sys.argv[1], int(sys.argv[2])
warnings.simplefilter("error", keycell.ProtectionWarning)  # an unlocked key ends the run
keycell.set_policy(isolation=isolation, on_lock_failure="raise")

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

t0 = time.perf_counter()
keys = [SecretKey.generate(32) for _ in range(n)]
fill = (time.perf_counter() - t0) / max(n, 1)
assert all(k.protection.locked for k in keys[:: max(1, n // 1000)])

def batch(count):
    t = time.perf_counter()
    for _ in range(count):
        SecretKey.generate(32).destroy()
    return (time.perf_counter() - t) / count

batch(200)
churn = statistics.median(batch(2000 if isolation == "pool" else 300) for _ in range(7))
rng = random.Random(1)
picks = [rng.choice(keys) for _ in range(2000)]
for k in picks:
    k.hmac(b"w")  # HMAC midstates are made on a key's first HMAC: time later ones
t = time.perf_counter()
for k in picks:
    k.hmac(b"m" * 64)
hmac_cost = (time.perf_counter() - t) / len(picks)
with open("/proc/self/maps") as f:
    maps = sum(1 for _ in f)
print(json.dumps({
    "isolation": isolation, "keys": n, "fill_us": fill * 1e6, "churn_us": churn * 1e6,
    "hmac_us": hmac_cost * 1e6, "locked": status("VmLck"), "maps": maps,
    "isolations": sorted({k.protection.isolation for k in keys[:: max(1, n // 1000)]}),
}))
"""


def run(isolation: str, n: int) -> dict[str, Any] | None:
    """One population in a fresh child; None when the kernel or the lock budget stops it."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, isolation, str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {isolation:<4} {n:>9,}: stopped ({last[:100]})", file=sys.stderr)
        return None
    row: dict[str, Any] = json.loads(proc.stdout)
    return row


def sizes(limit: int) -> list[int]:
    out, n = [], 1
    while n <= limit:
        out.append(n)
        n *= 10
    return out


def svg(rows: list[dict[str, Any]]) -> str:
    """A log-log plot of µs per generate+destroy (solid) and locked MiB (dashed)."""
    w, h, left, right, top, bottom = 720, 420, 70, 70, 30, 50
    xs = [r["keys"] for r in rows]
    x_max = max(xs)
    y1 = [r["churn_us"] for r in rows]
    y2 = [max(r["locked"] / (1 << 20), 0.01) for r in rows]

    def scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
        lv, llo, lhi = math.log10(v), math.log10(lo), math.log10(hi)
        return a + (lv - llo) / (lhi - llo) * (b - a)

    y1lo, y1hi = 10 ** math.floor(math.log10(min(y1))), 10 ** math.ceil(math.log10(max(y1)))
    y2lo, y2hi = 10 ** math.floor(math.log10(min(y2))), 10 ** math.ceil(math.log10(max(y2)))

    def x(v: float) -> float:
        return scale(v, 1, x_max, left, w - right)

    def ya(v: float) -> float:
        return scale(v, y1lo, y1hi, h - bottom, top)

    def yb(v: float) -> float:
        return scale(v, y2lo, y2hi, h - bottom, top)

    colors = {"page": "#c0392b", "pool": "#2471a3"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="18" text-anchor="middle">keycell: cost per key and locked '
        "memory vs live 32-byte keys</text>",
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{w - right}" y1="{top}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
    ]
    for n in sizes(x_max):
        parts.append(
            f'<text x="{x(n):.1f}" y="{h - bottom + 16}" text-anchor="middle">{n:,}</text>'
        )
    parts.append(f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">live keys</text>')
    v = y1lo
    while v <= y1hi:
        parts.append(f'<text x="{left - 6}" y="{ya(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v *= 10
    v = y2lo
    while v <= y2hi:
        parts.append(f'<text x="{w - right + 6}" y="{yb(v) + 4:.1f}">{v:g}</text>')
        v *= 10
    parts.append(
        f'<text x="16" y="{h / 2}" transform="rotate(-90 16 {h / 2})" text-anchor="middle">'
        "µs per generate+destroy (solid)</text>"
    )
    parts.append(
        f'<text x="{w - 14}" y="{h / 2}" transform="rotate(90 {w - 14} {h / 2})" '
        'text-anchor="middle">locked MiB (dashed)</text>'
    )
    for iso, color in colors.items():
        series = [r for r in rows if r["isolation"] == iso]
        if not series:
            continue
        a = " ".join(f"{x(r['keys']):.1f},{ya(r['churn_us']):.1f}" for r in series)
        b = " ".join(
            f"{x(r['keys']):.1f},{yb(max(r['locked'] / (1 << 20), 0.01)):.1f}" for r in series
        )
        parts.append(f'<polyline points="{a}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<polyline points="{b}" fill="none" stroke="{color}" stroke-width="2" '
            'stroke-dasharray="6 4"/>'
        )
        last = series[-1]
        parts.append(
            f'<text x="{x(last["keys"]) - 4:.1f}" y="{ya(last["churn_us"]) - 8:.1f}" '
            f'fill="{color}" text-anchor="end">{iso}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| isolation | live keys | µs per generate+destroy | µs per HMAC (random key) "
        "| locked | mappings |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        locked = r["locked"]
        locked_s = f"{locked / (1 << 20):.1f} MiB" if locked >= 1 << 20 else f"{locked >> 10} KiB"
        lines.append(
            f"| {r['isolation']} | {r['keys']:,} | {r['churn_us']:.2f} | {r['hmac_us']:.2f} "
            f"| {locked_s} | {r['maps']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=1_000_000, help="largest pool population")
    p.add_argument("--page-max", type=int, default=15_000, help="largest page population")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for iso, limit in (("page", args.page_max), ("pool", args.max)):
        ns = sizes(limit)
        if limit not in ns:
            ns.append(limit)
        for n in ns:
            row = run(iso, n)
            if row is None:
                break
            rows.append(row)
            print(
                f"{iso:<4} {n:>9,} keys: {row['churn_us']:7.2f} µs/key  "
                f"hmac {row['hmac_us']:5.2f} µs  locked {row['locked'] >> 10:>8,} KiB  "
                f"maps {row['maps']:>6,}  ({', '.join(row['isolations'])})",
                flush=True,
            )
    md = (
        "# Scale: page vs pool (benches/scale.py)\n\n"
        f"{platform.platform()}, Python {platform.python_version()}; each row a fresh "
        "process holding that many live 32-byte keys.\n\n" + table(rows)
    )
    print()
    print(md)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "scale.md").write_text(md)
        (RESULTS / "scale.svg").write_text(svg(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
