"""``keycell otp code|verify`` and ``keycell keygen otp``: TOTP (RFC 6238) and HOTP
(RFC 4226) codes from a secret key file (``keycell.otp``), with a replay state file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keycell

from .._native import SecretKey, _write_atomic
from .common import CliError, UsageError, wipe

__all__ = ["keygen_otp", "register"]

_OTP_FORMATS = ("base32", "raw", "hex", "base64")


def keygen_otp(args: argparse.Namespace) -> int:
    """``keycell keygen otp``: a 20-byte secret into a new file, its URI on request."""
    from ..otp import TOTP

    if args.format not in (None, "raw", "hex", "base64"):
        raise UsageError("otp secrets are written as raw, hex or base64")
    fmt: Any = args.format or "raw"
    key = SecretKey.generate(20 if args.length is None else args.length)
    try:
        key.to_file(args.output, format=fmt, overwrite=args.force)
        if args.print_uri:
            with TOTP(key) as totp:
                print(totp.provisioning_uri(args.account, issuer=args.issuer))
    finally:
        key.destroy()
    print(f"wrote otp secret to {args.output} ({fmt}, mode 0600)", file=sys.stderr)
    return 0


def _read_base32_file(path: str) -> bytearray:
    """The text of a base32 secret file, read straight into a bytearray (the caller wipes
    it): no symlink, a regular file of this user, no group or other permissions."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000) or st.st_uid != os.geteuid():
            raise CliError(f"refusing {path}: not a regular file owned by this user")
        if st.st_mode & 0o077:
            raise CliError(f"refusing {path}: group or others may access it (chmod 600)")
        buf = bytearray(min(st.st_size, 1 << 16))
        n = os.readv(fd, [buf])
        del buf[n:]
        return buf
    finally:
        os.close(fd)


@contextmanager
def _load_otp(args: argparse.Namespace) -> Iterator[Any]:
    """The OTP object of the command's key file, for a ``with`` block (destroyed after
    it, with the key it was made from: destroying that key revokes it)."""
    from ..otp import HOTP, TOTP

    options: dict[str, Any] = {"digits": args.digits, "algorithm": args.algorithm}
    if args.short_secret:
        options["allow_short_secret"] = True
    cls: Any = HOTP
    if args.hotp is None:
        cls = TOTP
        options.update(period=args.period, t0=args.t0)
    if args.key_format == "base32":
        buf = _read_base32_file(args.key_file)
        try:
            otp = cls.from_base32(buf, **options)
        finally:
            wipe(buf)
        with otp:
            yield otp
        return
    fmt = None if args.key_format is None else args.key_format
    with SecretKey.from_file(args.key_file, format=fmt) as key, cls(key, **options) as otp:
        yield otp


def _cmd_otp_code(args: argparse.Namespace) -> int:
    with _load_otp(args) as otp:
        if args.hotp is not None:
            print(otp.at(args.hotp))
        else:
            print(otp.now() if args.at is None else otp.at(args.at))
    return 0


def _cmd_otp_verify(args: argparse.Namespace) -> int:
    from ..otp import TotpVerifier

    with _load_otp(args) as otp:
        try:
            if args.hotp is not None:
                counter = otp.verify(args.code, args.hotp, look_ahead=args.look_ahead)
            elif args.state is None:
                counter = otp.verify(args.code, at=args.at, past=args.past, future=args.future)
            else:
                last = _read_state(args.state)
                verifier = TotpVerifier(otp, last_counter=last, past=args.past, future=args.future)
                counter = verifier.verify(args.code, at=args.at)
                _write_state(args.state, counter)
        except keycell.InvalidCode as exc:
            print(f"keycell: {exc}", file=sys.stderr)
            return 1
    print(counter)
    return 0


def _read_state(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            value = json.load(f)["last_counter"]
    except FileNotFoundError:
        return None
    if value is not None and not isinstance(value, int):
        raise CliError(f"{path}: last_counter must be an integer")
    return value


def _write_state(path: str, counter: int) -> None:
    # Atomic, as every keycell writer (a link at `path` is replaced, never followed).
    data = json.dumps({"last_counter": counter}).encode("ascii")
    try:
        _write_atomic(path, data, overwrite=True)
    except keycell.KeyFileError as exc:
        raise CliError(str(exc)) from None


def register(sub: Any) -> None:
    """Add the ``otp`` command and its actions to the ``keycell`` subparsers ``sub``."""
    otp = sub.add_parser(
        "otp",
        help="one-time passwords (TOTP, HOTP) from a secret key file",
        description="Compute or verify TOTP (RFC 6238) or HOTP (RFC 4226) codes.",
    )
    osub = otp.add_subparsers(dest="otp_command", metavar="ACTION")
    osub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key-file", required=True, metavar="FILE", help="the secret")
        p.add_argument(
            "--key-format",
            choices=_OTP_FORMATS,
            help="format of the key file (default: detect raw/hex; base32 must be named)",
        )
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--totp", action="store_true", help="time-based (the default)")
        mode.add_argument("--hotp", type=int, metavar="COUNTER", help="counter-based")
        p.add_argument("--digits", type=int, default=6)
        p.add_argument("--period", type=int, default=30, help="TOTP time step in seconds")
        p.add_argument("--t0", type=int, default=0, help="TOTP Unix time of step 0")
        p.add_argument("--algorithm", choices=("sha1", "sha256", "sha512"), default="sha1")
        p.add_argument("--at", type=float, help="TOTP: Unix time instead of now")
        p.add_argument(
            "--short-secret",
            action="store_true",
            help="accept a secret shorter than 128 bits (old 80-bit secrets)",
        )

    code = osub.add_parser("code", help="print the current code", description="Print a code.")
    common(code)
    code.set_defaults(func=_cmd_otp_code)
    verify = osub.add_parser(
        "verify",
        help="verify a code (exit status 1 when wrong, expired or replayed)",
        description=(
            "Verify CODE; print the matched counter. With --state FILE (TOTP) the last "
            "accepted time step is kept in FILE and a code is never accepted twice."
        ),
    )
    common(verify)
    verify.add_argument("code", metavar="CODE")
    verify.add_argument("--past", type=int, default=1, help="TOTP steps accepted before now")
    verify.add_argument("--future", type=int, default=1, help="TOTP steps accepted after now")
    verify.add_argument("--look-ahead", type=int, default=0, help="HOTP counters ahead")
    verify.add_argument("--state", metavar="FILE", help="TOTP replay state file (JSON)")
    verify.set_defaults(func=_cmd_otp_verify)
