//! The lexical grammar of JSON (RFC 8259): whitespace, the literals, strings and numbers.
//!
//! Each function takes the whole document and a byte index into it and returns the index
//! after what it read, or an [`Error`] whose offset is an index into the document. None
//! allocates, except [`read_string`] into the `String` it is given.

use super::{err, Error};

type R<T> = Result<T, Error>;

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline]
pub fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = s.get(i) {
        i += 1;
    }
    i
}

/// The literal `word` (`true`, `false` or `null`) at `i`: the index after it.
#[inline]
pub fn literal(s: &[u8], i: usize, word: &[u8]) -> R<usize> {
    if s[i..].starts_with(word) {
        Ok(i + word.len())
    } else {
        err(i, "unexpected character")
    }
}

// ---------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------

/// The string whose opening quote is at `i`, checked: the index after its closing quote.
/// Any `\uXXXX` escape is accepted, a lone surrogate too (the RFC 8259 grammar allows it).
#[inline]
pub fn skip_string(s: &[u8], i: usize) -> R<usize> {
    string(s, i, &mut Skip)
}

/// The string whose opening quote is at `i`, decoded and appended to `out`: the index after
/// its closing quote. A `\uXXXX` escape of a surrogate must pair with the next one (a
/// `String` holds Unicode scalar values only). `s` should be UTF-8 (check it once, up
/// front): a run that is not is refused.
pub fn read_string(s: &[u8], i: usize, out: &mut String) -> R<usize> {
    string(s, i, out)
}

/// What a string scan does with the content: plain runs, and the escapes it reads.
trait Content {
    /// The run `s[from..to]`: no `"`, `\` or control character in it.
    fn text(&mut self, s: &[u8], from: usize, to: usize) -> R<()>;
    /// The escape whose letter (after the backslash) is at `i`: the index after it.
    fn escape(&mut self, s: &[u8], i: usize) -> R<usize>;
}

/// Checks a string, keeps nothing.
struct Skip;

impl Content for Skip {
    #[inline]
    fn text(&mut self, _: &[u8], _: usize, _: usize) -> R<()> {
        Ok(())
    }

    #[inline]
    fn escape(&mut self, s: &[u8], i: usize) -> R<usize> {
        skip_escape(s, i)
    }
}

impl Content for String {
    fn text(&mut self, s: &[u8], from: usize, to: usize) -> R<()> {
        match std::str::from_utf8(&s[from..to]) {
            Ok(t) => {
                self.push_str(t);
                Ok(())
            }
            Err(e) => err(from + e.valid_up_to(), "invalid UTF-8"),
        }
    }

    fn escape(&mut self, s: &[u8], i: usize) -> R<usize> {
        let (c, next) = decode_escape(s, i)?;
        self.push(c);
        Ok(next)
    }
}

/// The string whose opening quote is at `i`: plain runs skipped word by word (the common
/// case), escapes read by `content`, control characters refused.
#[inline(always)]
fn string(s: &[u8], i: usize, content: &mut impl Content) -> R<usize> {
    let mut i = i + 1;
    loop {
        let run = plain_len(&s[i..]);
        content.text(s, i, i + run)?;
        i += run;
        match s.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => i = content.escape(s, i + 1)?,
            Some(_) => return err(i, "control character in a string"),
            None => return err(i, "unterminated string"),
        }
    }
}

