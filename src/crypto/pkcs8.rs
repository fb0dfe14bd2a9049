//! RFC 8410 encodings of Ed25519 and X25519 keys: PKCS#8 private keys (read only) and
//! SubjectPublicKeyInfo public keys (read and write), in DER and PEM, parsed by hand.
//!
//! Why by hand: the structures are tiny and fixed, and private key material must never
//! land outside guarded memory. The PEM decoder here writes the decoded DER straight into
//! a caller-provided buffer (a guarded region), decodes base64 characters with
//! branch-free, table-free arithmetic (as libsodium's `sodium_base642bin` and RustCrypto's
//! `base64ct` do), and the DER parser only hands out sub-slices of that buffer. No `Vec`,
//! `String` or other heap copy of a private key byte is made.

use std::path::Path;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::keyfile::{KeyFile, KeyFileError};
use crate::memory::{MemoryError, SecretBuf};

/// The key type a structure must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    X25519,
}

impl Algorithm {
    /// DER content of the algorithm's OBJECT IDENTIFIER (RFC 8410: 1.3.101.112 / .110).
    fn oid(self) -> &'static [u8] {
        match self {
            Algorithm::Ed25519 => &[0x2b, 0x65, 0x70],
            Algorithm::X25519 => &[0x2b, 0x65, 0x6e],
        }
    }

    /// Name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::X25519 => "X25519",
        }
    }

    fn from_oid(oid: &[u8]) -> Option<&'static str> {
        match oid {
            [0x2b, 0x65, 0x70] => Some("Ed25519"),
            [0x2b, 0x65, 0x6e] => Some("X25519"),
            [0x2b, 0x65, 0x71] => Some("Ed448"),
            [0x2b, 0x65, 0x6f] => Some("X448"),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => Some("RSA"),
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => Some("EC"),
            _ => None,
        }
    }
}

/// Length of a raw Ed25519 / X25519 key (private or public).
pub const KEY_LEN: usize = 32;

/// A malformed or unsupported encoding. The message names the problem; it never contains
/// key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, FormatError> {
    Err(FormatError(msg.into()))
}

// ---------------------------------------------------------------------------------------
// DER
// ---------------------------------------------------------------------------------------

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// `[0] IMPLICIT Attributes` (constructed) in PKCS#8.
const TAG_ATTRIBUTES: u8 = 0xa0;
/// `[1] IMPLICIT BIT STRING` (primitive) publicKey in OneAsymmetricKey (RFC 5958).
const TAG_PUBLIC_KEY: u8 = 0x81;

/// A cursor over DER: reads one tag-length-value at a time (single-byte tags, definite
/// minimal lengths up to 65535, as DER requires).
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Der { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Read the next element; its tag must be `tag`. Returns the content.
    fn read(&mut self, tag: u8, what: &str) -> Result<&'a [u8], FormatError> {
        let data = self.rest;
        let Some((&t, after_tag)) = data.split_first() else {
            return err(format!("truncated DER: {what} missing"));
        };
        if t != tag {
            // The found tag is not shown: in a malformed private key it may be a key byte.
            return err(format!("malformed DER: {what} expected"));
        }
        let Some((&first, after_len)) = after_tag.split_first() else {
            return err(format!("truncated DER: length of {what} missing"));
        };
        let (len, body) = match first {
            0..=0x7f => (first as usize, after_len),
            0x81 => match after_len.split_first() {
                Some((&b, body)) if b >= 0x80 => (b as usize, body),
                Some(_) => return err("non-minimal DER length"),
                None => return err("truncated DER length"),
            },
            0x82 => match after_len {
                [hi, lo, body @ ..] => {
                    let l = (*hi as usize) << 8 | *lo as usize;
                    if l < 0x100 {
                        return err("non-minimal DER length");
                    }
                    (l, body)
                }
                _ => return err("truncated DER length"),
            },
            0x80 => return err("indefinite lengths are not allowed in DER"),
            _ => return err("DER length too large for a key"),
        };
        if body.len() < len {
            return err(format!(
                "truncated DER: {what} runs past the end of the data"
            ));
        }
        let (content, rest) = body.split_at(len);
        self.rest = rest;
        Ok(content)
    }

    fn finish(&self, what: &str) -> Result<(), FormatError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            err(format!("unexpected trailing data after {what}"))
        }
    }
}

