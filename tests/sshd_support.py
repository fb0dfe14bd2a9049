"""A throwaway OpenSSH ``sshd`` on 127.0.0.1 for the agent's login tests
(tests/agent/test_agent_ssh_login.py, tests/agent/test_agent_pkcs11.py), and ``ssh``
through an agent."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from agent_support import Agent, ssh_blob

SSHD = Path("/usr/sbin/sshd")

#: Marks for a test that logs in with ``ssh`` to :func:`sshd` as root.
NEEDS_SSHD = [
    pytest.mark.skipif(
        not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
        reason="OpenSSH server or client is not installed: run `make deps` "
        "(scripts/install-test-tools.sh installs openssh-server and openssh-client)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run sshd and log in as root"),
]


@dataclass
class Sshd:
    """A running ``sshd -D -e``: its port and its log (stderr)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        """What sshd logged so far."""
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_for_sessions(pid: int, timeout: float = 10) -> None:
    """Wait (a while) until sshd has reaped its per-connection children, so that none is
    left to init when it is terminated."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not children.read_text().split():
                return
        except OSError:  # exited (or no such file on this kernel)
            return
        time.sleep(0.05)


@contextmanager
def sshd(d: Path, authorized_keys: str) -> Iterator[Sshd]:
    """An ``sshd`` on 127.0.0.1 that lets root in with a key of ``authorized_keys`` only;
    its host key, configuration and log are in ``d``. Terminated on exit."""
    d.mkdir()
    host_key = d / "ssh_host_ed25519_key"
    r = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    authorized = d / "authorized_keys"
    authorized.write_text(authorized_keys)
    config = d / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PidFile none\n"
        "PermitRootLogin prohibit-password\n"
    )
    # The privilege separation directory (the package's service makes it at boot).
    privsep = Path("/run/sshd")
    if not privsep.exists():
        privsep.mkdir(parents=True, exist_ok=True)
        privsep.chmod(0o755)
    for attempt in range(5):  # another process may take the free port before sshd does
        port = _free_port()
        log = d / f"sshd-{attempt}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config), "-p", str(port)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = Sshd(port, proc, log)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and not _accepts(port):
                assert time.monotonic() < deadline, f"sshd does not listen:\n{server.stderr()}"
                time.sleep(0.05)
            if proc.poll() is None:
                yield server
                return
            if "Address already in use" not in server.stderr():
                raise AssertionError(f"sshd exited {proc.returncode}:\n{server.stderr()}")
        finally:
            _wait_for_sessions(proc.pid)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(30)
    raise AssertionError("sshd found no free port")


def login(agent: Agent, server: Sshd) -> subprocess.CompletedProcess[str]:
    """``ssh root@127.0.0.1 echo logged-in`` with the agent as its only key source."""
    return agent.ssh(
        "ssh", "-F", "/dev/null", "-o", f"IdentityAgent={agent.socket}",
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentityFile=none",
        "-o", "PreferredAuthentications=publickey", "-o", "ConnectTimeout=30",
        "-p", str(server.port), "root@127.0.0.1", "echo", "logged-in",
    )  # fmt: skip


def assert_login_refused(agent: Agent, d: Path, authorized_keys: str) -> None:
    """Start an sshd in ``d`` accepting ``authorized_keys``; the login through the agent
    must fail (sshd denies it, accepts no key) and ssh must not run the command."""
    with sshd(d, authorized_keys) as server:
        r = login(agent, server)
        assert r.returncode != 0
        assert "logged-in" not in r.stdout
        assert "Permission denied" in r.stderr
    assert "Accepted publickey" not in server.stderr()


def fingerprint(public: bytes) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a raw Ed25519 public key."""
    digest = hashlib.sha256(ssh_blob(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def agent_key_line(agent: Agent, name: str) -> str:
    """The agent's public key ``name`` as ``ssh-add -L`` prints it."""
    r = agent.ssh("ssh-add", "-L")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.endswith(f" {name}")]
    assert len(lines) == 1, r.stdout
    return lines[0] + "\n"
