//! Constant-time comparison.

use subtle::ConstantTimeEq;

/// Compare two byte strings in time that depends only on their lengths (as
/// `hmac.compare_digest`: different lengths compare unequal at once, which reveals only the
/// lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
