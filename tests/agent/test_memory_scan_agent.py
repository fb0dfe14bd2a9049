"""Memory scans of the agent (tests/memscan.py): after serving signatures and HMACs, the
agent's copies of every key (the Ed25519 seed and its expanded secret, the secret keys, an
RSA key's private components) lie only in locked, dump-excluded memory; after ``stop()``
(what SIGTERM runs) none is left anywhere in the process."""

from __future__ import annotations

import hashlib
import hmac as std_hmac
from pathlib import Path

import pytest
from agent_support import Agent, Store, make_store
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as pyca_rsa
from memscan import PhasedChild, scan_process, summarize

pytestmark = pytest.mark.slow


def patterns(st: Store) -> dict[str, bytes]:
    pats: dict[str, bytes] = {}
    for name, seed in st.seeds.items():
        pats[f"{name}.seed"] = seed
        h = bytearray(hashlib.sha512(seed).digest())
        h[0] &= 248
        h[31] &= 127
        h[31] |= 64
        pats[f"{name}.scalar"] = bytes(h[:32])
        pats[f"{name}.prefix"] = bytes(h[32:])
    for name, key in st.secrets.items():
        pats[f"{name}.secret"] = key
    return pats


def exercise(agent_socket: Path, st: Store) -> None:
    import keycell.agent

    with keycell.agent.connect(agent_socket) as c:
        for name in st.ed25519:
            k = c.ed25519(name)
            for i in range(20):
                k.public_key().verify(k.sign(b"m%d" % i), b"m%d" % i)
        for name, key in st.secrets.items():
            s = c.secret(name)
            for alg in ("sha256", "sha384", "sha512"):
                tag = s.hmac(b"data", algorithm=alg)
                assert tag == std_hmac.new(key, b"data", alg).digest()
                s.verify_hmac(b"data", tag, algorithm=alg)


def test_agent_process_keeps_keys_in_guarded_memory(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=("mac",))
    with Agent(st) as agent:
        exercise(agent.socket, st)
        # The store's master key: wiped once the store is open (the store keeps only its
        # derived keys, in guarded memory).
        hits = scan_process(agent.pid, {**patterns(st), "master": st.master.read_bytes()})
        assert hits.pop("master") == []
        for name in ("deploy.seed", "ci.seed", "mac.secret", "deploy.scalar"):
            assert hits[name], f"{name} not found: the scan would miss keys\n{summarize(hits)}"
        bad = {n: [h for h in hs if not (h.locked and h.dontdump)] for n, hs in hits.items()}
        assert all(not hs for hs in bad.values()), summarize(bad)
        assert agent.stop() == 0


SERVER = """
import sys
from keycell import KeyStore, SecretKey
from keycell._native import AgentServer

sock, store_path, master_path = sys.argv[1:4]
with SecretKey.from_file(master_path) as m:
    store = KeyStore.open(store_path, master=m)
server = AgentServer(sock, store, allowed_uids=[0])
phase("serving")
server.stop()
store.close()
phase("stopped")
"""


def test_stop_wipes_every_key(tmp_path: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("the in-process server allows uid 0 only")
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("mac",))
    sock = st.dir / "inproc.sock"
    pats = patterns(st)
    with PhasedChild(SERVER, str(sock), str(st.path), str(st.master)) as child:
        child.wait_phase("serving")
        exercise(sock, st)
        hits = scan_process(child.pid, pats)
        assert hits["deploy.seed"], summarize(hits)
        assert hits["mac.secret"], summarize(hits)
        assert all(h.locked and h.dontdump for hs in hits.values() for h in hs), summarize(hits)
        child.advance()
        child.wait_phase("stopped")
        assert not sock.exists()
        after = scan_process(child.pid, pats)
        assert all(not hs for hs in after.values()), summarize(after)
        rc, _, err = child.finish()
        assert rc == 0, err


def test_a_refused_add_identity_leaves_no_copy_of_its_key(tmp_path: Path) -> None:
    import os

    from agent_support import frame, recv_reply, string

    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st) as agent:
        private = os.urandom(64)  # the "private key" a client tries to add
        msg = b"\x11" + string(b"ssh-ed25519") + string(os.urandom(32)) + string(private)
        with agent.raw() as s:
            s.sendall(frame(msg + string(b"comment")))
            assert recv_reply(s) == b"\x05"
            # A normal request on the same connection, through the same buffer.
            s.sendall(frame(b"\x0b"))
            assert recv_reply(s) is not None
            hits = scan_process(agent.pid, {"private": private})
        assert hits["private"] == [], summarize(hits)
        assert agent.stop() == 0


def _rsa_windows(key: pyca_rsa.RSAPrivateKey) -> dict[str, bytes]:
    """32-byte windows from the middle of each private component, big- and little-endian
    (as tests/crypto/test_memory_scan_rsa.py searches them)."""
    nums = key.private_numbers()
    out = {}
    for name, value in {
        "d": nums.d, "p": nums.p, "q": nums.q, "dP": nums.dmp1, "dQ": nums.dmq1,
        "qInv": nums.iqmp,
    }.items():  # fmt: skip
        be = value.to_bytes((value.bit_length() + 7) // 8, "big")
        mid = len(be) // 2 - 16
        out[f"rsa.{name}.be"] = be[mid : mid + 32]
        out[f"rsa.{name}.le"] = be[::-1][mid : mid + 32]
    return out


def test_rsa_keys_served_stay_guarded_and_stop_wipes_them(tmp_path: Path) -> None:
    """An RSA store entry served by the agent (signatures of both RFC 8332 hashes): every
    private component (ring's limbs in the secret heap, the DER in its region) only in
    locked, dump-excluded memory; none left after ``stop()``."""
    import os

    if os.geteuid() != 0:
        pytest.skip("the in-process server allows uid 0 only")
    import keycell.agent
    from keycell import RSAPrivateKey

    st = make_store(tmp_path, ed25519=(), secrets=())
    theirs = pyca_rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = bytearray(
        theirs.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with RSAPrivateKey.from_der(der) as key, st.open() as s:
        s.put("rsa", key)
    pats = _rsa_windows(theirs)
    sock = st.dir / "inproc.sock"
    with PhasedChild(SERVER, str(sock), str(st.path), str(st.master)) as child:
        child.wait_phase("serving")
        with keycell.agent.connect(sock) as c:
            k = c.rsa("rsa")
            for hash_ in ("sha256", "sha512"):
                sig = k.sign(b"m", padding="pkcs1v15", hash=hash_)
                k.public_key().verify(sig, b"m", padding="pkcs1v15", hash=hash_)
        hits = scan_process(child.pid, pats)
        assert hits["rsa.p.le"], summarize(hits)
        assert hits["rsa.d.be"], summarize(hits)
        assert all(h.locked and h.dontdump for hs in hits.values() for h in hs), summarize(hits)
        child.advance()
        child.wait_phase("stopped")
        after = scan_process(child.pid, pats)
        assert all(not hs for hs in after.values()), summarize(after)
        rc, _, err = child.finish()
        assert rc == 0, err
