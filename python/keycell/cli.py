"""The ``keycell`` command line.

Every command has ``--help``. Exit codes: 0 success, 1 failure (an error, a refused file,
a wrong passphrase, or for ``doctor`` a degraded protection), 2 usage error, 130
interrupted. Errors go to stderr; secrets never go to stdout unless a flag asks for it
explicitly (``store get --print-secret``).

Commands: ``doctor``, ``keygen``, ``pubkey``, ``store init|put|get|list|delete|rotate``,
``keyring put|get|list`` (the Linux kernel keyring), ``otp code|verify``, ``audit
verify|prove`` (``keycell.audit`` logs; see ``cli_audit.py``), ``agent serve`` and ``policy
sign|verify`` (the key agent, ``cli_agent.py``).
Passphrases are read from the terminal with echo off (straight into a ``bytearray``, never
a ``str``, compared in place and wiped), or from a ``--passphrase-file`` (read by the Rust
core straight into guarded memory, with the key file checks; one trailing newline is
dropped); a store can also be protected by a master key file (``--master-key-file``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import termios
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import keycell

from . import __version__, cli_audit, cli_pkcs11
from ._native import KeyStore, Passphrase, SecretKey, compare_digest
from .doctor import collect, format_report
from .exceptions import KeycellError, KeyFileError

__all__ = ["build_parser", "main"]

_KINDS = ("secret", "ed25519", "x25519")
_FORMATS = ("raw", "hex", "base64", "pem", "der")
_KIND_CLASSES = {
    "secret": "SecretKey",
    "ed25519": "Ed25519PrivateKey",
    "x25519": "X25519PrivateKey",
}


class CliError(Exception):
    """A command failed; the message goes to stderr and the exit status is 1."""


def _key_class(kind: str) -> Any:
    cls = getattr(keycell, _KIND_CLASSES[kind], None)
    if cls is None:
        raise CliError(f"{kind} keys are not available in this build of keycell")
    return cls


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))


def _prompt_tty(prompt: str) -> tuple[bytearray, int]:
    """Read one line from the controlling terminal with echo off, straight into a
    bytearray."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise CliError(
            "no terminal to ask for the passphrase: use --passphrase-file or --master-key-file"
        ) from None
    buf = bytearray(4096)
    n = 0
    try:
        old = termios.tcgetattr(fd)
        new = list(old)
        new[3] = new[3] & ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        try:
            os.write(fd, prompt.encode())
            view = memoryview(buf)
            while n < len(buf):
                got = os.readv(fd, [view[n : n + 1]])
                if got == 0 or buf[n] == 0x0A:
                    break
                n += got
            view.release()
        finally:
            termios.tcsetattr(fd, termios.TCSAFLUSH, old)
            os.write(fd, b"\n")
    finally:
        os.close(fd)
    if n > 0 and buf[n - 1] == 0x0D:
        n -= 1
    buf[n:] = bytes(len(buf) - n)
    if n == 0:
        _wipe(buf)
        raise CliError("empty passphrase")
    return buf, n


@contextmanager
def _master(
    args: argparse.Namespace, *, new: bool = False, confirm: bool = False
) -> Iterator[Any]:
    """The master for a store command: a SecretKey from a key file, a Passphrase (guarded
    memory) from a passphrase file, or a passphrase from the terminal in a bytearray that is
    wiped on exit."""
    prefix = "new_" if new else ""
    key_file = getattr(args, prefix + "master_key_file", None)
    pass_file = getattr(args, prefix + "passphrase_file", None)
    if key_file is not None:
        key = SecretKey.from_file(key_file)
        try:
            yield key
        finally:
            key.destroy()
        return
    if pass_file is not None:
        from_file = Passphrase.from_file(pass_file)
        try:
            yield from_file
        finally:
            from_file.destroy()
        return
    what = "New passphrase" if new else "Passphrase"
    buf, n = _prompt_tty(f"{what} for {args.store}: ")
    if confirm:
        try:
            again, m = _prompt_tty("Repeat it: ")
        except BaseException:
            _wipe(buf)
            raise
        try:
            # In place: slicing the bytearrays would make two copies nobody wipes.
            with memoryview(buf) as v1, memoryview(again) as v2:
                with v1[:n] as first, v2[:m] as second:
                    same = compare_digest(first, second)
        finally:
            _wipe(again)
        if not same:
            _wipe(buf)
            raise CliError("the passphrases do not match")
    try:
        with memoryview(buf) as view, view[:n] as passphrase:
            yield passphrase
    finally:
        _wipe(buf)


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


