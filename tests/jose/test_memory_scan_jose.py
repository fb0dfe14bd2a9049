"""Memory scans after JOSE use (issue 24: no key bytes outside guarded
memory after use).

A child loads an HMAC key from a file into a ``SecretKey`` and signs and verifies HS256,
HS384 and HS512 tokens with ``keycell.jose`` (JWS and JWT) and, through the adapter, with
PyJWT. While the key is alive every copy of it lies in locked, dump-excluded pages and the
``K ^ ipad``/``K ^ opad`` blocks are nowhere; after ``destroy()`` no copy is left. A
``bytes`` copy of another secret is the positive control. The same for an Ed25519 key's
seed after EdDSA tokens (keycell.jose, a JWKS of the key, PyJWT).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from memscan import scan_phases, summarize

pytestmark = pytest.mark.slow

CHILD = """
import gc, sys
import jwt as pyjwt_module
from keycell import SecretKey
from keycell.jose import jws, jwt, pyjwt

with open(sys.argv[2], "rb") as f:
    control = f.read()               # positive control, kept on purpose
key = SecretKey.from_file(sys.argv[1])
pyjwt.install()
for alg in ("HS256", "HS384", "HS512"):
    for i in range(20):
        token = jwt.encode({"sub": "alice", "n": i}, key, algorithm=alg)
        assert jwt.decode(token, key, algorithms=[alg])["n"] == i
        signed = jws.sign(b"x" * i, key, algorithm=alg)
        assert jws.verify(signed, key, algorithms=[alg]) == b"x" * i
        other = pyjwt_module.encode({"n": i}, key, algorithm=alg)
        assert pyjwt_module.decode(other, key, algorithms=[alg]) == {"n": i}
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


def test_hmac_key_only_in_locked_pages_after_jose_use(tmp_path: Path) -> None:
    secret = secrets.token_bytes(64)
    control = secrets.token_bytes(32)
    for name, data in (("key", secret), ("control", control)):
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o600)
    patterns = {
        "key": secret,
        "control": control,
        "key ^ ipad": bytes(b ^ 0x36 for b in secret),
        "key ^ opad": bytes(b ^ 0x5C for b in secret),
    }
    scans, _ = scan_phases(
        CHILD, str(tmp_path / "key"), str(tmp_path / "control"), patterns=patterns
    )
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["control"], summarize(alive)
    assert alive["key"], summarize(alive)  # the scan sees the region
    assert all(h.locked and h.dontdump for h in alive["key"]), summarize(alive)
    assert alive["key ^ ipad"] == alive["key ^ opad"] == [], summarize(alive)
    assert after["key"] == [], summarize(after)
    assert after["key ^ ipad"] == after["key ^ opad"] == [], summarize(after)


ED_CHILD = """
import gc, sys
import jwt as pyjwt_module
from keycell import Ed25519PrivateKey
from keycell.jose import JWKS, jwt, pyjwt

key = Ed25519PrivateKey.from_file(sys.argv[1], format="raw")
jwks = JWKS([key])
pyjwt.install()
for i in range(20):
    token = jwt.encode({"n": i}, key, kid=True)
    assert jwt.decode(token, jwks, algorithms=["EdDSA"]) == {"n": i}
    other = pyjwt_module.encode({"n": i}, key, algorithm="EdDSA")
    assert pyjwt_module.decode(other, key.public_key(), algorithms=["EdDSA"]) == {"n": i}
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


def test_ed25519_seed_only_in_locked_pages_after_jose_use(tmp_path: Path) -> None:
    seed = secrets.token_bytes(32)
    (tmp_path / "ed").write_bytes(seed)
    (tmp_path / "ed").chmod(0o600)
    scans, _ = scan_phases(ED_CHILD, str(tmp_path / "ed"), patterns={"seed": seed})
    alive, after = scans["alive"], scans["destroyed"]
    assert alive["seed"], summarize(alive)
    assert all(h.locked and h.dontdump for h in alive["seed"]), summarize(alive)
    assert after["seed"] == [], summarize(after)
