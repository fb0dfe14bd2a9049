"""Memory scan of derived secrets (docs/invariants.md, invariant 6).

A child loads keys from files the parent wrote and uses them: HMAC (SHA-256/384/512 and
the legacy SHA-1, one-shot, long, streaming, verify), Ed25519 signing, X25519 exchange.
The parent computes
every secret the algorithms derive from those keys and scans the child's memory for them:

- HMAC: ``K ^ ipad`` and ``K ^ opad`` blocks, and the inner/outer midstates (the hash
  state after absorbing each padded block) in both the word order keycell stores them
  (native) and big-endian;
- Ed25519: the seed, the clamped scalar, the scalar reduced mod L, the nonce prefix, and
  the per-signature nonce ``r = H(prefix || M) mod L`` of every signed message (``r``
  together with a signature reveals the private scalar);
- X25519: the private scalar, its clamped form and the shared secret.

While the keys are alive every copy found must lie in locked, dump-excluded pages; after
``destroy()`` there must be none anywhere. A ``bytes`` copy of another secret is the
positive control.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from pathlib import Path

import pytest
from memscan import Hit, scan_phases, summarize
from sha1_reference import hmac_sha1_midstates

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------
# SHA-2 compression in pure Python, to compute HMAC midstates independently of keycell.

_K256 = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2,
]  # fmt: skip
_IV256 = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
    0x5BE0CD19,
]  # fmt: skip


def _k512() -> list[int]:
    # The SHA-512 round constants: the first 64 bits of the fractional parts of the cube
    # roots of the first 80 primes (computed exactly with integer cube roots).
    primes: list[int] = []
    n = 2
    while len(primes) < 80:
        if all(n % p for p in primes):
            primes.append(n)
        n += 1
    out = []
    for p in primes:
        x = p << 192  # cube root of p * 2^192 = cbrt(p) * 2^64
        lo, hi = 0, 1 << 70
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if mid**3 <= x:
                lo = mid
            else:
                hi = mid - 1
        out.append(lo & ((1 << 64) - 1))
    return out


_K512 = _k512()
_IV384 = [
    0xCBBB9D5DC1059ED8, 0x629A292A367CD507, 0x9159015A3070DD17, 0x152FECD8F70E5939,
    0x67332667FFC00B31, 0x8EB44A8768581511, 0xDB0C2E0D64F98FA7, 0x47B5481DBEFA4FA4,
]  # fmt: skip
_IV512 = [
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
]  # fmt: skip


def _compress(state: list[int], block: bytes, bits: int) -> list[int]:
    mask = (1 << bits) - 1
    if bits == 32:
        k, rounds, s = _K256, 64, ((2, 13, 22), (6, 11, 25), (7, 18, 3), (17, 19, 10))
        w = list(struct.unpack(">16I", block))
    else:
        k, rounds, s = _K512, 80, ((28, 34, 39), (14, 18, 41), (1, 8, 7), (19, 61, 6))
        w = list(struct.unpack(">16Q", block))

    def rotr(x: int, n: int) -> int:
        return ((x >> n) | (x << (bits - n))) & mask

    for i in range(16, rounds):
        x, y = w[i - 15], w[i - 2]
        s0 = rotr(x, s[2][0]) ^ rotr(x, s[2][1]) ^ (x >> s[2][2])
        s1 = rotr(y, s[3][0]) ^ rotr(y, s[3][1]) ^ (y >> s[3][2])
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & mask)
    a, b, c, d, e, f, g, h = state
    for i in range(rounds):
        t1 = h + (rotr(e, s[1][0]) ^ rotr(e, s[1][1]) ^ rotr(e, s[1][2]))
        t1 = (t1 + ((e & f) ^ (~e & g)) + k[i] + w[i]) & mask
        t2 = (rotr(a, s[0][0]) ^ rotr(a, s[0][1]) ^ rotr(a, s[0][2])) + (
            (a & b) ^ (a & c) ^ (b & c)
        )
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & mask, c, b, a, (t1 + t2) & mask
    return [(x + y) & mask for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]


def _check_compress_against_hashlib() -> None:
    # One-block messages: the compression of the padded block from the IV is the digest.
    for bits, iv, name, block_len in ((32, _IV256, "sha256", 64), (64, _IV512, "sha512", 128)):
        msg = b"abc"
        length_len = 8 if bits == 32 else 16
        padded = msg + b"\x80" + b"\0" * (block_len - len(msg) - 1 - length_len)
        padded += (len(msg) * 8).to_bytes(length_len, "big")
        st = _compress(list(iv), padded, bits)
        fmt = ">8I" if bits == 32 else ">8Q"
        assert struct.pack(fmt, *st) == hashlib.new(name, msg).digest()


def hmac_midstates(key: bytes, alg: str) -> dict[str, bytes]:
    """Inner and outer midstates of HMAC-``alg`` under ``key``, native and big-endian."""
    bits, iv, block = {
        "sha256": (32, _IV256, 64),
        "sha384": (64, _IV384, 128),
        "sha512": (64, _IV512, 128),
    }[alg]
    k = hashlib.new(alg, key).digest() if len(key) > block else key
    k = k.ljust(block, b"\0")
    out = {}
    for pad_name, pad in (("inner", 0x36), ("outer", 0x5C)):
        st = _compress(list(iv), bytes(b ^ pad for b in k), bits)
        w = "I" if bits == 32 else "Q"
        out[f"{alg} {pad_name} midstate (native)"] = struct.pack(f"={8}{w}", *st)
        out[f"{alg} {pad_name} midstate (big-endian)"] = struct.pack(f">{8}{w}", *st)
    return out


# ---------------------------------------------------------------------------------------

L = 2**252 + 27742317777372353535851937790883648493


def _clamp(b: bytes) -> bytes:
    a = bytearray(b)
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return bytes(a)


def _write_secret_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _assert_alive_only_locked(alive: dict[str, list[Hit]], names: list[str]) -> None:
    for name in names:
        for h in alive[name]:
            assert h.locked, f"{name} found in unlocked memory:\n{summarize(alive)}"
            assert h.dontdump, f"{name} found in dumpable memory:\n{summarize(alive)}"


def _scan_alive_and_destroyed(
    label: str, code: str, args: list[str], patterns: dict[str, bytes]
) -> dict[str, list[Hit]]:
    """Run the child, scan it while the keys are alive and after destroy(), and check what
    holds for every pattern: the control is found in both phases, every copy of a secret
    alive lies in locked, dump-excluded pages, and none is left after destroy(). Returns
    the hits while alive, for the test's own checks."""
    scans, _ = scan_phases(code, *args, patterns=patterns)
    alive, after = scans["alive"], scans["destroyed"]
    print(label, "alive", {n: len(h) for n, h in alive.items()})
    print(label, "after", {n: len(h) for n, h in after.items()})
    assert alive["control"], summarize(alive)
    assert after["control"], summarize(after)
    names = [n for n in patterns if n != "control"]
    _assert_alive_only_locked(alive, names)
    for name in names:
        assert after[name] == [], f"{name} left after destroy:\n{summarize(after)}"
    return alive


