//! The secret heap: while a thread runs inside [`scope`], every Rust heap allocation it
//! makes is served from one guarded, locked, dump-excluded, wipe-on-fork reservation
//! instead of the system allocator, and every block is wiped when it is freed.
//!
//! Some dependencies keep secrets in heap memory they allocate themselves: RSA key pairs
//! keep `p`, `q`, `dP`, `dQ`, `qInv` and their Montgomery forms in boxed limbs, bignum
//! crates allocate every intermediate. Those allocations cannot be pointed at a
//! [`super::Region`]. So the crate's `#[global_allocator]` is [`ScopedHeap`], a thin
//! wrapper over the system allocator that asks one question per allocation: is this
//! thread inside a scope (one thread-local read)? Frees and reallocations are routed by
//! address (one range check), because a block outlives its scope: a key pair built in a
//! scope is dropped much later, maybe on another thread. This is what OpenSSL's secure
//! heap (`CRYPTO_secure_malloc`) does for `BIGNUM`s.
//!
//! # Layout
//!
//! ```text
//! | guard page | committed chunks: blocks of 16 B .. 1 MiB ...      | reserved, PROT_NONE |
//!   PROT_NONE    RW, mlock, MADV_DONTDUMP + MADV_WIPEONFORK (whole reservation)
//! ```
//!
//! One reservation of [`RESERVE`] bytes of address space (`PROT_NONE`, no swap reserved)
//! is made on first use; chunks of [`CHUNK`] bytes are made writable and locked as the
//! heap grows. Blocks are power-of-two size classes from 16 bytes to [`MAX_BLOCK`], cut
//! from a bump pointer and kept on per-class free lists once freed. A freed block is wiped
//! (volatile) before it goes on its list, so every block handed out is all zeros. There
//! are no per-block canaries: the heap guards the secrets of dependencies against other
//! code's reads (swap, dumps, forks, freed memory), not against their own overflows.
//!
//! # Soundness of a global allocator
//!
//! - It never allocates itself: the state is a static behind a spin lock, the scope depth
//!   a `const`-initialised thread-local `Cell` (no destructor, no lazy allocation), and the
//!   only calls it makes are `mmap`, `mprotect`, `madvise`, `mlock` and `sched_yield`
//!   (and `getpid` where the fork sentinel page is unavailable).
//! - It cannot deadlock: the lock is held for a bounded list operation or a few system
//!   calls, never across a call that could allocate or take another lock.
//! - Fork: the lock word holds a token of the holder's process (the wipe-on-fork sentinel
//!   of `fork.rs`, no system call). A fork child (made with or without atfork handlers)
//!   that finds the lock held by another process's token takes it over
//!   (that holder does not exist in the child), and on its first heap operation retires
//!   everything allocated so far: `MADV_WIPEONFORK` zeroed those pages, frees of blocks
//!   below the retirement mark are ignored (their memory stays zeros), and new blocks come
//!   from chunks above it, locked afresh. A child never reads a parent's secret or free
//!   list.
//! - In `cargo test` and the Python extension module alike, code outside a scope pays one
//!   thread-local read per allocation and one range compare per free.
//!
//! Allocations that cannot be served from the heap while in a scope (the reservation is
//! full, a block above [`MAX_BLOCK`], an alignment above a page, `mmap` or `mprotect`
//! failed) go to the system allocator; a chunk whose `mlock` failed serves blocks that are
//! not locked (its `mlock` is tried again when a later scope is handed a block in it, so
//! the heap recovers once `RLIMIT_MEMLOCK` allows). Either is a [`HeapShortfall`] of the
//! scope in which it happened, and only of that scope: it is kept per thread and per scope,
//! with its real cause. [`scope`] fails with [`MemoryError::SecretHeap`] after such a scope
//! when the lock-failure policy is "raise"; under "warn" it notes a derived-state
//! shortfall (the layer above warns) and [`scope_with_protection`] reports what the
//! scope's blocks got.
//!
//! Long-lived allocations that something makes lazily *inside* a scope (a library's
//! global cache) land in the heap too, and a fork child sees them zeroed; scopes are meant
//! for the few calls that touch secrets, nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::policy::{lock_failure_policy, LockFailurePolicy};
use super::sys::{last_errno, page_size};
use super::{Isolation, MemoryError, Protection};

/// Address space reserved for the heap on first use (256 MiB; only committed chunks cost
/// memory).
pub const RESERVE: usize = 256 << 20;
/// Bytes committed (made writable and locked) at a time.
pub const CHUNK: usize = 64 << 10;
/// The largest block the heap serves (1 MiB).
pub const MAX_BLOCK: usize = 1 << 20;
/// The smallest block (room for the free-list link).
const MIN_BLOCK: usize = 16;
/// Size classes 16 B ..= 1 MiB.
const CLASSES: usize = 17;
/// Words of the bitmap of chunks whose `mlock` failed: one bit per [`CHUNK`]-aligned
/// chunk the reservation touches (it need not start on a chunk boundary).
const UNLOCKED_WORDS: usize = (RESERVE / CHUNK + 1).div_ceil(64);

