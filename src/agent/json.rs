//! The agent's policy file as JSON: the strict [`crate::json::value`] reader (integers that
//! fit in `i64`, no repeated member names, UTF-8, byte offsets in errors) with the
//! policy's limits: at most [`MAX_LEN`] bytes, nested at most [`MAX_DEPTH`] deep.

use crate::json::value::{self, Limits};

pub use crate::json::value::Value;
pub use crate::json::Error as JsonError;

/// Largest document accepted, in bytes.
pub const MAX_LEN: usize = 1 << 20;
/// Deepest nesting of arrays and objects.
pub const MAX_DEPTH: usize = 32;

/// Parse a whole policy document.
pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
    value::parse(
        text,
        Limits {
            max_len: MAX_LEN,
            max_depth: MAX_DEPTH,
        },
    )
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
