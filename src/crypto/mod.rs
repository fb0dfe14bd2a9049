//! Cryptography over secret bytes held in [`crate::memory`] regions. No Python here.

pub mod aead_suite;
pub mod argon2;
pub mod ct;
pub mod curve;
pub mod ec;
pub mod ec_der;
pub mod ed25519;
pub mod hkdf;
pub mod hmac;
pub mod key_kind;
pub mod pkcs8;
pub mod rsa;
pub mod scrub;
pub mod sha1_core;
pub mod sha2_core;
pub mod signer_keys;
pub mod symmetric;
pub mod tag;
pub mod x25519;

/// Test vectors' hex (whitespace ignored), decoded independently of [`crate::encoding`].
#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
