//! [`PoolRegion`]: the parts of one region in a slot, between canaries.

use std::ptr::NonNull;

use super::shard::{my_shard, pool, replace_pool, Pool, TakeError};
use super::{canary_failure, class_for, CANARY_LEN, SLOT_CLASSES};
use crate::memory::fork::sentinel_token;
use crate::memory::policy::{backend_policy, Backend};
use crate::memory::sys::fork_generation;
use crate::memory::{MemoryError, Protection, Region, MAX_PARTS};

#[derive(Clone, Copy, Debug, Default)]
struct Part {
    /// Offset of the part's bytes from the slot start.
    offset: usize,
    len: usize,
}

/// A slot in an arena, holding the parts of one region.
pub struct PoolRegion {
    pool: &'static Pool,
    backend: Backend,
    class: u8,
    shard: u8,
    arena: usize,
    index: u32,
    slot: NonNull<u8>,
    parts: [Part; MAX_PARTS],
    count: usize,
    canary: [u8; CANARY_LEN],
    protection: Protection,
    generation: u64,
    /// The fork sentinel of a `memfd_secret` arena (0 otherwise).
    sentinel: u64,
}

// SAFETY: the region owns its slot exclusively; reads go through `&self` and writes need
// `&mut self`, so the borrow rules make sharing across threads sound. The pool it points
// to is never freed and is only reached through its mutexes.
unsafe impl Send for PoolRegion {}
// SAFETY: see `Send`.
unsafe impl Sync for PoolRegion {}

impl PoolRegion {
    /// A new region of parts of the given lengths, in a slot of the smallest class that
    /// holds them; `fill` runs on the parts once the canaries are written.
    pub fn new_with(
        lens: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Self, MemoryError> {
        Self::new_in(lens, backend_policy(), fill)
    }

    /// [`PoolRegion::new_with`] in arenas of a given backend.
    pub fn new_in(
        lens: &[usize],
        backend: Backend,
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Self, MemoryError> {
        let Some(class) = class_for(lens) else {
            let total = lens.iter().fold(0usize, |s, &l| s.saturating_add(l));
            return Err(MemoryError::InvalidLength { len: total });
        };
        let shard = my_shard();
        let mut pool = pool();
        let slot = loop {
            let taken = pool.shard(backend, class, shard).take(class, backend, pool);
            match taken {
                Ok(slot) => break slot,
                Err(TakeError::Memory(e)) => return Err(e),
                Err(TakeError::Inherited) => {
                    pool = replace_pool(std::ptr::from_ref(pool).cast_mut())
                }
            }
        };
        let mut parts = [Part::default(); MAX_PARTS];
        let mut offset = CANARY_LEN;
        for (part, &len) in parts.iter_mut().zip(lens) {
            *part = Part { offset, len };
            offset += len + CANARY_LEN;
        }
        let mut region = PoolRegion {
            pool,
            backend,
            class: class as u8,
            shard: shard as u8,
            arena: slot.arena,
            index: slot.index,
            slot: slot.ptr,
            parts,
            count: lens.len(),
            canary: slot.canary,
            protection: slot.protection,
            generation: fork_generation(),
            sentinel: slot.sentinel,
        };
        region.write_canaries();
        region.with_parts_mut(fill);
        Ok(region)
    }

    fn slot_size(&self) -> usize {
        SLOT_CLASSES[self.class as usize]
    }

    fn used(&self) -> &[Part] {
        &self.parts[..self.count]
    }

    /// Offsets of every canary: one in front of each part, one after the last.
    fn canary_offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let last = self.parts[self.count - 1];
        self.used()
            .iter()
            .map(|p| p.offset - CANARY_LEN)
            .chain(std::iter::once(last.offset + last.len))
    }

    fn write_canaries(&mut self) {
        let offsets: [usize; MAX_PARTS + 1] = {
            let mut o = [0usize; MAX_PARTS + 1];
            for (dst, src) in o.iter_mut().zip(self.canary_offsets()) {
                *dst = src;
            }
            o
        };
        for &off in &offsets[..=self.count] {
            // SAFETY: every canary offset + CANARY_LEN lies inside the slot (slot_need),
            // which is writable arena memory owned by this region.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.canary.as_ptr(),
                    self.slot.as_ptr().add(off),
                    CANARY_LEN,
                );
            }
        }
    }

    fn with_parts_mut(&mut self, fill: &mut dyn FnMut(&mut [&mut [u8]])) {
        let mut slices: [&mut [u8]; MAX_PARTS] = Default::default();
        for (slice, part) in slices.iter_mut().zip(self.used()) {
            // SAFETY: the part lies inside the slot, which is writable and owned by this
            // region; parts do not overlap; `&mut self` excludes other access.
            *slice = unsafe {
                std::slice::from_raw_parts_mut(self.slot.as_ptr().add(part.offset), part.len)
            };
        }
        fill(&mut slices[..self.count]);
    }

    /// XOR of the canary at `offset` with the expected one (zero when intact).
    fn canary_diff(&self, offset: usize) -> u128 {
        // SAFETY: the canary lies inside the readable slot; read_unaligned has no
        // alignment requirement (the trailing canary follows a part of any length).
        let found = unsafe {
            std::ptr::read_unaligned(self.slot.as_ptr().add(offset).cast::<[u8; CANARY_LEN]>())
        };
        u128::from_ne_bytes(found) ^ u128::from_ne_bytes(self.canary)
    }

    /// Whether every canary is intact, in constant time (all are read and OR-ed).
    fn all_canaries_intact(&self) -> bool {
        let diff = self
            .canary_offsets()
            .fold(0u128, |acc, off| acc | self.canary_diff(off));
        std::hint::black_box(diff) == 0
    }

    fn slot_wiped(&self) -> bool {
        // SAFETY: the slot is readable arena memory and lives as long as `self`.
        let s = unsafe { std::slice::from_raw_parts(self.slot.as_ptr(), self.slot_size()) };
        s.iter().fold(0u8, |acc, b| acc | b) == 0
    }

    /// The fork and corruption check of every access, as in page isolation: the fork
    /// generation, then the canary in front of the last part in constant time; a wiped
    /// slot means a fork child, anything else aborts.
    fn check_access(&self) -> Result<(), MemoryError> {
        if self.generation != fork_generation() {
            return Err(MemoryError::Forked);
        }
        // A memfd_secret arena is not mapped in a fork child at all: never touch it there.
        if self.sentinel != 0 && self.sentinel != sentinel_token().unwrap_or(0) {
            return Err(MemoryError::Forked);
        }
        let last = self.parts[self.count - 1];
        if std::hint::black_box(self.canary_diff(last.offset - CANARY_LEN)) == 0 {
            return Ok(());
        }
        if self.slot_wiped() {
            return Err(MemoryError::Forked);
        }
        canary_failure()
    }

    /// Address of the first byte of the last part.
    pub fn addr(&self) -> usize {
        self.slot.as_ptr() as usize + self.parts[self.count - 1].offset
    }
}

