//! The event value of a record: exactly one JSON value (RFC 8259, any number), with no raw
//! control characters (so no embedded newline) and arrays and objects nested at most
//! [`MAX_DEPTH`] deep. Checked by [`crate::json::validate`]: nothing built, no allocation
//! (the writer's and the verifier's hot path). UTF-8 is checked by the caller.

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// Whether `s` is exactly one JSON value (surrounding whitespace allowed).
#[inline]
pub fn is_json_value(s: &[u8]) -> bool {
    crate::json::validate::is_json_value(s, MAX_DEPTH)
}

#[cfg(test)]
mod tests {
    use super::is_json_value;

    #[test]
    fn accepts_and_refuses() {
        for ok in [
            &b"{}"[..],
            b"[]",
            b"\"x\"",
            b"0",
            b"-1.5e+3",
            b"{\"a\":[1,true,null,{\"b\":\"\\u00e9\\n\"}]}",
            b" { \"a\" : 1 } ",
            "\"é\"".as_bytes(),
        ] {
            assert!(is_json_value(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"[1,]",
            b"01",
            b"1.",
            b"\"a\nb\"",
            b"\"\\x\"",
            b"{} {}",
            b"nul",
            b"\"\\u12\"",
            b"-",
        ] {
            assert!(!is_json_value(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!is_json_value(deep.as_bytes()));
        let ok = "[".repeat(100) + &"]".repeat(100);
        assert!(is_json_value(ok.as_bytes()));
    }
}
