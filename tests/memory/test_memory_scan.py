"""Memory scan of a child process (invariants 1, 3 and 4).

The parent writes random secrets to files; a child interpreter loads them (it never builds
a pattern itself) and stops at phases; the parent reads the child's whole memory through
``/proc/PID/mem`` and counts copies. A deliberate ``bytes`` copy of another secret is the
positive control, so a scan that sees nothing cannot pass by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pytest
from memscan import (
    PhasedChild,
    find_all,
    read_maps,
    scan_file,
    scan_phases,
    scan_process,
    summarize,
)

pytestmark = pytest.mark.slow


def _write_secret(path: Path, n: int = 32) -> bytes:
    data = secrets.token_bytes(n)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


FROM_FILE_CHILD = """
import gc, sys
from keycell import SecretKey

key = SecretKey.from_file(sys.argv[1])
# Positive control: a plain bytes copy of another secret, kept on purpose.
with open(sys.argv[2], "rb") as f:
    control = f.read()
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
print(key.destroyed, len(control))
"""


def test_from_file_copies_live_only_in_locked_pages_and_vanish_on_destroy(tmp_path: Path) -> None:
    key = _write_secret(tmp_path / "key")
    control = _write_secret(tmp_path / "control")
    # The padded blocks HMAC derives from the key (key ^ ipad, key ^ opad) must exist
    # nowhere: the region keeps only the compressed states, the blocks are wiped.
    pads = {"ipad": bytes(b ^ 0x36 for b in key), "opad": bytes(b ^ 0x5C for b in key)}
    patterns = {"key": key, "control": control, **pads}
    scans, out = scan_phases(
        FROM_FILE_CHILD, str(tmp_path / "key"), str(tmp_path / "control"), patterns=patterns
    )
    alive, after = scans["alive"], scans["destroyed"]
    assert out == "True 32\n"

    print("copies_alive", len(alive["key"]))
    print("copies_after_destroy", len(after["key"]))
    print("control_alive", len(alive["control"]))
    # Positive control: the scanner finds a bytes copy, and it is in ordinary memory.
    assert alive["control"], summarize(alive)
    assert any(not h.locked and not h.dontdump for h in alive["control"]), summarize(alive)
    assert after["control"], summarize(after)
    # The key: found (the scan sees it), and only in locked, dump-excluded, read-only pages.
    assert alive["key"], summarize(alive)
    for h in alive["key"]:
        assert h.locked, summarize(alive)
        assert h.dontdump, summarize(alive)
        assert "wf" in h.vmflags, summarize(alive)
        assert h.perms.startswith("r-"), summarize(alive)
    # After destroy(): no copy anywhere in the process.
    assert after["key"] == [], summarize(after)
    for name in pads:
        assert alive[name] == after[name] == [], summarize(alive)


FROM_BUFFER_CHILD = """
import gc, os, sys
from keycell import SecretKey

path = sys.argv[1]
buf = bytearray(os.stat(path).st_size)
with open(path, "rb", buffering=0) as f:   # unbuffered: straight into the bytearray
    assert f.readinto(buf) == len(buf)
phase("loaded")
key = SecretKey.from_buffer(buf, wipe=True)
assert buf == bytearray(len(buf))
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


def test_from_buffer_bytearray_wiped_leaves_copies_only_in_locked_pages(tmp_path: Path) -> None:
    key = _write_secret(tmp_path / "key", 48)
    patterns = {"key": key}
    scans, _ = scan_phases(
        FROM_BUFFER_CHILD,
        str(tmp_path / "key"),
        patterns=patterns,
        phases=("loaded", "alive", "destroyed"),
    )
    loaded, alive, after = scans["loaded"], scans["alive"], scans["destroyed"]
    # Control: before from_buffer the bytearray holds the key in unlocked memory.
    assert any(not h.locked for h in loaded["key"]), summarize(loaded)
    # After from_buffer(wipe=True): the bytearray is zeroed; the only copy is the region.
    assert alive["key"], summarize(alive)
    assert all(h.locked and h.dontdump for h in alive["key"]), summarize(alive)
    assert after["key"] == [], summarize(after)


GENERATE_CHILD = """
import gc
from keycell import SecretKey

key = SecretKey.generate(32)
phase("generated")
with key.expose() as view:
    copy = view.tobytes()  # deliberate copy: the user's own, outside keycell's guarantee
phase("copied")
key.destroy()
gc.collect()
phase("destroyed")
"""


def _read_key_from_region(pid: int, length: int) -> bytes:
    """The key bytes of the child's only keycell region: the last ``length`` bytes of its
    locked, dump-excluded, wipe-on-fork data pages (the key is right-aligned)."""
    regions = [a for a in read_maps(pid) if a.locked and a.dontdump and a.wipeonfork]
    assert len(regions) == 1, regions
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(regions[0].end - length)
        return mem.read(length)


