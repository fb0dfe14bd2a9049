//! Errors of the memory layer. None of them carries secret data.

use std::fmt;

/// A failure of the secure memory layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryError {
    /// A region of this size cannot be allocated (zero, or above [`super::MAX_REGION_LEN`]).
    InvalidLength { len: usize },
    /// A system call that the region cannot exist without failed (`mmap`, `mprotect`).
    /// `maps` is filled in when it failed with `ENOMEM`, the error of a process that
    /// reached `vm.max_map_count`.
    SystemCall {
        call: &'static str,
        errno: i32,
        maps: Option<MapCount>,
    },
    /// `mlock` failed and the process policy is to raise.
    LockFailed { errno: i32, bytes: usize },
    /// The secret heap could not lock or hold what a scope allocated, and the process
    /// policy is to raise; the shortfall says why.
    SecretHeap(super::secret_heap::HeapShortfall),
    /// `madvise` failed and the process policy is to raise.
    AdviseFailed { advice: &'static str, errno: i32 },
    /// The region was allocated by another process: this is a `fork()` child, and the
    /// data was wiped (or must not be used) here.
    Forked,
    /// The OS random number generator failed.
    Random { code: u32 },
}

/// How many memory mappings this process has, and how many it may have, read on the error
/// path only (`None` where the file could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapCount {
    /// Lines of `/proc/self/maps`.
    pub used: Option<u64>,
    /// `/proc/sys/vm/max_map_count`.
    pub max: Option<u64>,
}

impl MemoryError {
    /// The error of a failed `mmap`/`mprotect`; on `ENOMEM`, with the process's mapping
    /// count and `vm.max_map_count`, the limit a process with many live keys reaches first
    /// (each key is its own mapping of three areas).
    pub fn system_call(call: &'static str, errno: i32) -> Self {
        let maps = (errno == libc::ENOMEM).then(|| MapCount {
            used: super::sys::map_count(),
            max: super::sys::max_map_count(),
        });
        MemoryError::SystemCall { call, errno, maps }
    }

    /// The `errno` of the failed system call, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MemoryError::SystemCall { errno, .. }
            | MemoryError::LockFailed { errno, .. }
            | MemoryError::AdviseFailed { errno, .. } => Some(*errno),
            MemoryError::SecretHeap(s) => s.errno(),
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
            MemoryError::SystemCall { call, errno, maps } => {
                write!(f, "{call} failed: {}", errno_name(*errno))?;
                if let Some(maps) = maps {
                    write_map_limit_hint(f, maps)?;
                }
                Ok(())
            }
            MemoryError::LockFailed { errno, bytes } => write!(
                f,
                "mlock of {bytes} bytes failed: {} (RLIMIT_MEMLOCK too low? see `keycell doctor`)",
                errno_name(*errno)
            ),
            MemoryError::SecretHeap(s) => write!(f, "{s}"),
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

fn write_map_limit_hint(f: &mut fmt::Formatter<'_>, maps: &MapCount) -> fmt::Result {
    let show = |v: Option<u64>| v.map_or_else(|| "unknown".to_owned(), |v| v.to_string());
    write!(
        f,
        " (this process has {} memory mappings, and vm.max_map_count is {}; every live key \
         is a separate guarded mapping, so a process with tens of thousands of keys reaches \
         that limit: raise it, e.g. `sysctl -w vm.max_map_count=262144`, or keep fewer keys \
         alive)",
        show(maps.used),
        show(maps.max)
    )
}

impl std::error::Error for MemoryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enomem_names_the_map_limit() {
        let m = MemoryError::system_call("mprotect", libc::ENOMEM).to_string();
        assert!(
            m.starts_with("mprotect failed: Cannot allocate memory"),
            "{m}"
        );
        assert!(m.contains("vm.max_map_count is "), "{m}");
        assert!(m.contains("sysctl -w vm.max_map_count="), "{m}");
        let m = MemoryError::system_call("mprotect", libc::EACCES).to_string();
        assert!(!m.contains("max_map_count"), "{m}");
    }
}
