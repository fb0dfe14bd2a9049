//! `X25519PrivateKey` and `X25519PublicKey`. The private key's state is a
//! [`PrivateKeyCell`] shared with `Ed25519PrivateKey` (locking rules in `asymmetric.rs`).

use std::path::PathBuf;

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::crypto::pkcs8::Algorithm;
use crate::crypto::x25519::{self, ExchangeError, PrivateKey};

use super::asymmetric::{self as common, hex, PrivateKeyCell};
use super::errors::{Error, Result};
use super::protection::Protection;
use super::secret_key::SecretKey;

const CLASS: &str = "X25519PrivateKey";

/// An X25519 private key held outside the Python heap, in a guarded region.
///
/// `exchange()` writes the shared secret straight into a new `SecretKey`: it never exists
/// as Python `bytes`.
#[pyclass(frozen, module = "keycell._native")]
pub struct X25519PrivateKey {
    cell: PrivateKeyCell<PrivateKey>,
}

impl X25519PrivateKey {
    /// Wrap a key (from the key store), exportable or not.
    pub(crate) fn wrap(py: Python<'_>, key: PrivateKey, exportable: bool) -> Result<Self> {
        Ok(X25519PrivateKey {
            cell: PrivateKeyCell::new(py, CLASS, key, exportable)?,
        })
    }

    /// The key's state (for the key store).
    pub(crate) fn cell(&self) -> &PrivateKeyCell<PrivateKey> {
        &self.cell
    }
}

#[pymethods]
impl X25519PrivateKey {
    /// Generate a key from the OS CSPRNG, straight into a guarded region. With
    /// `exportable=False` the key can never be written to a key file.
    #[staticmethod]
    #[pyo3(signature = (*, exportable = true))]
    fn generate(py: Python<'_>, exportable: bool) -> Result<Self> {
        Ok(X25519PrivateKey {
            cell: PrivateKeyCell::generate(py, CLASS, exportable)?,
        })
    }

    /// Load a key from its 32 bytes (any bytes-like object). When the source is writable
    /// and `wipe` is true, it is overwritten with zeros afterwards.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true, exportable = true))]
    fn from_private_bytes(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        wipe: bool,
        exportable: bool,
    ) -> Result<Self> {
        Ok(X25519PrivateKey {
            cell: PrivateKeyCell::from_private_bytes(py, CLASS, data, wipe, exportable)?,
        })
    }

    /// Load a key from a file: the 32 bytes raw, in hex or in base64, or an unencrypted
    /// PKCS#8 key (version 1 or 2) in PEM, as `openssl genpkey -algorithm x25519` writes
    /// it, or DER. `format` is "raw", "hex", "base64", "pem" or "der", or `None` to detect
    /// it (docs/key-formats.md). Same file checks as `SecretKey.from_file`; read and
    /// decoded in guarded memory only.
    #[staticmethod]
    #[pyo3(signature = (path, *, format = None, exportable = true))]
    fn from_file(
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
        exportable: bool,
    ) -> Result<Self> {
        Ok(X25519PrivateKey {
            cell: PrivateKeyCell::from_file(py, CLASS, path, format, exportable)?,
        })
    }

    /// Write the key to `path` atomically, like `SecretKey.to_file` (mode 0600,
    /// `O_EXCL | O_NOFOLLOW` temporary file, `fsync`, rename, directory `fsync`). `format`
    /// is "pem" (PKCS#8 version 1, byte for byte as OpenSSL writes it), "der", or the key
    /// as "raw", "hex" or "base64". Raises `KeyNotExportableError` for a sealed key.
    #[pyo3(signature = (path, *, format = "pem", overwrite = false))]
    fn to_file(&self, py: Python<'_>, path: PathBuf, format: &str, overwrite: bool) -> Result<()> {
        self.cell.to_file(py, path, format, overwrite)
    }

    /// Seal the key against export, for good: afterwards `to_file()` raises
    /// `KeyNotExportableError`. The key still works for `exchange()` and the key store.
    fn seal_export(&self) -> Result<()> {
        self.cell.seal_export()
    }

    /// False once the key was created with `exportable=False` or sealed with
    /// `seal_export()`.
    #[getter]
    fn exportable(&self) -> bool {
        self.cell.exportable()
    }

    /// The public key.
    fn public_key(&self) -> Result<X25519PublicKey> {
        Ok(X25519PublicKey {
            key: *self.cell.public()?,
        })
    }

