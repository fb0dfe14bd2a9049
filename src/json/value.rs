//! A whole JSON document read into a [`Value`] tree, strictly, for configuration files.
//!
//! Stricter than RFC 8259 where looseness would hide a mistake: numbers must be integers
//! that fit in `i64` (no fractions or exponents), an object may not repeat a member name,
//! the text must be UTF-8, and the caller's [`Limits`] bound its size and nesting. Every
//! error names a byte offset.

use super::{err, scan, Error};

/// How large and how deep a document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes.
    pub max_len: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

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

/// Parse a whole document.
pub fn parse(text: &[u8], limits: Limits) -> Result<Value, Error> {
    if text.len() > limits.max_len {
        return err(limits.max_len, "document too large");
    }
    if let Err(e) = std::str::from_utf8(text) {
        return err(e.valid_up_to(), "invalid UTF-8");
    }
    let mut p = Parser {
        s: text,
        pos: 0,
        max_depth: limits.max_depth,
    };
    let v = p.value(0)?;
    p.ws();
    if p.pos != text.len() {
        return err(p.pos, "trailing characters after the document");
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    max_depth: usize,
}

type R<T> = Result<T, Error>;

impl Parser<'_> {
    fn ws(&mut self) {
        self.pos = scan::skip_ws(self.s, self.pos);
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// The value after any whitespace at the cursor, inside `depth` arrays or objects.
    fn value(&mut self, depth: usize) -> R<Value> {
        self.ws();
        match self.peek() {
            None => err(self.pos, "unexpected end of document"),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') => self.literal(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(_) => err(self.pos, "unexpected character"),
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        self.pos = scan::literal(self.s, self.pos, word)?;
        Ok(())
    }

    fn string(&mut self) -> R<String> {
        let mut out = String::new();
        self.pos = scan::read_string(self.s, self.pos, &mut out)?;
        Ok(out)
    }

    /// A number, which must be an integer that fits in `i64`.
    fn integer(&mut self) -> R<Value> {
        let start = self.pos;
        self.pos = scan::integer(self.s, start)?;
        if scan::fraction_or_exponent_at(self.s, self.pos) {
            return err(self.pos, "only integers are allowed");
        }
        let Ok(text) = std::str::from_utf8(&self.s[start..self.pos]) else {
            return err(start, "invalid number");
        };
        match text.parse::<i64>() {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => err(start, "integer out of range"),
        }
    }

    fn array(&mut self, depth: usize) -> R<Value> {
        if depth > self.max_depth {
            return err(self.pos, "nested too deeply");
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
                _ => return err(self.pos, "expected ',' or ']'"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> R<Value> {
        if depth > self.max_depth {
            return err(self.pos, "nested too deeply");
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
                return err(self.pos, "expected a member name");
            }
            let at = self.pos;
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return err(at, "duplicate member name");
            }
            self.ws();
            if self.peek() != Some(b':') {
                return err(self.pos, "expected ':'");
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
                _ => return err(self.pos, "expected ',' or '}'"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_len: 64,
        max_depth: 2,
    };

    fn refused(text: &[u8]) -> (usize, &'static str) {
        let e = parse(text, L).expect_err("refused");
        (e.offset, e.reason)
    }

    #[test]
    fn errors_name_the_offset() {
        assert_eq!(refused(&[b' '; 65]), (64, "document too large"));
        assert_eq!(refused(b"[\"\xc3\"]"), (2, "invalid UTF-8"));
        assert_eq!(refused(b"[[[]]]"), (2, "nested too deeply"));
        assert_eq!(refused(b" "), (1, "unexpected end of document"));
        assert_eq!(refused(b"[1.5]"), (2, "only integers are allowed"));
        assert_eq!(refused(b"[-1e3]"), (3, "only integers are allowed"));
        assert_eq!(refused(b"[1.]"), (2, "only integers are allowed"));
        assert_eq!(
            refused(b"[007]"),
            (4, "a number may not have leading zeros")
        );
        assert_eq!(refused(b"[-]"), (2, "a number needs digits"));
        assert_eq!(refused(b"9223372036854775808"), (0, "integer out of range"));
        assert_eq!(refused(b"{\"a\":1, \"a\":2}"), (8, "duplicate member name"));
        assert_eq!(refused(b"{\"a\" 1}"), (5, "expected ':'"));
        assert_eq!(refused(b"{1:2}"), (1, "expected a member name"));
        assert_eq!(refused(b"[1 2]"), (3, "expected ',' or ']'"));
        assert_eq!(refused(b"{\"a\":1 2}"), (7, "expected ',' or '}'"));
        assert_eq!(refused(b"tru"), (0, "unexpected character"));
        assert_eq!(
            refused(b"[] []"),
            (3, "trailing characters after the document")
        );
        assert_eq!(refused(b"\"\\ud83d\""), (7, "unpaired surrogate"));
    }

    #[test]
    fn integers_at_the_edges() {
        assert_eq!(
            parse(b"[-9223372036854775808, 9223372036854775807, -0]", L),
            Ok(Value::Array(vec![
                Value::Int(i64::MIN),
                Value::Int(i64::MAX),
                Value::Int(0)
            ]))
        );
    }
}
