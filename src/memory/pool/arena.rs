//! Arenas: one guarded mapping of slots of one size, anonymous or `memfd_secret` memory.

use std::ptr::NonNull;

use super::{canary_failure, BACKEND_NAME, CANARY_LEN, MARKER_LEN};
use crate::memory::fork::sentinel_token;
use crate::memory::policy::{Backend, LockFailurePolicy};
use crate::memory::sys::{last_errno, page_size};
use crate::memory::{Isolation, MemoryError, Protection};

/// One guarded mapping of slots of one size.
pub(super) struct Arena {
    /// Start of the mapping (leading guard page).
    pub(super) base: NonNull<u8>,
    pub(super) map_len: usize,
    /// Start of the data pages (the marker).
    pub(super) data: NonNull<u8>,
    pub(super) data_len: usize,
    pub(super) slot_size: usize,
    pub(super) nslots: usize,
    pub(super) canary: [u8; CANARY_LEN],
    pub(super) protection: Protection,
    /// For a `memfd_secret` arena: the fork sentinel's value when it was mapped (a raw
    /// fork child does not have the arena mapped at all, so it must never touch it); 0 for
    /// anonymous arenas, whose wiped marker tells the same.
    pub(super) sentinel: u64,
    /// Indices of free slots (a stack).
    pub(super) free: Vec<u32>,
    /// Position in the shard's `partial` list, when the arena has free slots.
    pub(super) partial_pos: Option<usize>,
}

// SAFETY: an arena exclusively owns its mapping; it is only reached through the mutex of
// the shard that owns it, so moving it between threads is sound.
unsafe impl Send for Arena {}

impl Arena {
    /// Whether the arena has every protection a request for `backend` under the strict
    /// policy (`on_lock_failure="raise"`) must get: locked, dump-excluded, kept from fork
    /// children (wiped on fork, or for `memfd_secret` not mapped in them), and from the
    /// backend asked for. An arena made under "warn" may fall short; strict requests never
    /// take a slot in it.
    pub(super) fn meets_strict(&self, backend: Backend) -> bool {
        let p = &self.protection;
        let from_fork = p.wipeonfork || self.sentinel != 0;
        let right_backend = match backend {
            Backend::Mmap => true,
            Backend::MemfdSecret => p.backend == "memfd_secret",
        };
        p.locked && p.dontdump && from_fork && right_backend
    }

    /// Map, guard, advise and lock a new arena of `pages` data pages for slots of
    /// `slot_size` bytes, backed by `backend`, and write its marker. Every result is
    /// checked; a failed `mlock` or `madvise` follows `policy`.
    pub(super) fn new(
        slot_size: usize,
        pages: usize,
        policy: LockFailurePolicy,
        backend: Backend,
    ) -> Result<Self, MemoryError> {
        let page = page_size();
        let data_len = pages * page;
        let map_len = data_len + 2 * page;
        let mut canary = [0u8; CANARY_LEN];
        crate::memory::fill_random(&mut canary)?;
        let base = crate::memory::sys::reserve(map_len)?;
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
        let sentinel = sentinel_token().map_err(|errno| MemoryError::AdviseFailed {
            advice: "MADV_WIPEONFORK",
            errno,
        })?;
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

    pub(super) fn slot_ptr(&self, index: u32) -> NonNull<u8> {
        // SAFETY: index < nslots, so the slot lies inside the data pages, after the marker.
        unsafe { self.data.add(MARKER_LEN + index as usize * self.slot_size) }
    }

    /// Whether the marker still holds the arena canary; `Err(())` when it was wiped (this
    /// is a fork child). Anything else is corruption and aborts.
    pub(super) fn check_marker(&self) -> Result<(), ()> {
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
