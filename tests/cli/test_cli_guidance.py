"""The command line guides (issue 25): messages name CLI flags, not Python keywords; key
types read "an Ed25519 key"; a missing file is reported as missing; `store list` shows
types (and `--json`); `audit verify --no-checkpoint` needs no public key; `policy sign`
never replaces a signature without `--force`; `store get` without a destination explains
itself with its own usage; output formats follow `--format` or the file name and are
reported; slow steps show a progress line on a terminal only; `store init` warns about a
weak passphrase; the docs' examples run in the order they are written."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from keycell import ECPrivateKey, Ed25519PrivateKey, SecretKey, audit
from support import KEYCELL, run_cli

FAST = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"]
ROOT = Path(__file__).resolve().parent.parent.parent


def secret_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def new_store(tmp_path: Path) -> tuple[Path, Path]:
    pw = secret_file(tmp_path / "pw", b"tulip oxygen crane velvet\n")
    store = tmp_path / "keys.kcs"
    r = run_cli("store", "init", store, "--passphrase-file", pw, *FAST)
    assert r.returncode == 0, r.stderr
    return store, pw


def run_on_tty(*args: str | Path) -> tuple[int, str, str]:
    """``keycell ARGS`` with stderr on a pseudo-terminal: (status, stdout, terminal)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [*KEYCELL, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal's last descriptor
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=120), stdout, seen.decode()


def test_messages_name_flags_not_keywords(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run_cli("keygen", "ed25519", "-o", key).returncode == 0
    r = run_cli("keygen", "ed25519", "-o", key)
    assert r.returncode == 1
    assert "already exists (use --force to replace it)" in r.stderr
    assert "overwrite=True" not in r.stderr
    store, pw = new_store(tmp_path)
    put = ("store", "put", store, "a", "--generate", "secret", "--passphrase-file", pw)
    assert run_cli(*put).returncode == 0
    r = run_cli(*put)
    assert r.returncode == 1
    assert "use --overwrite to replace it" in r.stderr
    assert "overwrite=True" not in r.stderr
    out = tmp_path / "out.key"
    get = ("store", "get", store, "a", "-o", out, "--passphrase-file", pw)
    assert run_cli(*get).returncode == 0
    r = run_cli(*get)
    assert "use --force to replace it" in r.stderr


def test_key_types_take_their_article(tmp_path: Path) -> None:
    r = run_cli("keygen", "ed25519", "-o", tmp_path / "k.pem")
    assert "wrote an Ed25519 key to" in r.stderr
    r = run_cli("keygen", "secret", "-o", tmp_path / "s.key")
    assert "wrote a secret key to" in r.stderr
    r = run_cli("keygen", "ec", "-o", tmp_path / "e.key", "--format", "hex")
    assert r.returncode == 2
    assert "an EC key file is PKCS#8" in r.stderr
    policy = tmp_path / "policy.json"
    policy.write_text('{"keycell_policy": 1}')
    x = tmp_path / "x.pem"
    assert run_cli("keygen", "x25519", "-o", x).returncode == 0
    r = run_cli("policy", "sign", policy, "--key-file", x)
    assert r.returncode == 1, r.stderr
    assert "an X25519 key cannot sign policies; use an Ed25519, EC or RSA key" in r.stderr
    assert not re.search(r"\ba [aeiouAEIOU]", r.stderr)


def test_a_missing_file_is_reported_as_missing(tmp_path: Path) -> None:
    for args in (["pubkey", tmp_path / "absent.pem"], ["pubkey", "--format", "der", "nope"]):
        r = run_cli(*args)
        assert r.returncode == 1
        assert "No such file" in r.stderr, r.stderr
        assert "cannot tell the key type" not in r.stderr
    # A file that is there but of no known type still says so.
    junk = secret_file(tmp_path / "junk.pem", b"-----BEGIN JUNK-----\n-----END JUNK-----\n")
    r = run_cli("pubkey", junk)
    assert "cannot tell the key type" in r.stderr


def test_store_list_shows_types_and_json(tmp_path: Path) -> None:
    store, pw = new_store(tmp_path)
    for name, kind, extra in [
        ("api", "secret", []),
        ("sig", "ed25519", []),
        ("jwt", "ec", ["--curve", "P-384"]),
        ("dh", "x25519", []),
    ]:
        r = run_cli(
            "store", "put", store, name, "--generate", kind, *extra, "--passphrase-file", pw
        )
        assert r.returncode == 0, r.stderr
    r = run_cli("store", "list", store, "--passphrase-file", pw)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "api\tsecret\ndh\tx25519\njwt\tec P-384\nsig\ted25519\n"
    r = run_cli("store", "list", store, "--json", "--passphrase-file", pw)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"name": "api", "type": "secret"},
        {"name": "dh", "type": "x25519"},
        {"name": "jwt", "type": "ec", "curve": "P-384"},
        {"name": "sig", "type": "ed25519"},
    ]


