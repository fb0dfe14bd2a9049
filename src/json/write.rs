//! Writing JSON the way Python's `json.dumps(..., ensure_ascii=False,
//! separators=(",", ":"))` does, for the records whose bytes must match what Python would
//! have written (the audit log's events: `src/py/audit.rs`, the agent's records:
//! `src/agent/record.rs`).

/// A JSON string literal as `json.dumps(s, ensure_ascii=False)` writes it: `"` and `\`
/// escaped, the control characters below 0x20 as `\n`, `\r`, `\t`, `\b`, `\f` or
/// `\u00XX`, everything else (non-ASCII included) as is.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::write_str;

    #[test]
    fn escapes_like_python_json_without_ensure_ascii() {
        let mut out = Vec::new();
        write_str("a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{7f}é", &mut out);
        assert_eq!(
            out,
            "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\u{7f}é\"".as_bytes()
        );
    }
}
