//! [`SecretBuf`]: the safe handle the layers above use.

use super::{Allocator, MemoryError, Protection, Region};

/// A fixed-size buffer of secret bytes in a guarded region.
///
/// Read with [`SecretBuf::bytes`]; write only through [`SecretBuf::write`] (the region is
/// read-only at all other times). Dropping it wipes, unlocks and unmaps the region.
/// `Debug` never shows the contents; there is no `Clone`.
///
/// A buffer may have several parts ([`SecretBuf::new_parts_with`], [`SecretBuf::part`]),
/// each behind its own canary: a secret in the last part and state derived from it in
/// the parts before. [`SecretBuf::bytes`] and [`SecretBuf::len`] are the last part's.
pub struct SecretBuf {
    region: Box<dyn Region>,
    len: usize,
}

impl SecretBuf {
    /// Allocate a zero-filled buffer of `len` bytes from `allocator`.
    pub fn allocate_in(allocator: &dyn Allocator, len: usize) -> Result<Self, MemoryError> {
        Ok(SecretBuf {
            region: allocator.allocate(len)?,
            len,
        })
    }

    /// Allocate a buffer of `len` bytes and fill it with `fill` (which may fail, e.g. a
    /// file read or a decoder). On failure the region is wiped and freed, and the error of
    /// `fill` is returned.
    pub fn new_with<E: From<MemoryError>>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        Self::new_with_in(super::default_allocator(), len, fill)
    }

    /// [`SecretBuf::new_with`] from a given allocator. The fill runs in the region's
    /// first writable window (no extra protection changes).
    pub fn new_with_in<E: From<MemoryError>>(
        allocator: &dyn Allocator,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        Self::new_parts_with_in(allocator, [len], |[buf]| fill(buf))
    }

    /// Allocate a buffer of `N` parts of the given lengths (each `>= 1`; `N` from 1 to
    /// [`super::MAX_PARTS`]), each behind its own canary, the last one against the
    /// trailing guard page, and fill them with `fill` in their first writable window.
    /// On failure the region is wiped and freed, and the error of `fill` is returned.
    pub fn new_parts_with<const N: usize, E: From<MemoryError>>(
        lens: [usize; N],
        fill: impl FnOnce([&mut [u8]; N]) -> Result<(), E>,
    ) -> Result<Self, E> {
        Self::new_parts_with_in(super::default_allocator(), lens, fill)
    }

    /// [`SecretBuf::new_parts_with`] from a given allocator.
    pub fn new_parts_with_in<const N: usize, E: From<MemoryError>>(
        allocator: &dyn Allocator,
        lens: [usize; N],
        fill: impl FnOnce([&mut [u8]; N]) -> Result<(), E>,
    ) -> Result<Self, E> {
        const { assert!(N >= 1 && N <= super::MAX_PARTS) };
        let mut fill = Some(fill);
        let mut result: Result<(), E> = Ok(());
        let region = allocator.allocate_with(&lens, &mut |parts| {
            if let Some(f) = fill.take() {
                result = f(std::array::from_fn(|i| std::mem::take(&mut parts[i])));
            }
        })?;
        // On failure `region` drops here: wiped and unmapped.
        result?;
        Ok(SecretBuf {
            region,
            len: lens[N - 1],
        })
    }

    /// Allocate a buffer of `len` bytes with the same isolation as `self` (page or pool)
    /// and, pooled, the same backend, whatever the policy says now, and fill it with
    /// `fill`: state derived from a key later (e.g. HMAC pads on first use) is isolated and
    /// backed like the key ([`super::allocator_beside`]).
    pub fn new_beside<E: From<MemoryError>>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mine = self.protection();
        let allocator = super::allocator_beside(&mine);
        let new = Self::new_parts_with_in(&allocator, [len], |[buf]| fill(buf))?;
        super::note_derived(&mine, &new.protection());
        Ok(new)
    }

    /// Allocate a buffer of `len` bytes filled from the OS CSPRNG.
    pub fn random(len: usize) -> Result<Self, MemoryError> {
        Self::new_with(len, super::fill_random)
    }

    /// Number of bytes in the buffer (its last part).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: regions hold at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The secret bytes (the last part). Fails in a fork child of the allocating process.
    pub fn bytes(&self) -> Result<&[u8], MemoryError> {
        self.region.bytes()
    }

    /// Part `index` of a buffer made by [`SecretBuf::new_parts_with`] (panics if out of
    /// range, like slice indexing). Fails in a fork child of the allocating process.
    pub fn part(&self, index: usize) -> Result<&[u8], MemoryError> {
        self.region.part(index)
    }

    /// Make the region writable, run `fill` on the last part, make it read-only again.
    /// The result of `fill` is returned after the region is read-only again.
    pub fn write<E: From<MemoryError>>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut fill = Some(fill);
        let mut result: Result<(), E> = Ok(());
        self.region.write(&mut |parts| {
            if let (Some(f), Some(last)) = (fill.take(), parts.last_mut()) {
                result = f(last);
            }
        })?;
        result
    }

    /// The protection the region actually has.
    pub fn protection(&self) -> Protection {
        self.region.protection()
    }

    /// Address of the first byte (diagnostics; never dereferenced outside this module).
    pub fn addr(&self) -> Result<usize, MemoryError> {
        Ok(self.bytes()?.as_ptr() as usize)
    }
}

impl std::fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBuf({} bytes, redacted)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_not_zero_and_differs() {
        let a = SecretBuf::random(32).expect("a");
        let b = SecretBuf::random(32).expect("b");
        assert_ne!(a.bytes().expect("a"), &[0u8; 32]);
        assert_ne!(a.bytes().expect("a"), b.bytes().expect("b"));
    }

    #[test]
    fn failed_fill_returns_error() {
        #[derive(Debug)]
        enum E {
            M,
            Fill,
        }
        impl From<MemoryError> for E {
            fn from(_: MemoryError) -> Self {
                E::M
            }
        }
        let r = SecretBuf::new_with(8, |_| Err::<(), E>(E::Fill));
        assert!(matches!(r, Err(E::Fill)));
        let _ = E::M;
    }

    #[test]
    fn debug_is_redacted() {
        let mut b = SecretBuf::new_with::<MemoryError>(4, |d| {
            d.copy_from_slice(b"abcd");
            Ok(())
        })
        .expect("buf");
        assert_eq!(format!("{b:?}"), "SecretBuf(4 bytes, redacted)");
        b.write::<MemoryError>(|d| {
            d[0] = b'z';
            Ok(())
        })
        .expect("write");
        assert_eq!(b.bytes().expect("bytes"), b"zbcd");
    }

    #[test]
    fn parts_are_separate_and_last_is_bytes() {
        let mut b = SecretBuf::new_parts_with::<2, MemoryError>([3, 4], |[a, k]| {
            a.copy_from_slice(b"abc");
            k.copy_from_slice(b"wxyz");
            Ok(())
        })
        .expect("buf");
        assert_eq!(b.len(), 4);
        assert_eq!(b.part(0).expect("part"), b"abc");
        assert_eq!(b.part(1).expect("part"), b"wxyz");
        assert_eq!(b.bytes().expect("bytes"), b"wxyz");
        b.write::<MemoryError>(|d| {
            d[0] = b'W';
            Ok(())
        })
        .expect("write");
        assert_eq!(b.part(0).expect("part"), b"abc");
        assert_eq!(b.bytes().expect("bytes"), b"Wxyz");
    }
}
