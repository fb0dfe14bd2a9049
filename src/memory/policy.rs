//! The process-wide policy for a protection that cannot be established.

use std::sync::atomic::{AtomicU8, Ordering};

/// What to do when `mlock` (or `madvise`) fails for a new region.
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
