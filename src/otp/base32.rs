//! RFC 4648 base32 for OTP secrets: decoding straight into a guarded region, encoding for
//! a provisioning URI.
//!
//! Decoding accepts upper and lower case, ignores ASCII whitespace (authenticator apps
//! show secrets in groups of four) and accepts optional trailing `=` padding. The value of
//! each character is computed with masks rather than a table or branches, so the time and
//! memory accesses do not depend on the secret; only the positions of whitespace and
//! padding (formatting, not secret) take other paths.

use zeroize::{Zeroize, Zeroizing};

use super::OtpError;

/// 0xff when `lo <= c <= hi`, else 0, without a branch.
fn in_range(c: u8, lo: u8, hi: u8) -> u8 {
    let c = i32::from(c);
    (((i32::from(lo) - 1 - c) & (c - i32::from(hi) - 1)) >> 8) as u8
}

/// The 5-bit value of a base32 character and a mask that is 0xff when it is one.
fn value(c: u8) -> (u8, u8) {
    let upper = in_range(c, b'A', b'Z');
    let lower = in_range(c, b'a', b'z');
    let digit = in_range(c, b'2', b'7');
    let v = (upper & c.wrapping_sub(b'A'))
        | (lower & c.wrapping_sub(b'a'))
        | (digit & c.wrapping_sub(b'2').wrapping_add(26));
    (v, upper | lower | digit)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The number of bytes `text` decodes to, or [`OtpError::Base32`] when it is not valid
/// base32 (a character outside the alphabet, data after padding, or a length no encoding
/// produces).
pub fn decoded_len(text: &[u8]) -> Result<usize, OtpError> {
    let mut chars = 0usize;
    let mut padding = false;
    let mut invalid = 0u8;
    for &c in text {
        if is_space(c) {
            continue;
        }
        if c == b'=' {
            padding = true;
            continue;
        }
        if padding {
            return Err(OtpError::Base32);
        }
        invalid |= !value(c).1;
        chars += 1;
    }
    if invalid != 0 || matches!(chars % 8, 1 | 3 | 6) {
        return Err(OtpError::Base32);
    }
    Ok(chars * 5 / 8)
}

/// Decode `text` into `dst`, which must be [`decoded_len`] bytes long (call that first; it
/// validates). The bit accumulator is wiped before returning.
pub fn decode_into(text: &[u8], dst: &mut [u8]) -> Result<(), OtpError> {
    let mut acc = 0u64;
    let mut bits = 0u32;
    let mut n = 0usize;
    for &c in text {
        if is_space(c) || c == b'=' {
            continue;
        }
        let (v, _) = value(c);
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            if n < dst.len() {
                dst[n] = (acc >> bits) as u8;
            }
            n += 1;
        }
    }
    acc.zeroize();
    if n == dst.len() {
        Ok(())
    } else {
        Err(OtpError::Base32)
    }
}

/// Unpadded upper-case base32 of `bytes` (what authenticator apps expect in a URI), in a
/// string wiped on drop. Characters are computed with masks, not a table lookup.
pub fn encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let mut acc = 0u64;
    let mut bits = 0u32;
    let push = |v: u8, out: &mut String| {
        // 'A'..'Z' for 0..25, '2'..'7' for 26..31.
        let letter = in_range(v, 0, 25);
        let c = (letter & v.wrapping_add(b'A')) | (!letter & v.wrapping_sub(26).wrapping_add(b'2'));
        out.push(char::from(c));
    };
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            push(((acc >> bits) & 31) as u8, &mut out);
        }
    }
    if bits > 0 {
        push(((acc << (5 - bits)) & 31) as u8, &mut out);
    }
    acc.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Vec<u8>, OtpError> {
        let n = decoded_len(text.as_bytes())?;
        let mut out = vec![0u8; n];
        decode_into(text.as_bytes(), &mut out)?;
        Ok(out)
    }

    // RFC 4648 section 10.
    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ];
        for (plain, enc) in cases {
            assert_eq!(decode(enc).expect(enc), plain.as_bytes());
            assert_eq!(
                decode(enc.trim_end_matches('=')).expect(enc),
                plain.as_bytes()
            );
            assert_eq!(decode(&enc.to_lowercase()).expect(enc), plain.as_bytes());
            assert_eq!(*encode(plain.as_bytes()), enc.trim_end_matches('='));
        }
    }

    #[test]
    fn spaces_and_case() {
        let want = b"12345678901234567890";
        let text = "gezd gnbv gy3t qojq GEZD GNBV GY3T QOJQ";
        assert_eq!(decode(text).expect("spaces"), want);
        assert_eq!(*encode(want), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn round_trips_every_length() {
        for len in 0..70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes)).expect("round trip"), bytes);
        }
    }

    #[test]
    fn invalid_text() {
        for bad in [
            "MZXW6YT1",
            "MZXW6YT8",
            "MZX=W6YQ",
            "M",
            "MZX",
            "MZXW6Y",
            "MZ_W",
            "MZXW\u{e9}",
        ] {
            assert!(matches!(decode(bad), Err(OtpError::Base32)), "{bad}");
        }
    }

    #[test]
    fn value_matches_alphabet() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        for c in 0..=255u8 {
            let (v, ok) = value(c);
            match alphabet.iter().position(|&a| a == c.to_ascii_uppercase()) {
                Some(i) => assert_eq!((v, ok), (i as u8, 0xff), "{c}"),
                None => assert_eq!(ok, 0, "{c}"),
            }
        }
    }
}
