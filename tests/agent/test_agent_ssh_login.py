"""A real ``ssh`` login through ``keycell agent``, against OpenSSH's own ``sshd`` (started
in the foreground for each test, on 127.0.0.1, with everything in ``tmp_path``): the login
succeeds with the agent's key and the agent's audit log records the signature; it fails
when ``authorized_keys`` holds another key, when the signed policy does not let the key
sign, and when the policy refuses the signature itself (audited)."""

from __future__ import annotations

from pathlib import Path

from agent_support import (
    Agent,
    AuditFiles,
    Signer,
    make_store,
    openssh_line,
    policy_args,
    write_policy,
)
from keycell import Ed25519PrivateKey
from sshd_support import (
    NEEDS_SSHD,
    agent_key_line,
    assert_login_refused,
    fingerprint,
    login,
    sshd,
)

pytestmark = NEEDS_SSHD


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
        assert_login_refused(agent, tmp_path / "sshd", authorized)
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
        assert_login_refused(agent, tmp_path / "sshd", authorized)
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
        assert_login_refused(agent, tmp_path / "sshd", authorized)
        assert agent.stop() == 0
        assert "refused: rate limit reached" in agent.stderr()
    assert audited.verify().valid
    signs = [e for e in audited.events() if e["type"] == "agent.sign"]
    assert [(e["key"], e["result"]) for e in signs] == [
        ("deploy", "allowed"),  # the Python client's
        ("deploy", "refused"),  # ssh's
    ]
    assert signs[1]["reason"] == "rate limit reached"
