//! Why a file was refused or could not be used ([`FileError`]), shared by every reader and
//! writer of files: key files, the key store, the audit log's state and lock files.

/// Why a file was refused or could not be read or written. Messages never contain key
/// bytes nor the size of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not safe to read: the message says why.
    Insecure(String),
    /// Cannot be used: the message says why; `errno` when an OS call failed.
    Unusable { reason: String, errno: Option<i32> },
}

impl FileError {
    /// A [`FileError::Unusable`] for a failed OS call: `"{what}: {e}"` and its `errno`.
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        FileError::Unusable {
            reason: format!("{what}: {e}"),
            errno: e.raw_os_error(),
        }
    }
}

/// A [`FileError::Unusable`] without an OS error.
pub fn unusable(reason: impl Into<String>) -> FileError {
    FileError::Unusable {
        reason: reason.into(),
        errno: None,
    }
}
