"""X25519PrivateKey / X25519PublicKey: API, bad input, key files, interop with
pyca/cryptography and openssl, low-order points, threads and fork."""

from __future__ import annotations

import copy
import os
import pickle
import threading
from pathlib import Path

import pytest
from asym_support import (
    needs_openssl,
    openssl,
    openssl_genpkey,
    pem,
    pkcs8_der,
    run_child,
    write_key_file,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519 as pyca
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    InsecureKeyFileError,
    KeyDestroyedError,
    KeyFileError,
    Protection,
    SecretKey,
    X25519PrivateKey,
    X25519PublicKey,
)

PRIV = bytes(range(100, 132))
PYCA_KEY = pyca.X25519PrivateKey.from_private_bytes(PRIV)
PUBLIC = PYCA_KEY.public_key().public_bytes_raw()

# Points of low order (and their non-canonical encodings) on Curve25519: all give the
# all-zero shared secret (the list libsodium and the X25519 literature use).
LOW_ORDER = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def key() -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytearray(PRIV))


def secret_bytes(k: SecretKey) -> bytes:
    with k.expose() as view:
        return bytes(view)


def test_generate_and_exchange() -> None:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    ab = a.exchange(b.public_key())
    ba = b.exchange(a.public_key())
    assert isinstance(ab, SecretKey)
    assert len(ab) == 32
    assert ab == ba
    assert ab.protection.guard_pages
    assert a.exchange(X25519PrivateKey.generate().public_key()) != ab


def test_matches_pyca() -> None:
    k = key()
    assert k.public_key().public_bytes_raw() == PUBLIC
    peer = pyca.X25519PrivateKey.generate()
    shared = k.exchange(X25519PublicKey.from_public_bytes(peer.public_key().public_bytes_raw()))
    assert secret_bytes(shared) == peer.exchange(PYCA_KEY.public_key())


@pytest.mark.parametrize("point", LOW_ORDER)
def test_low_order_peer_is_refused(point: bytes) -> None:
    peer = X25519PublicKey.from_public_bytes(point)
    with pytest.raises(ValueError, match="Error computing shared key"):
        key().exchange(peer)
    with pytest.raises(ValueError):  # pyca agrees
        PYCA_KEY.exchange(pyca.X25519PublicKey.from_public_bytes(point))


def test_exchange_argument_type() -> None:
    k = key()
    with pytest.raises(TypeError, match="X25519PublicKey, not bytes"):
        k.exchange(PUBLIC)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="X25519PublicKey, not Ed25519PublicKey"):
        k.exchange(Ed25519PrivateKey.generate().public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="X25519PublicKey, not X25519PrivateKey"):
        k.exchange(X25519PrivateKey.generate())  # type: ignore[arg-type]


def test_repr_protection_pickle() -> None:
    k = key()
    assert repr(k) == f"<X25519PrivateKey public={PUBLIC.hex()}>"
    assert PRIV.hex() not in repr(k)
    assert isinstance(k.protection, Protection)
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="X25519PrivateKey cannot be"):
            dump(k)
    pk = k.public_key()
    assert repr(pk) == f"<X25519PublicKey {PUBLIC.hex()}>"
    assert pickle.loads(pickle.dumps(pk)) == pk
    assert copy.copy(pk) is pk
    assert copy.deepcopy(pk) is pk
    k.destroy()
    assert repr(k) == "<X25519PrivateKey destroyed>"


def test_destroy_and_use_after_destroy() -> None:
    k = key()
    peer = X25519PrivateKey.generate().public_key()
    with k:
        shared = k.exchange(peer)
    assert k.destroyed
    k.destroy()
    for use in (lambda: k.exchange(peer), k.public_key, lambda: k.protection, k.__enter__):
        with pytest.raises(KeyDestroyedError, match="X25519PrivateKey has been destroyed"):
            use()
    # The shared secret is its own key, independent of the private key.
    assert len(secret_bytes(shared)) == 32
    shared.destroy()


