"""Webhook signatures with the shared secret in guarded memory: GitHub, Stripe, Slack and
Standard Webhooks, for receivers (``verify_*``) and senders (``sign_*``).

Every ``verify_*`` function computes the HMAC of the signed message once with the key
(:meth:`~keycell.SecretKey.hmac`) and compares each signature the request carries (at
most :data:`MAX_SIGNATURES`) with it by :func:`hmac.compare_digest`; only full-length
signatures in the provider's canonical spelling count (lowercase hex; Standard Webhooks:
padded base64 as ``base64.b64encode`` writes it), as in the providers' own verifiers,
which compare the text. ``key`` is any :class:`keycell.HmacKey`: a local
:class:`keycell.SecretKey`, or a secret key in a PKCS#11 token or in the agent, whose HMAC
runs where the key lives (one call per request). A failure
raises a subclass of :class:`WebhookVerificationError` (itself a
:class:`keycell.InvalidSignature`) that says which check failed:
:class:`WebhookHeaderError` (a header is missing or malformed),
:class:`WebhookTimestampError` (the signed time is outside ``tolerance`` seconds of now)
or :class:`WebhookSignatureError` (no signature matched). No message contains the
expected signature.

Time: the functions that check a timestamp take ``now`` (seconds since the epoch;
default :func:`time.time`), so a caller (or a test) can pin it. A timestamp header is a
whole number of seconds of at most :data:`MAX_TIMESTAMP_DIGITS` digits; anything else is
a :class:`WebhookHeaderError`.

Secrets: GitHub's, Stripe's (``whsec_...``, used as text, prefix included) and Slack's
signing secrets are the bytes of the text, loaded with :meth:`keycell.SecretKey.from_buffer`
or ``from_file``; a Standard Webhooks secret (``whsec_`` + base64) is decoded straight into
a handle by :func:`load_standard_secret`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Mapping
from typing import Any

from ._native import SecretKey
from .exceptions import InvalidSignature
from .key_protocols import HmacKey

__all__ = [
    "MAX_SIGNATURES",
    "MAX_TIMESTAMP_DIGITS",
    "WebhookHeaderError",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "WebhookVerificationError",
    "load_standard_secret",
    "sign_github",
    "sign_slack",
    "sign_standard",
    "sign_stripe",
    "verify_github",
    "verify_slack",
    "verify_standard",
    "verify_stripe",
]

_DIGEST_SIZE = {"sha1": 20, "sha256": 32}

MAX_SIGNATURES = 16
"""The most signatures one request may carry (more is a :class:`WebhookHeaderError`):
providers send one, or a few while a secret is rolled."""

MAX_TIMESTAMP_DIGITS = 15
"""The most digits a timestamp header may have (Unix time has ten until the year 2286)."""

_LOWER_HEX = re.compile(r"(?:[0-9a-f]{2})+")


class WebhookVerificationError(InvalidSignature):
    """A webhook request did not verify; the subclass says which check failed."""


class WebhookHeaderError(WebhookVerificationError):
    """A signature or timestamp header is missing or malformed."""


class WebhookTimestampError(WebhookVerificationError):
    """The signed timestamp is further than ``tolerance`` seconds from now (a replay or a
    clock problem)."""


class WebhookSignatureError(WebhookVerificationError):
    """No signature in the request matched the body."""


def _body(body: Any) -> bytes | bytearray | memoryview:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return body
    if isinstance(body, memoryview) and body.itemsize == 1:
        return body
    raise TypeError(f"body must be bytes (the raw request body), not {type(body).__name__}")


def _key(key: Any) -> HmacKey:
    # The common case first: a Protocol isinstance check costs microseconds.
    if isinstance(key, SecretKey):
        return key
    if not isinstance(key, HmacKey):
        raise TypeError(
            f"key must be a keycell key that computes HMACs (a SecretKey, a token or agent "
            f"secret key), not {type(key).__name__}: load the secret with "
            "SecretKey.from_buffer(), from_file() or load_standard_secret()"
        )
    return key


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise WebhookHeaderError(f"the {what} header is not ASCII") from None
    if not isinstance(value, str):
        raise TypeError(f"the {what} header must be a str, not {type(value).__name__}")
    return value


def _signed(*parts: Any) -> bytes:
    """The signed message: a public prefix and the body, as one ``bytes``."""
    return b"".join(bytes(p) for p in parts)


def _matches_any(key: Any, algorithm: str, msg: bytes, candidates: list[bytes]) -> bool:
    """Whether any full-length candidate is the HMAC of ``msg`` under ``key``: the HMAC is
    computed once (by the key: locally, or in the token or agent) and compared with each
    candidate by :func:`hmac.compare_digest`; all are compared, so the time does not say
    which one matched. An algorithm the key cannot compute (an agent or token key has no
    HMAC-SHA1) is a :class:`WebhookHeaderError`."""
    if len(candidates) > MAX_SIGNATURES:
        raise WebhookHeaderError(f"the request carries more than {MAX_SIGNATURES} signatures")
    mac_key = _key(key)
    try:
        expected = mac_key.hmac(msg, algorithm)
    except ValueError:
        raise WebhookHeaderError(
            f"the signature's algorithm ({algorithm}) is not one this key computes"
        ) from None
    found = False
    for tag in candidates:
        if len(tag) == _DIGEST_SIZE[algorithm] and hmac.compare_digest(expected, tag):
            found = True
    return found


def _tag(key: Any, algorithm: str, msg: bytes) -> bytes:
    return _key(key).hmac(msg, algorithm)


def _lower_hex(text: str) -> bytes | None:
    """The bytes of lowercase hex ``text`` (the form every provider sends, and the only
    one their verifiers, which compare the text, accept: no upper case, no whitespace),
    else None."""
    if _LOWER_HEX.fullmatch(text) is None:
        return None
    return bytes.fromhex(text)


def _canonical_b64(text: str) -> bytes | None:
    """The bytes of ``text`` if it is padded base64 exactly as ``base64.b64encode`` writes
    it (the Standard Webhooks reference compares the text; unused trailing bits must be
    zero), else None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _timestamp(text: str, what: str) -> int:
    if (
        not text.isascii()
        or not text.isdigit()
        or not 0 < len(text) <= MAX_TIMESTAMP_DIGITS
    ):
        raise WebhookHeaderError(
            f"the {what} is not a whole number of seconds of at most "
            f"{MAX_TIMESTAMP_DIGITS} digits"
        )
    return int(text)


