"""Helpers of the agent tests (tests/agent): a key store with known keys, a running
``keycell agent serve`` process, raw frames, running commands as another uid, signed
policies and the agent's audit log."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import keycell
from audit_support import events
from keycell import ECPrivateKey, Ed25519PrivateKey, KeyStore, SecretKey, audit
from support import KEYCELL, NOBODY, run_cli


def string(b: bytes) -> bytes:
    """An SSH wire ``string``."""
    return struct.pack(">I", len(b)) + b


def frame(msg: bytes) -> bytes:
    """A framed message."""
    return struct.pack(">I", len(msg)) + msg


def ssh_blob(public: bytes) -> bytes:
    """The SSH public key blob of a raw Ed25519 public key."""
    return string(b"ssh-ed25519") + string(public)


def openssh_line(public: bytes, comment: str = "") -> str:
    """``ssh-ed25519 AAAA... comment``."""
    import base64

    line = "ssh-ed25519 " + base64.b64encode(ssh_blob(public)).decode()
    return f"{line} {comment}".rstrip()


@dataclass
class Store:
    """A key store made for a test, with the key material the test needs to check."""

    dir: Path
    path: Path
    master: Path
    ed25519: dict[str, bytes] = field(default_factory=dict)  # name -> raw public key
    seeds: dict[str, bytes] = field(default_factory=dict)  # name -> seed (memory scans)
    secrets: dict[str, bytes] = field(default_factory=dict)  # name -> key bytes

    def add_ed25519(self, name: str) -> bytes:
        """Add a new Ed25519 key; returns its raw public key."""
        seed = os.urandom(32)
        self.seeds[name] = seed
        key = Ed25519PrivateKey.from_private_bytes(bytearray(seed))
        with self.open() as s:
            s.put(name, key)
        self.ed25519[name] = key.public_key().public_bytes_raw()
        key.destroy()
        return self.ed25519[name]

    def add_secret(self, name: str, length: int = 32) -> bytes:
        """Add a new secret key; returns its bytes."""
        key = SecretKey.generate(length)
        with key.expose() as view:
            self.secrets[name] = bytes(view)
        with self.open() as s:
            s.put(name, key)
        key.destroy()
        return self.secrets[name]

    def open(self) -> KeyStore:
        """The store, opened."""
        with SecretKey.from_file(self.master) as m:
            return KeyStore.open(self.path, master=m)

    def chown(self, uid: int, gid: int) -> None:
        """Give the directory and files to ``uid`` (an agent running as that user)."""
        for p in (self.dir, self.path, self.master, Path(f"{self.path}.lock")):
            if p.exists():
                os.chown(p, uid, gid)


def make_store(
    root: Path, ed25519: Sequence[str] = ("deploy", "ci"), secrets: Sequence[str] = ("mac",)
) -> Store:
    """A store in a new private directory ``root/agent`` (mode 0700) under a random
    32-byte master key file."""
    d = root / "agent"
    d.mkdir(mode=0o700)
    master = d / "master.key"
    with SecretKey.generate(32) as m:
        m.to_file(master, format="raw")
        KeyStore.create(d / "store.kcs", master=m).close()
    st = Store(dir=d, path=d / "store.kcs", master=master)
    for n in ed25519:
        st.add_ed25519(n)
    for n in secrets:
        st.add_secret(n)
    return st


_READABLE_PACKAGE: Path | None = None


def _readable_package_dir() -> Path:
    """A directory that holds a copy of the installed ``keycell`` package, readable by every
    user: the interpreter's own site-packages may sit where another uid cannot read (a
    Python under ``/root``, as on the CI machine), so processes run as ``nobody`` import
    keycell from here (``PYTHONPATH``). Made once per test run, removed at exit."""
    global _READABLE_PACKAGE
    if _READABLE_PACKAGE is None:
        root = Path(tempfile.mkdtemp(prefix="keycell-pkg-"))
        root.chmod(0o755)
        shutil.copytree(Path(keycell.__file__).parent, root / "keycell")
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)
        atexit.register(shutil.rmtree, root, True)
        _READABLE_PACKAGE = root
    return _READABLE_PACKAGE


def as_user(uid: int, gid: int) -> list[str]:
    """A command prefix that runs a program as ``uid``/``gid`` with no supplementary
    groups and no capabilities (``setpriv`` execs it: same pid). Run it with
    ``env=user_env()`` so that a Python started this way finds keycell."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def user_env() -> dict[str, str]:
    """This process's environment with ``PYTHONPATH`` at a copy of keycell that every user
    can read (for programs run through :func:`as_user`)."""
    return {**os.environ, "PYTHONPATH": str(_readable_package_dir())}


def nobody() -> tuple[int, int]:
    """The uid and gid of ``nobody``."""
    assert NOBODY is not None, "no nobody user"
    return NOBODY


