//! `KeyStore`: the Python handle of an encrypted key store file ([`crate::store`]).
//!
//! Every method releases the GIL for its file I/O, locking and key derivation. The
//! master passphrase is copied from the caller's writable buffer straight into a guarded
//! region, and the buffer is wiped; a master key is borrowed from its `SecretKey` region.
//!
//! Fork: a handle records the process it was made in ([`ProcessStamp`], which also
//! catches a child made by a raw `fork` system call) and compares it before taking any
//! lock, so a child forked while another thread of the parent held the handle's
//! mutex never waits for it: every method raises `ForkedKeyError`, `close()` abandons the
//! handle without locking, `closed` is true and `repr()` says "forked".

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::crypto::argon2::Argon2Params;
use crate::crypto::key_kind::KeyKind;
use crate::crypto::rsa::RsaPrivateKey;
use crate::crypto::symmetric::SymmetricKey;
use crate::crypto::{ec, ed25519, x25519};
use crate::memory::fork::ProcessStamp;
use crate::memory::SecretBuf;
use crate::store::lock::DEFAULT_LOCK_TIMEOUT;
use crate::store::{ChangeError, Master, Store, StoreError};

use super::asymmetric::PrivateKeyHandle;
use super::ec::ECPrivateKey;
use super::ed25519::Ed25519PrivateKey;
use super::errors::{Error, Result};
use super::isolation_scope::detach;
use super::key_cell::{CellKey, KeyCell, KeyHandle};
use super::passphrase;
use super::pkcs11::Pkcs11SecretKey;
use super::protection::{report_new_region, Protection};
use super::rsa::RSAPrivateKey;
use super::secret_key::SecretKey;
use super::x25519::X25519PrivateKey;

/// The master argument: a key handle, or a passphrase copied into a guarded region.
enum MasterArg {
    Key(Py<SecretKey>),
    Passphrase(SecretBuf),
    /// The root a PKCS#11 token key derived (in a guarded region).
    Token(SecretBuf),
}

const PASSPHRASE_TYPE_ERROR: &str = "master must be a SecretKey, a Passphrase, a PKCS#11 \
    token key (token.wrapping_key(...)) or a passphrase \
    in a writable buffer (bytearray or memoryview of one): keycell copies it into guarded memory and wipes \
    the buffer. A bytes or str passphrase cannot be wiped and stays in Python memory, so it \
    is refused";

fn master_arg(py: Python<'_>, obj: &Bound<'_, PyAny>) -> Result<MasterArg> {
    if let Ok(k) = obj.cast::<SecretKey>() {
        k.get().live()?;
        return Ok(MasterArg::Key(k.clone().unbind()));
    }
    if let Ok(k) = obj.cast::<Pkcs11SecretKey>() {
        let k = k.get();
        return Ok(MasterArg::Token(detach(py, || k.store_root())?));
    }
    Ok(MasterArg::Passphrase(passphrase::copy_passphrase(
        py,
        obj,
        PASSPHRASE_TYPE_ERROR,
    )?))
}

/// Run `f` with the master borrowed as [`Master`]. Call without the GIL: a master key's
/// lock is taken here and released before returning, so it is never held while waiting for
/// the GIL (which could deadlock against `destroy()`).
fn borrow_master<T>(master: &MasterArg, f: impl FnOnce(Master<'_>) -> Result<T>) -> Result<T> {
    match master {
        MasterArg::Key(k) => {
            let live = k.get().live()?;
            f(Master::Key(live.key().bytes()?))
        }
        MasterArg::Passphrase(buf) => f(Master::Passphrase(buf.bytes()?)),
        MasterArg::Token(buf) => f(Master::Token(buf.bytes()?)),
    }
}

/// Run `f` with the master borrowed as [`Master`], without the GIL.
fn with_master<T: Send>(
    py: Python<'_>,
    master: &MasterArg,
    f: impl FnOnce(Master<'_>) -> Result<T> + Send,
) -> Result<T> {
    detach(py, || borrow_master(master, f))
}

/// One `kdf_params` value: a non-int is a `TypeError`; an int outside `u32` is clamped
/// (negative to 0, huge to `u32::MAX`) so that [`Argon2Params::check`] reports it with the
/// valid range, as a `ValueError` like any other out-of-range value.
fn kdf_param_value(key: &str, v: &Bound<'_, PyAny>) -> Result<u32> {
    match v.extract::<i64>() {
        Ok(n) => Ok(n.clamp(0, i64::from(u32::MAX)) as u32),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) => {
            let negative = v
                .lt(0i64)
                .map_err(|_| Error::Value(format!("kdf_params[{key:?}] is out of range")))?;
            Ok(if negative { 0 } else { u32::MAX })
        }
        Err(_) => Err(Error::Type(format!(
            "kdf_params[{key:?}] must be an int, not {}",
            v.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "object".to_owned())
        ))),
    }
}

