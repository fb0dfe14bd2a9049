//! `SecretKey`: the Python handle for a symmetric key in a guarded region.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;

use crate::crypto::symmetric::{SymmetricKey, MAX_KEY_LEN};
use crate::keyfile::KeyKind;

use super::bytes_like::{copy_secret_into, SecretSource};
use super::errors::{Error, Result};
use super::key_io::{self, ExportSeal};
use super::protection::{report_new_region, Protection};
use super::view::Exposure;

/// A symmetric secret key (HMAC key, session key) held outside the Python heap.
///
/// The bytes live in a guarded region: guard pages on both sides, a canary, `mlock`,
/// `MADV_DONTDUMP` and `MADV_WIPEONFORK`, read-only while idle, wiped on destroy. Python
/// code only ever holds this opaque handle.
#[pyclass(frozen, module = "keycell._native")]
pub struct SecretKey {
    state: RwLock<Option<SymmetricKey>>,
    /// Open buffer exports (views). `destroy()` refuses while it is non-zero.
    pub(crate) views: AtomicUsize,
    len: usize,
    /// One-way export seal (`exportable=False`, `seal_export()`).
    pub(crate) export: ExportSeal,
}

/// A key length argument: an `int` (anything with `__index__`). A negative or huge value
/// is a `ValueError` naming the valid range, like every other out-of-range length, not
/// the `OverflowError` a plain `usize` argument would raise.
pub struct KeyLength(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for KeyLength {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<usize>() {
            Ok(n) => Ok(KeyLength(n)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
                Err(Error::Value(format!(
                    "key length must be between 1 and {MAX_KEY_LEN} bytes"
                ))
                .into())
            }
            Err(e) => Err(e),
        }
    }
}

/// A read guard on a live key.
pub struct LiveKey<'a>(RwLockReadGuard<'a, Option<SymmetricKey>>);

impl LiveKey<'_> {
    /// The key.
    pub fn key(&self) -> &SymmetricKey {
        // `live()` only builds a LiveKey around `Some`.
        match self.0.as_ref() {
            Some(k) => k,
            None => unreachable!("LiveKey is only built around a live key"),
        }
    }
}

impl SecretKey {
    pub(crate) fn wrap(py: Python<'_>, key: SymmetricKey) -> Result<SecretKey> {
        SecretKey::wrap_with(py, key, true)
    }

    /// Wrap `key`, exportable or not.
    pub(crate) fn wrap_with(
        py: Python<'_>,
        key: SymmetricKey,
        exportable: bool,
    ) -> Result<SecretKey> {
        report_new_region(py, &key.protection())?;
        let len = key.len();
        Ok(SecretKey {
            state: RwLock::new(Some(key)),
            views: AtomicUsize::new(0),
            len,
            export: ExportSeal::new(exportable),
        })
    }

    /// Read access to the live key, or `KeyDestroyedError`.
    pub fn live(&self) -> Result<LiveKey<'_>> {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(Error::Destroyed("SecretKey"));
        }
        // Fail early in a fork child, before any caller reads zeros.
        if let Some(k) = guard.as_ref() {
            k.bytes()?;
        }
        Ok(LiveKey(guard))
    }

    fn is_destroyed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

