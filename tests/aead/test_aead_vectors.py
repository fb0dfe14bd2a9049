"""Wycheproof AES-GCM, ChaCha20-Poly1305 and XChaCha20-Poly1305 vectors (every case).

- ``valid``: ``encrypt`` returns exactly ``ct || tag`` and ``decrypt`` returns ``msg``.
- ``invalid``: ``decrypt`` raises ``InvalidTag`` (modified tag or ciphertext), or
  ``ValueError`` where the nonce length is one the class does not take (an empty nonce,
  or a 64-bit ChaCha20 nonce); ``encrypt`` with such a nonce raises ``ValueError`` too.
- AES-GCM takes nonces of 8 to 128 bytes, as pyca/cryptography does (96 bits is the fast,
  recommended size; other sizes derive the counter block with GHASH): Wycheproof's cases
  of 64 to 1024-bit nonces run as valid/invalid cases; the shorter ones (8 to 48 bits) and
  the 2056-bit one must raise ``ValueError`` on both encrypt and decrypt. The numbers are
  pinned below, so no case can silently change category.
"""

from __future__ import annotations

from collections import Counter

import keycell
import pytest
from keycell import SecretKey
from vectors import WycheproofCase, load_wycheproof, wycheproof_params

CLASSES = {
    "aes_gcm_test.json": (keycell.AESGCM, range(8, 129)),
    "chacha20_poly1305_test.json": (keycell.ChaCha20Poly1305, range(12, 13)),
    "xchacha20_poly1305_test.json": (keycell.XChaCha20Poly1305, range(24, 25)),
}


def _outcome(case: WycheproofCase) -> str:
    _, nonce_lens = CLASSES[case.file]
    if len(case.hex("iv")) not in nonce_lens:
        return "nonce-refused"
    return case.result


@pytest.mark.parametrize("case", wycheproof_params(*CLASSES))
def test_aead_vector(case: WycheproofCase) -> None:
    cls, _ = CLASSES[case.file]
    key = SecretKey.from_buffer(bytearray(case.hex("key")))
    aead = cls(key)
    iv, aad, msg = case.hex("iv"), case.hex("aad"), case.hex("msg")
    ct_tag = case.hex("ct") + case.hex("tag")
    outcome = _outcome(case)
    if outcome == "valid":
        assert aead.encrypt(iv, msg, aad) == ct_tag
        assert aead.decrypt(iv, ct_tag, aad) == msg
        if not aad:
            assert aead.decrypt(iv, ct_tag, None) == msg
    elif outcome == "invalid":
        with pytest.raises(keycell.InvalidTag):
            aead.decrypt(iv, ct_tag, aad)
    else:
        assert outcome == "nonce-refused"
        with pytest.raises(ValueError, match="nonce must be"):
            aead.encrypt(iv, msg, aad)
        with pytest.raises(ValueError, match="nonce must be"):
            aead.decrypt(iv, ct_tag, aad)


def test_outcome_counts_are_pinned() -> None:
    counts = {f: Counter(_outcome(c) for c in load_wycheproof(f)) for f in CLASSES}
    assert counts["aes_gcm_test.json"] == {"valid": 202, "invalid": 81, "nonce-refused": 33}
    assert counts["chacha20_poly1305_test.json"] == {
        "valid": 256,
        "invalid": 60,
        "nonce-refused": 9,
    }
    assert counts["xchacha20_poly1305_test.json"] == {
        "valid": 246,
        "invalid": 60,
        "nonce-refused": 9,
    }