    /// Diffie-Hellman with `peer_public_key`: the 32-byte shared secret, as a `SecretKey`
    /// (never as bytes). Raises `ValueError` when the peer key is a low-order point (the
    /// shared secret would be all zeros), as pyca/cryptography does. Derive session keys
    /// from the result with HKDF; do not use it directly.
    fn exchange(&self, py: Python<'_>, peer_public_key: &Bound<'_, PyAny>) -> Result<SecretKey> {
        let peer = peer_public_key.cast::<X25519PublicKey>().map_err(|_| {
            let tname = peer_public_key
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "object".to_owned());
            Error::Type(format!(
                "peer_public_key must be an X25519PublicKey, not {tname}"
            ))
        })?;
        let peer = peer.get().key;
        let shared = {
            let live = self.cell.live()?;
            live.key().exchange(&peer)
        };
        match shared {
            Ok(k) => SecretKey::wrap(py, k),
            Err(ExchangeError::LowOrderPoint) => Err(Error::Value(
                "Error computing shared key: the peer public key is a low-order point \
                 (the shared secret would be all zeros)"
                    .to_owned(),
            )),
            Err(ExchangeError::Memory(m)) => Err(Error::Memory(m)),
        }
    }

    /// Wipe, unlock and unmap the key. Idempotent.
    fn destroy(&self, py: Python<'_>) {
        self.cell.destroy(py);
    }

    /// True once `destroy()` has run.
    #[getter]
    fn destroyed(&self) -> bool {
        self.cell.is_destroyed()
    }

    /// The protection the key's memory actually has.
    #[getter]
    fn protection(&self) -> Result<Protection> {
        self.cell.protection()
    }

    fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<Self>> {
        slf.get().cell.live()?;
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.destroy(py);
        false
    }

    fn __repr__(&self) -> String {
        self.cell.repr()
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(self.cell.no_copy("pickled"))
    }

    fn __copy__(&self) -> PyResult<()> {
        Err(self.cell.no_copy("copied"))
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(self.cell.no_copy("copied"))
    }
}

/// An X25519 public key (not secret: ordinary memory, comparable, hashable, picklable).
///
/// Any 32 bytes load, as RFC 7748 specifies (the high bit is ignored, non-canonical
/// values are reduced); low-order points are refused by `exchange`.
#[pyclass(frozen, module = "keycell._native")]
pub struct X25519PublicKey {
    key: [u8; x25519::KEY_LEN],
}

#[pymethods]
impl X25519PublicKey {
    /// Load a public key from its 32 bytes (the u-coordinate, RFC 7748).
    #[staticmethod]
    fn from_public_bytes(data: &Bound<'_, PyAny>) -> Result<Self> {
        Ok(X25519PublicKey {
            key: common::raw_public(data, Algorithm::X25519)?,
        })
    }

    /// Load a public key from DER SubjectPublicKeyInfo (RFC 8410).
    #[staticmethod]
    fn from_der(data: &Bound<'_, PyAny>) -> Result<Self> {
        Ok(X25519PublicKey {
            key: common::public_from_der(data, Algorithm::X25519)?,
        })
    }

    /// Load a public key from a PEM "PUBLIC KEY" block (`str` or bytes-like).
    #[staticmethod]
    fn from_pem(data: &Bound<'_, PyAny>) -> Result<Self> {
        Ok(X25519PublicKey {
            key: common::public_from_pem(data, Algorithm::X25519)?,
        })
    }

    /// The 32 bytes.
    fn public_bytes_raw<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key)
    }

    /// DER SubjectPublicKeyInfo (RFC 8410).
    fn public_bytes_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::der_bytes(py, Algorithm::X25519, &self.key)
    }

    /// PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), as bytes.
    fn public_bytes_pem<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::pem_bytes(py, Algorithm::X25519, &self.key)
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = slf.py();
        let Ok(other) = other.cast::<X25519PublicKey>() else {
            return py.NotImplemented();
        };
        let equal = slf.get().key == other.get().key;
        match op {
            CompareOp::Eq => equal
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            CompareOp::Ne => (!equal)
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            _ => return py.NotImplemented(),
        }
        .unwrap_or_else(|e: std::convert::Infallible| match e {})
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        PyBytes::new(py, &self.key).hash()
    }

    fn __repr__(&self) -> String {
        format!("<X25519PublicKey {}>", hex(&self.key))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py
            .get_type::<X25519PublicKey>()
            .getattr("from_public_bytes")?;
        Ok((ctor, (PyBytes::new(py, &slf.get().key),)))
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Py<Self> {
        slf.clone().unbind()
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf.clone().unbind()
    }
}
