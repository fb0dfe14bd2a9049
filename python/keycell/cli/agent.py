"""``keycell agent serve`` and ``keycell policy sign|verify`` (docs/agent.md).

The agent holds a key store's Ed25519 and secret keys in guarded memory, and/or uses the
Ed25519 and secret keys of a PKCS#11 token (``--pkcs11-token``; they stay in the token),
and serves them over a Unix socket in the SSH agent protocol. The agent itself, its
decisions, its audit records and the policy's signature check, is
:func:`keycell.agent.serve` (``python/keycell/agent_server.py``, over Rust); this module
owns the process: the arguments, hardening, detaching, signals, logging to stderr, and
opening the audit log.

Signals are blocked in every thread before the server starts and taken synchronously by
the main thread with ``sigwait``: SIGTERM and SIGINT stop the agent (every key wiped, the
socket removed, exit status 0); SIGHUP reloads the policy and the keys (the store's entries, the
token's key objects), keeping the old ones when the new ones fail (a policy whose
signature does not verify, a store that does not open, a token that fails).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .._native import (
    ECPrivateKey,
    Ed25519PrivateKey,
    RSAPrivateKey,
    _write_atomic,
    agent_check_policy,
    agent_harden,
)
from ..agent_server import (
    POLICY_SIGNATURE_CONTEXT,
    AgentHandle,
    PolicyPublicKey,
    load_public_key,
    read_verified_policy,
    serve,
    sign_policy,
    signature_path,
)
from ..exceptions import KeycellError, KeyFileError
from ..pkcs11 import Token
from .common import CliError, a_key, load_private
from .common import UsageError as _UsageError
from .common import master_options as _master_options
from .common import open_store as _open_store
from .pkcs11 import open_token, token_options

__all__ = [
    "POLICY_SIGNATURE_CONTEXT",
    "load_public_key",
    "read_verified_policy",
    "register",
    "sign_policy",
    "signature_path",
]

_STOP = {signal.SIGTERM, signal.SIGINT}
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _log(msg: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} keycell agent[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def _cmd_policy_sign(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    agent_check_policy(data)
    out = Path(args.output) if args.output else signature_path(args.file)
    if not args.force and os.path.lexists(out):
        raise CliError(f"{out} already exists (use --force to replace it)")
    kind, signer = load_private(args.key_file, None, None)
    if not isinstance(signer, Ed25519PrivateKey | ECPrivateKey | RSAPrivateKey):
        signer.destroy()
        raise CliError(
            f"{args.key_file}: {a_key(kind)} cannot sign policies; use an Ed25519, EC or "
            "RSA key"
        )
    try:
        text = sign_policy(data, signer)
    finally:
        signer.destroy()
    # Atomic, as every keycell writer: a link planted at `out` is replaced, never followed;
    # without --force a file that appeared since the check above is not replaced.
    try:
        _write_atomic(out, text.encode("ascii"), overwrite=args.force)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote the signature of {args.file} to {out}", file=sys.stderr)
    return 0


def _cmd_policy_verify(args: argparse.Namespace) -> int:
    read_verified_policy(args.file, load_public_key(args.public_key), args.signature)
    print(f"policy {args.file}: signature good, rules valid", file=sys.stderr)
    return 0


def _uid_list(args: argparse.Namespace) -> list[int]:
    uids = [os.geteuid()]
    for u in args.allow_uid or []:
        if u < 0 or u > 0xFFFFFFFF:
            raise CliError(f"--allow-uid {u} is not a uid")
        if u not in uids:
            uids.append(u)
    return uids


def _socket_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None
    if mode & ~0o777 or not mode & 0o600 == 0o600:
        raise argparse.ArgumentTypeError("the mode must be within 0777 and include 0600")
    return mode


class _Audit:
    """The audit log the agent records every request to (``--audit-log``).

    An existing log is opened and continued. A new one is created when
    ``--audit-key-file K0`` is given (a secret key of at least 32 bytes that verifies the
    whole log: keep it off this host once the log exists). ``--audit-signer-key-file``
    (Ed25519) signs a checkpoint when the agent stops and on each SIGHUP.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from .. import audit
        from .._native import SecretKey

        self.signer: Ed25519PrivateKey | None = None
        if args.audit_signer_key_file:
            self.signer = Ed25519PrivateKey.from_file(args.audit_signer_key_file)
        self.lock = threading.Lock()
        try:
            if os.path.exists(args.audit_log):
                self.log: Any = audit.AuditLog.open(args.audit_log, signer=self.signer)
            elif args.audit_key_file:
                with SecretKey.from_file(args.audit_key_file) as k0:
                    self.log = audit.AuditLog.create(
                        args.audit_log,
                        key=k0,
                        signer=self.signer,
                        origin=args.audit_origin,
                    )
                _log(f"created audit log {args.audit_log} (origin {args.audit_origin})")
            else:
                raise CliError(
                    f"audit log {args.audit_log} does not exist: give --audit-key-file K0 "
                    "to create it"
                )
        except BaseException:
            if self.signer is not None:
                self.signer.destroy()
            raise

    def checkpoint(self) -> None:
        """Sign a checkpoint, if there is a signer."""
        if self.signer is not None:
            with self.lock:
                self.log.checkpoint()

    def close(self) -> None:
        """A final checkpoint (with a signer), then close the log and wipe the signer."""
        try:
            self.checkpoint()
        finally:
            self.log.close()
            if self.signer is not None:
                self.signer.destroy()


