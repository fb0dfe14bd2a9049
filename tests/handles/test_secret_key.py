"""`SecretKey`: lifecycle, API, bad input, redaction, no implicit copies, equality,
`compare_digest`, the context manager and `expose()` (invariants 2, 4, 5, 7)."""

from __future__ import annotations

import array
import copy
import gc
import hmac
import pickle
import re
import weakref
from pathlib import Path
from typing import Any

import keycell
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from keycell import (
    KeycellError,
    KeyDestroyedError,
    KeyInUseError,
    Protection,
    SecretKey,
    _native,
    compare_digest,
)
from support import PYBUF_WRITABLE, view_address

MAX = _native.MAX_KEY_LEN
keys = st.binary(min_size=1, max_size=256)


def contents(key: SecretKey) -> bytes:
    with key.expose() as view:
        return view.tobytes()


# --------------------------------------------------------------------------- creation


def test_generate_default_length_and_randomness() -> None:
    a, b = SecretKey.generate(), SecretKey.generate()
    assert len(a) == 32
    assert contents(a) != contents(b)
    assert contents(a) != bytes(32)


@pytest.mark.parametrize("length", [1, 2, 16, 31, 32, 64, 4096 - 336, 4096, 10_000, MAX])
def test_generate_lengths(length: int) -> None:
    key = SecretKey.generate(length)
    assert len(key) == length
    data = contents(key)
    assert len(data) == length
    if length >= 16:
        assert data != bytes(length)
    key.destroy()


@pytest.mark.parametrize("length", [0, MAX + 1, 1 << 40])
def test_generate_rejects_bad_lengths(length: int) -> None:
    with pytest.raises(ValueError, match="between 1 and") as e:
        SecretKey.generate(length)
    # docs/invariants.md, invariant 7: the rejected length is not echoed back.
    if length:
        assert str(length) not in str(e.value)


@pytest.mark.parametrize("length", [-1, -(1 << 70), 1 << 70, 1 << 64])
def test_generate_rejects_out_of_range_ints(length: int, tmp_path: Path) -> None:
    # A ValueError like any other bad length, not the OverflowError of a usize argument
    # (found by tests/test_fuzz_inputs.py; it also crashed `keycell keygen --length -1`).
    with pytest.raises(ValueError, match="between 1 and"):
        SecretKey.generate(length)
    path = tmp_path / "k"
    path.write_bytes(b"k" * 32)
    path.chmod(0o600)
    with pytest.raises(ValueError, match="between 1 and"):
        SecretKey.from_file(path, length=length)


@pytest.mark.parametrize("length", ["32", 32.0, None, b"32", [32]])
def test_generate_rejects_non_integers(length: Any) -> None:
    with pytest.raises(TypeError):
        SecretKey.generate(length)


@given(keys)
def test_from_buffer_bytes_roundtrip(data: bytes) -> None:
    key = SecretKey.from_buffer(data)
    assert len(key) == len(data)
    assert contents(key) == data
    key.destroy()


@given(keys)
def test_from_buffer_bytearray_is_wiped(data: bytes) -> None:
    buf = bytearray(data)
    key = SecretKey.from_buffer(buf)
    assert buf == bytearray(len(data))
    assert contents(key) == data


@given(keys)
def test_from_buffer_wipe_false_keeps_source(data: bytes) -> None:
    buf = bytearray(data)
    key = SecretKey.from_buffer(buf, wipe=False)
    assert buf == data
    assert contents(key) == data


def test_from_buffer_bytes_source_is_left_alone() -> None:
    """A ``bytes`` cannot be wiped (documented limit); it must not fail or be mutated."""
    data = bytes(range(1, 33))
    key = SecretKey.from_buffer(data, wipe=True)
    assert data == bytes(range(1, 33))
    assert contents(key) == data


