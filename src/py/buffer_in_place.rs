//! Reading a caller's buffer where it is, without a copy: for inputs that may be secret
//! and are only read briefly (`compare_digest` of two key views must not leave copies in
//! the heap). Writing into a caller's writable buffer (`encrypt_into`/`decrypt_into`),
//! and a new `bytes` filled without a zero-fill first (AEAD output).
//!
//! Like `view.rs`, this is buffer-protocol glue that safe PyO3 cannot express (its safe
//! `PyBuffer::as_slice` is deprecated as unsound), kept to one small function with its
//! safety argument.

#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use pyo3::buffer::PyBuffer;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use zeroize::Zeroize;

use super::errors::{Error, Result};

/// Run `f` on the bytes of `buf` in place, with the GIL held.
///
/// `buf` must be C-contiguous (the extractor in `bytes_like.rs` checks). `f` gets only the
/// slice, not the `Python` token: it must not run Python code.
pub fn with_bytes_in_place<T>(
    _py: Python<'_>,
    buf: &PyBuffer<u8>,
    f: impl FnOnce(&[u8]) -> T,
) -> T {
    let len = buf.item_count();
    if len == 0 {
        return f(&[]);
    }
    // SAFETY: `buf` holds a buffer export of a C-contiguous buffer of `len` one-byte items
    // (checked by the extractor), so `buf_ptr()` points to `len` readable bytes that stay
    // valid while the export is held, which `&buf` guarantees for this call. The GIL is
    // held (`_py`) and `f` cannot reach Python, so no Python code can resize or write the
    // buffer meanwhile; a C extension writing to it without the GIL would race, as it
    // would with any reader of the buffer protocol.
    let bytes = unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, len) };
    f(bytes)
}

/// Run `f` on the bytes of the writable buffer `buf` in place, with the GIL held.
///
/// `buf` must be C-contiguous and writable (the caller checks `!buf.readonly()`; the
/// extractor in `bytes_like.rs` checks contiguity). `f` gets only the slice, not the
/// `Python` token: it must not run Python code.
pub fn with_writable_in_place<T>(
    _py: Python<'_>,
    buf: &PyBuffer<u8>,
    f: impl FnOnce(&mut [u8]) -> T,
) -> T {
    let len = buf.item_count();
    if len == 0 || buf.readonly() {
        return f(&mut []);
    }
    // SAFETY: `buf` holds a buffer export of a C-contiguous, writable buffer of `len`
    // one-byte items, so `buf_ptr()` points to `len` writable bytes that stay valid (and
    // cannot be resized: an exported `bytearray` refuses) while the export is held, which
    // `&buf` guarantees for this call. The GIL is held and `f` cannot reach Python, so no
    // Python code reads or writes the buffer meanwhile and this is the only reference to
    // those bytes (the other arguments were borrowed from immutable `bytes` or copied); a
    // C extension touching it without the GIL would race, as with any buffer-protocol
    // writer.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.buf_ptr() as *mut u8, len) };
    f(bytes)
}

/// Copy `src` into `dst` (same length; `MaybeUninit::write_copy_of_slice` needs Rust 1.93).
fn write_copy(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: `dst` is `src.len()` writable bytes (`MaybeUninit<u8>` has the layout of
    // `u8`), and the two cannot overlap: `dst` is borrowed mutably while `src` is borrowed.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len())
    };
}

/// A new `bytes` of `head || body || zeros(tail)`, then `f` run on all of it (to encrypt or
/// decrypt it in place) before anyone else can see it. Unlike `PyBytes::new_with`, the
/// buffer is not zero-filled first (a 1 MiB `memset` is a tenth of a 1 MiB AES-GCM call):
/// every byte is written exactly once by the copies below before `f` sees it. The copy of
/// `body` is handed to `run_copy`, which runs it (the caller releases the GIL there for
/// large inputs, through its one GIL-release helper). If `f` fails, the buffer is wiped
/// and the object released unseen.
pub fn new_bytes_from<'py>(
    py: Python<'py>,
    head: &[u8],
    body: &[u8],
    tail: usize,
    run_copy: impl FnOnce(&mut (dyn FnMut() + Send)),
    f: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<Bound<'py, PyBytes>> {
    let len = head
        .len()
        .checked_add(body.len())
        .and_then(|v| v.checked_add(tail))
        .filter(|&v| isize::try_from(v).is_ok())
        .ok_or(Error::Overflow("output too long"))?;
    // SAFETY: PyBytes_FromStringAndSize with a null source allocates an uninitialised
    // `bytes` of `len` bytes (or fails with an exception set, checked by
    // `assume_owned_or_err`); the GIL is held (`py`).
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t),
        )?
        .cast_into_unchecked::<PyBytes>()
    };
    if len == 0 {
        // The shared empty `bytes`: nothing to write.
        f(&mut [])?;
        return Ok(obj);
    }
    // SAFETY: a new `bytes` object that only we reference: PyBytes_AsString returns its
    // buffer of `len` bytes (plus CPython's trailing NUL), valid while `obj` lives. It is
    // viewed as `MaybeUninit<u8>` until every byte has been written below.
    let out: &mut [MaybeUninit<u8>] = unsafe {
        let ptr = ffi::PyBytes_AsString(obj.as_ptr()).cast::<MaybeUninit<u8>>();
        std::slice::from_raw_parts_mut(ptr, len)
    };
    let (h, rest) = out.split_at_mut(head.len());
    let (b, t) = rest.split_at_mut(body.len());
    write_copy(h, head);
    let mut copied = false;
    run_copy(&mut || {
        if !copied {
            write_copy(b, body);
            copied = true;
        }
    });
    if !copied {
        // `run_copy` did not run the copy: never hand out the uninitialised bytes.
        write_copy(b, body);
    }
    t.fill(MaybeUninit::new(0));
    // SAFETY: `head.len() + body.len() + tail == len` bytes were all written just above,
    // so the whole buffer is initialised; `out` is not used again.
    let out: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), len) };
    if let Err(e) = f(out) {
        // The `bytes` is never handed out: wipe what `f` left in it (a plaintext whose
        // call failed after the decryption, e.g. a `ProtectionWarning` under `-W error`)
        // before CPython frees it.
        out.zeroize();
        return Err(e);
    }
    Ok(obj)
}