def test_from_private_bytes_wipes_and_checks_length() -> None:
    buf = bytearray(PRIV)
    assert X25519PrivateKey.from_private_bytes(buf).public_key().public_bytes_raw() == PUBLIC
    assert buf == bytearray(32)
    buf = bytearray(PRIV)
    X25519PrivateKey.from_private_bytes(buf, wipe=False)
    assert buf == bytearray(PRIV)
    for n in (0, 31, 33):
        with pytest.raises(ValueError) as exc:
            X25519PrivateKey.from_private_bytes(bytearray(n))
        assert str(exc.value) == "an X25519 private key must be exactly 32 bytes"
    with pytest.raises(TypeError):
        X25519PrivateKey.from_private_bytes("x" * 32)  # type: ignore[arg-type]


def test_public_key_api() -> None:
    a = X25519PublicKey.from_public_bytes(PUBLIC)
    b = key().public_key()
    assert a == b
    assert hash(a) == hash(b)
    assert a != X25519PrivateKey.generate().public_key()
    assert a != Ed25519PublicKey.from_public_bytes(
        Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    assert a != PUBLIC
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        X25519PublicKey.from_public_bytes(PUBLIC[:31])
    with pytest.raises(TypeError):
        X25519PublicKey.from_public_bytes(None)  # type: ignore[arg-type]
    # Any 32 bytes load (RFC 7748): e.g. the high bit set.
    X25519PublicKey.from_public_bytes(b"\xff" * 32)


def test_public_der_pem_interop() -> None:
    pk = key().public_key()
    ppk = PYCA_KEY.public_key()
    der = pk.public_bytes_der()
    assert der == ppk.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pk.public_bytes_pem() == ppk.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert X25519PublicKey.from_der(der) == pk
    assert X25519PublicKey.from_pem(pk.public_bytes_pem()) == pk
    assert X25519PublicKey.from_pem(pk.public_bytes_pem().decode()) == pk
    ed_der = Ed25519PrivateKey.generate().public_key().public_bytes_der()
    with pytest.raises(ValueError, match="Ed25519 key, not an X25519"):
        X25519PublicKey.from_der(ed_der)


@settings(max_examples=60, deadline=None)
@given(a=st.binary(min_size=32, max_size=32), b=st.binary(min_size=32, max_size=32))
def test_interop_with_pyca(a: bytes, b: bytes) -> None:
    ours = X25519PrivateKey.from_private_bytes(bytearray(a))
    theirs = pyca.X25519PrivateKey.from_private_bytes(a)
    assert ours.public_key().public_bytes_raw() == theirs.public_key().public_bytes_raw()
    peer = pyca.X25519PrivateKey.from_private_bytes(b)
    peer_public = peer.public_key().public_bytes_raw()
    shared = ours.exchange(X25519PublicKey.from_public_bytes(peer_public))
    assert secret_bytes(shared) == theirs.exchange(peer.public_key())
    assert secret_bytes(shared) == peer.exchange(theirs.public_key())
    shared.destroy()
    ours.destroy()


# ---- key files ------------------------------------------------------------------------


def test_from_file_raw_and_pyca_pkcs8(tmp_path: Path) -> None:
    raw = write_key_file(tmp_path / "raw.key", PRIV)
    assert X25519PrivateKey.from_file(raw).public_key().public_bytes_raw() == PUBLIC
    for name, encoding in (
        ("pem", serialization.Encoding.PEM),
        ("der", serialization.Encoding.DER),
    ):
        data = PYCA_KEY.private_bytes(
            encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = write_key_file(tmp_path / f"k.{name}", data)
        assert X25519PrivateKey.from_file(path).public_key().public_bytes_raw() == PUBLIC


@needs_openssl
def test_from_file_openssl_genpkey(tmp_path: Path) -> None:
    path = openssl_genpkey("x25519", tmp_path / "x.pem")
    k = X25519PrivateKey.from_file(path)
    pub_der = openssl("pkey", "-in", str(path), "-pubout", "-outform", "DER")
    assert k.public_key().public_bytes_der() == pub_der
    # openssl derives the same shared secret.
    peer_path = openssl_genpkey("x25519", tmp_path / "peer.pem")
    peer_pub = tmp_path / "peer.pub"
    peer_pub.write_bytes(openssl("pkey", "-in", str(peer_path), "-pubout"))
    expected = openssl("pkeyutl", "-derive", "-inkey", str(path), "-peerkey", str(peer_pub))
    shared = k.exchange(X25519PublicKey.from_pem(peer_pub.read_bytes()))
    assert secret_bytes(shared) == expected


def test_from_file_refusals(tmp_path: Path) -> None:
    ed = write_key_file(tmp_path / "ed.pem", pem("PRIVATE KEY", pkcs8_der(0x70, PRIV)))
    with pytest.raises(KeyFileError, match="Ed25519 key, not an X25519 key") as exc:
        X25519PrivateKey.from_file(ed)
    assert PRIV.hex() not in str(exc.value)
    loose = write_key_file(tmp_path / "loose.key", PRIV, 0o644)
    with pytest.raises(InsecureKeyFileError, match="permissions"):
        X25519PrivateKey.from_file(loose)
    link = tmp_path / "link.key"
    link.symlink_to(write_key_file(tmp_path / "target.key", PRIV))
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        X25519PrivateKey.from_file(link)
    short = write_key_file(tmp_path / "short.key", PRIV[:16])
    with pytest.raises(KeyFileError, match="not a raw 32-byte X25519 key"):
        X25519PrivateKey.from_file(short)
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    v2 = write_key_file(tmp_path / "v2.pem", pem("PRIVATE KEY", pkcs8_der(0x6E, PRIV, other)))
    with pytest.raises(KeyFileError, match="does not belong"):
        X25519PrivateKey.from_file(v2)
    v2ok = write_key_file(tmp_path / "v2ok.pem", pem("PRIVATE KEY", pkcs8_der(0x6E, PRIV, PUBLIC)))
    assert X25519PrivateKey.from_file(v2ok).public_key().public_bytes_raw() == PUBLIC


# ---- threads and fork -----------------------------------------------------------------


def test_threads_exchange_while_destroyed() -> None:
    k = X25519PrivateKey.generate()
    peer = X25519PrivateKey.generate()
    expected = secret_bytes(peer.exchange(k.public_key()))
    results: list[SecretKey] = []
    errors: list[BaseException] = []
    start = threading.Barrier(7)

    def worker() -> None:
        start.wait()
        for _ in range(200):
            try:
                results.append(k.exchange(peer.public_key()))
            except KeyDestroyedError:
                return
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                return

    def destroyer() -> None:
        start.wait()
        while len(results) < 10:
            pass
        k.destroy()

    threads = [threading.Thread(target=worker) for _ in range(6)] + [
        threading.Thread(target=destroyer)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert not errors
    assert k.destroyed
    assert results
    assert all(secret_bytes(r) == expected for r in results)


def test_fork_child_cannot_use_key() -> None:
    result = run_child(
        """
        import os
        from keycell import X25519PrivateKey, ForkedKeyError
        k = X25519PrivateKey.generate()
        peer = X25519PrivateKey.generate().public_key()
        pid = os.fork()
        if pid == 0:
            try:
                k.exchange(peer)
                os._exit(3)
            except ForkedKeyError:
                os._exit(0)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        k.exchange(peer)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"


def test_os_urandom_peer_keys_never_zero() -> None:
    # Random peers are never low order; the check costs nothing visible.
    k = key()
    for _ in range(50):
        k.exchange(X25519PublicKey.from_public_bytes(os.urandom(32))).destroy()
