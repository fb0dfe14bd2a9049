//! Shards (a mutex over the arenas of one size class) and the per-process pool.

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::arena::Arena;
use super::{PoolStats, CANARY_LEN, MAX_ARENA_PAGES, SHARDS, SLOT_CLASSES};
use crate::memory::fork::sentinel_token;
use crate::memory::policy::{lock_failure_policy, Backend, LockFailurePolicy};
use crate::memory::sys::fork_generation;
use crate::memory::{MemoryError, Protection};

/// The arenas of one (size class, shard).
#[derive(Default)]
pub(super) struct Shard {
    /// Arenas by id; a freed id is reused (`None` until then).
    pub(super) arenas: Vec<Option<Arena>>,
    vacant: Vec<usize>,
    /// Ids of arenas with at least one free slot.
    partial: Vec<usize>,
    /// Arenas with no slot in use (kept as spares, at most one).
    empty: usize,
    /// Arenas ever mapped and still mapped here (for the growth schedule).
    live_arenas: usize,
    /// Slots in use.
    live_slots: usize,
}

/// A slot handed out by a shard.
pub(super) struct Slot {
    pub(super) arena: usize,
    pub(super) index: u32,
    pub(super) ptr: NonNull<u8>,
    pub(super) canary: [u8; CANARY_LEN],
    pub(super) protection: Protection,
    pub(super) sentinel: u64,
}

/// Why a shard could not hand out a slot.
pub(super) enum TakeError {
    Memory(MemoryError),
    /// The arena was wiped by fork: this pool belongs to the parent.
    Inherited,
}

impl Shard {
    pub(super) fn take(
        &mut self,
        class: usize,
        backend: Backend,
        pool: &Pool,
    ) -> Result<Slot, TakeError> {
        // Under the strict policy a slot comes only from an arena with every protection:
        // one made earlier under "warn" whose lock failed is passed over (a new arena is
        // made, and its failure raises).
        let strict = lock_failure_policy() == LockFailurePolicy::Raise;
        let usable = |id: &usize| {
            !strict
                || self.arenas[*id]
                    .as_ref()
                    .is_some_and(|a| a.meets_strict(backend))
        };
        let id = match self.partial.iter().rev().find(|id| usable(id)) {
            Some(&id) => id,
            None => self
                .add_arena(class, backend, pool)
                .map_err(TakeError::Memory)?,
        };
        let Some(arena) = self.arenas[id].as_mut() else {
            unreachable!("partial arenas exist")
        };
        if arena.sentinel != 0 && arena.sentinel != sentinel_token().unwrap_or(0) {
            return Err(TakeError::Inherited);
        }
        arena.check_marker().map_err(|()| TakeError::Inherited)?;
        let was_empty = arena.free.len() == arena.nslots;
        let Some(index) = arena.free.pop() else {
            unreachable!("partial arenas have a free slot")
        };
        let slot = Slot {
            arena: id,
            index,
            ptr: arena.slot_ptr(index),
            canary: arena.canary,
            protection: arena.protection,
            sentinel: arena.sentinel,
        };
        let now_full = arena.free.is_empty();
        self.live_slots += 1;
        if was_empty {
            self.empty -= 1;
        }
        if now_full {
            self.remove_partial(id);
        }
        Ok(slot)
    }

    fn add_arena(
        &mut self,
        class: usize,
        backend: Backend,
        pool: &Pool,
    ) -> Result<usize, MemoryError> {
        let pages = MAX_ARENA_PAGES.min(1 << self.live_arenas.min(4));
        let policy = lock_failure_policy();
        let arena = match Arena::new(SLOT_CLASSES[class], pages, policy, backend) {
            // Under "warn", an arena the lock budget cannot hold as memfd_secret memory is
            // made of anonymous memory instead: its slots report backend "guarded-mmap"
            // and, if it cannot be locked either, locked=False.
            Err(MemoryError::LockFailed { .. })
                if backend == Backend::MemfdSecret && policy == LockFailurePolicy::Warn =>
            {
                Arena::new(SLOT_CLASSES[class], pages, policy, Backend::Mmap)?
            }
            other => other?,
        };
        pool.arenas.fetch_add(1, Ordering::Relaxed);
        pool.mapped_bytes
            .fetch_add(arena.data_len, Ordering::Relaxed);
        if arena.protection.locked {
            pool.locked_bytes
                .fetch_add(arena.data_len, Ordering::Relaxed);
        }
        self.live_arenas += 1;
        self.empty += 1;
        let id = match self.vacant.pop() {
            Some(id) => {
                self.arenas[id] = Some(arena);
                id
            }
            None => {
                self.arenas.push(Some(arena));
                self.arenas.len() - 1
            }
        };
        self.push_partial(id);
        Ok(id)
    }

