//! `AuditWriter`, `audit_verify`, `audit_prove`: the bindings of `crate::audit`. The
//! Python API (`keycell.audit.AuditLog`, `verify`, `AuditHandler`) is in
//! `python/keycell/audit.py`.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::audit::writer::Writer;
use crate::audit::{verify, AuditError};

use super::args::handle;
use super::ed25519::{Ed25519PrivateKey, Ed25519PublicKey};
use super::errors::{Error, Result};
use super::key_cell::KeyHandle;
use super::secret_key::SecretKey;

/// The native audit log writer (use `keycell.audit.AuditLog`). Thread-safe: one mutex
/// serialises the threads of this process; the log's lock file serialises processes.
#[pyclass(frozen, module = "keycell._native")]
pub struct AuditWriter {
    inner: Mutex<Option<Writer>>,
    repaired: Option<u64>,
}

impl AuditWriter {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Writer) -> std::result::Result<T, AuditError> + Send,
    ) -> Result<T> {
        py.detach(|| {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let w = g.as_mut().ok_or(AuditError::Closed)?;
            Ok(f(w)?)
        })
    }

    /// Run `f` with the signer's live private key and public bytes (the GIL is held: the
    /// key's read guard cannot cross threads).
    fn with_signer<T>(
        &self,
        signer: &Bound<'_, PyAny>,
        f: impl FnOnce(&mut Writer, &[u8; 32], &crate::crypto::ed25519::PrivateKey) -> std::result::Result<T, AuditError>,
    ) -> Result<T> {
        let signer = handle::<Ed25519PrivateKey>(signer, "signer", "Ed25519PrivateKey", "")?;
        let sk = signer.get();
        let public = sk.public_raw();
        let live = sk.cell().live()?;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let w = g.as_mut().ok_or(AuditError::Closed)?;
        Ok(f(w, &public, live.key())?)
    }
}

fn k0_of<'py>(key: &Bound<'py, PyAny>) -> Result<Bound<'py, SecretKey>> {
    Ok(handle::<SecretKey>(key, "key", "SecretKey", "")?.clone())
}

#[pymethods]
impl AuditWriter {
    /// Create a new log at `path` (never replacing a file): the genesis record, the state
    /// file `<path>.state` (0600) with `E_0` derived from `key` (K0, at least 32 bytes).
    #[staticmethod]
    #[pyo3(signature = (path, *, key, origin, epoch_records, epoch_seconds, sync = false))]
    fn create(
        path: PathBuf,
        key: &Bound<'_, PyAny>,
        origin: &str,
        epoch_records: u64,
        epoch_seconds: u64,
        sync: bool,
    ) -> Result<Self> {
        let k = k0_of(key)?;
        let k = k.get();
        let live = k.live()?;
        let w = Writer::create(
            &path,
            live.key().bytes()?,
            origin,
            epoch_records,
            epoch_seconds,
            sync,
        )?;
        Ok(AuditWriter {
            inner: Mutex::new(Some(w)),
            repaired: None,
        })
    }

    /// Open an existing log to continue it (repairing a torn tail).
    #[staticmethod]
    #[pyo3(signature = (path, *, sync = false))]
    fn open(py: Python<'_>, path: PathBuf, sync: bool) -> Result<Self> {
        let (w, repair) = py.detach(|| Writer::open(&path, sync))?;
        Ok(AuditWriter {
            inner: Mutex::new(Some(w)),
            repaired: repair.map(|r| r.torn_bytes),
        })
    }

    /// Append one event, given as the UTF-8 bytes of one JSON value without line breaks.
    /// Returns its sequence number once the line is in the file.
    fn append(&self, py: Python<'_>, body: &[u8]) -> Result<u64> {
        self.with(py, |w| w.append(body))
    }

    /// Sign a checkpoint of the whole log with `signer` (an `Ed25519PrivateKey`), write it
    /// to `<path>.checkpoint` atomically, start a new epoch; returns the signed note.
    fn checkpoint(&self, signer: &Bound<'_, PyAny>) -> Result<String> {
        self.with_signer(signer, |w, public, sk| {
            w.checkpoint(public, |body| Ok(sk.sign(body)?))
        })
    }

    /// Rotate the log to `archive` (see `keycell.audit.AuditLog.rotate`).
    fn rotate(&self, archive: PathBuf, signer: &Bound<'_, PyAny>) -> Result<String> {
        self.with_signer(signer, |w, public, sk| {
            w.rotate(&archive, public, |body| Ok(sk.sign(body)?))
        })
    }

