"""keycell.keyring and from_keyring against the kernel, with keyctl as the independent
client. Every test body runs in its own new session keyring (keyring_session.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

import pytest
from keyring_session import in_session, requires_keyring

pytestmark = requires_keyring


def test_stored_key_is_possessor_only_and_keyctl_pipe_returns_it() -> None:
    data = secrets.token_bytes(32)
    seed = secrets.token_bytes(32)
    r = in_session(
        """
        data, seed = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
        s1 = keyring.store(SecretKey.from_buffer(bytearray(data)), "kc:sym")
        s2 = keyring.store(Ed25519PrivateKey.from_private_bytes(bytearray(seed)), "kc:ed")
        done({
            "rdescribe": [keyctl("rdescribe", str(s)).stdout.decode() for s in (s1, s2)],
            "pipe": [keyctl("pipe", str(s)).stdout.hex() for s in (s1, s2)],
            "describe": keyring.describe("kc:sym"),
            "by_serial": keyring.describe(s1),
            "list": sorted(d["description"] for d in keyring.list_keys()),
            "s1": s1,
        })
        """,
        data.hex(),
        seed.hex(),
    )
    for line in r["rdescribe"]:
        key_type, _uid, _gid, perm, _desc = line.strip().split(";", 4)
        assert (key_type, perm) == ("user", "3f000000")
    assert r["pipe"] == [data.hex(), seed.hex()]
    d = r["describe"]
    assert d == r["by_serial"]
    assert d["type"] == "user"
    assert d["perm"] == 0x3F000000
    assert d["description"] == "kc:sym"
    assert d["uid"] == os.geteuid()
    assert d["serial"] == r["s1"]
    assert r["list"] == ["kc:ed", "kc:sym"]


def test_store_displaces_a_wider_key_instead_of_updating_it() -> None:
    # add_key into a keyring that holds a key of the same description would update that
    # key in place and keep its permissions; store must link a new key instead.
    r = in_session(
        """
        old = int(keyctl("padd", "user", "kc:x", "@s", input=b"old").stdout)
        keyctl("setperm", str(old), "0x3f3f0000")
        # Another link keeps the old key alive once it is displaced from @s.
        keep = keyctl("newring", "kc:keep", "@s").stdout.decode().strip()
        keyctl("link", str(old), keep)
        new = keyring.store(SecretKey.generate(32), "kc:x")
        done({"old": old, "new": new, "old_perm": keyctl("rdescribe", str(old)).stdout.decode(),
              "old_payload": keyctl("pipe", str(old)).stdout.decode(),
              "linked": keyctl("rlist", "@s").stdout.decode().split()})
        """
    )
    assert r["new"] != r["old"]
    assert r["old_payload"] == "old"  # untouched
    assert ";3f3f0000;" in r["old_perm"]
    assert str(r["new"]) in r["linked"]
    assert str(r["old"]) not in r["linked"]


def test_store_in_each_named_keyring() -> None:
    r = in_session(
        """
        out = {}
        # A key in the user keyring is possessed only through a session keyring that links
        # the user keyring: without that link, even its owner cannot read it.
        s = keyring.store(SecretKey.generate(16), "kc:unpossessed", keyring="user")
        unpossessed = error(SecretKey.from_keyring, s)
        keyctl("link", "@u", "@s")
        readable = len(SecretKey.from_keyring(s))
        keyring.invalidate(s)
        keyctl("link", "@us", "@s")
        for ring in ("session", "process", "thread", "user", "user-session"):
            s = keyring.store(SecretKey.generate(16), "kc:" + ring, keyring=ring, timeout=60)
            # The process and thread keyrings are this process's own: keyctl (another
            # process) cannot see them, so keycell lists and describes them here.
            out[ring] = [s, [str(d["serial"]) for d in keyring.list_keys(ring)],
                         "user;;;%08x;" % keyring.describe(s)["perm"]]
            keyring.invalidate(s)
        ring_serial = int(keyctl("newring", "kc:ring", "@s").stdout)
        s = keyring.store(SecretKey.generate(16), "kc:nested", keyring=ring_serial)
        out["serial"] = [s, keyctl("rlist", str(ring_serial)).stdout.decode().split(),
                         keyctl("rdescribe", str(s)).stdout.decode()]
        done({"rings": out, "unpossessed": unpossessed, "readable": readable})
        """
    )
    assert r["unpossessed"]["type"] == "KeyringPermissionError"
    assert r["unpossessed"]["errno"] == 13
    assert "possessed only through" in r["unpossessed"]["message"]
    assert r["readable"] == 16
    r = r["rings"]
    for ring, (serial, linked, desc) in r.items():
        assert str(serial) in linked, ring
        assert ";3f000000;" in desc, ring


def test_keyctl_padd_key_loads_and_hmacs() -> None:
    data = secrets.token_bytes(48)
    seed = secrets.token_bytes(32)
    msg = b"keyring message"
    r = in_session(
        """
        data, seed, msg = (bytes.fromhex(a) for a in sys.argv[1:4])
        s = int(keyctl("padd", "user", "kc:hmac", "@s", input=data).stdout)
        keyctl("padd", "user", "kc:seed", "@s", input=seed)
        by_name = SecretKey.from_keyring("kc:hmac", length=48)
        by_serial = SecretKey.from_keyring(s)
        ed = Ed25519PrivateKey.from_keyring("kc:seed")
        x = X25519PrivateKey.from_keyring("kc:seed", exportable=False)
        done({"tag": by_name.hmac(msg, "sha512").hex(), "tag2": by_serial.hmac(msg).hex(),
              "len": len(by_name), "protection": by_name.protection.locked,
              "ed_pub": ed.public_key().public_bytes_raw().hex(),
              "ed_ref": Ed25519PrivateKey.from_private_bytes(bytearray(seed))
                  .public_key().public_bytes_raw().hex(),
              "x_pub": x.public_key().public_bytes_raw().hex(),
              "x_ref": X25519PrivateKey.from_private_bytes(bytearray(seed))
                  .public_key().public_bytes_raw().hex(),
              "x_exportable": x.exportable,
              "still_there": keyctl("pipe", str(s)).stdout.hex()})
        """,
        data.hex(),
        seed.hex(),
        msg.hex(),
    )
    assert r["tag"] == hmac.new(data, msg, hashlib.sha512).hexdigest()
    assert r["tag2"] == hmac.new(data, msg, hashlib.sha256).hexdigest()
    assert r["len"] == 48
    assert r["ed_pub"] == r["ed_ref"]
    assert r["x_pub"] == r["x_ref"]
    assert r["x_exportable"] is False
    assert r["still_there"] == data.hex()  # without consume the kernel key stays


def test_consume_leaves_nothing_behind() -> None:
    r = in_session(
        """
        import time
        s = int(keyctl("padd", "user", "kc:once", "@s", input=b"k" * 32).stdout)
        key = SecretKey.from_keyring("kc:once", consume=True)
        # Invalidated at once (no read, search or link succeeds); the garbage collector
        # unlinks and frees it soon after.
        search = keyctl("search", "@s", "user", "kc:once").returncode
        pipe_now = keyctl("pipe", str(s)).returncode
        # The wait only bounds a failure: the kernel's collector runs from a work queue,
        # later under load (a run on a loaded machine took more than 10 s).
        deadline = time.monotonic() + 60
        while True:
            with open("/proc/keys") as f:
                gone = not any(int(line.split()[0], 16) == s for line in f)
            if gone or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        linked = keyctl("rlist", "@s").stdout.decode().split()
        again = error(SecretKey.from_keyring, "kc:once")
        done({"linked": linked, "search": search, "gone": gone, "again": again,
              "len": len(key), "pipe": pipe_now})
        """,
        timeout=120,
    )
    assert r["len"] == 32
    assert r["linked"] == []
    assert r["search"] != 0
    assert r["pipe"] != 0
    assert r["gone"], "the invalidated key is still in /proc/keys"
    assert r["again"]["type"] == "KeyringKeyNotFoundError"


def test_timeout_expires() -> None:
    r = in_session(
        """
        import time
        s = keyring.store(SecretKey.generate(32), "kc:short", timeout=1)
        before = SecretKey.from_keyring(s).destroy()
        time.sleep(2.5)
        done({"load": error(SecretKey.from_keyring, s),
              "by_name": error(SecretKey.from_keyring, "kc:short"),
              "pipe": keyctl("pipe", str(s)).stderr.decode()})
        """
    )
    assert r["load"]["type"] == "KeyringKeyExpiredError"
    assert r["load"]["errno"] == 127  # EKEYEXPIRED
    assert r["by_name"]["type"] in ("KeyringKeyExpiredError", "KeyringKeyNotFoundError")
    assert "expired" in r["pipe"].lower()


def test_same_uid_outside_the_session_cannot_read_or_view() -> None:
    r = in_session(
        """
        s = keyring.store(SecretKey.generate(32), "kc:private")
        # keyctl in a new session keyring of its own: same uid, not a possessor.
        other = subprocess.run(["keyctl", "session", "-", "sh", "-c",
                                "keyctl pipe %d; echo rc=$?; keyctl rdescribe %d; echo rc=$?"
                                % (s, s)], capture_output=True)
        done({"out": other.stdout.decode(), "err": other.stderr.decode(),
              "inside": len(keyctl("pipe", str(s)).stdout)})
        """
    )
    assert r["inside"] == 32
    assert r["out"].splitlines() == ["rc=1", "rc=1"]
    assert r["err"].count("Permission denied") == 2


def test_nobody_cannot_read_a_stored_key() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody (uid 65534)")
    r = in_session(
        """
        import ctypes, os, pwd
        sys.path.insert(0, sys.argv[1])
        from support import drop_privileges
        key = SecretKey.generate(32)
        s = keyring.store(key, "kc:root")
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            try:
                drop_privileges()
                # A process of another user has its own session keyring.
                if libc.syscall(250, 1, None) < 0:  # keyctl(KEYCTL_JOIN_SESSION_KEYRING)
                    os._exit(3)
                e = error(SecretKey.from_keyring, s)
                d = error(keyring.describe, s)
                os.write(1, ("\\nRESULT " + json.dumps({"uid": os.getuid(), "read": e,
                                                       "view": d}) + "\\n").encode())
                os._exit(0)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        """,
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert r["uid"] == 65534
    assert r["read"]["type"] in ("KeyringPermissionError", "KeyringKeyNotFoundError")
    assert r["read"]["keycell"]
    assert r["view"]["type"] in ("KeyringPermissionError", "KeyringKeyNotFoundError")


def test_ec_keys_move_as_their_scalar() -> None:
    # An EC key's keyring payload is its scalar, big-endian, the curve's width (what
    # keyctl pipe shows and what keyctl padd gives); the length names the curve.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    curves = {"P-256": (ec.SECP256R1(), 32), "P-384": (ec.SECP384R1(), 48)}
    scalars = {"P-256": 0x1234_5678 << 200 | 0xABCDEF, "P-384": 0x9876_5432 << 330 | 0x1F}
    pems, points = {}, {}
    for curve, (pyca_curve, _) in curves.items():
        theirs = ec.derive_private_key(scalars[curve], pyca_curve)
        pems[curve] = theirs.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).hex()
        points[curve] = (
            theirs.public_key()
            .public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            .hex()
        )
    r = in_session(
        """
        from keycell import ECPrivateKey
        pems = json.loads(sys.argv[1])
        scalars = json.loads(sys.argv[2])
        out = {}
        for curve, pem in pems.items():
            k = ECPrivateKey.from_pem(bytearray(bytes.fromhex(pem)))
            s = keyring.store(k, "kc:stored-" + curve)
            int(keyctl("padd", "user", "kc:padd-" + curve, "@s",
                       input=bytes.fromhex(scalars[curve])).stdout)
            back = ECPrivateKey.from_keyring("kc:padd-" + curve, exportable=False)
            other = "P-384" if curve == "P-256" else "P-256"
            out[curve] = {
                "pipe": keyctl("pipe", str(s)).stdout.hex(),
                "perm": keyctl("rdescribe", str(s)).stdout.decode(),
                "curve": back.curve,
                "point": back.public_key().public_bytes_x962().hex(),
                "exportable": back.exportable,
                "stored_back": ECPrivateKey.from_keyring(s).public_key()
                    .public_bytes_x962().hex(),
                "wrong_curve": error(ECPrivateKey.from_keyring, "kc:padd-" + curve,
                                     curve=other),
                "sealed": error(keyring.store, back, "kc:sealed"),
            }
        keyctl("padd", "user", "kc:short", "@s", input=b"\\x01" * 31)
        keyctl("padd", "user", "kc:zero", "@s", input=bytes(32))
        keyctl("padd", "user", "kc:order", "@s", input=b"\\xff" * 48)
        keyctl("padd", "user", "kc:consume", "@s", input=bytes.fromhex(scalars["P-256"]))
        consumed = ECPrivateKey.from_keyring("kc:consume", curve="P-256", consume=True)
        done({"curves": out,
              "short": error(ECPrivateKey.from_keyring, "kc:short"),
              "zero": error(ECPrivateKey.from_keyring, "kc:zero"),
              "order": error(ECPrivateKey.from_keyring, "kc:order"),
              "bad_curve": error(ECPrivateKey.from_keyring, "kc:zero", curve="P-521"),
              "consumed": consumed.public_key().public_bytes_x962().hex(),
              "gone": error(ECPrivateKey.from_keyring, "kc:consume")})
        """,
        json.dumps(pems),
        json.dumps({c: scalars[c].to_bytes(n).hex() for c, (_, n) in curves.items()}),
    )
    for curve, (_, width) in curves.items():
        got = r["curves"][curve]
        assert got["pipe"] == scalars[curve].to_bytes(width).hex()
        assert ";3f000000;" in got["perm"]
        assert got["curve"] == curve
        assert got["point"] == points[curve]
        assert got["stored_back"] == points[curve]
        assert got["exportable"] is False
        assert got["wrong_curve"]["type"] == "ValueError"
        assert "must be exactly" in got["wrong_curve"]["message"]
        assert got["sealed"]["type"] == "KeyNotExportableError"
    assert r["short"]["type"] == "ValueError"
    assert "32 bytes (a P-256 scalar) or 48 bytes" in r["short"]["message"]
    for name in ("zero", "order", "bad_curve"):
        assert r[name]["type"] == "ValueError", r[name]
    assert r["consumed"] == points["P-256"]
    # Invalidated at once; the kernel's collector unlinks it later, so a read in between
    # finds it invalidated ("expired") rather than gone: either way it is not readable.
    assert r["gone"]["type"] in ("KeyringKeyNotFoundError", "KeyringKeyExpiredError")


def test_rsa_keys_move_as_their_pkcs1_der(tmp_path: Path) -> None:
    # An RSA key's keyring payload is its PKCS#1 DER; from_keyring decodes it in guarded
    # memory; a payload that is no RSA key is refused with ValueError.
    from keycell import RSAPrivateKey

    key = RSAPrivateKey.generate(2048)
    key.to_file(tmp_path / "k.der", format="der", traditional=True)
    der = (tmp_path / "k.der").read_bytes()
    key.to_file(tmp_path / "k.pem")
    r = in_session(
        """
        from keycell import RSAPrivateKey
        k = RSAPrivateKey.from_file(sys.argv[1])
        s = keyring.store(k, "kc:rsa")
        back = RSAPrivateKey.from_keyring("kc:rsa", consume=True)
        keyctl("padd", "user", "kc:junk", "@s", input=b"\\x30\\x03\\x02\\x01\\x00")
        done({"pipe_len": len(keyctl("pipe", str(s)).stdout),
              "same": back.public_key() == k.public_key(),
              "verifies": error(k.public_key().verify, back.sign(b"m"), b"m"),
              "junk": error(RSAPrivateKey.from_keyring, "kc:junk"),
              "gone": error(RSAPrivateKey.from_keyring, "kc:rsa")})
        """,
        str(tmp_path / "k.pem"),
    )
    assert r["pipe_len"] == 0  # consumed
    assert r["same"] is True
    assert r["verifies"] is None
    assert r["junk"]["type"] == "ValueError", r["junk"]
    # Invalidated at once; the kernel's collector unlinks it later, so a read in between
    # finds it invalidated ("expired") rather than gone: either way it is not readable.
    assert r["gone"]["type"] in ("KeyringKeyNotFoundError", "KeyringKeyExpiredError")
    r = in_session(
        """
        from keycell import RSAPrivateKey
        s = keyring.store(RSAPrivateKey.from_file(sys.argv[1]), "kc:rsa")
        done({"pipe": keyctl("pipe", str(s)).stdout.hex()})
        """,
        str(tmp_path / "k.pem"),
    )
    assert r["pipe"] == der.hex()
    key.destroy()
