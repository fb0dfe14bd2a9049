"""Missing keys, wrong payloads and bad arguments are typed errors that name the cause and
never carry payload bytes (each body in its own session keyring)."""

from __future__ import annotations

import errno

import keycell
import pytest
from keyring_session import in_session, requires_keyring

pytestmark = requires_keyring


def test_missing_keys_are_not_found_errors() -> None:
    r = in_session(
        """
        done({
            "name": error(SecretKey.from_keyring, "kc:missing"),
            "serial": error(SecretKey.from_keyring, 0x7ffffff0),
            "ed": error(Ed25519PrivateKey.from_keyring, "kc:missing"),
            "describe": error(keyring.describe, "kc:missing"),
            "invalidate": error(keyring.invalidate, "kc:missing"),
            "ring": error(keyring.store, SecretKey.generate(8), "kc:a", keyring=0x7ffffff0),
        })
        """
    )
    for what, e in r.items():
        assert e["type"] == "KeyringKeyNotFoundError", what
        assert e["keycell"], what
        assert e["errno"] == errno.ENOKEY, what


def test_wrong_payloads_are_value_errors_without_the_payload() -> None:
    payload = b"S3CRET-payload-XYZ"
    r = in_session(
        """
        keyctl("padd", "user", "kc:odd", "@s", input=sys.argv[1].encode())
        done({
            "length": error(SecretKey.from_keyring, "kc:odd", length=32),
            "ed": error(Ed25519PrivateKey.from_keyring, "kc:odd"),
            "x": error(X25519PrivateKey.from_keyring, "kc:odd", consume=True),
            "kept": keyctl("pipe", "%user:kc:odd").returncode,
        })
        """,
        payload.decode(),
    )
    # (The kernel refuses an empty `user` payload, EINVAL, so none can be read.)
    for what in ("length", "ed", "x"):
        e = r[what]
        assert e["type"] == "ValueError", what
        assert "S3CRET" not in e["message"], what
        assert str(len(payload)) not in e["message"], what
    assert r["kept"] == 0  # a refused consume leaves the key in place


def test_bad_arguments() -> None:
    r = in_session(
        """
        key = SecretKey.generate(32)
        sealed = SecretKey.generate(32, exportable=False)
        done({
            "ring_name": error(keyring.store, key, "kc:a", keyring="bogus"),
            "ring_type": error(keyring.store, key, "kc:a", keyring=1.5),
            "ring_bool": error(SecretKey.from_keyring, "kc:a", keyring=True),
            "empty": error(keyring.store, key, ""),
            "nul": error(keyring.store, key, "a\\0b"),
            "semicolon": error(keyring.store, key, "prod;x"),
            "long": error(keyring.store, key, "x" * 257),
            "timeout0": error(keyring.store, key, "kc:a", timeout=0),
            "timeout_neg": error(keyring.store, key, "kc:a", timeout=-1),
            "not_a_key": error(keyring.store, b"raw bytes", "kc:a"),
            "name_type": error(SecretKey.from_keyring, b"kc:a"),
            "serial_neg": error(SecretKey.from_keyring, -3),
            "sealed": error(keyring.store, sealed, "kc:sealed"),
            "destroyed": error(keyring.store, (key.destroy(), key)[1], "kc:gone"),
            "left": keycell.keyring.list_keys(),
        })
        """
    )
    expected = {
        "ring_name": "ValueError",
        "ring_type": "TypeError",
        "ring_bool": "TypeError",
        "empty": "ValueError",
        "nul": "ValueError",
        "semicolon": "ValueError",
        "long": "ValueError",
        "timeout0": "ValueError",
        "timeout_neg": "OverflowError",
        "not_a_key": "TypeError",
        "name_type": "TypeError",
        "serial_neg": "ValueError",
        "sealed": "KeyNotExportableError",
        "destroyed": "KeyDestroyedError",
    }
    assert {k: r[k]["type"] for k in expected} == expected
    assert r["left"] == []  # nothing was stored by any refused call
    assert "';'" in r["semicolon"]["message"]


def test_a_key_made_elsewhere_with_a_semicolon_is_still_read() -> None:
    """keyctl may store `prod;x`; keycell refuses to make such a name (it would list cut
    at the `;`) but still reads the key by its full description."""
    r = in_session(
        """
        keyctl("padd", "user", "prod;x", "@s", input=bytes(range(32)))
        key = SecretKey.from_keyring("prod;x", length=32)
        with key.expose() as view:
            done({"read": bytes(view) == bytes(range(32))})
        """
    )
    assert r["read"] is True


def test_a_description_with_semicolons_lists_whole() -> None:
    """Found by review: keys made elsewhere as ``prod;attacker`` listed and described as
    ``prod``, beside the genuine ``prod`` (the kernel's string was split on every ``;``)."""
    r = in_session(
        """
        keyctl("padd", "user", "prod;attacker", "@s", input=b"x" * 16)
        keyring.store(SecretKey.generate(16), "prod")
        done({"list": sorted(d["description"] for d in keyring.list_keys()),
              "describe": keyring.describe("prod;attacker")["description"]})
        """
    )
    assert r["list"] == ["prod", "prod;attacker"]
    assert r["describe"] == "prod;attacker"


def test_exception_hierarchy() -> None:
    for name in (
        "KeyringKeyNotFoundError",
        "KeyringKeyExpiredError",
        "KeyringPermissionError",
        "KeyringQuotaError",
        "KeyringUnavailableError",
    ):
        cls = getattr(keycell, name)
        assert issubclass(cls, keycell.KeyringError)
        assert issubclass(cls, keycell.KeycellError)
        assert cls.__doc__


def test_quota_exceeded_is_typed() -> None:
    # Root's quota is large; a child running as nobody has the default 200 keys / 20,000
    # bytes, so a few 16 KiB keys exhaust it.
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to become nobody and meet the default quota quickly")
    r = in_session(
        """
        import os
        sys.path.insert(0, sys.argv[1])
        from support import drop_privileges
        pid = os.fork()
        if pid == 0:
            try:
                drop_privileges()
                import ctypes
                ctypes.CDLL(None).syscall(250, 1, None)  # a session keyring of its own
                key = SecretKey.generate(16 * 1024)
                e = None
                for i in range(10):
                    e = error(keyring.store, key, "kc:q%d" % i)
                    if e:
                        break
                os.write(1, ("\\nRESULT " + json.dumps(e) + "\\n").encode())
                os._exit(0)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        """,
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert r is not None
    assert r["type"] == "KeyringQuotaError"
    assert r["errno"] == errno.EDQUOT
    assert "20,000 bytes" in r["message"]


def test_a_keyring_serial_is_not_a_key() -> None:
    # KEYCTL_READ on a keyring returns its links; they must never become a key.
    r = in_session(
        """
        ring = int(keyctl("newring", "kc:ring", "@s").stdout)
        keyctl("padd", "user", "kc:in", str(ring), input=b"k" * 32)
        done({"read": error(SecretKey.from_keyring, ring),
              "ed": error(Ed25519PrivateKey.from_keyring, ring),
              "nested": len(SecretKey.from_keyring("kc:in"))})
        """
    )
    for what in ("read", "ed"):
        assert r[what]["type"] == "KeyringError", what
        assert "not a user key" in r[what]["message"], what
    assert r["nested"] == 32  # a description is searched for in nested keyrings too