def test_generate_leaves_one_copy_and_a_view_copy_is_the_users() -> None:
    """generate() writes the CSPRNG output straight into the region (exactly one copy). The
    documented limit: a copy made on purpose from a view is an ordinary bytes, unlocked,
    and outlives destroy()."""
    with PhasedChild(GENERATE_CHILD) as child:
        child.wait_phase("generated")
        key = _read_key_from_region(child.pid, 32)
        generated = scan_process(child.pid, {"key": key})
        child.advance()
        child.wait_phase("copied")
        copied = scan_process(child.pid, {"key": key})
        child.advance()
        child.wait_phase("destroyed")
        destroyed = scan_process(child.pid, {"key": key})
        rc, _, err = child.finish()
    assert rc == 0, err
    assert len(generated["key"]) == 1, summarize(generated)
    assert generated["key"][0].locked, summarize(generated)
    assert any(h.locked for h in copied["key"]), summarize(copied)
    assert any(not h.locked for h in copied["key"]), summarize(copied)
    assert destroyed["key"], summarize(destroyed)
    assert not any(h.locked or h.dontdump for h in destroyed["key"]), summarize(destroyed)


BYTES_SOURCE_CHILD = """
import gc, sys
from keycell import SecretKey

with open(sys.argv[1], "rb") as f:
    source = f.read()
key = SecretKey.from_buffer(source)  # a bytes cannot be wiped
phase("alive")
key.destroy()
gc.collect()
phase("destroyed")
"""


def test_bytes_source_is_a_documented_limit(tmp_path: Path) -> None:
    """A secret that entered Python as ``bytes`` before keycell saw it stays there: the
    region's copy goes on destroy(), the caller's bytes does not."""
    key = _write_secret(tmp_path / "key")
    scans, _ = scan_phases(BYTES_SOURCE_CHILD, str(tmp_path / "key"), patterns={"key": key})
    alive, after = scans["alive"], scans["destroyed"]
    assert sum(h.locked for h in alive["key"]) == 1, summarize(alive)
    assert any(not h.locked for h in alive["key"]), summarize(alive)
    assert after["key"], summarize(after)
    assert not any(h.locked for h in after["key"]), summarize(after)


CRYPTO_CHILD = """
import gc, sys
from keycell import HMAC, SecretKey, hkdf

key = SecretKey.from_file(sys.argv[1])
for alg in ("sha256", "sha384", "sha512"):
    tag = key.hmac(b"message", alg)
    key.verify_hmac(b"message", tag, alg)
    key.hmac(b"m" * 10000, alg)  # long input: computed with the GIL released
    h = HMAC(key, alg)
    h.update(b"streamed")
    h.copy().finalize()
    h.finalize()
okm = hkdf(key, length=32, salt=b"scan-salt", info=b"scan-info")
phase("alive")
key.destroy()
okm.destroy()
gc.collect()
phase("destroyed")
"""


def test_hmac_and_hkdf_leave_no_copies(tmp_path: Path) -> None:
    """After HMAC (one-shot, long, streaming, copied) and HKDF: the key and the HKDF output
    exist only in locked regions; the padded key blocks and the PRK exist nowhere; after
    destroy() nothing is left."""
    key = _write_secret(tmp_path / "key")
    prk = hmac.new(b"scan-salt", key, hashlib.sha256).digest()
    okm = hmac.new(prk, b"scan-info\x01", hashlib.sha256).digest()
    patterns = {
        "key": key,
        "ipad": bytes(b ^ 0x36 for b in key),
        "opad": bytes(b ^ 0x5C for b in key),
        "prk": prk,
        "okm": okm,
    }
    scans, _ = scan_phases(CRYPTO_CHILD, str(tmp_path / "key"), patterns=patterns)
    alive, after = scans["alive"], scans["destroyed"]
    print("crypto alive", {n: len(h) for n, h in alive.items()})
    for name in ("key", "okm"):
        assert len(alive[name]) == 1, summarize(alive)
        assert alive[name][0].locked, summarize(alive)
        assert alive[name][0].dontdump, summarize(alive)
    for name in ("ipad", "opad", "prk"):
        assert alive[name] == [], summarize(alive)
    assert all(h == [] for h in after.values()), summarize(after)


def test_find_all_and_scan_file(tmp_path: Path) -> None:
    pattern = secrets.token_bytes(16)
    assert list(find_all(b"x" + pattern + pattern[:3] + pattern, pattern)) == [1, 20]
    f = tmp_path / "blob"
    # Place one copy across the 1 MiB read boundary, one inside, one at the end.
    blob = bytearray(3 << 20)
    blob[(1 << 20) - 5 : (1 << 20) + 11] = pattern
    blob[100:116] = pattern
    blob[-16:] = pattern
    f.write_bytes(bytes(blob))
    assert scan_file(f, {"p": pattern, "absent": secrets.token_bytes(16)}) == {
        "p": 3,
        "absent": 0,
    }
    with pytest.raises(ValueError):
        list(find_all(b"abc", b""))