def _cmd_keygen(args: argparse.Namespace) -> int:
    if args.kind == "otp":
        return _cmd_keygen_otp(args)
    if args.print_uri:
        raise _UsageError("--print-uri is for otp keys")
    cls = _key_class(args.kind)
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


def _load_private(path: str, kind: str | None, fmt: str | None) -> tuple[str, Any]:
    if kind is not None:
        return kind, _key_class(kind).from_file(path, format=fmt)
    # Without --type only self-describing PKCS#8 files can be told apart.
    if fmt not in (None, "pem", "der"):
        raise _UsageError(f"a {fmt} key file does not say its key type: pass --type")
    for k in ("ed25519", "x25519"):
        for f in [fmt] if fmt else ["pem", "der"]:
            try:
                return k, _key_class(k).from_file(path, format=f)
            except KeyFileError as exc:
                if type(exc) is not KeyFileError:
                    raise
    raise CliError(
        f"cannot tell the key type of {path}: it is not a PKCS#8 Ed25519/X25519 key; "
        "pass --type ed25519 or --type x25519"
    )


def _cmd_pubkey(args: argparse.Namespace) -> int:
    _, key = _load_private(args.file, args.type, args.format)
    try:
        pub = key.public_key()
        if args.pem:
            sys.stdout.write(pub.public_bytes_pem().decode("ascii"))
        else:
            print(pub.public_bytes_raw().hex())
    finally:
        key.destroy()
    return 0


def _open_store(args: argparse.Namespace) -> Any:
    with _master(args) as master:
        return KeyStore.open(args.store, master=master)


def _cmd_store_init(args: argparse.Namespace) -> int:
    with _master(args, confirm=True) as master:
        params = _kdf_params(args) if not args.master_key_file else None
        KeyStore.create(args.store, master=master, kdf_params=params).close()  # type: ignore[arg-type]
    print(f"created key store {args.store}", file=sys.stderr)
    return 0


def _cmd_store_put(args: argparse.Namespace) -> int:
    if (args.key_file is None) == (args.generate is None):
        raise _UsageError("give exactly one of --key-file FILE or --generate TYPE")
    if args.key_file is not None:
        key = None
        if args.type is None and args.format in (None, "pem", "der"):
            # A PKCS#8 file says its type; anything else without --type is a secret key.
            try:
                _, key = _load_private(args.key_file, None, args.format)
            except CliError:
                if args.format is not None:
                    raise
        if key is None:
            kind = args.type or "secret"
            cls = _key_class(kind)
            if kind == "secret":
                key = cls.from_file(args.key_file, format=args.format, length=args.length)
            else:
                key = cls.from_file(args.key_file, format=args.format)
    else:
        cls = _key_class(args.generate)
        key = cls.generate(args.length or 32) if args.generate == "secret" else cls.generate()
    try:
        with _open_store(args) as store:
            store.put(args.name, key, overwrite=args.overwrite)
    finally:
        key.destroy()
    print(f"stored {args.name!r} in {args.store}", file=sys.stderr)
    return 0


def _cmd_store_get(args: argparse.Namespace) -> int:
    if (args.output is None) == (not args.print_secret):
        raise _UsageError("give exactly one of -o FILE or --print-secret")
    with _open_store(args) as store:
        key = store.get(args.name)
    try:
        if args.print_secret:
            if not isinstance(key, SecretKey):
                raise CliError(
                    f"{args.name!r} holds a private key; --print-secret is for secret keys "
                    "(write it to a file with -o FILE)"
                )
            with key.expose() as view:
                print(view.hex())
        else:
            fmt = args.format or ("raw" if isinstance(key, SecretKey) else "pem")
            key.to_file(args.output, format=fmt, overwrite=args.force)
            print(f"wrote {args.name!r} to {args.output} ({fmt}, mode 0600)", file=sys.stderr)
    finally:
        key.destroy()
    return 0


