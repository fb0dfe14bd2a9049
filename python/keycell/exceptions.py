"""Exceptions and warnings raised by keycell.

Every exception keycell raises on purpose derives from :class:`KeycellError` (argument
errors are ordinary :class:`TypeError`/:class:`ValueError`). No message contains secret
bytes, nor the length of secret input that was rejected.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentPolicyError",
    "AgentProtocolError",
    "AgentRefusedError",
    "AgentUnavailableError",
    "AlreadyFinalized",
    "AuditError",
    "AuditTamperedError",
    "CredentialUnavailableError",
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
    "Pkcs11ClosedError",
    "Pkcs11Error",
    "Pkcs11ForkedError",
    "Pkcs11MechanismNotSupportedError",
    "Pkcs11ModuleNotFoundError",
    "Pkcs11NotLoggedInError",
    "Pkcs11ObjectNotFoundError",
    "Pkcs11PinFileError",
    "Pkcs11PinIncorrectError",
    "Pkcs11PinLockedError",
    "Pkcs11TokenNotFoundError",
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


class CredentialUnavailableError(KeyFileError):
    """``from_credential`` was called outside a systemd unit with credentials:
    ``$CREDENTIALS_DIRECTORY`` is not set (``LoadCredential=``,
    ``LoadCredentialEncrypted=`` and ``SetCredential=`` set it), or is a relative path
    (systemd always sets an absolute one, so such a value is not systemd's)."""


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


# The key agent (keycell agent, keycell.agent).


class AgentError(KeycellError):
    """Base class of key agent failures: the agent server could not start (socket,
    directory, hardening), or a client request failed."""


class AgentUnavailableError(AgentError):
    """The agent cannot be reached: no socket path (``$KEYCELL_AGENT_SOCK`` unset), no
    socket there, the connection was refused or closed."""


class AgentRefusedError(AgentError):
    """The agent answered ``SSH_AGENT_FAILURE``: the key does not exist, is not of that
    kind, or the agent's policy refuses this peer the operation (uid, lifetime, uses,
    rate). The agent does not say which, so a peer cannot probe for key names."""


class AgentProtocolError(AgentError):
    """The agent's reply did not follow the protocol (truncated, wrong type or length)."""


class AgentPolicyError(AgentError):
    """A policy file is invalid (not JSON, an unknown member, a wrong type or range), or its
    signature is missing or does not verify. An agent never starts with such a policy, and
    keeps its old policy when a reload meets one."""


# PKCS#11 tokens (keycell.pkcs11).


class Pkcs11Error(KeycellError):
    """Base class of PKCS#11 token failures (``keycell.pkcs11``).

    ``code`` holds the ``CKR_*`` value the module returned, when there is one. Messages
    never contain a PIN or key bytes.
    """

    code: int | None = None


class Pkcs11ModuleNotFoundError(Pkcs11Error):
    """The PKCS#11 module (shared library) does not exist, cannot be loaded, or is not a
    PKCS#11 module (no ``C_GetFunctionList``)."""


class Pkcs11TokenNotFoundError(Pkcs11Error):
    """No token with that label or slot is present in the module's slots."""


class Pkcs11PinIncorrectError(Pkcs11Error):
    """The PIN is wrong (``CKR_PIN_INCORRECT``). The token may lock it after a few tries."""


class Pkcs11PinLockedError(Pkcs11Error):
    """The PIN is locked or expired (``CKR_PIN_LOCKED``, ``CKR_PIN_EXPIRED``)."""


class Pkcs11PinFileError(Pkcs11Error, KeyFileError):
    """The PIN file (``pin_file=``, ``--pin-file``) is missing, unreadable or refused (a
    symlink, another user's, readable by group or others, empty): the token was not
    asked. ``errno`` is set when an OS call failed."""


class Pkcs11ObjectNotFoundError(Pkcs11Error):
    """No key object matches the label or id (or its public key object is missing)."""


class Pkcs11MechanismNotSupportedError(Pkcs11Error):
    """The token does not offer the operation (``CKR_MECHANISM_INVALID`` and relatives,
    e.g. HMAC-SHA256 with a key under 32 bytes on SoftHSM2)."""


class Pkcs11NotLoggedInError(Pkcs11Error):
    """The session is not logged in (``CKR_USER_NOT_LOGGED_IN``)."""


class Pkcs11ForkedError(Pkcs11Error, ForkedKeyError):
    """The token (or a key from it) was opened by the parent before ``fork()``: PKCS#11
    sessions are not inherited. Open the token again in the child."""


class Pkcs11ClosedError(Pkcs11Error, KeyDestroyedError):
    """The token was closed; its key handles cannot be used any more."""
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