#[pymethods]
impl SecretKey {
    /// Generate a key of `length` bytes from the OS CSPRNG, straight into a guarded region.
    /// With `exportable=False` the key can never be exposed or written to a key file.
    #[staticmethod]
    #[pyo3(
        signature = (length = KeyLength(32), *, exportable = true),
        text_signature = "(length=32, *, exportable=True)"
    )]
    fn generate(py: Python<'_>, length: KeyLength, exportable: bool) -> Result<SecretKey> {
        let key = SymmetricKey::generate(length.0)?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Copy a key from any bytes-like object. When the source is writable and `wipe` is
    /// true, the source is overwritten with zeros afterwards.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_buffer(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<SecretKey> {
        let src = SecretSource::new(data, "data")?;
        let key = SymmetricKey::new_with(src.len(), |dst| copy_secret_into(py, &src, dst))?;
        if wipe && src.writable() {
            src.wipe(py)?;
        }
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Read a key from a file, straight into a guarded region.
    ///
    /// The file is opened with `O_NOFOLLOW | O_CLOEXEC` and checked on the open
    /// descriptor: it must be a regular file owned by this user with no group or other
    /// permissions, and not empty. It is read into a guarded scratch region and decoded
    /// from there straight into the key's region.
    ///
    /// `format` is `"raw"`, `"hex"` or `"base64"`, or `None` to detect it: with `length`
    /// given, the one encoding that yields exactly `length` bytes (raw when the file has
    /// exactly `length` bytes); without it, binary content is raw and hex text is hex, and
    /// any other text must be named with `format` (see docs/key-formats.md).
    #[staticmethod]
    #[pyo3(signature = (path, *, length = None, format = None, exportable = true))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        length: Option<KeyLength>,
        format: Option<&str>,
        exportable: bool,
    ) -> Result<SecretKey> {
        let length = length.map(|l| l.0);
        if let Some(l) = length {
            if l == 0 || l > MAX_KEY_LEN {
                return Err(Error::Value(format!(
                    "length must be between 1 and {MAX_KEY_LEN} bytes"
                )));
            }
        }
        let format = key_io::parse_format(KeyKind::Secret, format)?;
        let key = py.detach(|| -> Result<SymmetricKey> {
            let file = key_io::load(&path, KeyKind::Secret, format, length)?;
            Ok(SymmetricKey::new_with(file.key_len(), |dst| {
                file.decode_into(dst)
                    .map_err(|e| key_io::load_error(&path, e))
            })?)
        })?;
        SecretKey::wrap_with(py, key, exportable)
    }

    /// Write the key to `path` atomically: a temporary file in the same directory created
    /// with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600, written from the key's region (hex
    /// and base64 are encoded in a guarded scratch region), `fsync`ed, renamed into place,
    /// and the directory `fsync`ed. A crash never leaves a partial file under `path`.
    /// Without `overwrite`, an existing `path` is never replaced (`KeyFileError`, errno
    /// `EEXIST`). Raises `KeyNotExportableError` for a sealed key.
    #[pyo3(signature = (path, *, format = "raw", overwrite = false))]
    fn to_file(&self, py: Python<'_>, path: PathBuf, format: &str, overwrite: bool) -> Result<()> {
        self.export.check("SecretKey")?;
        // The key's lock is taken inside the GIL-free section and released before the GIL
        // is taken back: holding it across the wait for the GIL can deadlock against a
        // destroy() waiting for the write lock and a reader holding the GIL.
        py.detach(|| {
            let live = self.live()?;
            key_io::write(
                &path,
                KeyKind::Secret,
                format,
                live.key().bytes()?,
                overwrite,
            )
        })
    }

    /// Seal the key against export, for good: afterwards `expose()` and `to_file()` raise
    /// `KeyNotExportableError`. The key still works for everything else (HMAC, key store).
    fn seal_export(&self) -> Result<()> {
        self.live()?;
        self.export.seal();
        Ok(())
    }

    /// False once the key was created with `exportable=False` or sealed with
    /// `seal_export()`.
    #[getter]
    fn exportable(&self) -> bool {
        self.export.exportable()
    }

    /// The key length in bytes. Raises `KeyDestroyedError` after `destroy()`, like every
    /// other use.
    fn __len__(&self) -> Result<usize> {
        if self.is_destroyed() {
            return Err(Error::Destroyed("SecretKey"));
        }
        Ok(self.len)
    }

    /// Wipe, unlock and unmap the key. Idempotent. Raises `KeyInUseError` (and frees
    /// nothing) while a view from `expose()` is open.
    fn destroy(&self, py: Python<'_>) -> Result<()> {
        py.detach(|| {
            let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
            if guard.is_some() && self.views.load(Ordering::SeqCst) != 0 {
                return Err(Error::InUse(
                    "cannot destroy a SecretKey while a view from expose() is still open",
                ));
            }
            // Dropping the SymmetricKey wipes, unlocks and unmaps its region.
            guard.take();
            Ok(())
        })
    }

    /// True once `destroy()` has run.
    #[getter]
    fn destroyed(&self) -> bool {
        self.is_destroyed()
    }

    /// The protection the key's memory actually has.
    #[getter]
    fn protection(&self) -> Result<Protection> {
        Ok(Protection::from(self.live()?.key().protection()))
    }

    /// A context manager yielding a read-only `memoryview` of the key bytes, released at
    /// the end of the block. Raises `KeyNotExportableError` for a sealed key.
    fn expose(slf: &Bound<'_, Self>) -> Result<Exposure> {
        slf.get().live()?;
        slf.get().export.check("SecretKey")?;
        Ok(Exposure::new(slf.clone().unbind()))
    }

    // --- HMAC (helpers in py/hmac.rs) ---

    /// HMAC of `data` (any bytes-like object) with this key; returns the tag as `bytes`.
    ///
    /// `algorithm` is "sha256" (default), "sha384" or "sha512". The key-derived inner and
    /// outer hash states are precomputed in the key's guarded region, so a short message
    /// costs two hash compressions. Inputs of 2 KiB or more are hashed with the GIL
    /// released.
    #[pyo3(signature = (data, algorithm = "sha256"))]
    fn hmac<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        algorithm: &str,
    ) -> Result<Bound<'py, pyo3::types::PyBytes>> {
        super::hmac::key_hmac(py, self, data, algorithm)
    }

    /// Verify an HMAC `tag` over `data` in constant time; raises `InvalidSignature` when it
    /// does not match.
    ///
    /// A tag of the full digest length is compared in full. A shorter (truncated) tag is
    /// compared with the same number of leading bytes of the HMAC, but only when it is at
    /// least 16 bytes long; a tag shorter than 16 bytes or longer than the digest never
    /// verifies.
    #[pyo3(signature = (data, tag, algorithm = "sha256"))]
    fn verify_hmac(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        tag: &Bound<'_, PyAny>,
        algorithm: &str,
    ) -> Result<()> {
        super::hmac::key_verify_hmac(py, self, data, tag, algorithm)
    }

    // --- end HMAC ---

    fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<SecretKey>> {
        slf.get().live()?;
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> Result<bool> {
        self.destroy(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        if self.is_destroyed() {
            "<SecretKey destroyed>".to_owned()
        } else {
            format!("<SecretKey {} bytes>", self.len)
        }
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> Result<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<SecretKey>() else {
            return Ok(py.NotImplemented());
        };
        let equal = match op {
            CompareOp::Eq | CompareOp::Ne => keys_equal(slf.get(), other.get())?,
            _ => return Ok(py.NotImplemented()),
        };
        let result = if matches!(op, CompareOp::Eq) {
            equal
        } else {
            !equal
        };
        Ok(pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind())
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(key_io::no_copy("SecretKey", "pickled"))
    }

    fn __copy__(&self) -> PyResult<()> {
        Err(key_io::no_copy("SecretKey", "copied"))
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(key_io::no_copy("SecretKey", "copied"))
    }
}

/// Constant-time equality of two keys. Locks are taken in address order so two threads
/// comparing the same pair in opposite order cannot deadlock against a waiting destroy.
fn keys_equal(a: &SecretKey, b: &SecretKey) -> Result<bool> {
    if std::ptr::eq(a, b) {
        a.live()?;
        return Ok(true);
    }
    let (first, second) = if (a as *const SecretKey) < (b as *const SecretKey) {
        (a, b)
    } else {
        (b, a)
    };
    let g1 = first.live()?;
    let g2 = second.live()?;
    Ok(g1.key().ct_eq(g2.key())?)
}
