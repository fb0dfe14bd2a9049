"""KeyStore: an encrypted, crash-safe, tamper-evident file of named keys."""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from keycell import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    InsecureKeyFileError,
    KeyDestroyedError,
    KeyFileError,
    KeyNotExportableError,
    KeyStore,
    KeyStoreError,
    SecretKey,
    StoreAuthenticationError,
    StoreCorruptedError,
    StoreEntryExistsError,
    StoreEntryNotFoundError,
    X25519PrivateKey,
)

# Small Argon2 parameters: the documented test/low-memory setting (the default is 64 MiB).
FAST: Any = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
PASS = b"correct horse battery staple"


def pw(value: bytes = PASS) -> bytearray:
    return bytearray(value)


def make(path: Path, *, master: Any = None, **entries: Any) -> KeyStore:
    if master is None:
        master = pw()
    if isinstance(master, SecretKey):
        store = KeyStore.create(path, master=master)
    else:
        store = KeyStore.create(path, master=master, kdf_params=FAST)
    for name, key in entries.items():
        store.put(name, key)
    return store


def expected_key(seed: int, i: int, length: int = 32) -> bytes:
    return hashlib.sha256(f"{seed}:{i}".encode()).digest()[:length]


def test_basic_operations(tmp_path: Path) -> None:
    path = tmp_path / "s.kcs"
    a, b = SecretKey.generate(32), SecretKey.generate(7)
    store = make(path, a=a)
    assert (path.stat().st_mode & 0o777) == 0o600
    store.put("b", b)
    assert store.names() == ["a", "b"]
    assert "a" in store
    assert "zz" not in store
    assert 3 not in store
    assert len(store) == 2
    assert store.get("a") == a
    assert store.get("b") == b
    assert isinstance(store.get("b"), SecretKey)
    assert len(store.get("b")) == 7
    with pytest.raises(StoreEntryExistsError):
        store.put("a", b)
    assert store.get("a") == a
    store.put("a", b, overwrite=True)
    assert store.get("a") == b
    store.delete("a")
    with pytest.raises(StoreEntryNotFoundError):
        store.delete("a")
    with pytest.raises(KeyError):  # StoreEntryNotFoundError is a KeyError too
        store.get("a")
    assert store.names() == ["b"]
    assert store.kdf_params == FAST
    assert repr(store) == f'<KeyStore "{path}">'
    # Another handle (same or other process) sees every change: each call re-reads.
    other = KeyStore.open(path, master=pw())
    other.put("c", a)
    assert store.names() == ["b", "c"]
    with store:
        pass
    assert store.closed
    with pytest.raises(KeyDestroyedError, match="closed"):
        store.names()
    unicode_name = "clé/prod:2024 ✓"
    other.put(unicode_name, a)
    assert other.get(unicode_name) == a
    for bad in ["", "x" * 256, "tab\there", "nl\n"]:
        with pytest.raises(ValueError):
            other.put(bad, a)


def test_exportable_flag_survives_the_store(tmp_path: Path) -> None:
    store = make(tmp_path / "s")
    sealed = SecretKey.generate(32, exportable=False)
    store.put("sealed", sealed)
    store.put("open", SecretKey.generate(32))
    got = store.get("sealed")
    assert not got.exportable
    assert got == sealed
    assert store.get("open").exportable


def test_private_keys_round_trip(tmp_path: Path) -> None:
    """Ed25519 and X25519 keys come back as the same handle type, the same key, with the
    export flag they had: through other handles, another master and overwrites."""
    path = tmp_path / "s"
    keys: dict[str, Any] = {
        "ed": Ed25519PrivateKey.generate(),
        "ed-sealed": Ed25519PrivateKey.generate(exportable=False),
        "x": X25519PrivateKey.generate(),
        "x-sealed": X25519PrivateKey.generate(),
        "secret": SecretKey.generate(24),
    }
    keys["x-sealed"].seal_export()
    store = make(path, **keys)
    peer = X25519PrivateKey.generate()

    def check(s: KeyStore) -> None:
        assert s.names() == sorted(keys)
        for name, key in keys.items():
            got = s.get(name)
            assert type(got) is type(key)
            assert got.exportable == key.exportable == ("sealed" not in name)
            if isinstance(key, SecretKey):
                assert got == key
                continue
            assert got.public_key() == key.public_key()
            if isinstance(key, Ed25519PrivateKey):
                assert got.sign(b"message") == key.sign(b"message")
            else:
                shared = got.exchange(peer.public_key())
                assert shared == key.exchange(peer.public_key())
            if got.exportable:
                got.to_file(tmp_path / "out.pem", overwrite=True)
                loaded = type(key).from_file(tmp_path / "out.pem")
                assert loaded.public_key() == key.public_key()
            else:
                with pytest.raises(KeyNotExportableError):
                    got.to_file(tmp_path / "sealed.pem")
            got.destroy()

    check(store)
    check(KeyStore.open(path, master=pw()))
    store.rotate_master(SecretKey.from_buffer(bytearray(range(32))))
    check(KeyStore.open(path, master=SecretKey.from_buffer(bytearray(range(32)))))
    # An entry can change type on overwrite.
    keys["secret"] = Ed25519PrivateKey.generate()
    store.put("secret", keys["secret"], overwrite=True)
    keys["ed"] = SecretKey.generate(32)
    store.put("ed", keys["ed"], overwrite=True)
    check(store)
    assert not (tmp_path / "sealed.pem").exists()


