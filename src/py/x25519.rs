//! `X25519PrivateKey` and `X25519PublicKey`. Locking as in `ed25519.rs`: the GIL is never
//! awaited while the key's lock is held.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::crypto::pkcs8::{self, Algorithm, LoadError};
use crate::crypto::x25519::{self, ExchangeError, PrivateKey};

use super::asymmetric::{self as common, hex, load_error, no_copy};
use super::bytes_like::{copy_secret_into, SecretSource};
use super::errors::{Error, Result};
use super::protection::{report_new_region, Protection};
use super::secret_key::SecretKey;

const CLASS: &str = "X25519PrivateKey";

/// An X25519 private key held outside the Python heap, in a guarded region.
///
/// `exchange()` writes the shared secret straight into a new `SecretKey`: it never exists
/// as Python `bytes`.
#[pyclass(frozen, module = "keycell._native")]
pub struct X25519PrivateKey {
    state: RwLock<Option<PrivateKey>>,
    public: [u8; x25519::KEY_LEN],
}

struct LiveKey<'a>(RwLockReadGuard<'a, Option<PrivateKey>>);

impl LiveKey<'_> {
    fn key(&self) -> &PrivateKey {
        match self.0.as_ref() {
            Some(k) => k,
            None => unreachable!("LiveKey is only built around a live key"),
        }
    }
}

impl X25519PrivateKey {
    fn wrap(py: Python<'_>, key: PrivateKey) -> Result<Self> {
        report_new_region(py, &key.protection())?;
        Ok(X25519PrivateKey {
            public: *key.public(),
            state: RwLock::new(Some(key)),
        })
    }

    fn live(&self) -> Result<LiveKey<'_>> {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => Err(Error::Destroyed(CLASS)),
            Some(k) => {
                k.check()?;
                Ok(LiveKey(guard))
            }
        }
    }

    fn is_destroyed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

fn key_length_error() -> Error {
    Error::Value("an X25519 private key must be exactly 32 bytes".to_owned())
}

#[pymethods]
impl X25519PrivateKey {
    /// Generate a key from the OS CSPRNG, straight into a guarded region.
    #[staticmethod]
    fn generate(py: Python<'_>) -> Result<Self> {
        let key = PrivateKey::generate()?;
        Self::wrap(py, key)
    }

    /// Load a key from its 32 bytes (any bytes-like object). When the source is writable
    /// and `wipe` is true, it is overwritten with zeros afterwards.
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true))]
    fn from_private_bytes(py: Python<'_>, data: &Bound<'_, PyAny>, wipe: bool) -> Result<Self> {
        let src = SecretSource::new(data, "data")?;
        if src.len() != x25519::KEY_LEN {
            return Err(key_length_error());
        }
        let key = PrivateKey::new_with(|dst| copy_secret_into(py, &src, dst))?;
        if wipe && src.writable() {
            src.wipe(py)?;
        }
        Self::wrap(py, key)
    }

    /// Load a key from a file: the raw 32 bytes, or an unencrypted PKCS#8 key in PEM (as
    /// `openssl genpkey -algorithm x25519` writes) or DER. Same file checks as
    /// `SecretKey.from_file`; read and decoded in guarded memory only.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> Result<Self> {
        let shown = path.display().to_string();
        let key = py.detach(|| -> Result<PrivateKey> {
            let (key, stored) = pkcs8::read_private_key_file(&path, Algorithm::X25519, |raw| {
                PrivateKey::new_with(|dst: &mut [u8]| -> std::result::Result<(), LoadError> {
                    if raw.len() != dst.len() {
                        return Err(LoadError::Format(pkcs8::FormatError(
                            "an X25519 private key must be 32 bytes".to_owned(),
                        )));
                    }
                    dst.copy_from_slice(raw);
                    Ok(())
                })
            })
            .map_err(|e| load_error(&shown, e))?;
            if let Some(public) = stored {
                if &public != key.public() {
                    return Err(common::public_mismatch(&shown, Algorithm::X25519));
                }
            }
            Ok(key)
        })?;
        Self::wrap(py, key)
    }

    /// The public key.
    fn public_key(&self) -> Result<X25519PublicKey> {
        self.live()?;
        Ok(X25519PublicKey { key: self.public })
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
            let live = self.live()?;
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
        py.detach(|| {
            self.state.write().unwrap_or_else(|e| e.into_inner()).take();
        });
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

    fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<Self>> {
        slf.get().live()?;
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.destroy(py);
        false
    }

    fn __repr__(&self) -> String {
        if self.is_destroyed() {
            format!("<{CLASS} destroyed>")
        } else {
            format!("<{CLASS} public={}>", hex(&self.public))
        }
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(no_copy(CLASS, "pickled"))
    }

    fn __copy__(&self) -> PyResult<()> {
        Err(no_copy(CLASS, "copied"))
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(no_copy(CLASS, "copied"))
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
