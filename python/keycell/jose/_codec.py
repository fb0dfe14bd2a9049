"""Strict base64url and JSON for JOSE: the one place that turns token text into values.

base64url (RFC 7515 §2): the URL-safe alphabet only, no padding, no whitespace, and the
canonical encoding only (unused trailing bits zero), so every token has one spelling.
JSON: UTF-8, an object at the top, no repeated member names anywhere (RFC 7515 §5.2 lets a
parser reject them, and two readers of one header must not disagree), no ``NaN`` or
``Infinity``, a size limit and a nesting limit checked before parsing.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from .errors import DecodeError

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_LENGTH",
    "b64url_decode",
    "b64url_encode",
    "dumps",
    "loads_object",
]

#: The longest compact token accepted, in characters.
MAX_TOKEN_LENGTH = 256 * 1024
#: The largest protected header accepted, in bytes of JSON.
MAX_HEADER_BYTES = 8 * 1024
#: The deepest nesting of objects and arrays accepted in a header or in claims.
MAX_JSON_DEPTH = 32

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# The characters the depth scan looks at (the regex engine skips the rest); see _depth.
_SCAN = re.compile(r'[\\"\[\]{}]')


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Decode canonical unpadded base64url; :class:`DecodeError` naming ``what`` else."""
    if _B64URL.fullmatch(text) is None:
        raise DecodeError(f"the {what} is not unpadded base64url")
    if len(text) % 4 == 1:
        raise DecodeError(f"the {what} has a base64url length no encoding produces")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise DecodeError(f"the {what} is not canonical base64url (trailing bits set)")
    return data


def _depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside JSON strings, in one left-to-right pass.

    Linear by construction: each match of ``_SCAN`` is visited once and the state is
    just "inside a string" and "the next character is escaped". (A regex that matches
    whole strings backtracks quadratically on an unterminated string of ``\\"``.)
    """
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for m in _SCAN.finditer(text):
        c, at = m.group(), m.start()
        if in_string:
            if at == escaped_at:
                continue
            if c == "\\":
                escaped_at = at + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise DecodeError(f"a JSON object repeats the member name {name!r}")
        obj[name] = value
    return obj


def _constant(name: str) -> Any:
    raise DecodeError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError("a JSON number is out of range")
    return value


def loads_object(data: bytes, what: str, max_bytes: int) -> dict[str, Any]:
    """Parse ``data`` as one JSON object within the limits; :class:`DecodeError` else."""
    if len(data) > max_bytes:
        raise DecodeError(f"the {what} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"the {what} is not UTF-8") from None
    if _depth(text) > MAX_JSON_DEPTH:
        raise DecodeError(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_repeats,
            parse_constant=_constant,
            parse_float=_finite,
        )
    except DecodeError:
        raise
    except (ValueError, RecursionError):
        raise DecodeError(f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise DecodeError(f"the {what} is not a JSON object")
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (no spaces; ``NaN`` refused)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )
