"""Ed25519 and X25519 key files: ``from_file(format=...)`` and ``to_file`` in every format
(raw, hex, base64, PKCS#8 PEM and DER), interop with openssl and pyca/cryptography, the
export seal, and bad input (wrong format, wrong algorithm, encrypted, truncated) as typed
errors that carry no secret bytes."""

from __future__ import annotations

import base64
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asym_support import needs_openssl, openssl, openssl_genpkey, write_key_file
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as pyca_x25519
from keycell import (
    Ed25519PrivateKey,
    InsecureKeyFileError,
    KeyDestroyedError,
    KeyFileError,
    KeyNotExportableError,
    X25519PrivateKey,
)

FORMATS = ("pem", "der", "raw", "hex", "base64")
PRIVATE = bytes(range(0xA0, 0xC0))


@dataclass(frozen=True)
class Kind:
    """One asymmetric key type: keycell's class and pyca/cryptography's."""

    name: str
    cls: Any
    pyca: Any
    label: str  # as in messages: "Ed25519" / "X25519"

    def __str__(self) -> str:
        return self.name


KINDS = [
    Kind("ed25519", Ed25519PrivateKey, pyca_ed25519.Ed25519PrivateKey, "Ed25519"),
    Kind("x25519", X25519PrivateKey, pyca_x25519.X25519PrivateKey, "X25519"),
]
ids = [k.name for k in KINDS]


def public_raw(key: Any) -> bytes:
    """The raw public key of a keycell or pyca private key."""
    pub = key.public_key()
    if hasattr(pub, "public_bytes_raw"):
        raw: bytes = pub.public_bytes_raw()
        return raw
    raise AssertionError("no public key")


def pyca_file(kind: Kind, fmt: str, private: bytes = PRIVATE) -> bytes:
    """What the file of a key holding ``private`` looks like in ``fmt``, written by
    pyca/cryptography (OpenSSL) or the standard library."""
    key = kind.pyca.from_private_bytes(private)
    if fmt == "pem":
        data: bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return data
    if fmt == "der":
        data = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return data
    if fmt == "hex":
        return private.hex().encode() + b"\n"
    if fmt == "base64":
        return base64.b64encode(private) + b"\n"
    return private


def assert_no_secret(exc: BaseException, private: bytes = PRIVATE) -> None:
    text = str(exc)
    for form in (
        private.hex(),
        private.hex().upper(),
        base64.b64encode(private).decode(),
        base64.b64encode(private[:30]).decode(),
    ):
        assert form not in text, text


# ---- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_written_files_are_the_standard_encodings(tmp_path: Path, kind: Kind, fmt: str) -> None:
    """keycell writes exactly what OpenSSL (through pyca) writes for the same key: PKCS#8
    version 1 PEM and DER, raw, lowercase hex and padded base64 with a final newline."""
    key = kind.cls.from_private_bytes(bytearray(PRIVATE))
    path = tmp_path / f"k.{fmt}"
    key.to_file(path, format=fmt)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == pyca_file(kind, fmt)
    for given in (fmt, None):
        loaded = kind.cls.from_file(path, format=given)
        assert public_raw(loaded) == public_raw(key)
        assert loaded.exportable


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_default_format_is_pem(tmp_path: Path, kind: Kind) -> None:
    key = kind.cls.generate()
    key.to_file(tmp_path / "k")
    assert (tmp_path / "k").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_raw(kind.cls.from_file(tmp_path / "k", format="pem")) == public_raw(key)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_generated_keys_round_trip(tmp_path: Path, kind: Kind, fmt: str) -> None:
    for i in range(8):
        key = kind.cls.generate()
        path = tmp_path / f"k{i}"
        key.to_file(path, format=fmt)
        assert public_raw(kind.cls.from_file(path)) == public_raw(key)
        assert public_raw(kind.cls.from_file(path, format=fmt)) == public_raw(key)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_pyca_reads_what_keycell_writes(tmp_path: Path, kind: Kind, fmt: str) -> None:
    ours = kind.cls.generate()
    path = tmp_path / "k"
    ours.to_file(path, format=fmt)
    data = path.read_bytes()
    if fmt == "pem":
        theirs = serialization.load_pem_private_key(data, password=None)
    elif fmt == "der":
        theirs = serialization.load_der_private_key(data, password=None)
    elif fmt == "raw":
        theirs = kind.pyca.from_private_bytes(data)
    elif fmt == "hex":
        theirs = kind.pyca.from_private_bytes(bytes.fromhex(data.decode()))
    else:
        theirs = kind.pyca.from_private_bytes(base64.b64decode(data))
    assert isinstance(theirs, kind.pyca)
    assert public_raw(theirs) == public_raw(ours)
    if kind.name == "ed25519":
        assert theirs.sign(b"interop") == ours.sign(b"interop")


