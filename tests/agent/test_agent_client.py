"""``keycell.agent``: remote handles with the methods of local handles, thread safety,
reconnection, typed errors."""

from __future__ import annotations

import hmac as std_hmac
import os
import threading
from pathlib import Path

import keycell
import pytest
from agent_support import Agent, make_store
from keycell import Ed25519PublicKey, SecretKey
from keycell.exceptions import (
    AgentError,
    AgentRefusedError,
    AgentUnavailableError,
    InvalidSignature,
    KeycellError,
)


def test_remote_handles_behave_like_local_ones(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    with Agent(st) as agent, agent.client() as c:
        infos = {k.name: k for k in c.keys()}
        assert set(infos) == {"deploy", "mac"}
        assert infos["deploy"].kind == "ed25519"
        assert infos["mac"].kind == "secret"
        key = c.ed25519("deploy")
        pub = key.public_key()
        assert isinstance(pub, Ed25519PublicKey)
        assert pub.public_bytes_raw() == st.ed25519["deploy"]
        sig = key.sign(b"message")
        pub.verify(sig, b"message")
        with pytest.raises(InvalidSignature):
            pub.verify(sig, b"other")
        assert key.protection.backend == "agent"
        assert key.protection.locked
        assert key.protection.dontdump
        assert key.protection.complete
        mac = c.secret("mac")
        assert mac.protection.backend == "agent"
        local = SecretKey.from_buffer(bytearray(st.secrets["mac"]))
        for alg in ("sha256", "sha384", "sha512"):
            tag = mac.hmac(b"data", algorithm=alg)
            assert tag == local.hmac(b"data", alg)
            assert tag == std_hmac.new(st.secrets["mac"], b"data", alg).digest()
            mac.verify_hmac(b"data", tag, algorithm=alg)
            mac.verify_hmac(b"data", tag[:16], algorithm=alg)  # truncated, as local keys
            with pytest.raises(InvalidSignature):
                mac.verify_hmac(b"datA", tag, algorithm=alg)
            with pytest.raises(InvalidSignature):
                mac.verify_hmac(b"data", tag[:15], algorithm=alg)
        local.destroy()
        with pytest.raises(ValueError, match="algorithm"):
            mac.hmac(b"x", algorithm="md5")
        # Wrong kinds and unknown names are refused, typed.
        with pytest.raises(AgentRefusedError):
            c.ed25519("mac")
        with pytest.raises(AgentRefusedError):
            c.secret("nope")
        assert issubclass(AgentRefusedError, AgentError)
        assert issubclass(AgentError, KeycellError)
        assert agent.stop() == 0


def test_the_same_code_takes_a_local_or_a_remote_key(tmp_path: Path) -> None:
    def sign_and_check(key: keycell.Ed25519PrivateKey | keycell.agent.AgentEd25519Key) -> None:
        key.public_key().verify(key.sign(b"abc"), b"abc")

    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st) as agent, agent.client() as c:
        sign_and_check(c.ed25519("deploy"))
        sign_and_check(keycell.Ed25519PrivateKey.generate())
        assert agent.stop() == 0


def test_threads_share_a_client(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    with Agent(st) as agent, agent.client() as c:
        key, mac = c.ed25519("deploy"), c.secret("mac")
        pub = key.public_key()
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for j in range(50):
                    m = f"{i}-{j}".encode()
                    pub.verify(key.sign(m), m)
                    assert mac.hmac(m) == std_hmac.new(st.secrets["mac"], m, "sha256").digest()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert agent.stop() == 0


def test_unavailable_and_reconnect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYCELL_AGENT_SOCK", raising=False)
    with pytest.raises(AgentUnavailableError, match="KEYCELL_AGENT_SOCK"):
        keycell.agent.connect()
    with pytest.raises(AgentUnavailableError):
        keycell.agent.connect(tmp_path / "none.sock").keys()
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    monkeypatch.setenv("KEYCELL_AGENT_SOCK", str(st.dir / "agent.sock"))
    c = keycell.agent.connect()
    try:
        with Agent(st) as agent:
            key = c.ed25519("deploy")
            key.sign(b"1")
            assert agent.stop() == 0
        with pytest.raises(AgentUnavailableError):
            key.sign(b"2")
        with Agent(st) as agent:  # a new agent on the same path: the client reconnects
            key.public_key().verify(key.sign(b"3"), b"3")
            assert agent.stop() == 0
    finally:
        c.close()


def test_a_fork_child_opens_its_own_connection(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st) as agent, agent.client() as c:
        key = c.ed25519("deploy")
        key.sign(b"parent")
        import sys

        old = sys.getswitchinterval()
        sys.setswitchinterval(1000)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                key.public_key().verify(key.sign(b"child"), b"child")
                os._exit(0)
            except BaseException:
                os._exit(1)
        sys.setswitchinterval(old)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        key.sign(b"parent again")
        assert agent.stop() == 0