/// The backend name reported in [`Protection::backend`] for the heap.
pub const BACKEND_NAME: &str = "secret-heap";

thread_local! {
    /// How deeply this thread is nested in [`scope`].
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Whether this thread holds the heap's lock: an allocation it makes then (nothing
    /// under the lock should allocate; this is the safeguard) goes to the system allocator
    /// instead of spinning on the lock it holds.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    /// What the innermost [`scope`] of this thread could not protect so far (`None`: all
    /// of it). Outside a scope it stays `None`.
    static SCOPE_SHORTFALL: Cell<Option<HeapShortfall>> = const { Cell::new(None) };
}

/// Why the heap could not give an allocation made in a scope its full protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapShortfall {
    /// A chunk of `bytes` could not be locked: `mlock` failed with `errno` (its blocks are
    /// still dump-excluded and wiped on fork).
    Unlocked { errno: i32, bytes: usize },
    /// The allocation went to the system allocator: not locked, dump-excluded or wiped on
    /// fork (wiped when freed all the same).
    Spilled(Spill),
}

/// Why an allocation in a scope went to the system allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spill {
    /// The reservation's `mmap` failed with `errno` (no address space: `RLIMIT_AS`).
    Reserve { errno: i32 },
    /// `mprotect` of a new chunk failed with `errno`.
    Commit { errno: i32 },
    /// The reservation ([`RESERVE`] bytes) is full.
    Full,
    /// A block of `size` bytes, above [`MAX_BLOCK`].
    TooLarge { size: usize },
    /// An alignment of `align` bytes, above a page.
    Aligned { align: usize },
    /// An allocation made while this thread held the heap's lock (the safeguard).
    Reentrant,
}

impl HeapShortfall {
    /// The `errno` of the failed system call, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match *self {
            HeapShortfall::Unlocked { errno, .. }
            | HeapShortfall::Spilled(Spill::Reserve { errno } | Spill::Commit { errno }) => {
                Some(errno)
            }
            HeapShortfall::Spilled(_) => None,
        }
    }

    /// The more serious of `self` and `other` (a spill loses more than a failed `mlock`);
    /// the first one of a kind is kept.
    fn or(self, other: HeapShortfall) -> HeapShortfall {
        match (self, other) {
            (HeapShortfall::Unlocked { .. }, HeapShortfall::Spilled(_)) => other,
            _ => self,
        }
    }
}

fn errno_text(f: &mut fmt::Formatter<'_>, call: &str, errno: i32) -> fmt::Result {
    write!(
        f,
        "{call} failed: {}",
        std::io::Error::from_raw_os_error(errno)
    )
}

impl fmt::Display for HeapShortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spill = match *self {
            HeapShortfall::Unlocked { errno, bytes } => {
                write!(
                    f,
                    "the secret heap could not lock a chunk of {bytes} bytes: "
                )?;
                errno_text(f, "mlock", errno)?;
                if errno == libc::ENOMEM || errno == libc::EPERM {
                    f.write_str(" (RLIMIT_MEMLOCK too low? see `keycell doctor`)")?;
                }
                return Ok(());
            }
            HeapShortfall::Spilled(spill) => spill,
        };
        match spill {
            Spill::Reserve { errno } => {
                write!(
                    f,
                    "the secret heap could not reserve its {} MiB of address space: ",
                    RESERVE >> 20
                )?;
                errno_text(f, "mmap", errno)?;
                if errno == libc::ENOMEM {
                    f.write_str(" (an address-space limit, RLIMIT_AS?)")?;
                }
            }
            Spill::Commit { errno } => {
                write!(f, "the secret heap could not make a chunk of {CHUNK} bytes writable: ")?;
                errno_text(f, "mprotect", errno)?;
            }
            Spill::Full => write!(f, "the secret heap's {} MiB reservation is full", RESERVE >> 20)?,
            Spill::TooLarge { size } => write!(
                f,
                "an allocation of {size} bytes is larger than the secret heap's largest block ({} KiB)",
                MAX_BLOCK >> 10
            )?,
            Spill::Aligned { align } => write!(
                f,
                "an allocation aligned to {align} bytes needs more than the page alignment the secret heap serves"
            )?,
            Spill::Reentrant => {
                f.write_str("an allocation was made while the secret heap's lock was held")?
            }
        }
        f.write_str(
            "; it went to the process heap, which is not locked, dump-excluded or wiped on fork",
        )
    }
}

/// Note `s` for this thread's scope; outside a scope (a heap block that grows later) only
/// the layer above's warning can say it.
fn note(s: HeapShortfall) {
    if in_scope() {
        let _ = SCOPE_SHORTFALL.try_with(|c| c.set(Some(c.get().map_or(s, |old| old.or(s)))));
    } else {
        super::DERIVED_SHORTFALL.fetch_or(super::SHORTFALL_PROTECTION, Ordering::AcqRel);
    }
}

