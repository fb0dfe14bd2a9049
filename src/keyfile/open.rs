//! Opening key files safely: no symlinks, regular files only, owned by us, not readable or
//! writable by group or others, bounded size. The checks run with `fstat` on the open
//! descriptor, so the file that is checked is the file that is read (no check-then-open
//! race). Reads go straight into the caller's buffer (a guarded region): no intermediate
//! copy.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroize;

use crate::memory::sys::effective_uid;

/// Why a key file was refused or could not be read. Messages never contain key bytes nor
/// the size of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not safe to read: the message says why.
    Insecure(String),
    /// Cannot be used: the message says why; `errno` when an OS call failed.
    Unusable { reason: String, errno: Option<i32> },
}

impl FileError {
    pub(crate) fn io(what: &str, e: &std::io::Error) -> Self {
        FileError::Unusable {
            reason: format!("{what}: {e}"),
            errno: e.raw_os_error(),
        }
    }
}

/// An open, checked key file and its size.
pub struct KeyFile {
    file: File,
    size: usize,
}

impl KeyFile {
    /// Open `path` for reading and check it. `max_len` bounds the size.
    pub fn open(path: &Path, max_len: usize) -> Result<KeyFile, FileError> {
        let file = open_no_follow(path)?;
        let meta = file
            .metadata()
            .map_err(|e| FileError::io("fstat failed", &e))?;
        check_regular_file(&meta)?;
        check_owner_and_mode(&meta)?;
        let size = check_size(meta.len(), max_len)?;
        Ok(KeyFile { file, size })
    }

    /// Size of the file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Read the whole file into `dst` (exactly [`Self::size`] bytes) and check that it
    /// did not grow meanwhile.
    pub fn read_into(&mut self, dst: &mut [u8]) -> Result<(), FileError> {
        if dst.len() != self.size {
            return Err(FileError::Unusable {
                reason: "internal error: destination size differs from file size".to_owned(),
                errno: None,
            });
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

/// A [`FileError::Unusable`] without an OS error.
pub(crate) fn unusable(reason: impl Into<String>) -> FileError {
    FileError::Unusable {
        reason: reason.into(),
        errno: None,
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
    let euid = effective_uid();
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
