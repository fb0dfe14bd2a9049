//! The encrypted key store: one file holding many named keys (format in
//! `docs/keystore-format.md`, parsing in [`format`]).
//!
//! - Keys: the master (a passphrase through Argon2id, or a random master key) and the
//!   header's salt go through HKDF-SHA256 ([`crate::crypto::hkdf`]) into 96 bytes in a
//!   guarded region: a check value
//!   (stored in the header, tells a wrong master from a damaged file), an HMAC key for the
//!   whole file, and the XChaCha20-Poly1305 key for the entries.
//! - Entries are sealed with the store id, name, kind, export flag and length as
//!   associated data, so an entry moved to another name or store does not open.
//! - Every change: take the writer lock on `PATH.lock` ([`lock`]: a POSIX record lock a
//!   fork child does not inherit, waited for at most [`Store::set_lock_timeout`]), re-read
//!   and verify the file, change it, write a new file beside it, `fsync`, `rename`,
//!   `fsync` the directory ([`crate::fs::write_atomic`]). Readers need no lock:
//!   renames are atomic.
//! - Plaintext keys exist only in guarded regions: the caller's key region, the scratch
//!   region an entry is sealed or re-sealed in, and the region `get` decrypts into.

pub mod format;
pub mod lock;
pub mod weak_passphrase;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::aead_suite::{self, AeadAlgorithm, XCHACHA_NONCE_LEN as NONCE_LEN};
use crate::crypto::argon2::{self, Argon2Params};
use crate::crypto::ct::ct_eq;
use crate::crypto::hkdf;
use crate::crypto::hmac::{self, HashAlgorithm};
use crate::crypto::key_kind::KeyKind;
use crate::crypto::symmetric::SymmetricKey;
use crate::fs::{self, FileError, PrivateFile};
use crate::memory::{MemoryError, SecretBuf};

use format::{Entry, Identity, MasterType, StoreFile, CHECK_LEN, ID_LEN};
use lock::{LockBusy, LockError, StoreLock};

/// Smallest master key accepted, in bytes.
pub const MIN_MASTER_KEY_LEN: usize = 16;

/// Why a store operation failed. No variant carries secret bytes.
#[derive(Debug)]
pub enum StoreError {
    /// The store file (or its lock file) could not be opened or was refused.
    File(FileError),
    /// The memory layer failed.
    Memory(MemoryError),
    /// The file is damaged, was modified, or is not a key store.
    Corrupted(String),
    /// The master (passphrase or key) is wrong for this store.
    Authentication(String),
    /// `create` found a file at the path.
    Exists,
    /// `put` without overwrite found an entry of that name.
    EntryExists(String),
    /// No entry of that name.
    NotFound(String),
    /// A bad argument (name, parameters, master length).
    Invalid(String),
}

impl From<MemoryError> for StoreError {
    fn from(e: MemoryError) -> Self {
        StoreError::Memory(e)
    }
}

