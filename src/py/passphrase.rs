//! `Passphrase` (a passphrase in guarded memory, for `KeyStore` and encrypted key files) and
//! the passphrase arguments that accept one or a writable buffer.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::memory::SecretBuf;

use super::bytes_like::SecretSource;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle};
use super::key_io;

/// A passphrase held in guarded memory, for `KeyStore` (as `master=` or `new_master`).
///
/// `Passphrase.from_file(path)` reads a passphrase file straight into a guarded region,
/// with the checks key files get (no symlink, no FIFO or other non-regular file, owned by
/// this user, no group/other permission bits; `InsecureKeyFileError` / `KeyFileError`
/// otherwise). One trailing newline (LF or CRLF) is dropped. It is never readable from
/// Python (never exportable); `destroy()` (or leaving a `with` block) wipes it. Its life
/// cycle is every key handle's (`key_cell.rs`).
#[pyclass(frozen, module = "keycell._native")]
pub struct Passphrase {
    cell: Arc<KeyCell<SecretBuf>>,
}

impl KeyHandle for Passphrase {
    type Key = SecretBuf;
    fn cell(&self) -> &KeyCell<SecretBuf> {
        &self.cell
    }
}

key_handle_methods!(Passphrase);

#[pymethods]
impl Passphrase {
    /// Read the passphrase file at `path` into guarded memory.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> Result<Passphrase> {
        let buf = detach(py, || {
            crate::keyfile::read_passphrase_file(&path).map_err(|e| key_io::load_error(&path, e))
        })?;
        // No length in the repr: a passphrase's length is a hint to its guesser.
        Ok(Passphrase {
            cell: Arc::new(KeyCell::new(py, "Passphrase", buf, false, String::new())?),
        })
    }
}

/// A passphrase argument copied into a new guarded region: from a [`Passphrase`] (guarded
/// region to guarded region) or a writable buffer (wiped afterwards, also when refused
/// for its length). `bytes` and `str` cannot be wiped and are refused with `type_error`.
pub(super) fn copy_passphrase(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    type_error: &str,
) -> Result<SecretBuf> {
    if let Ok(p) = obj.cast::<Passphrase>() {
        let live = p.get().cell.live()?;
        let src = live.key().bytes()?;
        return SecretBuf::new_with(src.len(), |d| {
            d.copy_from_slice(src);
            Ok::<(), Error>(())
        });
    }
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyString>() {
        return Err(Error::Type(type_error.to_owned()));
    }
    let src =
        SecretSource::new(obj, "passphrase").map_err(|_| Error::Type(type_error.to_owned()))?;
    if !src.writable() {
        return Err(Error::Type(type_error.to_owned()));
    }
    if src.len() == 0 {
        return Err(Error::Value("the passphrase is empty".to_owned()));
    }
    if src.len() > crate::crypto::symmetric::MAX_KEY_LEN {
        src.wipe(py)?;
        return Err(Error::Value(format!(
            "a passphrase may be at most {} bytes",
            crate::crypto::symmetric::MAX_KEY_LEN
        )));
    }
    let copied = SecretBuf::new_with(src.len(), |dst| src.copy_into(py, dst));
    src.wipe(py)?;
    copied
}

const KEY_PASSPHRASE_TYPE_ERROR: &str = "passphrase must be a keycell.Passphrase or a \
    writable buffer (bytearray or memoryview of one): keycell copies it into guarded memory \
    and wipes the buffer. A bytes or str passphrase cannot be wiped and stays in Python \
    memory, so it is refused";

/// The `passphrase=` argument of an encrypted key file (OpenSSH), copied into a guarded
/// region (a writable source is wiped): see [`copy_passphrase`].
pub fn key_passphrase(
    py: Python<'_>,
    passphrase: Option<&Bound<'_, PyAny>>,
) -> Result<Option<SecretBuf>> {
    passphrase
        .filter(|p| !p.is_none())
        .map(|p| copy_passphrase(py, p, KEY_PASSPHRASE_TYPE_ERROR))
        .transpose()
}

/// Why a store master passphrase (a `Passphrase`, or a bytes-like object, read in place and
/// not wiped) is weak: shorter than 12 characters, one character or a sequence of fewer
/// than 12 characters repeated (counted in UTF-8 characters), or one of the most common
/// passwords; `None` when it is none of these. The message names neither the
/// passphrase nor its length. `keycell store init` warns with it.
#[pyfunction]
#[pyo3(signature = (passphrase, /))]
pub fn passphrase_weakness(
    py: Python<'_>,
    passphrase: &Bound<'_, PyAny>,
) -> Result<Option<String>> {
    use crate::store::weak_passphrase::weakness;
    if let Ok(p) = passphrase.cast::<Passphrase>() {
        let live = p.get().cell.live()?;
        return Ok(weakness(live.key().bytes()?).map(|w| w.message()));
    }
    let src = SecretSource::new(passphrase, "passphrase")?;
    // A guarded copy (wiped when dropped), so the check reads no mutable Python memory.
    let copy = SecretBuf::new_with(src.len().max(1), |dst| {
        src.copy_into(py, &mut dst[..src.len()])
    })?;
    Ok(weakness(&copy.bytes()?[..src.len()]).map(|w| w.message()))
}
