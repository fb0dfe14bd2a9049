//! The HMAC of an OTP key: SHA-1 (the RFC default), SHA-256 or SHA-512 (RFC 6238).

use crate::crypto::hmac::{HashAlgorithm, MacAlgorithm};

/// The hash of an OTP key's HMAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Largest digest of any [`OtpAlgorithm`].
pub const MAX_OTP_DIGEST_LEN: usize = 64;

impl OtpAlgorithm {
    /// All algorithms.
    pub const ALL: [OtpAlgorithm; 3] = [
        OtpAlgorithm::Sha1,
        OtpAlgorithm::Sha256,
        OtpAlgorithm::Sha512,
    ];

    /// Parse `"sha1"`, `"sha256"` or `"sha512"` (case-insensitive, `-` allowed, so the
    /// URI spellings `SHA1`/`SHA256`/`SHA512` parse too).
    pub fn from_name(name: &str) -> Option<Self> {
        let norm: String = name
            .chars()
            .filter(|&c| c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Self::ALL.into_iter().find(|a| a.name() == norm)
    }

    /// Canonical lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "sha1",
            OtpAlgorithm::Sha256 => "sha256",
            OtpAlgorithm::Sha512 => "sha512",
        }
    }

    /// The spelling of `otpauth://` URIs (`SHA1`, `SHA256`, `SHA512`).
    pub fn uri_name(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "SHA1",
            OtpAlgorithm::Sha256 => "SHA256",
            OtpAlgorithm::Sha512 => "SHA512",
        }
    }

    /// The HMAC algorithm.
    pub fn mac(self) -> MacAlgorithm {
        match self {
            OtpAlgorithm::Sha1 => MacAlgorithm::Sha1,
            OtpAlgorithm::Sha256 => MacAlgorithm::Sha2(HashAlgorithm::Sha256),
            OtpAlgorithm::Sha512 => MacAlgorithm::Sha2(HashAlgorithm::Sha512),
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        self.mac().digest_len()
    }

    /// Bytes of the precomputed pads.
    pub fn pads_len(self) -> usize {
        self.mac().pads_len()
    }

    /// Compute the pads of `key` into `out` ([`Self::pads_len`] bytes).
    pub fn precompute_pads(self, key: &[u8], out: &mut [u8]) {
        self.mac().precompute_pads(key, out);
    }

    /// HMAC of `msg` with precomputed `pads`; writes [`Self::digest_len`] bytes to `out`.
    pub fn mac_with_pads(self, pads: &[u8], msg: &[u8], out: &mut [u8]) {
        self.mac().mac_with_pads(pads, msg, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for alg in OtpAlgorithm::ALL {
            assert_eq!(OtpAlgorithm::from_name(alg.name()), Some(alg));
            assert_eq!(OtpAlgorithm::from_name(alg.uri_name()), Some(alg));
        }
        assert_eq!(OtpAlgorithm::from_name("SHA-1"), Some(OtpAlgorithm::Sha1));
        for bad in ["sha384", "md5", "", "sha"] {
            assert_eq!(OtpAlgorithm::from_name(bad), None);
        }
    }

    #[test]
    fn pads_match_plain_hmac() {
        for alg in OtpAlgorithm::ALL {
            let key = b"12345678901234567890";
            let mut pads = vec![0u8; alg.pads_len()];
            alg.precompute_pads(key, &mut pads);
            let mut a = [0u8; MAX_OTP_DIGEST_LEN];
            alg.mac_with_pads(&pads, b"msg", &mut a);
            let mut b = [0u8; MAX_OTP_DIGEST_LEN];
            match alg.mac().sha2() {
                None => crate::crypto::sha1_core::hmac(key, b"msg", &mut b),
                Some(h) => crate::crypto::hmac::hmac(h, key, b"msg", &mut b),
            }
            assert_eq!(a, b, "{alg:?}");
        }
    }
}
