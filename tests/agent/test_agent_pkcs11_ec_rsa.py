"""``keycell agent serve --pkcs11-token`` serves the token's ECDSA (P-256, P-384) and RSA
private keys as it serves its Ed25519 ones (SoftHSM2, the ``hsm`` fixture's ``kc-agent``
token): ``ssh-add -L`` lists each under its ``CKA_LABEL`` with the public key
``keycell.pkcs11`` reads for it; a raw sign request gets an ``ecdsa-sha2-nistp256``/
``nistp384`` signature (``mpint r, mpint s``) or an ``rsa-sha2-256``/``rsa-sha2-512`` one
(flags 2 and 4) that pyca verifies, made in the token; a SHA-1 ``ssh-rsa`` request (no
flag) is refused as for a store RSA key; the audit log records the key type and source;
``ssh`` logs in with a token EC key and a token RSA key; a token EC key whose label a store
entry also uses refuses the start.

Every test names its keys with a random suffix (the token lives for the whole session) and
deletes them from the token when it ends."""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from agent_support import Agent, AuditFiles, frame, make_store, recv_reply, string
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from keycell import pkcs11
from pkcs11_support import Hsm
from sshd_support import NEEDS_SSHD, agent_key_line, login, sshd

FAILURE, SIGN_RESPONSE = 5, 14
SHA2_256, SHA2_512 = 2, 4
CURVES = {"P-256": hashes.SHA256, "P-384": hashes.SHA384}


@contextmanager
def token_key(hsm: Hsm, kind: str, arg: str | int) -> Iterator[tuple[str, str]]:
    """A new EC (``arg`` the curve) or RSA (``arg`` the bits) key pair in the agent
    tests' token: its label and OpenSSH public key line (read by ``keycell.pkcs11``);
    deleted from the token on exit."""
    label = f"{kind}-{os.urandom(4).hex()}"
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.agent, pin_file=hsm.pin_file) as t:
        if kind == "ec":
            assert isinstance(arg, str)
            key: pkcs11.Pkcs11ECPrivateKey | pkcs11.Pkcs11RSAPrivateKey = t.generate_ec(
                label=label, curve=arg
            )
        else:
            assert isinstance(arg, int)
            key = t.generate_rsa(label=label, bits=arg)
        line = key.public_key().to_openssh()
        try:
            yield label, line
        finally:
            key.delete_from_token()


def blob_of(line: str) -> bytes:
    return base64.b64decode(line.split()[1])


def sign(agent: Agent, line: str, data: bytes, flags: int = 0) -> bytes:
    """A raw SIGN_REQUEST for the key of the OpenSSH ``line``; the reply."""
    with agent.raw() as s:
        s.sendall(frame(b"\x0d" + string(blob_of(line)) + string(data) + struct.pack(">I", flags)))
        reply = recv_reply(s)
    assert reply is not None, "the agent closed the connection"
    return reply


def take(b: bytes) -> tuple[bytes, bytes]:
    (n,) = struct.unpack(">I", b[:4])
    assert len(b) >= 4 + n
    return b[4 : 4 + n], b[4 + n :]


def parse_signature(reply: bytes) -> tuple[bytes, bytes]:
    """(algorithm name, signature) of a SIGN_RESPONSE."""
    assert reply[0] == SIGN_RESPONSE, reply[:1]
    inner, rest = take(reply[1:])
    assert rest == b""
    name, rest = take(inner)
    sig, rest = take(rest)
    assert rest == b""
    return name, sig


def signs(audited: AuditFiles) -> list[tuple[object, object, object, object]]:
    return [
        (e["key"], e["key_type"], e["key_source"], e["result"])
        for e in audited.events()
        if e["type"] == "agent.sign"
    ]


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_token_ec_keys_are_listed_and_sign_on_the_wire(
    hsm: Hsm, tmp_path: Path, curve: str
) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    kind = f"ec-p{curve[2:]}"
    with token_key(hsm, "ec", curve) as (label, line):
        assert line.startswith(f"ecdsa-sha2-nistp{curve[2:]} ")
        public = load_ssh_public_key(line.encode())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
            assert agent_key_line(agent, label) == f"{line} {label}\n"
            assert f"{label} ({kind}, pkcs11)" in agent.stderr()
            with agent.client() as c:
                keys = {k.name: k for k in c.keys()}
                # The Python client's ECSigner signs with the token key too (DER).
                der = c.ec(label).sign(b"via the client")
            public.verify(der, b"via the client", ec.ECDSA(CURVES[curve]()))
            assert (keys[label].kind, keys[label].source) == (kind, "pkcs11")
            assert keys[label].protection.isolation == "token"
            info_public = keys[label].public_key
            assert info_public is not None
            assert info_public.to_openssh() == line
            name, sig = parse_signature(sign(agent, line, b"data to sign"))
            assert name == f"ecdsa-sha2-nistp{curve[2:]}".encode()
            r, rest = take(sig)
            s, rest = take(rest)
            assert rest == b""
            der = encode_dss_signature(int.from_bytes(r), int.from_bytes(s))
            public.verify(der, b"data to sign", ec.ECDSA(CURVES[curve]()))
            with pytest.raises(InvalidSignature):
                public.verify(der, b"other data", ec.ECDSA(CURVES[curve]()))
            assert agent.stop() == 0
    assert signs(audited) == [(label, kind, "pkcs11", "allowed")] * 2
    assert audited.verify(checkpoint=None).valid