/// Whether this thread's scope already has a shortfall.
fn scope_has_shortfall() -> bool {
    SCOPE_SHORTFALL
        .try_with(|c| c.get().is_some())
        .unwrap_or(true)
}

/// Start and end of the reservation (both 0 until it exists); never changes after.
static BASE: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
/// The [`process_token`] of the process whose thread holds [`STATE`], or 0.
static LOCK: AtomicU64 = AtomicU64::new(0);
/// Set for good once any scoped allocation went to the system allocator in this process
/// (or an ancestor): from then on every system block is wiped when freed, wherever and
/// whenever it is freed (a spilled key's limbs are freed at `destroy()`, outside any
/// scope). Until then frees pay one relaxed load.
static EVER_SPILLED: AtomicBool = AtomicBool::new(false);
/// Whether `MADV_DONTDUMP` / `MADV_WIPEONFORK` held for the reservation.
static DONTDUMP: AtomicBool = AtomicBool::new(false);
static WIPEONFORK: AtomicBool = AtomicBool::new(false);

struct State {
    /// The [`process_token`] of the process this state belongs to (0: none yet).
    owner: u64,
    /// Blocks below this address belong to an ancestor process: frees are ignored.
    retired: usize,
    /// Next unused byte.
    bump: usize,
    /// End of the committed (writable) part.
    committed: usize,
    /// Heads of the free lists (0: empty); the link is the first word of a free block.
    free: [usize; CLASSES],
    /// Bytes of blocks handed out and not yet freed (for tests and `stats`).
    live: usize,
    /// Chunks whose `mlock` failed (bit `i`: the `i`-th [`CHUNK`]-aligned chunk from the
    /// one holding the reservation's base), tried again when a scope is handed a block in
    /// one of them.
    unlocked: [u64; UNLOCKED_WORDS],
}

struct Shared(UnsafeCell<State>);
// SAFETY: the state is only reached through `with_state`, which holds `LOCK`.
unsafe impl Sync for Shared {}

static STATE: Shared = Shared(UnsafeCell::new(State {
    owner: 0,
    retired: 0,
    bump: 0,
    committed: 0,
    free: [0; CLASSES],
    live: 0,
    unlocked: [0; UNLOCKED_WORDS],
}));

/// A number that differs between this process and any fork child of it, without a
/// system call: the token of the wipe-on-fork sentinel page (`fork.rs`; a child of any
/// kind finds the page zeroed and arms it anew), or, where that page is unavailable, the
/// process id with the top bit set.
fn process_token() -> u64 {
    match super::fork::sentinel_token() {
        Ok(token) => token,
        // SAFETY: getpid has no preconditions and cannot fail.
        Err(_) => (unsafe { libc::getpid() } as u64) | (1 << 63),
    }
}

/// Run `f` on the heap state under the lock (see the module docs for the fork rules).
fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let me = process_token();
    let mut spins = 0u32;
    loop {
        match LOCK.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => break,
            Err(holder) if holder != 0 && holder != me => {
                // Held by a process that is not this one: we are its fork child, and the
                // holding thread does not exist here.
                if LOCK
                    .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break;
                }
            }
            Err(_) => {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }
    // SAFETY: LOCK is held by this thread, so no other reference to the state exists.
    let state = unsafe { &mut *STATE.0.get() };
    let _ = HOLDING.try_with(|h| h.set(true));
    if state.owner != me {
        state.adopt(me);
    }
    let out = f(state);
    let _ = HOLDING.try_with(|h| h.set(false));
    LOCK.store(0, Ordering::Release);
    out
}

impl State {
    /// Take the heap over for process `me`: a fresh process, or a fork child whose
    /// inherited blocks were zeroed by `MADV_WIPEONFORK` and are retired.
    fn adopt(&mut self, me: u64) {
        let fresh = self.owner == 0;
        self.owner = me;
        self.free = [0; CLASSES];
        self.live = 0;
        // Locks are not inherited; the parent's chunks are retired below.
        self.unlocked = [0; UNLOCKED_WORDS];
        if fresh {
            return;
        }
        // Everything up to the committed end belongs to the parent. Its pages are zeros
        // here (and not locked: locks are not inherited); give them back to the kernel.
        // New chunks start above, so no address of the parent's is ever handed out again.
        let base = BASE.load(Ordering::Relaxed);
        if self.committed > base {
            // SAFETY: [base, committed) is inside our reservation; nothing in this process
            // reads the retired blocks (frees below `retired` are ignored).
            unsafe {
                libc::madvise(
                    base as *mut libc::c_void,
                    self.committed - base,
                    libc::MADV_DONTNEED,
                );
            }
        }
        self.retired = self.committed;
        self.bump = self.committed;
    }

