//! X25519 (RFC 7748) with the private key in a guarded region and the shared secret
//! written straight into a new [`SymmetricKey`]'s region.
//!
//! The private key region holds the 32 bytes as given (clamping happens inside the
//! multiplication, as RFC 7748 specifies). The public key is derived once at creation
//! (`curve25519-dalek`'s fixed-base tables). The exchange runs keycell's kernel
//! (`crate::kernels::x25519`, four 64-bit limbs with MULX) where the CPU has BMI2, and
//! `curve25519-dalek` elsewhere. Both leave scalar bits and ladder state in their stack
//! frames (dalek does not zeroize them; the kernel zeroizes its own variables, not what
//! the compiler spilled); every operation runs under [`super::scrub::scrubbed`] (the
//! exchange under [`super::scrub::scrubbed_deep`], deep enough for dalek's AVX2 route),
//! which overwrites them.
//!
//! A peer public key of low order gives the all-zero shared secret; like
//! pyca/cryptography (and RFC 7748 §6.1's optional check), [`PrivateKey::exchange`] refuses
//! it. The check is constant time and the zero output is wiped with its region.

use curve25519_dalek::montgomery::MontgomeryPoint;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::curve::Algorithm;
use super::curve::CurvePrivateKey;
use super::scrub::{scrubbed, scrubbed_deep};
use super::symmetric::{KeyError, SymmetricKey};
use crate::kernels;
use crate::memory::{MemoryError, Protection, SecretBuf};

/// Bytes of a private key, a public key and a shared secret.
pub const KEY_LEN: usize = 32;

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// The peer's public key has low order: the shared secret would be all zeros.
    LowOrderPoint,
    /// The memory layer failed.
    Memory(MemoryError),
}

impl From<MemoryError> for ExchangeError {
    fn from(e: MemoryError) -> Self {
        ExchangeError::Memory(e)
    }
}

/// An X25519 private key in a guarded region, with its public key.
pub struct PrivateKey {
    buf: SecretBuf,
    public: [u8; KEY_LEN],
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "x25519::PrivateKey(public={:?}, secret redacted)",
            self.public
        )
    }
}

#[inline(never)]
fn derive_public(secret: &[u8]) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(secret);
    let p = MontgomeryPoint::mul_base_clamped(k);
    k.zeroize();
    p.to_bytes()
}

/// `X25519(secret, peer)` written into `dst`; false if the result is all zeros.
///
/// On a CPU with BMI2 the kernel of `crate::kernels::x25519` computes it (a Montgomery
/// ladder on four 64-bit limbs with MULX, about a third faster than the portable route
/// below; `benches/x25519_route.rs`); elsewhere [`dalek_into`] does. Which one runs
/// depends only on the CPU, never on the inputs. Both give RFC 7748's result for every
/// input (the Wycheproof and RFC 7748 vectors run through this function, and the kernel's
/// tests compare it with dalek on thousands of inputs).
#[inline(never)]
fn diffie_hellman_into(secret: &[u8], peer: &[u8; KEY_LEN], dst: &mut [u8]) -> bool {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(secret);
    let mut shared = [0u8; KEY_LEN];
    if !kernels::x25519::x25519(&k, peer, &mut shared) {
        dalek_into(&k, peer, &mut shared);
    }
    k.zeroize();
    dst.copy_from_slice(&shared);
    shared.zeroize();
    !bool::from(dst.ct_eq(&[0u8; KEY_LEN]))
}

/// `X25519(k, peer)` by `curve25519-dalek`, the route for CPUs without BMI2.
///
/// A peer on the curve takes the Edwards route: the birational map to Edwards form,
/// `curve25519-dalek`'s variable-base multiplication (its AVX2 backend where the CPU has
/// it, chosen at run time; constant time like the ladder) and back to the
/// u-coordinate, about a quarter faster than the portable Montgomery ladder here. Either
/// sign of the Edwards point gives the same u-coordinate. A peer on the twist has no
/// Edwards point and takes the ladder. Which route is taken depends only on the peer's
/// public key, never on the secret.
fn dalek_into(k: &[u8; KEY_LEN], peer: &[u8; KEY_LEN], out: &mut [u8; KEY_LEN]) {
    let peer = MontgomeryPoint(*peer);
    let mut shared = match peer.to_edwards(0) {
        Some(point) => point.mul_clamped(*k).to_montgomery(),
        None => peer.mul_clamped(*k),
    };
    out.copy_from_slice(shared.as_bytes());
    shared.zeroize();
}

