"""Django-compatible signing (``django.utils.crypto`` and ``django.core.signing``) with
keys that stay in guarded memory.

:func:`salted_hmac`, :class:`Signer`, :class:`TimestampSigner`, :func:`dumps` and
:func:`loads` take a :class:`keycell.SecretKey` where Django takes ``settings.SECRET_KEY``,
and produce the same values: a token signed by a Django app with a secret verifies here
with a handle holding the same bytes, and the other way round (``fallback_keys`` for
rotation, the default salts are Django's literal ``"django.core.signing.Signer"`` and
``"django.core.signing.TimestampSigner"``, ``compress=True`` as Django's). Django itself is
not needed at run time.

The derived key of ``salted_hmac`` (``H(key_salt + secret)``) is computed inside keycell
(:meth:`keycell.SecretKey.derive_digest`) into a guarded region bound to the secret key:
destroying the key revokes it. Django's ``SECRET_KEY`` is text (``force_bytes`` encodes it
as UTF-8): load those same bytes into the handle.

What this does not change: Django's own sessions, password-reset tokens, signed cookies
and authentication hashes read ``settings.SECRET_KEY`` as text, and that string stays in
the heap for as long as Django runs. This module is for the values your code signs.
"""

from __future__ import annotations

import datetime
import json
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from .._native import HMAC, SecretKey
from ..exceptions import InvalidSignature, KeycellError
from ._tokens import b64decode_nopad, b64encode_nopad, digest_name

__all__ = [
    "BadSignature",
    "JSONSerializer",
    "SaltedHMAC",
    "SignatureExpired",
    "Signer",
    "TimestampSigner",
    "b62_decode",
    "b62_encode",
    "dumps",
    "loads",
    "salted_hmac",
]

_BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEP_SAFE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz0123456789-="
)


class BadSignature(KeycellError):
    """The signature is missing or does not match (``django.core.signing.BadSignature``)."""


class SignatureExpired(BadSignature):
    """The signature is valid but older than ``max_age``."""


