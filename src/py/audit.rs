//! `AuditWriter`, `audit_verify`, `audit_prove`: the bindings of `crate::audit`. The
//! Python API (`keycell.audit.AuditLog`, `verify`, `AuditHandler`) is in
//! `python/keycell/audit.py`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::audit::writer::Writer;
use crate::audit::{verify, AuditError};
use crate::json::write::write_str as write_json_str;
use crate::memory::fork::ProcessStamp;
use crate::memory::MemoryError;

use super::args::handle;
use super::ed25519::{Ed25519PrivateKey, Ed25519PublicKey};
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::KeyHandle;
use super::protection::{report_new_region, Protection};
use super::secret_key::SecretKey;

/// The native audit log writer (use `keycell.audit.AuditLog`). Thread-safe: one mutex
/// serialises the threads of this process; the log's lock file serialises processes.
#[pyclass(frozen, module = "keycell._native")]
pub struct AuditWriter {
    /// Shared with an agent that records to this log (`src/agent/record.rs`).
    inner: Arc<Mutex<Option<Writer>>>,
    repaired: Option<u64>,
    /// Checked before the mutex is touched: a fork child must not wait for a mutex that a
    /// thread of its parent held at the fork.
    made_in: ProcessStamp,
}

impl AuditWriter {
    /// Run `f` on the writer without the GIL; then, with it, report a missing protection
    /// of the writer's epoch key (a new epoch's key is allocated by the call that starts
    /// the epoch: a `ProtectionWarning`, once per process, from that call).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Writer) -> std::result::Result<T, AuditError> + Send,
    ) -> Result<T> {
        self.check_process()?;
        let (out, protection) = detach(py, || {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let w = g.as_mut().ok_or(AuditError::Closed)?;
            let out = f(w);
            Ok::<_, Error>((out, w.protection()))
        })?;
        let out = out?;
        report_new_region(py, &protection)?;
        Ok(out)
    }

    /// Run `f` with the signer's live private key and public bytes (the GIL is held: the
    /// key's read guard cannot cross threads).
    fn with_signer<T>(
        &self,
        signer: &Bound<'_, PyAny>,
        f: impl FnOnce(
            &mut Writer,
            &[u8; 32],
            &crate::crypto::ed25519::PrivateKey,
        ) -> std::result::Result<T, AuditError>,
    ) -> Result<T> {
        self.check_process()?;
        let signer = handle::<Ed25519PrivateKey>(signer, "signer", "Ed25519PrivateKey", "")?;
        let sk = signer.get();
        let public = sk.public_raw();
        let live = sk.cell().live()?;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let w = g.as_mut().ok_or(AuditError::Closed)?;
        let out = f(w, &public, live.key())?;
        let protection = w.protection();
        drop(g);
        drop(live);
        report_new_region(signer.py(), &protection)?;
        Ok(out)
    }
}

impl AuditWriter {
    /// A handle around `w`; a missing protection of its epoch key is reported (a
    /// `ProtectionWarning`, once per process; under `-W error` the writer is closed).
    fn new(py: Python<'_>, w: Writer, repaired: Option<u64>) -> Result<Self> {
        report_new_region(py, &w.protection())?;
        Ok(AuditWriter {
            inner: Arc::new(Mutex::new(Some(w))),
            repaired,
            made_in: ProcessStamp::current(),
        })
    }

    /// The writer, for an agent that records to this log.
    pub(crate) fn shared(&self) -> Result<Arc<Mutex<Option<Writer>>>> {
        self.check_process()?;
        Ok(Arc::clone(&self.inner))
    }

    fn check_process(&self) -> Result<()> {
        if self.made_in.is_current() {
            Ok(())
        } else {
            Err(Error::Memory(MemoryError::Forked))
        }
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
        py: Python<'_>,
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
        AuditWriter::new(py, w, None)
    }

    /// Open an existing log to continue it (repairing a torn tail).
    #[staticmethod]
    #[pyo3(signature = (path, *, sync = false))]
    fn open(py: Python<'_>, path: PathBuf, sync: bool) -> Result<Self> {
        let (w, repair) = detach(py, || Writer::open(&path, sync))?;
        AuditWriter::new(py, w, repair.map(|r| r.torn_bytes))
    }

