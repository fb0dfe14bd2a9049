"""Invariant 9: a handle that stands for a secret never turns into text. ``str()``,
``format()`` with every spec (the empty one included, so f-strings and ``"%s"``) raise
``TypeError`` naming the class, never giving the label a framework would sign with;
``bytes()``, ``int()``, ``os.fspath()``, iteration and the buffer protocol keep refusing;
``repr()``, ``bool()`` and ``len()`` stay; public keys keep their ``str``. The frameworks
that called ``str()`` on such a handle are tested in tests/integrations."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from keycell import (
    AESGCM,
    AESGCMSIV,
    HMAC,
    ChaCha20Poly1305,
    Ed25519PrivateKey,
    RSAPrivateKey,
    SecretKey,
    X25519PrivateKey,
    XChaCha20Poly1305,
)
from keycell._native import Passphrase
from keycell.agent import AgentEd25519Key, AgentSecretKey
from keycell.otp import HOTP, TOTP, TotpVerifier
from pkcs11_support import Hsm

TEXT_CONVERSIONS: dict[str, Callable[[Any], object]] = {
    "str": str,
    "format-empty": lambda h: format(h),
    "format-s": lambda h: format(h, "s"),
    "format-x": lambda h: format(h, "x"),
    "format-width": lambda h: format(h, ">40"),
    "f-string": lambda h: f"{h}",
    "f-string-spec": lambda h: f"{h:10}",
    "percent-s": lambda h: "%s" % (h,),  # noqa: UP031
    "str.format": lambda h: "{}".format(h),  # noqa: UP032
    "str.join": lambda h: "".join([h]),
}

OTHER_CONVERSIONS: dict[str, Callable[[Any], object]] = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "int": int,
    "float": float,
    "complex": complex,
    "index": lambda h: [0][h],
    "fspath": os.fspath,
    "iter": iter,
    "list": list,
    "percent-b": lambda h: b"%b" % (h,),
}


def secret_key() -> SecretKey:
    return SecretKey.from_buffer(bytearray(range(65, 65 + 32)))


def passphrase(tmp: Path) -> Passphrase:
    path = tmp / "pass"
    path.write_bytes(b"correct horse battery staple\n")
    path.chmod(0o600)
    return Passphrase.from_file(path)


LOCAL_HANDLES: dict[str, Callable[[Path], Any]] = {
    "SecretKey": lambda _: secret_key(),
    "Ed25519PrivateKey": lambda _: Ed25519PrivateKey.generate(),
    "X25519PrivateKey": lambda _: X25519PrivateKey.generate(),
    "RSAPrivateKey": lambda _: RSAPrivateKey.generate(2048),
    "HOTP": lambda _: HOTP(secret_key()),
    "TOTP": lambda _: TOTP(secret_key()),
    "TotpVerifier": lambda _: TotpVerifier(TOTP(secret_key())),
    "Passphrase": passphrase,
    "HMAC": lambda _: HMAC(secret_key()),
    "AESGCM": lambda _: AESGCM(secret_key()),
    "ChaCha20Poly1305": lambda _: ChaCha20Poly1305(secret_key()),
    "XChaCha20Poly1305": lambda _: XChaCha20Poly1305(secret_key()),
    "AESGCMSIV": lambda _: AESGCMSIV(secret_key()),
    # The agent's handles need a running agent for their operations, not for the refusal,
    # which is a property of the class: built without a connection.
    "AgentEd25519Key": lambda _: object.__new__(AgentEd25519Key),
    "AgentSecretKey": lambda _: object.__new__(AgentSecretKey),
}


@pytest.fixture(params=sorted(LOCAL_HANDLES))
def handle(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    name = request.param
    return name, LOCAL_HANDLES[name](tmp_path)


def assert_refuses_text(name: str, handle: Any, *, other_conversions: bool = True) -> None:
    for how, convert in TEXT_CONVERSIONS.items():
        with pytest.raises(TypeError) as info:
            convert(handle)
        if how != "str.join":  # join's own message: "expected str instance"
            message = str(info.value)
            assert message.startswith(f"{name} cannot be converted to text"), (how, message)
            assert "repr()" in message, how
            assert "<" not in message, (how, message)  # no label in the message
    for how, convert in OTHER_CONVERSIONS.items() if other_conversions else ():
        with pytest.raises(TypeError):
            convert(handle)
        del how


def test_every_secret_handle_refuses_text(handle: tuple[str, Any]) -> None:
    name, h = handle
    assert_refuses_text(name, h)


def test_repr_bool_and_len_stay() -> None:
    key = secret_key()
    assert repr(key) == "<SecretKey 32 bytes>"
    assert f"{key!r}" == "%r" % (key,) == "<SecretKey 32 bytes>"  # noqa: UP031
    assert bool(key)
    assert len(key) == 32
    key.destroy()
    assert repr(key) == "<SecretKey destroyed>"
    assert_refuses_text("SecretKey", key)  # destroyed: still no text


def test_public_keys_keep_their_str() -> None:
    pub = Ed25519PrivateKey.generate().public_key()
    assert str(pub) == repr(pub)
    assert f"{pub}" == str(pub)
    xpub = X25519PrivateKey.generate().public_key()
    assert f"{xpub}" == str(xpub) == repr(xpub)


def test_views_of_a_key_refuse_text() -> None:
    """An ``Exposure`` (``key.expose()`` without ``with``) or the view's exporter given as a
    framework's secret would have signed with "<... object at 0x...>" (found by review)."""
    key = secret_key()
    exposure = key.expose()
    assert_refuses_text("Exposure", exposure)
    with exposure as view:
        # The view's exporter is the sanctioned way to the bytes (inside the block): only
        # its text form is refused.
        assert_refuses_text("_KeyView", view.obj, other_conversions=False)
    key.destroy()


def test_token_handles_refuse_text(hsm: Hsm) -> None:
    from keycell import pkcs11

    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
        ed = t.generate_ed25519(label="kc-text-refusal")
        sk = t.generate_secret("kc-text-refusal-hmac")
        try:
            assert_refuses_text("Pkcs11Ed25519PrivateKey", ed)
            assert_refuses_text("Pkcs11SecretKey", sk)
            assert repr(ed).startswith("<")
            assert repr(sk).startswith("<")
        finally:
            ed.delete_from_token()
            sk.delete_from_token()
