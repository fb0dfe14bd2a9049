"""JSON Web Keys (RFC 7517) and JWK Sets of public keys, with RFC 7638 thumbprints.

The encoding of a key is its own ``to_jwk()`` (``Ed25519PublicKey``, ``X25519PublicKey``,
``ECPublicKey``, ``RSAPublicKey``): the one JWK encoder, which ``keycell pubkey --jwk``
prints too. Parsing takes public keys only: a JWK with a private member (``d``, ``p``,
``q``, ``dp``, ``dq``, ``qi``, ``oth``) or a symmetric one (``kty: oct``, member ``k``) is
refused, as keycell never loads secret keys from JSON text (a string in the Python heap
that nothing can wipe); load those with the key classes' ``from_file`` instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

from .._native import (
    ECPublicKey,
    Ed25519PublicKey,
    RSAPublicKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from . import _algorithms
from ._codec import b64url_decode, b64url_encode, loads_object
from .errors import DecodeError

__all__ = ["JWK", "JWKS", "thumbprint"]

JWKPublicKey: TypeAlias = Ed25519PublicKey | X25519PublicKey | ECPublicKey | RSAPublicKey

_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_EC_WIDTH = {"P-256": 32, "P-384": 48}
_MAX_JWKS_BYTES = 1024 * 1024
# The RSA keys keycell takes (as the Rust core: RSAPublicKey.from_der).
_RSA_MIN_BITS, _RSA_MAX_BITS = 2048, 4096
_RSA_MIN_E, _RSA_MAX_E = 65537, 1 << 33


def _public_of(key: object) -> JWKPublicKey:
    if isinstance(key, (Ed25519PublicKey, X25519PublicKey, ECPublicKey, RSAPublicKey)):
        return key
    if isinstance(key, _algorithms.HMAC_KEYS):
        raise TypeError(
            "an HMAC key has no public JWK: keycell never writes secret keys as JSON text"
        )
    if isinstance(
        key,
        (
            *_algorithms.ED25519_SIGNERS,
            *_algorithms.EC_SIGNERS,
            *_algorithms.RSA_SIGNERS,
            X25519PrivateKey,
        ),
    ):
        pub: JWKPublicKey = key.public_key()
        return pub
    raise TypeError(f"not a keycell key with a public JWK: {type(key).__name__}")


def thumbprint(key: object, hash: Literal["sha256", "sha384", "sha512"] = "sha256") -> str:
    """The RFC 7638 thumbprint of a public key (or a private key's public key), base64url:
    the hash of the required members as JSON with sorted names and no whitespace."""
    if hash not in ("sha256", "sha384", "sha512"):
        raise ValueError("hash must be 'sha256', 'sha384' or 'sha512'")
    members = _public_of(key).to_jwk()
    text = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return b64url_encode(hashlib.new(hash, text).digest())


def _member(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the JWK has no {name!r} string member")
    return value


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_uint(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(body)) + body


def _decode(obj: Mapping[str, Any], name: str) -> bytes:
    try:
        return b64url_decode(_member(obj, name), f"JWK member {name!r}")
    except DecodeError as e:
        raise ValueError(str(e)) from None


class _Unsupported(ValueError):
    """A well-formed public JWK of a type, curve or size keycell does not take."""


def _rsa_integer(obj: Mapping[str, Any], name: str) -> int:
    """RFC 7518 §6.3.1: a positive integer as its shortest big-endian bytes."""
    data = _decode(obj, name)
    if not data:
        raise ValueError(f"the RSA JWK's {name!r} is empty")
    if data[0] == 0:
        raise ValueError(
            f"the RSA JWK's {name!r} has leading zero bytes (RFC 7518 §6.3.1 forbids them)"
        )
    return int.from_bytes(data, "big")


def _parse_rsa(obj: Mapping[str, Any]) -> RSAPublicKey:
    n, e = _rsa_integer(obj, "n"), _rsa_integer(obj, "e")
    # What no RSA key has is malformed; a real key of a size keycell does not do is
    # unsupported (skip_unsupported may leave it out).
    if n < 3 or n % 2 == 0:
        raise ValueError("the RSA JWK's modulus n is not an odd number above 2")
    if e < 3 or e % 2 == 0 or e >= n:
        raise ValueError("the RSA JWK's exponent e is not an odd number from 3 to n - 1")
    if not _RSA_MIN_BITS <= n.bit_length() <= _RSA_MAX_BITS:
        raise _Unsupported(
            f"an RSA key of {n.bit_length()} bits (keycell takes {_RSA_MIN_BITS} to "
            f"{_RSA_MAX_BITS})"
        )
    if not _RSA_MIN_E <= e < _RSA_MAX_E:
        raise _Unsupported("an RSA public exponent keycell does not take (65537 to 2^33 - 1)")
    body = _der_uint(n) + _der_uint(e)
    try:
        return RSAPublicKey.from_der(b"\x30" + _der_length(len(body)) + body)
    except ValueError as err:
        raise ValueError(f"the RSA JWK is not a valid key: {err}") from None


def _parse_key(obj: Mapping[str, Any]) -> JWKPublicKey:
    found = [m for m in _PRIVATE_MEMBERS if m in obj]
    kty = obj.get("kty")
    if not isinstance(kty, str):
        raise ValueError("the JWK has no 'kty' string member")
    if found or kty == "oct":
        raise ValueError(
            "the JWK holds private or secret key material "
            f"({', '.join(found) or 'kty oct'}): keycell never loads secret keys from JSON "
            "text; load them with the key classes' from_file instead"
        )
    if kty == "OKP":
        crv = _member(obj, "crv")
        x = _decode(obj, "x")
        if crv == "Ed25519":
            return Ed25519PublicKey.from_public_bytes(x)
        if crv == "X25519":
            return X25519PublicKey.from_public_bytes(x)
        raise _Unsupported(f"unsupported OKP curve {crv!r} (Ed25519 and X25519 are)")
    if kty == "EC":
        crv = _member(obj, "crv")
        width = _EC_WIDTH.get(crv)
        if width is None:
            raise _Unsupported(f"unsupported EC curve {crv!r} (P-256 and P-384 are)")
        x, y = _decode(obj, "x"), _decode(obj, "y")
        if len(x) != width or len(y) != width:
            raise ValueError(f"the JWK's x and y must be {width} bytes each on {crv}")
        return ECPublicKey.from_public_bytes(crv, b"\x04" + x + y)  # type: ignore[arg-type]
    if kty == "RSA":
        return _parse_rsa(obj)
    raise _Unsupported(f"unsupported JWK key type {kty!r} (OKP, EC and RSA are)")


class JWK:
    """A public JSON Web Key: a keycell public key with the optional ``kid``, ``alg``,
    ``use`` and ``key_ops`` members.

    ``JWK(key)`` takes a public key or a private key (whose public key it keeps; never
    the private part); ``kid`` defaults to the RFC 7638 thumbprint. ``alg``, when given,
    binds the key to that one algorithm in verification; ``use`` other than ``"sig"``, or
    ``key_ops`` (RFC 7517 §4.3, a list of distinct strings) without ``"verify"``, keeps it
    from verifying anything. (A JWK here is always a public key, so ``"sign"`` has no
    effect.) ``JWK.from_dict``/``from_json``
    parse public JWKs only (see the module docstring).
    """

    __slots__ = ("_alg", "_key", "_key_ops", "_kid", "_use")

    def __init__(
        self,
        key: object,
        *,
        kid: str | None = None,
        alg: str | None = None,
        use: str | None = None,
        key_ops: Iterable[str] | None = None,
    ) -> None:
        if isinstance(key_ops, str):
            raise TypeError("key_ops must be a list of str, not one str")
        ops = None if key_ops is None else list(key_ops)
        if ops is not None and not all(isinstance(op, str) for op in ops):
            raise TypeError("key_ops must be a list of str")
        self._init(_public_of(key), kid, alg, use, ops, strict=True)

    def _init(
        self,
        key: JWKPublicKey,
        kid: str | None,
        alg: str | None,
        use: str | None,
        key_ops: list[str] | None,
        strict: bool,
    ) -> None:
        self._key = key
        if kid is not None and not isinstance(kid, str):
            raise TypeError("kid must be a str")
        # A parsed JWK may name an algorithm keycell lacks (a JWE one, say): kept, it then
        # fits no JWS algorithm. One given in code must be known.
        if alg is not None and (strict or alg in _algorithms.ALGORITHMS):
            spec = _algorithms.algorithm_named(alg)
            if not _algorithms.fits(spec, self._key):
                raise ValueError(f"algorithm {alg!r} does not fit this {type(self._key).__name__}")
        if use is not None and not isinstance(use, str):
            raise TypeError("use must be a str")
        if key_ops is not None and len(set(key_ops)) != len(key_ops):
            raise ValueError("key_ops must not repeat a value (RFC 7517 §4.3)")
        self._key_ops = None if key_ops is None else tuple(key_ops)
        self._kid = kid if kid is not None else thumbprint(self._key)
        self._alg = alg
        self._use = use

    @property
    def key(self) -> JWKPublicKey:
        """The public key."""
        return self._key

    @property
    def kid(self) -> str:
        """The key ID (the RFC 7638 thumbprint unless another was given)."""
        return self._kid

    @property
    def alg(self) -> str | None:
        """The one algorithm this key is for, or ``None`` (any that fits the key)."""
        return self._alg

    @property
    def use(self) -> str | None:
        """The intended use (``"sig"``, ``"enc"``) or ``None``."""
        return self._use

    @property
    def key_ops(self) -> tuple[str, ...] | None:
        """The permitted operations (``key_ops``), or ``None`` when not given."""
        return self._key_ops

    def thumbprint(self, hash: Literal["sha256", "sha384", "sha512"] = "sha256") -> str:
        """The RFC 7638 thumbprint of the key."""
        return thumbprint(self._key, hash)

    def fits(self, algorithm: str) -> bool:
        """Whether this key may verify tokens of ``algorithm`` (its type, its ``alg``
        member, its ``use`` and its ``key_ops`` agree)."""
        if self._use not in (None, "sig"):
            return False
        if self._key_ops is not None and "verify" not in self._key_ops:
            return False
        # ``EdDSA`` and RFC 9864's ``Ed25519`` name one algorithm for Ed25519 keys.
        same = {self._alg, algorithm} == {"EdDSA", "Ed25519"}
        if self._alg is not None and self._alg != algorithm and not same:
            return False
        spec = _algorithms.ALGORITHMS.get(algorithm)
        return spec is not None and _algorithms.fits(spec, self._key)

    def to_dict(self) -> dict[str, Any]:
        """The JWK as a dict: the key's members, then ``kid`` and ``alg``/``use``/``key_ops``
        if set."""
        out: dict[str, Any] = dict(self._key.to_jwk())
        out["kid"] = self._kid
        if self._alg is not None:
            out["alg"] = self._alg
        if self._use is not None:
            out["use"] = self._use
        if self._key_ops is not None:
            out["key_ops"] = list(self._key_ops)
        return out

    def to_json(self) -> str:
        """The JWK as compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> JWK:
        """Parse a public JWK from a mapping; ``ValueError`` for private or secret key
        material, an unsupported key type, curve or size, or malformed members (no
        ``kty`` string, an RSA ``n``/``e`` empty or with leading zero bytes, ...)."""
        if not isinstance(obj, Mapping):
            raise TypeError(f"a JWK must be a mapping, not {type(obj).__name__}")
        key = _parse_key(obj)
        kid, alg, use = obj.get("kid"), obj.get("alg"), obj.get("use")
        for name, value in (("kid", kid), ("alg", alg), ("use", use)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"the JWK's {name!r} member must be a string")
        key_ops = obj.get("key_ops")
        if key_ops is not None and (
            not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops)
        ):
            raise ValueError("the JWK's 'key_ops' member must be an array of strings")
        jwk = cls.__new__(cls)
        jwk._init(key, kid, alg, use, key_ops, strict=False)
        return jwk

    @classmethod
    def from_json(cls, text: str | bytes) -> JWK:
        """Parse a public JWK from JSON text (see :meth:`from_dict`)."""
        return cls.from_dict(_load_json(text, "JWK"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JWK):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"<JWK {self._key.to_jwk()['kty']} kid={self._kid!r}>"


def _load_json(text: str | bytes, what: str) -> dict[str, Any]:
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray)):
        data = bytes(text)
    else:
        raise TypeError(f"a {what} must be JSON text (str or bytes)")
    try:
        return loads_object(data, what, _MAX_JWKS_BYTES)
    except DecodeError as e:
        raise ValueError(str(e)) from None