def _force_bytes(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _key(secret: SecretKey, what: str = "secret") -> SecretKey:
    if not isinstance(secret, SecretKey):
        raise TypeError(
            f"{what} must be a keycell.SecretKey, not {type(secret).__name__}: load the "
            "secret with SecretKey.from_buffer(), from_file() or a key store"
        )
    return secret


class SaltedHMAC:
    """The HMAC object :func:`salted_hmac` returns: ``update``, ``digest``,
    ``hexdigest`` and ``copy`` as the standard library's ``hmac`` objects, over a keycell
    :class:`keycell.HMAC` whose derived key stays in guarded memory."""

    def __init__(self, mac: HMAC) -> None:
        self._mac = mac

    @property
    def name(self) -> str:
        """``"hmac-"`` and the digest name, as :mod:`hmac`."""
        return f"hmac-{self._mac.algorithm}"

    @property
    def digest_size(self) -> int:
        """Length of the digest in bytes."""
        return self._mac.digest_size

    @property
    def block_size(self) -> int:
        """Block size of the hash in bytes."""
        return self._mac.block_size

    def update(self, msg: bytes) -> None:
        """Absorb more of the message."""
        self._mac.update(msg)

    def copy(self) -> SaltedHMAC:
        """An independent copy of the computation so far."""
        return SaltedHMAC(self._mac.copy())

    def digest(self) -> bytes:
        """The HMAC of the message so far (the object can still be updated)."""
        return self._mac.copy().finalize()

    def hexdigest(self) -> str:
        """:meth:`digest` in hexadecimal."""
        return self.digest().hex()


def salted_hmac(
    key_salt: str | bytes, value: str | bytes, secret: SecretKey, *, algorithm: str = "sha1"
) -> SaltedHMAC:
    """``django.utils.crypto.salted_hmac`` with the secret in a keycell handle: the HMAC
    of ``value`` under the key ``H(key_salt + secret)``, both with ``algorithm`` ("sha1",
    Django's default, "sha256", "sha384" or "sha512"). ``secret`` is required (there is no
    ``settings.SECRET_KEY`` fallback)."""
    alg = digest_name(algorithm)
    derived = _key(secret).derive_digest(_force_bytes(key_salt), alg)
    mac = HMAC(derived, alg)
    mac.update(_force_bytes(value))
    return SaltedHMAC(mac)


def b62_encode(s: int) -> str:
    """An integer in Django's base 62 (the timestamps of :class:`TimestampSigner`)."""
    if s == 0:
        return "0"
    sign = "-" if s < 0 else ""
    s = abs(s)
    encoded = ""
    while s > 0:
        s, remainder = divmod(s, 62)
        encoded = _BASE62_ALPHABET[remainder] + encoded
    return sign + encoded


def b62_decode(s: str) -> int:
    """The integer of a base-62 string; ``ValueError`` for a character outside it."""
    if s == "0":
        return 0
    sign = 1
    if s[:1] == "-":
        s = s[1:]
        sign = -1
    if not s:
        raise ValueError("empty base62 number")
    decoded = 0
    for digit in s:
        decoded = decoded * 62 + _BASE62_ALPHABET.index(digit)
    return sign * decoded


class JSONSerializer:
    """Django's signing serializer: compact JSON in Latin-1 bytes."""

    def dumps(self, obj: Any) -> bytes:
        """``obj`` as compact JSON bytes."""
        return json.dumps(obj, separators=(",", ":")).encode("latin-1")

    def loads(self, data: bytes) -> Any:
        """The object of JSON bytes."""
        return json.loads(data.decode("latin-1"))


class Signer:
    """``django.core.signing.Signer`` over keycell keys: ``value + sep + signature``, the
    signature the URL-safe base64 (no padding) of ``salted_hmac(salt + "signer", value,
    key, algorithm=algorithm)``.

    ``key`` signs; ``key`` and then each of ``fallback_keys`` verify. ``salt`` defaults to
    Django's ``"django.core.signing.Signer"`` (``"...TimestampSigner"`` for
    :class:`TimestampSigner`), ``algorithm`` to ``"sha256"``.
    """

    #: Django's default salt for this class (its module and class name in Django).
    default_salt = "django.core.signing.Signer"

    def __init__(
        self,
        *,
        key: SecretKey,
        sep: str = ":",
        salt: str | None = None,
        algorithm: str | None = None,
        fallback_keys: Iterable[SecretKey] | None = None,
    ) -> None:
        self.key: SecretKey = _key(key, "key")
        self.fallback_keys: list[SecretKey] = [
            _key(k, "every fallback key") for k in (fallback_keys or ())
        ]
        self.sep = sep
        self.salt = salt or self.default_salt
        self.algorithm = digest_name(algorithm or "sha256")
        if all(c in _SEP_SAFE_CHARS for c in sep):
            raise ValueError(
                f"Unsafe Signer separator: {sep!r} (cannot be empty or consist of only A-z0-9-_=)"
            )
        self._derived: dict[int, SecretKey] = {}

    def _derived_key(self, key: SecretKey) -> SecretKey:
        found = self._derived.get(id(key))
        if found is None or found.destroyed:
            found = key.derive_digest(_force_bytes(self.salt + "signer"), self.algorithm)
            self._derived[id(key)] = found
        return found

    def signature(self, value: str | bytes, key: SecretKey | None = None) -> str:
        """The signature of ``value`` under ``key`` (default: this signer's key)."""
        use = self.key if key is None else _key(key, "key")
        if any(use is k for k in (self.key, *self.fallback_keys)):
            derived = self._derived_key(use)
        else:
            derived = use.derive_digest(_force_bytes(self.salt + "signer"), self.algorithm)
        return b64encode_nopad(derived.hmac(_force_bytes(value), self.algorithm)).decode()

    def sign(self, value: str) -> str:
        """``value + sep + signature``."""
        return f"{value}{self.sep}{self.signature(value)}"

    def unsign(self, signed_value: str) -> str:
        """The value of a signed value; :class:`BadSignature` unless its signature matches
        the key or a fallback key (constant-time comparison)."""
        if self.sep not in signed_value:
            raise BadSignature(f'No "{self.sep}" found in value')
        value, sig = signed_value.rsplit(self.sep, 1)
        try:
            raw = b64decode_nopad(sig.encode("ascii"))
        except (UnicodeEncodeError, ValueError):
            raw = b""
        # Django compares the base64 text; decoding first is the same test only for the
        # canonical encoding, so the text must also re-encode to itself.
        canonical = b64encode_nopad(raw).decode() == sig
        if canonical and len(raw) == self.digest_size:
            msg = _force_bytes(value)
            for key in (self.key, *self.fallback_keys):
                try:
                    self._derived_key(key).verify_hmac(msg, raw, self.algorithm)
                except InvalidSignature:
                    continue
                return value
        raise BadSignature("Signature does not match")

    @property
    def digest_size(self) -> int:
        """Length of a raw signature in bytes."""
        return {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}[self.algorithm]

    def sign_object(
        self, obj: Any, serializer: type[Any] = JSONSerializer, compress: bool = False
    ) -> str:
        """Serialize ``obj`` (compact JSON by default), optionally zlib-compress it when
        that is shorter (marked by a leading ``.``), encode it in URL-safe base64 and
        sign it."""
        data = serializer().dumps(obj)
        is_compressed = False
        if compress:
            compressed = zlib.compress(data)
            if len(compressed) < len(data) - 1:
                data = compressed
                is_compressed = True
        base64d = b64encode_nopad(data).decode()
        if is_compressed:
            base64d = "." + base64d
        return self.sign(base64d)

    def unsign_object(
        self, signed_obj: str, serializer: type[Any] = JSONSerializer, **kwargs: Any
    ) -> Any:
        """Verify and deserialize a value from :meth:`sign_object`."""
        base64d = self.unsign(signed_obj, **kwargs).encode()
        decompress = base64d[:1] == b"."
        if decompress:
            base64d = base64d[1:]
        data = b64decode_nopad(base64d)
        if decompress:
            data = zlib.decompress(data)
        return serializer().loads(data)


class TimestampSigner(Signer):
    """``django.core.signing.TimestampSigner``: signs ``value + sep + timestamp`` (base 62
    seconds) and checks ``max_age`` in :meth:`unsign`. ``clock`` (default
    :func:`time.time`) gives the current time."""

    default_salt = "django.core.signing.TimestampSigner"

    def __init__(
        self,
        *,
        key: SecretKey,
        sep: str = ":",
        salt: str | None = None,
        algorithm: str | None = None,
        fallback_keys: Iterable[SecretKey] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            key=key, sep=sep, salt=salt, algorithm=algorithm, fallback_keys=fallback_keys
        )
        self.clock: Callable[[], float] = time.time if clock is None else clock

    def timestamp(self) -> str:
        """The current time in base 62."""
        return b62_encode(int(self.clock()))

    def sign(self, value: str) -> str:
        """``value + sep + timestamp + sep + signature``."""
        return super().sign(f"{value}{self.sep}{self.timestamp()}")

    def unsign(self, value: str, max_age: float | datetime.timedelta | None = None) -> str:
        """The value of a signed value; :class:`SignatureExpired` when it is older than
        ``max_age`` (seconds or a ``timedelta``)."""
        result = super().unsign(value)
        if self.sep not in result:
            raise BadSignature("Timestamp missing")
        value, stamp = result.rsplit(self.sep, 1)
        try:
            ts = b62_decode(stamp)
        except ValueError:
            raise BadSignature("Malformed timestamp") from None
        if max_age is not None:
            if isinstance(max_age, datetime.timedelta):
                max_age = max_age.total_seconds()
            age = self.clock() - ts
            if age > max_age:
                raise SignatureExpired(f"Signature age {age} > {max_age} seconds")
        return value


def dumps(
    obj: Any,
    key: SecretKey,
    salt: str = "django.core.signing",
    serializer: type[Any] = JSONSerializer,
    compress: bool = False,
    *,
    clock: Callable[[], float] | None = None,
) -> str:
    """``django.core.signing.dumps``: a URL-safe, timestamped, signed token of ``obj``
    (``key`` is required; ``clock`` as for :class:`TimestampSigner`)."""
    return TimestampSigner(key=key, salt=salt, clock=clock).sign_object(
        obj, serializer=serializer, compress=compress
    )


def loads(
    s: str,
    key: SecretKey,
    salt: str = "django.core.signing",
    serializer: type[Any] = JSONSerializer,
    max_age: float | datetime.timedelta | None = None,
    fallback_keys: Iterable[SecretKey] | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> Any:
    """``django.core.signing.loads``: the object of a token from :func:`dumps`;
    :class:`BadSignature` or :class:`SignatureExpired` otherwise."""
    return TimestampSigner(
        key=key, salt=salt, fallback_keys=fallback_keys, clock=clock
    ).unsign_object(s, serializer=serializer, max_age=max_age)
