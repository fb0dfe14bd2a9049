//! [`OtpKey`]: an OTP secret and its HMAC pads in one guarded region, and the code
//! computation and window check over it.
//!
//! Region layout (two parts, the secret last, like `crypto::symmetric::SymmetricKey`):
//!
//! ```text
//! [canary][ pads of the key's algorithm (40, 64 or 128) ][canary][ secret ] | guard
//! ```
//!
//! The pads are computed once, in the writable window in which the secret is written; a
//! code then costs four hash compressions and no key-derived state outside the region
//! survives the call.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroize;

use crate::memory::{MemoryError, Protection, SecretBuf};

use super::algorithm::{OtpAlgorithm, MAX_OTP_DIGEST_LEN};
use super::truncate::code_of_mac;
use super::{check_secret_len, OtpError};

const PADS: usize = 0;
const SECRET: usize = 1;

/// A number of code digits, 6 to 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digits(u32);

impl Digits {
    /// Smallest number of digits.
    pub const MIN: u32 = 6;
    /// Largest number of digits (a 31-bit truncated value has at most 10).
    pub const MAX: u32 = 10;

    /// `digits` if it is in `MIN..=MAX`.
    pub fn new(digits: u32) -> Option<Self> {
        (Self::MIN..=Self::MAX)
            .contains(&digits)
            .then_some(Digits(digits))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Format `code` with leading zeros.
    pub fn format(self, code: u64) -> String {
        format!("{code:0width$}", width = self.0 as usize)
    }

    /// Parse a code of exactly this many ASCII digits, or `None`.
    pub fn parse(self, text: &str) -> Option<u64> {
        let b = text.as_bytes();
        if b.len() != self.0 as usize || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            b.iter()
                .fold(0u64, |acc, &c| acc * 10 + u64::from(c - b'0')),
        )
    }
}

/// An OTP secret and its HMAC pads in a guarded region.
#[derive(Debug)]
pub struct OtpKey {
    alg: OtpAlgorithm,
    buf: SecretBuf,
}

impl OtpKey {
    /// Allocate a key of `len` secret bytes for `alg`, let `fill` write the secret straight
    /// into the region, then derive the pads. The length is checked first
    /// ([`check_secret_len`]).
    pub fn new_with(
        alg: OtpAlgorithm,
        len: usize,
        allow_short: bool,
        fill: impl FnOnce(&mut [u8]) -> Result<(), OtpError>,
    ) -> Result<Self, OtpError> {
        check_secret_len(len, allow_short)?;
        let buf = SecretBuf::new_parts_with([alg.pads_len(), len], |[pads, secret]| {
            fill(secret)?;
            alg.precompute_pads(secret, pads);
            Ok::<(), OtpError>(())
        })?;
        Ok(OtpKey { alg, buf })
    }

    /// A key copied from `secret` (e.g. a `SecretKey`'s bytes, borrowed under its lock).
    pub fn from_secret(
        alg: OtpAlgorithm,
        secret: &[u8],
        allow_short: bool,
    ) -> Result<Self, OtpError> {
        Self::new_with(alg, secret.len(), allow_short, |dst| {
            dst.copy_from_slice(secret);
            Ok(())
        })
    }

