//! Cryptography over secret bytes held in [`crate::memory`] regions. No Python here.

pub mod aead;
pub mod ct;
pub mod hkdf;
pub mod hmac;
pub mod kdf;
pub mod symmetric;
