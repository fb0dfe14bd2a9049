"""Helpers for the Ed25519 / X25519 tests: key files, openssl, RFC 8410 DER by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")


def write_key_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Write ``data`` to ``path`` and set its mode."""
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def openssl(*args: str, stdin: bytes | None = None) -> bytes:
    """Run the openssl command; its stdout."""
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *args], input=stdin, check=True, capture_output=True, timeout=60
    ).stdout


def openssl_genpkey(algorithm: str, path: Path) -> Path:
    """``openssl genpkey -algorithm <algorithm> -out <path>``, mode 0600."""
    openssl("genpkey", "-algorithm", algorithm, "-out", str(path))
    os.chmod(path, 0o600)
    return path


def pkcs8_der(oid_last: int, key: bytes, public: bytes | None = None) -> bytes:
    """An RFC 8410 PKCS#8 structure built by hand (OID 1.3.101.<oid_last>); version 2
    with the public key when ``public`` is given."""
    algid = bytes([0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, oid_last])
    inner = bytes([0x04, 0x22, 0x04, 0x20]) + key
    version = bytes([0x02, 0x01, 0x01 if public is not None else 0x00])
    body = version + algid + inner
    if public is not None:
        body += bytes([0x81, 0x21, 0x00]) + public
    return bytes([0x30, len(body)]) + body


def pem(label: str, der: bytes) -> bytes:
    """A PEM block with 64-character lines."""
    import base64

    b64 = base64.b64encode(der).decode()
    lines = "\n".join(textwrap.wrap(b64, 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()


def run_child(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (for fork tests)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


EC_CURVE_OID = {"P-256": "06082a8648ce3d030107", "P-384": "06052b81040022"}


def ec_sec1_der(curve: str, d: bytes) -> bytes:
    """A SEC1 ``ECPrivateKey`` (RFC 5915) built by hand: version 1, the scalar bytes as
    given, the named curve, no public key."""
    body = bytes.fromhex("020101") + bytes([0x04, len(d)]) + d
    params = bytes.fromhex(EC_CURVE_OID[curve])
    body += bytes([0xA0, len(params)]) + params
    return bytes([0x30, len(body)]) + body
