//! Platform facts and probes for the allocator: page size, fork detection, resource limits,
//! and live probes of the protections a region relies on (used by `keycell doctor`).
//! System calls that are not about memory live in `crate::sys`.
//!
//! Every probe performs the real system call on a scratch mapping and reports its result;
//! nothing here is guessed from kernel versions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// The size of one memory page.
pub fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if v <= 0 {
            4096
        } else {
            v as usize
        }
    })
}

static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn bump_fork_generation() {
    // Runs in the child right after fork(): async-signal-safe (an atomic add only).
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// A number that changes in a child process after every `fork()`.
///
/// Regions record it when they are created; a region whose generation differs from the
/// current one belongs to an ancestor process. A `pthread_atfork` child handler maintains
/// it, so checking costs one atomic load and no system call.
pub fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registering a child handler that only performs an atomic increment,
        // which is async-signal-safe; the function has 'static lifetime.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(bump_fork_generation)) };
        if rc != 0 {
            // Without the handler a fork child could not detect inherited regions. That
            // would silently weaken the fork guarantee, so refuse to continue.
            eprintln!(
                "keycell: pthread_atfork failed ({rc}); refusing to run without fork detection"
            );
            std::process::abort();
        }
    });
    FORK_GENERATION.load(Ordering::SeqCst)
}

/// A resource limit as `(soft, hard)`, `None` meaning unlimited.
pub type Limit = (Option<u64>, Option<u64>);

fn get_rlimit(resource: libc::__rlimit_resource_t) -> Result<Limit, i32> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(last_errno());
    }
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            None
        } else {
            Some(v)
        }
    };
    Ok((conv(lim.rlim_cur), conv(lim.rlim_max)))
}

/// `RLIMIT_MEMLOCK` of this process.
pub fn rlimit_memlock() -> Result<Limit, i32> {
    get_rlimit(libc::RLIMIT_MEMLOCK)
}

/// `RLIMIT_CORE` of this process.
pub fn rlimit_core() -> Result<Limit, i32> {
    get_rlimit(libc::RLIMIT_CORE)
}

/// `vm.max_map_count`: how many memory mappings a process may have (`None` if unreadable).
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many memory mappings this process has: the lines of `/proc/self/maps` (`None` if
/// unreadable). Reads through a fixed stack buffer, since it runs when the process may be
/// out of mappings (a large heap allocation would need one).
pub fn map_count() -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/self/maps").ok()?;
    let mut chunk = [0u8; 8192];
    let mut lines = 0u64;
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Some(lines),
            Ok(n) => lines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// The `errno` of the last failed system call on this thread.
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Result of probing one protection: `Ok(())` or the `errno` it failed with.
pub type Probe = Result<(), i32>;

/// Live probes of every protection, each on its own scratch page.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub mlock: Probe,
    pub dontdump: Probe,
    pub wipeonfork: Probe,
    pub memfd_secret: Probe,
}

struct ScratchPage {
    ptr: *mut libc::c_void,
    len: usize,
}

/// Reserve `len` bytes of address space as one private, anonymous `PROT_NONE` mapping (no
/// swap reserved): the guard pages and the not-yet-opened data pages of a region or an
/// arena. The caller owns the mapping and unmaps it.
pub(super) fn reserve(len: usize) -> Result<std::ptr::NonNull<u8>, super::MemoryError> {
    reserve_errno(len).map_err(|errno| super::MemoryError::system_call("mmap", errno))
}

/// [`reserve`] with the bare errno as its error: allocates nothing, for the secret heap,
/// which runs inside the global allocator (building a `MemoryError` reads files).
pub(super) fn reserve_errno(len: usize) -> Result<std::ptr::NonNull<u8>, i32> {
    // SAFETY: a fresh anonymous private mapping with no address hint; the result is
    // checked against MAP_FAILED before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(last_errno());
    }
    std::ptr::NonNull::new(base.cast::<u8>()).ok_or(0)
}

/// Map one private, anonymous, read-write page; `Err(errno)` when `mmap` fails. The caller
/// owns the page (`page_size()` bytes) and unmaps it, or keeps it for the process's life.
pub(super) fn map_page() -> Result<*mut libc::c_void, i32> {
    // SAFETY: anonymous private mapping with no address hint; the result is checked.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page_size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(last_errno())
    } else {
        Ok(ptr)
    }
}

impl ScratchPage {
    fn new() -> Result<Self, i32> {
        Ok(ScratchPage {
            ptr: map_page()?,
            len: page_size(),
        })
    }
}

impl Drop for ScratchPage {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping created in `new` and not unmapped before;
        // munlock of an unlocked page is harmless. Failure leaks one page, nothing more.
        unsafe {
            libc::munlock(self.ptr, self.len);
            libc::munmap(self.ptr, self.len);
        }
    }
}

fn probe_advice(advice: libc::c_int) -> Probe {
    let page = ScratchPage::new()?;
    // SAFETY: the range is exactly the scratch mapping we own.
    let rc = unsafe { libc::madvise(page.ptr, page.len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

fn probe_mlock() -> Probe {
    let page = ScratchPage::new()?;
    // SAFETY: the range is exactly the scratch mapping we own.
    let rc = unsafe { libc::mlock(page.ptr, page.len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

fn probe_memfd_secret() -> Probe {
    // SAFETY: memfd_secret takes one flags argument; on success it returns a new file
    // descriptor that we close at once.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_long) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd is a descriptor this function just opened and nobody else holds.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// Probe every protection the guarded allocator relies on, plus `memfd_secret`.
pub fn probe() -> ProbeReport {
    ProbeReport {
        mlock: probe_mlock(),
        dontdump: probe_advice(libc::MADV_DONTDUMP),
        wipeonfork: probe_advice(libc::MADV_WIPEONFORK),
        memfd_secret: probe_memfd_secret(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn probes_run() {
        let r = probe();
        // Linux >= 4.14 supports both advices on private anonymous memory.
        assert_eq!(r.dontdump, Ok(()));
        assert_eq!(r.wipeonfork, Ok(()));
    }

    #[test]
    fn map_counts_are_readable() {
        let used = map_count().expect("maps");
        assert!(used > 3);
        assert!(max_map_count().expect("max_map_count") > used);
    }

    #[test]
    fn limits_are_readable() {
        assert!(rlimit_memlock().is_ok());
        assert!(rlimit_core().is_ok());
    }
}
