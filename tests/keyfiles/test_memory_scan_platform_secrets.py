"""Memory scan of secrets read where platforms put them: `from_file(trust="mount")`
through Kubernetes' atomic-writer links and `from_credential` from a systemd credentials
directory read the file straight into guarded memory, like every key file (invariant 1).

The child reads a hex key file both ways; the parent scans its memory for the key and for
its hex text. While the keys are alive the key bytes lie only in locked, dump-excluded
pages and the hex text (which passed through a guarded scratch region) nowhere; after
``destroy()`` neither is left.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from memscan import scan_phases, summarize
from support import write_key_file

pytestmark = pytest.mark.slow

CHILD = """
import gc, os, sys
from keycell import SecretKey

with open(sys.argv[3], "rb") as f:
    control = f.read()
mounted = SecretKey.from_file(sys.argv[1], trust="mount", format="hex")
os.environ["CREDENTIALS_DIRECTORY"] = sys.argv[2]
credential = SecretKey.from_credential("api-key", format="hex")
assert mounted == credential
gc.collect()
phase("alive")
mounted.destroy()
credential.destroy()
gc.collect()
phase("destroyed")
"""


def test_platform_secrets_go_straight_to_guarded_memory(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    vol = tmp_path / "vol"
    vol.mkdir(mode=0o755)
    stamp = vol / "..2026_12_08_01_23_45.678901234"
    stamp.mkdir(mode=0o755)
    write_key_file(stamp / "api-key", key.hex().encode(), 0o644)
    (vol / "..data").symlink_to(stamp.name)
    (vol / "api-key").symlink_to("..data/api-key")
    creds = tmp_path / "creds"
    creds.mkdir()
    write_key_file(creds / "api-key", key.hex().encode(), 0o400)
    os.chmod(creds, 0o500)
    write_key_file(tmp_path / "control", control)
    patterns = {"control": control, "key": key, "hex": key.hex().encode()}
    try:
        scans, _ = scan_phases(
            CHILD,
            str(vol / "api-key"),
            str(creds),
            str(tmp_path / "control"),
            patterns=patterns,
        )
    finally:
        os.chmod(creds, 0o700)
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["control"], summarize(alive)  # the scan sees what is there
    assert after["control"], summarize(after)
    assert alive["key"], summarize(alive)
    for h in alive["key"]:
        assert h.locked, summarize(alive)
        assert h.dontdump, summarize(alive)
    assert alive["hex"] == [], f"the hex text was left behind:\n{summarize(alive)}"
    assert after["key"] == [], f"the key was left after destroy:\n{summarize(after)}"
    assert after["hex"] == [], f"the hex text was left after destroy:\n{summarize(after)}"
