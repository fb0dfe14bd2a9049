"""itsdangerous-compatible signing with keys that stay in guarded memory.

:class:`Signer`, :class:`TimestampSigner`, :class:`Serializer`, :class:`TimedSerializer`,
:class:`URLSafeSerializer` and :class:`URLSafeTimedSerializer` take a
:class:`keycell.SecretKey` (or a list of them for rotation, in itsdangerous's order: the last
key signs, every key verifies) and produce tokens byte for byte identical to itsdangerous's
for the same secret bytes, with every ``key_derivation`` (``"concat"``,
``"django-concat"`` (the default), ``"hmac"``, ``"none"``) and digest (SHA-1, the default,
SHA-256, SHA-384, SHA-512). Tokens issued by either verify with the other, so a service can
switch without logging anyone out.

The derived signing key (``H(salt + key)``, ``H(salt + b"signer" + key)`` or
``HMAC(key, salt)``) is computed inside keycell into a guarded region
(:meth:`keycell.SecretKey.derive_digest`, :meth:`keycell.SecretKey.hmac_key`), bound to the
key it came from: destroying the key revokes every signer made from it
(:class:`keycell.KeyDestroyedError`), sealing it seals them. A serializer keeps the
signers of its own salt; those of a ``salt=`` passed to one call are made for that call and
their derived keys destroyed when it returns (salts taken from requests cannot pile up
locked memory).

itsdangerous itself is not needed at run time. The exceptions are keycell's own classes
with itsdangerous's names and attributes (``payload``, ``date_signed``,
``original_error``), rooted at :class:`keycell.KeycellError`; code that catches
``itsdangerous.BadSignature`` must catch :class:`BadSignature` from this module instead.
Signature checks are constant time (:meth:`keycell.SecretKey.verify_hmac`) and accept
only full-length signatures, as itsdangerous does.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, cast

from .._native import SecretKey
from ..exceptions import InvalidSignature, KeycellError
from ._tokens import b64decode_nopad, b64encode_nopad, digest_name, secret_key_list

__all__ = [
    "BadData",
    "BadPayload",
    "BadSignature",
    "BadTimeSignature",
    "Serializer",
    "SignatureExpired",
    "Signer",
    "TimedSerializer",
    "TimestampSigner",
    "URLSafeSerializer",
    "URLSafeTimedSerializer",
]

_KEY_DERIVATIONS = ("concat", "django-concat", "hmac", "none")


class BadData(KeycellError):
    """Data could not be loaded or verified (itsdangerous's ``BadData``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadSignature(BadData, InvalidSignature):
    """The signature is missing or does not match. ``payload`` is the unverified value when
    the token could be split (never trust it)."""

    def __init__(self, message: str, payload: Any | None = None) -> None:
        super().__init__(message)
        self.payload = payload


class BadTimeSignature(BadSignature):
    """A timed signature is invalid or its timestamp is malformed. ``date_signed`` is the
    unverified signing time (an aware UTC ``datetime``) when it could be read."""

    def __init__(
        self, message: str, payload: Any | None = None, date_signed: datetime | None = None
    ) -> None:
        super().__init__(message, payload)
        self.date_signed = date_signed


class SignatureExpired(BadTimeSignature):
    """The signature is valid but older than ``max_age`` (or dated in the future)."""


class BadPayload(BadData):
    """The signature is valid but the payload could not be decoded or deserialized."""

    def __init__(self, message: str, original_error: Exception | None = None) -> None:
        super().__init__(message)
        self.original_error = original_error


def _want_bytes(s: str | bytes) -> bytes:
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _int_to_bytes(num: int) -> bytes:
    return num.to_bytes(8, "big").lstrip(b"\x00")


def _bytes_to_int(data: bytes) -> int:
    if len(data) > 8:
        raise ValueError("timestamp too long")
    return int.from_bytes(data, "big")


class Signer:
    """Sign and verify values as ``itsdangerous.Signer`` does: ``value + sep + signature``,
    the signature an HMAC under a key derived from the secret key and ``salt``, in URL-safe
    base64 without padding.

    ``secret_key`` is a :class:`keycell.SecretKey` or a list of them (the last signs, all
    verify, newest first). ``salt`` defaults to itsdangerous's ``b"itsdangerous.Signer"``,
    ``key_derivation`` to ``"django-concat"`` and ``digest_method`` to SHA-1 (a name such
    as ``"sha256"`` or a :mod:`hashlib` constructor).
    """

    #: The digest used when ``digest_method`` is not given (itsdangerous's default).
    default_digest_method: Any = "sha1"
    #: The key derivation used when ``key_derivation`` is not given.
    default_key_derivation: str = "django-concat"

    def __init__(
        self,
        secret_key: SecretKey | Iterable[SecretKey],
        salt: str | bytes | None = b"itsdangerous.Signer",
        sep: str | bytes = b".",
        key_derivation: str | None = None,
        digest_method: Any | None = None,
    ) -> None:
        self.secret_keys: list[SecretKey] = secret_key_list(secret_key, "secret_key")
        self.sep: bytes = _want_bytes(sep)
        if not self.sep or any(c in _URLSAFE_ALPHABET for c in self.sep):
            raise ValueError(
                "The given separator cannot be used because it may be contained in the "
                "signature itself. ASCII letters, digits, and '-_=' must not be used."
            )
        self.salt: bytes = b"itsdangerous.Signer" if salt is None else _want_bytes(salt)
        self.key_derivation: str = key_derivation or self.default_key_derivation
        if self.key_derivation not in _KEY_DERIVATIONS:
            raise ValueError(
                f"unknown key derivation {self.key_derivation!r}: use one of "
                + ", ".join(repr(k) for k in _KEY_DERIVATIONS)
            )
        self.digest_method: str = digest_name(
            self.default_digest_method if digest_method is None else digest_method
        )
        self._derived: dict[int, SecretKey] = {}

    @property
    def digest_size(self) -> int:
        """Length of a raw signature in bytes."""
        return {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}[self.digest_method]

    def derive_key(self, secret_key: SecretKey | None = None) -> SecretKey:
        """The signing key derived from ``secret_key`` (default: the newest), as a
        :class:`keycell.SecretKey` bound to it. Derived once per key and kept (a
        :class:`Serializer` destroys the keys of a signer made for a call's own ``salt``
        when the call returns)."""
        if secret_key is None:
            secret_key = self.secret_keys[-1]
        found = self._derived.get(id(secret_key))
        if found is not None and not found.destroyed:
            return found
        alg = self.digest_method
        if self.key_derivation == "concat":
            derived = secret_key.derive_digest(self.salt, alg)
        elif self.key_derivation == "django-concat":
            derived = secret_key.derive_digest(self.salt + b"signer", alg)
        elif self.key_derivation == "hmac":
            derived = secret_key.hmac_key(self.salt, alg)
        else:
            derived = secret_key
        # Kept for this signer's own keys only, by identity: its list keeps them (and so
        # their ids) alive.
        if any(k is secret_key for k in self.secret_keys):
            self._derived[id(secret_key)] = derived
        return derived

    def _release(self) -> None:
        """Destroy the derived keys this signer made (not its secret keys, which
        ``key_derivation="none"`` uses as they are); a later use derives them again."""
        derived, self._derived = self._derived, {}
        for key in derived.values():
            if not any(key is k for k in self.secret_keys):
                key.destroy()

    def get_signature(self, value: str | bytes) -> bytes:
        """The signature of ``value`` (URL-safe base64, no padding) under the newest key."""
        tag = self.derive_key().hmac(_want_bytes(value), self.digest_method)
        return b64encode_nopad(tag)

    def sign(self, value: str | bytes) -> bytes:
        """``value + sep + signature``."""
        value = _want_bytes(value)
        return value + self.sep + self.get_signature(value)

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        """Whether ``sig`` is the signature of ``value`` under any of the keys, newest
        first (constant-time comparison; only full-length signatures match)."""
        try:
            raw = b64decode_nopad(_want_bytes(sig))
        except ValueError:
            return False
        if len(raw) != self.digest_size:
            return False
        value = _want_bytes(value)
        for key in reversed(self.secret_keys):
            try:
                self.derive_key(key).verify_hmac(value, raw, self.digest_method)
            except InvalidSignature:
                continue
            return True
        return False

    def unsign(self, signed_value: str | bytes) -> bytes:
        """The value of a signed value; :class:`BadSignature` unless the signature
        matches."""
        signed_value = _want_bytes(signed_value)
        if self.sep not in signed_value:
            raise BadSignature(f"No {self.sep!r} found in value")
        value, sig = signed_value.rsplit(self.sep, 1)
        if self.verify_signature(value, sig):
            return value
        raise BadSignature("Signature does not match", payload=value)

    def validate(self, signed_value: str | bytes) -> bool:
        """Whether ``signed_value`` has a valid signature."""
        try:
            self.unsign(signed_value)
        except BadSignature:
            return False
        return True


_URLSAFE_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_="


class TimestampSigner(Signer):
    """:class:`Signer` that also signs the time (``value.timestamp.signature``, the
    timestamp a big-endian integer in URL-safe base64) and can check it against
    ``max_age``, as ``itsdangerous.TimestampSigner`` does.

    ``clock`` (default :func:`time.time`) gives the current time in seconds: pass a
    function to control it (tests, a trusted time source).
    """

    def __init__(
        self,
        secret_key: SecretKey | Iterable[SecretKey],
        salt: str | bytes | None = b"itsdangerous.Signer",
        sep: str | bytes = b".",
        key_derivation: str | None = None,
        digest_method: Any | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(secret_key, salt, sep, key_derivation, digest_method)
        self.clock: Callable[[], float] = time.time if clock is None else clock

    def get_timestamp(self) -> int:
        """The current time in whole seconds."""
        return int(self.clock())

    def timestamp_to_datetime(self, ts: int) -> datetime:
        """A timestamp as an aware UTC ``datetime``."""
        return datetime.fromtimestamp(ts, tz=UTC)

    def sign(self, value: str | bytes) -> bytes:
        """``value + sep + timestamp + sep + signature``."""
        value = _want_bytes(value)
        stamp = b64encode_nopad(_int_to_bytes(self.get_timestamp()))
        value = value + self.sep + stamp
        return value + self.sep + self.get_signature(value)

    def unsign(
        self,
        signed_value: str | bytes,
        max_age: float | None = None,
        return_timestamp: bool = False,
    ) -> Any:
        """The value (and with ``return_timestamp`` the signing time) of a signed value.
        Raises :class:`BadTimeSignature` for a bad signature or timestamp and
        :class:`SignatureExpired` when it is older than ``max_age`` seconds or dated in
        the future."""
        try:
            result = super().unsign(signed_value)
            sig_error: BadSignature | None = None
        except BadSignature as e:
            sig_error = e
            result = e.payload or b""
        if self.sep not in result:
            if sig_error is not None:
                raise sig_error
            raise BadTimeSignature("timestamp missing", payload=result)
        value, ts_bytes = result.rsplit(self.sep, 1)
        ts_int: int | None = None
        try:
            ts_int = _bytes_to_int(b64decode_nopad(ts_bytes))
        except ValueError:
            pass
        if sig_error is not None:
            ts_dt = None
            if ts_int is not None:
                try:
                    ts_dt = self.timestamp_to_datetime(ts_int)
                except (ValueError, OSError, OverflowError) as exc:
                    raise BadTimeSignature("Malformed timestamp", payload=value) from exc
            raise BadTimeSignature(str(sig_error), payload=value, date_signed=ts_dt)
        if ts_int is None:
            raise BadTimeSignature("Malformed timestamp", payload=value)
        if max_age is not None:
            age = self.get_timestamp() - ts_int
            if age > max_age:
                raise SignatureExpired(
                    f"Signature age {age} > {max_age} seconds",
                    payload=value,
                    date_signed=self.timestamp_to_datetime(ts_int),
                )
            if age < 0:
                raise SignatureExpired(
                    f"Signature age {age} < 0 seconds",
                    payload=value,
                    date_signed=self.timestamp_to_datetime(ts_int),
                )
        if return_timestamp:
            return value, self.timestamp_to_datetime(ts_int)
        return value

    def validate(self, signed_value: str | bytes, max_age: float | None = None) -> bool:
        """Whether ``signed_value`` has a valid signature (and is not expired)."""
        try:
            self.unsign(signed_value, max_age=max_age)
        except BadSignature:
            return False
        return True


class _CompactJSON:
    """JSON without whitespace (the URL-safe serializers' default, as itsdangerous's)."""

    @staticmethod
    def loads(payload: str | bytes) -> Any:
        return json.loads(payload)

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("ensure_ascii", False)
        kwargs.setdefault("separators", (",", ":"))
        return json.dumps(obj, **kwargs)


class Serializer:
    """Serialize and sign objects as ``itsdangerous.Serializer`` does: the serialized
    payload (JSON by default), then ``sep`` and the signature.

    ``secret_key`` as for :class:`Signer`; ``salt`` defaults to itsdangerous's
    ``b"itsdangerous"``. ``serializer`` is any object with ``dumps``/``loads`` (text or
    bytes); ``signer`` a signer class of this module (default :class:`Signer`, or
    :class:`TimestampSigner` for the timed serializers) and ``signer_kwargs`` its
    arguments (``key_derivation``, ``digest_method``, ``sep``, ``clock``);
    ``fallback_signers`` lists other signer settings that also verify (a ``dict`` of
    arguments, a signer class, or a ``(class, dict)`` pair), for migrations.
    """

    default_serializer: Any = json
    default_signer: type[Signer] = Signer

    def __init__(
        self,
        secret_key: SecretKey | Iterable[SecretKey],
        salt: str | bytes | None = b"itsdangerous",
        serializer: Any | None = None,
        serializer_kwargs: dict[str, Any] | None = None,
        signer: type[Signer] | None = None,
        signer_kwargs: dict[str, Any] | None = None,
        fallback_signers: list[dict[str, Any] | tuple[type[Signer], dict[str, Any]] | type[Signer]]
        | None = None,
    ) -> None:
        self.secret_keys: list[SecretKey] = secret_key_list(secret_key, "secret_key")
        self.salt: bytes | None = None if salt is None else _want_bytes(salt)
        self.serializer: Any = self.default_serializer if serializer is None else serializer
        self.is_text_serializer: bool = isinstance(self.serializer.dumps({}), str)
        self.signer: type[Signer] = self.default_signer if signer is None else signer
        self.signer_kwargs: dict[str, Any] = dict(signer_kwargs or {})
        self.fallback_signers = list(fallback_signers or [])
        self.serializer_kwargs: dict[str, Any] = dict(serializer_kwargs or {})
        self._signer_cache: dict[tuple[Any, ...], Signer] = {}

    def load_payload(self, payload: bytes, serializer: Any | None = None) -> Any:
        """Deserialize ``payload``; :class:`BadPayload` if it cannot be."""
        use = self.serializer if serializer is None else serializer
        is_text = (
            isinstance(use.dumps({}), str) if serializer is not None else self.is_text_serializer
        )
        try:
            if is_text:
                return use.loads(payload.decode("utf-8"))
            return use.loads(payload)
        except Exception as e:
            raise BadPayload(
                "Could not load the payload because an exception occurred on unserializing "
                "the data.",
                original_error=e,
            ) from e

    def dump_payload(self, obj: Any) -> bytes:
        """Serialize ``obj`` to bytes (text serializers' output encoded as UTF-8)."""
        return _want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))

    def _signer(
        self, cls: type[Signer], keys: list[SecretKey], salt: bytes | None, kwargs: dict[str, Any]
    ) -> Signer:
        # The signers of this serializer's own salt are kept per (class, keys, arguments):
        # their derived keys are made once, not per token, and there are as many as the
        # configured signers. A signer for any other salt (which a caller may take from a
        # request) is made per call and its derived keys are destroyed after it
        # (`_signers`), so salts cannot pile up locked memory.
        if salt != self.salt:
            return cls(keys, salt=salt, **kwargs)
        cache_key = (cls, tuple(id(k) for k in keys), repr(sorted(kwargs.items())))
        found = self._signer_cache.get(cache_key)
        if found is None:
            found = self._signer_cache.setdefault(cache_key, cls(keys, salt=salt, **kwargs))
        return found

    @contextlib.contextmanager
    def _signers(self, salt: str | bytes | None) -> Iterator[Iterator[Signer]]:
        """:meth:`iter_unsigners`, destroying on exit the derived keys of every signer
        that is not kept (another salt's)."""
        made: list[Signer] = []

        def signers() -> Iterator[Signer]:
            for signer in self.iter_unsigners(salt):
                if not any(signer is kept for kept in self._signer_cache.values()):
                    made.append(signer)
                yield signer

        try:
            yield signers()
        finally:
            for signer in made:
                signer._release()

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        """The signer for ``salt`` (default: this serializer's)."""
        use = self.salt if salt is None else _want_bytes(salt)
        return self._signer(self.signer, self.secret_keys, use, self.signer_kwargs)

    def iter_unsigners(self, salt: str | bytes | None = None) -> Iterator[Signer]:
        """The signers that may verify a token: the configured one, then each fallback
        (with each key)."""
        use = self.salt if salt is None else _want_bytes(salt)
        yield self.make_signer(salt)
        for fallback in self.fallback_signers:
            if isinstance(fallback, dict):
                cls, kwargs = self.signer, fallback
            elif isinstance(fallback, tuple):
                cls, kwargs = fallback
            else:
                cls, kwargs = fallback, self.signer_kwargs
            for key in self.secret_keys:
                yield self._signer(cls, [key], use, kwargs)

    def dumps(self, obj: Any, salt: str | bytes | None = None) -> Any:
        """Serialize and sign ``obj``: ``str`` for a text serializer, else ``bytes``."""
        payload = _want_bytes(self.dump_payload(obj))
        with self._signers(salt) as signers:
            rv = next(signers).sign(payload)
        return rv.decode("utf-8") if self.is_text_serializer else rv

    def dump(self, obj: Any, f: IO[Any], salt: str | bytes | None = None) -> None:
        """Write the token of ``obj`` to the file ``f``."""
        f.write(self.dumps(obj, salt))

    def load(self, f: IO[Any], salt: str | bytes | None = None) -> Any:
        """Verify and deserialize the token read from the file ``f``."""
        return self.loads(f.read(), salt)

    def loads(self, s: str | bytes, salt: str | bytes | None = None, **kwargs: Any) -> Any:
        """Verify and deserialize a token; :class:`BadSignature` if no signer verifies it."""
        s = _want_bytes(s)
        last: BadSignature | None = None
        with self._signers(salt) as signers:
            for signer in signers:
                try:
                    return self.load_payload(signer.unsign(s, **kwargs))
                except BadSignature as err:
                    last = err
        assert last is not None
        raise last


