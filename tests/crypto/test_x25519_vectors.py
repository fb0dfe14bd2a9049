"""X25519 test vectors: every case of Wycheproof ``x25519_test.json``, and RFC 7748 §6.1.

keycell's documented behaviour, case by case:

- ``valid``: ``exchange`` returns a ``SecretKey`` holding exactly ``shared``.
- ``acceptable`` with an all-zero ``shared`` (flags ``LowOrderPublic`` /
  ``ZeroSharedSecret``; 31 cases): ``exchange`` raises ``ValueError``, as pyca/cryptography
  does (RFC 7748 §6.1's check). No ``SecretKey`` is created.
- every other ``acceptable`` case (twist points, non-canonical public keys with u >= p or
  the high bit set, small public keys; 223 cases): the public key loads and ``exchange``
  returns exactly ``shared`` (RFC 7748 §5 arithmetic: the high bit is masked, u is reduced
  mod p).
- ``invalid``: the file has none (pinned down by ``test_file_inventory``).

The shared secret is read back only through ``SecretKey.expose()``, for the comparison.
"""

from __future__ import annotations

import pytest
from keycell import SecretKey, X25519PrivateKey, X25519PublicKey
from vectors import WycheproofCase, load_wycheproof, result_counts, wycheproof_params

FILE = "x25519_test.json"
ZERO = bytes(32)


def test_file_inventory() -> None:
    assert result_counts(FILE) == {"valid": 264, "acceptable": 254}
    cases = load_wycheproof(FILE)
    assert all(c.algorithm == "XDH" and c.group["curve"] == "curve25519" for c in cases)
    zero = [c for c in cases if c.hex("shared") == ZERO]
    assert len(zero) == 31
    assert all(c.result == "acceptable" for c in zero)
    assert all("ZeroSharedSecret" in c.flags or "LowOrderPublic" in c.flags for c in zero)


def shared_bytes(key: SecretKey) -> bytes:
    with key.expose() as view:
        return bytes(view)


@pytest.mark.parametrize("case", wycheproof_params(FILE))
def test_x25519_vector(case: WycheproofCase) -> None:
    private = X25519PrivateKey.from_private_bytes(bytearray(case.hex("private")))
    peer = X25519PublicKey.from_public_bytes(case.hex("public"))
    assert peer.public_bytes_raw() == case.hex("public")
    expected = case.hex("shared")
    if expected == ZERO:
        assert case.result == "acceptable"
        with pytest.raises(ValueError, match="low-order"):
            private.exchange(peer)
    else:
        assert case.result in ("valid", "acceptable")
        shared = private.exchange(peer)
        assert isinstance(shared, SecretKey)
        assert len(shared) == 32
        assert shared_bytes(shared) == expected
        shared.destroy()
    private.destroy()


def test_rfc7748_section_6_1() -> None:
    a = X25519PrivateKey.from_private_bytes(
        bytearray.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    b = X25519PrivateKey.from_private_bytes(
        bytearray.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    )
    assert a.public_key().public_bytes_raw() == bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert b.public_key().public_bytes_raw() == bytes.fromhex(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    expected = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    ab = a.exchange(b.public_key())
    ba = b.exchange(a.public_key())
    assert shared_bytes(ab) == shared_bytes(ba) == expected
    assert ab == ba  # SecretKey equality is constant time over the region bytes
