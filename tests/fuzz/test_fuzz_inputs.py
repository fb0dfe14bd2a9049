"""Fuzzing every parser reachable from Python with random and mutated inputs.

The contract checked here (docs/invariants.md, invariants 5 and 7): bad input gets a typed
exception (a :class:`KeycellError` subclass, or ``TypeError``/``ValueError`` for argument
errors) whose message contains no secret bytes; never another exception type, never a
crash, and never a wrong key loaded silently. When a mutated valid key file does load, the
key must be the original one, or what an independent reference decoder (stdlib ``base64``
and ``bytes.fromhex`` for the text formats, pyca/cryptography for PKCS#8) reads from the
mutated bytes under the format it was read as: hex, base64, raw and PKCS#8 carry no
integrity check, so a flipped key bit is a different, legitimately decoded key.

The longer campaign over the pure-Rust parsers is ``tests/fuzz_parsers.rs`` (``cargo test
--no-default-features --release --test fuzz_parsers -- --ignored``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asym_support import pem, pkcs8_der
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519 as c_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from keycell import (
    HMAC,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyStore,
    SecretKey,
    X25519PrivateKey,
    X25519PublicKey,
    ed25519_verify_batch,
    hkdf,
    hkdf_expand,
    hkdf_extract,
)
from keycell.exceptions import (
    InvalidSignature,
    KeycellError,
    KeyDestroyedError,
    KeyFileError,
    KeyStoreError,
)
from support import run_cli

# KEYCELL_FUZZ_EXAMPLES raises the count for a longer campaign outside the normal suite.
FUZZ = settings(
    max_examples=int(os.environ.get("KEYCELL_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Fixed key material with high bytes (so a leak cannot hide among ASCII message text).
SECRET = hashlib.sha256(b"keycell fuzz secret").digest() + b"\xf1\x80\xfe"
SEED = hashlib.sha256(b"keycell fuzz seed").digest()
ARGUMENT_ERRORS = (KeycellError, TypeError, ValueError)
WS = b" \t\r\n"
PEM_LABELS = [
    b"PRIVATE KEY",
    b"PUBLIC KEY",
    b"ENCRYPTED PRIVATE KEY",
    b"OPENSSH PRIVATE KEY",
    b"RSA PRIVATE KEY",
    b"EC PRIVATE KEY",
    b"CERTIFICATE",
    b"PRIVATE  KEY",
    b"private key",
    b"",
    b"\xd4\xee\x00",
]


def secret_forms(key: bytes) -> list[bytes]:
    """Encodings of `key` that must never appear in a message."""
    forms = [key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]
    # Any 8-byte window, raw or in hex, in either case.
    for i in range(len(key) - 7):
        w = key[i : i + 8]
        forms += [w, w.hex().encode(), w.hex().upper().encode()]
    return forms


def assert_no_secret(exc: BaseException, *keys: bytes) -> None:
    text = f"{exc}\n{exc.args!r}".encode("utf-8", "surrogateescape")
    for key in keys:
        for form in secret_forms(key):
            assert form not in text, f"message leaks key material: {exc!r}"


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------
# Reference decoders
# ---------------------------------------------------------------------------------------


def _strip_ws(data: bytes) -> bytes:
    return bytes(c for c in data if c not in WS)


def ref_decode(content: bytes, fmt: str, kind: str) -> bytes | None:
    """What `content` holds as `fmt` for a key of `kind`, or None if it is not valid."""
    if fmt == "raw":
        return content
    if fmt == "hex":
        s = _strip_ws(content)
        if not s or len(s) % 2 or any(c not in string.hexdigits.encode() for c in s):
            return None
        return bytes.fromhex(s.decode())
    if fmt == "base64":
        s = _strip_ws(content)
        if not s or len(s) % 4:
            return None
        try:
            out = base64.b64decode(s, validate=True)
        except ValueError:
            return None
        # Canonical only: re-encoding gives the same text.
        return out if out and base64.b64encode(out) == s else None
    loader = (
        serialization.load_pem_private_key if fmt == "pem" else serialization.load_der_private_key
    )
    try:
        k = loader(content, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        strict = _strict_pem(content, b"PRIVATE KEY") if fmt == "pem" else None
        if strict is not None and strict != content:
            return ref_decode(strict, fmt, kind)
        return _ref_pkcs8_v2(content, fmt, kind)
    want = c_ed25519.Ed25519PrivateKey if kind == "ed25519" else c_x25519.X25519PrivateKey
    if not isinstance(k, want):
        return None
    return k.private_bytes_raw()


def _strict_pem(data: bytes, label: bytes) -> bytes | None:
    """The strict RFC 7468 form of a single PEM block: keycell ignores whitespace anywhere
    in the body (as documented for key files), pyca/cryptography refuses e.g. a blank
    line or a line break inside a line, so references read this form."""
    text = data.strip()
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    if not (text.startswith(begin) and text.endswith(end)):
        return None
    body = _strip_ws(text[len(begin) : -len(end)])
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([begin, *lines, end]) + b"\n"


def _ref_pkcs8_v2(content: bytes, fmt: str, kind: str) -> bytes | None:
    """pyca/cryptography does not read version 2 (RFC 5958) PKCS#8, which OpenSSL and
    keycell read: decode it as the version 1 structure it extends, and check that a
    public key it carries is the private key's."""
    if fmt == "pem":
        lines = content.strip().split(b"\n")
        if len(lines) < 3 or lines[0] != b"-----BEGIN PRIVATE KEY-----":
            return None
        if lines[-1] != b"-----END PRIVATE KEY-----":
            return None
        try:
            der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
        except ValueError:
            return None
        return _ref_pkcs8_v2(der, "der", kind)
    if content.startswith(b"\x30\x2e\x02\x01\x01") and len(content) == 48:
        return ref_decode(content[:4] + b"\x00" + content[5:], "der", kind)
    if (
        content.startswith(b"\x30\x51\x02\x01\x01")
        and len(content) == 83
        and content[48:51] == b"\x81\x21\x00"
    ):
        key = ref_decode(b"\x30\x2e\x02\x01\x00" + content[5:48], "der", kind)
        if key is None:
            return None
        cls = c_ed25519.Ed25519PrivateKey if kind == "ed25519" else c_x25519.X25519PrivateKey
        public = cls.from_private_bytes(key).public_key().public_bytes_raw()
        return key if public == content[51:] else None
    return None


