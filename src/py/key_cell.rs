//! [`KeyCell`]: the one life cycle every key handle is built on.
//!
//! `SecretKey`, `Ed25519PrivateKey` and `X25519PrivateKey` are thin classes over a cell;
//! the cell owns what they share: the key behind its reader/writer lock, the fork check,
//! destroy, the export seal, the count of live views, the redacted `repr`, constant-time
//! equality and the refusal to pickle, copy or hash.
//!
//! # Locking
//!
//! - A thread never waits for the GIL while it holds a key's lock. Operations that release
//!   the GIL take the lock inside the GIL-free section and drop it before they return;
//!   operations that keep the GIL never release it while holding the lock. `destroy()`
//!   takes the write lock with the GIL released. So no thread can hold the lock while
//!   waiting for the GIL that a thread blocked on the lock holds.
//! - The fork check runs before any lock is taken. A child forked while another thread
//!   held (or waited for) the lock inherits the lock's state but not the thread that would
//!   release it; in the child every use raises `ForkedKeyError` without touching the lock,
//!   and `destroy()` abandons the parent's lock instead of waiting on it. The check
//!   ([`ProcessStamp`]) also catches a child made by a raw `fork` system call, which runs
//!   no atfork handlers (`src/memory/fork.rs`).
//! - Two cells are locked in address order ([`KeyCell::ct_eq`]), so two threads comparing
//!   the same pair in opposite order cannot deadlock against a waiting destroy.
//!
//! # Views
//!
//! [`ViewSource::open_view`] hands out the address of the secret bytes and counts the view;
//! `destroy()` refuses (`KeyInUseError`) while the count is non-zero, so the region outlives
//! every view. The buffer exporter in `view.rs` is the only caller.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, TryLockError, Weak};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::PyBool;
use pyo3::PyClass;

use crate::crypto::key_kind::KeyKind;
use crate::crypto::symmetric::SymmetricKey;
use crate::crypto::{ec, ed25519, x25519};
use crate::memory::fork::ProcessStamp;
use crate::memory::{self, Isolation, MemoryError, SecretBuf};

use super::bytes_like::maybe_detach;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_io;
use super::protection::{report_derived_shortfall, report_new_region, Protection};

/// What a cell needs from the key it holds: the secret bytes (for views, key files, the key
/// store and diagnostics) and the protection of its memory. Both the crypto layer's key
/// types implement it here, so the crypto layer stays free of the bindings.
pub trait CellKey: Send + Sync + 'static {
    /// The secret bytes as stored (symmetric key, Ed25519 seed, X25519 scalar), borrowed
    /// from the guarded region. Fails in a fork child.
    fn secret(&self) -> std::result::Result<&[u8], MemoryError>;
    /// The protection the key's memory actually has.
    fn protection(&self) -> memory::Protection;
}

impl CellKey for SymmetricKey {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        self.bytes()
    }
    fn protection(&self) -> memory::Protection {
        SymmetricKey::protection(self)
    }
}

impl CellKey for SecretBuf {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        self.bytes()
    }
    fn protection(&self) -> memory::Protection {
        SecretBuf::protection(self)
    }
}

impl CellKey for ed25519::PrivateKey {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        crate::crypto::curve::CurvePrivateKey::private_bytes(self)
    }
    fn protection(&self) -> memory::Protection {
        crate::crypto::curve::CurvePrivateKey::protection(self)
    }
}

impl CellKey for ec::PrivateKey {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        self.private_bytes()
    }
    fn protection(&self) -> memory::Protection {
        ec::PrivateKey::protection(self)
    }
}

impl CellKey for x25519::PrivateKey {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        crate::crypto::curve::CurvePrivateKey::private_bytes(self)
    }
    fn protection(&self) -> memory::Protection {
        crate::crypto::curve::CurvePrivateKey::protection(self)
    }
}

impl CellKey for crate::crypto::rsa::RsaPrivateKey {
    fn secret(&self) -> std::result::Result<&[u8], MemoryError> {
        self.pkcs1_der()
    }
    fn protection(&self) -> memory::Protection {
        crate::crypto::rsa::RsaPrivateKey::protection(self)
    }
}

/// What `repr` shows after the class name: never secret. A length is kept as a number
/// and formatted only by `repr`, so making a key allocates no string.
#[derive(Debug, Clone)]
pub enum Label {
    /// Nothing besides the class name.
    None,
    /// "N bytes".
    Length(usize),
    /// Any other non-secret text (e.g. "public=...").
    Text(String),
}

