"""Type stubs for the compiled module ``keycell._native`` (checked by ``mypy.stubtest``)."""

from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypedDict, final

from typing_extensions import Buffer

_PrivateKeyFormat = Literal["pem", "der", "raw", "hex", "base64"]

GIL_RELEASE_THRESHOLD: Final[int]
MAX_KEY_LEN: Final[int]

@final
class Protection:
    """What protection a key's memory actually has (measured when it was allocated)."""

    @property
    def locked(self) -> bool: ...
    @property
    def dontdump(self) -> bool: ...
    @property
    def wipeonfork(self) -> bool: ...
    @property
    def guard_pages(self) -> bool: ...
    @property
    def read_only_idle(self) -> bool: ...
    @property
    def isolation(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def complete(self) -> bool: ...
    def as_dict(self) -> dict[str, bool | str]: ...

@final
class Exposure:
    """Context manager returned by ``SecretKey.expose()``."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...

@final
class _KeyView:
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __release_buffer__(self, buffer: memoryview, /) -> None: ...

class _KeyHandle:
    """What every key handle has (the key cell, ``src/py/key_cell.rs``). Typing only: not
    a runtime class."""

    def seal_export(self) -> None: ...
    @property
    def exportable(self) -> bool: ...
    def destroy(self) -> None: ...
    @property
    def destroyed(self) -> bool: ...
    @property
    def protection(self) -> Protection: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]
    def __reduce__(self) -> Any: ...
    def __copy__(self) -> Any: ...
    def __deepcopy__(self, memo: Any, /) -> Any: ...

@final
class SecretKey(_KeyHandle):
    """A symmetric secret key held outside the Python heap, in a guarded region."""

    @staticmethod
    def generate(length: int = 32, *, exportable: bool = True) -> SecretKey: ...
    @staticmethod
    def from_buffer(data: Buffer, *, wipe: bool = True, exportable: bool = True) -> SecretKey: ...
    @staticmethod
    def from_file(
        path: str | PathLike[str],
        *,
        length: int | None = None,
        format: Literal["raw", "hex", "base64"] | None = None,
        exportable: bool = True,
    ) -> SecretKey: ...
    @staticmethod
    def from_keyring(
        key: str | int,
        *,
        keyring: str | int = "session",
        consume: bool = False,
        length: int | None = None,
        exportable: bool = True,
    ) -> SecretKey: ...
    def to_file(
        self,
        path: str | PathLike[str],
        *,
        format: Literal["raw", "hex", "base64"] = "raw",
        overwrite: bool = False,
    ) -> None: ...
    def __len__(self) -> int: ...
    def expose(self) -> Exposure: ...
    def hmac(self, data: Buffer, algorithm: str = "sha256") -> bytes: ...
    def verify_hmac(self, data: Buffer, tag: Buffer, algorithm: str = "sha256") -> None: ...

@final
class HOTP(_KeyHandle):
    """HOTP (RFC 4226) one-time passwords over a secret held in a guarded region."""

    def __new__(
        cls,
        key: SecretKey,
        *,
        digits: int = 6,
        algorithm: Literal["sha1", "sha256", "sha512"] = "sha1",
        allow_short_secret: bool = False,
    ) -> HOTP: ...
    @staticmethod
    def from_base32(
        buf: Buffer,
        *,
        wipe: bool = True,
        digits: int = 6,
        algorithm: Literal["sha1", "sha256", "sha512"] = "sha1",
        allow_short_secret: bool = False,
        exportable: bool = True,
    ) -> HOTP: ...
    @staticmethod
    def from_uri(
        buf: Buffer, *, wipe: bool = True, allow_short_secret: bool = False, exportable: bool = True
    ) -> HOTP: ...
    @property
    def initial_count(self) -> int: ...
    def at(self, counter: int) -> str: ...
    def verify(self, code: str, counter: int, *, look_ahead: int = 0) -> int: ...
    @property
    def digits(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    def provisioning_uri(
        self, account: str, *, issuer: str | None = None, initial_count: int = 0
    ) -> str: ...

@final
class TOTP(_KeyHandle):
    """TOTP (RFC 6238) one-time passwords over a secret held in a guarded region."""

    def __new__(
        cls,
        key: SecretKey,
        *,
        digits: int = 6,
        period: int = 30,
        algorithm: Literal["sha1", "sha256", "sha512"] = "sha1",
        t0: int = 0,
        allow_short_secret: bool = False,
    ) -> TOTP: ...
    @staticmethod
    def from_base32(
        buf: Buffer,
        *,
        wipe: bool = True,
        digits: int = 6,
        period: int = 30,
        algorithm: Literal["sha1", "sha256", "sha512"] = "sha1",
        t0: int = 0,
        allow_short_secret: bool = False,
        exportable: bool = True,
    ) -> TOTP: ...
    @staticmethod
    def from_uri(
        buf: Buffer, *, wipe: bool = True, allow_short_secret: bool = False, exportable: bool = True
    ) -> TOTP: ...
    def counter(self, timestamp: float) -> int: ...
    def at(self, timestamp: float) -> str: ...
    def now(self) -> str: ...
    def verify(
        self,
        code: str,
        *,
        at: float | None = None,
        past: int = 1,
        future: int = 1,
        last_counter: int | None = None,
    ) -> int: ...
    @property
    def digits(self) -> int: ...
    @property
    def period(self) -> int: ...
    @property
    def t0(self) -> int: ...
    @property
    def algorithm(self) -> str: ...
    def provisioning_uri(self, account: str, *, issuer: str | None = None) -> str: ...

class _KdfParams(TypedDict, total=False):
    """Argon2id parameters of a passphrase key store."""

    memory_kib: int
    iterations: int
    lanes: int

@final
class Passphrase(_KeyHandle):
    """A passphrase in guarded memory, for ``KeyStore`` (``master=``, ``new_master``)."""

    @staticmethod
    def from_file(path: str | PathLike[str]) -> Passphrase: ...

@final
class KeyStore:
    """An encrypted, crash-safe file of named keys (see docs/keystore-format.md)."""

    @staticmethod
    def create(
        path: str | PathLike[str],
        *,
        master: SecretKey | Passphrase | bytearray | memoryview,
        kdf_params: _KdfParams | None = None,
        lock_timeout: float | None = None,
    ) -> KeyStore: ...
    @staticmethod
    def open(
        path: str | PathLike[str],
        *,
        master: SecretKey | Passphrase | bytearray | memoryview,
        lock_timeout: float | None = None,
    ) -> KeyStore: ...
    @property
    def path(self) -> Path: ...
    @property
    def kdf_params(self) -> _KdfParams | None: ...
    def put(
        self,
        name: str,
        key: SecretKey | Ed25519PrivateKey | X25519PrivateKey,
        *,
        overwrite: bool = False,
    ) -> None: ...
    def get(self, name: str) -> SecretKey | Ed25519PrivateKey | X25519PrivateKey: ...
    def delete(self, name: str) -> None: ...
    def names(self) -> list[str]: ...
    def __contains__(self, name: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def rotate_master(
        self,
        new_master: SecretKey | Passphrase | bytearray | memoryview,
        *,
        kdf_params: _KdfParams | None = None,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> KeyStore: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...
    def __reduce__(self) -> Any: ...

@final
class HMAC:
    """A streaming HMAC over a ``SecretKey`` (the interface of pyca/cryptography's HMAC)."""

    def __new__(cls, key: SecretKey, algorithm: str = "sha256") -> HMAC: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def digest_size(self) -> int: ...
    @property
    def block_size(self) -> int: ...
    def update(self, data: Buffer) -> None: ...
    def copy(self) -> HMAC: ...
    def finalize(self) -> bytes: ...
    def verify(self, tag: Buffer) -> None: ...

def hkdf(
    key: SecretKey,
    *,
    length: int,
    salt: Buffer | None = None,
    info: Buffer = b"",
    algorithm: str = "sha256",
) -> SecretKey: ...
def hkdf_extract(
    key: SecretKey, *, salt: Buffer | None = None, algorithm: str = "sha256"
) -> SecretKey: ...
def hkdf_expand(
    prk: SecretKey, *, length: int, info: Buffer = b"", algorithm: str = "sha256"
) -> SecretKey: ...
def compare_digest(a: Buffer, b: Buffer, /) -> bool: ...
def set_policy(
    *,
    on_lock_failure: Literal["warn", "raise"] | None = None,
    isolation: Literal["page", "pool", "auto"] | None = None,
    backend: Literal["mmap", "memfd_secret"] | None = None,
) -> None: ...
def get_policy() -> dict[str, str]: ...
def _set_thread_isolation(isolation: str | None, /) -> str | None: ...
def _effective_isolation() -> str: ...
def _pool_stats() -> dict[str, int]: ...
def _probe() -> dict[str, Any]: ...
def _key_address(key: SecretKey | Ed25519PrivateKey | X25519PrivateKey) -> int: ...

class _KeyringDescription(TypedDict):
    serial: int
    type: str
    uid: int
    gid: int
    perm: int
    description: str

def keyring_store(
    key: SecretKey | Ed25519PrivateKey | X25519PrivateKey,
    description: str,
    *,
    keyring: str | int = "session",
    timeout: int | None = None,
) -> int: ...
def keyring_invalidate(key: str | int, *, keyring: str | int = "session") -> None: ...
def keyring_describe(key: str | int, *, keyring: str | int = "session") -> _KeyringDescription: ...
def keyring_list(keyring: str | int = "session") -> list[_KeyringDescription]: ...
def _keyring_probe() -> dict[str, Any] | None: ...

@final
class Ed25519PrivateKey(_KeyHandle):
    """An Ed25519 private key held outside the Python heap, in a guarded region."""

    @staticmethod
    def generate(*, exportable: bool = True) -> Ed25519PrivateKey: ...
    @staticmethod
    def from_private_bytes(
        data: Buffer, *, wipe: bool = True, exportable: bool = True
    ) -> Ed25519PrivateKey: ...
    @staticmethod
    def from_file(
        path: str | PathLike[str],
        *,
        format: _PrivateKeyFormat | None = None,
        exportable: bool = True,
    ) -> Ed25519PrivateKey: ...
    @staticmethod
    def from_keyring(
        key: str | int,
        *,
        keyring: str | int = "session",
        consume: bool = False,
        exportable: bool = True,
    ) -> Ed25519PrivateKey: ...
    def to_file(
        self,
        path: str | PathLike[str],
        *,
        format: _PrivateKeyFormat = "pem",
        overwrite: bool = False,
    ) -> None: ...
    def sign(self, data: Buffer) -> bytes: ...
    def public_key(self) -> Ed25519PublicKey: ...

@final
class Ed25519PublicKey:
    """An Ed25519 public key (ordinary memory; comparable, hashable, picklable)."""

    @staticmethod
    def from_public_bytes(data: Buffer) -> Ed25519PublicKey: ...
    @staticmethod
    def from_der(data: Buffer) -> Ed25519PublicKey: ...
    @staticmethod
    def from_pem(data: str | Buffer) -> Ed25519PublicKey: ...
    def public_bytes_raw(self) -> bytes: ...
    def public_bytes_der(self) -> bytes: ...
    def public_bytes_pem(self) -> bytes: ...
    def verify(self, signature: Buffer, data: Buffer) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def __copy__(self) -> Ed25519PublicKey: ...
    def __deepcopy__(self, memo: Any, /) -> Ed25519PublicKey: ...

def ed25519_verify_batch(
    items: Iterable[tuple[Ed25519PublicKey, Buffer, Buffer]],
) -> None: ...
@final
class X25519PrivateKey(_KeyHandle):
    """An X25519 private key held outside the Python heap, in a guarded region."""

    @staticmethod
    def generate(*, exportable: bool = True) -> X25519PrivateKey: ...
    @staticmethod
    def from_private_bytes(
        data: Buffer, *, wipe: bool = True, exportable: bool = True
    ) -> X25519PrivateKey: ...
    @staticmethod
    def from_file(
        path: str | PathLike[str],
        *,
        format: _PrivateKeyFormat | None = None,
        exportable: bool = True,
    ) -> X25519PrivateKey: ...
    @staticmethod
    def from_keyring(
        key: str | int,
        *,
        keyring: str | int = "session",
        consume: bool = False,
        exportable: bool = True,
    ) -> X25519PrivateKey: ...
    def to_file(
        self,
        path: str | PathLike[str],
        *,
        format: _PrivateKeyFormat = "pem",
        overwrite: bool = False,
    ) -> None: ...
    def public_key(self) -> X25519PublicKey: ...
    def exchange(self, peer_public_key: X25519PublicKey) -> SecretKey: ...

@final
class X25519PublicKey:
    """An X25519 public key (ordinary memory; comparable, hashable, picklable)."""

    @staticmethod
    def from_public_bytes(data: Buffer) -> X25519PublicKey: ...
    @staticmethod
    def from_der(data: Buffer) -> X25519PublicKey: ...
    @staticmethod
    def from_pem(data: str | Buffer) -> X25519PublicKey: ...
    def public_bytes_raw(self) -> bytes: ...
    def public_bytes_der(self) -> bytes: ...
    def public_bytes_pem(self) -> bytes: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def __copy__(self) -> X25519PublicKey: ...
    def __deepcopy__(self, memo: Any, /) -> X25519PublicKey: ...