fn parse_kdf_params(d: Option<&Bound<'_, PyDict>>) -> Result<Option<Argon2Params>> {
    let Some(d) = d else {
        return Ok(None);
    };
    let mut p = Argon2Params::DEFAULT;
    for (k, v) in d.iter() {
        let key: String = k
            .extract()
            .map_err(|_| Error::Type("kdf_params keys must be str".to_owned()))?;
        let value = kdf_param_value(&key, &v)?;
        match key.as_str() {
            "memory_kib" => p.memory_kib = value,
            "iterations" => p.iterations = value,
            "lanes" => p.lanes = value,
            _ => {
                return Err(Error::Value(format!(
                    "unknown kdf_params key {key:?} (expected memory_kib, iterations, lanes)"
                )))
            }
        }
    }
    p.check().map_err(Error::Value)?;
    Ok(Some(p))
}

/// An encrypted, crash-safe file of named keys.
///
/// Create with `KeyStore.create(path, master=...)`, open with `KeyStore.open(path,
/// master=...)`; `master` is a `SecretKey` (at least 16 bytes) or a passphrase in a
/// writable buffer (`bytearray`; wiped after use), stretched with Argon2id. Each entry is
/// sealed with XChaCha20-Poly1305; every change is atomic and durable when the call
/// returns, and serialised across processes with a lock file (`PATH.lock`). Format:
/// docs/keystore-format.md.
#[pyclass(frozen, module = "keycell._native")]
pub struct KeyStore {
    inner: Mutex<Option<Store>>,
    path: PathBuf,
    /// The process the handle was made in (see the module comment).
    made_in: ProcessStamp,
}

impl KeyStore {
    /// A handle around `store`; a missing protection of its derived keys is reported (a
    /// `ProtectionWarning`, once per process; under `-W error` the handle is dropped and
    /// the keys wiped).
    fn new(py: Python<'_>, store: Store, path: PathBuf) -> Result<KeyStore> {
        report_new_region(py, &store.protection())?;
        Ok(KeyStore {
            inner: Mutex::new(Some(store)),
            path,
            made_in: ProcessStamp::current(),
        })
    }

    /// Whether this is a fork child of the process that made the handle.
    fn forked(&self) -> bool {
        !self.made_in.is_current()
    }

    /// `ForkedKeyError` in a fork child. Call before taking any lock.
    fn check_fork(&self) -> Result<()> {
        if self.forked() {
            return Err(Error::Forked(format!(
                "this KeyStore ({:?}) was opened by the parent process before fork();                  open the store again in this process",
                self.path.display().to_string()
            )));
        }
        Ok(())
    }

    fn err(&self, e: StoreError) -> Error {
        store_err(&self.path, e)
    }

    fn change_err(&self, e: ChangeError) -> Error {
        change_err(&self.path, e)
    }

    /// Run `f` on the open store without the GIL.
    pub(super) fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Store) -> std::result::Result<T, Error> + Send,
    ) -> Result<T> {
        self.check_fork()?;
        detach(py, || {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let store = g.as_mut().ok_or(Error::Closed("KeyStore"))?;
            f(store)
        })
    }
}

/// A key decrypted from an entry, before it gets its Python handle.
enum Opened {
    Secret(SymmetricKey),
    Ed25519(ed25519::PrivateKey),
    X25519(x25519::PrivateKey),
    Ec(ec::PrivateKey),
    Rsa(RsaPrivateKey),
}