def test_put_refuses_other_objects_and_destroyed_keys(tmp_path: Path) -> None:
    store = make(tmp_path / "s")
    ed = Ed25519PrivateKey.generate()
    pem = ed.public_key().public_bytes_pem()
    for bad in (ed.public_key(), Ed25519PublicKey.from_pem(pem), b"\x00" * 32, None):
        with pytest.raises(TypeError, match="ECPrivateKey or RSAPrivateKey"):
            store.put("k", bad)
    for key in (ed, X25519PrivateKey.generate()):
        key.destroy()
        with pytest.raises(KeyDestroyedError):
            store.put("k", key)
    assert store.names() == []


def test_private_keys_interoperate_after_the_store(tmp_path: Path) -> None:
    """A key put in the store and written out afterwards is the standard PKCS#8 that
    pyca/cryptography reads."""
    store = make(tmp_path / "s")
    ed = Ed25519PrivateKey.generate()
    store.put("ed", ed)
    got = store.get("ed")
    assert isinstance(got, Ed25519PrivateKey)
    got.to_file(tmp_path / "ed.pem")
    theirs = serialization.load_pem_private_key((tmp_path / "ed.pem").read_bytes(), password=None)
    ed.public_key().verify(theirs.sign(b"m"), b"m")  # type: ignore[union-attr]


VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "keystore"


def test_version_1_files_from_earlier_builds(tmp_path: Path) -> None:
    """Stores written by earlier builds (tests/vectors/keystore/README.md) still open and
    give the same keys and flags."""
    for name in ("v1-master-key.kcs", "v1-passphrase.kcs"):
        (tmp_path / name).write_bytes((VECTORS / name).read_bytes())
        (tmp_path / name).chmod(0o600)
    store = KeyStore.open(
        tmp_path / "v1-master-key.kcs", master=SecretKey.from_buffer(bytearray(range(32)))
    )
    assert store.names() == ["hmac", "sealed"]
    assert store.get("hmac") == SecretKey.from_buffer(
        bytearray(b"0123456789abcdef0123456789abcdef")
    )
    sealed = store.get("sealed")
    assert not sealed.exportable
    assert sealed == SecretKey.from_buffer(bytearray(b"sealed key bytes"))
    store = KeyStore.open(tmp_path / "v1-passphrase.kcs", master=pw())
    assert store.kdf_params == FAST
    assert store.get("hmac") == SecretKey.from_buffer(bytearray(b"passphrase-protected key"))


def test_passphrase_buffer_is_wiped_and_bytes_refused(tmp_path: Path) -> None:
    buf = pw()
    store = KeyStore.create(tmp_path / "s", master=buf, kdf_params=FAST)
    assert buf == bytearray(len(PASS))
    store.put("k", SecretKey.generate(16))
    big = bytearray(b"xx" + PASS + b"yy")
    with memoryview(big) as view:
        KeyStore.open(tmp_path / "s", master=view[2:-2])
    assert big == bytearray(b"xx" + bytes(len(PASS)) + b"yy")
    for bad in (PASS, PASS.decode(), memoryview(PASS), 12345):
        with pytest.raises(TypeError, match="writable buffer"):
            KeyStore.open(tmp_path / "s", master=bad)
    with pytest.raises(ValueError, match="empty"):
        KeyStore.open(tmp_path / "s", master=bytearray())