class TimedSerializer(Serializer):
    """:class:`Serializer` over :class:`TimestampSigner`: ``loads`` takes ``max_age`` and
    ``return_timestamp``."""

    default_signer: type[Signer] = TimestampSigner

    def loads(  # type: ignore[override]
        self,
        s: str | bytes,
        max_age: float | None = None,
        return_timestamp: bool = False,
        salt: str | bytes | None = None,
    ) -> Any:
        """Verify and deserialize a token no older than ``max_age`` seconds; raises
        :class:`SignatureExpired` (not trying other signers) when it is too old."""
        s = _want_bytes(s)
        last: BadSignature | None = None
        with self._signers(salt) as signers:
            for signer in signers:
                try:
                    timed = cast(TimestampSigner, signer)
                    base64d, timestamp = timed.unsign(s, max_age=max_age, return_timestamp=True)
                    payload = self.load_payload(base64d)
                    return (payload, timestamp) if return_timestamp else payload
                except SignatureExpired:
                    raise
                except BadSignature as err:
                    last = err
        assert last is not None
        raise last


class _URLSafeMixin:
    """Compact JSON, zlib-compressed when that is shorter (marked by a leading ``.``),
    in URL-safe base64: the payload of itsdangerous's URL-safe serializers."""

    default_serializer: Any = _CompactJSON

    def load_payload(self, payload: bytes, serializer: Any | None = None) -> Any:
        """Decode, decompress and deserialize ``payload``; :class:`BadPayload` if any
        step fails."""
        decompress = payload.startswith(b".")
        if decompress:
            payload = payload[1:]
        try:
            data = b64decode_nopad(payload)
        except ValueError as e:
            raise BadPayload(
                "Could not base64 decode the payload because of an exception",
                original_error=e,
            ) from e
        if decompress:
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise BadPayload(
                    "Could not zlib decompress the payload before decoding the payload",
                    original_error=e,
                ) from e
        return super().load_payload(data, serializer)  # type: ignore[misc]

    def dump_payload(self, obj: Any) -> bytes:
        """Serialize, compress when shorter, and encode ``obj``."""
        data: bytes = super().dump_payload(obj)  # type: ignore[misc]
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            return b"." + b64encode_nopad(compressed)
        return b64encode_nopad(data)


class URLSafeSerializer(_URLSafeMixin, Serializer):
    """``itsdangerous.URLSafeSerializer``: URL-safe tokens of compact JSON."""


class URLSafeTimedSerializer(_URLSafeMixin, TimedSerializer):
    """``itsdangerous.URLSafeTimedSerializer``: URL-safe timed tokens of compact JSON."""