    /// Append one event, given as the UTF-8 bytes of one JSON value without line breaks.
    /// Returns its sequence number once the line is in the file.
    #[pyo3(signature = (body, /))]
    fn append(&self, py: Python<'_>, body: &[u8]) -> Result<u64> {
        self.with(py, |w| w.append(body))
    }

    /// Append `event` (a dict or str), encoded in Rust exactly as
    /// `json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)`
    /// would, for the JSON types (dict with str keys, list, tuple, str, int, float, bool,
    /// None). Returns the sequence number, or `None` (nothing written) when the event holds
    /// anything else: the caller then encodes it with `json` and calls `append`.
    #[pyo3(signature = (event, /))]
    fn append_event(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> Result<Option<u64>> {
        let mut body = Vec::with_capacity(256);
        if !write_json(event, &mut body, 0)? {
            return Ok(None);
        }
        let body = &body[..];
        self.with(py, |w| w.append(body)).map(Some)
    }

    /// Sign a checkpoint of the whole log with `signer` (an `Ed25519PrivateKey`), write it
    /// to `<path>.checkpoint` atomically, start a new epoch; returns the signed note.
    #[pyo3(signature = (signer, /))]
    fn checkpoint(&self, signer: &Bound<'_, PyAny>) -> Result<String> {
        self.with_signer(signer, |w, public, sk| {
            w.checkpoint(public, |body| Ok(sk.sign(body)?))
        })
    }

    /// Rotate the log to `archive` (see `keycell.audit.AuditLog.rotate`).
    #[pyo3(signature = (archive, signer, /))]
    fn rotate(&self, archive: PathBuf, signer: &Bound<'_, PyAny>) -> Result<String> {
        self.with_signer(signer, |w, public, sk| {
            w.rotate(&archive, public, |body| Ok(sk.sign(body)?))
        })
    }

    /// Start a new epoch now if the current one has records; returns the current epoch.
    fn advance_epoch(&self, py: Python<'_>) -> Result<u64> {
        self.with(py, |w| w.advance())
    }

    /// Write the state file and close the writer (its epoch key is wiped). Idempotent.
    fn close(&self, py: Python<'_>) -> Result<()> {
        if !self.made_in.is_current() {
            // A fork child: the parent's writer is not ours to close (and its mutex may be
            // held by a thread that does not exist here).
            return Ok(());
        }
        detach(py, || {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(mut w) = g.take() {
                if w.in_own_process() {
                    w.save_state()?;
                }
            }
            Ok(())
        })
    }

    /// Set how long (seconds) appends wait for another writer's lock.
    #[pyo3(signature = (seconds, /))]
    fn set_lock_timeout(&self, py: Python<'_>, seconds: f64) -> Result<()> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(Error::Value(
                "lock_timeout must be a non-negative number".to_owned(),
            ));
        }
        self.with(py, |w| {
            w.set_lock_timeout(std::time::Duration::from_secs_f64(seconds));
            Ok(())
        })
    }

    /// True once `close()` ran.
    /// What protection the writer's memory actually has: its current epoch key's, the
    /// weakest of the key and its HMAC pads (each new epoch's key is a new region).
    #[getter]
    fn protection(&self, py: Python<'_>) -> Result<Protection> {
        self.with(py, |w| Ok(Protection::from(w.protection())))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
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

/// Write `obj` as compact JSON, byte for byte as `json.dumps(obj, ensure_ascii=False,
/// separators=(",", ":"), allow_nan=False)` does. `Ok(false)` (output unusable) for
/// anything this does not handle exactly the same way: subclasses, non-str keys,
/// non-finite floats, strings with lone surrogates, nesting deeper than 100.
fn write_json(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> PyResult<bool> {
    if depth > 100 {
        return Ok(false);
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
    } else if obj.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if obj.is_truthy()? { b"true" } else { b"false" });
    } else if let Ok(s) = obj.cast_exact::<PyString>() {
        let Ok(text) = s.to_str() else {
            return Ok(false);
        };
        write_json_str(text, out);
    } else if obj.is_exact_instance_of::<PyInt>() {
        out.extend_from_slice(obj.str()?.to_str()?.as_bytes());
    } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
        if !f.value().is_finite() {
            return Ok(false);
        }
        out.extend_from_slice(obj.repr()?.to_str()?.as_bytes());
    } else if let Ok(d) = obj.cast_exact::<PyDict>() {
        out.push(b'{');
        for (i, (k, v)) in d.iter().enumerate() {
            let Ok(k) = k.cast_exact::<PyString>() else {
                return Ok(false);
            };
            let Ok(key) = k.to_str() else {
                return Ok(false);
            };
            if i > 0 {
                out.push(b',');
            }
            write_json_str(key, out);
            out.push(b':');
            if !write_json(&v, out, depth + 1)? {
                return Ok(false);
            }
        }
        out.push(b'}');
    } else if let Ok(l) = obj.cast_exact::<PyList>() {
        out.push(b'[');
        for (i, v) in l.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if !write_json(&v, out, depth + 1)? {
                return Ok(false);
            }
        }
        out.push(b']');
    } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
        out.push(b'[');
        for (i, v) in t.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if !write_json(&v, out, depth + 1)? {
                return Ok(false);
            }
        }
        out.push(b']');
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// The JSON encoding of `event` as `AuditWriter.append_event` writes it, or `None` when
/// it would fall back to Python's `json` (for tests).
#[pyfunction]
#[pyo3(signature = (event, /))]
pub fn _audit_encode<'py>(
    py: Python<'py>,
    event: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut out = Vec::new();
    Ok(write_json(event, &mut out, 0)?.then(|| PyBytes::new(py, &out)))
}