class Agent:
    """A running ``keycell agent serve``; stops it (SIGTERM) on exit. It serves ``store``
    unless ``serve_store`` is false (a token-only agent: ``args`` name the token; the
    store's directory still holds the socket and the log). ``env`` adds variables to the
    agent's environment (an ``LD_PRELOAD`` shim)."""

    def __init__(
        self,
        store: Store,
        *args: str,
        socket_path: Path | None = None,
        user: tuple[int, int] | None = None,
        expect_start: bool = True,
        serve_store: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.socket = socket_path or store.dir / "agent.sock"
        self.log = store.dir / f"agent-{time.monotonic_ns()}.log"
        cmd = [
            *KEYCELL,
            "agent",
            "serve",
            "--socket",
            str(self.socket),
            *(("--store", str(store.path), "--master-key-file", str(store.master))
              if serve_store else ()),
            *args,
        ]  # fmt: skip
        environ = user_env() if user is not None else None
        if env:
            environ = {**(environ or os.environ), **env}
        with open(self.log, "wb") as log:
            if user is not None:
                os.chown(self.log, *user)
            prefix = as_user(*user) if user is not None else []
            self.proc = subprocess.Popen(
                [*prefix, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=environ,
            )
        if expect_start:
            try:
                self.wait_ready()
            except BaseException:
                # No caller will get this object to stop: kill it and close its pipe here.
                if self.proc.poll() is None:
                    self.proc.kill()
                self.stop()
                raise

    @property
    def pid(self) -> int:
        """The agent's pid."""
        return self.proc.pid

    def stderr(self) -> str:
        """What the agent logged so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the agent logged that it serves."""
        deadline = time.monotonic() + timeout
        while "serving on" not in self.stderr():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not start:\n{self.stderr()}")
            time.sleep(0.02)

    def wait_log(self, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` appears in the agent's log."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} not logged:\n{self.stderr()}")
            time.sleep(0.02)

    def wait_exit(self, timeout: float = 60) -> int:
        """Wait for the agent to exit; its status."""
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the agent."""
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM and wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def client(self) -> keycell.agent.AgentClient:
        """A Python client."""
        return keycell.agent.connect(self.socket)

    def raw(self) -> socket.socket:
        """A raw connection."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(str(self.socket))
        return s

    def ssh(
        self, *cmd: str, user: tuple[int, int] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run an OpenSSH tool with ``SSH_AUTH_SOCK`` set to the agent."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSH_AUTH_SOCK": str(self.socket)}
        prefix = as_user(*user) if user is not None else []
        return subprocess.run(
            [*prefix, *cmd],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=self.store.dir if user is None else "/",
        )

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def recv_reply(s: socket.socket) -> bytes | None:
    """One reply frame's contents, or ``None`` if the agent closed the connection."""
    try:
        return _recv_reply(s)
    except ConnectionResetError:
        return None


def _recv_reply(s: socket.socket) -> bytes | None:
    header = b""
    while len(header) < 4:
        chunk = s.recv(4 - len(header))
        if not chunk:
            return None
        header += chunk
    (n,) = struct.unpack(">I", header)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def closed_by_peer(s: socket.socket) -> bool:
    """Whether the agent closed ``s`` (reads until EOF or a reset)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


class Signer:
    """A policy signing key in files: the private key and its PEM public key (Ed25519, or
    ECDSA on ``curve``)."""

    def __init__(
        self, d: Path, name: str = "signer", curve: Literal["P-256", "P-384"] | None = None
    ) -> None:
        self.key = d / f"{name}.pem"
        self.pub = d / f"{name}.pub"
        k = Ed25519PrivateKey.generate() if curve is None else ECPrivateKey.generate(curve)
        k.to_file(self.key)
        self.pub.write_bytes(k.public_key().public_bytes_pem())
        k.destroy()

    def sign(self, policy: Path) -> None:
        """``keycell policy sign POLICY --force``: writes ``POLICY.sig``, replacing the
        signature of an earlier version (the tests edit and re-sign their policies)."""
        r = run_cli("policy", "sign", policy, "--key-file", self.key, "--force")
        assert r.returncode == 0, r.stderr


def write_policy(st: Store, rules: dict[str, Any], name: str = "policy.json") -> Path:
    """A policy file (version 1, ``rules``) in the store's directory, not signed yet."""
    p = st.dir / name
    p.write_text(json.dumps({"keycell_policy": 1, **rules}))
    return p


def policy_args(policy: Path, signer: Signer) -> tuple[str, ...]:
    """The agent's options for ``policy`` signed by ``signer``."""
    return ("--policy", str(policy), "--policy-public-key", str(signer.pub))


class AuditFiles:
    """A new agent audit log in ``d``: its path, its K0 key file and its checkpoint
    signer's key file."""

    def __init__(self, d: Path) -> None:
        self.log = d / "audit.log"
        self.k0 = d / "k0.key"
        with SecretKey.generate(32) as k:
            k.to_file(self.k0, format="raw")
        self.signer_file = d / "audit-signer.pem"
        signer = Ed25519PrivateKey.generate()
        signer.to_file(self.signer_file)
        self.public = signer.public_key()
        signer.destroy()

    def args(self) -> tuple[str, ...]:
        """The agent's options that create the log and sign its checkpoints."""
        return ("--audit-log", str(self.log), "--audit-key-file", str(self.k0),
                "--audit-signer-key-file", str(self.signer_file))  # fmt: skip

    def verify(self, checkpoint: Literal[False] | None = False) -> audit.VerifyResult:
        """``keycell.audit.verify`` of the log under K0 and the signer's public key."""
        with SecretKey.from_file(self.k0) as k:
            return audit.verify(self.log, key=k, public_key=self.public, checkpoint=checkpoint)

    def events(self) -> list[dict[str, Any]]:
        """The agent's events in the log (``agent.*``), in order."""
        return [
            ev
            for ev in events(self.log)
            if isinstance(ev, dict) and str(ev.get("type", "")).startswith("agent.")
        ]
