//! The fork sentinel of `memfd_secret` arenas.

use std::sync::atomic::{AtomicPtr, Ordering};

use crate::memory::sys::{last_errno, page_size};
use crate::memory::MemoryError;

/// The fork sentinel: eight random bytes in a private page with `MADV_WIPEONFORK`, made
/// on first use. Every fork child reads zero there (until it re-arms it): how a child
/// made by the raw `fork` system call (no atfork handlers) knows that `memfd_secret`
/// arenas, which are not mapped in it, are not its own.
static SENTINEL: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());

/// The sentinel's value in this process (arming it on first use, and again in a fork
/// child, where it reads zero).
pub(super) fn fork_sentinel() -> Result<u64, MemoryError> {
    let mut page = SENTINEL.load(Ordering::Acquire);
    if page.is_null() {
        page = map_sentinel()?;
    }
    // SAFETY: the sentinel page is mapped for the life of the process and readable.
    let value = unsafe { std::ptr::read_volatile(page) };
    if value != 0 {
        return Ok(value);
    }
    let mut fresh = [0u8; 8];
    getrandom::fill(&mut fresh).map_err(|e| MemoryError::Random {
        code: e.raw_os_error().map_or(0, |v| v as u32),
    })?;
    let fresh = u64::from_ne_bytes(fresh) | 1;
    // SAFETY: as above, and writable; only a fork child (whose other threads are gone)
    // or the thread that just mapped it writes here.
    unsafe { std::ptr::write_volatile(page, fresh) };
    Ok(fresh)
}

/// The sentinel's current value without arming it (0 in a fork child, or before any
/// `memfd_secret` arena exists).
pub(super) fn sentinel_now() -> u64 {
    let page = SENTINEL.load(Ordering::Acquire);
    if page.is_null() {
        return 0;
    }
    // SAFETY: the sentinel page is mapped for the life of the process and readable.
    unsafe { std::ptr::read_volatile(page) }
}

#[cold]
fn map_sentinel() -> Result<*mut u64, MemoryError> {
    // SAFETY: a fresh anonymous private page with no address hint; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page_size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(MemoryError::system_call("mmap", last_errno()));
    }
    // SAFETY: the page we just mapped.
    if unsafe { libc::madvise(p, page_size(), libc::MADV_WIPEONFORK) } != 0 {
        let errno = last_errno();
        // SAFETY: unmapping the page we just mapped, never published.
        unsafe { libc::munmap(p, page_size()) };
        return Err(MemoryError::AdviseFailed {
            advice: "MADV_WIPEONFORK",
            errno,
        });
    }
    match SENTINEL.compare_exchange(
        std::ptr::null_mut(),
        p.cast(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Ok(p.cast()),
        Err(existing) => {
            // SAFETY: another thread published its page first; ours was never shared.
            unsafe { libc::munmap(p, page_size()) };
            Ok(existing)
        }
    }
}
