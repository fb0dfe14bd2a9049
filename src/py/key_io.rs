//! Shared glue for key files and export policy, used by every key handle class
//! (`SecretKey`, `Ed25519PrivateKey`, `X25519PrivateKey`): parsing `format=`, loading a
//! file straight into the key's region, writing one from it, the one-way export seal, and
//! the refusal to pickle or copy.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::PyErr;

use crate::crypto::curve::CurvePrivateKey;
use crate::keyfile::{self, DecodedKeyFile, Format, KeyKind, LoadError};

use super::errors::{Error, Result};

/// Parse `format=` for `kind`; `None` means "detect".
pub fn parse_format(kind: KeyKind, format: Option<&str>) -> Result<Option<Format>> {
    let Some(name) = format else {
        return Ok(None);
    };
    let f = Format::from_name(name).ok_or_else(|| {
        Error::Value(format!(
            "format must be one of \"raw\", \"hex\", \"base64\", \"pem\", \"der\", not {name:?}"
        ))
    })?;
    if !f.allowed_for(kind) {
        return Err(Error::Value(format!(
            "format {name:?} is only for ed25519 and x25519 keys"
        )));
    }
    Ok(Some(f))
}

/// Map a key file failure to the bindings' error, naming `path`.
pub fn load_error(path: &Path, e: LoadError) -> Error {
    let shown = path.display().to_string();
    match e {
        LoadError::Memory(m) => Error::Memory(m),
        LoadError::File(keyfile::FileError::Insecure(reason)) => Error::InsecureKeyFile {
            path: shown,
            reason,
        },
        LoadError::File(keyfile::FileError::Unusable { reason, errno }) => Error::KeyFile {
            path: shown,
            reason,
            errno,
        },
    }
}

/// Open, check and read `path` into a guarded scratch region and find its format (call
/// without the GIL). Decode with [`DecodedKeyFile::decode_into`] into the key's region.
pub fn load(
    path: &Path,
    kind: KeyKind,
    format: Option<Format>,
    length: Option<usize>,
) -> Result<DecodedKeyFile> {
    DecodedKeyFile::load(path, kind, format, length).map_err(|e| load_error(path, e))
}

/// Load an Ed25519 or X25519 private key from `path` (call without the GIL): the file is
/// read and decoded through [`load`] like a secret key file, the key bytes are decoded
/// straight into the new key's region, and a public key stored in the file (PKCS#8
/// version 2) must be the one the private key derives.
pub fn load_private_key<K: CurvePrivateKey>(path: &Path, format: Option<Format>) -> Result<K> {
    let file = load(path, KeyKind::from_algorithm(K::ALGORITHM), format, None)?;
    let key = K::new_with(|dst| file.decode_into(dst).map_err(|e| load_error(path, e)))?;
    if file
        .public()
        .is_some_and(|stored| stored != key.public_bytes())
    {
        return Err(Error::KeyFile {
            path: path.display().to_string(),
            reason: format!(
                "the public key stored in the file does not belong to its {} private key",
                K::ALGORITHM.name()
            ),
            errno: None,
        });
    }
    Ok(key)
}

/// Write `key` (of `kind`) to `path` as the format named `format` (call without the GIL).
pub fn write(path: &Path, kind: KeyKind, format: &str, key: &[u8], overwrite: bool) -> Result<()> {
    let format = parse_format(kind, Some(format))?.unwrap_or(Format::Raw);
    keyfile::write_key_file(path, kind, format, key, overwrite).map_err(|e| load_error(path, e))
}

/// The `TypeError` raised by pickling or copying a key handle.
pub fn no_copy(class: &str, what: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "{class} cannot be {what}: its secret is kept out of Python memory on purpose. Keep \
         using the handle, or save it explicitly (KeyStore, to_file)"
    ))
}

/// The one-way export seal of a key handle.
#[derive(Debug)]
pub struct ExportSeal(AtomicBool);

impl ExportSeal {
    /// A seal, open (exportable) or closed.
    pub fn new(exportable: bool) -> Self {
        ExportSeal(AtomicBool::new(exportable))
    }

    /// Whether the key may still be exported.
    pub fn exportable(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Close the seal (one way).
    pub fn seal(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// `Ok` when exportable, else [`Error::NotExportable`] naming `what`.
    pub fn check(&self, what: &'static str) -> Result<()> {
        if self.exportable() {
            Ok(())
        } else {
            Err(Error::NotExportable(what))
        }
    }
}
