//! What the Ed25519 and X25519 bindings share: [`PrivateKeyCell`], the state of a private
//! key handle (the key behind its lock, the export seal, creation, loading, writing,
//! destroying), and the public key helpers.
//!
//! Locking: a thread never waits for the GIL while it holds a key's lock. When an
//! operation releases the GIL (long messages, file I/O), the lock is taken and released
//! inside the GIL-free section; when it keeps the GIL, it never releases it while holding
//! the lock. `destroy()` takes the write lock with the GIL released. So no thread can hold
//! the lock while waiting for the GIL that a thread blocked on the lock holds.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes};

use crate::crypto::curve::CurvePrivateKey;
use crate::crypto::curve::{Algorithm, KEY_LEN};
use crate::crypto::pkcs8;
use crate::keyfile::KeyKind;

use super::bytes_like::{bytes_like, copy_secret_into, maybe_detach, SecretSource};
use super::errors::{Error, Result};
use super::key_io::{self, ExportSeal};
use super::protection::{report_new_region, Protection};

/// The state of an Ed25519 or X25519 private key handle.
pub struct PrivateKeyCell<K> {
    /// The Python class name, for messages.
    class: &'static str,
    state: RwLock<Option<K>>,
    public: [u8; KEY_LEN],
    export: ExportSeal,
}

/// A read guard on a live key.
pub struct LiveKey<'a, K>(RwLockReadGuard<'a, Option<K>>);

impl<K> LiveKey<'_, K> {
    /// The key.
    pub fn key(&self) -> &K {
        match self.0.as_ref() {
            Some(k) => k,
            None => unreachable!("LiveKey is only built around a live key"),
        }
    }
}

impl<K: CurvePrivateKey> PrivateKeyCell<K> {
    /// Wrap a new key (reporting a missing memory protection as the policy says).
    pub fn new(py: Python<'_>, class: &'static str, key: K, exportable: bool) -> Result<Self> {
        report_new_region(py, &key.protection())?;
        Ok(PrivateKeyCell {
            class,
            public: *key.public_bytes(),
            state: RwLock::new(Some(key)),
            export: ExportSeal::new(exportable),
        })
    }

    /// Generate a key from the OS CSPRNG.
    pub fn generate(py: Python<'_>, class: &'static str, exportable: bool) -> Result<Self> {
        Self::new(py, class, K::generate()?, exportable)
    }

    /// Copy a key from a bytes-like object (wiped afterwards when writable and `wipe`).
    pub fn from_private_bytes(
        py: Python<'_>,
        class: &'static str,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        let src = SecretSource::new(data, "data")?;
        if src.len() != KEY_LEN {
            let what = match K::ALGORITHM {
                Algorithm::Ed25519 => "an Ed25519 private key (seed)",
                Algorithm::X25519 => "an X25519 private key",
            };
            return Err(Error::Value(format!("{what} must be exactly 32 bytes")));
        }
        let key = K::new_with(|dst| copy_secret_into(py, &src, dst))?;
        if wipe && src.writable() {
            src.wipe(py)?;
        }
        Self::new(py, class, key, exportable)
    }

    /// Load a key file (see [`key_io::load_private_key`]) with the GIL released.
    pub fn from_file(
        py: Python<'_>,
        class: &'static str,
        path: PathBuf,
        format: Option<&str>,
        exportable: bool,
    ) -> Result<Self> {
        let format = key_io::parse_format(KeyKind::from_algorithm(K::ALGORITHM), format)?;
        let key = py.detach(|| key_io::load_private_key::<K>(&path, format))?;
        Self::new(py, class, key, exportable)
    }

    /// Read access to the live key, or `KeyDestroyedError` / `ForkedKeyError`.
    pub fn live(&self) -> Result<LiveKey<'_, K>> {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => Err(Error::Destroyed(self.class)),
            Some(k) => {
                k.check()?;
                Ok(LiveKey(guard))
            }
        }
    }

    /// Run `f` on the live key, with the GIL released when `len` reaches the threshold.
    /// The lock is taken inside the (possibly GIL-free) section; see the module docs.
    pub fn with_key<T: Send>(
        &self,
        py: Python<'_>,
        len: usize,
        f: impl FnOnce(&K) -> Result<T> + Send,
    ) -> Result<T> {
        maybe_detach(py, len, || {
            let live = self.live()?;
            f(live.key())
        })
    }

    /// The public key (raises once destroyed).
    pub fn public(&self) -> Result<&[u8; KEY_LEN]> {
        self.live()?;
        Ok(&self.public)
    }

    /// Write the key to `path` (see `to_file` in the stubs); refuses a sealed key.
    pub fn to_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: &str,
        overwrite: bool,
    ) -> Result<()> {
        self.export.check(self.class)?;
        let kind = KeyKind::from_algorithm(K::ALGORITHM);
        py.detach(|| {
            let live = self.live()?;
            let bytes = live.key().private_bytes()?;
            key_io::write(&path, kind, format, bytes, overwrite)
        })
    }

    /// Seal the key against export, for good.
    pub fn seal_export(&self) -> Result<()> {
        self.live()?;
        self.export.seal();
        Ok(())
    }

    /// Whether the key may still be exported.
    pub fn exportable(&self) -> bool {
        self.export.exportable()
    }

    /// Wipe, unlock and unmap the key. Idempotent; waits for operations in progress.
    pub fn destroy(&self, py: Python<'_>) {
        py.detach(|| {
            // Dropping the key wipes, unlocks and unmaps its region.
            self.state.write().unwrap_or_else(|e| e.into_inner()).take();
        });
    }

    /// True once destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The protection the key's memory actually has.
    pub fn protection(&self) -> Result<Protection> {
        Ok(Protection::from(self.live()?.key().protection()))
    }

    /// `repr()`: the class and the public key, never the secret.
    pub fn repr(&self) -> String {
        if self.is_destroyed() {
            format!("<{} destroyed>", self.class)
        } else {
            format!("<{} public={}>", self.class, hex(&self.public))
        }
    }

    /// The `TypeError` of pickling (`what = "pickled"`) or copying.
    pub fn no_copy(&self, what: &str) -> PyErr {
        key_io::no_copy(self.class, what)
    }
}

