"""A client of ``keycell agent`` (docs/agent.md): keys that stay in the agent's process;
and :func:`serve`, the agent itself embedded in this process (``keycell/agent_server.py``).

>>> import keycell.agent                                  # doctest: +SKIP
>>> client = keycell.agent.connect()                      # $KEYCELL_AGENT_SOCK
>>> key = client.ed25519("deploy")
>>> key.public_key().verify(key.sign(b"msg"), b"msg")
>>> tag = client.secret("webhook").hmac(b"payload")

Remote handles have the methods of local handles (``Ed25519PrivateKey.sign`` and
``public_key``; ``SecretKey.hmac`` and ``verify_hmac``), so code can take either;
``key.protection.backend == "agent"``. A client is thread-safe (one request at a time on
its connection), reconnects once when the agent closed the connection, and raises
:class:`~keycell.exceptions.AgentUnavailableError` (cannot reach the agent),
:class:`~keycell.exceptions.AgentRefusedError` (the agent said no) or
:class:`~keycell.exceptions.AgentProtocolError` (a reply that breaks the protocol).
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._native import ECPublicKey, Ed25519PublicKey, RSAPublicKey
from ._text_refusal import RefusesText
from .agent_server import AgentHandle, serve
from .exceptions import (
    AgentProtocolError,
    AgentRefusedError,
    AgentUnavailableError,
    InvalidSignature,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "AgentClient",
    "AgentECKey",
    "AgentEd25519Key",
    "AgentHandle",
    "AgentKeyInfo",
    "AgentProtection",
    "AgentRSAKey",
    "AgentSecretKey",
    "connect",
    "serve",
]

_MAX_REPLY = 256 * 1024
_FAILURE, _IDENTITIES_ANSWER, _SIGN_RESPONSE = 5, 12, 14
_REQUEST_IDENTITIES, _SIGN_REQUEST, _EXTENSION = 11, 13, 27
_EXTENSION_FAILURE, _EXTENSION_RESPONSE = 28, 29
_ALGORITHMS = ("sha256", "sha384", "sha512")
_EC_CURVES: dict[str, Literal["P-256", "P-384"]] = {"ec-p256": "P-256", "ec-p384": "P-384"}


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise AgentProtocolError("truncated reply from the agent")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise AgentProtocolError("a name in the agent's reply is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise AgentProtocolError("trailing bytes in the agent's reply")


@dataclass(frozen=True)
class AgentProtection:
    """The protection of a key held by the agent, as the agent measured it (the same
    fields as :class:`keycell.Protection`); ``backend`` is always ``"agent"``, and
    ``agent_backend`` names the allocator in the agent."""

    locked: bool
    dontdump: bool
    wipeonfork: bool
    guard_pages: bool
    read_only_idle: bool
    isolation: str
    agent_backend: str
    backend: str = "agent"

    @property
    def complete(self) -> bool:
        """True when every protection holds in the agent."""
        return self.locked and self.dontdump and self.wipeonfork and self.guard_pages

    def as_dict(self) -> dict[str, Any]:
        """The report as a dict."""
        return {
            "locked": self.locked,
            "dontdump": self.dontdump,
            "wipeonfork": self.wipeonfork,
            "guard_pages": self.guard_pages,
            "read_only_idle": self.read_only_idle,
            "isolation": self.isolation,
            "backend": self.backend,
            "agent_backend": self.agent_backend,
        }


@dataclass(frozen=True)
class AgentKeyInfo:
    """A key the agent lets this peer use: its name, kind (``"ed25519"``, ``"ec-p256"``,
    ``"ec-p384"``, ``"rsa"`` or ``"secret"``), public key (signing keys only), protection
    and source:
    ``"store"`` (in the agent's guarded memory) or ``"pkcs11"`` (in a PKCS#11 token the agent
    uses; ``protection.agent_backend`` is ``"pkcs11"`` and ``protection.isolation``
    ``"token"`` then)."""

    name: str
    kind: str
    public_key: Ed25519PublicKey | ECPublicKey | RSAPublicKey | None
    protection: AgentProtection
    source: str = "store"


# The wire encoding and decoding, shared by this client and the asyncio client
# (keycell.aio): each request is a message built here, sent by the client's own transport,
# and its reply parsed here.
_LIST = "list@keycell"


def _frame(message: bytes) -> bytes:
    """A message with its length prefix."""
    return struct.pack(">I", len(message)) + message


def _reply_length(header: bytes) -> int:
    """The length of a reply from its 4-byte header (``AgentProtocolError`` if invalid)."""
    (n,) = struct.unpack(">I", header)
    if n == 0 or n > _MAX_REPLY:
        raise AgentProtocolError(f"the agent sent a reply of invalid length {n}")
    return int(n)


def _extension_message(name: str, body: bytes) -> bytes:
    return bytes([_EXTENSION]) + _string(name.encode()) + body


def _extension_reply(reply: bytes, name: str) -> _Reader:
    if reply[0] in (_FAILURE, _EXTENSION_FAILURE):
        raise AgentRefusedError(f"the agent refused {name}")
    if reply[0] != _EXTENSION_RESPONSE:
        raise AgentProtocolError(f"unexpected reply type {reply[0]} to {name}")
    r = _Reader(reply[1:])
    if r.text() != name:
        raise AgentProtocolError(f"the agent answered {name} for another extension")
    return r


def _identities_reply(reply: bytes) -> list[tuple[bytes, str]]:
    if reply[0] != _IDENTITIES_ANSWER:
        raise AgentRefusedError("the agent refused to list identities")
    r = _Reader(reply[1:])
    out = [(r.string(), r.text()) for _ in range(r.u32())]
    r.end()
    return out


def _keys_reply(r: _Reader) -> list[AgentKeyInfo]:
    out = []
    for _ in range(r.u32()):
        name, kind, public, bits = r.text(), r.text(), r.string(), r.u32()
        isolation, backend = r.text(), r.text()
        prot = AgentProtection(
            locked=bool(bits & 1),
            dontdump=bool(bits & 2),
            wipeonfork=bool(bits & 4),
            guard_pages=bool(bits & 8),
            read_only_idle=bool(bits & 16),
            isolation=isolation,
            agent_backend=backend,
        )
        pub: Ed25519PublicKey | ECPublicKey | RSAPublicKey | None = None
        if kind == "ed25519":
            pub = Ed25519PublicKey.from_public_bytes(public)
        elif kind in _EC_CURVES:
            pub = ECPublicKey.from_public_bytes(_EC_CURVES[kind], public)
        elif kind == "rsa":
            # The PKCS#1 RSAPublicKey DER.
            pub = RSAPublicKey.from_der(public)
        source = "pkcs11" if backend == "pkcs11" else "store"
        out.append(AgentKeyInfo(name, kind, pub, prot, source))
    r.end()
    return out


def _pick(infos: list[AgentKeyInfo], name: str, kind: str) -> AgentKeyInfo:
    """The key ``name`` of ``kind`` (``"ec"``: either curve) among ``infos``."""
    for k in infos:
        if k.name == name:
            if kind == "ec" and k.kind not in _EC_CURVES:
                raise AgentRefusedError(f"agent key {name!r} is a {k.kind} key, not an EC key")
            if kind != "ec" and k.kind != kind:
                raise AgentRefusedError(f"agent key {name!r} is a {k.kind} key, not {kind}")
            return k
    label = "EC" if kind == "ec" else kind
    raise AgentRefusedError(f"the agent has no {label} key {name!r} this process may use")


def _sign_message(blob: bytes, data: Buffer, flags: int = 0) -> bytes:
    return bytes([_SIGN_REQUEST]) + _string(blob) + _string(bytes(data)) + struct.pack(">I", flags)


def _signature_reply(reply: bytes, name: str) -> _Reader:
    """The signature blob of a ``SIGN_RESPONSE`` (a reader at its start)."""
    if reply[0] == _FAILURE:
        raise AgentRefusedError(f"the agent refused to sign with {name!r}")
    if reply[0] != _SIGN_RESPONSE:
        raise AgentProtocolError(f"unexpected reply type {reply[0]} to a sign request")
    r = _Reader(reply[1:])
    inner = _Reader(r.string())
    r.end()
    return inner


class AgentClient:
    """A connection to a keycell agent (see :func:`connect`)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<keycell.agent.AgentClient {self.path!r}>"

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as exc:
            s.close()
            raise AgentUnavailableError(
                f"cannot connect to the keycell agent at {self.path}: {exc.strerror or exc}"
            ) from None
        return s

    def _exchange(self, s: socket.socket, frame: bytes) -> bytes | None:
        """Send a frame, read the reply; ``None`` if the agent closed the connection."""
        try:
            s.sendall(frame)
            header = _recv_exact(s, 4)
            if header is None:
                return None
            body = _recv_exact(s, _reply_length(header))
        except (BrokenPipeError, ConnectionResetError):
            return None
        except TimeoutError:
            raise AgentUnavailableError(
                f"the keycell agent at {self.path} did not answer within {self.timeout} s"
            ) from None
        except OSError as exc:
            raise AgentUnavailableError(f"keycell agent at {self.path}: {exc}") from None
        if body is None:
            raise AgentProtocolError("the agent closed the connection in the middle of a reply")
        return body

    def request(self, message: bytes) -> bytes:
        """Send one message (type byte and contents) and return the reply's (type byte and
        contents). Reconnects once if the agent had closed the connection."""
        frame = _frame(message)
        with self._lock:
            if self._pid != os.getpid():  # a fork child never shares the parent's socket
                self._sock, self._pid = None, os.getpid()
            for attempt in (0, 1):
                fresh = self._sock is None
                if self._sock is None:
                    self._sock = self._connect()
                reply = self._exchange(self._sock, frame)
                if reply is not None:
                    return reply
                self._sock.close()
                self._sock = None
                if fresh or attempt:
                    break
        raise AgentUnavailableError(f"the keycell agent at {self.path} closed the connection")

    def _extension(self, name: str, body: bytes) -> _Reader:
        return _extension_reply(self.request(_extension_message(name, body)), name)

    def identities(self) -> list[tuple[bytes, str]]:
        """``REQUEST_IDENTITIES``: ``(SSH public key blob, comment)`` pairs."""
        return _identities_reply(self.request(bytes([_REQUEST_IDENTITIES])))

    def keys(self) -> list[AgentKeyInfo]:
        """Every key the agent lets this peer use (``list@keycell``)."""
        return _keys_reply(self._extension(_LIST, b""))

    def ed25519(self, name: str) -> AgentEd25519Key:
        """A handle of the agent's Ed25519 key ``name`` (``AgentRefusedError`` if the agent
        has none this process may use)."""
        return AgentEd25519Key(self, _pick(self.keys(), name, "ed25519"))

    def ec(self, name: str) -> AgentECKey:
        """A handle of the agent's EC (P-256 or P-384) key ``name`` (``AgentRefusedError``
        if the agent has none this process may use)."""
        return AgentECKey(self, _pick(self.keys(), name, "ec"))

    def rsa(self, name: str) -> AgentRSAKey:
        """A handle of the agent's RSA key ``name`` (``AgentRefusedError`` if the agent has
        none this process may use)."""
        return AgentRSAKey(self, _pick(self.keys(), name, "rsa"))

    def secret(self, name: str) -> AgentSecretKey:
        """A handle of the agent's secret key ``name``."""
        return AgentSecretKey(self, _pick(self.keys(), name, "secret"))

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class _Ed25519Wire(RefusesText):
    """What the sync and asyncio Ed25519 handles share: the key's blob, the sign request
    and the parsing of its reply."""

    def __init__(self, client: Any, info: AgentKeyInfo) -> None:
        assert isinstance(info.public_key, Ed25519PublicKey)
        self._client = client
        self.name = info.name
        self._public = info.public_key
        self._blob = _string(b"ssh-ed25519") + _string(info.public_key.public_bytes_raw())
        self.protection = info.protection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self._client.path!r}>"

    def public_key(self) -> Ed25519PublicKey:
        """The public key."""
        return self._public

    def _signature(self, reply: bytes) -> bytes:
        inner = _signature_reply(reply, self.name)
        if inner.string() != b"ssh-ed25519":
            raise AgentProtocolError("the agent's signature is not an ssh-ed25519 signature")
        sig = inner.string()
        inner.end()
        if len(sig) != 64:
            raise AgentProtocolError("the agent's Ed25519 signature is not 64 bytes")
        return sig


