"""``keycell store init|put|get|list|delete|rotate``: the encrypted key store file
(``keycell.KeyStore``) under a passphrase or a master key file."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .._native import KeyStore, SecretKey, passphrase_weakness
from .common import (
    CURVES,
    FORMATS,
    KINDS,
    RSA_BITS,
    CliError,
    UnknownKeyTypeError,
    UsageError,
    generate,
    key_class,
    kind_of,
    load_private,
    master,
    master_options,
    open_store,
    output_format,
    progress,
    shown_name,
    warn,
)

__all__ = ["register"]


def _kdf_params(args: argparse.Namespace) -> dict[str, int] | None:
    params = {
        k: v
        for k, v in (
            ("memory_kib", args.kdf_memory_kib),
            ("iterations", args.kdf_iterations),
            ("lanes", args.kdf_lanes),
        )
        if v is not None
    }
    return params or None


def _cmd_store_init(args: argparse.Namespace) -> int:
    with master(args, confirm=True) as key:
        params = _kdf_params(args) if not args.master_key_file else None
        if not isinstance(key, SecretKey):
            weakness = passphrase_weakness(key)
            if weakness is not None:
                warn(weakness)
        with progress("deriving the store key from the passphrase (Argon2id)"):
            KeyStore.create(args.store, master=key, kdf_params=params).close()  # type: ignore[arg-type]
    print(f"created key store {args.store}", file=sys.stderr)
    return 0


def _cmd_store_put(args: argparse.Namespace) -> int:
    if (args.key_file is None) == (args.generate is None):
        raise UsageError("give exactly one of --key-file FILE or --generate TYPE")
    if args.curve is not None and args.generate is None:
        raise UsageError("--curve is for --generate ec (a key file says its curve)")
    if args.bits is not None and args.generate is None:
        raise UsageError("--bits is for --generate rsa")
    if args.key_passphrase_file is not None and args.key_file is None:
        raise UsageError("--key-passphrase-file is for --key-file")
    if args.key_file is not None:
        key = None
        pass_file = args.key_passphrase_file
        if args.type is None and args.format in (None, "pem", "der", "openssh"):
            # An OpenSSH or PKCS#8 file (or SEC1, PKCS#1 PEM) says its type; anything else
            # without --type is a secret key. A missing or unsafe file raises here.
            try:
                _, key = load_private(args.key_file, None, args.format, pass_file)
            except UnknownKeyTypeError:
                if args.format is not None or pass_file is not None:
                    raise
        elif args.type not in (None, "secret"):
            _, key = load_private(args.key_file, args.type, args.format, pass_file)
        if key is None:
            if pass_file is not None:
                raise UsageError("--key-passphrase-file is for encrypted OpenSSH key files")
            key = key_class("secret").from_file(
                args.key_file, format=args.format, length=args.length
            )
    else:
        key = generate(args.generate, args.length, args.curve, args.bits)
    try:
        with open_store(args) as store:
            store.put(args.name, key, overwrite=args.overwrite)
    finally:
        key.destroy()
    print(f"stored {args.name!r} in {args.store}", file=sys.stderr)
    return 0


def _cmd_store_get(args: argparse.Namespace) -> int:
    if args.output is None and not args.print_secret:
        raise UsageError(
            "say where the key goes: -o FILE writes it to a new key file (mode 0600), or "
            "--print-secret prints a secret key as hex on stdout (it will be in your "
            "terminal); give exactly one of -o FILE or --print-secret"
        )
    if args.output is not None and args.print_secret:
        raise UsageError("give exactly one of -o FILE or --print-secret, not both")
    with open_store(args) as store:
        key = store.get(args.name)
    try:
        if args.print_secret:
            if not isinstance(key, SecretKey):
                raise CliError(
                    f"{args.name!r} holds a private key, not a secret key; --print-secret "
                    "is for secret keys (write it to a file with -o FILE)"
                )
            with key.expose() as view:
                print(view.hex())
        else:
            fmt, why = output_format(args.output, args.format, kind_of(key))
            key.to_file(args.output, format=fmt, overwrite=args.force)
            print(
                f"wrote {args.name!r} to {args.output} ({fmt}{why}; mode 0600)",
                file=sys.stderr,
            )
    finally:
        key.destroy()
    return 0


#: The store's kinds as the CLI names them: (--type, curve).
_STORE_KINDS = {"ec-p256": ("ec", "P-256"), "ec-p384": ("ec", "P-384")}


def _cmd_store_list(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        entries = store.kinds()
    if args.json:
        out = []
        for name, kind in entries:
            key_type, curve = _STORE_KINDS.get(kind, (kind, None))
            entry = {"name": name, "type": key_type}
            if curve is not None:
                entry["curve"] = curve
            out.append(entry)
        print(json.dumps(out, indent=2))
        return 0
    for name, kind in entries:
        key_type, curve = _STORE_KINDS.get(kind, (kind, None))
        print(f"{shown_name(name)}\t{key_type}" + (f" {curve}" if curve else ""))
    return 0


def _cmd_store_delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        store.delete(args.name)
    print(f"deleted {args.name!r} from {args.store}", file=sys.stderr)
    return 0


def _cmd_store_rotate(args: argparse.Namespace) -> int:
    with open_store(args) as store, master(args, new=True, confirm=True) as new_master:
        params = _kdf_params(args) if not args.new_master_key_file else None
        if not isinstance(new_master, SecretKey):
            weakness = passphrase_weakness(new_master)
            if weakness is not None:
                warn(f"the new master: {weakness}")
        with progress("re-sealing every entry under the new master (Argon2id)"):
            store.rotate_master(new_master, kdf_params=params)
    print(f"re-sealed every entry of {args.store} under the new master", file=sys.stderr)
    return 0


def _kdf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kdf-memory-kib",
        type=int,
        metavar="KIB",
        help="Argon2id memory in KiB (default 65536; minimum 1024; low-memory hosts only)",
    )
    p.add_argument("--kdf-iterations", type=int, metavar="N", help="Argon2id passes (3)")
    p.add_argument("--kdf-lanes", type=int, metavar="N", help="Argon2id lanes (1)")


def register(sub: Any) -> None:
    """Add the ``store`` command and its actions to the ``keycell`` subparsers ``sub``."""
    store = sub.add_parser(
        "store",
        help="manage an encrypted key store",
        description=(
            "An encrypted, crash-safe key store file. The master is a passphrase (asked on "
            "the terminal, or --passphrase-file) or a master key file (--master-key-file)."
        ),
    )
    ssub = store.add_subparsers(dest="store_command", metavar="ACTION")
    ssub.required = True

    def action(name: str, help: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = ssub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.add_argument("store", metavar="STORE", help="key store file")
        master_options(p)
        p.set_defaults(func=func)
        return p

    p = action("init", "create a new, empty key store", _cmd_store_init)
    _kdf_options(p)

    p = action("put", "add a key to the store", _cmd_store_put)
    p.add_argument("name", metavar="NAME", help="entry name")
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help="read the key from FILE (an OpenSSH private key file such as ~/.ssh/id_ed25519, "
        "~/.ssh/id_ecdsa or ~/.ssh/id_rsa, PKCS#8, SEC1 or PKCS#1 PEM or DER, or a secret key "
        "file)",
    )
    p.add_argument(
        "--key-passphrase-file",
        metavar="FILE",
        help="the passphrase of an encrypted OpenSSH --key-file (mode 0600; one trailing "
        "newline dropped; asked on the terminal when not given); --passphrase-file stays the "
        "store's",
    )
    p.add_argument(
        "--type",
        choices=KINDS,
        help="type of the key in --key-file (default: the type an OpenSSH, PKCS#8, SEC1 or "
        "PKCS#1 file names, else secret)",
    )
    p.add_argument("--format", choices=FORMATS, help="format of --key-file (default: detect)")
    p.add_argument("--generate", choices=KINDS, metavar="TYPE", help="generate a new key")
    p.add_argument("--length", type=int, metavar="N", help="secret key length")
    p.add_argument("--curve", choices=CURVES, help="--generate ec: the curve (P-256)")
    p.add_argument("--bits", type=int, choices=RSA_BITS, help="--generate rsa: key size")
    p.add_argument("--overwrite", action="store_true", help="replace an existing entry")

    p = action("get", "write a key from the store to a file", _cmd_store_get)
    p.add_argument("name", metavar="NAME", help="entry name")
    p.add_argument("-o", "--output", metavar="FILE", help="key file to create (mode 0600)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="key file format (default: the one a .pem/.der/.hex/.b64/.raw name says, else "
        "raw for secret keys and pem for the others)",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--print-secret",
        action="store_true",
        help="print the secret key as hex on stdout instead (it will be in your terminal)",
    )

    p = action("list", "list the entries: name and key type, one per line", _cmd_store_list)
    p.add_argument(
        "--json",
        action="store_true",
        help='print a JSON list of {"name", "type"} objects ("curve" for ec keys)',
    )

    p = action("delete", "remove an entry", _cmd_store_delete)
    p.add_argument("name", metavar="NAME", help="entry name")

    p = action("rotate", "re-seal every entry under a new master", _cmd_store_rotate)
    master_options(p, new=True)
    _kdf_options(p)
