"""A real ``ssh`` login through ``keycell agent``, against OpenSSH's own ``sshd`` (started
in the foreground for each test, on 127.0.0.1, with everything in ``tmp_path``): the login
succeeds with the agent's key and the agent's audit log records the signature; it fails
when ``authorized_keys`` holds another key, when the signed policy does not let the key
sign, and when the policy refuses the signature itself (audited)."""

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
from agent_support import (
    Agent,
    AuditFiles,
    Signer,
    make_store,
    openssh_line,
    policy_args,
    ssh_blob,
    write_policy,
)
from keycell import Ed25519PrivateKey

SSHD = Path("/usr/sbin/sshd")

pytestmark = [
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


def ops(audited: AuditFiles) -> list[tuple[str, str | None, str]]:
    return [(e["type"], e["key"], e["result"]) for e in audited.events()]


def test_ssh_login_through_the_agent(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        authorized = agent_key_line(agent, "deploy")
        assert authorized == openssh_line(st.ed25519["deploy"], "deploy") + "\n"
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode == 0, f"{r.stderr}\nsshd:\n{server.stderr()}"
            assert "logged-in" in r.stdout.splitlines()
        assert "Accepted publickey for root" in server.stderr()
        assert fingerprint(st.ed25519["deploy"]) in server.stderr()
        assert agent.stop() == 0
    assert audited.verify(checkpoint=None).valid  # the checkpoint signed at stop, too
    records = audited.events()
    # On its agent connection ssh first binds the agent to this session (OpenSSH's
    # session-bind@openssh.com extension, sent since 8.9). The agent refuses extensions it
    # does not know; ssh logs that at debug level and goes on to list the keys and ask for
    # the signature: the login above succeeded after that refusal.
    assert ops(audited) == [
        ("agent.identities", None, "allowed"),  # ssh-add -L
        ("agent.extension", None, "refused"),  # ssh: session-bind@openssh.com
        ("agent.identities", None, "allowed"),  # ssh
        ("agent.sign", "deploy", "allowed"),  # ssh, for sshd's publickey authentication
    ]
    assert records[1]["reason"] == "unsupported extension"
    assert len({e["connection"] for e in records[1:]}) == 1  # one ssh, one connection
    assert all(e["uid"] == 0 and e["pid"] > 0 for e in records)


def test_ssh_login_fails_with_a_key_the_agent_does_not_serve(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    stranger = Ed25519PrivateKey.generate()
    authorized = openssh_line(stranger.public_key().public_bytes_raw(), "stranger") + "\n"
    stranger.destroy()
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode != 0
            assert "logged-in" not in r.stdout
            assert "Permission denied" in r.stderr
        assert "Accepted publickey" not in server.stderr()
        assert agent.stop() == 0
    assert audited.verify().valid
    # sshd turned the offered key down before any signature was asked for.
    assert ("agent.identities", None, "allowed") in ops(audited)
    assert not [o for o in ops(audited) if o[0] == "agent.sign"]


def test_ssh_login_fails_when_the_policy_does_not_let_the_key_sign(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(
        st, {"keys": {"deploy": {"operations": ["hmac"]}, "ci": {"operations": ["sign"]}}}
    )
    signer.sign(policy)
    authorized = openssh_line(st.ed25519["deploy"], "deploy") + "\n"
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args(), *policy_args(policy, signer)) as agent:
        # The agent withholds the key from ssh: it lists only keys the peer may sign with.
        assert agent_key_line(agent, "ci") == openssh_line(st.ed25519["ci"], "ci") + "\n"
        assert " deploy" not in agent.ssh("ssh-add", "-L").stdout
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode != 0
            assert "logged-in" not in r.stdout
            assert "Permission denied" in r.stderr
        assert "Accepted publickey" not in server.stderr()
        assert agent.stop() == 0
    assert audited.verify().valid
    # ssh only had "ci" to offer, which sshd turned down: no signature was made.
    assert not [o for o in ops(audited) if o[0] == "agent.sign"]


def test_ssh_login_fails_when_the_policy_refuses_the_signature(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer = Signer(st.dir)
    rate = {"count": 1, "per_seconds": 3600}
    policy = write_policy(st, {"keys": {"deploy": {"operations": ["sign"], "rate": rate}}})
    signer.sign(policy)
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args(), *policy_args(policy, signer)) as agent:
        with agent.client() as c:
            c.ed25519("deploy").sign(b"the one signature this hour")
        # Still listed (a rate limit is only checked when a key is used), so ssh offers
        # it, sshd accepts it, and the agent refuses the signature.
        authorized = agent_key_line(agent, "deploy")
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode != 0
            assert "logged-in" not in r.stdout
            assert "Permission denied" in r.stderr
        assert "Accepted publickey" not in server.stderr()
        assert agent.stop() == 0
        assert "refused: rate limit reached" in agent.stderr()
    assert audited.verify().valid
    signs = [e for e in audited.events() if e["type"] == "agent.sign"]
    assert [(e["key"], e["result"]) for e in signs] == [
        ("deploy", "allowed"),  # the Python client's
        ("deploy", "refused"),  # ssh's
    ]
    assert signs[1]["reason"] == "rate limit reached"