    /// Reserve the address space (first use in this process lineage; tried again by the
    /// next allocation when it failed).
    fn reserve(&mut self) -> Result<(), Spill> {
        if BASE.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        // Nothing under the heap's lock may allocate (an allocation would come back here):
        // the bare errno, not a `MemoryError`.
        let base = super::sys::reserve_errno(RESERVE).map_err(|errno| Spill::Reserve { errno })?;
        let base = base.as_ptr() as usize;
        // SAFETY: the range is the reservation just made.
        let dump =
            unsafe { libc::madvise(base as *mut libc::c_void, RESERVE, libc::MADV_DONTDUMP) };
        // SAFETY: as above.
        let wipe =
            unsafe { libc::madvise(base as *mut libc::c_void, RESERVE, libc::MADV_WIPEONFORK) };
        DONTDUMP.store(dump == 0, Ordering::Relaxed);
        WIPEONFORK.store(wipe == 0, Ordering::Relaxed);
        // The first page stays PROT_NONE: a guard in front of the first block.
        let first = base + page_size();
        self.retired = first;
        self.bump = first;
        self.committed = first;
        END.store(base + RESERVE, Ordering::Relaxed);
        BASE.store(base, Ordering::Release);
        Ok(())
    }

    /// Make the heap writable and locked up to at least `to`. A failed `mlock` leaves the
    /// new chunks writable but marked unlocked ([`Self::relock`] tries again).
    fn commit(&mut self, to: usize) -> Result<(), Spill> {
        // The last page of the reservation stays PROT_NONE as a trailing guard.
        let limit = END.load(Ordering::Relaxed) - page_size();
        let new_end = to.next_multiple_of(CHUNK).min(limit);
        if to > new_end {
            return Err(Spill::Full);
        }
        let (start, len) = (self.committed, new_end - self.committed);
        // SAFETY: [committed, new_end) lies inside our reservation.
        let rc = unsafe {
            libc::mprotect(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(Spill::Commit {
                errno: last_errno(),
            });
        }
        // SAFETY: as above; the range is now mapped read-write.
        if unsafe { libc::mlock(start as *const libc::c_void, len) } != 0 {
            let errno = last_errno();
            self.mark_unlocked(start, new_end);
            note(HeapShortfall::Unlocked { errno, bytes: len });
        }
        self.committed = new_end;
        Ok(())
    }

    /// Bit index in [`State::unlocked`] of the chunk holding `addr`.
    fn chunk_index(addr: usize) -> usize {
        addr / CHUNK - BASE.load(Ordering::Relaxed) / CHUNK
    }

    /// Mark the chunks of `[start, end)` (committed just now) as not locked.
    fn mark_unlocked(&mut self, start: usize, end: usize) {
        for i in Self::chunk_index(start)..=Self::chunk_index(end - 1) {
            self.unlocked[i / 64] |= 1 << (i % 64);
        }
    }

    /// Before a block `[start, end)` is handed to a scope: lock the chunks under it whose
    /// `mlock` failed before, if the limit allows it now, else note the shortfall (once a
    /// scope has one, it is not tried again in that scope).
    fn relock(&mut self, start: usize, end: usize) {
        for i in Self::chunk_index(start)..=Self::chunk_index(end - 1) {
            if self.unlocked[i / 64] & (1 << (i % 64)) == 0 {
                continue;
            }
            if scope_has_shortfall() {
                // This scope already has a shortfall at least as serious; a retry of the
                // `mlock` would fail as the last one did.
                return;
            }
            let base = BASE.load(Ordering::Relaxed);
            let lo = (base / CHUNK + i) * CHUNK;
            let (lo, hi) = (lo.max(base + page_size()), (lo + CHUNK).min(self.committed));
            // SAFETY: [lo, hi) is committed (read-write) memory of the reservation.
            if unsafe { libc::mlock(lo as *const libc::c_void, hi - lo) } == 0 {
                self.unlocked[i / 64] &= !(1 << (i % 64));
            } else {
                note(HeapShortfall::Unlocked {
                    errno: last_errno(),
                    bytes: hi - lo,
                });
                return;
            }
        }
    }

    /// A zeroed block of class `class`, or why the heap cannot serve it.
    fn alloc(&mut self, class: usize) -> Result<*mut u8, Spill> {
        let size = MIN_BLOCK << class;
        let head = self.free[class];
        let start = if head != 0 {
            let block = head as *mut usize;
            // SAFETY: `head` is a free block of this class in committed memory, its first
            // word the link written by `free`; the link is cleared so the block is zeros.
            unsafe {
                self.free[class] = block.read();
                block.write(0);
            }
            head
        } else {
            self.reserve()?;
            let start = self.bump.next_multiple_of(size.min(page_size()));
            let end = start.checked_add(size).ok_or(Spill::Full)?;
            if end > self.committed {
                self.commit(end)?;
            }
            self.bump = end;
            start
        };
        self.relock(start, start + size);
        self.live += size;
        Ok(start as *mut u8)
    }

    /// Wipe the first `len` bytes of `ptr` (a block of class `class`) and put it on its
    /// free list; a block of an ancestor process is left alone.
    fn free(&mut self, ptr: *mut u8, len: usize, class: usize) {
        if (ptr as usize) < self.retired {
            return;
        }
        // SAFETY: `ptr` is a live block of at least `len` bytes in committed memory that
        // its owner just gave up; memzero is a volatile write.
        unsafe { memsec::memzero(ptr, len) };
        // SAFETY: blocks are at least 16 bytes and aligned to 16, so the link fits.
        unsafe { (ptr as *mut usize).write(self.free[class]) };
        self.free[class] = ptr as usize;
        self.live -= MIN_BLOCK << class;
    }
}

/// The size class of `layout`, or why the heap does not serve it.
fn class_of(layout: Layout) -> Result<usize, Spill> {
    if layout.align() > page_size() {
        return Err(Spill::Aligned {
            align: layout.align(),
        });
    }
    let size = layout.size().max(layout.align()).max(MIN_BLOCK);
    if size > MAX_BLOCK {
        return Err(Spill::TooLarge {
            size: layout.size(),
        });
    }
    Ok((size.next_power_of_two().trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize)
}

/// Whether `ptr` lies in the heap's reservation.
#[inline]
fn in_heap(ptr: *mut u8) -> bool {
    let p = ptr as usize;
    p >= BASE.load(Ordering::Relaxed) && p < END.load(Ordering::Relaxed)
}

/// Whether this thread is inside a [`scope`].
#[inline]
fn in_scope() -> bool {
    DEPTH.try_with(|d| d.get() != 0).unwrap_or(false)
}

/// A block for `layout` from the heap, or from the system allocator (noted as a
/// shortfall of the scope, with its cause) when the heap cannot serve it.
fn heap_alloc(layout: Layout) -> *mut u8 {
    let holding = HOLDING.try_with(Cell::get).unwrap_or(false);
    let spill = if holding {
        Spill::Reentrant
    } else {
        match class_of(layout).and_then(|c| with_state(|s| s.alloc(c))) {
            Ok(ptr) => return ptr,
            Err(spill) => spill,
        }
    };
    EVER_SPILLED.store(true, Ordering::Relaxed);
    note(HeapShortfall::Spilled(spill));
    // SAFETY: `layout` has a non-zero size (GlobalAlloc's contract).
    unsafe { System.alloc_zeroed(layout) }
}

/// The crate's global allocator: the system allocator, except inside a [`scope`] (see the
/// module docs).
pub struct ScopedHeap;

// SAFETY: every block handed out is either the system allocator's (and returned to it) or
// a heap block of at least `layout.size()` bytes aligned to `layout.align()` (size classes
// are powers of two at least as large as the alignment, cut at multiples of their size or
// of a page), owned by the caller until freed; frees are routed by the address range the
// block came from.
unsafe impl GlobalAlloc for ScopedHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_scope() {
            return heap_alloc(layout);
        }
        // SAFETY: forwarded with the caller's contract.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if in_scope() {
            // Heap blocks are handed out zeroed.
            return heap_alloc(layout);
        }
        // SAFETY: forwarded with the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_heap(ptr) {
            // A heap pointer always has a class: it was allocated with this layout.
            if let Ok(class) = class_of(layout) {
                with_state(|s| s.free(ptr, layout.size(), class));
            }
            return;
        }
        if in_scope() || EVER_SPILLED.load(Ordering::Relaxed) {
            // Possibly a fallback block holding secrets: wipe it before it is reused.
            // SAFETY: the caller owns `layout.size()` bytes at `ptr`.
            unsafe { memsec::memzero(ptr, layout.size()) };
        }
        // SAFETY: forwarded with the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let heap = in_heap(ptr);
        if !heap && !in_scope() {
            // SAFETY: forwarded with the caller's contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A heap block stays in the heap wherever it grows; a system block that grows
        // inside a scope moves into it (and the old copy is wiped on the way out).
        // SAFETY: the caller guarantees `new_size` is valid for `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = heap_alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            if !heap {
                // SAFETY: the caller owns `layout.size()` bytes at `ptr`.
                unsafe { memsec::memzero(ptr, layout.size()) };
            }
            // SAFETY: `ptr` was allocated by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// Ends a scope, also by unwinding: restores the depth, and hands the scope's shortfall
