//! The key derivations of token signers that predate HKDF, so that keycell can issue and
//! verify their tokens with the derived key kept in a guarded region:
//!
//! - [`digest_key`]: `H(prefix || key)`, the `concat` and `django-concat` derivations of
//!   itsdangerous and Django's `salted_hmac` (`H(key_salt + secret)`);
//! - [`hmac_key`]: `HMAC(key, data)` as a key, itsdangerous's `hmac` derivation.
//!
//! `H` is SHA-1 (these formats' default) or a SHA-2 hash, named by a [`MacAlgorithm`]
//! because its only use is as an HMAC key of the same hash. The running hash states are
//! the wiping cores of `sha1_core.rs` and `sha2_core.rs`, on the stack and zeroized before
//! the call returns; the digest is written straight into the new key's region. Neither
//! derivation is a modern KDF: use [`super::hkdf`] for anything new.

use crate::memory::MemoryError;

use super::hmac::MacAlgorithm;
use super::sha1_core;
use super::sha2_core::Running;
use super::symmetric::{KeyError, SymmetricKey};

/// The hash of `alg` over the concatenation of `parts`, written to `out`
/// (`alg.digest_len()` bytes). The running state is wiped when it drops here.
fn hash_parts(alg: MacAlgorithm, parts: &[&[u8]], out: &mut [u8]) {
    match alg.sha2() {
        Some(sha2) => {
            let mut h = Running::new(sha2);
            for part in parts {
                h.update(part);
            }
            h.finalize_into(out);
        }
        None => {
            let mut h = sha1_core::Running::new();
            for part in parts {
                h.update(part);
            }
            h.finalize_into(out);
        }
    }
}

/// A new key `H(prefix || key)` of `alg.digest_len()` bytes, hashed straight into its
/// guarded region (allocated as a derived secret: pooled unless page isolation is asked
/// for). Digest lengths are valid key lengths, so the only failure is the memory layer's.
pub fn digest_key(
    alg: MacAlgorithm,
    prefix: &[u8],
    key: &SymmetricKey,
) -> Result<SymmetricKey, KeyError<MemoryError>> {
    let secret = key.bytes()?;
    SymmetricKey::new_derived_with(alg.digest_len(), |out| {
        hash_parts(alg, &[prefix, secret], out);
        Ok(())
    })
}

/// A new key `HMAC(key, data)` of `alg.digest_len()` bytes, computed from the key's
/// precomputed pads straight into its guarded region.
pub fn hmac_key(
    alg: MacAlgorithm,
    key: &SymmetricKey,
    data: &[u8],
) -> Result<SymmetricKey, KeyError<MemoryError>> {
    SymmetricKey::new_derived_with(alg.digest_len(), |out| key.hmac(alg, data, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex as hex;

    fn derived(alg: MacAlgorithm, prefix: &[u8], key: &[u8]) -> Vec<u8> {
        let key = SymmetricKey::from_slice(key).expect("key");
        let out = digest_key(alg, prefix, &key).expect("derive");
        out.bytes().expect("bytes").to_vec()
    }

    // FIPS 180 "abc" digests, split between the prefix and the key at every point.
    #[test]
    fn digest_key_is_the_hash_of_the_concatenation() {
        let cases = [
            (
                MacAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                MacAlgorithm::from_name("sha256").expect("alg"),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                MacAlgorithm::from_name("sha384").expect("alg"),
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                MacAlgorithm::from_name("sha512").expect("alg"),
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (alg, want) in cases {
            for split in 0..3 {
                let (prefix, key) = b"abc".split_at(split);
                if key.is_empty() {
                    continue;
                }
                assert_eq!(derived(alg, prefix, key), hex(want), "{alg:?} {split}");
            }
        }
    }

    #[test]
    fn digest_key_over_several_blocks() {
        use sha1::Digest as _;
        let prefix: Vec<u8> = (0..150u8).collect();
        let key: Vec<u8> = (0..100u8).map(|b| b ^ 0x5a).collect();
        let whole = [prefix.clone(), key.clone()].concat();
        assert_eq!(
            derived(MacAlgorithm::Sha1, &prefix, &key),
            sha1::Sha1::digest(&whole).to_vec()
        );
        let sha512 = MacAlgorithm::from_name("sha512").expect("alg");
        assert_eq!(
            derived(sha512, &prefix, &key),
            sha2::Sha512::digest(&whole).to_vec()
        );
    }

    // RFC 2202 / RFC 4231 test case 2 ("Jefe"), as a derived key.
    #[test]
    fn hmac_key_is_the_hmac() {
        let key = SymmetricKey::from_slice(b"Jefe").expect("key");
        let msg = b"what do ya want for nothing?";
        for (alg, want) in [
            ("sha1", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (
                "sha256",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
        ] {
            let alg = MacAlgorithm::from_name(alg).expect("alg");
            let out = hmac_key(alg, &key, msg).expect("hmac key");
            assert_eq!(out.bytes().expect("bytes"), hex(want).as_slice());
        }
    }
}