/// Check an AlgorithmIdentifier: exactly `SEQUENCE { OID }` with the algorithm's OID and no
/// parameters (RFC 8410 §3).
fn check_algorithm(der: &mut Der<'_>, alg: Algorithm) -> Result<(), FormatError> {
    let ai = der.read(TAG_SEQUENCE, "AlgorithmIdentifier")?;
    let mut ai = Der::new(ai);
    let oid = ai.read(TAG_OID, "algorithm OID")?;
    if oid != alg.oid() {
        return match Algorithm::from_oid(oid) {
            Some(other) => err(format!("this is an {other} key, not an {} key", alg.name())),
            None => err(format!("not an {} key (unknown algorithm OID)", alg.name())),
        };
    }
    if !ai.is_empty() {
        return err(format!(
            "{} AlgorithmIdentifier must not have parameters (RFC 8410)",
            alg.name()
        ));
    }
    Ok(())
}

/// The DER SubjectPublicKeyInfo of a raw public key (44 bytes).
pub fn spki_der(alg: Algorithm, public: &[u8; KEY_LEN]) -> [u8; 44] {
    let mut out = [0u8; 44];
    out[..12].copy_from_slice(&[
        TAG_SEQUENCE,
        0x2a,
        TAG_SEQUENCE,
        0x05,
        TAG_OID,
        0x03,
        0,
        0,
        0,
        TAG_BIT_STRING,
        0x21,
        0x00,
    ]);
    out[6..9].copy_from_slice(alg.oid());
    out[12..].copy_from_slice(public);
    out
}

/// The raw public key in a DER SubjectPublicKeyInfo.
pub fn parse_spki_der(alg: Algorithm, der: &[u8]) -> Result<[u8; KEY_LEN], FormatError> {
    let mut outer = Der::new(der);
    let spki = outer.read(TAG_SEQUENCE, "SubjectPublicKeyInfo")?;
    outer.finish("SubjectPublicKeyInfo")?;
    let mut spki = Der::new(spki);
    check_algorithm(&mut spki, alg)?;
    let bits = spki.read(TAG_BIT_STRING, "subjectPublicKey")?;
    spki.finish("subjectPublicKey")?;
    bit_string_key(bits, alg)
}

fn bit_string_key(bits: &[u8], alg: Algorithm) -> Result<[u8; KEY_LEN], FormatError> {
    match bits.split_first() {
        Some((0, key)) if key.len() == KEY_LEN => {
            let mut out = [0u8; KEY_LEN];
            out.copy_from_slice(key);
            Ok(out)
        }
        Some((0, _)) => err(format!("an {} public key must be 32 bytes", alg.name())),
        _ => err("malformed BIT STRING in public key"),
    }
}

/// A parsed PKCS#8 private key: the raw key (a sub-slice of the input) and the public key
/// when the structure carries one (RFC 5958 version 2).
pub struct Pkcs8<'a> {
    pub key: &'a [u8],
    pub public: Option<[u8; KEY_LEN]>,
}