impl From<String> for Label {
    fn from(text: String) -> Self {
        if text.is_empty() {
            Label::None
        } else {
            Label::Text(text)
        }
    }
}

/// The one-way export seal of a key (`exportable=False`, `seal_export()`).
#[derive(Debug)]
struct ExportSeal(AtomicBool);

/// The state shared by every key handle. See the module docs.
pub struct KeyCell<K> {
    /// The Python class name, for messages and `repr`.
    class: &'static str,
    /// What `repr` shows after the class name ("32 bytes", "public=...", or nothing).
    label: Label,
    state: RwLock<Option<K>>,
    /// Set by `destroy()` (also in a fork child, which cannot take the lock): read without
    /// the lock by `repr`, `destroyed` and the fork path.
    destroyed: AtomicBool,
    /// The process the cell was made in (checked before any lock is taken).
    made_in: ProcessStamp,
    /// Open views (buffer exports). `destroy()` refuses while it is non-zero.
    views: AtomicUsize,
    export: ExportSeal,
    /// Objects made from this key that keep state of their own (an OTP object's copy of
    /// the secret and its pads): `destroy()` destroys them too, so destroying a key
    /// revokes everything made from it (DESIGN.md invariant 11). Objects that use this
    /// cell on every call (AEAD, HMAC contexts) need no entry.
    dependents: Mutex<Vec<Weak<dyn Revoke>>>,
}

/// Something `destroy()` of the key it was made from must destroy too, and its
/// `seal_export()` seal.
pub trait Revoke: Send + Sync {
    /// Destroy it (as its own `destroy()` does).
    fn revoke(&self, py: Python<'_>) -> Result<()>;
    /// Seal it against export, for good (a destroyed one needs nothing), and its own
    /// dependents with it.
    fn seal(&self);
}

impl<K: CellKey> Revoke for KeyCell<K> {
    fn revoke(&self, py: Python<'_>) -> Result<()> {
        self.destroy(py)
    }

    fn seal(&self) {
        self.seal_with_dependents();
    }
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

/// A handle class built on a [`KeyCell`] (a frozen pyclass; the cell may be held in an
/// `Arc`, shared with the views of `expose()`). Implementing it and invoking
/// [`key_handle_methods!`] gives the class every key handle's Python methods.
pub trait KeyHandle: PyClass<Frozen = True> + Sync {
    /// The key type in the cell.
    type Key: CellKey;
    /// The handle's cell.
    fn cell(&self) -> &KeyCell<Self::Key>;
}

impl<K: CellKey> KeyCell<K> {
    /// A cell around a new key (a missing memory protection is reported as the policy
    /// says). `label` is what `repr` shows besides the class name; it must not be secret.
    pub fn new(
        py: Python<'_>,
        class: &'static str,
        key: K,
        exportable: bool,
        label: impl Into<Label>,
    ) -> Result<Self> {
        report_new_region(py, &key.protection())?;
        Ok(KeyCell {
            class,
            label: label.into(),
            state: RwLock::new(Some(key)),
            destroyed: AtomicBool::new(false),
            made_in: ProcessStamp::current(),
            views: AtomicUsize::new(0),
            export: ExportSeal(AtomicBool::new(exportable)),
            dependents: Mutex::new(Vec::new()),
        })
    }

    /// Register `dependent` to be destroyed with this key. Call it while holding this
    /// key's read lock (a [`LiveKey`]): `destroy()` takes the write lock, so it either ran
    /// before (and the caller got `KeyDestroyedError`) or sees the entry.
    ///
    /// A dependent added after this key was sealed is sealed at once: the seal and the
    /// list are updated under the same mutex, so a `seal_export()` racing with the
    /// derivation cannot miss it.
    pub fn add_dependent(&self, dependent: Weak<dyn Revoke>) {
        let mut list = self.dependents.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|d| d.strong_count() > 0);
        if !self.exportable() {
            if let Some(d) = dependent.upgrade() {
                d.seal();
            }
        }
        list.push(dependent);
    }

    /// Seal this key and, through [`Revoke::seal`], every dependent and their own
    /// dependents (the seal cascades as `destroy()` does). The export flag is cleared
    /// under the dependents' mutex (see [`Self::add_dependent`]). The graph is acyclic: a
    /// dependent is always made after the key it is registered with.
    fn seal_with_dependents(&self) {
        let list = self.dependents.lock().unwrap_or_else(|e| e.into_inner());
        self.export.0.store(false, Ordering::SeqCst);
        for dependent in list.iter().filter_map(Weak::upgrade) {
            dependent.seal();
        }
    }