@needs_openssl
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_openssl_genpkey_pem_and_der_load(tmp_path: Path, kind: Kind) -> None:
    pem_path = openssl_genpkey(kind.name, tmp_path / "k.pem")
    der_path = write_key_file(
        tmp_path / "k.der", openssl("pkey", "-in", str(pem_path), "-outform", "DER")
    )
    public_der = openssl("pkey", "-in", str(pem_path), "-pubout", "-outform", "DER")
    for path, fmt in ((pem_path, "pem"), (der_path, "der")):
        for given in (fmt, None):
            key = kind.cls.from_file(path, format=given)
            assert key.public_key().public_bytes_der() == public_der
    # And openssl reads keycell's PEM and DER back.
    key = kind.cls.from_file(pem_path)
    key.to_file(tmp_path / "ours.pem")
    key.to_file(tmp_path / "ours.der", format="der")
    assert (tmp_path / "ours.pem").read_bytes() == pem_path.read_bytes()
    for path, form in ((tmp_path / "ours.pem", "PEM"), (tmp_path / "ours.der", "DER")):
        out = openssl("pkey", "-in", str(path), "-inform", form, "-pubout", "-outform", "DER")
        assert out == public_der


# ---- the export seal ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_export_seal(tmp_path: Path, kind: Kind) -> None:
    sealed_keys = [
        kind.cls.generate(exportable=False),
        kind.cls.from_private_bytes(bytearray(PRIVATE), exportable=False),
    ]
    kind.cls.from_private_bytes(bytearray(PRIVATE)).to_file(tmp_path / "src.pem")
    sealed_keys.append(kind.cls.from_file(tmp_path / "src.pem", exportable=False))
    later = kind.cls.generate()
    assert later.exportable
    later.seal_export()
    later.seal_export()  # idempotent, and one way: there is no unseal
    sealed_keys.append(later)
    for i, key in enumerate(sealed_keys):
        assert not key.exportable
        for fmt in FORMATS:
            target = tmp_path / f"out{i}.{fmt}"
            with pytest.raises(KeyNotExportableError, match="not exportable"):
                key.to_file(target, format=fmt)
            assert not target.exists()
        # Everything but export still works.
        if kind.name == "ed25519":
            key.public_key().verify(key.sign(b"m"), b"m")
        else:
            key.exchange(kind.cls.generate().public_key()).destroy()
    assert [p.name for p in tmp_path.iterdir()] == ["src.pem"]
    key = kind.cls.generate()
    key.destroy()
    with pytest.raises(KeyDestroyedError):
        key.seal_export()
    with pytest.raises(KeyDestroyedError):
        key.to_file(tmp_path / "gone")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_to_file_never_replaces_without_overwrite(tmp_path: Path, kind: Kind) -> None:
    path = tmp_path / "k.pem"
    first = kind.cls.generate()
    first.to_file(path)
    second = kind.cls.generate()
    with pytest.raises(KeyFileError, match="already exists") as info:
        second.to_file(path, format="der")
    assert info.value.errno == errno.EEXIST
    assert public_raw(kind.cls.from_file(path)) == public_raw(first)
    second.to_file(path, format="der", overwrite=True)
    assert public_raw(kind.cls.from_file(path)) == public_raw(second)
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    link = tmp_path / "link"
    link.symlink_to(victim)
    second.to_file(link, overwrite=True)
    assert victim.read_bytes() == b"untouched"
    assert not link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem", "link", "victim"]


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_bad_format_arguments(tmp_path: Path, kind: Kind) -> None:
    key = kind.cls.generate()
    with pytest.raises(ValueError, match="format must be"):
        key.to_file(tmp_path / "k", format="putty")
    with pytest.raises(ValueError, match="format must be"):
        kind.cls.from_file(tmp_path / "k", format="PEM")
    assert not (tmp_path / "k").exists()


# ---- bad input ------------------------------------------------------------------------


def refused(kind: Kind, path: Path, fmt: str | None = None, match: str | None = None) -> str:
    """Assert that loading ``path`` fails with a plain KeyFileError naming the file and
    carrying no secret; return the message."""
    with pytest.raises(KeyFileError, match=match) as info:
        kind.cls.from_file(path, format=fmt)
    assert type(info.value) is KeyFileError
    assert str(path) in str(info.value)
    assert_no_secret(info.value)
    return str(info.value)


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_wrong_format_given(tmp_path: Path, kind: Kind) -> None:
    for written in FORMATS:
        path = write_key_file(tmp_path / f"k.{written}", pyca_file(kind, written))
        for given in FORMATS:
            if given == written:
                assert public_raw(kind.cls.from_file(path, format=given)) == public_raw(
                    kind.pyca.from_private_bytes(PRIVATE)
                )
            else:
                refused(kind, path, given)


