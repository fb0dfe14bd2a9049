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

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::policy::{backend_policy, lock_failure_policy, Backend, LockFailurePolicy};
use super::sys::{fork_generation, last_errno, page_size};
use super::{Allocator, Isolation, MemoryError, Protection, Region, MAX_PARTS};

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
const MAX_ARENA_PAGES: usize = 16;

/// Bytes at the start of an arena that hold its canary (the fork marker).
const MARKER_LEN: usize = 16;

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

// ---------------------------------------------------------------------------------------
// Arenas

/// One guarded mapping of slots of one size.
struct Arena {
    /// Start of the mapping (leading guard page).
    base: NonNull<u8>,
    map_len: usize,
    /// Start of the data pages (the marker).
    data: NonNull<u8>,
    data_len: usize,
    slot_size: usize,
    nslots: usize,
    canary: [u8; CANARY_LEN],
    protection: Protection,
    /// For a `memfd_secret` arena: the fork sentinel's value when it was mapped (a raw
    /// fork child does not have the arena mapped at all, so it must never touch it); 0 for
    /// anonymous arenas, whose wiped marker tells the same.
    sentinel: u64,
    /// Indices of free slots (a stack).
    free: Vec<u32>,
    /// Position in the shard's `partial` list, when the arena has free slots.
    partial_pos: Option<usize>,
}

// SAFETY: an arena exclusively owns its mapping; it is only reached through the mutex of
// the shard that owns it, so moving it between threads is sound.
unsafe impl Send for Arena {}