    /// Destroy every live dependent; the first failure is returned after all were tried.
    fn revoke_dependents(&self, py: Python<'_>) -> Result<()> {
        let list = std::mem::take(&mut *self.dependents.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first = None;
        for dependent in list.iter().filter_map(Weak::upgrade) {
            if let Err(e) = dependent.revoke(py) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// `ForkedKeyError` in a fork child of the process that made the cell. Runs before any
    /// lock is taken.
    fn check_process(&self) -> Result<()> {
        if self.made_in.is_current() {
            Ok(())
        } else {
            Err(Error::Memory(MemoryError::Forked))
        }
    }

    /// Read access to the live key, or `ForkedKeyError` / `KeyDestroyedError`. The key's
    /// region is checked too (a fork child whose atfork handlers did not run is caught by
    /// the region itself).
    pub fn live(&self) -> Result<LiveKey<'_, K>> {
        self.check_process()?;
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            None => Err(Error::Destroyed(self.class)),
            Some(k) => {
                k.secret()?;
                Ok(LiveKey(guard))
            }
        }
    }

    /// Run `f` on the live key, with the GIL released when `len` reaches the threshold.
    /// The lock is taken inside the (possibly GIL-free) section.
    pub fn with_key<T: Send>(
        &self,
        py: Python<'_>,
        len: usize,
        f: impl FnOnce(&K) -> Result<T> + Send,
    ) -> Result<T> {
        let out = maybe_detach(py, len, || {
            let live = self.live()?;
            f(live.key())
        })?;
        report_derived_shortfall(py)?;
        Ok(out)
    }

    /// Wipe, unlock and unmap the key. Idempotent. Waits for operations in progress on
    /// other threads; raises `KeyInUseError` (and frees nothing) while a view is open. In
    /// a fork child it only marks the handle destroyed: the parent's lock may be held by a
    /// thread that does not exist here, and the memory was wiped on fork.
    pub fn destroy(&self, py: Python<'_>) -> Result<()> {
        self.destroy_own(py)?;
        self.revoke_dependents(py)
    }

    /// [`Self::destroy`] of this key alone.
    fn destroy_own(&self, py: Python<'_>) -> Result<()> {
        if self.check_process().is_err() {
            self.destroyed.store(true, Ordering::SeqCst);
            return Ok(());
        }
        // An uncontended pooled key is wiped and freed with the GIL held: that is a canary
        // check, a wipe of its slot and a free-list push, no system call, so releasing and
        // retaking the GIL would cost more than the work. Page-isolated keys (unlock and
        // unmap) and a lock another thread holds go through `detach`.
        let uncontended = match self.state.try_write() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut guard) = uncontended {
            let pooled = guard
                .as_ref()
                .is_none_or(|k| k.protection().isolation == Isolation::Pool);
            if pooled {
                return self.take_key(&mut guard);
            }
        }
        detach(py, || {
            let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
            self.take_key(&mut guard)
        })
    }