/// The shared secret in a new [`SymmetricKey`] region.
#[inline(never)]
fn exchange_into_key(
    secret: &[u8],
    peer: &[u8; KEY_LEN],
) -> Result<SymmetricKey, KeyError<ExchangeError>> {
    SymmetricKey::new_derived_with(KEY_LEN, |dst| {
        if diffie_hellman_into(secret, peer, dst) {
            Ok(())
        } else {
            Err(ExchangeError::LowOrderPoint)
        }
    })
}

impl PrivateKey {
    /// Build a key whose 32 bytes `fill` writes straight into the region.
    pub fn new_with<E: From<MemoryError>>(
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        let buf = SecretBuf::new_with(KEY_LEN, fill)?;
        let secret = buf.bytes()?;
        let public = scrubbed(|| derive_public(secret));
        Ok(PrivateKey { buf, public })
    }

    /// A key copied from `bytes`.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, MemoryError> {
        Self::new_with(|dst| {
            dst.copy_from_slice(bytes);
            Ok(())
        })
    }

    /// The public key (the u-coordinate of `k·9`).
    pub fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    /// The shared secret with `peer`, in a new [`SymmetricKey`] (32 bytes, with its HMAC
    /// pads), never in ordinary memory. Refuses a low-order `peer` (all-zero result).
    pub fn exchange(&self, peer: &[u8; KEY_LEN]) -> Result<SymmetricKey, ExchangeError> {
        let secret = self.buf.bytes()?;
        match scrubbed_deep(|| exchange_into_key(secret, peer)) {
            Ok(key) => Ok(key),
            Err(KeyError::Fill(e)) => Err(e),
            Err(KeyError::Memory(e)) => Err(ExchangeError::Memory(e)),
            // KEY_LEN is within SymmetricKey's bounds; kept for completeness.
            Err(KeyError::Length(_)) => Err(ExchangeError::Memory(MemoryError::InvalidLength {
                len: KEY_LEN,
            })),
        }
    }
}

impl CurvePrivateKey for PrivateKey {
    const ALGORITHM: Algorithm = Algorithm::X25519;

