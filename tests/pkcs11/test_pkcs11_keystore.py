"""A key store whose master lives in the token: round trip, and typed failures without
the token, with another token's key, or with a passphrase."""

from __future__ import annotations

from pathlib import Path

import keycell
import pytest
from keycell import KeyStore, SecretKey, pkcs11
from keycell.exceptions import (
    Pkcs11ClosedError,
    Pkcs11ObjectNotFoundError,
    StoreAuthenticationError,
)
from pkcs11_support import Hsm


def test_a_token_wrapped_store_round_trips(hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "token.kcs"
    secret = SecretKey.generate(32)
    signer = keycell.Ed25519PrivateKey.generate()
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        with pytest.raises(Pkcs11ObjectNotFoundError):
            token.wrapping_key("kc-store")
        master = token.wrapping_key("kc-store", create=True)
        assert token.wrapping_key("kc-store", create=True).id == master.id  # found, not made again
        with KeyStore.create(path, master=master) as store:
            store.put("api", secret)
            store.put("signer", signer)
            assert store.kdf_params is None
    # A new process-level login, a new handle of the same token key.
    with pkcs11.Token.open(
        module=hsm.module, token_label=hsm.label, pin_file=hsm.pin_file
    ) as token:
        with KeyStore.open(path, master=token.wrapping_key("kc-store")) as store:
            assert store.get("api") == secret
            assert store.get("signer").public_key() == signer.public_key()
        closed_master = token.wrapping_key("kc-store")
    # Without the token: its handle is closed.
    with pytest.raises(Pkcs11ClosedError):
        KeyStore.open(path, master=closed_master)
    # With a passphrase or a plain key: the header says a token key is needed.
    with pytest.raises(StoreAuthenticationError, match="PKCS#11 token key"):
        KeyStore.open(path, master=bytearray(b"a passphrase"))
    with pytest.raises(StoreAuthenticationError, match="wrapping_key"):
        KeyStore.open(path, master=SecretKey.generate(32))
    # Another token's key of the same label: the check value does not match.
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.other, pin=hsm.pin_buf()) as other:
        with pytest.raises(StoreAuthenticationError, match="wrong"):
            KeyStore.open(path, master=other.wrapping_key("kc-store", create=True))


def test_rotate_between_a_passphrase_and_the_token(hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "rotate.kcs"
    fast = {"memory_kib": 1024, "iterations": 1, "lanes": 1}
    key = SecretKey.generate(24)
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        master = token.wrapping_key("kc-rotate", create=True)
        with KeyStore.create(path, master=bytearray(b"old passphrase"), kdf_params=fast) as s:
            s.put("k", key)
            s.rotate_master(master)
        with KeyStore.open(path, master=master) as s:
            assert s.get("k") == key
            s.rotate_master(bytearray(b"new passphrase"), kdf_params=fast)
        with KeyStore.open(path, master=bytearray(b"new passphrase")) as s:
            assert s.get("k") == key
