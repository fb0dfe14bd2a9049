"""keycell under asyncio: the agent client on asyncio streams, and the blocking calls (a
key store's Argon2id and fsync, key file and keyring loads, PKCS#11 token calls, audit
appends) run off the event loop.

>>> from keycell import aio                                  # doctest: +SKIP
>>> client = await aio.connect()                             # $KEYCELL_AGENT_SOCK
>>> key = await client.ed25519("deploy")
>>> sig = await key.sign(b"msg")
>>> store = await aio.KeyStore.open("keys.kc", master=passphrase)
>>> mac = await store.get("webhook")

The agent client speaks the same wire format as :mod:`keycell.agent` (the encoding and
decoding are that module's); its handles have the methods of the sync handles, awaited
(``sign``, ``hmac``, ``verify_hmac``), and ``public_key()`` and ``protection`` as they are.

Cancellation is safe: a cancelled agent request closes its connection (the next request
opens a new one), so no half-read reply is ever taken for the next one's; a cancelled
:func:`run` (and every call of :class:`KeyStore`) lets the blocking call finish in its
thread and then destroys (or closes) the key handle or store it returned, so no handle is
left to the garbage collector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from . import _native
from .agent import (
    _HMAC,
    _LIST,
    _REQUEST_IDENTITIES,
    _VERIFY_HMAC,
    AgentKeyInfo,
    _ECWire,
    _Ed25519Wire,
    _extension_message,
    _extension_reply,
    _frame,
    _identities_reply,
    _keys_reply,
    _pick,
    _reply_length,
    _RSAWire,
    _SecretWire,
    _sign_message,
    _socket_path,
)
from .exceptions import AgentProtocolError, AgentUnavailableError

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .audit import AuditLog

__all__ = [
    "AsyncAgentClient",
    "AsyncAgentECKey",
    "AsyncAgentEd25519Key",
    "AsyncAgentRSAKey",
    "AsyncAgentSecretKey",
    "KeyStore",
    "append",
    "connect",
    "run",
]

#: The kinds of key a store holds.
_StoredKey = (
    _native.SecretKey
    | _native.Ed25519PrivateKey
    | _native.X25519PrivateKey
    | _native.ECPrivateKey
    | _native.RSAPrivateKey
)

P = ParamSpec("P")
T = TypeVar("T")

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_pid = 0
_executor_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads of :func:`run` (a new pool in a fork child: the parent's threads are
    not there)."""
    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():
            workers = min(32, (os.cpu_count() or 1) + 4)
            _executor = concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="keycell-aio"
            )
            _executor_pid = os.getpid()
        return _executor


def _dispose(result: object) -> None:
    """Destroy a keycell handle (or close a store or log) whose caller was cancelled."""
    values = result if isinstance(result, (list, tuple)) else (result,)
    for v in values:
        if not type(v).__module__.startswith("keycell"):
            continue
        for method in ("destroy", "close"):
            f = getattr(v, method, None)
            if callable(f):
                f()
                break


