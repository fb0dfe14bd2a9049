//! The tag rule of every MAC verification.
//!
//! A tag of the full digest length is compared in full; a shorter tag of at least
//! [`MIN_TAG_LEN`] bytes is compared with the same number of leading bytes of the MAC
//! (truncated tags, RFC 2104 section 5); any other length never verifies. The comparison
//! runs in constant time; only the tag's length (public) decides which bytes are compared.

use super::ct::ct_eq;

/// Shortest truncated tag a verification accepts (bytes).
pub const MIN_TAG_LEN: usize = 16;

/// Whether `tag` matches the full-length MAC `expected` under the tag rule above.
pub fn tag_matches(expected: &[u8], tag: &[u8]) -> bool {
    tag.len() >= MIN_TAG_LEN && tag.len() <= expected.len() && ct_eq(&expected[..tag.len()], tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_truncated_tags() {
        let mac = [7u8; 32];
        assert!(tag_matches(&mac, &mac));
        assert!(tag_matches(&mac, &mac[..MIN_TAG_LEN]));
        assert!(tag_matches(&mac, &mac[..20]));
    }

    #[test]
    fn short_long_and_wrong_tags_fail() {
        let mac = [7u8; 32];
        assert!(!tag_matches(&mac, &mac[..MIN_TAG_LEN - 1]));
        assert!(!tag_matches(&mac, &[]));
        let mut long = [7u8; 33];
        assert!(!tag_matches(&mac, &long));
        long[0] = 8;
        assert!(!tag_matches(&mac, &long[..32]));
        let mut wrong = mac;
        wrong[31] ^= 1;
        assert!(!tag_matches(&mac, &wrong));
    }
}
