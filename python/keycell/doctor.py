"""``keycell doctor``: what protection this machine and process actually give.

Every fact is probed or read from the kernel, never guessed: the protections are tried on
a scratch page, and a real key is allocated and checked against ``/proc/self/smaps``.
"""

from __future__ import annotations

import os
import platform
import resource
import warnings
from typing import Any

from . import _native, _smaps, keyring
from ._isolation_scope import IsolationScope
from ._native import SecretKey

__all__ = ["collect", "format_report"]


def _limit(v: int) -> int | None:
    return None if v == resource.RLIM_INFINITY else v


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _status_kb(name: str) -> int | None:
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


def _swap() -> dict[str, Any]:
    devices = []
    text = _read("/proc/swaps") or ""
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            devices.append({"name": parts[0], "size_kb": int(parts[2]), "used_kb": int(parts[3])})
    return {"devices": devices, "enabled": bool(devices)}


def _probe_entry(errno: int | None) -> dict[str, Any]:
    if errno is None:
        return {"ok": True, "error": None}
    return {"ok": False, "error": f"{os.strerror(errno)} (errno {errno})"}


def collect() -> dict[str, Any]:
    """Probe the machine and this process; return the report as a JSON-ready dict."""
    from . import __version__

    degraded: list[str] = []
    probes_raw = _native._probe()
    probes = {
        name: _probe_entry(probes_raw[name])
        for name in ("mlock", "dontdump", "wipeonfork", "memfd_secret")
    }
    for name, label in (
        ("mlock", "mlock"),
        ("dontdump", "MADV_DONTDUMP"),
        ("wipeonfork", "MADV_WIPEONFORK"),
    ):
        if not probes[name]["ok"]:
            degraded.append(f"{label} does not work here: {probes[name]['error']}")

    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    memlock = {
        "soft": _limit(soft),
        "hard": _limit(hard),
        "in_use": (_status_kb("VmLck") or 0) * 1024,
        "in_use_with_test_key": None,
        "privileged": os.geteuid() == 0,
    }
    csoft, chard = resource.getrlimit(resource.RLIMIT_CORE)
    core = {
        "rlimit_core": {"soft": _limit(csoft), "hard": _limit(chard)},
        "core_pattern": _read("/proc/sys/kernel/core_pattern"),
        "dumps_enabled": csoft != 0,
    }

    key_report: dict[str, Any]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # The test key is page-isolated, whatever the policy: smaps can confirm every
            # protection of a mapping of its own. Pooled keys are reported under "pool".
            with IsolationScope("page"), SecretKey.generate(32) as key:
                prot = key.protection.as_dict()
                check = _smaps.check_region(_native._key_address(key))
                memlock["in_use_with_test_key"] = (_status_kb("VmLck") or 0) * 1024
        except Exception as exc:  # reported, not raised: doctor explains failures
            key_report = {"error": f"{type(exc).__name__}: {exc}"}
            degraded.append(f"allocating a key failed: {type(exc).__name__}: {exc}")
        else:
            smaps = {
                "found": check.found,
                "locked": check.locked,
                "dontdump": check.dontdump,
                "wipeonfork": check.wipeonfork,
                "readonly": check.readonly,
                "guard_before": check.guard_before,
                "guard_after": check.guard_after,
            }
            key_report = {"protection": prot, "smaps": smaps}
            for name in ("locked", "dontdump", "wipeonfork", "guard_pages"):
                if not prot[name]:
                    degraded.append(f"a new key's protection report says {name}=False")
            for name, ok in smaps.items():
                if not ok:
                    degraded.append(f"/proc/self/smaps does not confirm the key's {name}")
            for name in ("locked", "dontdump", "wipeonfork"):
                if prot[name] != smaps[name]:
                    degraded.append(f"protection report and /proc/self/smaps disagree on {name}")
    key_report["warnings"] = [str(w.message) for w in caught]

    return {
        "keycell": __version__,
        "ok": not degraded,
        "degraded": degraded,
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "page_size": probes_raw["page_size"],
            "backend": probes_raw["backend"],
        },
        "policy": dict(_native.get_policy()),
        "pool": dict(_native._pool_stats()),
        # Not a key protection: a blocked keyring only limits keycell.keyring.
        "keyring": keyring.probe(),
        "rlimit_memlock": memlock,
        "probes": probes,
        "core_dumps": core,
        "swap": _swap(),
        "key": key_report,
    }


