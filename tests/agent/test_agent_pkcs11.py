"""``keycell agent serve`` with the keys of a PKCS#11 token (SoftHSM2, the ``hsm``
fixture's ``kc-agent`` token), next to or instead of a key store's: OpenSSH's programs
(``ssh-add -L``, ``ssh-keygen -Y sign``/``-Y verify``, an ``ssh`` login against ``sshd``)
and ``pkcs11-tool`` are the independent peers; the token's own HMAC (``keycell.pkcs11``)
is the reference for the agent's. Start-up failures (PIN, token, module, duplicate
names), the policy and the audit log on token keys, SIGHUP re-reading the token, a key
deleted behind the agent's back, concurrent signers, and a memory scan for the PIN.

Every test names its keys with a random suffix: the token lives for the whole session."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from agent_support import (
    Agent,
    AuditFiles,
    Signer,
    frame,
    make_store,
    openssh_line,
    policy_args,
    recv_reply,
    ssh_blob,
    string,
    write_policy,
)
from keycell import Ed25519PublicKey, pkcs11
from keycell.exceptions import AgentRefusedError, InvalidSignature
from memscan import scan_process, summarize
from pkcs11_support import Hsm
from sshd_support import NEEDS_SSHD, agent_key_line, fingerprint, login, sshd


def unique(prefix: str) -> str:
    """A key label no other test uses."""
    return f"{prefix}-{os.urandom(4).hex()}"


@contextmanager
def agent_token(hsm: Hsm) -> Iterator[pkcs11.Token]:
    """The agent tests' token, opened in this process (the reference side)."""
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.agent, pin_file=hsm.pin_file) as t:
        yield t


def token_ed25519(hsm: Hsm) -> dict[str, bytes]:
    """Label -> raw public key of every Ed25519 private key on the token, read by
    ``keycell.pkcs11``."""
    with agent_token(hsm) as t:
        labels = [
            o["label"]
            for o in t.objects()
            if o["class"] == "private" and o["key_type"] == "ec-edwards"
        ]
        return {
            label: t.ed25519_private_key(label=label).public_key().public_bytes_raw()
            for label in labels
        }


def new_ed25519(hsm: Hsm, prefix: str = "tk") -> tuple[str, bytes]:
    """A new Ed25519 key pair in the token: its label and raw public key."""
    label = unique(prefix)
    with agent_token(hsm) as t:
        return label, t.generate_ed25519(label=label).public_key().public_bytes_raw()


def new_secret(hsm: Hsm, prefix: str = "tmac", length: int = 32) -> str:
    """A new generic secret of ``length`` bytes in the token; its label."""
    label = unique(prefix)
    with agent_token(hsm) as t:
        t.generate_secret(label, length)
    return label


def delete_private(hsm: Hsm, label: str) -> None:
    """Delete an Ed25519 private key with ``pkcs11-tool`` (another process)."""
    hsm.tool("--delete-object", "--type", "privkey", "--label", label, token=hsm.agent)


def identities(agent: Agent) -> list[str]:
    """``ssh-add -L``, one line per key."""
    r = agent.ssh("ssh-add", "-L")
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.splitlines())


def reload(agent: Agent) -> str:
    """SIGHUP, and wait for the agent to log the keys' reload (or its failure); that
    line."""

    def lines() -> list[str]:
        return [
            line
            for line in agent.stderr().splitlines()
            if "reloaded keys:" in line or "reload failed, keeping the old keys" in line
        ]

    before = len(lines())
    agent.signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while len(lines()) <= before:
        assert time.monotonic() < deadline, agent.stderr()
        assert agent.proc.poll() is None, agent.stderr()
        time.sleep(0.02)
    return lines()[before]


def sign_raw(agent: Agent, public: bytes, data: bytes = b"data") -> bytes:
    """A raw SIGN_REQUEST for the Ed25519 key ``public``; the reply (0x0e SIGN_RESPONSE,
    0x05 FAILURE)."""
    with agent.raw() as s:
        s.sendall(frame(b"\x0d" + string(ssh_blob(public)) + string(data) + b"\0\0\0\0"))
        reply = recv_reply(s)
    assert reply is not None, "the agent closed the connection"
    return reply