    /// Under the write lock: drop the key (which wipes and frees its memory) unless a view
    /// from `expose()` is open.
    fn take_key(&self, slot: &mut Option<K>) -> Result<()> {
        if slot.is_some() && self.views.load(Ordering::SeqCst) != 0 {
            return Err(Error::InUse(
                "cannot destroy a key while a view from expose() is still open",
            ));
        }
        slot.take();
        self.destroyed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// True once `destroy()` has run. Never takes the lock.
    pub fn is_destroyed(&self) -> bool {
        self.destroyed.load(Ordering::SeqCst)
    }

    /// Raise `KeyDestroyedError` / `ForkedKeyError` unless the key is usable.
    pub fn check_live(&self) -> Result<()> {
        self.live().map(|_| ())
    }

    /// The protection the key's memory actually has.
    pub fn protection(&self) -> Result<Protection> {
        Ok(Protection::from(self.live()?.key().protection()))
    }

    /// Whether the key may still be exported.
    pub fn exportable(&self) -> bool {
        self.export.0.load(Ordering::SeqCst)
    }

    /// `Ok` when exportable, else `KeyNotExportableError`.
    pub fn check_exportable(&self) -> Result<()> {
        if self.exportable() {
            Ok(())
        } else {
            Err(Error::NotExportable(self.class))
        }
    }

    /// Seal the key against export, for good.
    pub fn seal_export(&self) -> Result<()> {
        self.check_live()?;
        // Objects made from this key (derived keys, OTP objects, which keep a copy: their
        // export would give the same or a derived secret) are sealed with it, and so are
        // the objects made from those, transitively.
        self.seal_with_dependents();
        Ok(())
    }

    /// Write the secret bytes to `path` as a key file of `kind` (see `to_file` in the
    /// stubs), an OpenSSH one encrypted under `passphrase` (a guarded copy) if given;
    /// refuses a sealed key. The lock is taken without the GIL.
    pub fn to_file(
        &self,
        py: Python<'_>,
        path: &Path,
        kind: KeyKind,
        format: &str,
        passphrase: Option<&SecretBuf>,
        overwrite: bool,
    ) -> Result<()> {
        self.check_exportable()?;
        detach(py, || {
            let live = self.live()?;
            key_io::write(
                path,
                kind,
                format,
                live.key().secret()?,
                passphrase,
                overwrite,
            )
        })
    }

    /// Constant-time equality of the secret bytes of two cells (lengths are compared
    /// first, which reveals only the lengths). Locks are taken in address order.
    pub fn ct_eq(&self, other: &KeyCell<K>) -> Result<bool> {
        if std::ptr::eq(self, other) {
            self.check_live()?;
            return Ok(true);
        }
        let (first, second) = if (self as *const Self) < (other as *const Self) {
            (self, other)
        } else {
            (other, self)
        };
        let g1 = first.live()?;
        let g2 = second.live()?;
        Ok(crate::crypto::ct::ct_eq(
            g1.key().secret()?,
            g2.key().secret()?,
        ))
    }

    /// Address of the first secret byte (diagnostics: `keycell doctor` matches it against
    /// `/proc/self/smaps`; tests poke the bytes around it). The address is not secret.
    pub fn address(&self) -> Result<usize> {
        Ok(self.live()?.key().secret()?.as_ptr() as usize)
    }

    /// `repr()`: the class and the non-secret label, or "destroyed".
    pub fn repr(&self) -> String {
        if self.is_destroyed() {
            return format!("<{} destroyed>", self.class);
        }
        match &self.label {
            Label::None => format!("<{}>", self.class),
            Label::Length(n) => format!("<{} {n} bytes>", self.class),
            Label::Text(text) => format!("<{} {text}>", self.class),
        }
    }

    /// The `TypeError` raised by pickling (`what = "pickled"`) or copying.
    pub fn refuse(&self, what: &str) -> Error {
        Error::Type(format!(
            "{} cannot be {what}: its secret is kept out of Python memory on purpose. Keep \
             using the handle, or save it explicitly (KeyStore, to_file)",
            self.class
        ))
    }
}

/// What the buffer exporter in `view.rs` needs from a cell, without knowing its key type.
pub trait ViewSource: Send + Sync {
    /// `KeyNotExportableError` for a sealed key.
    fn check_exportable(&self) -> Result<()>;
    /// Count a new view and return the secret bytes' address and length. The caller must
    /// call [`ViewSource::close_view`] exactly once when the view is released.
    fn open_view(&self) -> Result<(*const u8, usize)>;
    /// Forget a view counted by [`ViewSource::open_view`].
    fn close_view(&self);
}

impl<K: CellKey> ViewSource for KeyCell<K> {
    fn check_exportable(&self) -> Result<()> {
        KeyCell::check_exportable(self)
    }

    fn open_view(&self) -> Result<(*const u8, usize)> {
        self.check_exportable()?;
        let live = self.live()?;
        let bytes = live.key().secret()?;
        self.views.fetch_add(1, Ordering::SeqCst);
        Ok((bytes.as_ptr(), bytes.len()))
    }

