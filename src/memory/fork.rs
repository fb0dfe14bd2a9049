//! Knowing, without a lock and without a system call, whether this process is the one that
//! made something, or a fork child of it — also when the child was made by a raw `fork`
//! system call or glibc `_Fork()`, which run no `pthread_atfork` handlers.
//!
//! A [`ProcessStamp`] combines two witnesses:
//! - the atfork generation ([`super::sys::fork_generation`]), which covers every `fork()`
//!   even where `MADV_WIPEONFORK` is unavailable;
//! - a token in one process-wide sentinel page advised `MADV_WIPEONFORK`: a child of any
//!   kind finds the page zeroed, and arms it with a new token (one more than the last token
//!   this process saw, kept in ordinary memory), so stamps taken before the fork no longer
//!   match in the child while the parent's keep matching in the parent.
//!
//! Checking a stamp costs two atomic loads. The layers above check it *before* taking any
//! lock, so a child never waits on a lock a parent thread held at the fork.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::sys::{fork_generation, last_errno, map_page, page_size};

/// The last token this process (or, in a child, its parent) armed the sentinel with.
/// Ordinary memory: a child inherits it, which is how it picks a token of its own.
static LAST_TOKEN: AtomicU64 = AtomicU64::new(0);

/// The sentinel page, or the `errno` with which mapping or advising it failed (then only
/// the atfork generation witnesses a fork).
fn sentinel() -> Result<&'static AtomicU64, i32> {
    struct Page(NonNull<AtomicU64>);
    // SAFETY: the page is mapped once, never unmapped, and only accessed through the
    // atomic it holds.
    unsafe impl Send for Page {}
    // SAFETY: see `Send`: all access is atomic.
    unsafe impl Sync for Page {}

    static PAGE: OnceLock<Result<Page, i32>> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let len = page_size();
        let ptr = map_page()?;
        // SAFETY: the range is exactly the mapping made above.
        if unsafe { libc::madvise(ptr, len, libc::MADV_WIPEONFORK) } != 0 {
            let errno = last_errno();
            // SAFETY: unmapping the page made above, which nothing references yet.
            unsafe { libc::munmap(ptr, len) };
            return Err(errno);
        }
        NonNull::new(ptr.cast::<AtomicU64>()).map(Page).ok_or(0)
    });
    let page = page.as_ref().map_err(|e| *e)?;
    // SAFETY: the page is mapped for the life of the process, zero-filled (a valid
    // AtomicU64), page-aligned (aligned for u64), and only ever accessed atomically.
    Ok(unsafe { page.0.as_ref() })
}

/// This process's sentinel token (never zero), arming the sentinel first if it reads zero
/// (a fresh process, or a child whose copy was wiped on fork). Memory that a fork child
/// must never touch (e.g. `memfd_secret` arenas, which `MADV_DONTFORK` leaves unmapped in
/// it) records the token and compares it before every access. `Err(errno)` when the
/// sentinel page is unavailable.
pub fn sentinel_token() -> Result<u64, i32> {
    let cell = sentinel()?;
    let current = cell.load(Ordering::Acquire);
    if current != 0 {
        return Ok(current);
    }
    let fresh = LAST_TOKEN.load(Ordering::Acquire).wrapping_add(1).max(1);
    match cell.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            LAST_TOKEN.store(fresh, Ordering::Release);
            Ok(fresh)
        }
        // Another thread of this process armed it first.
        Err(armed) => Ok(armed),
    }
}

/// Which process something was made in. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessStamp {
    generation: u64,
    token: u64,
}

impl ProcessStamp {
    /// The stamp of the calling process.
    pub fn current() -> Self {
        ProcessStamp {
            generation: fork_generation(),
            // Without the sentinel page only the generation witnesses a fork.
            token: sentinel_token().unwrap_or(0),
        }
    }

    /// True when called in the process the stamp was taken in (not in a fork child).
    pub fn is_current(&self) -> bool {
        *self == Self::current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_matches_in_its_own_process() {
        let s = ProcessStamp::current();
        assert!(s.is_current());
        assert_ne!(
            s.token, 0,
            "the sentinel page should be available on Linux >= 4.14"
        );
    }

    #[test]
    fn a_raw_fork_child_sees_a_new_stamp() {
        let s = ProcessStamp::current();
        // SAFETY: raw fork system call (no atfork handlers); the child only calls
        // async-signal-safe code (atomics on the sentinel) and `_exit`.
        let pid = unsafe { libc::syscall(libc::SYS_fork) };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if s.is_current() { 1 } else { 0 };
            // SAFETY: `_exit` never returns and runs no destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child made above, with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        assert_eq!(rc, pid as libc::pid_t);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the child took the parent's stamp"
        );
        assert!(
            s.is_current(),
            "the parent's stamp still matches in the parent"
        );
    }
}