def test_audit_verify_without_a_checkpoint_needs_no_public_key(tmp_path: Path) -> None:
    k0 = tmp_path / "k0"
    assert run_cli("keygen", "secret", "-o", k0).returncode == 0
    log = tmp_path / "audit.log"
    with SecretKey.from_file(k0) as key:
        w = audit.AuditLog.create(log, key=key, origin="test.example/log")
        w.append({"event": "x"})
        w.close()
    r = run_cli("audit", "verify", log, "--key-file", k0, "--no-checkpoint")
    assert r.returncode == 0, r.stderr
    # The genesis record and the one appended.
    assert r.stdout == "valid: 2 records (seq 0..1), 1 epochs, no checkpoint\n", r.stdout
    r = run_cli("audit", "verify", log, "--key-file", k0)
    assert r.returncode == 2
    assert "--public-key PUB.pem is needed" in r.stderr
    assert "--no-checkpoint" in r.stderr
    # The library: a checkpoint without the signer's key is a ValueError.
    with SecretKey.from_file(k0) as key:
        assert audit.verify(log, key=key, checkpoint=False).valid
        with pytest.raises(ValueError, match="needs public_key"):
            audit.verify(log, key=key, checkpoint=b"note")


def test_audit_verify_with_a_public_key_needs_the_checkpoint(tmp_path: Path) -> None:
    """The outside review's PoC 07: the tail cut and the checkpoint file deleted with it
    is not "valid, no checkpoint" when --public-key asks for the checkpoint."""
    k0 = tmp_path / "k0"
    signer = tmp_path / "signer.pem"
    pub = tmp_path / "pub.pem"
    assert run_cli("keygen", "secret", "-o", k0).returncode == 0
    assert run_cli("keygen", "ed25519", "-o", signer).returncode == 0
    r = run_cli("pubkey", signer, "--pem")
    assert r.returncode == 0, r.stderr
    pub.write_text(r.stdout)
    log = tmp_path / "audit.log"
    with SecretKey.from_file(k0) as key, Ed25519PrivateKey.from_file(signer) as sig:
        w = audit.AuditLog.create(log, key=key, origin="test.example/log", signer=sig)
        for i in range(5):
            w.append({"event": i})
        w.checkpoint()
        w.close()
    r = run_cli("audit", "verify", log, "--key-file", k0, "--public-key", pub)
    assert r.returncode == 0, r.stderr
    assert "checkpoint of" in r.stdout
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]))
    Path(f"{log}.checkpoint").unlink()
    for extra in ([], ["--json"], ["--rotated"]):
        r = run_cli("audit", "verify", log, "--key-file", k0, "--public-key", pub, *extra)
        assert r.returncode == 1, (extra, r.stdout, r.stderr)
        assert f"the checkpoint {log}.checkpoint is missing" in r.stderr
        assert "valid" not in r.stdout
    # Asked for explicitly, checking without a checkpoint still works.
    r = run_cli("audit", "verify", log, "--key-file", k0, "--no-checkpoint")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("valid: 3 records (seq "), r.stdout


