//! Cryptography over secret bytes held in [`crate::memory`] regions. No Python here.

pub mod aead;
pub mod ct;
pub mod curve;
pub mod ed25519;
pub mod hkdf;
pub mod hmac;
pub mod kdf;
pub mod pkcs8;
pub mod scrub;
pub mod symmetric;
pub mod x25519;
