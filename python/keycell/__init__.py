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
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from . import exceptions, otp
from ._native import (
    HMAC,
    HOTP,
    TOTP,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    Exposure,
    KeyStore,
    Passphrase,
    Protection,
    SecretKey,
    X25519PrivateKey,
    X25519PublicKey,
    compare_digest,
    ed25519_verify_batch,
    get_policy,
    hkdf,
    hkdf_expand,
    hkdf_extract,
)
from ._native import set_policy as _set_policy
from .exceptions import (
    AlreadyFinalized,
    ForkedKeyError,
    InsecureKeyFileError,
    InvalidCode,
    InvalidSignature,
    KeycellError,
    KeyDestroyedError,
    KeyFileError,
    KeyInUseError,
    KeyNotExportableError,
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
    "HMAC",
    "HOTP",
    "TOTP",
    "AlreadyFinalized",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "Exposure",
    "ForkedKeyError",
    "InsecureKeyFileError",
    "InvalidCode",
    "InvalidSignature",
    "KeyDestroyedError",
    "KeyFileError",
    "KeyInUseError",
    "KeyNotExportableError",
    "KeyStore",
    "KeyStoreError",
    "KeycellError",
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
    "__version__",
    "compare_digest",
    "ed25519_verify_batch",
    "exceptions",
    "get_policy",
    "hkdf",
    "hkdf_expand",
    "hkdf_extract",
    "otp",
    "set_policy",
]

_POLICY_ENV = "KEYCELL_ON_LOCK_FAILURE"


def set_policy(*, on_lock_failure: Literal["warn", "raise"]) -> None:
    """Set the process-wide policy for keys whose memory cannot be locked.

    ``"warn"`` (the default): the key still works, its ``protection.locked`` is ``False``
    and a :class:`ProtectionWarning` is emitted once per process. ``"raise"``: creating
    the key raises :class:`MemoryLockError` (or :class:`ProtectionError` when
    ``madvise`` fails). Applies to keys created afterwards. The environment variable
    ``KEYCELL_ON_LOCK_FAILURE`` sets the initial value.
    """
    if not isinstance(on_lock_failure, str):
        raise TypeError("on_lock_failure must be a str: 'warn' or 'raise'")
    _set_policy(on_lock_failure=on_lock_failure)


def _policy_from_environment() -> None:
    value = os.environ.get(_POLICY_ENV)
    if value is None or value == "":
        return
    if value not in ("warn", "raise"):
        # A typo must not silently leave the weaker policy in place.
        raise ValueError(f"{_POLICY_ENV} must be 'warn' or 'raise', not {value!r}")
    _set_policy(on_lock_failure="raise" if value == "raise" else "warn")


_policy_from_environment()
