//! Hex and base64 over slices, for key files: no heap, no table lookups indexed by secret
//! bytes, no branches on secret values other than "is this byte whitespace" (whitespace
//! positions are layout, not key material).
//!
//! Decoding is two-pass: [`hex_decoded_len`] / [`base64_decoded_len`] look only at the
//! layout (whitespace, padding, length) and give the exact output length, so the caller
//! can allocate the final guarded region of exactly that size; [`hex_decode_into`] /
//! [`base64_decode_into`] then decode straight into it, accumulating an error flag
//! instead of stopping at the first bad character.
//!
//! Accepted input (strict apart from whitespace):
//! - hex: digits `0-9a-fA-F`, an even number of them; ASCII whitespace (space, tab, CR,
//!   LF) anywhere is ignored.
//! - base64: the standard alphabet (RFC 4648 §4, `+` and `/`), padded with `=` to a
//!   multiple of 4 characters, padding only at the end, unused trailing bits zero
//!   (canonical encoding); whitespace anywhere is ignored. URL-safe base64 is refused.
//!   [`Padding::Optional`] (Standard Webhooks secrets, which are written both ways) also
//!   accepts the same text without its `=` padding.

use zeroize::Zeroize;

/// Why an encoded key could not be decoded. Never carries key bytes or lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A character outside the alphabet (or padding in the wrong place).
    InvalidCharacter,
    /// The number of significant characters is not valid for the encoding.
    InvalidLength,
    /// Base64 whose unused trailing bits are not zero (a non-canonical encoding).
    NonCanonical,
    /// The output buffer does not have the decoded length.
    OutputLength,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::InvalidCharacter => "it contains a character that is not valid here",
            DecodeError::InvalidLength => "its number of characters is not valid for the encoding",
            DecodeError::NonCanonical => "its base64 encoding is not canonical",
            DecodeError::OutputLength => "internal error: wrong output length",
        })
    }
}

/// ASCII whitespace accepted between encoded characters.
#[inline]
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Decode one hex digit without branches: 0..=15, or a value with bit 8 set if invalid.
#[inline]
fn hex_nibble(c: u8) -> u16 {
    let c = i16::from(c);
    let mut r: i16 = -1;
    r += (((0x2f - c) & (c - 0x3a)) >> 8) & (c - 47); // 0-9
    r += (((0x40 - c) & (c - 0x47)) >> 8) & (c - 54); // A-F
    r += (((0x60 - c) & (c - 0x67)) >> 8) & (c - 86); // a-f
    r as u16
}

/// Decode one base64 character without branches: 0..=63, or negative if invalid.
#[inline]
fn b64_sextet(c: u8) -> i16 {
    let c = i16::from(c);
    let mut r: i16 = -1;
    r += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); // A-Z -> 0..25
    r += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); // a-z -> 26..51
    r += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5); // 0-9 -> 52..61
    r += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; // + -> 62
    r += (((0x2e - c) & (c - 0x30)) >> 8) & 64; // / -> 63
    r
}

/// Encode a nibble (0..=15) as a lowercase hex digit without branches.
#[inline]
fn hex_char(n: u8) -> u8 {
    let n = i16::from(n);
    // '0' + n, plus 39 more when n > 9 (to reach 'a').
    (48 + n + (((9 - n) >> 8) & 39)) as u8
}

/// Encode a sextet (0..=63) as a base64 character without branches.
#[inline]
fn b64_char(s: u8) -> u8 {
    let s = i16::from(s);
    let mut d = s + 65; // 'A'..
    d += ((25 - s) >> 8) & 6; // s >= 26: 'a' is 97 = 26 + 65 + 6
    d -= ((51 - s) >> 8) & 75; // s >= 52: '0' is 48 = 52 + 71 - 75
    d -= ((61 - s) >> 8) & 15; // s == 62: '+' is 43
    d += ((62 - s) >> 8) & 3; // s == 63: '/' is 47
    d as u8
}

/// Whether every byte of `src` is a hex digit or whitespace (layout check; used for format
/// detection, where branching on the file's shape is acceptable).
pub fn looks_hex(src: &[u8]) -> bool {
    let mut bad = 0u16;
    let mut digits = 0usize;
    for &c in src {
        if is_space(c) {
            continue;
        }
        bad |= hex_nibble(c) & 0xff00;
        digits += 1;
    }
    bad == 0 && digits > 0
}

/// Number of bytes `src` decodes to as hex, checking the layout only (characters are
/// checked by [`hex_decode_into`]).
pub fn hex_decoded_len(src: &[u8]) -> Result<usize, DecodeError> {
    let digits = src.iter().filter(|&&c| !is_space(c)).count();
    if digits == 0 || digits % 2 != 0 {
        return Err(DecodeError::InvalidLength);
    }
    Ok(digits / 2)
}

