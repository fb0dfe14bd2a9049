"""Memory scan of a child that logs in to a token with a PIN file: while logged in, every
copy of the PIN in the child's memory is in locked, dump-excluded pages (keycell's guarded
region; SoftHSM2's own secure allocator); after ``close()`` none is left. The child reads
the PIN only through ``pin_file=``, so the only copies are the ones the code under test
made; a ``bytes`` read of another secret is the positive control."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from memscan import scan_phases, summarize
from pkcs11_support import Hsm

pytestmark = pytest.mark.slow

CHILD = """
import gc, sys
from keycell import pkcs11
module, label, pin_file, control_file = sys.argv[1:5]
with open(control_file, "rb") as f:
    control = f.read()
token = pkcs11.Token.open(module=module, token_label=label, pin_file=pin_file)
key = token.ed25519_private_key(label="kc-scan")
key.sign(b"message")
gc.collect()
phase("alive")
key.destroy()
token.close()
del key, token
gc.collect()
phase("closed")
"""


def test_the_pin_is_only_in_locked_memory_and_gone_after_close(hsm: Hsm, tmp_path: Path) -> None:
    from keycell import pkcs11

    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
        t.generate_ed25519(label="kc-scan")
    control = secrets.token_bytes(32)
    (tmp_path / "control").write_bytes(control)
    scans, _ = scan_phases(
        CHILD, hsm.module, hsm.label, str(hsm.pin_file), str(tmp_path / "control"),
        patterns={"pin": hsm.pin.encode(), "control": control},
        phases=("alive", "closed"),
    )  # fmt: skip
    alive, after = scans["alive"], scans["closed"]
    assert alive["control"], summarize(alive)  # the scan sees what is there
    assert alive["pin"], summarize(alive)  # keycell keeps it (guarded) while logged in
    for h in alive["pin"]:
        assert h.locked, summarize(alive)
        assert h.dontdump, summarize(alive)
    assert after["pin"] == [], summarize(after)
