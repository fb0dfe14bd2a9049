//! `Ed25519PrivateKey`, `Ed25519PublicKey` and `ed25519_verify_batch`.
//!
//! Locking: the private key's state is an `RwLock<Option<..>>` like `SecretKey`'s. A
//! thread never waits for the GIL while it holds the lock: when an operation releases the
//! GIL (long messages), the lock is taken and released inside the GIL-free section; when
//! it keeps the GIL, it never releases it while holding the lock. `destroy()` takes the
//! write lock with the GIL released. So no thread can hold the lock while waiting for the
//! GIL that a thread blocked on the lock holds.

use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard};

use ed25519_dalek::VerifyingKey;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::crypto::ed25519::{self, PrivateKey, VerifyError};
use crate::crypto::pkcs8::{self, Algorithm, LoadError};

use super::asymmetric::{self as common, hex, load_error, no_copy};
use super::bytes_like::{bytes_like, copy_secret_into, maybe_detach, BytesLike, SecretSource};
use super::errors::{Error, Result};
use super::protection::{report_new_region, Protection};

const CLASS: &str = "Ed25519PrivateKey";

/// An Ed25519 private key held outside the Python heap.
///
/// The 32-byte seed and the expanded secret key derived from it (clamped scalar and nonce
/// prefix, RFC 8032 §5.1.5) live together in one guarded region: guard pages, canary,
/// `mlock`, `MADV_DONTDUMP`, `MADV_WIPEONFORK`, read-only while idle, wiped on
/// `destroy()`. Signing runs in Rust on that region; stack temporaries are wiped.
#[pyclass(frozen, module = "keycell._native")]
pub struct Ed25519PrivateKey {
    state: RwLock<Option<PrivateKey>>,
    public: VerifyingKey,
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

impl Ed25519PrivateKey {
    fn wrap(py: Python<'_>, key: PrivateKey) -> Result<Self> {
        report_new_region(py, &key.protection())?;
        Ok(Ed25519PrivateKey {
            public: *key.public(),
            state: RwLock::new(Some(key)),
        })
    }

    /// Read access to the live key, or `KeyDestroyedError` / `ForkedKeyError`.
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

    /// Run `f` on the live key, with the GIL released when `len` reaches the threshold.
    /// The lock is taken inside the (possibly GIL-free) section; see the module docs.
    fn with_key<T: Send>(
        &self,
        py: Python<'_>,
        len: usize,
        f: impl FnOnce(&PrivateKey) -> Result<T> + Send,
    ) -> Result<T> {
        maybe_detach(py, len, || {
            let live = self.live()?;
            f(live.key())
        })
    }

    fn is_destroyed(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

fn seed_length_error() -> Error {
    Error::Value("an Ed25519 private key (seed) must be exactly 32 bytes".to_owned())
}

#[pymethods]
impl Ed25519PrivateKey {
    /// Generate a key: the seed comes from the OS CSPRNG straight into a guarded region.
    #[staticmethod]
    fn generate(py: Python<'_>) -> Result<Self> {
        let key = PrivateKey::generate()?;
        Self::wrap(py, key)
    }

    /// Load a key from its 32-byte seed (RFC 8032 private key), any bytes-like object.
    /// When the source is writable and `wipe` is true, it is overwritten with zeros
    /// afterwards (a `bytes` object cannot be wiped: avoid holding seeds in `bytes`).
    #[staticmethod]
    #[pyo3(signature = (data, *, wipe = true))]
    fn from_private_bytes(py: Python<'_>, data: &Bound<'_, PyAny>, wipe: bool) -> Result<Self> {
        let src = SecretSource::new(data, "data")?;
        if src.len() != ed25519::SEED_LEN {
            return Err(seed_length_error());
        }
        let key = PrivateKey::new_with(|dst| copy_secret_into(py, &src, dst))?;
        if wipe && src.writable() {
            src.wipe(py)?;
        }
        Self::wrap(py, key)
    }

    /// Load a key from a file: the raw 32-byte seed, or an unencrypted PKCS#8 key in PEM
    /// (as `openssl genpkey -algorithm ed25519` writes) or DER.
    ///
    /// The file is opened with `O_NOFOLLOW` and checked on the open descriptor like
    /// `SecretKey.from_file` (regular file, owned by this user, no group or other
    /// permissions); it is read and decoded in guarded memory only.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> Result<Self> {
        let shown = path.display().to_string();
        let key = py.detach(|| -> Result<PrivateKey> {
            let (key, stored) = pkcs8::read_private_key_file(&path, Algorithm::Ed25519, |seed| {
                PrivateKey::new_with(|dst: &mut [u8]| -> std::result::Result<(), LoadError> {
                    if seed.len() != dst.len() {
                        return Err(LoadError::Format(pkcs8::FormatError(
                            "an Ed25519 private key must be 32 bytes".to_owned(),
                        )));
                    }
                    dst.copy_from_slice(seed);
                    Ok(())
                })
            })
            .map_err(|e| load_error(&shown, e))?;
            if let Some(public) = stored {
                if &public != key.public().as_bytes() {
                    return Err(common::public_mismatch(&shown, Algorithm::Ed25519));
                }
            }
            Ok(key)
        })?;
        Self::wrap(py, key)
    }

    /// Sign `data` (any bytes-like object); returns the 64-byte signature. The GIL is
    /// released for messages of 2 KiB and more.
    fn sign<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let msg = bytes_like(data, "data")?;
        let msg = msg.as_slice();
        let sig = self.with_key(py, msg.len(), |key| Ok(key.sign(msg)?))?;
        Ok(PyBytes::new(py, &sig))
    }