def _dispose_done(cf: concurrent.futures.Future[Any]) -> None:
    if not cf.cancelled() and cf.exception() is None:
        _dispose(cf.result())


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in a worker thread, awaited; for keycell's blocking calls
    (``Ed25519PrivateKey.from_file``, ``SecretKey.from_keyring``, ``pkcs11.open_uri`` and
    a token's calls, ...). keycell's native calls release the GIL while they work, so the
    loop keeps running. The context variables (an isolation scope) go with the call.

    If the await is cancelled, a call not started yet never runs; a call already running
    finishes, and the keycell handle it returns (or each one in a returned list or tuple)
    is destroyed, or closed (a store, a token, a log), at once."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    ctx = contextvars.copy_context()
    cf = _pool().submit(ctx.run, functools.partial(fn, *args, **kwargs))

    def relay(done: concurrent.futures.Future[T]) -> None:
        try:
            loop.call_soon_threadsafe(_settle, waiter, done)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    cf.add_done_callback(relay)
    try:
        return await waiter
    except asyncio.CancelledError:
        if not cf.cancel():  # running or done: its handle is disposed of when it is done
            cf.add_done_callback(_dispose_done)
        raise


def _settle(waiter: asyncio.Future[T], done: concurrent.futures.Future[T]) -> None:
    """Pass the worker's outcome to the awaiting task (unless it was cancelled)."""
    if waiter.done():
        return
    if done.cancelled():
        waiter.cancel()
    elif (exc := done.exception()) is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(done.result())


async def append(log: AuditLog, event: dict[str, Any] | str) -> int | None:
    """``log.append(event)`` off the loop: the append and its fsync run in a worker
    thread (returns what :meth:`keycell.audit.AuditLog.append` returns)."""
    return await run(log.append, event)


class KeyStore:
    """A :class:`keycell.KeyStore` whose blocking calls are awaited: ``open`` and
    ``create`` (Argon2id), ``get`` (decryption), ``put``, ``delete`` and
    ``rotate_master`` (the writer lock, fsync) run in a worker thread. ``sync`` is the
    store itself, for what does not block (``path``, ``closed``, ``protection``)."""

    def __init__(self, store: _native.KeyStore) -> None:
        if not isinstance(store, _native.KeyStore):
            raise TypeError(f"expected a keycell.KeyStore, not {type(store).__name__}")
        self.sync = store

    def __repr__(self) -> str:
        return f"<keycell.aio.KeyStore {self.sync!r}>"

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        master: Any,
        lock_timeout: float | None = None,
    ) -> KeyStore:
        """:meth:`keycell.KeyStore.open`, off the loop."""
        store = await run(_native.KeyStore.open, path, master=master, lock_timeout=lock_timeout)
        return cls(store)

    @classmethod
    async def create(
        cls,
        path: str | os.PathLike[str],
        *,
        master: Any,
        kdf_params: Any = None,
        lock_timeout: float | None = None,
    ) -> KeyStore:
        """:meth:`keycell.KeyStore.create`, off the loop."""
        store = await run(
            _native.KeyStore.create,
            path,
            master=master,
            kdf_params=kdf_params,
            lock_timeout=lock_timeout,
        )
        return cls(store)

    async def get(self, name: str) -> _StoredKey:
        """:meth:`keycell.KeyStore.get`, off the loop (a cancelled get destroys the key)."""
        return await run(self.sync.get, name)

    async def put(
        self,
        name: str,
        key: _StoredKey,
        *,
        overwrite: bool = False,
    ) -> None:
        """:meth:`keycell.KeyStore.put`, off the loop."""
        await run(self.sync.put, name, key, overwrite=overwrite)

    async def delete(self, name: str) -> None:
        """:meth:`keycell.KeyStore.delete`, off the loop."""
        await run(self.sync.delete, name)

    async def names(self) -> list[str]:
        """:meth:`keycell.KeyStore.names`, off the loop."""
        return await run(self.sync.names)

    async def rotate_master(self, new_master: Any, *, kdf_params: Any = None) -> None:
        """:meth:`keycell.KeyStore.rotate_master`, off the loop."""
        await run(self.sync.rotate_master, new_master, kdf_params=kdf_params)

    async def close(self) -> None:
        """:meth:`keycell.KeyStore.close` (waits, off the loop, for a call in progress)."""
        await run(self.sync.close)

    async def __aenter__(self) -> KeyStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncAgentClient:
    """A connection to a keycell agent on asyncio streams (see :func:`connect`): the
    methods of :class:`keycell.agent.AgentClient`, awaited. One request at a time on the
    connection; use it from one event loop."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<keycell.aio.AsyncAgentClient {self.path!r}>"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_unix_connection(self.path)
        except TimeoutError:
            raise AgentUnavailableError(
                f"cannot connect to the keycell agent at {self.path}: timed out"
            ) from None
        except OSError as exc:
            raise AgentUnavailableError(
                f"cannot connect to the keycell agent at {self.path}: {exc.strerror or exc}"
            ) from None

    async def _exchange(
        self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], frame: bytes
    ) -> bytes | None:
        """Send a frame, read the reply; ``None`` if the agent closed the connection."""
        reader, writer = streams
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(frame)
                await writer.drain()
                try:
                    header = await reader.readexactly(4)
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        raise AgentProtocolError(
                            "the agent closed the connection in the middle of a reply"
                        ) from None
                    return None
                try:
                    return await reader.readexactly(_reply_length(header))
                except asyncio.IncompleteReadError:
                    raise AgentProtocolError(
                        "the agent closed the connection in the middle of a reply"
                    ) from None
        except (BrokenPipeError, ConnectionResetError):
            return None
        except TimeoutError:
            raise AgentUnavailableError(
                f"the keycell agent at {self.path} did not answer within {self.timeout} s"
            ) from None
        except OSError as exc:
            raise AgentUnavailableError(f"keycell agent at {self.path}: {exc}") from None

    def _drop(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

    async def request(self, message: bytes) -> bytes:
        """Send one message (type byte and contents) and return the reply's. Reconnects
        once if the agent had closed the connection. A request that fails or is cancelled
        between sending and the end of its reply closes the connection."""
        frame = _frame(message)
        async with self._lock:
            if self._pid != os.getpid():  # a fork child never shares the parent's socket
                self._streams, self._pid = None, os.getpid()
            for attempt in (0, 1):
                fresh = self._streams is None
                if self._streams is None:
                    self._streams = await self._connect()
                try:
                    reply = await self._exchange(self._streams, frame)
                except BaseException:
                    self._drop()  # it may hold part of this reply: never reuse it
                    raise
                if reply is not None:
                    return reply
                self._drop()
                if fresh or attempt:
                    break
        raise AgentUnavailableError(f"the keycell agent at {self.path} closed the connection")

    async def _extension(self, name: str, body: bytes) -> Any:
        return _extension_reply(await self.request(_extension_message(name, body)), name)

    async def identities(self) -> list[tuple[bytes, str]]:
        """``REQUEST_IDENTITIES``: ``(SSH public key blob, comment)`` pairs."""
        return _identities_reply(await self.request(bytes([_REQUEST_IDENTITIES])))

    async def keys(self) -> list[AgentKeyInfo]:
        """Every key the agent lets this peer use (``list@keycell``)."""
        return _keys_reply(await self._extension(_LIST, b""))

    async def ed25519(self, name: str) -> AsyncAgentEd25519Key:
        """A handle of the agent's Ed25519 key ``name`` (``AgentRefusedError`` if the agent
        has none this process may use)."""
        return AsyncAgentEd25519Key(self, _pick(await self.keys(), name, "ed25519"))

    async def ec(self, name: str) -> AsyncAgentECKey:
        """A handle of the agent's EC (P-256 or P-384) key ``name``."""
        return AsyncAgentECKey(self, _pick(await self.keys(), name, "ec"))

    async def rsa(self, name: str) -> AsyncAgentRSAKey:
        """A handle of the agent's RSA key ``name``."""
        return AsyncAgentRSAKey(self, _pick(await self.keys(), name, "rsa"))

    async def secret(self, name: str) -> AsyncAgentSecretKey:
        """A handle of the agent's secret key ``name``."""
        return AsyncAgentSecretKey(self, _pick(await self.keys(), name, "secret"))

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        self._drop()

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class AsyncAgentEd25519Key(_Ed25519Wire):
    """An Ed25519 key held by the agent (as :class:`keycell.agent.AgentEd25519Key`),
    with ``sign`` awaited."""

    async def sign(self, data: Buffer) -> bytes:
        """Sign ``data`` (Ed25519) in the agent; returns the 64-byte signature."""
        return self._signature(await self._client.request(_sign_message(self._blob, data)))


