//! RFC 4226 section 5.3: dynamic truncation of the HMAC and reduction to `digits` decimal
//! digits, without secret-dependent branches or memory indexes.

use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The 31-bit value at the offset named by the last nibble of `mac` (at least 20 bytes).
/// Every candidate offset is read and the right one selected in constant time, so the
/// memory access pattern does not depend on the MAC.
pub fn dynamic_truncate(mac: &[u8]) -> u32 {
    let offset = mac[mac.len() - 1] & 0x0f;
    let mut v = 0u32;
    for i in 0..16u8 {
        let at = usize::from(i);
        let w = u32::from_be_bytes([mac[at], mac[at + 1], mac[at + 2], mac[at + 3]]);
        v.conditional_assign(&w, i.ct_eq(&offset));
    }
    v & 0x7fff_ffff
}

/// `v mod 10^digits` for `digits` in 6..=10, without a division instruction (whose time
/// can depend on its operands): a multiply by a precomputed reciprocal, then one
/// conditional subtraction done with masks.
pub fn reduce(v: u32, digits: u32) -> u64 {
    let p = 10u64.pow(digits);
    let v = u64::from(v);
    if p > u64::from(u32::MAX) {
        // 10 digits: the 31-bit value is already below 10^10 (decided by `digits`, public).
        return v;
    }
    let m = (u128::from(u64::MAX) / u128::from(p)) as u64;
    let q = ((u128::from(v) * u128::from(m)) >> 64) as u64;
    // q is floor(v / p) or one less, so r is in [0, 2p).
    let r = v - q * p;
    let less = r.wrapping_sub(p);
    // All ones when r < p (the subtraction wrapped), else zero.
    let keep = (less >> 63).wrapping_neg();
    (r & keep) | (less & !keep)
}

/// The HOTP value of `mac` with `digits` digits.
pub fn code_of_mac(mac: &[u8], digits: u32) -> u64 {
    reduce(dynamic_truncate(mac), digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_matches_modulo() {
        let mut x = 0x1234_5678u32;
        for digits in 6..=10 {
            let p = 10u64.pow(digits);
            for v in [
                0u32,
                1,
                999_999,
                1_000_000,
                0x7fff_ffff,
                (p as u32).wrapping_sub(1),
            ] {
                assert_eq!(
                    reduce(v & 0x7fff_ffff, digits),
                    u64::from(v & 0x7fff_ffff) % p
                );
            }
            for _ in 0..100_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let v = x & 0x7fff_ffff;
                assert_eq!(reduce(v, digits), u64::from(v) % p, "{v} {digits}");
            }
        }
    }

    // RFC 4226 section 5.4's example.
    #[test]
    fn rfc4226_truncation_example() {
        let mac = crate::crypto::unhex("1f8698690e02ca16618550ef7f19da8e945b555a");
        assert_eq!(dynamic_truncate(&mac), 0x50ef7f19);
        assert_eq!(code_of_mac(&mac, 6), 872_921);
    }
}
