//! RFC 8410 encodings of Ed25519 and X25519 keys, parsed and written by hand: PKCS#8
//! private keys (read: versions 1 and 2, RFC 5958; written: version 1, as OpenSSL writes
//! them) and SubjectPublicKeyInfo public keys, in DER and PEM (RFC 7468).
//!
//! This is keycell's one implementation of these formats: key files and the public key
//! classes (layers above) both go through it. Why by hand: the
//! structures are tiny and fixed, and private key material must never land outside
//! guarded memory. PEM bodies are decoded with the constant-time base64 decoder of
//! [`crate::encoding`] straight into a caller-provided buffer (a guarded region), the DER
//! parser only hands out sub-slices of that buffer, and the writers encode from one
//! region into another. No `Vec`, `String` or other heap copy of a private key byte is
//! made.

use super::curve::{Algorithm, KEY_LEN};

/// DER content of the algorithm's OBJECT IDENTIFIER (RFC 8410: 1.3.101.112 / .110).
fn oid_of(alg: Algorithm) -> &'static [u8] {
    match alg {
        Algorithm::Ed25519 => &[0x2b, 0x65, 0x70],
        Algorithm::X25519 => &[0x2b, 0x65, 0x6e],
    }
}

/// The name of a well-known algorithm OID, for messages about keys of another type.
fn algorithm_name_of_oid(oid: &[u8]) -> Option<&'static str> {
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

/// A malformed or unsupported encoding. The message names the problem; it never contains
/// key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs8Error(pub String);

impl std::fmt::Display for Pkcs8Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, Pkcs8Error> {
    Err(Pkcs8Error(msg.into()))
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
    fn read(&mut self, tag: u8, what: &str) -> Result<&'a [u8], Pkcs8Error> {
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

    fn finish(&self, what: &str) -> Result<(), Pkcs8Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            err(format!("unexpected trailing data after {what}"))
        }
    }
}

