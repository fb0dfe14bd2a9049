"""PyJWT takes keycell keys: :func:`install` registers algorithms with PyJWT that sign and
verify with keycell keys and hand every other key to PyJWT's own implementation.

>>> import jwt  # PyJWT
>>> from keycell import ECPrivateKey
>>> from keycell.jose import pyjwt
>>> pyjwt.install()
>>> key = ECPrivateKey.generate("P-256")
>>> token = jwt.encode({"sub": "alice"}, key, algorithm="ES256")
>>> jwt.decode(token, key.public_key(), algorithms=["ES256"])
{'sub': 'alice'}

PyJWT keeps its algorithms per ``PyJWS`` object, and ``jwt.encode``/``jwt.decode`` use
one module-wide object: :func:`install` wraps each algorithm registered there (or in the
``PyJWS`` given, or the one a ``PyJWT`` object made for itself) that keycell implements
(``HS*``, ``ES256``, ``ES384``, ``RS*``, ``PS*``, ``EdDSA``). The wrapper looks at the
key only: a keycell key (``SecretKey``, Ed25519/EC/RSA private and public keys, token and
agent keys, a :class:`keycell.jose.JWK`) is signed or checked inside keycell, after checking that it
fits the algorithm (an HMAC key never verifies ``RS256``, a public key is never an HMAC
secret: PyJWT's ``InvalidKeyError``); any other key (``bytes``, ``str``, pyca keys, PyJWT's
``PyJWK``) goes to PyJWT's own algorithm object unchanged, so code that does not use
keycell behaves exactly as before. Algorithms PyJWT does not have registered (RSA, EC and
EdDSA when pyca/cryptography is absent) are not added. :func:`uninstall` restores the
originals. Both are idempotent and thread-safe.

Keys never pass through PyJWT as bytes: PyJWT calls ``prepare_key``, ``sign`` and
``verify`` on the wrapper, which calls the keycell key's own methods; ``sign`` and
``verify`` check the key against the algorithm again, for algorithm objects used directly.
``check_key_length`` checks a ``SecretKey``'s length (a token or agent secret key does not
reveal its length and is not checked).

The adapter decides the key side only. Parsing and claim checks stay PyJWT's: it accepts
``=``-padded base64url, repeated header members and ``b64: false``, which
:mod:`keycell.jose` refuses.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from typing import TYPE_CHECKING, Any

from .._native import SecretKey
from . import _algorithms
from .errors import InvalidSignatureError
from .jwk import JWK

if TYPE_CHECKING:
    from jwt.algorithms import Algorithm
    from jwt.api_jws import PyJWS
    from jwt.api_jwt import PyJWT

__all__ = ["install", "installed", "uninstall"]

_LOCK = threading.Lock()
_NAMES = tuple(n for n in _algorithms.ALGORITHMS if n != "Ed25519")


def _jws_object(jws: PyJWS | PyJWT | None) -> PyJWS:
    try:
        from jwt import api_jws, api_jwt
    except ImportError:
        raise ImportError("keycell.jose.pyjwt needs PyJWT: pip install PyJWT") from None
    if jws is None:
        return api_jws._jws_global_obj
    if isinstance(jws, api_jwt.PyJWT):
        # A PyJWT object signs through the PyJWS object it made for itself.
        inner: PyJWS = jws._jws
        return inner
    if not isinstance(jws, api_jws.PyJWS):
        raise TypeError(
            "jws must be a jwt.PyJWS or jwt.PyJWT object (or None for PyJWT's module-wide one)"
        )
    return jws


@cache
def _wrapper_class() -> type[Algorithm]:
    from jwt.algorithms import Algorithm
    from jwt.exceptions import InvalidKeyError

    class KeycellAlgorithm(Algorithm):
        """One PyJWT algorithm: keycell keys inside keycell, other keys to ``original``."""

        def __init__(self, name: str, original: Algorithm) -> None:
            self.keycell_spec = _algorithms.ALGORITHMS[name]
            self.original = original

        def _keycell_key(self, key: object) -> Any:
            """The keycell key in ``key`` (checked to fit), or ``None`` if it is not one."""
            if isinstance(key, JWK):
                if not key.fits(self.keycell_spec.name):
                    raise InvalidKeyError(f"the JWK does not fit {self.keycell_spec.name}")
                return key.key
            if not _algorithms.is_keycell_key(key):
                return None
            if not _algorithms.fits(self.keycell_spec, key):
                raise InvalidKeyError(
                    f"a keycell {type(key).__name__} does not fit {self.keycell_spec.name}"
                )
            return key

        def prepare_key(self, key: Any) -> Any:
            found = self._keycell_key(key)
            return self.original.prepare_key(key) if found is None else found

        # PyJWT calls prepare_key before sign/verify, but an algorithm object may be used
        # directly (get_algorithm_by_name(...).sign(msg, key)): sign and verify check the
        # key against the algorithm themselves, through the same _keycell_key.
        def sign(self, msg: bytes, key: Any) -> bytes:
            found = self._keycell_key(key)
            if found is None:
                return self.original.sign(msg, key)
            key = found
            if isinstance(key, _algorithms.PUBLIC_KEYS):
                raise InvalidKeyError(f"{type(key).__name__} is a public key: it cannot sign")
            return _algorithms.sign(self.keycell_spec, key, msg)

        def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
            found = self._keycell_key(key)
            if found is None:
                return self.original.verify(msg, key, sig)
            key = found
            try:
                _algorithms.verify(self.keycell_spec, _algorithms.verifying_key(key), msg, sig)
            except InvalidSignatureError:
                return False
            return True

        def check_key_length(self, key: Any) -> str | None:
            if not _algorithms.is_keycell_key(key):
                return self.original.check_key_length(key)
            # RSA keys are 2048 bits or more by construction; HMAC keys as PyJWT's own
            # check (RFC 7518 §3.2: at least the hash output's size) where the length is
            # known: a SecretKey's. A PKCS#11 token or agent secret key does not reveal its
            # length, so it is not checked here (the token or agent decides what it holds).
            minimum = {"sha256": 32, "sha384": 48, "sha512": 64}[self.keycell_spec.hash]
            if isinstance(key, SecretKey) and len(key) < minimum:
                return (
                    f"The HMAC key is shorter than the {minimum * 8}-bit minimum "
                    f"recommended for {self.keycell_spec.name} (RFC 7518 section 3.2)"
                )
            return None

        def compute_hash_digest(self, bytestr: bytes) -> bytes:
            return self.original.compute_hash_digest(bytestr)

        def check_crypto_key_type(self, key: Any) -> None:
            self.original.check_crypto_key_type(key)

        def to_jwk(self, key_obj: Any, as_dict: bool = False) -> Any:  # type: ignore[override]
            if not _algorithms.is_keycell_key(key_obj):
                if as_dict:
                    return self.original.to_jwk(key_obj, as_dict=True)
                return self.original.to_jwk(key_obj)
            # The key's members, as PyJWT's own to_jwk writes them (no kid).
            members = JWK(key_obj).key.to_jwk()
            return members if as_dict else json.dumps(members, separators=(",", ":"))

        def from_jwk(self, jwk: Any) -> Any:  # type: ignore[override]
            return self.original.from_jwk(jwk)

        def __getattr__(self, name: str) -> Any:
            # Anything else PyJWT (or its users) read from an algorithm object, such as
            # ``hash_alg``, is the original's.
            if name == "original":
                raise AttributeError(name)
            return getattr(self.original, name)

    return KeycellAlgorithm


def install(jws: PyJWS | PyJWT | None = None) -> None:
    """Let PyJWT's ``jwt.encode``/``jwt.decode`` (or the given ``jwt.PyJWS`` or
    ``jwt.PyJWT`` object, which has algorithms of its own) take keycell keys; other keys
    keep PyJWT's own behaviour."""
    target = _jws_object(jws)
    cls = _wrapper_class()
    with _LOCK:
        for name in _NAMES:
            try:
                current = target.get_algorithm_by_name(name)
            except NotImplementedError:
                continue
            if isinstance(current, cls):
                continue
            target.unregister_algorithm(name)
            target.register_algorithm(name, cls(name, current))  # type: ignore[call-arg]


def uninstall(jws: PyJWS | PyJWT | None = None) -> None:
    """Put PyJWT's own algorithm objects back (undo :func:`install`)."""
    target = _jws_object(jws)
    cls = _wrapper_class()
    with _LOCK:
        for name in _NAMES:
            try:
                current = target.get_algorithm_by_name(name)
            except NotImplementedError:
                continue
            if isinstance(current, cls):
                target.unregister_algorithm(name)
                target.register_algorithm(name, current.original)  # type: ignore[attr-defined]


def installed(jws: PyJWS | PyJWT | None = None) -> bool:
    """Whether :func:`install` is in effect for PyJWT's module-wide object (or ``jws``)."""
    target = _jws_object(jws)
    cls = _wrapper_class()
    try:
        return isinstance(target.get_algorithm_by_name("HS256"), cls)
    except NotImplementedError:
        return False