def test_wrong_master_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s"
    make(path, k=SecretKey.generate(32))
    with pytest.raises(StoreAuthenticationError, match="wrong passphrase"):
        KeyStore.open(path, master=pw(b"Correct horse battery staple"))
    with pytest.raises(StoreAuthenticationError, match="passphrase, not a master key"):
        KeyStore.open(path, master=SecretKey.generate(32))
    kpath = tmp_path / "k"
    master = SecretKey.generate(32)
    make(kpath, master=master, k=SecretKey.generate(32)).close()
    with pytest.raises(StoreAuthenticationError, match="wrong master key"):
        KeyStore.open(kpath, master=SecretKey.generate(32))
    with pytest.raises(StoreAuthenticationError):
        KeyStore.open(kpath, master=pw())
    with pytest.raises(ValueError, match="at least 16 bytes"):
        KeyStore.open(kpath, master=SecretKey.generate(15))
    destroyed = SecretKey.generate(32)
    destroyed.destroy()
    with pytest.raises(KeyDestroyedError):
        KeyStore.open(kpath, master=destroyed)
    assert KeyStore.open(kpath, master=master).names() == ["k"]


def test_kdf_params(tmp_path: Path) -> None:
    for bad in (
        {"memory_kib": 1023},
        {"memory_kib": 2**20 + 1},
        {"iterations": 0},
        {"lanes": 0},
        {"lanes": 17},
        {"speed": 1},
        {"memory_kib": -1},
        {"memory_kib": -(2**70)},
        {"lanes": 2**40},
        {"iterations": 2**70},
    ):
        with pytest.raises(ValueError, match=r"between|unknown") as info:
            KeyStore.create(tmp_path / "s", master=pw(), kdf_params=bad)  # type: ignore[arg-type]
        # The range is named, never the misleading "must be an int >= 0" for a huge value.
        assert ">= 0" not in str(info.value)
        assert not (tmp_path / "s").exists()
    for bad_type in ({"memory_kib": "1024"}, {"iterations": 1.0}, {"lanes": None}):
        with pytest.raises(TypeError, match="must be an int"):
            KeyStore.create(tmp_path / "s", master=pw(), kdf_params=bad_type)
        assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match="passphrase"):
        KeyStore.create(tmp_path / "s", master=SecretKey.generate(32), kdf_params=FAST)
    default = KeyStore.create(tmp_path / "d", master=pw())
    assert default.kdf_params == {"memory_kib": 65536, "iterations": 3, "lanes": 1}
    assert KeyStore.create(tmp_path / "m", master=SecretKey.generate(32)).kdf_params is None


def test_create_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_bytes(b"precious")
    with pytest.raises(KeyStoreError) as info:
        make(path)
    assert info.value.errno == errno.EEXIST
    assert path.read_bytes() == b"precious"


def test_rotate_master(tmp_path: Path) -> None:
    path = tmp_path / "s"
    keys = {f"k{i}": SecretKey.generate(16 + i) for i in range(5)}
    store = make(path, **keys)
    bystander = KeyStore.open(path, master=pw())
    new_master = SecretKey.generate(32)
    store.rotate_master(new_master)
    assert store.kdf_params is None
    assert all(store.get(n) == k for n, k in keys.items())
    with pytest.raises(StoreAuthenticationError, match="changed"):
        bystander.names()
    with pytest.raises(StoreAuthenticationError):
        KeyStore.open(path, master=pw())
    reopened = KeyStore.open(path, master=new_master)
    assert all(reopened.get(n) == k for n, k in keys.items())
    new_pass = pw(b"another passphrase")
    reopened.rotate_master(new_pass, kdf_params=FAST)
    assert new_pass == bytearray(len(new_pass))
    again = KeyStore.open(path, master=pw(b"another passphrase"))
    assert again.names() == sorted(keys)
    assert all(again.get(n) == k for n, k in keys.items())


def test_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "s"
    make(path, k=SecretKey.generate(32)).close()
    with pytest.raises(KeyFileError) as info:
        KeyStore.open(tmp_path / "missing", master=pw())
    assert info.value.errno == errno.ENOENT
    with pytest.raises(InsecureKeyFileError, match="directory"):
        KeyStore.open(tmp_path, master=pw())
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        KeyStore.open(link, master=pw())
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError, match="permissions"):
        KeyStore.open(path, master=pw())
    path.chmod(0o600)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    empty.chmod(0o600)
    with pytest.raises(StoreCorruptedError):
        KeyStore.open(empty, master=pw())
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(65 * 1024 * 1024)
    huge.chmod(0o600)
    with pytest.raises(StoreCorruptedError, match="larger"):
        KeyStore.open(huge, master=pw())
    keyfile = tmp_path / "keyfile"
    SecretKey.generate(200).to_file(keyfile)
    with pytest.raises(StoreCorruptedError, match="not a keycell key store"):
        KeyStore.open(keyfile, master=pw())


