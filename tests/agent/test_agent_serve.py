"""``keycell.agent.serve``: the agent embedded in a program, without the command line. It
keeps the command's guarantees: every request is recorded in the audit log before its
reply leaves, a failing log refuses the reply and stops the agent, the policy's signature
is checked with the key given at start, and stop() wipes the keys and removes the
socket."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from agent_support import AuditFiles, Signer, Store, make_store, write_policy
from audit_support import read_lines
from keycell import ECPrivateKey, Ed25519PrivateKey, SecretKey, agent, audit
from keycell.agent_server import sign_policy
from keycell.exceptions import AgentPolicyError, AgentRefusedError, AuditTamperedError


def open_log(audited: AuditFiles) -> audit.AuditLog:
    with SecretKey.from_file(audited.k0) as k0:
        return audit.AuditLog.create(audited.log, key=k0, origin="test/agent")


def test_a_signature_is_recorded_before_it_is_returned(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    audited = AuditFiles(st.dir)
    log = open_log(audited)
    sock = st.dir / "a.sock"
    with agent.serve(sock, store=st.path, passphrase=_master(st), audit=log) as handle:
        with agent.connect(sock) as c:
            c.ed25519("deploy").sign(b"payload")
            # No stop, no wait: the record is in the file when the signature is returned.
            assert [e["type"] for e in audited.events()] == ["agent.list", "agent.sign"]
            c.secret("mac").hmac(b"x")
            assert audited.events()[-1]["type"] == "agent.hmac"
        assert handle.failure is None
    assert handle.stopped
    assert not sock.exists()
    log.close()
    assert audited.verify().valid


def test_records_are_the_bytes_the_command_wrote(tmp_path: Path) -> None:
    """The record of a signature is the JSON the command's Python loop wrote
    (``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` of the same fields in
    the same order), so logs from before and after read and verify alike."""
    st = make_store(tmp_path, ed25519=('dé"ploy',), secrets=())
    audited = AuditFiles(st.dir)
    log = open_log(audited)
    sock = st.dir / "a.sock"
    with agent.serve(sock, store=st.path, passphrase=_master(st), audit=log):
        with agent.connect(sock) as c:
            c.ed25519('dé"ploy').sign(b"payload")
    log.close()
    sign = audited.events()[-1]
    expected = {
        "type": "agent.sign",
        "result": "allowed",
        "uid": os.geteuid(),
        "gid": sign["gid"],
        "pid": os.getpid(),
        "pid_pinned": sign["pid_pinned"],
        "key": 'dé"ploy',
        "key_source": "store",
        "key_type": "ed25519",
        "reason": None,
        "connection": sign["connection"],
    }
    encoded = json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert any(encoded in line for line in read_lines(audited.log))


def test_a_failing_audit_log_stops_the_agent(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    audited = AuditFiles(st.dir)
    log = open_log(audited)
    sock = st.dir / "a.sock"
    handle = agent.serve(sock, store=st.path, passphrase=_master(st), audit=log)
    with agent.connect(sock) as c:
        key = c.ed25519("deploy")
        key.sign(b"before")
        with open(audited.log, "ab") as f:
            f.write(b'{"seq":999,"type":"agent.sign","result":"allowed"}\n')
        with pytest.raises(AgentRefusedError):
            key.sign(b"after")
    assert handle.wait(timeout=60)
    assert isinstance(handle.failure, AuditTamperedError)
    assert "modified" in str(handle.failure)
    # The agent stopped itself: keys wiped, socket removed (by whichever stop came first).
    assert handle.stop() is True
    assert handle.keys() == []
    assert not sock.exists()
    log.close()
    lines = read_lines(audited.log)
    assert lines[-1].endswith(b'"result":"allowed"}')  # nothing after the forged line


def test_policy_is_checked_with_the_key_given_at_start(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(st, {"keys": {"deploy": {"max_uses": 1}}})
    sock = st.dir / "a.sock"
    with pytest.raises(AgentPolicyError, match="has no signature"):
        agent.serve(sock, store=st.path, passphrase=_master(st), policy=policy,
                    policy_public_key=signer.pub)  # fmt: skip
    assert not sock.exists()
    signer.sign(policy)
    lines: list[str] = []
    with agent.serve(sock, store=st.path, passphrase=_master(st), policy=policy,
                     policy_public_key=signer.pub, log=lines.append) as handle:  # fmt: skip
        with agent.connect(sock) as c:
            key = c.ed25519("deploy")
            key.sign(b"one")
            with pytest.raises(AgentRefusedError):
                key.sign(b"two")  # max_uses 1
        # A policy signed by another key is not taken on reload; the old one stays.
        other = Ed25519PrivateKey.generate()
        write_policy(st, {"keys": {"deploy": {"max_uses": 5}}})
        policy.with_name(policy.name + ".sig").write_text(sign_policy(policy.read_bytes(), other))
        other.destroy()
        with pytest.raises(AgentPolicyError, match="does not verify"):
            handle.reload()
        assert any("policy reload failed, keeping the old policy" in m for m in lines)
        with agent.connect(sock) as c, pytest.raises(AgentRefusedError):
            c.ed25519("deploy").sign(b"three")


def test_policy_signed_with_an_ec_key_given_as_an_object(tmp_path: Path) -> None:
    """``policy_public_key`` may be an ``ECPublicKey``; a reload signed by the pinned
    curve's other key, or by an Ed25519 key, is refused and the old policy stays."""
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    policy = write_policy(st, {"keys": {"deploy": {"max_uses": 1}}})
    signer = ECPrivateKey.generate("P-384")
    sig_path = policy.with_name(policy.name + ".sig")
    sig_path.write_text(sign_policy(policy.read_bytes(), signer))
    assert sig_path.read_text().startswith("keycell-policy-signature-v1 ecdsa-p384 ")
    sock = st.dir / "a.sock"
    with agent.serve(sock, store=st.path, passphrase=_master(st), policy=policy,
                     policy_public_key=signer.public_key()) as handle:  # fmt: skip
        with agent.connect(sock) as c:
            key = c.ed25519("deploy")
            key.sign(b"one")
            with pytest.raises(AgentRefusedError):
                key.sign(b"two")  # max_uses 1
        write_policy(st, {"serial": 2, "keys": {"deploy": {"max_uses": 5}}})
        for other, match in (
            (ECPrivateKey.generate("P-384"), "does not verify"),
            (Ed25519PrivateKey.generate(), "is signed with ed25519"),
        ):
            sig_path.write_text(sign_policy(policy.read_bytes(), other))
            other.destroy()
            with pytest.raises(AgentPolicyError, match=match):
                handle.reload()
        with agent.connect(sock) as c, pytest.raises(AgentRefusedError):
            c.ed25519("deploy").sign(b"three")
        sig_path.write_text(sign_policy(policy.read_bytes(), signer))
        handle.reload()
        with agent.connect(sock) as c:
            c.ed25519("deploy").sign(b"four")
    with pytest.raises(TypeError, match="Ed25519PrivateKey, ECPrivateKey or RSAPrivateKey"):
        sign_policy(b"{}", SecretKey.generate(32))  # type: ignore[arg-type]
    signer.destroy()


def test_serve_installs_no_signal_handlers_and_stops_from_any_thread(tmp_path: Path) -> None:
    import signal

    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    sock = st.dir / "a.sock"
    handle = agent.serve(sock, store=st.path, passphrase=_master(st))
    assert {s: signal.getsignal(s) for s in before} == before
    results: list[bool] = []
    stoppers = [threading.Thread(target=lambda: results.append(handle.stop())) for _ in range(4)]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    assert sorted(results) == [True] * 4  # every stop reports the one removal
    assert handle.failure is None
    assert not sock.exists()


def test_argument_checks(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    sock = st.dir / "a.sock"
    with pytest.raises(ValueError, match="give a store, a token or both"):
        agent.serve(sock)
    with pytest.raises(ValueError, match="go together"):
        agent.serve(sock, store=st.path, policy=st.dir / "p.json")
    with pytest.raises(ValueError, match="socket_mode"):
        agent.serve(sock, store=st.path, passphrase=_master(st), socket_mode=0o400)
    # Third review: 1e19 s passed the check and panicked every connection thread (an
    # Instant overflow), each panic keeping its connection slot for good.
    for name in ("frame_timeout", "idle_timeout"):
        for bad in (0.0, -1.0, float("nan"), float("inf"), 86400.5, 1e19):
            with pytest.raises(ValueError, match="at most 86400"):
                agent.serve(sock, store=st.path, passphrase=_master(st), **{name: bad})
    handle = agent.serve(sock, store=st.path, passphrase=_master(st), idle_timeout=86400.0,
                         frame_timeout=86400.0)
    assert not handle.wait(0.0)
    with pytest.raises(ValueError, match="timeout"):
        handle.wait(-1.0)
    # A wait longer than an Instant can hold is a wait without limit (it panicked).
    waited: list[bool] = []
    waiter = threading.Thread(target=lambda: waited.append(handle.wait(1e19)))
    waiter.start()
    handle.stop()
    waiter.join()
    assert waited == [True]
    assert not sock.exists()


def _master(st: Store) -> SecretKey:
    """The store's master key, read from its file."""
    return SecretKey.from_file(st.master)
