"""Ed25519PrivateKey / Ed25519PublicKey / ed25519_verify_batch: API, bad input, key
files, interop with pyca/cryptography, PyNaCl and openssl, threads and fork."""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import threading
from pathlib import Path

import nacl.signing
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
from cryptography.hazmat.primitives.asymmetric import ed25519 as pyca
from hypothesis import given, settings
from hypothesis import strategies as st
from keycell import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    InsecureKeyFileError,
    InvalidSignature,
    KeyDestroyedError,
    KeyFileError,
    Protection,
    X25519PrivateKey,
    X25519PublicKey,
    ed25519_verify_batch,
)

SEED = bytes(range(32))
PYCA_KEY = pyca.Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC = PYCA_KEY.public_key().public_bytes_raw()


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytearray(SEED))


# ---- basic API ------------------------------------------------------------------------


def test_generate_sign_verify() -> None:
    k = Ed25519PrivateKey.generate()
    sig = k.sign(b"message")
    assert isinstance(sig, bytes)
    assert len(sig) == 64
    k.public_key().verify(sig, b"message")
    with pytest.raises(InvalidSignature, match="does not verify"):
        k.public_key().verify(sig, b"massage")
    assert Ed25519PrivateKey.generate().public_key() != k.public_key()


def test_deterministic_and_matches_pyca() -> None:
    k = key()
    assert k.public_key().public_bytes_raw() == PUBLIC
    for msg in (b"", b"x", bytes(range(256)) * 9):
        assert k.sign(msg) == PYCA_KEY.sign(msg)


@pytest.mark.parametrize("size", [0, 1, 2047, 2048, 2049, 100_000])
def test_message_types_and_sizes(size: int) -> None:
    k = key()
    msg = os.urandom(size)
    sig = k.sign(msg)
    assert k.sign(bytearray(msg)) == sig
    assert k.sign(memoryview(msg)) == sig
    PYCA_KEY.public_key().verify(sig, msg)
    pk = k.public_key()
    pk.verify(sig, msg)
    pk.verify(memoryview(sig), bytearray(msg))


@pytest.mark.parametrize("bad", ["text", 12, None, [1, 2], 3.5])
def test_sign_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        key().sign(bad)  # type: ignore[arg-type]


def test_repr_is_redacted() -> None:
    k = key()
    r = repr(k)
    assert r == f"<Ed25519PrivateKey public={PUBLIC.hex()}>"
    assert SEED.hex() not in r
    with pytest.raises(TypeError, match="cannot be converted to text"):
        str(k)
    assert repr(k.public_key()) == f"<Ed25519PublicKey {PUBLIC.hex()}>"
    k.destroy()
    assert repr(k) == "<Ed25519PrivateKey destroyed>"


def test_protection() -> None:
    p = key().protection
    assert isinstance(p, Protection)
    assert p.guard_pages
    assert p.backend == "guarded-mmap"


def test_destroy_and_use_after_destroy() -> None:
    k = key()
    assert not k.destroyed
    k.destroy()
    assert k.destroyed
    k.destroy()  # idempotent
    for use in (
        lambda: k.sign(b"m"),
        k.public_key,
        lambda: k.protection,
        k.__enter__,
    ):
        with pytest.raises(KeyDestroyedError, match="Ed25519PrivateKey has been destroyed"):
            use()


def test_context_manager_destroys() -> None:
    with key() as k:
        sig = k.sign(b"m")
    assert k.destroyed
    with pytest.raises(KeyDestroyedError):
        k.sign(b"m")
    with pytest.raises(RuntimeError), key() as k2:
        raise RuntimeError("boom")
    assert k2.destroyed
    Ed25519PublicKey.from_public_bytes(PUBLIC).verify(sig, b"m")


def test_private_key_cannot_be_pickled_or_copied() -> None:
    k = key()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(k)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.copy(k)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy(k)


# ---- from_private_bytes -----------------------------------------------------------------