/// The character a one-letter escape (`\n`, `\"`, ...) stands for.
#[inline]
fn short_escape(letter: u8) -> Option<char> {
    Some(match letter {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

/// The four hex digits at `i`, as a number.
#[inline]
fn hex4(s: &[u8], i: usize) -> R<u32> {
    let Some(h) = s.get(i..i + 4) else {
        return err(i, "truncated \\u escape");
    };
    let mut v = 0u32;
    for &c in h {
        match (c as char).to_digit(16) {
            Some(d) => v = v * 16 + d,
            None => return err(i, "invalid \\u escape"),
        }
    }
    Ok(v)
}

/// The escape whose letter (after the backslash) is at `i`, checked: the index after it.
#[inline]
fn skip_escape(s: &[u8], i: usize) -> R<usize> {
    match s.get(i) {
        None => err(i, "unterminated string"),
        Some(b'u') => hex4(s, i + 1).map(|_| i + 5),
        Some(&letter) if short_escape(letter).is_some() => Ok(i + 1),
        Some(_) => err(i + 1, "invalid escape"),
    }
}

/// The escape whose letter (after the backslash) is at `i`, decoded, a surrogate pair into
/// one character: the character and the index after the escape.
fn decode_escape(s: &[u8], i: usize) -> R<(char, usize)> {
    let Some(&letter) = s.get(i) else {
        return err(i, "unterminated string");
    };
    let mut i = i + 1;
    if letter != b'u' {
        return match short_escape(letter) {
            Some(c) => Ok((c, i)),
            None => err(i, "invalid escape"),
        };
    }
    let hi = hex4(s, i)?;
    i += 4;
    let cp = if (0xD800..0xDC00).contains(&hi) {
        if !s[i..].starts_with(b"\\u") {
            return err(i, "unpaired surrogate");
        }
        i += 2;
        let lo = hex4(s, i)?;
        i += 4;
        if !(0xDC00..0xE000).contains(&lo) {
            return err(i, "unpaired surrogate");
        }
        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
    } else {
        hi
    };
    match char::from_u32(cp) {
        Some(c) => Ok((c, i)),
        None => err(i, "unpaired surrogate"),
    }
}

/// Length of the prefix of `s` without `"`, `\\` or control characters: eight bytes at a
/// time (SWAR: a lane is zero after XOR with the byte sought, or below 0x20), then byte
/// by byte within the word that has one. Stops only at ASCII bytes, so on a character
/// boundary of UTF-8.
#[inline]
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

// ---------------------------------------------------------------------------------------
// Numbers: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
// ---------------------------------------------------------------------------------------

#[inline]
fn skip_digits(s: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = s.get(i) {
        i += 1;
    }
    i
}

/// The integer part of a number at `i` (an optional minus, then `0` or digits without a
/// leading zero): the index after it. A leading zero is refused here, after the digits
/// that follow it (no JSON text may continue a number with a digit).
#[inline]
pub fn integer(s: &[u8], i: usize) -> R<usize> {
    let digits = if s.get(i) == Some(&b'-') { i + 1 } else { i };
    let end = skip_digits(s, digits);
    if end == digits {
        return err(end, "a number needs digits");
    }
    if s[digits] == b'0' && end - digits > 1 {
        return err(end, "a number may not have leading zeros");
    }
    Ok(end)
}

/// Whether a fraction or an exponent starts at `i` (right after an integer part).
#[inline]
pub fn fraction_or_exponent_at(s: &[u8], i: usize) -> bool {
    matches!(s.get(i), Some(b'.' | b'e' | b'E'))
}

/// The optional fraction and exponent of a number whose integer part ends at `i`: the
/// index after them (`i` when there are none).
#[inline]
pub fn fraction_and_exponent(s: &[u8], mut i: usize) -> R<usize> {
    if s.get(i) == Some(&b'.') {
        let end = skip_digits(s, i + 1);
        if end == i + 1 {
            return err(end, "a fraction needs digits");
        }
        i = end;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let end = skip_digits(s, i);
        if end == i {
            return err(end, "an exponent needs digits");
        }
        i = end;
    }
    Ok(i)
}

/// A whole RFC 8259 number at `i`: the index after it.
#[inline]
pub fn number(s: &[u8], i: usize) -> R<usize> {
    fraction_and_exponent(s, integer(s, i)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn strings() {
        let mut out = String::new();
        let s = br#""a\"\u00e9\ud83d\ude00\/" tail"#;
        assert_eq!(read_string(s, 0, &mut out), Ok(25));
        assert_eq!(out, "a\"\u{e9}\u{1f600}/");
        assert_eq!(skip_string(s, 0), Ok(25));
        // A lone surrogate is grammatical, but no character.
        assert_eq!(skip_string(br#""\ud800""#, 0), Ok(8));
        let e = |s: &[u8]| read_string(s, 0, &mut String::new()).map_err(|e| (e.offset, e.reason));
        assert_eq!(e(br#""\ud800""#), Err((7, "unpaired surrogate")));
        assert_eq!(e(br#""\ud800\u0041""#), Err((13, "unpaired surrogate")));
        assert_eq!(e(br#""\udc00""#), Err((7, "unpaired surrogate")));
        assert_eq!(e(br#""\u12""#), Err((3, "truncated \\u escape")));
        assert_eq!(e(br#""\u12x4""#), Err((3, "invalid \\u escape")));
        assert_eq!(e(br#""\x""#), Err((3, "invalid escape")));
        assert_eq!(e(b"\"a\x01\""), Err((2, "control character in a string")));
        assert_eq!(e(b"\"ab"), Err((3, "unterminated string")));
        assert_eq!(e(b"\"ab\\"), Err((4, "unterminated string")));
        assert_eq!(skip_string(b"\"a\\x\"", 0).map_err(|e| e.offset), Err(4));
    }

    #[test]
    fn numbers() {
        for (n, end) in [
            ("0", 1),
            ("-0", 2),
            ("12", 2),
            ("1.5", 3),
            ("-1e5", 4),
            ("2E+3", 4),
        ] {
            assert_eq!(number(n.as_bytes(), 0), Ok(end), "{n}");
        }
        for (n, at, why) in [
            ("-", 1, "a number needs digits"),
            ("-x", 1, "a number needs digits"),
            ("01", 2, "a number may not have leading zeros"),
            ("-007", 4, "a number may not have leading zeros"),
            ("1.", 2, "a fraction needs digits"),
            ("1.e3", 2, "a fraction needs digits"),
            ("1e", 2, "an exponent needs digits"),
            ("1e+", 3, "an exponent needs digits"),
        ] {
            assert_eq!(number(n.as_bytes(), 0), err(at, why), "{n}");
        }
        assert_eq!(integer(b"12.5", 0), Ok(2));
        assert!(fraction_or_exponent_at(b"12.5", 2));
        assert!(!fraction_or_exponent_at(b"12,", 2));
    }
}
