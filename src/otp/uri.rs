//! `otpauth://` provisioning URIs (the Google Authenticator key URI format).

/// Percent-encode `s` for a URI label or query value: unreserved characters and `@` stay.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        assert_eq!(percent_encode("alice@example.com"), "alice@example.com");
        assert_eq!(percent_encode("ACME Co:x/ü"), "ACME%20Co%3Ax%2F%C3%BC");
    }
}
