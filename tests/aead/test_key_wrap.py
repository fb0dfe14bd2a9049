"""``keycell.wrap_key``/``unwrap_key``: every handle type round-trips to the same type with
the same secret and export seal; the blob's header (type, seal, length) is authenticated;
a wrong wrapping key, a flipped bit or a truncated blob is refused with a typed error."""

from __future__ import annotations

from pathlib import Path

import keycell
import pytest
from keycell import ECPrivateKey, Ed25519PrivateKey, RSAPrivateKey, SecretKey, X25519PrivateKey


def _same(a: object, b: object) -> bool:
    if isinstance(a, SecretKey):
        return a == b
    assert isinstance(a, (Ed25519PrivateKey, X25519PrivateKey, ECPrivateKey, RSAPrivateKey))
    assert isinstance(b, type(a))
    if isinstance(a, ECPrivateKey):
        assert isinstance(b, ECPrivateKey)
        assert a.curve == b.curve
    return a.public_key() == b.public_key()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "make",
    [
        lambda: SecretKey.generate(1),
        lambda: SecretKey.generate(32),
        lambda: SecretKey.generate(1000, exportable=False),
        lambda: Ed25519PrivateKey.generate(),
        lambda: X25519PrivateKey.generate(exportable=False),
        lambda: ECPrivateKey.generate("P-256"),
        lambda: ECPrivateKey.generate("P-384", exportable=False),
    ],
    ids=[
        "secret-1",
        "secret-32",
        "secret-sealed",
        "ed25519",
        "x25519-sealed",
        "ec-p256",
        "ec-p384-sealed",
    ],
)
def test_roundtrip_keeps_type_secret_and_seal(make: object) -> None:
    key = make()  # type: ignore[operator]
    kek = SecretKey.generate(32)
    blob = keycell.wrap_key(kek, key)
    back = keycell.unwrap_key(kek, blob)
    assert type(back) is type(key)
    assert back.exportable == key.exportable
    assert _same(key, back)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises((keycell.InvalidTag, ValueError)):
            keycell.unwrap_key(kek, bytes(bad))
    with pytest.raises(keycell.InvalidTag):
        keycell.unwrap_key(SecretKey.generate(32), blob)
    for n in (0, 9, 10, 33, len(blob) - 1):
        with pytest.raises(ValueError, match="not a wrapped key"):
            keycell.unwrap_key(kek, blob[:n])


