"""Memory scan of the signing integrations (itsdangerous, Django, webhooks): a child
loads the secrets from files the parent wrote, signs and verifies with every integration,
and the parent scans its memory for the secrets and for every key derived from them
(itsdangerous's ``concat``/``django-concat``/``hmac`` keys, Django's ``salted_hmac`` and
``Signer`` keys, a decoded Standard Webhooks secret). While alive every copy must be in
locked, dump-excluded memory; after ``destroy()`` of the source keys none may be left. A
``bytes`` copy of another secret is the positive control.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pytest
from memscan import scan_phases, summarize

pytestmark = pytest.mark.slow

CHILD = """
import sys
from keycell import SecretKey
from keycell.compat import django, itsdangerous
from keycell import webhooks

key = SecretKey.from_file(sys.argv[1])
stripe = SecretKey.from_file(sys.argv[2])
with open(sys.argv[3], "rb", buffering=0) as f:
    text = bytearray(int(sys.argv[4]))
    f.readinto(text)
standard = webhooks.load_standard_secret(text)
with open(sys.argv[5], "rb") as f:
    control = f.read()               # positive control, kept on purpose

for derivation in ("concat", "django-concat", "hmac", "none"):
    for digest in ("sha1", "sha256"):
        s = itsdangerous.URLSafeTimedSerializer(
            key, signer_kwargs={"key_derivation": derivation, "digest_method": digest})
        assert s.loads(s.dumps({"n": 1}), max_age=60) == {"n": 1}
signer = django.Signer(key=key)
assert signer.unsign(signer.sign("v")) == "v"
assert django.loads(django.dumps({"a": 1}, key, compress=True), key) == {"a": 1}
mac = django.salted_hmac("salt", "value", key)
mac.digest()
body = b'{"event": 1}'
webhooks.verify_github(key, body, webhooks.sign_github(key, body))
webhooks.verify_stripe(stripe, body, webhooks.sign_stripe(stripe, body, timestamp=100), now=100)
ts, sig = webhooks.sign_slack(key, body, timestamp=100)
webhooks.verify_slack(key, body, timestamp=ts, signature=sig, now=100)
headers = webhooks.sign_standard(standard, body, msg_id="msg_1", timestamp=100)
webhooks.verify_standard(standard, body, headers, now=100)
phase("alive")
del s, signer, mac
key.destroy()
stripe.destroy()
standard.destroy()
phase("destroyed")
"""


def _derived(key: bytes) -> dict[str, bytes]:
    salt = b"itsdangerous"
    out: dict[str, bytes] = {}
    for name in ("sha1", "sha256"):
        out[f"its-concat-{name}"] = hashlib.new(name, salt + key).digest()
        out[f"its-django-concat-{name}"] = hashlib.new(name, salt + b"signer" + key).digest()
        out[f"its-hmac-{name}"] = hmac.new(key, salt, name).digest()
    out["django-signer"] = hashlib.sha256(b"django.core.signing.Signersigner" + key).digest()
    out["django-dumps"] = hashlib.sha256(b"django.core.signingsigner" + key).digest()
    out["django-salted-hmac"] = hashlib.sha1(b"salt" + key).digest()
    return out


def test_no_secret_or_derived_key_outside_guarded_memory(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    stripe = b"whsec_" + secrets.token_hex(16).encode()
    standard = secrets.token_bytes(24)
    control = secrets.token_bytes(32)
    files = {}
    for name, data in (
        ("key", key),
        ("stripe", stripe),
        ("standard", b"whsec_" + base64.b64encode(standard)),
        ("control", control),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        os.chmod(path, 0o600)
        files[name] = str(path)
    patterns = {
        "key": key,
        "stripe": stripe,
        "standard": standard,
        "control": control,
        **_derived(key),
    }
    standard_len = str(len(b"whsec_" + base64.b64encode(standard)))
    scans, _ = scan_phases(
        CHILD,
        files["key"],
        files["stripe"],
        files["standard"],
        standard_len,
        files["control"],
        patterns=patterns,
    )
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["control"], summarize(alive)
    assert after["control"], summarize(after)
    for name in patterns:
        if name == "control":
            continue
        assert all(h.locked and h.dontdump for h in alive[name]), (
            f"{name} in unguarded memory:\n{summarize(alive)}"
        )
        assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"
    # The keys and the derived keys of the signers still referenced were found while alive
    # (in guarded memory): the scan sees them.
    for name in ("key", "stripe", "standard", "django-signer", "django-salted-hmac"):
        assert alive[name], f"{name} not found while alive: the scan would see nothing"