def test_from_private_bytes_wipes_writable_source() -> None:
    buf = bytearray(SEED)
    k = Ed25519PrivateKey.from_private_bytes(buf)
    assert buf == bytearray(32)
    assert k.public_key().public_bytes_raw() == PUBLIC

    buf = bytearray(SEED)
    Ed25519PrivateKey.from_private_bytes(memoryview(buf))
    assert buf == bytearray(32)

    buf = bytearray(SEED)
    Ed25519PrivateKey.from_private_bytes(buf, wipe=False)
    assert buf == bytearray(SEED)

    # bytes cannot be wiped; still accepted.
    assert Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw() == PUBLIC


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_from_private_bytes_wrong_length(length: int) -> None:
    buf = bytearray(b"\x07" * length)
    with pytest.raises(ValueError, match="exactly 32 bytes") as exc:
        Ed25519PrivateKey.from_private_bytes(buf)
    # The same message for every length: the length of secret input is not disclosed.
    assert str(exc.value) == "an Ed25519 private key (seed) must be exactly 32 bytes"
    assert buf == bytearray(b"\x07" * length)  # not wiped on failure


@pytest.mark.parametrize("bad", ["0" * 32, 32, None])
def test_from_private_bytes_wrong_type(bad: object) -> None:
    with pytest.raises(TypeError):
        Ed25519PrivateKey.from_private_bytes(bad)  # type: ignore[arg-type]


# ---- public keys ----------------------------------------------------------------------


def test_public_key_equality_hash_pickle() -> None:
    a = key().public_key()
    b = Ed25519PublicKey.from_public_bytes(PUBLIC)
    c = Ed25519PrivateKey.generate().public_key()
    assert a == b
    assert not (a != b)
    assert a != c
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2
    assert a != PUBLIC
    assert a != X25519PublicKey.from_public_bytes(PUBLIC)
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.copy(a) is a
    assert copy.deepcopy(a) is a


@pytest.mark.parametrize("length", [0, 31, 33])
def test_public_key_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        Ed25519PublicKey.from_public_bytes(bytes(length))


def test_public_key_not_a_point() -> None:
    # y = 2 is not the y-coordinate of a curve point.
    with pytest.raises(ValueError, match="do not encode a curve point"):
        Ed25519PublicKey.from_public_bytes(b"\x02" + bytes(31))
    # pyca defers the same failure to verify().
    pyca_pk = pyca.Ed25519PublicKey.from_public_bytes(b"\x02" + bytes(31))
    with pytest.raises(Exception):
        pyca_pk.verify(bytes(64), b"")


def test_small_order_public_key_never_verifies() -> None:
    identity = b"\x01" + bytes(31)
    pk = Ed25519PublicKey.from_public_bytes(identity)
    # R = identity, S = 0 satisfies the cofactorless equation for any message under the
    # identity key; strict verification refuses small-order keys and R.
    forged = identity + bytes(32)
    with pytest.raises(InvalidSignature):
        pk.verify(forged, b"anything")
    with pytest.raises(InvalidSignature):
        ed25519_verify_batch([(pk, forged, b"anything")])


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_verify_wrong_signature_length(length: int) -> None:
    k = key()
    sig = k.sign(b"m")
    bad = (sig * 2)[:length]
    with pytest.raises(InvalidSignature):
        k.public_key().verify(bad, b"m")


