//! The writer lock of a key store: an exclusive lock on `STORE.lock`, with a deadline.
//!
//! Why not `flock`: an `flock` lock belongs to the open file description, so a child
//! forked (`os.fork()`, `multiprocessing`) while a thread of the parent is inside `put`
//! shares the locked description and keeps the lock for its whole life; every writer in
//! every process then waits for it. Here the lock is a classic POSIX record lock
//! (`fcntl(F_SETLK)`, not an OFD lock): it belongs to the process, a fork child does not
//! inherit it, and closing the child's copy of the descriptor does not release the
//! parent's lock.
//!
//! POSIX locks have two traps, and this module avoids both:
//! - they are per process, so two threads of one process would both "get" the lock: a
//!   process-wide table of claimed lock files serialises the threads first;
//! - closing *any* descriptor of the file releases the process's lock on it: the lock
//!   file is opened only by the thread holding the claim, once per lock.
//!
//! Waiting is bounded: the claim and the file lock are polled by the one lock wait of
//! `crate::fs` ([`wait_until`]: 1 ms, doubling to 20 ms) until a deadline, then [`LockBusy`] says which lock file and how long. Nothing blocks
//! without a deadline, so even a child forked while another thread was inside the
//! table's critical section gets an error, not a hang.
//!
//! Lock files written by builds that used `flock` are compatible on disk, but a writer of
//! such a build and one of this build do not exclude each other: do not mix them on one
//! store at the same time.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::fs::{open_lock_file, parent_dir, wait_until, FileError, LockFileError, WaitError};
use crate::memory::sys::fork_generation;

/// How long a writer waits for the lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest file name (`NAME_MAX` on Linux file systems).
const NAME_MAX: usize = 255;

/// The lock was not free before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockBusy {
    /// The lock file.
    pub lock_path: PathBuf,
    /// How long the caller waited.
    pub timeout: Duration,
}

impl std::fmt::Display for LockBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "its lock file {:?} is held by another writer (another thread or process) and \
             was not released within {:.3} s",
            self.lock_path.display().to_string(),
            self.timeout.as_secs_f64()
        )
    }
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// The lock file was refused or could not be used.
    File(FileError),
    /// Another writer held it past the deadline.
    Busy(LockBusy),
}

/// The lock file of the store at `path`: `PATH.lock`, or, when that name would exceed
/// `NAME_MAX`, the first 200 bytes of the name, `~`, 16 hex digits of the SHA-256 of the
/// whole name and `.lock` (documented in `docs/keystore-format.md`).
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let mut lock_name: Vec<u8> = if name.len() + ".lock".len() <= NAME_MAX {
        name.to_vec()
    } else {
        let digest = Sha256::digest(name);
        let mut n = name[..200].to_vec();
        n.push(b'~');
        n.extend(
            digest[..8]
                .iter()
                .flat_map(|b| format!("{b:02x}").into_bytes()),
        );
        n
    };
    lock_name.extend_from_slice(b".lock");
    path.with_file_name(OsString::from_vec(lock_name))
}

/// Lock files claimed by threads of this process, with the fork generation they were
/// claimed in (a claim of an ancestor process is stale: its thread does not exist here).
static CLAIMED: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

/// The key of a lock file in [`CLAIMED`]: its path with the directory resolved, so two
/// spellings of one store path share one claim.
fn claim_key(lock_path: &Path) -> PathBuf {
    let dir = parent_dir(lock_path);
    match (std::fs::canonicalize(dir), lock_path.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => lock_path.to_owned(),
    }
}

/// This thread's claim on a lock file; released when dropped.
struct Claim {
    key: PathBuf,
    generation: u64,
}