def test_from_buffer_memoryview_slice_wipes_only_the_slice() -> None:
    buf = bytearray(b"AAAA" + bytes(range(1, 17)) + b"ZZZZ")
    key = SecretKey.from_buffer(memoryview(buf)[4:20])
    assert contents(key) == bytes(range(1, 17))
    assert buf == b"AAAA" + bytes(16) + b"ZZZZ"


def test_from_buffer_readonly_memoryview_is_not_wiped() -> None:
    buf = bytearray(b"k" * 24)
    ro = memoryview(buf).toreadonly()
    key = SecretKey.from_buffer(ro)
    assert buf == b"k" * 24
    assert contents(key) == b"k" * 24


@pytest.mark.parametrize("typecode", ["B", "b", "H", "I", "L", "Q", "d"])
def test_from_buffer_any_bytes_like_object(typecode: str) -> None:
    """Any C-contiguous buffer is bytes-like (as for ``hmac.compare_digest``): the key is
    its raw bytes, and a writable source is wiped."""
    src = array.array(typecode, [1, 2, 3, 4])
    raw = src.tobytes()
    key = SecretKey.from_buffer(src)
    assert contents(key) == raw
    assert src.tobytes() == bytes(len(raw))


def test_from_buffer_multidimensional_view() -> None:
    buf = bytearray(range(1, 13))
    view = memoryview(buf).cast("B", (3, 4))
    key = SecretKey.from_buffer(view)
    assert contents(key) == bytes(range(1, 13))
    assert buf == bytes(12)


@pytest.mark.parametrize("bad", ["secret", 12345, None, [1, 2, 3], 3.5, object()])
def test_from_buffer_rejects_non_buffers(bad: Any) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        SecretKey.from_buffer(bad)


def test_from_buffer_rejects_non_contiguous() -> None:
    buf = bytearray(range(1, 33))
    with pytest.raises(ValueError, match="contiguous"):
        SecretKey.from_buffer(memoryview(buf)[::2])
    assert buf == bytearray(range(1, 33)), "a rejected source must not be wiped"


@pytest.mark.parametrize("size", [0, MAX + 1])
def test_from_buffer_rejects_bad_sizes_without_echoing_them(size: int) -> None:
    buf = bytearray(b"\x07" * size)
    with pytest.raises(ValueError, match="between 1 and") as e:
        SecretKey.from_buffer(buf)
    assert str(size) not in str(e.value)
    assert buf == b"\x07" * size, "a rejected source must not be wiped"


def test_from_buffer_max_length() -> None:
    key = SecretKey.from_buffer(b"\x01" * MAX)
    assert len(key) == MAX


def test_from_buffer_wipe_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        SecretKey.from_buffer(bytearray(b"x" * 16), False)  # type: ignore[misc]


def test_constructor_is_not_public() -> None:
    with pytest.raises(TypeError):
        SecretKey()  # type: ignore[call-arg]


# --------------------------------------------------------------------------- lifecycle


def test_destroy_is_idempotent_and_every_use_raises_afterwards() -> None:
    key = SecretKey.generate(32)
    other = SecretKey.generate(32)
    assert not key.destroyed
    key.destroy()
    assert key.destroyed
    key.destroy()
    assert key.destroyed
    uses = [
        lambda: key.expose(),
        lambda: key.protection,
        lambda: key == other,
        lambda: other == key,
        lambda: key != other,
        lambda: key == key,
        lambda: key.__enter__(),
        lambda: len(key),
        lambda: _native._key_address(key),
    ]
    for use in uses:
        with pytest.raises(KeyDestroyedError, match="destroyed"):
            use()
    assert isinstance(KeyDestroyedError("x"), KeycellError)
    # Comparisons with other types still short-circuit without touching the key.
    assert key.__eq__(b"") is NotImplemented


def test_exposure_created_before_destroy_cannot_be_entered() -> None:
    key = SecretKey.generate(16)
    exposure = key.expose()
    key.destroy()
    with pytest.raises(KeyDestroyedError), exposure:
        pass


