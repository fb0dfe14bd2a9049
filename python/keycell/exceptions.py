"""Exceptions and warnings raised by keycell.

Every exception keycell raises on purpose derives from :class:`KeycellError` (argument
errors are ordinary :class:`TypeError`/:class:`ValueError`). No message contains secret
bytes, nor the length of secret input that was rejected.
"""

from __future__ import annotations

__all__ = [
    "AlreadyFinalized",
    "ForkedKeyError",
    "InsecureKeyFileError",
    "InvalidSignature",
    "KeyDestroyedError",
    "KeyFileError",
    "KeyInUseError",
    "KeycellError",
    "MemoryLockError",
    "ProtectionError",
    "ProtectionWarning",
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


class AlreadyFinalized(KeycellError):
    """The context was already finalized and cannot be used again."""


class ProtectionWarning(UserWarning):
    """A key works but lacks a protection (e.g. ``mlock`` failed); shown once per process."""
