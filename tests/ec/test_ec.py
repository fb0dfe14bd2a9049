"""ECPrivateKey / ECPublicKey (P-256, P-384): API, handle behaviour, bad input, key files,
interop both ways with pyca/cryptography and the openssl command line, the key store,
threads and fork."""

from __future__ import annotations

import copy
import os
import pickle
import threading
from pathlib import Path

import pytest
from asym_support import ec_sec1_der, needs_openssl, openssl, run_child, write_key_file
from cryptography.exceptions import InvalidSignature as PycaInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec as pyca
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import (
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    InsecureKeyFileError,
    InvalidSignature,
    KeyDestroyedError,
    KeyFileError,
    KeyNotExportableError,
    KeyStore,
    Protection,
    SecretKey,
    X25519PrivateKey,
)

CURVES = ["P-256", "P-384"]
PYCA_CURVE = {"P-256": pyca.SECP256R1(), "P-384": pyca.SECP384R1()}
HASH = {"P-256": hashes.SHA256(), "P-384": hashes.SHA384()}
WIDTH = {"P-256": 32, "P-384": 48}
OPENSSL_NAME = {"P-256": "prime256v1", "P-384": "secp384r1"}
DGST = {"P-256": "-sha256", "P-384": "-sha384"}


def pyca_key(curve: str) -> pyca.EllipticCurvePrivateKey:
    return pyca.generate_private_key(PYCA_CURVE[curve])