    /// Return a slot (already checked and zeroed by the caller).
    pub(super) fn give_back(&mut self, id: usize, index: u32, pool: &Pool) {
        let Some(arena) = self.arenas[id].as_mut() else {
            unreachable!("a live slot's arena is mapped")
        };
        arena.free.push(index);
        self.live_slots -= 1;
        let (n, total) = (arena.free.len(), arena.nslots);
        if n == 1 {
            self.push_partial(id);
        }
        if n == total {
            if self.empty == 0 {
                self.empty = 1;
            } else {
                self.remove_partial(id);
                if let Some(arena) = self.arenas[id].take() {
                    pool.arenas.fetch_sub(1, Ordering::Relaxed);
                    pool.mapped_bytes
                        .fetch_sub(arena.data_len, Ordering::Relaxed);
                    if arena.protection.locked {
                        pool.locked_bytes
                            .fetch_sub(arena.data_len, Ordering::Relaxed);
                    }
                }
                self.vacant.push(id);
                self.live_arenas -= 1;
            }
        }
    }

    fn push_partial(&mut self, id: usize) {
        if let Some(arena) = self.arenas[id].as_mut() {
            arena.partial_pos = Some(self.partial.len());
            self.partial.push(id);
        }
    }

    fn remove_partial(&mut self, id: usize) {
        let Some(pos) = self.arenas[id].as_mut().and_then(|a| a.partial_pos.take()) else {
            return;
        };
        self.partial.swap_remove(pos);
        if let Some(&moved) = self.partial.get(pos) {
            if let Some(a) = self.arenas[moved].as_mut() {
                a.partial_pos = Some(pos);
            }
        }
    }
}

/// A shard's mutex on a cache line of its own (no false sharing between shards).
#[repr(align(128))]
#[derive(Default)]
struct PaddedShard(Mutex<Shard>);

/// All shards of one process. A fork child starts a new one (the parent's is leaked in
/// the child: its locks may be held by threads that do not exist there). The counters
/// change only when arenas are mapped or unmapped; live slots are counted per shard.
pub(super) struct Pool {
    generation: u64,
    /// By backend ([`backend_index`]), size class and shard.
    shards: [[[PaddedShard; SHARDS]; SLOT_CLASSES.len()]; 2],
    arenas: AtomicUsize,
    locked_bytes: AtomicUsize,
    mapped_bytes: AtomicUsize,
}

impl Pool {
    fn new(generation: u64) -> Self {
        Pool {
            generation,
            shards: std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| PaddedShard::default()))
            }),
            arenas: AtomicUsize::new(0),
            locked_bytes: AtomicUsize::new(0),
            mapped_bytes: AtomicUsize::new(0),
        }
    }

    pub(super) fn shard(
        &self,
        backend: Backend,
        class: usize,
        shard: usize,
    ) -> MutexGuard<'_, Shard> {
        self.shards[backend_index(backend)][class][shard]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn backend_index(backend: Backend) -> usize {
    match backend {
        Backend::Mmap => 0,
        Backend::MemfdSecret => 1,
    }
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(std::ptr::null_mut());

/// The pool of this process, made on first use and again in a fork child.
pub(super) fn pool() -> &'static Pool {
    let current = POOL.load(Ordering::Acquire);
    // SAFETY: POOL only ever holds null or a pointer from Box::into_raw that is never
    // freed, so it is valid for 'static.
    if let Some(p) = unsafe { current.as_ref() } {
        if p.generation == fork_generation() {
            return p;
        }
    }
    replace_pool(current)
}

/// Install a new pool in place of `old` (a pool inherited from the parent process).
#[cold]
pub(super) fn replace_pool(old: *mut Pool) -> &'static Pool {
    let new = Box::into_raw(Box::new(Pool::new(fork_generation())));
    match POOL.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `new` came from Box::into_raw just now and is never freed.
        Ok(_) => unsafe { &*new },
        Err(current) => {
            // SAFETY: `new` was never published; we still own it.
            drop(unsafe { Box::from_raw(new) });
            // SAFETY: as in `pool`: published pools are never freed.
            match unsafe { current.as_ref() } {
                Some(p) => p,
                None => replace_pool(current),
            }
        }
    }
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's shard (assigned round robin on first use).
pub(super) fn my_shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        s.set(v);
        v
    })
}

/// Statistics of the current pool.
pub(super) fn stats() -> PoolStats {
    let p = pool();
    PoolStats {
        arenas: p.arenas.load(Ordering::Relaxed),
        live_slots: p
            .shards
            .iter()
            .flatten()
            .flatten()
            .map(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).live_slots)
            .sum(),
        locked_bytes: p.locked_bytes.load(Ordering::Relaxed),
        mapped_bytes: p.mapped_bytes.load(Ordering::Relaxed),
    }
}
