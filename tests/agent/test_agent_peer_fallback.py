"""``keycell agent`` on a kernel without ``SO_PEERPIDFD`` (Linux < 6.5), simulated: an
``LD_PRELOAD`` shim (``peerpidfd_shim.c``, compiled here) makes ``getsockopt(SOL_SOCKET,
SO_PEERPIDFD)`` fail with ``ENOPROTOOPT`` in the agent and passes every other call on.

- Requests are still served (``ssh-add -L``, a signature that verifies).
- The fallback is reported as documented: one log line for the whole run (not one per
  connection) naming the errno, ``pid_pinned: false`` in every audit record, and
  ``pidfd_errno`` / ``pid_exited`` in the server's events; the peer's uid, gid and pid (from
  ``SO_PEERCRED``) are still the client's.
- The uid check does not depend on the pidfd: ``nobody`` is refused (and audited), root is
  served.
- Controls: without the shim the same agent pins its peers (``pid_pinned: true``, no
  fallback line), and the shim's counter shows it intercepted one call per connection.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    Agent,
    AuditFiles,
    Store,
    as_user,
    make_store,
    nobody,
    openssh_line,
)
from keycell import Ed25519PublicKey
from support import NOBODY

SHIM_SOURCE = Path(__file__).with_name("peerpidfd_shim.c")
SO_PEERPIDFD = 77
FALLBACK_LINE = (
    f"SO_PEERPIDFD unavailable (errno {errno.ENOPROTOOPT}): peers are identified by the pid "
    "from SO_PEERCRED only, which can be reused"
)

# A client in a process of its own: its pid is the one the agent must record.
CLIENT = """
import os, sys
from keycell import agent
with agent.connect(sys.argv[1]) as c:
    print(os.getpid(), c.ed25519("deploy").sign(sys.argv[2].encode()).hex())
"""

# keycell's server in this process, with a client of the same process: the raw event
# dicts (pidfd_errno and pid_exited are not in the audit record).
IN_PROCESS = """
import json, os, sys, time
from keycell import KeyStore, SecretKey, agent
from keycell._native import AgentServer

sock, store_path, master_path = sys.argv[1:4]
with SecretKey.from_file(master_path) as m:
    store = KeyStore.open(store_path, master=m)
server = AgentServer(sock, store, allowed_uids=[os.geteuid()])
with agent.connect(sock) as c:
    c.ed25519("deploy").sign(b"in process")
events, deadline = [], time.monotonic() + 30
while len(events) < 2 and time.monotonic() < deadline:
    events += server.next_events(1.0)[0]
server.stop()
store.close()
fields = ("uid", "pid", "pid_pinned", "pid_exited", "pidfd_errno", "operation", "result")
print(json.dumps({"pid": os.getpid(), "events": [{k: e[k] for k in fields} for e in events]}))
"""


def kernel_has_so_peerpidfd() -> bool:
    """Whether this kernel answers ``SO_PEERPIDFD`` (the control runs need it)."""
    a, b = socket.socketpair()
    with a, b:
        try:
            raw = a.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD, 4)
        except OSError as e:
            if e.errno == errno.ENOPROTOOPT:
                return False
            raise
    os.close(int.from_bytes(raw, sys.byteorder, signed=True))
    return True


needs_peerpidfd = pytest.mark.skipif(
    not kernel_has_so_peerpidfd(),
    reason="the kernel has no SO_PEERPIDFD (Linux < 6.5): the pinned control cannot run",
)

needs_ssh_add = pytest.mark.skipif(
    shutil.which("ssh-add") is None,
    reason="OpenSSH client tools are not installed (scripts/install-test-tools.sh)",
)


class Shim:
    """The compiled shim and the environment that loads it, with its call counter."""

    def __init__(self, d: Path) -> None:
        self.so = d / "shim.so"
        self.counter = d / "shim.count"
        src = d / "shim.c"
        shutil.copyfile(SHIM_SOURCE, src)
        r = subprocess.run(
            ["cc", "-shared", "-fPIC", "-O2", "-o", str(self.so), str(src), "-ldl"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, f"cannot compile the shim:\n{r.stderr}"

    def env(self) -> dict[str, str]:
        """The variables that load the shim and name its counter."""
        return {"LD_PRELOAD": str(self.so), "KEYCELL_SHIM_COUNT": str(self.counter)}

    def calls(self) -> int:
        """How many ``SO_PEERPIDFD`` calls the shim made fail so far."""
        return self.counter.stat().st_size if self.counter.exists() else 0


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Shim:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) to build the LD_PRELOAD shim")
    return Shim(tmp_path_factory.mktemp("shim"))


def sign_in_child(agent: Agent, message: str) -> tuple[int, bytes]:
    """Sign ``message`` with ``deploy`` from a new Python process: its pid and the
    signature."""
    r = subprocess.run(
        [sys.executable, "-c", CLIENT, str(agent.socket), message],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    pid, sig = r.stdout.split()
    return int(pid), bytes.fromhex(sig)


def serve_and_sign(st: Store, env: dict[str, str] | None) -> tuple[Agent, AuditFiles, set[int]]:
    """Run an audited agent (with ``env``): ``ssh-add -L``, then two signing clients of
    their own; checks the replies and returns the stopped agent, its audit files and the
    clients' pids."""
    audited = AuditFiles(st.dir)
    with Agent(st, *audited.args(), env=env) as agent:
        listed = agent.ssh("ssh-add", "-L")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == [openssh_line(st.ed25519["deploy"], "deploy")]
        pids = set()
        public = Ed25519PublicKey.from_public_bytes(st.ed25519["deploy"])
        for message in ("first", "second"):
            pid, sig = sign_in_child(agent, message)
            public.verify(sig, message.encode())
            pids.add(pid)
        assert agent.stop() == 0
    assert audited.verify().valid
    return agent, audited, pids


