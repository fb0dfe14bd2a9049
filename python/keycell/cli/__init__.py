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


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the command ``args`` ran (``keycell store get``, say), so that a
    usage error shows that command's usage, not the top level's."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if not subs or chosen not in subs[0].choices:
            return parser
        parser = subs[0].choices[chosen]


#: Library messages name Python keywords; on the command line they name the flag, the
#: first of these that the running command has.
_KEYWORD_FLAGS = {
    "pass overwrite=True": ("--overwrite", "--force"),
    "pass allow_short_secret=True": ("--short-secret",),
}


def _in_flags(message: str, command: argparse.ArgumentParser) -> str:
    """``message`` with each Python keyword hint in :data:`_KEYWORD_FLAGS` replaced by
    the running command's flag ("pass overwrite=True" -> "use --force")."""
    options = {o for a in command._actions for o in a.option_strings}
    for keyword, flags in _KEYWORD_FLAGS.items():
        flag = next((f for f in flags if f in options), None)
        if flag is not None:
            message = message.replace(keyword, f"use {flag}")
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = _command_parser(parser, args)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        command.print_usage(sys.stderr)
        print(f"{command.prog}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, KeycellError | CliError | OSError | ValueError | TypeError):
            print(f"keycell: error: {_in_flags(str(exc), command)}", file=sys.stderr)
            return 1
        raise
    return rc