def pkcs8_pem(k: pyca.EllipticCurvePrivateKey) -> bytearray:
    return bytearray(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def scalar(k: pyca.EllipticCurvePrivateKey, curve: str) -> bytes:
    return k.private_numbers().private_value.to_bytes(WIDTH[curve], "big")


def point(k: pyca.EllipticCurvePublicKey) -> bytes:
    return k.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def secret_bytes(k: SecretKey) -> bytes:
    with k.expose() as view:
        return bytes(view)


# ---- generate, sign, verify -----------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_generate_sign_verify(curve: str) -> None:
    k = ECPrivateKey.generate(curve)
    assert (k.curve, k.key_size) == (curve, 8 * WIDTH[curve])
    pk = k.public_key()
    assert (pk.curve, pk.key_size) == (curve, 8 * WIDTH[curve])
    der = k.sign(b"message")
    pk.verify(der, b"message")
    raw = k.sign(bytearray(b"message"), encoding="raw")
    assert len(raw) == 2 * WIDTH[curve]
    pk.verify(raw, memoryview(b"message"), encoding="raw")
    with pytest.raises(InvalidSignature):
        pk.verify(der, b"messagf")
    with pytest.raises(InvalidSignature):
        pk.verify(raw, b"message")  # raw given as DER
    with pytest.raises(InvalidSignature):
        pk.verify(der, b"message", encoding="raw")
    # A long message (GIL released) signs and verifies too.
    long = b"x" * 100_000
    pk.verify(k.sign(long), long)


def test_default_curve_and_bad_arguments() -> None:
    assert ECPrivateKey.generate().curve == "P-256"
    for bad in ("P-521", "secp256k1", "p256", ""):
        with pytest.raises(ValueError, match="curve must be"):
            ECPrivateKey.generate(bad)  # type: ignore[arg-type]
    k = ECPrivateKey.generate()
    with pytest.raises(ValueError, match="encoding must be"):
        k.sign(b"m", encoding="p1363")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="encoding must be"):
        k.public_key().verify(b"", b"m", encoding="jose")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        k.sign("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        k.public_key().verify("sig", b"m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an ECPublicKey"):
        k.exchange(X25519PrivateKey.generate().public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be an ECPublicKey"):
        k.exchange(b"\x04" * 65)  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", CURVES)
def test_wrong_signature_lengths_and_encodings(curve: str) -> None:
    k = ECPrivateKey.generate(curve)
    pk = k.public_key()
    raw = k.sign(b"m", encoding="raw")
    der = k.sign(b"m")
    for bad in (b"", raw[:-1], raw + b"\x00", b"\x00" + raw, bytes(len(raw))):
        with pytest.raises(InvalidSignature):
            pk.verify(bad, b"m", encoding="raw")
    for bad in (b"", der[:-1], der + b"\x00", b"\x30\x00", b"\x30\x80" + der[2:] + b"\x00\x00"):
        with pytest.raises(InvalidSignature):
            pk.verify(bad, b"m")
    # r and s swapped, or s replaced by n - s (pyca accepts it too: ECDSA is malleable).
    r, s = decode_dss_signature(der)
    with pytest.raises(InvalidSignature):
        pk.verify(encode_dss_signature(s, r), b"m")
    order = {"P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             "P-384": int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
                          "581a0db248b0a77aecec196accc52973", 16)}[curve]  # fmt: skip
    pk.verify(encode_dss_signature(r, order - s), b"m")
    with pytest.raises(InvalidSignature):
        pk.verify(encode_dss_signature(r, s + order), b"m")


@pytest.mark.parametrize("curve", CURVES)
def test_signatures_are_randomized_and_verify_in_pyca(curve: str) -> None:
    k = ECPrivateKey.generate(curve)
    sigs = {k.sign(b"same message") for _ in range(4)}
    assert len(sigs) == 4  # fresh randomness in every nonce
    theirs = serialization.load_der_public_key(k.public_key().public_bytes_der())
    assert isinstance(theirs, pyca.EllipticCurvePublicKey)
    for sig in sigs:
        theirs.verify(sig, b"same message", pyca.ECDSA(HASH[curve]))
    raw = k.sign(b"jose", encoding="raw")
    r, s = int.from_bytes(raw[: WIDTH[curve]]), int.from_bytes(raw[WIDTH[curve] :])
    theirs.verify(encode_dss_signature(r, s), b"jose", pyca.ECDSA(HASH[curve]))
    with pytest.raises(PycaInvalidSignature):
        theirs.verify(k.sign(b"a"), b"b", pyca.ECDSA(HASH[curve]))


# ---- pyca interop both ways -----------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_pyca_keys_load_and_agree(curve: str) -> None:
    theirs = pyca_key(curve)
    pem = pkcs8_pem(theirs)
    k = ECPrivateKey.from_pem(pem)
    assert pem == bytearray(len(pem))  # the bytearray was wiped
    assert k.curve == curve
    assert k.public_key().public_bytes_x962() == point(theirs.public_key())
    # pyca's signature verifies here; ours verifies there.
    sig = theirs.sign(b"hello", pyca.ECDSA(HASH[curve]))
    k.public_key().verify(sig, b"hello")
    theirs.public_key().verify(k.sign(b"hello"), b"hello", pyca.ECDSA(HASH[curve]))
    # ECDH agrees both ways.
    peer = pyca_key(curve)
    shared = k.exchange(ECPublicKey.from_public_bytes(curve, point(peer.public_key())))
    assert isinstance(shared, SecretKey)
    assert secret_bytes(shared) == peer.exchange(pyca.ECDH(), theirs.public_key())
    assert len(shared) == WIDTH[curve]
    # DER (PKCS#8 and traditional SEC1) load the same key.
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        der = theirs.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        assert ECPrivateKey.from_der(der).public_key() == k.public_key()
        pem2 = theirs.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        assert ECPrivateKey.from_pem(pem2).public_key() == k.public_key()


@pytest.mark.parametrize("curve", CURVES)
def test_keycell_files_load_in_pyca(curve: str, tmp_path: Path) -> None:
    k = ECPrivateKey.generate(curve)
    for fmt in ("pem", "der"):
        path = tmp_path / f"k.{fmt}"
        k.to_file(path, format=fmt)  # type: ignore[arg-type]
        assert path.stat().st_mode & 0o777 == 0o600
        data = path.read_bytes()
        loader = (
            serialization.load_pem_private_key
            if fmt == "pem"
            else serialization.load_der_private_key
        )
        theirs = loader(data, password=None)
        assert isinstance(theirs, pyca.EllipticCurvePrivateKey)
        assert point(theirs.public_key()) == k.public_key().public_bytes_x962()
        # Byte for byte what pyca (OpenSSL) writes for the same key.
        enc = serialization.Encoding.PEM if fmt == "pem" else serialization.Encoding.DER
        assert data == theirs.private_bytes(
            enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        loaded = ECPrivateKey.from_file(path)
        assert loaded.public_key() == k.public_key()
        assert ECPrivateKey.from_file(path, curve=curve, format=fmt).curve == curve  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", CURVES)
def test_public_key_encodings(curve: str) -> None:
    theirs = pyca_key(curve).public_key()
    der = theirs.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = theirs.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    compressed = theirs.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    pk = ECPublicKey.from_der(der)
    assert pk == ECPublicKey.from_pem(pem) == ECPublicKey.from_pem(pem.decode())
    assert pk == ECPublicKey.from_public_bytes(curve, compressed)
    assert pk == ECPublicKey.from_public_bytes(curve, point(theirs))
    assert pk.public_bytes_der() == der
    assert pk.public_bytes_pem() == pem
    assert pk.public_bytes_x962() == point(theirs)
    assert pk.public_bytes_x962(compressed=True) == compressed
    assert hash(pk) == hash(ECPublicKey.from_der(der))
    assert pk != ECPrivateKey.generate(curve).public_key()
    assert pk != object()
    assert repr(pk) == f"<ECPublicKey {curve} {point(theirs).hex()}>"
    assert pickle.loads(pickle.dumps(pk)) == pk
    assert copy.copy(pk) is pk
    assert copy.deepcopy(pk) is pk


@pytest.mark.parametrize("curve", CURVES)
def test_invalid_points_are_refused(curve: str) -> None:
    good = point(pyca_key(curve).public_key())
    n = WIDTH[curve]
    off_curve = good[:-1] + bytes([good[-1] ^ 1])
    x_too_big = b"\x04" + b"\xff" * (2 * n)
    for bad in (b"", b"\x00", good[:-1], good + b"\x00", off_curve, x_too_big,
                b"\x05" + good[1:], b"\x02" + b"\xff" * n,
                # The sec1 crate's "compact" form 05 || x (OpenSSL and pyca refuse it; it
                # decoded to Q or -Q), and 04/02 prefixes at the other form's length.
                b"\x05" + good[1 : 1 + n], b"\x04" + good[1 : 1 + n],
                b"\x02" + good[1:]):  # fmt: skip
        with pytest.raises(ValueError, match=f"not a valid {curve} public key"):
            ECPublicKey.from_public_bytes(curve, bad)
    # The other curve's point has the wrong length.
    other = "P-384" if curve == "P-256" else "P-256"
    with pytest.raises(ValueError):
        ECPublicKey.from_public_bytes(other, good)
    with pytest.raises(ValueError, match="invalid EC public key DER"):
        ECPublicKey.from_der(b"\x30\x03\x02\x01\x00")
    ed_der = Ed25519PrivateKey.generate().public_key().public_bytes_der()
    with pytest.raises(ValueError, match="not an EC public key"):
        ECPublicKey.from_der(ed_der)
    with pytest.raises(ValueError, match="invalid EC public key PEM"):
        ECPublicKey.from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_exchange_curve_mismatch() -> None:
    a = ECPrivateKey.generate("P-256")
    b = ECPrivateKey.generate("P-384")
    with pytest.raises(ValueError, match="P-384 key, this private key is a P-256 key"):
        a.exchange(b.public_key())


# ---- handle behaviour -----------------------------------------------------------------


def test_repr_protection_text_refusal_pickle() -> None:
    theirs = pyca_key("P-256")
    k = ECPrivateKey.from_pem(pkcs8_pem(theirs))
    pub = point(theirs.public_key()).hex()
    assert repr(k) == f"<ECPrivateKey curve=P-256 public={pub}>"
    assert scalar(theirs, "P-256").hex() not in repr(k)
    assert isinstance(k.protection, Protection)
    for conv in (str, bytes, int, format, iter, os.fspath):
        with pytest.raises(TypeError):
            conv(k)  # type: ignore[call-overload, arg-type]
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="ECPrivateKey cannot be"):
            dump(k)
    with pytest.raises(TypeError):
        hash(k)
    k.destroy()
    assert repr(k) == "<ECPrivateKey destroyed>"


def test_destroy_and_use_after_destroy(tmp_path: Path) -> None:
    k = ECPrivateKey.generate()
    peer = ECPrivateKey.generate().public_key()
    with k:
        shared = k.exchange(peer)
    assert k.destroyed
    k.destroy()  # idempotent
    for use in (
        lambda: k.sign(b"m"),
        lambda: k.exchange(peer),
        k.public_key,
        lambda: k.to_file(tmp_path / "k.pem"),
        lambda: k.protection,
    ):
        with pytest.raises(KeyDestroyedError):
            use()
    # The shared secret outlives the key.
    assert len(secret_bytes(shared)) == 32


def test_sealed_key_cannot_be_exported(tmp_path: Path) -> None:
    k = ECPrivateKey.generate(exportable=False)
    assert not k.exportable
    with pytest.raises(KeyNotExportableError):
        k.to_file(tmp_path / "k.pem")
    # A sealed key's shared secret is sealed too.
    shared = k.exchange(ECPrivateKey.generate().public_key())
    assert not shared.exportable
    k2 = ECPrivateKey.generate()
    k2.seal_export()
    with pytest.raises(KeyNotExportableError):
        k2.to_file(tmp_path / "k2.pem")
    assert not (tmp_path / "k2.pem").exists()


def written_scalar(k: ECPrivateKey, tmp_path: Path) -> int:
    """The scalar of ``k``, read back through a key file and pyca."""
    path = tmp_path / f"scalar-{os.urandom(4).hex()}.der"
    k.to_file(path, format="der")
    theirs = serialization.load_der_private_key(path.read_bytes(), password=None)
    assert isinstance(theirs, pyca.EllipticCurvePrivateKey)
    return theirs.private_numbers().private_value


def test_loaded_scalar_is_kept(tmp_path: Path) -> None:
    theirs = pyca_key("P-384")
    k = ECPrivateKey.from_der(
        theirs.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert written_scalar(k, tmp_path) == theirs.private_numbers().private_value


# ---- bad private keys ------------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_invalid_scalars_are_refused(curve: str, tmp_path: Path) -> None:
    order_hex = {
        "P-256": "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        "P-384": "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
    }[curve]
    n = bytes.fromhex(order_hex)
    for bad in (bytes(WIDTH[curve]), n, b"\xff" * WIDTH[curve]):
        with pytest.raises(ValueError, match="not a valid scalar") as e:
            ECPrivateKey.from_der(ec_sec1_der(curve, bad))
        assert bad.hex() not in str(e.value)
    # n - 1 is valid; a scalar of any other length than the order's is refused (RFC 5915;
    # pyca and OpenSSL 3 refuse short ones too), with the length in the message.
    top = ECPrivateKey.from_der(ec_sec1_der(curve, (int(order_hex, 16) - 1).to_bytes(WIDTH[curve])))
    assert top.curve == curve
    assert written_scalar(top, tmp_path) == int(order_hex, 16) - 1
    for length in (1, 2, WIDTH[curve] - 1, WIDTH[curve] + 1):
        with pytest.raises(ValueError, match=f"exactly {WIDTH[curve]} bytes"):
            ECPrivateKey.from_der(ec_sec1_der(curve, b"\x01" * length))


@pytest.mark.parametrize("size", [0, 16 * 1024 + 1])
def test_a_source_refused_before_the_copy_is_left_to_its_owner(size: int) -> None:
    """As ``SecretKey.from_buffer``: a source refused for its size is not wiped (it is still
    the caller's only copy); the docs say so (the EC review read them as promising a wipe)."""
    pem = bytearray(pkcs8_pem(pyca_key("P-256")).ljust(size, b"\n") if size else b"")
    before = bytes(pem)
    with pytest.raises(ValueError, match="bytes of PEM"):
        ECPrivateKey.from_pem(pem)
    assert pem == before


def test_a_source_that_fails_to_decode_after_the_copy_is_wiped() -> None:
    pem = pkcs8_pem(pyca_key("P-256"))
    pem[40] ^= 0x01  # breaks the base64 body
    with pytest.raises(ValueError):
        ECPrivateKey.from_pem(pem)
    assert pem == bytearray(len(pem))


def test_malformed_private_keys() -> None:
    good = pkcs8_pem(pyca_key("P-256"))
    cases: list[tuple[bytes, str]] = [
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "invalid EC"),
        (bytes(good[:-40]), "invalid EC"),
        (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "expected"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "encrypted",
        ),
    ]
    for data, msg in cases:
        with pytest.raises(ValueError, match=msg):
            ECPrivateKey.from_pem(data)
    ed = Ed25519PrivateKey.generate()
    with pytest.raises(ValueError):
        ECPrivateKey.from_der(b"\x30\x03\x02\x01\x00")
    with pytest.raises(TypeError, match="not str"):
        ECPrivateKey.from_pem(bytes(good).decode())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data must be"):
        ECPrivateKey.from_der(b"")
    del ed


@needs_openssl
def test_explicit_parameters_and_other_curves_are_refused(tmp_path: Path) -> None:
    explicit = openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-param_enc", "explicit"
    )
    with pytest.raises(ValueError, match="explicit curve parameters are not supported"):
        ECPrivateKey.from_pem(explicit)
    for name, shown in (("secp256k1", "secp256k1"), ("secp521r1", "P-521")):
        other = openssl("ecparam", "-name", name, "-genkey", "-noout")
        with pytest.raises(ValueError, match=f"on {shown}; only P-256 and P-384"):
            ECPrivateKey.from_pem(other)
        path = write_key_file(tmp_path / name, other)
        with pytest.raises(KeyFileError, match="only P-256 and P-384"):
            ECPrivateKey.from_file(path)