/// Decode hex `src` into `dst`, which must have exactly [`hex_decoded_len`] bytes. On error
/// `dst` may hold partial output: the caller wipes it (it is a guarded region).
pub fn hex_decode_into(src: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    if hex_decoded_len(src)? != dst.len() {
        return Err(DecodeError::OutputLength);
    }
    let mut bad: u16 = 0;
    let mut hi: u16 = 0;
    let mut have_hi = false;
    let mut i = 0usize;
    for &c in src {
        if is_space(c) {
            continue;
        }
        let n = hex_nibble(c);
        bad |= n & 0xff00;
        if have_hi {
            if let Some(d) = dst.get_mut(i) {
                *d = ((hi << 4) | (n & 0x0f)) as u8;
            }
            i += 1;
            have_hi = false;
        } else {
            hi = n & 0x0f;
            have_hi = true;
        }
    }
    hi.zeroize();
    if bad != 0 {
        return Err(DecodeError::InvalidCharacter);
    }
    Ok(())
}

/// Encoded hex length of `n` bytes.
pub const fn hex_encoded_len(n: usize) -> usize {
    2 * n
}

/// Encode `src` as lowercase hex into `dst` (exactly `2 * src.len()` bytes).
pub fn hex_encode_into(src: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    if dst.len() != hex_encoded_len(src.len()) {
        return Err(DecodeError::OutputLength);
    }
    for (b, out) in src.iter().zip(dst.chunks_exact_mut(2)) {
        out[0] = hex_char(b >> 4);
        out[1] = hex_char(b & 0x0f);
    }
    Ok(())
}

/// Whether base64 text must be padded to a multiple of 4 characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `=` padding required (RFC 4648 section 4; key files, PEM).
    Required,
    /// Padded or not: text whose length leaves 2 or 3 characters in its last group is
    /// read as if the missing `=` were there.
    Optional,
}

/// The significant characters of base64 text: count (including padding, the implied
/// padding of unpadded text under [`Padding::Optional`] too) and padding.
fn b64_layout(src: &[u8], padding: Padding) -> Result<(usize, usize), DecodeError> {
    let mut count = 0usize;
    let mut pad = 0usize;
    for &c in src {
        if is_space(c) {
            continue;
        }
        if c == b'=' {
            pad += 1;
        } else if pad > 0 {
            // Data after padding.
            return Err(DecodeError::InvalidCharacter);
        }
        count += 1;
    }
    if padding == Padding::Optional && pad == 0 && matches!(count % 4, 2 | 3) {
        pad = 4 - count % 4;
        count += pad;
    }
    if count == 0 || count % 4 != 0 || pad > 2 {
        return Err(DecodeError::InvalidLength);
    }
    Ok((count, pad))
}

/// Whether every byte of `src` is in the base64 alphabet, `=` or whitespace.
pub fn looks_base64(src: &[u8]) -> bool {
    let mut bad = 0i16;
    let mut n = 0usize;
    for &c in src {
        if is_space(c) || c == b'=' {
            continue;
        }
        bad |= b64_sextet(c);
        n += 1;
    }
    bad >= 0 && n > 0
}

/// Number of bytes `src` decodes to as base64 (layout check only).
pub fn base64_decoded_len(src: &[u8]) -> Result<usize, DecodeError> {
    base64_decoded_len_with(src, Padding::Required)
}

/// [`base64_decoded_len`] with the padding rule `padding`.
pub fn base64_decoded_len_with(src: &[u8], padding: Padding) -> Result<usize, DecodeError> {
    let (count, pad) = b64_layout(src, padding)?;
    let len = count / 4 * 3 - pad;
    if len == 0 {
        return Err(DecodeError::InvalidLength);
    }
    Ok(len)
}

/// Decode base64 `src` into `dst` (exactly [`base64_decoded_len`] bytes). On error `dst`
/// may hold partial output: the caller wipes it.
pub fn base64_decode_into(src: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    base64_decode_into_with(src, dst, Padding::Required)
}

