//! The default backend: one anonymous mapping per region, guard pages on both sides.

use std::ptr::NonNull;
use std::sync::OnceLock;

use super::policy::{lock_failure_policy, LockFailurePolicy};
use super::sys::{fork_generation, last_errno, page_size};
use super::{Allocator, MemoryError, Protection, Region, MAX_REGION_LEN};

/// Length of the canary that sits directly in front of the buffer.
pub const CANARY_LEN: usize = 16;

/// The process-wide random canary (as in libsodium: one per process, from the OS CSPRNG).
fn canary() -> Result<&'static [u8; CANARY_LEN], MemoryError> {
    static CANARY: OnceLock<[u8; CANARY_LEN]> = OnceLock::new();
    if let Some(c) = CANARY.get() {
        return Ok(c);
    }
    let mut c = [0u8; CANARY_LEN];
    getrandom::fill(&mut c).map_err(|e| MemoryError::Random {
        code: e.raw_os_error().map_or(0, |v| v as u32),
    })?;
    Ok(CANARY.get_or_init(|| c))
}

/// Allocator of [`GuardedRegion`]s.
pub struct GuardedMmap;

impl Allocator for GuardedMmap {
    fn allocate(&self, len: usize) -> Result<Box<dyn Region>, MemoryError> {
        Ok(Box::new(GuardedRegion::new(len)?))
    }

    fn allocate_with(
        &self,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        Ok(Box::new(GuardedRegion::new_with(len, fill)?))
    }

    fn name(&self) -> &'static str {
        BACKEND_NAME
    }
}

/// The backend name reported in [`Protection::backend`].
pub const BACKEND_NAME: &str = "guarded-mmap";

/// One guarded mapping:
/// `| guard | data pages: ...padding... [canary][buffer] | guard |`.
pub struct GuardedRegion {
    /// Start of the whole mapping (the leading guard page).
    base: NonNull<u8>,
    /// Length of the whole mapping.
    map_len: usize,
    /// Start of the data pages.
    data: NonNull<u8>,
    /// Length of the data pages.
    data_len: usize,
    /// Start of the buffer (right-aligned against the trailing guard page).
    buf: NonNull<u8>,
    /// Length of the buffer.
    len: usize,
    protection: Protection,
    /// [`fork_generation`] when the region was created.
    generation: u64,
}

// SAFETY: the region owns its mapping exclusively; reads go through `&self` (the data is
// immutable while shared) and all writes need `&mut self`, so the usual borrow rules make
// sharing across threads sound.
unsafe impl Send for GuardedRegion {}
// SAFETY: see `Send`: `&self` only permits reads of memory nobody writes concurrently.
unsafe impl Sync for GuardedRegion {}

impl GuardedRegion {
    /// Map, guard, lock and advise a new zero-filled region of `len` bytes.
    pub fn new(len: usize) -> Result<Self, MemoryError> {
        Self::new_with(len, &mut |_| {})
    }

    /// Like [`GuardedRegion::new`], and run `fill` on the buffer while it is still
    /// writable from its creation — after it is locked and advised, before it turns
    /// read-only — which saves the two `mprotect` calls of a later [`Region::write`].
    pub fn new_with(len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<Self, MemoryError> {
        if len == 0 || len > MAX_REGION_LEN {
            return Err(MemoryError::InvalidLength { len });
        }
        let canary = canary()?;
        let generation = fork_generation();
        let page = page_size();
        let data_len = (len + CANARY_LEN).div_ceil(page) * page;
        let map_len = data_len + 2 * page;

        // SAFETY: a fresh anonymous private mapping with no address hint; the result is
        // checked against MAP_FAILED before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MemoryError::SystemCall {
                call: "mmap",
                errno: last_errno(),
            });
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or(MemoryError::SystemCall {
            call: "mmap",
            errno: 0,
        })?;
        // SAFETY: page < map_len, so the offset stays inside the mapping.
        let data = unsafe { base.add(page) };
        // SAFETY: data_len - len >= CANARY_LEN, and the result is inside the data pages.
        let buf = unsafe { data.add(data_len - len) };

        // From here on, the mapping is owned by `region`: its Drop unmaps it on every
        // early return below. Until `protection` is filled in, Drop sees an unlocked,
        // wiped-free region (nothing secret has been written yet).
        let mut region = GuardedRegion {
            base,
            map_len,
            data,
            data_len,
            buf,
            len,
            protection: Protection {
                locked: false,
                dontdump: false,
                wipeonfork: false,
                guard_pages: false,
                backend: BACKEND_NAME,
            },
            generation,
        };

        region.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        region.protection.guard_pages = true;
        // SAFETY: the canary slot lies inside the writable data pages, directly in front
        // of the buffer, and does not overlap the canary source.
        unsafe {
            std::ptr::copy_nonoverlapping(
                canary.as_ptr(),
                region.buf.as_ptr().sub(CANARY_LEN),
                CANARY_LEN,
            );
        }

        let policy = lock_failure_policy();
        // Dump exclusion covers the whole mapping, guard pages included.
        region.protection.dontdump = region.advise(libc::MADV_DONTDUMP, "MADV_DONTDUMP", policy)?;
        region.protection.wipeonfork =
            region.advise(libc::MADV_WIPEONFORK, "MADV_WIPEONFORK", policy)?;

        // SAFETY: data/data_len describe the data pages of our own mapping.
        let rc = unsafe { libc::mlock(region.data.as_ptr().cast(), region.data_len) };
        if rc == 0 {
            region.protection.locked = true;
        } else {
            let errno = last_errno();
            if policy == LockFailurePolicy::Raise {
                return Err(MemoryError::LockFailed {
                    errno,
                    bytes: region.data_len,
                });
            }
        }

