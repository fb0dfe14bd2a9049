"""``keycell keygen`` and ``keycell pubkey``: a new key into a file, the public key of a
private key file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import FORMATS, KINDS, CliError, UsageError, key_class, load_private
from .otp import keygen_otp

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``keygen`` and ``pubkey`` commands to the ``keycell`` subparsers ``sub``."""
    _add_keygen(sub)
    _add_pubkey(sub)


def _cmd_keygen(args: argparse.Namespace) -> int:
    if args.kind == "otp":
        return keygen_otp(args)
    if args.print_uri:
        raise UsageError("--print-uri is for otp keys")
    cls = key_class(args.kind)
    fmt = args.format or ("raw" if args.kind == "secret" else "pem")
    if args.kind == "secret":
        key = cls.generate(32 if args.length is None else args.length)
    else:
        if args.length is not None and args.length != 32:
            raise CliError(f"{args.kind} keys are 32 bytes; --length does not apply")
        key = cls.generate()
    try:
        key.to_file(args.output, format=fmt, overwrite=args.force)
    finally:
        key.destroy()
    print(f"wrote {args.kind} key to {args.output} ({fmt}, mode 0600)", file=sys.stderr)
    return 0


def _cmd_pubkey(args: argparse.Namespace) -> int:
    _, key = load_private(args.file, args.type, args.format)
    try:
        pub = key.public_key()
        if args.pem:
            sys.stdout.write(pub.public_bytes_pem().decode("ascii"))
        else:
            print(pub.public_bytes_raw().hex())
    finally:
        key.destroy()
    return 0


def _add_keygen(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="generate a key into a new file (mode 0600)",
        description=(
            "Generate a key from the OS CSPRNG into guarded memory and write it to FILE "
            "atomically (mode 0600; never replaces an existing file unless --force). "
            "Default formats: raw for secret keys, PKCS#8 PEM for ed25519/x25519."
        ),
    )
    p.add_argument("kind", choices=(*KINDS, "otp"), help="key type (otp: a 20-byte secret)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to create")
    p.add_argument("--length", type=int, metavar="N", help="secret key length in bytes (32)")
    p.add_argument("--format", choices=FORMATS, help="file format")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--print-uri",
        action="store_true",
        help="otp: print the otpauth:// URI (it contains the secret) to stdout",
    )
    p.add_argument("--account", default="keycell", help="otp: account name in the URI")
    p.add_argument("--issuer", help="otp: issuer in the URI")
    p.set_defaults(func=_cmd_keygen, length=None)


def _add_pubkey(sub: Any) -> None:
    p = sub.add_parser(
        "pubkey",
        help="print the public key of an ed25519/x25519 private key file",
        description=(
            "Load a private key file into guarded memory and print its public key: raw hex "
            "(default) or SubjectPublicKeyInfo PEM (--pem). PKCS#8 files carry their type; "
            "raw, hex and base64 files need --type."
        ),
    )
    p.add_argument("file", metavar="FILE", help="private key file")
    p.add_argument("--type", choices=("ed25519", "x25519"), help="key type")
    p.add_argument("--format", choices=FORMATS, help="file format (default: detect)")
    p.add_argument("--pem", action="store_true", help="print PEM instead of hex")
    p.set_defaults(func=_cmd_pubkey)