impl From<format::StoreFormatError> for StoreError {
    fn from(e: format::StoreFormatError) -> Self {
        StoreError::Corrupted(e.0)
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Why a change (create, put, delete, rotate) failed: the store refused it, or its writer
/// lock was held by another writer past the lock timeout.
#[derive(Debug)]
pub enum ChangeError {
    /// The store refused the change.
    Store(StoreError),
    /// The writer lock stayed busy.
    Busy(LockBusy),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Store(e)
    }
}

impl From<MemoryError> for ChangeError {
    fn from(e: MemoryError) -> Self {
        ChangeError::Store(StoreError::Memory(e))
    }
}

fn lock(path: &Path, timeout: Duration) -> std::result::Result<StoreLock, ChangeError> {
    lock::lock(path, timeout).map_err(|e| match e {
        LockError::File(f) => ChangeError::Store(StoreError::File(f)),
        LockError::Busy(b) => ChangeError::Busy(b),
    })
}

/// The master secret, borrowed from a guarded region.
#[derive(Clone, Copy)]
pub enum Master<'a> {
    /// Passphrase bytes (stretched with Argon2id).
    Passphrase(&'a [u8]),
    /// A random master key of at least [`MIN_MASTER_KEY_LEN`] bytes.
    Key(&'a [u8]),
    /// The root a PKCS#11 token derived (see [`MasterType::Token`]); used like a key, but
    /// recorded as type 3 so that the store asks for its token.
    Token(&'a [u8]),
}

impl Master<'_> {
    fn master_type(&self) -> MasterType {
        match self {
            Master::Passphrase(_) => MasterType::Passphrase,
            Master::Key(_) => MasterType::Key,
            Master::Token(_) => MasterType::Token,
        }
    }

    /// Check the master, and choose the Argon2 parameters for a store under it: none for a
    /// master key (asking for some is an error); for a passphrase `requested`, else
    /// `current` (the store's, when it already uses a passphrase), else the default.
    fn kdf_params(
        &self,
        requested: Option<Argon2Params>,
        current: Option<Argon2Params>,
    ) -> Result<Option<Argon2Params>> {
        self.check()?;
        match self {
            Master::Passphrase(_) => {
                let p = requested.or(current).unwrap_or(Argon2Params::DEFAULT);
                p.check().map_err(StoreError::Invalid)?;
                Ok(Some(p))
            }
            Master::Key(_) | Master::Token(_) if requested.is_some() => Err(StoreError::Invalid(
                "kdf_params apply to a passphrase, not to a master key".to_owned(),
            )),
            Master::Key(_) | Master::Token(_) => Ok(None),
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Master::Passphrase([]) => {
                Err(StoreError::Invalid("the passphrase is empty".to_owned()))
            }
            Master::Key(k) | Master::Token(k) if k.len() < MIN_MASTER_KEY_LEN => {
                Err(StoreError::Invalid(format!(
                    "a master key must be at least {MIN_MASTER_KEY_LEN} bytes"
                )))
            }
            _ => Ok(()),
        }
    }
}

const CHECK: std::ops::Range<usize> = 0..32;
const MAC_KEY: std::ops::Range<usize> = 32..64;
const AEAD_KEY: std::ops::Range<usize> = 64..96;
const DERIVED_LEN: usize = 96;
/// The cipher of the entries (`docs/keystore-format.md`).
const ENTRY_AEAD: AeadAlgorithm = AeadAlgorithm::XChaCha20Poly1305;

/// Derive the store keys (check | mac key | aead key) into a guarded region, with
/// [`crate::crypto::hkdf`] (HKDF-SHA256; its PRK lives in a region of its own too).
fn derive(master: Master<'_>, id: &Identity) -> Result<SymmetricKey> {
    master.check()?;
    let info = format::kdf_info(id);
    let hkdf = |ikm: &[u8]| {
        hkdf::derive(
            HashAlgorithm::Sha256,
            ikm,
            Some(&id.salt),
            &info,
            DERIVED_LEN,
        )
        .map_err(|e| match e {
            hkdf::HkdfError::Memory(m) => StoreError::Memory(m),
            hkdf::HkdfError::OutputLength { .. } => {
                StoreError::Invalid("internal error: HKDF output length".to_owned())
            }
        })
    };
    match (master, id.kdf) {
        (Master::Passphrase(pass), Some(params)) => {
            let root = SecretBuf::new_with(32, |d| {
                argon2::argon2id(pass, &id.salt, params, d).map_err(|e| StoreError::Invalid(e.0))
            })?;
            hkdf(root.bytes()?)
        }
        (Master::Key(key) | Master::Token(key), None) => hkdf(key),
        _ => Err(StoreError::Invalid(
            "internal error: master and header disagree".to_owned(),
        )),
    }
}

fn file_mac(keys: &SymmetricKey, data: &[u8]) -> Result<[u8; 32]> {
    let mut m = [0u8; 32];
    hmac::hmac(HashAlgorithm::Sha256, &keys.bytes()?[MAC_KEY], data, &mut m);
    Ok(m)
}

fn check_value(keys: &SymmetricKey) -> Result<[u8; CHECK_LEN]> {
    let mut c = [0u8; CHECK_LEN];
    c.copy_from_slice(&keys.bytes()?[CHECK]);
    Ok(c)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut r = [0u8; N];
    crate::memory::fill_random(&mut r).map_err(StoreError::Memory)?;
    Ok(r)
}

/// Read the whole store file (with the key file checks: no symlink, regular, owned by us,
/// no group/other access, bounded size).
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let refine = |e: FileError| match e {
        // Empty, too large, shrank/grew: the file is not a usable store.
        FileError::Unusable {
            reason,
            errno: None,
        } => StoreError::Corrupted(reason),
        other => StoreError::File(other),
    };
    let mut f = PrivateFile::open(path, format::MAX_FILE_LEN).map_err(refine)?;
    let mut data = vec![0u8; f.size()];
    f.read_into(&mut data).map_err(refine)?;
    Ok(data)
}

/// A sealed entry found by [`Store::get`], ready to be opened into a region.
pub struct SealedEntry {
    entry: Entry,
    store_id: [u8; ID_LEN],
}

impl SealedEntry {
    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.entry.kind
    }
    /// Whether the key was exportable when stored.
    pub fn exportable(&self) -> bool {
        self.entry.exportable
    }
    /// Length of the key.
    pub fn len(&self) -> usize {
        self.entry.ciphertext.len()
    }
    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.entry.ciphertext.is_empty()
    }
}