/// Parse an unencrypted PKCS#8 (RFC 5208 / RFC 5958 OneAsymmetricKey) private key of
/// `alg` from DER. The returned key slice points into `der`.
pub fn parse_pkcs8_der(alg: Algorithm, der: &[u8]) -> Result<Pkcs8<'_>, FormatError> {
    let mut outer = Der::new(der);
    let body = outer.read(TAG_SEQUENCE, "PrivateKeyInfo")?;
    outer.finish("PrivateKeyInfo")?;
    let mut body = Der::new(body);
    let version = body.read(TAG_INTEGER, "version")?;
    let v2 = match version {
        [0] => false,
        [1] => true,
        _ => return err("unsupported PKCS#8 version (expected 0 or 1)"),
    };
    check_algorithm(&mut body, alg)?;
    let wrapped = body.read(TAG_OCTET_STRING, "privateKey")?;
    // RFC 8410: privateKey is an OCTET STRING holding a CurvePrivateKey, itself an
    // OCTET STRING of the 32 key bytes.
    let mut inner = Der::new(wrapped);
    let key = inner.read(TAG_OCTET_STRING, "CurvePrivateKey")?;
    inner.finish("CurvePrivateKey")?;
    if key.len() != KEY_LEN {
        return err(format!("an {} private key must be 32 bytes", alg.name()));
    }
    if body.peek_tag() == Some(TAG_ATTRIBUTES) {
        body.read(TAG_ATTRIBUTES, "attributes")?;
    }
    let mut public = None;
    if body.peek_tag() == Some(TAG_PUBLIC_KEY) {
        if !v2 {
            return err("a version 0 PKCS#8 key cannot carry a public key");
        }
        let bits = body.read(TAG_PUBLIC_KEY, "publicKey")?;
        public = Some(bit_string_key(bits, alg)?);
    }
    body.finish("PrivateKeyInfo")?;
    Ok(Pkcs8 { key, public })
}

// ---------------------------------------------------------------------------------------
// PEM and base64
// ---------------------------------------------------------------------------------------

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// True when `data` starts (after whitespace) with a PEM boundary.
pub fn looks_like_pem(data: &[u8]) -> bool {
    data.trim_ascii_start().starts_with(BEGIN)
}

/// The base64 body of the single PEM block labelled `label` that makes up `pem` (only
/// whitespace may surround it). The label is checked; PEM headers are refused.
pub fn pem_body<'a>(pem: &'a [u8], label: &str) -> Result<&'a [u8], FormatError> {
    let text = pem.trim_ascii();
    let Some(after_begin) = text.strip_prefix(BEGIN) else {
        return err("not PEM: no \"-----BEGIN\" line");
    };
    let Some(eol) = after_begin.iter().position(|&b| b == b'\n') else {
        return err("not PEM: nothing after the BEGIN line");
    };
    let begin_line = after_begin[..eol].trim_ascii_end();
    let Some(found) = begin_line.strip_suffix(DASHES) else {
        return err("malformed PEM BEGIN line");
    };
    if found != label.as_bytes() {
        return err(describe_label(found, label));
    }
    let rest = &after_begin[eol + 1..];
    let mut end_marker = Vec::with_capacity(END.len() + label.len() + DASHES.len());
    end_marker.extend_from_slice(END);
    end_marker.extend_from_slice(label.as_bytes());
    end_marker.extend_from_slice(DASHES);
    let Some(body) = rest.strip_suffix(end_marker.as_slice()) else {
        return err(format!(
            "the PEM block must end with \"-----END {label}-----\" and nothing after it"
        ));
    };
    if body.contains(&b':') {
        return err("PEM headers (legacy OpenSSL encryption) are not supported");
    }
    if body.windows(DASHES.len()).any(|w| w == DASHES) {
        return err("more than one PEM block");
    }
    Ok(body)
}

fn describe_label(found: &[u8], wanted: &str) -> String {
    match found {
        b"ENCRYPTED PRIVATE KEY" => {
            "encrypted PKCS#8 keys are not supported: decrypt it first (openssl pkey)".to_owned()
        }
        b"OPENSSH PRIVATE KEY" => {
            "OpenSSH private keys are not supported: convert to PKCS#8 (ssh-keygen -p -m PKCS8)"
                .to_owned()
        }
        b"PRIVATE KEY" | b"PUBLIC KEY" | b"RSA PRIVATE KEY" | b"EC PRIVATE KEY"
        | b"CERTIFICATE" => format!(
            "expected a PEM \"{wanted}\" block, found \"{}\"",
            String::from_utf8_lossy(found)
        ),
        _ => format!("expected a PEM \"{wanted}\" block, found another kind of PEM block"),
    }
}

