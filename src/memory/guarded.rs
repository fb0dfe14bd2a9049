//! The default backend: one anonymous mapping per region, guard pages on both sides, a
//! canary directly in front of every part.

use std::ptr::NonNull;
use std::sync::OnceLock;

use super::policy::{lock_failure_policy, LockFailurePolicy};
use super::sys::{fork_generation, last_errno, page_size};
use super::{Allocator, Isolation, MemoryError, Protection, Region, MAX_PARTS, MAX_REGION_LEN};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Length of the canary that sits directly in front of each part.
pub const CANARY_LEN: usize = 16;
const _: () = assert!(CANARY_LEN == std::mem::size_of::<u128>());

static CANARY: OnceLock<[u8; CANARY_LEN]> = OnceLock::new();

/// The process-wide random canary (as in libsodium: one per process, from the OS CSPRNG).
fn canary() -> Result<&'static [u8; CANARY_LEN], MemoryError> {
    if let Some(c) = CANARY.get() {
        return Ok(c);
    }
    let mut c = [0u8; CANARY_LEN];
    super::fill_random(&mut c)?;
    Ok(CANARY.get_or_init(|| c))
}

/// Bytes of data pages of the live regions of this process (the share of the lock
/// budget that page isolation uses; see [`super::page_share`]).
static LIVE_DATA_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of data pages of the live page-isolated regions of this process.
pub fn live_data_bytes() -> usize {
    LIVE_DATA_BYTES.load(Ordering::Relaxed)
}

/// Bytes of data pages a region of parts of these lengths takes (`None` if invalid).
pub fn data_len_for(parts: &[usize]) -> Option<usize> {
    Layout::new(parts).ok().map(|l| l.data_len)
}

/// Allocator of [`GuardedRegion`]s.
pub struct GuardedMmap;

impl Allocator for GuardedMmap {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        Ok(Box::new(GuardedRegion::new_with(parts, fill)?))
    }

    fn name(&self) -> &'static str {
        BACKEND_NAME
    }
}

/// The backend name reported in [`Protection::backend`].
pub const BACKEND_NAME: &str = "guarded-mmap";

/// Where one part lies, as an offset from the start of the data pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Part {
    offset: usize,
    len: usize,
}

/// The geometry of a region: part offsets (each part preceded by a canary, the last part
/// right-aligned against the trailing guard page), data pages, whole mapping.
#[derive(Clone, Copy, Debug)]
struct Layout {
    parts: [Part; MAX_PARTS],
    count: usize,
    data_len: usize,
    map_len: usize,
}

impl Layout {
    fn new(lens: &[usize]) -> Result<Self, MemoryError> {
        let total = lens
            .iter()
            .try_fold(0usize, |sum, &len| sum.checked_add(len))
            .unwrap_or(usize::MAX);
        if lens.is_empty() || lens.len() > MAX_PARTS || lens.contains(&0) || total > MAX_REGION_LEN
        {
            return Err(MemoryError::InvalidLength { len: total });
        }
        let page = page_size();
        let data_len = (total + lens.len() * CANARY_LEN).div_ceil(page) * page;
        let mut parts = [Part::default(); MAX_PARTS];
        let mut end = data_len;
        for (part, &len) in parts[..lens.len()].iter_mut().zip(lens).rev() {
            *part = Part {
                offset: end - len,
                len,
            };
            end = part.offset - CANARY_LEN;
        }
        Ok(Layout {
            parts,
            count: lens.len(),
            data_len,
            map_len: data_len + 2 * page,
        })
    }

    fn parts(&self) -> &[Part] {
        &self.parts[..self.count]
    }
}

/// One guarded mapping:
/// `| guard | data pages: ...padding... [canary][part 0] ... [canary][last part] | guard |`.
pub struct GuardedRegion {
    /// Start of the whole mapping (the leading guard page).
    base: NonNull<u8>,
    /// Start of the data pages.
    data: NonNull<u8>,
    layout: Layout,
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
    /// Map, guard, lock and advise a new zero-filled region of one part of `len` bytes.
    pub fn new(len: usize) -> Result<Self, MemoryError> {
        Self::new_with(&[len], &mut |_| {})
    }

