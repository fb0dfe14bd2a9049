//! The process-wide policies: what to do when a protection cannot be established, and
//! which isolation new regions get.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;

/// What to do when `mlock` (or `madvise`) fails for a new region (or pool arena).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockFailurePolicy {
    /// Keep the region, report the missing protection in [`super::Protection`]; the layer
    /// above warns the user.
    Warn,
    /// Free the region and fail the allocation.
    Raise,
}

static POLICY: AtomicU8 = AtomicU8::new(0);

/// The current policy (default [`LockFailurePolicy::Warn`]).
pub fn lock_failure_policy() -> LockFailurePolicy {
    match POLICY.load(Ordering::Acquire) {
        0 => LockFailurePolicy::Warn,
        _ => LockFailurePolicy::Raise,
    }
}

/// Set the policy for regions allocated from now on.
pub fn set_lock_failure_policy(policy: LockFailurePolicy) {
    let v = match policy {
        LockFailurePolicy::Warn => 0,
        LockFailurePolicy::Raise => 1,
    };
    POLICY.store(v, Ordering::Release);
}

/// How a new region is isolated from other memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// One guarded mapping per region ([`super::guarded`]): guard pages directly around
    /// the secret, read-only while idle. Costs a locked page and three mappings per key.
    Page,
    /// A slot in a shared, locked, guarded arena ([`super::pool`]): canaries on both sides
    /// of the secret, read-write while idle. Costs 64 bytes for a 32-byte key.
    Pool,
    /// Page isolation while the live page-isolated regions stay within a small share of
    /// the lock budget ([`super::page_share`]), the pool after that.
    Auto,
}

impl Isolation {
    /// The name used by the Python API and `KEYCELL_ISOLATION`.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Page => "page",
            Isolation::Pool => "pool",
            Isolation::Auto => "auto",
        }
    }

    /// Parse a name of [`Isolation::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "page" => Some(Isolation::Page),
            "pool" => Some(Isolation::Pool),
            "auto" => Some(Isolation::Auto),
            _ => None,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Isolation::Auto => 0,
            Isolation::Page => 1,
            Isolation::Pool => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Isolation::Page,
            2 => Isolation::Pool,
            _ => Isolation::Auto,
        }
    }
}

static ISOLATION: AtomicU8 = AtomicU8::new(0);

/// Where a scoped override of the isolation lives: a function the layer above registers
/// once ([`set_scope_source`]). The memory layer knows nothing of where the override is
/// kept (the Python layer keeps it in a context variable, so asyncio tasks and threads
/// each see their own); it only asks, and only once a scope has ever been entered.
static SCOPE_SOURCE: OnceLock<fn() -> Option<Isolation>> = OnceLock::new();

/// Set once the first scope is entered ([`scope_used`]); until then no allocation pays
/// for asking [`SCOPE_SOURCE`]. Never reset: a task or thread that inherited a scope may
/// outlive the block that opened it.
static SCOPE_USED: AtomicBool = AtomicBool::new(false);

/// The process-wide isolation policy (default [`Isolation::Auto`]).
pub fn isolation_policy() -> Isolation {
    Isolation::from_u8(ISOLATION.load(Ordering::Acquire))
}

/// Set the process-wide isolation policy for regions allocated from now on.
pub fn set_isolation_policy(isolation: Isolation) {
    ISOLATION.store(isolation.to_u8(), Ordering::Release);
}

/// Register where scoped overrides are kept. The first registration wins (returns
/// `false` for a later one). `source` returns the override in force for the caller (or
/// `None`: follow the process policy); it is called on the allocating thread.
pub fn set_scope_source(source: fn() -> Option<Isolation>) -> bool {
    SCOPE_SOURCE.set(source).is_ok()
}

/// Note that a scoped override has been entered somewhere: from now on every allocation
/// asks the scope source.
pub fn scope_used() {
    SCOPE_USED.store(true, Ordering::Release);
}

/// The isolation a region allocated now gets: the caller's scoped override, else the
/// process policy. One atomic load while no scope was ever entered.
pub fn effective_isolation() -> Isolation {
    resolve(
        SCOPE_USED.load(Ordering::Acquire),
        SCOPE_SOURCE.get().copied(),
        isolation_policy,
    )
}

/// A scoped override if a scope was ever used and the source names one, else `policy()`.
fn resolve(
    scope_used: bool,
    source: Option<fn() -> Option<Isolation>>,
    policy: fn() -> Isolation,
) -> Isolation {
    if scope_used {
        if let Some(isolation) = source.and_then(|source| source()) {
            return isolation;
        }
    }
    policy()
}

/// What backs pool arenas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Private anonymous memory (`mmap`), locked with `mlock`, `MADV_WIPEONFORK`.
    Mmap,
    /// `memfd_secret(2)` memory: removed from the kernel's direct map, unreadable through
    /// `/proc/PID/mem` and `process_vm_readv` (even by root), implicitly locked; not
    /// mapped in fork children (`MADV_DONTFORK`). While any exists, the kernel refuses to
    /// hibernate. One descriptor per arena, closed once mapped.
    MemfdSecret,
}

impl Backend {
    /// The name used by the Python API, `KEYCELL_BACKEND` and [`super::Protection::backend`]
    /// ("mmap" is reported there as the allocator's name, "guarded-mmap").
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mmap => "mmap",
            Backend::MemfdSecret => "memfd_secret",
        }
    }

    /// Parse a name of [`Backend::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "mmap" => Some(Backend::Mmap),
            "memfd_secret" => Some(Backend::MemfdSecret),
            _ => None,
        }
    }
}

static BACKEND: AtomicU8 = AtomicU8::new(0);

/// The process-wide backend of pool arenas (default [`Backend::Mmap`]).
pub fn backend_policy() -> Backend {
    match BACKEND.load(Ordering::Acquire) {
        0 => Backend::Mmap,
        _ => Backend::MemfdSecret,
    }
}

/// Set the backend of pool arenas allocated from now on. Under
/// [`Backend::MemfdSecret`], [`Isolation::Auto`] pools every key that fits a slot.
pub fn set_backend_policy(backend: Backend) {
    let v = match backend {
        Backend::Mmap => 0,
        Backend::MemfdSecret => 1,
    };
    BACKEND.store(v, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for i in [Isolation::Page, Isolation::Pool, Isolation::Auto] {
            assert_eq!(Isolation::from_name(i.name()), Some(i));
            assert_eq!(Isolation::from_u8(i.to_u8()), i);
        }
        assert_eq!(Isolation::from_name("Page"), None);
    }

    fn pool_scope() -> Option<Isolation> {
        Some(Isolation::Pool)
    }

    fn no_scope() -> Option<Isolation> {
        None
    }

    fn page_policy() -> Isolation {
        Isolation::Page
    }

    // Pure: registering a source in this test binary would change every other test's
    // allocations.
    #[test]
    fn scope_source_is_asked_only_once_a_scope_was_used() {
        assert_eq!(
            resolve(false, Some(pool_scope), page_policy),
            Isolation::Page
        );
        assert_eq!(
            resolve(true, Some(pool_scope), page_policy),
            Isolation::Pool
        );
        assert_eq!(resolve(true, Some(no_scope), page_policy), Isolation::Page);
        assert_eq!(resolve(true, None, page_policy), Isolation::Page);
    }
}
