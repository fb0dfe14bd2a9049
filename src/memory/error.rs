//! Errors of the memory layer. None of them carries secret data.

use std::fmt;

/// A failure of the secure memory layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// A region of this size cannot be allocated (zero, or above [`super::MAX_REGION_LEN`]).
    InvalidLength { len: usize },
    /// A system call that the region cannot exist without failed (`mmap`, `mprotect`).
    SystemCall { call: &'static str, errno: i32 },
    /// `mlock` failed and the process policy is to raise.
    LockFailed { errno: i32, bytes: usize },
    /// `madvise` failed and the process policy is to raise.
    AdviseFailed { advice: &'static str, errno: i32 },
    /// The region was allocated by another process: this is a `fork()` child, and the
    /// data was wiped (or must not be used) here.
    Forked,
    /// The OS random number generator failed.
    Random { code: u32 },
}

impl MemoryError {
    /// The error of a failed `mmap`/`mprotect`.
    pub fn system_call(call: &'static str, errno: i32) -> Self {
        MemoryError::SystemCall { call, errno }
    }

    /// The `errno` of the failed system call, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MemoryError::SystemCall { errno, .. }
            | MemoryError::LockFailed { errno, .. }
            | MemoryError::AdviseFailed { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

fn errno_name(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::InvalidLength { len } => write!(
                f,
                "cannot allocate a secret region of {len} bytes (allowed: 1 to {})",
                super::MAX_REGION_LEN
            ),
            MemoryError::SystemCall { call, errno } => {
                write!(f, "{call} failed: {}", errno_name(*errno))
            }
            MemoryError::LockFailed { errno, bytes } => write!(
                f,
                "mlock of {bytes} bytes failed: {} (RLIMIT_MEMLOCK too low? see `keycell doctor`)",
                errno_name(*errno)
            ),
            MemoryError::AdviseFailed { advice, errno } => {
                write!(f, "madvise({advice}) failed: {}", errno_name(*errno))
            }
            MemoryError::Forked => write!(
                f,
                "this key was created by the parent process before fork(); its memory was wiped in the child and it cannot be used here"
            ),
            MemoryError::Random { code } => {
                write!(f, "the OS random number generator failed (code {code})")
            }
        }
    }
}

impl std::error::Error for MemoryError {}
