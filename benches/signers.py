"""Token signers and webhook verification with the key in keycell against the libraries
they stand in for, with the same secret bytes, in one run with interleaved rounds (paired
ratios): ``keycell.compat.itsdangerous`` against itsdangerous, ``keycell.compat.django``
against ``django.core.signing``, ``keycell.webhooks`` against the stdlib ``hmac`` recipe
GitHub documents and the ``standardwebhooks`` package.

    python benches/signers.py         # these cases alone
    python benches/run.py             # with everything else (benches/results/latest.md)

A reference that is not installed is left out, with a note. A measurement, not a test:
nothing here fails on timing.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from keycell import SecretKey, webhooks
from keycell.compat import django as kc_django
from keycell.compat import itsdangerous as kc_its

SECRET = b"a signing secret of some forty bytes, fixed"
OBJ = {"user": 42, "scope": ["read", "write"], "next": "/account/settings"}
BODY = b'{"action": "opened", "number": 7, "repository": {"full_name": "o/r"}}' * 8


def _have(name: str) -> bool:
    if importlib.util.find_spec(name) is None:
        print(f"signers bench: {name} is not installed; no reference", file=sys.stderr)
        return False
    return True


def build_cases(case_cls: Any, contender_cls: Any) -> list[Any]:
    """The cases, as ``benches/run.py`` ``Case`` objects."""
    key = SecretKey.from_buffer(bytearray(SECRET))
    cases: list[Any] = []
    env: dict[str, Any] = {"obj": OBJ, "body": BODY, "key": key, "raw": SECRET}

    env["kits"] = kc_its.URLSafeTimedSerializer(key, salt="bench")
    refs = []
    if _have("itsdangerous"):
        import itsdangerous

        env["its"] = itsdangerous.URLSafeTimedSerializer(SECRET, salt="bench")
        refs.append((contender_cls("itsdangerous", "its.loads(its.dumps(obj), 60)", env), None))
    cases.append(
        case_cls(
            "tokens: URLSafeTimedSerializer dumps + loads (SHA-1)",
            contender_cls("keycell", "kits.loads(kits.dumps(obj), 60)", env),
            refs,
        )
    )

    env["kdj"] = kc_django.Signer(key=key)
    refs = []
    if _have("django"):
        from django.core import signing

        env["dj"] = signing.Signer(key=SECRET.decode(), fallback_keys=[])
        refs.append(
            (contender_cls("django.core.signing", "dj.unsign(dj.sign('v' * 40))", env), None)
        )
    cases.append(
        case_cls(
            "tokens: Django Signer sign + unsign (SHA-256)",
            contender_cls("keycell", "kdj.unsign(kdj.sign('v' * 40))", env),
            refs,
        )
    )

    env["gh"] = webhooks.sign_github(key, BODY)
    env["verify_github"] = webhooks.verify_github
    env["hmac"], env["sha256"] = hmac, hashlib.sha256
    stdlib = "hmac.compare_digest('sha256=' + hmac.new(raw, body, sha256).hexdigest(), gh)"
    cases.append(
        case_cls(
            f"tokens: GitHub webhook verify, {len(BODY)} B",
            contender_cls("keycell", "verify_github(key, body, gh)", env),
            [(contender_cls("stdlib hmac (GitHub's recipe)", stdlib, env), None)],
        )
    )

    whsec = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    env["wk"] = webhooks.load_standard_secret(bytearray(whsec))
    env["hdrs"] = webhooks.sign_standard(
        env["wk"], BODY, msg_id="msg_1", timestamp=int(time.time())
    )
    env["verify_standard"] = webhooks.verify_standard
    refs = []
    if _have("standardwebhooks"):
        import standardwebhooks

        env["sw"] = standardwebhooks.Webhook(whsec.decode())
        refs.append(
            (
                contender_cls("standardwebhooks", "sw.verify(body, hdrs, json_parse=False)", env),
                None,
            )
        )
    cases.append(
        case_cls(
            f"tokens: Standard Webhooks verify, {len(BODY)} B",
            contender_cls("keycell", "verify_standard(wk, body, hdrs)", env),
            refs,
        )
    )
    return cases


def main() -> int:
    """Run these cases alone and print the paired ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run  # benches/run.py

    return int(run.run_module_alone(build_cases, "keycell"))


if __name__ == "__main__":
    raise SystemExit(main())
