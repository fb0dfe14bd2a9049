//! Opening a writer's lock file: created if missing (mode 0600), never through a symlink
//! (`O_NOFOLLOW`), and refused unless it is a regular file owned by this user, checked with
//! `fstat` on the open descriptor. How the lock is then taken differs per user of it
//! (`flock` for the audit log, a POSIX record lock for the key store; each says why).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why a lock file could not be opened; the caller words the message for its file.
#[derive(Debug)]
pub enum LockFileError {
    /// `open(2)` failed (`ELOOP`: the name is a symbolic link).
    Open(std::io::Error),
    /// `fstat(2)` of the open file failed.
    Fstat(std::io::Error),
    /// It is not a regular file owned by this user.
    NotOwnedRegularFile,
}

/// Open (creating, mode 0600) the lock file at `path` for reading and writing, and check
/// that it is a regular file owned by the effective user.
pub fn open_lock_file(path: &Path) -> Result<File, LockFileError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(LockFileError::Open)?;
    let meta = file.metadata().map_err(LockFileError::Fstat)?;
    if !meta.is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(LockFileError::NotOwnedRegularFile);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_files_and_refuses_links_and_directories() {
        use std::os::unix::fs::PermissionsExt;
        let d = crate::test_dir::fresh("lock-file-test");
        let p = d.join("x.lock");
        open_lock_file(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        open_lock_file(&p).expect("reopen");
        let link = d.join("link.lock");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        match open_lock_file(&link) {
            Err(LockFileError::Open(e)) => assert_eq!(e.raw_os_error(), Some(libc::ELOOP)),
            other => panic!("expected ELOOP, got {other:?}"),
        }
        let sub = d.join("dir.lock");
        std::fs::create_dir(&sub).expect("mkdir");
        assert!(open_lock_file(&sub).is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
