//! The streaming `keycell.HMAC` context (the one-shot `SecretKey.hmac` / `verify_hmac` are
//! methods of the key, in `secret_key.rs`).
//!
//! Locking rules (so a key destroyed on another thread never deadlocks or crashes):
//! - the key's lock is only ever taken inside the closure given to [`maybe_detach`], and
//!   released before it returns, so no thread holds it while it waits for the GIL;
//! - `HMAC` takes its own `Mutex` first and the key's lock second; nothing takes them in
//!   the other order. When the mutex is contended it is acquired with the GIL released.
//!
//! `verify()` follows the tag rule of `crate::crypto::tag`; the expected tag is wiped from
//! the stack afterwards.

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use zeroize::Zeroize;

use crate::crypto::hmac::{HmacStream, MacAlgorithm, MAX_DIGEST_LEN};

use super::args::{handle, parse_mac_algorithm};
use super::bytes_like::{bytes_like, maybe_detach};
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::protection::report_derived_shortfall;
use super::secret_key::{check_hmac_tag, SecretKey};

/// The state of an `HMAC` context.
enum Ctx {
    /// Accepting data. Boxed: the stream is large and the other states are empty.
    Active(Box<HmacStream>),
    /// `finalize()` or `verify()` ran.
    Finalized,
    /// The key was found destroyed; the running state has been wiped.
    KeyDestroyed,
}

/// A streaming HMAC over a `SecretKey`, with the interface of pyca/cryptography's
/// `cryptography.hazmat.primitives.hmac.HMAC`.
///
/// The context holds a reference to the key and reads the key's precomputed pads from its
/// guarded region when it needs them; it never copies the key. Until the first full hash
/// block of data has arrived it holds no key-derived state at all; afterwards it holds the
/// running inner hash state, which is wiped by `finalize()`, `verify()`, on garbage
/// collection, and as soon as the context notices its key was destroyed.
///
/// After `finalize()` or `verify()` every method raises `AlreadyFinalized`. Once the key is
/// destroyed every method raises `KeyDestroyedError`. Inputs of 2 KiB or more are hashed
/// with the GIL released. Methods may be called from several threads; they are serialized.
#[pyclass(frozen, module = "keycell._native", name = "HMAC")]
pub struct Hmac {
    key: Py<SecretKey>,
    alg: MacAlgorithm,
    ctx: Mutex<Ctx>,
}

impl Hmac {
    /// Lock the context. When another thread holds it (possibly hashing a large input
    /// without the GIL), wait for it with the GIL released, then try again: a thread never
    /// blocks on this mutex while holding the GIL.
    fn lock<'a>(&'a self, py: Python<'_>) -> MutexGuard<'a, Ctx> {
        loop {
            match self.ctx.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    detach(py, || drop(self.ctx.lock()));
                }
            }
        }
    }

    /// The running stream, or the right exception.
    fn active(ctx: &mut Ctx) -> Result<&mut HmacStream> {
        match ctx {
            Ctx::Active(stream) => Ok(stream),
            Ctx::Finalized => Err(Error::AlreadyFinalized("this HMAC context")),
            Ctx::KeyDestroyed => Err(Error::Destroyed("SecretKey used by this HMAC context")),
        }
    }

    /// Make the key's pads for this context's hash (when the key is alive) and report a
    /// shortfall in their protection before the call changes the context: a warning turned
    /// into an error (`-W error`) then fails a call that absorbed nothing and finished
    /// nothing, so retrying it is right. Errors of the key (destroyed, ...) are left to
    /// the call's own path, which reports them as such.
    fn make_pads_first(&self, py: Python<'_>) -> Result<()> {
        if let Ok(live) = self.key.get().live() {
            let _ = live.key().pads(self.alg);
        }
        report_derived_shortfall(py)
    }

    /// Finish the computation into `out` (full digest) and mark the context finalized.
    /// State derived from the key in this call (the pads, on the key's first use) that got
    /// less protection than the key is reported from this call, after the context's lock
    /// is released (a warning may run Python code).
    fn finish(&self, py: Python<'_>, out: &mut [u8; MAX_DIGEST_LEN]) -> Result<()> {
        self.make_pads_first(py)?;
        self.finish_locked(py, out)?;
        report_derived_shortfall(py)
    }

    fn finish_locked(&self, py: Python<'_>, out: &mut [u8; MAX_DIGEST_LEN]) -> Result<()> {
        let mut ctx = self.lock(py);
        let stream = Self::active(&mut ctx)?;
        let key = self.key.get();
        let result = (|| -> Result<()> {
            let live = key.live()?;
            stream.finalize(live.key().pads(self.alg)?, out);
            Ok(())
        })();
        // Success or not, the running state is wiped (dropping the stream zeroizes it).
        *ctx = match &result {
            Err(Error::Destroyed(_)) => Ctx::KeyDestroyed,
            _ => Ctx::Finalized,
        };
        result
    }
}

