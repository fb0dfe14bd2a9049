//! Pooled isolation: many small secrets in a few guarded, locked arenas.
//!
//! # Layout
//!
//! ```text
//! arena (one mapping):
//! | guard page | marker 16 | slot | slot | ... | slot | padding | guard page |
//!   PROT_NONE   mlock, MADV_DONTDUMP, MADV_WIPEONFORK, read-write   PROT_NONE
//!
//! slot (size class S, parts packed from its start):
//! [canary 16][part 0][canary 16][part 1] ... [canary 16][last part][canary 16] zero tail
//! ```
//!
//! A slot needs `sum(part lengths) + 16 * (parts + 1)` bytes and takes the smallest size
//! class ([`SLOT_CLASSES`]) that holds it: a 32-byte key is `16 + 32 + 16 = 64` bytes, the
//! whole of its locked cost. Every canary sits directly against the bytes it guards,
//! whatever their length, so a one-byte underflow out of any part and a one-byte overflow
//! out of any part (the last one included, odd lengths included) land in a canary. All
//! canaries of a slot are checked in constant time when it is freed; a mismatch aborts
//! the process, as in page isolation. Slots are zeroed (volatile writes) when freed.
//!
//! Each arena has its own random canary; the arena's first 16 bytes (the marker) hold it
//! too. A fork child sees the arena wiped (`MADV_WIPEONFORK`): a slot whose leading canary
//! and bytes are all zero is reported as [`MemoryError::Forked`], never used and never
//! freed, and a wiped marker tells the allocator that its arenas belong to the parent,
//! which makes it start a fresh pool (its arenas are not locked in the child).
//!
//! Arenas stay read-write: toggling a shared page read-only per allocation costs
//! microseconds and a TLB shootdown. [`Protection::read_only_idle`] is false for them.
//!
//! # Locking
//!
//! Per size class, [`SHARDS`] shards, each a mutex over its arenas; a thread allocates
//! from the shard it was assigned on first use (round robin) and frees into the shard
//! the slot came from. The critical section pops or pushes one slot index; system calls
//! happen only when an arena is created (`mmap`, `mprotect`, `madvise` x2, `mlock`) or
//! returned (`munmap`). Arenas grow 1, 2, 4, 8, then 16 pages per shard; one empty arena
//! per shard is kept as a spare, further empty ones are unmapped.
//!
//! The lock-failure policy applies per arena: under "warn" an arena whose `mlock` (or
//! `madvise`) failed is kept and every slot in it reports exactly what it lacks; under
//! "raise" the arena is unmapped and the allocation fails.

mod arena;
mod region;
mod shard;

pub use region::PoolRegion;

use super::{Allocator, MemoryError, Region, MAX_PARTS};

/// Length of every canary in a slot.
pub const CANARY_LEN: usize = 16;
const _: () = assert!(CANARY_LEN == std::mem::size_of::<u128>());

/// Slot sizes, smallest first. Multiples of 16, so every slot (and its first part) is
/// 16-byte aligned.
pub const SLOT_CLASSES: [usize; 8] = [48, 64, 96, 128, 192, 256, 512, 1024];

/// The largest slot; a region that needs more is page-isolated.
pub const MAX_SLOT: usize = SLOT_CLASSES[SLOT_CLASSES.len() - 1];

/// Shards per size class.
pub const SHARDS: usize = 4;

/// Largest arena, in pages of data (64 KiB with 4 KiB pages).
pub(super) const MAX_ARENA_PAGES: usize = 16;

/// Bytes at the start of an arena that hold its canary (the fork marker).
pub(super) const MARKER_LEN: usize = 16;

/// Name reported in [`Protection::backend`]: arenas are guarded anonymous mappings.
pub const BACKEND_NAME: &str = super::guarded::BACKEND_NAME;

/// Bytes a slot needs for parts of these lengths (canaries included), or `None` when the
/// lengths are invalid or too large for the pool.
pub fn slot_need(lens: &[usize]) -> Option<usize> {
    if lens.is_empty() || lens.len() > MAX_PARTS || lens.contains(&0) {
        return None;
    }
    let total = lens
        .iter()
        .try_fold(0usize, |sum, &len| sum.checked_add(len))?;
    let need = total.checked_add((lens.len() + 1) * CANARY_LEN)?;
    (need <= MAX_SLOT).then_some(need)
}

/// The size class index for parts of these lengths, if the pool can hold them.
pub fn class_for(lens: &[usize]) -> Option<usize> {
    let need = slot_need(lens)?;
    SLOT_CLASSES.iter().position(|&s| s >= need)
}

/// Counters of the pool of this process (for `keycell doctor` and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Arenas mapped (spares included).
    pub arenas: usize,
    /// Slots in use.
    pub live_slots: usize,
    /// Bytes of arena data pages that are `mlock`ed.
    pub locked_bytes: usize,
    /// Bytes of arena data pages in all.
    pub mapped_bytes: usize,
}

/// The pooled allocator.
pub struct Pooled;

impl Allocator for Pooled {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        Ok(Box::new(PoolRegion::new_with(parts, fill)?))
    }

    fn name(&self) -> &'static str {
        "pool"
    }
}

/// Statistics of the current pool.
pub fn stats() -> PoolStats {
    shard::stats()
}

/// A canary was overwritten: memory corruption. Abort, as libsodium does.
#[cold]
pub(super) fn canary_failure() -> ! {
    eprintln!(
        "keycell: canary mismatch around a pooled secret: memory corruption detected, aborting"
    );
    std::process::abort();
}