/// on to the enclosing scope (what an inner scope could not protect, the outer one did not
/// get either).
struct ScopeGuard {
    outer: Option<HeapShortfall>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let depth = DEPTH.with(|d| {
            d.set(d.get() - 1);
            d.get()
        });
        SCOPE_SHORTFALL.with(|c| {
            let merged = match (self.outer, c.get()) {
                (Some(outer), Some(inner)) => Some(outer.or(inner)),
                (outer, inner) => outer.or(inner),
            };
            c.set(if depth == 0 { None } else { merged });
        });
    }
}

/// Run `f` with every Rust heap allocation this thread makes served from the secret heap.
/// The blocks outlive the scope; whoever drops them later (any thread) frees them into
/// the heap, wiped. Scopes nest.
///
/// Under the "raise" lock-failure policy, fails with [`MemoryError::SecretHeap`] (and
/// drops `f`'s result, which frees its blocks) when the heap could not lock or hold what
/// this scope allocated; the error names the cause. Only this scope fails: the next one
/// starts afresh (a chunk that could not be locked is tried again). Under "warn" a
/// shortfall is noted for the layer above to warn about, and the result is returned.
pub fn scope<T>(f: impl FnOnce() -> T) -> Result<T, MemoryError> {
    scope_with_protection(f).map(|(out, _)| out)
}

