//! A symmetric secret key in a guarded region, with its HMAC pads computed on first use.
//!
//! The key has a region of its own (one part, behind its canary). The HMAC pads of an
//! algorithm (the inner and outer hash states: 40 bytes for SHA-1, 64 for SHA-256, 128
//! for SHA-384 and SHA-512) are computed the first time the key is used with that algorithm, into a
//! region of their own with the same isolation as the key (page or pool), and kept until
//! the key is dropped. A key never used for HMAC costs only its own region: 64 bytes of
//! locked memory for a pooled 32-byte key.

use std::sync::OnceLock;

use crate::memory::{MemoryError, Protection, SecretBuf};

use super::aead_suite::{self, AeadAlgorithm, AeadFailure, CipherCache, TAG_LEN};
use super::hmac::{HashAlgorithm, MacAlgorithm};

/// Largest symmetric key accepted (64 KiB).
pub const MAX_KEY_LEN: usize = 64 * 1024;

fn pads_index(alg: MacAlgorithm) -> usize {
    match alg {
        MacAlgorithm::Sha2(HashAlgorithm::Sha256) => 0,
        MacAlgorithm::Sha2(HashAlgorithm::Sha384) => 1,
        MacAlgorithm::Sha2(HashAlgorithm::Sha512) => 2,
        MacAlgorithm::Sha1 => 3,
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
    /// HMAC pads per algorithm ([`pads_index`]), computed on first use.
    pads: [OnceLock<SecretBuf>; 4],
    /// AEAD cipher state (AES round keys and GHASH key, ChaCha20-Poly1305 key), built on
    /// first use into a guarded value beside the key; dropped and wiped with the key.
    ciphers: CipherCache,
}

impl SymmetricKey {
    /// Allocate a key of `len` bytes and let `fill` write the key bytes directly into the
    /// region.
    pub fn new_with<E>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, KeyError<E>> {
        Self::new_with_in(crate::memory::default_allocator(), len, fill)
    }

    /// [`Self::new_with`] for a key derived in an operation (HKDF output, a shared
    /// secret): allocated by [`crate::memory::derived_allocator`] (pooled unless page
    /// isolation is asked for).
    pub fn new_derived_with<E>(
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, KeyError<E>> {
        Self::new_with_in(crate::memory::derived_allocator(), len, fill)
    }

    fn new_with_in<E>(
        allocator: &dyn crate::memory::Allocator,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, KeyError<E>> {
        if len == 0 || len > MAX_KEY_LEN {
            return Err(KeyError::Length(len));
        }
        let buf = SecretBuf::new_with_in(allocator, len, |key| fill(key).map_err(KeyError::Fill))?;
        Ok(SymmetricKey {
            buf,
            len,
            pads: Default::default(),
            ciphers: CipherCache::default(),
        })
    }

    /// A key of `len` bytes from the OS CSPRNG.
    pub fn generate(len: usize) -> Result<Self, KeyError<MemoryError>> {
        Self::new_with(len, crate::memory::fill_random)
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
        self.buf.bytes()
    }

    /// The HMAC pads for `alg`, computed into a region beside the key on first use (two
    /// threads racing here both compute them; one copy is kept, the other wiped).
    pub fn pads(&self, alg: impl Into<MacAlgorithm>) -> Result<&[u8], MemoryError> {
        let alg = alg.into();
        let cell = &self.pads[pads_index(alg)];
        if let Some(pads) = cell.get() {
            return pads.bytes();
        }
        let key = self.bytes()?;
        let pads = self.buf.new_beside::<MemoryError>(alg.pads_len(), |dst| {
            alg.precompute_pads(key, dst);
            Ok(())
        })?;
        // A buffer that lost the race is dropped (wiped) here.
        let _ = cell.set(pads);
        match cell.get() {
            Some(pads) => pads.bytes(),
            None => unreachable!("the cell was just set"),
        }
    }

    /// One-shot HMAC of `msg`; writes `alg.digest_len()` bytes into `out`.
    pub fn hmac(
        &self,
        alg: impl Into<MacAlgorithm>,
        msg: &[u8],
        out: &mut [u8],
    ) -> Result<(), MemoryError> {
        let alg = alg.into();
        alg.mac_with_pads(self.pads(alg)?, msg, out);
        Ok(())
    }

    /// Encrypt `buf` in place with `alg` (cipher state kept beside the key; see
    /// [`aead_suite::seal_cached`]); returns the tag.
    pub fn aead_seal(
        &self,
        alg: AeadAlgorithm,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailure> {
        aead_suite::seal_cached(alg, &self.buf, &self.ciphers, nonce, aad, buf)
    }

    /// Authenticate and decrypt `buf` in place with `alg`; on failure `buf` holds no
    /// plaintext ([`aead_suite::open_cached`]).
    pub fn aead_open(
        &self,
        alg: AeadAlgorithm,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadFailure> {
        aead_suite::open_cached(alg, &self.buf, &self.ciphers, nonce, aad, buf, tag)
    }

    /// The AEAD cipher state kept beside the key (tests and diagnostics).
    pub fn ciphers(&self) -> &CipherCache {
        &self.ciphers
    }

    /// Constant-time equality of the key bytes (lengths are compared first, which
    /// reveals only the lengths).
    pub fn ct_eq(&self, other: &SymmetricKey) -> Result<bool, MemoryError> {
        Ok(super::ct::ct_eq(self.bytes()?, other.bytes()?))
    }

    /// The protection of every region behind the key, the weakest of each: the key's own,
    /// its HMAC pads and its cached cipher state, which are allocated later (on first use)
    /// and may have got less (an `mlock` that failed under `on_lock_failure="warn"`).
    pub fn protection(&self) -> Protection {
        let pads = self
            .pads
            .iter()
            .filter_map(|p| p.get().map(SecretBuf::protection));
        pads.chain(self.ciphers.protections())
            .fold(self.buf.protection(), Protection::weakest)
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
            super::super::hmac::hmac(alg, b"0123456789abcdef", b"message", &mut b);
            assert_eq!(a, b);
        }
        // HMAC-SHA1 (RFC 2202 test case 2) from the key's own SHA-1 pads.
        let jefe = SymmetricKey::from_slice(b"Jefe").expect("key");
        let mut t = [0u8; 20];
        jefe.hmac(MacAlgorithm::Sha1, b"what do ya want for nothing?", &mut t)
            .expect("hmac");
        assert_eq!(
            t.to_vec(),
            crate::crypto::unhex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
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