# ---------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


@st.composite
def mutated(draw: st.DrawFn, original: bytes, fmt: str) -> tuple[bytes, bool]:
    """A mutation of `original` (a `fmt` key file) and whether it is a pure truncation."""
    data = bytearray(original)
    truncated_only = True
    for _ in range(draw(st.integers(1, 3))):
        ops = ["flip", "set", "truncate", "insert", "delete", "whitespace", "dup", "case"]
        if fmt == "pem":
            ops += ["label", "label", "pem_der"]
        if fmt == "der":
            ops += ["der_len", "der_len", "der_nest"]
        op = draw(st.sampled_from(ops))
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if op != "truncate":
            truncated_only = False
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, max(n - 1, 0))) :]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "whitespace":
            data[pos:pos] = draw(st.sampled_from([b" ", b"\t", b"\r\n", b"\n", b"\n\n", b"\x0b"]))
        elif op == "dup":
            data = bytearray(bytes(data) * 2)
        elif op == "case":
            data = bytearray(bytes(data).swapcase())
        elif op == "label":
            label = draw(st.sampled_from(PEM_LABELS))
            text = bytes(data)
            which = draw(st.sampled_from(["begin", "end", "both"]))
            if which in ("begin", "both"):
                text = text.replace(b"BEGIN PRIVATE KEY", b"BEGIN " + label, 1)
            if which in ("end", "both"):
                text = text.replace(b"END PRIVATE KEY", b"END " + label, 1)
            data = bytearray(text)
        elif op == "pem_der":
            # Re-armor a mutated DER body: structure errors behind valid base64.
            lines = bytes(data).split(b"\n")
            body = b"".join(line for line in lines if line and not line.startswith(b"-"))
            try:
                der = bytearray(base64.b64decode(body))
            except ValueError:
                continue
            if der:
                der[draw(st.integers(0, len(der) - 1))] = draw(st.integers(0, 255))
            data = bytearray(
                b"-----BEGIN PRIVATE KEY-----\n"
                + base64.b64encode(bytes(der))
                + b"\n-----END PRIVATE KEY-----\n"
            )
        elif op == "der_len" and n > 2:
            # Rewrite one length byte: long forms, non-minimal, indefinite, oversized.
            at = draw(st.sampled_from([i for i in (1, 6, 13, 15) if i < n]))
            new = draw(
                st.sampled_from(
                    [b"\x80", b"\x81\x05", b"\x82\x00\x2e", b"\x83\x01\x00\x00", b"\x84\xff"
                     b"\xff\xff\xff", b"\xff", b"\x7f", b"\x00", b"\x81\xff", b"\x82\xff\xff"]
                )
            )
            data[at : at + 1] = new
        elif op == "der_nest":
            depth = draw(st.integers(1, 3))
            for _ in range(depth):
                data = bytearray(b"\x30" + _der_length(len(data)) + bytes(data))
    return bytes(data), truncated_only


