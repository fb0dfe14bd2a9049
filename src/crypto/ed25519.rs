//! Ed25519 (RFC 8032) signing with the key in a guarded region, and verification.
//!
//! Region layout of a private key (one region of two parts, see
//! [`crate::memory::Region`], written once, read-only afterwards):
//!
//! ```text
//! [canary][ clamped scalar s (32) | nonce prefix (32) ][canary][ seed (32) ] | guard page
//!          \______ SHA-512(seed), s clamped ______/
//! ```
//!
//! The seed ends at the guard page and has its own canary directly in front, so a
//! one-byte underflow out of the seed, or overflow out of the expanded key, aborts the
//! process when the key is freed.
//!
//! The expansion is computed once, when the key is created, in the same writable window
//! in which the seed is written. Signing reads the scalar and prefix from the region on
//! each call and implements RFC 8032 §5.1.6 on `curve25519-dalek` directly:
//!
//! - the nonce hash `SHA-512(prefix || M)` uses [`SecretHash`], our SHA-2 (as HMAC uses) on
//!   `sha2::compress512` whose state and buffer are zeroized on drop (the `sha2` hashers
//!   cannot be zeroized);
//! - the nonce `r`, the reduced scalar and every other value we own is zeroized;
//! - what `curve25519-dalek` leaves in its own stack frames (radix-16 digits of `r`,
//!   unpacked scalar limbs) is overwritten by [`super::scrub`] after the call.
//!
//! No key-derived byte is ever written to the heap. The public key is not secret: it is
//! kept in ordinary memory, decompressed once (an `ed25519_dalek::VerifyingKey`).
//!
//! Verification uses `ed25519-dalek`'s `verify_strict`: cofactorless, `S < L`, the
//! encoding of `R` compared byte for byte, and small-order `A` or `R` rejected. Against the
//! Wycheproof vectors it accepts every valid case and rejects every invalid one (see
//! `tests/test_ed25519_vectors.py`).

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use super::curve::Algorithm;
use super::curve::CurvePrivateKey;
use super::scrub::scrubbed;
use super::sha2_core::{HashAlgorithm, SecretHash};
use crate::memory::{MemoryError, Protection, SecretBuf};

/// Bytes of a seed (the RFC 8032 private key).
pub const SEED_LEN: usize = 32;
/// Bytes of a public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// Ranges in the expanded part.
const SCALAR: std::ops::Range<usize> = 0..32;
const PREFIX: std::ops::Range<usize> = 32..64;
const EXPANDED_LEN: usize = 64;
/// Part indices in the region.
const EXPANDED: usize = 0;
const SEED: usize = 1;

/// An Ed25519 private key: seed and expanded secret key in one guarded region, plus the
/// (public) verifying key.
pub struct PrivateKey {
    buf: SecretBuf,
    public: VerifyingKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ed25519::PrivateKey(public={:?}, secret redacted)",
            self.public.as_bytes()
        )
    }
}

/// Derive the expanded key from the seed, into the region's expanded part.
#[inline(never)]
fn expand(seed: &[u8], expanded: &mut [u8]) {
    let mut h = SecretHash::new(HashAlgorithm::Sha512);
    h.update(seed);
    h.finalize_into(expanded);
    // RFC 8032 §5.1.5: clamp the first half.
    expanded[0] &= 248;
    expanded[31] &= 127;
    expanded[31] |= 64;
}

/// `A = s·B` for the clamped scalar in `scalar_bytes`.
#[inline(never)]
fn derive_public(scalar_bytes: &[u8]) -> VerifyingKey {
    let mut s = [0u8; 32];
    s.copy_from_slice(scalar_bytes);
    let point = EdwardsPoint::mul_base_clamped(s);
    s.zeroize();
    VerifyingKey::from(point)
}

