//! The forward-secure MAC key: one key per epoch, each derived from the one before by a
//! one-way step, every one in a guarded region.
//!
//! ```text
//! E_0     = HKDF-SHA256(IKM = K0,  salt = none, info = "keycell audit v1 epoch key" || u64be(0),     L = 32)
//! E_(n+1) = HKDF-SHA256(IKM = E_n, salt = none, info = "keycell audit v1 epoch key" || u64be(n + 1), L = 32)
//! ```
//!
//! `K0` (at least 32 bytes) is the verification key: it is never stored beside the log.
//! HKDF runs in `crypto::hkdf`, which writes the output straight into a new guarded key and
//! wipes its intermediate values. The old epoch key is dropped (wiped, unlocked, unmapped)
//! as soon as its successor exists; nobody who learns `E_n` can compute `E_m` for `m < n`.

use crate::crypto::hkdf::{self, HkdfError};
use crate::crypto::hmac::HashAlgorithm;
use crate::crypto::symmetric::{KeyError, SymmetricKey};
use crate::crypto::tag::tag_matches;
use crate::memory::{MemoryError, Protection};

/// Length of an epoch key.
pub const EPOCH_KEY_LEN: usize = 32;
/// The shortest accepted `K0`.
pub const MIN_K0_LEN: usize = 32;
const INFO: &[u8] = b"keycell audit v1 epoch key";

/// The MAC key of one epoch.
#[derive(Debug)]
pub struct EpochKey {
    epoch: u64,
    key: SymmetricKey,
}

fn hkdf_error(e: HkdfError) -> MemoryError {
    match e {
        HkdfError::Memory(m) => m,
        // 32 bytes is always a valid HKDF-SHA256 output length.
        HkdfError::OutputLength { .. } => MemoryError::InvalidLength { len: EPOCH_KEY_LEN },
    }
}

fn derive(ikm: &[u8], epoch: u64) -> Result<SymmetricKey, MemoryError> {
    let mut info = [0u8; INFO.len() + 8];
    info[..INFO.len()].copy_from_slice(INFO);
    info[INFO.len()..].copy_from_slice(&epoch.to_be_bytes());
    hkdf::derive(HashAlgorithm::Sha256, ikm, None, &info, EPOCH_KEY_LEN).map_err(hkdf_error)
}

impl EpochKey {
    /// `E_0` from `K0` (the caller checks `K0` is at least [`MIN_K0_LEN`] bytes).
    pub fn first(k0: &[u8]) -> Result<EpochKey, MemoryError> {
        Ok(EpochKey {
            epoch: 0,
            key: derive(k0, 0)?,
        })
    }

    /// `E_epoch` from `K0`, stepping through every epoch before it (each intermediate key
    /// is dropped as soon as the next exists).
    pub fn from_k0(k0: &[u8], epoch: u64) -> Result<EpochKey, MemoryError> {
        let mut k = EpochKey::first(k0)?;
        while k.epoch < epoch {
            k = k.next()?;
        }
        Ok(k)
    }

    /// An epoch key read from the state file: `fill` writes the 32 key bytes straight into
    /// the guarded region.
    pub fn from_fill<E: From<MemoryError>>(
        epoch: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<EpochKey, E> {
        let key = SymmetricKey::new_with(EPOCH_KEY_LEN, fill).map_err(|e| match e {
            KeyError::Fill(f) => f,
            KeyError::Memory(m) => E::from(m),
            KeyError::Length(n) => E::from(MemoryError::InvalidLength { len: n }),
        })?;
        Ok(EpochKey { epoch, key })
    }

    /// The key of the next epoch. `self` stays valid; drop it to destroy it.
    pub fn next(&self) -> Result<EpochKey, MemoryError> {
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(MemoryError::InvalidLength { len: 0 })?;
        Ok(EpochKey {
            epoch,
            key: derive(self.key.bytes()?, epoch)?,
        })
    }

    /// Step this key forward to `epoch` (no-op when already there), dropping each old key.
    pub fn advance_to(&mut self, epoch: u64) -> Result<(), MemoryError> {
        while self.epoch < epoch {
            *self = self.next()?;
        }
        Ok(())
    }

    /// The protection of the key's regions (the weakest of the key and its HMAC pads).
    pub fn protection(&self) -> Protection {
        self.key.protection()
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The key bytes (for the state file, which is encoded in a guarded region).
    pub fn bytes(&self) -> Result<&[u8], MemoryError> {
        self.key.bytes()
    }

    /// HMAC-SHA256 of `msg`.
    pub fn mac(&self, msg: &[u8]) -> Result<[u8; 32], MemoryError> {
        let mut out = [0u8; 32];
        self.key.hmac(HashAlgorithm::Sha256, msg, &mut out)?;
        Ok(out)
    }

    /// Whether `mac` is the HMAC of `msg` (constant-time comparison).
    pub fn check(&self, msg: &[u8], mac: &[u8; 32]) -> Result<bool, MemoryError> {
        Ok(tag_matches(&self.mac(msg)?, mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_deterministic_and_distinct() {
        let k0 = [7u8; 32];
        let e0 = EpochKey::first(&k0).expect("e0");
        let e1 = e0.next().expect("e1");
        let e1b = EpochKey::from_k0(&k0, 1).expect("e1b");
        assert_eq!(e1.bytes().expect("b"), e1b.bytes().expect("b"));
        assert_ne!(e0.bytes().expect("b"), e1.bytes().expect("b"));
        assert_ne!(e0.bytes().expect("b"), &k0[..]);
        let mac = e1.mac(b"line").expect("mac");
        assert!(e1b.check(b"line", &mac).expect("check"));
        assert!(!e0.check(b"line", &mac).expect("check"));
        let mut e = EpochKey::first(&k0).expect("e");
        e.advance_to(5).expect("advance");
        assert_eq!(e.epoch(), 5);
        assert_eq!(
            e.bytes().expect("b"),
            EpochKey::from_k0(&k0, 5).expect("e5").bytes().expect("b")
        );
    }
}
