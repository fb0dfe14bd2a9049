"""What the command families of ``keycell`` share: the two error types :func:`main
<keycell.cli.main>` turns into exit statuses, the key types and file formats, the
passphrase prompt and the store master (``--passphrase-file``, ``--master-key-file`` or
the terminal), and how entry names are shown.

Every command module imports this one; this one imports no command module.
"""

from __future__ import annotations

import argparse
import os
import sys
import termios
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keycell

from .._native import KeyStore, Passphrase, SecretKey, _openssh_key_type, compare_digest
from ..exceptions import KeyFileError

__all__ = [
    "CURVES",
    "FORMATS",
    "KINDS",
    "RSA_BITS",
    "CliError",
    "UnknownKeyTypeError",
    "UsageError",
    "a_key",
    "generate",
    "key_class",
    "kind_of",
    "load_private",
    "master",
    "master_options",
    "open_store",
    "output_format",
    "progress",
    "shown_name",
    "warn",
    "wipe",
]

KINDS = ("secret", "ed25519", "x25519", "ec", "rsa")
FORMATS = ("raw", "hex", "base64", "pem", "der", "openssh")
#: The curves of ``ec`` keys (``--curve``).
CURVES = ("P-256", "P-384")
#: The sizes of new ``rsa`` keys (``--bits``).
RSA_BITS = (2048, 3072, 4096)
_KIND_CLASSES = {
    "secret": "SecretKey",
    "ed25519": "Ed25519PrivateKey",
    "x25519": "X25519PrivateKey",
    "ec": "ECPrivateKey",
    "rsa": "RSAPrivateKey",
}


#: "a secret key", "an Ed25519 key"...: a key type in a sentence.
_A_KEY = {
    "secret": "a secret key",
    "ed25519": "an Ed25519 key",
    "x25519": "an X25519 key",
    "ec": "an EC key",
    "ec-p256": "an EC P-256 key",
    "ec-p384": "an EC P-384 key",
    "rsa": "an RSA key",
}


def a_key(kind: str) -> str:
    """``kind`` (a ``KINDS`` name or a store's kind) in a sentence, with its article:
    "an Ed25519 key", never "a ed25519 key"."""
    return _A_KEY.get(kind, f"a {kind} key")


def warn(message: str) -> None:
    """A warning on stderr (the command goes on)."""
    print(f"keycell: warning: {message}", file=sys.stderr)


@contextmanager
def progress(what: str) -> Iterator[None]:
    """Show ``what...`` on stderr while a slow step runs (Argon2id, RSA generation), and
    erase it afterwards; only when stderr is a terminal (a log or a pipe gets nothing)."""
    shown = sys.stderr.isatty()
    if shown:
        sys.stderr.write(f"keycell: {what}...")
        sys.stderr.flush()
    try:
        yield
    finally:
        if shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


#: Output formats a file name's suffix names.
_SUFFIX_FORMATS = {
    ".pem": "pem",
    ".der": "der",
    ".hex": "hex",
    ".b64": "base64",
    ".base64": "base64",
    ".raw": "raw",
    ".bin": "raw",
}


#: The formats a key of each kind can be written in (ed25519 and x25519: all of them).
_KIND_FORMATS = {
    "secret": ("raw", "hex", "base64"),
    "ec": ("pem", "der", "openssh"),
    "rsa": ("pem", "der", "openssh"),
}


def output_format(path: str, explicit: str | None, kind: str) -> tuple[str, str]:
    """The format to write a ``kind`` key to ``path`` in, and why (for the message):
    ``explicit`` (``--format``), else the one the file name's suffix names when ``kind``
    has it (``key.hex`` -> hex), else the default (raw for secret keys, PEM otherwise)."""
    if explicit is not None:
        return explicit, ""
    suffix = Path(path).suffix
    by_suffix = _SUFFIX_FORMATS.get(suffix.lower())
    if by_suffix is not None and by_suffix in _KIND_FORMATS.get(kind, FORMATS):
        return by_suffix, f", as its {suffix} name says"
    default = "raw" if kind == "secret" else "pem"
    return default, ", the default: --format or a .pem/.der/.hex/.b64 name chooses another"


def kind_of(key: Any) -> str:
    """The ``KINDS`` name of a key handle (``"secret"`` for a ``SecretKey``...)."""
    name = type(key).__name__
    return next((k for k, cls in _KIND_CLASSES.items() if cls == name), "secret")


class CliError(Exception):
    """A command failed; the message goes to stderr and the exit status is 1."""


class UsageError(Exception):
    """Bad combination of arguments: exit status 2."""


class UnknownKeyTypeError(CliError):
    """:func:`load_private` could not tell the type of a key file (``store put`` then reads
    it as a secret key)."""


def key_class(kind: str) -> Any:
    """The key class of a ``KINDS`` name (a :class:`CliError` when this build lacks it)."""
    cls = getattr(keycell, _KIND_CLASSES[kind], None)
    if cls is None:
        raise CliError(f"{kind} keys are not available in this build of keycell")
    return cls


def wipe(buf: bytearray) -> None:
    """Overwrite ``buf`` with zeros in place."""
    buf[:] = bytes(len(buf))