    /// Write the state file and close the writer (its epoch key is wiped). Idempotent.
    fn close(&self, py: Python<'_>) -> Result<()> {
        py.detach(|| {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mut w) = g.take() {
                if crate::memory::sys::fork_generation() == w_generation(&w) {
                    w.save_state()?;
                }
            }
            Ok(())
        })
    }

    /// Set how long (seconds) appends wait for another writer's lock.
    fn set_lock_timeout(&self, py: Python<'_>, seconds: f64) -> Result<()> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(Error::Value("lock_timeout must be a non-negative number".to_owned()));
        }
        self.with(py, |w| {
            w.set_lock_timeout(std::time::Duration::from_secs_f64(seconds));
            Ok(())
        })
    }

    /// True once `close()` ran.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// Bytes of a torn tail `open()` cut off and recorded, or `None`.
    #[getter]
    fn repaired_bytes(&self) -> Option<u64> {
        self.repaired
    }

    /// The log's origin.
    #[getter]
    fn origin(&self, py: Python<'_>) -> Result<String> {
        self.with(py, |w| Ok(w.origin().to_owned()))
    }

    /// Lines in the current file as far as this writer knows.
    #[getter]
    fn size(&self, py: Python<'_>) -> Result<u64> {
        self.with(py, |w| Ok(w.size()))
    }

    /// The next sequence number.
    #[getter]
    fn next_seq(&self, py: Python<'_>) -> Result<u64> {
        self.with(py, |w| Ok(w.next_seq()))
    }

    /// The current epoch.
    #[getter]
    fn epoch(&self, py: Python<'_>) -> Result<u64> {
        self.with(py, |w| Ok(w.epoch()))
    }

    /// The log's path.
    #[getter]
    fn path(&self, py: Python<'_>) -> Result<PathBuf> {
        self.with(py, |w| Ok(w.path().to_owned()))
    }
}

fn w_generation(w: &Writer) -> u64 {
    w.generation()
}

/// Verify the log at `path`: MACs under `key` (K0, a `SecretKey`), the chain, the
/// sequence, and, with `checkpoint` (the signed note's bytes), its signature under
/// `public_key` and the Merkle root. Returns a dict (see `keycell.audit.verify`).
#[pyfunction]
#[pyo3(signature = (path, *, key, public_key, checkpoint = None))]
pub fn audit_verify<'py>(
    py: Python<'py>,
    path: PathBuf,
    key: &Bound<'py, PyAny>,
    public_key: &Bound<'py, PyAny>,
    checkpoint: Option<&[u8]>,
) -> Result<Bound<'py, PyDict>> {
    let k = k0_of(key)?;
    let pk = handle::<Ed25519PublicKey>(public_key, "public_key", "Ed25519PublicKey", "")?;
    let vk = *pk.get().verifying_key();
    let cp = checkpoint.map(<[u8]>::to_vec);
    // A guarded copy of K0, so the GIL can be released for the whole pass.
    let k0 = {
        let live = k.get().live()?;
        crate::crypto::symmetric::SymmetricKey::from_slice(live.key().bytes()?)?
    };
    let report = py.detach(|| -> Result<_> {
        Ok(verify::verify_file(&path, k0.bytes()?, &vk, cp.as_deref())?)
    })?;
    drop(k0);
    let d = PyDict::new(py);
    d.set_item("valid", report.failure.is_none())?;
    d.set_item("records", report.lines)?;
    d.set_item("bytes", report.bytes)?;
    d.set_item("epochs", report.epochs)?;
    d.set_item("first_seq", report.first_seq)?;
    d.set_item("last_seq", report.last_seq)?;
    d.set_item("origin", report.origin)?;
    d.set_item("checkpoint_size", report.checkpoint.map(|c| c.size))?;
    d.set_item("root", PyBytes::new(py, &report.root))?;
    match report.failure {
        Some(f) => {
            d.set_item("kind", f.kind.name())?;
            d.set_item("line", f.line)?;
            d.set_item("detail", f.detail)?;
        }
        None => {
            d.set_item("kind", py.None())?;
            d.set_item("line", py.None())?;
            d.set_item("detail", py.None())?;
        }
    }
    Ok(d)
}

/// An inclusion proof of line `line` (1-based) in the first `size` lines of the log:
/// a dict with the line's bytes, its leaf index and hash, the proof hashes and the root.
#[pyfunction]
#[pyo3(signature = (path, line, size))]
pub fn audit_prove(py: Python<'_>, path: PathBuf, line: u64, size: u64) -> Result<Bound<'_, PyDict>> {
    let (bytes, leaf, proof, root) = py.detach(|| verify::prove(&path, line, size))?;
    let d = PyDict::new(py);
    d.set_item("line", line)?;
    d.set_item("size", size)?;
    d.set_item("bytes", PyBytes::new(py, &bytes))?;
    d.set_item("leaf_hash", PyBytes::new(py, &leaf))?;
    let hashes: Vec<Bound<'_, PyBytes>> = proof.iter().map(|h| PyBytes::new(py, h)).collect();
    d.set_item("proof", hashes)?;
    d.set_item("root", PyBytes::new(py, &root))?;
    Ok(d)
}

/// Check an inclusion proof (RFC 9162 section 2.1.3.2): leaf hash `leaf_hash` at index
/// `index` (0-based) in a tree of `size` leaves with root `root`.
#[pyfunction]
#[pyo3(signature = (leaf_hash, index, size, proof, root))]
pub fn audit_verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: Vec<Vec<u8>>,
    root: &[u8],
) -> Result<bool> {
    let h32 = |b: &[u8]| -> Result<[u8; 32]> {
        b.try_into()
            .map_err(|_| Error::Value("hashes are 32 bytes".to_owned()))
    };
    let proof: Vec<[u8; 32]> = proof.iter().map(|p| h32(p)).collect::<Result<_>>()?;
    Ok(crate::audit::merkle::verify_inclusion(
        &h32(leaf_hash)?,
        index,
        size,
        &proof,
        &h32(root)?,
    ))
}