def test_reference_sha2_is_right() -> None:
    _check_compress_against_hashlib()


HMAC_CHILD = """
import gc, sys
import keycell
from keycell import SecretKey, HMAC

key = SecretKey.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    control = f.read()               # positive control, kept on purpose
for alg in ("sha256", "sha384", "sha512", "sha1"):
    for msg in (b"short", b"m" * 5000):
        tag = key.hmac(msg, alg)
        key.verify_hmac(msg, tag, alg)
    h = HMAC(key, alg)
    h.update(b"x" * 10)
    h2 = h.copy()
    h.update(b"y" * 300)
    h.finalize()
    h2.verify(key.hmac(b"x" * 10, alg))
phase("alive")
key.destroy()
del h, h2
gc.collect()
phase("destroyed")
"""


def test_hmac_pads_and_midstates_only_in_locked_pages(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    _write_secret_file(tmp_path / "key", key)
    _write_secret_file(tmp_path / "control", control)
    patterns: dict[str, bytes] = {"key": key, "control": control}
    patterns["key ^ ipad"] = bytes(b ^ 0x36 for b in key)
    patterns["key ^ opad"] = bytes(b ^ 0x5C for b in key)
    for alg in ("sha256", "sha384", "sha512"):
        patterns.update(hmac_midstates(key, alg))
    patterns.update(hmac_sha1_midstates(key))  # the legacy HMAC-SHA1's pads, same handling
    alive = _scan_alive_and_destroyed(
        "hmac", HMAC_CHILD, [str(tmp_path / "key"), str(tmp_path / "control")], patterns
    )
    # The stored midstates are found (the scan sees them) exactly once, in the key region.
    for alg in ("sha256", "sha384", "sha512"):
        for pad in ("inner", "outer"):
            assert len(alive[f"{alg} {pad} midstate (native)"]) == 1, summarize(alive)
        assert len(alive[f"sha1 {pad} midstate"]) == 1, summarize(alive)
    assert alive["key ^ ipad"] == alive["key ^ opad"] == [], summarize(alive)



HMAC_WORKER_CHILD = """
import gc, sys, threading
from keycell import SecretKey, HMAC

key = SecretKey.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    control = f.read()
for alg in ("sha256", "sha384", "sha512", "sha1"):
    key.hmac(b"warm", alg)          # the pads are made here, on the main thread
held = threading.Event()

def work(alg, n, done):
    # One streaming HMAC on a thread of its own whose stack nothing else reuses: whatever
    # it leaves there stays until the thread ends, after both scans.
    h = HMAC(key, alg)
    h.update(b"y" * n)
    h.finalize()
    done.set()
    held.wait()

threads = []
for alg in ("sha256", "sha384", "sha512", "sha1"):
    for n in (10, 200):
        done = threading.Event()
        t = threading.Thread(target=work, args=(alg, n, done))
        t.start()
        done.wait()
        threads.append(t)
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
held.set()
for t in threads:
    t.join()
"""


def test_streaming_hmac_leaves_no_midstate_on_a_worker_threads_stack(tmp_path: Path) -> None:
    """The running inner hash is built where it lies: a state built in a temporary and
    moved left the SHA-256/512 inner midstate on the calling thread's stack (unlocked,
    dumpable, kept after destroy()); the main thread's later calls hid it."""
    key = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    _write_secret_file(tmp_path / "key", key)
    _write_secret_file(tmp_path / "control", control)
    patterns: dict[str, bytes] = {"control": control}
    for alg in ("sha256", "sha384", "sha512"):
        patterns.update(hmac_midstates(key, alg))
    patterns.update(hmac_sha1_midstates(key))
    _scan_alive_and_destroyed(
        "hmac worker",
        HMAC_WORKER_CHILD,
        [str(tmp_path / "key"), str(tmp_path / "control")],
        patterns,
    )

ED25519_CHILD = """
import gc, sys
from keycell import Ed25519PrivateKey

sk = Ed25519PrivateKey.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    control = f.read()
pk = sk.public_key()
for msg in (b"message one", b"L" * 5000, b"three"):
    pk.verify(sk.sign(msg), msg)
phase("alive")
sk.destroy()
gc.collect()
phase("destroyed")
"""


def test_ed25519_seed_scalar_prefix_and_nonces_only_in_locked_pages(tmp_path: Path) -> None:
    seed = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    _write_secret_file(tmp_path / "seed", seed)
    _write_secret_file(tmp_path / "control", control)
    h = hashlib.sha512(seed).digest()
    clamped = _clamp(h[:32])
    reduced = (int.from_bytes(clamped, "little") % L).to_bytes(32, "little")
    prefix = h[32:]
    patterns = {
        "control": control,
        "seed": seed,
        "clamped scalar": clamped,
        "scalar mod L": reduced,
        "nonce prefix": prefix,
    }
    for i, msg in enumerate((b"message one", b"L" * 5000, b"three")):
        r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % L
        patterns[f"nonce r of message {i}"] = r.to_bytes(32, "little")
    alive = _scan_alive_and_destroyed(
        "ed25519", ED25519_CHILD, [str(tmp_path / "seed"), str(tmp_path / "control")], patterns
    )
    # The region keeps the seed and the expanded key: the scan must see them there.
    assert alive["seed"], summarize(alive)
    assert alive["nonce prefix"], summarize(alive)
    assert alive["scalar mod L"] or alive["clamped scalar"], summarize(alive)
    for name in patterns:
        if name.startswith("nonce r"):
            assert alive[name] == [], f"{name} survived the signing call:\n{summarize(alive)}"


X25519_CHILD = """
import gc, sys
from keycell import X25519PrivateKey, X25519PublicKey, hkdf

sk = X25519PrivateKey.from_file(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    control = f.read()
peer = X25519PublicKey.from_public_bytes(bytes.fromhex(sys.argv[3]))
shared = sk.exchange(peer)
session = hkdf(shared, length=32, info=b"scan")
phase("alive")
sk.destroy()
shared.destroy()
session.destroy()
gc.collect()
phase("destroyed")
"""


def test_x25519_private_and_shared_secret_only_in_locked_pages(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey as PycaX25519,
    )

    private = secrets.token_bytes(32)
    control = secrets.token_bytes(32)
    _write_secret_file(tmp_path / "x25519", private)
    _write_secret_file(tmp_path / "control", control)
    peer = PycaX25519.generate()
    ours = PycaX25519.from_private_bytes(private)
    shared = ours.exchange(peer.public_key())
    peer_hex = peer.public_key().public_bytes_raw().hex()
    patterns = {
        "control": control,
        "private": private,
        "clamped private": _clamp(private),
        "shared secret": shared,
    }
    args = [str(tmp_path / "x25519"), str(tmp_path / "control"), peer_hex]
    alive = _scan_alive_and_destroyed("x25519", X25519_CHILD, args, patterns)
    assert alive["private"] or alive["clamped private"], summarize(alive)
    assert len(alive["shared secret"]) == 1, summarize(alive)