def test_ssh_add_lists_the_token_keys_alone_and_with_the_store(hsm: Hsm, tmp_path: Path) -> None:
    label, public = new_ed25519(hsm)
    mac = new_secret(hsm)
    on_token = token_ed25519(hsm)
    assert on_token[label] == public
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    with Agent(st, *hsm.agent_args(), serve_store=False) as agent:
        assert identities(agent) == sorted(openssh_line(p, n) for n, p in on_token.items())
        with agent.client() as c:
            keys = {k.name: k for k in c.keys()}
        assert "deploy" not in keys
        assert keys[label].kind == "ed25519"
        assert keys[label].source == "pkcs11"
        assert keys[label].public_key is not None
        assert keys[label].public_key.public_bytes_raw() == public
        assert keys[mac].kind == "secret"
        assert keys[mac].source == "pkcs11"
        assert keys[mac].protection.agent_backend == "pkcs11"
        assert keys[mac].protection.isolation == "token"
        assert f"{label} (ed25519, pkcs11)" in agent.stderr()
        assert agent.stop() == 0
    # pkcs11-tool (OpenSC) reads the same public key from the token.
    pem = hsm.tool("--read-object", "--type", "pubkey", "--label", label, token=hsm.agent)
    assert Ed25519PublicKey.from_pem(pem.stdout).public_bytes_raw() == public
    with Agent(st, *hsm.agent_args()) as agent:
        both = {**on_token, "deploy": st.ed25519["deploy"]}
        assert identities(agent) == sorted(openssh_line(p, n) for n, p in both.items())
        with agent.client() as c:
            keys = {k.name: k for k in c.keys()}
        assert keys["deploy"].source == "store"
        assert keys["mac"].source == "store"
        assert keys[label].source == "pkcs11"
        assert agent.stop() == 0
    delete_private(hsm, label)


def test_ssh_keygen_signs_with_a_token_key_through_the_agent(hsm: Hsm, tmp_path: Path) -> None:
    label, public = new_ed25519(hsm)
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
        pub = st.dir / "k.pub"
        pub.write_text(openssh_line(public, label) + "\n")
        msg = st.dir / "msg"
        msg.write_bytes(b"release 1.2.3\n")
        r = agent.ssh("ssh-keygen", "-Y", "sign", "-f", str(pub), "-n", "file", str(msg))
        assert r.returncode == 0, r.stderr
        assert agent.stop() == 0
    signers = st.dir / "allowed_signers"
    signers.write_text(f"me@example {openssh_line(public)}\n")

    def verify(data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "me@example",
             "-n", "file", "-s", f"{msg}.sig"],
            input=data, capture_output=True, timeout=60, check=False,
        )  # fmt: skip

    good = verify(b"release 1.2.3\n")
    assert good.returncode == 0, good.stderr
    assert verify(b"release 1.2.4\n").returncode != 0
    signs = [e for e in audited.events() if e["type"] == "agent.sign"]
    assert [(e["key"], e["key_source"], e["result"]) for e in signs] == [
        (label, "pkcs11", "allowed")
    ]
    assert audited.verify(checkpoint=None).valid
    delete_private(hsm, label)


def test_hmac_through_the_agent_is_the_token_hmac(hsm: Hsm, tmp_path: Path) -> None:
    mac = new_secret(hsm, length=64)  # SoftHSM2 wants a key of the digest's size at least
    short = new_secret(hsm, "short", 32)
    st = make_store(tmp_path, ed25519=(), secrets=())
    with Agent(st, *hsm.agent_args(), serve_store=False) as agent:
        with agent.client() as c, agent_token(hsm) as t:
            remote = c.secret(mac)
            local = t.secret_key(mac)
            for alg in ("sha256", "sha384", "sha512"):
                for data in (b"", b"payload", os.urandom(5000)):
                    tag = remote.hmac(data, algorithm=alg)
                    assert tag == local.hmac(data, algorithm=alg)
                    remote.verify_hmac(data, tag, algorithm=alg)
                    with pytest.raises(InvalidSignature):
                        remote.verify_hmac(data + b"x", tag, algorithm=alg)
            # The HMAC of the key store master challenge would be a store's root key if this
            # secret were a store master: the agent never computes it.
            with pytest.raises(AgentRefusedError):
                remote.hmac(b"keycell-store v1 pkcs11 master\0")
            # A token error (SoftHSM2: CKR_KEY_SIZE_RANGE) is a refusal; the agent goes on.
            with pytest.raises(AgentRefusedError):
                c.secret(short).hmac(b"data", algorithm="sha512")
            assert c.secret(short).hmac(b"data") == t.secret_key(short).hmac(b"data")
        # Refusals reach the log through the drain thread, after the reply: wait for them.
        agent.wait_log("the data is the key store master challenge")
        agent.wait_log("CKR_KEY_SIZE_RANGE")
        assert agent.stop() == 0


@NEEDS_SSHD[0]
@NEEDS_SSHD[1]
def test_ssh_login_with_a_token_key(hsm: Hsm, tmp_path: Path) -> None:
    label, public = new_ed25519(hsm, "login")
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
        authorized = agent_key_line(agent, label)
        assert authorized == openssh_line(public, label) + "\n"
        with sshd(tmp_path / "sshd", authorized) as server:
            r = login(agent, server)
            assert r.returncode == 0, f"{r.stderr}\nsshd:\n{server.stderr()}"
            assert "logged-in" in r.stdout.splitlines()
        assert fingerprint(public) in server.stderr()
        assert agent.stop() == 0
    signs = [e for e in audited.events() if e["type"] == "agent.sign"]
    assert [(e["key"], e["key_source"], e["result"]) for e in signs] == [
        (label, "pkcs11", "allowed")
    ]
    delete_private(hsm, label)


