//! One-time passwords (HOTP, RFC 4226; TOTP, RFC 6238) over a secret in a guarded region.
//! No Python here.
//!
//! - [`algorithm`]: HMAC-SHA1/256/512 with the pads cached in the key's region.
//! - [`base32`]: decoding a base32 secret straight into a region (and encoding one for a
//!   provisioning URI).
//! - [`key`]: [`OtpKey`], the region that holds the pads and the secret, and the code
//!   computation and constant-time window check.
//! - [`time`]: TOTP time steps ([`TimeStep`]) and the system clock.
//! - [`truncate`]: RFC 4226 dynamic truncation and the decimal reduction, in constant time.
//! - [`uri`]: `otpauth://` URIs: loading a key and its parameters from one, writing one.

pub mod algorithm;
pub mod base32;
pub mod key;
pub mod time;
pub mod truncate;
pub mod uri;

pub use algorithm::OtpAlgorithm;
pub use key::{Digits, OtpKey};
pub use time::TimeStep;

use crate::memory::MemoryError;

/// Shortest secret accepted unless the caller opts in to short ones (128 bits, RFC 4226
/// section 4 requirement R6).
pub const MIN_SECRET_LEN: usize = 16;

/// Longest secret accepted (the same limit as a `SecretKey`).
pub const MAX_SECRET_LEN: usize = crate::crypto::symmetric::MAX_KEY_LEN;

/// Why an OTP key or URI could not be built. No variant carries secret bytes or the length
/// of the secret that was rejected.
#[derive(Debug)]
pub enum OtpError {
    /// The secret is shorter than [`MIN_SECRET_LEN`] and short secrets were not allowed.
    ShortSecret,
    /// The secret is empty or longer than [`MAX_SECRET_LEN`].
    SecretLength,
    /// The base32 text is not valid base32.
    Base32,
    /// The `otpauth://` URI is malformed; the message names the part.
    Uri(&'static str),
    /// A TOTP period is not a positive number of seconds.
    Period,
    /// A time is before the TOTP's `t0`.
    BeforeT0,
    /// The system clock reads a time before 1970.
    ClockBeforeEpoch,
    /// A time does not fit in 64 bits of seconds.
    TimeOutOfRange,
    /// The memory layer failed.
    Memory(MemoryError),
}

impl From<MemoryError> for OtpError {
    fn from(e: MemoryError) -> Self {
        OtpError::Memory(e)
    }
}

/// Check a secret length: `ShortSecret` below [`MIN_SECRET_LEN`] unless `allow_short`,
/// `SecretLength` when empty or above [`MAX_SECRET_LEN`].
pub fn check_secret_len(len: usize, allow_short: bool) -> Result<(), OtpError> {
    if len == 0 || len > MAX_SECRET_LEN {
        Err(OtpError::SecretLength)
    } else if len < MIN_SECRET_LEN && !allow_short {
        Err(OtpError::ShortSecret)
    } else {
        Ok(())
    }
}
