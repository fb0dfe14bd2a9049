"""The key agent, embedded: :func:`serve` starts ``keycell agent``'s server in this process
and returns an :class:`AgentHandle` (docs/agent.md). Re-exported as ``keycell.agent.serve``.

The server is Rust (its own threads, no GIL). It decides every request, records it in the
audit log (``audit=``) on the connection's thread *before* the reply is written, and
stops by itself, refusing that reply, when a record cannot be written: no signature or MAC
leaves without its record, whoever embeds it. The signed policy is read and its Ed25519,
ECDSA (P-256, P-384) or RSA-PSS-SHA256 signature checked in Rust too, with the public key
read once, at start.

``serve`` installs no signal handlers and does not harden the process (``keycell agent
serve`` does both: ``python/keycell/cli/agent.py``)::

    with keycell.agent.serve("/run/keys/agent.sock", store=store, audit=log) as agent:
        ...                      # serving; agent.reload() re-reads policy and keys
    # stopped: keys wiped, socket removed
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._native import (
    AgentServer,
    ECPrivateKey,
    ECPublicKey,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    KeyStore,
    RSAPrivateKey,
    RSAPublicKey,
    agent_read_policy,
    agent_read_public_key_file,
)
from .exceptions import AgentPolicyError, KeycellError

if TYPE_CHECKING:
    from .audit import AuditLog
    from .pkcs11 import Token

__all__ = [
    "POLICY_SIGNATURE_CONTEXT",
    "AgentHandle",
    "PolicyPublicKey",
    "load_public_key",
    "read_verified_policy",
    "serve",
    "sign_policy",
    "signature_path",
]

#: Prefix of the message a policy signature covers (domain separation: a policy signature
#: is never a valid signature over anything else, nor the other way round).
POLICY_SIGNATURE_CONTEXT = b"keycell policy signature v1\x00"
_SIG_PREFIX = "keycell-policy-signature-v1 "

#: The keys a policy may be signed with: Ed25519, ECDSA on P-256 (SHA-256) or P-384
#: (SHA-384), or RSA (RSASSA-PSS, SHA-256, 32-byte salt); the signature line names the
#: algorithm, which must be the pinned key's.
PolicyPublicKey = Ed25519PublicKey | ECPublicKey | RSAPublicKey

_SSH_EC_CURVES: dict[bytes, Literal["P-256", "P-384"]] = {
    b"nistp256": "P-256",
    b"nistp384": "P-384",
}

_logger = logging.getLogger("keycell.agent")


def signature_path(policy: str | os.PathLike[str]) -> Path:
    """Where the detached signature of a policy file lives: ``FILE.sig``."""
    return Path(os.fspath(policy) + ".sig")


def _ssh_strings(blob: bytes) -> list[bytes]:
    """The SSH wire ``string`` fields of a public key blob (RFC 4251)."""
    out = []
    while blob:
        if len(blob) < 4:
            raise ValueError("truncated key blob")
        n = int.from_bytes(blob[:4], "big")
        if len(blob) < 4 + n:
            raise ValueError("truncated key blob")
        out.append(blob[4 : 4 + n])
        blob = blob[4 + n :]
    return out


def _ssh_public_key(text: str) -> PolicyPublicKey:
    """An ``ssh-ed25519`` or ``ecdsa-sha2-nistp256/384`` OpenSSH public key line."""
    parts = text.split()
    name, b64 = parts[0], parts[1] if len(parts) > 1 else ""
    fields = _ssh_strings(base64.b64decode(b64, validate=True))
    if name == "ssh-ed25519":
        # string "ssh-ed25519", string key (32 bytes)
        if len(fields) != 2 or fields[0] != b"ssh-ed25519" or len(fields[1]) != 32:
            raise ValueError("not an ssh-ed25519 public key")
        return Ed25519PublicKey.from_public_bytes(fields[1])
    # string "ecdsa-sha2-nistp256", string "nistp256", string Q (RFC 5656)
    curve = _SSH_EC_CURVES.get(fields[1]) if len(fields) == 3 else None
    if curve is None or fields[0] != b"ecdsa-sha2-" + fields[1] or name != fields[0].decode():
        raise ValueError(f"not an {name} public key")
    return ECPublicKey.from_public_bytes(curve, fields[2])


def load_public_key(path: str | os.PathLike[str]) -> PolicyPublicKey:
    """A policy public key from a file: an Ed25519, EC (P-256, P-384) or RSA key as
    PEM (``keycell pubkey --pem``; RSA keys as SPKI or PKCS#1 PEM), hex (``keycell
    pubkey``: 64 digits for Ed25519, the uncompressed point for EC) or an OpenSSH line
    (``ssh-ed25519``, ``ecdsa-sha2-nistp256``, ``ecdsa-sha2-nistp384``, ``ssh-rsa``:
    ``keycell pubkey --ssh``). The file is read
    with the checks of the policy file (no symlink, a regular file owned by this user or
    root, not writable by group or others): whoever can replace it can replace the
    policy."""
    data = agent_read_public_key_file(path)
    text = data.decode("ascii", "replace").strip()
    try:
        if text.startswith("-----BEGIN"):
            try:
                return Ed25519PublicKey.from_pem(data)
            except ValueError:
                pass
            try:
                return ECPublicKey.from_pem(data)
            except ValueError:
                return RSAPublicKey.from_pem(data)
        if text.startswith(("ssh-ed25519 ", "ecdsa-sha2-")):
            return _ssh_public_key(text)
        if text.startswith("ssh-rsa "):
            return RSAPublicKey.from_openssh(text)
        raw = bytes.fromhex(text)
        if len(raw) == 32:
            return Ed25519PublicKey.from_public_bytes(raw)
        if len(raw) == 65:
            return ECPublicKey.from_public_bytes("P-256", raw)
        if len(raw) == 97:
            return ECPublicKey.from_public_bytes("P-384", raw)
        raise ValueError(f"{len(raw)} bytes is no Ed25519 key or uncompressed EC point")
    except (ValueError, binascii.Error, KeycellError) as exc:
        raise AgentPolicyError(
            f"{path}: not an Ed25519, EC or RSA public key (PEM, hex or OpenSSH line): {exc}"
        ) from None


def sign_policy(
    policy: bytes, signer: Ed25519PrivateKey | ECPrivateKey | RSAPrivateKey
) -> str:
    """The signature file's text for the policy text ``policy``: an Ed25519 signature, an
    ECDSA one (``r || s``) for a P-256 or P-384 key, or RSASSA-PSS with SHA-256 (salt of
    32 bytes) for an RSA key."""
    message = POLICY_SIGNATURE_CONTEXT + policy
    if isinstance(signer, RSAPrivateKey):
        alg = "rsa-pss-sha256"
        sig = signer.sign(message, padding="pss", hash="sha256")
    elif isinstance(signer, ECPrivateKey):
        alg = "ecdsa-p256" if signer.curve == "P-256" else "ecdsa-p384"
        sig = signer.sign(message, encoding="raw")
    elif isinstance(signer, Ed25519PrivateKey):
        alg = "ed25519"
        sig = signer.sign(message)
    else:
        raise TypeError(
            "signer must be an Ed25519PrivateKey, ECPrivateKey or RSAPrivateKey, not "
            f"{type(signer).__name__}"
        )
    return f"{_SIG_PREFIX}{alg} {base64.b64encode(sig).decode('ascii')}\n"


def read_verified_policy(
    path: str | os.PathLike[str],
    public_key: PolicyPublicKey,
    signature: str | os.PathLike[str] | None = None,
) -> bytes:
    """Read a policy file and its detached signature (``FILE.sig`` unless ``signature``),
    verify the signature and the rules (in Rust: ``src/agent/policy_file.rs``), and return
    the exact bytes verified. Raises :class:`AgentPolicyError` when the policy cannot be
    read, the signature is missing, malformed or wrong, or the rules are invalid."""
    return agent_read_policy(path, public_key, signature)


def _describe(event: dict[str, Any]) -> str:
    key = f" key {event['key']!r}" if event["key"] is not None else ""
    if event["key_source"] == "pkcs11":
        key += " (pkcs11)"
    why = f": {event['reason']}" if event["reason"] else ""
    who = f"by uid {event['uid']} pid {event['pid']}"
    if event.get("count", 1) != 1:
        why += f" ({event['count']} connections since the last record)"
    return f"{event['operation']}{key} {who}: {event['result']}{why}"


def _default_log(msg: str) -> None:
    _logger.info("%s", msg)


class AgentHandle:
    """A running agent, made by :func:`serve`. Thread-safe.

    ``stop()`` (also on leaving a ``with`` block) closes every connection, wipes every key
    and removes the socket; the agent also stops by itself when a record cannot be written
    to the audit log, and then ``failure`` holds the :class:`~keycell.exceptions.AuditError`.
    ``reload()`` re-reads the policy (checked with the public key read at start) and the
    keys.
    """

    def __init__(
        self,
        server: AgentServer,
        *,
        store: Any,
        owns_store: bool,
        token: Token | None,
        policy: Path | None,
        public_key: PolicyPublicKey | None,
        log: Callable[[str], None],
        verbose: bool,
    ) -> None:
        self._server = server
        self._store = store
        self._owns_store = owns_store
        self._token = token
        self._policy = policy
        self._public_key = public_key
        self._log = log
        self._verbose = verbose
        self._lock = threading.Lock()
        self._removed: bool | None = None
        self._events = threading.Thread(target=self._drain, name="keycell-agent-log", daemon=True)
        self._events.start()

    @property
    def path(self) -> Path:
        """The socket's path."""
        return self._server.path

    @property
    def stopped(self) -> bool:
        """True once the agent is stopping: ``stop()`` ran or a record failed."""
        return self._server.stopped

    @property
    def policy_serial(self) -> int | None:
        """The loaded policy's ``serial`` (0 without one), ``None`` without a policy."""
        return self._server.policy_serial

    @property
    def failure(self) -> BaseException | None:
        """The audit log failure that stopped the agent, or ``None``."""
        return self._server.failure

    def keys(self) -> list[tuple[str, str, str]]:
        """``(name, kind, source)`` of every key served."""
        return self._server.keys()

    def stats(self) -> dict[str, int]:
        """Counters: connections, requests, refused."""
        return self._server.stats()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the agent is stopping (``stop()``, or a failed record), at most
        ``timeout`` seconds; whether it is."""
        return self._server.wait(timeout)

    def reload(self) -> None:
        """Re-read the policy (its signature checked with the public key given to
        :func:`serve`) and the keys (the store's entries, the token's objects). What fails
        to load is not taken and the old one stays: a policy whose signature does not
        verify with that key, or whose ``serial`` is not greater than the loaded one's
        (unless it is the same policy), so an older signed policy cannot roll permissions
        back. Both are tried, then the first failure is raised. The policy's outcome is
        recorded in the audit log (``agent.policy``, with its serial)."""
        errors: list[Exception] = []
        if self._policy is not None and self._public_key is not None:
            try:
                self._server.set_policy(read_verified_policy(self._policy, self._public_key))
                self._log(f"reloaded policy {self._policy} (serial {self.policy_serial})")
            except (KeycellError, OSError) as exc:
                self._log(f"policy reload failed, keeping the old policy: {exc}")
                errors.append(exc)
        try:
            self._server.set_keys(self._store, token=self._token)
            self._log("reloaded keys: " + self.describe_keys())
        except (KeycellError, OSError) as exc:
            what = "store/token"
            if self._token is None or self._store is None:
                what = "store" if self._token is None else "token"
            self._log(f"{what} reload failed, keeping the old keys: {exc}")
            errors.append(exc)
        if errors:
            raise errors[0]

    def describe_keys(self) -> str:
        """The served keys for a log line: ``name (kind)``, ``name (kind, pkcs11)``."""
        return (
            ", ".join(
                f"{n} ({k}{', pkcs11' if src == 'pkcs11' else ''})" for n, k, src in self.keys()
            )
            or "none"
        )

    def stop(self) -> bool:
        """Stop serving: close every connection, wipe every key, remove the socket, close
        the store if :func:`serve` opened it. Idempotent; returns whether the socket was
        removed (by the first stop)."""
        with self._lock:
            if self._removed is None:
                self._removed = self._server.stop()
                if self._owns_store and self._store is not None:
                    self._store.close()
            removed = self._removed
        if threading.current_thread() is not self._events:
            self._events.join()
        return removed

    def _drain(self) -> None:
        """Log the server's events until it stops: refusals (everything with ``verbose``),
        dropped events, the first peer without a pidfd; stop the agent when a record
        failed."""
        warned_pidfd = False
        while True:
            events, dropped = self._server.next_events(0.5)
            if dropped:
                self._log(f"{dropped} request events were dropped from the log: the queue was full")
            for e in events:
                if not e["pid_pinned"] and not warned_pidfd:
                    warned_pidfd = True
                    self._log(
                        f"SO_PEERPIDFD unavailable (errno {e['pidfd_errno']}): peers are "
                        "identified by the pid from SO_PEERCRED only, which can be reused"
                    )
                if self._verbose or e["result"] != "allowed":
                    self._log(_describe(e))
            if not events and self._server.stopped:
                failure = self._server.failure
                if failure is not None:
                    self._log(f"audit log failed, stopping: {failure}")
                    self.stop()
                return

    def __enter__(self) -> AgentHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<AgentHandle {str(self.path)!r}{' stopped' if self.stopped else ''}>"


def serve(
    socket_path: str | os.PathLike[str],
    *,
    store: KeyStore | str | os.PathLike[str] | None = None,
    passphrase: Any = None,
    token: Token | None = None,
    policy: str | os.PathLike[str] | None = None,
    policy_public_key: PolicyPublicKey | str | os.PathLike[str] | None = None,
    audit: AuditLog | None = None,
    allow_uids: Iterable[int] = (),
    socket_mode: int = 0o600,
    max_connections: int = 64,
    frame_timeout: float = 10.0,
    idle_timeout: float = 60.0,
    log: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> AgentHandle:
    """Serve the Ed25519, ECDSA (P-256, P-384), RSA and secret keys of a key store and/or a
    PKCS#11 token on the Unix socket ``socket_path`` (SSH agent protocol), in this process;
    returns at once.

    ``store`` is an open :class:`~keycell.KeyStore` (yours to close, after the agent
    stopped), or a store file's path opened here with ``passphrase`` (its master: a
    ``Passphrase``, ``SecretKey``, ...) and closed by ``stop()``. ``token`` is an open,
    logged-in :class:`keycell.pkcs11.Token`. ``policy`` is a policy file, signed
    (``FILE.sig``), whose signature must verify with ``policy_public_key`` (an
    :class:`~keycell.Ed25519PublicKey`, an :class:`~keycell.ECPublicKey` (P-256 or P-384:
    ECDSA signatures), an :class:`~keycell.RSAPublicKey` (RSA-PSS-SHA256) or a key file;
    read once, here, and kept for every ``reload()``); its ``serial`` must grow from one
    reload to the next, and each load is recorded (``agent.policy``). With ``audit`` (an open
    :class:`keycell.audit.AuditLog`, yours to close after the agent stopped), every
    request, refused connection and closed connection is recorded before its reply is
    written; a record that cannot be written refuses that
    reply and stops the agent (``handle.failure``), whatever the log's ``on_error``.
    ``allow_uids`` may connect besides this process's effective uid; ``socket_mode`` is the
    socket file's mode (within 0777, including 0600). At most ``max_connections`` are
    served at once; each uid other than this process's own at most a quarter of them (at
    least 1), and together they leave that many (at least 1) free for it, so a peer holding
    idle connections cannot lock the owner out (``max_connections=1``: only this process's
    uid is served). ``frame_timeout`` bounds the time a request takes to arrive once it
    started; a connection that sends nothing for ``idle_timeout`` seconds between requests
    is closed (and recorded); both are at most a day (86400). Refused connections are recorded
    aggregated: one record per uid and reason per 10 s with a count, on record within a
    second of the window's end. ``log`` receives one line per
    refusal (every event with ``verbose``) and per reload (default: the ``keycell.agent``
    logger). Installs no signal handlers and does not harden the process.
    """
    if (policy is None) != (policy_public_key is None):
        raise ValueError("policy and policy_public_key go together")
    if isinstance(store, KeyStore) and passphrase is not None:
        raise ValueError("passphrase opens a store given by path, not an open KeyStore")
    if store is None and token is None:
        raise ValueError("give a store, a token or both")
    if socket_mode & ~0o777 or socket_mode & 0o600 != 0o600:
        raise ValueError("socket_mode must be within 0o777 and include 0o600")
    uids = [os.geteuid()]
    for u in allow_uids:
        if not 0 <= u <= 0xFFFFFFFF:
            raise ValueError(f"{u} is not a uid")
        if u not in uids:
            uids.append(u)
    public_key: PolicyPublicKey | None = None
    policy_path = None if policy is None else Path(policy)
    policy_text = None
    if policy_path is not None:
        public_key = (
            policy_public_key
            if isinstance(policy_public_key, Ed25519PublicKey | ECPublicKey | RSAPublicKey)
            else load_public_key(policy_public_key)  # type: ignore[arg-type]
        )
        policy_text = read_verified_policy(policy_path, public_key)
    owns_store = store is not None and not isinstance(store, KeyStore)
    opened: KeyStore | None
    if store is None or isinstance(store, KeyStore):
        opened = store
    else:
        opened = KeyStore.open(store, master=passphrase)
    try:
        server = AgentServer(
            socket_path,
            opened,
            token=token,
            allowed_uids=uids,
            mode=socket_mode,
            policy=policy_text,
            max_connections=max_connections,
            frame_timeout=frame_timeout,
            idle_timeout=idle_timeout,
            audit=None if audit is None else audit._native,
        )
    except BaseException:
        if owns_store and opened is not None:
            opened.close()
        raise
    return AgentHandle(
        server,
        store=opened,
        owns_store=owns_store,
        token=token,
        policy=policy_path,
        public_key=public_key,
        log=log or _default_log,
        verbose=verbose,
    )
