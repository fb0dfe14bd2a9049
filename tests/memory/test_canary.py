"""A canary sits directly in front of every key's secret bytes, wherever its derived state is.

A `SecretKey` keeps its HMAC pads, an `Ed25519PrivateKey` its expanded key, in the same
region as the key, but as a separate part behind its own canary; the key is the last part,
right-aligned against the trailing guard page, with its own canary directly in front
(`src/memory/guarded.rs`, `src/crypto/symmetric.rs`, `src/crypto/ed25519.rs`):

    | guard | ... [canary][derived state][canary][key] | guard |

So a one-byte underflow out of the key, and a one-byte overflow out of the derived state,
both land in the key's canary, and freeing the key aborts the process (as libsodium does).
Each case runs in a forked child: it makes the page writable with ``mprotect`` (the region is
read-only while idle), flips one byte, and destroys the key.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

import pytest
from keycell import Ed25519PrivateKey, SecretKey, X25519PrivateKey, _native
from support import flip_bytes, free_key, run_forked

CANARY_LEN = 16

MAKERS: dict[str, Any] = {
    "SecretKey": lambda: SecretKey.generate(32),
    "SecretKey-1": lambda: SecretKey.generate(1),
    "SecretKey-5000": lambda: SecretKey.generate(5000),
    "Ed25519PrivateKey": Ed25519PrivateKey.generate,
    "X25519PrivateKey": X25519PrivateKey.generate,
}


def _flip_byte_and_free(kind: str, offset_from_key: int, free: str) -> str:
    key = MAKERS[kind]()
    flip_bytes(_native._key_address(key) + offset_from_key)
    os.write(2, b"corrupted\n")
    free_key(key, free)
    return "returned"


def _assert_aborted(res: Any) -> None:
    assert res.signal == signal.SIGABRT, res
    assert "corrupted" in res.stderr, "the child must die after the write, not before"
    assert "canary mismatch" in res.stderr
    assert "memory corruption detected" in res.stderr


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("free", ["destroy", "gc"])
def test_one_byte_underflow_out_of_the_key_aborts(kind: str, free: str) -> None:
    """The byte just before the key (seed, scalar) is its canary's last byte."""
    _assert_aborted(run_forked(_flip_byte_and_free, kind, -1, free))


@pytest.mark.parametrize("kind", ["SecretKey", "SecretKey-1", "Ed25519PrivateKey"])
def test_one_byte_overflow_out_of_the_derived_state_aborts(kind: str) -> None:
    """The byte just after the HMAC pads (the Ed25519 expanded key) is the first byte of
    the key's canary."""
    _assert_aborted(run_forked(_flip_byte_and_free, kind, -CANARY_LEN, "destroy"))


def _canaries(kind: str) -> dict[str, str]:
    key = MAKERS[kind]()
    addr = _native._key_address(key)
    return {"in_front": ctypes.string_at(addr - CANARY_LEN, CANARY_LEN).hex()}


def test_the_same_random_canary_is_in_front_of_every_key() -> None:
    """The bytes in front of each kind of key are the process canary: random, identical."""
    seen = {_canaries(kind)["in_front"] for kind in MAKERS}
    assert len(seen) == 1
    (canary,) = seen
    assert canary != "00" * CANARY_LEN


def test_key_address_accepts_private_keys_only() -> None:
    with pytest.raises(TypeError):
        _native._key_address(b"not a key")  # type: ignore[arg-type]
    sk = Ed25519PrivateKey.generate()
    sk.destroy()
    with pytest.raises(Exception, match="destroyed"):
        _native._key_address(sk)  # type: ignore[arg-type]