/// `__richcmp__` of public keys: `==` / `!=` by `equal`, other comparisons unsupported.
pub fn compare(py: Python<'_>, op: CompareOp, equal: bool) -> Py<PyAny> {
    let result = match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => return py.NotImplemented(),
    };
    PyBool::new(py, result).to_owned().into_any().unbind()
}

/// Lowercase hex of public bytes (for `repr`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A raw 32-byte public key from a bytes-like argument, or `ValueError`.
pub fn raw_public(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = bytes_like(data, "data")?;
    data.as_slice().try_into().map_err(|_| {
        Error::Value(format!(
            "an {} public key must be exactly 32 bytes",
            alg.name()
        ))
    })
}

/// A public key from DER SubjectPublicKeyInfo bytes, or `ValueError`.
pub fn public_from_der(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = bytes_like(data, "data")?;
    pkcs8::parse_spki_der(alg, data.as_slice())
        .map_err(|e| Error::Value(format!("invalid {} public key DER: {e}", alg.name())))
}

/// A public key from a PEM "PUBLIC KEY" block, or `ValueError`.
pub fn public_from_pem(data: &Bound<'_, PyAny>, alg: Algorithm) -> Result<[u8; 32]> {
    let data = if let Ok(s) = data.cast::<pyo3::types::PyString>() {
        s.to_str()?.as_bytes().to_vec()
    } else {
        bytes_like(data, "data")?.as_slice().to_vec()
    };
    pkcs8::parse_spki_pem(alg, &data)
        .map_err(|e| Error::Value(format!("invalid {} public key PEM: {e}", alg.name())))
}

/// `bytes` of the DER SubjectPublicKeyInfo.
pub fn der_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pkcs8::spki_der(alg, raw))
}

/// `bytes` of the PEM "PUBLIC KEY" block.
pub fn pem_bytes<'py>(py: Python<'py>, alg: Algorithm, raw: &[u8; 32]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &pkcs8::spki_pem(alg, raw))
}