class AgentEd25519Key(_Ed25519Wire):
    """An Ed25519 private key held by the agent: ``sign`` and ``public_key`` as
    :class:`keycell.Ed25519PrivateKey`."""

    def sign(self, data: Buffer) -> bytes:
        """Sign ``data`` (Ed25519, RFC 8032) in the agent; returns the 64-byte signature."""
        return self._signature(self._client.request(_sign_message(self._blob, data)))


class _ECWire(RefusesText):
    """What the sync and asyncio EC handles share (see :class:`AgentECKey`)."""

    def __init__(self, client: Any, info: AgentKeyInfo) -> None:
        assert isinstance(info.public_key, ECPublicKey)
        self._client = client
        self.name = info.name
        self._public = info.public_key
        self.curve = info.public_key.curve
        self._width = info.public_key.key_size // 8
        curve_id = b"nistp256" if self.curve == "P-256" else b"nistp384"
        self._type = b"ecdsa-sha2-" + curve_id
        self._blob = (
            _string(self._type)
            + _string(curve_id)
            + _string(info.public_key.public_bytes_x962())
        )
        self.protection = info.protection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.curve}) at {self._client.path!r}>"

    def public_key(self) -> ECPublicKey:
        """The public key."""
        return self._public

    @staticmethod
    def _check_encoding(encoding: str) -> None:
        if encoding not in ("der", "raw"):
            raise ValueError(f'encoding must be "der" or "raw", not {encoding!r}')

    def _signature(self, reply: bytes, encoding: str) -> bytes:
        inner = _signature_reply(reply, self.name)
        if inner.string() != self._type:
            raise AgentProtocolError("the agent's signature is not of the key's type")
        rs = _Reader(inner.string())
        inner.end()
        ints = [_mpint(rs.string(), self._width) for _ in range(2)]
        rs.end()
        if encoding == "raw":
            return b"".join(v.to_bytes(self._width, "big") for v in ints)
        return _der_sequence(*(_der_integer(v) for v in ints))