/// Decode one base64 character (standard alphabet) without branches or table lookups:
/// the value `0..=63`, or `-1` if it is not a base64 character.
#[inline(always)]
fn decode_6bits(c: u8) -> i16 {
    let c = c as i16;
    let mut r: i16 = -1;
    r += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); // A-Z -> 0..25
    r += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); // a-z -> 26..51
    r += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5); // 0-9 -> 52..61
    r += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; // '+' -> 62
    r += (((0x2e - c) & (c - 0x30)) >> 8) & 64; // '/' -> 63
    r
}

/// Number of base64 characters and trailing `=` in `body` (whitespace ignored). Only the
/// layout is inspected, never the value of a data character.
fn base64_layout(body: &[u8]) -> Result<(usize, usize), FormatError> {
    let mut chars = 0usize;
    let mut pad = 0usize;
    for &c in body {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            pad += 1;
        } else if pad > 0 {
            return err("base64 padding in the middle of the data");
        } else {
            chars += 1;
        }
    }
    if pad > 2 || (chars + pad) % 4 != 0 || chars + pad == 0 {
        return err("malformed base64: wrong length or padding");
    }
    Ok((chars, pad))
}

/// Bytes that `body` decodes to.
pub fn base64_decoded_len(body: &[u8]) -> Result<usize, FormatError> {
    let (chars, pad) = base64_layout(body)?;
    Ok((chars + pad) / 4 * 3 - pad)
}