/// RFC 8032 §5.1.6 signing from the expanded key bytes (`[scalar | prefix]`, in the region).
#[inline(never)]
fn sign_raw(expanded: &[u8], public: &CompressedEdwardsY, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
    // r = SHA-512(prefix || M) mod L
    let mut h = SecretHash::new(HashAlgorithm::Sha512);
    h.update(&expanded[PREFIX]);
    h.update(msg);
    let mut digest = [0u8; 64];
    h.finalize_into(&mut digest);
    let mut r = Scalar::from_bytes_mod_order_wide(&digest);
    digest.zeroize();
    let big_r = EdwardsPoint::mul_base(&r).compress();

    // k = SHA-512(R || A || M) mod L  (public inputs only)
    let mut kh = Sha512::new();
    kh.update(big_r.as_bytes());
    kh.update(public.as_bytes());
    kh.update(msg);
    let k = Scalar::from_bytes_mod_order_wide(&kh.finalize().into());

    // S = r + k·s mod L
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&expanded[SCALAR]);
    let mut s = Scalar::from_bytes_mod_order(s_bytes);
    s_bytes.zeroize();
    let mut ks = k * s;
    let big_s = ks + r;
    ks.zeroize();
    s.zeroize();
    r.zeroize();

    let mut sig = [0u8; SIGNATURE_LEN];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(big_s.as_bytes());
    sig
}

/// Allocate the region, let `fill` write the seed, expand it in place.
#[inline(never)]
fn create_region<E: From<MemoryError>>(
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<SecretBuf, E> {
    SecretBuf::new_parts_with([EXPANDED_LEN, SEED_LEN], |[expanded, seed]| {
        fill(seed)?;
        expand(seed, expanded);
        Ok(())
    })
}

impl PrivateKey {
    /// Build a key whose seed `fill` writes straight into the region; the expanded key and
    /// the public key are derived at once.
    pub fn new_with<E: From<MemoryError>>(
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let buf = scrubbed(|| create_region(fill))?;
        let expanded = buf.part(EXPANDED)?;
        let public = scrubbed(|| derive_public(&expanded[SCALAR]));
        Ok(PrivateKey { buf, public })
    }

    /// A key from a 32-byte seed (copied into the region).
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Result<Self, MemoryError> {
        Self::new_with(|dst| {
            dst.copy_from_slice(seed);
            Ok(())
        })
    }

    /// The verifying (public) key.
    pub fn public(&self) -> &VerifyingKey {
        &self.public
    }

    /// Sign `msg` (RFC 8032 Ed25519, deterministic).
    pub fn sign(&self, msg: &[u8]) -> Result<[u8; SIGNATURE_LEN], MemoryError> {
        let expanded = self.buf.part(EXPANDED)?;
        let public = self.public.as_bytes();
        let compressed = CompressedEdwardsY(*public);
        Ok(scrubbed(|| sign_raw(expanded, &compressed, msg)))
    }

    /// Where the seed is in [`PrivateKey::region`]'s copy.
    #[cfg(test)]
    const SEED_IN_COPY: std::ops::Range<usize> = EXPANDED_LEN..EXPANDED_LEN + SEED_LEN;

    /// A copy of the region's parts, `[scalar | prefix | seed]` (tests only).
    #[cfg(test)]
    fn region(&self) -> Vec<u8> {
        let mut v = self.buf.part(EXPANDED).expect("expanded").to_vec();
        v.extend_from_slice(self.buf.part(SEED).expect("seed"));
        v
    }
}

impl CurvePrivateKey for PrivateKey {
    const ALGORITHM: Algorithm = Algorithm::Ed25519;

    fn new_with<E: From<MemoryError>>(
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        PrivateKey::new_with(fill)
    }

    /// The seed.
    fn private_bytes(&self) -> Result<&[u8], MemoryError> {
        self.buf.part(SEED)
    }

    fn public_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.public.as_bytes()
    }

    fn protection(&self) -> Protection {
        self.buf.protection()
    }
}

/// Why a public key or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The bytes are not a point encoding (not 32 bytes, or not on the curve).
    InvalidPublicKey,
    /// The signature does not verify (or is malformed, e.g. wrong length, `S >= L`).
    InvalidSignature,
}