def _bytes(v: int | None) -> str:
    if v is None:
        return "unlimited"
    if v >= 1 << 20:
        return f"{v / (1 << 20):.1f} MiB"
    if v >= 1 << 10:
        return f"{v / (1 << 10):.1f} KiB"
    return f"{v} B"


def format_report(r: dict[str, Any]) -> str:
    """Render a report from :func:`collect` for people."""
    ok = "ok"
    lines = [f"keycell {r['keycell']} doctor"]
    p = r["platform"]
    lines.append(
        f"  platform        {p['system']} {p['release']} {p['machine']}, "
        f"Python {p['python']}, page {p['page_size']} B, backend {p['backend']}"
    )
    lines.append(
        f"  policy          on_lock_failure={r['policy']['on_lock_failure']}, "
        f"isolation={r['policy']['isolation']}, backend={r['policy']['backend']}"
    )
    pool = r["pool"]
    lines.append(
        f"  key pool        {pool['arenas']} arenas, {pool['live_slots']} live keys, "
        f"{_bytes(pool['locked_bytes'])} locked; page-isolated keys "
        f"{_bytes(pool['page_locked_bytes'])} of a {_bytes(pool['page_share'])} share"
    )
    m = r["rlimit_memlock"]
    root = " (root: limit not enforced)" if m["privileged"] else ""
    lines.append(
        f"  RLIMIT_MEMLOCK  soft {_bytes(m['soft'])}, hard {_bytes(m['hard'])}, "
        f"in use {_bytes(m['in_use'])}"
        + (
            ""
            if m["in_use_with_test_key"] is None
            else f" ({_bytes(m['in_use_with_test_key'])} with the test key)"
        )
        + root
    )
    for name, label in (
        ("mlock", "mlock"),
        ("dontdump", "MADV_DONTDUMP"),
        ("wipeonfork", "MADV_WIPEONFORK"),
        ("memfd_secret", "memfd_secret"),
    ):
        e = r["probes"][name]
        status = ok if e["ok"] else f"FAILED: {e['error']}"
        if name == "memfd_secret" and not e["ok"]:
            status = f"unavailable ({e['error']}); set_policy(backend='memfd_secret') refused"
        lines.append(f"  {label:<15} {status}")
    k = r["keyring"]
    status = ok if k["available"] else f"unavailable: {k['message']}"
    lines.append(f"  kernel keyring  {status}")
    c = r["core_dumps"]
    lines.append(
        f"  core dumps      RLIMIT_CORE soft {_bytes(c['rlimit_core']['soft'])}, "
        f"pattern {c['core_pattern']!r} (keys are excluded by MADV_DONTDUMP)"
    )
    s = r["swap"]
    if s["enabled"]:
        total = sum(d["size_kb"] for d in s["devices"]) * 1024
        lines.append(f"  swap            {_bytes(total)} enabled (locked keys are never swapped)")
    else:
        lines.append("  swap            none")
    k = r["key"]
    if "error" in k:
        lines.append(f"  test key        FAILED: {k['error']}")
    else:
        pr = k["protection"]
        sm = k["smaps"]
        lines.append(
            "  test key        "
            + ", ".join(f"{n}={pr[n]}" for n in ("locked", "dontdump", "wipeonfork", "guard_pages"))
        )
        lines.append("  /proc/self/smaps " + ", ".join(f"{n}={v}" for n, v in sm.items()))
    for w in k.get("warnings", []):
        lines.append(f"  warning         {w}")
    if r["ok"]:
        lines.append("result: all protections hold")
    else:
        lines.append("result: DEGRADED")
        for reason in r["degraded"]:
            lines.append(f"  - {reason}")
    return "\n".join(lines)