# ---------------------------------------------------------------------------------------
# Key files
# ---------------------------------------------------------------------------------------

KEY_CLASSES: dict[str, Any] = {
    "secret": SecretKey,
    "ed25519": Ed25519PrivateKey,
    "x25519": X25519PrivateKey,
}
FORMATS = {
    "secret": ["raw", "hex", "base64"],
    "ed25519": ["raw", "hex", "base64", "pem", "der"],
    "x25519": ["raw", "hex", "base64", "pem", "der"],
}


def raw_bytes(key: Any, scratch: Path) -> bytes:
    """The raw bytes of a loaded key (test-only: written to a 0600 file and read back)."""
    key.to_file(scratch, format="raw", overwrite=True)
    return scratch.read_bytes()


def original_key(kind: str) -> tuple[Any, bytes]:
    if kind == "secret":
        return SecretKey.from_buffer(bytearray(SECRET)), SECRET
    cls = KEY_CLASSES[kind]
    return cls.from_private_bytes(bytearray(SEED)), SEED


@pytest.fixture(scope="module")
def fdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def key_files(fdir: Path) -> dict[tuple[str, str], bytes]:
    """The contents of a valid key file for every kind and format."""
    out = {}
    for kind, formats in FORMATS.items():
        key, _ = original_key(kind)
        for fmt in formats:
            p = fdir / f"valid-{kind}-{fmt}"
            key.to_file(p, format=fmt)
            out[(kind, fmt)] = p.read_bytes()
            p.unlink()
        if kind != "secret":
            # PKCS#8 version 2 (RFC 5958) carrying the public key, which must match.
            public = key.public_key().public_bytes_raw()
            der = pkcs8_der(0x70 if kind == "ed25519" else 0x6E, SEED, public)
            out[(kind, "der_v2")] = der
            out[(kind, "pem_v2")] = pem("PRIVATE KEY", der)
    return out


def load(kind: str, path: Path, fmt: str | None) -> Any:
    cls = KEY_CLASSES[kind]
    return cls.from_file(path, format=fmt)


def check_loaded(
    kind: str, content: bytes, fmt: str | None, got: bytes, want: bytes, truncated: bool,
    src_fmt: str,
) -> None:
    """A key that loaded from mutated `content` is the original or a legitimate decoding."""
    if kind != "secret":
        assert len(got) == 32
    if got == want:
        return
    candidates = [fmt] if fmt is not None else FORMATS[kind]
    if kind != "secret" and truncated and (fmt is None or fmt == src_fmt):
        pytest.fail(f"a truncated {src_fmt} file loaded as another {kind} key (format={fmt})")
    decodings = {f: ref_decode(content, f, kind) for f in candidates}
    assert got in decodings.values(), (
        f"{kind} key file (format={fmt}) loaded a key that no reference decoding of the "
        f"file gives: {content!r}"
    )


@pytest.mark.parametrize(
    ("kind", "src_fmt"),
    [(k, f) for k, fs in FORMATS.items() for f in fs]
    + [(k, f) for k in ("ed25519", "x25519") for f in ("der_v2", "pem_v2")],
)
@FUZZ
@given(data=st.data())
def test_mutated_key_files(
    kind: str, src_fmt: str, data: st.DataObject, fdir: Path,
    key_files: dict[tuple[str, str], bytes],
) -> None:
    original = key_files[(kind, src_fmt)]
    src_fmt = src_fmt.removesuffix("_v2")
    content, truncated = data.draw(mutated(original, src_fmt))
    fmt = data.draw(st.sampled_from([None, *FORMATS[kind]]))
    path = fdir / f"m-{kind}-{src_fmt}"
    if not content:
        content = b"\x00"
    put(path, content)
    _, want = original_key(kind)
    try:
        key = load(kind, path, fmt)
    except KeyFileError as e:
        assert_no_secret(e, want)
        return
    got = raw_bytes(key, fdir / "scratch") if kind != "secret" else _secret_bytes(key)
    check_loaded(kind, content, fmt, got, want, truncated, src_fmt)


