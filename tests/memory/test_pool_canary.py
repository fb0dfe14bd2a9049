"""Every pooled key sits between two random canaries, directly against its bytes
(``src/memory/pool.rs``):

    [canary 16][key][canary 16]     (in a slot of a shared, read-write, locked arena)

A one-byte overflow or underflow, whatever the key's length, aborts the process (SIGABRT)
when the key is destroyed; a destroyed key's slot is zeroed. The arena is read-write, so the
children poke the bytes directly with ctypes.
"""

from __future__ import annotations

import ctypes
import os
import signal

import keycell
import pytest
from keycell import SecretKey, _native
from support import run_forked

CANARY_LEN = 16
SIZES = [1, 13, 32, 33, 64, 99]


def _pooled(length: int) -> SecretKey:
    with keycell.policy(isolation="pool"):
        key = SecretKey.generate(length)
    assert key.protection.isolation == "pool"
    assert key.protection.read_only_idle is False
    return key


def _flip_and_destroy(length: int, offset: int) -> str:
    key = _pooled(length)
    target = _native._key_address(key) + offset
    b = ctypes.c_ubyte.from_address(target)
    b.value ^= 0x01
    os.write(2, b"corrupted\n")
    key.destroy()
    return "returned"


@pytest.mark.parametrize("length", SIZES)
@pytest.mark.parametrize("where", ["underflow", "overflow"])
def test_one_byte_out_of_a_pooled_key_aborts_at_destroy(length: int, where: str) -> None:
    offset = -1 if where == "underflow" else length
    res = run_forked(_flip_and_destroy, length, offset)
    assert res.signal == signal.SIGABRT, res
    assert "corrupted" in res.stderr, "the child must die at destroy, not before"
    assert "canary mismatch" in res.stderr
    assert "memory corruption detected" in res.stderr


@pytest.mark.parametrize("length", SIZES)
def test_canaries_are_directly_around_the_key(length: int) -> None:
    def probe() -> dict[str, str]:
        key = _pooled(length)
        addr = _native._key_address(key)
        before = ctypes.string_at(addr - CANARY_LEN, CANARY_LEN)
        after = ctypes.string_at(addr + length, CANARY_LEN)
        key.destroy()
        return {"before": before.hex(), "after": after.hex()}

    out = run_forked(probe).unwrap()
    assert out["before"] == out["after"], "one arena canary on both sides"
    assert out["before"] != "00" * CANARY_LEN


def test_writing_inside_the_key_does_not_abort() -> None:
    def child() -> str:
        key = _pooled(13)
        addr = _native._key_address(key)
        for i in range(13):
            ctypes.c_ubyte.from_address(addr + i).value ^= 0xFF
        key.destroy()
        return "ok"

    assert run_forked(child).unwrap() == "ok"


@pytest.mark.parametrize("length", SIZES)
def test_slot_is_zeroed_after_destroy(length: int) -> None:
    neighbour = _pooled(length)  # keeps the arena mapped
    key = _pooled(length)
    addr = _native._key_address(key)
    assert ctypes.string_at(addr, length) != bytes(length) or length == 1
    key.destroy()
    after = ctypes.string_at(addr - CANARY_LEN, length + 2 * CANARY_LEN)
    assert after == bytes(len(after)), "canaries and key bytes zeroed"
    assert neighbour.hmac(b"still fine")
    neighbour.destroy()


def test_pooled_key_with_hmac_pads_zeroed_after_destroy() -> None:
    neighbour = _pooled(32)
    key = _pooled(32)
    key.hmac(b"x", "sha512")  # pads computed into a pooled region beside the key
    addr = _native._key_address(key)
    key.destroy()
    assert ctypes.string_at(addr, 32) == bytes(32)
    neighbour.destroy()
