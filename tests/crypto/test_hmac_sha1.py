"""HMAC-SHA1 for legacy protocols (issue 23): ``key.hmac(data, "sha1")``,
``verify_hmac`` and the streaming ``HMAC``, against the RFC 2202 test cases, the standard
library's ``hmac`` and itsdangerous's default signer; the same tag rule as SHA-2 (full
length, or truncated to at least 16 bytes); SHA-1 only where an HMAC is asked for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import keycell
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import HMAC, InvalidSignature, SecretKey

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "rfc2202" / "hmac_sha1.json").read_text()
)["tests"]


def make_key(raw: bytes) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


@pytest.mark.parametrize("v", VECTORS, ids=[f"rfc2202-{v['test_case']}" for v in VECTORS])
def test_rfc2202(v: dict[str, Any]) -> None:
    key, data, digest = (bytes.fromhex(v[k]) for k in ("key", "data", "digest"))
    with make_key(key) as k:
        assert k.hmac(data, "sha1") == digest
        k.verify_hmac(data, digest, "sha1")
        # The stream, a byte at a time (the first block of data builds the inner state).
        h = HMAC(k, "sha1")
        for i in range(len(data)):
            h.update(data[i : i + 1])
        assert h.copy().finalize() == digest
        h.verify(digest)
        # Test case 5's 96-bit truncation is shorter than the 16 bytes keycell accepts.
        if "digest-96" in v:
            short = bytes.fromhex(v["digest-96"])
            with pytest.raises(InvalidSignature):
                k.verify_hmac(data, short, "sha1")
            k.verify_hmac(data, digest[:16], "sha1")


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=1, max_size=200), msg=st.binary(max_size=3000))
def test_matches_stdlib(key: bytes, msg: bytes) -> None:
    expected = hmac.digest(key, msg, "sha1")
    with make_key(key) as k:
        assert k.hmac(msg, "sha1") == expected
        h = HMAC(k, "sha1")
        cut = len(msg) // 3
        h.update(msg[:cut])
        h.update(msg[cut:])
        assert h.finalize() == expected


def test_the_context_describes_sha1() -> None:
    with make_key(os.urandom(20)) as k:
        h = HMAC(k, "sha1")
        assert (h.algorithm, h.digest_size, h.block_size) == ("sha1", 20, 64)
        assert HMAC(k, "SHA-1").algorithm == "sha1"
        assert len(k.hmac(b"x", "SHA1")) == 20


def test_github_webhook_signature() -> None:
    """GitHub's legacy ``X-Hub-Signature: sha1=<hex>`` header."""
    secret = os.urandom(32)
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    header = "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()
    with make_key(secret) as k:
        algorithm, _, hexdigest = header.partition("=")
        k.verify_hmac(body, bytes.fromhex(hexdigest), algorithm)
        with pytest.raises(InvalidSignature):
            k.verify_hmac(body + b" ", bytes.fromhex(hexdigest), algorithm)


def test_itsdangerous_default_signer() -> None:
    """itsdangerous's ``Signer`` signs with HMAC-SHA1 by default; with
    ``key_derivation="none"`` its HMAC key is the secret itself, and keycell makes the same
    signatures from a key handle."""
    itsdangerous = pytest.importorskip("itsdangerous")
    secret = os.urandom(32)
    value = b"user-id:42"
    signed = itsdangerous.Signer(secret, key_derivation="none").sign(value)
    sig = base64.urlsafe_b64decode(signed.rsplit(b".", 1)[1] + b"==")
    with make_key(secret) as k:
        assert k.hmac(value, "sha1") == sig
        k.verify_hmac(value, sig, "sha1")


def test_sha1_is_only_an_hmac() -> None:
    """HKDF and the other SHA-2 users keep refusing SHA-1."""
    with make_key(os.urandom(32)) as k:
        with pytest.raises(ValueError, match="unsupported hash algorithm"):
            keycell.hkdf(k, length=32, algorithm="sha1")
        with pytest.raises(ValueError, match="sha1"):
            k.hmac(b"m", "sha-224")


def test_sha1_pads_count_in_the_protection_report() -> None:
    with make_key(os.urandom(32)) as k:
        before = k.protection.as_dict()
        k.hmac(b"m", "sha1")
        assert k.protection.as_dict() == before  # same isolation and backend as the key