impl Claim {
    fn take(key: PathBuf, deadline: Instant) -> Result<Claim, WaitError<std::convert::Infallible>> {
        wait_until(deadline, || {
            // try_lock, never lock: a child forked inside this critical section must not
            // wait forever for a mutex no thread of its own will release.
            let mut claimed = match CLAIMED.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            };
            let generation = fork_generation();
            claimed.retain(|(_, g)| *g == generation);
            if claimed.iter().any(|(k, _)| *k == key) {
                return Ok(None);
            }
            claimed.push((key.clone(), generation));
            Ok(Some(Claim {
                key: key.clone(),
                generation,
            }))
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        claimed.retain(|(k, g)| !(*k == self.key && *g == self.generation));
    }
}

/// The writer lock of a store, released when dropped: the file lock when the descriptor
/// closes, then the process-wide claim.
pub struct StoreLock {
    _file: File,
    _claim: Claim,
}

/// Open the lock file at `lp` ([`open_lock_file`]), with the store's messages.
fn open_store_lock_file(lp: &Path) -> Result<File, FileError> {
    open_lock_file(lp).map_err(|e| match e {
        LockFileError::Open(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            FileError::Insecure("its lock file is a symbolic link".to_owned())
        }
        LockFileError::Open(e) => FileError::Unusable {
            reason: format!("cannot open its lock file: {e}"),
            errno: e.raw_os_error(),
        },
        LockFileError::Fstat(e) => FileError::Unusable {
            reason: format!("fstat of its lock file failed: {e}"),
            errno: e.raw_os_error(),
        },
        LockFileError::NotOwnedRegularFile => {
            FileError::Insecure("its lock file is not a regular file owned by this user".to_owned())
        }
    })
}

/// Take the writer lock of the store at `path`, waiting at most `timeout`.
pub fn lock(path: &Path, timeout: Duration) -> Result<StoreLock, LockError> {
    let lp = lock_path(path);
    let deadline = Instant::now() + timeout;
    let busy = || {
        LockError::Busy(LockBusy {
            lock_path: lp.clone(),
            timeout,
        })
    };
    let claim = Claim::take(claim_key(&lp), deadline).map_err(|_| busy())?;
    // Opened once, by the claim holder only: no other descriptor of the lock file exists
    // in this process whose closing could release the lock.
    let file = open_store_lock_file(&lp).map_err(LockError::File)?;
    let locked = wait_until(deadline, || {
        use rustix::fs::FlockOperation::NonBlockingLockExclusive;
        match rustix::fs::fcntl_lock(&file, NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(())),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::ACCESS | rustix::io::Errno::INTR) => {
                Ok(None)
            }
            Err(e) => Err(FileError::Unusable {
                reason: format!("cannot lock its lock file: {e}"),
                errno: Some(e.raw_os_error()),
            }),
        }
    });
    match locked {
        Ok(()) => Ok(StoreLock {
            _file: file,
            _claim: claim,
        }),
        Err(WaitError::Failed(e)) => Err(LockError::File(e)),
        Err(WaitError::TimedOut) => Err(busy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_name_max() {
        let short = lock_path(Path::new("/d/store.kcs"));
        assert_eq!(short, Path::new("/d/store.kcs.lock"));
        for len in [250, 251, 255] {
            let name = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let lp = lock_path(&Path::new("/d").join(&name));
            let n = lp.file_name().expect("name").len();
            assert!(n <= NAME_MAX, "{len}: {n}");
            assert_ne!(lp, lock_path(&Path::new("/d").join(name + "y")));
        }
    }

    #[test]
    fn threads_wait_and_time_out() {
        let d = crate::test_dir::fresh("lock-test");
        let p = d.join("s.kcs");
        let held = lock(&p, Duration::from_secs(1)).expect("first");
        let t = Instant::now();
        match lock(&p, Duration::from_millis(100)) {
            Err(LockError::Busy(b)) => assert_eq!(b.lock_path, d.join("s.kcs.lock")),
            other => panic!("expected Busy, got {:?}", other.map(|_| ())),
        }
        assert!(t.elapsed() >= Duration::from_millis(100));
        drop(held);
        lock(&p, Duration::from_millis(100)).expect("free again");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
