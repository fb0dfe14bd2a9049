//! Shared glue for key files and export policy, used by every key handle class
//! (`SecretKey`, and the asymmetric keys): parsing `format=`, loading a file straight into
//! the key's region, writing one from it, and the one-way export seal.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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
        LoadError::File(keyfile::KeyFileError::Insecure(reason)) => Error::InsecureKeyFile {
            path: shown,
            reason,
        },
        LoadError::File(keyfile::KeyFileError::Unusable { reason, errno }) => Error::KeyFile {
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

/// Write `key` (of `kind`) to `path` as `format` (call without the GIL).
pub fn write(
    path: &Path,
    kind: KeyKind,
    format: Format,
    key: &[u8],
    overwrite: bool,
) -> Result<()> {
    keyfile::write_key_file(path, kind, format, key, overwrite).map_err(|e| load_error(path, e))
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
