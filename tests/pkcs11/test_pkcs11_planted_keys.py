"""A key object keycell did not make must not become a key keycell uses (issue 21, 8).

A process without the PIN can open a public read-write session and create a public,
non-sensitive, extractable generic secret labelled like a store master, with a value it
knows; a logged-in process can import (``C_CreateObject``) a secret whose value it knows.
Before, ``wrapping_key(label, create=True)`` adopted the first and a store made with it
opened with the attacker's copy of the value. Now secrets are searched with
``CKA_PRIVATE=true``, a key must be sensitive and not extractable, and a store master also
always sensitive, never extractable and generated on the token. The objects are planted
with python-pkcs11 (an independent PKCS#11 client) in a child process."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from keycell import KeyStore, pkcs11
from keycell.exceptions import Pkcs11Error, Pkcs11ObjectNotFoundError
from pkcs11_support import Hsm

pytest.importorskip("pkcs11", reason="python-pkcs11 plants the objects (requirements-test)")

PLANTED_VALUE = bytes(range(0x41, 0x41 + 32))  # what the attacker knows

PLANT = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    module, token, pin, label, private, sensitive, extractable = sys.argv[1:8]
    lib = pkcs11.lib(module)
    tok = lib.get_token(token_label=token)
    with tok.open(rw=True, user_pin=pin or None) as s:
        s.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: private == "1",
            Attribute.SENSITIVE: sensitive == "1",
            Attribute.EXTRACTABLE: extractable == "1",
            Attribute.SIGN: True,
            Attribute.VERIFY: True,
            Attribute.LABEL: label,
            Attribute.VALUE: bytes(range(0x41, 0x41 + 32)),
        })
    """
)


def plant(
    hsm: Hsm, label: str, *, pin: bool, private: bool, sensitive: bool, extractable: bool
) -> None:
    flags = ["1" if f else "0" for f in (private, sensitive, extractable)]
    subprocess.run(
        [sys.executable, "-c", PLANT, hsm.module, hsm.label, hsm.pin if pin else "", label,
         *flags],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def known_hmac(data: bytes) -> bytes:
    return hmac.new(PLANTED_VALUE, data, hashlib.sha256).digest()


def open_token(hsm: Hsm) -> pkcs11.Token:
    return pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf())


def test_a_public_object_planted_without_the_pin_is_never_adopted(
    hsm: Hsm, tmp_path: Path
) -> None:
    label = "kc-planted-master"
    plant(hsm, label, pin=False, private=False, sensitive=False, extractable=True)
    with open_token(hsm) as t:
        # Not visible as a key at all ...
        with pytest.raises(Pkcs11ObjectNotFoundError):
            t.secret_key(label)
        with pytest.raises(Pkcs11ObjectNotFoundError):
            t.wrapping_key(label)
        # ... so create=True makes a new one in the token rather than adopting it.
        master = t.wrapping_key(label, create=True)
        try:
            assert master.hmac(b"probe") != known_hmac(b"probe")
            again = t.wrapping_key(label)
            assert again.hmac(b"probe") == master.hmac(b"probe")
            store = tmp_path / "s.kcs"
            KeyStore.create(store, master=master).close()
            with KeyStore.open(store, master=t.wrapping_key(label)) as ks:
                assert ks.names() == []
        finally:
            master.delete_from_token()


def test_an_imported_secret_is_not_a_store_master(hsm: Hsm) -> None:
    label = "kc-imported-master"
    plant(hsm, label, pin=True, private=True, sensitive=True, extractable=False)
    with open_token(hsm) as t:
        for create in (False, True):
            with pytest.raises(Pkcs11Error, match="not generated on the token") as info:
                t.wrapping_key(label, create=create)
            assert not isinstance(info.value, Pkcs11ObjectNotFoundError)
            assert "not always sensitive" in str(info.value)
        # As an HMAC key (private, sensitive, not extractable) it may be used.
        key = t.secret_key(label)
        try:
            assert key.hmac(b"probe") == known_hmac(b"probe")
        finally:
            key.delete_from_token()


def test_an_extractable_or_non_sensitive_secret_is_refused(hsm: Hsm) -> None:
    label = "kc-readable-secret"
    plant(hsm, label, pin=True, private=True, sensitive=False, extractable=True)
    with open_token(hsm) as t:
        with pytest.raises(Pkcs11Error, match="not safe to use: not sensitive, extractable"):
            t.secret_key(label)
        with pytest.raises(Pkcs11Error, match="not sensitive, extractable"):
            t.wrapping_key(label, create=True)
        with pytest.raises(Pkcs11Error, match="not sensitive"):
            pkcs11.open_uri(
                f"pkcs11:token={hsm.label};object={label};type=secret-key"
                f"?pin-source=file:{hsm.pin_file}",
                module=hsm.module,
            )
    assert label in {o["label"] for o in open_token(hsm).objects()}  # still there, unused


SWAP_PUBLIC = textwrap.dedent(
    """
    import sys
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    module, token, label, key_id, point, delete = sys.argv[1:7]
    lib = pkcs11.lib(module)
    tok = lib.get_token(token_label=token)
    with tok.open(rw=True) as s:  # no PIN: public objects only
        if delete == "1":
            for o in s.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                    Attribute.ID: bytes.fromhex(key_id)}):
                o.destroy()
        s.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.LABEL: label,
            Attribute.ID: bytes.fromhex(key_id),
            Attribute.EC_PARAMS: bytes.fromhex("06032b6570"),
            Attribute.EC_POINT: b"\\x04\\x20" + bytes.fromhex(point),
        })
    """
)


@pytest.mark.parametrize("delete_genuine", [True, False])
def test_a_planted_public_key_object_is_never_reported(hsm: Hsm, delete_genuine: bool) -> None:
    """Found by review: public objects can be deleted and created without the PIN. A
    planted public object with the key's CKA_ID made keycell (and the agent) report the
    attacker's public key for the token's private key; a second one made the key unusable.
    Now the public key must verify a signature the token makes with the private key."""
    from keycell import Ed25519PrivateKey

    attacker = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    label = f"kc-swap-{int(delete_genuine)}"
    with open_token(hsm) as t:
        key = t.generate_ed25519(label=label)
        genuine = key.public_key().public_bytes_raw()
        key_id = key.id
    subprocess.run(
        [sys.executable, "-c", SWAP_PUBLIC, hsm.module, hsm.label, label, key_id.hex(),
         attacker.hex(), "1" if delete_genuine else "0"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with open_token(hsm) as t:
        try:
            if delete_genuine:
                with pytest.raises(Pkcs11Error, match="belongs to the Ed25519 private key"):
                    t.ed25519_private_key(label=label)
            else:
                k = t.ed25519_private_key(label=label)
                assert k.public_key().public_bytes_raw() == genuine != attacker
                k.public_key().verify(k.sign(b"m"), b"m")
        finally:
            for kind in ("privkey", "pubkey", "pubkey"):
                hsm.tool("--delete-object", "--type", kind, "--label", label, check=False)