    /// A new region of `parts.len()` parts of the given lengths; `fill` runs on the parts
    /// while they are still writable from their creation — after the region is locked
    /// and advised, before it turns read-only — which saves the two `mprotect` calls of a
    /// later [`Region::write`]. The steps mirror libsodium's `sodium_malloc`.
    pub fn new_with(
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Self, MemoryError> {
        let layout = Layout::new(parts)?;
        let canary = canary()?;
        let mut region = Self::map(layout)?;
        region.open_data_pages()?;
        region.write_canaries(canary);
        let policy = lock_failure_policy();
        region.advise(policy)?;
        region.lock(policy)?;
        region.with_parts_mut(fill);
        region.protect(libc::PROT_READ)?;
        Ok(region)
    }

    /// Step 1: reserve the whole mapping, inaccessible. From here on the mapping is owned
    /// by the returned region: its `Drop` unmaps it on every early return.
    fn map(layout: Layout) -> Result<Self, MemoryError> {
        let base = super::sys::reserve(layout.map_len)?;
        // SAFETY: one page < map_len, so the offset stays inside the mapping.
        let data = unsafe { base.add(page_size()) };
        LIVE_DATA_BYTES.fetch_add(layout.data_len, Ordering::Relaxed);
        Ok(GuardedRegion {
            base,
            data,
            layout,
            protection: Protection {
                locked: false,
                dontdump: false,
                wipeonfork: false,
                guard_pages: false,
                read_only_idle: true,
                isolation: Isolation::Page,
                backend: BACKEND_NAME,
            },
            generation: fork_generation(),
        })
    }

    /// Step 2: make the data pages writable; the pages on either side stay `PROT_NONE`.
    fn open_data_pages(&mut self) -> Result<(), MemoryError> {
        self.protect(libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Step 3: a canary directly in front of every part. Only once they are written does
    /// `Drop` read the data pages (and check the canaries).
    fn write_canaries(&mut self, canary: &[u8; CANARY_LEN]) {
        for part in self.layout.parts() {
            // SAFETY: the canary slot lies inside the writable data pages, directly in
            // front of the part (Layout leaves CANARY_LEN bytes there), and does not
            // overlap the canary source.
            unsafe {
                std::ptr::copy_nonoverlapping(canary.as_ptr(), self.canary_ptr(*part), CANARY_LEN);
            }
        }
        self.protection.guard_pages = true;
    }

    /// Step 4: exclude the mapping from core dumps, wipe the data pages on fork.
    fn advise(&mut self, policy: LockFailurePolicy) -> Result<(), MemoryError> {
        // Dump exclusion covers the whole mapping, guard pages included.
        let (base, map_len) = (self.base.as_ptr(), self.layout.map_len);
        self.protection.dontdump =
            Self::madvise(base, map_len, libc::MADV_DONTDUMP, "MADV_DONTDUMP", policy)?;
        let (data, data_len) = (self.data.as_ptr(), self.layout.data_len);
        self.protection.wipeonfork = Self::madvise(
            data,
            data_len,
            libc::MADV_WIPEONFORK,
            "MADV_WIPEONFORK",
            policy,
        )?;
        Ok(())
    }

    /// Step 5: lock the data pages in RAM (or report that they are not, by policy).
    fn lock(&mut self, policy: LockFailurePolicy) -> Result<(), MemoryError> {
        // SAFETY: data/data_len describe the data pages of our own mapping.
        let rc = unsafe { libc::mlock(self.data.as_ptr().cast(), self.layout.data_len) };
        if rc == 0 {
            self.protection.locked = true;
            return Ok(());
        }
        match policy {
            LockFailurePolicy::Raise => Err(MemoryError::LockFailed {
                errno: last_errno(),
                bytes: self.layout.data_len,
            }),
            LockFailurePolicy::Warn => Ok(()),
        }
    }

    /// Step 6 (and every later write): run `fill` on the parts. The data pages must be
    /// writable, which `&mut self` and the callers ensure.
    fn with_parts_mut(&mut self, fill: &mut dyn FnMut(&mut [&mut [u8]])) {
        let mut slices: [&mut [u8]; MAX_PARTS] = Default::default();
        for (slice, part) in slices.iter_mut().zip(self.layout.parts()) {
            // SAFETY: the part lies inside the data pages, which are writable here; parts
            // do not overlap each other (Layout), and `&mut self` excludes other access.
            *slice = unsafe {
                std::slice::from_raw_parts_mut(self.data.as_ptr().add(part.offset), part.len)
            };
        }
        fill(&mut slices[..self.layout.count]);
    }

    fn protect(&self, prot: libc::c_int) -> Result<(), MemoryError> {
        // SAFETY: data/data_len are page-aligned and inside our own mapping.
        let rc = unsafe { libc::mprotect(self.data.as_ptr().cast(), self.layout.data_len, prot) };
        if rc == 0 {
            Ok(())
        } else {
            Err(MemoryError::system_call("mprotect", last_errno()))
        }
    }

    fn madvise(
        ptr: *mut u8,
        len: usize,
        advice: libc::c_int,
        name: &'static str,
        policy: LockFailurePolicy,
    ) -> Result<bool, MemoryError> {
        // SAFETY: callers pass a range inside a mapping they own.
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

    fn canary_ptr(&self, part: Part) -> *mut u8 {
        // SAFETY: Layout puts CANARY_LEN bytes in front of every part, inside the data
        // pages, so the offset stays inside our mapping.
        unsafe { self.data.as_ptr().add(part.offset - CANARY_LEN) }
    }

    fn last_part(&self) -> Part {
        self.layout.parts[self.layout.count - 1]
    }

    /// Whether the canary in front of `part` holds the process canary, in constant time:
    /// one 128-bit load, XOR and test for zero, no data-dependent branch or early exit.
    /// Only called once the canaries are written (`guard_pages`), on readable pages.
    fn canary_intact(&self, part: Part) -> bool {
        let Some(expected) = CANARY.get() else {
            return false;
        };
        // SAFETY: the canary slot is CANARY_LEN readable bytes inside the data pages;
        // read_unaligned has no alignment requirement.
        let found =
            unsafe { std::ptr::read_unaligned(self.canary_ptr(part).cast::<[u8; CANARY_LEN]>()) };
        let diff = u128::from_ne_bytes(found) ^ u128::from_ne_bytes(*expected);
        std::hint::black_box(diff) == 0
    }

    /// Whether the data pages hold nothing but zeros: what `MADV_WIPEONFORK` leaves in a
    /// child. The random canaries are never zero in the process that wrote them.
    fn data_pages_wiped(&self) -> bool {
        // SAFETY: the data pages are readable (every caller checked `guard_pages`) and
        // live as long as `self`.
        let data = unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.layout.data_len) };
        data.iter().fold(0u8, |acc, b| acc | b) == 0
    }

    /// The fork and corruption check of every access: this process must be the one that
    /// allocated the region. A child made by `fork()` has another [`fork_generation`]; a
    /// child made without atfork handlers (raw `fork` system call, `_Fork()`) has the same
    /// generation, but `MADV_WIPEONFORK` zeroed its pages, canary included. The common
    /// path is one atomic load and one 16-byte constant-time compare.
    fn check_access(&self) -> Result<(), MemoryError> {
        if self.generation != fork_generation() {
            return Err(MemoryError::Forked);
        }
        if self.canary_intact(self.last_part()) {
            return Ok(());
        }
        if self.data_pages_wiped() {
            return Err(MemoryError::Forked);
        }
        canary_failure()
    }

    /// Address of the first byte of the last part (for diagnostics and tests).
    pub fn addr(&self) -> usize {
        self.data.as_ptr() as usize + self.last_part().offset
    }
}

/// A canary was overwritten: memory corruption. Abort, as libsodium does.
#[cold]
fn canary_failure() -> ! {
    eprintln!(
        "keycell: canary mismatch in front of a secret region: memory corruption detected, aborting"
    );
    std::process::abort();
}

impl Region for GuardedRegion {
    fn parts(&self) -> usize {
        self.layout.count
    }

    fn part(&self, index: usize) -> Result<&[u8], MemoryError> {
        self.check_access()?;
        let part = self.layout.parts()[index];
        // SAFETY: the part lies in our readable data pages, which live as long as `self`;
        // writes require `&mut self`, so no one mutates them while borrowed.
        Ok(unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(part.offset), part.len) })
    }

