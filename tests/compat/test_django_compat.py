"""keycell.compat.django against Django's own ``django.utils.crypto.salted_hmac`` and
``django.core.signing``, both ways. Django's signing is called with explicit keys (no
settings needed); one test runs Django's settings-based defaults in a child interpreter
(this process's Django settings belong to ``tests/integrations``). Time is pinned.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap

import keycell
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keycell import KeyDestroyedError, SecretKey
from keycell.compat import django as kc

pytest.importorskip("django")
from django.core import signing
from django.utils.crypto import salted_hmac

SECRET = "django-insecure-k3y+with/sym=bols_and_\u00e9"
OLD_SECRET = "the previous secret key"
T0 = 1_700_000_000


def _key(text: str = SECRET) -> SecretKey:
    # Django's force_bytes: the UTF-8 bytes of SECRET_KEY.
    return SecretKey.from_buffer(bytearray(text.encode("utf-8")))


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the clock Django's signing module reads (``time.time``) to T0."""
    monkeypatch.setattr(signing.time, "time", lambda: float(T0))


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_salted_hmac_matches_django(algorithm: str) -> None:
    for salt, value in [("salt", "value"), ("", b""), ("s" * 200, b"v" * 5000)]:
        ours = kc.salted_hmac(salt, value, _key(), algorithm=algorithm)
        theirs = salted_hmac(salt, value, SECRET, algorithm=algorithm)
        assert ours.digest() == theirs.digest()
        assert ours.hexdigest() == theirs.hexdigest()
        assert ours.digest_size == theirs.digest_size
        assert ours.name == theirs.name
        ours.update(b"more")
        theirs.update(b"more")
        assert ours.copy().digest() == theirs.copy().digest()