/// A public key from its 32-byte encoding. Bytes that do not decode to a curve point are
/// refused here. Small-order points decode (and are accepted here, as pyca/cryptography
/// does), but no signature verifies under them.
pub fn public_key_from_bytes(bytes: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let arr: &[u8; PUBLIC_KEY_LEN] = bytes
        .try_into()
        .map_err(|_| VerifyError::InvalidPublicKey)?;
    VerifyingKey::from_bytes(arr).map_err(|_| VerifyError::InvalidPublicKey)
}

fn parse_signature(sig: &[u8]) -> Result<Signature, VerifyError> {
    let arr: &[u8; SIGNATURE_LEN] = sig.try_into().map_err(|_| VerifyError::InvalidSignature)?;
    Ok(Signature::from_bytes(arr))
}

/// Verify `sig` over `msg` with `verify_strict` semantics (see the module docs).
pub fn verify(public: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
    let sig = parse_signature(sig)?;
    public
        .verify_strict(msg, &sig)
        .map_err(|_| VerifyError::InvalidSignature)
}

/// The canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENC: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENC.get_or_init(|| {
        let mut out = [[0u8; 32]; 8];
        for (o, p) in out
            .iter_mut()
            .zip(curve25519_dalek::constants::EIGHT_TORSION.iter())
        {
            *o = p.compress().to_bytes();
        }
        out
    })
}

/// Whether `enc` is the canonical encoding of the point it decodes to (if any): `y < p`,
/// and the sign bit clear when `x = 0` (`y = 1` or `y = p - 1`). For decodable points this
/// is exactly `decompress(enc).compress() == enc`, without the field arithmetic.
fn is_canonical_encoding(enc: &[u8; 32]) -> bool {
    let mut y = *enc;
    y[31] &= 0x7f;
    let sign = enc[31] >> 7;
    // p = 2^255 - 19 = ed ff .. ff 7f (little-endian).
    let y_ge_p = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut p_minus_one = [0xffu8; 32];
    p_minus_one[0] = 0xec;
    p_minus_one[31] = 0x7f;
    !y_ge_p && !(sign == 1 && (y == one || y == p_minus_one))
}

/// The checks `verify_strict` makes besides its equation, made up front for batches:
/// `S < L`, `R` canonically encoded and not of small order, `A` not of small order. (An
/// `R` that does not decode at all makes the batch equation fail.) No field arithmetic:
/// these cost well under a microsecond per item.
fn strict_precheck(public: &VerifyingKey, sig: &Signature) -> bool {
    if public.is_weak() {
        return false;
    }
    if bool::from(Scalar::from_canonical_bytes(*sig.s_bytes()).is_none()) {
        return false;
    }
    let r = sig.r_bytes();
    is_canonical_encoding(r) && !small_order_encodings().contains(r)
}

/// Batch verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchError {
    /// Index of the first item that fails on its own (found by verifying the items one by
    /// one after the batch equation failed).
    pub index: usize,
}

