//! ECDSA and ECDH over NIST P-256 and P-384 with the private scalar in a guarded region.
//!
//! Why these crates:
//!
//! - **ring** does every operation with the secret scalar: ECDSA signing (`EcdsaKeyPair`),
//!   ECDH and public-key derivation (`agreement`), with OpenSSL's P-256 assembly
//!   (nistz256) and constant-time P-384 code; the same crate keycell already uses for
//!   AES-GCM. Its ECDSA key pair holds the scalar, the nonce key and the public point in
//!   fixed arrays (no heap), so it lives in a [`GuardedValue`] beside the scalar. Its
//!   nonces are hedged: `k = H(H(r0 || d) || r1 || H(m))` with `r0` drawn when the key pair
//!   is built, `r1` fresh for every signature and `H` the signature's hash (ring
//!   `ec/suite_b/ecdsa/signing.rs`, `NonceRandomKey` and `NonceRandom`), so a failing RNG
//!   still gives a nonce that depends on the key and the message (the goal of RFC 6979),
//!   and a good RNG protects against fault attacks on deterministic nonces.
//! - ring's ECDH API only takes keys it generated itself (`EphemeralPrivateKey::generate`
//!   draws candidate scalars from a `SecureRandom` until one is below the order). A stored
//!   key is handed to it through ring's own fixed-output `SecureRandom`,
//!   `ring::test::rand::FixedSliceRandom` (public, documented as an internal API to be
//!   removed in a later major version; `Cargo.lock` pins 0.17): the "candidate" is the
//!   stored scalar, which ring checks against the order like any other. It halves the
//!   time of P-256 ECDH against the `p256` crate's portable arithmetic (50 µs against
//!   100 µs, `cargo bench --bench ec_ecdh`). Should ring drop it, `p256`/`p384` (already
//!   dependencies) can do the multiplication.
//! - **p256 / p384** (RustCrypto) handle public points only: validating peer and loaded
//!   public keys (on the curve, not the identity) and compressing/decompressing them, which
//!   ring cannot do.
//!
//! Neither has a RUSTSEC advisory on these operations (ring's one advisory,
//! RUSTSEC-2025-0009, is an AES overflow panic fixed in 0.17.12; the `rsa` crate's timing
//! advisory is not used).
//!
//! What ring leaves in its own stack frames (the scalar, the nonce, window tables of
//! multiples, the ephemeral key's seed) is overwritten by [`scrubbed_deep`] after every
//! operation that touches the scalar; values we own are zeroized. The shared secret of
//! ECDH is written straight into a new [`SymmetricKey`]'s region.

use elliptic_curve::sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize};
use ring::agreement::{self as ragree, EphemeralPrivateKey};
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, EcdsaKeyPair};

use super::scrub::scrubbed_deep;
use super::symmetric::{KeyError, SymmetricKey};
use crate::memory::{GuardedValue, MemoryError, Protection, SecretBuf};

/// The largest scalar (P-384).
pub const MAX_SCALAR_LEN: usize = 48;
/// The largest uncompressed point (P-384): `04 || x || y`.
pub const MAX_POINT_LEN: usize = 1 + 2 * MAX_SCALAR_LEN;
/// The largest DER signature (P-384): `SEQUENCE { INTEGER r, INTEGER s }` with a sign byte
/// on each.
pub const MAX_DER_SIGNATURE_LEN: usize = 2 + 2 * (2 + MAX_SCALAR_LEN + 1);

/// A curve keycell supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1, prime256v1), ECDSA with SHA-256.
    P256,
    /// NIST P-384 (secp384r1), ECDSA with SHA-384.
    P384,
}

impl Curve {
    /// Both curves.
    pub const ALL: [Curve; 2] = [Curve::P256, Curve::P384];

