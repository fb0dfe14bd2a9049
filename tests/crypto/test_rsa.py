"""RSA signing keys: ``RSAPrivateKey`` / ``RSAPublicKey``.

- generation (2048/3072/4096 only), signing with every padding and hash, verification
  with every salt-length rule (hash length, ``"auto"``, a fixed length);
- interop both ways with pyca/cryptography (keys, public keys, signatures) and with the
  ``openssl`` command line (``genpkey``, ``genrsa -traditional``, ``dgst -sign/-verify``);
- key files: PKCS#8 and PKCS#1, PEM and DER, read and written, with the export seal;
- bad input as typed errors: short keys, malformed DER/PEM, wrong names, wrong signature
  lengths, a destroyed key, wrong types.
"""

from __future__ import annotations

import base64
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asym_support import needs_openssl, openssl, run_child, write_key_file
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding as pad
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from keycell import (
    InvalidSignature,
    KeyDestroyedError,
    KeyFileError,
    KeyNotExportableError,
    RSAPrivateKey,
    RSAPublicKey,
)

HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
PADDINGS = ("pss", "pkcs1v15")
MSG = b"the message signed"


def pyca_padding(padding: str, hash_name: str, salt: Any = None) -> Any:
    if padding == "pkcs1v15":
        return pad.PKCS1v15()
    h = HASHES[hash_name]()
    return pad.PSS(mgf=pad.MGF1(h), salt_length=pad.PSS.DIGEST_LENGTH if salt is None else salt)


@pytest.fixture(scope="module")
def key() -> Iterator[RSAPrivateKey]:
    k = RSAPrivateKey.generate(2048)
    yield k
    k.destroy()


@pytest.fixture(scope="module")
def pyca_key() -> pyca_rsa.RSAPrivateKey:
    return pyca_rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pyca_public(k: RSAPrivateKey) -> Any:
    der = k.public_key().public_bytes("der", "spki")
    return serialization.load_der_public_key(der)


# --- generation and signing ---------------------------------------------------------------


@pytest.mark.parametrize("bits", [3072, 4096])
def test_generate_sizes(bits: int) -> None:
    k = RSAPrivateKey.generate(bits)
    assert k.key_size == bits
    assert k.public_key().key_size == bits
    assert k.public_key().e == 65537
    assert k.public_key().n.bit_length() == bits
    sig = k.sign(MSG)
    assert len(sig) == bits // 8
    k.public_key().verify(sig, MSG)
    k.destroy()


def test_default_size_is_3072() -> None:
    k = RSAPrivateKey.generate()
    assert k.key_size == 3072
    k.destroy()


@pytest.mark.parametrize("bits", [0, 512, 1024, 2047, 2049, 3000, 8192, -1])
def test_other_sizes_are_refused(bits: int) -> None:
    with pytest.raises((ValueError, OverflowError)):
        RSAPrivateKey.generate(bits)


def test_generate_type_errors() -> None:
    with pytest.raises(TypeError):
        RSAPrivateKey.generate("2048")  # type: ignore[arg-type]


@pytest.mark.parametrize("hash_name", sorted(HASHES))
@pytest.mark.parametrize("padding", PADDINGS)
def test_sign_verifies_in_keycell_and_pyca(
    key: RSAPrivateKey, padding: Any, hash_name: Any
) -> None:
    sig = key.sign(MSG, padding=padding, hash=hash_name)
    assert len(sig) == 256
    pub = key.public_key()
    pub.verify(sig, MSG, padding=padding, hash=hash_name)
    pyca_public(key).verify(sig, MSG, pyca_padding(padding, hash_name), HASHES[hash_name]())
    with pytest.raises(InvalidSignature):
        pub.verify(sig, MSG + b"!", padding=padding, hash=hash_name)
    other = "sha512" if hash_name != "sha512" else "sha256"
    with pytest.raises(InvalidSignature):
        pub.verify(sig, MSG, padding=padding, hash=other)
    if padding == "pss":
        pub.verify(sig, MSG, padding="pss", hash=hash_name, salt_length="auto")
        pub.verify(
            sig, MSG, padding="pss", hash=hash_name, salt_length=HASHES[hash_name].digest_size
        )
        with pytest.raises(InvalidSignature):
            pub.verify(sig, MSG, padding="pss", hash=hash_name, salt_length=0)
        # PSS signatures are randomized: two differ, both verify.
        assert key.sign(MSG, padding=padding, hash=hash_name) != sig
    else:
        assert key.sign(MSG, padding=padding, hash=hash_name) == sig
        with pytest.raises(InvalidSignature):
            pub.verify(sig, MSG, padding="pss", hash=hash_name)