_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _shown_name(name: str) -> str:
    """An entry name with every control, format (bidi, zero-width) and line/paragraph
    separator character shown as ``\\u`` and four hex digits: new names cannot hold them, but stores
    written by earlier versions may."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in _INVISIBLE or c == "\\" else c
        for c in name
    )


def _cmd_store_list(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        for name in store.names():
            print(_shown_name(name))
    return 0


def _cmd_store_delete(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        store.delete(args.name)
    print(f"deleted {args.name!r} from {args.store}", file=sys.stderr)
    return 0


def _cmd_store_rotate(args: argparse.Namespace) -> int:
    with _open_store(args) as store, _master(args, new=True, confirm=True) as new_master:
        params = _kdf_params(args) if not args.new_master_key_file else None
        store.rotate_master(new_master, kdf_params=params)
    print(f"re-sealed every entry of {args.store} under the new master", file=sys.stderr)
    return 0


class _UsageError(Exception):
    """Bad combination of arguments: exit status 2."""


def _cmd_doctor(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``keycell`` command."""
    parser = argparse.ArgumentParser(
        prog="keycell",
        description="Secret keys outside the Python heap: guarded, locked, wiped memory.",
    )
    parser.add_argument("--version", action="version", version=f"keycell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    doctor = sub.add_parser(
        "doctor",
        help="report what protection this machine and process give",
        description=(
            "Probe mlock, MADV_DONTDUMP, MADV_WIPEONFORK and memfd_secret, report "
            "RLIMIT_MEMLOCK, core dump and swap settings, and check a real key against "
            "/proc/self/smaps. Exit status 0 when every protection holds, 1 when any is "
            "degraded."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=_cmd_doctor)
    _add_keygen(sub)
    _add_pubkey(sub)
    _add_store(sub)
    _add_keyring(sub)
    _add_otp(sub)
    from .cli_agent import register as _register_agent

    _register_agent(sub)
    cli_pkcs11.register(sub)
    cli_audit.register(sub)
    return parser


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
    p.add_argument("kind", choices=(*_KINDS, "otp"), help="key type (otp: a 20-byte secret)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to create")
    p.add_argument("--length", type=int, metavar="N", help="secret key length in bytes (32)")
    p.add_argument("--format", choices=_FORMATS, help="file format")
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
    p.add_argument("--format", choices=_FORMATS, help="file format (default: detect)")
    p.add_argument("--pem", action="store_true", help="print PEM instead of hex")
    p.set_defaults(func=_cmd_pubkey)


def _master_options(p: argparse.ArgumentParser, *, new: bool = False) -> None:
    prefix = "new-" if new else ""
    what = "new " if new else ""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        f"--{prefix}passphrase-file",
        metavar="FILE",
        help=f"read the {what}passphrase from FILE (mode 0600; one trailing newline dropped)",
    )
    g.add_argument(
        f"--{prefix}master-key-file",
        metavar="FILE",
        help=f"use the {what}master key in FILE (a secret key file) instead of a passphrase",
    )


def _kdf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kdf-memory-kib",
        type=int,
        metavar="KIB",
        help="Argon2id memory in KiB (default 65536; minimum 1024; low-memory hosts only)",
    )
    p.add_argument("--kdf-iterations", type=int, metavar="N", help="Argon2id passes (3)")
    p.add_argument("--kdf-lanes", type=int, metavar="N", help="Argon2id lanes (1)")


def _add_store(sub: Any) -> None:
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
        _master_options(p)
        p.set_defaults(func=func)
        return p

    p = action("init", "create a new, empty key store", _cmd_store_init)
    _kdf_options(p)

    p = action("put", "add a key to the store", _cmd_store_put)
    p.add_argument("name", metavar="NAME", help="entry name")
    p.add_argument("--key-file", metavar="FILE", help="read the key from FILE")
    p.add_argument(
        "--type",
        choices=_KINDS,
        help="type of the key in --key-file (default: the type a PKCS#8 file names, else secret)",
    )
    p.add_argument("--format", choices=_FORMATS, help="format of --key-file (default: detect)")
    p.add_argument("--generate", choices=_KINDS, metavar="TYPE", help="generate a new key")
    p.add_argument("--length", type=int, metavar="N", help="secret key length")
    p.add_argument("--overwrite", action="store_true", help="replace an existing entry")

    p = action("get", "write a key from the store to a file", _cmd_store_get)
    p.add_argument("name", metavar="NAME", help="entry name")
    p.add_argument("-o", "--output", metavar="FILE", help="key file to create (mode 0600)")
    p.add_argument(
        "--format", choices=_FORMATS, help="key file format (raw; pem for ed25519/x25519)"
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--print-secret",
        action="store_true",
        help="print the secret key as hex on stdout instead (it will be in your terminal)",
    )

    action("list", "list the entry names", _cmd_store_list)

    p = action("delete", "remove an entry", _cmd_store_delete)
    p.add_argument("name", metavar="NAME", help="entry name")

    p = action("rotate", "re-seal every entry under a new master", _cmd_store_rotate)
    _master_options(p, new=True)
    _kdf_options(p)


