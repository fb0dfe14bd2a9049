//! The writer lock of a log: `flock(2)` on `<log>.lock`, held only while one line (or a
//! checkpoint, repair or rotation) is written, and released explicitly.
//!
//! Why `flock` here and POSIX record locks in `store/lock.rs`: a writer keeps its lock
//! file open for its whole life (taking the lock costs one system call per append, not an
//! `open`), and an `flock` lock belongs to that open file description, so two writers in
//! one process (two `AuditLog` objects on one path) exclude each other like two processes
//! do, and no other descriptor's `close` releases it. The trap of `flock` (a fork child
//! sharing a locked description) does not apply: the lock is released explicitly with
//! `LOCK_UN` after every write, and a fork child cannot append at all (its epoch key was
//! wiped on fork, and the writer checks the process first). Threads of one writer are
//! serialised by the writer's own mutex before they reach the lock.
//!
//! Waiting is bounded like the key store's, by the one lock wait of `crate::fs`
//! ([`wait_until`]): non-blocking attempts, polled (1 ms, doubling to 20 ms) until a
//! deadline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::AuditError;
use crate::fs::{open_lock_file, wait_until, FileError, LockFileError, WaitError};

/// How long a writer waits for the lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// An open lock file.
pub struct LockFile {
    file: File,
    path: PathBuf,
}

/// A held lock; released (`LOCK_UN`) when dropped.
pub struct Held<'a>(&'a LockFile);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = flock(&self.0.file, FlockOperation::Unlock);
    }
}

/// `<log>.lock`.
pub fn lock_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl LockFile {
    /// Open (creating, mode 0600) the lock file of the log at `log`.
    pub fn open(log: &Path) -> Result<LockFile, AuditError> {
        let path = lock_path(log);
        let file = open_lock_file(&path).map_err(|e| match e {
            LockFileError::Open(e) => AuditError::io("lock file", "cannot open it", &e),
            LockFileError::Fstat(e) => AuditError::io("lock file", "fstat failed", &e),
            LockFileError::NotOwnedRegularFile => AuditError::File {
                what: "lock file",
                err: FileError::Insecure("it is not a regular file owned by this user".to_owned()),
            },
        })?;
        Ok(LockFile { file, path })
    }

    /// Take the lock, waiting at most `timeout`.
    pub fn lock(&self, timeout: Duration) -> Result<Held<'_>, AuditError> {
        let attempt = || match flock(&self.file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Held(self))),
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(AuditError::io(
                "lock file",
                "cannot lock it",
                &std::io::Error::from_raw_os_error(e.raw_os_error()),
            )),
        };
        wait_until(Instant::now() + timeout, attempt).map_err(|e| match e {
            WaitError::Failed(e) => e,
            WaitError::TimedOut => AuditError::Busy {
                lock_path: self.path.clone(),
                timeout,
            },
        })
    }
}