        {
            // SAFETY: the data pages are writable (mprotect above) and locked; the buffer
            // lies inside them and nothing else references it yet.
            let slice = unsafe { std::slice::from_raw_parts_mut(region.buf.as_ptr(), len) };
            fill(slice);
        }
        region.protect(libc::PROT_READ)?;
        Ok(region)
    }

    fn protect(&self, prot: libc::c_int) -> Result<(), MemoryError> {
        // SAFETY: data/data_len are page-aligned and inside our own mapping.
        let rc = unsafe { libc::mprotect(self.data.as_ptr().cast(), self.data_len, prot) };
        if rc == 0 {
            Ok(())
        } else {
            Err(MemoryError::SystemCall {
                call: "mprotect",
                errno: last_errno(),
            })
        }
    }

    fn advise(
        &self,
        advice: libc::c_int,
        name: &'static str,
        policy: LockFailurePolicy,
    ) -> Result<bool, MemoryError> {
        let (ptr, len) = if advice == libc::MADV_DONTDUMP {
            (self.base.as_ptr(), self.map_len)
        } else {
            (self.data.as_ptr(), self.data_len)
        };
        // SAFETY: the range lies inside our own mapping.
        let rc = unsafe { libc::madvise(ptr.cast(), len, advice) };
        if rc == 0 {
            return Ok(true);
        }
        let errno = last_errno();
        match policy {
            LockFailurePolicy::Raise => Err(MemoryError::AdviseFailed {
                advice: name,
                errno,
            }),
            LockFailurePolicy::Warn => Ok(false),
        }
    }

    fn check_process(&self) -> Result<(), MemoryError> {
        if self.generation == fork_generation() {
            Ok(())
        } else {
            Err(MemoryError::Forked)
        }
    }

    /// Address of the first buffer byte (for diagnostics and tests).
    pub fn addr(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    fn canary_intact(&self) -> bool {
        let Some(expected) = canary().ok() else {
            return false;
        };
        // SAFETY: the canary slot is inside the (readable) data pages; memeq reads
        // CANARY_LEN bytes from both pointers in constant time.
        unsafe {
            memsec::memeq(
                self.buf.as_ptr().sub(CANARY_LEN),
                expected.as_ptr(),
                CANARY_LEN,
            )
        }
    }
}

impl Region for GuardedRegion {
    fn bytes(&self) -> Result<&[u8], MemoryError> {
        self.check_process()?;
        // SAFETY: buf..buf+len lies in our readable data pages, which live as long as
        // `self`; writes require `&mut self`, so no one mutates them while borrowed.
        Ok(unsafe { std::slice::from_raw_parts(self.buf.as_ptr(), self.len) })
    }

    fn write(&mut self, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), MemoryError> {
        self.check_process()?;
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        {
            // SAFETY: the pages are now writable; `&mut self` guarantees exclusive access.
            let slice = unsafe { std::slice::from_raw_parts_mut(self.buf.as_ptr(), self.len) };
            fill(slice);
        }
        self.protect(libc::PROT_READ)
    }

    fn protection(&self) -> Protection {
        self.protection
    }
}

impl Drop for GuardedRegion {
    fn drop(&mut self) {
        let ours = self.check_process().is_ok();
        if ours && self.protection.guard_pages {
            // Make the data pages writable to wipe them. If mprotect fails we cannot wipe;
            // unmapping still returns the pages to the kernel, which zeroes them before
            // any reuse.
            if self.protect(libc::PROT_READ | libc::PROT_WRITE).is_ok() {
                if !self.canary_intact() {
                    eprintln!(
                        "keycell: canary mismatch in front of a secret region: memory corruption detected, aborting"
                    );
                    std::process::abort();
                }
                // SAFETY: the data pages are writable and owned by us; memzero is a
                // volatile write the compiler cannot elide.
                unsafe { memsec::memzero(self.data.as_ptr(), self.data_len) };
            }
        }
        // No separate munlock: munmap removes the lock with the mapping (one system call
        // fewer on every free), and the data were wiped above while still locked.
        // In a fork child the pages were wiped by MADV_WIPEONFORK (or, if that failed,
        // hold the parent's copy); the canary is gone, so it is not checked. Locks are not
        // inherited. Unmapping is all there is to do.
        // SAFETY: base/map_len describe the mapping created in `new`, unmapped only here.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
        debug_assert_eq!(rc, 0, "munmap of our own mapping failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_right_aligned_with_canary() {
        for len in [1usize, 15, 16, 32, 4079, 4080, 4081, 4096, 10000] {
            let r = GuardedRegion::new(len).expect("alloc");
            let page = page_size();
            let end = r.buf.as_ptr() as usize + len;
            assert_eq!(end % page, 0, "buffer must end at a page boundary");
            assert_eq!(end, r.base.as_ptr() as usize + r.map_len - page);
            assert!(r.canary_intact());
            assert!(r.protection.guard_pages);
            assert_eq!(r.bytes().expect("bytes"), vec![0u8; len].as_slice());
        }
    }

    #[test]
    fn write_then_read() {
        let mut r = GuardedRegion::new(32).expect("alloc");
        r.write(&mut |b| b.copy_from_slice(&[7u8; 32]))
            .expect("write");
        assert_eq!(r.bytes().expect("bytes"), &[7u8; 32]);
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(matches!(
            GuardedRegion::new(0),
            Err(MemoryError::InvalidLength { .. })
        ));
        assert!(matches!(
            GuardedRegion::new(MAX_REGION_LEN + 1),
            Err(MemoryError::InvalidLength { .. })
        ));
    }

    #[test]
    fn dontdump_and_wipeonfork_are_set() {
        let r = GuardedRegion::new(64).expect("alloc");
        assert!(r.protection.dontdump);
        assert!(r.protection.wipeonfork);
    }
}
