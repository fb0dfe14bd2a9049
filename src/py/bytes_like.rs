//! The one extractor for bytes-like arguments, and the size rule for releasing the GIL
//! ([`maybe_detach`], over [`detach`]).
//!
//! `bytes` are borrowed without a copy (immutable, kept alive by the caller's reference,
//! so the slice stays valid while the GIL is released). Any other contiguous buffer
//! (`bytearray`, `memoryview`, `array('B')`, ...) is copied once through PyO3's safe
//! `PyBuffer::to_vec`, so a concurrent mutation from another thread can never race with a
//! computation running without the GIL; that copy is wiped when it is dropped, because a
//! caller may pass anything, a view of a key included. Secret inputs never take that path:
//! they are copied straight into a guarded region with [`copy_secret_into`].
//! [`ct_eq_in_place`] compares two buffers where they are, without any copy.

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PyString};
use zeroize::Zeroizing;

use super::buffer_in_place::with_bytes_in_place;
use super::errors::{Error, Result};
use super::isolation_scope::detach;

/// Inputs at least this long are processed with the GIL released.
pub const GIL_RELEASE_THRESHOLD: usize = 2048;

/// Borrowed or copied bytes of a bytes-like argument (messages, tags, signatures, public
/// keys). A copy is wiped on drop: the caller's buffer may hold anything.
pub enum BytesLike<'py> {
    Bytes(Bound<'py, PyBytes>),
    Copied(Zeroizing<Vec<u8>>),
}

impl BytesLike<'_> {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            BytesLike::Bytes(b) => b.as_bytes(),
            BytesLike::Copied(v) => v,
        }
    }
}

fn type_error(obj: &Bound<'_, PyAny>, what: &str) -> Error {
    let tname = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned());
    Error::Type(format!("{what} must be a bytes-like object, not {tname}"))
}

fn contiguous_buffer(obj: &Bound<'_, PyAny>, what: &str) -> Result<PyBuffer<u8>> {
    if obj.is_instance_of::<PyString>() {
        return Err(type_error(obj, what));
    }
    let buf = match PyBuffer::<u8>::get(obj) {
        Ok(buf) => buf,
        // Any buffer is bytes-like, whatever its item format (`array('I')`, a 2-D view, ...):
        // view its raw bytes through `memoryview(obj).cast("B")`, which shares the memory
        // (no copy, so wiping the view wipes the source) and accepts only C-contiguous data.
        Err(_) => {
            let mv = PyMemoryView::from(obj).map_err(|_| type_error(obj, what))?;
            let raw = mv
                .call_method1("cast", ("B",))
                .map_err(|_| Error::Value(format!("{what} must be a contiguous buffer")))?;
            PyBuffer::<u8>::get(&raw).map_err(|_| type_error(obj, what))?
        }
    };
    if !buf.is_c_contiguous() {
        return Err(Error::Value(format!("{what} must be a contiguous buffer")));
    }
    Ok(buf)
}

/// Extract a non-secret bytes-like argument named `what`.
pub fn bytes_like<'py>(obj: &Bound<'py, PyAny>, what: &str) -> Result<BytesLike<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(BytesLike::Bytes(b.clone()));
    }
    let buf = contiguous_buffer(obj, what)?;
    Ok(BytesLike::Copied(Zeroizing::new(buf.to_vec(obj.py())?)))
}

/// A writable, C-contiguous buffer argument named `what` (`bytearray`, a writable
/// `memoryview`, ...), to be written in place; `TypeError` for anything read-only.
pub fn writable_buffer(obj: &Bound<'_, PyAny>, what: &str) -> Result<PyBuffer<u8>> {
    let buf = contiguous_buffer(obj, what)?;
    if buf.readonly() {
        let tname = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "object".to_owned());
        return Err(Error::Type(format!(
            "{what} must be a writable buffer (e.g. a bytearray), not a read-only {tname}"
        )));
    }
    Ok(buf)
}

/// Extract an optional non-secret bytes-like argument named `what` (`None` is absent).
pub fn optional_bytes<'py>(
    obj: Option<&Bound<'py, PyAny>>,
    what: &str,
) -> Result<Option<BytesLike<'py>>> {
    obj.filter(|o| !o.is_none())
        .map(|o| bytes_like(o, what))
        .transpose()
}

/// A bytes-like argument read where it is: `bytes` borrowed, any other buffer through its
/// buffer export (no copy).
enum InPlace<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuffer<u8>),
}

impl<'py> InPlace<'py> {
    fn new(obj: &Bound<'py, PyAny>, what: &str) -> Result<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(InPlace::Bytes(b.clone()));
        }
        Ok(InPlace::Buffer(contiguous_buffer(obj, what)?))
    }

    fn len(&self) -> usize {
        match self {
            InPlace::Bytes(b) => b.as_bytes().len(),
            InPlace::Buffer(buf) => buf.item_count(),
        }
    }
}

