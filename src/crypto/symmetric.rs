//! A symmetric secret key in a guarded region, with its HMAC pads beside it.
//!
//! Region layout: two parts (see [`crate::memory::Region`]), the key last, so it ends at
//! the trailing guard page and its canary sits directly in front of it:
//!
//! ```text
//! [canary][ pads sha256 (64) | pads sha384 (128) | pads sha512 (128) ][canary][ key (len) ] | guard
//! ```
//!
//! A one-byte underflow out of the key, or overflow out of the pads, lands in the key's
//! canary and aborts the process when the key is freed.
//!
//! The pads are computed once, in the same writable window in which the key is written,
//! so the region is never made writable again afterwards.

use crate::memory::{MemoryError, Protection, SecretBuf};

use super::hmac::{self, HashAlgorithm};

/// Total bytes of precomputed pads in front of the key.
const PADS_LEN: usize = 64 + 128 + 128;

/// Part indices in the region.
const PADS: usize = 0;
const KEY: usize = 1;

/// Largest symmetric key accepted (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;

fn pads_range(alg: HashAlgorithm) -> std::ops::Range<usize> {
    match alg {
        HashAlgorithm::Sha256 => 0..64,
        HashAlgorithm::Sha384 => 64..192,
        HashAlgorithm::Sha512 => 192..320,
    }
}

/// Errors when building a key.
#[derive(Debug)]
pub enum KeyError<E> {
    /// The requested length is not in `1..=MAX_KEY_LEN`.
    Length(usize),
    /// The memory layer failed.
    Memory(MemoryError),
    /// The fill function failed.
    Fill(E),
}

impl<E> From<MemoryError> for KeyError<E> {
    fn from(e: MemoryError) -> Self {
        KeyError::Memory(e)
    }
}

/// A symmetric key of 1 to [`MAX_KEY_LEN`] bytes.
#[derive(Debug)]
pub struct SymmetricKey {
    buf: SecretBuf,
    len: usize,
}

impl SymmetricKey {
    /// Allocate a key of `len` bytes, let `fill` write the key bytes directly into the
    /// region, then derive the HMAC pads.
    pub fn new_with<E>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, KeyError<E>> {
        if len == 0 || len > MAX_KEY_LEN {
            return Err(KeyError::Length(len));
        }
        let buf = SecretBuf::new_parts_with([PADS_LEN, len], |[pads, key]| {
            fill(key).map_err(KeyError::Fill)?;
            for alg in HashAlgorithm::ALL {
                hmac::precompute_pads(alg, key, &mut pads[pads_range(alg)]);
            }
            Ok::<(), KeyError<E>>(())
        })?;
        Ok(SymmetricKey { buf, len })
    }

    /// A key of `len` bytes from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, KeyError<MemoryError>> {
        Self::new_with(len, |dst| {
            getrandom::fill(dst).map_err(|e| MemoryError::Random {
                code: e.raw_os_error().map_or(0, |v| v as u32),
            })
        })
    }

    /// A key copied from `src`.
    pub fn from_slice(src: &[u8]) -> Result<Self, KeyError<std::convert::Infallible>> {
        Self::new_with(src.len(), |dst| {
            dst.copy_from_slice(src);
            Ok(())
        })
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (keys hold at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key bytes.
    pub fn bytes(&self) -> Result<&[u8], MemoryError> {
        self.buf.part(KEY)
    }

    /// The precomputed HMAC pads for `alg`.
    pub fn pads(&self, alg: HashAlgorithm) -> Result<&[u8], MemoryError> {
        Ok(&self.buf.part(PADS)?[pads_range(alg)])
    }

    /// One-shot HMAC of `msg`; writes `alg.digest_len()` bytes into `out`.
    pub fn hmac(&self, alg: HashAlgorithm, msg: &[u8], out: &mut [u8]) -> Result<(), MemoryError> {
        hmac::hmac_with_pads(alg, self.pads(alg)?, msg, out);
        Ok(())
    }

    /// Constant-time equality of the key bytes (lengths are compared first, which
    /// reveals only the lengths).
    pub fn ct_eq(&self, other: &SymmetricKey) -> Result<bool, MemoryError> {
        Ok(super::ct::ct_eq(self.bytes()?, other.bytes()?))
    }

    /// The region's protection.
    pub fn protection(&self) -> Protection {
        self.buf.protection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_match_plain_hmac() {
        let key = SymmetricKey::from_slice(b"0123456789abcdef").expect("key");
        for alg in HashAlgorithm::ALL {
            let mut a = [0u8; 64];
            let mut b = [0u8; 64];
            key.hmac(alg, b"message", &mut a).expect("hmac");
            hmac::hmac(alg, b"0123456789abcdef", b"message", &mut b);
            assert_eq!(a, b);
        }
        assert_eq!(key.bytes().expect("bytes"), b"0123456789abcdef");
    }

    #[test]
    fn lengths() {
        assert!(matches!(
            SymmetricKey::generate(0),
            Err(KeyError::Length(0))
        ));
        assert!(matches!(
            SymmetricKey::generate(MAX_KEY_LEN + 1),
            Err(KeyError::Length(_))
        ));
        let k = SymmetricKey::generate(MAX_KEY_LEN).expect("max");
        assert_eq!(k.len(), MAX_KEY_LEN);
    }

    #[test]
    fn ct_eq_works() {
        let a = SymmetricKey::from_slice(b"same").expect("a");
        let b = SymmetricKey::from_slice(b"same").expect("b");
        let c = SymmetricKey::from_slice(b"diff").expect("c");
        assert!(a.ct_eq(&b).expect("eq"));
        assert!(!a.ct_eq(&c).expect("ne"));
    }
}
