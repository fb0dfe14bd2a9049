//! HKDF (RFC 5869) over [`super::hmac`], with every secret in a guarded region.
//!
//! Why not the `hkdf` crate: it keeps the pseudorandom key (PRK) inside an `Hmac` value
//! in ordinary memory and returns output through a caller buffer that would have to be
//! copied into a region afterwards. keycell needs the PRK to live in a guarded region
//! (it is a key as secret as the input), and each output block `T(i)` to be written
//! straight into the output key's region. So:
//!
//! - **extract** writes `PRK = HMAC(salt, IKM)` directly into a new [`SymmetricKey`]
//!   (for `hkdf_extract`); **derive** (extract then expand in one call) keeps only the
//!   PRK's HMAC pads, in one guarded region, so expand costs two compressions per output
//!   block (for short `info`);
//! - **expand** allocates the output [`SymmetricKey`] and computes
//!   `T(i) = HMAC(PRK, T(i-1) | info | i)` straight into its region, reading `T(i-1)`
//!   back from the region; only the last, partial block passes through a stack buffer,
//!   which is wiped. The HMAC working states are wiped by [`super::hmac`].
//!
//! The salt and `info` are public inputs. A missing salt means `HashLen` zero bytes.

use zeroize::Zeroize;

use crate::memory::{MemoryError, SecretBuf};

use super::hmac::{self, HashAlgorithm, MAX_DIGEST_LEN};
use super::symmetric::{KeyError, SymmetricKey};

/// Errors of HKDF.
#[derive(Debug)]
pub enum HkdfError {
    /// The output length is not in `1..=max` (`max` = 255 x the digest length).
    OutputLength { max: usize },
    /// The memory layer failed.
    Memory(MemoryError),
}

impl From<MemoryError> for HkdfError {
    fn from(e: MemoryError) -> Self {
        HkdfError::Memory(e)
    }
}

/// Map an allocation error of an output key whose length `max` bounds.
fn key_error(max: usize) -> impl Fn(KeyError<std::convert::Infallible>) -> HkdfError {
    move |e| match e {
        // Lengths are checked before allocating (255 x 64 < MAX_KEY_LEN), so this cannot
        // happen; it would still be reported as a length error, never as a panic.
        KeyError::Length(_) => HkdfError::OutputLength { max },
        KeyError::Memory(m) => HkdfError::Memory(m),
        KeyError::Fill(never) => match never {},
    }
}

/// The largest output HKDF can produce with `alg`: 255 x its digest length.
pub fn max_output_len(alg: HashAlgorithm) -> usize {
    255 * alg.digest_len()
}

/// HKDF-Extract: `PRK = HMAC(salt, ikm)`, written straight into a new guarded key of
/// `alg.digest_len()` bytes. `salt = None` means `HashLen` zero bytes.
pub fn extract(
    alg: HashAlgorithm,
    salt: Option<&[u8]>,
    ikm: &[u8],
) -> Result<SymmetricKey, HkdfError> {
    let zeros = [0u8; MAX_DIGEST_LEN];
    let salt = salt.unwrap_or(&zeros[..alg.digest_len()]);
    SymmetricKey::new_derived_with(alg.digest_len(), |prk| {
        hmac::hmac(alg, salt, ikm, prk);
        Ok(())
    })
    .map_err(key_error(alg.digest_len()))
}

/// HKDF-Expand: `length` bytes of output keying material from `prk` and `info`, written
/// straight into a new guarded key. `length` must be in `1..=255 * HashLen`.
pub fn expand(
    alg: HashAlgorithm,
    prk: &SymmetricKey,
    info: &[u8],
    length: usize,
) -> Result<SymmetricKey, HkdfError> {
    check_output_len(alg, length)?;
    expand_with_pads(alg, prk.pads(alg)?, info, length)
}

/// `Ok` when `length` is in `1..=255 * HashLen`.
fn check_output_len(alg: HashAlgorithm, length: usize) -> Result<(), HkdfError> {
    let max = max_output_len(alg);
    if length == 0 || length > max {
        return Err(HkdfError::OutputLength { max });
    }
    Ok(())
}

/// HKDF-Expand with the PRK's HMAC `pads` (its inner and outer midstates).
fn expand_with_pads(
    alg: HashAlgorithm,
    pads: &[u8],
    info: &[u8],
    length: usize,
) -> Result<SymmetricKey, HkdfError> {
    let dl = alg.digest_len();
    SymmetricKey::new_derived_with(length, |okm| {
        let mut last = [0u8; MAX_DIGEST_LEN];
        for (i, start) in (0..length).step_by(dl).enumerate() {
            // i < 255 because length <= 255 * dl.
            let counter = [(i + 1) as u8];
            let (done, rest) = okm.split_at_mut(start);
            let prev: &[u8] = &done[start.saturating_sub(dl)..];
            let parts = [prev, info, &counter[..]];
            if rest.len() >= dl {
                hmac::hmac_with_pads_parts(alg, pads, &parts, &mut rest[..dl]);
            } else {
                hmac::hmac_with_pads_parts(alg, pads, &parts, &mut last[..dl]);
                let n = rest.len();
                rest.copy_from_slice(&last[..n]);
            }
        }
        last[..].zeroize();
        Ok(())
    })
    .map_err(key_error(max_output_len(alg)))
}