/// Verify the log at `path`: MACs under `key` (K0, a `SecretKey`), the chain, the
/// sequence, and, with `checkpoint` (the signed note's bytes), its signature under
/// `public_key` (needed then, and only then) and the Merkle root; a file that begins with
/// a rotate record only with `rotated_ok`. Returns a dict (see `keycell.audit.verify`).
#[pyfunction]
#[pyo3(signature = (path, *, key, public_key = None, checkpoint = None, rotated_ok = false))]
pub fn audit_verify<'py>(
    py: Python<'py>,
    path: PathBuf,
    key: &Bound<'py, PyAny>,
    public_key: Option<&Bound<'py, PyAny>>,
    checkpoint: Option<&[u8]>,
    rotated_ok: bool,
) -> Result<Bound<'py, PyDict>> {
    let k = k0_of(key)?;
    let vk = match public_key {
        Some(p) => Some(
            *handle::<Ed25519PublicKey>(p, "public_key", "Ed25519PublicKey", "")?
                .get()
                .verifying_key(),
        ),
        None => None,
    };
    let cp = match (checkpoint, vk) {
        (Some(c), Some(vk)) => Some((c.to_vec(), vk)),
        (Some(_), None) => {
            return Err(Error::Value(
                "checking a checkpoint needs public_key (the checkpoint signer's \
                 Ed25519PublicKey)"
                    .to_owned(),
            ))
        }
        (None, _) => None,
    };
    // A guarded copy of K0, so the GIL can be released for the whole pass.
    let k0 = {
        let live = k.get().live()?;
        crate::crypto::symmetric::SymmetricKey::from_slice(live.key().bytes()?)?
    };
    let report = detach(py, || -> Result<_> {
        Ok(verify::verify_file(
            &path,
            k0.bytes()?,
            cp.as_ref().map(|(c, vk)| (c.as_slice(), vk)),
            rotated_ok,
        )?)
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
    d.set_item("unchecked_before", report.unchecked_before)?;
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
pub fn audit_prove(
    py: Python<'_>,
    path: PathBuf,
    line: u64,
    size: u64,
) -> Result<Bound<'_, PyDict>> {
    let (bytes, leaf, proof, root) = detach(py, || verify::prove(&path, line, size))?;
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
