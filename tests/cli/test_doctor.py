"""`keycell doctor`: the command, its JSON schema, and its exit status (0 when every
protection holds, as on this machine; 1 when degraded, e.g. under a lowered
RLIMIT_MEMLOCK as an unprivileged user)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keycell
import keycell.cli
import keycell.doctor
import pytest
from support import KEYCELL, drop_privileges, privilege_drop_reason, run_cli, run_forked

SCRIPT = Path(sys.executable).parent / "keycell"


def keycell_commands() -> list[Sequence[str]]:
    """``python -m keycell`` and the console script."""
    cmds: list[Sequence[str]] = [KEYCELL]
    script = SCRIPT if SCRIPT.exists() else shutil.which("keycell")
    if script:
        cmds.append([str(script)])
    return cmds


def run(*args: str, command: Sequence[str] = KEYCELL) -> subprocess.CompletedProcess[str]:
    """``keycell ARGS`` under the default policy."""
    return run_cli(*args, command=command, drop_env=("KEYCELL_ON_LOCK_FAILURE",))


def test_console_script_is_installed() -> None:
    assert SCRIPT.exists() or shutil.which("keycell"), "the keycell console script is missing"


@pytest.mark.parametrize(
    "cmd", keycell_commands(), ids=lambda c: "script" if "-m" not in c else "module"
)
def test_doctor_human_output_and_exit_status(cmd: Sequence[str]) -> None:
    r = run("doctor", command=cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.startswith(f"keycell {keycell.__version__} doctor")
    for label in (
        "RLIMIT_MEMLOCK",
        "mlock",
        "MADV_DONTDUMP",
        "MADV_WIPEONFORK",
        "memfd_secret",
        "core dumps",
        "swap",
        "test key",
        "/proc/self/smaps",
    ):
        assert label in out, label
    assert "result: all protections hold" in out
    assert r.stderr == ""


def _check_schema(report: dict[str, Any], *, root: bool) -> None:
    assert set(report) == {
        "keycell",
        "ok",
        "degraded",
        "platform",
        "policy",
        "pool",
        "keyring",
        "rlimit_memlock",
        "probes",
        "core_dumps",
        "swap",
        "key",
    }
    assert isinstance(report["ok"], bool)
    assert isinstance(report["keyring"]["available"], bool)
    assert isinstance(report["degraded"], list)
    assert all(isinstance(d, str) for d in report["degraded"])
    assert report["ok"] is (report["degraded"] == [])
    p = report["platform"]
    assert set(p) == {"system", "release", "machine", "python", "page_size", "backend"}
    assert p["page_size"] == os.sysconf("SC_PAGE_SIZE")
    assert report["policy"]["on_lock_failure"] in ("warn", "raise")
    m = report["rlimit_memlock"]
    assert set(m) == {"soft", "hard", "in_use", "in_use_with_test_key", "privileged"}
    # A locked test key's page shows in VmLck while the key is alive.
    with_key = m["in_use_with_test_key"]
    if report["key"].get("protection", {}).get("locked"):
        assert with_key >= m["in_use"] + 4096
    else:
        assert with_key is None or with_key >= m["in_use"]
    for v in (m["soft"], m["hard"]):
        assert v is None or (isinstance(v, int) and v >= 0)
    assert isinstance(m["in_use"], int)
    assert m["privileged"] is root
    assert set(report["probes"]) == {"mlock", "dontdump", "wipeonfork", "memfd_secret"}
    for probe in report["probes"].values():
        assert set(probe) == {"ok", "error"}
        assert (probe["error"] is None) is probe["ok"]
    c = report["core_dumps"]
    assert set(c) == {"rlimit_core", "core_pattern", "dumps_enabled"}
    assert set(c["rlimit_core"]) == {"soft", "hard"}
    assert set(report["swap"]) == {"devices", "enabled"}
    k = report["key"]
    assert "warnings" in k
    if "error" not in k:
        assert set(k["protection"]) == {
            "locked",
            "dontdump",
            "wipeonfork",
            "guard_pages",
            "read_only_idle",
            "isolation",
            "backend",
        }
        assert set(k["smaps"]) == {
            "found",
            "locked",
            "dontdump",
            "wipeonfork",
            "readonly",
            "guard_before",
            "guard_after",
        }


@pytest.mark.parametrize(
    "cmd", keycell_commands(), ids=lambda c: "script" if "-m" not in c else "module"
)
def test_doctor_json(cmd: Sequence[str]) -> None:
    r = run("doctor", "--json", command=cmd)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    _check_schema(report, root=os.geteuid() == 0)
    assert report["ok"] is True
    assert report["degraded"] == []
    assert report["keycell"] == keycell.__version__
    for name in ("mlock", "dontdump", "wipeonfork"):
        assert report["probes"][name] == {"ok": True, "error": None}
    assert report["key"]["protection"] == {
        "locked": True,
        "dontdump": True,
        "wipeonfork": True,
        "guard_pages": True,
        "read_only_idle": True,
        "isolation": "page",
        "backend": "guarded-mmap",
    }
    assert all(report["key"]["smaps"].values())
    assert report["key"]["warnings"] == []
    with open("/proc/sys/kernel/core_pattern") as f:
        assert report["core_dumps"]["core_pattern"] == f.read().strip()
    assert report["policy"] == {"on_lock_failure": "warn", "isolation": "auto", "backend": "mmap"}


def test_doctor_reports_the_policy() -> None:
    r = run_cli("doctor", "--json", env={"KEYCELL_ON_LOCK_FAILURE": "raise"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["policy"] == {
        "on_lock_failure": "raise",
        "isolation": "auto",
        "backend": "mmap",
    }


def test_cli_usage() -> None:
    r = run()
    assert r.returncode == 2
    assert "usage" in r.stderr
    r = run("doctor", "--help")
    assert r.returncode == 0
    assert "--json" in r.stdout
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"keycell {keycell.__version__}"
    r = run("doctor", "--bogus")
    assert r.returncode == 2


def _doctor_as_nobody(policy: str, as_json: bool) -> dict[str, Any]:
    drop_privileges(0)
    keycell.set_policy(on_lock_failure=policy)  # type: ignore[arg-type]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = keycell.cli.main(["doctor", "--json"] if as_json else ["doctor"])
    return {"rc": rc, "out": buf.getvalue(), "uid": os.geteuid()}


def _skip_unless_droppable() -> None:
    reason = privilege_drop_reason()
    if reason:
        pytest.skip(reason)


def test_doctor_degraded_under_lowered_memlock() -> None:
    _skip_unless_droppable()
    res = run_forked(_doctor_as_nobody, "warn", True).unwrap()
    assert res["uid"] != 0
    report = json.loads(res["out"])
    if report["probes"]["mlock"]["ok"]:
        pytest.skip("mlock still works with RLIMIT_MEMLOCK=0 (CAP_IPC_LOCK?)")
    assert res["rc"] == 1
    _check_schema(report, root=False)
    assert report["ok"] is False
    assert report["rlimit_memlock"]["soft"] == 0
    assert report["rlimit_memlock"]["privileged"] is False
    assert f"errno {errno.EPERM}" in report["probes"]["mlock"]["error"]
    reasons = "\n".join(report["degraded"])
    assert "mlock does not work here" in reasons
    assert "protection report says locked=False" in reasons
    assert "/proc/self/smaps does not confirm the key's locked" in reasons
    assert report["key"]["protection"]["locked"] is False
    assert report["key"]["smaps"]["locked"] is False
    assert report["key"]["protection"]["dontdump"] is True
    # The once-per-process warning is reported (this fork child never warned before).
    assert any("mlock failed" in w for w in report["key"]["warnings"])


def test_doctor_degraded_human_output() -> None:
    _skip_unless_droppable()
    res = run_forked(_doctor_as_nobody, "warn", False).unwrap()
    if "mlock           ok" in res["out"]:
        pytest.skip("mlock still works with RLIMIT_MEMLOCK=0 (CAP_IPC_LOCK?)")
    assert res["rc"] == 1
    assert "result: DEGRADED" in res["out"]
    assert "  - mlock does not work here" in res["out"]


def test_doctor_degraded_under_raise_policy_reports_the_failure() -> None:
    """Under "raise" the test key cannot be allocated: doctor explains it, exit 1, no
    traceback."""
    _skip_unless_droppable()
    res = run_forked(_doctor_as_nobody, "raise", True).unwrap()
    report = json.loads(res["out"])
    if report["probes"]["mlock"]["ok"]:
        pytest.skip("mlock still works with RLIMIT_MEMLOCK=0 (CAP_IPC_LOCK?)")
    assert res["rc"] == 1
    assert report["policy"] == {"on_lock_failure": "raise", "isolation": "auto", "backend": "mmap"}
    assert report["key"]["error"].startswith("MemoryLockError: mlock of")
    assert any(d.startswith("allocating a key failed: MemoryLockError") for d in report["degraded"])
