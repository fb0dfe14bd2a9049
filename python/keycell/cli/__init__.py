"""The ``keycell`` command line.

Every command has ``--help``. Exit codes: 0 success, 1 failure (an error, a refused file,
a wrong passphrase, or for ``doctor`` a degraded protection), 2 usage error, 130
interrupted. Errors go to stderr; secrets never go to stdout unless a flag asks for it
explicitly (``store get --print-secret``).

Commands, one module each: ``doctor`` (``doctor.py``), ``keygen``, ``pubkey``
(``keys.py``), ``store init|put|get|list|delete|rotate`` (``store.py``), ``keyring
put|get|list`` (the Linux kernel keyring, ``keyring.py``), ``otp code|verify``
(``otp.py``), ``audit verify|prove`` (``keycell.audit`` logs, ``audit.py``), ``agent
serve`` and ``policy sign|verify`` (the key agent, ``agent.py``), ``pkcs11 list|keygen``
(``pkcs11.py``). What they share (errors, key types, the store master) is in
``common.py``; this module builds the parser and runs a command.
Passphrases are read from the terminal with echo off (straight into a ``bytearray``, never
a ``str``, compared in place and wiped), or from a ``--passphrase-file`` (read by the Rust
core straight into guarded memory, with the key file checks; one trailing newline is
dropped); a store can also be protected by a master key file (``--master-key-file``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..exceptions import KeycellError
from . import agent, audit, doctor, keyring, keys, otp, pkcs11, store
from .common import CliError, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``keycell`` command."""
    parser = argparse.ArgumentParser(
        prog="keycell",
        description="Secret keys outside the Python heap: guarded, locked, wiped memory.",
    )
    parser.add_argument("--version", action="version", version=f"keycell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    doctor.register(sub)
    keys.register(sub)
    store.register(sub)
    keyring.register(sub)
    otp.register(sub)
    agent.register(sub)
    pkcs11.register(sub)
    audit.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"keycell: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, KeycellError | CliError | OSError | ValueError | TypeError):
            print(f"keycell: error: {exc}", file=sys.stderr)
            return 1
        raise
    return rc
