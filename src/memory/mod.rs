//! The secure memory layer: guarded regions for secret bytes.
//!
//! This is the only module of keycell that contains `unsafe` code. It knows nothing of
//! cryptography and nothing of Python: it hands out [`SecretBuf`]s, fixed-size byte
//! buffers that live in memory this module mapped, locked, guarded and will wipe.
//!
//! # Layout of one region (backend [`guarded::GuardedMmap`])
//!
//! ```text
//! | guard page | data pages ... [canary 16][part 0] ... [canary 16][last part] | guard page |
//!   PROT_NONE    mlock, MADV_DONTDUMP, MADV_WIPEONFORK                          PROT_NONE
//!                read-only while idle
//! ```
//!
//! A region has one or more parts (see [`Region`]); the last part, where the layers above
//! keep the secret itself, is right-aligned against the trailing guard page, so a write
//! one byte past its end faults at once. Every part has a canary directly in front of it:
//! a write one byte before any part, or one byte past a part other than the last, lands
//! in a canary. All canaries are checked when the region is freed (a mismatch aborts the
//! process, as libsodium does).
//!
//! # Fork detection
//!
//! Every access checks that this process allocated the region: the fork generation
//! ([`sys::fork_generation`], kept by a `pthread_atfork` handler, which also covers a
//! region whose `MADV_WIPEONFORK` failed) and the canary in front of the last part, in
//! constant time. A child made without atfork handlers (the raw `fork` system call,
//! glibc's `_Fork()`) keeps the generation, but `MADV_WIPEONFORK` zeroed its copy of the
//! pages, canary included; either way the access fails with [`MemoryError::Forked`] and
//! nothing computes with the zeroed bytes.
//!
//! # Why our own mapping and not `memsec::malloc`
//!
//! `memsec` ports libsodium's helpers. We use its volatile `memzero` and constant-time
//! `memeq`, which are sound. We do not use its guarded `malloc`: it sits on the global
//! allocator's conventions and discards the results of `mprotect` and `mlock`, and its
//! `mlock` helper ignores the result of `madvise` and loses `errno`. A security library
//! must report exactly which protection failed, so regions are mapped here with `libc`
//! `mmap` and every system call's result is checked.
//!
//! # Isolation
//!
//! [`Allocator`] is the interface the layers above allocate through. Two implement it:
//! page isolation ([`guarded::GuardedMmap`], the layout above) and the pool
//! ([`pool::Pooled`]: a slot with a canary on both sides in a shared guarded, locked
//! arena; see its module docs). [`default_allocator`] picks one per region by the
//! isolation policy ([`Isolation`]): the thread's override, else the process policy.
//! Under [`Isolation::Auto`] (the default) a region is page-isolated while the data pages
//! of all live page-isolated regions, this one included, stay within [`page_share`] of
//! the lock budget, and pooled after that. A region too large for the pool (a slot of
//! more than [`pool::MAX_SLOT`] bytes) is always page-isolated.
//!
//! Pool arenas are anonymous memory or, under [`Backend::MemfdSecret`], `memfd_secret(2)`
//! memory (one descriptor per arena, closed once mapped; not mapped in fork children).
//!
//! # The secret heap
//!
//! Dependencies that keep secrets in heap memory of their own (RSA limbs) run inside
//! [`secret_heap::scope`]: the crate's global allocator ([`secret_heap::ScopedHeap`])
//! serves that thread's allocations from one guarded, locked reservation and routes frees
//! by address. See its module docs.

#![allow(unsafe_code)]

mod buf;
mod error;
pub mod fork;
pub mod guarded;
mod guarded_value;
mod policy;
pub mod pool;
mod registers;
pub mod secret_heap;
pub mod sys;

use std::sync::atomic::{AtomicU64, Ordering};

pub use buf::SecretBuf;
pub use error::{MapCount, MemoryError};
pub use guarded_value::GuardedValue;
pub use policy::{
    backend_policy, effective_isolation, isolation_policy, lock_failure_policy, scope_used,
    set_backend_policy, set_isolation_policy, set_lock_failure_policy, set_scope_source, Backend,
    Isolation, LockFailurePolicy,
};
pub use registers::clear_vector_registers;

/// What protection a region actually has. Every field is measured from the result of the
/// system call that establishes it, never assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// The data pages are `mlock`ed (not swappable).
    pub locked: bool,
    /// `MADV_DONTDUMP` is set: the pages are left out of core dumps.
    pub dontdump: bool,
    /// `MADV_WIPEONFORK` is set: a forked child sees zeros instead of the data.
    pub wipeonfork: bool,
    /// `PROT_NONE` guard pages sit directly before and after the data pages (for a pooled
    /// region: around its arena, not around each key).
    pub guard_pages: bool,
    /// The memory is read-only while no write is in progress (page isolation). Pool
    /// arenas stay read-write.
    pub read_only_idle: bool,
    /// [`Isolation::Page`] or [`Isolation::Pool`]: how the region was allocated.
    pub isolation: Isolation,
    /// Name of the backend that allocated the region.
    pub backend: &'static str,
}