    /// `"P-256"` or `"P-384"`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    /// Parse a name from [`Self::name`] (also `"secp256r1"`, `"prime256v1"`,
    /// `"secp384r1"`).
    pub fn from_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" | "secp256r1" | "prime256v1" => Some(Curve::P256),
            "P-384" | "secp384r1" => Some(Curve::P384),
            _ => None,
        }
    }

    /// Bytes of a scalar and of a coordinate.
    pub fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    /// Bytes of an uncompressed point.
    pub fn point_len(self) -> usize {
        1 + 2 * self.scalar_len()
    }

    /// Bytes of a raw (`r || s`, IEEE P1363) signature.
    pub fn raw_signature_len(self) -> usize {
        2 * self.scalar_len()
    }

    fn signing_alg(self) -> &'static rsig::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &rsig::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &rsig::ECDSA_P384_SHA384_FIXED_SIGNING,
        }
    }

    fn agreement_alg(self) -> &'static ragree::Algorithm {
        match self {
            Curve::P256 => &ragree::ECDH_P256,
            Curve::P384 => &ragree::ECDH_P384,
        }
    }

    fn verification_alg(
        self,
        encoding: SignatureEncoding,
    ) -> &'static rsig::EcdsaVerificationAlgorithm {
        match (self, encoding) {
            (Curve::P256, SignatureEncoding::Der) => &rsig::ECDSA_P256_SHA256_ASN1,
            (Curve::P256, SignatureEncoding::Raw) => &rsig::ECDSA_P256_SHA256_FIXED,
            (Curve::P384, SignatureEncoding::Der) => &rsig::ECDSA_P384_SHA384_ASN1,
            (Curve::P384, SignatureEncoding::Raw) => &rsig::ECDSA_P384_SHA384_FIXED,
        }
    }
}

/// How a signature is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// `Ecdsa-Sig-Value`, DER (X.509, TLS, OpenSSL, pyca).
    Der,
    /// `r || s`, each the curve's scalar width (IEEE P1363; JOSE, WebAuthn, PKCS#11).
    Raw,
}

impl SignatureEncoding {
    /// Parse `"der"` or `"raw"`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "der" => Some(SignatureEncoding::Der),
            "raw" => Some(SignatureEncoding::Raw),
            _ => None,
        }
    }
}

/// Why an EC operation failed. Never carries key bytes.
#[derive(Debug)]
pub enum EcError {
    /// The private scalar is zero or not below the group order.
    InvalidScalar,
    /// The bytes are not a point of the curve in SEC1 encoding (or the identity).
    InvalidPoint,
    /// The signature does not verify (or is malformed).
    InvalidSignature,
    /// The peer's public key is on another curve.
    CurveMismatch { mine: Curve, peer: Curve },
    /// The OS random number generator failed.
    Random,
    /// The memory layer failed.
    Memory(MemoryError),
}

impl From<MemoryError> for EcError {
    fn from(e: MemoryError) -> Self {
        EcError::Memory(e)
    }
}

impl std::fmt::Display for EcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EcError::InvalidScalar => f.write_str(
                "the private key is not a valid scalar (zero or not below the group order)",
            ),
            EcError::InvalidPoint => {
                f.write_str("the bytes do not encode a point of the curve (or encode the identity)")
            }
            EcError::InvalidSignature => f.write_str("the signature does not verify"),
            EcError::CurveMismatch { mine, peer } => write!(
                f,
                "the peer public key is a {} key, this private key is a {} key",
                peer.name(),
                mine.name()
            ),
            EcError::Random => f.write_str("the OS random number generator failed"),
            EcError::Memory(e) => write!(f, "{e:?}"),
        }
    }
}

/// An EC public key: a validated point, kept uncompressed (not secret).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicPoint {
    curve: Curve,
    bytes: [u8; MAX_POINT_LEN],
}

impl std::fmt::Debug for PublicPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PublicPoint({}, {:02x?})",
            self.curve.name(),
            self.uncompressed()
        )
    }
}

/// Generic over the two RustCrypto curves.
macro_rules! with_curve {
    ($curve:expr, $f:ident ( $($arg:expr),* )) => {
        match $curve {
            Curve::P256 => $f::<p256::NistP256>($($arg),*),
            Curve::P384 => $f::<p384::NistP384>($($arg),*),
        }
    };
}

/// The point in `sec1` (compressed or uncompressed), validated, re-encoded uncompressed
/// into `out`.
fn normalize_point<C>(sec1: &[u8], out: &mut [u8]) -> Result<(), EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let key =
        elliptic_curve::PublicKey::<C>::from_sec1_bytes(sec1).map_err(|_| EcError::InvalidPoint)?;
    let enc = key.to_encoded_point(false);
    if enc.as_bytes().len() != out.len() {
        return Err(EcError::InvalidPoint);
    }
    out.copy_from_slice(enc.as_bytes());
    Ok(())
}

