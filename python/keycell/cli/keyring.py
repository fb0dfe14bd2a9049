"""``keycell keyring put|get|list``: keys in the Linux kernel keyring (``keycell.keyring``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import keycell

from .common import FORMATS, KINDS, CliError, key_class, output_format, shown_name

__all__ = ["register"]


def _keyring_name(value: str) -> str | int:
    """A ``--keyring`` value: a serial when it is a number, else a keyring name."""
    return int(value) if value.isdigit() else value


#: Keyrings that die with the command that stores into them.
_GONE_WITH_THE_COMMAND = ("thread", "process")


def _check_outlives_the_command(keyring: str | int) -> None:
    """Refuse a ``put`` whose key would die with this command: a thread or process
    keyring, or "the session keyring" of a shell that has none of its own (cron, CI, a
    container's shell), where the kernel would make a new one for this process alone."""
    if keyring in _GONE_WITH_THE_COMMAND:
        raise CliError(
            f"a key put in the {keyring} keyring dies when this command exits; use "
            "--keyring session (a login or service session), user or user-session"
        )
    if keyring == "session" and keycell._native._keyring_session_is_user_session():
        raise CliError(
            "this shell has no session keyring of its own (cron, CI and container shells "
            "often have none), so the key would go to a new session keyring that dies "
            "when this command exits. Run the command inside a session (keyctl session - "
            "sh -c '...', or a systemd service, which gets one) or choose a keyring that "
            "lasts: --keyring user-session or --keyring user (while this user has "
            "processes)"
        )


def _cmd_keyring_put(args: argparse.Namespace) -> int:
    _check_outlives_the_command(args.keyring)
    cls = key_class(args.type)
    if args.type == "secret":
        key = cls.from_file(args.key_file, format=args.format, length=args.length)
    else:
        key = cls.from_file(args.key_file, format=args.format)
    try:
        serial = keycell.keyring.store(
            key, args.name, keyring=args.keyring, timeout=args.timeout
        )
    finally:
        key.destroy()
    print(serial)
    print(
        f"stored {args.name!r} in the {args.keyring} keyring as key {serial} "
        "(possessor-only, 3f000000)",
        file=sys.stderr,
    )
    return 0


def _cmd_keyring_get(args: argparse.Namespace) -> int:
    cls = key_class(args.type)
    name = int(args.name) if args.name.isdigit() else args.name
    key = cls.from_keyring(name, keyring=args.keyring, consume=args.consume)
    try:
        # The keyring holds the bare key, not the file it came from: the format is
        # --format's, the one the file name says, or the default, and is reported.
        fmt, why = output_format(args.output, args.format, args.type)
        key.to_file(args.output, format=fmt, overwrite=args.force)
    finally:
        key.destroy()
    gone = "; the kernel key was invalidated" if args.consume else ""
    print(
        f"wrote {args.name!r} to {args.output} ({fmt}{why}; mode 0600){gone}", file=sys.stderr
    )
    return 0


def _cmd_keyring_list(args: argparse.Namespace) -> int:
    for d in keycell.keyring.list_keys(args.keyring):
        print(f"{d['serial']}\t{d['perm']:08x}\t{d['uid']}\t{shown_name(d['description'])}")
    return 0


def register(sub: Any) -> None:
    """Add the ``keyring`` command and its actions to the ``keycell`` subparsers ``sub``."""
    kr = sub.add_parser(
        "keyring",
        help="move keys in and out of the Linux kernel keyring",
        description=(
            "Keys in the Linux kernel keyring, as type user with possessor-only permissions "
            "(3f000000): only processes that reach the key through their own session, "
            "process or thread keyring can read it. The bytes go between the kernel and "
            "keycell's guarded memory directly."
        ),
    )
    ksub = kr.add_subparsers(dest="keyring_command", metavar="ACTION")
    ksub.required = True

    def action(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = ksub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.add_argument(
            "--keyring",
            type=_keyring_name,
            default="session",
            metavar="RING",
            help="session (default), process, thread, user, user-session, or a keyring serial",
        )
        p.set_defaults(func=func)
        return p

    p = action("put", "store a key from a key file; prints its serial", _cmd_keyring_put)
    p.add_argument("name", metavar="NAME", help="key description")
    p.add_argument("--key-file", metavar="FILE", required=True, help="read the key from FILE")
    p.add_argument("--type", choices=KINDS, default="secret", help="key type (secret)")
    p.add_argument("--format", choices=FORMATS, help="format of --key-file (default: detect)")
    p.add_argument("--length", type=int, metavar="N", help="secret key length")
    p.add_argument("--timeout", type=int, metavar="S", help="expire the key after S seconds")

    p = action("get", "write a key from the keyring to a file", _cmd_keyring_get)
    p.add_argument("name", metavar="NAME", help="key description, or serial")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="key file to create")
    p.add_argument("--type", choices=KINDS, default="secret", help="key type (secret)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="key file format (default: the one a .pem/.der/.hex/.b64/.raw name says, else "
        "raw for secret keys and pem for the others)",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--consume", action="store_true", help="invalidate the kernel key after reading it"
    )

    action("list", "list the user keys in the keyring (serial, perm, uid, description)",
           _cmd_keyring_list)