class AgentECKey(_ECWire):
    """An ECDSA P-256 or P-384 private key held by the agent: ``sign`` and ``public_key``
    as :class:`keycell.ECPrivateKey` (the agent signs with SHA-256 on P-256, SHA-384 on
    P-384, and answers with the SSH encoding, ``mpint r, mpint s``, turned into DER or
    ``r || s`` here)."""

    def sign(self, data: Buffer, *, encoding: str = "der") -> bytes:
        """Sign ``data`` (ECDSA) in the agent; ``encoding`` ``"der"`` (as pyca) or
        ``"raw"`` (``r || s``, fixed width)."""
        self._check_encoding(encoding)
        reply = self._client.request(_sign_message(self._blob, data))
        return self._signature(reply, encoding)


def _mpint(b: bytes, width: int) -> int:
    """A positive SSH mpint of at most ``width`` bytes of magnitude."""
    if not b or b[0] & 0x80 or len(b.lstrip(b"\0")) > width:
        raise AgentProtocolError("the agent's ECDSA signature holds a malformed integer")
    return int.from_bytes(b, "big")


def _der_integer(v: int) -> bytes:
    body = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def _der_sequence(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _der_len(len(body)) + body


#: The sign request flags of RFC 8332's RSA signatures, by hash.
_RSA_FLAGS = {"sha256": (2, b"rsa-sha2-256"), "sha512": (4, b"rsa-sha2-512")}


class _RSAWire(RefusesText):
    """What the sync and asyncio RSA handles share (see :class:`AgentRSAKey`)."""

    def __init__(self, client: Any, info: AgentKeyInfo) -> None:
        assert isinstance(info.public_key, RSAPublicKey)
        self._client = client
        self.name = info.name
        self._public = info.public_key
        self._blob = base64.b64decode(info.public_key.to_openssh().split()[1])
        self.protection = info.protection

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} ({self.key_size} bits) "
            f"at {self._client.path!r}>"
        )

    @property
    def key_size(self) -> int:
        """The modulus size in bits."""
        return self._public.key_size

    def public_key(self) -> RSAPublicKey:
        """The public key."""
        return self._public

    def _request(self, data: Buffer, padding: str, hash: str) -> tuple[bytes, bytes]:
        """The sign request and the signature type its reply must hold."""
        if padding != "pkcs1v15":
            raise ValueError(
                'an agent RSA key signs with padding="pkcs1v15" only (the SSH agent protocol '
                f"asks for rsa-sha2-256 or rsa-sha2-512), not {padding!r}"
            )
        if hash not in _RSA_FLAGS:
            raise ValueError(f'an agent RSA key signs with "sha256" or "sha512", not {hash!r}')
        flags, name = _RSA_FLAGS[hash]
        return _sign_message(self._blob, data, flags), name

    def _signature(self, reply: bytes, name: bytes) -> bytes:
        inner = _signature_reply(reply, self.name)
        if inner.string() != name:
            raise AgentProtocolError(f"the agent's signature is not an {name.decode()} one")
        sig = inner.string()
        inner.end()
        if len(sig) != (self.key_size + 7) // 8:
            raise AgentProtocolError("the agent's RSA signature is not the modulus length")
        return sig