impl KeyStore {
    /// Seal a private key (of `kind`) under `name`. The key's lock is taken inside the
    /// GIL-free section (after the store's mutex: always in that order).
    fn put_private<K: CellKey>(
        &self,
        py: Python<'_>,
        name: &str,
        kind: KeyKind,
        cell: &KeyCell<K>,
        overwrite: bool,
    ) -> Result<()> {
        let exportable = cell.exportable();
        self.with(py, |s| {
            let live = cell.live()?;
            let bytes = live.key().secret()?;
            s.put(name, kind, exportable, bytes, overwrite)
                .map_err(|e| self.change_err(e))
        })
    }
}

fn store_err(path: &std::path::Path, e: StoreError) -> Error {
    Error::Store {
        path: path.display().to_string(),
        err: e,
    }
}

/// A failed change (a busy writer lock is `StoreLockedError`, see `errors.rs`).
fn change_err(path: &std::path::Path, e: ChangeError) -> Error {
    Error::StoreChange {
        path: path.display().to_string(),
        err: e,
    }
}

/// `lock_timeout=` in seconds: finite and not negative.
fn parse_lock_timeout(t: Option<f64>) -> Result<Duration> {
    match t {
        None => Ok(DEFAULT_LOCK_TIMEOUT),
        Some(t) => Duration::try_from_secs_f64(t).map_err(|_| {
            Error::Value("lock_timeout must be a finite number of seconds >= 0".to_owned())
        }),
    }
}