def test_header_is_authenticated() -> None:
    kek = SecretKey.generate(32)
    blob = bytearray(keycell.wrap_key(kek, SecretKey.generate(32, exportable=False)))
    blob[5] = 1  # claim "exportable"
    with pytest.raises(keycell.InvalidTag):
        keycell.unwrap_key(kek, bytes(blob))
    blob[5] = 0
    blob[4] = 3  # claim X25519 (same length)
    with pytest.raises(keycell.InvalidTag):
        keycell.unwrap_key(kek, bytes(blob))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        keycell.wrap_key(SecretKey.generate(16), SecretKey.generate(16))
    with pytest.raises(TypeError):
        keycell.wrap_key(SecretKey.generate(32), b"raw key bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keycell.wrap_key(b"k" * 32, SecretKey.generate(16))  # type: ignore[arg-type]
    kek = SecretKey.generate(32)
    with pytest.raises(ValueError, match="cannot wrap itself"):
        keycell.wrap_key(kek, kek)
    key = SecretKey.generate(16)
    blob = keycell.wrap_key(kek, key)
    key.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        keycell.wrap_key(kek, key)
    kek.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        keycell.unwrap_key(kek, blob)


def test_ec_blob_holds_the_scalar_and_names_the_curve() -> None:
    # The blob's body is the scalar (32 or 48 bytes) under kind 4 (P-256) or 5 (P-384);
    # the unwrapped key signs for the original public key.
    kek = SecretKey.generate(32)
    for curve, kind, width in (("P-256", 4, 32), ("P-384", 5, 48)):
        key = ECPrivateKey.generate(curve)
        blob = keycell.wrap_key(kek, key)
        assert blob[:4] == b"KCW1"
        assert (blob[4], blob[5]) == (kind, 1)
        assert int.from_bytes(blob[6:10]) == width
        assert len(blob) == 10 + 24 + width + 16
        back = keycell.unwrap_key(kek, blob)
        assert isinstance(back, ECPrivateKey)
        key.public_key().verify(back.sign(b"m", encoding="raw"), b"m", encoding="raw")
        # The other curve's kind byte: refused (the length does not fit it, and the
        # header is authenticated anyway).
        other = bytearray(blob)
        other[4] = 9 - kind
        with pytest.raises(ValueError, match="not a wrapped key"):
            keycell.unwrap_key(kek, bytes(other))
    # A 32-byte Ed25519 blob relabelled as a P-256 scalar: the tag catches it.
    blob = bytearray(keycell.wrap_key(kek, Ed25519PrivateKey.generate()))
    blob[4] = 4
    with pytest.raises(keycell.InvalidTag):
        keycell.unwrap_key(kek, bytes(blob))


def test_rsa_keys_wrap_as_their_pkcs1_der(tmp_path: Path) -> None:
    # Kind 6, the body the PKCS#1 DER (what to_file(format="der", traditional=True)
    # writes); the unwrapped key signs for the original public key; sealed stays sealed.
    kek = SecretKey.generate(32)
    key = RSAPrivateKey.generate(2048)
    key.to_file(tmp_path / "k.der", format="der", traditional=True)
    der = (tmp_path / "k.der").read_bytes()
    blob = keycell.wrap_key(kek, key)
    assert (blob[4], blob[5]) == (6, 1)
    assert int.from_bytes(blob[6:10]) == len(der)
    assert len(blob) == 10 + 24 + len(der) + 16
    assert der not in blob
    back = keycell.unwrap_key(kek, blob)
    assert isinstance(back, RSAPrivateKey)
    assert back.public_key() == key.public_key()
    key.public_key().verify(back.sign(b"m"), b"m")
    sealed = RSAPrivateKey.from_der(bytearray(der), exportable=False)
    again = keycell.unwrap_key(kek, keycell.wrap_key(kek, sealed))
    assert isinstance(again, RSAPrivateKey)
    assert not again.exportable
    # Not DER inside, with a genuine tag: refused as a key, not a crash.
    junk = SecretKey.from_buffer(bytearray(b"\x30\x03\x02\x01\x00" * 10))
    relabelled = bytearray(keycell.wrap_key(kek, junk))
    relabelled[4] = 6
    with pytest.raises(keycell.InvalidTag):
        keycell.unwrap_key(kek, bytes(relabelled))
    for k in (key, back, sealed, again):
        k.destroy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: SecretKey.generate(32),
        Ed25519PrivateKey.generate,
        X25519PrivateKey.generate,
        ECPrivateKey.generate,
    ],
    ids=["secret", "ed25519", "x25519", "ec"],
)
def test_methods_on_the_wrapping_key(make: object) -> None:
    """``kek.wrap_key(key)`` / ``kek.unwrap_key(blob)`` are the module functions as methods:
    each unwraps the other's blob."""
    key = make()  # type: ignore[operator]
    kek = SecretKey.generate(32)
    blob = kek.wrap_key(key)
    back = kek.unwrap_key(blob)
    assert type(back) is type(key)
    assert _same(key, back)
    assert _same(key, keycell.unwrap_key(kek, blob))
    assert _same(key, kek.unwrap_key(keycell.wrap_key(kek, key)))
    with pytest.raises(keycell.InvalidTag):
        SecretKey.generate(32).unwrap_key(blob)
    with pytest.raises(ValueError, match="itself"):
        kek.wrap_key(kek)
    with pytest.raises(ValueError, match="256 bits"):
        SecretKey.generate(16).wrap_key(key)
    with pytest.raises(TypeError):
        kek.wrap_key(b"\x00" * 32)  # type: ignore[arg-type]
    kek.destroy()
    with pytest.raises(keycell.KeyDestroyedError):
        kek.wrap_key(key)