def _pin_file(d: Path, content: bytes, mode: int = 0o600) -> Path:
    p = d / f"pin-{os.urandom(3).hex()}"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    os.chmod(p, mode)
    return p


@pytest.mark.parametrize(
    "case", ["wrong-pin", "missing-pin-file", "readable-pin-file", "unknown-token", "bad-module"]
)
@pytest.mark.parametrize("detach", [False, True])
def test_the_agent_refuses_to_start_on_a_token_error(
    hsm: Hsm, tmp_path: Path, case: str, detach: bool
) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    module, token, pin_file = hsm.module, hsm.agent, str(hsm.pin_file)
    expected = {
        "wrong-pin": "CKR_PIN_INCORRECT",
        "missing-pin-file": "pin-nowhere",
        "readable-pin-file": "group or others",
        "unknown-token": 'no token with label "kc-nowhere"',
        "bad-module": "/nonexistent/libpkcs11.so",
    }[case]
    if case == "wrong-pin":
        pin_file = str(_pin_file(st.dir, b"0000-wrong-pin\n"))
    elif case == "missing-pin-file":
        pin_file = str(st.dir / "pin-nowhere")
    elif case == "readable-pin-file":
        pin_file = str(_pin_file(st.dir, hsm.pin.encode() + b"\n", 0o644))
    elif case == "unknown-token":
        token = "kc-nowhere"
    else:
        module = "/nonexistent/libpkcs11.so"
    args = ["--pkcs11-module", module, "--pkcs11-token", token, "--pkcs11-pin-file", pin_file]
    if detach:
        args.append("--detach")
    with Agent(st, *args, expect_start=False) as agent:
        assert agent.wait_exit() == 1
        err = agent.stderr()
        assert expected in err, err
        assert "keycell: error:" in err
        assert "serving on" not in err
        assert hsm.pin not in err
        assert "wrong-pin" not in err.replace("0000-wrong-pin", "")
        assert "0000-wrong-pin" not in err
        assert not agent.socket.exists()
        assert agent.proc.stdout is not None
        assert agent.proc.stdout.read() == b""  # no SSH_AUTH_SOCK for a failed --detach


def test_usage_errors(hsm: Hsm, tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=())
    pin = str(hsm.pin_file)
    cases = {
        "give --store STORE, a token": (),
        "a token needs --pkcs11-pin-file": ("--pkcs11-token", hsm.agent),
        "--passphrase-file and --master-key-file need --store": (
            "--master-key-file", str(st.master), "--pkcs11-token", hsm.agent,
            "--pkcs11-pin-file", pin,
        ),
    }  # fmt: skip
    for message, args in cases.items():
        with Agent(st, *args, serve_store=False, expect_start=False) as agent:
            assert agent.wait_exit() == 2
            assert message in agent.stderr()


