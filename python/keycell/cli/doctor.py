"""``keycell doctor``: what protection this machine and process give (``keycell.doctor``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..doctor import collect, format_report

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``doctor`` command to the ``keycell`` subparsers ``sub``."""
    doctor = sub.add_parser(
        "doctor",
        help="report what protection this machine and process give",
        description=(
            "Probe mlock, MADV_DONTDUMP, MADV_WIPEONFORK and memfd_secret, report "
            "RLIMIT_MEMLOCK, core dump and swap settings, and check a real key against "
            "/proc/self/smaps. Exit status 0 when every protection holds, 1 when any is "
            "degraded."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1