# ---- key files ---------------------------------------------------------------------------


@pytest.mark.parametrize("curve", CURVES)
def test_from_file_curve_and_format_checks(curve: str, tmp_path: Path) -> None:
    k = ECPrivateKey.generate(curve)
    path = tmp_path / "k.pem"
    k.to_file(path)
    other = "P-384" if curve == "P-256" else "P-256"
    with pytest.raises(KeyFileError, match=f"this is a {curve} key, not a {other} key"):
        ECPrivateKey.from_file(path, curve=other)  # type: ignore[arg-type]
    with pytest.raises(KeyFileError):
        ECPrivateKey.from_file(path, format="der")
    for fmt in ("raw", "hex", "base64"):
        with pytest.raises(ValueError, match="not available for ec-p"):
            ECPrivateKey.from_file(path, format=fmt)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not available for ec-p"):
            k.to_file(tmp_path / "x", format=fmt)  # type: ignore[arg-type]
    with pytest.raises(KeyFileError, match="already exists"):
        k.to_file(path)  # no overwrite
    k.to_file(path, overwrite=True)
    # A file with another user's permissions, a symlink: refused as insecure.
    os.chmod(path, 0o644)
    with pytest.raises(InsecureKeyFileError):
        ECPrivateKey.from_file(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.pem"
    link.symlink_to(path)
    with pytest.raises(InsecureKeyFileError):
        ECPrivateKey.from_file(link)
    # Raw bytes are not an EC key file.
    raw = write_key_file(tmp_path / "raw", os.urandom(WIDTH[curve]))
    with pytest.raises(KeyFileError, match="not an EC private key"):
        ECPrivateKey.from_file(raw)


def test_stored_public_key_must_match(tmp_path: Path) -> None:
    a, b = pyca_key("P-256"), pyca_key("P-256")
    der = a.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    # Replace the public key in the SEC1 structure with b's.
    forged = der.replace(point(a.public_key()), point(b.public_key()))
    assert forged != der
    with pytest.raises(ValueError, match="does not belong"):
        ECPrivateKey.from_der(forged)
    path = write_key_file(tmp_path / "forged.der", forged)
    with pytest.raises(KeyFileError, match="does not belong"):
        ECPrivateKey.from_file(path)


#: ``EC PARAMETERS`` blocks as ``openssl ecparam -genkey`` writes them before the key.
EC_PARAMETERS = {
    "P-256": b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
    "P-384": b"-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n",
}


@pytest.mark.parametrize("curve", CURVES)
def test_an_ec_parameters_block_must_name_the_keys_curve(curve: str, tmp_path: Path) -> None:
    """EC review: a block naming another curve than the key's was ignored."""
    other = "P-384" if curve == "P-256" else "P-256"
    k = pyca_key(curve)
    for fmt in (serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8):
        pem = k.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        ours = ECPrivateKey.from_pem(EC_PARAMETERS[curve] + pem)
        assert ours.public_key() == ECPublicKey.from_public_bytes(curve, point(k.public_key()))
        message = f"the EC PARAMETERS block names {other}, but the key is a {curve} key"
        with pytest.raises(ValueError, match=message):
            ECPrivateKey.from_pem(EC_PARAMETERS[other] + pem)
        path = write_key_file(tmp_path / "mixed.pem", EC_PARAMETERS[other] + pem)
        with pytest.raises(KeyFileError, match=message):
            ECPrivateKey.from_file(path)
    # A block naming an unsupported curve, or not closed, is refused too.
    secp256k1 = b"-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n"
    with pytest.raises(ValueError, match="secp256k1"):
        ECPrivateKey.from_pem(secp256k1 + pem)
    with pytest.raises(ValueError, match="no END line"):
        ECPrivateKey.from_pem(b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n" + pem)


# ---- openssl interop ------------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("curve", CURVES)
def test_openssl_keys_load_and_signatures_verify_both_ways(curve: str, tmp_path: Path) -> None:
    # `openssl ecparam -genkey` writes "EC PARAMETERS" then a SEC1 "EC PRIVATE KEY".
    sec1 = write_key_file(
        tmp_path / "sec1.pem", openssl("ecparam", "-name", OPENSSL_NAME[curve], "-genkey")
    )
    assert b"BEGIN EC PARAMETERS" in sec1.read_bytes()
    pkcs8 = tmp_path / "pkcs8.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}",
            "-out", str(pkcs8))  # fmt: skip
    os.chmod(pkcs8, 0o600)
    for path in (sec1, pkcs8):
        k = ECPrivateKey.from_file(path)
        assert k.curve == curve
        pub_pem = openssl("pkey", "-in", str(path), "-pubout")
        assert k.public_key() == ECPublicKey.from_pem(pub_pem)
        # keycell signs, openssl verifies.
        msg = tmp_path / "msg"
        msg.write_bytes(b"signed by keycell")
        sig = tmp_path / "sig"
        sig.write_bytes(k.sign(b"signed by keycell"))
        pub = tmp_path / "pub.pem"
        pub.write_bytes(k.public_key().public_bytes_pem())
        out = openssl("dgst", DGST[curve], "-verify", str(pub), "-signature", str(sig), str(msg))
        assert b"Verified OK" in out
        # openssl signs, keycell verifies.
        msg.write_bytes(b"signed by openssl")
        their_sig = openssl("dgst", DGST[curve], "-sign", str(path), str(msg))
        k.public_key().verify(their_sig, b"signed by openssl")
        with pytest.raises(InvalidSignature):
            k.public_key().verify(their_sig, b"signed by someone else")
    # keycell's key file: openssl reads it and writes the same bytes back.
    k = ECPrivateKey.generate(curve)
    ours = tmp_path / "ours.pem"
    k.to_file(ours)
    assert openssl("pkey", "-in", str(ours)) == ours.read_bytes()
    assert ECPublicKey.from_pem(openssl("pkey", "-in", str(ours), "-pubout")) == k.public_key()


@needs_openssl
@pytest.mark.parametrize("curve", CURVES)
def test_ecdh_agrees_with_openssl(curve: str, tmp_path: Path) -> None:
    mine = ECPrivateKey.generate(curve)
    mine_path = tmp_path / "mine.pem"
    mine.to_file(mine_path)
    peer_path = write_key_file(
        tmp_path / "peer.pem", openssl("ecparam", "-name", OPENSSL_NAME[curve], "-genkey", "-noout")
    )
    peer_pub = tmp_path / "peer.pub"
    peer_pub.write_bytes(openssl("pkey", "-in", str(peer_path), "-pubout"))
    mine_pub = tmp_path / "mine.pub"
    mine_pub.write_bytes(mine.public_key().public_bytes_pem())
    theirs = openssl("pkeyutl", "-derive", "-inkey", str(peer_path), "-peerkey", str(mine_pub))
    ours = mine.exchange(ECPublicKey.from_pem(peer_pub.read_bytes()))
    assert secret_bytes(ours) == theirs


# ---- key store --------------------------------------------------------------------------


def test_key_store_round_trip(tmp_path: Path) -> None:
    store = KeyStore.create(
        tmp_path / "store",
        master=bytearray(b"correct horse battery staple"),
        kdf_params={"memory_kib": 1024, "iterations": 1, "lanes": 1},
    )
    keys = {c: ECPrivateKey.generate(c) for c in CURVES}
    sealed = ECPrivateKey.generate("P-256", exportable=False)
    for c, k in keys.items():
        store.put(c, k)
    store.put("sealed", sealed)
    for c, k in keys.items():
        got = store.get(c)
        assert isinstance(got, ECPrivateKey)
        assert got.curve == c
        assert got.public_key() == k.public_key()
        got.public_key().verify(got.sign(b"m"), b"m")
    got = store.get("sealed")
    assert isinstance(got, ECPrivateKey)
    assert not got.exportable


# ---- threads and fork ---------------------------------------------------------------------


def test_threads_sign_while_destroyed() -> None:
    k = ECPrivateKey.generate()
    pk = k.public_key()
    errors: list[BaseException] = []
    signed = threading.Event()
    stop = threading.Event()

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    pk.verify(k.sign(b"m"), b"m")
                    signed.set()
                except KeyDestroyedError:
                    return
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    assert signed.wait(timeout=30)
    k.destroy()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert all(not t.is_alive() for t in threads)


def test_fork_child_cannot_use_key() -> None:
    result = run_child(
        """
        import os
        from keycell import ECPrivateKey, ForkedKeyError
        k = ECPrivateKey.generate("P-384")
        peer = ECPrivateKey.generate("P-384").public_key()
        pid = os.fork()
        if pid == 0:
            codes = 0
            for use in (lambda: k.sign(b"m"), lambda: k.exchange(peer)):
                try:
                    use()
                    os._exit(3)
                except ForkedKeyError:
                    codes += 1
                except BaseException:
                    os._exit(4)
            os._exit(0 if codes == 2 else 5)
        _, status = os.waitpid(pid, 0)
        k.public_key().verify(k.sign(b"m"), b"m")
        k.exchange(peer)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"


@settings(max_examples=20, deadline=None)
@given(msg=st.binary(max_size=3000), curve=st.sampled_from(CURVES))
def test_interop_with_pyca_property(msg: bytes, curve: str) -> None:
    # Every message: keycell's signatures (both encodings) verify in pyca, pyca's verify
    # here, and a flipped message is refused by both.
    theirs = pyca_key(curve)
    k = ECPrivateKey.from_pem(pkcs8_pem(theirs))
    algorithm = pyca.ECDSA(HASH[curve])
    theirs.public_key().verify(k.sign(msg), msg, algorithm)
    raw = k.sign(msg, encoding="raw")
    r, s = int.from_bytes(raw[: WIDTH[curve]]), int.from_bytes(raw[WIDTH[curve] :])
    theirs.public_key().verify(encode_dss_signature(r, s), msg, algorithm)
    sig = theirs.sign(msg, algorithm)
    k.public_key().verify(sig, msg)
    with pytest.raises(InvalidSignature):
        k.public_key().verify(sig, msg + b"\x00")
