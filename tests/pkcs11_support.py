"""A throwaway SoftHSM2 token directory for the PKCS#11 tests and the agent's token tests
(the session-scoped ``hsm`` fixture, registered in tests/conftest.py).

``SOFTHSM2_CONF`` must point at the configuration before the module is first loaded in
this process (SoftHSM2 reads it in ``C_Initialize``, and keycell initialises a module once
per process), so the fixture sets it for the whole session and creates every token the
tests use up front with ``softhsm2-util``. ``pkcs11-tool`` (OpenSC) is the independent
client.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
MODULE = next((p for p in MODULE_CANDIDATES if Path(p).exists()), None)
PIN = "kc-pin-7391-test"
SO_PIN = "5678-so"


@dataclass(frozen=True)
class Hsm:
    """The test tokens: ``label`` (the main one), ``other`` (same PIN, other token) and
    ``agent`` (the agent tests' token, same PIN)."""

    module: str
    label: str
    other: str
    agent: str
    pin: str
    pin_file: Path
    conf: Path
    dir: Path

    def tool(
        self, *args: str, token: str | None = None, login: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``pkcs11-tool`` on a token (the main one by default)."""
        cmd = ["pkcs11-tool", "--module", self.module, "--token-label", token or self.label]
        if login:
            cmd += ["--login", "--pin", self.pin]
        return subprocess.run(cmd + list(args), capture_output=True, check=check, timeout=60)

    def agent_args(self, token: str | None = None) -> tuple[str, ...]:
        """The options of ``keycell agent serve`` that serve a token (``agent`` by
        default)."""
        return ("--pkcs11-module", self.module, "--pkcs11-token", token or self.agent,
                "--pkcs11-pin-file", str(self.pin_file))  # fmt: skip

    def pin_buf(self) -> bytearray:
        """The PIN as a fresh bytearray (keycell wipes it)."""
        return bytearray(self.pin.encode())


def _missing() -> str | None:
    if MODULE is None:
        return "SoftHSM2 is not installed (package softhsm2; scripts/install-test-tools.sh)"
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-test-tools.sh)"
    return None


@pytest.fixture(scope="session")
def hsm() -> Iterator[Hsm]:
    """Two initialised SoftHSM2 tokens in a temporary token directory."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    assert MODULE is not None
    d = Path(tempfile.mkdtemp(prefix="keycell-softhsm-"))
    tokens = d / "tokens"
    tokens.mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    # SoftHSM2 finds its tokens when a process initialises it: every token is made here,
    # before any test loads the module.
    for label in ("kc-test", "kc-other", "kc-agent"):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    pin_file = d / "pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PIN.encode() + b"\n")
    os.close(fd)
    try:
        yield Hsm(MODULE, "kc-test", "kc-other", "kc-agent", PIN, pin_file, conf, d)
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old
        shutil.rmtree(d, ignore_errors=True)