def run_in_process(st: Store, env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """Run :data:`IN_PROCESS` with ``env`` added: its pid and its two events."""
    r = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(st.dir / "inproc.sock"), str(st.path),
         str(st.master)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["events"]) == 2, out
    return out["pid"], out["events"]


@needs_ssh_add
def test_requests_are_served_and_the_fallback_is_reported(tmp_path: Path, shim: Shim) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    before = shim.calls()
    agent, audited, pids = serve_and_sign(st, shim.env())
    log = agent.stderr()
    # One line for the whole run, though three connections fell back.
    assert log.count("SO_PEERPIDFD unavailable") == 1, log
    assert FALLBACK_LINE in log
    events = audited.events()
    assert [(e["type"], e["result"]) for e in events] == [
        ("agent.identities", "allowed"),
        ("agent.list", "allowed"),
        ("agent.sign", "allowed"),
        ("agent.list", "allowed"),
        ("agent.sign", "allowed"),
    ]
    assert all(e["pid_pinned"] is False for e in events), events
    # The credentials still come from SO_PEERCRED: the clients' own uid, gid and pid.
    assert all(e["uid"] == os.geteuid() and e["gid"] == os.getegid() for e in events)
    signers = {e["pid"] for e in events if e["type"] == "agent.sign"}
    assert signers == pids
    # The shim failed exactly one SO_PEERPIDFD call per connection.
    connections = {e["connection"] for e in events}
    assert len(connections) == 3
    assert shim.calls() - before == len(connections)


def test_the_events_name_the_errno(tmp_path: Path, shim: Shim) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    before = shim.calls()
    pid, events = run_in_process(st, shim.env())
    for e in events:
        assert e["pid"] == pid, e
        assert e["uid"] == os.geteuid(), e
        assert e["pid_pinned"] is False, e
        assert e["pidfd_errno"] == errno.ENOPROTOOPT, e
        assert e["pid_exited"] is None, e  # unknown without a pidfd
    assert shim.calls() - before == 1


@needs_ssh_add
@pytest.mark.skipif(
    os.geteuid() != 0 or NOBODY is None,
    reason="needs root to run a client as another uid (nobody)",
)
def test_uid_checks_hold_without_a_pidfd(world_dir: Path, shim: Shim) -> None:
    st = make_store(world_dir, ed25519=("deploy",), secrets=())
    st.dir.chmod(0o755)  # nobody may reach the socket; the agent allows it (not writable)
    audited = AuditFiles(st.dir)
    before = shim.calls()
    with Agent(st, "--socket-mode", "0666", *audited.args(), env=shim.env()) as agent:
        stranger = subprocess.Popen(
            [*as_user(*nobody()), "ssh-add", "-L"],
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "SSH_AUTH_SOCK": str(agent.socket),
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        out, _ = stranger.communicate(timeout=60)
        assert stranger.returncode != 0
        assert "deploy" not in out
        ok = agent.ssh("ssh-add", "-L")  # root, the agent's own uid, on the same socket
        assert ok.stdout.strip() == openssh_line(st.ed25519["deploy"], "deploy")
        assert agent.stop() == 0
    assert audited.verify().valid
    events = audited.events()
    assert [(e["type"], e["result"], e["uid"]) for e in events] == [
        ("agent.connect", "refused", nobody()[0]),
        ("agent.identities", "allowed", 0),
    ]
    refused = events[0]
    assert refused["reason"] == "uid not allowed to connect"
    assert refused["pid"] == stranger.pid  # setpriv execs ssh-add: the same pid
    assert refused["gid"] == nobody()[1]
    assert all(e["pid_pinned"] is False for e in events), events
    assert agent.stderr().count("SO_PEERPIDFD unavailable") == 1
    assert f"connect by uid {nobody()[0]} pid {stranger.pid}: refused" in agent.stderr()
    assert shim.calls() - before == 2


@needs_peerpidfd
@needs_ssh_add
def test_control_without_the_shim_pins_the_peer(tmp_path: Path, shim: Shim) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    before = shim.calls()
    agent, audited, pids = serve_and_sign(st, None)
    assert "SO_PEERPIDFD" not in agent.stderr()
    events = audited.events()
    assert len(events) == 5
    assert all(e["pid_pinned"] is True for e in events), events
    assert {e["pid"] for e in events if e["type"] == "agent.sign"} == pids
    pid, in_process = run_in_process(st, {})
    for e in in_process:
        assert e["pid"] == pid, e
        assert e["pid_pinned"] is True, e
        assert e["pidfd_errno"] is None, e
        assert e["pid_exited"] is False, e  # the client is this running process
    assert shim.calls() == before  # not loaded: nothing intercepted
