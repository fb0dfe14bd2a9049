//! [`GuardedValue<T>`]: a Rust value of any type placed inside a guarded region.
//!
//! Cipher libraries keep their expanded key state (AES round keys, GHASH key powers, a
//! ChaCha20 key copy) in their own value types, which can only be built by value. A
//! `GuardedValue<T>` moves such a value into a region of the memory layer (page or pool
//! isolation by the policy or beside a given key, locked, dump-excluded, wiped on fork,
//! behind canaries), lends it out as `&T` while this process owns the region, and on drop
//! runs `T`'s destructor in place and wipes the bytes (the region wipes itself on drop
//! too).
//!
//! # What the caller must know
//!
//! - `T`'s state must be inline: a `T` that owns heap memory (a `Box`, a `Vec`) keeps that
//!   memory on the heap, outside the region. Cipher key types are plain arrays.
//! - `T` must not mutate itself through `&T` (no `Cell`, `RefCell`, atomics): a
//!   page-isolated region is read-only while idle, so such a write would fault (a crash,
//!   not undefined behaviour). Pooled regions are always writable.
//! - Building the value by value leaves copies of it on the caller's stack (the value is
//!   moved into the region). The crypto layer builds it inside a stack-scrubbed call
//!   (`crypto::scrub`).
//! - In a fork child the region may have been wiped (`MADV_WIPEONFORK`), so its bytes may
//!   not be a valid `T`: [`GuardedValue::get`] fails with [`MemoryError::Forked`] there, and
//!   drop skips `T`'s destructor (leaking whatever `T` owns elsewhere, never reading the
//!   wiped bytes as a `T`).

use std::marker::PhantomData;
use std::mem::{align_of, size_of};

use super::{Allocator, MemoryError, Protection, SecretBuf};

/// A value of type `T` living in a guarded region (see the module docs).
pub struct GuardedValue<T> {
    buf: SecretBuf,
    /// Offset of the value inside the region's last part (aligned for `T`).
    offset: usize,
    /// The region owns a `T` (for drop check and the auto traits: `Send`/`Sync` as `T`).
    _owns: PhantomData<T>,
}

/// Bytes of region needed for a `T` at any alignment of the part's start.
fn slot_len<T>() -> usize {
    // A zero-sized T still gets one byte: regions hold at least one.
    (size_of::<T>() + align_of::<T>() - 1).max(1)
}

/// Offset of the first address in `part` aligned for `T`.
fn aligned_offset<T>(part: &[u8]) -> usize {
    part.as_ptr().align_offset(align_of::<T>())
}

