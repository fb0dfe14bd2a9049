"""The verification rules: the window, replay refusal (``last_counter``), malformed codes,
argument limits, ``TotpVerifier`` persistence and drift, and the handle's life cycle and
export rules."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest
from keycell import (
    InvalidCode,
    InvalidSignature,
    KeyDestroyedError,
    KeyNotExportableError,
    SecretKey,
)
from keycell.otp import HOTP, TOTP, TotpVerifier

SECRET = b"12345678901234567890"
T = 1_111_111_111  # step 37037037


def totp(**kw: object) -> TOTP:
    return TOTP(SecretKey.from_buffer(bytearray(SECRET)), **kw)  # type: ignore[arg-type]


def test_invalid_code_is_an_invalid_signature() -> None:
    assert issubclass(InvalidCode, InvalidSignature)


def test_window_past_and_future() -> None:
    t = totp()
    step = T // 30
    for delta in (-1, 0, 1):
        assert t.verify(t.at(T + 30 * delta), at=T) == step + delta
    for delta in (-3, -2, 2, 3):
        with pytest.raises(InvalidCode):
            t.verify(t.at(T + 30 * delta), at=T)
    assert t.verify(t.at(T - 60), at=T, past=2) == step - 2
    assert t.verify(t.at(T + 90), at=T, future=3) == step + 3
    with pytest.raises(InvalidCode):
        t.verify(t.at(T - 30), at=T, past=0, future=0)


def test_replay_is_refused() -> None:
    t = totp()
    code = t.at(T)
    step = t.verify(code, at=T)
    with pytest.raises(InvalidCode, match="wrong, expired or already used"):
        t.verify(code, at=T, last_counter=step)
    # An older code than the last accepted one is refused too, a newer one accepted.
    with pytest.raises(InvalidCode):
        t.verify(t.at(T - 30), at=T, last_counter=step)
    assert t.verify(t.at(T + 30), at=T, last_counter=step) == step + 1


FULLWIDTH_DIGITS = "\uff11\uff12\uff13\uff14\uff15\uff16"


@pytest.mark.parametrize(
    "bad", ["", "12345", "1234567", "12345a", " 123456", FULLWIDTH_DIGITS, "-12345"]
)
def test_malformed_codes_are_value_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="exactly 6 ASCII digits"):
        totp().verify(bad, at=T)
    with pytest.raises(ValueError):
        HOTP(SecretKey.from_buffer(bytearray(SECRET))).verify(bad, 0)


def test_code_must_be_str() -> None:
    with pytest.raises(TypeError):
        totp().verify(123456, at=T)  # type: ignore[arg-type]


def test_wrong_code() -> None:
    t = totp()
    code = t.at(T)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    with pytest.raises(InvalidCode):
        t.verify(wrong, at=T, past=0, future=0)


def test_hotp_look_ahead_and_64_bit_counters() -> None:
    h = HOTP(SecretKey.from_buffer(bytearray(SECRET)))
    assert h.verify(h.at(7), 5, look_ahead=2) == 7
    with pytest.raises(InvalidCode):
        h.verify(h.at(8), 5, look_ahead=2)
    top = 2**64 - 1
    assert h.verify(h.at(top), top - 1, look_ahead=5) == top
    for bad in (-1, 2**64):
        with pytest.raises(ValueError):
            h.at(bad)


HUGE = (2**64, 2**200, -(2**200))  # past 64 bits, and past what fits a C integer at all


@pytest.mark.parametrize("bad", HUGE)
def test_huge_integers_are_value_errors_not_overflow(bad: int) -> None:
    """Every out-of-range counter or window is the same ValueError, however far out."""
    h = HOTP(SecretKey.from_buffer(bytearray(SECRET)))
    t = totp()
    calls = [
        lambda: h.at(bad),
        lambda: h.verify("123456", bad),
        lambda: h.verify("123456", 0, look_ahead=bad),
        lambda: h.provisioning_uri("a", initial_count=bad),
        lambda: t.verify("123456", at=T, past=bad),
        lambda: t.verify("123456", at=T, future=bad),
        lambda: t.verify("123456", at=T, last_counter=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert not isinstance(info.value, OverflowError)
    with pytest.raises(TypeError):
        h.at("1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [{"digits": 5}, {"digits": 11}, {"period": 0}, {"algorithm": "sha384"}, {"algorithm": "md5"}],
)
def test_bad_parameters(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        totp(**kw)


def test_window_limits_and_timestamps() -> None:
    t = totp()
    code = t.at(T)
    for kw in ({"past": -1}, {"future": 1001}, {"last_counter": -1}):
        with pytest.raises(ValueError):
            t.verify(code, at=T, **kw)  # type: ignore[arg-type]
    assert t.at(T + 0.9) == code  # floats round down
    with pytest.raises(ValueError, match="before t0"):
        totp(t0=100).at(99)
    with pytest.raises(ValueError):
        t.at(float("nan"))
    with pytest.raises(TypeError):
        t.at("now")  # type: ignore[arg-type]
    assert totp(t0=100, period=10).counter(125) == 2
    assert len(t.now()) == 6


def test_digits_six_to_ten() -> None:
    for digits in range(6, 11):
        t = totp(digits=digits)
        code = t.at(T)
        assert len(code) == digits
        assert code.isdigit()
        assert t.verify(code, at=T) == T // 30


def test_short_secrets_need_opt_in() -> None:
    short = SecretKey.from_buffer(bytearray(10))
    with pytest.raises(ValueError, match="shorter than 128 bits"):
        TOTP(short)
    with pytest.raises(ValueError, match="shorter than 128 bits"):
        HOTP(short)
    with pytest.raises(ValueError, match="shorter than 128 bits"):
        TOTP.from_base32(bytearray(base64.b32encode(bytes(10))))
    assert len(TOTP(short, allow_short_secret=True).at(T)) == 6


def test_from_base32_formats_and_wipe() -> None:
    ref = totp().at(T)
    text = base64.b32encode(SECRET).decode()
    spaced = " ".join(text[i : i + 4] for i in range(0, len(text), 4)).lower()
    for variant in (text, text.lower(), spaced, text + "====", "\n" + spaced + "\n"):
        buf = bytearray(variant.encode())
        assert TOTP.from_base32(buf).at(T) == ref
        assert buf == bytearray(len(buf)), "source not wiped"
    kept = bytearray(text.encode())
    TOTP.from_base32(kept, wipe=False)
    assert kept == text.encode()
    assert TOTP.from_base32(text.encode()).at(T) == ref  # read-only: used, not wiped


@pytest.mark.parametrize(
    "bad", ["GEZDGNBVGY3TQOJ1", "GEZD=GNBVGY3TQOJQ", "GEZDGNBVGY3TQOJQA", "GEZ_"]
)
def test_invalid_base32_is_refused_and_wiped(bad: str) -> None:
    buf = bytearray(bad.encode())
    with pytest.raises(ValueError, match="not valid base32"):
        TOTP.from_base32(buf, allow_short_secret=True)
    assert buf == bytearray(len(buf))


def test_str_source_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot be wiped"):
        TOTP.from_base32(base64.b32encode(SECRET).decode())  # type: ignore[arg-type]


def test_provisioning_uri_needs_exportable_key() -> None:
    key = SecretKey.from_buffer(bytearray(SECRET), exportable=False)
    with pytest.raises(KeyNotExportableError):
        TOTP(key).provisioning_uri("alice")
    sealed = totp()
    sealed.seal_export()
    with pytest.raises(KeyNotExportableError):
        sealed.provisioning_uri("alice")
    b32 = bytearray(base64.b32encode(SECRET))
    with pytest.raises(KeyNotExportableError):
        TOTP.from_base32(b32, exportable=False).provisioning_uri("alice")
    uri = totp().provisioning_uri("alice", issuer="ACME")
    assert uri == "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME"
    h = HOTP(SecretKey.from_buffer(bytearray(SECRET)), digits=8, algorithm="sha256")
    assert h.provisioning_uri("bob", initial_count=3) == (
        "otpauth://hotp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA256&digits=8"
        "&counter=3"
    )


def test_life_cycle() -> None:
    key = SecretKey.from_buffer(bytearray(SECRET))
    t = TOTP(key)
    code = t.at(T)
    key.destroy()  # destroying the key revokes the OTP objects made from it
    assert t.destroyed
    with pytest.raises(KeyDestroyedError):
        t.at(T)
    key = SecretKey.from_buffer(bytearray(SECRET))
    t = TOTP(key)
    assert t.at(T) == code
    t.destroy()  # destroying the OTP object leaves the key
    assert not key.destroyed
    t = TOTP(key)
    assert "sha1, 6 digits, 30 s" in repr(t)
    with pytest.raises(TypeError):
        pickle.dumps(t)
    with pytest.raises(TypeError):
        copy.copy(t)
    with t:
        pass
    assert t.destroyed
    with pytest.raises(KeyDestroyedError):
        t.at(T)
    with pytest.raises(KeyDestroyedError):
        t.verify(code, at=T)
    key2 = SecretKey.from_buffer(bytearray(SECRET))
    key2.destroy()
    with pytest.raises(KeyDestroyedError):
        TOTP(key2)
    with pytest.raises(TypeError):
        TOTP(SECRET)  # type: ignore[arg-type]


def test_verifier_refuses_replay_and_persists() -> None:
    t = totp()
    v = TotpVerifier(t)
    assert v.last_counter is None
    code = t.at(T)
    assert v.verify(code, at=T) == T // 30
    with pytest.raises(InvalidCode):
        v.verify(code, at=T)
    assert v.last_counter == T // 30
    restored = TotpVerifier(t, last_counter=v.last_counter)
    with pytest.raises(InvalidCode):
        restored.verify(code, at=T + 10)
    assert restored.verify(t.at(T + 30), at=T + 30) == T // 30 + 1
    # A failed check leaves the state as it was.
    with pytest.raises(InvalidCode):
        restored.verify("000000" if t.at(T + 60) != "000000" else "111111", at=T + 60)
    assert restored.last_counter == T // 30 + 1


def test_verifier_tracks_drift() -> None:
    t = totp()
    v = TotpVerifier(t, track_drift=True)
    # The token runs two steps ahead of our clock; allowed once by a wide first window.
    wide = TotpVerifier(t, track_drift=True, future=2)
    assert wide.verify(t.at(T + 60), at=T) == T // 30 + 2
    assert wide.drift == 2
    restored = TotpVerifier(t, track_drift=True, drift=wide.drift, last_counter=wide.last_counter)
    # Later, a token three steps ahead is within the +-1 window around the drift.
    assert restored.verify(t.at(T + 300 + 90), at=T + 300) == (T + 300) // 30 + 3
    assert restored.drift == 3
    assert v.drift == 0
    with pytest.raises(TypeError):
        TotpVerifier("not a totp")  # type: ignore[arg-type]


def test_from_base32_wipes_a_refused_writable_buffer() -> None:
    """Found by review (``read_secret_in_place``, shared with ``from_base64``): a
    non-contiguous writable view was refused and left holding the secret."""
    secret = base64.b32encode(SECRET)
    doubled = bytearray(b"".join(bytes([c, c]) for c in secret))
    with pytest.raises(ValueError, match="contiguous"):
        TOTP.from_base32(memoryview(doubled)[::2])
    assert doubled[::2] == bytearray(len(secret))
    assert doubled[1::2] == bytearray(secret)


def test_sealing_the_key_seals_the_otp_objects_made_from_it() -> None:
    """Found by review: ``key.seal_export()`` after ``TOTP(key)`` left
    ``totp.provisioning_uri()`` giving the key's secret in base32."""
    key = SecretKey.from_buffer(bytearray(SECRET))
    totp, hotp = TOTP(key), HOTP(key)
    assert totp.exportable
    assert hotp.exportable
    key.seal_export()
    assert not totp.exportable
    assert not hotp.exportable
    with pytest.raises(KeyNotExportableError):
        totp.provisioning_uri("alice")
    with pytest.raises(KeyNotExportableError):
        hotp.provisioning_uri("alice")
    assert totp.at(T) == TOTP(key).at(T)  # still usable
