"""pyca/cryptography key objects backed by keycell handles.

``key.to_cryptography()`` on an :class:`~keycell.Ed25519PrivateKey`,
:class:`~keycell.X25519PrivateKey`, :class:`~keycell.ECPrivateKey` or
:class:`~keycell.RSAPrivateKey` returns an instance of pyca's abstract private key class
for the algorithm (``ed25519.Ed25519PrivateKey``, ``x25519.X25519PrivateKey``,
``ec.EllipticCurvePrivateKey``, ``rsa.RSAPrivateKey``); so does a key in a PKCS#11 token
(``keycell.pkcs11``: it signs in the token, never exports, and its EC keys do no ECDH).
Code written for pyca (x509 builders, JOSE libraries, protocol code) then signs and
exchanges with a key that stays in guarded memory or in the token. ``sign`` and
``exchange`` run in keycell; ``public_key()`` is a real pyca public key.

What crosses into Python, and when:

- Signatures and public keys: ordinary ``bytes``, as always.
- ``exchange()`` returns the shared secret as ``bytes``, because pyca's contract says so:
  that copy is on the Python heap and cannot be wiped. Prefer the handle's own
  ``exchange()``, which returns a :class:`~keycell.SecretKey`.
- ``private_bytes()``, ``private_bytes_raw()`` and ``private_numbers()`` raise
  :class:`~keycell.KeyNotExportableError` unless ``to_cryptography(allow_export=True)``
  was asked for and the key is exportable. Then they copy the key onto the Python heap
  (through the handle's ``expose(format=...)``; formats other than unencrypted PKCS#8 and
  raw, and ``private_numbers()``, also load the key into a pyca object to encode it).

Arguments keycell cannot honour are refused with pyca's ``UnsupportedAlgorithm`` naming
the reason, never silently changed: ECDSA uses the curve's hash (SHA-256 for P-256,
SHA-384 for P-384) and hedged, not deterministic, nonces; RSA signs with PKCS#1 v1.5 or
PSS (MGF1 with the signing hash, salt length ``PSS.DIGEST_LENGTH`` or the hash length)
over SHA-256/384/512; nothing signs a ``Prehashed`` digest; RSA keys do not decrypt.

The module needs the ``cryptography`` package; importing it without raises
``ImportError`` saying so. The handle's methods import it on call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NoReturn

try:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
except ImportError as error:  # pragma: no cover - exercised in a child without pyca
    raise ImportError(
        "keycell's to_cryptography()/from_cryptography() need the 'cryptography' package "
        "(pip install cryptography)"
    ) from error

from .._native import (
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Pkcs11ECPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11RSAPrivateKey,
    RSAPrivateKey,
    RSAPublicKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from .._text_refusal import RefusesText
from ..exceptions import KeyNotExportableError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "CryptographyECPrivateKey",
    "CryptographyEd25519PrivateKey",
    "CryptographyRSAPrivateKey",
    "CryptographyX25519PrivateKey",
    "private_key_to_cryptography",
    "public_key_from_cryptography",
    "public_key_to_cryptography",
]

_Encoding = serialization.Encoding
_PrivateFormat = serialization.PrivateFormat

# keycell's curve name -> pyca's curve class, and back by pyca's curve name.
_Curve = Literal["P-256", "P-384"]
_CURVES: dict[_Curve, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}
_CURVE_NAMES = {curve().name: name for name, curve in _CURVES.items()}
# The hash ECDSA uses on each curve: keycell's keys fix it.
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "P-256": hashes.SHA256,
    "P-384": hashes.SHA384,
}
_RSA_HASHES: dict[type[hashes.HashAlgorithm], str] = {
    hashes.SHA256: "sha256",
    hashes.SHA384: "sha384",
    hashes.SHA512: "sha512",
}


def _unsupported(message: str) -> NoReturn:
    raise UnsupportedAlgorithm(message)


def _refuse_prehashed(algorithm: object) -> None:
    if isinstance(algorithm, Prehashed):
        _unsupported(
            "keycell signs messages, not digests (Prehashed): it hashes the message itself, "
            "inside its boundary; pass the message"
        )


def public_key_to_cryptography(key: object) -> Any:
    """The pyca public key object equal to the keycell public key ``key``."""
    if isinstance(key, Ed25519PublicKey):
        return ed25519.Ed25519PublicKey.from_public_bytes(key.public_bytes_raw())
    if isinstance(key, X25519PublicKey):
        return x25519.X25519PublicKey.from_public_bytes(key.public_bytes_raw())
    if isinstance(key, ECPublicKey):
        return ec.EllipticCurvePublicKey.from_encoded_point(
            _CURVES[key.curve](), key.public_bytes_x962()
        )
    if isinstance(key, RSAPublicKey):
        return serialization.load_der_public_key(key.public_bytes("der", "spki"))
    raise TypeError(f"not a keycell public key: {type(key).__name__}")


_PYCA_PUBLIC: dict[type, type] = {
    Ed25519PublicKey: ed25519.Ed25519PublicKey,
    X25519PublicKey: x25519.X25519PublicKey,
    ECPublicKey: ec.EllipticCurvePublicKey,
    RSAPublicKey: rsa.RSAPublicKey,
}


def public_key_from_cryptography(cls: type, key: object) -> Any:
    """``cls.from_cryptography(key)``: the keycell public key of class ``cls`` equal to the
    pyca public key ``key``; ``TypeError`` when ``key`` is not pyca's public key class of
    that algorithm, ``ValueError`` when keycell does not support it (another curve, an RSA
    modulus outside 2048 to 4096 bits)."""
    expected = _PYCA_PUBLIC.get(cls)
    if expected is None:
        raise TypeError(f"{cls.__name__} has no pyca/cryptography counterpart")
    if not isinstance(key, expected):
        raise TypeError(
            f"{cls.__name__}.from_cryptography() takes a pyca/cryptography "
            f"{expected.__module__}.{expected.__name__}, not {type(key).__name__}"
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Ed25519PublicKey.from_public_bytes(key.public_bytes_raw())
    if isinstance(key, x25519.X25519PublicKey):
        return X25519PublicKey.from_public_bytes(key.public_bytes_raw())
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_NAMES.get(key.curve.name)
        if curve is None:
            raise ValueError(f"keycell's EC keys are on P-256 or P-384, not {key.curve.name}")
        point = key.public_bytes(_Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return ECPublicKey.from_public_bytes(curve, point)
    assert isinstance(key, rsa.RSAPublicKey)  # narrowed by _PYCA_PUBLIC
    der = key.public_bytes(_Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return RSAPublicKey.from_der(der)


class _Adapter(RefusesText):
    """What the four adapters share: the handle, the export check and the export path,
    the refusal to be pickled or turned into text, and copies that are the object itself
    (it holds no key bytes, only the handle)."""

    _key: Any
    _allow_export: bool
    _public: Any

    def _setup(self, key: object, allow_export: bool) -> None:
        if _ADAPTERS.get(type(key)) is not type(self):
            raise TypeError(
                f"{type(self).__name__} wraps {self._wraps()}, not {type(key).__name__}"
            )
        if not isinstance(allow_export, bool):
            raise TypeError("allow_export must be a bool")
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_allow_export", allow_export)
        object.__setattr__(self, "_public", public_key_to_cryptography(key.public_key()))  # type: ignore[attr-defined]

    def _wraps(self) -> str:
        return " or ".join(k.__name__ for k, a in _ADAPTERS.items() if a is type(self))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        # The handle and the export choice are fixed when the adapter is made (a guard
        # against accidents: code in this process can always reach the handle itself,
        # whose exportable flag and seal are the boundary).
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    @property
    def keycell_key(self) -> Any:
        """The keycell handle behind this object."""
        return self._key

    def _pyca_public(self) -> Any:
        self._key.public_key()  # KeyDestroyedError / ForkedKeyError once unusable
        return self._public

    def _check_export(self, what: str) -> None:
        if not hasattr(self._key, "expose"):
            raise KeyNotExportableError(
                f"{what}() refused: the key is in a PKCS#11 token, which never lets it out"
            )
        if not self._allow_export:
            raise KeyNotExportableError(
                f"{what}() of a keycell-backed key copies the private key onto the Python "
                "heap, where it cannot be wiped; it is refused unless the key was converted "
                "with to_cryptography(allow_export=True) (and is exportable)"
            )

    def _exposed(self, fmt: str) -> bytes:
        with self._key.expose(format=fmt) as view:
            data = bytes(view)
            del view
        return data

    def _pyca_copy(self) -> Any:
        """The key as a pyca private key object (a copy outside guarded memory)."""
        return serialization.load_der_private_key(self._exposed("der"), password=None)

    def _encode(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        self._check_export("private_bytes")
        if not isinstance(encryption_algorithm, serialization.KeySerializationEncryption):
            raise TypeError("encryption_algorithm must be a KeySerializationEncryption instance")
        plain = isinstance(encryption_algorithm, serialization.NoEncryption)
        if plain and format is _PrivateFormat.PKCS8 and encoding is _Encoding.DER:
            return self._exposed("der")
        if plain and format is _PrivateFormat.PKCS8 and encoding is _Encoding.PEM:
            return self._exposed("pem")
        return bytes(self._pyca_copy().private_bytes(encoding, format, encryption_algorithm))

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled: its key is kept out of Python memory "
            "on purpose"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._key!r}>"


class CryptographyEd25519PrivateKey(_Adapter, ed25519.Ed25519PrivateKey):
    """A pyca ``Ed25519PrivateKey`` whose signing runs in keycell (made by
    ``keycell.Ed25519PrivateKey.to_cryptography()``)."""

    def __init__(self, key: Ed25519PrivateKey, *, allow_export: bool = False) -> None:
        """Wrap ``key``; see :meth:`keycell.Ed25519PrivateKey.to_cryptography`."""
        self._setup(key, allow_export)

    def sign(self, data: Buffer) -> bytes:
        """The Ed25519 signature of ``data``, made by keycell."""
        return bytes(self._key.sign(data))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        """The public key, as a pyca object."""
        return self._pyca_public()  # type: ignore[no-any-return]

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """The encoded private key: refused unless export was allowed (module docs)."""
        if (
            encoding is _Encoding.Raw
            and format is _PrivateFormat.Raw
            and isinstance(encryption_algorithm, serialization.NoEncryption)
        ):
            return self.private_bytes_raw()
        return self._encode(encoding, format, encryption_algorithm)

    def private_bytes_raw(self) -> bytes:
        """The 32-byte seed: refused unless export was allowed (module docs)."""
        self._check_export("private_bytes_raw")
        return self._exposed("raw")

    def __copy__(self) -> CryptographyEd25519PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> CryptographyEd25519PrivateKey:
        return self


class CryptographyX25519PrivateKey(_Adapter, x25519.X25519PrivateKey):
    """A pyca ``X25519PrivateKey`` whose key exchange runs in keycell (made by
    ``keycell.X25519PrivateKey.to_cryptography()``)."""

    def __init__(self, key: X25519PrivateKey, *, allow_export: bool = False) -> None:
        """Wrap ``key``; see :meth:`keycell.X25519PrivateKey.to_cryptography`."""
        self._setup(key, allow_export)

    def exchange(self, peer_public_key: x25519.X25519PublicKey) -> bytes:
        """The 32-byte shared secret as ``bytes`` (pyca's contract): that copy lives on
        the Python heap. ``keycell_key.exchange(...)`` keeps it in a ``SecretKey``."""
        peer = X25519PublicKey.from_cryptography(peer_public_key)
        return _shared_bytes(self._key.exchange(peer))

    def public_key(self) -> x25519.X25519PublicKey:
        """The public key, as a pyca object."""
        return self._pyca_public()  # type: ignore[no-any-return]

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """The encoded private key: refused unless export was allowed (module docs)."""
        if (
            encoding is _Encoding.Raw
            and format is _PrivateFormat.Raw
            and isinstance(encryption_algorithm, serialization.NoEncryption)
        ):
            return self.private_bytes_raw()
        return self._encode(encoding, format, encryption_algorithm)

    def private_bytes_raw(self) -> bytes:
        """The 32-byte private key: refused unless export was allowed (module docs)."""
        self._check_export("private_bytes_raw")
        return self._exposed("raw")

    def __copy__(self) -> CryptographyX25519PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> CryptographyX25519PrivateKey:
        return self


def _shared_bytes(shared: Any) -> bytes:
    """The bytes of a shared-secret ``SecretKey``, which is destroyed afterwards."""
    try:
        with shared.expose() as view:
            data = bytes(view)
            del view
        return data
    finally:
        shared.destroy()


class CryptographyECPrivateKey(_Adapter, ec.EllipticCurvePrivateKey):
    """A pyca ``EllipticCurvePrivateKey`` whose ECDSA and ECDH run in keycell (made by
    ``keycell.ECPrivateKey.to_cryptography()``)."""

    def __init__(self, key: ECPrivateKey, *, allow_export: bool = False) -> None:
        """Wrap ``key``; see :meth:`keycell.ECPrivateKey.to_cryptography`."""
        self._setup(key, allow_export)

    @property
    def curve(self) -> ec.EllipticCurve:
        """The curve (``SECP256R1()`` or ``SECP384R1()``)."""
        return _CURVES[self._key.curve]()

    @property
    def key_size(self) -> int:
        """The size of the curve's order in bits."""
        return int(self._key.key_size)

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """The DER ECDSA signature of ``data``, made by keycell. ``signature_algorithm``
        must be ``ec.ECDSA(hash)`` with the curve's hash (SHA-256 on P-256, SHA-384 on
        P-384) and without ``deterministic_signing``; anything else raises
        ``UnsupportedAlgorithm``."""
        if not isinstance(signature_algorithm, ec.ECDSA):
            _unsupported(
                f"keycell's EC keys sign with ECDSA only, not {type(signature_algorithm).__name__}"
            )
        algorithm = signature_algorithm.algorithm
        _refuse_prehashed(algorithm)
        curve = self._key.curve
        expected = _CURVE_HASH[curve]
        if type(algorithm) is not expected:
            _unsupported(
                f"keycell's {curve} keys sign with {expected().name.upper()}, the hash the curve "
                f"fixes, not {getattr(algorithm, 'name', type(algorithm).__name__)}"
            )
        if getattr(signature_algorithm, "deterministic_signing", False):
            _unsupported(
                "keycell signs with hedged nonces (key, message digest and fresh randomness), "
                "not the deterministic nonces of RFC 6979"
            )
        return bytes(self._key.sign(data))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """ECDH: the shared secret (the x-coordinate) as ``bytes`` (pyca's contract): that
        copy lives on the Python heap. ``keycell_key.exchange(...)`` keeps it in a
        ``SecretKey``."""
        if not isinstance(algorithm, ec.ECDH):
            _unsupported(f"keycell's EC keys exchange with ECDH only, not {algorithm!r}")
        if not hasattr(self._key, "exchange"):
            _unsupported("this EC key (in a PKCS#11 token) signs only: it does no ECDH")
        peer = ECPublicKey.from_cryptography(peer_public_key)
        if peer.curve != self._key.curve:
            raise ValueError(
                f"the peer public key is on {peer.curve}, this key on {self._key.curve}"
            )
        return _shared_bytes(self._key.exchange(peer))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public key, as a pyca object."""
        return self._pyca_public()  # type: ignore[no-any-return]

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        """The private scalar as an ``int``: refused unless export was allowed (module docs)."""
        self._check_export("private_numbers")
        return self._pyca_copy().private_numbers()  # type: ignore[no-any-return]

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """The encoded private key: refused unless export was allowed (module docs)."""
        return self._encode(encoding, format, encryption_algorithm)

    def __copy__(self) -> CryptographyECPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> CryptographyECPrivateKey:
        return self


def _rsa_padding(pad: padding.AsymmetricPadding, hash_name: str, digest_size: int) -> str:
    """keycell's ``padding=`` for pyca's padding object, or ``UnsupportedAlgorithm``."""
    if isinstance(pad, padding.PKCS1v15):
        return "pkcs1v15"
    if not isinstance(pad, padding.PSS):
        _unsupported(
            "keycell's RSA keys sign with PKCS1v15 or PSS padding, not "
            f"{getattr(pad, 'name', type(pad).__name__)}"
        )
    mgf = pad.mgf
    mgf_hash = getattr(mgf, "_algorithm", None)
    if not isinstance(mgf, padding.MGF1) or getattr(mgf_hash, "name", None) != hash_name:
        _unsupported("keycell's RSA-PSS uses MGF1 with the signing hash")
    salt = pad._salt_length
    if isinstance(salt, int) and not isinstance(salt, bool):
        if salt != digest_size:
            _unsupported(
                f"keycell's RSA-PSS salt is the hash length ({digest_size} bytes), not {salt}"
            )
    elif salt is not padding.PSS.DIGEST_LENGTH:
        _unsupported(
            "keycell's RSA-PSS salt is the hash length: use salt_length=PSS.DIGEST_LENGTH "
            "(PSS.MAX_LENGTH and PSS.AUTO are for other signers or for verifying)"
        )
    return "pss"


class CryptographyRSAPrivateKey(_Adapter, rsa.RSAPrivateKey):
    """A pyca ``RSAPrivateKey`` whose signing runs in keycell (made by
    ``keycell.RSAPrivateKey.to_cryptography()``). It does not decrypt."""

    def __init__(self, key: RSAPrivateKey, *, allow_export: bool = False) -> None:
        """Wrap ``key``; see :meth:`keycell.RSAPrivateKey.to_cryptography`."""
        self._setup(key, allow_export)

    @property
    def key_size(self) -> int:
        """The modulus size in bits."""
        return int(self._key.key_size)

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: Any,
    ) -> bytes:
        """The RSA signature of ``data``, made by keycell: ``padding`` is ``PKCS1v15()`` or
        ``PSS(mgf=MGF1(hash), salt_length=PSS.DIGEST_LENGTH)`` (or the hash length),
        ``algorithm`` SHA-256, SHA-384 or SHA-512; anything else raises
        ``UnsupportedAlgorithm``."""
        _refuse_prehashed(algorithm)
        hash_name = _RSA_HASHES.get(type(algorithm))
        if hash_name is None:
            _unsupported(
                "keycell's RSA keys sign with SHA-256, SHA-384 or SHA-512, not "
                f"{getattr(algorithm, 'name', type(algorithm).__name__)}"
            )
        pad = _rsa_padding(padding, hash_name, algorithm.digest_size)
        return bytes(self._key.sign(data, padding=pad, hash=hash_name))

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        """Refused (``UnsupportedAlgorithm``): keycell's RSA keys are for signing only."""
        _unsupported("keycell's RSA keys are for signing only: they do not decrypt")

    def public_key(self) -> rsa.RSAPublicKey:
        """The public key, as a pyca object."""
        return self._pyca_public()  # type: ignore[no-any-return]

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        """The private key's numbers: refused unless export was allowed (module docs)."""
        self._check_export("private_numbers")
        return self._pyca_copy().private_numbers()  # type: ignore[no-any-return]

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """The encoded private key: refused unless export was allowed (module docs)."""
        return self._encode(encoding, format, encryption_algorithm)

    def __copy__(self) -> CryptographyRSAPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> CryptographyRSAPrivateKey:
        return self


_ADAPTERS: dict[type, Any] = {
    Ed25519PrivateKey: CryptographyEd25519PrivateKey,
    X25519PrivateKey: CryptographyX25519PrivateKey,
    ECPrivateKey: CryptographyECPrivateKey,
    RSAPrivateKey: CryptographyRSAPrivateKey,
    # Keys in a PKCS#11 token: the same methods, signing in the token; never exported.
    Pkcs11Ed25519PrivateKey: CryptographyEd25519PrivateKey,
    Pkcs11ECPrivateKey: CryptographyECPrivateKey,
    Pkcs11RSAPrivateKey: CryptographyRSAPrivateKey,
}


def private_key_to_cryptography(key: object, allow_export: bool = False) -> Any:
    """``key.to_cryptography(allow_export=...)``: the pyca adapter of a keycell private
    key handle."""
    adapter = _ADAPTERS.get(type(key))
    if adapter is None:
        raise TypeError(f"not a keycell private key: {type(key).__name__}")
    if not isinstance(allow_export, bool):
        raise TypeError("allow_export must be a bool")
    return adapter(key, allow_export=allow_export)
