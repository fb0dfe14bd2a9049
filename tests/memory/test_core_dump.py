"""Core dumps leave keycell's secrets out (MADV_DONTDUMP), and nothing else leaks them.

A child interpreter loads keycell secrets from files the parent wrote (it never builds a
pattern itself), uses them, and keeps one deliberate ``bytes`` copy of another secret as
the positive control. Then a core dump is taken, in two ways where possible:

- the kernel's: the child raises RLIMIT_CORE and aborts in a known working directory
  (usable when ``/proc/sys/kernel/core_pattern`` is a plain relative file name, not a
  ``|pipe`` to a crash handler nor a path elsewhere);
- gdb's ``gcore``, which honours the same ``dd`` flag (``dump-excluded-mappings off``); a
  second gcore with ``dump-excluded-mappings on`` must contain the key, which proves the
  key was in memory and the flag is what keeps it out.

The parent scans each core file: the control is found, the keycell secrets are not.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import resource
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from memscan import PhasedChild, scan_file
from support import write_key_file

pytestmark = pytest.mark.slow


def _hmac_pads(raw: bytes) -> dict[str, bytes]:
    """The key and the padded key blocks HMAC derives from it (the blocks must never exist
    outside the region's precomputed states: they are wiped after use)."""
    return {"": raw, "ipad": bytes(b ^ 0x36 for b in raw), "opad": bytes(b ^ 0x5C for b in raw)}


def _hkdf(raw: bytes) -> dict[str, bytes]:
    """HKDF-SHA256 of the key with the child's salt and info: input, PRK and output."""
    prk = hmac.new(b"core-salt", raw, hashlib.sha256).digest()
    okm = hmac.new(prk, b"core-info\x01", hashlib.sha256).digest()
    return {"": raw, "prk": prk, "okm": okm}


@dataclass(frozen=True)
class Held:
    """A secret the child holds through keycell: ``load`` is child code that evaluates to
    the live object, with ``{path}`` replaced by the path of a file holding ``length``
    random bytes. ``derive`` maps those bytes to every pattern that must stay out of the
    core (suffix -> bytes; "" is the raw key); ``live`` names those held in a region."""

    name: str
    length: int
    load: str
    derive: Callable[[bytes], dict[str, bytes]] = field(default=lambda raw: {"": raw})
    live: tuple[str, ...] = ("",)


_L = 2**252 + 27742317777372353535851937790883648493
# A public test peer for X25519 (its private key is not secret: bytes 1..32).
_PEER_PRIVATE = bytes(range(1, 33))


def _clamp(b: bytes) -> bytes:
    a = bytearray(b)
    a[0] &= 248
    a[31] = (a[31] & 127) | 64
    return bytes(a)


def _ed25519(seed: bytes) -> dict[str, bytes]:
    """The seed and the expanded key Ed25519 derives from it: clamped scalar (and its
    reduction mod L) and nonce prefix."""
    h = hashlib.sha512(seed).digest()
    scalar = _clamp(h[:32])
    reduced = (int.from_bytes(scalar, "little") % _L).to_bytes(32, "little")
    return {"": seed, "scalar": scalar, "scalar_mod_l": reduced, "prefix": h[32:]}


def _x25519(raw: bytes) -> dict[str, bytes]:
    """The private key, its clamped form and the shared secret with the test peer."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    peer = X25519PrivateKey.from_private_bytes(_PEER_PRIVATE).public_key()
    shared = X25519PrivateKey.from_private_bytes(raw).exchange(peer)
    return {"": raw, "clamped": _clamp(raw), "shared": shared}


# One line per kind of keycell secret.
KEYCELL_SECRETS = [
    # The region holds the seed, the clamped scalar and the nonce prefix.
    Held(
        "ed25519",
        32,
        "use_ed25519(Ed25519PrivateKey.from_file({path!r}))",
        _ed25519,
        live=("", "scalar", "prefix"),
    ),
    # The private key's region, and the shared secret's SecretKey region.
    Held(
        "x25519",
        32,
        "use_x25519(X25519PrivateKey.from_file({path!r}))",
        _x25519,
        live=("", "shared"),
    ),
    Held("secret_key", 32, "SecretKey.from_file({path!r})", _hmac_pads),
    Held("secret_key_large", 5000, "SecretKey.from_file({path!r})"),
    Held("from_buffer", 48, "SecretKey.from_buffer(read_into_bytearray({path!r}))"),
    Held("hmac_key", 32, "use_hmac(SecretKey.from_file({path!r}))", _hmac_pads),
    Held("hkdf", 32, "use_hkdf(SecretKey.from_file({path!r}))", _hkdf, live=("okm",)),
]


def _pattern_name(held: Held, suffix: str) -> str:
    return f"{held.name}.{suffix}" if suffix else held.name


CHILD = """
import os, sys
from keycell import *

def read_into_bytearray(path):
    buf = bytearray(os.stat(path).st_size)
    with open(path, "rb", buffering=0) as f:
        f.readinto(buf)
    return buf  # from_buffer wipes it

def use_hmac(key):
    tag = key.hmac(b"message")
    key.verify_hmac(b"message", tag)
    key.hmac(b"m" * 5000, "sha512")  # long input: computed with the GIL released
    h = HMAC(key, "sha384")
    h.update(b"streamed")
    h.finalize()
    return key

def use_ed25519(sk):
    pk = sk.public_key()
    for m in (b"one", b"L" * 5000):  # short, and long (GIL released)
        pk.verify(sk.sign(m), m)
    return sk

SHARED = []
def use_x25519(sk):
    peer = X25519PrivateKey.from_private_bytes(bytearray(range(1, 33))).public_key()
    SHARED.append(sk.exchange(peer))  # the shared secret stays alive, in its region
    return sk

def use_hkdf(key):
    out = hkdf(key, length=32, salt=b"core-salt", info=b"core-info")
    key.destroy()
    return out

held = [{loads}]
for key in held:  # use every key once
    if isinstance(key, SecretKey):
        with key.expose() as view:
            assert len(view) == len(key)
with open(sys.argv[1], "rb") as f:
    control = f.read()  # positive control: a deliberate bytes copy, kept
phase("alive")
if sys.argv[2] == "abort":
    os.abort()
phase("done")
"""


def _distinct_draw(h: Held) -> tuple[bytes, dict[str, bytes]]:
    """Random key bytes whose patterns that must exist nowhere differ from those held live.
    (One X25519 key in 32 is already clamped: its clamped form *is* the live key, which the
    full dump then rightly contains; such a draw would test nothing and fail.)"""
    while True:
        raw = secrets.token_bytes(h.length)
        derived = h.derive(raw)
        live = {derived[s] for s in h.live}
        if all(v not in live for s, v in derived.items() if s not in h.live):
            return raw, derived


def _prepare(tmp: Path) -> tuple[dict[str, bytes], dict[str, bytes], str]:
    """Write the key files; return (keycell patterns, control pattern, child code)."""
    patterns: dict[str, bytes] = {}
    loads = []
    for h in KEYCELL_SECRETS:
        raw, derived = _distinct_draw(h)
        path = write_key_file(tmp / f"{h.name}.key", raw)
        for suffix, pattern in derived.items():
            patterns[_pattern_name(h, suffix)] = pattern
        loads.append(h.load.format(path=str(path)))
    control = secrets.token_bytes(32)
    write_key_file(tmp / "control.key", control)
    return patterns, {"control": control}, CHILD.format(loads=", ".join(loads))


def _core_pattern() -> str:
    with open("/proc/sys/kernel/core_pattern") as f:
        return f.read().strip()


def _kernel_core_reason() -> str | None:
    pattern = _core_pattern()
    if pattern.startswith("|"):
        return f"core_pattern pipes cores to a handler ({pattern.split()[0]})"
    if "/" in pattern:
        return f"core_pattern writes cores elsewhere ({pattern})"
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0 and os.geteuid() != 0:
        return "the hard RLIMIT_CORE is 0 and only root may raise it"
    return None


def _assert_clean(counts: dict[str, int], keycell_names: list[str], what: str) -> None:
    assert counts["control"] >= 1, f"{what}: the positive control is missing: {counts}"
    leaked = {n: counts[n] for n in keycell_names if counts[n]}
    assert not leaked, f"{what}: keycell secrets found in the core dump: {leaked}"


def test_kernel_core_dump_excludes_keys(tmp_path: Path) -> None:
    reason = _kernel_core_reason()
    if reason:
        if shutil.which("gdb"):
            pytest.skip(f"kernel core dumps unusable here ({reason}); gcore test covers it")
        pytest.skip(f"neither way of dumping core works: {reason}; gdb is not installed")
    patterns, control, code = _prepare(tmp_path)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    child = PhasedChild(code, str(tmp_path / "control.key"), "abort", cwd=workdir)
    # Raise the child's core limit from outside, once it is running (prlimit).
    try:
        child.wait_phase("alive")
        _, hard = resource.prlimit(child.pid, resource.RLIMIT_CORE)
        limit = resource.RLIM_INFINITY if os.geteuid() == 0 else hard
        resource.prlimit(child.pid, resource.RLIMIT_CORE, (limit, limit))
        child.advance()
        child.proc.wait(timeout=60)
    finally:
        child.kill()
    assert child.proc.returncode == -signal.SIGABRT
    cores = [p for p in workdir.iterdir() if p.name.startswith(_core_pattern().split("%")[0])]
    if not cores and shutil.which("gdb"):
        pytest.skip("the kernel wrote no core file here; the gcore test covers this machine")
    assert len(cores) == 1, f"no core file in {workdir}: {list(workdir.iterdir())}"
    counts = scan_file(cores[0], {**patterns, **control})
    print("kernel_core_counts", counts)
    print("kernel_core_size", cores[0].stat().st_size)
    _assert_clean(counts, list(patterns), "kernel core")
    cores[0].unlink()


def _gcore(pid: int, out: Path, *, include_excluded: bool) -> Path:
    gdb = shutil.which("gdb")
    assert gdb is not None
    cmd = [
        gdb,
        "-nx",
        "-batch",
        "-iex",
        "set debuginfod enabled off",
        "-iex",
        "set auto-load off",
        "-ex",
        f"set dump-excluded-mappings {'on' if include_excluded else 'off'}",
        "-ex",
        f"gcore {out}",
        "-p",
        str(pid),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if not out.exists():
        pytest.skip(f"gcore could not dump the child (rc={r.returncode}): {r.stderr[-500:]}")
    return out


def test_gcore_excludes_keys(tmp_path: Path) -> None:
    if not shutil.which("gdb"):
        if _kernel_core_reason() is None:
            pytest.skip("gdb is not installed; the kernel core dump test covers this machine")
        pytest.skip(f"neither way of dumping core works: {_kernel_core_reason()}; no gdb")
    patterns, control, code = _prepare(tmp_path)
    with PhasedChild(code, str(tmp_path / "control.key"), "wait") as child:
        child.wait_phase("alive")
        core = _gcore(child.pid, tmp_path / "gcore.default", include_excluded=False)
        full = _gcore(child.pid, tmp_path / "gcore.full", include_excluded=True)
        child.advance()
        child.wait_phase("done")
        rc, _, err = child.finish()
    assert rc == 0, err
    counts = scan_file(core, {**patterns, **control})
    print("gcore_counts", counts)
    _assert_clean(counts, list(patterns), "gcore")
    # Control for the exclusion itself: with dd mappings included, every key is there.
    full_counts = scan_file(full, {**patterns, **control})
    print("gcore_full_counts", full_counts)
    live = {_pattern_name(h, suffix) for h in KEYCELL_SECRETS for suffix in h.live}
    for name in live:
        assert full_counts[name] >= 1, f"{name} not in memory at all? {full_counts}"
    for name in patterns:
        if name not in live:  # pads, PRKs, destroyed inputs exist nowhere, not even in regions
            assert full_counts[name] == 0, (name, full_counts)
    os.unlink(core)
    os.unlink(full)