def test_policy_sign_force_replaces_a_planted_link_without_following_it(
    tmp_path: Path,
) -> None:
    """The outside review's PoC 08: a symlink planted at FILE.sig is replaced by
    --force (written atomically), never written through."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"keycell_policy": 1}')
    signer = tmp_path / "signer.pem"
    assert run_cli("keygen", "ed25519", "-o", signer).returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("precious content\n")
    sig = tmp_path / "policy.json.sig"
    sig.symlink_to(victim)
    r = run_cli("policy", "sign", policy, "--key-file", signer)
    assert r.returncode != 0
    assert "already exists" in r.stderr
    r = run_cli("policy", "sign", policy, "--key-file", signer, "--force")
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious content\n"
    assert not sig.is_symlink()
    assert sig.is_file()
    # Ed25519 signatures are deterministic: the same as one written to a fresh path.
    fresh = tmp_path / "fresh.sig"
    r = run_cli("policy", "sign", policy, "--key-file", signer, "-o", fresh)
    assert r.returncode == 0, r.stderr
    assert sig.read_bytes() == fresh.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fresh.sig",
        "policy.json",
        "policy.json.sig",
        "signer.pem",
        "victim",
    ]


def test_policy_sign_never_replaces_a_signature_without_force(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"keycell_policy": 1}')
    signer = tmp_path / "signer.pem"
    assert run_cli("keygen", "ed25519", "-o", signer).returncode == 0
    sig = tmp_path / "policy.json.sig"
    r = run_cli("policy", "sign", policy, "--key-file", signer)
    assert r.returncode == 0, r.stderr
    first = sig.read_bytes()
    # A second signer's signature does not silently replace the first.
    other = tmp_path / "other.pem"
    assert run_cli("keygen", "ed25519", "-o", other).returncode == 0
    r = run_cli("policy", "sign", policy, "--key-file", other)
    assert r.returncode == 1
    assert "already exists (use --force to replace it)" in r.stderr
    assert sig.read_bytes() == first
    r = run_cli("policy", "sign", policy, "--key-file", other, "--force")
    assert r.returncode == 0, r.stderr
    assert sig.read_bytes() != first
    pub = tmp_path / "other.pub"
    pub.write_bytes(Ed25519PrivateKey.from_file(other).public_key().public_bytes_pem())
    assert run_cli("policy", "verify", policy, "--public-key", pub).returncode == 0


def test_store_get_without_a_destination_explains_itself(tmp_path: Path) -> None:
    store, pw = new_store(tmp_path)
    r = run_cli("store", "get", store, "a", "--passphrase-file", pw)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: keycell store get ")
    assert "-o FILE writes it to a new key file" in r.stderr
    assert "--print-secret prints a secret key as hex" in r.stderr
    r = run_cli("store", "get", store, "a", "-o", tmp_path / "x", "--print-secret")
    assert r.returncode == 2
    assert "not both" in r.stderr


def test_output_format_follows_the_name_and_is_reported(tmp_path: Path) -> None:
    store, pw = new_store(tmp_path)
    src = tmp_path / "src.hex"
    r = run_cli("keygen", "secret", "-o", src)
    assert r.returncode == 0
    assert "(hex, as its .hex name says; mode 0600)" in r.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n?", src.read_text())
    r = run_cli("store", "put", store, "a", "--key-file", src, "--passphrase-file", pw)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "a.b64"
    r = run_cli("store", "get", store, "a", "-o", out, "--passphrase-file", pw)
    assert "(base64, as its .b64 name says; mode 0600)" in r.stderr
    assert SecretKey.from_file(out, format="base64") == SecretKey.from_file(src)
    # A suffix that names a format the key cannot have is not taken for one.
    r = run_cli("keygen", "ec", "-o", tmp_path / "ec.hex")
    assert r.returncode == 0, r.stderr
    assert "(pem, the default" in r.stderr
    assert ECPrivateKey.from_file(tmp_path / "ec.hex", format="pem").curve == "P-256"
    plain = tmp_path / "a"
    r = run_cli("store", "get", store, "a", "-o", plain, "--passphrase-file", pw)
    assert "(raw, the default: --format or a .pem/.der/.hex/.b64 name chooses another" in (
        r.stderr
    )
    assert len(plain.read_bytes()) == 32
    r = run_cli("store", "get", store, "a", "-o", tmp_path / "b.b64", "--format", "hex",
                "--passphrase-file", pw)  # fmt: skip
    assert "(hex; mode 0600)" in r.stderr


def test_slow_steps_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    rc, _, tty = run_on_tty("keygen", "rsa", "--bits", "2048", "-o", tmp_path / "r.pem")
    assert rc == 0, tty
    assert "keycell: generating a 2048-bit RSA key..." in tty
    assert "\r\x1b[K" in tty  # erased when done
    pw = secret_file(tmp_path / "pw", b"tulip oxygen crane velvet\n")
    rc, _, tty = run_on_tty("store", "init", tmp_path / "s", "--passphrase-file", pw, *FAST)
    assert rc == 0, tty
    assert "deriving the store key from the passphrase (Argon2id)..." in tty
    rc, out, tty = run_on_tty("store", "list", tmp_path / "s", "--passphrase-file", pw)
    assert rc == 0, tty
    assert "deriving the store key" in tty
    assert out == ""
    # Not on a pipe or a log.
    r = run_cli("keygen", "rsa", "--bits", "2048", "-o", tmp_path / "r2.pem")
    assert r.returncode == 0
    assert "generating" not in r.stderr
    assert "\x1b" not in r.stderr
    r = run_cli("store", "list", tmp_path / "s", "--passphrase-file", pw)
    assert r.stderr == ""


def test_store_init_warns_about_a_weak_passphrase(tmp_path: Path) -> None:
    for content, warning in [
        (b"Password1\n", "one of the most common passwords"),
        (b"short pw\n", "shorter than 12 characters"),
        (b"zzzzzzzzzzzzzzzzzz\n", "one character or a short sequence repeated"),
        (("é" * 13 + "\n").encode(), "one character or a short sequence repeated"),
        (b"passwordpassword\n", "one character or a short sequence repeated"),
        (b"ab" * 8 + b"\n", "one character or a short sequence repeated"),
    ]:
        pw = secret_file(tmp_path / "pw", content)
        store = tmp_path / "s.kcs"
        r = run_cli("store", "init", store, "--passphrase-file", pw, *FAST)
        assert r.returncode == 0, r.stderr  # a warning, not a refusal
        assert f"keycell: warning: the passphrase is {warning}" in r.stderr
        assert content.strip().decode() not in r.stderr
        store.unlink()
    pw = secret_file(tmp_path / "pw", b"tulip oxygen crane velvet\n")
    r = run_cli("store", "init", store, "--passphrase-file", pw, *FAST)
    assert r.returncode == 0
    assert "warning" not in r.stderr
    weak = secret_file(tmp_path / "weak", b"letmein\n")
    r = run_cli(
        "store", "rotate", store, "--passphrase-file", pw, "--new-passphrase-file", weak, *FAST
    )
    assert r.returncode == 0, r.stderr
    assert "warning: the new master: the passphrase is one of the most common" in r.stderr


def test_pkcs11_doc_generates_before_it_looks_up() -> None:
    """docs/pkcs11.md's API example runs top to bottom: every key it looks up by label was
    generated above the lookup."""
    text = (ROOT / "docs" / "pkcs11.md").read_text()
    block = text.split("```python", 1)[1].split("```", 1)[0]
    made: set[str] = set()
    for line in block.splitlines():
        code = line.split("#", 1)[0]
        for label in re.findall(r"generate_\w+\((?:label=)?\"([^\"]+)\"", code):
            made.add(label)
        for label in re.findall(r"\w+_(?:private|secret)_key\((?:label=)?\"([^\"]+)\"", code):
            assert label in made, f"docs/pkcs11.md looks up {label!r} before generating it"
        for label in re.findall(r"object=([\w-]+)", code):
            assert label in made, f"docs/pkcs11.md opens {label!r} before generating it"
    assert made
