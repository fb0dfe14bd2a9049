"""keycell: secret keys outside the CPython heap.

Keys live in memory the Rust core allocates, guards, locks and wipes; the cryptography
that uses them runs inside the Rust boundary. Python code holds opaque handles.

>>> from keycell import SecretKey
>>> with SecretKey.generate(32) as key:
...     len(key)
32
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from . import agent, audit, exceptions, jose, key_protocols, keyring, otp, pkcs11
from ._isolation_scope import IsolationScope
from ._lazy import LazyKey, lazy
from ._native import (
    AESGCM,
    AESGCMSIV,
    HMAC,
    HOTP,
    TOTP,
    ChaCha20Poly1305,
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Exposure,
    KeyStore,
    Passphrase,
    Protection,
    RSAPrivateKey,
    RSAPublicKey,
    SecretKey,
    X25519PrivateKey,
    X25519PublicKey,
    XChaCha20Poly1305,
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
    AgentError,
    AgentPolicyError,
    AgentProtocolError,
    AgentRefusedError,
    AgentUnavailableError,
    AlreadyFinalized,
    AuditError,
    AuditTamperedError,
    CredentialUnavailableError,
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
    Pkcs11Error,
    ProtectionError,
    ProtectionWarning,
    StoreAuthenticationError,
    StoreCorruptedError,
    StoreEntryExistsError,
    StoreEntryNotFoundError,
    StoreLockedError,
)
from .key_protocols import ECSigner, Ed25519Signer, HmacKey, RSASigner

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
    "AgentError",
    "AgentPolicyError",
    "AgentProtocolError",
    "AgentRefusedError",
    "AgentUnavailableError",
    "AlreadyFinalized",
    "AuditError",
    "AuditTamperedError",
    "ChaCha20Poly1305",
    "CredentialUnavailableError",
    "ECPrivateKey",
    "ECPublicKey",
    "ECSigner",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "Ed25519Signer",
    "Exposure",
    "ForkedKeyError",
    "HmacKey",
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
    "LazyKey",
    "MemoryLockError",
    "Passphrase",
    "Pkcs11Error",
    "Protection",
    "ProtectionError",
    "ProtectionWarning",
    "RSAPrivateKey",
    "RSAPublicKey",
    "RSASigner",
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
    "agent",
    "audit",
    "compare_digest",
    "ed25519_verify_batch",
    "exceptions",
    "get_policy",
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "jose",
    "key_protocols",
    "keyring",
    "lazy",
    "otp",
    "pkcs11",
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


def policy(*, isolation: _Isolation) -> AbstractContextManager[None]:
    """Override the isolation of keys created inside the ``with`` block.

    >>> with policy(isolation="page"):
    ...     key = SecretKey.generate(32)
    >>> key.protection.isolation
    'page'

    The override is kept in a context variable: nested blocks restore the outer value,
    other threads are never affected, and in asyncio code each task sees its own (a task
    created inside the block keeps the override, as context variables are inherited;
    another task that runs while this one awaits inside the block does not see it). Every
    secret allocated in the block follows it, derived ones (HKDF output, shared secrets,
    HMAC midstates computed on first use) included.

    A generator (or a ``@contextmanager`` function) has no context of its own: a block
    entered inside a generator that then yields stays in force in the *caller* until the
    generator resumes and leaves it, so keys the caller creates meanwhile follow the
    override. Enter the block around the code that creates the keys, not across a
    ``yield``.
    """
    if not isinstance(isolation, str):
        raise TypeError("isolation must be a str: 'page', 'pool' or 'auto'")
    if isolation not in _ISOLATIONS:
        raise ValueError(f"isolation must be 'page', 'pool' or 'auto', not {isolation!r}")
    return IsolationScope(isolation)


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