class AgentRSAKey(_RSAWire):
    """An RSA private key held by the agent: ``sign``, ``public_key`` and ``key_size`` as
    :class:`keycell.RSAPrivateKey` (so it is a :class:`keycell.RSASigner`), for the
    signatures an SSH agent makes: RSASSA-PKCS1-v1_5 with SHA-256 or SHA-512 (RFC 8332's
    ``rsa-sha2-256`` and ``rsa-sha2-512``). Pass ``padding="pkcs1v15"``: PSS (the default of
    local keys) and SHA-384 raise ``ValueError``, as the SSH agent protocol has no request
    for them."""

    def sign(
        self,
        data: Buffer,
        *,
        padding: Literal["pss", "pkcs1v15"] = "pss",
        hash: Literal["sha256", "sha384", "sha512"] = "sha256",
    ) -> bytes:
        """Sign ``data`` in the agent: ``padding="pkcs1v15"`` with ``hash`` "sha256" or
        "sha512"; returns the signature (the modulus length)."""
        message, name = self._request(data, padding, hash)
        return self._signature(self._client.request(message), name)


class _SecretWire(RefusesText):
    """What the sync and asyncio secret-key handles share: the ``hmac@keycell`` and
    ``verify-hmac@keycell`` request bodies and the parsing of their replies."""

    def __init__(self, client: Any, info: AgentKeyInfo) -> None:
        self._client = client
        self.name = info.name
        self.protection = info.protection

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self._client.path!r}>"

    def _head(self, algorithm: str) -> bytes:
        if algorithm not in _ALGORITHMS:
            raise ValueError("algorithm must be 'sha256', 'sha384' or 'sha512'")
        return _string(self.name.encode()) + _string(algorithm.encode())

    def _hmac_body(self, data: Buffer, algorithm: str) -> bytes:
        return self._head(algorithm) + _string(bytes(data))

    def _verify_body(self, data: Buffer, tag: Buffer, algorithm: str) -> bytes:
        return self._head(algorithm) + _string(bytes(data)) + _string(bytes(tag))

    @staticmethod
    def _tag(r: _Reader) -> bytes:
        tag = r.string()
        r.end()
        return tag

    @staticmethod
    def _verified(r: _Reader) -> None:
        ok = r.take(1)
        r.end()
        if ok != b"\x01":
            raise InvalidSignature("the HMAC tag does not verify")