/// [`base64_decode_into`] with the padding rule `padding` (`dst` has exactly
/// [`base64_decoded_len_with`] bytes).
pub fn base64_decode_into_with(
    src: &[u8],
    dst: &mut [u8],
    padding: Padding,
) -> Result<(), DecodeError> {
    let (count, pad) = b64_layout(src, padding)?;
    if count / 4 * 3 - pad != dst.len() {
        return Err(DecodeError::OutputLength);
    }
    let data_chars = count - pad;
    let mut bad: i16 = 0;
    let mut quad = [0u8; 4];
    let mut q = 0usize;
    let mut seen = 0usize;
    let mut out = 0usize;
    let mut last: i16 = 0;
    for &c in src {
        if is_space(c) || c == b'=' {
            continue;
        }
        let s = b64_sextet(c);
        bad |= s;
        last = s;
        quad[q] = (s & 0x3f) as u8;
        q += 1;
        seen += 1;
        if q == 4 || seen == data_chars {
            b64_flush_group(&mut quad, q, dst, &mut out);
            q = 0;
        }
    }
    // Canonical: the bits of the last character that fall beyond the output are zero.
    let noncanonical = last & b64_unused_bits_mask(pad);
    last.zeroize();
    quad.zeroize();
    b64_verdict(bad, noncanonical)
}

/// Write the bytes of a group of `q` sextets (4, or 2 or 3 for the last group) to `dst`
/// at `*out` and advance `*out`, without branching on their values; then wipe the group
/// and the bytes made from it.
#[inline]
fn b64_flush_group(quad: &mut [u8; 4], q: usize, dst: &mut [u8], out: &mut usize) {
    let mut bytes = [
        (quad[0] << 2) | (quad[1] >> 4),
        (quad[1] << 4) | (quad[2] >> 2),
        (quad[2] << 6) | quad[3],
    ];
    let n = if q == 4 { 3 } else { q - 1 };
    for &b in bytes.iter().take(n) {
        if let Some(d) = dst.get_mut(*out) {
            *d = b;
        }
        *out += 1;
    }
    bytes.zeroize();
    quad.zeroize();
}

/// The bits of the last base64 character that fall beyond the output, for `pad`
/// padding characters (they must be zero in a canonical encoding).
#[inline]
fn b64_unused_bits_mask(pad: usize) -> i16 {
    match pad {
        1 => 0x03,
        2 => 0x0f,
        _ => 0,
    }
}

/// The outcome of a base64 decode from its accumulated error flag (negative if any
/// character was invalid) and its unused trailing bits (non-zero if not canonical).
#[inline]
fn b64_verdict(bad: i16, noncanonical: i16) -> Result<(), DecodeError> {
    if bad < 0 {
        return Err(DecodeError::InvalidCharacter);
    }
    if noncanonical != 0 {
        return Err(DecodeError::NonCanonical);
    }
    Ok(())
}

/// Encoded base64 length (padded, no line breaks) of `n` bytes.
pub const fn base64_encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Encode `src` as padded standard base64 into `dst` (exactly
/// [`base64_encoded_len`]`(src.len())` bytes, no line breaks).
pub fn base64_encode_into(src: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    if dst.len() != base64_encoded_len(src.len()) {
        return Err(DecodeError::OutputLength);
    }
    for (chunk, out) in src.chunks(3).zip(dst.chunks_exact_mut(4)) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        out[0] = b64_char(b0 >> 2);
        out[1] = b64_char(((b0 & 0x03) << 4) | (b1 >> 4));
        out[2] = if chunk.len() > 1 {
            b64_char(((b1 & 0x0f) << 2) | (b2 >> 6))
        } else {
            b'='
        };
        out[3] = if chunk.len() > 2 {
            b64_char(b2 & 0x3f)
        } else {
            b'='
        };
    }
    Ok(())
}