impl Protection {
    /// True when every protection holds.
    pub fn complete(&self) -> bool {
        self.locked && self.dontdump && self.wipeonfork && self.guard_pages
    }

    /// What holds for both `self` and `other` (two regions behind one key: the key and
    /// state derived from it): each flag only if both have it, the pool's isolation if
    /// either is pooled, the plain allocator's name if either used it.
    pub fn weakest(self, other: Protection) -> Protection {
        Protection {
            locked: self.locked && other.locked,
            dontdump: self.dontdump && other.dontdump,
            wipeonfork: self.wipeonfork && other.wipeonfork,
            guard_pages: self.guard_pages && other.guard_pages,
            read_only_idle: self.read_only_idle && other.read_only_idle,
            isolation: if self.isolation == Isolation::Pool {
                self.isolation
            } else {
                other.isolation
            },
            backend: if self.backend == guarded::BACKEND_NAME {
                self.backend
            } else {
                other.backend
            },
        }
    }
}

/// The storage behind one [`SecretBuf`]. Implemented by every backend.
///
/// A region holds one or more *parts*: byte buffers, each with a canary directly in
/// front of it, the last one right-aligned against the end of the region (the trailing
/// guard page). The layers above keep a secret in the last part and state derived from it
/// in the parts before, so an underflow out of the secret lands in its canary and an
/// overflow out of a derived part lands in the next part's canary.
///
/// Implementations must keep the bytes in memory that is never handed to the global
/// allocator, wipe them when dropped, check every canary when dropped (aborting on a
/// mismatch), and report their protection truthfully.
pub trait Region: Send + Sync {
    /// Number of parts (at least 1, at most [`MAX_PARTS`]).
    fn parts(&self) -> usize;
    /// Part `index` (`< self.parts()`), readable. Fails if this process is a fork child
    /// of the allocating process (the backend may have wiped the data on fork).
    fn part(&self, index: usize) -> Result<&[u8], MemoryError>;
    /// The last part: the buffer of a one-part region, the secret of a multi-part one.
    fn bytes(&self) -> Result<&[u8], MemoryError> {
        self.part(self.parts() - 1)
    }
    /// Make the parts writable, run `fill` on them (in order), and make them read-only
    /// again.
    fn write(&mut self, fill: &mut dyn FnMut(&mut [&mut [u8]])) -> Result<(), MemoryError>;
    /// The protection the region actually has.
    fn protection(&self) -> Protection;
}

/// A source of [`Region`]s.
pub trait Allocator: Send + Sync {
    /// Allocate a region of parts of the given lengths (each `>= 1`, at most
    /// [`MAX_PARTS`] parts) and run `fill` on the parts before the region first becomes
    /// read-only. Secrets are written here, straight into locked memory.
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError>;
    /// Allocate a zero-filled region of one part of exactly `len` bytes (`len >= 1`).
    fn allocate(&self, len: usize) -> Result<Box<dyn Region>, MemoryError> {
        self.allocate_with(&[len], &mut |_| {})
    }
    /// Short stable name, reported in [`Protection::backend`].
    fn name(&self) -> &'static str;
}

/// The most parts one region may have.
pub const MAX_PARTS: usize = 4;

/// Fill `dst` from the OS CSPRNG (`getrandom`), with a failure as [`MemoryError::Random`].
pub fn fill_random(dst: &mut [u8]) -> Result<(), MemoryError> {
    getrandom::fill(dst).map_err(|e| MemoryError::Random {
        code: e.raw_os_error().map_or(0, |v| v as u32),
    })
}

/// The largest secret one region may hold (1 MiB): keys are small; a request for more is
/// almost certainly a mistake, and each region is locked memory.
pub const MAX_REGION_LEN: usize = 1 << 20;

/// The allocator used by [`allocate`] and [`SecretBuf::new_with`]: page isolation or the
/// pool, per region, by the isolation policy (see the module docs).
pub fn default_allocator() -> &'static dyn Allocator {
    &ByPolicy
}

/// The allocator for regions of the given isolation ([`Isolation::Auto`] decides per
/// region, like [`default_allocator`]).
pub fn allocator_for(isolation: Isolation) -> &'static dyn Allocator {
    match isolation {
        Isolation::Page => &guarded::GuardedMmap,
        Isolation::Pool => &PoolOrPage,
        Isolation::Auto => &ByPolicy,
    }
}