#[pymethods]
impl Hmac {
    /// Start an HMAC with `key` (a `SecretKey`) and `algorithm` ("sha256", "sha384",
    /// "sha512", or "sha1" for legacy protocols only).
    #[new]
    #[pyo3(signature = (key, algorithm = "sha256"))]
    fn new(key: &Bound<'_, PyAny>, algorithm: &str) -> Result<Self> {
        let key: &Bound<'_, SecretKey> = handle(
            key,
            "key",
            "SecretKey",
            "; load raw bytes with SecretKey.from_buffer()",
        )?;
        let alg = parse_mac_algorithm(algorithm)?;
        key.get().live()?;
        Ok(Hmac {
            key: key.clone().unbind(),
            alg,
            ctx: Mutex::new(Ctx::Active(Box::new(HmacStream::new(alg)))),
        })
    }

    /// The hash algorithm's name: "sha256", "sha384", "sha512" or "sha1".
    #[getter]
    fn algorithm(&self) -> &'static str {
        self.alg.name()
    }

    /// Length of the tag `finalize()` returns, in bytes.
    #[getter]
    fn digest_size(&self) -> usize {
        self.alg.digest_len()
    }

    /// Block size of the hash function, in bytes.
    #[getter]
    fn block_size(&self) -> usize {
        self.alg.block_len()
    }

    /// Absorb `data` (any bytes-like object).
    fn update(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<()> {
        let data = bytes_like(data, "data")?;
        let msg = data.as_slice();
        let needs_pads = Self::active(&mut self.lock(py))?.needs_pads(msg.len());
        if needs_pads {
            self.make_pads_first(py)?;
        }
        let mut ctx = self.lock(py);
        let stream = Self::active(&mut ctx)?;
        let key = self.key.get();
        let alg = self.alg;
        let result = maybe_detach(py, msg.len(), || -> Result<()> {
            let live = key.live()?;
            if stream.needs_pads(msg.len()) {
                stream.update(Some(live.key().pads(alg)?), msg);
            } else {
                stream.update(None, msg);
            }
            Ok(())
        });
        if let Err(Error::Destroyed(_)) = result {
            *ctx = Ctx::KeyDestroyed;
        }
        drop(ctx);
        result?;
        // The pads, made in this call on the key's first use, are reported from it.
        report_derived_shortfall(py)
    }

    /// An independent copy of this context (same key, same data absorbed so far).
    fn copy(&self, py: Python<'_>) -> Result<Self> {
        let mut ctx = self.lock(py);
        let stream = Self::active(&mut ctx)?;
        if let Err(e) = self.key.get().live() {
            if matches!(e, Error::Destroyed(_)) {
                *ctx = Ctx::KeyDestroyed;
            }
            return Err(e);
        }
        // Copied in place into its final allocation (no temporary copy of the state).
        let mut copy = Box::new(HmacStream::new(self.alg));
        copy.copy_from(stream);
        Ok(Hmac {
            key: self.key.clone_ref(py),
            alg: self.alg,
            ctx: Mutex::new(Ctx::Active(copy)),
        })
    }

    /// Finish and return the tag (`digest_size` bytes). The context cannot be used again.
    fn finalize<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let mut out = [0u8; MAX_DIGEST_LEN];
        let done = self.finish(py, &mut out);
        let tag = done.map(|()| PyBytes::new(py, &out[..self.alg.digest_len()]));
        out[..].zeroize();
        tag
    }

    /// Finish and compare with `tag` in constant time; raises `InvalidSignature` on a
    /// mismatch. A tag shorter than `digest_size` is compared with the leading bytes of
    /// the HMAC only when it is at least 16 bytes long; shorter or longer tags never
    /// verify. The context cannot be used again.
    fn verify(&self, py: Python<'_>, tag: &Bound<'_, PyAny>) -> Result<()> {
        let tag = bytes_like(tag, "tag")?;
        let mut expected = [0u8; MAX_DIGEST_LEN];
        let result = self
            .finish(py, &mut expected)
            .and_then(|()| check_hmac_tag(&expected[..self.alg.digest_len()], tag.as_slice()));
        expected[..].zeroize();
        result
    }

    fn __repr__(&self) -> String {
        format!("<keycell.HMAC {}>", self.alg.name())
    }
}

crate::py::text_refusal::text_refusing!(Hmac);
