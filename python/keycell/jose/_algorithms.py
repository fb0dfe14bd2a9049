"""The JWS algorithms (RFC 7518 §3, RFC 8037, RFC 9864) and which keys each one takes.

Every key is bound to one family of algorithms by its class, never by what a token says:
an HMAC key (a :class:`~keycell.SecretKey`, a token or agent secret key) only computes and
checks ``HS*``; an Ed25519 key only ``EdDSA``/``Ed25519``; an EC key only the ``ES*`` of
its curve; an RSA key only ``RS*``/``PS*``. Public keys are never HMAC secrets and
``bytes``/``str`` are never keys, so the classic confusion (an RSA public key's PEM used
as an HS256 secret) cannot be expressed. ``none`` is not an algorithm here.

Signing and MAC computation run inside keycell (Rust, a token or the agent): this module
only calls the keys' ``sign``/``hmac``/``verify`` methods and reads no key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._native import (
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Pkcs11ECPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11RSAPrivateKey,
    Pkcs11SecretKey,
    RSAPrivateKey,
    RSAPublicKey,
    SecretKey,
)
from ..agent import AgentECKey, AgentEd25519Key, AgentRSAKey, AgentSecretKey
from ..exceptions import InvalidSignature
from .errors import InvalidSignatureError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "PublicKey",
    "SigningKey",
    "VerifyingKey",
    "algorithm_named",
    "is_keycell_key",
    "sign",
    "signing_algorithm",
    "verify",
    "verifying_key",
]

_Family = Literal["hmac", "ed25519", "ec", "rsa"]

HMAC_KEYS = (SecretKey, Pkcs11SecretKey, AgentSecretKey)
ED25519_SIGNERS = (Ed25519PrivateKey, Pkcs11Ed25519PrivateKey, AgentEd25519Key)
EC_SIGNERS = (ECPrivateKey, Pkcs11ECPrivateKey, AgentECKey)
# An agent RSA key signs RS256 and RS512 only (the SSH agent protocol's two requests);
# other RSA algorithms raise its ValueError.
RSA_SIGNERS = (RSAPrivateKey, Pkcs11RSAPrivateKey, AgentRSAKey)
PUBLIC_KEYS = (Ed25519PublicKey, ECPublicKey, RSAPublicKey)

HmacKeyType: TypeAlias = SecretKey | Pkcs11SecretKey | AgentSecretKey
SigningKey: TypeAlias = (
    HmacKeyType
    | Ed25519PrivateKey
    | Pkcs11Ed25519PrivateKey
    | AgentEd25519Key
    | ECPrivateKey
    | Pkcs11ECPrivateKey
    | AgentECKey
    | RSAPrivateKey
    | Pkcs11RSAPrivateKey
    | AgentRSAKey
)
PublicKey: TypeAlias = Ed25519PublicKey | ECPublicKey | RSAPublicKey
VerifyingKey: TypeAlias = SigningKey | PublicKey


@dataclass(frozen=True)
class Algorithm:
    """One JWS ``alg`` value and what it means."""

    name: str
    family: _Family
    hash: Literal["sha256", "sha384", "sha512"]
    curve: str | None = None
    padding: Literal["pss", "pkcs1v15"] | None = None


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("HS256", "hmac", "sha256"),
        Algorithm("HS384", "hmac", "sha384"),
        Algorithm("HS512", "hmac", "sha512"),
        Algorithm("EdDSA", "ed25519", "sha512"),
        Algorithm("Ed25519", "ed25519", "sha512"),
        Algorithm("ES256", "ec", "sha256", curve="P-256"),
        Algorithm("ES384", "ec", "sha384", curve="P-384"),
        Algorithm("RS256", "rsa", "sha256", padding="pkcs1v15"),
        Algorithm("RS384", "rsa", "sha384", padding="pkcs1v15"),
        Algorithm("RS512", "rsa", "sha512", padding="pkcs1v15"),
        Algorithm("PS256", "rsa", "sha256", padding="pss"),
        Algorithm("PS384", "rsa", "sha384", padding="pss"),
        Algorithm("PS512", "rsa", "sha512", padding="pss"),
    )
}


_DIGEST_SIZE = {"sha256": 32, "sha384": 48, "sha512": 64}


def is_keycell_key(key: object) -> bool:
    """Whether ``key`` is one of keycell's signing, MAC or public key handles."""
    return isinstance(key, (*HMAC_KEYS, *ED25519_SIGNERS, *EC_SIGNERS, *RSA_SIGNERS, *PUBLIC_KEYS))