def test_token_rsa_keys_sign_sha2_and_refuse_sha1(hsm: Hsm, tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    with token_key(hsm, "rsa", 2048) as (label, line):
        assert line.startswith("ssh-rsa ")
        public = load_ssh_public_key(line.encode())
        assert isinstance(public, pyca_rsa.RSAPublicKey)
        with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
            assert agent_key_line(agent, label) == f"{line} {label}\n"
            assert f"{label} (rsa, pkcs11)" in agent.stderr()
            with agent.client() as c:
                info = {k.name: k for k in c.keys()}[label]
                assert (info.kind, info.source) == ("rsa", "pkcs11")
                assert info.public_key is not None
                assert info.public_key.to_openssh() == line
                sig = c.rsa(label).sign(b"via the client", padding="pkcs1v15", hash="sha512")
            public.verify(sig, b"via the client", padding.PKCS1v15(), hashes.SHA512())
            for flags, want, hash_ in [
                (SHA2_256, b"rsa-sha2-256", hashes.SHA256()),
                (SHA2_512, b"rsa-sha2-512", hashes.SHA512()),
                (SHA2_256 | SHA2_512, b"rsa-sha2-256", hashes.SHA256()),
            ]:
                name, sig = parse_signature(sign(agent, line, b"data to sign", flags))
                assert name == want
                assert len(sig) == 256
                public.verify(sig, b"data to sign", padding.PKCS1v15(), hash_)
                with pytest.raises(InvalidSignature):
                    public.verify(sig, b"other data", padding.PKCS1v15(), hash_)
            # No flag asks for a SHA-1 ssh-rsa signature: refused, as for a store key.
            for flags in (0, 1, 8):
                assert sign(agent, line, b"data to sign", flags) == bytes([FAILURE])
            agent.wait_log("SHA-1 ssh-rsa signatures are refused")
            assert agent.stop() == 0
    allowed, refused = (label, "rsa", "pkcs11", "allowed"), (label, "rsa", "pkcs11", "refused")
    assert signs(audited) == [allowed] * 4 + [refused] * 3
    assert audited.verify(checkpoint=None).valid


@pytest.mark.parametrize(("kind", "arg"), [("ec", "P-256"), ("ec", "P-384"), ("rsa", 2048)])
@NEEDS_SSHD[0]
@NEEDS_SSHD[1]
def test_ssh_login_with_a_token_ec_or_rsa_key(
    hsm: Hsm, tmp_path: Path, kind: str, arg: str | int
) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    with token_key(hsm, kind, arg) as (label, line):
        with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
            authorized = agent_key_line(agent, label)
            assert authorized == f"{line} {label}\n"
            with sshd(tmp_path / "sshd", authorized) as server:
                r = login(agent, server)
                assert r.returncode == 0, f"{r.stderr}\nsshd:\n{server.stderr()}"
                assert "logged-in" in r.stdout.splitlines()
            assert "Accepted publickey for root from 127.0.0.1" in server.stderr()
            assert ("ECDSA" if kind == "ec" else "RSA") in server.stderr()
            assert agent.stop() == 0
    key_type = f"ec-p{str(arg)[2:]}" if kind == "ec" else "rsa"
    assert signs(audited) == [(label, key_type, "pkcs11", "allowed")]


@pytest.mark.parametrize(("kind", "arg"), [("ec", "P-256"), ("rsa", 2048)])
def test_a_token_ec_or_rsa_label_also_in_the_store_refuses_the_start(
    hsm: Hsm, tmp_path: Path, kind: str, arg: str | int
) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    with token_key(hsm, kind, arg) as (label, _):
        st.add_secret(label)
        with Agent(st, *hsm.agent_args(), expect_start=False) as agent:
            assert agent.wait_exit() == 1
            assert f'the key name "{label}" is used twice' in agent.stderr()
            assert not agent.socket.exists()


def test_token_keys_the_agent_cannot_serve_are_skipped(hsm: Hsm, tmp_path: Path) -> None:
    # A P-521 key and a 1024-bit RSA key (sensitive, never extractable: keys the agent
    # would serve if it could) made by pkcs11-tool: the agent has no operation for them,
    # so it starts, lists and serves the token's other keys and leaves these out.
    unserved = {f"p521-{os.urandom(4).hex()}": "EC:secp521r1",
                f"rsa1024-{os.urandom(4).hex()}": "rsa:1024"}  # fmt: skip
    st = make_store(tmp_path, ed25519=(), secrets=())
    try:
        for label, key_type in unserved.items():
            hsm.tool("--keypairgen", "--key-type", key_type, "--label", label,
                     "--usage-sign", token=hsm.agent)  # fmt: skip
        with token_key(hsm, "ec", "P-256") as (label, line):
            with Agent(st, *hsm.agent_args(), serve_store=False) as agent:
                assert agent_key_line(agent, label) == f"{line} {label}\n"
                r = agent.ssh("ssh-add", "-L")
                assert r.returncode == 0, r.stderr
                with agent.client() as c:
                    names = {k.name for k in c.keys()}
                assert label in names
                for other in unserved:
                    assert other not in r.stdout
                    assert other not in names
                assert agent.stop() == 0
    finally:
        for other in unserved:
            for kind in ("privkey", "pubkey"):
                hsm.tool("--delete-object", "--type", kind, "--label", other,
                         token=hsm.agent, check=False)  # fmt: skip
