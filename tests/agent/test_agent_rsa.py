"""The agent serves RSA keys from the key store: ``ssh-add -L`` lists them as ``ssh-rsa``
lines (the ones ``RSAPublicKey.to_openssh()`` writes); a sign request with
``SSH_AGENT_RSA_SHA2_256`` (2) or ``SSH_AGENT_RSA_SHA2_512`` (4) gets an ``rsa-sha2-256`` or
``rsa-sha2-512`` signature (RSASSA-PKCS1-v1_5, RFC 8332) that pyca verifies; one with
neither flag (a SHA-1 ``ssh-rsa`` signature) gets ``SSH_AGENT_FAILURE`` and an audit record
saying why, without using up a policy's count; ``ssh-keygen -Y sign`` and an ``ssh`` login
work through the agent; the policy applies to RSA keys as to the others; the Python client
lists them and signs with them (``client.rsa(name)``, an ``RSASigner``)."""

from __future__ import annotations

import base64
import struct
import subprocess
from pathlib import Path

import pytest
from agent_support import (
    Agent,
    AuditFiles,
    Signer,
    Store,
    frame,
    make_store,
    policy_args,
    recv_reply,
    string,
    write_policy,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from keycell import AgentRefusedError, RSAPrivateKey, RSAPublicKey, RSASigner
from sshd_support import NEEDS_SSHD, agent_key_line, login, sshd

FAILURE, SIGN_RESPONSE = 5, 14
SHA2_256, SHA2_512 = 2, 4


def add_rsa(st: Store, name: str, *, exportable: bool = True) -> str:
    """Put a new 2048-bit RSA key into the store; returns its OpenSSH public key line."""
    with RSAPrivateKey.generate(2048, exportable=exportable) as key:
        with st.open() as s:
            s.put(name, key)
        return key.public_key().to_openssh()


def blob_of(line: str) -> bytes:
    return base64.b64decode(line.split()[1])


def sign_frame(blob: bytes, data: bytes, flags: int) -> bytes:
    return frame(bytes([13]) + string(blob) + string(data) + struct.pack(">I", flags))


def parse_signature(reply: bytes) -> tuple[bytes, bytes]:
    """(algorithm name, signature) of a SIGN_RESPONSE."""
    assert reply[0] == SIGN_RESPONSE, reply[:1]

    def take(b: bytes) -> tuple[bytes, bytes]:
        (n,) = struct.unpack(">I", b[:4])
        return b[4 : 4 + n], b[4 + n :]

    inner, rest = take(reply[1:])
    assert rest == b""
    name, rest = take(inner)
    sig, rest = take(rest)
    assert rest == b""
    return name, sig


def events(audited: AuditFiles, kind: str) -> list[dict[str, object]]:
    return [e for e in audited.events() if e["type"] == kind]


def test_wire_flags_select_the_hash_and_sha1_is_refused(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    line = add_rsa(st, "rsa")
    public = load_ssh_public_key(line.encode())
    assert isinstance(public, pyca_rsa.RSAPublicKey)
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent, agent.raw() as s:
        for flags, name, hash_ in [
            (SHA2_256, b"rsa-sha2-256", hashes.SHA256()),
            (SHA2_512, b"rsa-sha2-512", hashes.SHA512()),
            (SHA2_256 | SHA2_512, b"rsa-sha2-256", hashes.SHA256()),
        ]:
            s.sendall(sign_frame(blob_of(line), b"data to sign", flags))
            reply = recv_reply(s)
            assert reply is not None
            got, sig = parse_signature(reply)
            assert got == name
            assert len(sig) == 256
            public.verify(sig, b"data to sign", padding.PKCS1v15(), hash_)
            with pytest.raises(InvalidSignature):
                public.verify(sig, b"other data", padding.PKCS1v15(), hash_)
        # No flag: a SHA-1 ssh-rsa signature is refused; the connection stays open.
        for flags in (0, 1, 8):
            s.sendall(sign_frame(blob_of(line), b"data to sign", flags))
            assert recv_reply(s) == bytes([FAILURE])
        s.sendall(sign_frame(blob_of(line), b"still open", SHA2_512))
        reply = recv_reply(s)
        assert reply is not None
        assert parse_signature(reply)[0] == b"rsa-sha2-512"
        agent.wait_log("SHA-1 ssh-rsa signatures are refused")
    signs = events(audited, "agent.sign")
    allowed, refused = ("rsa", "rsa", "allowed"), ("rsa", "rsa", "refused")
    assert [(e["key"], e["key_type"], e["result"]) for e in signs] == (
        [allowed] * 3 + [refused] * 3 + [allowed]
    )
    for e in signs[3:6]:
        assert "SHA-1 ssh-rsa signatures are refused" in str(e["reason"])
    assert audited.verify(checkpoint=None).valid


def test_ssh_add_lists_and_ssh_keygen_signs(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("ed",), secrets=())
    line = add_rsa(st, "rsa")
    assert line.startswith("ssh-rsa ")
    with Agent(st) as agent:
        assert agent_key_line(agent, "rsa") == f"{line} rsa\n"
        pub = st.dir / "k.pub"
        pub.write_text(line + "\n")
        msg = st.dir / "msg"
        msg.write_bytes(b"release 1.2.3\n")
        # ssh-keygen -Y sign asks the agent for rsa-sha2-512.
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


def test_the_python_client_lists_and_signs_with_rsa_keys(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=("mac",))
    line = add_rsa(st, "rsa", exportable=False)
    with Agent(st) as agent, agent.client() as c:
        info = {k.name: k for k in c.keys()}["rsa"]
        assert info.kind == "rsa"
        assert isinstance(info.public_key, RSAPublicKey)
        assert info.public_key.to_openssh() == line
        assert info.source == "store"
        assert info.protection.locked
        key = c.rsa("rsa")
        assert isinstance(key, RSASigner)
        assert key.public_key() == info.public_key
        assert key.key_size == 2048
        for hash_ in ("sha256", "sha512"):
            sig = key.sign(b"signed in the agent", padding="pkcs1v15", hash=hash_)
            key.public_key().verify(sig, b"signed in the agent", padding="pkcs1v15", hash=hash_)
        with pytest.raises(ValueError, match='padding="pkcs1v15" only'):
            key.sign(b"m")
        with pytest.raises(ValueError, match="sha256"):
            key.sign(b"m", padding="pkcs1v15", hash="sha384")
        with pytest.raises(AgentRefusedError, match="not rsa"):
            c.rsa("mac")
        with pytest.raises(AgentRefusedError, match="no rsa key"):
            c.rsa("missing")
        with pytest.raises(TypeError):
            str(key)
        assert agent.stop() == 0


def test_policy_applies_and_a_refused_sha1_request_uses_no_count(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    line = add_rsa(st, "once")
    add_rsa(st, "withheld")
    signer = Signer(st.dir)
    policy = write_policy(
        st,
        {
            "keys": {
                "once": {"operations": ["sign"], "max_uses": 1},
                "withheld": {"operations": ["hmac"]},
            }
        },
    )
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent:
        listed = agent.ssh("ssh-add", "-L").stdout
        assert " once" in listed
        assert " withheld" not in listed
        with agent.raw() as s:
            # The SHA-1 request is refused before the policy counts a use ...
            s.sendall(sign_frame(blob_of(line), b"m", 0))
            assert recv_reply(s) == bytes([FAILURE])
            # ... so the one allowed use is still there, and then it is spent.
            s.sendall(sign_frame(blob_of(line), b"m", SHA2_256))
            reply = recv_reply(s)
            assert reply is not None
            assert parse_signature(reply)[0] == b"rsa-sha2-256"
            s.sendall(sign_frame(blob_of(line), b"m", SHA2_256))
            assert recv_reply(s) == bytes([FAILURE])
        assert agent.stop() == 0


@NEEDS_SSHD[0]
@NEEDS_SSHD[1]
def test_ssh_login_with_an_rsa_key(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    add_rsa(st, "deploy")
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args()) as agent:
        authorized = agent_key_line(agent, "deploy")
        assert authorized.startswith("ssh-rsa ")
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode == 0, f"{r.stderr}\nsshd:\n{server.stderr()}"
            assert "logged-in" in r.stdout.splitlines()
        log = server.stderr()
        assert "Accepted publickey for root from 127.0.0.1" in log
        assert "RSA" in log
        assert agent.stop() == 0
    signs = [(e["key"], e["key_type"], e["result"]) for e in events(audited, "agent.sign")]
    assert signs == [("deploy", "rsa", "allowed")]
    assert audited.verify(checkpoint=None).valid


def test_one_key_under_two_names_refuses_the_start(tmp_path: Path) -> None:
    # A sign request names its key by public key: served under two names, the first name's
    # policy rule would decide for the other (outside review). The agent refuses the pair.
    st = make_store(tmp_path, ed25519=(), secrets=())
    with RSAPrivateKey.generate(2048) as key, st.open() as s:
        s.put("a", key)
        s.put("b", key)
    with Agent(st, expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert 'the same signing key is held under two names ("a" and "b"' in agent.stderr()
