"""Typed errors (wrong PIN, missing module, token, object, unsupported mechanism), PIN
handling (the bytearray is wiped, str/bytes refused, no PIN in any message), close."""

from __future__ import annotations

import keycell
import pytest
from keycell import pkcs11
from keycell.exceptions import (
    KeyFileError,
    Pkcs11ClosedError,
    Pkcs11Error,
    Pkcs11MechanismNotSupportedError,
    Pkcs11ModuleNotFoundError,
    Pkcs11ObjectNotFoundError,
    Pkcs11PinIncorrectError,
    Pkcs11TokenNotFoundError,
)
from pkcs11_support import PIN, Hsm
from support import run_python


def test_the_pin_buffer_is_wiped(hsm: Hsm) -> None:
    pin = hsm.pin_buf()
    token = pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=pin)
    assert pin == bytearray(len(pin))
    assert token.logged_in
    token.close()
    assert token.closed
    assert not token.logged_in


def test_a_wrong_pin_is_typed_and_not_echoed(hsm: Hsm) -> None:
    wrong = bytearray(b"9999-wrong-pin")
    with pytest.raises(Pkcs11PinIncorrectError) as info:
        pkcs11.Token.open(module=hsm.module, token_label=hsm.other, pin=wrong)
    assert wrong == bytearray(len(wrong))  # wiped on failure too
    assert "9999-wrong-pin" not in str(info.value)
    assert hsm.pin not in str(info.value)
    assert isinstance(info.value, keycell.KeycellError)
    assert isinstance(info.value, Pkcs11Error)
    assert info.value.code == 0xA0  # CKR_PIN_INCORRECT


def test_a_wrong_pin_while_logged_in_is_refused_too(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()):
        with pytest.raises(Pkcs11PinIncorrectError) as info:
            pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=bytearray(b"other-pin"))
        assert "other-pin" not in str(info.value)
        # The right PIN joins the login.
        with pkcs11.Token.open(
            module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()
        ) as second:
            assert second.logged_in


@pytest.mark.parametrize("pin", [PIN.encode(), PIN, memoryview(PIN.encode())])
def test_an_unwipeable_pin_is_refused(hsm: Hsm, pin: object) -> None:
    with pytest.raises(TypeError, match="bytearray") as info:
        pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=pin)  # type: ignore[arg-type]
    assert hsm.pin not in str(info.value)


def test_a_pin_file_must_be_private(hsm: Hsm, tmp_path: object) -> None:
    loose = hsm.dir / "loose-pin"
    loose.write_text(hsm.pin)
    loose.chmod(0o644)
    with pytest.raises(KeyFileError) as info:
        pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin_file=loose)
    assert hsm.pin not in str(info.value)
    with pytest.raises(ValueError, match="not both"):
        pkcs11.Token.open(module=hsm.module, pin=hsm.pin_buf(), pin_file=hsm.pin_file)


def test_missing_module_token_and_object(hsm: Hsm, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Pkcs11ModuleNotFoundError):
        pkcs11.Token.open(module="/nonexistent/libpkcs11.so", pin=hsm.pin_buf())
    # keycell's own library is no PKCS#11 module (wherever it is installed: a venv under
    # /tmp would fail the path check first, so the override is set for this one call).
    monkeypatch.setenv("KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE", "1")
    with pytest.raises(Pkcs11ModuleNotFoundError, match="not a PKCS#11 module"):
        pkcs11.Token.open(module=keycell._native.__file__)
    monkeypatch.delenv("KEYCELL_PKCS11_ALLOW_UNSAFE_MODULE")
    with pytest.raises(Pkcs11TokenNotFoundError, match="no-such-token"):
        pkcs11.Token.open(module=hsm.module, token_label="no-such-token", pin=hsm.pin_buf())
    with pytest.raises(Pkcs11TokenNotFoundError):
        pkcs11.Token.open(module=hsm.module, slot=987654321)
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        with pytest.raises(Pkcs11ObjectNotFoundError, match="no-such-key"):
            token.ed25519_private_key(label="no-such-key")
        with pytest.raises(Pkcs11ObjectNotFoundError):
            token.secret_key("no-such-key")
        with pytest.raises(TypeError):
            token.ed25519_private_key()


def test_private_objects_need_the_pin(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
        t.generate_ed25519(label="kc-needs-pin")
    # A separate process: in this one, another test may still hold a login.
    code = (
        "import sys\n"
        "from keycell import pkcs11\n"
        "from keycell.exceptions import Pkcs11ObjectNotFoundError\n"
        f"t = pkcs11.Token.open(module={hsm.module!r}, token_label={hsm.label!r})\n"
        "assert not t.logged_in\n"
        "try:\n"
        "    t.ed25519_private_key(label='kc-needs-pin')\n"
        "except Pkcs11ObjectNotFoundError as e:\n"
        "    assert 'without a PIN' in str(e), e\n"
        "    print('typed')\n"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "typed"


def test_an_unsupported_mechanism_is_typed(hsm: Hsm) -> None:
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        short = token.generate_secret("kc-short", 16)
        # SoftHSM2 offers HMAC-SHA256 only with keys of at least 32 bytes.
        with pytest.raises(Pkcs11MechanismNotSupportedError) as info:
            short.hmac(b"data")
        assert info.value.code is not None
        with pytest.raises(ValueError, match="unsupported hash algorithm"):
            short.hmac(b"data", "md5")


def test_keys_of_a_closed_token_raise(hsm: Hsm) -> None:
    token = pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf())
    key = token.generate_ed25519(label="kc-closed")
    token.close()
    token.close()
    with pytest.raises(Pkcs11ClosedError):
        key.sign(b"x")
    with pytest.raises(keycell.KeyDestroyedError):
        key.sign(b"x")
    assert "closed" in repr(token)
    with pytest.raises(Pkcs11ClosedError):
        with token:
            pass
    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as t:
        t.ed25519_private_key(label="kc-closed").delete_from_token()


def test_token_keys_refuse_pickling_and_copying(hsm: Hsm) -> None:
    import copy
    import pickle

    with pkcs11.Token.open(module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()) as token:
        key = token.generate_secret("kc-pickle", 32)
        for attempt in (
            lambda: pickle.dumps(key),
            lambda: copy.copy(key),
            lambda: copy.deepcopy(key),
            lambda: pickle.dumps(token),
        ):
            with pytest.raises(TypeError):
                attempt()
        key.delete_from_token()


def test_a_token_opens_by_slot_and_messages_name_the_ckr_code(hsm: Hsm) -> None:
    slot = next(t["slot"] for t in pkcs11.list_tokens(hsm.module) if t["label"] == hsm.label)
    assert isinstance(slot, int)
    with pkcs11.Token.open(module=hsm.module, slot=slot, pin=hsm.pin_buf()) as token:
        assert token.info["label"] == hsm.label
        assert token.info["slot"] == slot
    with pytest.raises(ValueError, match="3 tokens match"):  # kc-test, kc-other, kc-agent
        pkcs11.Token.open(module=hsm.module)
    with pytest.raises(
        Pkcs11PinIncorrectError, match=r"C_Login returned CKR_PIN_INCORRECT \(0xa0\)"
    ):
        pkcs11.Token.open(module=hsm.module, token_label=hsm.other, pin=bytearray(b"wrong-pin"))
