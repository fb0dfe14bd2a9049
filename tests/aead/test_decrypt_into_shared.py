"""Issue 21 (4): ``decrypt_into`` never puts unauthenticated plaintext where another
process can read it. It used to copy the ciphertext into the caller's buffer and decrypt
there before the tag was checked, so a process sharing the buffer (a ``MAP_SHARED``
mapping) saw the plaintext of a forged message during the call. Now a second process
polls the shared mapping during a 256 MiB call with a forged tag, for every AEAD class,
and never sees a non-zero byte; with the genuine tag the plaintext arrives whole."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keycell
import pytest
from keycell import SecretKey

pytestmark = pytest.mark.slow

SIZE = 256 << 20
CLASSES = [
    (keycell.AESGCM, 12),
    (keycell.ChaCha20Poly1305, 12),
    (keycell.XChaCha20Poly1305, 24),
    (keycell.AESGCMSIV, 12),
]

# Polls the shared file's mapping until told to stop (a line on stdin): reports whether
# any byte it looked at was ever non-zero (a sample across the whole mapping each round).
POLLER = r"""
import mmap, os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
step = 4096 * 17
rounds = seen = 0
print("READY", flush=True)
while True:
    for off in range(0, len(m), step):
        if m[off] != 0:
            seen += 1
    rounds += 1
    if select.select([sys.stdin], [], [], 0)[0]:
        break
print("SEEN", seen, "ROUNDS", rounds, flush=True)
"""


def shared_mapping(path: Path, size: int) -> mmap.mmap:
    """A zero-filled ``MAP_SHARED`` mapping of a new file of ``size`` bytes at ``path``."""
    with open(path, "wb") as f:
        f.truncate(size)
    fd = os.open(path, os.O_RDWR)
    try:
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)


def polled_hits(poller_code: str, path: Path, call: Callable[[], object]) -> int:
    """Run ``call`` while a second process polls the mapping of ``path`` with
    ``poller_code``; the number of sampled hits it saw (it polled at least one round)."""
    poller = subprocess.Popen(
        [sys.executable, "-c", poller_code, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert poller.stdout is not None
        assert poller.stdin is not None
        assert poller.stdout.readline().strip() == "READY"
        call()
        poller.stdin.write("stop\n")
        poller.stdin.flush()
        out, _ = poller.communicate(timeout=120)
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.wait()
    words = out.split()
    assert words[0] == "SEEN", out
    assert int(words[3]) >= 1, out
    return int(words[1])


@pytest.mark.parametrize(("cls", "nonce_len"), CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_no_unauthenticated_plaintext_in_a_shared_buffer(
    tmp_path: Path, cls: Any, nonce_len: int
) -> None:
    a = cls(SecretKey.generate(32))
    nonce = bytes(nonce_len)
    ct = bytearray(a.encrypt(nonce, b"P" * SIZE, b"ad"))
    ct[-1] ^= 1  # a forged tag
    path = tmp_path / "shared"
    shared = shared_mapping(path, SIZE)

    def forged() -> None:
        with pytest.raises(keycell.InvalidTag):
            a.decrypt_into(nonce, bytes(ct), b"ad", shared)

    hits = polled_hits(POLLER, path, forged)
    assert hits == 0, f"the other process saw unauthenticated plaintext {hits} times"
    assert not any(shared[i] for i in range(0, SIZE, 4096))  # zeroed on failure
    ct[-1] ^= 1  # the genuine tag: the plaintext arrives whole
    assert a.decrypt_into(nonce, bytes(ct), b"ad", shared) == SIZE
    assert shared[:1] == b"P"
    assert shared[-1:] == b"P"
    assert shared.find(b"\0") == -1
    shared.close()


# Counts sampled offsets where 8 bytes of plaintext ("P" * 8) sit: ciphertext matches
# that with probability 2^-64 per sample.
PLAINTEXT_POLLER = POLLER.replace("if m[off] != 0:", "if m[off:off + 8] == b'PPPPPPPP':")


@pytest.mark.parametrize(("cls", "nonce_len"), CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_encrypt_into_never_shows_plaintext_in_a_shared_buffer(
    tmp_path: Path, cls: Any, nonce_len: int
) -> None:
    """Found by review: ``encrypt_into`` copied the plaintext into the caller's buffer and
    encrypted it there; a process sharing the buffer saw the plaintext during the call."""
    a = cls(SecretKey.generate(32))
    nonce = bytes(nonce_len)
    msg = b"P" * SIZE
    path = tmp_path / "shared"
    shared = shared_mapping(path, SIZE + 16)
    written: list[int] = []
    hits = polled_hits(
        PLAINTEXT_POLLER, path, lambda: written.append(a.encrypt_into(nonce, msg, b"ad", shared))
    )
    assert hits == 0, f"the other process saw the plaintext {hits} times"
    assert written == [SIZE + 16]
    assert a.decrypt(nonce, bytes(shared), b"ad") == msg
    shared.close()
