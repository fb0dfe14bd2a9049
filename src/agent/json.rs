//! A strict JSON reader for the agent's policy file (RFC 8259, with limits).
//!
//! Small on purpose: the policy is a few rules, and a parser we can read and fuzz beats a
//! dependency. Stricter than RFC 8259 where looseness would hide a mistake in a security
//! policy: numbers must be integers that fit in `i64` (no fractions or exponents), an
//! object may not repeat a key, nesting is at most [`MAX_DEPTH`] deep, the text at most
//! [`MAX_LEN`] bytes, and it must be UTF-8.

/// Largest document accepted, in bytes.
pub const MAX_LEN: usize = 1 << 20;
/// Deepest nesting of arrays and objects.
pub const MAX_DEPTH: usize = 32;

/// A JSON value. Object members keep their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Str(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Why a document was refused, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, JsonError>;

impl Parser<'_> {
    fn err<T>(&self, reason: &'static str) -> R<T> {
        Err(JsonError {
            offset: self.pos,
            reason,
        })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, lit: &[u8]) -> R<()> {
        if self.s[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            self.err("unexpected character")
        }
    }

    fn value(&mut self, depth: usize) -> R<Value> {
        self.ws();
        match self.peek() {
            None => self.err("unexpected end of document"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.expect(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.expect(b"false").map(|_| Value::Bool(false)),
            Some(b'n') => self.expect(b"null").map(|_| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected character"),
        }
    }

    fn number(&mut self) -> R<Value> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == digits {
            return self.err("a number needs digits");
        }
        if self.s[digits] == b'0' && self.pos - digits > 1 {
            return self.err("a number may not have leading zeros");
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return self.err("only integers are allowed");
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| JsonError {
            offset: start,
            reason: "invalid number",
        })?;
        text.parse::<i64>().map(Value::Int).map_err(|_| JsonError {
            offset: start,
            reason: "integer out of range",
        })
    }

    fn hex4(&mut self) -> R<u32> {
        let Some(h) = self.s.get(self.pos..self.pos + 4) else {
            return self.err("truncated \\u escape");
        };
        let mut v = 0u32;
        for &c in h {
            let d = (c as char).to_digit(16);
            match d {
                Some(d) => v = v * 16 + d,
                None => return self.err("invalid \\u escape"),
            }
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> R<String> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated string");
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if !self.s[self.pos..].starts_with(b"\\u") {
                                    return self.err("unpaired surrogate");
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("unpaired surrogate");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(ch) => ch,
                                None => return self.err("unpaired surrogate"),
                            }
                        }
                        _ => return self.err("invalid escape"),
                    };
                    out.push(ch);
                }
                0x00..=0x1f => return self.err("control character in a string"),
                _ => {
                    // Copy one UTF-8 sequence (the whole document was checked as UTF-8).
                    let start = self.pos;
                    self.pos += 1;
                    while let Some(0x80..=0xbf) = self.peek() {
                        self.pos += 1;
                    }
                    match std::str::from_utf8(&self.s[start..self.pos]) {
                        Ok(t) => out.push_str(t),
                        Err(_) => return self.err("invalid UTF-8"),
                    }
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return self.err("expected ',' or ']'"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> R<Value> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a member name");
            }
            let at = self.pos;
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(JsonError {
                    offset: at,
                    reason: "duplicate member name",
                });
            }
            self.ws();
            if self.peek() != Some(b':') {
                return self.err("expected ':'");
            }
            self.pos += 1;
            let v = self.value(depth)?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }
}

/// Parse a whole document.
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    if text.len() > MAX_LEN {
        return Err(JsonError {
            offset: MAX_LEN,
            reason: "document too large",
        });
    }
    if let Err(e) = std::str::from_utf8(text) {
        return Err(JsonError {
            offset: e.valid_up_to(),
            reason: "invalid UTF-8",
        });
    }
    let mut p = Parser { s: text, pos: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.pos != text.len() {
        return p.err("trailing characters after the document");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(
            parse(br#" {"a": [1, -2, true, null, "x\u00e9\ud83d\ude00\n"], "b": {}} "#),
            Ok(Value::Object(vec![
                (
                    "a".into(),
                    Value::Array(vec![
                        Value::Int(1),
                        Value::Int(-2),
                        Value::Bool(true),
                        Value::Null,
                        Value::Str("x\u{e9}\u{1f600}\n".into()),
                    ])
                ),
                ("b".into(), Value::Object(vec![])),
            ]))
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\":1,\"a\":2}",
            b"1.5",
            b"1e3",
            b"01",
            b"-",
            b"99999999999999999999",
            b"\"\\ud800\"",
            b"\"\x01\"",
            b"\"\\x\"",
            b"[] []",
            b"\xff",
            b"tru",
            b"{1:2}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
    }
}
