//! Whether bytes are exactly one JSON value (RFC 8259; surrounding whitespace allowed):
//! checked, nothing built. No allocation, and nesting bounded by the caller, so it suits a
//! hot path and untrusted input alike.

use super::scan;

/// Whether `s` is exactly one JSON value, with arrays and objects nested at most
/// `max_depth` deep. Any RFC 8259 number; no raw control characters in strings.
pub fn is_json_value(s: &[u8], max_depth: usize) -> bool {
    let v = Validator { s, max_depth };
    match v.value(scan::skip_ws(s, 0), 0) {
        Some(end) => scan::skip_ws(s, end) == s.len(),
        None => false,
    }
}

struct Validator<'a> {
    s: &'a [u8],
    max_depth: usize,
}

impl Validator<'_> {
    /// The value at `i` (not whitespace), inside `depth` arrays or objects: the index after it.
    fn value(&self, i: usize, depth: usize) -> Option<usize> {
        let s = self.s;
        match s.get(i)? {
            b'{' => self.object(i, depth + 1),
            b'[' => self.array(i, depth + 1),
            b'"' => scan::skip_string(s, i).ok(),
            b't' => scan::literal(s, i, b"true").ok(),
            b'f' => scan::literal(s, i, b"false").ok(),
            b'n' => scan::literal(s, i, b"null").ok(),
            b'-' | b'0'..=b'9' => scan::number(s, i).ok(),
            _ => None,
        }
    }

    fn array(&self, i: usize, depth: usize) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let s = self.s;
        let mut i = scan::skip_ws(s, i + 1);
        if s.get(i) == Some(&b']') {
            return Some(i + 1);
        }
        loop {
            i = scan::skip_ws(s, self.value(i, depth)?);
            match s.get(i)? {
                b',' => i = scan::skip_ws(s, i + 1),
                b']' => return Some(i + 1),
                _ => return None,
            }
        }
    }

    fn object(&self, i: usize, depth: usize) -> Option<usize> {
        if depth > self.max_depth {
            return None;
        }
        let s = self.s;
        let mut i = scan::skip_ws(s, i + 1);
        if s.get(i) == Some(&b'}') {
            return Some(i + 1);
        }
        loop {
            if s.get(i) != Some(&b'"') {
                return None;
            }
            i = scan::skip_ws(s, scan::skip_string(s, i).ok()?);
            if s.get(i) != Some(&b':') {
                return None;
            }
            i = scan::skip_ws(s, i + 1);
            i = scan::skip_ws(s, self.value(i, depth)?);
            match s.get(i)? {
                b',' => i = scan::skip_ws(s, i + 1),
                b'}' => return Some(i + 1),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_json_value;

    #[test]
    fn depth_is_the_callers() {
        let nest = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(is_json_value(nest(3).as_bytes(), 3));
        assert!(!is_json_value(nest(4).as_bytes(), 3));
        assert!(is_json_value(b"[{\"a\":[]}]", 3));
        assert!(!is_json_value(b"[{\"a\":[{}]}]", 3));
        assert!(is_json_value(b"1", 0));
        assert!(!is_json_value(b"[]", 0));
    }

    #[test]
    fn grammar() {
        for ok in [
            &b" -0.0e-0 "[..],
            b"\"\\ud800\"",
            b"[ 1 , { } , [ ] ]",
            b"\"\x7f\xff\"",
        ] {
            assert!(is_json_value(ok, 8), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"0 1"[..],
            b"1e",
            b"[1 2]",
            b"{\"a\" 1}",
            b"{,}",
            b"\"\\u00\"",
            b"\x0b1",
        ] {
            assert!(!is_json_value(bad, 8), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