    fn new_with<E: From<MemoryError>>(
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Self, E> {
        PrivateKey::new_with(fill)
    }

    fn private_bytes(&self) -> Result<&[u8], MemoryError> {
        self.buf.bytes()
    }

    fn public_bytes(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    fn protection(&self) -> Protection {
        self.buf.protection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(s: &str) -> [u8; 32] {
        crate::crypto::unhex(s).try_into().expect("32 bytes")
    }

    // RFC 7748 §6.1.
    #[test]
    fn rfc7748_exchange() {
        let a = PrivateKey::from_bytes(&arr(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
        .expect("a");
        let b = PrivateKey::from_bytes(&arr(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))
        .expect("b");
        assert_eq!(
            a.public(),
            &arr("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            b.public(),
            &arr("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = arr("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let ab = a.exchange(b.public()).expect("ab");
        let ba = b.exchange(a.public()).expect("ba");
        assert_eq!(ab.bytes().expect("bytes"), &shared);
        assert_eq!(ba.bytes().expect("bytes"), &shared);
    }

    #[test]
    fn low_order_point_is_refused() {
        let a = PrivateKey::generate().expect("a");
        for peer in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert!(matches!(
                a.exchange(&peer),
                Err(ExchangeError::LowOrderPoint)
            ));
        }
    }

    /// Every case of Wycheproof's `x25519_test.json` (tests/vectors/wycheproof) through
    /// both routes: the kernel and the dalek fallback give the listed shared secret (the
    /// all-zero one for low-order peers included). The Python vector tests reach only the
    /// route this CPU takes; this keeps the other one checked too.
    #[test]
    fn wycheproof_through_both_routes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/wycheproof/x25519_test.json"
        );
        let text = std::fs::read_to_string(path).expect("vector file");
        // Each test object lists "public", "private" and "shared" as hex strings.
        let field = |obj: &str, name: &str| -> [u8; 32] {
            let key = format!("\"{name}\": \"");
            let start = obj.find(&key).expect("field") + key.len();
            let end = start + obj[start..].find('"').expect("end");
            arr(&obj[start..end])
        };
        let mut cases = 0;
        for obj in text.split("\"tcId\"").skip(1) {
            let (public, private, shared) = (
                field(obj, "public"),
                field(obj, "private"),
                field(obj, "shared"),
            );
            let mut out = [0u8; 32];
            dalek_into(&private, &public, &mut out);
            assert_eq!(out, shared, "dalek route");
            if crate::kernels::x25519::available() {
                let mut out = [0u8; 32];
                assert!(crate::kernels::x25519::x25519(&private, &public, &mut out));
                assert_eq!(out, shared, "kernel");
            }
            let mut out = [0u8; 32];
            let nonzero = diffie_hellman_into(&private, &public, &mut out);
            assert_eq!(out, shared);
            assert_eq!(nonzero, shared != [0u8; 32]);
            cases += 1;
        }
        assert_eq!(cases, 518);
    }

    use crate::crypto::scrub::probe::{contains, stack_after, SCRUB_BYTES};
    use crate::crypto::scrub::SCRUB_DEEP_BYTES;

    #[test]
    fn stack_depth_is_covered_and_nothing_is_left() {
        let a = PrivateKey::generate().expect("a");
        let b = PrivateKey::generate().expect("b");
        let secret = a.buf.bytes().expect("bytes");
        let (depth, _) = stack_after(|| {
            std::hint::black_box(exchange_into_key(secret, b.public()).expect("x"));
        });
        assert!(
            depth < SCRUB_DEEP_BYTES,
            "exchange used {depth} bytes of stack"
        );
        let (depth, _) = stack_after(|| {
            std::hint::black_box(derive_public(secret));
        });
        assert!(
            depth < SCRUB_BYTES,
            "public key derivation used {depth} bytes"
        );

        let mut shared = None;
        let (_, stack) = stack_after(|| {
            shared = Some(a.exchange(b.public()).expect("x"));
        });
        let shared = shared.expect("shared");
        assert!(
            !contains(&stack, shared.bytes().expect("bytes")),
            "shared secret left"
        );
        assert!(!contains(&stack, secret), "private key left");
        let mut clamped = [0u8; 32];
        clamped.copy_from_slice(secret);
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        assert!(!contains(&stack, &clamped), "clamped scalar left");
        // The kernel's ladder state and inverse, limb by limb (a spilled register holds
        // one limb): none is left.
        let limbs = crate::kernels::x25519::ladder_limbs(&clamped, b.public());
        for (i, fe) in limbs.iter().flatten().enumerate() {
            for limb in fe {
                assert!(
                    !contains(&stack, &limb.to_ne_bytes()),
                    "a limb of ladder value {i} left"
                );
            }
        }
    }

    /// The control for the test above: without the scrub, the probe does find limbs of
    /// the kernel's ladder state on the stack (so not finding them means something).
    #[test]
    fn without_the_scrub_ladder_limbs_are_found() {
        let a = PrivateKey::generate().expect("a");
        let b = PrivateKey::generate().expect("b");
        let secret = a.buf.bytes().expect("bytes");
        let Some(limbs) =
            crate::kernels::x25519::ladder_limbs(secret.try_into().expect("32 bytes"), b.public())
        else {
            return; // no BMI2: the kernel does not run
        };
        let (_, stack) = stack_after(|| {
            std::hint::black_box(exchange_into_key(secret, b.public()).expect("x"));
        });
        let found = limbs
            .iter()
            .flatten()
            .filter(|limb| contains(&stack, &limb.to_ne_bytes()))
            .count();
        assert!(found > 0, "no limb found without the scrub");
    }
}
