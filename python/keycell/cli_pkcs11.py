"""``keycell pkcs11``: list tokens and key objects, generate keys in a token.

``list`` never shows a key value (a token refuses to read a sensitive one anyway); with
``--token`` it lists the key objects of that token, the private ones only with
``--pin-file``. ``keygen ed25519`` and ``keygen secret`` create a key inside the token,
sensitive and never extractable, and print its label, id, RFC 7512 URI and (Ed25519) its
public key. The PIN comes from a 0600 file (``--pin-file``), never from the command line.
``--module`` defaults to ``$KEYCELL_PKCS11_MODULE``.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.parse
from typing import Any

from . import pkcs11

__all__ = ["register"]

MODULE_ENV = "KEYCELL_PKCS11_MODULE"


def register(sub: Any) -> None:
    """Add the ``pkcs11`` command to the ``keycell`` subparsers ``sub``."""
    p = sub.add_parser(
        "pkcs11",
        help="keys in a PKCS#11 token (HSM): list, keygen",
        description="Keys in a PKCS#11 token: the key never leaves the token.",
    )
    cmds = p.add_subparsers(dest="pkcs11_command", metavar="ACTION")
    cmds.required = True

    ls = cmds.add_parser(
        "list",
        help="tokens, or the key objects of one token (never a key value)",
        description=(
            "Without --token: the tokens in the module's slots. With --token: its key "
            "objects (label, id, type, sensitive/extractable flags); private ones only "
            "with --pin-file."
        ),
    )
    _common(ls, pin_required=False)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_list)

    kg = cmds.add_parser(
        "keygen",
        help="generate a key in the token (sensitive, never extractable)",
        description=(
            "ed25519: CKM_EC_EDWARDS_KEY_PAIR_GEN; secret: a generic secret for HMAC "
            "(CKM_GENERIC_SECRET_KEY_GEN). Prints the label, id, URI and public key."
        ),
    )
    kg.add_argument("kind", choices=("ed25519", "secret"), help="key type")
    _common(kg, pin_required=True)
    kg.add_argument("--label", required=True, help="CKA_LABEL of the new key (must be new)")
    kg.add_argument("--length", type=int, default=32, help="secret: length in bytes (32)")
    kg.set_defaults(func=_cmd_keygen)


def _common(p: argparse.ArgumentParser, *, pin_required: bool) -> None:
    p.add_argument(
        "--module",
        default=os.environ.get(MODULE_ENV),
        required=MODULE_ENV not in os.environ,
        help=f"the PKCS#11 module (shared library); default ${MODULE_ENV}",
    )
    p.add_argument("--token", metavar="LABEL", required=pin_required, help="token label")
    p.add_argument("--slot", type=int, help="slot id (instead of or besides --token)")
    p.add_argument(
        "--pin-file",
        required=pin_required,
        metavar="FILE",
        help="file holding the user PIN (mode 0600; one trailing newline is ignored)",
    )


def _open(args: argparse.Namespace) -> pkcs11.Token:
    return pkcs11.Token.open(
        module=args.module, token_label=args.token, slot=args.slot, pin_file=args.pin_file
    )


def _uri(token: pkcs11.Token, label: str, key_type: str) -> str:
    q = urllib.parse.quote
    return (
        f"pkcs11:token={q(token.info['label'], safe='')};object={q(label, safe='')};"
        f"type={key_type}?module-path={q(str(token.module), safe='/')}"
    )


def _cmd_list(args: argparse.Namespace) -> int:
    if args.token is None and args.slot is None:
        tokens = pkcs11.list_tokens(args.module)
        if args.json:
            print(json.dumps(tokens, indent=2))
        else:
            for t in tokens:
                print(
                    f"slot {t['slot']}: {t['label']!r} ({t['manufacturer']} {t['model']}, "
                    f"serial {t['serial']})"
                )
        return 0
    with _open(args) as token:
        objects = token.objects()
    if args.json:
        print(json.dumps(objects, indent=2))
        return 0
    for o in objects:
        flags = []
        if o["sensitive"]:
            flags.append("sensitive")
        if o["never_extractable"]:
            flags.append("never extractable")
        elif o["extractable"]:
            flags.append("EXTRACTABLE")
        shown = f" [{', '.join(flags)}]" if flags else ""
        print(f"{o['class']:7} {o['key_type']:14} label={o['label']!r} id={o['id'] or '-'}{shown}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    with _open(args) as token:
        if args.kind == "ed25519":
            key: pkcs11.Pkcs11Ed25519PrivateKey | pkcs11.Pkcs11SecretKey = token.generate_ed25519(
                label=args.label
            )
            uri = _uri(token, args.label, "private")
        else:
            key = token.generate_secret(args.label, args.length)
            uri = _uri(token, args.label, "secret-key")
        print(f"label: {key.label}")
        print(f"id: {key.id.hex()}")
        print(f"uri: {uri}")
        if isinstance(key, pkcs11.Pkcs11Ed25519PrivateKey):
            print(f"public key: {key.public_key().public_bytes_raw().hex()}")
            print(key.public_key().public_bytes_pem().decode().rstrip())
    return 0
