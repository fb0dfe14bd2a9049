"""``keycell keygen`` and ``keycell pubkey``: a new key into a file, the public key of a
private key file (hex, SubjectPublicKeyInfo PEM or a JWK)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import (
    CURVES,
    FORMATS,
    KINDS,
    RSA_BITS,
    CliError,
    UsageError,
    a_key,
    generate,
    load_private,
    output_format,
)
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
    fmt, why = output_format(args.output, args.format, args.kind)
    if args.kind in ("ec", "rsa") and fmt not in ("pem", "der", "openssh"):
        raise UsageError(
            f"{a_key(args.kind)} file is PKCS#8 or OpenSSH: --format pem, der or openssh "
            f"(not {fmt}{why})"
        )
    key = generate(args.kind, args.length, args.curve, args.bits)
    try:
        key.to_file(args.output, format=fmt, overwrite=args.force)
    finally:
        key.destroy()
    print(f"wrote {a_key(args.kind)} to {args.output} ({fmt}{why}; mode 0600)", file=sys.stderr)
    return 0


def _cmd_pubkey(args: argparse.Namespace) -> int:
    kind, key = load_private(args.file, args.type, args.format, args.key_passphrase_file)
    try:
        pub = key.public_key()
        if args.ssh:
            if kind == "x25519":
                raise CliError("x25519 keys have no OpenSSH form (ssh signs with its keys)")
            print(pub.to_openssh(args.comment))
        elif kind == "rsa" and not args.jwk:
            # An RSA key has no short raw form: PEM (SubjectPublicKeyInfo) is its default.
            sys.stdout.write(pub.public_bytes().decode("ascii"))
        elif args.pem:
            sys.stdout.write(pub.public_bytes_pem().decode("ascii"))
        elif args.jwk:
            # The key's own JWK (the encoder keycell.jose uses), members in RFC 7638
            # order (sorted): the text a JWK thumbprint hashes.
            print(json.dumps(pub.to_jwk(), separators=(",", ":"), sort_keys=True))
        elif kind == "ec":
            print(pub.public_bytes_x962().hex())
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
            "Default formats: the one FILE's suffix names (.pem, .der, .hex, .b64, .raw) "
            "when the key type has it, else raw for secret keys, PKCS#8 PEM for "
            "ed25519/x25519/ec/rsa (ec, rsa: PEM, DER or an unencrypted OpenSSH file; "
            "--curve P-256 or P-384, default P-256; --bits 2048, 3072 or 4096, default 3072)."
        ),
    )
    p.add_argument("kind", choices=(*KINDS, "otp"), help="key type (otp: a 20-byte secret)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to create")
    p.add_argument("--length", type=int, metavar="N", help="secret key length in bytes (32)")
    p.add_argument("--curve", choices=CURVES, help="ec: the curve (P-256)")
    p.add_argument("--bits", type=int, choices=RSA_BITS, help="rsa: the key size (3072)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="file format (default: the one a .pem/.der/.hex/.b64/.raw name says, else raw "
        "for secret keys and pem for the others)",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--print-uri",
        action="store_true",
        help="otp: print the otpauth:// URI (it contains the secret) to stdout",
    )
    p.add_argument("--account", default="keycell", help="otp: account name in the URI")
    p.add_argument("--issuer", help="otp: issuer in the URI")
    p.set_defaults(func=_cmd_keygen, length=None, curve=None, bits=None)


def _add_pubkey(sub: Any) -> None:
    p = sub.add_parser(
        "pubkey",
        help="print the public key of an ed25519/x25519/ec/rsa private key file",
        description=(
            "Load a private key file into guarded memory and print its public key: hex "
            "(default; ec: the uncompressed X9.62 point; rsa: PEM), SubjectPublicKeyInfo "
            "PEM (--pem) or a JSON Web Key (--jwk: RFC 7518 EC with crv, x, y and RSA with "
            "n, e; RFC 8037 OKP for ed25519/x25519) or an OpenSSH line (--ssh). OpenSSH "
            "private key files (ssh-keygen; encrypted ones with --key-passphrase-file or a "
            "terminal prompt), PKCS#8 (and SEC1 EC, PKCS#1 RSA) files carry their type; raw, "
            "hex and base64 files need --type."
        ),
    )
    p.add_argument("file", metavar="FILE", help="private key file")
    p.add_argument("--type", choices=("ed25519", "x25519", "ec", "rsa"), help="key type")
    p.add_argument("--format", choices=FORMATS, help="file format (default: detect)")
    p.add_argument(
        "--key-passphrase-file",
        metavar="FILE",
        help="the passphrase of an encrypted OpenSSH FILE (asked on the terminal when not "
        "given)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--pem", action="store_true", help="print PEM instead of hex")
    out.add_argument("--jwk", action="store_true", help="print a JWK (one line of JSON)")
    out.add_argument(
        "--ssh", action="store_true", help="print an OpenSSH public key (authorized_keys) line"
    )
    p.add_argument("--comment", help="--ssh: the line's comment")
    p.set_defaults(func=_cmd_pubkey)
