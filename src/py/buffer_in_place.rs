//! Reading a caller's buffer where it is, without a copy: for inputs that may be secret
//! and are only read briefly (`compare_digest` of two key views must not leave copies in
//! the heap).
//!
//! Like `view.rs`, this is buffer-protocol glue that safe PyO3 cannot express (its safe
//! `PyBuffer::as_slice` is deprecated as unsound), kept to one small function with its
//! safety argument.

#![allow(unsafe_code)]

use pyo3::buffer::PyBuffer;
use pyo3::Python;

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