def algorithm_named(name: object) -> Algorithm:
    """The algorithm called ``name``; ``ValueError`` for ``none`` or one keycell lacks."""
    if not isinstance(name, str):
        raise TypeError(f"an algorithm name must be a str, not {type(name).__name__}")
    if name.lower() == "none":
        raise ValueError("'none' is not an algorithm: keycell.jose never accepts unsigned tokens")
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(
            f"unsupported algorithm {name!r}; keycell.jose has {', '.join(ALGORITHMS)}"
        ) from None


def _family_of(key: object) -> tuple[_Family, str | None]:
    if isinstance(key, HMAC_KEYS):
        return "hmac", None
    if isinstance(key, (*ED25519_SIGNERS, Ed25519PublicKey)):
        return "ed25519", None
    if isinstance(key, (*EC_SIGNERS, ECPublicKey)):
        return "ec", str(key.curve)
    if isinstance(key, (*RSA_SIGNERS, RSAPublicKey)):
        return "rsa", None
    if isinstance(key, (bytes, bytearray, memoryview, str)):
        raise TypeError(
            "keycell.jose takes keycell keys, not bytes or str: load an HMAC secret into "
            "keycell.SecretKey (from_file, from_buffer) and public keys with "
            "keycell.jose.JWK or the key classes' from_pem"
        )
    raise TypeError(f"not a keycell key usable with JOSE: {type(key).__name__}")


def _describe(family: _Family, curve: str | None) -> str:
    return {
        "hmac": "an HMAC key",
        "ed25519": "an Ed25519 key",
        "ec": f"an EC {curve} key",
        "rsa": "an RSA key",
    }[family]


def fits(alg: Algorithm, key: object) -> bool:
    """Whether ``key`` (a signing, MAC or public key) is bound to ``alg``."""
    try:
        family, curve = _family_of(key)
    except TypeError:
        return False
    return family == alg.family and (alg.curve is None or alg.curve == curve)


def signing_algorithm(key: object, algorithm: str | None) -> Algorithm:
    """The algorithm ``key`` signs with: ``algorithm`` checked against the key, or the one
    the key fixes (Ed25519: ``EdDSA``; EC: ``ES256``/``ES384`` by curve)."""
    family, curve = _family_of(key)
    if isinstance(key, PUBLIC_KEYS):
        raise TypeError(f"{type(key).__name__} is a public key: it cannot sign")
    if algorithm is None:
        if family == "ed25519":
            return ALGORITHMS["EdDSA"]
        if family == "ec":
            return ALGORITHMS["ES256" if curve == "P-256" else "ES384"]
        raise ValueError(
            f"{_describe(family, curve)} does not fix the algorithm: name it "
            + ("(algorithm='HS256', 'HS384' or 'HS512')" if family == "hmac" else "(RS* or PS*)")
        )
    alg = algorithm_named(algorithm)
    if not fits(alg, key):
        raise ValueError(f"algorithm {alg.name!r} does not fit {_describe(family, curve)}")
    return alg


def sign(alg: Algorithm, key: Any, data: bytes) -> bytes:
    """The signature or MAC of ``data`` under ``key`` (already checked to fit ``alg``)."""
    if alg.family == "hmac":
        return bytes(key.hmac(data, alg.hash))
    if alg.family == "ec":
        return bytes(key.sign(data, encoding="raw"))
    if alg.family == "rsa":
        return bytes(key.sign(data, padding=alg.padding, hash=alg.hash))
    return bytes(key.sign(data))


def verifying_key(key: object) -> VerifyingKey:
    """What checks a signature for ``key``: an HMAC key itself, a public key itself, a
    private key's public key."""
    family, _ = _family_of(key)
    if family == "hmac" or isinstance(key, PUBLIC_KEYS):
        return key  # type: ignore[return-value]  # one of the classes _family_of knows
    return key.public_key()  # type: ignore[attr-defined,no-any-return]  # a private key


def verify(alg: Algorithm, key: Any, data: bytes, signature: Buffer) -> None:
    """Check ``signature`` over ``data`` with ``key`` (from :func:`verifying_key`, checked
    to fit ``alg``); :class:`InvalidSignatureError` if it does not verify."""
    try:
        if alg.family == "hmac":
            # A JWS MAC is the full HMAC output (RFC 7518 §3.2). verify_hmac also takes
            # truncated tags (RFC 2104 §5), which would give a token a second, shorter
            # spelling that verifies: refuse any other length first (lengths are public).
            if len(memoryview(signature)) != _DIGEST_SIZE[alg.hash]:
                raise InvalidSignature("the MAC is not the full HMAC output")
            key.verify_hmac(data, signature, alg.hash)
        elif alg.family == "ec":
            key.verify(signature, data, encoding="raw")
        elif alg.family == "rsa":
            key.verify(signature, data, padding=alg.padding, hash=alg.hash)
        else:
            key.verify(signature, data)
    except InvalidSignature:
        raise InvalidSignatureError("the token's signature does not verify") from None
