"""keycell.compat.itsdangerous against the real itsdangerous, both ways, for every key
derivation and digest: the same secret bytes give byte-identical tokens, and tokens made by
either verify with the other. Time is pinned (a clock for keycell, a ``get_timestamp``
override for itsdangerous), never read from the wall clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import keycell
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keycell import KeyDestroyedError, SecretKey
from keycell.compat import itsdangerous as kc

its = pytest.importorskip("itsdangerous")

SECRET = bytes(range(7, 7 + 40))
OLD_SECRET = b"an older secret that still verifies"
DERIVATIONS = ["concat", "django-concat", "hmac", "none"]
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
T0 = 1_700_000_000


def _key(raw: bytes = SECRET) -> SecretKey:
    return SecretKey.from_buffer(bytearray(raw))


def _their_timestamp_signer(now: int) -> type[Any]:
    class Pinned(its.TimestampSigner):  # type: ignore[misc, name-defined]
        def get_timestamp(self) -> int:
            return now

    return Pinned


def _clock(now: float) -> Callable[[], float]:
    return lambda: now


@pytest.mark.parametrize("derivation", DERIVATIONS)
@pytest.mark.parametrize("digest", list(DIGESTS))
def test_signer_tokens_are_identical_both_ways(derivation: str, digest: str) -> None:
    theirs = its.Signer(SECRET, key_derivation=derivation, digest_method=DIGESTS[digest])
    ours = kc.Signer(_key(), key_derivation=derivation, digest_method=digest)
    for value in (b"", b"hello", "h\u00e9llo", b"x" * 3000):
        token = ours.sign(value)
        assert token == theirs.sign(value)
        assert theirs.unsign(token) == ours.unsign(token)
    # A hashlib constructor names the digest too, as in itsdangerous.
    assert kc.Signer(_key(), key_derivation=derivation, digest_method=DIGESTS[digest]).sign(
        b"v"
    ) == theirs.sign(b"v")


@pytest.mark.parametrize("derivation", DERIVATIONS)
@pytest.mark.parametrize("digest", list(DIGESTS))
def test_timestamp_signer_both_ways(derivation: str, digest: str) -> None:
    pinned = _their_timestamp_signer(T0)
    theirs = pinned(SECRET, key_derivation=derivation, digest_method=DIGESTS[digest])
    ours = kc.TimestampSigner(
        _key(), key_derivation=derivation, digest_method=digest, clock=_clock(T0 + 0.9)
    )
    token = ours.sign(b"payload")
    assert token == theirs.sign(b"payload")
    value, when = ours.unsign(token, max_age=10, return_timestamp=True)
    assert (value, when) == (b"payload", datetime.fromtimestamp(T0, tz=UTC))
    later = pinned(SECRET, key_derivation=derivation, digest_method=DIGESTS[digest])
    assert later.unsign(token, max_age=10) == b"payload"


def test_max_age_is_checked_against_the_clock() -> None:
    now = [float(T0)]
    ours = kc.TimestampSigner(_key(), clock=lambda: now[0])
    token = ours.sign(b"v")
    now[0] = T0 + 10
    assert ours.unsign(token, max_age=10) == b"v"
    now[0] = T0 + 11
    with pytest.raises(kc.SignatureExpired, match="age 11 > 10") as exc:
        ours.unsign(token, max_age=10)
    assert exc.value.payload == b"v"
    assert exc.value.date_signed == datetime.fromtimestamp(T0, tz=UTC)
    now[0] = T0 - 1
    with pytest.raises(kc.SignatureExpired, match="< 0"):
        ours.unsign(token, max_age=10)
    # itsdangerous agrees on the same token at the same instants.
    assert _their_timestamp_signer(T0 + 10)(SECRET).unsign(token, max_age=10) == b"v"
    with pytest.raises(its.SignatureExpired):
        _their_timestamp_signer(T0 + 11)(SECRET).unsign(token, max_age=10)


SERIALIZERS = [
    ("Serializer", False),
    ("URLSafeSerializer", False),
    ("TimedSerializer", True),
    ("URLSafeTimedSerializer", True),
]
OBJECTS: list[Any] = [
    {"user": 42, "roles": ["a", "b"]},
    "text \u00e9",
    [1, 2, 3],
    {"long": "z" * 500},  # compresses (the URL-safe serializers' '.' form)
]


@pytest.mark.parametrize(("name", "timed"), SERIALIZERS)
@pytest.mark.parametrize("derivation", DERIVATIONS)
@pytest.mark.parametrize("digest", list(DIGESTS))
def test_serializers_both_ways(name: str, timed: bool, derivation: str, digest: str) -> None:
    their_kwargs: dict[str, Any] = {"key_derivation": derivation, "digest_method": DIGESTS[digest]}
    our_kwargs: dict[str, Any] = {"key_derivation": derivation, "digest_method": digest}
    their_extra: dict[str, Any] = {}
    if timed:
        their_extra["signer"] = _their_timestamp_signer(T0)
        our_kwargs["clock"] = _clock(T0)
    theirs = getattr(its, name)(SECRET, salt="s1", signer_kwargs=their_kwargs, **their_extra)
    ours = getattr(kc, name)(_key(), salt="s1", signer_kwargs=our_kwargs)
    for obj in OBJECTS:
        token = ours.dumps(obj)
        assert token == theirs.dumps(obj)
        assert ours.loads(token) == obj
        assert theirs.loads(token) == obj


def test_dump_and_load_files(tmp_path: Any) -> None:
    ours = kc.URLSafeSerializer(_key())
    path = tmp_path / "token"
    with open(path, "w") as f:
        ours.dump({"a": 1}, f)
    assert path.read_text() == its.URLSafeSerializer(SECRET).dumps({"a": 1})
    with open(path) as f:
        assert ours.load(f) == {"a": 1}


def test_default_salts_are_itsdangerous_literals() -> None:
    assert kc.Signer(_key()).salt == its.Signer(SECRET).salt == b"itsdangerous.Signer"
    assert kc.URLSafeSerializer(_key()).dumps({"a": 1}) == its.URLSafeSerializer(SECRET).dumps(
        {"a": 1}
    )
    assert kc.Serializer(_key()).salt == b"itsdangerous"


def test_rotation_last_key_signs_every_key_verifies() -> None:
    old, new = _key(OLD_SECRET), _key()
    ours = kc.URLSafeSerializer([old, new])
    theirs = its.URLSafeSerializer([OLD_SECRET, SECRET])
    assert (
        ours.dumps({"n": 1})
        == theirs.dumps({"n": 1})
        == its.URLSafeSerializer(SECRET).dumps({"n": 1})
    )
    old_token = its.URLSafeSerializer(OLD_SECRET).dumps({"n": 0})
    assert ours.loads(old_token) == {"n": 0}
    with pytest.raises(kc.BadSignature):
        kc.URLSafeSerializer(new).loads(old_token)


def test_bad_tokens_raise_typed_errors_without_secrets() -> None:
    ours = kc.Signer(_key())
    token = ours.sign(b"value")
    with pytest.raises(kc.BadSignature, match=r"No b'\.' found") as no_sep:
        ours.unsign(b"nosep")
    assert isinstance(no_sep.value, keycell.InvalidSignature)
    assert isinstance(no_sep.value, keycell.KeycellError)
    tampered = token[:-1] + (b"A" if token[-1:] != b"A" else b"B")
    with pytest.raises(kc.BadSignature) as bad:
        ours.unsign(tampered)
    assert bad.value.payload == b"value"
    # The expected signature appears nowhere in the message.
    assert token.rsplit(b".", 1)[1].decode() not in str(bad.value)
    # A truncated signature (which keycell's own verify_hmac would take at >= 16 bytes)
    # never verifies, as in itsdangerous.
    raw = its.encoding.base64_decode(token.rsplit(b".", 1)[1])
    short = b"value." + its.encoding.base64_encode(raw[:16])
    with pytest.raises(kc.BadSignature):
        ours.unsign(short)
    with pytest.raises(its.BadSignature):
        its.Signer(SECRET).unsign(short)
    assert not ours.validate(b"value.!!!")
    timed = kc.URLSafeTimedSerializer(_key(), signer_kwargs={"clock": _clock(T0)})
    with pytest.raises(kc.BadPayload):
        timed.load_payload(b".!!!")
    with pytest.raises(kc.BadTimeSignature):
        timed.loads(timed.dumps({"a": 1})[:-2] + "xx")


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="SecretKey"):
        kc.Signer(SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SecretKey"):
        kc.Signer([_key(), SECRET])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        kc.Signer([])
    with pytest.raises(ValueError, match="key derivation"):
        kc.Signer(_key(), key_derivation="pbkdf2")
    with pytest.raises(ValueError, match="unsupported digest"):
        kc.Signer(_key(), digest_method="md5")
    with pytest.raises(ValueError, match="separator"):
        kc.Signer(_key(), sep="-")


def test_destroying_the_key_revokes_the_signer() -> None:
    key = _key()
    signer = kc.Signer(key)
    token = signer.sign(b"v")
    derived = signer.derive_key()
    key.destroy()
    assert derived.destroyed
    with pytest.raises(KeyDestroyedError):
        signer.sign(b"v")
    with pytest.raises(KeyDestroyedError):
        signer.unsign(token)


@given(
    secret=st.binary(min_size=1, max_size=200),
    salt=st.binary(max_size=100),
    value=st.binary(max_size=300),
    derivation=st.sampled_from(DERIVATIONS),
    digest=st.sampled_from(["sha1", "sha256", "sha384", "sha512"]),
)
def test_any_secret_salt_and_value(
    secret: bytes, salt: bytes, value: bytes, derivation: str, digest: str
) -> None:
    """For any secret (shorter or longer than a hash block), salt and value, the token is
    itsdangerous's, and each side verifies the other's."""
    theirs = its.Signer(
        secret, salt=salt, key_derivation=derivation, digest_method=getattr(hashlib, digest)
    )
    key = SecretKey.from_buffer(secret)
    ours = kc.Signer(key, salt=salt, key_derivation=derivation, digest_method=digest)
    token = ours.sign(value)
    assert token == theirs.sign(value)
    assert theirs.unsign(token) == value
    key.destroy()


def test_other_salts_do_not_pile_up_derived_keys() -> None:
    """Found by review: the serializer kept a signer and a locked derived key for every
    salt ever passed to ``loads``/``dumps`` (bogus tokens included), so chosen salts
    could exhaust RLIMIT_MEMLOCK. Now only the serializer's own salt's signers are kept;
    another salt's derived keys are destroyed when the call returns."""
    made: list[SecretKey] = []

    class Recording(kc.Signer):
        def derive_key(self, secret_key: SecretKey | None = None) -> SecretKey:
            derived = super().derive_key(secret_key)
            if not any(derived is d for d in made):
                made.append(derived)
            return derived

    old, new = _key(), _key(bytes(range(60, 100)))
    ser = kc.URLSafeSerializer([old, new], signer=Recording)
    token = ser.dumps({"u": 1})
    assert ser.loads(token) == {"u": 1}
    assert ser.loads(token) == {"u": 1}
    own = list(made)
    assert len(own) == 1  # the newest key's, derived once and kept
    other = ser.dumps({"u": 2}, salt="user-1")
    for i in range(50):
        with pytest.raises(kc.BadSignature):
            ser.loads(token, salt=f"user-{i}")
    assert ser.loads(other, salt="user-1") == {"u": 2}
    others = made[len(own):]
    assert len(others) >= 50
    assert all(d.destroyed for d in others)
    assert not any(d.destroyed for d in own)
    assert ser.loads(token) == {"u": 1}
    assert len(made) == len(own) + len(others)  # the kept one was not derived again
    # A signer handed out by make_signer() for another salt is the caller's: it works,
    # and its keys are not destroyed under it.
    signer = ser.make_signer("user-1")
    assert signer.unsign(signer.sign(b"v")) == b"v"
    assert not signer.derive_key().destroyed
    # key_derivation="none" uses the secret key itself: never destroyed.
    plain = kc.Serializer(new, signer_kwargs={"key_derivation": "none"})
    with pytest.raises(kc.BadSignature):
        plain.loads("1.AAAA", salt="x")
    assert not new.destroyed
    assert plain.loads(plain.dumps(1, salt="x"), salt="x") == 1