/// An open key store. Holds the derived keys (in a guarded region), not the entries:
/// every operation re-reads the file, so several handles and processes see each other's
/// changes.
pub struct Store {
    path: PathBuf,
    identity: Identity,
    keys: SymmetricKey,
    last_generation: u64,
    lock_timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.path)
    }
}

impl Store {
    /// The protection of the regions the handle keeps: its derived keys' (the weakest of
    /// the keys and any HMAC pads beside them).
    pub fn protection(&self) -> crate::memory::Protection {
        self.keys.protection()
    }

    /// Create a new, empty store at `path` (which must not exist). `kdf` applies to a
    /// passphrase master (default [`Argon2Params::DEFAULT`]).
    /// Waits at most `lock_timeout` for the writer lock.
    pub fn create(
        path: &Path,
        master: Master<'_>,
        kdf: Option<Argon2Params>,
        lock_timeout: Duration,
    ) -> std::result::Result<Store, ChangeError> {
        let kdf = master.kdf_params(kdf, None)?;
        let identity = Identity {
            master_type: master.master_type(),
            store_id: random()?,
            salt: random()?,
            kdf,
        };
        let keys = derive(master, &identity)?;
        let mut store = Store {
            path: path.to_owned(),
            identity,
            keys,
            last_generation: 0,
            lock_timeout,
        };
        let _lock = lock(path, lock_timeout)?;
        store.write(1, &[], false).map_err(|e| match e {
            StoreError::File(FileError::Unusable {
                errno: Some(libc::EEXIST),
                ..
            }) => StoreError::Exists,
            other => other,
        })?;
        Ok(store)
    }

    /// Open the store at `path` with `master`.
    pub fn open(path: &Path, master: Master<'_>) -> Result<Store> {
        master.check()?;
        let data = read_file(path)?;
        let file = format::parse(&data)?;
        if file.identity.master_type != master.master_type() {
            let hint = if file.identity.master_type == MasterType::Token {
                " (open it with master=token.wrapping_key(LABEL) from the PKCS#11 token that \
                 created it)"
            } else {
                ""
            };
            return Err(StoreError::Authentication(format!(
                "this store is protected by a {}, not a {}{hint}",
                file.identity.master_type.name(),
                master.master_type().name()
            )));
        }
        let keys = derive(master, &file.identity)?;
        let mut store = Store {
            path: path.to_owned(),
            identity: file.identity,
            keys,
            last_generation: 0,
            lock_timeout: lock::DEFAULT_LOCK_TIMEOUT,
        };
        store.verify(&data, &file)?;
        Ok(store)
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a change waits for the writer lock (default
    /// [`lock::DEFAULT_LOCK_TIMEOUT`]) before it fails with [`ChangeError::Busy`].
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.lock_timeout = timeout;
    }

    /// The Argon2 parameters (None for a master-key store).
    pub fn kdf_params(&self) -> Option<Argon2Params> {
        self.identity.kdf
    }

    /// Verify a parsed file against this handle's keys.
    fn verify(&mut self, data: &[u8], file: &StoreFile) -> Result<()> {
        if !ct_eq(&check_value(&self.keys)?, &file.check) {
            return Err(StoreError::Authentication(format!(
                "wrong {} for this key store (or its header was modified)",
                self.identity.master_type.name()
            )));
        }
        let mac = file_mac(&self.keys, &data[..file.mac_covered])?;
        if !ct_eq(&mac, &file.mac) {
            return Err(StoreError::Corrupted(
                "the file failed its authentication check: it was modified".to_owned(),
            ));
        }
        if file.generation < self.last_generation {
            return Err(StoreError::Corrupted(
                "the file was replaced by an older version of the store (rollback)".to_owned(),
            ));
        }
        self.last_generation = file.generation;
        Ok(())
    }

    /// Re-read and verify the file.
    fn read(&mut self) -> Result<StoreFile> {
        let data = read_file(&self.path)?;
        let file = format::parse(&data)?;
        if file.identity != self.identity {
            return Err(if file.identity.store_id != self.identity.store_id {
                StoreError::Corrupted(
                    "the file now holds a different key store than the one opened".to_owned(),
                )
            } else {
                StoreError::Authentication(
                    "the store's master was changed (rotate_master) since it was opened here; \
                     open it again with the new master"
                        .to_owned(),
                )
            });
        }
        self.verify(&data, &file)?;
        Ok(file)
    }

    /// Write `entries` as the new content, atomically.
    fn write(&mut self, generation: u64, entries: &[Entry], overwrite: bool) -> Result<()> {
        let check = check_value(&self.keys)?;
        let keys = &self.keys;
        let mut mac_err = None;
        let data = format::serialize(&self.identity, generation, &check, entries, |d| {
            file_mac(keys, d).unwrap_or_else(|e| {
                mac_err = Some(e);
                [0u8; 32]
            })
        })?;
        if let Some(e) = mac_err {
            return Err(e);
        }
        fs::write_atomic(&self.path, &data, overwrite).map_err(StoreError::File)?;
        self.last_generation = generation;
        Ok(())
    }

    fn next_generation(file: &StoreFile) -> Result<u64> {
        file.generation
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupted("generation counter overflow".to_owned()))
    }

