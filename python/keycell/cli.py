"""The ``keycell`` command line.

Every command has ``--help``. Exit codes: 0 success, 1 a check failed or protection is
degraded, 2 usage error. Errors go to stderr; secrets never go to stdout unless a flag asks
for it explicitly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import collect, format_report

    report = collect()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``keycell`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="keycell",
        description="Secret keys outside the Python heap: guarded, locked, wiped memory.",
    )
    parser.add_argument("--version", action="version", version=f"keycell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .exceptions import KeycellError

        if isinstance(exc, KeycellError | OSError | ValueError | TypeError):
            print(f"keycell: error: {exc}", file=sys.stderr)
            return 1
        raise
    return rc