impl<T> GuardedValue<T> {
    /// Place the value `make` builds into a new region from `allocator`. `make` runs
    /// before the region is allocated; its error is returned as is.
    pub fn new_in<E: From<MemoryError>>(
        allocator: &dyn Allocator,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Self, E> {
        let mut value = Some(make()?);
        let mut offset = 0;
        let buf = SecretBuf::new_with_in::<MemoryError>(allocator, slot_len::<T>(), |part| {
            offset = aligned_offset::<T>(part);
            let Some(v) = value.take() else {
                return Ok(());
            };
            debug_assert!(offset + size_of::<T>() <= part.len());
            // SAFETY: `part` is `slot_len::<T>()` writable bytes; `offset` is the first
            // address in it aligned for `T` (`align_offset` < `align_of::<T>()`, since an
            // alignment is a power of two and the pointer is not null), so
            // `offset + size_of::<T>() <= part.len()` and the write is in bounds and
            // aligned. The bytes hold no `T` yet, so nothing is overwritten without drop.
            unsafe { std::ptr::write(part.as_mut_ptr().add(offset).cast::<T>(), v) };
            Ok(())
        })?;
        // Allocation failed before `fill` ran: the value was never moved; drop it here.
        drop(value);
        Ok(GuardedValue {
            buf,
            offset,
            _owns: PhantomData,
        })
    }

    /// [`GuardedValue::new_in`] with the allocator the isolation policy picks now.
    pub fn new<E: From<MemoryError>>(make: impl FnOnce() -> Result<T, E>) -> Result<Self, E> {
        Self::new_in(super::default_allocator(), make)
    }

    /// [`GuardedValue::new_in`] with the same isolation (page or pool) and backend as
    /// `beside` ([`super::allocator_beside`]): state derived from a key is isolated and
    /// backed like the key.
    pub fn new_beside<E: From<MemoryError>>(
        beside: &SecretBuf,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Self, E> {
        let mine = beside.protection();
        let value = Self::new_in(&super::allocator_beside(&mine), make)?;
        super::note_derived(&mine, &value.protection());
        Ok(value)
    }

    /// The value. Fails in a fork child of the allocating process (where the region may
    /// have been wiped) and if the region's canary was overwritten.
    pub fn get(&self) -> Result<&T, MemoryError> {
        let part = self.buf.bytes()?;
        debug_assert!(self.offset + size_of::<T>() <= part.len());
        // SAFETY: `new_in` wrote a valid `T` at `offset` of this part (same region, same
        // address: regions never move), aligned for `T`; `bytes()` succeeded, so this is
        // the allocating process and the region was not wiped on fork. The value is only
        // dropped in `Drop`, which takes `&mut self`, so it outlives the returned borrow.
        // Nothing hands out `&mut T`, so shared references never alias a mutable one.
        Ok(unsafe { &*part.as_ptr().add(self.offset).cast::<T>() })
    }

    /// The region's protection.
    pub fn protection(&self) -> Protection {
        self.buf.protection()
    }

    /// Address of the value (diagnostics and tests; never dereferenced outside this module).
    pub fn addr(&self) -> Result<usize, MemoryError> {
        Ok(self.buf.bytes()?.as_ptr() as usize + self.offset)
    }
}

impl<T> Drop for GuardedValue<T> {
    fn drop(&mut self) {
        // In a fork child (or with a broken canary) the bytes may not be a valid `T`:
        // skip its destructor. The region itself still handles its own teardown.
        if self.buf.bytes().is_err() {
            return;
        }
        let offset = self.offset;
        let _ = self.buf.write::<MemoryError>(|part| {
            // SAFETY: the `T` written by `new_in` is at `offset` of this part, aligned,
            // valid (checked above: allocating process), and dropped exactly once: this is
            // `Drop`, and nothing else drops it. After `drop_in_place` the bytes are
            // plain bytes again and are wiped below.
            unsafe { std::ptr::drop_in_place(part.as_mut_ptr().add(offset).cast::<T>()) };
            zeroize::Zeroize::zeroize(&mut *part);
            Ok(())
        });
        // `buf` drops next: canaries checked, bytes wiped, unlocked, unmapped.
    }
}

impl<T> std::fmt::Debug for GuardedValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedValue")
            .field("type", &std::any::type_name::<T>())
            .field("protection", &self.buf.protection())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::memory::{allocator_for, Isolation};

    /// A value with an alignment larger than the canary's, a destructor that counts, and
    /// a recognisable pattern.
    #[repr(C, align(64))]
    struct Sched {
        rounds: [u32; 60],
        dropped: Arc<AtomicUsize>,
    }

    impl Drop for Sched {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn make(counter: &Arc<AtomicUsize>) -> Sched {
        Sched {
            rounds: std::array::from_fn(|i| 0x5eed_0000 + i as u32),
            dropped: counter.clone(),
        }
    }

    #[test]
    fn holds_the_value_aligned_in_every_isolation_and_drops_it_once() {
        for iso in [Isolation::Page, Isolation::Pool, Isolation::Auto] {
            let counter = Arc::new(AtomicUsize::new(0));
            let v = GuardedValue::new_in::<MemoryError>(allocator_for(iso), || Ok(make(&counter)))
                .expect("alloc");
            let s = v.get().expect("get");
            assert_eq!(s.rounds[59], 0x5eed_0000 + 59);
            assert_eq!((s as *const Sched as usize) % 64, 0, "{iso:?}: misaligned");
            assert_eq!(v.addr().expect("addr"), s as *const Sched as usize);
            // Canaries and guard pages are in place whatever the lock policy allowed.
            assert!(v.protection().guard_pages, "{iso:?}: no guard pages");
            if iso == Isolation::Page {
                assert_eq!(v.protection().isolation, Isolation::Page);
            }
            assert_eq!(counter.load(Ordering::SeqCst), 0);
            drop(v);
            assert_eq!(counter.load(Ordering::SeqCst), 1, "{iso:?}: drop count");
        }
    }

    #[test]
    fn beside_takes_the_isolation_of_the_key() {
        for iso in [Isolation::Page, Isolation::Pool] {
            let key = SecretBuf::allocate_in(allocator_for(iso), 32).expect("key");
            let v = GuardedValue::new_beside::<MemoryError>(&key, || Ok([7u64; 8])).expect("v");
            assert_eq!(v.protection().isolation, iso);
            assert_eq!(*v.get().expect("get"), [7u64; 8]);
        }
    }

    #[test]
    fn a_failed_make_allocates_nothing_and_errors_pass_through() {
        #[derive(Debug, PartialEq)]
        enum E {
            Mine,
            Mem,
        }
        impl From<MemoryError> for E {
            fn from(_: MemoryError) -> Self {
                E::Mem
            }
        }
        let r = GuardedValue::<[u8; 4]>::new::<E>(|| Err(E::Mine));
        assert_eq!(r.err(), Some(E::Mine));
    }

    #[test]
    fn zero_sized_and_large_values() {
        let z = GuardedValue::new::<MemoryError>(|| Ok(())).expect("zst");
        z.get().expect("get");
        let big = GuardedValue::new::<MemoryError>(|| Ok([0xabu8; 3000])).expect("big");
        assert!(big.get().expect("get").iter().all(|&b| b == 0xab));
        assert_eq!(big.protection().isolation, Isolation::Page);
    }

    /// A pool slot that held a value reads as zeros for whatever is allocated in it next.
    #[test]
    fn pool_slot_is_wiped_for_the_next_value() {
        let pool = allocator_for(Isolation::Pool);
        let a = GuardedValue::new_in::<MemoryError>(pool, || Ok([0x77u8; 200])).expect("a");
        let addr = a.addr().expect("addr");
        drop(a);
        let mut reused = false;
        let mut held = Vec::new();
        for _ in 0..64 {
            let b = SecretBuf::allocate_in(pool, 200).expect("b");
            let bytes = b.bytes().expect("bytes");
            let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
            reused |= range.contains(&addr);
            assert!(bytes.iter().all(|&x| x == 0));
            held.push(b);
        }
        // Other tests run in parallel and may take the freed slot first; when this thread
        // got it back (the usual case), it read as zeros above.
        let _ = reused;
    }

    #[test]
    fn shared_across_threads() {
        let v = Arc::new(
            GuardedValue::new::<MemoryError>(|| {
                Ok(std::array::from_fn::<u64, 32, _>(|i| i as u64))
            })
            .expect("v"),
        );
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || v.get().expect("get").iter().sum::<u64>())
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().expect("join"), (0..32).sum::<u64>());
        }
    }
}