    fn close_view(&self) {
        self.views.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `__enter__` of a key handle: the handle itself, or `KeyDestroyedError` /
/// `ForkedKeyError`.
pub fn enter<H: KeyHandle>(slf: &Bound<'_, H>) -> Result<Py<H>> {
    slf.get().cell().check_live()?;
    Ok(slf.clone().unbind())
}

/// `__exit__` of a key handle: destroy it and let any exception propagate.
pub fn exit<H: KeyHandle>(handle: &H, py: Python<'_>) -> Result<bool> {
    handle.cell().destroy(py)?;
    Ok(false)
}

/// `__richcmp__` of a key handle: constant-time `==` / `!=` against a handle of the same
/// class ([`KeyCell::ct_eq`]); anything else is `NotImplemented`.
pub fn richcmp<H: KeyHandle>(
    slf: &Bound<'_, H>,
    other: &Bound<'_, PyAny>,
    op: CompareOp,
) -> Result<Py<PyAny>> {
    let py = slf.py();
    let Ok(other) = other.cast::<H>() else {
        return Ok(py.NotImplemented());
    };
    let equal = match op {
        CompareOp::Eq | CompareOp::Ne => slf.get().cell().ct_eq(other.get().cell())?,
        _ => return Ok(py.NotImplemented()),
    };
    let result = equal == matches!(op, CompareOp::Eq);
    Ok(PyBool::new(py, result).to_owned().into_any().unbind())
}

/// A second `#[pymethods]` block with the Python methods every key handle has, each a
/// one-line delegation to the class's [`KeyHandle::cell`] or a helper above: the export
/// seal, destroy, context manager, protection report, constant-time `==` (which also
/// leaves the class unhashable: PyO3 sets `__hash__` to `None` for a class with
/// `__richcmp__` and no `__hash__`), `repr`, and the refusal to pickle, copy or become
/// text (`text_refusing!`). The class's own methods stay in its own `#[pymethods] impl`.
macro_rules! key_handle_methods {
    ($cls:ty) => {
        $crate::py::text_refusal::text_refusing!($cls);

        #[::pyo3::pymethods]
        impl $cls {
            /// Seal the key against export, for good: afterwards every export (key files,
            /// views) raises `KeyNotExportableError`. The key still works for everything
            /// else, including the key store (which keeps it sealed). Everything made from
            /// it is sealed with it, transitively (derived keys, the keys derived from
            /// those, OTP objects made from any of them), and so is what is made later.
            fn seal_export(&self) -> $crate::py::errors::Result<()> {
                $crate::py::key_cell::KeyHandle::cell(self).seal_export()
            }

            /// False once the key was created with `exportable=False`, derived from a
            /// sealed key, or sealed with `seal_export()`.
            #[getter]
            fn exportable(&self) -> bool {
                $crate::py::key_cell::KeyHandle::cell(self).exportable()
            }

            /// Wipe, unlock and unmap the key. Idempotent. Waits for operations in progress
            /// on other threads to finish; raises `KeyInUseError` (and frees nothing) while
            /// a view from `expose()` is open.
            fn destroy(&self, py: ::pyo3::Python<'_>) -> $crate::py::errors::Result<()> {
                $crate::py::key_cell::KeyHandle::cell(self).destroy(py)
            }

            /// True once `destroy()` has run.
            #[getter]
            fn destroyed(&self) -> bool {
                $crate::py::key_cell::KeyHandle::cell(self).is_destroyed()
            }

            /// The protection the key's memory actually has.
            #[getter]
            fn protection(&self) -> $crate::py::errors::Result<$crate::py::protection::Protection> {
                $crate::py::key_cell::KeyHandle::cell(self).protection()
            }

            fn __enter__(
                slf: &::pyo3::Bound<'_, Self>,
            ) -> $crate::py::errors::Result<::pyo3::Py<Self>> {
                $crate::py::key_cell::enter(slf)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(
                &self,
                py: ::pyo3::Python<'_>,
                _args: &::pyo3::Bound<'_, ::pyo3::types::PyTuple>,
            ) -> $crate::py::errors::Result<bool> {
                $crate::py::key_cell::exit(self, py)
            }

            fn __repr__(&self) -> String {
                $crate::py::key_cell::KeyHandle::cell(self).repr()
            }

            /// Constant-time comparison of the secret bytes with another key of the same
            /// class (`==`, `!=`); other comparisons are unsupported.
            fn __richcmp__(
                slf: &::pyo3::Bound<'_, Self>,
                other: &::pyo3::Bound<'_, ::pyo3::PyAny>,
                op: ::pyo3::basic::CompareOp,
            ) -> $crate::py::errors::Result<::pyo3::Py<::pyo3::PyAny>> {
                $crate::py::key_cell::richcmp(slf, other, op)
            }

            fn __reduce__(&self) -> $crate::py::errors::Result<()> {
                Err($crate::py::key_cell::KeyHandle::cell(self).refuse("pickled"))
            }

            fn __copy__(&self) -> $crate::py::errors::Result<()> {
                Err($crate::py::key_cell::KeyHandle::cell(self).refuse("copied"))
            }

            fn __deepcopy__(
                &self,
                _memo: &::pyo3::Bound<'_, ::pyo3::PyAny>,
            ) -> $crate::py::errors::Result<()> {
                Err($crate::py::key_cell::KeyHandle::cell(self).refuse("copied"))
            }
        }
    };
}

pub(crate) use key_handle_methods;
