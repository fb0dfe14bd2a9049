"""Life cycle of ``keycell agent serve``: the socket (mode, directory checks, an existing
path), SIGTERM/SIGINT (every key wiped, socket removed, exit 0), SIGHUP (store reloaded),
``--detach``, and failures at start that leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from agent_support import Agent, frame, make_store, openssh_line, recv_reply
from support import run_cli


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_remove_the_socket_and_exit_0(tmp_path: Path, sig: int) -> None:
    st = make_store(tmp_path)
    with Agent(st) as agent:
        assert agent.socket.exists()
        assert agent.socket.stat().st_mode & 0o777 == 0o600
        assert agent.ssh("ssh-add", "-L").returncode == 0
        with agent.raw() as idle:  # an open connection does not hold up the stop
            # Served once first, so the agent has accepted it: a connection still in the
            # listen backlog when the socket closes is reset instead (seen under load).
            idle.sendall(frame(b"\x0b"))
            assert recv_reply(idle) is not None
            agent.signal(sig)
            assert agent.wait_exit() == 0
            assert idle.recv(1) == b""
        assert not agent.socket.exists()
        assert "stopped: keys wiped, socket removed" in agent.stderr()


def test_a_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    st = make_store(tmp_path)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    agent = Agent(st, socket_path=open_dir / "a.sock", expect_start=False)
    with agent:
        assert agent.wait_exit() == 1
        assert "writable by group or others" in agent.stderr()
        assert not (open_dir / "a.sock").exists()


def test_an_existing_path_is_refused(tmp_path: Path) -> None:
    st = make_store(tmp_path)
    taken = st.dir / "agent.sock"
    taken.write_text("not a socket")
    with Agent(st, expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "exists" in agent.stderr()
        assert taken.read_text() == "not a socket"


def test_a_wrong_master_fails_before_the_socket_exists(tmp_path: Path) -> None:
    st = make_store(tmp_path)
    st.master.write_bytes(os.urandom(32))
    with Agent(st, expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "wrong master key" in agent.stderr()
        assert not agent.socket.exists()


def test_sighup_reloads_the_store(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st) as agent:
        new = st.add_ed25519("added")
        with st.open() as s:
            s.delete("deploy")
        agent.signal(signal.SIGHUP)
        agent.wait_log("reloaded keys: added")
        listed = agent.ssh("ssh-add", "-L").stdout.splitlines()
        assert listed == [openssh_line(new, "added")]
        # A store that no longer opens keeps the old keys.
        st.path.write_bytes(b"garbage")
        agent.signal(signal.SIGHUP)
        agent.wait_log("store reload failed, keeping the old keys")
        assert agent.ssh("ssh-add", "-L").stdout.splitlines() == [openssh_line(new, "added")]
        assert agent.stop() == 0


def test_detach(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    sock = st.dir / "bg.sock"
    r = run_cli(
        "agent", "serve", "--detach", "--socket", sock,
        "--store", st.path, "--master-key-file", st.master,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    env = dict(
        line.split(";")[0].split("=", 1) for line in r.stdout.splitlines() if "=" in line
    )
    assert env["SSH_AUTH_SOCK"] == str(sock) == env["KEYCELL_AGENT_SOCK"]
    pid = int(env["KEYCELL_AGENT_PID"])
    assert os.getsid(pid) == pid  # a session of its own
    listed = subprocess.run(
        ["ssh-add", "-L"], env={"SSH_AUTH_SOCK": str(sock)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert listed.stdout.strip() == openssh_line(st.ed25519["deploy"], "deploy")
    os.kill(pid, signal.SIGTERM)
    for _ in range(1200):
        if not sock.exists():
            break
        time.sleep(0.05)
    assert not sock.exists()


@pytest.mark.parametrize(
    "cmd", [["agent"], ["agent", "serve"], ["policy"], ["policy", "sign"], ["policy", "verify"]]
)
def test_help(cmd: list[str]) -> None:
    from keycell.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*cmd, "--help"])
    assert info.value.code == 0


def test_no_key_bytes_in_the_log(tmp_path: Path) -> None:
    import base64

    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    with Agent(st, "-v") as agent:
        with agent.client() as c:
            c.ed25519("deploy").sign(b"m")
            c.secret("mac").hmac(b"m")
        assert agent.stop() == 0
        log = agent.stderr().encode()
    assert b"sign key 'deploy' by uid" in log  # -v logs allowed requests
    for secret in [*st.seeds.values(), *st.secrets.values()]:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in log


def test_reloads_under_load_lose_no_request(tmp_path: Path) -> None:
    import threading

    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    with Agent(st) as agent:
        errors: list[BaseException] = []
        stop = threading.Event()
        counts = [0] * 4

        def work(i: int) -> None:
            try:
                with agent.client() as c:
                    key = c.ed25519("deploy")
                    pub = key.public_key()
                    while not stop.is_set():
                        m = b"%d-%d" % (i, counts[i])
                        pub.verify(key.sign(m), m)
                        counts[i] += 1
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for _ in range(1200):  # every client is signing before the first reload
            if all(counts) or errors:
                break
            time.sleep(0.05)
        for n in range(1, 6):
            agent.signal(signal.SIGHUP)
            for _ in range(1200):
                if agent.stderr().count("reloaded keys") >= n:
                    break
                time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        assert all(counts)
        assert agent.stderr().count("reloaded keys") == 5
        assert agent.stop() == 0
