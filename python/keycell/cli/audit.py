"""``keycell audit``: verify an audit log, prove a line's inclusion.

``keycell audit verify PATH --key-file K0 --public-key PUB.pem [--checkpoint FILE]
[--json]`` (``--no-checkpoint`` instead of ``--public-key``: no checkpoint is checked, so
no signer's key is needed) exits 0 when the log verifies, 1 when it does not (tampered,
a torn tail, or the checkpoint missing: with ``--public-key`` and without
``--no-checkpoint`` the checkpoint, ``PATH.checkpoint`` unless ``--checkpoint`` names
another, must exist, since a cut tail is deleted with it), 2 on a usage error (bad
arguments, unreadable key or log files).
``keycell audit prove PATH LINE`` prints an RFC 6962 inclusion proof of a line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Literal

from .. import audit
from .._native import Ed25519PublicKey, SecretKey
from ..exceptions import KeycellError

__all__ = ["register"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def register(sub: Any) -> None:
    """Add the ``audit`` command and its actions to the ``keycell`` parser's subparsers."""
    p = sub.add_parser(
        "audit",
        help="verify a keycell audit log, prove a line's inclusion",
        description="Verify a keycell audit log (keycell.audit) or prove a line's inclusion.",
    )
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    v = asub.add_parser(
        "verify",
        help="verify a log: MACs, chain, sequence, signed checkpoint",
        description=(
            "Stream the log in constant memory and check every MAC under its epoch's key "
            "(derived from K0), the hash chain, the sequence and the Merkle root against a "
            "signed checkpoint. Exit 0 valid, 1 tampered or torn, 2 usage error."
        ),
    )
    v.add_argument("path", metavar="PATH", help="the log")
    v.add_argument("--key-file", required=True, metavar="K0", help="the verification key K0")
    v.add_argument(
        "--public-key",
        metavar="PUB.pem",
        help="the checkpoint signer's public key (PEM; not needed with --no-checkpoint)",
    )
    cp = v.add_mutually_exclusive_group()
    cp.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a signed checkpoint (default: PATH.checkpoint, which must exist)",
    )
    cp.add_argument("--no-checkpoint", action="store_true", help="check no checkpoint")
    cp.add_argument(
        "--previous",
        metavar="ARCHIVE",
        help="PATH was rotated from ARCHIVE: verify both (each against its .checkpoint) and "
        "the link between them",
    )
    cp.add_argument(
        "--rotated",
        action="store_true",
        help="PATH is a file after a rotation (it begins with a rotate record): check it from "
        "that record on (against PATH.checkpoint, which must exist); without this or "
        "--previous, a log must begin with its genesis",
    )
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_cmd_verify)
    pr = asub.add_parser(
        "prove",
        help="print an inclusion proof of a line",
        description=(
            "Print an RFC 6962 inclusion proof of line LINE (1-based) in the first SIZE lines "
            "of the log (default: all), to check against a signed checkpoint's root."
        ),
    )
    pr.add_argument("path", metavar="PATH", help="the log")
    pr.add_argument("line", metavar="LINE", type=int, help="1-based line number")
    pr.add_argument("--size", type=int, help="tree size (default: all complete lines)")
    pr.add_argument("--json", action="store_true", help="machine-readable output")
    pr.set_defaults(func=_cmd_prove)


def _usage(msg: str) -> int:
    print(f"keycell audit: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_verify(args: argparse.Namespace) -> int:
    if args.public_key is None and not args.no_checkpoint:
        return _usage(
            "--public-key PUB.pem is needed to check the log's signed checkpoint "
            "(or pass --no-checkpoint to check the log without one)"
        )
    try:
        key = SecretKey.from_file(args.key_file)
    except (KeycellError, OSError, ValueError) as exc:
        return _usage(f"cannot read the key file: {exc}")
    public = None
    if args.public_key is not None:
        try:
            with open(args.public_key, "rb") as f:
                public = Ed25519PublicKey.from_pem(f.read())
        except (KeycellError, OSError, ValueError) as exc:
            return _usage(f"cannot read the public key: {exc}")
    checkpoint: str | Literal[False] | None = False if args.no_checkpoint else args.checkpoint
    if checkpoint is None and not args.previous:
        # The library checks PATH.checkpoint only when it exists; here the public key says
        # a checkpoint is to be checked, and one deleted along with a cut tail must not
        # turn into "valid, no checkpoint".
        checkpoint = args.path + ".checkpoint"
        # (A missing log itself stays the usage error the verification below reports.)
        if os.path.exists(args.path) and not os.path.exists(checkpoint):
            print(
                f"keycell audit: error: the checkpoint {checkpoint} is missing (a truncated "
                "log loses its tail and checkpoint together); name it with --checkpoint "
                "FILE, or pass --no-checkpoint to check the log without one",
                file=sys.stderr,
            )
            return EXIT_INVALID
    try:
        with key:
            # --previous excludes --no-checkpoint: it always has the public key.
            if args.previous and public is not None:
                result = audit.verify_rotated(args.previous, args.path, key=key, public_key=public)
            else:
                result = audit.verify(
                    args.path,
                    key=key,
                    public_key=public,
                    checkpoint=checkpoint,
                    rotated_ok=args.rotated,
                )
    except (KeycellError, OSError, ValueError) as exc:
        return _usage(str(exc))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif result.valid:
        cp = (
            f", checkpoint of {result.checkpoint_size} lines verified"
            if result.checkpoint_size is not None
            else ", no checkpoint"
        )
        since = (
            f"; checked from seq {result.unchecked_before} (a file after a rotation: the "
            "history before it was not checked)"
            if result.unchecked_before is not None
            else ""
        )
        print(
            f"valid: {result.records} records (seq {result.first_seq}..{result.last_seq}), "
            f"{result.epochs} epochs{cp}{since}"
        )
    else:
        where = "the checkpoint" if result.line == 0 else f"line {result.line}"
        print(f"INVALID: {result.kind} at {where}: {result.detail}")
    return EXIT_VALID if result.valid else EXIT_INVALID


def _cmd_prove(args: argparse.Namespace) -> int:
    try:
        proof = audit.prove(args.path, args.line, args.size)
    except (KeycellError, OSError, ValueError) as exc:
        return _usage(str(exc))
    hashes = [h.hex() for h in proof.proof]
    doc: dict[str, Any] = {
        "line": proof.line,
        "index": proof.line - 1,
        "size": proof.size,
        "leaf_hash": proof.leaf_hash.hex(),
        "proof": hashes,
        "root": proof.root.hex(),
        "record": proof.record.decode("utf-8", "replace"),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"line {proof.line} of {proof.size}: leaf {doc['leaf_hash']}")
        for i, h in enumerate(hashes):
            print(f"  proof[{i}] {h}")
        print(f"root {doc['root']}")
    return EXIT_VALID
