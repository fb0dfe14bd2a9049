"""keycell.webhooks: each provider's documented example, the real ``standardwebhooks``
package both ways, an independent stdlib-``hmac`` transcription of Stripe's and Slack's
documented schemes, and every failure's typed error. Time is always passed as ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keycell
import pytest
from agent_support import Agent, make_store
from keycell import SecretKey, pkcs11
from keycell import webhooks as wh
from pkcs11_support import Hsm

T0 = 1_700_000_000


def _key(raw: bytes) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


# GitHub ------------------------------------------------------------------------------


def test_github_documented_example() -> None:
    # https://docs.github.com/webhooks (validating deliveries): secret, payload, header.
    key = _key(b"It's a Secret to Everybody")
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert wh.sign_github(key, b"Hello, World!") == header
    wh.verify_github(key, b"Hello, World!", header)
    wh.verify_github(key, "Hello, World!", header.encode())
    legacy = "sha1=" + hmac.new(b"It's a Secret to Everybody", b"Hello, World!", "sha1").hexdigest()
    assert wh.sign_github(key, b"Hello, World!", algorithm="sha1") == legacy
    wh.verify_github(key, bytearray(b"Hello, World!"), legacy, allow_sha1=True)


def test_github_sha1_needs_opt_in() -> None:
    """Found by review: a ``sha1=`` value passed where ``X-Hub-Signature-256`` was meant
    verified as HMAC-SHA1; now it takes ``allow_sha1=True``."""
    key = _key(b"It's a Secret to Everybody")
    legacy = wh.sign_github(key, b"Hello, World!", algorithm="sha1")
    with pytest.raises(wh.WebhookHeaderError, match="allow_sha1"):
        wh.verify_github(key, b"Hello, World!", legacy)
    wh.verify_github(key, b"Hello, World!", legacy, allow_sha1=True)
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_github(key, b"other", legacy, allow_sha1=True)


def test_github_failures() -> None:
    key = _key(b"It's a Secret to Everybody")
    good = wh.sign_github(key, b"body")
    with pytest.raises(wh.WebhookSignatureError, match="does not match") as exc:
        wh.verify_github(key, b"other body", good)
    assert good.split("=")[1] not in str(exc.value)
    assert isinstance(exc.value, keycell.InvalidSignature)
    for bad in (
        None,
        "",
        "sha256",
        "md5=00",
        "sha256=xyz",
        "sha256=" + "ab" * 16,
        "sha256=" + good.split("=")[1].upper(),
        # Found by review: hex with whitespace (bytes.fromhex skips it) verified; GitHub
        # sends lowercase hex and compares the text.
        "sha256=" + good[7:9] + " " + good[9:],
        "sha256=" + good[7:] + " ",
        "sha256=" + good[7:9] + "\n" + good[9:],
    ):
        with pytest.raises(wh.WebhookHeaderError):
            wh.verify_github(key, b"body", bad)
    with pytest.raises(TypeError, match="raw request body"):
        wh.verify_github(key, 123, good)
    with pytest.raises(TypeError, match="SecretKey"):
        wh.verify_github(b"secret", b"body", good)  # type: ignore[arg-type]


# Stripe ------------------------------------------------------------------------------


def _stripe_reference(secret: bytes, body: bytes, ts: int) -> str:
    # Stripe's documented scheme: HMAC-SHA256 over "<t>.<payload>", hex, in a v1 entry.
    return hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


STRIPE_SECRET = b"whsec_test_secret_0123456789abcdef"
STRIPE_BODY = b'{"id": "evt_1", "object": "event"}'


def test_stripe_matches_the_documented_scheme() -> None:
    key = _key(STRIPE_SECRET)
    header = wh.sign_stripe(key, STRIPE_BODY, timestamp=T0)
    assert header == f"t={T0},v1={_stripe_reference(STRIPE_SECRET, STRIPE_BODY, T0)}"
    assert wh.verify_stripe(key, STRIPE_BODY, header, now=T0 + 300) == T0


def test_stripe_several_signatures_and_tolerance() -> None:
    key = _key(STRIPE_SECRET)
    real = _stripe_reference(STRIPE_SECRET, STRIPE_BODY, T0)
    rolled = _stripe_reference(b"whsec_the_other_secret", STRIPE_BODY, T0)
    header = f"t={T0},v1={rolled},v1={real},v0=deadbeef"
    assert wh.verify_stripe(key, STRIPE_BODY, header, now=T0) == T0
    with pytest.raises(wh.WebhookSignatureError, match="no v1 signature") as exc:
        wh.verify_stripe(key, STRIPE_BODY + b" ", header, now=T0)
    assert real not in str(exc.value)
    with pytest.raises(wh.WebhookTimestampError, match="300 seconds"):
        wh.verify_stripe(key, STRIPE_BODY, header, now=T0 + 301)
    with pytest.raises(wh.WebhookTimestampError):
        wh.verify_stripe(key, STRIPE_BODY, header, now=T0 - 301)
    assert wh.verify_stripe(key, STRIPE_BODY, header, tolerance=1000, now=T0 + 999) == T0
    for bad in (
        None,
        "",
        f"v1={real}",
        f"t={T0}",
        f"t=abc,v1={real}",
        f"t={T0},t={T0},v1={real}",
        "garbage",
    ):
        with pytest.raises(wh.WebhookHeaderError):
            wh.verify_stripe(key, STRIPE_BODY, bad, now=T0)


# Slack -------------------------------------------------------------------------------

SLACK_SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
    b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slack_documented_example() -> None:
    # Slack's "Verifying requests from Slack" walk-through: secret, timestamp, body and
    # the X-Slack-Signature it computes.
    key = _key(SLACK_SECRET)
    assert wh.sign_slack(key, SLACK_BODY, timestamp=int(SLACK_TIMESTAMP)) == (
        SLACK_TIMESTAMP,
        SLACK_SIGNATURE,
    )
    now = int(SLACK_TIMESTAMP) + 60
    wh.verify_slack(key, SLACK_BODY, timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE, now=now)


def test_slack_failures() -> None:
    key = _key(SLACK_SECRET)
    args: dict[str, Any] = {"timestamp": SLACK_TIMESTAMP, "signature": SLACK_SIGNATURE}
    now = int(SLACK_TIMESTAMP)
    with pytest.raises(wh.WebhookTimestampError):
        wh.verify_slack(key, SLACK_BODY, **args, now=now + 301)
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_slack(key, SLACK_BODY + b"&x=1", **args, now=now)
    # The timestamp is signed: a replay with a fresh timestamp does not verify.
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_slack(key, SLACK_BODY, timestamp=str(now + 5), signature=SLACK_SIGNATURE, now=now)
    for ts, sig in (
        (None, SLACK_SIGNATURE),
        (SLACK_TIMESTAMP, None),
        ("12a", SLACK_SIGNATURE),
        (SLACK_TIMESTAMP, "v1=" + SLACK_SIGNATURE[3:]),
        (SLACK_TIMESTAMP, SLACK_SIGNATURE[:-2]),
    ):
        with pytest.raises(wh.WebhookHeaderError):
            wh.verify_slack(key, SLACK_BODY, timestamp=ts, signature=sig, now=now)


# Standard Webhooks -------------------------------------------------------------------

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_standard_documented_example() -> None:
    key = wh.load_standard_secret(bytearray(SW_SECRET.encode()))
    headers = wh.sign_standard(key, SW_BODY, msg_id=SW_ID, timestamp=SW_TS)
    assert headers == {
        "webhook-id": SW_ID,
        "webhook-timestamp": str(SW_TS),
        "webhook-signature": SW_SIGNATURE,
    }
    wh.verify_standard(key, SW_BODY, headers, now=SW_TS)


def test_standard_secret_forms_and_wiping() -> None:
    raw = base64.b64decode(SW_SECRET[6:])
    for text in (SW_SECRET, SW_SECRET[6:], SW_SECRET.rstrip("=")):
        buf = bytearray(text.encode())
        key = wh.load_standard_secret(buf)
        assert buf == bytearray(len(buf)), "the text is wiped"
        with key.expose() as view:
            assert bytes(view) == raw
    unpadded = base64.b64encode(b"\x01\x02\x03\x04").decode().rstrip("=")
    with wh.load_standard_secret(bytearray(b"whsec_" + unpadded.encode())).expose() as view:
        assert bytes(view) == b"\x01\x02\x03\x04"
    with pytest.raises(TypeError, match="cannot be wiped"):
        wh.load_standard_secret(SW_SECRET)
    bad = bytearray(b"whsec_not*base64")
    with pytest.raises(ValueError, match="base64 key is not valid") as exc:
        wh.load_standard_secret(bad)
    assert "not*base64" not in str(exc.value)
    assert bad == bytearray(len(bad)), "wiped even when it does not decode"


def test_standard_against_the_standardwebhooks_package(monkeypatch: pytest.MonkeyPatch) -> None:
    sw = pytest.importorskip("standardwebhooks")
    from standardwebhooks import webhooks as sw_module

    class Pinned(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Pinned:
            return cls.fromtimestamp(T0, tz=tz)

    monkeypatch.setattr(sw_module, "datetime", Pinned)
    theirs = sw.Webhook(SW_SECRET)
    key = wh.load_standard_secret(bytearray(SW_SECRET.encode()))
    body = b'{"type": "invoice.paid", "n": 1}'
    ours = wh.sign_standard(key, body, msg_id="msg_1", timestamp=T0)
    # Theirs verifies ours (their clock pinned to T0) ...
    assert theirs.verify(body, ours) == {"type": "invoice.paid", "n": 1}
    # ... ours verifies theirs, including among several signatures.
    sig = theirs.sign("msg_2", datetime.fromtimestamp(T0 - 10, tz=UTC), body)
    other = sw.Webhook("whsec_" + base64.b64encode(b"another secret!!").decode())
    decoy = other.sign("msg_2", datetime.fromtimestamp(T0 - 10, tz=UTC), body)
    headers = {
        "Webhook-Id": "msg_2",
        "Webhook-Timestamp": str(T0 - 10),
        "Webhook-Signature": f"v2,abc {decoy} {sig}",
    }
    wh.verify_standard(key, body, headers, now=T0)
    with pytest.raises(sw.WebhookVerificationError):
        theirs.verify(body + b" ", ours)


def test_standard_failures() -> None:
    key = wh.load_standard_secret(bytearray(SW_SECRET.encode()))
    headers = wh.sign_standard(key, SW_BODY, msg_id=SW_ID, timestamp=SW_TS)
    with pytest.raises(wh.WebhookTimestampError):
        wh.verify_standard(key, SW_BODY, headers, now=SW_TS + 301)
    with pytest.raises(wh.WebhookTimestampError):
        wh.verify_standard(key, SW_BODY, headers, now=SW_TS - 301)
    with pytest.raises(wh.WebhookSignatureError) as exc:
        wh.verify_standard(key, SW_BODY + b" ", headers, now=SW_TS)
    assert SW_SIGNATURE[3:] not in str(exc.value)
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_standard(key, SW_BODY, {**headers, "webhook-id": "msg_other"}, now=SW_TS)
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        missing = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(wh.WebhookHeaderError, match=name):
            wh.verify_standard(key, SW_BODY, missing, now=SW_TS)
    for field, value in (
        ("webhook-timestamp", "1.5"),
        ("webhook-signature", "v2,abc"),
        ("webhook-signature", "v1,!!!"),
    ):
        with pytest.raises(wh.WebhookHeaderError):
            wh.verify_standard(key, SW_BODY, {**headers, field: value}, now=SW_TS)
    # A truncated signature never verifies.
    short = "v1," + base64.b64encode(base64.b64decode(SW_SIGNATURE[3:])[:16]).decode()
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_standard(key, SW_BODY, {**headers, "webhook-signature": short}, now=SW_TS)


def test_standard_refuses_non_canonical_base64() -> None:
    """Found by review: base64 with non-zero unused trailing bits (the same bytes,
    another text) verified; the reference verifier compares the canonical text."""
    key = wh.load_standard_secret(bytearray(SW_SECRET.encode()))
    headers = wh.sign_standard(key, SW_BODY, msg_id=SW_ID, timestamp=SW_TS)
    b64 = headers["webhook-signature"][3:]
    assert b64.endswith("=")  # 32 bytes: one pad, 2 unused bits
    assert not b64.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tweaked = b64[:-2] + alphabet[alphabet.index(b64[-2]) ^ 1] + "="
    assert base64.b64decode(tweaked) == base64.b64decode(b64)
    for bad in (tweaked, b64.rstrip("="), " " + b64):
        with pytest.raises(wh.WebhookVerificationError):
            wh.verify_standard(
                key, SW_BODY, {**headers, "webhook-signature": "v1," + bad}, now=SW_TS
            )
    # The canonical one next to a non-canonical one still verifies.
    both = f"v1,{tweaked} v1,{b64}"
    wh.verify_standard(key, SW_BODY, {**headers, "webhook-signature": both}, now=SW_TS)


@pytest.mark.parametrize("digits", [16, 400, 5000])
def test_huge_timestamps_are_header_errors(digits: int) -> None:
    """Found by review: a timestamp of hundreds of digits raised OverflowError (int to
    float), of more than 4300 digits ValueError (int parsing limit), not a typed error."""
    key = _key(b"shared-secret-for-tests-0123456789")
    big = "9" * digits
    fake = "0" * 64
    with pytest.raises(wh.WebhookHeaderError, match="digits"):
        wh.verify_slack(key, b"{}", timestamp=big, signature="v0=" + fake, now=T0)
    with pytest.raises(wh.WebhookHeaderError, match="digits"):
        wh.verify_standard(
            key,
            b"{}",
            {"webhook-id": "m", "webhook-timestamp": big, "webhook-signature": "v1,AAAA"},
            now=T0,
        )
    with pytest.raises(wh.WebhookHeaderError, match="digits"):
        wh.verify_stripe(key, b"{}", f"t={big},v1={fake}", now=T0)
    # The largest allowed timestamp is a timestamp error, not a crash.
    with pytest.raises(wh.WebhookTimestampError):
        wh.verify_slack(
            key, b"{}", timestamp="9" * wh.MAX_TIMESTAMP_DIGITS, signature="v0=" + fake, now=T0
        )


class _CountingKey:
    """A local key that counts the HMACs computed with it (as an agent or token key
    would count round trips)."""

    def __init__(self, key: SecretKey) -> None:
        self.key = key
        self.macs = 0

    def hmac(self, data: Any, algorithm: str = "sha256") -> bytes:
        self.macs += 1
        return self.key.hmac(data, algorithm)

    def verify_hmac(self, data: Any, tag: Any, algorithm: str = "sha256") -> None:
        self.macs += 1
        self.key.verify_hmac(data, tag, algorithm)


def test_one_mac_per_request_and_a_cap_on_signatures() -> None:
    """Found by review: every candidate signature re-hashed the body, with no cap. Now
    the HMAC is computed once and each candidate compared with it; more than
    MAX_SIGNATURES candidates is a header error (before any HMAC)."""
    local = _key(STRIPE_SECRET)
    key = _CountingKey(local)
    body = b"x" * 4096
    n = wh.MAX_SIGNATURES
    zero = "00" * 32
    good = wh.sign_stripe(local, body, timestamp=T0)
    header = good + "".join(f",v1={zero}" for _ in range(n - 1))
    assert wh.verify_stripe(key, body, header, now=T0) == T0
    assert key.macs == 1
    key.macs = 0
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_stripe(key, body, f"t={T0}" + f",v1={zero}" * n, now=T0)
    assert key.macs == 1
    key.macs = 0
    with pytest.raises(wh.WebhookHeaderError, match="more than"):
        wh.verify_stripe(key, body, good + f",v1={zero}" * n, now=T0)
    one = "v1," + base64.b64encode(bytes(32)).decode()
    headers = {"webhook-id": "m", "webhook-timestamp": str(T0)}
    with pytest.raises(wh.WebhookHeaderError, match="more than"):
        wh.verify_standard(
            key, body, {**headers, "webhook-signature": " ".join([one] * (n + 1))}, now=T0
        )
    assert key.macs == 0
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_standard(key, body, {**headers, "webhook-signature": " ".join([one] * n)}, now=T0)
    assert key.macs == 1


# Keys that live elsewhere ------------------------------------------------------------


def _round_trip(key: Any) -> None:
    """Sign and verify every scheme with a key whose HMAC runs where it lives."""
    body = b'{"id": 1}'
    gh = wh.sign_github(key, body)
    assert gh == "sha256=" + key.hmac(body, "sha256").hex()
    wh.verify_github(key, body, gh)
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_github(key, body + b" ", gh)
    wh.verify_stripe(key, body, wh.sign_stripe(key, body, timestamp=T0), now=T0)
    ts, sig = wh.sign_slack(key, body, timestamp=T0)
    wh.verify_slack(key, body, timestamp=ts, signature=sig, now=T0)
    headers = wh.sign_standard(key, body, msg_id="msg_1", timestamp=T0)
    wh.verify_standard(key, body, headers, now=T0)
    with pytest.raises(wh.WebhookSignatureError):
        wh.verify_standard(key, body + b" ", headers, now=T0)
    # These keys compute no HMAC-SHA1: a typed header error, allowed or not.
    for allow in (False, True):
        with pytest.raises(wh.WebhookHeaderError):
            wh.verify_github(key, body, "sha1=" + "00" * 20, allow_sha1=allow)


def test_a_token_secret_key(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        secret = token.generate_secret("webhook-mac")
        try:
            _round_trip(secret)
        finally:
            secret.delete_from_token()


def test_an_agent_secret_key(tmp_path: Path) -> None:
    st = make_store(tmp_path, secrets=("webhook",))
    with Agent(st) as agent, agent.client() as client:
        _round_trip(client.secret("webhook"))
        assert agent.stop() == 0
