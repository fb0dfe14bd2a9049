//! Finding the format of a key file's contents (rules in `docs/key-formats.md`).

use std::ops::Range;

use crate::crypto::curve::{Algorithm, KEY_LEN};
use crate::crypto::key_kind::KeyKind;
use crate::crypto::pkcs8;
use crate::fs::{unusable, FileError};

use super::format::Format;

/// Whether `content` is text: printable ASCII and whitespace only.
fn is_text(content: &[u8]) -> bool {
    content
        .iter()
        .all(|&c| crate::encoding::is_space(c) || (0x21..=0x7e).contains(&c))
}

/// The body range and decoded key length of `content` as raw, hex or base64 (layout only;
/// the characters are checked while decoding).
pub(super) fn layout(content: &[u8], format: Format) -> Result<(Range<usize>, usize), FileError> {
    let all = 0..content.len();
    let bad = |what: &str, e: crate::encoding::DecodeError| {
        unusable(format!("cannot decode it as {what}: {e}"))
    };
    match format {
        Format::Hex => crate::encoding::hex_decoded_len(content)
            .map(|n| (all, n))
            .map_err(|e| bad("hex", e)),
        Format::Base64 => crate::encoding::base64_decoded_len(content)
            .map(|n| (all, n))
            .map_err(|e| bad("base64", e)),
        Format::Raw | Format::Pem | Format::Der | Format::OpenSsh => Ok((all, content.len())),
    }
}

/// The hex or base64 reading of text `content` that decodes to exactly `len` bytes.
fn text_of_len(content: &[u8], len: usize) -> Option<Format> {
    if !is_text(content) {
        return None;
    }
    [Format::Hex, Format::Base64].into_iter().find(|&f| {
        let looks = match f {
            Format::Hex => crate::encoding::looks_hex(content),
            _ => crate::encoding::looks_base64(content),
        };
        looks && layout(content, f).is_ok_and(|(_, n)| n == len)
    })
}

/// Find the format of `content` (see `docs/key-formats.md`).
pub(super) fn detect(
    content: &[u8],
    kind: KeyKind,
    length: Option<usize>,
) -> Result<Format, FileError> {
    if super::openssh::looks_like_openssh(content) {
        if !Format::OpenSsh.allowed_for(kind) {
            return Err(unusable(format!(
                "it is an OpenSSH private key file; those hold Ed25519, EC and RSA keys, not {} \
                 keys",
                kind.name()
            )));
        }
        return Ok(Format::OpenSsh);
    }
    if pkcs8::looks_like_pem(content) {
        if !kind.is_private_key() {
            return Err(unusable(
                "it is a PEM file; PEM is only read for private keys",
            ));
        }
        return Ok(Format::Pem);
    }
    if kind.ec_curve().is_some() {
        return detect_ec_private_key(content);
    }
    if let Some(alg) = kind.algorithm() {
        return detect_private_key(content, alg);
    }
    if let Some(len) = length {
        return detect_of_len(content, len);
    }
    detect_of_unknown_len(content)
}

/// The format of an Ed25519/X25519 private key file that is not PEM: raw, DER, hex or
/// base64 of a 32-byte key.
fn detect_private_key(content: &[u8], alg: Algorithm) -> Result<Format, FileError> {
    if content.len() == KEY_LEN {
        return detect_32_bytes(content, alg);
    }
    if content.first() == Some(&0x30) && !is_text(content) {
        return Ok(Format::Der);
    }
    text_of_len(content, KEY_LEN).ok_or_else(|| {
        unusable(format!(
            "it is not a raw 32-byte {0} key, nor hex or base64 of one, nor a PKCS#8 {0} \
             key in PEM or DER (pass format= to name the encoding)",
            alg.name()
        ))
    })
}

/// The format of an EC private key file that is not PEM: DER (PKCS#8 or SEC1), which
/// names the curve; a bare scalar does not, and is not read.
fn detect_ec_private_key(content: &[u8]) -> Result<Format, FileError> {
    if content.first() == Some(&0x30) && !is_text(content) {
        return Ok(Format::Der);
    }
    Err(unusable(
        "it is not an EC private key in PEM or DER (PKCS#8 or SEC1 \"EC PRIVATE KEY\")",
    ))
}

/// The format of a 32-byte Ed25519/X25519 private key file: the raw key, unless the
/// bytes are the start of a PKCS#8 structure or text. A truncated DER, hex or base64 file
/// must not become a key (a random key is all printable with probability below 2^-45).
/// Other binary data starting with a SEQUENCE tag is DER (see [`detect_private_key`]).
fn detect_32_bytes(content: &[u8], alg: Algorithm) -> Result<Format, FileError> {
    if pkcs8::looks_like_pkcs8(content) {
        return Ok(Format::Der);
    }
    if is_text(content) {
        return Err(unusable(format!(
            "it holds 32 characters of text, not a raw {} key, nor hex or base64 of \
             one (a truncated file?); pass format=\"raw\" if these characters \
             really are the key",
            alg.name()
        )));
    }
    Ok(Format::Raw)
}

