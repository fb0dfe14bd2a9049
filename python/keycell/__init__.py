"""keycell: secret keys outside the CPython heap.

Keys live in memory the Rust core allocates, guards, locks and wipes; the cryptography
that uses them runs inside the Rust boundary. Python code holds opaque handles.

>>> from keycell import SecretKey
>>> with SecretKey.generate(32) as key:
...     len(key)
32
"""

from __future__ import annotations

import contextvars
import os
from contextlib import AbstractContextManager
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from . import audit, exceptions, keyring, otp
from ._native import (
    AESGCM,
    AESGCMSIV,
    HMAC,
    HOTP,
    TOTP,
    ChaCha20Poly1305,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Exposure,
    KeyStore,
    Passphrase,
    Protection,
    SecretKey,
    X25519PrivateKey,
    X25519PublicKey,
    XChaCha20Poly1305,
    _set_thread_isolation,
    compare_digest,
    ed25519_verify_batch,
    get_policy,
    hkdf,
    hkdf_expand,
    hkdf_extract,
    unwrap_key,
    wrap_key,
)
from ._native import set_policy as _set_policy
from .exceptions import (
    AlreadyFinalized,
    AuditError,
    AuditTamperedError,
    ForkedKeyError,
    InsecureKeyFileError,
    InvalidCode,
    InvalidSignature,
    InvalidTag,
    KeycellError,
    KeyDestroyedError,
    KeyFileError,
    KeyInUseError,
    KeyNotExportableError,
    KeyringError,
    KeyringKeyExpiredError,
    KeyringKeyNotFoundError,
    KeyringPermissionError,
    KeyringQuotaError,
    KeyringUnavailableError,
    KeyStoreError,
    MemoryLockError,
    ProtectionError,
    ProtectionWarning,
    StoreAuthenticationError,
    StoreCorruptedError,
    StoreEntryExistsError,
    StoreEntryNotFoundError,
    StoreLockedError,
)

try:
    __version__ = version("keycell")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "AESGCM",
    "AESGCMSIV",
    "HMAC",
    "HOTP",
    "TOTP",
    "AlreadyFinalized",
    "AuditError",
    "AuditTamperedError",
    "ChaCha20Poly1305",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "Exposure",
    "ForkedKeyError",
    "InsecureKeyFileError",
    "InvalidCode",
    "InvalidSignature",
    "InvalidTag",
    "KeyDestroyedError",
    "KeyFileError",
    "KeyInUseError",
    "KeyNotExportableError",
    "KeyStore",
    "KeyStoreError",
    "KeycellError",
    "KeyringError",
    "KeyringKeyExpiredError",
    "KeyringKeyNotFoundError",
    "KeyringPermissionError",
    "KeyringQuotaError",
    "KeyringUnavailableError",
    "MemoryLockError",
    "Passphrase",
    "Protection",
    "ProtectionError",
    "ProtectionWarning",
    "SecretKey",
    "StoreAuthenticationError",
    "StoreCorruptedError",
    "StoreEntryExistsError",
    "StoreEntryNotFoundError",
    "StoreLockedError",
    "X25519PrivateKey",
    "X25519PublicKey",
    "XChaCha20Poly1305",
    "__version__",
    "audit",
    "compare_digest",
    "ed25519_verify_batch",
    "exceptions",
    "get_policy",
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "keyring",
    "otp",
    "policy",
    "set_policy",
    "unwrap_key",
    "wrap_key",
]

_POLICY_ENV = "KEYCELL_ON_LOCK_FAILURE"
_ISOLATION_ENV = "KEYCELL_ISOLATION"
_BACKEND_ENV = "KEYCELL_BACKEND"
_ISOLATIONS = ("page", "pool", "auto")

_Isolation = Literal["page", "pool", "auto"]


