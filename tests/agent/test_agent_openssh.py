"""OpenSSH's own tools against ``keycell agent``: ``ssh-add -L`` lists exactly the store's
Ed25519 keys, ``ssh-keygen -Y sign`` signs through it and ``-Y verify`` accepts the
signature; key-changing requests (``ssh-add``, ``-d``, ``-D``, ``-x``) are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from agent_support import Agent, make_store, openssh_line

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-add") is None or shutil.which("ssh-keygen") is None,
    reason="OpenSSH client tools are not installed (scripts/install-test-tools.sh)",
)


def test_ssh_add_lists_exactly_the_ed25519_keys(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy", "ci"), secrets=("mac", "webhook"))
    with Agent(st) as agent:
        r = agent.ssh("ssh-add", "-L")
        assert r.returncode == 0, r.stderr
        expected = {openssh_line(pub, name) for name, pub in st.ed25519.items()}
        assert set(r.stdout.splitlines()) == expected
        assert len(r.stdout.splitlines()) == 2
        assert agent.stop() == 0


def test_an_empty_store_lists_no_identities(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=(), secrets=("mac",))
    with Agent(st) as agent:
        r = agent.ssh("ssh-add", "-L")
        assert r.returncode == 1
        assert "no identities" in r.stdout + r.stderr
        assert agent.stop() == 0


def test_ssh_keygen_sign_and_verify(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy", "other"), secrets=())
    with Agent(st) as agent:
        pub = st.dir / "deploy.pub"
        pub.write_text(openssh_line(st.ed25519["deploy"], "deploy") + "\n")
        msg = st.dir / "commit.txt"
        msg.write_text("tree 1234\nauthor someone\n\nsigned through keycell agent\n")
        r = agent.ssh("ssh-keygen", "-Y", "sign", "-f", str(pub), "-n", "git", str(msg))
        assert r.returncode == 0, r.stderr
        sig = Path(f"{msg}.sig")
        assert sig.read_text().startswith("-----BEGIN SSH SIGNATURE-----")
        allowed = st.dir / "allowed_signers"
        allowed.write_text(f"dev@example.org {openssh_line(st.ed25519['deploy'])}\n")
        verify = [
            "ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "dev@example.org",
            "-n", "git", "-s", str(sig),
        ]  # fmt: skip
        with open(msg, "rb") as f:
            import subprocess

            v = subprocess.run(verify, stdin=f, capture_output=True, text=True, check=False)
        assert v.returncode == 0, v.stderr
        assert "Good" in v.stdout
        # The other key is not the signer: verify against it fails.
        allowed.write_text(f"dev@example.org {openssh_line(st.ed25519['other'])}\n")
        with open(msg, "rb") as f:
            v = subprocess.run(verify, stdin=f, capture_output=True, text=True, check=False)
        assert v.returncode != 0
        # A key the agent does not hold cannot sign.
        from keycell import Ed25519PrivateKey

        stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        pub.write_text(openssh_line(stranger, "stranger") + "\n")
        r = agent.ssh("ssh-keygen", "-Y", "sign", "-f", str(pub), "-n", "git", str(msg))
        assert r.returncode != 0
        assert agent.stop() == 0
        assert "sign key 'deploy' by uid" not in agent.stderr()  # allowed uses not logged


def test_key_changing_requests_are_refused(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=())
    with Agent(st) as agent:
        newkey = st.dir / "id_new"
        r = agent.ssh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(newkey))
        assert r.returncode == 0, r.stderr
        newkey.chmod(0o600)
        add = agent.ssh("ssh-add", str(newkey))
        assert add.returncode != 0
        assert agent.ssh("ssh-add", "-t", "60", str(newkey)).returncode != 0  # constrained
        assert agent.ssh("ssh-add", "-D").returncode != 0
        pub = st.dir / "deploy.pub"
        pub.write_text(openssh_line(st.ed25519["deploy"], "deploy") + "\n")
        assert agent.ssh("ssh-add", "-d", str(pub)).returncode != 0
        # Still there, and nothing was added.
        listed = agent.ssh("ssh-add", "-L").stdout.splitlines()
        assert listed == [openssh_line(st.ed25519["deploy"], "deploy")]
        assert agent.stop() == 0
        log = agent.stderr()
        assert "add-identity by uid 0" in log
        assert "add-identity-constrained by uid 0" in log
        assert "remove-all-identities by uid 0" in log
        assert "remove-identity by uid 0" in log
