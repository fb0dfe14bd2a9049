"""keycell.Ed25519Signer and keycell.HmacKey: local, token and agent keys are all usable
through one protocol (keycell/key_protocols.py), and keys that cannot do the job are not
taken for one."""

from __future__ import annotations

import hmac as std_hmac
from pathlib import Path

import keycell
import pytest
from agent_support import Agent, make_store
from keycell import ECSigner, Ed25519Signer, HmacKey, InvalidSignature, RSASigner, pkcs11
from pkcs11_support import Hsm


def assert_roles(signer: object, mac: object) -> None:
    """``signer`` is an Ed25519Signer only, ``mac`` an HmacKey only."""
    assert isinstance(signer, Ed25519Signer)
    assert not isinstance(signer, HmacKey)
    assert isinstance(mac, HmacKey)
    assert not isinstance(mac, Ed25519Signer)


def sign_and_check(signer: Ed25519Signer) -> None:
    """What code written against the protocol does: sign, then verify with the public key."""
    sig = signer.sign(b"release 1.2.3")
    signer.public_key().verify(sig, b"release 1.2.3")
    with pytest.raises(InvalidSignature):
        signer.public_key().verify(sig, b"release 1.2.4")


def mac_and_check(key: HmacKey) -> bytes:
    tag = key.hmac(b"body", "sha256")
    key.verify_hmac(b"body", tag)
    with pytest.raises(InvalidSignature):
        key.verify_hmac(b"other body", tag)
    return tag


def test_local_keys() -> None:
    ed = keycell.Ed25519PrivateKey.generate()
    secret = keycell.SecretKey.generate(32)
    x = keycell.X25519PrivateKey.generate()
    assert_roles(ed, secret)
    for other in (x, ed.public_key(), x.public_key(), b"key bytes", bytearray(32)):
        assert not isinstance(other, (Ed25519Signer, HmacKey)), other
    sign_and_check(ed)
    with secret.expose() as view:
        raw = view.tobytes()
    assert mac_and_check(secret) == std_hmac.digest(raw, b"body", "sha256")
    for k in (ed, secret, x):
        k.destroy()


def test_token_keys(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        ed = token.generate_ed25519(label="protocol-ed")
        secret = token.generate_secret("protocol-mac")
        try:
            assert_roles(ed, secret)
            sign_and_check(ed)
            mac_and_check(secret)
        finally:
            ed.delete_from_token()
            secret.delete_from_token()


def test_agent_keys(tmp_path: Path) -> None:
    st = make_store(tmp_path, ed25519=("deploy",), secrets=("webhook",))
    with Agent(st) as agent, agent.client() as client:
        ed = client.ed25519("deploy")
        secret = client.secret("webhook")
        assert_roles(ed, secret)
        sign_and_check(ed)
        mac_and_check(secret)
        assert agent.stop() == 0


def ec_sign_and_check(signer: ECSigner) -> None:
    """Code written against ECSigner: both encodings verify with the public key."""
    for encoding in ("der", "raw"):
        sig = signer.sign(b"release 1.2.3", encoding=encoding)
        signer.public_key().verify(sig, b"release 1.2.3", encoding=encoding)
        with pytest.raises(InvalidSignature):
            signer.public_key().verify(sig, b"release 1.2.4", encoding=encoding)


def test_token_ec_keys(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = token.generate_ec(label="protocol-ec", curve="P-384")
        try:
            assert isinstance(key, ECSigner)
            assert not isinstance(key, HmacKey)
            ec_sign_and_check(key)
        finally:
            key.delete_from_token()


def test_local_ec_keys() -> None:
    for curve in ("P-256", "P-384"):
        k = keycell.ECPrivateKey.generate(curve)
        assert isinstance(k, ECSigner)
        assert not isinstance(k, HmacKey)
        assert k.curve == curve
        ec_sign_and_check(k)
        k.destroy()
    ed = keycell.Ed25519PrivateKey.generate()
    others = (ed, keycell.X25519PrivateKey.generate(), keycell.SecretKey.generate(32))
    for other in (*others, keycell.ECPrivateKey.generate().public_key(), b"key"):
        assert not isinstance(other, ECSigner), other


def test_local_rsa_keys() -> None:
    k = keycell.RSAPrivateKey.generate(2048)
    assert isinstance(k, RSASigner)
    assert not isinstance(k, (ECSigner, HmacKey))
    signer: RSASigner = k
    for padding, hash in (("pss", "sha256"), ("pkcs1v15", "sha512")):
        sig = signer.sign(b"release", padding=padding, hash=hash)  # type: ignore[arg-type]
        signer.public_key().verify(sig, b"release", padding=padding, hash=hash)  # type: ignore[arg-type]
        with pytest.raises(InvalidSignature):
            signer.public_key().verify(sig, b"releasE", padding=padding, hash=hash)  # type: ignore[arg-type]
    for other in (keycell.Ed25519PrivateKey.generate(), keycell.SecretKey.generate(32)):
        assert not isinstance(other, RSASigner), other
    k.destroy()


def test_the_module_example_runs() -> None:
    import doctest

    import keycell.key_protocols

    result = doctest.testmod(keycell.key_protocols)
    assert result.attempted > 0
    assert result.failed == 0, result