/// What state derived from a key (allocated beside it later, on first use) got less of
/// than the key's own region, since the layer above last asked
/// ([`take_derived_shortfall`], which warns): [`SHORTFALL_PROTECTION`] (a lock or
/// `madvise` that failed under the "warn" policy), [`SHORTFALL_MEMFD`] (a key in
/// `memfd_secret` memory whose state did not fit a pool slot and went to a guarded mapping).
static DERIVED_SHORTFALL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// A derived region is not locked, dump-excluded or wiped on fork where its key is.
pub const SHORTFALL_PROTECTION: u8 = 1;
/// A derived region is ordinary (guarded) mapped memory where its key is `memfd_secret`.
pub const SHORTFALL_MEMFD: u8 = 2;

/// Note a region allocated beside a key (`beside`) with protection `new`.
pub(crate) fn note_derived(beside: &Protection, new: &Protection) {
    let kinds = shortfall(beside, new);
    if kinds != 0 {
        DERIVED_SHORTFALL.fetch_or(kinds, Ordering::AcqRel);
    }
}

/// What `new` lacks of `beside` (bits of `SHORTFALL_*`).
fn shortfall(beside: &Protection, new: &Protection) -> u8 {
    let mut kinds = 0;
    if (beside.locked && !new.locked)
        || (beside.dontdump && !new.dontdump)
        || (beside.wipeonfork && !new.wipeonfork)
    {
        kinds |= SHORTFALL_PROTECTION;
    }
    let memfd = Backend::MemfdSecret.name();
    if beside.backend == memfd && new.backend != memfd {
        kinds |= SHORTFALL_MEMFD;
    }
    kinds
}

/// The shortfalls noted since the last call (bits of `SHORTFALL_*`; cleared by the call):
/// one atomic load while nothing happened.
pub fn take_derived_shortfall() -> u8 {
    if DERIVED_SHORTFALL.load(Ordering::Acquire) == 0 {
        return 0;
    }
    DERIVED_SHORTFALL.swap(0, Ordering::AcqRel)
}

/// The allocator for secrets derived in an operation (HKDF output, Diffie-Hellman shared
/// secrets): the pool under [`Isolation::Auto`], where [`default_allocator`] would give the
/// first keys page isolation. A server derives one such key per connection or message and
/// drops it soon: page isolation would cost each a fresh mapping, a locked page and
/// several system calls (some 10 µs), the pool well under one (docs: SECURITY.md, "What
/// each kind of key gets"). An explicit policy or scoped override is followed as for
/// every region: `page` gives page isolation, `pool` the pool; a region too large for the
/// pool is page-isolated.
pub fn derived_allocator() -> &'static dyn Allocator {
    &DerivedByPolicy
}

/// The most bytes of page-isolated data pages [`Isolation::Auto`] keeps alive: 1 MiB.
pub const PAGE_SHARE_MAX: usize = 1 << 20;

/// The share of the lock budget that [`Isolation::Auto`] gives page isolation: an eighth
/// of the soft `RLIMIT_MEMLOCK`, at most [`PAGE_SHARE_MAX`] (256 one-page keys with 4 KiB
/// pages; 256 keys of an 8 MiB limit, 2 keys of a 64 KiB one). The rest of the budget is
/// left to the pool, which holds some 16,000 32-byte keys per MiB.
///
/// The limit is read on first use, again in a fork child, and again whenever a region
/// would be page-isolated (which makes several system calls anyway), never on the pooled
/// hot path: a process that raises its own limit later keeps pooling until then.
pub fn page_share() -> usize {
    page_share_cached(false)
}

/// The cached share and the fork generation (plus one, so zero means "never read") it
/// was read in.
static SHARE_GENERATION: AtomicU64 = AtomicU64::new(0);
static SHARE: AtomicU64 = AtomicU64::new(0);

fn page_share_cached(refresh: bool) -> usize {
    let g = sys::fork_generation() + 1;
    if refresh || SHARE_GENERATION.load(Ordering::Acquire) != g {
        let budget = match sys::rlimit_memlock() {
            Ok((Some(soft), _)) => soft,
            Ok((None, _)) => u64::MAX,
            Err(_) => 0,
        };
        let share = (budget / 8).min(PAGE_SHARE_MAX as u64);
        SHARE.store(share, Ordering::Release);
        SHARE_GENERATION.store(g, Ordering::Release);
    }
    SHARE.load(Ordering::Acquire) as usize
}

/// Whether [`Isolation::Auto`] gives a region of these parts page isolation.
fn auto_chooses_page(parts: &[usize]) -> bool {
    if pool::class_for(parts).is_none() {
        return true;
    }
    let Some(need) = guarded::data_len_for(parts) else {
        return true;
    };
    let within = |share: usize| guarded::live_data_bytes().saturating_add(need) <= share;
    // Check against the cached share first; confirm a "page" answer with a fresh read of
    // the limit (a page-isolated region costs several system calls anyway).
    within(page_share_cached(false)) && within(page_share_cached(true))
}

