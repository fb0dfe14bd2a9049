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
        done({"rc": [put, listed, get, again], "serial": serial, "list": buf.getvalue(),
              "perm": keyctl("rdescribe", str(serial)).stdout.decode(),
              "left": keyctl("rlist", "@s").stdout.decode().split()})
        """,
        str(key_file),
        str(out),
    )
    assert r["rc"] == [0, 0, 0, 1]
    assert r["list"] == f"{r['serial']}\t3f000000\t{os.geteuid()}\tkc:cli\n"
    assert r["perm"] == ""  # consumed: keyctl finds nothing any more
    assert r["left"] == []
    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600