/// The format of a secret key file of known key length `len`: exactly one candidate (raw,
/// hex, base64) can match it.
fn detect_of_len(content: &[u8], len: usize) -> Result<Format, FileError> {
    if content.len() == len {
        return Ok(Format::Raw);
    }
    text_of_len(content, len).ok_or_else(|| {
        unusable(format!(
            "its size does not match the expected length of {len} bytes (read as raw \
             bytes, hex or base64; pass format= to name the encoding)"
        ))
    })
}

/// Below this many bytes in both readings, text that is hex and base64 at once is refused
/// rather than read as hex: a random 3-byte key's 4 base64 characters are all hex digits
/// one time in 70, and reading them as hex gives a different, 2-byte key. From 16 bytes
/// on, base64 text of unpadded length is all hex digits with probability below 2^-30 per
/// key (22 of the 64 characters, 20 or more of them), and hex keeps its precedence.
const AMBIGUOUS_BELOW: usize = 16;

/// True when `content` (hex digits and whitespace) has another reading as plausible as hex
/// and the hex reading is shorter than [`AMBIGUOUS_BELOW`] bytes: base64 (both readings
/// short), or the raw token itself when no line break ends it (`to_file` writes raw keys
/// as they are, and a short random key can be all hex digits: `Fb` is 2 raw bytes or 1 hex
/// byte; keycell's and `openssl rand -hex`'s hex files end with a newline).
fn ambiguous_short_text(content: &[u8]) -> bool {
    let len_as = |f| layout(content, f).ok().map(|(_, n)| n);
    let bare_token = !content.iter().any(|&c| crate::encoding::is_space(c));
    if bare_token && len_as(Format::Hex).is_none_or(|n| n < AMBIGUOUS_BELOW) {
        return true;
    }
    match (len_as(Format::Hex), len_as(Format::Base64)) {
        (Some(hex), Some(b64)) => {
            crate::encoding::looks_base64(content) && hex < AMBIGUOUS_BELOW && b64 < AMBIGUOUS_BELOW
        }
        _ => false,
    }
}

/// The format of a secret key file of unknown length (secret keys without `length=`):
/// binary data or one token of printable characters is raw; see `docs/key-formats.md`.
fn detect_of_unknown_len(content: &[u8]) -> Result<Format, FileError> {
    if !is_text(content) {
        return Ok(Format::Raw);
    }
    if crate::encoding::looks_hex(content) {
        if ambiguous_short_text(content) {
            return Err(unusable(format!(
                "it is ambiguous: the text reads as hex of a key shorter than \
                 {AMBIGUOUS_BELOW} bytes and also as base64 or, with no line break, as the \
                 raw key itself, and the readings are different keys; pass format=\"hex\", \
                 format=\"base64\" or format=\"raw\" (or length=)"
            )));
        }
        return Ok(Format::Hex);
    }
    let encoded_look = content
        .iter()
        .any(|&c| c == b'=' || crate::encoding::is_space(c));
    if !encoded_look {
        // One token of printable characters, no padding, no line break: raw.
        return Ok(Format::Raw);
    }
    if crate::encoding::looks_base64(content) && layout(content, Format::Base64).is_ok() {
        return Ok(Format::Base64);
    }
    Err(unusable(
        "it is text with line breaks or padding but neither hex nor base64; pass \
         format=\"raw\" if the key really is these characters (or length=)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(text: &str) -> Result<Format, String> {
        detect_of_unknown_len(text.as_bytes()).map_err(|e| match e {
            FileError::Unusable { reason, .. } | FileError::Insecure(reason) => reason,
        })
    }

    #[test]
    fn short_text_that_is_hex_and_base64_is_refused() {
        // "abcd" is hex of ab cd and base64 of 69 b7 1d: two different keys.
        for text in [
            "abcd\n",
            "abcd",
            "0123456789abcdef\n",
            "12345678\n12345678\n",
            // A bare token of hex digits: raw bytes or a short hex key.
            "Fb",
            "abcdef",
        ] {
            let err = unknown(text).expect_err(text);
            assert!(
                err.contains("ambiguous") && err.contains("format="),
                "{err}"
            );
        }
    }

    #[test]
    fn hex_that_is_not_base64_or_long_enough_stays_hex() {
        // 6 digits: not a base64 length; 32 digits: base64 would be 24 bytes.
        for text in [
            "abcdef\n",
            "0123456789abcdef0123456789abcdef\n",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(unknown(text), Ok(Format::Hex), "{text}");
        }
        // Base64 with a character that is not a hex digit stays base64.
        assert_eq!(unknown("abcz\n"), Ok(Format::Base64));
    }
}