    fn write(&mut self, fill: &mut dyn FnMut(&mut [&mut [u8]])) -> Result<(), MemoryError> {
        self.check_access()?;
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        self.with_parts_mut(fill);
        self.protect(libc::PROT_READ)
    }

    fn protection(&self) -> Protection {
        self.protection
    }
}

impl Drop for GuardedRegion {
    fn drop(&mut self) {
        // Until the canaries are written (`guard_pages`) nothing secret is in the region
        // and its data pages may be inaccessible: unmapping is all there is to do. In a
        // fork child the pages were wiped by MADV_WIPEONFORK (or, if that failed, hold the
        // parent's copy); they are not checked or wiped here. Locks are not inherited.
        // A corrupted canary aborts inside `check_access`.
        if self.protection.guard_pages && self.check_access().is_ok() {
            // Make the data pages writable to wipe them. If mprotect fails we cannot wipe;
            // unmapping still returns the pages to the kernel, which zeroes them before
            // any reuse.
            if self.protect(libc::PROT_READ | libc::PROT_WRITE).is_ok() {
                if !self.layout.parts().iter().all(|p| self.canary_intact(*p)) {
                    canary_failure();
                }
                // SAFETY: the data pages are writable and owned by us; memzero is a
                // volatile write the compiler cannot elide.
                unsafe { memsec::memzero(self.data.as_ptr(), self.layout.data_len) };
            }
        }
        // No separate munlock: munmap removes the lock with the mapping (one system call
        // fewer on every free), and the data were wiped above while still locked.
        // SAFETY: base/map_len describe the mapping created in `map`, unmapped only here.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.layout.map_len) };
        debug_assert_eq!(rc, 0, "munmap of our own mapping failed");
        LIVE_DATA_BYTES.fetch_sub(self.layout.data_len, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of_data(r: &GuardedRegion) -> usize {
        r.base.as_ptr() as usize + r.layout.map_len - page_size()
    }

    #[test]
    fn layout_is_right_aligned_with_canary() {
        for len in [1usize, 15, 16, 32, 4079, 4080, 4081, 4096, 10000] {
            let r = GuardedRegion::new(len).expect("alloc");
            let page = page_size();
            let end = r.addr() + len;
            assert_eq!(end % page, 0, "buffer must end at a page boundary");
            assert_eq!(end, end_of_data(&r));
            assert!(r.canary_intact(r.last_part()));
            assert!(r.protection.guard_pages);
            assert_eq!(r.bytes().expect("bytes"), vec![0u8; len].as_slice());
        }
    }

    #[test]
    fn every_part_has_a_canary_directly_in_front() {
        let r = GuardedRegion::new_with(&[320, 1, 32], &mut |parts| {
            for (i, p) in parts.iter_mut().enumerate() {
                p.fill(i as u8 + 1);
            }
        })
        .expect("alloc");
        assert_eq!(r.parts(), 3);
        let mut next = end_of_data(&r);
        for (i, len) in [(2usize, 32usize), (1, 1), (0, 320)] {
            let part = r.part(i).expect("part");
            assert_eq!(part.len(), len);
            assert!(part.iter().all(|&b| b == i as u8 + 1));
            assert_eq!(part.as_ptr() as usize + len, next, "parts are packed");
            assert!(r.canary_intact(r.layout.parts[i]));
            next = part.as_ptr() as usize - CANARY_LEN;
        }
        assert!(next >= r.data.as_ptr() as usize);
    }

    #[test]
    fn layout_fills_whole_pages() {
        let page = page_size();
        let l = Layout::new(&[page - 2 * CANARY_LEN - 1, 1]).expect("layout");
        assert_eq!(l.data_len, page);
        assert_eq!(l.parts()[0].offset, CANARY_LEN);
        let l = Layout::new(&[page - 2 * CANARY_LEN, 1]).expect("layout");
        assert_eq!(l.data_len, 2 * page);
    }

    #[test]
    fn write_then_read() {
        let mut r = GuardedRegion::new(32).expect("alloc");
        r.write(&mut |b| b[0].copy_from_slice(&[7u8; 32]))
            .expect("write");
        assert_eq!(r.bytes().expect("bytes"), &[7u8; 32]);
    }

    #[test]
    fn rejects_bad_lengths() {
        for parts in [
            &[0usize][..],
            &[MAX_REGION_LEN + 1],
            &[],
            &[1, 0],
            &[MAX_REGION_LEN, 1],
            &[1; MAX_PARTS + 1],
            &[usize::MAX, 2],
        ] {
            assert!(matches!(
                GuardedRegion::new_with(parts, &mut |_| {}),
                Err(MemoryError::InvalidLength { .. })
            ));
        }
    }

    #[test]
    fn a_zeroed_region_is_refused_as_forked() {
        // What MADV_WIPEONFORK leaves in a child that ran no atfork handler.
        let mut r = GuardedRegion::new_with(&[64, 32], &mut |parts| {
            for p in parts.iter_mut() {
                p.fill(0);
            }
        })
        .expect("alloc");
        assert!(
            r.bytes().is_ok(),
            "zero key bytes alone are fine: the canary is not"
        );
        r.protect(libc::PROT_READ | libc::PROT_WRITE).expect("rw");
        // SAFETY: the data pages are writable and owned by `r`; nothing borrows them.
        unsafe { std::ptr::write_bytes(r.data.as_ptr(), 0, r.layout.data_len) };
        r.protect(libc::PROT_READ).expect("ro");
        assert_eq!(r.bytes(), Err(MemoryError::Forked));
        assert_eq!(r.part(0), Err(MemoryError::Forked));
        assert!(matches!(r.write(&mut |_| {}), Err(MemoryError::Forked)));
        // Dropping it neither aborts (no canary check) nor needs to wipe.
    }

    #[test]
    fn dontdump_and_wipeonfork_are_set() {
        let r = GuardedRegion::new(64).expect("alloc");
        assert!(r.protection.dontdump);
        assert!(r.protection.wipeonfork);
    }
}