/// Verify many `(public key, signature, message)` items at once with `ed25519-dalek`'s
/// batch verification (one multiscalar multiplication), after the per-item checks of
/// `verify_strict` that the batch equation does not make (canonical `R`, no small-order
/// `R` or `A`, `S < L`).
///
/// Difference from [`verify`] (documented, tested): the batch equation is a random linear
/// combination of the cofactorless equations, with coefficients derived from the inputs.
/// A signature whose `R` carries a small torsion component satisfies it for some
/// coefficients although [`verify`] rejects it. Only the holder of the private key can
/// make such a signature (it needs `S` computed with the secret scalar), so the batch
/// still proves the key holder signed the message; it does not prove the signature bytes
/// are the unique ones [`verify`] would accept. On failure, the items are verified one by
/// one to report the first bad index.
pub fn verify_batch(
    publics: &[VerifyingKey],
    sigs: &[&[u8]],
    msgs: &[&[u8]],
) -> Result<(), BatchError> {
    let n = publics.len();
    if sigs.len() != n || msgs.len() != n {
        return Err(BatchError {
            index: n.min(sigs.len()).min(msgs.len()),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let mut parsed = Vec::with_capacity(n);
    for (i, (pk, sig)) in publics.iter().zip(sigs).enumerate() {
        let sig = parse_signature(sig).map_err(|_| BatchError { index: i })?;
        if !strict_precheck(pk, &sig) {
            return Err(BatchError { index: i });
        }
        parsed.push(sig);
    }
    if ed25519_dalek::verify_batch(msgs, &parsed, publics).is_ok() {
        return Ok(());
    }
    for (i, ((pk, sig), msg)) in publics.iter().zip(sigs).zip(msgs).enumerate() {
        if verify(pk, msg, sig).is_err() {
            return Err(BatchError { index: i });
        }
    }
    // Every item verifies on its own but the batch equation failed: impossible for sound
    // arithmetic; report the batch as failed at its first item rather than accept it.
    Err(BatchError { index: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    use crate::crypto::unhex as hex;

    fn seed(s: &str) -> [u8; 32] {
        hex(s).try_into().expect("32 bytes")
    }

    // RFC 8032 §7.1 TEST 1, 2, 3 and 1024.
    #[test]
    fn rfc8032_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (sk, pk, msg, sig) in cases {
            let key = PrivateKey::from_seed(&seed(sk)).expect("key");
            assert_eq!(key.public().as_bytes().to_vec(), hex(pk));
            let msg = hex(msg);
            let s = key.sign(&msg).expect("sign");
            assert_eq!(s.to_vec(), hex(sig));
            verify(key.public(), &msg, &s).expect("verify");
            let mut bad = s;
            bad[0] ^= 1;
            assert_eq!(
                verify(key.public(), &msg, &bad),
                Err(VerifyError::InvalidSignature)
            );
        }
    }

    #[test]
    fn region_holds_seed_and_expansion() {
        let sd = [42u8; 32];
        let key = PrivateKey::from_seed(&sd).expect("key");
        let region = key.region();
        assert_eq!(&region[PrivateKey::SEED_IN_COPY], &sd);
        let h: [u8; 64] = Sha512::digest(sd).into();
        let mut clamped = [0u8; 32];
        clamped.copy_from_slice(&h[..32]);
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        assert_eq!(&region[SCALAR], &clamped);
        assert_eq!(&region[PREFIX], &h[32..]);
        // Matches ed25519-dalek's own key derivation and signing.
        let dalek = ed25519_dalek::SigningKey::from_bytes(&sd);
        assert_eq!(dalek.verifying_key(), *key.public());
        use ed25519_dalek::Signer;
        for len in [0usize, 1, 111, 112, 127, 128, 129, 1000] {
            let msg = vec![0x5au8; len];
            assert_eq!(dalek.sign(&msg).to_bytes(), key.sign(&msg).expect("sign"));
        }
    }

    #[test]
    fn secret_sha512_matches_sha2() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 31 % 256) as u8).collect();
        for len in [0usize, 1, 111, 112, 113, 127, 128, 129, 255, 256, 257, 600] {
            for split in [0usize, 1, 64, 128, len / 2, len] {
                let split = split.min(len);
                let mut h = SecretHash::new(HashAlgorithm::Sha512);
                h.update(&data[..split]);
                h.update(&data[split..len]);
                let mut out = [0u8; 64];
                h.finalize_into(&mut out);
                let expect: [u8; 64] = Sha512::digest(&data[..len]).into();
                assert_eq!(out, expect, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn public_key_parsing() {
        assert!(public_key_from_bytes(&[0u8; 31]).is_err());
        // y = 2 is not on the curve.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert_eq!(
            public_key_from_bytes(&not_on_curve),
            Err(VerifyError::InvalidPublicKey)
        );
        // The identity (small order) decodes; nothing verifies under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let pk = public_key_from_bytes(&identity).expect("identity decodes");
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity, S = 0: satisfies the cofactorless equation
        assert!(verify(&pk, b"msg", &sig).is_err());
        assert!(verify_batch(&[pk], &[&sig], &[b"msg"]).is_err());
    }

    #[test]
    fn cheap_precheck_matches_decompression() {
        let mut encodings: Vec<[u8; 32]> = Vec::new();
        for b in [0u8, 1, 2, 0x7f, 0x80, 0xec, 0xed, 0xee, 0xff] {
            for hi in [0u8, 0x7f, 0x80, 0xff] {
                let mut e = [0xffu8; 32];
                e[0] = b;
                e[31] = hi;
                encodings.push(e);
                let mut z = [0u8; 32];
                z[0] = b;
                z[31] = hi;
                encodings.push(z);
            }
        }
        for p in curve25519_dalek::constants::EIGHT_TORSION.iter() {
            let e = p.compress().to_bytes();
            encodings.push(e);
            let mut flipped = e;
            flipped[31] ^= 0x80;
            encodings.push(flipped);
        }
        for i in 0..64u8 {
            encodings.push(
                EdwardsPoint::mul_base(&Scalar::from(i as u64 + 1))
                    .compress()
                    .to_bytes(),
            );
        }
        let mut checked = 0;
        for e in encodings {
            if let Some(point) = CompressedEdwardsY(e).decompress() {
                checked += 1;
                assert_eq!(
                    is_canonical_encoding(&e),
                    point.compress().to_bytes() == e,
                    "{e:?}"
                );
                if point.compress().to_bytes() == e {
                    assert_eq!(point.is_small_order(), small_order_encodings().contains(&e));
                }
            }
        }
        assert!(checked > 80, "{checked}");
    }

    /// A signature by `key` whose R has an order-2 torsion component: S is computed
    /// honestly for that R (only the key holder can do this).
    fn torsioned_signature(key: &PrivateKey, msg: &[u8]) -> [u8; 64] {
        let region = key.region();
        let nonce = Scalar::from_bytes_mod_order_wide(&[9u8; 64]);
        let r_point = EdwardsPoint::mul_base(&nonce) + EIGHT_TORSION[4];
        let big_r = r_point.compress();
        let mut kh = Sha512::new();
        kh.update(big_r.as_bytes());
        kh.update(key.public().as_bytes());
        kh.update(msg);
        let k = Scalar::from_bytes_mod_order_wide(&kh.finalize().into());
        let mut sb = [0u8; 32];
        sb.copy_from_slice(&region[SCALAR]);
        let s = Scalar::from_bytes_mod_order(sb);
        let big_s = nonce + k * s;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(big_s.as_bytes());
        sig
    }

    #[test]
    fn batch_matches_single_and_differs_only_on_torsion() {
        let keys: Vec<PrivateKey> = (0..8u8)
            .map(|i| PrivateKey::from_seed(&[i; 32]).expect("key"))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; i as usize * 50]).collect();
        let sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).expect("sign"))
            .collect();
        let publics: Vec<VerifyingKey> = keys.iter().map(|k| *k.public()).collect();
        let sig_refs: Vec<&[u8]> = sigs.iter().map(|s| s.as_slice()).collect();
        let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        verify_batch(&publics, &sig_refs, &msg_refs).expect("batch");
        verify_batch(&[], &[], &[]).expect("empty");
        for bad in 0..8 {
            let mut sigs2 = sigs.clone();
            sigs2[bad][40] ^= 0x10;
            let refs: Vec<&[u8]> = sigs2.iter().map(|s| s.as_slice()).collect();
            assert_eq!(
                verify_batch(&publics, &refs, &msg_refs),
                Err(BatchError { index: bad })
            );
        }
        // Wrong-length signature.
        let mut refs = sig_refs.clone();
        refs[3] = &sigs[3][..63];
        assert_eq!(
            verify_batch(&publics, &refs, &msg_refs),
            Err(BatchError { index: 3 })
        );

        // The torsion case: verify always rejects; the batch accepts for about half of
        // the messages (those whose derived coefficient is even).
        let key = &keys[0];
        let mut accepted = 0;
        for i in 0..64u32 {
            let msg = i.to_le_bytes();
            let sig = torsioned_signature(key, &msg);
            assert!(verify(key.public(), &msg, &sig).is_err());
            if verify_batch(&[*key.public()], &[&sig], &[&msg]).is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted > 0 && accepted < 64, "accepted {accepted}/64");
    }

    // ---- stack hygiene -----------------------------------------------------------------

    use crate::crypto::scrub::probe::{contains, stack_after, SCRUB_BYTES};

    fn secrets_of(key: &PrivateKey, msg: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let region = key.region();
        let mut h = Sha512::new();
        h.update(&region[PREFIX]);
        h.update(msg);
        let r = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let mut sb = [0u8; 32];
        sb.copy_from_slice(&region[SCALAR]);
        let reduced = Scalar::from_bytes_mod_order(sb);
        vec![
            ("seed", region[PrivateKey::SEED_IN_COPY].to_vec()),
            ("clamped scalar", region[SCALAR].to_vec()),
            ("nonce prefix", region[PREFIX].to_vec()),
            ("scalar mod L", reduced.to_bytes().to_vec()),
            ("nonce r", r.to_bytes().to_vec()),
        ]
    }

    const MSG: &[u8] = b"stack hygiene test message";

    fn raw_sign(k: &PrivateKey) {
        let region = k.region();
        let c = CompressedEdwardsY(*k.public().as_bytes());
        std::hint::black_box(sign_raw(&region[..64], &c, MSG));
    }

    #[test]
    fn stack_depth_is_covered_by_the_scrub() {
        let key = PrivateKey::from_seed(&[7u8; 32]).expect("key");
        // Unscrubbed: how deep does each secret operation reach?
        let (depth, stack) = stack_after(|| raw_sign(&key));
        assert!(depth < SCRUB_BYTES, "signing used {depth} bytes of stack");
        // Sanity: unscrubbed signing does leave secrets behind (else this proves nothing).
        assert!(secrets_of(&key, MSG)
            .iter()
            .any(|(_, v)| contains(&stack, v)));
        let (depth, _) = stack_after(|| {
            std::hint::black_box(
                create_region::<MemoryError>(|d| {
                    d.fill(8);
                    Ok(())
                })
                .expect("region"),
            );
        });
        assert!(depth < SCRUB_BYTES, "creation used {depth} bytes of stack");
        let region = key.region();
        let (depth, _) = stack_after(|| {
            std::hint::black_box(derive_public(&region[SCALAR]));
        });
        assert!(
            depth < SCRUB_BYTES,
            "public key derivation used {depth} bytes"
        );
    }

    #[test]
    fn scrubbed_operations_leave_no_secret_on_the_stack() {
        let key = PrivateKey::from_seed(&[7u8; 32]).expect("key");
        let (_, stack) = stack_after(|| {
            std::hint::black_box(key.sign(MSG).expect("sign"));
        });
        for (name, value) in secrets_of(&key, MSG) {
            assert!(
                !contains(&stack, &value),
                "{name} left on the stack by sign"
            );
        }
        // Key creation leaves no expansion or scalar behind either (the seed itself is a
        // test constant here, so it is not searched for).
        let (_, stack) = stack_after(|| {
            std::hint::black_box(PrivateKey::from_seed(&[9u8; 32]).expect("key"));
        });
        let other = PrivateKey::from_seed(&[9u8; 32]).expect("key");
        for (name, value) in secrets_of(&other, MSG).into_iter().skip(1).take(3) {
            assert!(
                !contains(&stack, &value),
                "{name} left on the stack by creation"
            );
        }
        // Neither does a random key: its seed is nowhere on the stack.
        let mut created = None;
        let (_, stack) = stack_after(|| {
            created = Some(PrivateKey::generate().expect("key"));
        });
        let created = created.expect("created");
        for (name, value) in secrets_of(&created, MSG).into_iter().take(4) {
            assert!(
                !contains(&stack, &value),
                "{name} left on the stack by generate"
            );
        }
    }
}