def test_foreign_owner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    make(path, k=SecretKey.generate(32)).close()
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() == 0:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
        with pytest.raises(InsecureKeyFileError, match="owned by uid"):
            KeyStore.open(path, master=pw())
        os.chown(path, 0, 0)
        # The lock file is checked too (a write would lock it).
        store = KeyStore.open(path, master=pw())
        lock = Path(str(path) + ".lock")
        os.chown(lock, nobody.pw_uid, nobody.pw_gid)
        with pytest.raises(InsecureKeyFileError, match="lock file"):
            store.put("x", SecretKey.generate(32))
        os.chown(lock, 0, 0)
        store.put("x", SecretKey.generate(32))
    else:
        pytest.skip("making a file owned by another user needs root")


# --- tampering ------------------------------------------------------------------------


def open_everything(path: Path, master: Any) -> list[bytes]:
    """Every entry's bytes: a secret key's own, a private key's public key."""
    store = KeyStore.open(path, master=master() if callable(master) else master)
    out = []
    for name in store.names():
        key = store.get(name)
        if isinstance(key, SecretKey):
            with key.expose() as view:
                out.append(bytes(view))
        else:
            out.append(key.public_key().public_bytes_raw())
    return out


@pytest.mark.parametrize("master_kind", ["passphrase", "key"])
def test_every_flipped_byte_is_detected(tmp_path: Path, master_kind: str) -> None:
    path = tmp_path / "s"
    master_key = SecretKey.generate(32)
    master: Any = pw if master_kind == "passphrase" else master_key
    make(
        path,
        master=master() if callable(master) else master,
        alpha=SecretKey.from_buffer(bytearray(expected_key(1, 1))),
        beta=SecretKey.from_buffer(bytearray(expected_key(1, 2, 5))),
        ed=Ed25519PrivateKey.from_private_bytes(bytearray(expected_key(1, 3))),
        x=X25519PrivateKey.from_private_bytes(bytearray(expected_key(1, 4)), exportable=False),
    ).close()
    good = path.read_bytes()
    assert open_everything(path, master) == [
        expected_key(1, 1),
        expected_key(1, 2, 5),
        Ed25519PrivateKey.from_private_bytes(bytearray(expected_key(1, 3)))
        .public_key()
        .public_bytes_raw(),
        X25519PrivateKey.from_private_bytes(bytearray(expected_key(1, 4)))
        .public_key()
        .public_bytes_raw(),
    ]
    detected = 0
    attempts = 0
    for i in range(len(good)):
        for bit in (0x01, 0x80, 0xFF):
            attempts += 1
            data = bytearray(good)
            data[i] ^= bit
            path.write_bytes(bytes(data))
            try:
                got = open_everything(path, master)
            except (StoreCorruptedError, StoreAuthenticationError):
                detected += 1
            else:
                pytest.fail(f"flip {bit:#x} at byte {i} not detected (got {len(got)} keys)")
    for n in range(len(good)):
        attempts += 1
        path.write_bytes(good[:n])
        with pytest.raises((StoreCorruptedError, StoreAuthenticationError)):
            open_everything(path, master)
        detected += 1
    assert detected == attempts == 4 * len(good)
    print(f"\n{master_kind}: {detected}/{attempts} tamperings detected ({len(good)}-byte file)")


HEADER = struct.Struct(">8sHBB16s16sIIIQI32s")


def rewrite(path: Path, data: bytearray) -> None:
    """Write `data` with a valid (unkeyed) checksum, as an attacker can."""
    body = bytes(data[:-64])
    data[-64:-32] = hashlib.sha256(body).digest()
    path.write_bytes(bytes(data))


def test_header_is_authenticated_including_kdf_params(tmp_path: Path) -> None:
    path = tmp_path / "s"
    make(path, k=SecretKey.generate(32)).close()
    good = bytearray(path.read_bytes())
    fields = list(HEADER.unpack_from(good))
    # Weakened Argon2 parameters (checksum fixed up): the derived keys differ.
    for idx, value in [(6, 1024 * 2), (7, 2), (8, 2)]:
        weak = list(fields)
        weak[idx] = value
        data = bytearray(good)
        HEADER.pack_into(data, 0, *weak)
        rewrite(path, data)
        with pytest.raises(StoreAuthenticationError):
            KeyStore.open(path, master=pw())
    # Generation and count are covered by the file MAC.
    data = bytearray(good)
    fields2 = list(fields)
    fields2[9] += 5
    HEADER.pack_into(data, 0, *fields2)
    rewrite(path, data)
    with pytest.raises(StoreCorruptedError, match="authentication"):
        KeyStore.open(path, master=pw())