@pytest.mark.parametrize("fmt", ["pem", "der"])
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_pkcs8_of_another_algorithm(tmp_path: Path, kind: Kind, fmt: str) -> None:
    other = KINDS[1] if kind is KINDS[0] else KINDS[0]
    path = write_key_file(tmp_path / "other", pyca_file(other, fmt))
    for given in (fmt, None):
        refused(kind, path, given, f"{other.label} key, not an {kind.label} key")
    encoding = serialization.Encoding.PEM if fmt == "pem" else serialization.Encoding.DER
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = write_key_file(tmp_path / "ec", ec_key)
    refused(kind, path, None, f"EC key, not an {kind.label} key")


@pytest.mark.parametrize("fmt", ["pem", "der"])
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_encrypted_pkcs8_is_refused(tmp_path: Path, kind: Kind, fmt: str) -> None:
    encoding = serialization.Encoding.PEM if fmt == "pem" else serialization.Encoding.DER
    data = kind.pyca.from_private_bytes(PRIVATE).private_bytes(
        encoding,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    path = write_key_file(tmp_path / "enc", data)
    for given in (fmt, None):
        refused(kind, path, given, "encrypted PKCS#8")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_every_truncation_is_refused(tmp_path: Path, kind: Kind, fmt: str) -> None:
    """A truncated key file never loads as another key: every prefix is refused, except
    one that only lost trailing whitespace (the final newline of a text format)."""
    data = pyca_file(kind, fmt)
    expected = public_raw(kind.pyca.from_private_bytes(PRIVATE))
    path = tmp_path / "t"
    refusals = 0
    for n in range(1, len(data)):
        write_key_file(path, data[:n])
        if data[:n].rstrip() == data.rstrip():
            assert public_raw(kind.cls.from_file(path)) == expected
            continue
        for given in (None, fmt):
            refused(kind, path, given)
        refusals += 1
        path.unlink()
    assert refusals >= len(data) - 2


@pytest.mark.parametrize("kind", KINDS, ids=ids)
def test_other_bad_contents(tmp_path: Path, kind: Kind) -> None:
    cases = {
        "33 bytes": (PRIVATE + b"\x00", f"not a raw 32-byte {kind.label} key"),
        "hex of 31 bytes": (PRIVATE[:31].hex().encode() + b"\n", "not a raw 32-byte"),
        "hex, bad digit": (b"zz" + PRIVATE.hex().encode()[2:] + b"\n", "not a raw 32-byte"),
        "public key PEM": (
            kind.pyca.from_private_bytes(PRIVATE)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            'expected a PEM "PRIVATE KEY" block',
        ),
        "trailing garbage": (pyca_file(kind, "pem") + b"junk\n", "must end with"),
        "PEM with a bad character": (
            pyca_file(kind, "pem").replace(b"MC4C", b"MC4!"),
            "base64",
        ),
    }
    for name, (content, match) in cases.items():
        path = write_key_file(tmp_path / name.replace(" ", "_"), content)
        refused(kind, path, None, match)
    # 32 characters of text are not read as a raw key unless told: they are far more
    # likely a truncated hex or base64 file than a random key.
    text = write_key_file(tmp_path / "text", b"0123456789abcdef0123456789abcdef")
    refused(kind, text, None, "32 characters of text")
    kind.cls.from_file(text, format="raw").destroy()
    with pytest.raises(KeyFileError, match="empty"):
        kind.cls.from_file(write_key_file(tmp_path / "empty", b""))
    with pytest.raises(KeyFileError, match="larger than"):
        kind.cls.from_file(write_key_file(tmp_path / "huge", b"A" * (16 * 1024 + 1)))
    loose = write_key_file(tmp_path / "loose", pyca_file(kind, "pem"), 0o640)
    with pytest.raises(InsecureKeyFileError, match="permissions") as info:
        kind.cls.from_file(loose)
    assert_no_secret(info.value)


def test_secret_keys_still_refuse_pkcs8(tmp_path: Path) -> None:
    from keycell import SecretKey

    path = write_key_file(tmp_path / "k.pem", pyca_file(KINDS[0], "pem"))
    with pytest.raises(KeyFileError, match="PEM is only read for private keys"):
        SecretKey.from_file(path)
    with pytest.raises(ValueError, match="not available for secret keys"):
        SecretKey.from_file(path, format="der")  # type: ignore[arg-type]
    assert os.path.exists(path)