/// Decode the base64 `body` (whitespace ignored) into `out`, which must be exactly
/// [`base64_decoded_len`] bytes (a guarded region for secret data). Constant time in the
/// data characters; the accumulator is zeroized before returning. On error `out` may hold
/// partial output (the caller's region is wiped when dropped).
pub fn base64_decode_into(body: &[u8], out: &mut [u8]) -> Result<(), FormatError> {
    if out.len() != base64_decoded_len(body)? {
        return err("internal error: base64 output size mismatch");
    }
    let mut acc: u32 = 0;
    let mut nacc = 0u32;
    let mut bad: i16 = 0;
    let mut o = 0usize;
    for &c in body {
        if c.is_ascii_whitespace() || c == b'=' {
            continue;
        }
        let v = decode_6bits(c);
        bad |= v;
        acc = (acc << 6) | (v as u32 & 0x3f);
        nacc += 1;
        if nacc == 4 {
            out[o] = (acc >> 16) as u8;
            out[o + 1] = (acc >> 8) as u8;
            out[o + 2] = acc as u8;
            o += 3;
            acc = 0;
            nacc = 0;
        }
    }
    // A final group of 2 or 3 characters carries 1 or 2 bytes; its unused low bits must be
    // zero (canonical encoding).
    let mut leftover: u32 = 0;
    match nacc {
        0 => {}
        2 => {
            out[o] = (acc >> 4) as u8;
            leftover = acc & 0x0f;
        }
        3 => {
            out[o] = (acc >> 10) as u8;
            out[o + 1] = (acc >> 2) as u8;
            leftover = acc & 0x03;
        }
        _ => bad = -1,
    }
    let ok = bad >= 0 && bool::from(leftover.ct_eq(&0));
    acc.zeroize();
    leftover.zeroize();
    if ok {
        Ok(())
    } else {
        err("malformed base64: invalid character or non-canonical encoding")
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (standard alphabet, padded) of public data.
fn base64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// PEM "PUBLIC KEY" block (RFC 7468, 64-character lines) of a raw public key.
pub fn spki_pem(alg: Algorithm, public: &[u8; KEY_LEN]) -> String {
    let b64 = base64_encode(&spki_der(alg, public));
    let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str("-----END PUBLIC KEY-----\n");
    s
}

/// The raw public key in a PEM "PUBLIC KEY" block.
pub fn parse_spki_pem(alg: Algorithm, pem: &[u8]) -> Result<[u8; KEY_LEN], FormatError> {
    let body = pem_body(pem, "PUBLIC KEY")?;
    let mut der = vec![0u8; base64_decoded_len(body)?];
    base64_decode_into(body, &mut der)?;
    parse_spki_der(alg, &der)
}

// ---------------------------------------------------------------------------------------
// Private key files
// ---------------------------------------------------------------------------------------

/// Largest private key file accepted. A PEM PKCS#8 Ed25519 key is 119 bytes; the limit
/// leaves room for attributes and a public key, and refuses anything absurd.
pub const MAX_PRIVATE_KEY_FILE_LEN: usize = 16 * 1024;

/// Why a private key file could not be loaded. No variant carries key bytes.
#[derive(Debug)]
pub enum LoadError {
    /// The file is unsafe or unreadable (see [`KeyFile::open`]).
    File(KeyFileError),
    /// The contents are not a supported key encoding.
    Format(FormatError),
    /// The memory layer failed.
    Memory(MemoryError),
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> Self {
        LoadError::Memory(e)
    }
}

impl From<FormatError> for LoadError {
    fn from(e: FormatError) -> Self {
        LoadError::Format(e)
    }
}

/// Read a private key of `alg` from `path`: the raw 32 key bytes, or an unencrypted
/// PKCS#8 key in PEM (as `openssl genpkey` writes) or DER. The file goes through
/// [`KeyFile::open`]'s checks and is read straight into a guarded region; PEM is decoded
/// into a second region; `make` receives the 32 key bytes as a slice of a region and must
/// copy them into the key's own region. Both scratch regions are wiped when this returns.
///
/// Returns what `make` built, and the public key stored in the file, if any (the caller
/// checks it against the one derived from the private key).
pub fn read_private_key_file<T, E>(
    path: &Path,
    alg: Algorithm,
    make: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<(T, Option<[u8; KEY_LEN]>), E>
where
    E: From<LoadError>,
{
    let mut file = KeyFile::open(path, MAX_PRIVATE_KEY_FILE_LEN).map_err(LoadError::File)?;
    let raw = SecretBuf::new_with(file.size(), |dst| {
        file.read_into(dst).map_err(LoadError::File)
    })?;
    let text = raw.bytes().map_err(LoadError::Memory)?;
    if text.len() == KEY_LEN {
        return Ok((make(text)?, None));
    }
    let decoded;
    let der: &[u8] = if looks_like_pem(text) {
        let body = pem_body(text, "PRIVATE KEY").map_err(LoadError::Format)?;
        let len = base64_decoded_len(body).map_err(LoadError::Format)?;
        decoded = SecretBuf::new_with(len, |dst| -> Result<(), LoadError> {
            Ok(base64_decode_into(body, dst)?)
        })?;
        decoded.bytes().map_err(LoadError::Memory)?
    } else if text.first() == Some(&TAG_SEQUENCE) {
        text
    } else {
        return Err(LoadError::Format(FormatError(format!(
            "not a raw 32-byte {} key, nor a PKCS#8 key in PEM or DER",
            alg.name()
        )))
        .into());
    };
    let parsed = parse_pkcs8_der(alg, der).map_err(LoadError::Format)?;
    let built = make(parsed.key)?;
    Ok((built, parsed.public))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    // RFC 8410 §10.3 example private key and §10.1 public key.
    const RFC_PRIV_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
-----END PRIVATE KEY-----\n";
    const RFC_PUB_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
-----END PUBLIC KEY-----\n";

    fn decode_pem(pem: &[u8], label: &str) -> Vec<u8> {
        let body = pem_body(pem, label).expect("body");
        let mut out = vec![0u8; base64_decoded_len(body).expect("len")];
        base64_decode_into(body, &mut out).expect("decode");
        out
    }

    #[test]
    fn rfc8410_private_key() {
        let der = decode_pem(RFC_PRIV_PEM.as_bytes(), "PRIVATE KEY");
        let p = parse_pkcs8_der(Algorithm::Ed25519, &der).expect("parse");
        assert_eq!(
            p.key,
            hex("d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842").as_slice()
        );
        assert!(p.public.is_none());
        assert!(parse_pkcs8_der(Algorithm::X25519, &der)
            .err()
            .expect("wrong alg")
            .0
            .contains("Ed25519 key, not an X25519"));
    }

    #[test]
    fn rfc8410_public_key_roundtrip() {
        let pk = parse_spki_pem(Algorithm::Ed25519, RFC_PUB_PEM.as_bytes()).expect("parse");
        assert_eq!(
            pk.to_vec(),
            hex("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
        );
        assert_eq!(spki_pem(Algorithm::Ed25519, &pk), RFC_PUB_PEM);
        let der = spki_der(Algorithm::X25519, &pk);
        assert_eq!(parse_spki_der(Algorithm::X25519, &der).expect("x"), pk);
        assert!(parse_spki_der(Algorithm::Ed25519, &der).is_err());
        assert!(parse_spki_der(Algorithm::X25519, &der[..43]).is_err());
        let mut longer = der.to_vec();
        longer.push(0);
        assert!(parse_spki_der(Algorithm::X25519, &longer).is_err());
    }

    #[test]
    fn base64_matches_reference_and_rejects_garbage() {
        // Every length 0..40 and every byte value round-trips through our encoder and
        // decoder.
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 1..40 {
            for start in [0usize, 100, 216] {
                let d = &data[start..start + len];
                let e = base64_encode(d);
                let mut out = vec![0u8; base64_decoded_len(e.as_bytes()).expect("len")];
                base64_decode_into(e.as_bytes(), &mut out).expect("decode");
                assert_eq!(out, d);
            }
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        for bad in [
            &b"Zm9v!mFy"[..],
            b"Zm8",
            b"Z===",
            b"Zm8=Zm8=",
            b"Zm9=",
            b"",
            b"Zm-v",
        ] {
            let ok = base64_decoded_len(bad).and_then(|n| {
                let mut out = vec![0u8; n];
                base64_decode_into(bad, &mut out)
            });
            assert!(ok.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        for c in 0..=255u8 {
            let expect = B64.iter().position(|&x| x == c).map_or(-1, |p| p as i16);
            assert_eq!(decode_6bits(c), expect, "char {c}");
        }
    }

    #[test]
    fn pem_errors() {
        assert!(pem_body(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "PRIVATE KEY"
        )
        .expect_err("enc")
        .0
        .contains("encrypted"));
        assert!(pem_body(
            b"-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END PRIVATE KEY-----",
            "PRIVATE KEY"
        )
        .is_err());
        assert!(pem_body(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\ntrailing",
            "PRIVATE KEY"
        )
        .is_err());
        assert!(pem_body(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            "PRIVATE KEY"
        )
        .is_err());
    }

    #[test]
    fn der_structure_checks() {
        let der = decode_pem(RFC_PRIV_PEM.as_bytes(), "PRIVATE KEY");
        // Every truncation fails; trailing bytes fail.
        for n in 0..der.len() {
            assert!(
                parse_pkcs8_der(Algorithm::Ed25519, &der[..n]).is_err(),
                "{n}"
            );
        }
        let mut longer = der.clone();
        longer.push(0);
        assert!(parse_pkcs8_der(Algorithm::Ed25519, &longer).is_err());
        // Version 2 with a public key.
        let mut v2 = vec![0x30, 0x51, 0x02, 0x01, 0x01];
        v2.extend_from_slice(&der[5..48]);
        v2.extend_from_slice(&[0x81, 0x21, 0x00]);
        v2.extend_from_slice(&[7u8; 32]);
        let p = parse_pkcs8_der(Algorithm::Ed25519, &v2).expect("v2");
        assert_eq!(p.public, Some([7u8; 32]));
        // The same public key in a version 0 structure is refused.
        v2[4] = 0;
        assert!(parse_pkcs8_der(Algorithm::Ed25519, &v2).is_err());
    }
}