def _secret_bytes(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("kind", list(FORMATS))
@FUZZ
@given(
    content=st.one_of(
        st.binary(min_size=1, max_size=200),
        st.text(alphabet=string.hexdigits + string.whitespace, min_size=1, max_size=100).map(
            str.encode
        ),
        st.text(
            alphabet=string.ascii_letters + string.digits + "+/=\n -", min_size=1, max_size=100
        ).map(str.encode),
        st.binary(min_size=1, max_size=120).map(
            lambda b: b"-----BEGIN PRIVATE KEY-----\n"
            + base64.b64encode(b)
            + b"\n-----END PRIVATE KEY-----\n"
        ),
        st.binary(min_size=0, max_size=60).map(lambda b: b"\x30" + _der_length(len(b)) + b),
    ),
    fmt_index=st.integers(0, 5),
)
def test_random_key_files(kind: str, content: bytes, fmt_index: int, fdir: Path) -> None:
    formats: list[str | None] = [None, *FORMATS[kind]]
    fmt = formats[fmt_index % len(formats)]
    path = put(fdir / f"r-{kind}", content)
    try:
        key = load(kind, path, fmt)
    except KeyFileError:
        return
    got = raw_bytes(key, fdir / "scratch") if kind != "secret" else _secret_bytes(key)
    candidates = [fmt] if fmt is not None else FORMATS[kind]
    assert got in {ref_decode(content, f, kind) for f in candidates}, content


def test_key_file_refusals_are_typed(fdir: Path, key_files: dict[tuple[str, str], bytes]) -> None:
    """Symlinks, loose permissions, directories, missing and oversized files, bad formats
    and lengths: each raises its documented exception type with no key bytes in it."""
    for kind, cls in KEY_CLASSES.items():
        good = put(fdir / f"good-{kind}", key_files[(kind, "raw")])
        link = fdir / f"link-{kind}"
        link.unlink(missing_ok=True)
        link.symlink_to(good)
        loose = put(fdir / f"loose-{kind}", key_files[(kind, "raw")])
        loose.chmod(0o644)
        big = put(fdir / f"big-{kind}", b"\xaa" * (600 * 1024))
        cases: list[tuple[tuple[Any, ...], dict[str, Any], type[BaseException]]] = [
            ((link,), {}, KeyFileError),
            ((loose,), {}, KeyFileError),
            ((fdir,), {}, KeyFileError),
            ((fdir / "missing",), {}, KeyFileError),
            ((big,), {}, KeyFileError),
            ((good,), {"format": "PEM"}, ValueError),
            ((good,), {"format": "rsa"}, ValueError),
            ((good,), {"format": 3}, TypeError),
            ((3,), {}, TypeError),
            ((None,), {}, TypeError),
            ((str(good) + "\0",), {}, KeyFileError),
        ]
        if kind == "secret":
            cases += [
                ((good,), {"format": "pem"}, ValueError),
                ((good,), {"length": 0}, ValueError),
                ((good,), {"length": -1}, ValueError),
                ((good,), {"length": 2**70}, ValueError),
                ((good,), {"length": 65537}, ValueError),
                ((good,), {"length": 1.0}, TypeError),
                ((good,), {"length": "32"}, TypeError),
            ]
        for args, kwargs, exc in cases:
            with pytest.raises(exc) as info:
                cls.from_file(*args, **kwargs)
            assert_no_secret(info.value, SECRET, SEED)


# ---------------------------------------------------------------------------------------
# Public keys and batch verification
# ---------------------------------------------------------------------------------------

PUBLIC = {
    "ed25519": (Ed25519PublicKey, c_ed25519.Ed25519PrivateKey),
    "x25519": (X25519PublicKey, c_x25519.X25519PrivateKey),
}


def _reference_public(kind: str, data: bytes, encoding: str) -> bytes | None:
    loader = serialization.load_pem_public_key
    if encoding == "der":
        loader = serialization.load_der_public_key
    try:
        k = loader(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        strict = _strict_pem(data, b"PUBLIC KEY") if encoding == "pem" else None
        if strict is None or strict == data:
            return None
        return _reference_public(kind, strict, encoding)
    want = c_ed25519.Ed25519PublicKey if kind == "ed25519" else c_x25519.X25519PublicKey
    return k.public_bytes_raw() if isinstance(k, want) else None


@pytest.mark.parametrize("kind", list(PUBLIC))
@pytest.mark.parametrize("encoding", ["raw", "der", "pem"])
@FUZZ
@given(data=st.data())
def test_public_key_parsers(kind: str, encoding: str, data: st.DataObject) -> None:
    cls, ref_cls = PUBLIC[kind]
    raw = ref_cls.from_private_bytes(SEED).public_key().public_bytes_raw()
    valid = {
        "raw": raw,
        "der": cls.from_public_bytes(raw).public_bytes_der(),
        "pem": cls.from_public_bytes(raw).public_bytes_pem(),
    }[encoding]
    src = "pem" if encoding == "pem" else "der"
    blob, _ = data.draw(
        st.one_of(mutated(valid, src), st.binary(max_size=120).map(lambda b: (b, False)))
    )
    parse = {
        "raw": cls.from_public_bytes,
        "der": cls.from_der,
        "pem": cls.from_pem,
    }[encoding]
    as_str = encoding == "pem" and data.draw(st.booleans())
    arg: Any = blob.decode("latin-1") if as_str else blob
    try:
        pk = parse(arg)
    except ValueError:
        return
    got = pk.public_bytes_raw()
    if encoding == "raw":
        assert got == blob
    elif got != raw:
        assert got == _reference_public(kind, blob, encoding), blob
    # Whatever parsed re-encodes and parses back to itself.
    assert cls.from_der(pk.public_bytes_der()) == pk
    assert cls.from_pem(pk.public_bytes_pem()) == pk


@pytest.mark.parametrize("kind", list(PUBLIC))
def test_public_key_odd_types(kind: str) -> None:
    cls, _ = PUBLIC[kind]
    for bad in (None, 3, 3.5, "x" * 32, ["a"], object()):
        for parse in (cls.from_public_bytes, cls.from_der):
            with pytest.raises(TypeError):
                parse(bad)
        if not isinstance(bad, str):
            with pytest.raises(TypeError):
                cls.from_pem(bad)
    for text in ("\udcff", "é" * 40, "\x00"):
        with pytest.raises(ValueError):
            cls.from_pem(text)


def _batch_items(draw: st.DrawFn) -> tuple[list[Any], bool]:
    """A batch with random malformations; the flag says whether it is fully valid."""
    sk = Ed25519PrivateKey.from_private_bytes(bytearray(SEED))
    pk = sk.public_key()
    items: list[Any] = []
    valid = True
    for i in range(draw(st.integers(0, 5))):
        msg = draw(st.binary(max_size=40))
        sig = sk.sign(msg)
        item: Any = (pk, sig, msg)
        what = draw(
            st.sampled_from(
                ["ok", "ok", "sig", "siglen", "msg", "pk", "arity", "type", "nontuple", "x25519"]
            )
        )
        if what == "sig":
            b = bytearray(sig)
            b[draw(st.integers(0, 63))] ^= 1 << draw(st.integers(0, 7))
            item = (pk, bytes(b), msg)
        elif what == "siglen":
            item = (pk, draw(st.binary(max_size=80).filter(lambda s: len(s) != 64)), msg)
        elif what == "msg":
            item = (pk, sig, msg + b"!")
        elif what == "pk":
            other = draw(st.binary(min_size=32, max_size=32))
            try:
                item = (Ed25519PublicKey.from_public_bytes(other), sig, msg)
            except ValueError:  # not a curve point: refused at construction
                item = (Ed25519PrivateKey.generate().public_key(), sig, msg)
        elif what == "arity":
            item = item[: draw(st.integers(0, 2))] + (item * 2)[3 : 3 + draw(st.integers(0, 2))]
            if len(item) == 3:
                item = (*item, b"")
        elif what == "type":
            j = draw(st.integers(0, 2))
            item = (*item[:j], draw(st.sampled_from([None, 1, "s", 2.0])), *item[j + 1 :])
        elif what == "nontuple":
            item = draw(st.sampled_from([None, 1, b"abc", list(item)]))
        elif what == "x25519":
            item = (X25519PrivateKey.generate().public_key(), sig, msg)
        if what != "ok":
            valid = False
        items.append(item)
        del i
    return items, valid


@FUZZ
@given(data=st.data())
def test_verify_batch_malformed(data: st.DataObject) -> None:
    items, valid = data.draw(st.composite(lambda d: _batch_items(d))())
    container = data.draw(st.sampled_from([list, tuple, iter]))
    try:
        ed25519_verify_batch(container(items))
    except (InvalidSignature, TypeError, ValueError):
        # A "pk" mutation that drew the right key, or a list item, can still verify;
        # only a fully valid batch must never fail.
        assert not valid
        return
    # Success: every item really verifies on its own.
    for item in items:
        pk, sig, msg = item
        pk.verify(sig, msg)


# ---------------------------------------------------------------------------------------
# Key store
# ---------------------------------------------------------------------------------------

FAST: Any = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
PASS = b"Zq8\xc3\xa9!x\xe2\x9c\x93Wm#4vK0~"
HEADER_LEN, TRAILER_LEN = 100, 64


@pytest.fixture(scope="module")
def stores(fdir: Path) -> dict[str, tuple[bytes, Callable[[], Any]]]:
    """A passphrase store and a master-key store, each with three entries."""
    master_bytes = hashlib.sha256(b"keycell fuzz master").digest()
    out: dict[str, tuple[bytes, Callable[[], Any]]] = {}
    for mode in ("passphrase", "key"):
        path = fdir / f"store-{mode}"

        def master(mode: str = mode) -> Any:
            return bytearray(PASS) if mode == "passphrase" else SecretKey.from_buffer(
                bytearray(master_bytes))

        if mode == "passphrase":
            s = KeyStore.create(path, master=master(), kdf_params=FAST)
        else:
            s = KeyStore.create(path, master=master())
        s.put("a", SecretKey.from_buffer(bytearray(SECRET)))
        s.put("ed", Ed25519PrivateKey.from_private_bytes(bytearray(SEED)))
        s.put("x" * 40, X25519PrivateKey.from_private_bytes(bytearray(SEED)))
        s.close()
        out[mode] = (path.read_bytes(), master)
    return out


def fix_checksum(data: bytes) -> bytes:
    if len(data) < HEADER_LEN + TRAILER_LEN:
        return data
    body = data[:-TRAILER_LEN]
    return body + hashlib.sha256(body).digest() + data[-32:]


def cheap_kdf(data: bytes) -> bool:
    """Whether the header's Argon2 parameters are cheap to run (a passphrase header can
    name up to 1 GiB x 1000 passes, which a test must not spend)."""
    if len(data) < 56 or data[10] != 1:
        return True
    mem, it, lanes = (int.from_bytes(data[i : i + 4], "big") for i in (44, 48, 52))
    return mem <= 4096 and it <= 2 and lanes <= 4


@pytest.mark.parametrize("mode", ["passphrase", "key"])
@FUZZ
@given(data=st.data())
def test_keystore_open_mutated(
    mode: str, data: st.DataObject, fdir: Path,
    stores: dict[str, tuple[bytes, Callable[[], Any]]],
) -> None:
    original, master = stores[mode]
    blob = data.draw(
        st.one_of(
            mutated(original, "store").map(lambda m: m[0]),
            st.binary(max_size=300),
            st.binary(max_size=200).map(lambda b: b"\x89KCSTORE\x00\x01" + b),
        )
    )
    # Most mutations are caught by the checksum; fixing it reaches the deeper checks
    # (entry layout, lengths, order, then the check value and the MAC).
    if data.draw(st.booleans()):
        blob = fix_checksum(blob)
    assume(cheap_kdf(blob))
    path = put(fdir / f"mutstore-{len(mode)}", blob)
    try:
        s = KeyStore.open(path, master=master())
    except KeyStoreError as e:
        assert_no_secret(e, SECRET, SEED, PASS, hashlib.sha256(b"keycell fuzz master").digest())
        return
    # Everything in the file is authenticated: only the unchanged file opens.
    assert blob == original
    assert s.names() == ["a", "ed", "x" * 40]
    s.close()


NAME = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.sampled_from(["", "a" * 255, "a" * 256, "é" * 128, "a\x00", "\udcff", "\u202e"]),
    st.none(),
    st.integers(),
    st.binary(max_size=4),
)


@FUZZ
@given(name=NAME, param=st.sampled_from(["memory_kib", "iterations", "lanes", "bogus", 3]),
       value=st.one_of(st.integers(-(2**70), 2**70), st.none(), st.text(max_size=3),
                       st.floats(allow_nan=True), st.booleans()))
def test_keystore_odd_arguments(
    name: Any, param: Any, value: Any, fdir: Path,
    stores: dict[str, tuple[bytes, Callable[[], Any]]],
) -> None:
    assume(name not in ("a", "ed", "x" * 40))  # the entries the store already has
    original, master = stores["key"]
    path = put(fdir / "odd-store", original)
    with KeyStore.open(path, master=master()) as s:
        key = SecretKey.from_buffer(bytearray(SECRET))
        try:
            s.put(name, key)
        except (TypeError, ValueError) as e:
            assert_no_secret(e, SECRET)
            with pytest.raises((TypeError, ValueError, KeyStoreError)):
                s.get(name)
            assert (name in s) is False
        else:
            assert isinstance(name, str)
            assert name in s
            assert s.get(name) == key
            s.delete(name)
            assert name not in s
    # kdf_params: only invalid values (a valid one could name a 1 GiB Argon2 run).
    ranges = {"memory_kib": (1024, 2**20), "iterations": (1, 1000), "lanes": (1, 16)}
    if param in ranges and isinstance(value, int):
        lo, hi = ranges[param]
        assume(not lo <= value <= hi)
    target = fdir / "odd-new-store"
    params = {"memory_kib": 1024, param: value}
    with pytest.raises((TypeError, ValueError)) as info:
        KeyStore.create(target, master=bytearray(PASS), kdf_params=params)
    assert not isinstance(info.value, KeyStoreError)
    assert not target.exists()


# ---------------------------------------------------------------------------------------
# HMAC, HKDF, destroyed keys
# ---------------------------------------------------------------------------------------

ODD = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.just(bytearray(b"ab")),
    st.just(memoryview(b"abc")),
    st.lists(st.integers(0, 255), max_size=3),
    st.just(object()),
)