def _keyring_name(value: str) -> str | int:
    """A ``--keyring`` value: a serial when it is a number, else a keyring name."""
    return int(value) if value.isdigit() else value


def _cmd_keyring_put(args: argparse.Namespace) -> int:
    cls = _key_class(args.type)
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
    cls = _key_class(args.type)
    name = int(args.name) if args.name.isdigit() else args.name
    key = cls.from_keyring(name, keyring=args.keyring, consume=args.consume)
    try:
        fmt = args.format or ("raw" if args.type == "secret" else "pem")
        key.to_file(args.output, format=fmt, overwrite=args.force)
    finally:
        key.destroy()
    gone = "; the kernel key was invalidated" if args.consume else ""
    print(f"wrote {args.name!r} to {args.output} ({fmt}, mode 0600){gone}", file=sys.stderr)
    return 0


def _cmd_keyring_list(args: argparse.Namespace) -> int:
    for d in keycell.keyring.list_keys(args.keyring):
        print(f"{d['serial']}\t{d['perm']:08x}\t{d['uid']}\t{_shown_name(d['description'])}")
    return 0


def _add_keyring(sub: Any) -> None:
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
    p.add_argument("--type", choices=_KINDS, default="secret", help="key type (secret)")
    p.add_argument("--format", choices=_FORMATS, help="format of --key-file (default: detect)")
    p.add_argument("--length", type=int, metavar="N", help="secret key length")
    p.add_argument("--timeout", type=int, metavar="S", help="expire the key after S seconds")

    p = action("get", "write a key from the keyring to a file", _cmd_keyring_get)
    p.add_argument("name", metavar="NAME", help="key description, or serial")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="key file to create")
    p.add_argument("--type", choices=_KINDS, default="secret", help="key type (secret)")
    p.add_argument(
        "--format", choices=_FORMATS, help="key file format (raw; pem for ed25519/x25519)"
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument(
        "--consume", action="store_true", help="invalidate the kernel key after reading it"
    )

    action("list", "list the user keys in the keyring (serial, perm, uid, description)",
           _cmd_keyring_list)
_OTP_FORMATS = ("base32", "raw", "hex", "base64")


def _cmd_keygen_otp(args: argparse.Namespace) -> int:
    from .otp import TOTP

    if args.format not in (None, "raw", "hex", "base64"):
        raise _UsageError("otp secrets are written as raw, hex or base64")
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


def _load_otp(args: argparse.Namespace) -> Any:
    from .otp import HOTP, TOTP

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
            return cls.from_base32(buf, **options)
        finally:
            _wipe(buf)
    fmt = None if args.key_format is None else args.key_format
    key = SecretKey.from_file(args.key_file, format=fmt)
    try:
        return cls(key, **options)
    finally:
        key.destroy()


def _cmd_otp_code(args: argparse.Namespace) -> int:
    with _load_otp(args) as otp:
        if args.hotp is not None:
            print(otp.at(args.hotp))
        else:
            print(otp.now() if args.at is None else otp.at(args.at))
    return 0


def _cmd_otp_verify(args: argparse.Namespace) -> int:
    from .otp import TotpVerifier

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
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        json.dump({"last_counter": counter}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _add_otp(sub: Any) -> None:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"keycell: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if isinstance(exc, KeycellError | CliError | OSError | ValueError | TypeError):
            print(f"keycell: error: {exc}", file=sys.stderr)
            return 1
        raise
    return rc