def test_verify_wrong_types() -> None:
    pk = key().public_key()
    with pytest.raises(TypeError, match="signature must be a bytes-like"):
        pk.verify("sig", b"m")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data must be a bytes-like"):
        pk.verify(bytes(64), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ed25519PublicKey.from_public_bytes("x" * 32)  # type: ignore[arg-type]


def test_public_der_pem_roundtrip_and_pyca_interop() -> None:
    pk = key().public_key()
    ppk = PYCA_KEY.public_key()
    der = pk.public_bytes_der()
    pem_bytes = pk.public_bytes_pem()
    assert der == ppk.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pem_bytes == ppk.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert serialization.load_der_public_key(der) == ppk
    assert serialization.load_pem_public_key(pem_bytes) == ppk
    assert Ed25519PublicKey.from_der(der) == pk
    assert Ed25519PublicKey.from_der(bytearray(der)) == pk
    assert Ed25519PublicKey.from_pem(pem_bytes) == pk
    assert Ed25519PublicKey.from_pem(pem_bytes.decode()) == pk
    assert Ed25519PublicKey.from_pem(b"\n  " + pem_bytes + b"\n\n") == pk


def test_public_der_pem_rejects_bad_input() -> None:
    pk = key().public_key()
    der = pk.public_bytes_der()
    for bad in (b"", der[:-1], der + b"\x00", b"\x31" + der[1:]):
        with pytest.raises(ValueError, match="invalid Ed25519 public key DER"):
            Ed25519PublicKey.from_der(bad)
    x_der = X25519PublicKey.from_public_bytes(PUBLIC).public_bytes_der()
    with pytest.raises(ValueError, match="X25519 key, not an Ed25519"):
        Ed25519PublicKey.from_der(x_der)
    with pytest.raises(ValueError, match="PEM"):
        Ed25519PublicKey.from_pem(pem("PRIVATE KEY", der))
    with pytest.raises(ValueError, match="PEM"):
        Ed25519PublicKey.from_pem(b"not pem at all")
    with pytest.raises(ValueError, match="base64"):
        Ed25519PublicKey.from_pem(pk.public_bytes_pem().replace(b"MCow", b"MC*w"))


# ---- interop (hypothesis) -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=3000))
def test_interop_with_pyca_and_pynacl(seed: bytes, msg: bytes) -> None:
    ours = Ed25519PrivateKey.from_private_bytes(bytearray(seed))
    theirs = pyca.Ed25519PrivateKey.from_private_bytes(seed)
    nacl_key = nacl.signing.SigningKey(seed)
    pk = ours.public_key()
    assert pk.public_bytes_raw() == theirs.public_key().public_bytes_raw()
    assert pk.public_bytes_raw() == bytes(nacl_key.verify_key)

    sig = ours.sign(msg)
    theirs.public_key().verify(sig, msg)  # pyca accepts ours
    nacl_key.verify_key.verify(msg, sig)  # libsodium accepts ours
    pk.verify(theirs.sign(msg), msg)  # we accept pyca's
    pk.verify(nacl_key.sign(msg).signature, msg)  # and libsodium's
    assert sig == theirs.sign(msg)
    ours.destroy()


# ---- key files ------------------------------------------------------------------------


def test_from_file_raw_seed(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "seed.key", SEED)
    k = Ed25519PrivateKey.from_file(path)
    assert k.public_key().public_bytes_raw() == PUBLIC
    assert Ed25519PrivateKey.from_file(str(path)).sign(b"m") == PYCA_KEY.sign(b"m")


@needs_openssl
def test_from_file_openssl_genpkey(tmp_path: Path) -> None:
    path = openssl_genpkey("ed25519", tmp_path / "ed.pem")
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    k = Ed25519PrivateKey.from_file(path)
    pub_der = openssl("pkey", "-in", str(path), "-pubout", "-outform", "DER")
    assert k.public_key().public_bytes_der() == pub_der
    pub_pem = openssl("pkey", "-in", str(path), "-pubout")
    assert Ed25519PublicKey.from_pem(pub_pem) == k.public_key()
    # A signature by keycell verifies with openssl (pkeyutl -rawin).
    pub_path = tmp_path / "pub.pem"
    pub_path.write_bytes(pub_pem)
    msg_path = tmp_path / "msg"
    msg_path.write_bytes(b"signed by keycell")
    sig_path = tmp_path / "sig"
    sig_path.write_bytes(k.sign(b"signed by keycell"))
    out = openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        str(pub_path),
        "-rawin",
        "-in",
        str(msg_path),
        "-sigfile",
        str(sig_path),
    )
    assert b"Signature Verified Successfully" in out
    # And the DER form of the same key.
    der_path = tmp_path / "ed.der"
    der_path.write_bytes(openssl("pkey", "-in", str(path), "-outform", "DER"))
    os.chmod(der_path, 0o600)
    assert Ed25519PrivateKey.from_file(der_path).public_key() == k.public_key()