@pytest.mark.parametrize("hash_name", sorted(HASHES))
@pytest.mark.parametrize("salt", [0, 20, "max", "digest"])
def test_pyca_pss_signatures_verify_with_the_right_salt_rule(
    pyca_key: pyca_rsa.RSAPrivateKey, hash_name: str, salt: Any
) -> None:
    h = HASHES[hash_name]()
    salt_arg = {"max": pad.PSS.MAX_LENGTH, "digest": pad.PSS.DIGEST_LENGTH}.get(salt, salt)
    sig = pyca_key.sign(MSG, pyca_padding("pss", hash_name, salt_arg), h)
    pub = RSAPublicKey.from_der(
        pyca_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    length = {"max": 256 - h.digest_size - 2, "digest": h.digest_size}.get(salt, salt)
    assert isinstance(length, int)
    pub.verify(sig, MSG, hash=hash_name, salt_length="auto")
    pub.verify(sig, MSG, hash=hash_name, salt_length=length)
    if length == h.digest_size:
        pub.verify(sig, MSG, hash=hash_name)
    else:
        with pytest.raises(InvalidSignature):
            pub.verify(sig, MSG, hash=hash_name)
    with pytest.raises(InvalidSignature):
        pub.verify(sig, MSG, hash=hash_name, salt_length=length + 1)
    with pytest.raises(InvalidSignature):
        pub.verify(sig, MSG + b"x", hash=hash_name, salt_length="auto")


@pytest.mark.parametrize("hash_name", sorted(HASHES))
def test_pyca_pkcs1v15_signatures_verify(pyca_key: pyca_rsa.RSAPrivateKey, hash_name: str) -> None:
    sig = pyca_key.sign(MSG, pad.PKCS1v15(), HASHES[hash_name]())
    pem = pyca_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    RSAPublicKey.from_pem(pem).verify(sig, MSG, padding="pkcs1v15", hash=hash_name)


def test_large_messages(key: RSAPrivateKey) -> None:
    big = bytes(range(256)) * 4096
    sig = key.sign(big)
    key.public_key().verify(sig, big)
    pyca_public(key).verify(sig, big, pyca_padding("pss", "sha256"), hashes.SHA256())


# --- private key encodings -----------------------------------------------------------------

PYCA_FORMATS = {
    "pkcs8-pem": (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
    "pkcs8-der": (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
    "pkcs1-pem": (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL),
    "pkcs1-der": (serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL),
}


@pytest.mark.parametrize("fmt", sorted(PYCA_FORMATS))
def test_pyca_keys_load_every_way(
    pyca_key: pyca_rsa.RSAPrivateKey, fmt: str, tmp_path: Path
) -> None:
    encoding, private_format = PYCA_FORMATS[fmt]
    data = pyca_key.private_bytes(encoding, private_format, serialization.NoEncryption())
    pem = encoding == serialization.Encoding.PEM
    source = bytearray(data)
    k = RSAPrivateKey.from_pem(source) if pem else RSAPrivateKey.from_der(source)
    assert source == bytearray(len(data)), "a writable source is wiped"
    from_file = RSAPrivateKey.from_file(write_key_file(tmp_path / "k", data))
    given = RSAPrivateKey.from_file(tmp_path / "k", format="pem" if pem else "der")
    assert k == from_file == given
    numbers = pyca_key.public_key().public_numbers()
    assert (k.public_key().n, k.public_key().e) == (numbers.n, numbers.e)
    for padding in PADDINGS:
        sig = k.sign(MSG, padding=padding)
        pyca_key.public_key().verify(sig, MSG, pyca_padding(padding, "sha256"), hashes.SHA256())
    if pem:
        # A str cannot be wiped: refused, as by the other private key classes.
        with pytest.raises(TypeError, match="not str"):
            RSAPrivateKey.from_pem(data.decode())  # type: ignore[arg-type]
    for x in (k, from_file, given):
        x.destroy()


@pytest.mark.parametrize("fmt", ["pem", "der"])
@pytest.mark.parametrize("traditional", [False, True])
def test_to_file_loads_in_pyca(
    key: RSAPrivateKey, tmp_path: Path, fmt: Any, traditional: bool
) -> None:
    path = tmp_path / "out"
    key.to_file(path, format=fmt, traditional=traditional)
    assert path.stat().st_mode & 0o777 == 0o600
    data = path.read_bytes()
    if fmt == "pem":
        label = b"RSA PRIVATE KEY" if traditional else b"PRIVATE KEY"
        assert data.startswith(b"-----BEGIN " + label + b"-----\n")
        loaded = serialization.load_pem_private_key(data, None)
        expected = (
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8,
        )
    else:
        loaded = serialization.load_der_private_key(data, None)
        expected = (
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8,
        )
    assert isinstance(loaded, pyca_rsa.RSAPrivateKey)
    # Byte for byte what pyca (OpenSSL) writes for the same key.
    assert loaded.private_bytes(*expected, serialization.NoEncryption()) == data
    sig = loaded.sign(MSG, pyca_padding("pss", "sha384"), hashes.SHA384())
    key.public_key().verify(sig, MSG, hash="sha384")
    assert RSAPrivateKey.from_file(path) == key
    with pytest.raises(KeyFileError):
        key.to_file(path, format=fmt, traditional=traditional)
    key.to_file(path, format=fmt, traditional=traditional, overwrite=True)


def test_export_seal(tmp_path: Path) -> None:
    k = RSAPrivateKey.generate(2048, exportable=False)
    assert not k.exportable
    with pytest.raises(KeyNotExportableError):
        k.to_file(tmp_path / "k")
    assert not (tmp_path / "k").exists()
    k.public_key().verify(k.sign(MSG), MSG)
    k.destroy()


# --- openssl command line ------------------------------------------------------------------

OPENSSL_DGST = {"sha256": "-sha256", "sha384": "-sha384", "sha512": "-sha512"}


def openssl_sigopts(padding: str, salt: str = "digest") -> list[str]:
    if padding == "pkcs1v15":
        return ["-sigopt", "rsa_padding_mode:pkcs1"]
    return ["-sigopt", "rsa_padding_mode:pss", "-sigopt", f"rsa_pss_saltlen:{salt}"]


@needs_openssl
@pytest.mark.parametrize("how", ["genpkey", "genrsa-traditional"])
def test_openssl_interop_both_ways(tmp_path: Path, how: str) -> None:
    keyfile = tmp_path / "key.pem"
    if how == "genpkey":
        openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(keyfile)
        )
        assert keyfile.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    else:
        openssl("genrsa", "-traditional", "-out", str(keyfile), "2048")
        assert keyfile.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    keyfile.chmod(0o600)
    pubfile = tmp_path / "pub.pem"
    openssl("pkey", "-in", str(keyfile), "-pubout", "-out", str(pubfile))
    k = RSAPrivateKey.from_file(keyfile)
    assert RSAPublicKey.from_pem(pubfile.read_bytes()) == k.public_key()
    data = tmp_path / "data"
    data.write_bytes(MSG)
    for hash_name in sorted(HASHES):
        for padding in PADDINGS:
            # keycell signs, openssl verifies.
            sig = tmp_path / "sig"
            sig.write_bytes(k.sign(MSG, padding=padding, hash=hash_name))
            out = openssl(
                "dgst",
                OPENSSL_DGST[hash_name],
                *openssl_sigopts(padding),
                "-verify",
                str(pubfile),
                "-signature",
                str(sig),
                str(data),
            )
            assert b"Verified OK" in out
            # openssl signs (PSS with the largest salt, -1 = digest length), keycell verifies.
            for salt in ("digest", "max") if padding == "pss" else ("digest",):
                signed = openssl(
                    "dgst",
                    OPENSSL_DGST[hash_name],
                    *openssl_sigopts(padding, salt),
                    "-sign",
                    str(keyfile),
                    str(data),
                )
                rule: Any = "auto" if salt == "max" else None
                k.public_key().verify(
                    signed, MSG, padding=padding, hash=hash_name, salt_length=rule
                )
    # A key keycell wrote is accepted by openssl's key check and signs there.
    written = tmp_path / "written.pem"
    k.to_file(written, traditional=how == "genrsa-traditional")
    assert b"RSA key ok" in openssl("rsa", "-in", str(written), "-check", "-noout")
    signed = openssl("dgst", "-sha256", *openssl_sigopts("pss"), "-sign", str(written), str(data))
    k.public_key().verify(signed, MSG)
    k.destroy()


# --- public keys ---------------------------------------------------------------------------


def test_public_key_encodings(key: RSAPrivateKey) -> None:
    pub = key.public_key()
    pyca = pyca_public(key)
    for encoding, enc in (("pem", serialization.Encoding.PEM), ("der", serialization.Encoding.DER)):
        for fmt, pf in (
            ("spki", serialization.PublicFormat.SubjectPublicKeyInfo),
            ("pkcs1", serialization.PublicFormat.PKCS1),
        ):
            data = pub.public_bytes(encoding, fmt)  # type: ignore[arg-type]
            assert data == pyca.public_bytes(enc, pf)
            assert RSAPublicKey.from_public_bytes(data) == pub
            if encoding == "pem":
                assert RSAPublicKey.from_pem(data.decode()) == pub
                assert RSAPublicKey.from_public_bytes(data.decode()) == pub
            else:
                assert RSAPublicKey.from_der(data) == pub
    assert pub.public_bytes() == pub.public_bytes("pem", "spki")
    assert pickle.loads(pickle.dumps(pub)) == pub
    assert hash(pub) == hash(RSAPublicKey.from_der(pub.public_bytes("der")))
    assert pub != RSAPrivateKey.generate(2048).public_key()
    assert repr(pub) == "<RSAPublicKey 2048 bits>"
    assert repr(key) == "<RSAPrivateKey 2048 bits>"
    with pytest.raises(ValueError, match="encoding"):
        pub.public_bytes("raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        pub.public_bytes("der", "openssh")  # type: ignore[arg-type]


# --- bad input -----------------------------------------------------------------------------


def test_short_keys_are_refused(tmp_path: Path) -> None:
    short = pyca_rsa.generate_private_key(public_exponent=65537, key_size=1024)
    der = short.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="modulus or the public exponent is too small"):
        RSAPrivateKey.from_der(der)
    with pytest.raises(KeyFileError, match="modulus or the public exponent is too small"):
        RSAPrivateKey.from_file(write_key_file(tmp_path / "short", der))
    # e = 3 is refused by ring with the same reason: the message names both causes (it
    # said "the modulus is smaller than 2048 bits" for a 2048-bit key).
    e3 = pyca_rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(ValueError, match="public exponent is too small"):
        RSAPrivateKey.from_der(
            e3.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pub = short.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="2048 to 4096 bits"):
        RSAPublicKey.from_der(pub)


def test_malformed_input_is_refused(key: RSAPrivateKey, tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases: list[tuple[Any, bytes | str]] = [
        (RSAPrivateKey.from_der, b""),
        (RSAPrivateKey.from_der, b"\x30\x03\x02\x01\x00"),
        (RSAPrivateKey.from_der, b"not der at all"),
        (RSAPrivateKey.from_pem, b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
        (
            RSAPrivateKey.from_pem,
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        ),
        (RSAPrivateKey.from_pem, b"no pem here"),
        (RSAPrivateKey.from_pem, ec_pem),
        (RSAPublicKey.from_der, b"\x30\x00"),
        (RSAPublicKey.from_pem, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
        (RSAPublicKey.from_public_bytes, b"junk"),
    ]
    for parse, data in cases:
        with pytest.raises(ValueError):
            parse(data)
    # A truncated key, and an EC key, from a file.
    der = tmp_path / "k.der"
    key.to_file(der, format="der")
    whole = der.read_bytes()
    for name, data in (("trunc", whole[:-10]), ("ec", ec_pem)):
        with pytest.raises(KeyFileError):
            RSAPrivateKey.from_file(write_key_file(tmp_path / name, data))
    with pytest.raises(ValueError, match="format"):
        RSAPrivateKey.from_file(der, format="raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        key.to_file(tmp_path / "x", format="hex")  # type: ignore[arg-type]


def _der_int(v: int) -> bytes:
    body = v.to_bytes((v.bit_length() + 8) // 8, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def pkcs1_der(n: int, e: int, d: int, p: int, q: int, dp: int, dq: int, qinv: int) -> bytes:
    """A PKCS#1 ``RSAPrivateKey`` of these components, whatever they are."""
    body = b"".join(_der_int(v) for v in (0, n, e, d, p, q, dp, dq, qinv))
    return b"\x30" + _der_len(len(body)) + body


INCONSISTENT = {
    "p": "the primes p and q do not multiply to the modulus n",
    "d": "the private exponent d is not the inverse of e modulo lcm(p-1, q-1)",
    "dP": "dP (exponent1) is not d mod (p-1)",
    "dQ": "dQ (exponent2) is not d mod (q-1)",
    "qInv": "qInv (coefficient) is not the inverse of q modulo p",
}


def test_inconsistent_private_keys_are_refused_at_load(
    pyca_key: pyca_rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    """RSA review: wrong CRT values loaded and then failed at every sign (ring checks them
    only by its fault check); a wrong d loaded and signed, and went into key files."""
    nums = pyca_key.private_numbers()
    n, e = nums.public_numbers.n, nums.public_numbers.e
    d, p, q, dp, dq, qinv = nums.d, nums.p, nums.q, nums.dmp1, nums.dmq1, nums.iqmp
    other = pyca_rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    wrong = {
        "p": (n, e, d, other.p, q, dp, dq, qinv),
        "d": (n, e, d + 2, p, q, dp, dq, qinv),
        "dP": (n, e, d, p, q, (dp + 2) % (p - 1), dq, qinv),
        "dQ": (n, e, d, p, q, dp, (dq + 2) % (q - 1), qinv),
        "qInv": (n, e, d, p, q, dp, dq, (qinv + 1) % p),
    }
    for name, parts in wrong.items():
        der = pkcs1_der(*parts)
        message = f"inconsistent RSA private key: {INCONSISTENT[name]}"
        with pytest.raises(ValueError, match=re.escape(message)) as caught:
            RSAPrivateKey.from_der(der)
        assert str(caught.value) == message  # nothing of the key in it
        pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + base64.encodebytes(der)
        with pytest.raises(ValueError, match=re.escape(message)):
            RSAPrivateKey.from_pem(pem + b"-----END RSA PRIVATE KEY-----\n")
        path = write_key_file(tmp_path / f"{name}.der", der)
        with pytest.raises(KeyFileError, match=re.escape(message)):
            RSAPrivateKey.from_file(path)
    # The consistent key loads, and so does one whose d is e^-1 mod (p-1)(q-1) (older
    # OpenSSL) rather than mod lcm(p-1, q-1): both are right.
    for d_any in (d, pow(e, -1, (p - 1) * (q - 1))):
        k = RSAPrivateKey.from_der(pkcs1_der(n, e, d_any, p, q, dp, dq, qinv))
        k.public_key().verify(k.sign(MSG), MSG)


def test_parse_errors_name_the_format_tried(pyca_key: pyca_rsa.RSAPrivateKey) -> None:
    """RSA review: a malformed PKCS#8 key was reported as a malformed PKCS#1 one."""
    nope = serialization.NoEncryption()
    pkcs8 = pyca_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, nope
    )
    pkcs1 = pyca_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, nope
    )
    with pytest.raises(ValueError) as caught:
        RSAPrivateKey.from_der(pkcs8[:-10])
    assert "malformed PKCS#8 PrivateKeyInfo DER" in str(caught.value)
    assert "RSAPrivateKey" not in str(caught.value)
    with pytest.raises(ValueError, match="malformed PKCS#1 RSAPrivateKey DER"):
        RSAPrivateKey.from_der(pkcs1[:-10])
    # A PEM label and the structure inside it must agree.
    pem = b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(pkcs1)
    with pytest.raises(ValueError, match="the PEM label says PKCS#8 PrivateKeyInfo, the DER"):
        RSAPrivateKey.from_pem(pem + b"-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="neither PKCS#8 PrivateKeyInfo nor PKCS#1"):
        RSAPrivateKey.from_der(b"\x04\x03abc")


def test_wrong_names_lengths_and_types(key: RSAPrivateKey) -> None:
    pub = key.public_key()
    sig = key.sign(MSG)
    with pytest.raises(ValueError, match="padding"):
        key.sign(MSG, padding="oaep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hash"):
        key.sign(MSG, hash="sha1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hash"):
        pub.verify(sig, MSG, hash="md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding"):
        pub.verify(sig, MSG, padding="PSS")  # type: ignore[arg-type]
    for bad_sig in (b"", sig[:-1], sig + b"\x00", b"\x00" + sig, b"\xff" * 256):
        with pytest.raises(InvalidSignature):
            pub.verify(bad_sig, MSG)
        with pytest.raises(InvalidSignature):
            pub.verify(bad_sig, MSG, salt_length="auto")
    with pytest.raises(ValueError, match="salt_length"):
        pub.verify(sig, MSG, salt_length="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        pub.verify(sig, MSG, salt_length=-1)
    with pytest.raises(ValueError, match="negative"):
        pub.verify(sig, MSG, salt_length=-(2**70))
    # RSA review: a number too large for a machine word was reported as negative.
    with pytest.raises(ValueError, match="salt_length is too large"):
        pub.verify(sig, MSG, salt_length=2**70)
    with pytest.raises(TypeError, match="salt_length"):
        pub.verify(sig, MSG, salt_length=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="salt_length"):
        pub.verify(sig, MSG, salt_length=True)
    with pytest.raises(ValueError, match="only for"):
        pub.verify(key.sign(MSG, padding="pkcs1v15"), MSG, padding="pkcs1v15", salt_length=32)
    with pytest.raises(TypeError):
        key.sign("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pub.verify("sig", MSG)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RSAPrivateKey.from_der(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RSAPublicKey.from_der("text")  # type: ignore[arg-type]


def test_a_destroyed_key_refuses_everything(tmp_path: Path) -> None:
    k = RSAPrivateKey.generate(2048)
    pub = k.public_key()
    sig = k.sign(MSG)
    k.destroy()
    for use in (
        lambda: k.sign(MSG),
        k.public_key,
        lambda: k.to_file(tmp_path / "k"),
        lambda: k.protection,
    ):
        with pytest.raises(KeyDestroyedError):
            use()
    pub.verify(sig, MSG)  # the public key lives on


def test_protection_is_reported(key: RSAPrivateKey) -> None:
    p = key.protection
    assert p.dontdump
    assert p.wipeonfork
    # Locked unless this machine's RLIMIT_MEMLOCK ran out (then a ProtectionWarning).
    assert p.locked or not p.complete
    assert not p.read_only_idle  # the secret heap stays writable


@pytest.mark.parametrize("how", ["fork", "raw-fork-syscall"])
def test_fork_child_cannot_use_the_key_and_makes_its_own(how: str) -> None:
    """A child cannot use a parent's key (ForkedKeyError), may destroy it, and can make,
    load and use keys of its own: the secret heap retires the parent's blocks (zeroed by
    MADV_WIPEONFORK) and serves the child from fresh chunks. Also for a child made by the
    raw fork system call, which runs no atfork handlers."""
    fork = "os.fork()" if how == "fork" else "ctypes.CDLL(None).syscall(57)"
    result = run_child(
        f"""
        import ctypes, os
        from keycell import ForkedKeyError, RSAPrivateKey
        k = RSAPrivateKey.generate(2048)
        sig = k.sign(b"m", padding="pkcs1v15")
        pid = {fork}
        if pid == 0:
            code = 0
            for use in (lambda: k.sign(b"m"), k.public_key, lambda: k.protection):
                try:
                    use()
                    code = 3
                except ForkedKeyError:
                    pass
                except BaseException:
                    code = 4
            k.destroy()
            try:
                mine = RSAPrivateKey.generate(2048)
                mine.public_key().verify(mine.sign(b"child"), b"child")
                mine.destroy()
            except BaseException:
                code = 5
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert k.sign(b"m", padding="pkcs1v15") == sig  # the parent's key is intact
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"