/// [`scope`], with the protection the blocks allocated in the scope got (what a key that
/// keeps them reports).
pub fn scope_with_protection<T>(f: impl FnOnce() -> T) -> Result<(T, Protection), MemoryError> {
    let outer = SCOPE_SHORTFALL.with(|c| c.replace(None));
    DEPTH.with(|d| d.set(d.get() + 1));
    let guard = ScopeGuard { outer };
    let out = f();
    let shortfall = SCOPE_SHORTFALL.with(Cell::get);
    if let Some(shortfall) = shortfall {
        if lock_failure_policy() == LockFailurePolicy::Raise {
            // Dropped inside the scope: its blocks are freed (and wiped) as scoped ones.
            drop(out);
            drop(guard);
            return Err(MemoryError::SecretHeap(shortfall));
        }
        // The layer above warns after the key's use, as for other state derived from a
        // key that got less protection than the key (one atomic OR).
        super::DERIVED_SHORTFALL.fetch_or(super::SHORTFALL_PROTECTION, Ordering::AcqRel);
    }
    drop(guard);
    Ok((out, protection_of(shortfall)))
}

/// The protection of blocks allocated with `shortfall`: locked unless a chunk could not be
/// locked; dump-excluded and wiped on fork as the reservation's `madvise` calls said; a
/// guard page before the first block and `PROT_NONE` address space after the committed
/// part, no canaries; writable (pooled). Blocks that went to the system allocator have
/// none of it.
fn protection_of(shortfall: Option<HeapShortfall>) -> Protection {
    let reserved = BASE.load(Ordering::Acquire) != 0;
    let in_heap = reserved && !matches!(shortfall, Some(HeapShortfall::Spilled(_)));
    Protection {
        locked: in_heap && shortfall.is_none(),
        dontdump: in_heap && DONTDUMP.load(Ordering::Relaxed),
        wipeonfork: in_heap && WIPEONFORK.load(Ordering::Relaxed),
        guard_pages: in_heap,
        read_only_idle: false,
        isolation: Isolation::Pool,
        backend: BACKEND_NAME,
    }
}

/// Bytes of heap blocks in use in this process (diagnostics).
pub fn stats() -> usize {
    with_state(|s| s.live)
}

