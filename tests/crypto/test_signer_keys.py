"""The derivations behind the signer integrations, against hashlib/hmac:
``SecretKey.derive_digest`` (``H(prefix || key)``), ``SecretKey.hmac_key``
(``HMAC(key, data)`` as a key) and ``SecretKey.from_base64`` (padded or not, a prefix
skipped, the source wiped), and the binding of derived keys to their source key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from keycell import KeyDestroyedError, KeyNotExportableError, SecretKey

KEY = bytes(range(100, 150))
ALGS = ["sha1", "sha256", "sha384", "sha512"]


def _key(raw: bytes = KEY) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


def _bytes(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("prefix", [b"", b"itsdangerous.Signersigner", b"p" * 300])
def test_derive_digest_is_the_hash_of_prefix_and_key(alg: str, prefix: bytes) -> None:
    derived = _key().derive_digest(prefix, alg)
    assert _bytes(derived) == hashlib.new(alg, prefix + KEY).digest()
    assert len(derived) == hashlib.new(alg).digest_size
    assert _key().derive_digest(bytearray(prefix), alg.upper()) == derived


@pytest.mark.parametrize("alg", ALGS)
def test_hmac_key_is_the_hmac(alg: str) -> None:
    for data in (b"", b"salt", b"d" * 5000):
        derived = _key().hmac_key(data, alg)
        assert _bytes(derived) == hmac.new(KEY, data, alg).digest()


def test_default_algorithm_is_sha256_and_names_are_checked() -> None:
    assert _bytes(_key().derive_digest(b"x")) == hashlib.sha256(b"x" + KEY).digest()
    assert _bytes(_key().hmac_key(b"x")) == hmac.new(KEY, b"x", "sha256").digest()
    with pytest.raises(ValueError, match="unsupported HMAC algorithm"):
        _key().derive_digest(b"x", "md5")
    with pytest.raises(TypeError, match="bytes-like"):
        _key().derive_digest("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes-like"):
        _key().hmac_key(None)  # type: ignore[arg-type]


def test_derived_keys_are_bound_to_their_source() -> None:
    source = _key()
    a = source.derive_digest(b"a", "sha1")
    b = source.hmac_key(b"b", "sha256")
    source.seal_export()
    for derived in (a, b):
        with pytest.raises(KeyNotExportableError):
            derived.expose()
        assert not derived.exportable
    source.destroy()
    assert a.destroyed
    assert b.destroyed
    with pytest.raises(KeyDestroyedError):
        a.hmac(b"m")
    with pytest.raises(KeyDestroyedError):
        source.derive_digest(b"a")
    # A sealed source gives sealed derived keys from the start.
    sealed = SecretKey.from_buffer(bytearray(KEY), exportable=False)
    assert not sealed.derive_digest(b"a").exportable
    # Destroying a derived key leaves its source alone.
    other = _key()
    other.hmac_key(b"x").destroy()
    assert other.hmac(b"m") == hmac.new(KEY, b"m", "sha256").digest()


@pytest.mark.parametrize("length", [1, 2, 3, 16, 32, 33, 64])
def test_from_base64_padded_and_unpadded(length: int) -> None:
    raw = bytes((i * 37 + 5) % 256 for i in range(length))
    padded = base64.b64encode(raw)
    for text, prefix in (
        (padded, None),
        (padded.rstrip(b"="), None),
        (b"whsec_" + padded, b"whsec_"),
        (b"whsec_" + padded.rstrip(b"="), b"whsec_"),
        (padded, b"whsec_"),  # the prefix is optional
        (b"  " + padded + b"\n", None),  # whitespace is layout
    ):
        buf = bytearray(text)
        key = SecretKey.from_base64(buf, prefix=prefix)
        assert _bytes(key) == raw
        assert buf == bytearray(len(text)), "the source is wiped"


def test_from_base64_refusals() -> None:
    with pytest.raises(TypeError, match="cannot be wiped"):
        SecretKey.from_base64("QUJD")  # type: ignore[arg-type]
    for bad in (b"", b"Q", b"QUJD!", b"QU-D", b"QUI=QUI=", b"whsec_QUJD", b"QUJ==="):
        buf = bytearray(bad)
        with pytest.raises(ValueError, match="base64 key is not valid") as exc:
            SecretKey.from_base64(buf)
        if bad:
            assert bad.decode() not in str(exc.value)
        assert buf == bytearray(len(bad))
    keep = bytearray(b"QUJD")
    assert len(SecretKey.from_base64(keep, wipe=False)) == 3
    assert keep == bytearray(b"QUJD")
    assert not SecretKey.from_base64(bytearray(b"QUJD"), exportable=False).exportable
    # Read-only sources decode too (they cannot be wiped).
    assert _bytes(SecretKey.from_base64(b"QUJD")) == b"ABC"


@given(raw=st.binary(min_size=1, max_size=300), pad=st.booleans())
def test_from_base64_matches_the_stdlib(raw: bytes, pad: bool) -> None:
    text = base64.b64encode(raw)
    if not pad:
        text = text.rstrip(b"=")
    assert _bytes(SecretKey.from_base64(bytearray(text))) == raw


@given(text=st.binary(max_size=60))
def test_from_base64_accepts_what_strict_stdlib_accepts(text: bytes) -> None:
    """Arbitrary input decodes exactly when the stdlib's validating decoder (with the
    padding added back, whitespace removed) decodes it canonically, to the same bytes;
    otherwise ValueError."""
    body = bytes(c for c in text if c not in b" \t\r\n")
    try:
        want = base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
        if not want or base64.b64encode(want).rstrip(b"=") != body.rstrip(b"="):
            want = None
    except ValueError:
        want = None
    try:
        got = _bytes(SecretKey.from_base64(bytearray(text)))
    except ValueError:
        got = None
    assert got == want
