//! A strict JSON (RFC 8259) validator for the event value of a record: the verifier and the
//! writer accept only a complete, well-formed value with no raw control characters (so no
//! embedded newline). It checks, it does not build anything: no allocation, bounded depth.

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// Whether `s` is exactly one JSON value (surrounding whitespace allowed).
pub fn is_json_value(s: &[u8]) -> bool {
    let mut p = Parser { s, i: 0 };
    p.ws();
    if !p.value(0) {
        return false;
    }
    p.ws();
    p.i == s.len()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &[u8]) -> bool {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(),
            Some(b't') => self.lit(b"true"),
            Some(b'f') => self.lit(b"false"),
            Some(b'n') => self.lit(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return true;
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') || !self.string() {
                return false;
            }
            self.ws();
            if self.peek() != Some(b':') {
                return false;
            }
            self.i += 1;
            self.ws();
            if !self.value(depth) {
                return false;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return true;
        }
        loop {
            self.ws();
            if !self.value(depth) {
                return false;
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return true;
                }
                _ => return false,
            }
        }
    }

    fn string(&mut self) -> bool {
        self.i += 1;
        loop {
            // Skip plain characters in one tight loop (the common case).
            self.i += plain_len(&self.s[self.i..]);
            match self.peek() {
                None => return false,
                Some(b'"') => {
                    self.i += 1;
                    return true;
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.s.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return false;
                            }
                            self.i += 5;
                        }
                        _ => return false,
                    }
                }
                Some(_) => return false,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return false;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }
}

/// Length of the prefix of `s` without `"`, `\\` or control characters: eight bytes at a
/// time (SWAR: a lane is zero after XOR with the byte sought, or below 0x20), then byte
/// by byte within the word that has one.
fn plain_len(s: &[u8]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let x = u64::from_le_bytes(w);
        let below = x.wrapping_sub(0x2020_2020_2020_2020) & !x & HI;
        if zero(x ^ 0x2222_2222_2222_2222) | zero(x ^ 0x5c5c_5c5c_5c5c_5c5c) | below != 0 {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(s.len() - i)
}

#[cfg(test)]
mod tests {
    use super::{is_json_value, plain_len};

    #[test]
    fn plain_len_stops_at_the_first_special_byte() {
        for special in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
            for len in 0..20 {
                for at in 0..=len {
                    let mut v: Vec<u8> = (0..len).map(|i| 0x20 + (i * 37 % 0x5f) as u8).collect();
                    for c in v.iter_mut() {
                        if *c == b'"' || *c == b'\\' {
                            *c = b'a';
                        }
                    }
                    if at < len {
                        v[at] = special;
                    }
                    assert_eq!(plain_len(&v), at, "{special} {len} {at}");
                }
            }
        }
        assert_eq!(plain_len("é\u{2014}x".as_bytes()), 6);
    }

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
