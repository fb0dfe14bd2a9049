//! `expose(format=...)` of the private key classes: the key encoded as a key file would
//! hold it (PKCS#8 DER or PEM, or the raw 32 bytes of an Ed25519/X25519 key), in a
//! guarded scratch region, behind the same scoped, read-only view as `SecretKey.expose()`.
//!
//! It is the one way a private key's bytes reach Python code (the pyca/cryptography
//! adapter's `private_bytes` copies from it when the caller allowed export). The encoding
//! is made in guarded memory (the encoders of `keyfile/` and `crypto/rsa.rs`); the view
//! counts against the key's cell, so `destroy()` raises `KeyInUseError` while it is open,
//! `destroy()` wipes the encoded copy (even while its `Exposure` object lives on), and a
//! sealed key (`exportable=False`, `seal_export()`) refuses both the encoding and every
//! view of it.

use std::sync::{Arc, Mutex, Weak};

use pyo3::Python;

use crate::crypto::curve::CurvePrivateKey;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::rsa::{PrivateEncoding, RsaPrivateKey};
use crate::crypto::{ec, ed25519, x25519};
use crate::keyfile::{with_encoded, Format, LoadError};
use crate::memory::SecretBuf;

use super::errors::{Error, Result};
use super::key_cell::{CellKey, KeyCell, Revoke, ViewSource};
use super::key_io::buffer_error_for;

/// A private key that can be encoded for export.
pub trait ExportEncode: CellKey {
    /// What the key is called in messages.
    const WHAT: &'static str;
    /// The key encoded as `format` (PEM, DER or raw) in a new guarded region.
    fn encode(&self, format: Format) -> Result<SecretBuf>;
}

/// A copy of `data` in a new guarded region.
fn guarded_copy(data: &[u8]) -> std::result::Result<SecretBuf, LoadError> {
    Ok(SecretBuf::new_with(data.len(), |d| {
        d.copy_from_slice(data);
        Ok::<(), crate::memory::MemoryError>(())
    })?)
}

/// A curve key (Ed25519, X25519, EC) through the key file encoder of its kind.
fn encode_curve(kind: KeyKind, what: &str, secret: &[u8], format: Format) -> Result<SecretBuf> {
    with_encoded(kind, format, secret, None, guarded_copy).map_err(|e| buffer_error_for(what, e))
}

impl ExportEncode for ed25519::PrivateKey {
    const WHAT: &'static str = "Ed25519 private key";
    fn encode(&self, format: Format) -> Result<SecretBuf> {
        let kind = KeyKind::from_algorithm(<Self as CurvePrivateKey>::ALGORITHM);
        encode_curve(kind, Self::WHAT, self.secret()?, format)
    }
}

impl ExportEncode for x25519::PrivateKey {
    const WHAT: &'static str = "X25519 private key";
    fn encode(&self, format: Format) -> Result<SecretBuf> {
        let kind = KeyKind::from_algorithm(<Self as CurvePrivateKey>::ALGORITHM);
        encode_curve(kind, Self::WHAT, self.secret()?, format)
    }
}

impl ExportEncode for ec::PrivateKey {
    const WHAT: &'static str = "EC private key";
    fn encode(&self, format: Format) -> Result<SecretBuf> {
        let kind = KeyKind::from_ec_curve(self.curve());
        encode_curve(kind, Self::WHAT, self.private_bytes()?, format)
    }
}

impl ExportEncode for RsaPrivateKey {
    const WHAT: &'static str = "RSA private key";
    fn encode(&self, format: Format) -> Result<SecretBuf> {
        let pem = match format {
            Format::Pem => true,
            Format::Der => false,
            _ => return Err(not_a_format(format.name(), "\"der\" or \"pem\"")),
        };
        let encoding = PrivateEncoding { pkcs8: true, pem };
        self.with_encoded(encoding, guarded_copy)
            .map_err(|e| buffer_error_for(Self::WHAT, e))
    }
}

fn not_a_format(name: &str, allowed: &str) -> Error {
    Error::Value(format!("format must be {allowed}, not {name:?}"))
}