fn compress<C>(uncompressed: &[u8], out: &mut [u8]) -> Result<(), EcError>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let key = elliptic_curve::PublicKey::<C>::from_sec1_bytes(uncompressed)
        .map_err(|_| EcError::InvalidPoint)?;
    let enc = key.to_encoded_point(true);
    if enc.as_bytes().len() != out.len() {
        return Err(EcError::InvalidPoint);
    }
    out.copy_from_slice(enc.as_bytes());
    Ok(())
}

impl PublicPoint {
    /// A public key from its SEC1 / X9.62 encoding, uncompressed (`04 || x || y`) or
    /// compressed (`02`/`03 || x`). The point must be on the curve and not the identity.
    pub fn from_sec1(curve: Curve, sec1: &[u8]) -> Result<Self, EcError> {
        let n = curve.point_len();
        let compressed = 1 + curve.scalar_len();
        // X9.62 / SEC 1 forms only: 04 || x || y, or 02/03 || x. The `sec1` crate also
        // takes its "compact" 05 || x (and its identity 00), which OpenSSL and pyca refuse
        // and which can decode to the negated point: refused here.
        let form_ok = match (sec1.first(), sec1.len()) {
            (Some(4), len) => len == n,
            (Some(2 | 3), len) => len == compressed,
            _ => false,
        };
        if !form_ok {
            return Err(EcError::InvalidPoint);
        }
        let mut bytes = [0u8; MAX_POINT_LEN];
        with_curve!(curve, normalize_point(sec1, &mut bytes[..n]))?;
        Ok(PublicPoint { curve, bytes })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// `04 || x || y`.
    pub fn uncompressed(&self) -> &[u8] {
        &self.bytes[..self.curve.point_len()]
    }

    /// `02`/`03 || x`.
    pub fn compressed(&self) -> Vec<u8> {
        let mut out = vec![0u8; 1 + self.curve.scalar_len()];
        // The point was validated when it was made, so compressing it cannot fail.
        let _ = with_curve!(self.curve, compress(self.uncompressed(), &mut out));
        out
    }

    /// Verify an ECDSA signature (SHA-256 for P-256, SHA-384 for P-384) over `msg`.
    /// A DER signature must be strict DER; a raw one exactly twice the scalar width.
    pub fn verify(
        &self,
        msg: &[u8],
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<(), EcError> {
        rsig::UnparsedPublicKey::new(self.curve.verification_alg(encoding), self.uncompressed())
            .verify(msg, signature)
            .map_err(|_| EcError::InvalidSignature)
    }
}

/// ring's ECDH private key with the scalar `d` (big-endian, the curve's width) instead of
/// a random one (see the module docs), or [`EcError::InvalidScalar`] when `d` is zero or
/// not below the order. The key lives on the stack: callers scrub it.
#[allow(deprecated)] // ring::test::rand::FixedSliceRandom: see the module docs.
fn ring_private(curve: Curve, d: &[u8]) -> Result<EphemeralPrivateKey, EcError> {
    let fixed = ring::test::rand::FixedSliceRandom { bytes: d };
    EphemeralPrivateKey::generate(curve.agreement_alg(), &fixed).map_err(|_| EcError::InvalidScalar)
}

/// The uncompressed public point of the scalar `d` into `out`.
#[inline(never)]
fn derive_public(curve: Curve, d: &[u8], out: &mut [u8]) -> Result<(), EcError> {
    let key = ring_private(curve, d)?;
    let public = key
        .compute_public_key()
        .map_err(|_| EcError::InvalidScalar)?;
    if public.as_ref().len() != out.len() {
        return Err(EcError::InvalidScalar);
    }
    out.copy_from_slice(public.as_ref());
    Ok(())
}

/// The public point of the scalar `d` (big-endian, the curve's width), computed on a
/// scrubbed stack (for key files, which encode the public key beside the scalar).
pub fn public_of_scalar(curve: Curve, d: &[u8]) -> Result<PublicPoint, EcError> {
    if d.len() != curve.scalar_len() {
        return Err(EcError::InvalidScalar);
    }
    let mut bytes = [0u8; MAX_POINT_LEN];
    scrubbed_deep(|| derive_public(curve, d, &mut bytes[..curve.point_len()]))?;
    Ok(PublicPoint { curve, bytes })
}

/// ECDH: the x-coordinate of `d · peer` (an uncompressed point, validated), into `dst`.
#[inline(never)]
fn diffie_hellman_into(curve: Curve, d: &[u8], peer: &[u8], dst: &mut [u8]) -> Result<(), EcError> {
    let key = ring_private(curve, d)?;
    let peer = ragree::UnparsedPublicKey::new(curve.agreement_alg(), peer);
    ragree::agree_ephemeral(key, &peer, |shared| {
        if shared.len() == dst.len() {
            dst.copy_from_slice(shared);
            Ok(())
        } else {
            Err(EcError::InvalidPoint)
        }
    })
    .map_err(|_| EcError::InvalidPoint)?
}

/// ring's key pair for the scalar and its public point. Outlined: built on the stack and
/// moved into its region by the caller, who scrubs the stack.
#[inline(never)]
fn build_signer(
    curve: Curve,
    beside: &SecretBuf,
    public: &[u8],
) -> Result<GuardedValue<EcdsaKeyPair>, EcError> {
    let d = beside.bytes()?;
    GuardedValue::new_beside(beside, || {
        EcdsaKeyPair::from_private_key_and_public_key(
            curve.signing_alg(),
            d,
            public,
            &SystemRandom::new(),
        )
        .map_err(|_| EcError::InvalidScalar)
    })
}

/// Sign with ring's key pair: the fixed-width `r || s` into `out`.
#[inline(never)]
fn sign_raw(signer: &EcdsaKeyPair, msg: &[u8], out: &mut [u8]) -> Result<usize, EcError> {
    let sig = signer
        .sign(&SystemRandom::new(), msg)
        .map_err(|_| EcError::Random)?;
    let sig = sig.as_ref();
    out[..sig.len()].copy_from_slice(sig);
    Ok(sig.len())
}

/// An ECDSA/ECDH private key: the scalar (big-endian, the curve's width) in a guarded
/// region, ring's key pair in a guarded value beside it, and the public point.
pub struct PrivateKey {
    curve: Curve,
    buf: SecretBuf,
    signer: GuardedValue<EcdsaKeyPair>,
    public: PublicPoint,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ec::PrivateKey({:?}, secret redacted)", self.public)
    }
}

/// A signature: DER or raw, in a fixed buffer.
#[derive(Clone, Copy)]
pub struct Signature {
    bytes: [u8; MAX_DER_SIGNATURE_LEN],
    len: usize,
}

impl Signature {
    /// The encoded signature.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Append a DER INTEGER of the unsigned big-endian `v` to `out` at `at`.
fn put_der_uint(v: &[u8], out: &mut [u8], at: &mut usize) {
    let first = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
    let v = &v[first..];
    let pad = usize::from(v[0] & 0x80 != 0);
    out[*at] = 0x02;
    out[*at + 1] = (v.len() + pad) as u8;
    *at += 2;
    if pad == 1 {
        out[*at] = 0;
        *at += 1;
    }
    out[*at..*at + v.len()].copy_from_slice(v);
    *at += v.len();
}

/// `r || s` as DER `Ecdsa-Sig-Value` (every length is below 128: short form). `raw` is
/// two scalars of one curve's width (at most [`MAX_SCALAR_LEN`] each), as a PKCS#11
/// token's `CKM_ECDSA` returns them; longer input panics.
pub fn raw_to_der(raw: &[u8]) -> Signature {
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut bytes = [0u8; MAX_DER_SIGNATURE_LEN];
    let mut at = 2;
    put_der_uint(r, &mut bytes, &mut at);
    put_der_uint(s, &mut bytes, &mut at);
    bytes[0] = 0x30;
    bytes[1] = (at - 2) as u8;
    Signature { bytes, len: at }
}

impl PrivateKey {
    /// Build a key whose scalar `fill` writes straight into the region (big-endian, the
    /// curve's width); the public point and ring's key pair are derived at once. A scalar
    /// that is zero or not below the group order is refused ([`EcError::InvalidScalar`]).
    pub fn new_with<E: From<MemoryError> + From<EcError>>(
        curve: Curve,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let buf = SecretBuf::new_with(curve.scalar_len(), fill)?;
        let public = public_of_scalar(curve, buf.bytes()?)?;
        let signer = scrubbed_deep(|| build_signer(curve, &buf, public.uncompressed()))?;
        Ok(PrivateKey {
            curve,
            buf,
            signer,
            public,
        })
    }

