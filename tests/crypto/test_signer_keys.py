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


def test_sealing_cascades_through_every_generation() -> None:
    """Found by review: ``seal_export()`` sealed the keys derived from a key but not the
    keys derived from those (``Signer(k.hmac_key(...)).derive_key()``), nor the OTP
    objects made from a derived key; destroy cascaded, the seal did not."""
    from keycell.otp import TOTP

    root = _key()
    child = root.hmac_key(b"tokens", "sha256")
    grandchild = child.derive_digest(b"signer", "sha1")
    great = grandchild.hmac_key(b"deeper")
    totp = TOTP(child)
    for handle in (child, grandchild, great, totp):
        assert handle.exportable
    root.seal_export()
    for derived in (child, grandchild, great):
        assert not derived.exportable
        with pytest.raises(KeyNotExportableError):
            derived.expose()
    assert not totp.exportable
    with pytest.raises(KeyNotExportableError):
        totp.provisioning_uri("alice")
    # Made after the seal: sealed from the start, at every depth.
    assert not child.hmac_key(b"later").hmac_key(b"again").exportable
    # Sealing a middle generation seals below it, not above.
    other = _key()
    mid = other.hmac_key(b"m")
    low = mid.hmac_key(b"l")
    mid.seal_export()
    assert not low.exportable
    assert other.exportable
    root.destroy()
    for handle in (child, grandchild, great):
        assert handle.destroyed


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


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@st.composite
def _mutated_base64(draw: st.DrawFn) -> bytes:
    """Mostly valid base64 (padded or not), then none or a few mutations: a character
    replaced (by another of the alphabet, ``=``, whitespace or any byte), deleted or
    inserted, so that both acceptance and each refusal are reached often."""
    text = bytearray(base64.b64encode(draw(st.binary(max_size=45))))
    if draw(st.booleans()):
        text = bytearray(text.rstrip(b"="))
    pool = st.sampled_from(list(_B64_ALPHABET + b"= \t\r\n-_.")) | st.integers(0, 255)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["replace", "delete", "insert"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text.insert(at, draw(pool))
        elif text and at < len(text):
            if op == "replace":
                text[at] = draw(pool)
            else:
                del text[at]
    return bytes(text)


@given(text=_mutated_base64() | st.binary(max_size=60))
def test_from_base64_accepts_what_strict_stdlib_accepts(text: bytes) -> None:
    """Input decodes exactly when the stdlib's validating decoder (with the padding added
    back, whitespace removed) decodes it canonically, to the same bytes; otherwise
    ValueError. The input is mostly valid base64 with mutations (random bytes are rarely
    valid base64). Padding is added back only to unpadded text: padded text must be
    padded exactly as ``b64encode`` pads it (``AAAAAA=``, ``AAAA==`` are refused)."""
    body = bytes(c for c in text if c not in b" \t\r\n")
    try:
        padded = body if b"=" in body else body + b"=" * (-len(body) % 4)
        want = base64.b64decode(padded, validate=True)
        canonical = base64.b64encode(want)
        if not want or (canonical if b"=" in body else canonical.rstrip(b"=")) != body:
            want = None
    except ValueError:
        want = None
    try:
        got = _bytes(SecretKey.from_base64(bytearray(text)))
    except ValueError:
        got = None
    assert got == want


_WHSEC = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_from_base64_wipes_every_writable_buffer_it_reads_or_refuses() -> None:
    """Found by review: ``array('b')`` and ``array('I')`` (item formats other than
    unsigned bytes) and a non-contiguous writable view were refused and left holding
    the secret text. Now the first two are read where they are and wiped, and a
    refused writable buffer is wiped before the refusal."""
    import array

    signed = array.array("b", _WHSEC)
    assert _bytes(SecretKey.from_base64(signed, prefix=b"whsec_")) == base64.b64decode(
        _WHSEC[6:] + b"=="
    )
    assert not any(signed.tobytes())
    wide = array.array("I", b"QUJD" * 10)  # 40 bytes: ten 4-byte items
    assert _bytes(SecretKey.from_base64(wide)) == b"ABC" * 10
    assert not any(wide.tobytes())
    typo = array.array("I", _WHSEC + b"==")  # read, refused (too much padding), wiped
    with pytest.raises(ValueError, match="not valid"):
        SecretKey.from_base64(typo, prefix=b"whsec_")
    assert not any(typo.tobytes())
    doubled = bytearray(b"".join(bytes([c, c]) for c in _WHSEC))
    with pytest.raises(ValueError, match="contiguous"):
        SecretKey.from_base64(memoryview(doubled)[::2], prefix=b"whsec_")
    assert doubled[::2] == bytearray(len(_WHSEC)), "the viewed bytes are wiped"
    assert doubled[1::2] == bytearray(_WHSEC), "bytes outside the view are left alone"
    wide_source = array.array("I", bytes(range(1, 41)))
    with pytest.raises(ValueError, match="contiguous"):
        SecretKey.from_base64(memoryview(wide_source)[::2])
    assert wide_source[::2].tolist() == [0] * 5
    assert wide_source[1::2] == array.array("I", bytes(range(1, 41)))[1::2]
    # wipe=False leaves a refused buffer as it is.
    kept = bytearray(b"QUJD" * 2)
    with pytest.raises(ValueError, match="contiguous"):
        SecretKey.from_base64(memoryview(kept)[::2], wipe=False)
    assert kept == bytearray(b"QUJD" * 2)
