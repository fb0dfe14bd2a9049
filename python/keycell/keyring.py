"""The Linux kernel keyring as a key source and sink.

Keys move between keycell's guarded memory and the kernel keyring (``keyrings(7)``)
without a Python object ever holding the bytes: :func:`store` hands the payload to
``add_key(2)`` straight from the key's region, and ``SecretKey.from_keyring`` (and
``Ed25519PrivateKey.from_keyring`` / ``X25519PrivateKey.from_keyring`` /
``ECPrivateKey.from_keyring`` / ``RSAPrivateKey.from_keyring``) read it with
``KEYCTL_READ`` straight into a new region, after asking for its size.

Keys are stored as type ``user`` with possessor-only permissions, ``0x3f000000``: only
processes that reach the key through their own thread, process or session keyring (a
service's session keyring under systemd, a login session) can read, change or link it;
other processes of the same user cannot even see its description. The kernel always
links a new key into a keyring as it creates it, so the key is created in a fresh,
private staging keyring (the thread keyring of a new thread, which only that thread
possesses), restricted to ``0x3f000000`` and given its timeout there, and only then linked
into the target keyring. The one window left: for the microseconds between ``add_key``
and ``KEYCTL_SETPERM`` the kernel's default permissions (``0x3f010000``) let other
processes of the same uid *view* the key's type and description through its serial; no
process other than the storing thread can read the payload at any time, and the key is
not in the target keyring yet. For ``keyring="thread"`` (the caller's own thread
keyring, which no other thread can write) the key is added there directly, with the same
view-only window.

Keyrings are named as ``keyctl(1)`` names them: ``"session"`` (``@s``, the default),
``"process"`` (``@p``), ``"thread"`` (``@t``), ``"user"`` (``@u``: keys there are
possessed only through a session keyring that links it), ``"user-session"`` (``@us``), or a
keyring serial (``int``) reachable from this process's keyrings.

Failures raise subclasses of :class:`keycell.KeyringError` naming the cause (not found,
expired or revoked, permission, quota, blocked by seccomp).
"""

from __future__ import annotations

from typing import Any, TypedDict

from . import _native
from ._native import (
    ECPrivateKey,
    Ed25519PrivateKey,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
)

__all__ = [
    "POSSESSOR_ONLY",
    "KeyDescription",
    "describe",
    "invalidate",
    "list_keys",
    "probe",
    "store",
]

#: The permissions of every key keycell stores: everything for possessors, nothing else.
POSSESSOR_ONLY = 0x3F000000


class KeyDescription(TypedDict):
    """What the kernel tells about a key (``KEYCTL_DESCRIBE``): never its payload."""

    serial: int
    type: str
    uid: int
    gid: int
    perm: int
    description: str


def store(
    key: SecretKey | Ed25519PrivateKey | X25519PrivateKey | ECPrivateKey | RSAPrivateKey,
    description: str,
    *,
    keyring: str | int = "session",
    timeout: int | None = None,
) -> int:
    """Store ``key`` in the kernel keyring as a ``user`` key; return its serial.

    The payload (the key bytes, the Ed25519 seed, the X25519 scalar or the EC scalar,
    big-endian: 32 bytes for P-256, 48 for P-384; an RSA key's PKCS#1 DER) is passed to
    ``add_key`` straight from the key's guarded region. The key gets possessor-only
    permissions (``0x3f000000``) and, with ``timeout`` (seconds, at least 1), an expiry
    before it is linked into ``keyring`` (see the module docs for the exact order); a key
    of the same description already linked there is displaced, never updated in place.
    Raises :class:`keycell.KeyNotExportableError` for a sealed key: its bytes may not
    leave keycell's memory.
    """
    return _native.keyring_store(key, description, keyring=keyring, timeout=timeout)


def invalidate(key: str | int, *, keyring: str | int = "session") -> None:
    """Invalidate a key (``KEYCTL_INVALIDATE``), named by description (searched for from
    ``keyring``) or serial: the kernel unlinks it everywhere and frees its payload."""
    _native.keyring_invalidate(key, keyring=keyring)


def describe(key: str | int, *, keyring: str | int = "session") -> KeyDescription:
    """Describe a key, named by description (searched for from ``keyring``) or serial:
    ``serial``, ``type``, ``uid``, ``gid``, ``perm`` and ``description``; never its
    payload."""
    d = _native.keyring_describe(key, keyring=keyring)
    return KeyDescription(
        serial=d["serial"],
        type=d["type"],
        uid=d["uid"],
        gid=d["gid"],
        perm=d["perm"],
        description=d["description"],
    )


def list_keys(keyring: str | int = "session") -> list[KeyDescription]:
    """Describe the ``user`` keys linked directly into ``keyring`` (those this process
    may view); never their payloads."""
    return [
        KeyDescription(
            serial=d["serial"],
            type=d["type"],
            uid=d["uid"],
            gid=d["gid"],
            perm=d["perm"],
            description=d["description"],
        )
        for d in _native.keyring_list(keyring)
    ]


def probe() -> dict[str, Any]:
    """Whether this process can use the kernel keyring (for ``keycell doctor``).

    Returns ``{"available": True}``, or ``{"available": False, "errno": N, "message":
    "..."}`` naming the cause (e.g. ``EPERM``/``ENOSYS`` from a seccomp profile). Only
    finds or creates the session keyring; stores nothing.
    """
    failure = _native._keyring_probe()
    if failure is None:
        return {"available": True}
    return {"available": False, "errno": failure["errno"], "message": failure["message"]}