def test_a_name_in_the_store_and_the_token_refuses_the_start(hsm: Hsm, tmp_path: Path) -> None:
    label, _ = new_ed25519(hsm, "dup")
    st = make_store(tmp_path, ed25519=(), secrets=())
    st.add_secret(label)
    with Agent(st, *hsm.agent_args(), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert f'the key name "{label}" is used twice' in agent.stderr()
        assert not agent.socket.exists()
    delete_private(hsm, label)


def test_policy_rules_apply_to_token_keys_by_name(hsm: Hsm, tmp_path: Path) -> None:
    free, free_pub = new_ed25519(hsm, "free")
    barred, barred_pub = new_ed25519(hsm, "barred")
    mac = new_secret(hsm)
    st = make_store(tmp_path, ed25519=(), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(
        st,
        {
            "keys": {
                free: {"operations": ["sign"]},
                barred: {"uids": [os.geteuid() + 1], "operations": ["sign"]},
                mac: {"operations": ["verify-hmac"]},
            }
        },
    )
    signer.sign(policy)
    audited = AuditFiles(st.dir)
    args = (*hsm.agent_args(), *policy_args(policy, signer), *audited.args())
    with Agent(st, *args, serve_store=False) as agent:
        listed = identities(agent)
        assert openssh_line(free_pub, free) in listed
        assert openssh_line(barred_pub, barred) not in listed
        assert sign_raw(agent, barred_pub) == b"\x05"
        assert sign_raw(agent, free_pub)[:1] == b"\x0e"
        with agent.client() as c, pytest.raises(AgentRefusedError):
            c.secret(mac).hmac(b"data")
        assert agent.stop() == 0
    events = [
        (e["type"], e["key"], e["key_source"], e["result"])
        for e in audited.events()
        if e["key"] is not None
    ]
    assert events == [
        ("agent.sign", barred, "pkcs11", "refused"),
        ("agent.sign", free, "pkcs11", "allowed"),
        ("agent.hmac", mac, "pkcs11", "refused"),
    ]
    assert audited.verify(checkpoint=None).valid
    for label in (free, barred):
        delete_private(hsm, label)


def test_sighup_rereads_the_token(hsm: Hsm, tmp_path: Path) -> None:
    kept, kept_pub = new_ed25519(hsm, "kept")
    st = make_store(tmp_path, ed25519=(), secrets=())
    with Agent(st, *hsm.agent_args(), serve_store=False) as agent:
        assert openssh_line(kept_pub, kept) in identities(agent)
        added, added_pub = new_ed25519(hsm, "added")
        assert f"{added} (ed25519, pkcs11)" in reload(agent)
        assert openssh_line(added_pub, added) in identities(agent)
        delete_private(hsm, added)
        assert added not in reload(agent)
        assert openssh_line(added_pub, added) not in identities(agent)
        assert sign_raw(agent, added_pub) == b"\x05"  # no such key
        assert sign_raw(agent, kept_pub)[:1] == b"\x0e"
        # A reload that fails (two token keys named alike) keeps the keys it had.
        with agent_token(hsm) as t:
            t.generate_secret(kept, 32)
        line = reload(agent)
        assert "token reload failed, keeping the old keys" in line
        assert f'the key name "{kept}" is used twice' in line
        assert sign_raw(agent, kept_pub)[:1] == b"\x0e"
        assert agent.stop() == 0
        assert "stopped: keys wiped" in agent.stderr()
    hsm.tool("--delete-object", "--type", "secrkey", "--label", kept, token=hsm.agent)
    delete_private(hsm, kept)


def test_a_key_deleted_behind_the_agent_fails_cleanly(hsm: Hsm, tmp_path: Path) -> None:
    gone, gone_pub = new_ed25519(hsm, "gone")
    other, other_pub = new_ed25519(hsm, "other")
    st = make_store(tmp_path, ed25519=(), secrets=())
    audited = AuditFiles(st.dir)
    with Agent(st, *hsm.agent_args(), *audited.args(), serve_store=False) as agent:
        delete_private(hsm, gone)
        assert sign_raw(agent, gone_pub) == b"\x05"
        for _ in range(3):
            assert sign_raw(agent, other_pub)[:1] == b"\x0e"
        assert agent.proc.poll() is None
        assert agent.stop() == 0
    signs = [e for e in audited.events() if e["type"] == "agent.sign"]
    assert (signs[0]["key"], signs[0]["key_source"], signs[0]["result"]) == (
        gone, "pkcs11", "refused"
    )  # fmt: skip
    assert "token error" in signs[0]["reason"]
    assert "CKR_OBJECT_HANDLE_INVALID" in signs[0]["reason"]
    assert [e["result"] for e in signs[1:]] == ["allowed"] * 3
    delete_private(hsm, other)


def test_concurrent_signers_with_a_token_key(hsm: Hsm, tmp_path: Path) -> None:
    label, public = new_ed25519(hsm, "busy")
    st = make_store(tmp_path, ed25519=(), secrets=())
    vk = Ed25519PublicKey.from_public_bytes(public)
    failures: list[BaseException] = []

    def signer(n: int) -> None:
        try:
            with agent.client() as c:
                key = c.ed25519(label)
                for i in range(50):
                    msg = b"client %d message %d" % (n, i)
                    vk.verify(key.sign(msg), msg)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    with Agent(st, *hsm.agent_args(), serve_store=False) as agent:
        threads = [threading.Thread(target=signer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert agent.stop() == 0
    delete_private(hsm, label)


@pytest.mark.slow
def test_the_pin_is_only_in_locked_memory_of_the_agent(hsm: Hsm, tmp_path: Path) -> None:
    label, _ = new_ed25519(hsm, "scan")
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st, *hsm.agent_args()) as agent:
        with agent.client() as c:
            key = c.ed25519(label)
            key.public_key().verify(key.sign(b"m"), b"m")
        seed = st.seeds["deploy"]
        hits = scan_process(agent.pid, {"pin": hsm.pin.encode(), "seed": seed})
        assert hits["seed"], summarize(hits)  # the scan finds what is there
        assert hits["pin"], summarize(hits)  # kept (guarded) while logged in
        bad = [h for hs in hits.values() for h in hs if not (h.locked and h.dontdump)]
        assert bad == [], summarize(hits)
        assert agent.stop() == 0
    delete_private(hsm, label)
