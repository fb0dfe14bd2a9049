//! Checkpoints: the C2SP `tlog-checkpoint` body signed as a C2SP `signed-note` with
//! Ed25519.
//!
//! ```text
//! <origin>\n
//! <size>\n
//! <base64 root>\n
//! \n
//! — <origin> <base64(key hash (4 bytes) || signature (64 bytes))>\n
//! ```
//!
//! The signature is over the body (the first three lines, each with its `\n`). The key
//! hash is `SHA-256(<origin> || "\n" || 0x01 || public key)[:4]` (0x01: the Ed25519
//! signature type of signed notes). Parsing is strict: the origin is 1 to 255 bytes of
//! printable ASCII without spaces or `+`; the size is decimal without leading zeros; the
//! root is 32 bytes in canonical padded base64. Extension lines after the root are allowed
//! (and signed); other signature lines are ignored, as the signed-note spec says.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::crypto::ed25519;
use crate::encoding::{base64_decode_into, base64_decoded_len, base64_encode_into};

use super::merkle::Hash;

/// The em dash and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// The longest checkpoint accepted (bytes).
pub const MAX_CHECKPOINT_LEN: usize = 64 * 1024;

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of lines covered.
    pub size: u64,
    /// The Merkle root of those lines.
    pub root: Hash,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not a checkpoint in the expected format.
    Malformed(&'static str),
    /// Well formed, but no signature by the given key verifies.
    BadSignature(&'static str),
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointError::Malformed(m) => write!(f, "malformed checkpoint: {m}"),
            CheckpointError::BadSignature(m) => write!(f, "bad checkpoint signature: {m}"),
        }
    }
}

/// Whether `origin` is a valid origin and signed-note key name.
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin.len() <= 255
        && origin.bytes().all(|c| c.is_ascii_graphic() && c != b'+')
}

/// Standard padded base64 of `data`.
pub fn b64(data: &[u8]) -> String {
    let mut out = vec![0u8; data.len().div_ceil(3) * 4];
    // The output length is computed here, so encoding cannot fail.
    let _ = base64_encode_into(data, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Decode canonical padded base64 (no whitespace, re-encodes to the same text).
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    if text
        .bytes()
        .any(|c| !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'='))
    {
        return None;
    }
    let n = base64_decoded_len(text.as_bytes()).ok()?;
    let mut out = vec![0u8; n];
    base64_decode_into(text.as_bytes(), &mut out).ok()?;
    (b64(&out) == text).then_some(out)
}

/// `SHA-256(name || "\n" || 0x01 || public)[:4]`.
pub fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The signed body of a checkpoint.
pub fn body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", b64(root))
}

/// The complete signed note, given the signature of [`body`].
pub fn note(origin: &str, size: u64, root: &Hash, public: &[u8; 32], sig: &[u8; 64]) -> String {
    let mut blob = key_hash(origin, public).to_vec();
    blob.extend_from_slice(sig);
    format!(
        "{}\n{SIG_PREFIX}{origin} {}\n",
        body(origin, size, root),
        b64(&blob)
    )
}

/// Split a signed note into its body and its signature lines `(name, key hash, signature)`
/// and parse the body as a checkpoint.
#[allow(clippy::type_complexity)]
pub fn parse(
    text: &[u8],
) -> Result<(Checkpoint, &[u8], Vec<(String, [u8; 4], Vec<u8>)>), CheckpointError> {
    use CheckpointError::Malformed;
    if text.len() > MAX_CHECKPOINT_LEN {
        return Err(Malformed("too long"));
    }
    let s = std::str::from_utf8(text).map_err(|_| Malformed("not UTF-8"))?;
    if !s.ends_with('\n') {
        return Err(Malformed("does not end with a newline"));
    }
    let split = s
        .find("\n\n")
        .ok_or(Malformed("no blank line before the signatures"))?;
    let body_text = &s[..split + 1];
    let sig_text = &s[split + 2..];
    let mut lines = body_text.lines();
    let origin = lines.next().ok_or(Malformed("no origin line"))?;
    if !valid_origin(origin) {
        return Err(Malformed("bad origin line"));
    }
    let size_text = lines.next().ok_or(Malformed("no size line"))?;
    if size_text.is_empty()
        || size_text.len() > 20
        || !size_text.bytes().all(|c| c.is_ascii_digit())
        || (size_text.len() > 1 && size_text.starts_with('0'))
    {
        return Err(Malformed("bad size line"));
    }
    let size: u64 = size_text.parse().map_err(|_| Malformed("bad size line"))?;
    let root_text = lines.next().ok_or(Malformed("no root line"))?;
    let root: Hash = unb64(root_text)
        .and_then(|r| r.try_into().ok())
        .ok_or(Malformed("bad root line"))?;
    if lines.any(str::is_empty) {
        return Err(Malformed("empty extension line"));
    }
    let mut sigs = Vec::new();
    if sig_text.is_empty() {
        return Err(Malformed("no signature lines"));
    }
    for line in sig_text.lines() {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(Malformed("a signature line does not start with an em dash"))?;
        let (name, blob) = rest
            .split_once(' ')
            .ok_or(Malformed("bad signature line"))?;
        let blob = unb64(blob).ok_or(Malformed("bad signature encoding"))?;
        if name.is_empty() || blob.len() < 5 {
            return Err(Malformed("bad signature line"));
        }
        let kh = [blob[0], blob[1], blob[2], blob[3]];
        sigs.push((name.to_owned(), kh, blob[4..].to_vec()));
    }
    Ok((
        Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        },
        body_text.as_bytes(),
        sigs,
    ))
}

/// Parse `text` and check that a signature by `public` under the checkpoint's origin
/// verifies over its body.
pub fn verify(text: &[u8], public: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
    let (cp, body, sigs) = parse(text)?;
    let kh = key_hash(&cp.origin, public.as_bytes());
    let mut found = false;
    for (name, hash, sig) in &sigs {
        if *name != cp.origin || *hash != kh {
            continue;
        }
        found = true;
        if sig.len() == 64 && ed25519::verify(public, body, sig).is_ok() {
            return Ok(cp);
        }
    }
    Err(CheckpointError::BadSignature(if found {
        "the signature by this key does not verify"
    } else {
        "no signature by this key and origin"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed25519::PrivateKey;

    #[test]
    fn sign_parse_verify() {
        let sk = PrivateKey::from_seed(&[3u8; 32]).expect("key");
        let public = *sk.public();
        let root = [9u8; 32];
        let sig = sk
            .sign(body("example.org/log", 5, &root).as_bytes())
            .expect("sign");
        let n = note("example.org/log", 5, &root, public.as_bytes(), &sig);
        let cp = verify(n.as_bytes(), &public).expect("verify");
        assert_eq!((cp.size, cp.root), (5, root));
        let forged = n.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(
            verify(forged.as_bytes(), &public),
            Err(CheckpointError::BadSignature(_))
        ));
        let other = PrivateKey::from_seed(&[4u8; 32]).expect("key");
        assert!(matches!(
            verify(n.as_bytes(), other.public()),
            Err(CheckpointError::BadSignature(_))
        ));
        for bad in ["", "x\n", "o\n05\nAAAA\n\n— o AAAA\n", "o\n5\n\n— o x\n"] {
            assert!(matches!(
                verify(bad.as_bytes(), &public),
                Err(CheckpointError::Malformed(_))
            ));
        }
        assert!(valid_origin("keycell.example/audit"));
        assert!(!valid_origin("a b") && !valid_origin("a+b") && !valid_origin(""));
    }
}