    /// A new key from the OS CSPRNG, straight into the region: uniform over `[1, n-1]` by
    /// rejection (a draw outside it has probability below 2^-32 for both curves).
    pub fn generate(curve: Curve) -> Result<Self, EcError> {
        for _ in 0..16 {
            match Self::new_with(curve, |d| {
                crate::memory::fill_random(d).map_err(EcError::from)
            }) {
                Err(EcError::InvalidScalar) => continue,
                other => return other,
            }
        }
        Err(EcError::Random)
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The public key.
    pub fn public(&self) -> &PublicPoint {
        &self.public
    }

    /// The scalar as stored (big-endian), borrowed from the region: for key files and
    /// views, never to be copied to the heap.
    pub fn private_bytes(&self) -> Result<&[u8], MemoryError> {
        self.buf.bytes()
    }

    /// The weakest protection of the scalar's region and the key pair's.
    pub fn protection(&self) -> Protection {
        self.buf.protection().weakest(self.signer.protection())
    }

    /// ECDSA-sign `msg` (SHA-256 for P-256, SHA-384 for P-384) with a hedged nonce (see
    /// the module docs).
    pub fn sign(&self, msg: &[u8], encoding: SignatureEncoding) -> Result<Signature, EcError> {
        let signer = self.signer.get()?;
        let mut raw = [0u8; 2 * MAX_SCALAR_LEN];
        let n = scrubbed_deep(|| sign_raw(signer, msg, &mut raw))?;
        let raw = &raw[..n];
        Ok(match encoding {
            SignatureEncoding::Der => raw_to_der(raw),
            SignatureEncoding::Raw => {
                let mut bytes = [0u8; MAX_DER_SIGNATURE_LEN];
                bytes[..n].copy_from_slice(raw);
                Signature { bytes, len: n }
            }
        })
    }

    /// ECDH with `peer` (same curve): the x-coordinate of the shared point, in a new
    /// [`SymmetricKey`] (the curve's width), never in ordinary memory.
    pub fn exchange(&self, peer: &PublicPoint) -> Result<SymmetricKey, EcError> {
        if peer.curve != self.curve {
            return Err(EcError::CurveMismatch {
                mine: self.curve,
                peer: peer.curve,
            });
        }
        let d = self.buf.bytes()?;
        let curve = self.curve;
        let made = scrubbed_deep(|| {
            SymmetricKey::new_derived_with(curve.scalar_len(), |dst| {
                diffie_hellman_into(curve, d, peer.uncompressed(), dst)
            })
        });
        match made {
            Ok(key) => Ok(key),
            Err(KeyError::Fill(e)) => Err(e),
            Err(KeyError::Memory(e)) => Err(EcError::Memory(e)),
            // The curve's width is within SymmetricKey's bounds; kept for completeness.
            Err(KeyError::Length(len)) => Err(EcError::Memory(MemoryError::InvalidLength { len })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::unhex as hex;

    fn key(curve: Curve, d: &str) -> PrivateKey {
        let d = hex(d);
        PrivateKey::new_with(curve, |dst: &mut [u8]| {
            dst.copy_from_slice(&d);
            Ok::<(), EcError>(())
        })
        .expect("key")
    }

    // RFC 6979 A.2.5 (P-256) and A.2.6 (P-384) keys: the public points are published there.
    const P256_D: &str = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";
    const P256_UX: &str = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6";
    const P256_UY: &str = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299";
    const P384_D: &str = "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5";
    const P384_UX: &str = "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64DEF8F0EA9055866064A254515480BC13";
    const P384_UY: &str = "8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1288B231C3AE0D4FE7344FD2533264720";

    #[test]
    fn public_keys_sign_and_verify() {
        for (curve, d, ux, uy) in [
            (Curve::P256, P256_D, P256_UX, P256_UY),
            (Curve::P384, P384_D, P384_UX, P384_UY),
        ] {
            let k = key(curve, d);
            let mut want = vec![4u8];
            want.extend(hex(ux));
            want.extend(hex(uy));
            assert_eq!(k.public().uncompressed(), &want[..]);
            let compressed = k.public().compressed();
            assert_eq!(
                PublicPoint::from_sec1(curve, &compressed).expect("compressed"),
                *k.public()
            );
            for enc in [SignatureEncoding::Der, SignatureEncoding::Raw] {
                let sig = k.sign(b"sample", enc).expect("sign");
                k.public()
                    .verify(b"sample", sig.as_bytes(), enc)
                    .expect("verify");
                assert!(k.public().verify(b"samplf", sig.as_bytes(), enc).is_err());
                let mut bad = sig.as_bytes().to_vec();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(k.public().verify(b"sample", &bad, enc).is_err());
            }
            let raw = k.sign(b"x", SignatureEncoding::Raw).expect("raw");
            assert_eq!(raw.as_bytes().len(), curve.raw_signature_len());
            // Two signatures of one message differ (fresh randomness in the nonce).
            assert_ne!(
                k.sign(b"x", SignatureEncoding::Raw).expect("1").as_bytes(),
                raw.as_bytes()
            );
        }
    }

    #[test]
    fn invalid_scalars_and_points_are_refused() {
        for curve in Curve::ALL {
            let n = curve.scalar_len();
            let zero = vec![0u8; n];
            let ones = vec![0xffu8; n];
            for bad in [zero, ones] {
                let r = PrivateKey::new_with(curve, |dst: &mut [u8]| {
                    dst.copy_from_slice(&bad);
                    Ok::<(), EcError>(())
                });
                assert!(matches!(r, Err(EcError::InvalidScalar)));
            }
            // Identity, off-curve, wrong length.
            assert!(PublicPoint::from_sec1(curve, &[0]).is_err());
            let mut off = vec![4u8; curve.point_len()];
            off[1] = 1;
            assert!(PublicPoint::from_sec1(curve, &off).is_err());
            assert!(PublicPoint::from_sec1(curve, &[4u8; 10]).is_err());
        }
        let a = PrivateKey::generate(Curve::P256).expect("a");
        let b = PrivateKey::generate(Curve::P384).expect("b");
        assert!(matches!(
            a.exchange(b.public()),
            Err(EcError::CurveMismatch { .. })
        ));
    }

    #[test]
    fn exchange_agrees() {
        for curve in Curve::ALL {
            let a = PrivateKey::generate(curve).expect("a");
            let b = PrivateKey::generate(curve).expect("b");
            let ab = a.exchange(b.public()).expect("ab");
            let ba = b.exchange(a.public()).expect("ba");
            assert_eq!(ab.bytes().expect("ab"), ba.bytes().expect("ba"));
            assert_eq!(ab.len(), curve.scalar_len());
        }
    }

    #[test]
    fn der_signature_encoding() {
        // High bits set: a sign byte; leading zeros stripped.
        let mut raw = [0u8; 64];
        raw[0] = 0x80;
        raw[32] = 0;
        raw[33] = 0x01;
        let der = raw_to_der(&raw);
        let b = der.as_bytes();
        assert_eq!(&b[..5], &[0x30, b.len() as u8 - 2, 0x02, 33, 0x00]);
        assert_eq!(&b[b.len() - 33..b.len() - 31], &[0x02, 31]);
    }

    #[test]
    fn stack_is_scrubbed_after_create_sign_and_exchange() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        for (curve, d_hex) in [(Curve::P256, P256_D), (Curve::P384, P384_D)] {
            let d = hex(d_hex);
            let mut le = d.clone();
            le.reverse();
            let k = key(curve, d_hex);
            let peer = PrivateKey::generate(curve).expect("peer");
            let (_, stack) = stack_after(|| {
                let _ = key(curve, d_hex);
            });
            assert!(!contains(&stack, &d) && !contains(&stack, &le), "create");
            let (_, stack) = stack_after(|| {
                let _ = k.sign(b"message", SignatureEncoding::Der);
            });
            assert!(!contains(&stack, &d) && !contains(&stack, &le), "sign");
            let shared = k.exchange(peer.public()).expect("exchange");
            let secret = shared.bytes().expect("bytes").to_vec();
            let (_, stack) = stack_after(|| {
                let _ = k.exchange(peer.public());
            });
            assert!(!contains(&stack, &d) && !contains(&stack, &le), "exchange");
            assert!(!contains(&stack, &secret), "shared secret");
        }
    }
}
