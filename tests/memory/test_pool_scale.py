"""The default policy keeps 100,000 session keys locked under an unprivileged 8 MiB
``RLIMIT_MEMLOCK``, in a few thousand mappings at most.

Page isolation costs a locked page and three mappings per key, so on its own it locks
2,048 keys under 8 MiB and reaches ``vm.max_map_count`` near 32,000. Under the default
``"auto"`` isolation the first keys are page-isolated (up to an eighth of the budget) and
the rest go to the pool (64 bytes of locked memory per 32-byte key,
``src/memory/pool.rs``).
"""

from __future__ import annotations

import warnings
from typing import Any

import keycell
import pytest
from keycell import SecretKey
from support import drop_privileges, privilege_drop_reason, run_forked

MIB = 1 << 20
COUNT = 100_000


def _maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def _hold_many(count: int, memlock: int) -> dict[str, Any]:
    drop_privileges(memlock)
    warnings.simplefilter("error")  # any ProtectionWarning fails the child
    keys = [SecretKey.generate(32) for _ in range(count)]
    protections = [k.protection for k in keys]
    out = {
        "all_locked": all(p.locked for p in protections),
        "complete": all(p.complete for p in protections),
        "page": sum(p.isolation == "page" for p in protections),
        "pool": sum(p.isolation == "pool" for p in protections),
        "maps": _maps(),
        "stats": keycell._native._pool_stats(),
        "distinct": len({k.hmac(b"x") for k in keys[:: count // 100]}),
    }
    for k in keys:
        k.destroy()
    out["stats_after"] = keycell._native._pool_stats()
    return out


def test_100k_default_keys_all_locked_unprivileged() -> None:
    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)
    out = run_forked(_hold_many, COUNT, 8 * MIB, timeout=300).unwrap()
    assert out["all_locked"], out
    assert out["complete"], out
    assert out["page"] + out["pool"] == COUNT
    assert 0 < out["page"] <= 256, "auto gives page isolation to the first keys only"
    assert out["maps"] < 3000, out
    assert out["stats"]["live_slots"] == out["pool"]
    assert out["stats"]["locked_bytes"] + out["stats"]["page_locked_bytes"] <= 8 * MIB
    assert out["stats"]["page_share"] == MIB
    assert out["distinct"] == 100
    # Emptied arenas are returned: at most one spare per shard and size class remains.
    assert out["stats_after"]["live_slots"] == 0
    assert out["stats_after"]["arenas"] <= 4
    assert out["stats_after"]["page_locked_bytes"] == 0
