"""``keycell agent`` against OpenSSH's ``ssh-agent``: Ed25519 signing over the socket.

Both agents hold one Ed25519 key and are driven by the same minimal SSH-agent-protocol
client below (one connection, ``SIGN_REQUEST``, read the ``SIGN_RESPONSE``), so the client's
cost is the same on both sides. Two measurements, in one run:

- sequential: rounds of ``--batch`` sign requests, alternating keycell / ssh-agent /
  keycell with ``--audit-log`` (each reply waits for its record); the paired ratio is the
  median over rounds of keycell's time per request divided by ssh-agent's in the same round
  (target <= 0.2, without the audit log);
- concurrent: 8 clients (threads, one connection each) x 500 signs at once, every signature
  verified afterwards; throughput in signatures per second, for both agents.

Run alone (``python benches/agent.py``) or from ``benches/run.py`` (``make bench``). A
measurement, not a test: nothing fails on timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from keycell import Ed25519PrivateKey, Ed25519PublicKey, KeyStore, SecretKey

TARGET = 0.2


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


class MiniClient:
    """The smallest SSH agent client: one connection, sign requests only."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("agent closed the connection")
            buf += chunk
        return buf

    def sign(self, blob: bytes, data: bytes) -> bytes:
        msg = b"\x0d" + _string(blob) + _string(data) + b"\0\0\0\0"
        self.sock.sendall(struct.pack(">I", len(msg)) + msg)
        (n,) = struct.unpack(">I", self._recv(4))
        reply = self._recv(n)
        if reply[0] != 14:
            raise RuntimeError(f"sign refused (reply type {reply[0]})")
        # byte 14, string(string "ssh-ed25519", string sig): the last 64 bytes.
        return reply[-64:]

    def close(self) -> None:
        self.sock.close()


def _wait_socket(path: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):
        if path.exists():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear")


