//! `X25519PrivateKey` and `X25519PublicKey`. The private key is a thin class over a
//! [`KeyCell`] (life cycle, locking and fork rules in `key_cell.rs`).

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::crypto::curve::Algorithm;
use crate::crypto::x25519::{self, ExchangeError, PrivateKey};

use std::sync::Arc;

use super::args::type_name;
use super::asymmetric::{self as common, hex, private_key_methods, PrivateKeyHandle};
use super::errors::{Error, Result};
use super::export::private_export_methods;
use super::jwk;
use super::key_cell::{key_handle_methods, KeyCell, KeyHandle};
use super::pyca::{cryptography_private_methods, cryptography_public_methods};
use super::secret_key::SecretKey;

/// An X25519 private key held outside the Python heap, in a guarded region.
///
/// `exchange()` writes the shared secret straight into a new `SecretKey`: it never exists
/// as Python `bytes`.
#[pyclass(frozen, module = "keycell._native")]
pub struct X25519PrivateKey {
    cell: Arc<KeyCell<PrivateKey>>,
    public: [u8; x25519::KEY_LEN],
}

impl KeyHandle for X25519PrivateKey {
    type Key = PrivateKey;
    fn cell(&self) -> &KeyCell<PrivateKey> {
        &self.cell
    }
}

impl PrivateKeyHandle for X25519PrivateKey {
    fn from_key(py: Python<'_>, key: PrivateKey, exportable: bool) -> Result<Self> {
        let public = *key.public();
        let cell = common::new_cell(py, "X25519PrivateKey", key, exportable)?;
        Ok(X25519PrivateKey { cell, public })
    }
}

key_handle_methods!(X25519PrivateKey);
private_key_methods!(X25519PrivateKey, "x25519", "private key");
private_export_methods!(X25519PrivateKey, true);
cryptography_private_methods!(X25519PrivateKey);
cryptography_public_methods!(X25519PublicKey);

#[pymethods]
impl X25519PrivateKey {
    /// The public key.
    fn public_key(&self) -> Result<X25519PublicKey> {
        self.cell.check_live()?;
        Ok(X25519PublicKey { key: self.public })
    }

    /// Diffie-Hellman with `peer_public_key`: the 32-byte shared secret, as a `SecretKey`
    /// (never as bytes). Raises `ValueError` when the peer key is a low-order point (the
    /// shared secret would be all zeros), as pyca/cryptography does. Derive session keys
    /// from the result with HKDF; do not use it directly. A sealed private key gives a
    /// sealed shared secret.
    fn exchange(&self, py: Python<'_>, peer_public_key: &Bound<'_, PyAny>) -> Result<SecretKey> {
        let peer = peer_public_key.cast::<X25519PublicKey>().map_err(|_| {
            Error::Type(format!(
                "peer_public_key must be an X25519PublicKey, not {}",
                type_name(peer_public_key)
            ))
        })?;
        let peer = peer.get().key;
        let shared = {
            let live = self.cell.live()?;
            live.key().exchange(&peer)
        };
        match shared {
            Ok(k) => SecretKey::wrap_with(py, k, self.cell.exportable()),
            Err(ExchangeError::LowOrderPoint) => Err(Error::Value(
                "Error computing shared key: the peer public key is a low-order point \
                 (the shared secret would be all zeros)"
                    .to_owned(),
            )),
            Err(ExchangeError::Memory(m)) => Err(Error::Memory(m)),
        }
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

    /// The public JSON Web Key as a dict of its required members (RFC 7638 order):
    /// `{"crv": "X25519", "kty": "OKP", "x": ...}` (RFC 8037).
    fn to_jwk<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        jwk::okp(py, "X25519", &self.key)
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
        common::compare(py, op, slf.get().key == other.get().key)
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