def _check_time(signed_at: int, tolerance: float, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance:
        raise WebhookTimestampError(
            f"the signed timestamp is more than {tolerance} seconds from now"
        )


# GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>; the legacy
# X-Hub-Signature: sha1=<hex HMAC-SHA1>.


def sign_github(key: HmacKey, body: Any, *, algorithm: str = "sha256") -> str:
    """The value of GitHub's ``X-Hub-Signature-256`` header (``sha256=`` and the hex
    HMAC-SHA256 of ``body``), or of the legacy ``X-Hub-Signature`` with
    ``algorithm="sha1"``."""
    if algorithm not in _DIGEST_SIZE:
        raise ValueError('algorithm must be "sha256" or "sha1"')
    return f"{algorithm}={_tag(key, algorithm, _signed(_body(body))).hex()}"


def verify_github(key: HmacKey, body: Any, header: Any, *, allow_sha1: bool = False) -> None:
    """Verify a GitHub delivery: ``header`` is the ``X-Hub-Signature-256`` value
    (``sha256=<hex>``); ``body`` the raw request body. The legacy ``X-Hub-Signature``
    (``sha1=<hex>``, HMAC-SHA1) is accepted only with ``allow_sha1=True`` (and only by a
    key that computes HMAC-SHA1: not an agent or token key). Raises
    :class:`WebhookHeaderError` (also for a ``sha1=`` value without ``allow_sha1``) or
    :class:`WebhookSignatureError`."""
    if header is None:
        raise WebhookHeaderError("the X-Hub-Signature-256 header is missing")
    text = _text(header, "X-Hub-Signature-256")
    algorithm, sep, hexsig = text.partition("=")
    if not sep or algorithm not in _DIGEST_SIZE:
        raise WebhookHeaderError('the signature header must start with "sha256="')
    if algorithm == "sha1" and not allow_sha1:
        raise WebhookHeaderError(
            'a "sha1=" signature is refused: pass the X-Hub-Signature-256 header '
            "(sha256=...), or allow_sha1=True for the legacy X-Hub-Signature"
        )
    tag = _lower_hex(hexsig)
    if tag is None or len(tag) != _DIGEST_SIZE[algorithm]:
        raise WebhookHeaderError("the signature is not a lowercase hex digest of the right length")
    if not _matches_any(key, algorithm, _signed(_body(body)), [tag]):
        raise WebhookSignatureError("the signature does not match the body")


# Stripe: Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">[,v1=...][,v0=...]


def sign_stripe(key: HmacKey, body: Any, *, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``body``: ``t=<timestamp>,v1=<hex HMAC-SHA256 of
    "<timestamp>." + body>`` (``timestamp`` defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    tag = _tag(key, "sha256", _signed(f"{ts}.".encode(), _body(body)))
    return f"t={ts},v1={tag.hex()}"


def verify_stripe(
    key: HmacKey,
    body: Any,
    header: Any,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> int:
    """Verify a Stripe event: ``header`` is the ``Stripe-Signature`` value, ``body`` the raw
    request body, ``key`` the endpoint's signing secret (the ``whsec_...`` text as bytes).
    Any of the header's ``v1`` signatures may match (Stripe sends several while a secret
    is rolled); then the timestamp must be within ``tolerance`` seconds of ``now``.
    Returns the signed timestamp."""
    if header is None:
        raise WebhookHeaderError("the Stripe-Signature header is missing")
    text = _text(header, "Stripe-Signature")
    stamps: list[str] = []
    candidates: list[bytes] = []
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookHeaderError("the Stripe-Signature header is malformed")
        if name == "t":
            stamps.append(value)
        elif name == "v1":
            tag = _lower_hex(value)
            if tag is not None:
                candidates.append(tag)
    if len(stamps) != 1:
        raise WebhookHeaderError("the Stripe-Signature header needs exactly one timestamp")
    signed_at = _timestamp(stamps[0], "Stripe-Signature timestamp")
    if not candidates:
        raise WebhookHeaderError("the Stripe-Signature header has no v1 signature")
    msg = _signed(f"{stamps[0]}.".encode(), _body(body))
    if not _matches_any(key, "sha256", msg, candidates):
        raise WebhookSignatureError("no v1 signature matches the body")
    _check_time(signed_at, tolerance, now)
    return signed_at


# Slack: X-Slack-Request-Timestamp: <unix time>; X-Slack-Signature: v0=<hex HMAC-SHA256 of
# "v0:<timestamp>:<body>">.


def sign_slack(key: HmacKey, body: Any, *, timestamp: int | None = None) -> tuple[str, str]:
    """The ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` header values for
    ``body`` (``timestamp`` defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    tag = _tag(key, "sha256", _signed(f"v0:{ts}:".encode(), _body(body)))
    return str(ts), f"v0={tag.hex()}"


def verify_slack(
    key: HmacKey,
    body: Any,
    *,
    timestamp: Any,
    signature: Any,
    tolerance: float = 300,
    now: float | None = None,
) -> None:
    """Verify a Slack request: ``timestamp`` and ``signature`` are the
    ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` header values, ``body`` the
    raw request body, ``key`` the app's signing secret. The timestamp must be within
    ``tolerance`` seconds of ``now`` (Slack's advice: five minutes)."""
    if timestamp is None:
        raise WebhookHeaderError("the X-Slack-Request-Timestamp header is missing")
    if signature is None:
        raise WebhookHeaderError("the X-Slack-Signature header is missing")
    stamp = _text(timestamp, "X-Slack-Request-Timestamp")
    signed_at = _timestamp(stamp, "X-Slack-Request-Timestamp")
    version, sep, hexsig = _text(signature, "X-Slack-Signature").partition("=")
    tag = _lower_hex(hexsig)
    if version != "v0" or not sep or tag is None or len(tag) != 32:
        raise WebhookHeaderError('the X-Slack-Signature header must be "v0=" and 64 hex digits')
    _check_time(signed_at, tolerance, now)
    msg = _signed(f"v0:{stamp}:".encode(), _body(body))
    if not _matches_any(key, "sha256", msg, [tag]):
        raise WebhookSignatureError("the signature does not match the body")


# Standard Webhooks (https://www.standardwebhooks.com/): webhook-id, webhook-timestamp,
# webhook-signature: "v1,<base64 HMAC-SHA256 of 'id.timestamp.body'>" (several, space
# separated); the secret is "whsec_" + base64.


def load_standard_secret(buf: Any, *, wipe: bool = True, exportable: bool = True) -> SecretKey:
    """A Standard Webhooks secret (``whsec_`` + base64, padded or not; the prefix may be
    left out) decoded straight into a :class:`keycell.SecretKey`. ``buf`` is a
    ``bytearray`` (or another bytes-like object; ``str`` is refused: it cannot be wiped),
    zeroed afterwards when writable and ``wipe`` is true."""
    return SecretKey.from_base64(buf, prefix=b"whsec_", wipe=wipe, exportable=exportable)


def _standard_msg(msg_id: str, stamp: str, body: Any) -> bytes:
    return _signed(f"{msg_id}.{stamp}.".encode(), _body(body))


def sign_standard(
    key: HmacKey, body: Any, *, msg_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``: ``webhook-id`` (``msg_id``),
    ``webhook-timestamp`` (``timestamp``, default now) and ``webhook-signature``
    (``v1,`` and the base64 HMAC-SHA256)."""
    if not msg_id or not isinstance(msg_id, str):
        raise ValueError("msg_id must be a non-empty str")
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    tag = _tag(key, "sha256", _standard_msg(msg_id, ts, body))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,{base64.b64encode(tag).decode('ascii')}",
    }


def verify_standard(
    key: HmacKey,
    body: Any,
    headers: Mapping[str, Any],
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> None:
    """Verify a Standard Webhooks message: ``headers`` holds ``webhook-id``,
    ``webhook-timestamp`` and ``webhook-signature`` (names case-insensitive), the last
    with one or more space-separated ``v1,<base64>`` signatures (other versions are
    ignored); ``key`` is the endpoint secret (:func:`load_standard_secret`). The
    timestamp must be within ``tolerance`` seconds of ``now``."""
    lowered = {str(k).lower(): v for k, v in headers.items()}
    values = {}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = lowered.get(name)
        if not value:
            raise WebhookHeaderError(f"the {name} header is missing")
        values[name] = _text(value, name)
    signed_at = _timestamp(values["webhook-timestamp"], "webhook-timestamp")
    _check_time(signed_at, tolerance, now)
    candidates = []
    for item in values["webhook-signature"].split(" "):
        version, sep, b64 = item.partition(",")
        if version != "v1" or not sep:
            continue
        tag = _canonical_b64(b64)
        if tag is not None:
            candidates.append(tag)
    if not candidates:
        raise WebhookHeaderError("the webhook-signature header has no v1 signature")
    msg = _standard_msg(values["webhook-id"], values["webhook-timestamp"], body)
    if not _matches_any(key, "sha256", msg, candidates):
        raise WebhookSignatureError("no v1 signature matches the body")