_HMAC, _VERIFY_HMAC = "hmac@keycell", "verify-hmac@keycell"


class AgentSecretKey(_SecretWire):
    """A secret key held by the agent: ``hmac`` and ``verify_hmac`` as
    :class:`keycell.SecretKey`."""

    def hmac(self, data: Buffer, algorithm: str = "sha256") -> bytes:
        """HMAC of ``data`` computed in the agent (``hmac@keycell``)."""
        body = self._hmac_body(data, algorithm)
        return self._tag(self._client._extension(_HMAC, body))

    def verify_hmac(self, data: Buffer, tag: Buffer, algorithm: str = "sha256") -> None:
        """Check ``tag`` over ``data`` in the agent, in constant time there
        (``verify-hmac@keycell``); raises :class:`~keycell.exceptions.InvalidSignature`."""
        body = self._verify_body(data, tag, algorithm)
        self._verified(self._client._extension(_VERIFY_HMAC, body))


def _socket_path(path: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """``path``, or ``$KEYCELL_AGENT_SOCK`` (``AgentUnavailableError`` without either)."""
    if path is None:
        path = os.environ.get("KEYCELL_AGENT_SOCK")
        if not path:
            raise AgentUnavailableError(
                "no agent socket: pass a path or set KEYCELL_AGENT_SOCK"
            )
    return path


def connect(path: str | os.PathLike[str] | None = None, *, timeout: float = 10.0) -> AgentClient:
    """A client of the keycell agent at ``path`` (default ``$KEYCELL_AGENT_SOCK``). The
    connection is opened by the first request. Raises
    :class:`~keycell.exceptions.AgentUnavailableError` without a path."""
    return AgentClient(_socket_path(path), timeout=timeout)