impl Arena {
    /// Map, guard, advise and lock a new arena of `pages` data pages for slots of
    /// `slot_size` bytes, backed by `backend`, and write its marker. Every result is
    /// checked; a failed `mlock` or `madvise` follows `policy`.
    fn new(
        slot_size: usize,
        pages: usize,
        policy: LockFailurePolicy,
        backend: Backend,
    ) -> Result<Self, MemoryError> {
        let page = page_size();
        let data_len = pages * page;
        let map_len = data_len + 2 * page;
        let mut canary = [0u8; CANARY_LEN];
        getrandom::fill(&mut canary).map_err(|e| MemoryError::Random {
            code: e.raw_os_error().map_or(0, |v| v as u32),
        })?;
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
            return Err(MemoryError::system_call("mmap", last_errno()));
        }
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| MemoryError::system_call("mmap", 0))?;
        // SAFETY: one page < map_len, so the offset stays inside the mapping.
        let data = unsafe { base.add(page) };
        let nslots = (data_len - MARKER_LEN) / slot_size;
        // From here on `Drop` unmaps the mapping on every early return.
        let mut arena = Arena {
            base,
            map_len,
            data,
            data_len,
            slot_size,
            nslots,
            canary,
            protection: Protection {
                locked: false,
                dontdump: false,
                wipeonfork: false,
                guard_pages: false,
                read_only_idle: false,
                isolation: Isolation::Pool,
                backend: BACKEND_NAME,
            },
            sentinel: 0,
            free: (0..nslots as u32).rev().collect(),
            partial_pos: None,
        };
        match backend {
            Backend::Mmap => arena.open_anonymous(policy)?,
            Backend::MemfdSecret => arena.open_secret(policy)?,
        }
        // SAFETY: the marker is the first MARKER_LEN bytes of the writable data pages.
        unsafe { std::ptr::copy_nonoverlapping(canary.as_ptr(), data.as_ptr(), MARKER_LEN) };
        Ok(arena)
    }

    /// Anonymous data pages: writable, dump-excluded, wiped on fork, locked.
    fn open_anonymous(&mut self, policy: LockFailurePolicy) -> Result<(), MemoryError> {
        // SAFETY: data/data_len are page-aligned and inside our own mapping.
        let rc = unsafe {
            libc::mprotect(
                self.data.as_ptr().cast(),
                self.data_len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(MemoryError::system_call("mprotect", last_errno()));
        }
        self.protection.guard_pages = true;
        self.protection.dontdump = advise(
            self.base.as_ptr(),
            self.map_len,
            libc::MADV_DONTDUMP,
            "MADV_DONTDUMP",
            policy,
        )?;
        self.protection.wipeonfork = advise(
            self.data.as_ptr(),
            self.data_len,
            libc::MADV_WIPEONFORK,
            "MADV_WIPEONFORK",
            policy,
        )?;
        self.lock(policy)
    }

    /// `memfd_secret` data pages mapped over the reserved range (one descriptor, closed
    /// once mapped), left out of fork children (`MADV_DONTFORK`) and of core dumps. The
    /// kernel charges them to `RLIMIT_MEMLOCK`: a failed `mmap` is a lock failure.
    fn open_secret(&mut self, policy: LockFailurePolicy) -> Result<(), MemoryError> {
        let sentinel = fork_sentinel()?;
        // SAFETY: memfd_secret takes one flags argument and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_long) };
        if fd < 0 {
            return Err(MemoryError::system_call("memfd_secret", last_errno()));
        }
        let fd = fd as libc::c_int;
        let mapped = self.map_secret(fd);
        // SAFETY: fd is the descriptor opened above; the mapping keeps the memory alive.
        unsafe { libc::close(fd) };
        mapped?;
        self.protection.backend = "memfd_secret";
        self.protection.guard_pages = true;
        self.protection.dontdump = advise(
            self.base.as_ptr(),
            self.map_len,
            libc::MADV_DONTDUMP,
            "MADV_DONTDUMP",
            policy,
        )?;
        // A child has no copy at all: reported as `wipeonfork` (the child cannot read it).
        self.protection.wipeonfork = advise(
            self.data.as_ptr(),
            self.data_len,
            libc::MADV_DONTFORK,
            "MADV_DONTFORK",
            LockFailurePolicy::Raise,
        )?;
        self.sentinel = sentinel;
        // The kernel maps memfd_secret memory locked (VM_LOCKED, charged to
        // RLIMIT_MEMLOCK); the successful mmap above is the lock (mlock itself is refused
        // on such a mapping).
        self.protection.locked = true;
        Ok(())
    }

    fn map_secret(&mut self, fd: libc::c_int) -> Result<(), MemoryError> {
        // SAFETY: fd is a memfd_secret descriptor we own.
        if unsafe { libc::ftruncate(fd, self.data_len as libc::off_t) } != 0 {
            return Err(MemoryError::system_call("ftruncate", last_errno()));
        }
        // SAFETY: MAP_FIXED over the data pages of our own reserved mapping (between the
        // guard pages); nothing else lives there.
        let p = unsafe {
            libc::mmap(
                self.data.as_ptr().cast(),
                self.data_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let errno = last_errno();
            return Err(if errno == libc::EAGAIN || errno == libc::ENOMEM {
                MemoryError::LockFailed {
                    errno,
                    bytes: self.data_len,
                }
            } else {
                MemoryError::system_call("mmap", errno)
            });
        }
        Ok(())
    }

    /// Lock the data pages (or report that they are not, by policy).
    fn lock(&mut self, policy: LockFailurePolicy) -> Result<(), MemoryError> {
        // SAFETY: data/data_len describe the data pages of our own mapping.
        let rc = unsafe { libc::mlock(self.data.as_ptr().cast(), self.data_len) };
        if rc == 0 {
            self.protection.locked = true;
        } else if policy == LockFailurePolicy::Raise {
            return Err(MemoryError::LockFailed {
                errno: last_errno(),
                bytes: self.data_len,
            });
        }
        Ok(())
    }

    fn slot_ptr(&self, index: u32) -> NonNull<u8> {
        // SAFETY: index < nslots, so the slot lies inside the data pages, after the marker.
        unsafe { self.data.add(MARKER_LEN + index as usize * self.slot_size) }
    }

    /// Whether the marker still holds the arena canary; `Err(())` when it was wiped (this
    /// is a fork child). Anything else is corruption and aborts.
    fn check_marker(&self) -> Result<(), ()> {
        // SAFETY: the marker is MARKER_LEN readable bytes at the start of the data pages.
        let found = unsafe { std::ptr::read(self.data.as_ptr().cast::<[u8; MARKER_LEN]>()) };
        let diff = u128::from_ne_bytes(found) ^ u128::from_ne_bytes(self.canary);
        if std::hint::black_box(diff) == 0 {
            Ok(())
        } else if u128::from_ne_bytes(found) == 0 {
            Err(())
        } else {
            canary_failure()
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // Free slots are zero already (zeroed on free); munmap returns the pages, and the
        // lock goes with the mapping.
        // SAFETY: base/map_len describe the mapping created in `new`, unmapped only here.
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
        debug_assert_eq!(rc, 0, "munmap of our own arena failed");
    }
}

/// The fork sentinel: eight random bytes in a private page with `MADV_WIPEONFORK`, made
/// on first use. Every fork child reads zero there (until it re-arms it): how a child
/// made by the raw `fork` system call (no atfork handlers) knows that `memfd_secret`
/// arenas, which are not mapped in it, are not its own.
static SENTINEL: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());

/// The sentinel's value in this process (arming it on first use, and again in a fork
/// child, where it reads zero).
fn fork_sentinel() -> Result<u64, MemoryError> {
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
fn sentinel_now() -> u64 {
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

fn advise(
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
    match policy {
        LockFailurePolicy::Raise => Err(MemoryError::AdviseFailed {
            advice: name,
            errno: last_errno(),
        }),
        LockFailurePolicy::Warn => Ok(false),
    }
}

// ---------------------------------------------------------------------------------------
// Shards and the pool

/// The arenas of one (size class, shard).
#[derive(Default)]
struct Shard {
    /// Arenas by id; a freed id is reused (`None` until then).
    arenas: Vec<Option<Arena>>,
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
struct Slot {
    arena: usize,
    index: u32,
    ptr: NonNull<u8>,
    canary: [u8; CANARY_LEN],
    protection: Protection,
    sentinel: u64,
}

/// Why a shard could not hand out a slot.
enum TakeError {
    Memory(MemoryError),
    /// The arena was wiped by fork: this pool belongs to the parent.
    Inherited,
}

impl Shard {
    fn take(&mut self, class: usize, backend: Backend, pool: &Pool) -> Result<Slot, TakeError> {
        let id = match self.partial.last() {
            Some(&id) => id,
            None => self
                .add_arena(class, backend, pool)
                .map_err(TakeError::Memory)?,
        };
        let Some(arena) = self.arenas[id].as_mut() else {
            unreachable!("partial arenas exist")
        };
        if arena.sentinel != 0 && arena.sentinel != sentinel_now() {
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
    fn give_back(&mut self, id: usize, index: u32, pool: &Pool) {
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
struct Pool {
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

    fn shard(&self, backend: Backend, class: usize, shard: usize) -> MutexGuard<'_, Shard> {
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
fn pool() -> &'static Pool {
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
fn replace_pool(old: *mut Pool) -> &'static Pool {
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
fn my_shard() -> usize {
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

// ---------------------------------------------------------------------------------------
// Regions

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
        if self.sentinel != 0 && self.sentinel != sentinel_now() {
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

/// A canary was overwritten: memory corruption. Abort, as libsodium does.
#[cold]
fn canary_failure() -> ! {
    eprintln!(
        "keycell: canary mismatch around a pooled secret: memory corruption detected, aborting"
    );
    std::process::abort();
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
        if super::super::sys::probe().memfd_secret.is_err() {
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