#[pymethods]
impl KeyStore {
    /// Create a new, empty key store at `path` (refuses an existing file).
    ///
    /// `kdf_params` (passphrase only) is a dict with `memory_kib`, `iterations`, `lanes`;
    /// the default is 64 MiB, 3 iterations, 1 lane. Smaller values are for tests and
    /// low-memory hosts; the enforced bounds are memory 1 MiB to 1 GiB, 1 to 1000
    /// iterations, 1 to 16 lanes.
    ///
    /// `lock_timeout` (seconds, default 30) bounds every wait for the writer lock
    /// (`PATH.lock`); past it a change raises `StoreLockedError`.
    #[staticmethod]
    #[pyo3(signature = (path, *, master, kdf_params = None, lock_timeout = None))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        master: &Bound<'_, PyAny>,
        kdf_params: Option<&Bound<'_, PyDict>>,
        lock_timeout: Option<f64>,
    ) -> Result<KeyStore> {
        let params = parse_kdf_params(kdf_params)?;
        let timeout = parse_lock_timeout(lock_timeout)?;
        let m = master_arg(py, master)?;
        let store = with_master(py, &m, |m| {
            Store::create(&path, m, params, timeout).map_err(|e| change_err(&path, e))
        })?;
        KeyStore::new(py, store, path)
    }

    /// Open the key store at `path` with its master. `lock_timeout` as for `create`.
    #[staticmethod]
    #[pyo3(signature = (path, *, master, lock_timeout = None))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        master: &Bound<'_, PyAny>,
        lock_timeout: Option<f64>,
    ) -> Result<KeyStore> {
        let timeout = parse_lock_timeout(lock_timeout)?;
        let m = master_arg(py, master)?;
        let mut store = with_master(py, &m, |m| {
            Store::open(&path, m).map_err(|e| store_err(&path, e))
        })?;
        store.set_lock_timeout(timeout);
        KeyStore::new(py, store, path)
    }

    /// The store's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The Argon2id parameters as a dict, or `None` for a store under a master key.
    #[getter]
    fn kdf_params<'py>(&self, py: Python<'py>) -> Result<Option<Bound<'py, PyDict>>> {
        let p = self.with(py, |s| Ok(s.kdf_params()))?;
        let Some(p) = p else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("memory_kib", p.memory_kib)?;
        d.set_item("iterations", p.iterations)?;
        d.set_item("lanes", p.lanes)?;
        Ok(Some(d))
    }

    /// Seal `key` (a `SecretKey`, `Ed25519PrivateKey`, `X25519PrivateKey`, `ECPrivateKey`
    /// or `RSAPrivateKey`) into the store under `name` (1 to 255 bytes of UTF-8; no character of Unicode categories Cc,
    /// Cf, Zl or Zp: controls, bidirectional and zero-width characters, BOM). Raises
    /// `StoreEntryExistsError` if `name` exists, unless `overwrite`. The key's type and
    /// export flag are stored with it: `get` returns the same handle type, sealed for a
    /// sealed key.
    #[pyo3(signature = (name, key, *, overwrite = false))]
    fn put(
        &self,
        py: Python<'_>,
        name: &str,
        key: &Bound<'_, PyAny>,
        overwrite: bool,
    ) -> Result<()> {
        if let Ok(k) = key.cast::<SecretKey>() {
            let k = k.get();
            let exportable = k.cell().exportable();
            // The key's lock only inside the GIL-free section (see `put_curve`).
            return self.with(py, |s| {
                let live = k.live()?;
                s.put(
                    name,
                    KeyKind::Secret,
                    exportable,
                    live.key().bytes()?,
                    overwrite,
                )
                .map_err(|e| self.change_err(e))
            });
        }
        if let Ok(k) = key.cast::<Ed25519PrivateKey>() {
            return self.put_private(py, name, KeyKind::Ed25519, k.get().cell(), overwrite);
        }
        if let Ok(k) = key.cast::<X25519PrivateKey>() {
            return self.put_private(py, name, KeyKind::X25519, k.get().cell(), overwrite);
        }
        if let Ok(k) = key.cast::<ECPrivateKey>() {
            let kind = KeyKind::from_ec_curve(k.get().cell().live()?.key().curve());
            return self.put_private(py, name, kind, k.get().cell(), overwrite);
        }
        if let Ok(k) = key.cast::<RSAPrivateKey>() {
            // The entry holds the key's PKCS#1 DER, sealed from its guarded region.
            return self.put_private(py, name, KeyKind::Rsa, k.get().cell(), overwrite);
        }
        Err(Error::Type(format!(
            "key must be a SecretKey, Ed25519PrivateKey, X25519PrivateKey, ECPrivateKey or \
             RSAPrivateKey, not {}",
            key.get_type().name()?
        )))
    }

    /// The key stored under `name`, decrypted straight into a new guarded region, as the
    /// handle type it was stored as (`SecretKey`, `Ed25519PrivateKey`, `X25519PrivateKey`,
    /// `ECPrivateKey` or `RSAPrivateKey`), exportable as it was. Raises `StoreEntryNotFoundError` (a
    /// `KeyError`).
    fn get(&self, py: Python<'_>, name: &str) -> Result<Py<PyAny>> {
        let (key, exportable) = self.with(py, |s| {
            let entry = s.get(name).map_err(|e| self.err(e))?;
            let fill = |dst: &mut [u8]| s.open_entry(&entry, dst).map_err(|e| self.err(e));
            let key = match entry.kind() {
                KeyKind::Secret => Opened::Secret(SymmetricKey::new_with(entry.len(), fill)?),
                KeyKind::Ed25519 => Opened::Ed25519(ed25519::PrivateKey::new_with(fill)?),
                KeyKind::X25519 => Opened::X25519(x25519::PrivateKey::new_with(fill)?),
                KeyKind::EcP256 => Opened::Ec(ec::PrivateKey::new_with(ec::Curve::P256, fill)?),
                KeyKind::EcP384 => Opened::Ec(ec::PrivateKey::new_with(ec::Curve::P384, fill)?),
                KeyKind::Rsa => {
                    // Decrypted into a guarded scratch region, decoded from there.
                    let der = SecretBuf::new_with(entry.len(), fill)?;
                    Opened::Rsa(RsaPrivateKey::from_der(der.bytes()?)?)
                }
            };
            Ok((key, entry.exportable()))
        })?;
        Ok(match key {
            Opened::Secret(k) => Py::new(py, SecretKey::wrap_with(py, k, exportable)?)?.into_any(),
            Opened::Ed25519(k) => {
                Py::new(py, Ed25519PrivateKey::from_key(py, k, exportable)?)?.into_any()
            }
            Opened::X25519(k) => {
                Py::new(py, X25519PrivateKey::from_key(py, k, exportable)?)?.into_any()
            }
            Opened::Ec(k) => Py::new(py, ECPrivateKey::from_key(py, k, exportable)?)?.into_any(),
            Opened::Rsa(k) => Py::new(py, RSAPrivateKey::wrap(py, k, exportable)?)?.into_any(),
        })
    }

    /// Remove the entry `name` (`StoreEntryNotFoundError` if there is none).
    fn delete(&self, py: Python<'_>, name: &str) -> Result<()> {
        self.with(py, |s| s.delete(name).map_err(|e| self.change_err(e)))
    }

    /// The entry names, sorted.
    fn names(&self, py: Python<'_>) -> Result<Vec<String>> {
        self.with(py, |s| s.names().map_err(|e| self.err(e)))
    }

    /// `(name, kind)` of every entry, sorted by name, without opening any: the kind is
    /// "secret", "ed25519", "x25519", "ec-p256", "ec-p384" or "rsa", as the file records
    /// it (the entry's authentication covers it, and `get` checks it).
    fn kinds(&self, py: Python<'_>) -> Result<Vec<(String, &'static str)>> {
        self.with(py, |s| {
            s.kinds()
                .map(|v| v.into_iter().map(|(n, k)| (n, k.name())).collect())
                .map_err(|e| self.err(e))
        })
    }

    fn __contains__(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> Result<bool> {
        let Ok(name) = name.extract::<String>() else {
            return Ok(false);
        };
        self.with(py, |s| s.contains(&name).map_err(|e| self.err(e)))
    }

    fn __len__(&self, py: Python<'_>) -> Result<usize> {
        Ok(self.names(py)?.len())
    }

    /// Re-seal every entry under `new_master` (a `SecretKey` or a passphrase buffer,
    /// which is wiped) with a fresh salt, in one atomic replacement of the file. Other
    /// handles open on the old master then raise `StoreAuthenticationError`.
    #[pyo3(signature = (new_master, *, kdf_params = None))]
    fn rotate_master(
        &self,
        py: Python<'_>,
        new_master: &Bound<'_, PyAny>,
        kdf_params: Option<&Bound<'_, PyDict>>,
    ) -> Result<()> {
        self.check_fork()?;
        let params = parse_kdf_params(kdf_params)?;
        let m = master_arg(py, new_master)?;
        // The store's mutex and the master's lock are both taken without the GIL.
        let protection = self.with(py, |store| {
            borrow_master(&m, |m| {
                store.rotate(m, params).map_err(|e| self.change_err(e))
            })?;
            Ok(store.protection())
        })?;
        // The new master's keys are new regions.
        report_new_region(py, &protection)
    }

    /// What protection the handle's memory actually has: its derived keys' region (the
    /// weakest of it and any state beside it), as `SecretKey.protection` reports a key's.
    #[getter]
    fn protection(&self, py: Python<'_>) -> Result<Protection> {
        self.with(py, |s| Ok(Protection::from(s.protection())))
    }

    /// Forget the derived keys (wiped). Idempotent; later calls raise `KeyDestroyedError`.
    /// In a fork child it does nothing and never waits for the handle's lock (a thread of
    /// the parent may have held it at the fork); the handle counts as closed there.
    fn close(&self, py: Python<'_>) {
        if self.forked() {
            return;
        }
        // Waits for a running operation without the GIL (it may take the KDF's time).
        detach(py, || {
            self.inner.lock().unwrap_or_else(|e| e.into_inner()).take()
        });
    }

    /// True once `close()` has run; always true in a fork child (the handle is the
    /// parent's and cannot be used there).
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        if self.forked() {
            return true;
        }
        detach(py, || {
            self.inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
        })
    }

    fn __enter__(slf: &Bound<'_, Self>) -> Result<Py<KeyStore>> {
        slf.get().check_fork()?;
        if slf.get().closed(slf.py()) {
            return Err(Error::Closed("KeyStore"));
        }
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.forked() {
            " forked"
        } else if self.closed(py) {
            " closed"
        } else {
            ""
        };
        format!("<KeyStore {:?}{state}>", self.path.display().to_string())
    }

    fn __reduce__(&self) -> Result<()> {
        Err(Error::Type("KeyStore cannot be pickled".to_owned()))
    }
}
