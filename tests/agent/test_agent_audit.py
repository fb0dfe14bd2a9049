"""Every request to ``keycell agent`` is one record in its ``keycell.audit`` log
(``--audit-log``): allowed and refused requests and refused connections, with the peer's
uid and pid, the key's name, the operation and the result; the log verifies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from agent_support import Agent, AuditFiles, frame, make_store, recv_reply
from keycell import SecretKey
from keycell.exceptions import AgentRefusedError


def test_audit_options_are_checked_before_serving(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    log = st.dir / "audit.log"
    with Agent(st, "--audit-log", str(log), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "does not exist: give --audit-key-file K0 to create it" in agent.stderr()
        assert not agent.socket.exists()
    with Agent(st, "--audit-key-file", str(st.master), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "need --audit-log" in agent.stderr()
    short = st.dir / "short.key"
    with SecretKey.generate(16) as k:
        k.to_file(short, format="raw")
    args = ("--audit-log", str(log), "--audit-key-file", str(short))
    with Agent(st, *args, expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "at least 32 bytes" in agent.stderr()
        assert not log.exists()


def test_every_request_is_one_audit_record(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    audited = AuditFiles(st.dir)
    log = audited.log
    args = audited.args()
    with Agent(st, *args) as agent:
        with agent.client() as c:
            key = c.ed25519("deploy")  # list@keycell
            key.sign(b"one")  # sign, allowed
            with pytest.raises(AgentRefusedError):
                c.secret("deploy")  # list@keycell (refused by the client: wrong kind)
            c.secret("mac").hmac(b"x")  # list@keycell + hmac
        with agent.raw() as s:
            s.sendall(frame(b"\x11" + b"\0" * 8))  # ADD_IDENTITY: refused
            assert recv_reply(s) == b"\x05"
        assert agent.ssh("ssh-add", "-L").returncode == 0  # identities
        agent.signal(signal.SIGHUP)
        agent.wait_log("signed an audit checkpoint")
        assert agent.stop() == 0
    # Restarted on the same log (no K0 needed now): records continue the chain.
    with Agent(st, "--audit-log", str(log)) as agent:
        with agent.client() as c:
            c.ed25519("deploy").sign(b"two")
        assert agent.stop() == 0
    r = audited.verify()
    assert r.valid, r
    events = audited.events()
    ops = [(e["type"], e["key"], e["result"]) for e in events]
    assert ops == [
        ("agent.list", None, "allowed"),
        ("agent.sign", "deploy", "allowed"),
        ("agent.list", None, "allowed"),
        ("agent.list", None, "allowed"),
        ("agent.hmac", "mac", "allowed"),
        ("agent.add-identity", None, "refused"),
        ("agent.identities", None, "allowed"),
        ("agent.list", None, "allowed"),
        ("agent.sign", "deploy", "allowed"),
    ]
    assert all(e["uid"] == os.geteuid() and e["pid"] > 0 for e in events)
    assert events[5]["reason"] == "not allowed over the socket"


def test_a_failing_audit_log_stops_the_agent(tmp_path: Path) -> None:
    """Fail closed: when a record cannot be appended (here another writer put a forged line
    in the log, which the agent's writer refuses to chain onto), the request whose record
    failed gets SSH_AGENT_FAILURE instead of its signature (its record was never
    acknowledged), and the agent stops with exit status 1 and says why."""
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        with agent.client() as c:
            key = c.ed25519("deploy")
            key.sign(b"before")
            with open(audited.log, "ab") as f:
                f.write(b'{"seq":999,"type":"agent.sign","result":"allowed"}\n')
            with pytest.raises(AgentRefusedError):
                key.sign(b"after")
        assert agent.wait_exit() == 1
        err = agent.stderr()
        # The first failure is the one reported, and the stop still wipes and cleans up.
        assert "error: audit log failed: audit log: line 4: modified" in err
        assert "stopped: keys wiped, socket removed" in err
        assert not agent.socket.exists()
    # The log ends at the forged line: nothing was written after it (the refused second
    # signature has no record), and the verifier names that line.
    result = audited.verify()
    assert (result.valid, result.kind, result.line) == (False, "modified", 4), result
    assert audited.log.read_bytes().endswith(b'"result":"allowed"}\n')