/// Check an AlgorithmIdentifier: exactly `SEQUENCE { OID }` with the algorithm's OID and no
/// parameters (RFC 8410 §3).
fn check_algorithm(der: &mut Der<'_>, alg: Algorithm) -> Result<(), Pkcs8Error> {
    let ai = der.read(TAG_SEQUENCE, "AlgorithmIdentifier")?;
    let mut ai = Der::new(ai);
    let oid = ai.read(TAG_OID, "algorithm OID")?;
    if oid != oid_of(alg) {
        return match algorithm_name_of_oid(oid) {
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
    out[6..9].copy_from_slice(oid_of(alg));
    out[12..].copy_from_slice(public);
    out
}

/// The raw public key in a DER SubjectPublicKeyInfo.
pub fn parse_spki_der(alg: Algorithm, der: &[u8]) -> Result<[u8; KEY_LEN], Pkcs8Error> {
    let mut outer = Der::new(der);
    let spki = outer.read(TAG_SEQUENCE, "SubjectPublicKeyInfo")?;
    outer.finish("SubjectPublicKeyInfo")?;
    let mut spki = Der::new(spki);
    check_algorithm(&mut spki, alg)?;
    let bits = spki.read(TAG_BIT_STRING, "subjectPublicKey")?;
    spki.finish("subjectPublicKey")?;
    bit_string_key(bits, alg)
}

fn bit_string_key(bits: &[u8], alg: Algorithm) -> Result<[u8; KEY_LEN], Pkcs8Error> {
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
pub fn parse_pkcs8_der(alg: Algorithm, der: &[u8]) -> Result<Pkcs8<'_>, Pkcs8Error> {
    let mut outer = Der::new(der);
    let body = outer.read(TAG_SEQUENCE, "PrivateKeyInfo")?;
    outer.finish("PrivateKeyInfo")?;
    let mut body = Der::new(body);
    if body.peek_tag() == Some(TAG_SEQUENCE) {
        // EncryptedPrivateKeyInfo starts with an AlgorithmIdentifier, not a version.
        return err("encrypted PKCS#8 keys are not supported: decrypt it first (openssl pkey)");
    }
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
// PKCS#8 writing
// ---------------------------------------------------------------------------------------

/// Length of a PKCS#8 version 1 private key in DER (RFC 8410 §7).
pub const PKCS8_V1_LEN: usize = 48;

/// Write the PKCS#8 version 1 DER of the private key `key` into `out` (exactly
/// [`PKCS8_V1_LEN`] bytes, a guarded region): byte for byte what `openssl genpkey`
/// writes, `SEQUENCE { INTEGER 0, SEQUENCE { OID }, OCTET STRING { OCTET STRING (32) } }`.
pub fn pkcs8_v1_der_into(alg: Algorithm, key: &[u8], out: &mut [u8]) -> Result<(), Pkcs8Error> {
    if key.len() != KEY_LEN || out.len() != PKCS8_V1_LEN {
        return err("internal error: wrong length for a PKCS#8 key");
    }
    let (head, body) = out.split_at_mut(PKCS8_V1_LEN - KEY_LEN);
    head.copy_from_slice(&[
        TAG_SEQUENCE,
        0x2e,
        TAG_INTEGER,
        0x01,
        0x00,
        TAG_SEQUENCE,
        0x05,
        TAG_OID,
        0x03,
        0,
        0,
        0,
        TAG_OCTET_STRING,
        0x22,
        TAG_OCTET_STRING,
        0x20,
    ]);
    head[9..12].copy_from_slice(oid_of(alg));
    body.copy_from_slice(key);
    Ok(())
}

/// Whether `data` starts like an RFC 8410 PKCS#8 structure (`SEQUENCE`, version 0 or 1,
/// an id-X25519/id-Ed25519/X448/Ed448 AlgorithmIdentifier). Used by key file detection so
/// that a truncated DER file is reported as such instead of being read as a raw key; a
/// random 32-byte key starts like this with probability below 2^-80.
pub fn looks_like_pkcs8(data: &[u8]) -> bool {
    matches!(
        data,
        [
            TAG_SEQUENCE,
            _,
            TAG_INTEGER,
            0x01,
            0x00 | 0x01,
            TAG_SEQUENCE,
            0x05,
            TAG_OID,
            0x03,
            0x2b,
            0x65,
            ..
        ]
    )
}

// ---------------------------------------------------------------------------------------
// PEM (RFC 7468)
// ---------------------------------------------------------------------------------------

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";
/// DER bytes per PEM line: 48 bytes are exactly 64 base64 characters.
const PEM_LINE_BYTES: usize = 48;

/// The PEM label of PKCS#8 private keys.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// The PEM label of SubjectPublicKeyInfo public keys.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// True when `data` starts (after whitespace) with a PEM boundary.
pub fn looks_like_pem(data: &[u8]) -> bool {
    data.trim_ascii_start().starts_with(BEGIN)
}

/// The base64 body of the single PEM block labelled `label` that makes up `pem` (only
/// whitespace may surround it). The label is checked; PEM headers are refused. The body
/// is a sub-slice of `pem`; decode it with [`pem_der_len`] and [`pem_der_into`].
pub fn pem_body<'a>(pem: &'a [u8], label: &str) -> Result<&'a [u8], Pkcs8Error> {
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
    let Some(body) = rest
        .strip_suffix(DASHES)
        .and_then(|r| r.strip_suffix(label.as_bytes()))
        .and_then(|r| r.strip_suffix(END))
    else {
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
            "it is an OpenSSH private key: read it with format=\"openssh\" (or format=None)"
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

fn pem_base64_error(e: crate::encoding::DecodeError) -> Pkcs8Error {
    Pkcs8Error(format!("malformed base64 in the PEM block: {e}"))
}

/// Bytes the PEM `body` (from [`pem_body`]) decodes to; looks at the layout only.
pub fn pem_der_len(body: &[u8]) -> Result<usize, Pkcs8Error> {
    crate::encoding::base64_decoded_len(body).map_err(pem_base64_error)
}

/// Decode the PEM `body` into `out` (exactly [`pem_der_len`] bytes; a guarded region for
/// a private key), with the constant-time decoder of [`crate::encoding`].
pub fn pem_der_into(body: &[u8], out: &mut [u8]) -> Result<(), Pkcs8Error> {
    crate::encoding::base64_decode_into(body, out).map_err(pem_base64_error)
}

/// Length of the PEM block [`pem_encode_into`] writes for `der_len` bytes of DER.
pub fn pem_encoded_len(label: &str, der_len: usize) -> usize {
    let lines = der_len.div_ceil(PEM_LINE_BYTES);
    let b64 = crate::encoding::base64_encoded_len(der_len);
    BEGIN.len()
        + label.len()
        + DASHES.len()
        + 1
        + b64
        + lines
        + END.len()
        + label.len()
        + DASHES.len()
        + 1
}

/// Write `der` as a PEM block labelled `label` into `out` (exactly [`pem_encoded_len`]
/// bytes): RFC 7468 strict form, 64-character lines, a final newline, as OpenSSL writes
/// it. Private keys are encoded from one guarded region into another.
pub fn pem_encode_into(label: &str, der: &[u8], out: &mut [u8]) -> Result<(), Pkcs8Error> {
    if out.len() != pem_encoded_len(label, der.len()) {
        return err("internal error: wrong length for a PEM block");
    }
    let mut at = 0usize;
    for part in [BEGIN, label.as_bytes(), DASHES, b"\n"] {
        put(out, &mut at, part);
    }
    for chunk in der.chunks(PEM_LINE_BYTES) {
        let n = crate::encoding::base64_encoded_len(chunk.len());
        crate::encoding::base64_encode_into(chunk, &mut out[at..at + n])
            .map_err(|_| Pkcs8Error("internal error: base64 encoding failed".to_owned()))?;
        at += n;
        put(out, &mut at, b"\n");
    }
    for part in [END, label.as_bytes(), DASHES, b"\n"] {
        put(out, &mut at, part);
    }
    Ok(())
}

fn put(out: &mut [u8], at: &mut usize, part: &[u8]) {
    out[*at..*at + part.len()].copy_from_slice(part);
    *at += part.len();
}

/// PEM "PUBLIC KEY" block (RFC 7468) of a raw public key.
pub fn spki_pem(alg: Algorithm, public: &[u8; KEY_LEN]) -> Vec<u8> {
    let der = spki_der(alg, public);
    let mut out = vec![0u8; pem_encoded_len(PUBLIC_KEY_LABEL, der.len())];
    // The length is the one pem_encode_into expects, so it cannot fail.
    let _ = pem_encode_into(PUBLIC_KEY_LABEL, &der, &mut out);
    out
}

/// The raw public key in a PEM "PUBLIC KEY" block.
pub fn parse_spki_pem(alg: Algorithm, pem: &[u8]) -> Result<[u8; KEY_LEN], Pkcs8Error> {
    let body = pem_body(pem, PUBLIC_KEY_LABEL)?;
    let mut der = vec![0u8; pem_der_len(body)?];
    pem_der_into(body, &mut der)?;
    parse_spki_der(alg, &der)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex as hex;

    // RFC 8410 §10.3 example private key and §10.1 public key.
    const RFC_PRIV_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
-----END PRIVATE KEY-----\n";
    const RFC_PUB_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
-----END PUBLIC KEY-----\n";

    fn decode_pem(pem: &[u8], label: &str) -> Vec<u8> {
        let body = pem_body(pem, label).expect("body");
        let mut out = vec![0u8; pem_der_len(body).expect("len")];
        pem_der_into(body, &mut out).expect("decode");
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
        assert_eq!(spki_pem(Algorithm::Ed25519, &pk), RFC_PUB_PEM.as_bytes());
        let der = spki_der(Algorithm::X25519, &pk);
        assert_eq!(parse_spki_der(Algorithm::X25519, &der).expect("x"), pk);
        assert!(parse_spki_der(Algorithm::Ed25519, &der).is_err());
        assert!(parse_spki_der(Algorithm::X25519, &der[..43]).is_err());
        let mut longer = der.to_vec();
        longer.push(0);
        assert!(parse_spki_der(Algorithm::X25519, &longer).is_err());
    }

    #[test]
    fn pem_writer_round_trips_with_64_character_lines() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for len in 1..data.len() {
            let der = &data[..len];
            let mut pem = vec![0u8; pem_encoded_len("TEST", len)];
            pem_encode_into("TEST", der, &mut pem).expect("encode");
            assert!(pem.starts_with(b"-----BEGIN TEST-----\n"));
            assert!(pem.ends_with(b"\n-----END TEST-----\n"));
            assert!(pem.split(|&c| c == b'\n').all(|line| line.len() <= 64));
            assert_eq!(decode_pem(&pem, "TEST"), der, "{len}");
        }
        assert!(pem_encode_into("TEST", b"x", &mut [0u8; 10]).is_err());
    }

    #[test]
    fn pkcs8_v1_writer_matches_openssl_and_parses() {
        let der = decode_pem(RFC_PRIV_PEM.as_bytes(), PRIVATE_KEY_LABEL);
        let mut out = [0u8; PKCS8_V1_LEN];
        pkcs8_v1_der_into(Algorithm::Ed25519, &der[16..], &mut out).expect("write");
        assert_eq!(out.as_slice(), der.as_slice());
        let mut pem = vec![0u8; pem_encoded_len(PRIVATE_KEY_LABEL, PKCS8_V1_LEN)];
        pem_encode_into(PRIVATE_KEY_LABEL, &out, &mut pem).expect("pem");
        assert_eq!(pem, RFC_PRIV_PEM.as_bytes());
        for alg in [Algorithm::Ed25519, Algorithm::X25519] {
            pkcs8_v1_der_into(alg, &[9u8; 32], &mut out).expect("write");
            assert!(looks_like_pkcs8(&out));
            assert_eq!(parse_pkcs8_der(alg, &out).expect("parse").key, [9u8; 32]);
        }
        assert!(pkcs8_v1_der_into(Algorithm::X25519, &[9u8; 31], &mut out).is_err());
        assert!(!looks_like_pkcs8(&[9u8; 32]));
    }

    #[test]
    fn encrypted_pkcs8_der_is_named() {
        // EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID ... }, OCTET STRING }.
        let der = [
            0x30, 0x0c, 0x30, 0x05, 0x06, 0x03, 0x2a, 0x86, 0x48, 0x04, 0x03, 0x01, 0x02, 0x03,
        ];
        let e = parse_pkcs8_der(Algorithm::Ed25519, &der)
            .err()
            .expect("refused");
        assert!(e.0.contains("encrypted"), "{}", e.0);
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