def _prompt_tty(
    prompt: str, instead: str = "--passphrase-file or --master-key-file"
) -> tuple[bytearray, int]:
    """Read one line from the controlling terminal with echo off, straight into a
    bytearray (``instead`` names the options to use when there is no terminal)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        raise CliError(f"no terminal to ask for the passphrase: use {instead}") from None
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
        wipe(buf)
        raise CliError("empty passphrase")
    return buf, n


@contextmanager
def master(
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
            wipe(buf)
            raise
        try:
            # In place: slicing the bytearrays would make two copies nobody wipes.
            with memoryview(buf) as v1, memoryview(again) as v2:
                with v1[:n] as first, v2[:m] as second:
                    same = compare_digest(first, second)
        finally:
            wipe(again)
        if not same:
            wipe(buf)
            raise CliError("the passphrases do not match")
    try:
        with memoryview(buf) as view, view[:n] as passphrase:
            yield passphrase
    finally:
        wipe(buf)


def open_store(args: argparse.Namespace) -> Any:
    """Open ``args.store`` under the master its options name (see :func:`master`); a
    passphrase's Argon2id derivation shows a progress line on a terminal."""
    with master(args) as key:
        if isinstance(key, SecretKey):
            return KeyStore.open(args.store, master=key)
        with progress("deriving the store key from the passphrase (Argon2id)"):
            return KeyStore.open(args.store, master=key)


def master_options(p: argparse.ArgumentParser, *, new: bool = False) -> None:
    """Add ``--passphrase-file`` and ``--master-key-file`` (with ``new``: their ``--new-``
    forms) to ``p``, one of them at most."""
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


def generate(
    kind: str, length: int | None, curve: str | None, bits: int | None = None
) -> Any:
    """A new key of ``kind`` (``length``: a secret key's bytes; ``curve``: an ec key's
    curve, P-256 unless given; ``bits``: an rsa key's size, 3072 unless given)."""
    if curve is not None and kind != "ec":
        raise UsageError("--curve is for ec keys")
    if bits is not None and kind != "rsa":
        raise UsageError("--bits is for rsa keys")
    cls = key_class(kind)
    if kind == "secret":
        return cls.generate(32 if length is None else length)
    if length is not None and (kind in ("ec", "rsa") or length != 32):
        raise CliError(f"{kind} keys have a fixed length; --length does not apply")
    if kind == "ec":
        return cls.generate(curve or "P-256")
    if kind == "rsa":
        bits = 3072 if bits is None else bits
        with progress(f"generating a {bits}-bit RSA key"):
            return cls.generate(bits)
    return cls.generate()


#: The key type of each OpenSSH key type name.
_SSH_KINDS = {
    "ssh-ed25519": "ed25519",
    "ecdsa-sha2-nistp256": "ec",
    "ecdsa-sha2-nistp384": "ec",
    "ssh-rsa": "rsa",
}


@contextmanager
def _key_passphrase(path: str, encrypted: bool, passphrase_file: str | None) -> Iterator[Any]:
    """The passphrase of an OpenSSH key file: from ``passphrase_file`` (read by the Rust
    core into guarded memory), else, for an encrypted file, from the terminal (a bytearray,
    wiped on exit); ``None`` for an unencrypted file without one."""
    if passphrase_file is not None:
        from_file = Passphrase.from_file(passphrase_file)
        try:
            yield from_file
        finally:
            from_file.destroy()
        return
    if not encrypted:
        yield None
        return
    buf, n = _prompt_tty(f"Passphrase for the key file {path}: ", "--key-passphrase-file")
    try:
        with memoryview(buf) as view, view[:n] as passphrase:
            yield passphrase
    finally:
        wipe(buf)


def load_private(
    path: str, kind: str | None, fmt: str | None, passphrase_file: str | None = None
) -> tuple[str, Any]:
    """``(kind, key)`` of a private key file; without ``kind`` the file must say its type:
    an OpenSSH private key file (``ssh-keygen``; its header names the type, and an
    encrypted one is decrypted with the passphrase in ``passphrase_file`` or asked for on
    the terminal), PKCS#8, or SEC1 ``EC PRIVATE KEY`` / PKCS#1 ``RSA PRIVATE KEY`` as
    openssl writes them. A missing or unsafe file raises ``KeyFileError``."""
    if fmt in (None, "openssh"):
        found = _openssh_key_type(path)
        if found is not None:
            ssh_type, encrypted = found
            found_kind = _SSH_KINDS[ssh_type]
            if kind is not None and kind != found_kind:
                raise CliError(f"{path} holds an OpenSSH {ssh_type} key, not {a_key(kind)}")
            with _key_passphrase(path, encrypted, passphrase_file) as passphrase:
                cls = key_class(found_kind)
                return found_kind, cls.from_file(path, format="openssh", passphrase=passphrase)
        if fmt == "openssh":
            raise CliError(f"{path} is not an OpenSSH private key file")
    if passphrase_file is not None:
        raise UsageError("--key-passphrase-file is for encrypted OpenSSH key files")
    if kind is not None:
        return kind, key_class(kind).from_file(path, format=fmt)
    # Without --type only self-describing PKCS#8 (and SEC1) files can be told apart.
    if fmt not in (None, "pem", "der"):
        raise UsageError(f"a {fmt} key file does not say its key type: pass --type")
    for k in ("ed25519", "x25519", "ec", "rsa"):
        for f in [fmt] if fmt else ["pem", "der"]:
            try:
                return k, key_class(k).from_file(path, format=f)
            except KeyFileError as exc:
                # An OS error (unreadable...) or a refused file is about the file, not
                # its type: say so rather than "cannot tell the key type".
                if type(exc) is not KeyFileError or exc.errno is not None:
                    raise
    raise UnknownKeyTypeError(
        f"cannot tell the key type of {path}: it is not an OpenSSH or PKCS#8 "
        "Ed25519/X25519, EC or RSA key; pass --type"
    )


_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def shown_name(name: str) -> str:
    """An entry name with every control, format (bidi, zero-width) and line/paragraph
    separator character shown as ``\\u`` and four hex digits: new names cannot hold them, but stores
    written by earlier versions may."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in _INVISIBLE or c == "\\" else c
        for c in name
    )