/// Compare two bytes-like arguments in constant time (time depends only on the lengths),
/// reading both where they are: nothing is copied, so comparing two views of keys leaves
/// no trace in the heap. Two `bytes` of at least [`GIL_RELEASE_THRESHOLD`] bytes are
/// compared with the GIL released; other buffers (which Python code could mutate) are read
/// with the GIL held.
pub fn ct_eq_in_place(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> Result<bool> {
    let (a, b) = (InPlace::new(a, "a")?, InPlace::new(b, "b")?);
    if a.len() != b.len() {
        return Ok(false);
    }
    let eq = crate::crypto::ct::ct_eq;
    Ok(match (&a, &b) {
        (InPlace::Bytes(x), InPlace::Bytes(y)) => {
            let (x, y) = (x.as_bytes(), y.as_bytes());
            maybe_detach(py, x.len(), || eq(x, y))
        }
        (InPlace::Bytes(x), InPlace::Buffer(y)) | (InPlace::Buffer(y), InPlace::Bytes(x)) => {
            with_bytes_in_place(py, y, |y| eq(x.as_bytes(), y))
        }
        (InPlace::Buffer(x), InPlace::Buffer(y)) => {
            with_bytes_in_place(py, x, |x| with_bytes_in_place(py, y, |y| eq(x, y)))
        }
    })
}

/// A secret bytes-like source: its length, and whether it can be wiped.
pub struct SecretSource {
    buf: PyBuffer<u8>,
}

impl SecretSource {
    /// Wrap `obj` (any contiguous buffer of bytes).
    pub fn new(obj: &Bound<'_, PyAny>, what: &str) -> Result<Self> {
        Ok(SecretSource {
            buf: contiguous_buffer(obj, what)?,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.item_count()
    }

    /// Copy the source straight into `dst` (a guarded region; same length).
    pub fn copy_into(&self, py: Python<'_>, dst: &mut [u8]) -> Result<()> {
        self.buf.copy_to_slice(py, dst).map_err(Error::Py)
    }

    /// Whether the source is writable (and so can be wiped).
    pub fn writable(&self) -> bool {
        !self.buf.readonly()
    }

    /// Overwrite a writable source with zeros.
    pub fn wipe(&self, py: Python<'_>) -> Result<()> {
        let zeros = vec![0u8; self.len()];
        self.buf.copy_from_slice(py, &zeros).map_err(Error::Py)
    }
}

/// Run `f` on the secret text in `buf` where it is (not copied: e.g. an encoded key,
/// decoded by `f` straight into a guarded region); a writable `buf` is then zeroed when
/// `wipe` is true, whether or not `f` succeeded (the text may be a secret with a typo).
/// `str` is refused: it cannot be wiped.
pub fn read_secret_in_place<T, E: Into<Error>>(
    py: Python<'_>,
    buf: &Bound<'_, PyAny>,
    wipe: bool,
    f: impl FnOnce(&[u8]) -> std::result::Result<T, E>,
) -> Result<T> {
    if buf.is_instance_of::<PyString>() {
        return Err(Error::Type(
            "buf must be a bytearray (or another bytes-like object), not str: a str cannot \
             be wiped"
                .to_owned(),
        ));
    }
    let source = match SecretSource::new(buf, "buf") {
        Ok(source) => source,
        Err(e) => {
            // Refused (a non-contiguous view, ...): the text may still be a secret.
            if wipe {
                wipe_refused(py, buf);
            }
            return Err(e);
        }
    };
    // The raw bytes of any item format (`array('b')`, `array('I')`), read where they are.
    let result = with_bytes_in_place(py, &source.buf, f);
    if wipe && source.writable() {
        source.wipe(py)?;
    }
    result.map_err(Into::into)
}

/// Zero a writable buffer that was refused as a secret source (e.g. a non-contiguous
/// view), best effort, before the refusal is raised: a byte buffer of any layout
/// (`memoryview(bytearray)[::2]`, a strided 2-D view) through its strides, and a 1-D
/// buffer of wider items (`memoryview(array('I'))[::2]`) by assigning zeros of its
/// format. Read-only buffers, and non-contiguous multi-dimensional buffers of items wider
/// than a byte, are left as they are (nothing to do for the first; Python cannot write
/// the second through a memoryview).
fn wipe_refused(py: Python<'_>, obj: &Bound<'_, PyAny>) {
    if let Ok(bytes) = PyBuffer::<u8>::get(obj) {
        if !bytes.readonly() {
            let _ = bytes.copy_from_slice(py, &vec![0u8; bytes.item_count()]);
        }
        return;
    }
    let _ = (|| -> PyResult<()> {
        let mv = PyMemoryView::from(obj)?;
        if mv.getattr("readonly")?.is_truthy()? || mv.getattr("ndim")?.extract::<usize>()? != 1 {
            return Ok(());
        }
        let nbytes: usize = mv.getattr("nbytes")?.extract()?;
        let format = mv.getattr("format")?;
        let zeros = PyMemoryView::from(&pyo3::types::PyByteArray::new(py, &vec![0u8; nbytes]))?
            .call_method1("cast", (format,))?;
        mv.set_item(pyo3::types::PySlice::full(py), zeros)
    })();
}

/// Copy the secret in `obj` straight into `dst`.
pub fn copy_secret_into(py: Python<'_>, src: &SecretSource, dst: &mut [u8]) -> Result<()> {
    src.copy_into(py, dst)
}

/// Run `f` with the GIL released when `len` reaches [`GIL_RELEASE_THRESHOLD`]. `f` must not
/// touch Python objects (enforced by the `Send` bound).
pub fn maybe_detach<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len >= GIL_RELEASE_THRESHOLD {
        detach(py, f)
    } else {
        f()
    }
}