    /// The public key.
    fn public_key(&self) -> Result<Ed25519PublicKey> {
        self.live()?;
        Ok(Ed25519PublicKey { key: self.public })
    }

    /// Wipe, unlock and unmap the key. Idempotent. Waits for signatures in progress on
    /// other threads to finish.
    fn destroy(&self, py: Python<'_>) {
        py.detach(|| {
            // Dropping the PrivateKey wipes, unlocks and unmaps its region.
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
            format!("<{CLASS} public={}>", hex(self.public.as_bytes()))
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

/// An Ed25519 public key (not secret: ordinary memory, comparable, hashable, picklable).
#[pyclass(frozen, module = "keycell._native")]
pub struct Ed25519PublicKey {
    key: VerifyingKey,
}

impl Ed25519PublicKey {
    fn from_raw(raw: &[u8; 32]) -> Result<Self> {
        ed25519::public_key_from_bytes(raw)
            .map(|key| Ed25519PublicKey { key })
            .map_err(|_| {
                Error::Value(
                    "not a valid Ed25519 public key: the bytes do not encode a curve point"
                        .to_owned(),
                )
            })
    }
}

fn invalid_signature() -> Error {
    Error::InvalidSignature("the signature does not verify".to_owned())
}

#[pymethods]
impl Ed25519PublicKey {
    /// Load a public key from its 32-byte encoding. Raises `ValueError` when the bytes do
    /// not encode a curve point (pyca/cryptography defers that to `verify`). Small-order
    /// points load, but no signature verifies under them.
    #[staticmethod]
    fn from_public_bytes(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::raw_public(data, Algorithm::Ed25519)?)
    }

    /// Load a public key from DER SubjectPublicKeyInfo (RFC 8410).
    #[staticmethod]
    fn from_der(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::public_from_der(data, Algorithm::Ed25519)?)
    }

    /// Load a public key from a PEM "PUBLIC KEY" block (`str` or bytes-like).
    #[staticmethod]
    fn from_pem(data: &Bound<'_, PyAny>) -> Result<Self> {
        Self::from_raw(&common::public_from_pem(data, Algorithm::Ed25519)?)
    }

    /// The 32-byte encoding.
    fn public_bytes_raw<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.key.as_bytes())
    }

    /// DER SubjectPublicKeyInfo (RFC 8410), as `openssl pkey -pubout -outform DER` writes.
    fn public_bytes_der<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::der_bytes(py, Algorithm::Ed25519, self.key.as_bytes())
    }

