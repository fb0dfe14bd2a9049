"""Framing of ``keycell agent``: empty, oversized, truncated and malformed frames close the
connection (and are logged) while the agent keeps serving everyone else; a client that
sends half a frame stalls nobody and is dropped after the frame timeout; unknown message
types and extensions get ``SSH_AGENT_FAILURE`` on a connection that stays open."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from agent_support import Agent, closed_by_peer, frame, make_store, recv_reply, ssh_blob, string

FAILURE, IDENTITIES_ANSWER, SIGN_RESPONSE = 5, 12, 14


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    a = Agent(st, "--frame-timeout", "1")
    yield a  # type: ignore[misc]
    assert a.stop() == 0
    a.__exit__()


def sign_request(agent: Agent, data: bytes = b"msg") -> bytes:
    blob = ssh_blob(agent.store.ed25519["deploy"])
    return frame(bytes([13]) + string(blob) + string(data) + b"\0\0\0\0")


def works(agent: Agent) -> bool:
    with agent.raw() as s:
        s.sendall(sign_request(agent))
        reply = recv_reply(s)
        return reply is not None and reply[0] == SIGN_RESPONSE


@pytest.mark.parametrize(
    "data",
    [
        b"\0\0\0\0",  # empty message
        struct.pack(">I", 256 * 1024 + 1) + b"\x0b",  # over the maximum message size
        b"\xff\xff\xff\xff",  # 4 GiB
        frame(b"\x0b\x00"),  # REQUEST_IDENTITIES with a trailing byte
        frame(b"\x0d" + struct.pack(">I", 1000) + b"short"),  # string beyond the message
        frame(b"\x0d" + string(b"blob")),  # SIGN_REQUEST without data and flags
        frame(b"\x1b" + string(b"hmac@keycell") + string(b"mac") + string(b"md5")),
        frame(b"\x1b" + string(b"\xff\xfe")),  # extension name not UTF-8
    ],
    ids=["empty", "oversized", "huge", "trailing", "string-overrun", "truncated-sign",
         "bad-extension", "non-utf8-name"],
)
def test_malformed_frames_close_the_connection(agent: Agent, data: bytes) -> None:
    with agent.raw() as bystander, agent.raw() as bad:
        bad.sendall(data)
        assert closed_by_peer(bad)
        # The bystander's connection was not affected, and new ones work.
        bystander.sendall(frame(b"\x0b"))
        reply = recv_reply(bystander)
        assert reply is not None
        assert reply[0] == IDENTITIES_ANSWER
    assert works(agent)
    agent.wait_log("frame by uid 0")
    assert "closed" in agent.stderr()


def test_unknown_requests_fail_but_keep_the_connection(agent: Agent) -> None:
    with agent.raw() as s:
        for msg in (b"\x01", b"\x09", b"\xc8xyz", b"\x1b" + string(b"session-bind@openssh.com")):
            s.sendall(frame(msg))
            assert recv_reply(s) == bytes([FAILURE])
        s.sendall(sign_request(agent))
        reply = recv_reply(s)
        assert reply is not None
        assert reply[0] == SIGN_RESPONSE


def test_a_slow_client_stalls_nobody(agent: Agent) -> None:
    with agent.raw() as slow:
        full = sign_request(agent)
        slow.sendall(full[: len(full) // 2])
        # While the slow client holds half a frame, others are served at once.
        for _ in range(20):
            assert works(agent)
        # The slow client is dropped once its frame is overdue (--frame-timeout 1).
        slow.settimeout(60)
        assert closed_by_peer(slow)
    agent.wait_log("frame not completed in time")


def test_an_idle_connection_stays_open(agent: Agent) -> None:
    with agent.raw() as idle:
        time.sleep(2.5)  # longer than the frame timeout, but no frame was started
        idle.sendall(frame(b"\x0b"))
        reply = recv_reply(idle)
        assert reply is not None
        assert reply[0] == IDENTITIES_ANSWER


def test_the_connection_cap(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st, "--max-connections", "2") as agent:
        a, b = agent.raw(), agent.raw()
        for s in (a, b):
            s.sendall(frame(b"\x0b"))
            assert recv_reply(s) is not None
        c = agent.raw()
        assert closed_by_peer(c)
        a.close()
        # A slot frees once the agent notices a's end; then new connections are served.
        for _ in range(600):
            time.sleep(0.05)
            with agent.raw() as d:
                try:
                    d.sendall(frame(b"\x0b"))
                except (BrokenPipeError, ConnectionResetError):
                    continue
                if recv_reply(d) is not None:
                    break
        else:
            raise AssertionError("no slot was freed")
        b.close()
        c.close()
        assert agent.stop() == 0
        assert "refused: too many connections" in agent.stderr()


def test_query_lists_the_extensions(agent: Agent) -> None:
    with agent.raw() as s:
        s.sendall(frame(b"\x1b" + string(b"query")))
        reply = recv_reply(s)
        assert reply is not None
        assert reply[0] == 29
        body = reply[1:]
        names = []
        while body:
            (n,) = struct.unpack(">I", body[:4])
            names.append(body[4 : 4 + n])
            body = body[4 + n :]
        assert names == [b"query", b"query", b"list@keycell", b"hmac@keycell",
                         b"verify-hmac@keycell"]  # fmt: skip