impl Region for PoolRegion {
    fn parts(&self) -> usize {
        self.count
    }

    fn part(&self, index: usize) -> Result<&[u8], MemoryError> {
        self.check_access()?;
        let part = self.used()[index];
        // SAFETY: the part lies in the readable slot, which lives as long as `self`;
        // writes require `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts(self.slot.as_ptr().add(part.offset), part.len) })
    }

    fn write(&mut self, fill: &mut dyn FnMut(&mut [&mut [u8]])) -> Result<(), MemoryError> {
        self.check_access()?;
        self.with_parts_mut(fill);
        Ok(())
    }

    fn protection(&self) -> Protection {
        self.protection
    }
}

impl Drop for PoolRegion {
    fn drop(&mut self) {
        // In a fork child the slot belongs to the parent's pool: leave it alone (it was
        // wiped, or holds the parent's copy; the pool's locks may be held by threads that
        // do not exist here). A corrupted canary aborts inside `check_access`.
        if self.check_access().is_err() {
            return;
        }
        if !self.all_canaries_intact() {
            canary_failure();
        }
        // SAFETY: the slot is writable arena memory owned by this region; memzero is a
        // volatile write the compiler cannot elide.
        unsafe { memsec::memzero(self.slot.as_ptr(), self.slot_size()) };
        self.pool
            .shard(self.backend, self.class as usize, self.shard as usize)
            .give_back(self.arena, self.index, self.pool);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{slot_need, MAX_SLOT};
    use super::*;

    fn region(lens: &[usize], byte: u8) -> PoolRegion {
        PoolRegion::new_with(lens, &mut |parts| {
            for p in parts.iter_mut() {
                p.fill(byte);
            }
        })
        .expect("alloc")
    }

    fn poke(addr: usize, value: u8) {
        // SAFETY: tests poke bytes inside a live slot of a read-write arena.
        unsafe { std::ptr::write_volatile(addr as *mut u8, value) };
    }

    fn peek(addr: usize) -> u8 {
        // SAFETY: tests read bytes inside a mapped, readable arena.
        unsafe { std::ptr::read_volatile(addr as *const u8) }
    }

    #[test]
    fn a_32_byte_key_costs_64_bytes() {
        assert_eq!(slot_need(&[32]), Some(64));
        assert_eq!(class_for(&[32]).map(|c| SLOT_CLASSES[c]), Some(64));
        assert_eq!(class_for(&[16]).map(|c| SLOT_CLASSES[c]), Some(48));
        assert_eq!(class_for(&[64, 32]).map(|c| SLOT_CLASSES[c]), Some(192));
        assert_eq!(class_for(&[MAX_SLOT]), None);
        assert_eq!(class_for(&[]), None);
        assert_eq!(class_for(&[1, 0]), None);
        assert_eq!(class_for(&[usize::MAX, 2]), None);
    }

    #[test]
    fn canaries_directly_around_every_part() {
        for lens in [
            &[1usize][..],
            &[13],
            &[32],
            &[64],
            &[3, 7],
            &[320 / 4, 1, 32],
        ] {
            let r = region(lens, 0xAB);
            assert_eq!(r.parts(), lens.len());
            for (i, &len) in lens.iter().enumerate() {
                let p = r.part(i).expect("part");
                assert_eq!(p.len(), len);
                assert!(p.iter().all(|&b| b == 0xAB));
                let start = p.as_ptr() as usize;
                assert_eq!(
                    start - CANARY_LEN,
                    r.slot.as_ptr() as usize + r.parts[i].offset - CANARY_LEN
                );
                // The canary is right in front and (for the last part) right behind.
                assert_eq!(r.canary_diff(r.parts[i].offset - CANARY_LEN), 0);
            }
            let last = r.parts[r.count - 1];
            assert_eq!(r.canary_diff(last.offset + last.len), 0);
            assert!(r.all_canaries_intact());
        }
    }

    #[test]
    fn one_byte_past_any_part_is_a_canary() {
        for lens in [&[1usize][..], &[13], &[32], &[5, 9]] {
            let mut r = region(lens, 1);
            for i in 0..lens.len() {
                for addr in [r.addr_of(i) - 1, r.addr_of(i) + lens[i]] {
                    let old = peek(addr);
                    poke(addr, old ^ 0xFF);
                    assert!(!r.all_canaries_intact(), "{lens:?} part {i} at {addr:#x}");
                    poke(addr, old);
                    assert!(r.all_canaries_intact());
                }
            }
            r.write(&mut |p| p[0][0] = 9).expect("write");
        }
    }

    #[test]
    fn slot_is_zeroed_on_free_and_reused() {
        let keep = region(&[32], 7);
        let r = region(&[32], 0x5A);
        let (slot, size) = (r.slot.as_ptr() as usize, r.slot_size());
        drop(r);
        // `keep` holds the arena mapped.
        assert!((0..size).all(|i| peek(slot + i) == 0));
        let again = region(&[32], 1);
        assert_eq!(again.slot.as_ptr() as usize, slot, "LIFO reuse");
        drop(keep);
    }

    #[test]
    fn a_wiped_slot_is_forked_not_corrupt() {
        let r = region(&[32], 0);
        // SAFETY: the slot is owned by `r` and writable; nothing borrows it.
        unsafe { std::ptr::write_bytes(r.slot.as_ptr(), 0, r.slot_size()) };
        assert_eq!(r.bytes(), Err(MemoryError::Forked));
        // Dropping it neither aborts nor returns the slot (it is leaked, as in a child).
        std::mem::forget(r);
    }

    #[test]
    fn arenas_grow_and_are_returned() {
        // A class of its own for this test, in a thread of its own (shard), so other
        // tests do not interfere with the counts.
        std::thread::spawn(|| {
            let class = class_for(&[900]).expect("class");
            let shard = my_shard();
            let count = |p: &Pool| {
                let s = p.shard(Backend::Mmap, class, shard);
                s.arenas.iter().filter(|a| a.is_some()).count()
            };
            let p = pool();
            let before = count(p);
            let keys: Vec<_> = (0..200).map(|_| region(&[900], 3)).collect();
            let grown = count(p);
            assert!(grown > before + 3, "{before} -> {grown}");
            assert!(keys.iter().all(|k| k.protection().locked));
            assert!(keys.iter().all(|k| !k.protection().read_only_idle));
            drop(keys);
            assert!(count(p) <= before + 1, "all but one spare returned");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn memfd_secret_arenas() {
        if crate::memory::sys::probe().memfd_secret.is_err() {
            return; // not available on this kernel
        }
        let keep =
            PoolRegion::new_in(&[32], Backend::MemfdSecret, &mut |p| p[0].fill(1)).expect("alloc");
        let r =
            PoolRegion::new_in(&[13], Backend::MemfdSecret, &mut |p| p[0].fill(9)).expect("alloc");
        let p = r.protection();
        assert_eq!(p.backend, "memfd_secret");
        assert_eq!(
            (p.locked, p.dontdump, p.wipeonfork, p.guard_pages),
            (true, true, true, true)
        );
        assert_ne!(r.sentinel, 0);
        assert_eq!(r.bytes().expect("bytes"), &[9u8; 13]);
        assert!(r.all_canaries_intact());
        let (slot, size) = (r.slot.as_ptr() as usize, r.slot_size());
        drop(r);
        assert!((0..size).all(|i| peek(slot + i) == 0));
        drop(keep);
    }

    #[test]
    fn threads_allocate_and_free_concurrently() {
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut keep = Vec::new();
                    for i in 0..5000usize {
                        let r = region(&[1 + (i % 60)], t);
                        assert!(r.bytes().expect("bytes").iter().all(|&b| b == t));
                        if i % 3 == 0 {
                            keep.push(r);
                        }
                        if keep.len() > 100 {
                            keep.clear();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
    }

    impl PoolRegion {
        fn addr_of(&self, i: usize) -> usize {
            self.slot.as_ptr() as usize + self.parts[i].offset
        }
    }
}