def test_from_file_pyca_pkcs8(tmp_path: Path) -> None:
    for name, encoding in (
        ("pem", serialization.Encoding.PEM),
        ("der", serialization.Encoding.DER),
    ):
        data = PYCA_KEY.private_bytes(
            encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = write_key_file(tmp_path / f"k.{name}", data)
        assert Ed25519PrivateKey.from_file(path).public_key().public_bytes_raw() == PUBLIC


def test_from_file_pkcs8_v2_with_public_key(tmp_path: Path) -> None:
    good = write_key_file(tmp_path / "v2.pem", pem("PRIVATE KEY", pkcs8_der(0x70, SEED, PUBLIC)))
    assert Ed25519PrivateKey.from_file(good).public_key().public_bytes_raw() == PUBLIC
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    bad = write_key_file(tmp_path / "bad.pem", pem("PRIVATE KEY", pkcs8_der(0x70, SEED, other)))
    with pytest.raises(KeyFileError, match="does not belong"):
        Ed25519PrivateKey.from_file(bad)


def assert_no_secret(exc: BaseException) -> None:
    text = str(exc)
    assert SEED.hex() not in text
    assert "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" not in text  # base64 of SEED


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (SEED + b"\n", "not a raw 32-byte Ed25519 key"),
        (SEED[:31], "not a raw 32-byte Ed25519 key"),
        (pem("PRIVATE KEY", pkcs8_der(0x6E, SEED)), "X25519 key, not an Ed25519 key"),
        (pem("ENCRYPTED PRIVATE KEY", pkcs8_der(0x70, SEED)), "encrypted PKCS#8"),
        (pem("OPENSSH PRIVATE KEY", SEED), "OpenSSH"),
        (pem("PUBLIC KEY", pkcs8_der(0x70, SEED)), 'expected a PEM "PRIVATE KEY" block'),
        (pem("PRIVATE KEY", pkcs8_der(0x70, SEED))[:-10], "must end with"),
        (pem("PRIVATE KEY", pkcs8_der(0x70, SEED)).replace(b"MC4", b"M!4"), "base64"),
        (pem("PRIVATE KEY", pkcs8_der(0x70, SEED)[:-1]), "DER"),
        (pkcs8_der(0x70, SEED) + b"\x00", "trailing data"),
        (pem("PRIVATE KEY", pkcs8_der(0x70, SEED)) * 2, "PEM"),
    ],
)
def test_from_file_rejects_bad_contents(tmp_path: Path, content: bytes, match: str) -> None:
    path = write_key_file(tmp_path / "bad.key", content)
    with pytest.raises(KeyFileError, match=match) as exc:
        Ed25519PrivateKey.from_file(path)
    assert not isinstance(exc.value, InsecureKeyFileError)
    assert str(path) in str(exc.value)
    assert_no_secret(exc.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_from_file_rejects_loose_permissions(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "loose.key", SEED, mode)
    with pytest.raises(InsecureKeyFileError, match="permissions") as exc:
        Ed25519PrivateKey.from_file(path)
    assert_no_secret(exc.value)


def test_from_file_rejects_symlink_directory_missing(tmp_path: Path) -> None:
    target = write_key_file(tmp_path / "real.key", SEED)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(InsecureKeyFileError, match="symbolic link"):
        Ed25519PrivateKey.from_file(link)
    with pytest.raises(InsecureKeyFileError, match="directory"):
        Ed25519PrivateKey.from_file(tmp_path)
    with pytest.raises(KeyFileError) as exc:
        Ed25519PrivateKey.from_file(tmp_path / "missing.key")
    assert exc.value.errno == 2
    big = write_key_file(tmp_path / "big.key", b"A" * (16 * 1024 + 1))
    with pytest.raises(KeyFileError, match="larger than"):
        Ed25519PrivateKey.from_file(big)


# ---- batch verification ---------------------------------------------------------------


def make_items(n: int, size: int = 40) -> list[tuple[Ed25519PublicKey, bytes, bytes]]:
    keys = [Ed25519PrivateKey.generate() for _ in range(min(n, 8))]
    items = []
    for i in range(n):
        k = keys[i % len(keys)]
        msg = os.urandom(size + i)
        items.append((k.public_key(), k.sign(msg), msg))
    return items


def test_batch_accepts_valid_and_empty() -> None:
    ed25519_verify_batch([])
    ed25519_verify_batch(iter([]))
    items = make_items(40)
    ed25519_verify_batch(items)
    ed25519_verify_batch(tuple(items))
    ed25519_verify_batch(it for it in items)
    ed25519_verify_batch([(pk, bytearray(s), memoryview(m)) for pk, s, m in items])
    # Large inputs (GIL released).
    ed25519_verify_batch(make_items(12, size=5000))


@pytest.mark.parametrize("bad_index", [0, 7, 39])
def test_batch_names_first_bad_item(bad_index: int) -> None:
    items = make_items(40)
    pk, sig, msg = items[bad_index]
    items[bad_index] = (pk, sig, msg + b"!")
    with pytest.raises(InvalidSignature, match=f"item {bad_index} is invalid"):
        ed25519_verify_batch(items)
    items[bad_index] = (pk, sig[:-1], msg)
    with pytest.raises(InvalidSignature, match=f"item {bad_index} is invalid"):
        ed25519_verify_batch(items)


def test_batch_type_errors() -> None:
    pk, sig, msg = make_items(1)[0]
    with pytest.raises(TypeError, match="iterable"):
        ed25519_verify_batch(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="item 0 must be a"):
        ed25519_verify_batch([[pk, sig, msg]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="item 0 must be a"):
        ed25519_verify_batch([(pk, sig)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="item 1: the public key must be an Ed25519PublicKey"):
        ed25519_verify_batch([(pk, sig, msg), (pk.public_bytes_raw(), sig, msg)])  # type: ignore[list-item]
    x = X25519PrivateKey.generate().public_key()
    with pytest.raises(TypeError, match="Ed25519PublicKey"):
        ed25519_verify_batch([(x, sig, msg)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="message must be a bytes-like"):
        ed25519_verify_batch([(pk, sig, "text")])  # type: ignore[list-item]


L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19


def _clamped(seed: bytes) -> int:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def torsioned_signature(seed: bytes, msg: bytes) -> bytes:
    """A signature by ``seed``'s key whose R = r·B + T, T the point of order 2 (0, -1),
    with S computed honestly for that R. Needs the private scalar: only the key holder
    can make it. Adding (0, -1) maps (x, y) to (-x, -y)."""
    nonce_seed = hashlib.sha256(b"nonce" + msg).digest()
    r_enc = pyca.Ed25519PrivateKey.from_private_bytes(nonce_seed).public_key().public_bytes_raw()
    r_int = int.from_bytes(r_enc, "little")
    y, sign = r_int & ((1 << 255) - 1), r_int >> 255
    big_r = ((P - y) % P | ((1 - sign) << 255)).to_bytes(32, "little")
    public = pyca.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    k = int.from_bytes(hashlib.sha512(big_r + public + msg).digest(), "little") % L
    s = (_clamped(nonce_seed) + k * _clamped(seed)) % L
    return big_r + s.to_bytes(32, "little")


def test_batch_differs_from_verify_only_on_torsioned_r() -> None:
    """The documented difference: a key holder can make a signature with a torsion
    component in R that verify() (and pyca) reject but the batch equation accepts for
    some messages. Everything else is covered by the per-item checks."""
    pk = key().public_key()
    accepted = 0
    for i in range(48):
        msg = b"torsion %d" % i
        sig = torsioned_signature(SEED, msg)
        with pytest.raises(InvalidSignature):
            pk.verify(sig, msg)
        with pytest.raises(Exception):
            PYCA_KEY.public_key().verify(sig, msg)
        try:
            ed25519_verify_batch([(pk, sig, msg)])
            accepted += 1
        except InvalidSignature:
            pass
    # The batch coefficients are derived from the inputs: about half are even.
    assert 0 < accepted < 48


# ---- threads and fork -----------------------------------------------------------------


def sign_while_destroyed_round() -> None:
    k = Ed25519PrivateKey.generate()
    pk = k.public_key()
    small, large = b"small message", os.urandom(4096)
    errors: list[BaseException] = []
    signed: list[tuple[bytes, bytes]] = []
    destroyed_seen = threading.Event()
    start = threading.Barrier(9)

    def signer(msg: bytes) -> None:
        start.wait()
        for _ in range(300):
            try:
                signed.append((msg, k.sign(msg)))
            except KeyDestroyedError:
                destroyed_seen.set()
                return
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)
                return

    def destroyer() -> None:
        start.wait()
        while len(signed) < 20:
            pass
        k.destroy()

    threads = [threading.Thread(target=signer, args=(small if i % 2 else large,)) for i in range(8)]
    threads.append(threading.Thread(target=destroyer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert not errors
    assert k.destroyed
    assert destroyed_seen.is_set()
    for msg, sig in signed:
        pk.verify(sig, msg)
    with pytest.raises(KeyDestroyedError):
        k.sign(b"after")


def test_threads_sign_while_destroyed() -> None:
    for _round in range(5):
        sign_while_destroyed_round()


def test_fork_child_cannot_use_key() -> None:
    result = run_child(
        """
        import os, sys
        from keycell import Ed25519PrivateKey, ForkedKeyError
        k = Ed25519PrivateKey.from_private_bytes(bytearray(range(32)))
        sig = k.sign(b"m")
        pid = os.fork()
        if pid == 0:
            code = 0
            for use in (lambda: k.sign(b"m"), k.public_key, lambda: k.protection):
                try:
                    use()
                    code = 3
                except ForkedKeyError:
                    pass
                except BaseException:
                    code = 4
            k.destroy()  # allowed: just unmaps the child's copy
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert k.sign(b"m") == sig  # the parent's key is intact
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"