/// The `format=` argument of `expose`: "der" or "pem" (PKCS#8), or "raw" where `raw`.
pub fn parse_export_format(name: &str, raw: bool) -> Result<Format> {
    match name {
        "der" => Ok(Format::Der),
        "pem" => Ok(Format::Pem),
        "raw" if raw => Ok(Format::Raw),
        other if raw => Err(not_a_format(other, "\"der\", \"pem\" or \"raw\"")),
        other => Err(not_a_format(other, "\"der\" or \"pem\"")),
    }
}

/// The encoded key behind an `Exposure`: a view of it is counted as a view of the key, and
/// destroying the key wipes it (DESIGN.md invariant 11), even while the `Exposure` lives.
struct Encoded<K> {
    cell: Arc<KeyCell<K>>,
    /// `None` once the key was destroyed.
    buf: Mutex<Option<SecretBuf>>,
}

impl<K: CellKey> ViewSource for Encoded<K> {
    fn check_exportable(&self) -> Result<()> {
        ViewSource::check_exportable(&*self.cell)
    }

    fn open_view(&self) -> Result<(*const u8, usize)> {
        // Counted (and checked: live, exportable) by the key's cell, so the key, and with
        // it this copy, cannot be destroyed while the view is open.
        self.cell.open_view()?;
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        match buf.as_ref().map(SecretBuf::bytes) {
            Some(Ok(bytes)) => Ok((bytes.as_ptr(), bytes.len())),
            Some(Err(e)) => {
                self.cell.close_view();
                Err(e.into())
            }
            None => {
                // Only after the key's destroy(), which the cell reports.
                self.cell.close_view();
                Err(self.cell.check_live().err().unwrap_or_else(|| {
                    Error::Value("the key of this exposure was destroyed".to_owned())
                }))
            }
        }
    }

    fn close_view(&self) {
        self.cell.close_view();
    }
}

impl<K: CellKey> Revoke for Encoded<K> {
    /// Called by the key's `destroy()` once the key is gone, which it never is while a
    /// view is open (the views are counted by the key's cell): the copy is unreachable.
    fn revoke(&self, _py: Python<'_>) -> Result<()> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(())
    }

    /// The key's seal governs every view (`check_exportable` asks the key's cell).
    fn seal(&self) {}
}

/// The view source of `expose(format=...)`: the key encoded now, in guarded memory, and
/// registered with the key so that `destroy()` wipes it.
pub fn encoded_view<K: ExportEncode>(
    cell: &Arc<KeyCell<K>>,
    format: Format,
) -> Result<Arc<dyn ViewSource>> {
    cell.check_exportable()?;
    let live = cell.live()?;
    let encoded = Arc::new(Encoded {
        cell: cell.clone(),
        buf: Mutex::new(Some(live.key().encode(format)?)),
    });
    // Registered under the read lock (see `KeyCell::add_dependent`).
    let weak: Weak<dyn Revoke> = Arc::downgrade(&(encoded.clone() as Arc<dyn Revoke>));
    cell.add_dependent(weak);
    drop(live);
    Ok(encoded)
}

/// A `#[pymethods]` block with `expose(format=...)` for a private key class whose
/// `cell` field is an `Arc<KeyCell<K>>` of an [`ExportEncode`] key; `$raw` says whether
/// `format="raw"` (the 32 key bytes) exists for it.
macro_rules! private_export_methods {
    ($cls:ty, $raw:literal) => {
        #[::pyo3::pymethods]
        impl $cls {
            /// A scoped, read-only view of the private key encoded as `format`: "der" or
            /// "pem" (PKCS#8, as `to_file` writes it) or, for Ed25519 and X25519 keys,
            /// "raw" (the 32 bytes). Use it as `with key.expose(format="der") as view:`;
            /// the view is valid only inside the block, and `destroy()` raises
            /// `KeyInUseError` while it is open. The encoding is made in guarded memory
            /// and wiped when the `Exposure` is freed or the key destroyed; copying the
            /// view (`bytes(view)`) puts the key on the Python heap, where it cannot be
            /// wiped. Raises `KeyNotExportableError` for a sealed key.
            #[pyo3(signature = (*, format = "der"))]
            fn expose(
                &self,
                format: &str,
            ) -> $crate::py::errors::Result<$crate::py::view::Exposure> {
                let format = $crate::py::export::parse_export_format(format, $raw)?;
                let source = $crate::py::export::encoded_view(&self.cell, format)?;
                Ok($crate::py::view::Exposure::new(source))
            }
        }
    };
}

pub(crate) use private_export_methods;
