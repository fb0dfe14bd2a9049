"""``keycell pkcs11``: list tokens and key objects, generate keys in a token.

``list`` never shows a key value (a token refuses to read a sensitive one anyway); with
``--token`` it lists the key objects of that token, the private ones only with
``--pin-file``. ``keygen ed25519``, ``keygen ec``, ``keygen rsa`` and ``keygen secret``
create a key inside the token, sensitive and never extractable, and print its label, id,
RFC 7512 URI and (Ed25519, EC, RSA) its public key. The PIN comes from a 0600 file
(``--pin-file``), never from the command line. ``--module`` defaults to
``$KEYCELL_PKCS11_MODULE``.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.parse
from typing import Any

from .. import pkcs11
from .common import CURVES, RSA_BITS, UsageError

__all__ = ["MODULE_ENV", "open_token", "register", "token_options"]

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
    token_options(ls, pin_required=False)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_cmd_list)

    kg = cmds.add_parser(
        "keygen",
        help="generate a key in the token (sensitive, never extractable)",
        description=(
            "ed25519: CKM_EC_EDWARDS_KEY_PAIR_GEN; ec: CKM_EC_KEY_PAIR_GEN on --curve "
            "(P-256 or P-384); rsa: CKM_RSA_PKCS_KEY_PAIR_GEN of --bits (3072); secret: a "
            "generic secret for HMAC "
            "(CKM_GENERIC_SECRET_KEY_GEN). Prints the label, id, URI and public key."
        ),
    )
    kg.add_argument("kind", choices=("ed25519", "ec", "rsa", "secret"), help="key type")
    token_options(kg, pin_required=True)
    kg.add_argument("--label", required=True, help="CKA_LABEL of the new key (must be new)")
    kg.add_argument("--length", type=int, default=32, help="secret: length in bytes (32)")
    kg.add_argument("--curve", choices=CURVES, help="ec: the curve (P-256)")
    kg.add_argument("--bits", type=int, choices=RSA_BITS, help="rsa: the key size (3072)")
    kg.set_defaults(func=_cmd_keygen)


def token_options(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    pin_required: bool,
    prefix: str = "",
    optional: bool = False,
) -> None:
    """Add the token options ``--{prefix}module``, ``--{prefix}token``, ``--{prefix}slot``
    and ``--{prefix}pin-file`` to ``p`` (``keycell pkcs11`` uses no prefix, ``keycell agent
    serve`` the prefix ``pkcs11-``). With ``optional`` nothing is required and the module
    has no default here: :func:`open_token` takes ``$KEYCELL_PKCS11_MODULE`` then."""
    module_default = None if optional else os.environ.get(MODULE_ENV)
    p.add_argument(
        f"--{prefix}module",
        metavar="PATH",
        default=module_default,
        required=not optional and MODULE_ENV not in os.environ,
        help=f"the PKCS#11 module (shared library); default ${MODULE_ENV}",
    )
    p.add_argument(
        f"--{prefix}token",
        metavar="LABEL",
        required=pin_required and not optional,
        help="token label",
    )
    p.add_argument(
        f"--{prefix}slot",
        type=int,
        metavar="ID",
        help=f"slot id (instead of or besides --{prefix}token)",
    )
    p.add_argument(
        f"--{prefix}pin-file",
        required=pin_required and not optional,
        metavar="FILE",
        help="file holding the user PIN (mode 0600; one trailing newline is ignored)",
    )


def open_token(args: argparse.Namespace, prefix: str = "") -> pkcs11.Token:
    """Open the token the options of :func:`token_options` (with ``prefix``) name; the
    PIN file is read straight into guarded memory by ``pkcs11.Token.open``."""
    dest = prefix.replace("-", "_")
    module = getattr(args, dest + "module") or os.environ.get(MODULE_ENV)
    if not module:
        raise ValueError(f"name the PKCS#11 module: --{prefix}module PATH or ${MODULE_ENV}")
    return pkcs11.Token.open(
        module=module,
        token_label=getattr(args, dest + "token"),
        slot=getattr(args, dest + "slot"),
        pin_file=getattr(args, dest + "pin_file"),
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
    with open_token(args) as token:
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
    if args.curve is not None and args.kind != "ec":
        raise UsageError("--curve is for ec keys")
    if args.bits is not None and args.kind != "rsa":
        raise UsageError("--bits is for rsa keys")
    key: (
        pkcs11.Pkcs11Ed25519PrivateKey
        | pkcs11.Pkcs11ECPrivateKey
        | pkcs11.Pkcs11RSAPrivateKey
        | pkcs11.Pkcs11SecretKey
    )
    with open_token(args) as token:
        if args.kind == "ed25519":
            key = token.generate_ed25519(label=args.label)
            uri = _uri(token, args.label, "private")
        elif args.kind == "ec":
            key = token.generate_ec(label=args.label, curve=args.curve or "P-256")
            uri = _uri(token, args.label, "private")
        elif args.kind == "rsa":
            key = token.generate_rsa(label=args.label, bits=args.bits or 3072)
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
        elif isinstance(key, pkcs11.Pkcs11ECPrivateKey):
            print(f"curve: {key.curve}")
            print(f"public key: {key.public_key().public_bytes_x962().hex()}")
            print(key.public_key().public_bytes_pem().decode().rstrip())
        elif isinstance(key, pkcs11.Pkcs11RSAPrivateKey):
            print(f"bits: {key.key_size}")
            print(key.public_key().public_bytes().decode().rstrip())
    return 0
