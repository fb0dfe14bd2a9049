"""Run test bodies in a fresh session keyring, with ``keyctl`` as the independent client.

Each body runs in a new interpreter started under ``keyctl session -``, which joins a new
anonymous session keyring first, so tests never see each other's keys (nor the keys of
the login that runs them). The body ends with ``done(value)``; :func:`in_session` returns
that value (JSON).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

__all__ = ["KEYCTL", "PRELUDE", "in_session", "requires_keyring"]

KEYCTL = shutil.which("keyctl")


def _skip_reason() -> str | None:
    if KEYCTL is None:
        return (
            "keyctl is not installed and scripts/install-test-tools.sh could not install it "
            "(not root, or no apt-get): install the keyutils package"
        )
    probe = subprocess.run(
        [KEYCTL, "session", "-", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"the kernel keyring is not usable here (seccomp?): {probe.stderr.strip()}"
    return None


_REASON = _skip_reason()
requires_keyring = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

PRELUDE = """
import json, subprocess, sys
import keycell
from keycell import Ed25519PrivateKey, SecretKey, X25519PrivateKey, keyring

def keyctl(*args, input=None):
    return subprocess.run(["keyctl", *args], capture_output=True, input=input)

def error(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as e:
        return {"type": type(e).__name__, "errno": getattr(e, "errno", None),
                "message": str(e), "keycell": isinstance(e, keycell.KeycellError)}
    return None

def done(value):
    sys.stdout.write("\\nRESULT " + json.dumps(value) + "\\n")
"""


def in_session(code: str, *args: str, timeout: float = 60) -> Any:
    """Run ``PRELUDE + code`` in a new interpreter in a new session keyring; return the
    value it passed to ``done``."""
    assert KEYCTL is not None
    proc = subprocess.run(
        [KEYCTL, "session", "-", sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"the body did not call done():\n{proc.stdout}\n{proc.stderr}")
