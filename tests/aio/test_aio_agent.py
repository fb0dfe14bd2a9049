"""``keycell.aio``: the asyncio agent client (same wire code as ``keycell.agent``),
cancellation that never leaves half a reply on a reused connection, typed errors."""

from __future__ import annotations

import asyncio
import hmac as std_hmac
import struct
from pathlib import Path

import pytest
from agent_support import Agent, make_store
from keycell import ECPrivateKey, RSAPrivateKey, aio
from keycell.exceptions import (
    AgentProtocolError,
    AgentRefusedError,
    AgentUnavailableError,
    InvalidSignature,
)


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def test_async_handles_match_the_sync_client(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    ec = ECPrivateKey.generate("P-256")
    rsa = RSAPrivateKey.generate(2048)
    with st.open() as s:
        s.put("p256", ec)
        s.put("rsa", rsa)

    async def main() -> None:
        async with await aio.connect(agent.socket) as c:
            infos = {k.name: k for k in await c.keys()}
            assert set(infos) == {"deploy", "mac", "p256", "rsa"}
            assert [k.name for k in await c.keys()] == [k.name for k in sync.keys()]
            ids = await c.identities()
            assert ids == sync.identities()
            key = await c.ed25519("deploy")
            assert key.public_key().public_bytes_raw() == st.ed25519["deploy"]
            sig = await key.sign(b"message")
            key.public_key().verify(sig, b"message")
            assert sig == sync.ed25519("deploy").sign(b"message")  # Ed25519: deterministic
            assert key.protection.backend == "agent"
            eck = await c.ec("p256")
            ec.public_key().verify(await eck.sign(b"m"), b"m")
            raw = await eck.sign(b"m", encoding="raw")
            assert len(raw) == 64
            with pytest.raises(ValueError, match="encoding"):
                await eck.sign(b"m", encoding="pem")
            rk = await c.rsa("rsa")
            assert rk.key_size == 2048
            for h in ("sha256", "sha512"):
                rsig = await rk.sign(b"m", padding="pkcs1v15", hash=h)
                rsa.public_key().verify(rsig, b"m", padding="pkcs1v15", hash=h)
                # PKCS#1 v1.5 is deterministic: the same bytes as the sync client's.
                assert rsig == sync.rsa("rsa").sign(b"m", padding="pkcs1v15", hash=h)
            with pytest.raises(ValueError, match="pkcs1v15"):
                await rk.sign(b"m")
            with pytest.raises(ValueError, match="sha256"):
                await rk.sign(b"m", padding="pkcs1v15", hash="sha384")
            mac = await c.secret("mac")
            for alg in ("sha256", "sha384", "sha512"):
                tag = await mac.hmac(b"data", algorithm=alg)
                assert tag == std_hmac.new(st.secrets["mac"], b"data", alg).digest()
                await mac.verify_hmac(b"data", tag, algorithm=alg)
                with pytest.raises(InvalidSignature):
                    await mac.verify_hmac(b"datA", tag, algorithm=alg)
            with pytest.raises(ValueError, match="algorithm"):
                await mac.hmac(b"x", algorithm="md5")
            with pytest.raises(AgentRefusedError, match="not ed25519"):
                await c.ed25519("mac")
            with pytest.raises(AgentRefusedError, match="not an EC key"):
                await c.ec("deploy")
            with pytest.raises(AgentRefusedError, match="no secret key 'nope'"):
                await c.secret("nope")
            with pytest.raises(TypeError):
                str(key)
            assert "AsyncAgentEd25519Key 'deploy'" in repr(key)
            # Concurrent requests on one connection: each gets its own reply.
            msgs = [b"m%d" % i for i in range(50)]
            sigs = await asyncio.gather(*(key.sign(m) for m in msgs))
            for m, s_ in zip(msgs, sigs, strict=True):
                key.public_key().verify(s_, m)

    with Agent(st) as agent, agent.client() as sync:
        asyncio.run(main())
    ec.destroy()
    rsa.destroy()


def test_connect_errors_are_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEYCELL_AGENT_SOCK", raising=False)
    with pytest.raises(AgentUnavailableError, match="KEYCELL_AGENT_SOCK"):
        asyncio.run(aio.connect())
    with pytest.raises(AgentUnavailableError, match="cannot connect"):
        asyncio.run(aio.connect(tmp_path / "missing.sock"))


class FakeAgent:
    """An agent on a Unix socket that answers the first connection's request with half a
    reply (then waits), and every later connection's with an empty key list."""

    def __init__(self, path: Path, *, answer: bool = True) -> None:
        self.path = path
        self.answer = answer
        self.connections = 0
        self.half_sent = asyncio.Event()
        self.first_closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self.handle, path=str(self.path))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        try:
            while True:
                (n,) = struct.unpack(">I", await reader.readexactly(4))
                await reader.readexactly(n)
                if first or not self.answer:
                    writer.write(struct.pack(">I", 40) + b"\x1d" + b"\0\0\0")
                    await writer.drain()
                    self.half_sent.set()
                    await reader.read()  # until the client closes
                    self.first_closed.set()
                    return
                body = b"\x1d" + _string(b"list@keycell") + struct.pack(">I", 0)
                writer.write(struct.pack(">I", len(body)) + body)
                await writer.drain()
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


def test_a_cancelled_request_closes_its_connection(tmp_path: Path) -> None:
    async def main() -> None:
        fake = FakeAgent(tmp_path / "fake.sock")
        await fake.start()
        c = await aio.connect(fake.path)
        task = asyncio.create_task(c.keys())
        await asyncio.wait_for(fake.half_sent.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The half-read connection was closed, never reused: the agent sees it end, and
        # the next request runs on a new connection and gets its own (whole) reply.
        await asyncio.wait_for(fake.first_closed.wait(), 30)
        assert await c.keys() == []
        assert fake.connections == 2
        c.close()
        assert fake.server is not None
        fake.server.close()

    asyncio.run(main())


def test_a_reply_cut_short_or_late_is_typed_and_drops_the_connection(tmp_path: Path) -> None:
    async def main() -> None:
        fake = FakeAgent(tmp_path / "fake.sock", answer=False)
        await fake.start()
        c = await aio.connect(fake.path, timeout=0.5)
        with pytest.raises(AgentUnavailableError, match="did not answer"):
            await c.keys()  # half a reply, then nothing: the timeout
        assert c._streams is None
        c.close()
        assert fake.server is not None
        fake.server.close()

        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)
            writer.write(struct.pack(">I", 40) + b"\x1d")
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(cut, path=str(tmp_path / "cut.sock"))
        c2 = await aio.connect(tmp_path / "cut.sock")
        with pytest.raises(AgentProtocolError, match="middle of a reply"):
            await c2.keys()
        assert c2._streams is None
        server.close()

        async def invalid(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)
            writer.write(struct.pack(">I", 1 << 30))
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(invalid, path=str(tmp_path / "bad.sock"))
        c3 = await aio.connect(tmp_path / "bad.sock")
        with pytest.raises(AgentProtocolError, match="invalid length"):
            await c3.keys()
        assert c3._streams is None
        server.close()

    asyncio.run(main())


def test_reconnects_once_after_the_agent_closed_the_connection(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())

    async def main() -> None:
        c = await aio.connect(agent.socket)
        key = await c.ed25519("deploy")
        assert c._streams is not None
        # The agent side goes away (as an idle timeout would): the next request reconnects.
        c._streams[1].transport.abort()
        await asyncio.sleep(0)
        sig = await key.sign(b"after")
        key.public_key().verify(sig, b"after")
        c.close()

    with Agent(st) as agent:
        asyncio.run(main())