    /// Names of the entries, sorted.
    pub fn names(&mut self) -> Result<Vec<String>> {
        Ok(self.read()?.entries.into_iter().map(|e| e.name).collect())
    }

    /// Names and kinds of the entries, sorted by name. The kind is the one the file
    /// records for the entry (it is authenticated with the entry when the entry is opened).
    pub fn kinds(&mut self) -> Result<Vec<(String, KeyKind)>> {
        Ok(self
            .read()?
            .entries
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect())
    }

    /// Whether an entry `name` exists.
    pub fn contains(&mut self, name: &str) -> Result<bool> {
        Ok(self.read()?.entries.iter().any(|e| e.name == name))
    }

    /// Find entry `name`; open it with [`Store::open_entry`].
    pub fn get(&mut self, name: &str) -> Result<SealedEntry> {
        let file = self.read()?;
        let entry = file
            .entries
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        Ok(SealedEntry {
            entry,
            store_id: self.identity.store_id,
        })
    }

    /// Decrypt `entry` into `dst` (exactly `entry.len()` bytes; a guarded region). On
    /// failure `dst` holds ciphertext, never a wrong key.
    pub fn open_entry(&self, entry: &SealedEntry, dst: &mut [u8]) -> Result<()> {
        open_entry_with(&self.keys, entry, dst)
    }