def test_salted_hmac_default_is_sha1() -> None:
    assert kc.salted_hmac("a", "b", _key()).digest() == salted_hmac("a", "b", SECRET).digest()
    assert kc.salted_hmac("a", "b", _key()).digest_size == 20
    with pytest.raises(ValueError, match="unsupported digest"):
        kc.salted_hmac("a", "b", _key(), algorithm="md5")
    with pytest.raises(TypeError, match="SecretKey"):
        kc.salted_hmac("a", "b", SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", [None, "sha1", "sha512"])
@pytest.mark.parametrize("salt", [None, "my.salt"])
def test_signer_both_ways(algorithm: str | None, salt: str | None) -> None:
    ours = kc.Signer(key=_key(), salt=salt, algorithm=algorithm)
    theirs = signing.Signer(key=SECRET, salt=salt, algorithm=algorithm, fallback_keys=[])
    for value in ["", "hello", "h\u00e9llo:with:seps", "x" * 3000]:
        token = ours.sign(value)
        assert token == theirs.sign(value)
        assert theirs.unsign(token) == ours.unsign(token) == value
    obj = {"a": [1, 2], "b": "\u00e9"}
    for compress in (False, True):
        assert ours.sign_object(obj, compress=compress) == theirs.sign_object(
            obj, compress=compress
        )
    big = {"z": "z" * 400}
    token = theirs.sign_object(big, compress=True)
    assert token.split(":")[0].startswith(".")
    assert ours.unsign_object(token) == big


def test_default_salts_are_djangos_literals() -> None:
    assert kc.Signer(key=_key()).salt == "django.core.signing.Signer"
    assert kc.TimestampSigner(key=_key()).salt == "django.core.signing.TimestampSigner"
    assert kc.Signer(key=_key()).sign("v") == signing.Signer(key=SECRET, fallback_keys=[]).sign("v")


def test_timestamp_signer_both_ways(frozen_time: None) -> None:
    ours = kc.TimestampSigner(key=_key(), clock=lambda: T0 + 0.5)
    theirs = signing.TimestampSigner(key=SECRET, fallback_keys=[])
    token = ours.sign("payload")
    assert token == theirs.sign("payload")
    assert theirs.unsign(token, max_age=10) == "payload"
    assert ours.unsign(theirs.sign("p2"), max_age=datetime.timedelta(seconds=10)) == "p2"


def test_max_age(frozen_time: None) -> None:
    now = [float(T0)]
    ours = kc.TimestampSigner(key=_key(), clock=lambda: now[0])
    token = ours.sign("v")
    now[0] = T0 + 10
    assert ours.unsign(token, max_age=10) == "v"
    now[0] = T0 + 11
    with pytest.raises(kc.SignatureExpired, match=r"Signature age 11(\.0)? > 10 seconds"):
        ours.unsign(token, max_age=10)
    with pytest.raises(signing.SignatureExpired):
        signing.loads(
            kc.dumps({"a": 1}, _key(), clock=lambda: T0 - 11),
            key=SECRET,
            max_age=10,
            fallback_keys=[],
        )


@pytest.mark.parametrize("compress", [False, True])
def test_dumps_loads_both_ways(frozen_time: None, compress: bool) -> None:
    obj = {"user": 7, "pad": "p" * 300}
    ours = kc.dumps(obj, _key(), compress=compress, clock=lambda: float(T0))
    # signing.dumps(obj, key=SECRET) without settings: the same TimestampSigner it builds.
    theirs = signing.TimestampSigner(
        key=SECRET, salt="django.core.signing", fallback_keys=[]
    ).sign_object(obj, compress=compress)
    assert ours == theirs
    assert signing.loads(ours, key=SECRET, fallback_keys=[], max_age=5) == obj
    assert kc.loads(theirs, _key(), max_age=5, clock=lambda: float(T0)) == obj
    with pytest.raises(kc.BadSignature):
        kc.loads(theirs, _key(), salt="other")


def test_fallback_keys_rotate(frozen_time: None) -> None:
    old_token = signing.Signer(key=OLD_SECRET, fallback_keys=[]).sign("v")
    ours = kc.Signer(key=_key(), fallback_keys=[_key(OLD_SECRET)])
    assert ours.unsign(old_token) == "v"
    assert ours.sign("v") == signing.Signer(key=SECRET, fallback_keys=[]).sign("v")
    with pytest.raises(kc.BadSignature):
        kc.Signer(key=_key()).unsign(old_token)
    theirs = signing.Signer(key=OLD_SECRET, fallback_keys=[SECRET])
    assert theirs.unsign(ours.sign("w")) == "w"


def test_bad_signatures() -> None:
    ours = kc.Signer(key=_key())
    token = ours.sign("value")
    sig = token.rsplit(":", 1)[1]
    with pytest.raises(kc.BadSignature, match='No ":" found') as exc:
        ours.unsign("value")
    assert isinstance(exc.value, keycell.KeycellError)
    for bad in ("value:" + sig[:-1], "value:" + sig + "A", "value:" + sig.upper(), "v:" + sig):
        with pytest.raises(kc.BadSignature) as exc:
            ours.unsign(bad)
        assert sig not in str(exc.value)
    # A non-canonical encoding of the right bytes fails, as Django's text comparison does.
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(kc.BadSignature):
        ours.unsign("value:" + sig[:-1] + twin)
    with pytest.raises(signing.BadSignature):
        signing.Signer(key=SECRET, fallback_keys=[]).unsign("value:" + sig[:-1] + twin)
    with pytest.raises(ValueError, match="Unsafe Signer separator"):
        kc.Signer(key=_key(), sep="abc")


def test_timestamp_signer_refuses_a_value_without_a_timestamp() -> None:
    """A plain Signer's token, valid under the TimestampSigner's salt, has no timestamp:
    BadSignature, not the ValueError of an unpacking."""
    key = _key()
    plain = kc.Signer(key=key, salt="django.core.signing.TimestampSigner").sign("v")
    with pytest.raises(kc.BadSignature, match="Timestamp missing"):
        kc.TimestampSigner(key=key).unsign(plain)
    stamped = kc.Signer(key=key, salt="django.core.signing.TimestampSigner").sign("v:!!")
    with pytest.raises(kc.BadSignature, match="Malformed timestamp"):
        kc.TimestampSigner(key=key).unsign(stamped)


def test_destroying_the_key_revokes_the_signer() -> None:
    key = _key()
    ours = kc.Signer(key=key)
    token = ours.sign("v")
    key.destroy()
    with pytest.raises(KeyDestroyedError):
        ours.unsign(token)
    with pytest.raises(KeyDestroyedError):
        ours.sign("v")


DJANGO_SETTINGS_CHILD = textwrap.dedent(
    """
    import sys
    from django.conf import settings
    settings.configure(SECRET_KEY=sys.argv[1], SECRET_KEY_FALLBACKS=[sys.argv[2]])
    from django.core import signing
    print(signing.dumps({"from": "django"}, compress=True))
    print(signing.Signer().sign("plain"))
    print(signing.loads(sys.stdin.readline().strip(), max_age=3600))
    """
)


def test_tokens_of_a_configured_django_app() -> None:
    """A Django app whose settings hold SECRET_KEY (and a fallback) and keycell with the
    same secrets in handles exchange tokens made with Django's defaults."""
    ours_token = kc.dumps({"from": "keycell"}, _key(OLD_SECRET))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", DJANGO_SETTINGS_CHILD, SECRET, OLD_SECRET],
        input=ours_token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    dumped, signed, loaded = proc.stdout.splitlines()
    assert loaded == "{'from': 'keycell'}"
    assert kc.loads(dumped, _key()) == {"from": "django"}
    assert kc.Signer(key=_key()).unsign(signed) == "plain"


@given(
    secret=st.binary(min_size=1, max_size=200),
    salt=st.text(max_size=80),
    value=st.binary(max_size=300),
    algorithm=st.sampled_from(["sha1", "sha256", "sha384", "sha512"]),
)
def test_salted_hmac_for_any_input(secret: bytes, salt: str, value: bytes, algorithm: str) -> None:
    """Django's force_bytes passes bytes secrets through: any secret, salt and value give
    Django's digest."""
    key = SecretKey.from_buffer(secret)
    ours = kc.salted_hmac(salt, value, key, algorithm=algorithm).digest()
    assert ours == salted_hmac(salt, value, secret, algorithm=algorithm).digest()
    key.destroy()
