"""The signed policy of ``keycell agent``: ``keycell policy sign``/``verify``; the agent
starts with a good signature and refuses to start with a bad or missing one; a failed
SIGHUP reload keeps the old policy; per-key rules (uids, operations, lifetime, maximum
uses, rate) are enforced and every refusal is logged."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from agent_support import (
    Agent,
    AuditFiles,
    Signer,
    as_user,
    make_store,
    nobody,
    openssh_line,
    policy_args,
    user_env,
    write_policy,
)
from keycell import X25519PrivateKey
from keycell.agent_server import POLICY_SIGNATURE_CONTEXT
from keycell.exceptions import AgentRefusedError
from support import NOBODY, run_cli


def test_sign_and_verify_cli(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer, other = Signer(st.dir), Signer(st.dir, "other")
    policy = write_policy(st, {"keys": {"deploy": {"max_uses": 3}}})
    signer.sign(policy)
    assert Path(f"{policy}.sig").read_text().startswith("keycell-policy-signature-v1 ed25519 ")
    assert run_cli("policy", "verify", policy, "--public-key", signer.pub).returncode == 0
    r = run_cli("policy", "verify", policy, "--public-key", other.pub)
    assert r.returncode == 1
    assert "does not verify" in r.stderr
    policy.write_text(policy.read_text().replace("3", "30"))
    r = run_cli("policy", "verify", policy, "--public-key", signer.pub)
    assert r.returncode == 1
    assert "does not verify" in r.stderr
    # Rules that do not parse are not signed.
    bad = write_policy(st, {"keys": {"deploy": {"max_use": 3}}}, "bad.json")
    r = run_cli("policy", "sign", bad, "--key-file", signer.key)
    assert r.returncode == 1
    assert "unknown member" in r.stderr
    assert not Path(f"{bad}.sig").exists()


def test_good_signature_starts_bad_or_missing_refuses(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer, other = Signer(st.dir), Signer(st.dir, "other")
    policy = write_policy(st, {"keys": {"deploy": {}}})
    with Agent(st, *policy_args(policy, signer), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "has no signature" in agent.stderr()
        assert not agent.socket.exists()
    other.sign(policy)
    with Agent(st, *policy_args(policy, signer), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "does not verify" in agent.stderr()
        assert not agent.socket.exists()
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent:
        assert agent.ssh("ssh-add", "-L").returncode == 0
        assert agent.stop() == 0
    with Agent(st, "--policy", str(policy), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "--policy and --policy-public-key go together" in agent.stderr()


def test_failed_reload_keeps_the_old_policy(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(st, {"serial": 1, "keys": {"deploy": {}}})  # ci: no rule, unusable
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent:
        assert agent.ssh("ssh-add", "-L").stdout.splitlines() == [
            openssh_line(st.ed25519["deploy"], "deploy")
        ]
        # Tampered (signature no longer matches): refused, the old policy stays.
        policy.write_text(json.dumps({"keycell_policy": 1, "serial": 2, "default": {}}))
        agent.signal(signal.SIGHUP)
        agent.wait_log("policy reload failed, keeping the old policy")
        assert agent.ssh("ssh-add", "-L").stdout.splitlines() == [
            openssh_line(st.ed25519["deploy"], "deploy")
        ]
        # Signed properly: taken.
        signer.sign(policy)
        agent.signal(signal.SIGHUP)
        agent.wait_log("reloaded policy")
        assert len(agent.ssh("ssh-add", "-L").stdout.splitlines()) == 2
        assert agent.stop() == 0


def test_max_uses_rate_lifetime_operations(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("twice", "rated", "expired", "forever"), secrets=("mac",))
    signer = Signer(st.dir)
    policy = write_policy(
        st,
        {
            "keys": {
                "twice": {"max_uses": 2},
                "rated": {"rate": {"count": 3, "per_seconds": 3600}},
                "expired": {"lifetime_seconds": 0},
                "forever": {"lifetime_seconds": 3600, "operations": ["sign"]},
                "mac": {"operations": ["verify-hmac"]},
            }
        },
    )
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent, agent.client() as c:
        names = {k.name for k in c.keys()}
        assert names == {"twice", "rated", "forever", "mac"}  # "expired" is not offered
        twice = c.ed25519("twice")
        for _ in range(2):
            twice.public_key().verify(twice.sign(b"m"), b"m")
        with pytest.raises(AgentRefusedError):
            twice.sign(b"m")
        rated = c.ed25519("rated")
        for _ in range(3):
            rated.sign(b"m")
        with pytest.raises(AgentRefusedError):
            rated.sign(b"m")
        forever = c.ed25519("forever")
        for _ in range(5):
            forever.sign(b"m")
        with pytest.raises(AgentRefusedError):
            c.ed25519("expired")
        mac = c.secret("mac")
        with pytest.raises(AgentRefusedError):
            mac.hmac(b"data")
        import hmac as std_hmac

        tag = std_hmac.new(st.secrets["mac"], b"data", "sha256").digest()
        mac.verify_hmac(b"data", tag)
        # A refused use does not count: the limits persist across a reload.
        signer.sign(policy)
        agent.signal(signal.SIGHUP)
        agent.wait_log("reloaded policy")
        with pytest.raises(AgentRefusedError):
            twice.sign(b"m")
        assert agent.stop() == 0
        log = agent.stderr()
        assert "sign key 'twice' by uid 0" in log
        assert "refused: maximum number of uses reached" in log
        assert "refused: rate limit reached" in log
        assert "refused: operation not allowed for this key" in log


@pytest.mark.skipif(NOBODY is None, reason="no nobody user")
def test_per_key_uids(world_dir: Path) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as nobody")
    st = make_store(world_dir, ed25519=("root-only", "shared"), secrets=())
    st.dir.chmod(0o755)
    signer = Signer(st.dir)
    policy = write_policy(
        st, {"keys": {"root-only": {"uids": [0]}, "shared": {"uids": [0, nobody()[0]]}}}
    )
    signer.sign(policy)
    args = ("--socket-mode", "0666", "--allow-uid", str(nobody()[0]))
    with Agent(st, *args, *policy_args(policy, signer)) as agent:
        as_nobody = agent.ssh("ssh-add", "-L", user=nobody()).stdout.splitlines()
        assert as_nobody == [openssh_line(st.ed25519["shared"], "shared")]
        as_root = agent.ssh("ssh-add", "-L").stdout.splitlines()
        assert len(as_root) == 2
        # nobody asks for a signature with root's key anyway (it is not listed to it,
        # but a client may know the public key): refused; with the shared key: signed.
        code = (
            "import sys, keycell.agent as a\n"
            "c = a.connect(sys.argv[1])\n"
            "for pub in sys.argv[2:]:\n"
            "    blob = a._string(b'ssh-ed25519') + a._string(bytes.fromhex(pub))\n"
            "    m = bytes([13]) + a._string(blob) + a._string(b'msg') + bytes(4)\n"
            "    print(c.request(m)[0])\n"
        )
        r = subprocess.run(
            [*as_user(*nobody()), sys.executable, "-c", code, str(agent.socket),
             st.ed25519["root-only"].hex(), st.ed25519["shared"].hex()],
            capture_output=True, text=True, timeout=60, check=False, env=user_env(),
        )  # fmt: skip
        assert r.stdout.split() == ["5", "14"], r.stderr
        assert agent.stop() == 0


def test_the_policy_public_key_is_read_once_and_pinned(tmp_path: Path) -> None:
    """Issue 21 section 7: replacing the public key file and sending SIGHUP must not install
    a policy signed with another key (the old agent re-read the key on every reload)."""
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(st, {"keys": {"deploy": {}}})  # ci: no rule, unusable
    signer.sign(policy)
    with Agent(st, *policy_args(policy, signer)) as agent:
        attacker = Signer(st.dir, "attacker")
        attacker.pub.replace(signer.pub)  # the file named by --policy-public-key
        write_policy(st, {"default": {}})
        attacker.sign(policy)
        agent.signal(signal.SIGHUP)
        agent.wait_log("policy reload failed, keeping the old policy")
        assert "does not verify" in agent.stderr()
        assert agent.ssh("ssh-add", "-L").stdout.splitlines() == [
            openssh_line(st.ed25519["deploy"], "deploy")
        ]
        assert agent.stop() == 0


def test_a_policy_file_others_could_replace_is_refused(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer = Signer(st.dir)
    policy = write_policy(st, {"keys": {"deploy": {}}})
    signer.sign(policy)
    policy.chmod(0o666)
    with Agent(st, *policy_args(policy, signer), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "writable by group or others" in agent.stderr()
    policy.chmod(0o644)
    signer.pub.chmod(0o646)
    with Agent(st, *policy_args(policy, signer), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert f"refusing {signer.pub}: writable by group or others" in agent.stderr()


def test_a_reload_cannot_roll_the_policy_back_and_serials_are_audited(tmp_path: Path) -> None:
    """Issue 21 section 7: an older policy with its genuine signature (a lower serial) is
    refused on reload; the serial loaded at start and at each reload is logged and in the
    audit log, refusals too."""
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=())
    signer = Signer(st.dir)
    audited = AuditFiles(st.dir)
    policy = write_policy(st, {"serial": 1, "default": {}})  # every key
    signer.sign(policy)
    old = (policy.read_bytes(), Path(f"{policy}.sig").read_bytes())
    with Agent(st, *policy_args(policy, signer), *audited.args()) as agent:
        assert f"policy {policy} (serial 1)" in agent.stderr()
        write_policy(st, {"serial": 2, "keys": {"deploy": {}}})  # ci withdrawn
        signer.sign(policy)
        agent.signal(signal.SIGHUP)
        agent.wait_log("(serial 2)")
        assert len(agent.ssh("ssh-add", "-L").stdout.splitlines()) == 1
        # The genuine serial-1 file and signature, put back: refused, serial 2 stays.
        policy.write_bytes(old[0])
        Path(f"{policy}.sig").write_bytes(old[1])
        agent.signal(signal.SIGHUP)
        agent.wait_log("policy reload failed, keeping the old policy")
        assert "serial 1 is not greater than the loaded policy's serial 2" in agent.stderr()
        assert agent.ssh("ssh-add", "-L").stdout.splitlines() == [
            openssh_line(st.ed25519["deploy"], "deploy")
        ]
        assert agent.stop() == 0
    assert audited.verify().valid
    policy_records = [
        (e["result"], e["reason"]) for e in audited.events() if e["type"] == "agent.policy"
    ]
    assert policy_records == [
        ("allowed", "loaded serial 1"),
        ("allowed", "loaded serial 2"),
        ("refused", "serial 1 is not greater than the loaded policy's serial 2"),
    ]


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_ecdsa_signed_policy(tmp_path: Path, curve: Literal["P-256", "P-384"]) -> None:
    """``keycell policy sign --key-file ec.pem``: an ECDSA line pyca verifies; a line pyca
    signed verifies here; the agent starts with it; the pinned key decides the algorithm."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    signer = Signer(st.dir, "ec", curve=curve)
    ed = Signer(st.dir, "ed")
    alg, width = ("ecdsa-p256", 32) if curve == "P-256" else ("ecdsa-p384", 48)
    digest = hashes.SHA256() if curve == "P-256" else hashes.SHA384()
    policy = write_policy(st, {"keys": {"deploy": {"max_uses": 3}}})
    signer.sign(policy)
    line = Path(f"{policy}.sig").read_text()
    assert line.startswith(f"keycell-policy-signature-v1 {alg} ")
    raw = base64.b64decode(line.split()[2], validate=True)
    assert len(raw) == 2 * width
    pub = serialization.load_pem_public_key(signer.pub.read_bytes())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    message = POLICY_SIGNATURE_CONTEXT + policy.read_bytes()
    sig = encode_dss_signature(int.from_bytes(raw[:width]), int.from_bytes(raw[width:]))
    pub.verify(sig, message, ec.ECDSA(digest))
    assert run_cli("policy", "verify", policy, "--public-key", signer.pub).returncode == 0
    # The same key as hex (keycell pubkey) and as an OpenSSH line.
    hex_pub, ssh_pub = st.dir / "ec.hex", st.dir / "ec.ssh"
    r = run_cli("pubkey", signer.key)
    assert r.returncode == 0, r.stderr
    hex_pub.write_text(r.stdout)
    ssh_pub.write_bytes(
        pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    for p in (hex_pub, ssh_pub):
        assert run_cli("policy", "verify", policy, "--public-key", p).returncode == 0, p
    # An Ed25519 key pinned: the ECDSA line is refused by name, and the other way round.
    r = run_cli("policy", "verify", policy, "--public-key", ed.pub)
    assert r.returncode == 1
    assert f"is signed with {alg}, but the policy public key is an ed25519 key" in r.stderr
    ed.sign(policy)
    r = run_cli("policy", "verify", policy, "--public-key", signer.pub)
    assert r.returncode == 1
    assert f"is signed with ed25519, but the policy public key is an {alg} key" in r.stderr
    # A line made by pyca (DER converted to r || s) verifies here.
    theirs = serialization.load_pem_private_key(signer.key.read_bytes(), None)
    assert isinstance(theirs, ec.EllipticCurvePrivateKey)
    r_int, s_int = decode_dss_signature(theirs.sign(message, ec.ECDSA(digest)))
    ours = r_int.to_bytes(width) + s_int.to_bytes(width)
    text = f"keycell-policy-signature-v1 {alg} {base64.b64encode(ours).decode()}\n"
    Path(f"{policy}.sig").write_text(text)
    assert run_cli("policy", "verify", policy, "--public-key", signer.pub).returncode == 0
    # The agent starts with the ECDSA-signed policy and enforces it.
    with Agent(st, *policy_args(policy, signer)) as agent, agent.client() as c:
        key = c.ed25519("deploy")
        for _ in range(3):
            key.sign(b"m")
        with pytest.raises(AgentRefusedError):
            key.sign(b"m")
        assert agent.stop() == 0
    # Tampered after signing: the agent refuses to start.
    policy.write_text(policy.read_text().replace("3", "30"))
    with Agent(st, *policy_args(policy, signer), expect_start=False) as agent:
        assert agent.wait_exit() == 1
        assert "does not verify" in agent.stderr()


def test_policy_sign_refuses_keys_that_cannot_sign(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    policy = write_policy(st, {"keys": {"deploy": {}}})
    x = st.dir / "x.pem"
    with X25519PrivateKey.generate() as k:
        k.to_file(x)
    r = run_cli("policy", "sign", policy, "--key-file", x)
    assert r.returncode == 1
    assert "an X25519 key cannot sign policies; use an Ed25519, EC or RSA key" in r.stderr
    assert not Path(f"{policy}.sig").exists()


# RFC 8032 test 1's public key.
ED25519_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def test_policy_public_key_files(tmp_path: Path) -> None:
    """The forms ``--policy-public-key`` takes for EC keys, and OpenSSH lines whose parts
    disagree refused."""
    from keycell import ECPrivateKey, ECPublicKey, Ed25519PublicKey
    from keycell.agent_server import load_public_key
    from keycell.exceptions import AgentPolicyError

    def ssh(name: bytes, curve: bytes, point: bytes) -> str:
        blob = b"".join(len(f).to_bytes(4, "big") + f for f in (name, curve, point))
        return f"{name.decode()} {base64.b64encode(blob).decode()} comment\n"

    k256, k384 = ECPrivateKey.generate("P-256"), ECPrivateKey.generate("P-384")
    p256, p384 = k256.public_key(), k384.public_key()
    path = tmp_path / "pub"
    good = {
        p256.public_bytes_pem().decode(): p256,
        p384.public_bytes_x962().hex() + "\n": p384,
        ssh(b"ecdsa-sha2-nistp256", b"nistp256", p256.public_bytes_x962()): p256,
        ssh(b"ecdsa-sha2-nistp384", b"nistp384", p384.public_bytes_x962()): p384,
    }
    for text, want in good.items():
        path.write_text(text)
        got = load_public_key(path)
        assert isinstance(got, ECPublicKey)
        assert got == want, text
    bad = [
        ssh(b"ecdsa-sha2-nistp256", b"nistp384", p384.public_bytes_x962()),
        ssh(b"ecdsa-sha2-nistp384", b"nistp384", p256.public_bytes_x962()),
        ssh(b"ecdsa-sha2-nistp521", b"nistp521", p256.public_bytes_x962()),
        p256.public_bytes_x962()[:-1].hex(),
        "04" + "00" * 64,
    ]
    for text in bad:
        path.write_text(text)
        with pytest.raises(AgentPolicyError, match="not an Ed25519, EC or RSA public key"):
            load_public_key(path)
    # An ssh-rsa line (keycell pubkey --ssh) is an RSA key.
    from keycell import RSAPrivateKey, RSAPublicKey

    with RSAPrivateKey.generate(2048) as rk:
        path.write_text(rk.public_key().to_openssh("ci") + "\n")
        got_rsa = load_public_key(path)
        assert isinstance(got_rsa, RSAPublicKey)
        assert got_rsa == rk.public_key()
    # An Ed25519 key's 64 hex digits are still an Ed25519 key.
    path.write_text(ED25519_HEX)
    assert isinstance(load_public_key(path), Ed25519PublicKey)
    k256.destroy()
    k384.destroy()


def test_rsa_pss_signed_policy(tmp_path: Path) -> None:
    """``keycell policy sign --key-file rsa.pem``: an RSASSA-PSS-SHA256 line (salt 32)
    pyca verifies; a line pyca signed verifies here; the agent enforces the policy."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from keycell import RSAPrivateKey

    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    key_file, pub_file = st.dir / "rsa.pem", st.dir / "rsa.pub"
    with RSAPrivateKey.generate(2048) as k:
        k.to_file(key_file)
        pub_file.write_bytes(k.public_key().public_bytes())
    policy = write_policy(st, {"keys": {"deploy": {"max_uses": 1}}})
    r = run_cli("policy", "sign", policy, "--key-file", key_file)
    assert r.returncode == 0, r.stderr
    line = Path(f"{policy}.sig").read_text()
    assert line.startswith("keycell-policy-signature-v1 rsa-pss-sha256 ")
    sig = base64.b64decode(line.split()[2], validate=True)
    pub = serialization.load_pem_public_key(pub_file.read_bytes())
    assert isinstance(pub, rsa.RSAPublicKey)
    message = POLICY_SIGNATURE_CONTEXT + policy.read_bytes()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    pub.verify(sig, message, pss, hashes.SHA256())
    assert run_cli("policy", "verify", policy, "--public-key", pub_file).returncode == 0
    theirs = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(theirs, rsa.RSAPrivateKey)
    for their_sig, good in (
        (theirs.sign(message, pss, hashes.SHA256()), True),
        (theirs.sign(message, padding.PKCS1v15(), hashes.SHA256()), False),
        (theirs.sign(message, padding.PSS(pss.mgf, 20), hashes.SHA256()), False),
    ):
        b64 = base64.b64encode(their_sig).decode()
        text = f"keycell-policy-signature-v1 rsa-pss-sha256 {b64}\n"
        Path(f"{policy}.sig").write_text(text)
        r = run_cli("policy", "verify", policy, "--public-key", pub_file)
        assert r.returncode == (0 if good else 1), r.stderr
    r = run_cli("policy", "sign", policy, "--key-file", key_file, "--force")
    assert r.returncode == 0, r.stderr
    with Agent(st, "--policy", str(policy), "--policy-public-key", str(pub_file)) as agent:
        with agent.client() as c:
            c.ed25519("deploy").sign(b"m")
            with pytest.raises(AgentRefusedError):
                c.ed25519("deploy").sign(b"m")
        assert agent.stop() == 0
