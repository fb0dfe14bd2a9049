"""RFC 8452 appendix C vectors for ``AESGCMSIV`` (AES-128 and AES-256, with and without
associated data, and the counter-wrap cases of C.3): encrypt gives the RFC's result, decrypt
inverts it, and any flipped bit of the result raises ``InvalidTag``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keycell
import pytest
from keycell import SecretKey

VECTORS: list[dict[str, str]] = json.loads(
    (Path(__file__).parent.parent / "vectors" / "rfc8452" / "aes_gcm_siv.json").read_text()
)["vectors"]


def _h(v: dict[str, str], k: str) -> bytes:
    return bytes.fromhex(v[k])


@pytest.mark.parametrize("v", VECTORS, ids=[f"rfc8452-{i}" for i in range(len(VECTORS))])
def test_rfc8452_vector(v: dict[str, Any]) -> None:
    a = keycell.AESGCMSIV(SecretKey.from_buffer(bytearray(_h(v, "key"))))
    nonce, aad, pt, ct = _h(v, "nonce"), _h(v, "aad"), _h(v, "plaintext"), _h(v, "ciphertext")
    assert a.encrypt(nonce, pt, aad) == ct
    assert a.decrypt(nonce, ct, aad) == pt
    bad = bytearray(ct)
    bad[0] ^= 1
    with pytest.raises(keycell.InvalidTag):
        a.decrypt(nonce, bytes(bad), aad)


def test_vector_count() -> None:
    assert len(VECTORS) == 50
    assert {len(_h(v, "key")) for v in VECTORS} == {16, 32}
