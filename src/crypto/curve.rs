//! What Ed25519 and X25519 private keys have in common, so that key files, the key store
//! and the bindings handle both through one code path: 32 secret bytes in a guarded region
//! (the RFC 8032 seed, the RFC 7748 scalar), written there once by a fill function, and a
//! public key derived from them at creation.

use crate::memory::{MemoryError, Protection};

/// Length of a raw Ed25519 / X25519 key (private or public).
pub const KEY_LEN: usize = 32;

/// The curve algorithm of a key (names it in messages; PKCS#8 and key files tell the two
/// apart by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    X25519,
}

impl Algorithm {
    /// Name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::X25519 => "X25519",
        }
    }
}

/// An Ed25519 or X25519 private key held in a guarded region.
pub trait CurvePrivateKey: Sized + Send + Sync {
    /// The algorithm (names the key in messages and in PKCS#8).
    const ALGORITHM: Algorithm;

    /// Build a key whose [`KEY_LEN`] bytes `fill` writes straight into the region;
    /// everything derived from them (public key, expanded key) is computed at once.
    fn new_with<E: From<MemoryError>>(
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E>;

    /// The private key bytes as stored (seed or scalar), borrowed from the region: for
    /// writing a key file or sealing a key store entry, never to be copied to the heap.
    fn private_bytes(&self) -> Result<&[u8], MemoryError>;

    /// The public key.
    fn public_bytes(&self) -> &[u8; KEY_LEN];

    /// The region's protection.
    fn protection(&self) -> Protection;

    /// Fails in a fork child of the process that created the key.
    fn check(&self) -> Result<(), MemoryError> {
        self.private_bytes().map(|_| ())
    }

    /// A new key from the OS CSPRNG, straight into the region.
    fn generate() -> Result<Self, MemoryError> {
        Self::new_with(crate::memory::fill_random)
    }
}