/// Unpadded base64url (RFC 4648 §5, as JOSE writes it: RFC 7515 §2) of public bytes, for
/// JSON Web Keys. Not for secrets: the result is an ordinary `String`.
pub fn base64url_encode(src: &[u8]) -> String {
    let mut out = vec![0u8; base64_encoded_len(src.len())];
    // The length is the one `base64_encode_into` requires, so it cannot fail.
    if base64_encode_into(src, &mut out).is_err() {
        return String::new();
    }
    out.iter()
        .filter(|&&c| c != b'=')
        .map(|&c| match c {
            b'+' => '-',
            b'/' => '_',
            c => char::from(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_unpadded_with_the_url_alphabet() {
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_encode(&[1, 0, 1]), "AQAB");
        assert_eq!(base64url_encode(&[0xff]), "_w");
        assert_eq!(base64url_encode(&[]), "");
    }

    fn enc_hex(src: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; hex_encoded_len(src.len())];
        hex_encode_into(src, &mut v).expect("hex");
        v
    }

    fn enc_b64(src: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; base64_encoded_len(src.len())];
        base64_encode_into(src, &mut v).expect("b64");
        v
    }

    fn dec_hex(src: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut v = vec![0u8; hex_decoded_len(src)?];
        hex_decode_into(src, &mut v)?;
        Ok(v)
    }

    fn dec_b64(src: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut v = vec![0u8; base64_decoded_len(src)?];
        base64_decode_into(src, &mut v)?;
        Ok(v)
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(dec_hex(&enc_hex(&all)).expect("hex"), all);
        for n in 1..=all.len() {
            assert_eq!(dec_b64(&enc_b64(&all[..n])).expect("b64"), &all[..n]);
        }
        assert_eq!(&enc_hex(b"\x00\x9f\xff"), b"009fff");
    }

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            (&b"f"[..], &b"Zg=="[..]),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"fooba", b"Zm9vYmE="),
            (b"foobar", b"Zm9vYmFy"),
            (b"\xfb\xff", b"+/8="),
        ] {
            assert_eq!(enc_b64(plain), enc);
            assert_eq!(dec_b64(enc).expect("dec"), plain);
        }
    }

    #[test]
    fn whitespace_is_tolerated() {
        assert_eq!(dec_hex(b" 00 ff\r\nA0\n").expect("hex"), b"\x00\xff\xa0");
        assert_eq!(dec_b64(b"Zm9v\nYmFy\n").expect("b64"), b"foobar");
        assert_eq!(dec_b64(b"Zm9vYg==\n").expect("b64"), b"foob");
    }

    #[test]
    fn strictness() {
        assert_eq!(dec_hex(b"0g"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_hex(b"abc"), Err(DecodeError::InvalidLength));
        assert_eq!(dec_hex(b""), Err(DecodeError::InvalidLength));
        assert_eq!(dec_hex(b"0x00"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"Zm9"), Err(DecodeError::InvalidLength));
        assert_eq!(dec_b64(b"Zm=v"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"Zg=a"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"Zh=="), Err(DecodeError::NonCanonical));
        assert_eq!(dec_b64(b"Zm9=").map(|_| ()), Err(DecodeError::NonCanonical));
        assert_eq!(dec_b64(b"Zm-v"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"Zm_v"), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"===="), Err(DecodeError::InvalidLength));
        assert_eq!(dec_b64(b"Z==="), Err(DecodeError::InvalidLength));
        assert_eq!(dec_b64(b"Zm8=Zm8="), Err(DecodeError::InvalidCharacter));
        assert_eq!(dec_b64(b"Zm9v!mFy"), Err(DecodeError::InvalidCharacter));
        assert!(looks_hex(b"00ff\n"));
        assert!(!looks_hex(b"00fg"));
        assert!(looks_base64(b"Zm9v+/==\n"));
        assert!(!looks_base64(b"Zm9v-"));
    }

    #[test]
    fn optional_padding() {
        let dec = |src: &[u8]| -> Result<Vec<u8>, DecodeError> {
            let mut v = vec![0u8; base64_decoded_len_with(src, Padding::Optional)?];
            base64_decode_into_with(src, &mut v, Padding::Optional)?;
            Ok(v)
        };
        for (plain, padded, bare) in [
            (&b"f"[..], &b"Zg=="[..], &b"Zg"[..]),
            (b"fo", b"Zm8=", b"Zm8"),
            (b"foo", b"Zm9v", b"Zm9v"),
            (b"fooba", b"Zm9vYmE=", b"Zm9vYmE"),
        ] {
            assert_eq!(dec(padded).expect("padded"), plain);
            assert_eq!(dec(bare).expect("bare"), plain);
        }
        // Unpadded text is still refused where padding is required.
        assert_eq!(dec_b64(b"Zm8"), Err(DecodeError::InvalidLength));
        // One character left over is never valid; nor is half the padding, or a
        // non-canonical final character.
        assert_eq!(dec(b"Zm9vY"), Err(DecodeError::InvalidLength));
        assert_eq!(dec(b"Zg="), Err(DecodeError::InvalidLength));
        assert_eq!(dec(b"Zh"), Err(DecodeError::NonCanonical));
        assert_eq!(dec(b"Zm-"), Err(DecodeError::InvalidCharacter));
    }

    #[test]
    fn every_char_classified() {
        for c in 0..=255u8 {
            let hex_ok = c.is_ascii_hexdigit();
            assert_eq!(hex_nibble(c) & 0xff00 == 0, hex_ok, "hex {c}");
            let b64_ok = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
            assert_eq!(b64_sextet(c) >= 0, b64_ok, "b64 {c}");
            if b64_ok {
                assert_eq!(b64_char(b64_sextet(c) as u8), c);
            }
        }
        for n in 0..16u8 {
            assert_eq!(hex_nibble(hex_char(n)), u16::from(n));
        }
    }
}