    /// Seal `key` (of `kind`) under `name`.
    pub fn put(
        &mut self,
        name: &str,
        kind: KeyKind,
        exportable: bool,
        key: &[u8],
        overwrite: bool,
    ) -> std::result::Result<(), ChangeError> {
        format::check_name(name).map_err(StoreError::Invalid)?;
        if !format::valid_key_len(kind, key.len()) {
            return Err(StoreError::Invalid(format!(
                "invalid key length for a {} key",
                kind.name()
            ))
            .into());
        }
        let _lock = lock(&self.path, self.lock_timeout)?;
        let mut file = self.read()?;
        let pos = file
            .entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()));
        if pos.is_ok() && !overwrite {
            return Err(StoreError::EntryExists(name.to_owned()).into());
        }
        let entry = seal_entry(
            &self.keys,
            &self.identity.store_id,
            name,
            kind,
            exportable,
            key.len(),
            |d| {
                d.copy_from_slice(key);
                Ok(())
            },
        )?;
        match pos {
            Ok(i) => file.entries[i] = entry,
            Err(i) => file.entries.insert(i, entry),
        }
        Ok(self.write(Self::next_generation(&file)?, &file.entries, true)?)
    }

    /// Remove entry `name`.
    pub fn delete(&mut self, name: &str) -> std::result::Result<(), ChangeError> {
        let _lock = lock(&self.path, self.lock_timeout)?;
        let mut file = self.read()?;
        let i = file
            .entries
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        file.entries.remove(i);
        Ok(self.write(Self::next_generation(&file)?, &file.entries, true)?)
    }

    /// Re-seal every entry under `new_master` (a fresh salt; same store id), in one atomic
    /// file replacement. `kdf` applies to a passphrase (default: the current parameters
    /// when the store already uses a passphrase, else [`Argon2Params::DEFAULT`]).
    pub fn rotate(
        &mut self,
        new_master: Master<'_>,
        kdf: Option<Argon2Params>,
    ) -> std::result::Result<(), ChangeError> {
        let kdf = new_master.kdf_params(kdf, self.identity.kdf)?;
        let _lock = lock(&self.path, self.lock_timeout)?;
        let file = self.read()?;
        let identity = Identity {
            master_type: new_master.master_type(),
            store_id: self.identity.store_id,
            salt: random()?,
            kdf,
        };
        let new_keys = derive(new_master, &identity)?;
        let mut entries = Vec::with_capacity(file.entries.len());
        for e in &file.entries {
            let sealed = SealedEntry {
                entry: e.clone(),
                store_id: identity.store_id,
            };
            entries.push(seal_entry(
                &new_keys,
                &identity.store_id,
                &e.name,
                e.kind,
                e.exportable,
                e.ciphertext.len(),
                |d| open_entry_with(&self.keys, &sealed, d),
            )?);
        }
        let generation = Self::next_generation(&file)?;
        let old_identity = std::mem::replace(&mut self.identity, identity);
        let old_keys = std::mem::replace(&mut self.keys, new_keys);
        if let Err(e) = self.write(generation, &entries, true) {
            self.identity = old_identity;
            self.keys = old_keys;
            return Err(e.into());
        }
        Ok(())
    }
}

fn open_entry_with(keys: &SymmetricKey, entry: &SealedEntry, dst: &mut [u8]) -> Result<()> {
    let e = &entry.entry;
    if dst.len() != e.ciphertext.len() {
        return Err(StoreError::Invalid(
            "internal error: destination size differs from entry size".to_owned(),
        ));
    }
    let aad = format::entry_aad(&entry.store_id, &e.name, e.kind, e.exportable, dst.len());
    dst.copy_from_slice(&e.ciphertext);
    let key = &keys.bytes()?[AEAD_KEY];
    aead_suite::open(ENTRY_AEAD, key, &e.nonce, &aad, dst, &e.tag).map_err(|_| {
        StoreError::Corrupted(format!(
            "entry {:?} failed its authentication check: it was modified or moved",
            e.name
        ))
    })
}

