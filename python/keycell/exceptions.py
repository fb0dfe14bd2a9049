"""Exceptions and warnings raised by keycell.

Every exception keycell raises on purpose derives from :class:`KeycellError` (argument
errors are ordinary :class:`TypeError`/:class:`ValueError`). No message contains secret
bytes, nor the length of secret input that was rejected.
"""

from __future__ import annotations

__all__ = [
    "AlreadyFinalized",
    "AuditError",
    "AuditTamperedError",
    "ForkedKeyError",
    "InsecureKeyFileError",
    "InvalidCode",
    "InvalidSignature",
    "InvalidTag",
    "KeyDestroyedError",
    "KeyFileError",
    "KeyInUseError",
    "KeyNotExportableError",
    "KeyStoreError",
    "KeycellError",
    "KeyringError",
    "KeyringKeyExpiredError",
    "KeyringKeyNotFoundError",
    "KeyringPermissionError",
    "KeyringQuotaError",
    "KeyringUnavailableError",
    "MemoryLockError",
    "ProtectionError",
    "ProtectionWarning",
    "StoreAuthenticationError",
    "StoreCorruptedError",
    "StoreEntryExistsError",
    "StoreEntryNotFoundError",
    "StoreLockedError",
]


class KeycellError(Exception):
    """Base class of every keycell exception."""


class KeyDestroyedError(KeycellError):
    """The key (or object) was destroyed; it cannot be used any more."""


class KeyInUseError(KeycellError):
    """The key cannot be destroyed now: a view from ``expose()`` is still open."""


class ForkedKeyError(KeycellError):
    """The key was created by the parent before ``fork()``; it was wiped in this child."""


class ProtectionError(KeycellError):
    """A memory protection could not be established (``mmap``, ``mprotect``, ``madvise``).

    ``errno`` holds the OS error number when there is one.
    """

    errno: int | None = None


class MemoryLockError(ProtectionError):
    """``mlock`` failed and the policy is ``on_lock_failure="raise"``.

    ``errno`` holds the OS error number (``ENOMEM`` when ``RLIMIT_MEMLOCK`` is exhausted).
    """


class KeyFileError(KeycellError):
    """A key file cannot be used: missing, unreadable, empty, too large or the wrong size.

    ``errno`` holds the OS error number when an OS call failed.
    """

    errno: int | None = None


class InsecureKeyFileError(KeyFileError):
    """A key file is not safe to read: a symlink, not a regular file, owned by another
    user, or accessible to group or others."""


class InvalidSignature(KeycellError):
    """A signature or MAC tag did not verify."""


class InvalidCode(InvalidSignature):
    """A one-time password (``keycell.otp``) is wrong, expired (outside the window) or was
    already used (its counter is not above ``last_counter``). The message does not say which.
    """


class InvalidTag(KeycellError):
    """An AEAD tag did not verify: wrong key, nonce or associated data, or the ciphertext
    was modified or truncated. No plaintext, partial or whole, is returned."""


class AlreadyFinalized(KeycellError):
    """The context was already finalized and cannot be used again."""


class ProtectionWarning(UserWarning):
    """A key works but lacks a protection (e.g. ``mlock`` failed); shown once per process."""


# Key files and the key store.


class KeyNotExportableError(KeycellError):
    """The key is not exportable (created with ``exportable=False`` or sealed with
    ``seal_export()``): ``expose()`` and ``to_file()`` refuse."""


class KeyStoreError(KeycellError):
    """Base class of key store failures. ``errno`` is set when an OS condition caused it
    (``EEXIST`` when ``KeyStore.create`` finds a file at the path)."""

    errno: int | None = None


class StoreCorruptedError(KeyStoreError):
    """The key store file is damaged, truncated, was modified, rolled back, or an entry was
    moved to another name or store. No key is returned from such a file."""


class StoreAuthenticationError(KeyStoreError):
    """The passphrase or master key is wrong for this store (or the store's header, which
    the master authenticates, was modified; or the master was rotated meanwhile)."""


class StoreEntryNotFoundError(KeyStoreError, KeyError):
    """The key store has no entry of that name (also a :class:`KeyError`)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StoreEntryExistsError(KeyStoreError):
    """``put`` found an entry of that name and ``overwrite`` was not given."""


class StoreLockedError(KeyStoreError):
    """A change to the key store waited for its writer lock (``PATH.lock``) longer than the
    store's ``lock_timeout`` (default 30 s): another thread or process is writing, or holds
    the lock. The message names the lock file and the timeout. Nothing was changed."""


# The Linux kernel keyring.


class KeyringError(KeycellError):
    """Base class of kernel keyring failures (``keycell.keyring``, ``from_keyring``).

    ``errno`` holds the error number the kernel returned, when there is one. Messages
    never contain payload bytes.
    """

    errno: int | None = None


class KeyringKeyNotFoundError(KeyringError):
    """No such key or keyring (``ENOKEY``): nothing of that description is reachable from
    the keyring searched, or no key has that serial."""


class KeyringKeyExpiredError(KeyringError):
    """The key expired (``EKEYEXPIRED``, its timeout passed) or was revoked
    (``EKEYREVOKED``)."""


class KeyringPermissionError(KeyringError):
    """The key or keyring does not grant this process the permission (``EACCES``).

    Keys stored by keycell are possessor-only (``0x3f000000``): only a process that
    reaches the key through its own thread, process or session keyring can read it. A key
    in the user keyring is possessed only through a session keyring that links the user
    keyring.
    """


class KeyringQuotaError(KeyringError):
    """The user's key quota is exceeded (``EDQUOT``): by default 200 keys and 20,000
    bytes per user (``/proc/sys/kernel/keys/maxkeys`` and ``maxbytes``)."""


class KeyringUnavailableError(KeyringError):
    """The keyring system calls are blocked (``EPERM``/``ENOSYS`` from a container's
    seccomp profile, e.g. Docker's default) or the kernel lacks ``CONFIG_KEYS``."""


# The audit log.


class AuditError(KeycellError):
    """Base class of audit log failures (``keycell.audit``): the log, its state file, lock
    file or checkpoint cannot be used, another writer held the lock too long, or the log is
    closed. ``errno`` holds the OS error number when an OS call failed."""

    errno: int | None = None


class AuditTamperedError(AuditError):
    """The log is not what its writer expects: a line another process appended, or the
    lines after the state file's snapshot, fail their checks. ``kind`` names the failure
    (``"modified"``, ``"deleted"``, ... as in :func:`keycell.audit.verify`) and ``line``
    its 1-based line number."""

    kind: str = ""
    line: int = 0