class JWKS:
    """A JSON Web Key Set (RFC 7517 §5) of public keys, to publish (``to_json()``) or to
    verify tokens with (``jose.jws.verify(token, jwks, ...)``, ``jose.jwt.decode``).

    ``JWKS(keys)`` takes :class:`JWK` objects or keys (each wrapped in a ``JWK`` with its
    thumbprint as ``kid``). Key IDs must be unique within the set. A token naming a
    ``kid`` is verified with that entry only; a token without one only if exactly one
    entry fits its algorithm.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[object]) -> None:
        entries = [k if isinstance(k, JWK) else JWK(k) for k in keys]
        seen: set[str] = set()
        for entry in entries:
            if entry.kid in seen:
                raise ValueError(f"two keys of the JWK Set have the kid {entry.kid!r}")
            seen.add(entry.kid)
        self._keys = tuple(entries)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, skip_unsupported: bool = False) -> JWKS:
        """Parse ``{"keys": [...]}``; every entry as :meth:`JWK.from_dict`.

        ``skip_unsupported=True`` leaves out entries that are well-formed public keys of a
        type, curve or size keycell does not take (``Ed448``, ``P-521``, a 1024-bit RSA
        key, an exponent of 3) instead of refusing the set, as a verifier of a third party's
        ``jwks_uri`` may need. Private or secret key material and malformed entries (not
        an object, no ``kty`` string, bad members) are refused (``ValueError``) either
        way."""
        if not isinstance(obj, Mapping):
            raise TypeError(f"a JWK Set must be a mapping, not {type(obj).__name__}")
        keys = obj.get("keys")
        if not isinstance(keys, list):
            raise ValueError("a JWK Set needs a 'keys' array")
        entries = []
        for k in keys:
            if not isinstance(k, Mapping):
                raise ValueError(f"a JWK Set entry is not a JSON object: {type(k).__name__}")
            try:
                entries.append(JWK.from_dict(k))
            except _Unsupported:
                if not skip_unsupported:
                    raise
        return cls(entries)

    @classmethod
    def from_json(cls, text: str | bytes, *, skip_unsupported: bool = False) -> JWKS:
        """Parse a JWK Set from JSON text (at most 1 MiB; ``skip_unsupported`` as
        :meth:`from_dict`)."""
        return cls.from_dict(_load_json(text, "JWK Set"), skip_unsupported=skip_unsupported)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """``{"keys": [...]}``."""
        return {"keys": [k.to_dict() for k in self._keys]}

    def to_json(self) -> str:
        """The set as compact JSON text (what a ``jwks_uri`` serves)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def get(self, kid: str) -> JWK | None:
        """The entry with key ID ``kid``, or ``None``."""
        for k in self._keys:
            if k.kid == kid:
                return k
        return None

    def __getitem__(self, kid: str) -> JWK:
        found = self.get(kid)
        if found is None:
            raise KeyError(kid)
        return found

    def __contains__(self, kid: object) -> bool:
        return any(k.kid == kid for k in self._keys)

    def __iter__(self) -> Iterator[JWK]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<JWKS of {len(self._keys)} keys>"
