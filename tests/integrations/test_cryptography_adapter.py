"""``to_cryptography()``: pyca/cryptography private key objects whose operations run in
keycell (``keycell.compat.cryptography``), and public keys converted both ways.

Signatures made through the adapter verify with pyca's own public keys and with keycell's;
arguments keycell cannot honour are refused with pyca's ``UnsupportedAlgorithm``, never
changed; ``private_bytes``/``private_numbers`` are refused unless export was allowed and
the key is exportable, and then give the same key pyca would.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from typing import Any

import keycell
import pytest
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from keycell import (
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyDestroyedError,
    KeyInUseError,
    KeyNotExportableError,
    RSAPrivateKey,
    RSAPublicKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from keycell.compat.cryptography import (
    CryptographyECPrivateKey,
    CryptographyEd25519PrivateKey,
    CryptographyRSAPrivateKey,
    CryptographyX25519PrivateKey,
)

NOENC = serialization.NoEncryption()
ENC = serialization.Encoding
PF = serialization.PrivateFormat
MSG = b"message signed through the pyca adapter"


@pytest.fixture(scope="module")
def rsa_key() -> RSAPrivateKey:
    return RSAPrivateKey.generate(2048)


def _keys(rsa_key: RSAPrivateKey) -> list[Any]:
    return [
        Ed25519PrivateKey.generate(),
        X25519PrivateKey.generate(),
        ECPrivateKey.generate("P-256"),
        ECPrivateKey.generate("P-384"),
        rsa_key,
    ]


def test_adapters_are_pycas_abstract_classes(rsa_key: RSAPrivateKey) -> None:
    expected = [
        (ed25519.Ed25519PrivateKey, CryptographyEd25519PrivateKey, ed25519.Ed25519PublicKey),
        (x25519.X25519PrivateKey, CryptographyX25519PrivateKey, x25519.X25519PublicKey),
        (ec.EllipticCurvePrivateKey, CryptographyECPrivateKey, ec.EllipticCurvePublicKey),
        (ec.EllipticCurvePrivateKey, CryptographyECPrivateKey, ec.EllipticCurvePublicKey),
        (rsa.RSAPrivateKey, CryptographyRSAPrivateKey, rsa.RSAPublicKey),
    ]
    for key, (abstract, cls, public) in zip(_keys(rsa_key), expected, strict=True):
        adapter = key.to_cryptography()
        assert isinstance(adapter, abstract)
        assert type(adapter) is cls
        assert adapter.keycell_key is key
        pub = adapter.public_key()
        # A real pyca public key (pyca's own class, not an adapter), equal to keycell's.
        assert isinstance(pub, public)
        assert type(pub).__module__.startswith("cryptography.hazmat.bindings._rust")
        assert type(key.public_key()).from_cryptography(pub) == key.public_key()


def test_ed25519_signatures_verify_both_ways() -> None:
    key = Ed25519PrivateKey.generate()
    adapter = key.to_cryptography()
    sig = adapter.sign(MSG)
    adapter.public_key().verify(sig, MSG)
    key.public_key().verify(sig, MSG)
    with pytest.raises(InvalidSignature):
        adapter.public_key().verify(sig, MSG + b"!")
    # Ed25519 is deterministic: the adapter's signature is pyca's for the same seed.
    with key.expose(format="raw") as view:
        reference = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(view))
        del view
    assert reference.sign(MSG) == sig


@pytest.mark.parametrize(
    ("curve", "hash_cls"), [("P-256", hashes.SHA256), ("P-384", hashes.SHA384)]
)
def test_ecdsa_signatures_verify_both_ways(curve: str, hash_cls: type[Any]) -> None:
    key = ECPrivateKey.generate(curve)  # type: ignore[arg-type]
    adapter = key.to_cryptography()
    assert adapter.key_size == int(curve[2:])
    assert adapter.curve.name == {"P-256": "secp256r1", "P-384": "secp384r1"}[curve]
    sig = adapter.sign(MSG, ec.ECDSA(hash_cls()))
    adapter.public_key().verify(sig, MSG, ec.ECDSA(hash_cls()))
    key.public_key().verify(sig, MSG)
    # And the other way: pyca's signature with a converted public key verifies in keycell.
    other = ec.generate_private_key(adapter.curve)
    pub = ECPublicKey.from_cryptography(other.public_key())
    pub.verify(other.sign(MSG, ec.ECDSA(hash_cls())), MSG)


def test_ecdsa_refuses_what_keycell_cannot_honour() -> None:
    adapter = ECPrivateKey.generate("P-256").to_cryptography()
    with pytest.raises(UnsupportedAlgorithm, match=r"P-256 keys sign with SHA256.*sha384"):
        adapter.sign(MSG, ec.ECDSA(hashes.SHA384()))
    digest = hashes.Hash(hashes.SHA256())
    digest.update(MSG)
    with pytest.raises(UnsupportedAlgorithm, match="Prehashed"):
        adapter.sign(digest.finalize(), ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(UnsupportedAlgorithm, match="RFC 6979"):
        adapter.sign(MSG, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    with pytest.raises(UnsupportedAlgorithm, match="ECDSA only"):
        adapter.sign(MSG, object())  # type: ignore[arg-type]


@pytest.mark.parametrize("hash_cls", [hashes.SHA256, hashes.SHA384, hashes.SHA512])
def test_rsa_signatures_verify_both_ways(rsa_key: RSAPrivateKey, hash_cls: type[Any]) -> None:
    adapter = rsa_key.to_cryptography()
    assert adapter.key_size == 2048
    h = hash_cls()
    pub = adapter.public_key()
    sig = adapter.sign(MSG, padding.PKCS1v15(), h)
    pub.verify(sig, MSG, padding.PKCS1v15(), h)
    rsa_key.public_key().verify(sig, MSG, padding="pkcs1v15", hash=h.name)
    for salt in (padding.PSS.DIGEST_LENGTH, h.digest_size):
        pss = padding.PSS(mgf=padding.MGF1(h), salt_length=salt)
        sig = adapter.sign(MSG, pss, h)
        pub.verify(sig, MSG, pss, h)
        # The salt really is the hash length: a verifier that insists on it accepts.
        rsa_key.public_key().verify(sig, MSG, padding="pss", hash=h.name)


def test_rsa_refuses_what_keycell_cannot_honour(rsa_key: RSAPrivateKey) -> None:
    adapter = rsa_key.to_cryptography()
    sha = hashes.SHA256()
    cases: list[tuple[Any, Any, str]] = [
        (padding.PKCS1v15(), hashes.SHA1(), "SHA-256, SHA-384 or SHA-512, not sha1"),
        (padding.PKCS1v15(), Prehashed(sha), "Prehashed"),
        (padding.PSS(padding.MGF1(sha), padding.PSS.MAX_LENGTH), sha, "MAX_LENGTH"),
        (padding.PSS(padding.MGF1(sha), padding.PSS.AUTO), sha, "AUTO"),
        (padding.PSS(padding.MGF1(sha), 20), sha, r"hash length \(32 bytes\), not 20"),
        (padding.PSS(padding.MGF1(hashes.SHA512()), 32), sha, "MGF1 with the signing hash"),
        (padding.OAEP(padding.MGF1(sha), sha, None), sha, "PKCS1v15 or PSS"),
    ]
    for pad, alg, message in cases:
        with pytest.raises(UnsupportedAlgorithm, match=message):
            adapter.sign(MSG, pad, alg)
    with pytest.raises(UnsupportedAlgorithm, match="signing only"):
        adapter.decrypt(b"\x00" * 256, padding.PKCS1v15())


def test_x25519_exchange_matches_pyca_and_keycell() -> None:
    ours = X25519PrivateKey.generate()
    theirs = x25519.X25519PrivateKey.generate()
    shared = ours.to_cryptography().exchange(theirs.public_key())
    assert shared == theirs.exchange(ours.public_key().to_cryptography())
    with ours.exchange(X25519PublicKey.from_cryptography(theirs.public_key())).expose() as v:
        assert bytes(v) == shared
        del v


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_ecdh_exchange_matches_pyca(curve: str) -> None:
    ours = ECPrivateKey.generate(curve)  # type: ignore[arg-type]
    adapter = ours.to_cryptography()
    theirs = ec.generate_private_key(adapter.curve)
    shared = adapter.exchange(ec.ECDH(), theirs.public_key())
    assert shared == theirs.exchange(ec.ECDH(), adapter.public_key())
    other = "P-384" if curve == "P-256" else "P-256"
    wrong = ECPrivateKey.generate(other).public_key().to_cryptography()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the peer public key is on"):
        adapter.exchange(ec.ECDH(), wrong)
    with pytest.raises(TypeError, match="EllipticCurvePublicKey"):
        adapter.exchange(ec.ECDH(), b"not a key")  # type: ignore[arg-type]


def test_exchange_of_a_sealed_key_refuses_to_return_bytes() -> None:
    """A sealed key's shared secrets are sealed too, so pyca's bytes cannot be given."""
    key = X25519PrivateKey.generate(exportable=False)
    peer = x25519.X25519PrivateKey.generate().public_key()
    with pytest.raises(KeyNotExportableError):
        key.to_cryptography().exchange(peer)


def _private_formats(key: Any) -> list[tuple[Any, Any]]:
    forms = [(ENC.PEM, PF.PKCS8), (ENC.DER, PF.PKCS8)]
    if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        forms.append((ENC.Raw, PF.Raw))
    else:
        forms.append((ENC.PEM, PF.TraditionalOpenSSL))
    return forms


def test_private_bytes_and_numbers_are_refused_by_default(rsa_key: RSAPrivateKey) -> None:
    for key in _keys(rsa_key):
        adapter = key.to_cryptography()
        for encoding, fmt in _private_formats(key):
            with pytest.raises(KeyNotExportableError, match="allow_export=True"):
                adapter.private_bytes(encoding, fmt, NOENC)
        if hasattr(adapter, "private_bytes_raw"):
            with pytest.raises(KeyNotExportableError, match="allow_export=True"):
                adapter.private_bytes_raw()
        if hasattr(adapter, "private_numbers"):
            with pytest.raises(KeyNotExportableError, match="allow_export=True"):
                adapter.private_numbers()


def test_private_bytes_with_allow_export_is_the_key(rsa_key: RSAPrivateKey) -> None:
    for key in _keys(rsa_key):
        adapter = key.to_cryptography(allow_export=True)
        pem = adapter.private_bytes(ENC.PEM, PF.PKCS8, NOENC)
        reference = serialization.load_pem_private_key(pem, None)
        assert reference.public_key() == adapter.public_key()
        for encoding, fmt in _private_formats(key):
            assert adapter.private_bytes(encoding, fmt, NOENC) == reference.private_bytes(
                encoding, fmt, NOENC
            )
        encrypted = adapter.private_bytes(
            ENC.PEM, PF.PKCS8, serialization.BestAvailableEncryption(b"passphrase")
        )
        back = serialization.load_pem_private_key(encrypted, b"passphrase")
        assert back.public_key() == adapter.public_key()
        if hasattr(adapter, "private_numbers"):
            assert adapter.private_numbers() == reference.private_numbers()  # type: ignore[union-attr]


def test_allow_export_does_not_open_a_sealed_key(rsa_key: RSAPrivateKey) -> None:
    sealed = [
        Ed25519PrivateKey.generate(exportable=False),
        ECPrivateKey.generate(exportable=False),
    ]
    later = X25519PrivateKey.generate()
    adapter = later.to_cryptography(allow_export=True)
    later.seal_export()
    for key in sealed:
        with pytest.raises(KeyNotExportableError):
            key.to_cryptography(allow_export=True).private_bytes(ENC.DER, PF.PKCS8, NOENC)
    with pytest.raises(KeyNotExportableError):
        adapter.private_bytes_raw()


def test_expose_formats_and_the_view_pins_the_key() -> None:
    key = ECPrivateKey.generate("P-384")
    with key.expose() as der, key.expose(format="pem") as pem:
        assert bytes(pem).startswith(b"-----BEGIN PRIVATE KEY-----\n")
        loaded = serialization.load_der_private_key(bytes(der), None)
        assert loaded.public_key() == key.public_key().to_cryptography()
        with pytest.raises(KeyInUseError):
            key.destroy()
        del der, pem
    held = key.expose(format="pem")
    key.destroy()
    with pytest.raises(KeyDestroyedError):
        key.expose()
    with pytest.raises(KeyDestroyedError), held:
        pass
    with pytest.raises(ValueError, match=r"format must be \"der\" or \"pem\""):
        ECPrivateKey.generate().expose(format="raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\"der\", \"pem\" or \"raw\""):
        Ed25519PrivateKey.generate().expose(format="hex")  # type: ignore[arg-type]


def test_adapters_follow_the_handle_and_are_safe_to_copy(rsa_key: RSAPrivateKey) -> None:
    for key in _keys(rsa_key)[:4]:
        adapter = key.to_cryptography()
        assert copy.copy(adapter) is adapter
        assert copy.deepcopy({"k": adapter})["k"] is adapter
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(adapter)
        with pytest.raises(TypeError, match="cannot be converted to text"):
            str(adapter)
        with pytest.raises(TypeError, match="cannot be converted to text"):
            f"{adapter}"
        assert repr(adapter).startswith(f"<{type(adapter).__name__} of <")
        key.destroy()
        with pytest.raises(KeyDestroyedError):
            adapter.public_key()
        if isinstance(adapter, ed25519.Ed25519PrivateKey):
            with pytest.raises(KeyDestroyedError):
                adapter.sign(MSG)


def test_public_keys_convert_both_ways(rsa_key: RSAPrivateKey) -> None:
    pairs: list[tuple[Any, Any]] = [
        (Ed25519PublicKey, ed25519.Ed25519PrivateKey.generate().public_key()),
        (X25519PublicKey, x25519.X25519PrivateKey.generate().public_key()),
        (ECPublicKey, ec.generate_private_key(ec.SECP256R1()).public_key()),
        (ECPublicKey, ec.generate_private_key(ec.SECP384R1()).public_key()),
        (RSAPublicKey, rsa_key.public_key().to_cryptography()),
    ]
    for cls, pyca_pub in pairs:
        ours = cls.from_cryptography(pyca_pub)
        assert type(ours) is cls
        assert ours.to_cryptography() == pyca_pub
    with pytest.raises(TypeError, match=r"Ed25519PublicKey.from_cryptography\(\) takes"):
        Ed25519PublicKey.from_cryptography(x25519.X25519PrivateKey.generate().public_key())
    with pytest.raises(TypeError, match="not bytes"):
        ECPublicKey.from_cryptography(b"\x04" * 65)
    with pytest.raises(TypeError, match="takes a pyca"):
        # A private key is not a public key.
        RSAPublicKey.from_cryptography(rsa_key.to_cryptography())
    with pytest.raises(ValueError, match="P-256 or P-384, not secp521r1"):
        ECPublicKey.from_cryptography(ec.generate_private_key(ec.SECP521R1()).public_key())


def test_allow_export_must_be_a_bool() -> None:
    with pytest.raises(TypeError):
        Ed25519PrivateKey.generate().to_cryptography(allow_export="yes")  # type: ignore[arg-type]


def test_without_pyca_the_error_says_what_is_missing() -> None:
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "import keycell\n"
        "key = keycell.Ed25519PrivateKey.generate()\n"
        "try:\n"
        "    key.to_cryptography()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "need the 'cryptography' package (pip install cryptography)" in proc.stdout
    assert keycell.Ed25519PrivateKey.generate().sign(MSG)


def test_public_names_have_docstrings() -> None:
    from keycell.compat import cryptography as adapters
    from keycell.compat import joserfc as joserfc_compat

    for module in (adapters, joserfc_compat):
        assert module.__doc__
        for name in module.__all__:
            obj = getattr(module, name)
            assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
            if isinstance(obj, type):
                for attr, value in vars(obj).items():
                    if not attr.startswith("_"):
                        assert value.__doc__, f"{name}.{attr} has no docstring"


def test_adapters_are_fixed_when_made_and_wrap_only_their_key_types() -> None:
    # Outside review: the export choice could be flipped after the adapter was made, a
    # constructor took any truthy allow_export, and an EC key could pose as Ed25519.
    with Ed25519PrivateKey.generate() as ed, ECPrivateKey.generate("P-256") as p256:
        adapter = ed.to_cryptography()
        with pytest.raises(AttributeError, match="immutable"):
            adapter._allow_export = True  # type: ignore[misc]
        with pytest.raises(AttributeError, match="immutable"):
            del adapter._key
        with pytest.raises(KeyNotExportableError):
            adapter.private_bytes_raw()
        with pytest.raises(TypeError, match="allow_export must be a bool"):
            CryptographyEd25519PrivateKey(ed, allow_export="no")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="wraps Ed25519PrivateKey"):
            CryptographyEd25519PrivateKey(p256)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not Ed25519PrivateKey"):
            CryptographyECPrivateKey(ed)  # type: ignore[arg-type]


def test_rsa_sign_without_a_padding_object_is_unsupported(rsa_key: RSAPrivateKey) -> None:
    adapter = rsa_key.to_cryptography()
    with pytest.raises(UnsupportedAlgorithm, match="PKCS1v15 or PSS padding, not NoneType"):
        adapter.sign(b"m", None, hashes.SHA256())  # type: ignore[arg-type]