/// The Python methods every private key class has, generated once for both classes and
/// delegating to the class's `cell` (a [`PrivateKeyCell`]): creation, key files, the
/// export seal, destroy, context manager, `repr`, and the refusal to pickle or copy.
/// `$methods` are the class's own methods (signing, exchange, public key), placed in the
/// same `#[pymethods]` block. The class provides
/// `fn from_cell(PrivateKeyCell<$key>) -> Result<Self>`.
///
/// `$alg` is the `openssl genpkey -algorithm` name, `$what` what the 32 bytes are called.
macro_rules! private_key_methods {
    ($cls:ident, $key:ty, $alg:literal, $what:literal, { $($methods:tt)* }) => {
        impl $cls {
            /// Wrap a key (from the key store), exportable or not.
            pub(crate) fn wrap(
                py: ::pyo3::Python<'_>,
                key: $key,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                Self::from_cell($crate::py::asymmetric::PrivateKeyCell::new(
                    py,
                    stringify!($cls),
                    key,
                    exportable,
                )?)
            }

            /// The key's state (for the key store).
            pub(crate) fn cell(&self) -> &$crate::py::asymmetric::PrivateKeyCell<$key> {
                &self.cell
            }
        }

        #[::pyo3::pymethods]
        impl $cls {
            /// Generate a key from the OS CSPRNG, straight into a guarded region. With
            /// `exportable=False` the key can never be written to a key file.
            #[staticmethod]
            #[pyo3(signature = (*, exportable = true))]
            fn generate(
                py: ::pyo3::Python<'_>,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                Self::from_cell($crate::py::asymmetric::PrivateKeyCell::generate(
                    py,
                    stringify!($cls),
                    exportable,
                )?)
            }

            #[doc = concat!("Load a key from its 32-byte ", $what, ", any bytes-like object. \
                When the source is writable and `wipe` is true, it is overwritten with zeros \
                afterwards (a `bytes` object cannot be wiped: avoid holding private keys in \
                `bytes`).")]
            #[staticmethod]
            #[pyo3(signature = (data, *, wipe = true, exportable = true))]
            fn from_private_bytes(
                py: ::pyo3::Python<'_>,
                data: &::pyo3::Bound<'_, ::pyo3::PyAny>,
                wipe: bool,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                Self::from_cell($crate::py::asymmetric::PrivateKeyCell::from_private_bytes(
                    py,
                    stringify!($cls),
                    data,
                    wipe,
                    exportable,
                )?)
            }

            #[doc = concat!("Load a key from a file: the 32-byte ", $what, " raw, in hex or in \
                base64, or an unencrypted PKCS#8 key (version 1 or 2) in PEM, as `openssl \
                genpkey -algorithm ", $alg, "` writes it, or DER. `format` is \"raw\", \"hex\", \
                \"base64\", \"pem\" or \"der\", or `None` to detect it (docs/key-formats.md). \
                A public key stored in the file must belong to the private key.")]
            #[doc = ""]
            #[doc = "The file is opened with `O_NOFOLLOW` and checked on the open descriptor \
                like `SecretKey.from_file` (regular file, owned by this user, no group or \
                other permissions); it is read and decoded in guarded memory only."]
            #[staticmethod]
            #[pyo3(signature = (path, *, format = None, exportable = true))]
            fn from_file(
                py: ::pyo3::Python<'_>,
                path: ::std::path::PathBuf,
                format: Option<&str>,
                exportable: bool,
            ) -> $crate::py::errors::Result<Self> {
                Self::from_cell($crate::py::asymmetric::PrivateKeyCell::from_file(
                    py,
                    stringify!($cls),
                    path,
                    format,
                    exportable,
                )?)
            }

            #[doc = concat!("Write the key to `path` atomically, like `SecretKey.to_file` \
                (mode 0600, `O_EXCL | O_NOFOLLOW` temporary file, `fsync`, rename, directory \
                `fsync`), encoded in guarded memory only. `format` is \"pem\" (PKCS#8 \
                version 1, byte for byte as OpenSSL writes it), \"der\", or the ", $what,
                " as \"raw\", \"hex\" or \"base64\". Raises `KeyNotExportableError` for a \
                sealed key.")]
            #[pyo3(signature = (path, *, format = "pem", overwrite = false))]
            fn to_file(
                &self,
                py: ::pyo3::Python<'_>,
                path: ::std::path::PathBuf,
                format: &str,
                overwrite: bool,
            ) -> $crate::py::errors::Result<()> {
                self.cell.to_file(py, path, format, overwrite)
            }

            /// Seal the key against export, for good: afterwards `to_file()` raises
            /// `KeyNotExportableError`. The key still works for everything else, including
            /// the key store (which keeps it sealed).
            fn seal_export(&self) -> $crate::py::errors::Result<()> {
                self.cell.seal_export()
            }

            /// False once the key was created with `exportable=False` or sealed with
            /// `seal_export()`.
            #[getter]
            fn exportable(&self) -> bool {
                self.cell.exportable()
            }

            /// Wipe, unlock and unmap the key. Idempotent. Waits for operations in
            /// progress on other threads to finish.
            fn destroy(&self, py: ::pyo3::Python<'_>) {
                self.cell.destroy(py);
            }

            /// True once `destroy()` has run.
            #[getter]
            fn destroyed(&self) -> bool {
                self.cell.is_destroyed()
            }

            /// The protection the key's memory actually has.
            #[getter]
            fn protection(
                &self,
            ) -> $crate::py::errors::Result<$crate::py::protection::Protection> {
                self.cell.protection()
            }

            fn __enter__(
                slf: &::pyo3::Bound<'_, Self>,
            ) -> $crate::py::errors::Result<::pyo3::Py<Self>> {
                slf.get().cell.live()?;
                Ok(slf.clone().unbind())
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(
                &self,
                py: ::pyo3::Python<'_>,
                _args: &::pyo3::Bound<'_, ::pyo3::types::PyTuple>,
            ) -> bool {
                self.cell.destroy(py);
                false
            }

            fn __repr__(&self) -> String {
                self.cell.repr()
            }

            fn __reduce__(&self) -> ::pyo3::PyResult<()> {
                Err(self.cell.no_copy("pickled"))
            }

            fn __copy__(&self) -> ::pyo3::PyResult<()> {
                Err(self.cell.no_copy("copied"))
            }

            fn __deepcopy__(
                &self,
                _memo: &::pyo3::Bound<'_, ::pyo3::PyAny>,
            ) -> ::pyo3::PyResult<()> {
                Err(self.cell.no_copy("copied"))
            }

            $($methods)*
        }
    };
}

pub(crate) use private_key_methods;
