"""Running out of memory mappings names the limit.

Under page isolation every live key is its own guarded mapping (data pages between two
guard pages, `src/memory/guarded.rs`), so a process holding some 30,000 keys reaches
`vm.max_map_count` (65,530 by default) and `mmap`/`mprotect` fail with ENOMEM. The error
must say so, with the process's mapping count and the limit, and how to fix it, instead of
a bare "Cannot allocate memory". Runs in a fresh interpreter (with `KEYCELL_ISOLATION=page`;
the default policy pools keys long before) that allocates keys until the allocation fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_python

MAX_MAP_COUNT = int(Path("/proc/sys/vm/max_map_count").read_text())

_CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")  # lock warnings are not what this test is about
from keycell import KeycellError, SecretKey
limit = int(sys.argv[1])
keys = [None] * limit  # no list growth (and no new heap mapping) near the limit
result = {"error": None}
try:
    for i in range(limit):
        keys[i] = SecretKey.generate(32)
except KeycellError as e:
    result = {
        "error": type(e).__name__,
        "is_keycell_error": isinstance(e, KeycellError),
        "message": str(e),
        "errno": getattr(e, "errno", None),
        "allocated": i,
    }
finally:
    keys = None  # frees every key: the interpreter has mappings to print with
print(json.dumps(result))
"""


@pytest.mark.skipif(
    MAX_MAP_COUNT > 70_000, reason="vm.max_map_count is raised: too many keys to exhaust"
)
def test_running_out_of_mappings_names_vm_max_map_count() -> None:
    res = run_python(
        _CHILD, str(MAX_MAP_COUNT), env={"KEYCELL_ISOLATION": "page"}, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is not None, "the mapping limit was never reached"
    assert out["is_keycell_error"] is True
    assert out["error"] == "ProtectionError"
    assert out["errno"] == 12  # ENOMEM
    assert out["allocated"] > 1000
    message = out["message"]
    assert "Cannot allocate memory" in message
    assert f"vm.max_map_count is {MAX_MAP_COUNT}" in message, message
    assert "memory mappings" in message
    assert "sysctl" in message
    assert "fewer keys" in message