class AsyncAgentECKey(_ECWire):
    """An ECDSA key held by the agent (as :class:`keycell.agent.AgentECKey`), with
    ``sign`` awaited."""

    async def sign(self, data: Buffer, *, encoding: str = "der") -> bytes:
        """Sign ``data`` (ECDSA) in the agent; ``encoding`` ``"der"`` or ``"raw"``."""
        self._check_encoding(encoding)
        reply = await self._client.request(_sign_message(self._blob, data))
        return self._signature(reply, encoding)


class AsyncAgentRSAKey(_RSAWire):
    """An RSA key held by the agent (as :class:`keycell.agent.AgentRSAKey`), with
    ``sign`` awaited (``padding="pkcs1v15"``, ``hash`` "sha256" or "sha512")."""

    async def sign(
        self,
        data: Buffer,
        *,
        padding: Literal["pss", "pkcs1v15"] = "pss",
        hash: Literal["sha256", "sha384", "sha512"] = "sha256",
    ) -> bytes:
        """Sign ``data`` in the agent (RSASSA-PKCS1-v1_5); returns the signature."""
        message, name = self._request(data, padding, hash)
        return self._signature(await self._client.request(message), name)


class AsyncAgentSecretKey(_SecretWire):
    """A secret key held by the agent (as :class:`keycell.agent.AgentSecretKey`), with
    ``hmac`` and ``verify_hmac`` awaited."""

    async def hmac(self, data: Buffer, algorithm: str = "sha256") -> bytes:
        """HMAC of ``data`` computed in the agent."""
        body = self._hmac_body(data, algorithm)
        return self._tag(await self._client._extension(_HMAC, body))

    async def verify_hmac(self, data: Buffer, tag: Buffer, algorithm: str = "sha256") -> None:
        """Check ``tag`` over ``data`` in the agent; raises
        :class:`~keycell.exceptions.InvalidSignature`."""
        body = self._verify_body(data, tag, algorithm)
        self._verified(await self._client._extension(_VERIFY_HMAC, body))


async def connect(
    path: str | os.PathLike[str] | None = None, *, timeout: float = 10.0
) -> AsyncAgentClient:
    """An asyncio client of the keycell agent at ``path`` (default
    ``$KEYCELL_AGENT_SOCK``), connected (``AgentUnavailableError`` if the agent cannot be
    reached)."""
    client = AsyncAgentClient(_socket_path(path), timeout=timeout)
    client._streams = await client._connect()
    return client