def test_entry_moved_or_store_rolled_back_is_detected(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    master = SecretKey.generate(32)
    s1 = make(one, master=master, a=SecretKey.generate(32))
    s2 = make(two, master=master, a=SecretKey.generate(32))
    old = one.read_bytes()
    s1.put("b", SecretKey.generate(32))
    # Rollback to an older, authentic version while a handle is open.
    one.write_bytes(old)
    with pytest.raises(StoreCorruptedError, match="rollback"):
        s1.names()
    # A whole store file copied over another: a different store id.
    two_handle = s2
    one.write_bytes(two.read_bytes())
    with pytest.raises(StoreCorruptedError, match="different key store"):
        s1.get("a")
    assert two_handle.names() == ["a"]


# --- crash safety and concurrency -----------------------------------------------------

CHILD = textwrap.dedent(
    """
    import hashlib, sys
    from keycell import KeyStore, SecretKey
    path, seed, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    def key(i, n=32):
        return SecretKey.from_buffer(bytearray(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:n]))
    store = KeyStore.open(path, master=bytearray(b"correct horse battery staple"))
    i = start
    while True:
        store.put(f"k{i:05d}", key(i))
        store.put("latest", key(i), overwrite=True)
        if i % 3 == 0:
            store.delete(f"k{i - 1:05d}")
        print(i, flush=True)
        i += 1
    """
)


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """A child puts keys in a loop and reports each completed step over a pipe; the parent
    SIGKILLs it at random moments. After every kill the store opens and every reported
    entry is there and correct."""
    path = tmp_path / "s"
    make(path).close()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    reported: list[int] = []
    in_flight: set[int] = set()
    kills = 0
    deadline = time.monotonic() + 40
    next_i = 1
    while kills < 40 and time.monotonic() < deadline:
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(seed), str(next_i)],
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.04))
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        done = [int(x) for x in (first + rest).split()]
        reported.extend(done)
        in_flight.add(done[-1] + 1 if done else next_i)
        store = KeyStore.open(path, master=pw())
        names = set(store.names())
        for i in reported:
            name = f"k{i:05d}"
            if (i + 1) % 3 == 0:
                # Iteration i + 1 deletes k{i}: done if reported, maybe if in flight.
                if (i + 1) in reported:
                    assert name not in names
                    continue
                if (i + 1) in in_flight and name not in names:
                    continue
            assert name in names, f"reported put {name} lost after kill {kills}"
            with store.get(name).expose() as view:
                assert bytes(view) == expected_key(seed, i)
        # "latest" is the last reported key or the one in flight when killed.
        with store.get("latest").expose() as view:
            latest = bytes(view)
        last = reported[-1] if reported else 0
        assert latest in (expected_key(seed, last), expected_key(seed, last + 1))
        # Resume after whatever the killed child may have completed unreported.
        next_i = max([last] + [int(n[1:]) for n in names if n.startswith("k")]) + 1
    assert kills >= 30
    print(f"\nkills survived: {kills}, reported puts verified: {len(reported)}")


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from keycell import KeyStore, SecretKey
    path, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    store = KeyStore.open(path, master=bytearray(b"correct horse battery staple"))
    print("ready", flush=True)  # the store is open (its KDF has run) ...
    sys.stdin.readline()  # ... and every writer starts when all are ready
    for i in range(count):
        d = hashlib.sha256(f"{worker}:{i}".encode()).digest()
        store.put(f"w{worker}-{i}", SecretKey.from_buffer(bytearray(d)))
    """
)


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "s"
    make(path).close()
    workers, count = 4, 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=120) == 0
        assert p.stdout is not None
        p.stdout.close()
    store = KeyStore.open(path, master=pw())
    assert len(store) == workers * count
    for w in range(workers):
        for i in range(count):
            with store.get(f"w{w}-{i}").expose() as view:
                assert bytes(view) == hashlib.sha256(f"{w}:{i}".encode()).digest()


def test_threads_share_a_handle(tmp_path: Path) -> None:
    store = make(tmp_path / "s")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(10):
                store.put(f"t{t}-{i}", SecretKey.generate(16))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store) == 40
