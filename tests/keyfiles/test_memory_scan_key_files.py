"""Memory scan of private key files and the key store.

A child loads an Ed25519 or X25519 key from a PKCS#8 PEM file the parent wrote, writes
it back in every format (PEM, DER, raw, hex, base64), reads each file again, and puts the
key in a key store and gets it back. The parent scans the child's memory for the key and
for every encoding of it that passed through the child: the hex and base64 text, the
PKCS#8 DER and its PEM line. While the key is alive the key itself may only lie in
locked, dump-excluded pages, and no encoding may be left anywhere (they lived in guarded
scratch regions that are wiped); after ``destroy()`` nothing is left.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from asym_support import write_key_file
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from memscan import scan_phases, summarize

pytestmark = pytest.mark.slow

CHILD = """
import gc, os, sys
import keycell
from keycell import KeyStore, SecretKey

cls = getattr(keycell, sys.argv[1])
out = sys.argv[4]
with open(sys.argv[3], "rb") as f:
    control = f.read()
key = cls.from_file(sys.argv[2])
for fmt in ("pem", "der", "raw", "hex", "base64"):
    path = os.path.join(out, "written." + fmt)
    key.to_file(path, format=fmt)
    cls.from_file(path, format=fmt).destroy()
store = KeyStore.create(os.path.join(out, "store.kcs"), master=SecretKey.generate(32))
store.put("k", key)
store.get("k").destroy()
store.close()
gc.collect()
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


@pytest.mark.parametrize(
    ("cls_name", "pyca"),
    [
        ("Ed25519PrivateKey", ed25519.Ed25519PrivateKey),
        ("X25519PrivateKey", x25519.X25519PrivateKey),
    ],
)
def test_key_files_and_store_leave_no_encoding_behind(
    tmp_path: Path, cls_name: str, pyca: type
) -> None:
    private = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    der = pyca.from_private_bytes(private).private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = pyca.from_private_bytes(private).private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_key_file(tmp_path / "key.pem", pem)
    write_key_file(tmp_path / "control", control)
    out = tmp_path / "out"
    out.mkdir()
    patterns = {
        "control": control,
        "private key": private,
        "hex": private.hex().encode(),
        "base64": base64.b64encode(private),
        "PKCS#8 DER": der,
        "PEM line": base64.b64encode(der),
    }
    scans, _ = scan_phases(
        CHILD,
        cls_name,
        str(tmp_path / "key.pem"),
        str(tmp_path / "control"),
        str(out),
        patterns=patterns,
    )
    alive, after = scans["alive"], scans["destroyed"]
    print(cls_name, "alive", {n: len(h) for n, h in alive.items()})
    assert alive["control"], summarize(alive)  # the scan sees what is there
    assert after["control"], summarize(after)
    assert alive["private key"], summarize(alive)
    for h in alive["private key"]:
        assert h.locked, summarize(alive)
        assert h.dontdump, summarize(alive)
    for name in ("hex", "base64", "PKCS#8 DER", "PEM line"):
        assert alive[name] == [], f"{name} left behind:\n{summarize(alive)}"
    for name in patterns:
        if name != "control":
            assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"
    # The files themselves are the standard encodings.
    assert (out / "written.pem").read_bytes() == pem
    assert (out / "written.der").read_bytes() == der