/// Extract then expand (RFC 5869 section 2). Only the PRK's HMAC pads are kept, in one
/// guarded region wiped before this returns: the PRK itself passes through a stack buffer
/// that is wiped as soon as the pads are computed. One region besides the output, not two
/// (the PRK key and its pads).
pub fn derive(
    alg: HashAlgorithm,
    ikm: &[u8],
    salt: Option<&[u8]>,
    info: &[u8],
    length: usize,
) -> Result<SymmetricKey, HkdfError> {
    check_output_len(alg, length)?;
    let zeros = [0u8; MAX_DIGEST_LEN];
    let salt = salt.unwrap_or(&zeros[..alg.digest_len()]);
    // The PRK's pads live for this call only: derived, so pooled under the default policy.
    let pads =
        SecretBuf::new_with_in(crate::memory::derived_allocator(), alg.pads_len(), |pads| {
            let mut prk = [0u8; MAX_DIGEST_LEN];
            hmac::hmac(alg, salt, ikm, &mut prk[..alg.digest_len()]);
            hmac::precompute_pads(alg, &prk[..alg.digest_len()], pads);
            prk.zeroize();
            Ok::<(), MemoryError>(())
        })?;
    expand_with_pads(alg, pads.bytes()?, info, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex as hex;

    struct Case {
        ikm: Vec<u8>,
        salt: Vec<u8>,
        info: Vec<u8>,
        len: usize,
        prk: &'static str,
        okm: &'static str,
    }

    // RFC 5869 appendix A, test cases 1-3 (SHA-256).
    fn rfc5869() -> Vec<Case> {
        vec![
            Case {
                ikm: vec![0x0b; 22],
                salt: hex("000102030405060708090a0b0c"),
                info: hex("f0f1f2f3f4f5f6f7f8f9"),
                len: 42,
                prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            },
            Case {
                ikm: (0x00..=0x4fu8).collect(),
                salt: (0x60..=0xafu8).collect(),
                info: (0xb0..=0xffu8).collect(),
                len: 82,
                prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
                okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
            },
            Case {
                ikm: vec![0x0b; 22],
                salt: vec![],
                info: vec![],
                len: 42,
                prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
                okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            },
        ]
    }

    #[test]
    fn rfc5869_test_cases_1_to_3() {
        let alg = HashAlgorithm::Sha256;
        for (n, c) in rfc5869().iter().enumerate() {
            let prk = extract(alg, Some(&c.salt), &c.ikm).expect("extract");
            assert_eq!(
                prk.bytes().expect("prk"),
                hex(c.prk).as_slice(),
                "case {}",
                n + 1
            );
            let okm = expand(alg, &prk, &c.info, c.len).expect("expand");
            assert_eq!(
                okm.bytes().expect("okm"),
                hex(c.okm).as_slice(),
                "case {}",
                n + 1
            );
            let okm2 = derive(alg, &c.ikm, Some(&c.salt), &c.info, c.len).expect("derive");
            assert_eq!(
                okm2.bytes().expect("okm"),
                hex(c.okm).as_slice(),
                "case {}",
                n + 1
            );
        }
    }

    #[test]
    fn missing_salt_is_hashlen_zeros() {
        for alg in HashAlgorithm::ALL {
            let zeros = vec![0u8; alg.digest_len()];
            let a = extract(alg, None, b"input keying material").expect("a");
            let b = extract(alg, Some(&zeros), b"input keying material").expect("b");
            let c = extract(alg, Some(b""), b"input keying material").expect("c");
            assert_eq!(a.bytes().expect("a"), b.bytes().expect("b"));
            // An empty HMAC key is zero-padded to a block, like HashLen zeros.
            assert_eq!(a.bytes().expect("a"), c.bytes().expect("c"));
        }
    }

    #[test]
    fn output_lengths() {
        for alg in HashAlgorithm::ALL {
            let prk = extract(alg, Some(b"salt"), b"ikm").expect("prk");
            let max = max_output_len(alg);
            let full = expand(alg, &prk, b"info", max).expect("max");
            assert_eq!(full.len(), max);
            // Every shorter output is a prefix of the longer one.
            for len in [
                1,
                alg.digest_len() - 1,
                alg.digest_len(),
                alg.digest_len() + 1,
                1000,
            ] {
                let okm = expand(alg, &prk, b"info", len).expect("len");
                assert_eq!(
                    okm.bytes().expect("okm"),
                    &full.bytes().expect("full")[..len]
                );
            }
            assert!(matches!(
                expand(alg, &prk, b"info", 0),
                Err(HkdfError::OutputLength { .. })
            ));
            assert!(matches!(
                expand(alg, &prk, b"info", max + 1),
                Err(HkdfError::OutputLength { max: m }) if m == max
            ));
            assert!(matches!(
                derive(alg, b"ikm", None, b"", max + 1),
                Err(HkdfError::OutputLength { .. })
            ));
        }
    }

    // Expand against a direct transcription of RFC 5869 section 2.3 over the plain HMAC
    // function (T(0) empty, T(i) = HMAC(PRK, T(i-1) | info | i)).
    #[test]
    fn expand_matches_textbook_definition() {
        for alg in HashAlgorithm::ALL {
            let dl = alg.digest_len();
            let info: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
            let prk = extract(alg, Some(b"some salt"), b"some ikm").expect("prk");
            let prk_bytes = prk.bytes().expect("prk").to_vec();
            let len = 7 * dl + 5;
            let mut expect = Vec::new();
            let mut t: Vec<u8> = Vec::new();
            for i in 1..=8u8 {
                let mut msg = t.clone();
                msg.extend_from_slice(&info);
                msg.push(i);
                let mut out = [0u8; 64];
                hmac::hmac(alg, &prk_bytes, &msg, &mut out);
                t = out[..dl].to_vec();
                expect.extend_from_slice(&t);
            }
            let okm = expand(alg, &prk, &info, len).expect("okm");
            assert_eq!(okm.bytes().expect("okm"), &expect[..len], "{alg:?}");
        }
    }
}
