"""The agent serves ECDSA keys (P-256, P-384) from the key store as it serves Ed25519 ones:
``ssh-add -L`` lists them as ``ecdsa-sha2-nistp256``/``nistp384`` lines (the ones
``ECPublicKey.to_openssh()`` writes), ``ssh-keygen -Y sign`` signs through the agent and
``-Y verify`` accepts the signature, an ``ssh`` login works with each, the audit log
records each signature, and the signed policy applies to them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from agent_support import Agent, AuditFiles, Signer, Store, make_store, policy_args, write_policy
from keycell import AgentRefusedError, ECPrivateKey
from sshd_support import NEEDS_SSHD, agent_key_line, login, sshd

CURVES = ["P-256", "P-384"]


def add_ec(st: Store, name: str, curve: str) -> str:
    """Put a new EC key into the store; returns its OpenSSH public key line."""
    with ECPrivateKey.generate(curve) as key:
        with st.open() as s:
            s.put(name, key)
        return key.public_key().to_openssh()


def events(audited: AuditFiles, kind: str) -> list[tuple[str | None, str | None, str]]:
    return [(e["key"], e["key_type"], e["result"]) for e in audited.events() if e["type"] == kind]


@pytest.mark.parametrize("curve", CURVES)
def test_ssh_add_lists_and_ssh_keygen_signs(tmp_path: Path, curve: str) -> None:
    st = make_store(tmp_path, ed25519=("ed",), secrets=())
    line = add_ec(st, "ecdsa", curve)
    assert line.startswith(f"ecdsa-sha2-nistp{curve[2:]} ")
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        assert agent_key_line(agent, "ecdsa") == f"{line} ecdsa\n"
        pub = st.dir / "k.pub"
        pub.write_text(line + "\n")
        msg = st.dir / "msg"
        msg.write_bytes(b"release 1.2.3\n")
        r = agent.ssh("ssh-keygen", "-Y", "sign", "-f", str(pub), "-n", "file", str(msg))
        assert r.returncode == 0, r.stderr
        assert agent.stop() == 0
    signers = st.dir / "allowed_signers"
    signers.write_text(f"me@example {line}\n")

    def verify(data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "me@example",
             "-n", "file", "-s", f"{msg}.sig"],
            input=data, capture_output=True, timeout=60, check=False,
        )  # fmt: skip

    good = verify(b"release 1.2.3\n")
    assert good.returncode == 0, good.stderr
    assert verify(b"release 1.2.4\n").returncode != 0
    assert events(audited, "agent.sign") == [("ecdsa", f"ec-p{curve[2:]}", "allowed")]
    assert audited.verify(checkpoint=None).valid


@pytest.mark.parametrize("curve", CURVES)
def test_python_client_signs_with_ec_keys(tmp_path: Path, curve: str) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=("mac",))
    line = add_ec(st, "ecdsa", curve)
    with Agent(st) as agent, agent.client() as c:
        info = {k.name: k for k in c.keys()}["ecdsa"]
        assert info.kind == f"ec-p{curve[2:]}"
        key = c.ec("ecdsa")
        assert key.public_key() == info.public_key
        assert key.public_key().to_openssh() == line
        assert key.protection.locked
        for encoding in ("der", "raw"):
            msg = b"signed in the agent " + encoding.encode()
            key.public_key().verify(key.sign(msg, encoding=encoding), msg, encoding=encoding)
        with pytest.raises(AgentRefusedError, match="not an EC key"):
            c.ec("mac")
        with pytest.raises(AgentRefusedError, match="no EC key"):
            c.ec("missing")
        with pytest.raises(AgentRefusedError, match="not ed25519"):
            c.ed25519("ecdsa")
        assert agent.stop() == 0


def test_policy_applies_to_ec_keys(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    add_ec(st, "allowed", "P-256")
    add_ec(st, "withheld", "P-384")
    signer = Signer(st.dir)
    policy = write_policy(
        st, {"keys": {"allowed": {"operations": ["sign"]}, "withheld": {"operations": ["hmac"]}}}
    )
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent:
        listed = agent.ssh("ssh-add", "-L").stdout
        assert " allowed" in listed
        assert " withheld" not in listed
        assert agent.stop() == 0


@pytest.mark.parametrize("curve", CURVES)
@NEEDS_SSHD[0]
@NEEDS_SSHD[1]
def test_ssh_login_with_an_ec_key(tmp_path: Path, curve: str) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    add_ec(st, "deploy", curve)
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        authorized = agent_key_line(agent, "deploy")
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode == 0, f"{r.stderr}\nsshd:\n{server.stderr()}"
            assert "logged-in" in r.stdout.splitlines()
        assert "Accepted publickey for root from 127.0.0.1" in server.stderr()
        assert "ECDSA" in server.stderr()
        assert agent.stop() == 0
    assert events(audited, "agent.sign") == [("deploy", f"ec-p{curve[2:]}", "allowed")]
    assert audited.verify(checkpoint=None).valid
