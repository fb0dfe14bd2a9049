"""``keycell.aio``: blocking calls (a key store's Argon2id and fsync, key loads, audit
appends) run off the event loop, and a cancelled call destroys the handle it made."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from keycell import Ed25519PrivateKey, KeyStore, Passphrase, SecretKey, aio, audit
from keycell.exceptions import (
    KeyFileError,
    StoreAuthenticationError,
    StoreEntryNotFoundError,
)

FAST = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
DEADLINE = 30.0


def test_run_works_off_the_loop() -> None:
    # The call waits for an event only the loop sets: on the loop it could never finish.
    async def main() -> None:
        go = threading.Event()

        def blocking() -> str:
            if not go.wait(DEADLINE):
                raise AssertionError("the loop did not run while the call waited")
            return threading.current_thread().name

        task = asyncio.create_task(aio.run(blocking))
        await asyncio.sleep(0)
        go.set()
        assert (await task).startswith("keycell-aio")

    asyncio.run(main())


def test_a_cancelled_run_destroys_the_handle_it_made() -> None:
    made: list[SecretKey] = []

    async def main() -> None:
        started, go = threading.Event(), threading.Event()

        def load() -> SecretKey:
            started.set()
            if not go.wait(DEADLINE):
                raise AssertionError("never released")
            k = SecretKey.generate(32)
            made.append(k)
            return k

        task = asyncio.create_task(aio.run(load))
        assert await asyncio.to_thread(started.wait, DEADLINE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()

    asyncio.run(main())
    # The load finishes after its caller was cancelled, on a worker thread (which may still
    # be running when asyncio.run returns: wait for it): its key is destroyed, not left to
    # the garbage collector.
    tick = threading.Event()
    for _ in range(int(DEADLINE * 100)):
        if made and made[0].destroyed:
            break
        tick.wait(0.01)
    assert len(made) == 1
    assert made[0].destroyed


def test_run_passes_errors_and_keyword_arguments(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    key.to_file(tmp_path / "k.pem", format="pem")

    async def main() -> None:
        loaded = await aio.run(Ed25519PrivateKey.from_file, tmp_path / "k.pem")
        assert loaded.public_key() == key.public_key()
        with pytest.raises(KeyFileError, match="cannot open"):
            await aio.run(Ed25519PrivateKey.from_file, tmp_path / "missing.pem")

    asyncio.run(main())


def test_async_key_store(tmp_path: Path) -> None:
    path = tmp_path / "s.kcs"
    (tmp_path / "pw").write_bytes(b"correct horse")
    (tmp_path / "pw").chmod(0o600)

    async def main() -> None:
        with Passphrase.from_file(tmp_path / "pw") as pw:
            store = await aio.KeyStore.create(path, master=pw, kdf_params=FAST)
        async with store:
            assert isinstance(store.sync, KeyStore)
            with SecretKey.generate(32) as k:
                await store.put("mac", k)
                tag = k.hmac(b"x")
            assert await store.names() == ["mac"]
            got = await store.get("mac")
            assert isinstance(got, SecretKey)
            assert got.hmac(b"x") == tag
            with pytest.raises(StoreEntryNotFoundError):
                await store.get("nope")
            await store.rotate_master(new_master)
            await store.delete("mac")
            assert await store.names() == []
        assert store.sync.closed
        with Passphrase.from_file(tmp_path / "pw") as pw, pytest.raises(
            StoreAuthenticationError
        ):
            await aio.KeyStore.open(path, master=pw)
        reopened = await aio.KeyStore.open(path, master=new_master)
        assert "keycell.aio.KeyStore" in repr(reopened)
        await reopened.close()
        with pytest.raises(TypeError, match="KeyStore"):
            aio.KeyStore(object())  # type: ignore[arg-type]

    with SecretKey.generate(32) as new_master:
        asyncio.run(main())


def test_audit_append_off_the_loop(tmp_path: Path) -> None:
    async def main() -> None:
        with SecretKey.generate(32) as k0:
            signer = Ed25519PrivateKey.generate()
            log = audit.AuditLog.create(
                tmp_path / "a.log", key=k0, signer=signer, origin="t", sync=True
            )
            seqs = [await aio.append(log, {"event": "e", "n": i}) for i in range(3)]
            checkpoint = await aio.run(log.checkpoint)
            log.close()
            assert seqs == sorted(seqs)
            assert len(set(seqs)) == 3
            result = audit.verify(
                tmp_path / "a.log",
                key=k0,
                public_key=signer.public_key(),
                checkpoint=checkpoint.encode(),
            )
            assert not result.tampered

    asyncio.run(main())
