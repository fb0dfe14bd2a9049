//! Opening secret files safely (key files, the key store, the audit log's state file): no
//! symlinks, regular files only, owned by us, not readable or writable by group or others,
//! bounded size. The checks run with `fstat` on the open descriptor, so the file that is
//! checked is the file that is read (no check-then-open race). Reads go straight into the
//! caller's buffer (a guarded region): no intermediate copy.
//!
//! No crate here: the checks are `O_NOFOLLOW` on `std`'s `OpenOptions` and a few fields of
//! `fstat`; capability crates (`cap-std`) confine paths to a directory, which is not the
//! question asked of a key file.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroize;

use super::error::{unusable, FileError};
use super::trust::{check_platform_file, open_platform_file, SecretPath, Trust};

/// An open, checked secret file and its size.
pub struct PrivateFile {
    file: File,
    size: usize,
}

impl PrivateFile {
    /// Open `path` for reading and check it ([`Trust::Owner`]). `max_len` bounds the size.
    pub fn open(path: &Path, max_len: usize) -> Result<PrivateFile, FileError> {
        Self::open_trusted(SecretPath::from(path), max_len)
    }

    /// Open `file.path` for reading and check it under `file.trust` (see
    /// [`super::trust`]). `max_len` bounds the size.
    pub fn open_trusted(file: SecretPath<'_>, max_len: usize) -> Result<PrivateFile, FileError> {
        let handle = match file.trust {
            Trust::Owner => open_no_follow(file.path)?,
            Trust::Mount | Trust::Credential => open_platform_file(file.path, file.trust)?,
        };
        let meta = handle
            .metadata()
            .map_err(|e| FileError::io("fstat failed", &e))?;
        check_regular_file(&meta)?;
        match file.trust {
            Trust::Owner => check_owner_and_mode(&meta)?,
            Trust::Mount | Trust::Credential => check_platform_file(&handle)?,
        }
        let size = check_size(meta.len(), max_len)?;
        Ok(PrivateFile { file: handle, size })
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Read the whole file into `dst` (exactly [`Self::size`] bytes) and check that it
    /// did not grow meanwhile.
    pub fn read_into(&mut self, dst: &mut [u8]) -> Result<(), FileError> {
        if dst.len() != self.size {
            return Err(unusable(
                "internal error: destination size differs from file size",
            ));
        }
        self.file.read_exact(dst).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FileError::Unusable {
                    reason: "the file shrank while being read".to_owned(),
                    errno: None,
                }
            } else {
                FileError::io("read failed", &e)
            }
        })?;
        let mut probe = [0u8; 1];
        let extra = self.file.read(&mut probe);
        probe.zeroize();
        match extra {
            Ok(0) => Ok(()),
            Ok(_) => Err(FileError::Unusable {
                reason: "the file grew while being read".to_owned(),
                errno: None,
            }),
            Err(e) => Err(FileError::io("read failed", &e)),
        }
    }
}

/// Open `path` read-only without following a symlink, and without blocking on a FIFO
/// (`O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK`).
fn open_no_follow(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FileError::Insecure(
                "it is a symbolic link (key files are opened with O_NOFOLLOW)".to_owned(),
            ),
            _ => FileError::io("cannot open", &e),
        })
}

/// Refuse anything but a regular file (a directory, a FIFO, a device...).
fn check_regular_file(meta: &Metadata) -> Result<(), FileError> {
    if !meta.file_type().is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(FileError::Insecure(format!("it is {kind}")));
    }
    Ok(())
}

/// Refuse a file owned by another user than the effective one, or that group or others
/// can access.
fn check_owner_and_mode(meta: &Metadata) -> Result<(), FileError> {
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(FileError::Insecure(format!(
            "it is owned by uid {} but this process runs as uid {euid}",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::Insecure(format!(
            "its permissions {mode:04o} let group or others access it (use chmod 600)"
        )));
    }
    Ok(())
}

/// Refuse an empty file or one larger than `max_len`; the size as a `usize` otherwise.
fn check_size(size: u64, max_len: usize) -> Result<usize, FileError> {
    if size == 0 {
        return Err(FileError::Unusable {
            reason: "the file is empty".to_owned(),
            errno: None,
        });
    }
    if size > max_len as u64 {
        return Err(FileError::Unusable {
            reason: format!("the file is larger than the {max_len}-byte limit for key files"),
            errno: None,
        });
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::write_file as write;

    #[test]
    fn reads_good_file_and_refuses_bad_ones() {
        let d = crate::test_dir::fresh("keyfile-test");
        let good = d.join("good");
        write(&good, b"0123456789abcdef", 0o600);
        let mut kf = PrivateFile::open(&good, 1024).expect("open");
        let mut out = vec![0u8; kf.size()];
        kf.read_into(&mut out).expect("read");
        assert_eq!(out, b"0123456789abcdef");

        let loose = d.join("loose");
        write(&loose, b"x", 0o644);
        assert!(matches!(
            PrivateFile::open(&loose, 1024),
            Err(FileError::Insecure(_))
        ));

        let link = d.join("link");
        std::os::unix::fs::symlink(&good, &link).expect("symlink");
        assert!(matches!(
            PrivateFile::open(&link, 1024),
            Err(FileError::Insecure(_))
        ));

        assert!(matches!(
            PrivateFile::open(&d, 1024),
            Err(FileError::Insecure(_))
        ));

        let empty = d.join("empty");
        write(&empty, b"", 0o600);
        assert!(matches!(
            PrivateFile::open(&empty, 1024),
            Err(FileError::Unusable { .. })
        ));
        assert!(matches!(
            PrivateFile::open(&good, 4),
            Err(FileError::Unusable { .. })
        ));
        assert!(matches!(
            PrivateFile::open(&d.join("missing"), 4),
            Err(FileError::Unusable {
                errno: Some(libc::ENOENT),
                ..
            })
        ));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