/// Whether `addr` lies in the heap's reservation (tests, diagnostics).
pub fn contains(addr: *const u8) -> bool {
    in_heap(addr as *mut u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heap is process-wide and other tests allocate in scopes concurrently, so these
    /// tests check addresses and contents, never global counters.
    #[test]
    #[allow(clippy::useless_vec)] // the heap allocations are the point
    fn scoped_allocations_are_in_the_heap_and_others_are_not() {
        let outside = vec![1u8; 100];
        assert!(!contains(outside.as_ptr()));
        let inside = scope(|| vec![2u8; 100]).expect("scope");
        assert!(contains(inside.as_ptr()));
        assert!(inside.iter().all(|&b| b == 2));
        let big = scope(|| vec![3u64; 100_000]).expect("scope");
        assert!(contains(big.as_ptr().cast()));
        let nested = scope(|| scope(|| Box::new(7u32)).expect("inner")).expect("outer");
        assert!(contains(std::ptr::from_ref(&*nested).cast()));
        // After the scope, allocations go to the system allocator again.
        let after = vec![4u8; 100];
        assert!(!contains(after.as_ptr()));
    }

    #[test]
    fn freed_blocks_are_wiped() {
        let v = scope(|| vec![0xa5u8; 4000]).expect("scope");
        let addr = v.as_ptr() as usize;
        drop(v);
        // Read the freed block back: everything but the free-list link is zero.
        // SAFETY: test only: the block lies in committed heap memory, which stays mapped
        // read-write for the life of the process; nothing else writes it while it is free
        // except the heap, under its lock (a racing allocation would only write zeros or a
        // link word).
        let bytes = unsafe { std::slice::from_raw_parts((addr + 8) as *const u8, 4000 - 8) };
        assert!(bytes.iter().all(|&b| b != 0xa5));
    }

    #[test]
    fn frees_on_another_thread_and_after_the_scope() {
        let blocks: Vec<Box<[u8; 64]>> =
            scope(|| (0..100).map(|i| Box::new([i as u8; 64])).collect()).expect("scope");
        assert!(blocks.iter().all(|b| contains(b.as_ptr())));
        assert!(contains(blocks.as_ptr().cast()));
        std::thread::spawn(move || {
            for (i, b) in blocks.iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8));
            }
            drop(blocks);
        })
        .join()
        .expect("thread");
        // Another thread's scope: its blocks come back to this thread and are freed here.
        let b = std::thread::spawn(|| scope(|| vec![9u8; 300]).expect("scope"))
            .join()
            .expect("thread");
        assert!(contains(b.as_ptr()));
        drop(b);
    }

    #[test]
    fn realloc_across_the_boundary() {
        // A system block grown inside a scope moves into the heap, contents kept.
        let mut v: Vec<u8> = (0..50u8).collect();
        assert!(!contains(v.as_ptr()));
        let v = scope(move || {
            v.extend(50..200u8);
            v
        })
        .expect("scope");
        assert!(contains(v.as_ptr()));
        assert_eq!(v, (0..200u8).collect::<Vec<_>>());
        // A heap block grown or shrunk outside a scope stays in the heap.
        let mut v = v;
        v.extend(std::iter::repeat_n(1u8, 5000));
        assert!(contains(v.as_ptr()));
        v.truncate(10);
        v.shrink_to_fit();
        assert!(contains(v.as_ptr()));
        assert_eq!(v, (0..10u8).collect::<Vec<_>>());
    }

    #[test]
    fn the_heap_grows_and_reuses_freed_blocks() {
        // More than one chunk of live blocks at once: the heap commits more.
        let many: Vec<Vec<u8>> =
            scope(|| (0..64).map(|_| vec![1u8; 8 * 1024]).collect()).expect("scope");
        assert!(many.iter().all(|v| contains(v.as_ptr())));
        let span = many.iter().map(|v| v.as_ptr() as usize).max().unwrap_or(0)
            - many.iter().map(|v| v.as_ptr() as usize).min().unwrap_or(0);
        assert!(span >= CHUNK, "{span}");
        drop(many);
    }

    /// Run `check` in a forked child (the heap's flags are process-wide: a test that
    /// changes them must not race the other tests of this process) and assert it passed.
    fn in_child(check: fn() -> bool) {
        // SAFETY: fork in a test: the child runs `check` (heap operations and atomics) and
        // leaves with _exit, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = check();
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child's checks failed");
    }

    #[test]
    fn what_the_heap_cannot_serve_goes_to_the_system_allocator_and_is_reported() {
        in_child(|| {
            let Ok((small, before)) = scope_with_protection(|| vec![1u8; 64]) else {
                return false;
            };
            // Blocks above the largest class are not served by the heap: they come from
            // the system allocator, and the scope reports it (and notes a shortfall for
            // the layer above to warn about).
            let Ok((big, after)) = scope_with_protection(|| vec![0u8; MAX_BLOCK + 1]) else {
                return false;
            };
            before.locked
                && before.dontdump
                && contains(small.as_ptr())
                && !contains(big.as_ptr())
                && !after.locked
                && !after.dontdump
                && !after.wipeonfork
                && super::super::take_derived_shortfall() & super::super::SHORTFALL_PROTECTION != 0
        });
    }

    /// RSA review: the shortfall was one process-wide flag, set for good, and reported as
    /// `mlock of 65536 bytes failed: ENOMEM (RLIMIT_MEMLOCK too low?)` whatever happened.
    /// Now it is the scope's own, with its cause; the next scope starts afresh.
    #[test]
    fn a_shortfall_fails_its_own_scope_only_and_names_its_cause() {
        in_child(|| {
            super::super::set_lock_failure_policy(LockFailurePolicy::Raise);
            let err = scope(|| vec![0u8; MAX_BLOCK + 1]).err();
            let want = MemoryError::SecretHeap(HeapShortfall::Spilled(Spill::TooLarge {
                size: MAX_BLOCK + 1,
            }));
            let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
            // Nested: the inner scope's shortfall fails the outer one too.
            let outer = scope(|| scope(|| vec![0u8; MAX_BLOCK + 1]).is_err()).err();
            // Afterwards, and on another thread meanwhile, scopes succeed.
            let other = std::thread::spawn(|| scope(|| vec![1u8; 64]).is_ok())
                .join()
                .unwrap_or(false);
            let after = scope_with_protection(|| vec![2u8; 64]);
            err == Some(want.clone())
                && err.as_ref().and_then(MemoryError::errno).is_none()
                && message.contains("larger than the secret heap's largest block (1024 KiB)")
                && message.contains("went to the process heap")
                && !message.contains("RLIMIT_MEMLOCK")
                && outer == Some(want)
                && other
                && after.is_ok_and(|(v, p)| contains(v.as_ptr()) && p.locked && p.dontdump)
        });
    }

    /// A chunk whose `mlock` failed is tried again when a later scope is handed a block in
    /// it: the heap recovers once the limit allows it (root's `mlock` succeeds here; the
    /// failure side runs as `nobody` in tests/memory/test_secret_heap.py).
    #[test]
    fn an_unlocked_chunk_is_locked_again_when_it_can_be() {
        in_child(|| {
            super::super::set_lock_failure_policy(LockFailurePolicy::Raise);
            let block = scope(|| vec![1u8; 64]).unwrap_or_default();
            let addr = block.as_ptr() as usize;
            drop(block);
            with_state(|s| s.mark_unlocked(addr, addr + 64));
            let marked = with_state(|s| s.unlocked.iter().any(|&w| w != 0));
            // The freed block is handed out again: its chunk is locked before it is.
            let again = scope_with_protection(|| vec![2u8; 64]);
            let reused = again
                .as_ref()
                .is_ok_and(|(v, p)| v.as_ptr() as usize == addr && p.locked);
            marked && reused && with_state(|s| s.unlocked.iter().all(|&w| w == 0))
        });
    }

    #[test]
    fn shortfall_messages_name_the_cause() {
        let text = |s: HeapShortfall| s.to_string();
        let m = text(HeapShortfall::Unlocked {
            errno: libc::ENOMEM,
            bytes: CHUNK,
        });
        assert!(
            m.starts_with(
                "the secret heap could not lock a chunk of 65536 bytes: mlock failed: Cannot \
                 allocate memory"
            ),
            "{m}"
        );
        assert!(m.contains("RLIMIT_MEMLOCK"), "{m}");
        let m = text(HeapShortfall::Unlocked {
            errno: libc::EAGAIN,
            bytes: 4096,
        });
        assert!(!m.contains("RLIMIT_MEMLOCK"), "{m}");
        let m = text(HeapShortfall::Spilled(Spill::Reserve {
            errno: libc::ENOMEM,
        }));
        assert!(
            m.starts_with(
                "the secret heap could not reserve its 256 MiB of address space: mmap failed: \
                 Cannot allocate memory"
            ),
            "{m}"
        );
        assert!(m.contains("(an address-space limit, RLIMIT_AS?)"), "{m}");
        assert!(!m.contains("RLIMIT_MEMLOCK"), "{m}");
        let m = text(HeapShortfall::Spilled(Spill::Commit {
            errno: libc::EACCES,
        }));
        assert!(m.contains("mprotect failed: Permission denied"), "{m}");
        assert!(text(HeapShortfall::Spilled(Spill::Full)).contains("reservation is full"));
        assert!(text(HeapShortfall::Spilled(Spill::Aligned { align: 8192 }))
            .contains("aligned to 8192 bytes"));
        assert!(text(HeapShortfall::Spilled(Spill::Reentrant)).contains("lock was held"));
        // A spill outranks a failed mlock; the first of a kind is kept.
        let unlocked = HeapShortfall::Unlocked { errno: 1, bytes: 1 };
        let spilled = HeapShortfall::Spilled(Spill::Full);
        assert_eq!(unlocked.or(spilled), spilled);
        assert_eq!(spilled.or(unlocked), spilled);
        assert_eq!(
            unlocked.or(HeapShortfall::Unlocked { errno: 2, bytes: 2 }),
            unlocked
        );
    }

    #[test]
    fn size_classes() {
        let l = |s, a| Layout::from_size_align(s, a).expect("layout");
        assert_eq!(class_of(l(1, 1)), Ok(0));
        assert_eq!(class_of(l(16, 8)), Ok(0));
        assert_eq!(class_of(l(17, 8)), Ok(1));
        assert_eq!(class_of(l(8, 64)), Ok(2));
        assert_eq!(class_of(l(MAX_BLOCK, 8)), Ok(CLASSES - 1));
        assert_eq!(
            class_of(l(MAX_BLOCK + 1, 8)),
            Err(Spill::TooLarge {
                size: MAX_BLOCK + 1
            })
        );
        assert_eq!(
            class_of(l(8, 2 * page_size())),
            Err(Spill::Aligned {
                align: 2 * page_size()
            })
        );
    }

    #[test]
    fn a_fork_child_retires_the_parents_blocks() {
        let parent_block = scope(|| vec![0x5au8; 256]).expect("scope");
        let addr = parent_block.as_ptr() as usize;
        // SAFETY: fork in a test: the child only allocates through the heap (which the
        // child handles as described in the module docs), checks memory and exits with
        // _exit, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // The parent's block reads as zeros here (MADV_WIPEONFORK, then DONTNEED).
            let zeroed = parent_block.iter().all(|&b| b == 0);
            // Freeing it is ignored; a new block never reuses its address.
            drop(parent_block);
            let fresh = scope(|| vec![1u8; 256]).unwrap_or_default();
            let ok = zeroed
                && contains(fresh.as_ptr())
                && fresh.as_ptr() as usize != addr
                && fresh.iter().all(|&b| b == 1);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child's checks failed");
        assert!(parent_block.iter().all(|&b| b == 0x5a));
    }
}