def set_policy(
    *,
    on_lock_failure: Literal["warn", "raise"] | None = None,
    isolation: _Isolation | None = None,
    backend: Literal["mmap", "memfd_secret"] | None = None,
) -> None:
    """Set the process-wide policies for keys created afterwards; a keyword not given
    keeps its current value.

    ``on_lock_failure``: ``"warn"`` (the default): a key whose memory cannot be locked
    still works, its ``protection.locked`` is ``False`` and a :class:`ProtectionWarning`
    is emitted once per process. ``"raise"``: creating the key raises
    :class:`MemoryLockError` (or :class:`ProtectionError` when ``madvise`` fails). The
    environment variable ``KEYCELL_ON_LOCK_FAILURE`` sets the initial value.

    ``isolation``: ``"page"``: every key gets a guarded mapping of its own (guard pages
    directly around it, read-only while idle; one locked page and three mappings per
    key). ``"pool"``: keys share guarded, locked arenas, each in a slot with a random
    canary directly before and after it (64 bytes of locked memory for a 32-byte key;
    arenas stay read-write). ``"auto"`` (the default): page isolation while the live
    page-isolated keys use at most an eighth of ``RLIMIT_MEMLOCK`` (and at most 1 MiB:
    256 keys of one page), the pool after that. Keys too large for the pool (more than
    about 1 KiB) are always page-isolated. The environment variable ``KEYCELL_ISOLATION``
    sets the initial value. See also :func:`policy` for a scoped override.

    ``backend``: what backs pool arenas. ``"mmap"`` (the default): private anonymous
    memory, ``mlock``ed. ``"memfd_secret"``: ``memfd_secret(2)`` memory, removed from the
    kernel's direct map and unreadable through ``/proc/PID/mem`` and ``process_vm_readv``
    even by root; implicitly locked; not mapped in fork children. While such memory
    exists the kernel refuses to hibernate. Under ``"memfd_secret"``, ``"auto"`` isolation
    pools every key that fits a slot (page-isolated keys stay anonymous memory). Refused
    (:class:`ProtectionError`) where the kernel lacks it. ``KEYCELL_BACKEND`` sets the
    initial value.
    """
    if on_lock_failure is not None and not isinstance(on_lock_failure, str):
        raise TypeError("on_lock_failure must be a str: 'warn' or 'raise'")
    if isolation is not None and not isinstance(isolation, str):
        raise TypeError("isolation must be a str: 'page', 'pool' or 'auto'")
    if backend is not None and not isinstance(backend, str):
        raise TypeError("backend must be a str: 'mmap' or 'memfd_secret'")
    _set_policy(on_lock_failure=on_lock_failure, isolation=isolation, backend=backend)


_scoped_isolation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keycell_isolation", default=None
)


class _IsolationScope(AbstractContextManager[None]):
    """The context manager returned by :func:`policy` (a class, not a generator: entering
    and leaving costs two native calls and a context variable set/reset)."""

    __slots__ = ("_isolation", "_previous", "_token")

    def __init__(self, isolation: str) -> None:
        self._isolation = isolation

    def __enter__(self) -> None:
        self._token = _scoped_isolation.set(self._isolation)
        self._previous = _set_thread_isolation(self._isolation)

    def __exit__(self, *exc: object) -> None:
        _set_thread_isolation(self._previous)
        _scoped_isolation.reset(self._token)


def policy(*, isolation: _Isolation) -> AbstractContextManager[None]:
    """Override the isolation of keys created inside the ``with`` block, on this thread.

    >>> with policy(isolation="page"):
    ...     key = SecretKey.generate(32)
    >>> key.protection.isolation
    'page'

    The override is kept in a context variable (so nested blocks restore the outer value,
    and other threads are never affected) and mirrored into the allocator's per-thread
    state for the duration of the block. Keep ``await`` out of the block in asyncio code:
    other tasks that run on the same thread while it is suspended would see the override.
    """
    if not isinstance(isolation, str):
        raise TypeError("isolation must be a str: 'page', 'pool' or 'auto'")
    if isolation not in _ISOLATIONS:
        raise ValueError(f"isolation must be 'page', 'pool' or 'auto', not {isolation!r}")
    return _IsolationScope(isolation)


def _policy_from_environment() -> None:
    value = os.environ.get(_POLICY_ENV)
    if value is not None and value != "":
        if value not in ("warn", "raise"):
            # A typo must not silently leave the weaker policy in place.
            raise ValueError(f"{_POLICY_ENV} must be 'warn' or 'raise', not {value!r}")
        _set_policy(on_lock_failure="raise" if value == "raise" else "warn")
    value = os.environ.get(_ISOLATION_ENV)
    if value is not None and value != "":
        if value not in _ISOLATIONS:
            raise ValueError(
                f"{_ISOLATION_ENV} must be 'page', 'pool' or 'auto', not {value!r}"
            )
        _set_policy(isolation=value)  # type: ignore[arg-type]  # checked above
    value = os.environ.get(_BACKEND_ENV)
    if value is not None and value != "":
        if value not in ("mmap", "memfd_secret"):
            raise ValueError(f"{_BACKEND_ENV} must be 'mmap' or 'memfd_secret', not {value!r}")
        _set_policy(backend=value)  # type: ignore[arg-type]  # checked above


_policy_from_environment()