def _typed(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ARGUMENT_ERRORS as e:
        assert_no_secret(e, SECRET)
        return e


@FUZZ
@given(data=ODD, tag=ODD, algorithm=ODD, length=ODD, salt=ODD, info=ODD)
def test_hmac_hkdf_odd_arguments(
    data: Any, tag: Any, algorithm: Any, length: Any, salt: Any, info: Any
) -> None:
    key = SecretKey.from_buffer(bytearray(SECRET))
    _typed(lambda: key.hmac(data))
    _typed(lambda: key.hmac(b"m", algorithm))
    _typed(lambda: key.verify_hmac(data, tag))
    _typed(lambda: key.verify_hmac(b"m", tag, algorithm))
    _typed(lambda: HMAC(key, algorithm))
    _typed(lambda: HMAC(data))
    h = HMAC(key)
    _typed(lambda: h.update(data))
    _typed(lambda: h.verify(tag))
    _typed(lambda: hkdf(key, length=length))
    _typed(lambda: hkdf(key, length=16, salt=salt, info=info, algorithm=algorithm))
    _typed(lambda: hkdf_extract(key, salt=salt, algorithm=algorithm))
    _typed(lambda: hkdf_expand(key, length=length, info=info))
    _typed(lambda: SecretKey.generate(length))
    _typed(lambda: SecretKey.from_buffer(data))
    _typed(lambda: Ed25519PrivateKey.from_private_bytes(data))
    _typed(lambda: X25519PrivateKey.from_private_bytes(data))


@FUZZ
@given(
    msg=st.binary(max_size=300),
    tag=st.binary(max_size=100),
    algorithm=st.sampled_from(["sha256", "sha384", "sha512"]),
    length=st.integers(-5, 20000),
)
def test_hmac_hkdf_sizes(msg: bytes, tag: bytes, algorithm: str, length: int) -> None:
    import hmac as std_hmac

    key = SecretKey.from_buffer(bytearray(SECRET))
    good = std_hmac.new(SECRET, msg, algorithm).digest()
    assert key.hmac(msg, algorithm) == good
    if std_hmac.compare_digest(tag, good[: len(tag)]) and len(tag) >= 16:
        key.verify_hmac(msg, tag, algorithm)
    else:
        with pytest.raises(InvalidSignature) as info:
            key.verify_hmac(msg, tag, algorithm)
        assert_no_secret(info.value, SECRET, good)
    digest = hashlib.new(algorithm).digest_size
    if 1 <= length <= 255 * digest:
        assert len(hkdf(key, length=length, algorithm=algorithm)) == length
    else:
        with pytest.raises(ValueError):
            hkdf(key, length=length, algorithm=algorithm)
    if 1 <= length <= 65536:
        assert len(SecretKey.generate(length)) == length
    else:
        with pytest.raises(ValueError):
            SecretKey.generate(length)


def _destroyed() -> Iterator[tuple[str, Callable[[], Any]]]:
    k = SecretKey.from_buffer(bytearray(SECRET))
    h = HMAC(k)
    ed = Ed25519PrivateKey.from_private_bytes(bytearray(SEED))
    x = X25519PrivateKey.from_private_bytes(bytearray(SEED))
    peer = X25519PrivateKey.generate().public_key()
    for obj in (k, ed, x):
        obj.destroy()
    yield "hmac", lambda: k.hmac(b"m")
    yield "verify_hmac", lambda: k.verify_hmac(b"m", b"\x00" * 32)
    yield "HMAC", lambda: HMAC(k)
    yield "HMAC.update", lambda: h.update(b"m")
    yield "hkdf", lambda: hkdf(k, length=16)
    yield "expose", lambda: k.expose().__enter__()
    yield "len", lambda: len(k)
    yield "to_file", lambda: k.to_file("/nonexistent/x")
    yield "sign", lambda: ed.sign(b"m")
    yield "ed.public_key", lambda: ed.public_key()
    yield "exchange", lambda: x.exchange(peer)
    yield "x.public_key", lambda: x.public_key()
    yield "store", lambda: KeyStore.open("/nonexistent/s", master=k)


@pytest.mark.parametrize(("name", "call"), list(_destroyed()), ids=[n for n, _ in _destroyed()])
def test_destroyed_keys_raise(name: str, call: Callable[[], Any]) -> None:
    # HMAC objects keep their own copy of the pads: updating one after its key was
    # destroyed is allowed; everything else raises KeyDestroyedError.
    if name == "HMAC.update":
        try:
            call()
        except KeyDestroyedError:
            pass
        return
    with pytest.raises(KeyDestroyedError):
        call()


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def test_cli_bad_arguments(fdir: Path, key_files: dict[tuple[str, str], bytes]) -> None:
    d = fdir / "cli"
    d.mkdir(exist_ok=True)
    junk = put(d / "junk", os.urandom(77))
    pw = put(d / "pw", b"pw\n")
    link = d / "link"
    link.unlink(missing_ok=True)
    link.symlink_to(put(d / "ed", key_files[("ed25519", "pem")]))
    loose = put(d / "loose", key_files[("ed25519", "pem")])
    loose.chmod(0o644)
    cases: list[list[str | Path]] = [
        ["keygen", "secret", "-o", d / "k1", "--length", "-1"],
        ["keygen", "secret", "-o", d / "k2", "--length", "0"],
        ["keygen", "secret", "-o", d / "k3", "--length", str(2**70)],
        ["keygen", "secret", "-o", d / "k4", "--length", "abc"],
        ["keygen", "ed25519", "-o", d / "k5", "--format", "xml"],
        ["pubkey", junk],
        ["pubkey", link],
        ["pubkey", loose],
        ["pubkey", d],
        ["pubkey", junk, "--type", "x25519", "--format", "der"],
        ["store", "list", junk, "--passphrase-file", pw],
        ["store", "list", d / "missing", "--passphrase-file", pw],
        ["store", "list", junk, "--master-key-file", junk],
        ["store", "get", junk, "a", "--passphrase-file", link, "--print-secret"],
        ["store", "init", d / "s", "--passphrase-file", pw, "--kdf-memory-kib", "-5"],
        ["store", "init", d / "s", "--passphrase-file", pw, "--kdf-lanes", str(2**40)],
    ]
    for args in cases:
        r = run_cli(*args)
        assert r.returncode in (1, 2), (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stderr.strip(), args
        for form in secret_forms(SEED):
            assert form.decode("latin-1") not in r.stderr + r.stdout