    /// A key decoded from base32 `text` straight into the region.
    pub fn from_base32(
        alg: OtpAlgorithm,
        text: &[u8],
        allow_short: bool,
    ) -> Result<Self, OtpError> {
        let len = super::base32::decoded_len(text)?;
        Self::new_with(alg, len, allow_short, |dst| {
            super::base32::decode_into(text, dst)
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> OtpAlgorithm {
        self.alg
    }

    /// The secret bytes.
    pub fn secret(&self) -> Result<&[u8], MemoryError> {
        self.buf.part(SECRET)
    }

    /// The region's protection.
    pub fn protection(&self) -> Protection {
        self.buf.protection()
    }

    fn code_with(&self, pads: &[u8], counter: u64, digits: Digits) -> u64 {
        let mut mac = [0u8; MAX_OTP_DIGEST_LEN];
        let dl = self.alg.digest_len();
        self.alg
            .mac_with_pads(pads, &counter.to_be_bytes(), &mut mac[..dl]);
        let code = code_of_mac(&mac[..dl], digits.get());
        mac[..].zeroize();
        code
    }

    /// The HOTP value for `counter` (RFC 4226), as a number below `10^digits`.
    pub fn code(&self, counter: u64, digits: Digits) -> Result<u64, MemoryError> {
        Ok(self.code_with(self.buf.part(PADS)?, counter, digits))
    }

    /// Check `code` against every counter in `first..=last`, refusing counters at or below
    /// `floor` (already used). Every candidate is computed and compared in constant time,
    /// with no early exit; the running time depends only on the window's size. Returns the
    /// lowest counter above `floor` whose code matches, or `None`.
    pub fn verify(
        &self,
        code: u64,
        digits: Digits,
        first: u64,
        last: u64,
        floor: Option<u64>,
    ) -> Result<Option<u64>, MemoryError> {
        let pads = self.buf.part(PADS)?;
        let mut found = Choice::from(0);
        let mut matched = 0u64;
        // `floor` is public; encode "no floor" as accepting every counter.
        let (has_floor, floor) = (Choice::from(u8::from(floor.is_some())), floor.unwrap_or(0));
        for counter in first..=last {
            let candidate = self.code_with(pads, counter, digits);
            let fresh = !has_floor | counter.ct_gt(&floor);
            let hit = candidate.ct_eq(&code) & fresh & !found;
            matched.conditional_assign(&counter, hit);
            found |= hit;
        }
        Ok(bool::from(found).then_some(matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_SECRET: &[u8] = b"12345678901234567890";

    // RFC 4226 Appendix D.
    #[test]
    fn rfc4226_appendix_d() {
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        let key = OtpKey::from_secret(OtpAlgorithm::Sha1, RFC4226_SECRET, true).expect("key");
        let six = Digits::new(6).expect("digits");
        for (counter, want) in want.into_iter().enumerate() {
            assert_eq!(key.code(counter as u64, six).expect("code"), want);
        }
    }

    // RFC 6238 Appendix B (8 digits), each algorithm with its own seed.
    #[test]
    fn rfc6238_appendix_b() {
        let seeds = [
            (OtpAlgorithm::Sha1, &b"12345678901234567890"[..]),
            (
                OtpAlgorithm::Sha256,
                &b"12345678901234567890123456789012"[..],
            ),
            (
                OtpAlgorithm::Sha512,
                &b"1234567890123456789012345678901234567890123456789012345678901234"[..],
            ),
        ];
        let rows: [(u64, [u64; 3]); 6] = [
            (59, [94287082, 46119246, 90693936]),
            (1111111109, [7081804, 68084774, 25091201]),
            (1111111111, [14050471, 67062674, 99943326]),
            (1234567890, [89005924, 91819424, 93441116]),
            (2000000000, [69279037, 90698825, 38618901]),
            (20000000000, [65353130, 77737706, 47863826]),
        ];
        let eight = Digits::new(8).expect("digits");
        for (i, (alg, seed)) in seeds.into_iter().enumerate() {
            let key = OtpKey::from_secret(alg, seed, false).expect("key");
            for (t, codes) in rows {
                assert_eq!(
                    key.code(t / 30, eight).expect("code"),
                    codes[i],
                    "{alg:?} {t}"
                );
            }
        }
    }

    #[test]
    fn window_and_floor() {
        let key = OtpKey::from_secret(OtpAlgorithm::Sha1, RFC4226_SECRET, true).expect("key");
        let six = Digits::new(6).expect("digits");
        let c5 = key.code(5, six).expect("code");
        assert_eq!(key.verify(c5, six, 4, 6, None).expect("v"), Some(5));
        assert_eq!(key.verify(c5, six, 6, 9, None).expect("v"), None);
        assert_eq!(key.verify(c5, six, 0, 9, Some(4)).expect("v"), Some(5));
        assert_eq!(key.verify(c5, six, 0, 9, Some(5)).expect("v"), None);
        assert_eq!(
            key.verify(c5, six, u64::MAX - 1, u64::MAX, None)
                .expect("v"),
            None
        );
        let top = key.code(u64::MAX, six).expect("code");
        assert_eq!(
            key.verify(top, six, u64::MAX - 2, u64::MAX, Some(u64::MAX - 1))
                .expect("v"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn short_secrets_need_opt_in() {
        let short = [7u8; 10];
        assert!(matches!(
            OtpKey::from_secret(OtpAlgorithm::Sha1, &short, false),
            Err(OtpError::ShortSecret)
        ));
        assert!(OtpKey::from_secret(OtpAlgorithm::Sha1, &short, true).is_ok());
        assert!(matches!(
            OtpKey::from_secret(OtpAlgorithm::Sha1, &[], true),
            Err(OtpError::SecretLength)
        ));
    }

    #[test]
    fn digits_parse_and_format() {
        let six = Digits::new(6).expect("digits");
        assert_eq!(six.parse("012345"), Some(12345));
        assert_eq!(six.format(12345), "012345");
        for bad in ["12345", "1234567", "12345a", " 12345", "١٢٣٤٥٦", "+12345"] {
            assert_eq!(six.parse(bad), None, "{bad}");
        }
        assert!(Digits::new(5).is_none() && Digits::new(11).is_none());
    }
}
