"""Four threads generating, using and destroying pooled keys at once: every result is
checked against the standard library, nothing crashes, and the pool ends empty.
"""

from __future__ import annotations

import hmac as std_hmac
import threading

import keycell
from keycell import SecretKey

ROUNDS = 3000


def _churn(seed: int, errors: list[str]) -> None:
    try:
        with keycell.policy(isolation="pool"):
            kept: list[tuple[SecretKey, bytes]] = []
            for i in range(ROUNDS):
                raw = bytes([(seed * 31 + i + j) % 256 for j in range(1 + i % 48)])
                key = SecretKey.from_buffer(bytearray(raw))
                msg = i.to_bytes(4, "big")
                if key.hmac(msg) != std_hmac.new(raw, msg, "sha256").digest():
                    errors.append(f"thread {seed} round {i}: wrong HMAC")
                if key.protection.isolation != "pool":
                    errors.append(f"thread {seed} round {i}: not pooled")
                kept.append((key, raw))
                if len(kept) > 64:
                    old, old_raw = kept.pop(0)
                    if old.hmac(b"k", "sha384") != std_hmac.new(old_raw, b"k", "sha384").digest():
                        errors.append(f"thread {seed} round {i}: kept key changed")
                    old.destroy()
            for key, _ in kept:
                key.destroy()
    except BaseException as e:
        errors.append(f"thread {seed}: {e!r}")


def test_four_threads_churn_pooled_keys() -> None:
    before = keycell._native._pool_stats()["live_slots"]
    errors: list[str] = []
    threads = [threading.Thread(target=_churn, args=(t, errors)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert keycell._native._pool_stats()["live_slots"] == before