    /// PEM "PUBLIC KEY" block (SubjectPublicKeyInfo), as bytes.
    fn public_bytes_pem<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        common::pem_bytes(py, Algorithm::Ed25519, self.key.as_bytes())
    }

    /// Verify `signature` over `data`; raises `InvalidSignature` if it does not verify.
    ///
    /// Strict RFC 8032 verification (ed25519-dalek `verify_strict`): the signature must be
    /// exactly 64 bytes with `S < L`, `R` must be canonically encoded, and neither `R` nor
    /// the public key may be of small order. The GIL is released for messages of 2 KiB
    /// and more.
    fn verify(
        &self,
        py: Python<'_>,
        signature: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> Result<()> {
        let sig = bytes_like(signature, "signature")?;
        let msg = bytes_like(data, "data")?;
        let (sig, msg) = (sig.as_slice(), msg.as_slice());
        let key = &self.key;
        maybe_detach(py, msg.len(), || ed25519::verify(key, msg, sig)).map_err(|e| match e {
            VerifyError::InvalidSignature | VerifyError::InvalidPublicKey => invalid_signature(),
        })
    }

    fn __richcmp__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = slf.py();
        let Ok(other) = other.cast::<Ed25519PublicKey>() else {
            return py.NotImplemented();
        };
        let equal = slf.get().key.as_bytes() == other.get().key.as_bytes();
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
        PyBytes::new(py, self.key.as_bytes()).hash()
    }

    fn __repr__(&self) -> String {
        format!("<Ed25519PublicKey {}>", hex(self.key.as_bytes()))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let ctor = py
            .get_type::<Ed25519PublicKey>()
            .getattr("from_public_bytes")?;
        Ok((ctor, (PyBytes::new(py, slf.get().key.as_bytes()),)))
    }

    fn __copy__(slf: &Bound<'_, Self>) -> Py<Self> {
        slf.clone().unbind()
    }

    fn __deepcopy__(slf: &Bound<'_, Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf.clone().unbind()
    }
}

/// Verify many `(public_key, signature, message)` triples at once with Ed25519 batch
/// verification; raises `InvalidSignature` (naming the first bad item) if any fails. An
/// empty iterable verifies.
///
/// Each item gets the same checks as `Ed25519PublicKey.verify` before the batch equation
/// (length, `S < L`, canonical `R`, no small-order `R` or key), so every signature that
/// `verify` rejects for its encoding is rejected here too. The batch equation itself is a
/// random linear combination of the items' equations: a signature whose `R` carries a
/// small torsion component, which only the private key's holder can produce, may pass the
/// batch although `verify` rejects it. The GIL is released for large batches.
#[pyfunction]
pub fn ed25519_verify_batch(py: Python<'_>, items: &Bound<'_, PyAny>) -> Result<()> {
    let iter = items.try_iter().map_err(|_| {
        Error::Type(
            "items must be an iterable of (public_key, signature, message) triples".to_owned(),
        )
    })?;
    let mut publics: Vec<VerifyingKey> = Vec::new();
    let mut sigs: Vec<BytesLike<'_>> = Vec::new();
    let mut msgs: Vec<BytesLike<'_>> = Vec::new();
    for (i, item) in iter.enumerate() {
        let item = item?;
        let triple = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 3)
            .map(|t| (t.get_item(0), t.get_item(1), t.get_item(2)));
        let Some((Ok(pk), Ok(sig), Ok(msg))) = triple else {
            return Err(Error::Type(format!(
                "item {i} must be a (public_key, signature, message) tuple"
            )));
        };
        let pk = pk.cast::<Ed25519PublicKey>().map_err(|_| {
            Error::Type(format!(
                "item {i}: the public key must be an Ed25519PublicKey"
            ))
        })?;
        publics.push(pk.get().key);
        sigs.push(bytes_like(&sig, "signature")?);
        msgs.push(bytes_like(&msg, "message")?);
    }
    let sig_slices: Vec<&[u8]> = sigs.iter().map(|s| s.as_slice()).collect();
    let msg_slices: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    // Inputs: the messages, 64-byte signatures and 32-byte keys.
    let input_len = msg_slices.iter().map(|m| m.len()).sum::<usize>() + 96 * publics.len();
    maybe_detach(py, input_len, || {
        ed25519::verify_batch(&publics, &sig_slices, &msg_slices)
    })
    .map_err(|e| {
        Error::InvalidSignature(format!(
            "the batch does not verify: item {} is invalid",
            e.index
        ))
    })
}