def test_repr_never_shows_bytes() -> None:
    data = bytes(range(65, 65 + 32))  # printable, so any leak would be visible
    key = SecretKey.from_buffer(data)
    for text in (repr(key), f"{key!r}", "%r" % key):  # noqa: UP031
        assert text == "<SecretKey 32 bytes>"
    key.destroy()
    assert repr(key) == "<SecretKey destroyed>"


@given(keys)
def test_repr_redacted_for_any_key(data: bytes) -> None:
    key = SecretKey.from_buffer(data)
    assert repr(key) == f"<SecretKey {len(data)} bytes>"
    assert repr(key.protection) == (
        "Protection(locked=True, dontdump=True, wipeonfork=True, guard_pages=True, "
        f'read_only_idle={key.protection.isolation == "page"}, '
        f'isolation="{key.protection.isolation}", backend="guarded-mmap")'
    )
    assert re.fullmatch(r"<keycell\._native\.Exposure object at 0x[0-9a-f]+>", repr(key.expose()))
    key.destroy()
    assert repr(key) == "<SecretKey destroyed>"


def test_no_implicit_copies() -> None:
    key = SecretKey.generate(32)
    assert not hasattr(key, "__bytes__")
    assert not hasattr(key, "__buffer__")
    assert not hasattr(key, "__iter__")
    assert not hasattr(key, "__getitem__")
    assert not hasattr(key, "__dict__")
    for conv in (bytes, bytearray, memoryview, iter, list, tuple):
        with pytest.raises(TypeError):
            conv(key)
    with pytest.raises(TypeError):
        view_address(key)
    with pytest.raises(TypeError):
        key[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        format(key, "x")
    with pytest.raises(TypeError):
        b"%b" % key  # type: ignore[str-bytes-safe]
    with pytest.raises(TypeError):
        int(key)  # type: ignore[call-overload]


def test_no_hash() -> None:
    key = SecretKey.generate(32)
    assert SecretKey.__hash__ is None
    with pytest.raises(TypeError, match="unhashable"):
        hash(key)
    with pytest.raises(TypeError):
        {key}  # noqa: B018
    with pytest.raises(TypeError):
        {key: 1}  # noqa: B018


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_refused_with_reason(protocol: int) -> None:
    key = SecretKey.generate(32)
    with pytest.raises(TypeError, match=r"cannot be pickled.*kept out of Python memory"):
        pickle.dumps(key, protocol=protocol)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps({"nested": [key]}, protocol=protocol)


@pytest.mark.parametrize("fn", [copy.copy, copy.deepcopy, lambda k: copy.deepcopy([k])])
def test_copy_refused_with_reason(fn: Any) -> None:
    key = SecretKey.generate(32)
    with pytest.raises(TypeError, match=r"cannot be copied.*kept out of Python memory"):
        fn(key)


def test_attributes_are_read_only() -> None:
    key = SecretKey.generate(32)
    with pytest.raises(AttributeError):
        key.destroyed = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        key.extra = 1  # type: ignore[attr-defined]
    assert not key.destroyed


def test_protection_report() -> None:
    key = SecretKey.generate(32)
    prot = key.protection
    assert isinstance(prot, Protection)
    # This machine gives every protection (see test_doctor / test_isolation for the
    # kernel's view of the same pages).
    assert prot.locked
    assert prot.dontdump
    assert prot.wipeonfork
    assert prot.guard_pages
    assert prot.complete
    assert prot.backend == "guarded-mmap"
    assert prot.as_dict() == {
        "locked": True,
        "dontdump": True,
        "wipeonfork": True,
        "guard_pages": True,
        "read_only_idle": prot.isolation == "page",
        "isolation": prot.isolation,
        "backend": "guarded-mmap",
    }
    assert repr(prot).startswith("Protection(locked=True")
    with pytest.raises(AttributeError):
        prot.locked = False  # type: ignore[misc]


def test_key_object_can_be_garbage_collected() -> None:
    key = SecretKey.generate(32)
    with pytest.raises(TypeError):
        weakref.ref(key)  # no weakref slot: nothing else can observe the handle
    del key
    gc.collect()


# --------------------------------------------------------------------------- equality


@given(keys, keys)
def test_equality_matches_bytes_equality(a: bytes, b: bytes) -> None:
    ka, kb = SecretKey.from_buffer(a), SecretKey.from_buffer(b)
    assert (ka == kb) is (a == b)
    assert (ka != kb) is (a != b)
    assert (kb == ka) is (a == b)


@given(keys, st.integers(min_value=0, max_value=255), st.data())
def test_equality_detects_one_byte_difference(a: bytes, flip: int, data: st.DataObject) -> None:
    assume(flip != 0)
    i = data.draw(st.integers(min_value=0, max_value=len(a) - 1))
    b = bytearray(a)
    b[i] ^= flip
    assert SecretKey.from_buffer(a) != SecretKey.from_buffer(bytes(b))
    assert SecretKey.from_buffer(a) == SecretKey.from_buffer(a)


def test_equality_prefix_and_length() -> None:
    a = SecretKey.from_buffer(b"0123456789abcdef")
    assert a != SecretKey.from_buffer(b"0123456789abcde")
    assert a != SecretKey.from_buffer(b"0123456789abcdef\x00")
    assert a == a


@pytest.mark.parametrize("other", [b"0123456789abcdef", bytearray(16), "x", 1, None, object()])
def test_equality_with_other_types_is_not_implemented(other: Any) -> None:
    key = SecretKey.from_buffer(b"0123456789abcdef")
    assert key.__eq__(other) is NotImplemented
    assert key.__ne__(other) is NotImplemented
    assert (key == other) is False
    assert (key != other) is True
    assert (other == key) is False


def test_equality_delegates_to_the_other_operand() -> None:
    class Always:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = None  # type: ignore[assignment]

    assert SecretKey.generate(16) == Always()


def test_no_ordering() -> None:
    a, b = SecretKey.generate(16), SecretKey.generate(16)
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        assert getattr(a, op)(b) is NotImplemented
    with pytest.raises(TypeError):
        a < b  # type: ignore[operator]  # noqa: B015


def test_equality_with_destroyed_key_raises() -> None:
    a, b = SecretKey.generate(16), SecretKey.generate(16)
    b.destroy()
    with pytest.raises(KeyDestroyedError):
        a == b  # noqa: B015
    with pytest.raises(KeyDestroyedError):
        b == a  # noqa: B015


# --------------------------------------------------------------------------- compare_digest

bytes_like = st.sampled_from([bytes, bytearray, lambda b: memoryview(bytes(b))])


@given(st.binary(max_size=64), st.binary(max_size=64), bytes_like, bytes_like)
def test_compare_digest_matches_hmac(a: bytes, b: bytes, ta: Any, tb: Any) -> None:
    assert compare_digest(ta(a), tb(b)) is hmac.compare_digest(ta(a), tb(b))
    assert compare_digest(ta(a), tb(a)) is True


@given(st.binary(min_size=1, max_size=64), st.data())
def test_compare_digest_one_byte_difference(a: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(a) - 1))
    b = bytearray(a)
    b[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    assert compare_digest(a, bytes(b)) is False is hmac.compare_digest(a, bytes(b))
    assert compare_digest(a, a[:-1]) is False


@pytest.mark.parametrize("n", [2047, 2048, 4096, 1 << 20])
def test_compare_digest_large_inputs(n: int) -> None:
    """Inputs from 2 KiB on are compared with the GIL released; same results."""
    a = bytes(range(256)) * (n // 256) + bytes(n % 256)
    b = bytearray(a)
    assert compare_digest(a, b) is True
    b[-1] ^= 1
    assert compare_digest(a, b) is False
    assert compare_digest(a, bytes(b)) is hmac.compare_digest(a, bytes(b))


@pytest.mark.parametrize("typecode", ["b", "H", "I", "Q", "d"])
def test_compare_digest_any_buffer_like_hmac(typecode: str) -> None:
    x = array.array(typecode, [1, 2, 3])
    y = array.array(typecode, [1, 2, 4])
    assert compare_digest(x, x) is hmac.compare_digest(x, x) is True
    assert compare_digest(x, y) is hmac.compare_digest(x, y) is False
    assert compare_digest(x, x.tobytes()) is True


@pytest.mark.parametrize(
    ("a", "b"), [(b"a", "a"), ("a", b"a"), (1, b"a"), (b"a", None), (None, None), ([1], [1])]
)
def test_compare_digest_type_errors_like_hmac(a: Any, b: Any) -> None:
    with pytest.raises(TypeError):
        hmac.compare_digest(a, b)
    with pytest.raises(TypeError):
        compare_digest(a, b)


def test_compare_digest_rejects_str() -> None:
    """keycell compares bytes only: unlike ``hmac.compare_digest``, two ASCII ``str`` are
    refused (a key or tag is never text)."""
    with pytest.raises(TypeError, match="bytes-like"):
        compare_digest("abc", "abc")  # type: ignore[arg-type]


def test_compare_digest_signature_like_hmac() -> None:
    with pytest.raises(TypeError):
        compare_digest(a=b"x", b=b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        compare_digest(b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        compare_digest(b"x", b"x", b"x")  # type: ignore[call-arg]
    buf = bytearray(b"abc")
    assert compare_digest(buf, b"abc") is True
    assert buf == b"abc", "compare_digest must not modify its inputs"


def test_compare_digest_non_contiguous() -> None:
    mv = memoryview(bytearray(b"aabbcc"))[::2]
    with pytest.raises((ValueError, TypeError, BufferError)):
        compare_digest(mv, b"abc")


# --------------------------------------------------------------------------- context manager


def test_context_manager_destroys() -> None:
    with SecretKey.generate(32) as key:
        assert not key.destroyed
        assert len(key) == 32
    assert key.destroyed


def test_context_manager_destroys_on_exception_and_propagates() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), SecretKey.generate(32) as key:
        raise Boom
    assert key.destroyed


def test_context_manager_returns_same_handle() -> None:
    key = SecretKey.generate(8)
    with key as entered:
        assert entered is key
    assert key.destroyed
    with pytest.raises(KeyDestroyedError):
        key.__enter__()


def test_context_manager_with_open_view_raises_and_keeps_key() -> None:
    key = SecretKey.generate(8)
    exposure = key.expose()
    view = exposure.__enter__()
    with pytest.raises(KeyInUseError), key:
        pass
    assert not key.destroyed
    assert view.tobytes() == contents(key)
    exposure.__exit__(None, None, None)
    key.destroy()
    assert key.destroyed


# --------------------------------------------------------------------------- expose()


@given(keys)
def test_expose_view_is_read_only_and_released(data: bytes) -> None:
    key = SecretKey.from_buffer(data)
    with key.expose() as view:
        assert isinstance(view, memoryview)
        assert view.readonly
        assert view.format == "B"
        assert view.nbytes == len(view) == len(data)
        assert view.c_contiguous
        assert view.tobytes() == data
        assert bytes(view) == data
        with pytest.raises(TypeError):
            view[0] = 0
        with pytest.raises(BufferError):
            view_address(view, PYBUF_WRITABLE)
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    with pytest.raises(ValueError, match="released"):
        view[0]
    key.destroy()


def test_expose_view_address_is_the_key_region() -> None:
    key = SecretKey.generate(32)
    with key.expose() as view:
        addr, length, readonly = view_address(view)
        assert readonly
        assert length == 32
        assert addr == _native._key_address(key)


def test_destroy_while_view_open_raises_and_frees_nothing() -> None:
    data = bytes(range(1, 41))
    key = SecretKey.from_buffer(data)
    with key.expose() as view:
        with pytest.raises(KeyInUseError, match="view"):
            key.destroy()
        assert not key.destroyed
        assert view.tobytes() == data  # the memory is still there
        assert key == SecretKey.from_buffer(data)
    key.destroy()
    assert key.destroyed


def test_view_released_after_exception_in_block() -> None:
    key = SecretKey.generate(16)
    with pytest.raises(RuntimeError), key.expose() as view:
        raise RuntimeError
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    key.destroy()


def test_two_exposures_pin_until_both_closed() -> None:
    key = SecretKey.generate(16)
    with key.expose() as v1:
        with key.expose() as v2:
            assert v1.tobytes() == v2.tobytes()
        with pytest.raises(KeyInUseError):
            key.destroy()
    key.destroy()


def test_exposure_cannot_be_entered_twice_while_open() -> None:
    key = SecretKey.generate(16)
    exposure = key.expose()
    with exposure as view:
        with pytest.raises(ValueError, match="already open"), exposure:
            pass
        assert view.tobytes() == contents(key)
    exposure.__exit__(None, None, None)  # idempotent
    with exposure as again:  # a closed exposure may be opened again
        assert len(again) == 16
    key.destroy()


def test_slices_of_the_view_keep_the_key_pinned() -> None:
    """A slice or copy-view that escapes its block makes leaving the block raise (the view
    would stay readable after it), and keeps the key pinned until it is gone."""
    data = bytes(range(1, 33))
    key = SecretKey.from_buffer(data)
    with pytest.raises(BufferError, match="still alive after its with-block"):  # noqa: PT012
        with key.expose() as view:
            part = view[4:12]
            again = memoryview(view)
    with pytest.raises(ValueError, match="released"):
        view.tobytes()
    # The slices hold their own reference to the export: still valid, key still pinned.
    assert part.tobytes() == data[4:12]
    assert again.tobytes() == data
    with pytest.raises(KeyInUseError):
        key.destroy()
    part.release()
    with pytest.raises(KeyInUseError):
        key.destroy()
    del again
    gc.collect()
    key.destroy()
    assert key.destroyed


def test_exporter_cannot_outlive_the_key() -> None:
    """The view's exporter object (``view.obj``) exports only inside its block; an export
    taken inside the block pins the key until it is released."""
    key = SecretKey.generate(16)
    with pytest.raises(BufferError, match="still alive"):  # noqa: PT012
        with key.expose() as view:
            exporter = view.obj
            extra = memoryview(exporter)  # an explicit export also pins the key
    with pytest.raises(KeyInUseError):
        key.destroy()
    with pytest.raises(BufferError):
        memoryview(exporter)  # the block has ended: no new exports
    extra.release()
    key.destroy()
    with pytest.raises(BufferError):
        memoryview(exporter)


def test_outstanding_raw_export_blocks_release_and_destroy() -> None:
    """A consumer that still holds a raw buffer at the end of the block: the view cannot be
    released, so the key stays pinned (nothing is freed under it)."""
    import ctypes

    from support import _get_buffer, _PyBuffer, _release_buffer

    key = SecretKey.generate(16)
    raw = _PyBuffer()
    exposure = key.expose()
    view = exposure.__enter__()
    _get_buffer(view, ctypes.byref(raw), 0)
    with pytest.raises(BufferError):
        exposure.__exit__(None, None, None)
    with pytest.raises(KeyInUseError):
        key.destroy()
    assert ctypes.string_at(raw.buf, 16) == contents(key)
    _release_buffer(ctypes.byref(raw))
    exposure.__exit__(None, None, None)
    key.destroy()


def test_public_names() -> None:
    for name in keycell.__all__:
        assert hasattr(keycell, name), name
        obj = getattr(keycell, name)
        if callable(obj) and name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"