/// Page isolation or the pool, by [`effective_isolation`].
struct ByPolicy;

impl Allocator for ByPolicy {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        let page = match effective_isolation() {
            Isolation::Page => true,
            Isolation::Pool => pool::class_for(parts).is_none(),
            Isolation::Auto => match backend_policy() {
                Backend::Mmap => auto_chooses_page(parts),
                Backend::MemfdSecret => pool::class_for(parts).is_none(),
            },
        };
        if page {
            guarded::GuardedMmap.allocate_with(parts, fill)
        } else {
            pool::Pooled.allocate_with(parts, fill)
        }
    }

    fn name(&self) -> &'static str {
        guarded::BACKEND_NAME
    }
}

/// [`derived_allocator`]: page isolation only when asked for.
struct DerivedByPolicy;

impl Allocator for DerivedByPolicy {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        match effective_isolation() {
            Isolation::Page => guarded::GuardedMmap.allocate_with(parts, fill),
            Isolation::Pool | Isolation::Auto => PoolOrPage.allocate_with(parts, fill),
        }
    }

    fn name(&self) -> &'static str {
        guarded::BACKEND_NAME
    }
}

/// The allocator for state derived from a key whose region has protection `key`: the same
/// isolation and, pooled, arenas of the same backend, whatever the policy says now (a
/// key in `memfd_secret` arenas keeps its HMAC pads and cipher state there too).
pub fn allocator_beside(key: &Protection) -> impl Allocator {
    Beside {
        isolation: key.isolation,
        backend: Backend::from_name(key.backend).unwrap_or(Backend::Mmap),
    }
}

/// [`allocator_beside`].
struct Beside {
    isolation: Isolation,
    backend: Backend,
}

impl Allocator for Beside {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        if self.isolation == Isolation::Page || pool::class_for(parts).is_none() {
            return guarded::GuardedMmap.allocate_with(parts, fill);
        }
        Ok(Box::new(pool::PoolRegion::new_in(
            parts,
            self.backend,
            fill,
        )?))
    }

    fn name(&self) -> &'static str {
        guarded::BACKEND_NAME
    }
}

/// The pool, or page isolation for a region too large for it.
struct PoolOrPage;

impl Allocator for PoolOrPage {
    fn allocate_with(
        &self,
        parts: &[usize],
        fill: &mut dyn FnMut(&mut [&mut [u8]]),
    ) -> Result<Box<dyn Region>, MemoryError> {
        if pool::class_for(parts).is_some() {
            pool::Pooled.allocate_with(parts, fill)
        } else {
            guarded::GuardedMmap.allocate_with(parts, fill)
        }
    }

    fn name(&self) -> &'static str {
        guarded::BACKEND_NAME
    }
}

/// Allocate a zero-filled [`SecretBuf`] of `len` bytes from the default allocator.
pub fn allocate(len: usize) -> Result<SecretBuf, MemoryError> {
    SecretBuf::allocate_in(default_allocator(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(backend: &'static str, isolation: Isolation) -> Protection {
        Protection {
            locked: true,
            dontdump: true,
            wipeonfork: true,
            guard_pages: true,
            read_only_idle: isolation == Isolation::Page,
            isolation,
            backend,
        }
    }

    /// Shortfalls of derived state by kind, noted and taken (other tests may note their
    /// own meanwhile: the state is process-wide, so only what this one noted is checked),
    /// and `weakest` keeps the weaker of each property.
    #[test]
    fn derived_shortfalls_and_the_weakest_protection() {
        let memfd = full("memfd_secret", Isolation::Pool);
        let mapped = full(guarded::BACKEND_NAME, Isolation::Page);
        let unlocked = Protection {
            locked: false,
            ..mapped
        };
        assert_eq!(shortfall(&memfd, &memfd), 0);
        assert_eq!(shortfall(&mapped, &mapped), 0);
        assert_eq!(shortfall(&memfd, &mapped), SHORTFALL_MEMFD);
        assert_eq!(shortfall(&mapped, &unlocked), SHORTFALL_PROTECTION);
        assert_eq!(shortfall(&unlocked, &mapped), 0);
        note_derived(&memfd, &unlocked);
        let both = SHORTFALL_MEMFD | SHORTFALL_PROTECTION;
        assert_eq!(take_derived_shortfall() & both, both);
        let w = memfd.weakest(unlocked);
        assert!(!w.locked && w.dontdump && !w.read_only_idle);
        assert_eq!(
            (w.isolation, w.backend),
            (Isolation::Pool, guarded::BACKEND_NAME)
        );
    }
}