class Agents:
    """A keycell agent and an ssh-agent, each holding one (different) Ed25519 key."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="keycell-agent-bench-"))
        os.chmod(self.dir, 0o700)
        d = self.dir
        key = Ed25519PrivateKey.generate()
        self.keycell_pub = key.public_key()
        with SecretKey.generate(32) as m:
            m.to_file(d / "master.key", format="raw")
            with KeyStore.create(d / "store.kcs", master=m) as s:
                s.put("bench", key)
        key.destroy()
        self.keycell_sock = d / "keycell.sock"
        serve = [sys.executable, "-m", "keycell", "agent", "serve", "--store",
                 str(d / "store.kcs"), "--master-key-file", str(d / "master.key")]  # fmt: skip
        self.keycell = subprocess.Popen(
            [*serve, "--socket", str(self.keycell_sock)],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The same store behind a second agent that records every request in an audit log.
        with SecretKey.generate(32) as k0:
            k0.to_file(d / "k0.key", format="raw")
        self.audited_sock = d / "audited.sock"
        self.audited = subprocess.Popen(
            [*serve, "--socket", str(self.audited_sock), "--audit-log", str(d / "audit.log"),
             "--audit-key-file", str(d / "k0.key")],
            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True
        )
        raw = (d / "id.pub").read_text().split()[1]
        import base64

        self.ssh_blob = base64.b64decode(raw)
        self.ssh_pub = Ed25519PublicKey.from_public_bytes(self.ssh_blob[-32:])
        self.ssh_sock = d / "ssh.sock"
        self.ssh = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(self.ssh_sock)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_socket(self.keycell_sock, self.keycell)
        _wait_socket(self.audited_sock, self.audited)
        _wait_socket(self.ssh_sock, self.ssh)
        subprocess.run(
            ["ssh-add", "-q", str(d / "id")],
            env={**os.environ, "SSH_AUTH_SOCK": str(self.ssh_sock)},
            check=True,
            capture_output=True,
        )
        raw_pub = self.keycell_pub.public_bytes_raw()
        self.keycell_blob = _string(b"ssh-ed25519") + _string(raw_pub)

    def close(self) -> None:
        for p in (self.keycell, self.audited, self.ssh):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def _sequential(path: Path, blob: bytes, pub: Ed25519PublicKey, n: int) -> float:
    c = MiniClient(str(path))
    try:
        c.sign(blob, b"warm-up")
        t0 = time.perf_counter()
        for i in range(n):
            c.sign(blob, b"sequential %d" % i)
        dt = time.perf_counter() - t0
        sig = c.sign(blob, b"check")
        pub.verify(sig, b"check")
    finally:
        c.close()
    return dt / n


def _concurrent(
    path: Path, blob: bytes, pub: Ed25519PublicKey, clients: int, per: int
) -> float:
    sigs: list[list[tuple[bytes, bytes]]] = [[] for _ in range(clients)]
    conns = [MiniClient(str(path)) for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(per):
            m = b"client %d message %d" % (i, j)
            sigs[i].append((m, conns[i].sign(blob, m)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    for c in conns:
        c.close()
    # Every signature verified (outside the timed section).
    count = 0
    for per_client in sigs:
        for m, s in per_client:
            pub.verify(s, m)
            count += 1
    if count != clients * per:
        raise RuntimeError(f"{count} signatures, expected {clients * per}")
    return count / dt


def bench(rounds: int = 15, batch: int = 200, clients: int = 8, per: int = 500) -> str:
    """Run both measurements; the report as Markdown lines."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        return "\n## keycell agent vs ssh-agent\n\n(skipped: OpenSSH client tools missing)\n"
    a = Agents()
    try:
        kc, ssh, audited, ratios, audit_ratios = [], [], [], [], []
        for _ in range(rounds):
            k = _sequential(a.keycell_sock, a.keycell_blob, a.keycell_pub, batch)
            s = _sequential(a.ssh_sock, a.ssh_blob, a.ssh_pub, batch)
            au = _sequential(a.audited_sock, a.keycell_blob, a.keycell_pub, batch)
            kc.append(k)
            ssh.append(s)
            audited.append(au)
            ratios.append(k / s)
            audit_ratios.append(au / s)
        tk = [_concurrent(a.keycell_sock, a.keycell_blob, a.keycell_pub, clients, per)]
        ts = [_concurrent(a.ssh_sock, a.ssh_blob, a.ssh_pub, clients, per)]
        tk.append(_concurrent(a.keycell_sock, a.keycell_blob, a.keycell_pub, clients, per))
        ts.append(_concurrent(a.ssh_sock, a.ssh_blob, a.ssh_pub, clients, per))
    finally:
        a.close()
    ratio = statistics.median(ratios)
    lines = [
        "",
        "## keycell agent vs ssh-agent (Ed25519 sign over the socket)",
        "",
        f"Sequential, one connection, {rounds} interleaved rounds of {batch} requests:",
        "",
        "| agent | median per request | paired ratio | target |",
        "|---|---|---|---|",
        f"| keycell agent | {statistics.median(kc) * 1e6:.1f} us | {ratio:.3f} | "
        f"<= {TARGET} ({'met' if ratio <= TARGET else 'NOT met'}) |",
        f"| keycell agent, --audit-log | {statistics.median(audited) * 1e6:.1f} us | "
        f"{statistics.median(audit_ratios):.3f} | |",
        f"| ssh-agent | {statistics.median(ssh) * 1e6:.1f} us | 1 | |",
        "",
        f"Concurrent: {clients} clients x {per} signs, every signature verified "
        "(best of 2 runs each):",
        "",
        "| agent | signatures per second |",
        "|---|---|",
        f"| keycell agent | {max(tk):,.0f} |",
        f"| ssh-agent | {max(ts):,.0f} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the agent benchmark alone."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=200)
    args = p.parse_args()
    print(bench(args.rounds, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
