"""``keycell keyring put|get|list`` in a fresh session keyring, checked with keyctl."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from keyring_session import in_session, requires_keyring

pytestmark = requires_keyring


def test_put_list_get_consume(tmp_path: Path) -> None:
    data = secrets.token_bytes(32)
    key_file = tmp_path / "in.key"
    key_file.write_bytes(data)
    key_file.chmod(0o600)
    out = tmp_path / "out.key"
    r = in_session(
        """
        from keycell.cli import main
        import contextlib, io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            put = main(["keyring", "put", "kc:cli", "--key-file", sys.argv[1], "--timeout", "60"])
        serial = int(buf.getvalue().split()[0])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            listed = main(["keyring", "list"])
        get = main(["keyring", "get", "kc:cli", "-o", sys.argv[2], "--consume"])
        again = main(["keyring", "get", "kc:cli", "-o", sys.argv[2] + ".2"])
        # The consumed key is invalidated at once; the kernel's collector unlinks it from
        # the keyring from a work queue, later under load: the deadline only bounds a
        # failure.
        import time
        deadline = time.monotonic() + 60
        while True:
            left = keyctl("rlist", "@s").stdout.decode().split()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        done({"rc": [put, listed, get, again], "serial": serial, "list": buf.getvalue(),
              "perm": keyctl("rdescribe", str(serial)).stdout.decode(), "left": left})
        """,
        str(key_file),
        str(out),
        timeout=120,
    )
    assert r["rc"] == [0, 0, 0, 1]
    assert r["list"] == f"{r['serial']}\t3f000000\t{os.geteuid()}\tkc:cli\n"
    assert r["perm"] == ""  # consumed: keyctl finds nothing any more
    assert r["left"] == []
    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600


def test_put_never_reports_a_key_that_dies_with_the_command(tmp_path: Path) -> None:
    """Issue 21 (9): in a shell with no session keyring of its own (its session keyring is
    the user-session keyring, as in cron, CI and many containers), the kernel gives a
    storing process a new session keyring that dies with it; `put` printed a serial and
    exited 0 for a key that was already gone. Now it refuses and says what to do; thread
    and process keyrings, which die with the command too, are refused as well."""
    import subprocess

    from support import KEYCELL, write_key_file

    key_file = write_key_file(tmp_path / "in.key", secrets.token_bytes(32))
    put = (*KEYCELL, "keyring", "put", "kc:gone", "--key-file", str(key_file))
    user_session = f"_uid_ses.{os.geteuid()}"

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    # `keyctl session NAME` runs the command with that keyring as its session keyring.
    r = run("keyctl", "session", user_session, *put)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no session keyring of its own" in r.stderr
    assert "--keyring user-session" in r.stderr
    assert r.stdout == ""
    for ring in ("thread", "process"):
        r = run("keyctl", "session", "-", *put, "--keyring", ring)
        assert r.returncode == 1
        assert "dies when this command exits" in r.stderr
    # Where the key lasts, put works: the user-session keyring, and a real session.
    r = run("keyctl", "session", user_session, *put, "--keyring", "user-session", "--timeout", "60")
    assert r.returncode == 0, r.stderr
    serial = r.stdout.split()[0]
    # It outlived the command (checked from a process that possesses it).
    assert run("keyctl", "session", user_session, "keyctl", "rdescribe", serial).returncode == 0
    assert run("keyctl", "session", user_session, "keyctl", "invalidate", serial).returncode == 0
    r = run("keyctl", "session", "-", *put)
    assert r.returncode == 0, r.stderr


def test_put_and_get_an_ec_key(tmp_path: Path) -> None:
    # keyring put --type ec stores the scalar; get --type ec writes it back as PKCS#8.
    from keycell import ECPrivateKey

    key_file = tmp_path / "ec.pem"
    original = ECPrivateKey.generate("P-384")
    original.to_file(key_file)
    out = tmp_path / "out.pem"
    r = in_session(
        """
        from keycell.cli import main
        import contextlib, io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            put = main(["keyring", "put", "kc:ec", "--type", "ec", "--key-file", sys.argv[1],
                        "--timeout", "60"])
        serial = int(buf.getvalue().split()[0])
        payload = keyctl("pipe", str(serial)).stdout
        get = main(["keyring", "get", "kc:ec", "--type", "ec", "-o", sys.argv[2]])
        done({"rc": [put, get], "len": len(payload)})
        """,
        str(key_file),
        str(out),
        timeout=120,
    )
    assert r["rc"] == [0, 0]
    assert r["len"] == 48  # the P-384 scalar
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert ECPrivateKey.from_file(out).public_key() == original.public_key()
    original.destroy()


def test_get_writes_the_format_the_name_says_and_reports_it(tmp_path: Path) -> None:
    """The keyring holds the bare key, not the file it came from: `keyring get -o`
    writes the format `--format` or the file's suffix names, else the default, and says
    which."""
    data = secrets.token_bytes(32)
    src = tmp_path / "in.hex"
    src.write_text(data.hex())
    src.chmod(0o600)
    r = in_session(
        """
        import contextlib, io
        from keycell.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            put = main(["keyring", "put", "kc:fmt", "--key-file", sys.argv[1],
                        "--timeout", "60"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rcs = [main(["keyring", "get", "kc:fmt", "-o", sys.argv[2] + "/" + name])
                   for name in ("out.hex", "out.b64", "out")]
            rcs.append(main(["keyring", "get", "kc:fmt", "-o", sys.argv[2] + "/x.hex",
                             "--format", "raw"]))
        done({"rc": [put, *rcs], "err": err.getvalue()})
        """,
        str(src),
        str(tmp_path),
        timeout=120,
    )
    assert r["rc"] == [0, 0, 0, 0, 0]
    assert (tmp_path / "out.hex").read_text().strip() == data.hex()
    assert (tmp_path / "out").read_bytes() == data
    assert (tmp_path / "x.hex").read_bytes() == data
    assert "(hex, as its .hex name says; mode 0600)" in r["err"]
    assert "(base64, as its .b64 name says; mode 0600)" in r["err"]
    assert "(raw, the default: --format or a .pem/.der/.hex/.b64 name chooses another" in (
        r["err"]
    )
    assert "(raw; mode 0600)" in r["err"]