def _hostname() -> str:
    import socket

    name = "".join(c for c in socket.gethostname() if (c.isascii() and c.isalnum()) or c in ".-")
    return name or "localhost"


def _load_policy_key(args: argparse.Namespace) -> PolicyPublicKey | None:
    """The policy public key, read once (every reload checks against it), after checking
    that the policy verifies with it (before --detach: the caller sees the failure)."""
    if args.policy is None:
        return None
    key = load_public_key(args.policy_public_key)
    read_verified_policy(args.policy, key)
    return key


def _detach() -> None:
    """Fork: the parent waits until the child is serving (or failed), prints the socket
    variables and exits; the child goes on in a new session."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            status = f.read()
        if status.startswith(b"ready"):
            path = status[6:].decode()
            print(f"SSH_AUTH_SOCK={path}; export SSH_AUTH_SOCK;")
            print(f"KEYCELL_AGENT_SOCK={path}; export KEYCELL_AGENT_SOCK;")
            print(f"KEYCELL_AGENT_PID={pid}; export KEYCELL_AGENT_PID;")
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        os._exit(1)
    os.close(r)
    os.setsid()
    os.environ["_KEYCELL_AGENT_READY_FD"] = str(w)


def _announce_ready(path: str) -> None:
    fd = os.environ.pop("_KEYCELL_AGENT_READY_FD", None)
    if fd is not None:
        os.write(int(fd), b"ready " + path.encode())
        os.close(int(fd))
        # Like ssh-agent: a detached agent lets go of the terminal and of the caller's
        # pipes; its log goes nowhere (run it in the foreground under a supervisor to keep
        # the log).
        _log("detached: logging stops here")
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(devnull, std)
        os.close(devnull)


_TOKEN_OPTIONS = ("pkcs11_module", "pkcs11_token", "pkcs11_slot", "pkcs11_pin_file")


def _check_sources(args: argparse.Namespace) -> bool:
    """Check which key sources the options name; whether a token is served."""
    token = any(getattr(args, o) is not None for o in _TOKEN_OPTIONS)
    if args.store is None and not token:
        raise _UsageError(
            "give --store STORE, a token (--pkcs11-token LABEL --pkcs11-pin-file FILE), or both"
        )
    if args.store is None and (args.passphrase_file or args.master_key_file):
        raise _UsageError("--passphrase-file and --master-key-file need --store")
    if token and args.pkcs11_pin_file is None:
        raise _UsageError(
            "a token needs --pkcs11-pin-file FILE (the user PIN: the agent signs with "
            "private key objects)"
        )
    return token


def _open_sources(args: argparse.Namespace, token_wanted: bool) -> tuple[Any, Token | None]:
    """Open the token (first: a wrong PIN or a missing token fails before the store's KDF
    runs) and the store; either may be ``None``."""
    token = open_token(args, "pkcs11-") if token_wanted else None
    try:
        store = _open_store(args) if args.store is not None else None
    except BaseException:
        if token is not None:
            token.close()
        raise
    return store, token


def _close_sources(store: Any, token: Token | None) -> None:
    if store is not None:
        store.close()
    if token is not None:
        token.close()  # C_Logout when this was the process's last use of the token


def _cmd_serve(args: argparse.Namespace) -> int:
    if (args.policy is None) != (args.policy_public_key is None):
        raise CliError("--policy and --policy-public-key go together")
    token_wanted = _check_sources(args)
    uids = _uid_list(args)
    policy_key = _load_policy_key(args)
    if args.detach:
        _detach()
    hardening = agent_harden()
    failed_steps = [f"{k} (errno {v})" for k, v in hardening.items() if v is not None]
    if failed_steps:
        raise CliError("cannot harden the process: " + ", ".join(failed_steps))
    if (args.audit_key_file or args.audit_signer_key_file) and not args.audit_log:
        raise CliError("--audit-key-file and --audit-signer-key-file need --audit-log")
    audit = _Audit(args) if args.audit_log else None
    try:
        # After --detach's fork: the PKCS#11 module is initialised and logged in to in the
        # process that serves (a fork child cannot use its parent's sessions). A failure
        # here still reaches the caller: stderr is its terminal until the agent is ready,
        # and the waiting parent exits 1.
        store, token = _open_sources(args, token_wanted)
    except BaseException:
        if audit is not None:
            audit.close()
        raise
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        agent = serve(
            args.socket,
            store=store,
            token=token,
            policy=args.policy,
            policy_public_key=policy_key,
            audit=None if audit is None else audit.log,
            allow_uids=uids,
            socket_mode=args.socket_mode,
            max_connections=args.max_connections,
            frame_timeout=args.frame_timeout,
            idle_timeout=args.idle_timeout,
            log=_log,
            verbose=args.verbose,
        )
    except BaseException:
        _close_sources(store, token)
        if audit is not None:
            audit.close()
        raise
    # A failed audit record stops the agent by itself: wake the main thread's sigwait.
    threading.Thread(
        target=_stop_on_failure, args=(agent,), name="keycell-agent-watch", daemon=True
    ).start()
    where = f"; token {token.info['label']!r} (slot {token.info['slot']})" if token else ""
    _log(
        f"serving on {args.socket} for uids {', '.join(map(str, uids))}"
        f"{f'; policy {args.policy} (serial {agent.policy_serial})' if args.policy else ''}"
        f"{where}; keys: "
        f"{agent.describe_keys()}"
    )
    _announce_ready(str(args.socket))
    failed: list[str] = []
    try:
        while True:
            sig = signal.sigwait(_SIGNALS)
            if sig in _STOP:
                break
            try:
                agent.reload()  # logs what it reloaded and what failed
            except (KeycellError, OSError):
                pass
            if audit is not None:
                try:
                    audit.checkpoint()
                    _log("signed an audit checkpoint")
                except (KeycellError, OSError) as exc:
                    _log(f"audit checkpoint failed: {exc}")
    finally:
        removed = agent.stop()
        if agent.failure is not None:
            failed.append(f"audit log failed: {agent.failure}")
        _close_sources(store, token)
        if audit is not None:
            try:
                audit.close()  # a last checkpoint: fails again on a log that failed
            except (KeycellError, OSError) as exc:
                failed.append(f"audit log failed at stop: {exc}")
        _log(
            "stopped: keys wiped, socket "
            + ("removed" if removed else "already gone or replaced (left alone)")
        )
    if failed:
        raise CliError(failed[0])
    return 0


def _stop_on_failure(agent: AgentHandle) -> None:
    """Send this process SIGTERM when the agent stopped itself (a failed record)."""
    agent.wait()
    if agent.failure is not None:
        os.kill(os.getpid(), signal.SIGTERM)


def register(sub: Any) -> None:
    """Add the ``agent`` and ``policy`` commands to the ``keycell`` parser."""
    agent = sub.add_parser(
        "agent",
        help="serve a key store's or a PKCS#11 token's keys over a Unix socket (SSH agent "
        "protocol)",
        description="A hardened key agent speaking the SSH agent protocol (docs/agent.md).",
    )
    asub = agent.add_subparsers(dest="agent_command", metavar="ACTION")
    asub.required = True
    p = asub.add_parser(
        "serve",
        help="serve until SIGTERM/SIGINT; SIGHUP reloads the keys and the policy",
        description=(
            "Load the Ed25519, ECDSA, RSA and secret keys of STORE into guarded memory, and/or "
            "use the Ed25519, ECDSA (P-256, P-384) and RSA private keys and generic secrets of "
            "a PKCS#11 token (they never leave "
            "it: the token signs and MACs), and serve them on a Unix socket in the SSH agent "
            "protocol (ssh-add -L, ssh, ssh-keygen -Y sign work unchanged). Give --store, a "
            "token, or both. A key's name is its store entry name or its token object's "
            "CKA_LABEL; a name found twice (store and token, or twice in the token) refuses "
            "the start. SIGTERM/SIGINT: wipe every key, log out of the token, remove the "
            "socket, exit 0. SIGHUP: reload the keys (store entries, token objects) and the "
            "policy (what fails to load is not taken; the old one stays)."
        ),
    )
    p.add_argument("--socket", required=True, metavar="PATH", help="socket to create")
    p.add_argument("--store", metavar="STORE", help="key store file (optional with a token)")
    _master_options(p)
    tok = p.add_argument_group(
        "PKCS#11 token",
        "serve a token's Ed25519, ECDSA and RSA private keys and generic secrets by CKA_LABEL "
        "(the options of `keycell pkcs11`, prefixed; a token is served when any of them is "
        "given)",
    )
    token_options(tok, pin_required=True, prefix="pkcs11-", optional=True)
    p.add_argument(
        "--socket-mode",
        type=_socket_mode,
        default=0o600,
        metavar="MODE",
        help="socket file mode, octal (default 0600)",
    )
    p.add_argument(
        "--allow-uid",
        type=int,
        action="append",
        metavar="UID",
        help="also allow this uid to connect (default: only this process's uid); repeatable",
    )
    p.add_argument("--policy", metavar="FILE", help="per-key rules (JSON), signed")
    p.add_argument(
        "--policy-public-key",
        metavar="PUB",
        help="the Ed25519, EC (P-256/P-384) or RSA public key the policy's signature "
        "(FILE.sig) must verify with",
    )
    p.add_argument(
        "--audit-log", metavar="LOG", help="record every request to this keycell.audit log"
    )
    p.add_argument(
        "--audit-key-file",
        metavar="K0",
        help="create --audit-log if it does not exist, with this key (K0; keep it elsewhere)",
    )
    p.add_argument(
        "--audit-signer-key-file",
        metavar="SIGNER",
        help="Ed25519 key that signs audit checkpoints (at stop and on SIGHUP)",
    )
    p.add_argument(
        "--audit-origin",
        default="keycell.agent/" + _hostname(),
        metavar="ORIGIN",
        help="the log's origin in its checkpoints, when it is created (keycell.agent/HOST)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        metavar="N",
        help="connections at once (64); each other uid at most a quarter of them, and "
        "together they leave that many free for the agent's own uid",
    )
    p.add_argument(
        "--frame-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time a request may take to arrive once it started (10; at most 86400)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close a connection that sends nothing for this long between requests "
        "(60; at most 86400)",
    )
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    p.set_defaults(func=_cmd_serve)

    policy = sub.add_parser(
        "policy",
        help="sign or verify an agent policy file",
        description=(
            "Detached Ed25519, ECDSA (P-256, P-384) or RSA-PSS-SHA256 signatures of agent "
            "policy files (docs/agent.md)."
        ),
    )
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION")
    psub.required = True
    s = psub.add_parser("sign", help="sign a policy file (writes FILE.sig)")
    s.add_argument("file", metavar="FILE", help="policy file (JSON)")
    s.add_argument(
        "--key-file",
        required=True,
        metavar="SIGNER",
        help="Ed25519, EC (P-256/P-384) or RSA private key file (PKCS#8; SEC1 for EC, "
        "PKCS#1 for RSA)",
    )
    s.add_argument("-o", "--output", metavar="SIG", help="signature file (default FILE.sig)")
    s.add_argument(
        "--force",
        action="store_true",
        help="replace SIG if it exists (atomically: a link at SIG is replaced, never followed)",
    )
    s.set_defaults(func=_cmd_policy_sign)
    v = psub.add_parser("verify", help="verify a policy file's signature and rules")
    v.add_argument("file", metavar="FILE", help="policy file (JSON)")
    v.add_argument(
        "--public-key",
        required=True,
        metavar="PUB",
        help="Ed25519, EC or RSA public key (PEM; hex or OpenSSH line for Ed25519/EC)",
    )
    v.add_argument("--signature", metavar="SIG", help="signature file (default FILE.sig)")
    v.set_defaults(func=_cmd_policy_verify)