/// Seal one entry of `len` bytes: `fill` writes the plaintext into a guarded scratch
/// region, which is encrypted in place; only ciphertext leaves it.
fn seal_entry(
    keys: &SymmetricKey,
    store_id: &[u8; ID_LEN],
    name: &str,
    kind: KeyKind,
    exportable: bool,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<Entry> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let aad = format::entry_aad(store_id, name, kind, exportable, len);
    let key = &keys.bytes()?[AEAD_KEY];
    let mut tag = [0u8; aead_suite::TAG_LEN];
    let mut scratch = crate::memory::allocate(len)?;
    scratch.write(|d| -> Result<()> {
        fill(d)?;
        tag = aead_suite::seal(ENTRY_AEAD, key, &nonce, &aad, d)
            .map_err(|_| StoreError::Invalid("encryption failed".to_owned()))?;
        Ok(())
    })?;
    // The scratch region now holds ciphertext only.
    let ciphertext = scratch.bytes()?.to_vec();
    Ok(Entry {
        name: name.to_owned(),
        kind,
        exportable,
        nonce,
        ciphertext,
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Params = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        lanes: 1,
    };

    fn get(store: &mut Store, name: &str) -> Result<Vec<u8>> {
        let e = store.get(name)?;
        let mut out = vec![0u8; e.len()];
        store.open_entry(&e, &mut out)?;
        Ok(out)
    }

    #[test]
    fn lifecycle() {
        let d = crate::test_dir::fresh("store-test");
        let path = d.join("s.kcs");
        let pass = Master::Passphrase(b"correct horse");
        let mut s =
            Store::create(&path, pass, Some(FAST), lock::DEFAULT_LOCK_TIMEOUT).expect("create");
        assert!(matches!(
            Store::create(&path, pass, Some(FAST), lock::DEFAULT_LOCK_TIMEOUT),
            Err(ChangeError::Store(StoreError::Exists))
        ));
        s.put("a", KeyKind::Secret, true, b"key-a", false)
            .expect("put");
        s.put("b", KeyKind::Ed25519, false, &[9u8; 32], false)
            .expect("put");
        assert!(matches!(
            s.put("a", KeyKind::Secret, true, b"x", false),
            Err(ChangeError::Store(StoreError::EntryExists(_)))
        ));
        assert!(matches!(
            s.put("c", KeyKind::X25519, true, b"short", false),
            Err(ChangeError::Store(StoreError::Invalid(_)))
        ));
        assert!(matches!(
            s.put("", KeyKind::Secret, true, b"x", false),
            Err(ChangeError::Store(StoreError::Invalid(_)))
        ));
        s.put("a", KeyKind::Secret, true, b"key-a2", true)
            .expect("overwrite");
        assert_eq!(s.names().expect("names"), ["a", "b"]);
        assert_eq!(get(&mut s, "a").expect("a"), b"key-a2");
        let b = s.get("b").expect("b");
        assert_eq!((b.kind(), b.exportable()), (KeyKind::Ed25519, false));

        let mut other = Store::open(&path, pass).expect("open");
        assert_eq!(get(&mut other, "b").expect("b"), [9u8; 32]);
        assert!(matches!(
            Store::open(&path, Master::Passphrase(b"wrong")),
            Err(StoreError::Authentication(_))
        ));
        assert!(matches!(
            Store::open(&path, Master::Key(&[1u8; 32])),
            Err(StoreError::Authentication(_))
        ));
        other.delete("a").expect("delete");
        assert!(matches!(
            s.delete("a"),
            Err(ChangeError::Store(StoreError::NotFound(_)))
        ));
        assert!(!s.contains("a").expect("contains"));

        let master = [5u8; 32];
        s.rotate(Master::Key(&master), None).expect("rotate");
        assert!(matches!(other.names(), Err(StoreError::Authentication(_))));
        assert!(matches!(
            Store::open(&path, pass),
            Err(StoreError::Authentication(_))
        ));
        let mut again = Store::open(&path, Master::Key(&master)).expect("open");
        assert_eq!(get(&mut again, "b").expect("b"), [9u8; 32]);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// An RSA key's PKCS#1 DER is an entry of type 6 within the RSA length limits.
    #[test]
    fn rsa_entries_round_trip() {
        let d = crate::test_dir::fresh("store-test");
        let path = d.join("r.kcs");
        let mut s = Store::create(
            &path,
            Master::Key(&[8u8; 32]),
            None,
            lock::DEFAULT_LOCK_TIMEOUT,
        )
        .expect("create");
        let der = vec![0x30u8; 1200];
        s.put("r", KeyKind::Rsa, false, &der, false).expect("put");
        let e = s.get("r").expect("get");
        assert_eq!(
            (e.kind(), e.exportable(), e.len()),
            (KeyKind::Rsa, false, 1200)
        );
        assert_eq!(get(&mut s, "r").expect("r"), der);
        let file = format::parse(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!(format::kind_code(file.entries[0].kind), 6);
        let too_long = vec![0x30u8; crate::crypto::key_kind::MAX_RSA_DER_LEN + 1];
        assert!(matches!(
            s.put("big", KeyKind::Rsa, true, &too_long, false),
            Err(ChangeError::Store(StoreError::Invalid(_)))
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn a_token_master_is_recorded_and_required() {
        let d = crate::test_dir::fresh("store-test");
        let path = d.join("t.kcs");
        let root = [6u8; 32];
        let mut s = Store::create(
            &path,
            Master::Token(&root),
            None,
            lock::DEFAULT_LOCK_TIMEOUT,
        )
        .expect("create");
        s.put("k", KeyKind::Secret, true, b"0123456789", false)
            .expect("put");
        let file = format::parse(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!(file.identity.master_type, MasterType::Token);
        // The same bytes as a plain master key do not open it: the header asks for a token.
        match Store::open(&path, Master::Key(&root)) {
            Err(StoreError::Authentication(m)) => assert!(m.contains("PKCS#11"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            Store::open(&path, Master::Token(&[7u8; 32])),
            Err(StoreError::Authentication(_))
        ));
        let mut again = Store::open(&path, Master::Token(&root)).expect("open");
        assert_eq!(get(&mut again, "k").expect("k"), b"0123456789");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    /// Stores written before the store used `crypto::hkdf` (tests/vectors/keystore, made
    /// with keycell's first key store) still open: the derived keys are unchanged.
    #[test]
    fn version_1_files_from_earlier_builds_open() {
        let d = crate::test_dir::fresh("store-test");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/keystore");
        let master: Vec<u8> = (0..32u8).collect();
        type Entries<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(&str, Master<'_>, Entries<'_>); 2] = [
            (
                "v1-master-key.kcs",
                Master::Key(&master),
                &[
                    ("hmac", b"0123456789abcdef0123456789abcdef"),
                    ("sealed", b"sealed key bytes"),
                ],
            ),
            (
                "v1-passphrase.kcs",
                Master::Passphrase(b"correct horse battery staple"),
                &[("hmac", b"passphrase-protected key")],
            ),
        ];
        for (file, master, entries) in cases {
            let path = d.join(file);
            let data = std::fs::read(format!("{dir}/{file}")).expect("vector");
            fs::write_atomic(&path, &data, false).expect("copy");
            let mut s = Store::open(&path, master).expect("open");
            for (name, value) in entries {
                assert_eq!(get(&mut s, name).expect("get"), *value);
            }
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn every_flip_and_truncation_is_detected() {
        let d = crate::test_dir::fresh("store-test");
        let path = d.join("s.kcs");
        let master = [3u8; 32];
        let mut s = Store::create(
            &path,
            Master::Key(&master),
            None,
            lock::DEFAULT_LOCK_TIMEOUT,
        )
        .expect("create");
        s.put("k", KeyKind::Secret, true, b"0123456789", false)
            .expect("put");
        let good = std::fs::read(&path).expect("read");
        let mut detected = 0;
        let mut check = |data: &[u8]| {
            fs::write_atomic(&path, data, true).expect("write");
            let r = Store::open(&path, Master::Key(&master)).and_then(|mut s| get(&mut s, "k"));
            match r {
                Ok(k) => panic!("tampering undetected, got {} bytes", k.len()),
                Err(StoreError::Corrupted(_)) | Err(StoreError::Authentication(_)) => detected += 1,
                Err(e) => panic!("unexpected error {e:?}"),
            }
        };
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = good.clone();
                t[i] ^= bit;
                check(&t);
            }
        }
        for n in 1..good.len() {
            check(&good[..n]);
        }
        assert_eq!(detected, 3 * good.len() - 1);
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn entry_moved_to_another_name_or_store_does_not_open() {
        let d = crate::test_dir::fresh("store-test");
        let master = [4u8; 32];
        let p1 = d.join("one");
        let p2 = d.join("two");
        let mut s1 =
            Store::create(&p1, Master::Key(&master), None, lock::DEFAULT_LOCK_TIMEOUT).expect("s1");
        let mut s2 =
            Store::create(&p2, Master::Key(&master), None, lock::DEFAULT_LOCK_TIMEOUT).expect("s2");
        s1.put("x", KeyKind::Secret, true, b"secret-x", false)
            .expect("put");
        s2.put("x", KeyKind::Secret, true, b"other-x", false)
            .expect("put");
        // Move s1's entry to the name "y" within s1, re-MACed with s1's own keys (as an
        // attacker with the MAC key could): the AEAD binding still refuses it.
        let f1 = format::parse(&std::fs::read(&p1).expect("r")).expect("p");
        let mut moved = f1.entries[0].clone();
        moved.name = "y".to_owned();
        let data = format::serialize(&f1.identity, f1.generation + 1, &f1.check, &[moved], |b| {
            file_mac(&s1.keys, b).expect("mac")
        })
        .expect("ser");
        fs::write_atomic(&p1, &data, true).expect("w");
        assert!(matches!(get(&mut s1, "y"), Err(StoreError::Corrupted(_))));
        // s1's entry placed in s2 (same master, re-MACed with s2's keys): refused.
        let f2 = format::parse(&std::fs::read(&p2).expect("r")).expect("p");
        let data = format::serialize(
            &f2.identity,
            f2.generation + 1,
            &f2.check,
            &f1.entries,
            |b| file_mac(&s2.keys, b).expect("mac"),
        )
        .expect("ser");
        fs::write_atomic(&p2, &data, true).expect("w");
        assert!(matches!(get(&mut s2, "x"), Err(StoreError::Corrupted(_))));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
