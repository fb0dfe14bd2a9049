//! The AEAD algorithms offered to Python (`keycell.AESGCM`, `ChaCha20Poly1305`,
//! `XChaCha20Poly1305`, `AESGCMSIV`, and the easy `SecretKey.encrypt`), in place over
//! buffers the caller owns, with the key borrowed from its guarded region. The key store's
//! entries are sealed here too (XChaCha20-Poly1305, [`seal`] and [`open`]).
//!
//! # Where the key schedule lives
//!
//! AES-128/256-GCM (12-byte nonces) and ChaCha20-Poly1305 run on `ring` (BoringSSL's
//! assembly, CPU features detected at run time). Their cipher value (`LessSafeKey`: AES
//! round keys and GHASH key powers, or the ChaCha20-Poly1305 key) is built on first use
//! into a [`GuardedValue`] beside the key ([`CipherCache`], held by the `SymmetricKey`) and
//! kept until the key is dropped, when it is dropped in place and wiped.
//! XChaCha20-Poly1305 derives a subkey per nonce (HChaCha20, RustCrypto `chacha20`) and
//! runs `ring`'s ChaCha20-Poly1305 with it, per call. This is keycell's one
//! XChaCha20-Poly1305: RustCrypto's `XChaCha20Poly1305` (which the key store used before)
//! gives the same bytes and was slower at every entry size the store holds, as called (a seal
//! and an open of a 32-byte key: 7.8 to 9.7 us against 1.9 us; 1 KiB: 8 to 14 us against 2 to
//! 4.8 us; 64 KiB: about 235 us against 63 to 194 us; two runs of
//! `benches/xchacha_route.rs` on two busy cores). The rest (AES-192-GCM, AES-GCM with
//! nonces other than 12 bytes, AES-GCM-SIV) builds its RustCrypto cipher per call from the
//! key bytes in the guarded region; those types zeroize on drop (`aes` and `aes-gcm` with
//! their `zeroize` features).
//!
//! Moving a cipher value (the crates build it by value) leaves copies of its key material
//! on the stack that its own `Drop` cannot reach, so every call runs outlined and the stack
//! it used is scrubbed afterwards (the technique of `scrub.rs`; depths measured by the
//! tests below); `tests/aead/test_memory_scan_aead.py` checks that the key, the round keys
//! and the GHASH key are found only in locked memory, and nowhere after the key is
//! destroyed.
//!
//! # No partial plaintext
//!
//! RustCrypto's AES-GCM and (X)ChaCha20-Poly1305 authenticate before they decrypt, so a
//! forged message leaves the buffer holding ciphertext. `ring` decrypts while it
//! authenticates and AES-GCM-SIV must decrypt to authenticate; on a tag mismatch the
//! buffer is wiped before the error is returned (every path here wipes it).

use std::sync::OnceLock;

use aes::cipher::{BlockCipher, BlockEncrypt, BlockSizeUser};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::AesGcm;
use ring::aead as ring_aead;
use zeroize::Zeroize;

use crate::memory::{GuardedValue, MemoryError, SecretBuf};

use super::scrub::scrubbed_deep as scrubbed;
use super::scrub::{run_outlined, scrub_words};

/// Tag length in bytes (every algorithm here).
pub const TAG_LEN: usize = 16;

/// XChaCha20-Poly1305's nonce length in bytes (random nonces are safe at this size).
pub const XCHACHA_NONCE_LEN: usize = 24;

/// An AEAD algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadAlgorithm {
    /// AES-GCM (RFC 5116) with a 128, 192 or 256-bit key and a 96-bit nonce.
    AesGcm,
    /// ChaCha20-Poly1305 (RFC 8439): 256-bit key, 96-bit nonce.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): 256-bit key, 192-bit nonce.
    XChaCha20Poly1305,
    /// AES-GCM-SIV (RFC 8452): 128 or 256-bit key, 96-bit nonce, nonce-misuse resistant.
    AesGcmSiv,
}

/// Why an AEAD call failed. Carries no secret detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AeadFailure {
    /// The memory layer failed (the key's region, or the region for the cipher state).
    Memory(MemoryError),
    /// The key length does not suit the algorithm.
    KeyLength,
    /// The nonce length does not suit the algorithm.
    NonceLength,
    /// The tag did not verify (forged, truncated, wrong key, nonce or associated data).
    InvalidTag,
    /// The input is too long for the algorithm.
    TooLong,
}

impl From<MemoryError> for AeadFailure {
    fn from(e: MemoryError) -> Self {
        AeadFailure::Memory(e)
    }
}

impl AeadAlgorithm {
    /// The nonce length in bytes.
    pub fn nonce_len(self) -> usize {
        match self {
            AeadAlgorithm::XChaCha20Poly1305 => XCHACHA_NONCE_LEN,
            _ => 12,
        }
    }

    /// Whether `len` is a nonce length the algorithm accepts: 8 to 128 bytes for AES-GCM
    /// (as pyca/cryptography; 12 is the fast, recommended one), [`Self::nonce_len`] for
    /// the others.
    pub fn nonce_len_ok(self, len: usize) -> bool {
        match self {
            AeadAlgorithm::AesGcm => (GCM_NONCE_MIN..=GCM_NONCE_MAX).contains(&len),
            _ => len == self.nonce_len(),
        }
    }

    /// Whether `len` is a key length the algorithm accepts.
    pub fn key_len_ok(self, len: usize) -> bool {
        match self {
            AeadAlgorithm::AesGcm => matches!(len, 16 | 24 | 32),
            AeadAlgorithm::AesGcmSiv => matches!(len, 16 | 32),
            AeadAlgorithm::ChaCha20Poly1305 | AeadAlgorithm::XChaCha20Poly1305 => len == 32,
        }
    }
}

type Aes192Gcm = AesGcm<aes::Aes192, U12>;

/// Shortest AES-GCM nonce accepted (as pyca/cryptography's `AESGCM`).
pub const GCM_NONCE_MIN: usize = 8;
/// Longest AES-GCM nonce accepted (as pyca/cryptography's `AESGCM`).
pub const GCM_NONCE_MAX: usize = 128;

/// AES-GCM with a nonce of 8 to 128 bytes other than 12, per call: seal when `tag` is
/// `None` (returns the tag), else open (returns the tag it checked; authenticates before it
/// decrypts, so a forgery leaves the ciphertext). Run under the deep stack scrub by the
/// callers.
///
/// `aes-gcm` takes the nonce length as a type, which would compile the cipher once per
/// length (121 lengths, times three key sizes); the length only matters for the counter
/// block, `J0 = GHASH_H(nonce || 0-pad || [0]_64 || [8 * len]_64)` (NIST SP 800-38D section
/// 7.1), so this is `aes-gcm` 0.10's own composition with the length as a value: the same
/// crates (`aes`, `ghash`, `ctr`'s 32-bit big-endian counter), the same order (encrypt then
/// GHASH; GHASH, compare in constant time, then decrypt), the same length limits. Checked
/// against `aes-gcm` for many lengths (`gcm_any_nonce_matches_aes_gcm`) and by Wycheproof's
/// 8- to 128-byte nonce cases (`tests/aead/test_aead_vectors.py`).
#[inline(never)]
fn gcm_other_nonce(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: Option<&[u8; TAG_LEN]>,
) -> Result<[u8; TAG_LEN], AeadFailure> {
    if nonce.len() == 12 || !(GCM_NONCE_MIN..=GCM_NONCE_MAX).contains(&nonce.len()) {
        return Err(AeadFailure::NonceLength);
    }
    fn new<A: KeyInit>(key: &[u8]) -> Result<A, AeadFailure> {
        A::new_from_slice(key).map_err(|_| AeadFailure::KeyLength)
    }
    match key.len() {
        16 => gcm_any_nonce(&new::<aes::Aes128>(key)?, nonce, aad, buf, tag),
        24 => gcm_any_nonce(&new::<aes::Aes192>(key)?, nonce, aad, buf, tag),
        32 => gcm_any_nonce(&new::<aes::Aes256>(key)?, nonce, aad, buf, tag),
        _ => Err(AeadFailure::KeyLength),
    }
}

/// GCM over the block cipher `aes` with a nonce of any length ([`gcm_other_nonce`]).
fn gcm_any_nonce<A>(
    aes: &A,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: Option<&[u8; TAG_LEN]>,
) -> Result<[u8; TAG_LEN], AeadFailure>
where
    A: BlockCipher + BlockEncrypt + BlockSizeUser<BlockSize = aes_gcm::aead::consts::U16>,
{
    use aes::cipher::{InnerIvInit, StreamCipherCore};
    use ghash::universal_hash::{KeyInit as _, UniversalHash};
    let too_long = match tag {
        None => buf.len() as u64 > aes_gcm::P_MAX,
        Some(_) => buf.len() as u64 > aes_gcm::C_MAX,
    };
    if too_long || aad.len() as u64 > aes_gcm::A_MAX {
        return Err(match tag {
            None => AeadFailure::TooLong,
            Some(_) => AeadFailure::InvalidTag,
        });
    }
    // The hash key H = E_K(0^128), then J0 from the nonce.
    let mut h = ghash::Block::default();
    aes.encrypt_block(&mut h);
    let ghash = ghash::GHash::new(&h);
    h.as_mut_slice().zeroize();
    let mut lengths = ghash::Block::default();
    let mut j0_hash = ghash.clone();
    j0_hash.update_padded(nonce);
    lengths[8..].copy_from_slice(&(nonce.len() as u64 * 8).to_be_bytes());
    j0_hash.update(&[lengths]);
    let mut j0 = j0_hash.finalize();
    let mut ctr = ctr::CtrCore::<&A, ctr::flavors::Ctr32BE>::inner_iv_init(aes, &j0);
    j0.as_mut_slice().zeroize();
    let mut mask = ghash::Block::default();
    ctr.write_keystream_block(&mut mask);
    // GHASH over the associated data and the ciphertext, then the lengths, masked.
    let full_tag = |ciphertext: &[u8]| {
        let mut g = ghash.clone();
        g.update_padded(aad);
        g.update_padded(ciphertext);
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        g.update(&[lengths]);
        let mut t = [0u8; TAG_LEN];
        for ((o, a), b) in t.iter_mut().zip(g.finalize().iter()).zip(mask.iter()) {
            *o = a ^ b;
        }
        t
    };
    let result = match tag {
        None => {
            ctr.apply_keystream_partial(buf.into());
            Ok(full_tag(buf))
        }
        Some(t) => {
            let expected = full_tag(buf);
            if super::ct::ct_eq(&expected, t) {
                ctr.apply_keystream_partial(buf.into());
                Ok(*t)
            } else {
                Err(AeadFailure::InvalidTag)
            }
        }
    };
    mask.as_mut_slice().zeroize();
    result
}

/// Run `$body` with `$c` bound to the cipher for `$alg` and `$key` (built per call, wiped
/// when dropped at the end of the call); XChaCha20-Poly1305 runs `$xchacha` instead (its
/// cipher is `ring`'s, keyed per nonce: [`xchacha_ring`]).
macro_rules! with_cipher {
    ($alg:expr, $key:expr, |$c:ident| $body:expr, xchacha => $xchacha:expr) => {{
        let key: &[u8] = $key;
        if !$alg.key_len_ok(key.len()) {
            return Err(AeadFailure::KeyLength);
        }
        match ($alg, key.len()) {
            (AeadAlgorithm::AesGcm, 16) => {
                let $c =
                    aes_gcm::Aes128Gcm::new_from_slice(key).map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::AesGcm, 24) => {
                let $c = Aes192Gcm::new_from_slice(key).map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::AesGcm, _) => {
                let $c =
                    aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::AesGcmSiv, 16) => {
                let $c = aes_gcm_siv::Aes128GcmSiv::new_from_slice(key)
                    .map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::AesGcmSiv, _) => {
                let $c = aes_gcm_siv::Aes256GcmSiv::new_from_slice(key)
                    .map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::ChaCha20Poly1305, _) => {
                let $c = chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                    .map_err(|_| AeadFailure::KeyLength)?;
                $body
            }
            (AeadAlgorithm::XChaCha20Poly1305, _) => $xchacha,
        }
    }};
}

/// Bytes of stack overwritten after a call on a cached cipher (`ring`'s assembly reads the
/// key state from its guarded region; what it leaves on the stack is counter blocks,
/// GHASH/Poly1305 accumulators and spilled registers). Measured by
/// `cached_stack_depth_is_covered` (x86-64, release): about 750 bytes for AES-GCM, 1.2 KiB
/// for ChaCha20-Poly1305; building the cipher state reaches deeper (3.9 KiB) and uses
/// `scrub::SCRUB_DEEP_BYTES`.
#[cfg(not(debug_assertions))]
const CACHED_SCRUB_BYTES: usize = 2 * 1024;
/// Bytes of stack overwritten after a call on a cached cipher (unoptimized build).
#[cfg(debug_assertions)]
const CACHED_SCRUB_BYTES: usize = 32 * 1024;

/// Bytes of stack overwritten after an XChaCha20-Poly1305 call on `ring` (HChaCha20, a
/// per-call `ring` key on the stack, the seal or open). Measured by
/// `xchacha_stack_depth_is_covered` (x86-64, release): 6.1 KiB with rustc 1.95 (it was
/// 4.4 KiB when first measured), for the key store's entries as for the Python class.
#[cfg(not(debug_assertions))]
const XCHACHA_SCRUB_BYTES: usize = 8 * 1024;
/// Bytes of stack overwritten after an XChaCha20-Poly1305 call (unoptimized build).
#[cfg(debug_assertions)]
const XCHACHA_SCRUB_BYTES: usize = 48 * 1024;

/// Run `f` outlined, then scrub [`CACHED_SCRUB_BYTES`] of the stack it used.
#[inline(always)]
fn scrubbed_cached<T>(f: impl FnOnce() -> T) -> T {
    let out = run_outlined(f);
    scrub_words::<{ CACHED_SCRUB_BYTES / 8 }>();
    out
}

/// Run `f` outlined, then scrub [`XCHACHA_SCRUB_BYTES`] of the stack it used.
#[inline(always)]
fn scrubbed_xchacha<T>(f: impl FnOnce() -> T) -> T {
    let out = run_outlined(f);
    scrub_words::<{ XCHACHA_SCRUB_BYTES / 8 }>();
    out
}

/// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 of the key and the first 16
/// nonce bytes (RustCrypto `chacha20::hchacha`) gives a subkey, used with `ring`'s
/// ChaCha20-Poly1305 and the nonce `0^4 || nonce[16..24]`. Seals when `tag` is `None`
/// (returns the tag), else opens (returns the tag it checked; on failure the buffer is
/// zeroed). The subkey and the per-call `ring` key live on this call's stack, which the
/// callers scrub ([`scrubbed_xchacha`]); the subkey is also zeroized when dropped.
#[inline(never)]
fn xchacha_ring(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: Option<&[u8; TAG_LEN]>,
) -> Result<[u8; TAG_LEN], AeadFailure> {
    use aes_gcm::aead::consts::U10;
    use aes_gcm::aead::generic_array::GenericArray;
    if key.len() != 32 {
        return Err(AeadFailure::KeyLength);
    }
    if nonce.len() != 24 {
        return Err(AeadFailure::NonceLength);
    }
    // The subkey in a zeroized array; the temporary the crate returns is on this call's
    // stack, which the caller scrubs.
    let mut subkey = zeroize::Zeroizing::new([0u8; 32]);
    subkey.copy_from_slice(&chacha20::hchacha::<U10>(
        GenericArray::from_slice(key),
        GenericArray::from_slice(&nonce[..16]),
    ));
    let mut n12 = [0u8; 12];
    n12[4..].copy_from_slice(&nonce[16..]);
    let cipher = ring_aead::LessSafeKey::new(
        ring_aead::UnboundKey::new(&ring_aead::CHACHA20_POLY1305, &subkey[..])
            .map_err(|_| AeadFailure::KeyLength)?,
    );
    let alg = AeadAlgorithm::ChaCha20Poly1305;
    match tag {
        None => ring_seal(&cipher, alg, &n12, aad, buf),
        Some(t) => ring_open(&cipher, alg, &n12, aad, buf, t).map(|()| *t),
    }
}

/// The expanded cipher state of one key (AES round keys and GHASH key powers, or the
/// ChaCha20-Poly1305 key), built on first use into a [`GuardedValue`] with the key's own
/// isolation and kept until the key is dropped, so a call does not rebuild it.
///
/// Held for AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, whose cipher is `ring`'s
/// (BoringSSL's assembly: AES-NI/CLMUL or VAES/VPCLMULQDQ with AVX2, AVX2 ChaCha20,
/// chosen at run time by CPU detection). AES-192-GCM (which `ring` lacks), other AES-GCM
/// nonce lengths, AES-GCM-SIV and XChaCha20-Poly1305 use the per-call path ([`seal`],
/// [`open`]).
#[derive(Debug, Default)]
pub struct CipherCache {
    /// Slot 0: AES-GCM (the key's length picks 128 or 256); slot 1: ChaCha20-Poly1305.
    slots: [OnceLock<GuardedValue<ring_aead::LessSafeKey>>; 2],
}

/// The `ring` algorithm and cache slot for `alg` with a key of `key_len` bytes.
fn ring_algorithm(
    alg: AeadAlgorithm,
    key_len: usize,
) -> Option<(usize, &'static ring_aead::Algorithm)> {
    match (alg, key_len) {
        (AeadAlgorithm::AesGcm, 16) => Some((0, &ring_aead::AES_128_GCM)),
        (AeadAlgorithm::AesGcm, 32) => Some((0, &ring_aead::AES_256_GCM)),
        (AeadAlgorithm::ChaCha20Poly1305, 32) => Some((1, &ring_aead::CHACHA20_POLY1305)),
        _ => None,
    }
}

/// Build `ring`'s key for `key` straight into a guarded value beside it. Outlined and
/// scrubbed: the value is built on the stack and moved into its region.
#[inline(never)]
fn build_ring_key(
    ralg: &'static ring_aead::Algorithm,
    key: &SecretBuf,
) -> Result<GuardedValue<ring_aead::LessSafeKey>, AeadFailure> {
    let bytes = key.bytes()?;
    GuardedValue::new_beside(key, || {
        let unbound =
            ring_aead::UnboundKey::new(ralg, bytes).map_err(|_| AeadFailure::KeyLength)?;
        Ok(ring_aead::LessSafeKey::new(unbound))
    })
}

impl CipherCache {
    /// The cached cipher for `alg` over `key`, built on first use (two threads racing
    /// here both build one; one is kept, the other dropped and wiped). `None` when `alg`
    /// with this key length has no cached cipher.
    fn cipher(
        &self,
        alg: AeadAlgorithm,
        key: &SecretBuf,
    ) -> Result<Option<&ring_aead::LessSafeKey>, AeadFailure> {
        let Some((slot, ralg)) = ring_algorithm(alg, key.len()) else {
            return Ok(None);
        };
        let cell = &self.slots[slot];
        if let Some(v) = cell.get() {
            return Ok(Some(v.get()?));
        }
        let built = scrubbed(|| build_ring_key(ralg, key))?;
        // A value that lost the race is dropped (its destructor run in place, wiped) here.
        let _ = cell.set(built);
        match cell.get() {
            Some(v) => Ok(Some(v.get()?)),
            None => unreachable!("the cell was just set"),
        }
    }

    /// Whether a cipher state is held for `alg` (tests and diagnostics).
    pub fn holds(&self, alg: AeadAlgorithm, key_len: usize) -> bool {
        ring_algorithm(alg, key_len).is_some_and(|(slot, _)| self.slots[slot].get().is_some())
    }

    /// Protection of every region holding cipher state.
    pub fn protections(&self) -> impl Iterator<Item = crate::memory::Protection> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.get().map(GuardedValue::protection))
    }

    /// Protection of the region holding the cipher state for `alg`, if one is held.
    pub fn protection(
        &self,
        alg: AeadAlgorithm,
        key_len: usize,
    ) -> Option<crate::memory::Protection> {
        let (slot, _) = ring_algorithm(alg, key_len)?;
        self.slots[slot].get().map(GuardedValue::protection)
    }
}

fn ring_nonce(alg: AeadAlgorithm, nonce: &[u8]) -> Result<ring_aead::Nonce, AeadFailure> {
    if nonce.len() != alg.nonce_len() {
        return Err(AeadFailure::NonceLength);
    }
    ring_aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadFailure::NonceLength)
}

/// [`seal`] with the key in its guarded region and the cipher state kept in `cache`
/// (built on first use): `ring` for AES-128/256-GCM and ChaCha20-Poly1305, the per-call
/// path for the rest. The stack the cipher used is scrubbed before this returns.
pub fn seal_cached(
    alg: AeadAlgorithm,
    key: &SecretBuf,
    cache: &CipherCache,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadFailure> {
    if !alg.nonce_len_ok(nonce.len()) {
        return Err(AeadFailure::NonceLength);
    }
    // `ring` takes 12-byte nonces only; other AES-GCM nonces take the per-call path.
    let cached = if nonce.len() == alg.nonce_len() {
        cache.cipher(alg, key)?
    } else {
        None
    };
    match cached {
        Some(cipher) => scrubbed_cached(|| ring_seal(cipher, alg, nonce, aad, buf)),
        None => seal(alg, key.bytes()?, nonce, aad, buf),
    }
}

#[inline(never)]
fn ring_seal(
    cipher: &ring_aead::LessSafeKey,
    alg: AeadAlgorithm,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadFailure> {
    let nonce = ring_nonce(alg, nonce)?;
    let tag = cipher
        .seal_in_place_separate_tag(nonce, ring_aead::Aad::from(aad), buf)
        .map_err(|_| AeadFailure::TooLong)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// [`open`] with the key in its guarded region and the cipher state kept in `cache`. On
/// failure `buf` holds no plaintext: `ring` decrypts while it authenticates and zeroes
/// the buffer when the tag does not match (and so does this function, again). The stack
/// the cipher used is scrubbed before this returns.
pub fn open_cached(
    alg: AeadAlgorithm,
    key: &SecretBuf,
    cache: &CipherCache,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadFailure> {
    if !alg.nonce_len_ok(nonce.len()) {
        return Err(AeadFailure::NonceLength);
    }
    // `ring` takes 12-byte nonces only; other AES-GCM nonces take the per-call path.
    let cached = if nonce.len() == alg.nonce_len() {
        cache.cipher(alg, key)?
    } else {
        None
    };
    match cached {
        Some(cipher) => scrubbed_cached(|| ring_open(cipher, alg, nonce, aad, buf, tag)),
        None => open(alg, key.bytes()?, nonce, aad, buf, tag),
    }
}

#[inline(never)]
fn ring_open(
    cipher: &ring_aead::LessSafeKey,
    alg: AeadAlgorithm,
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadFailure> {
    let nonce = ring_nonce(alg, nonce)?;
    let tag = ring_aead::Tag::from(*tag);
    let result = cipher
        .open_in_place_separate_tag(nonce, ring_aead::Aad::from(aad), tag, buf, 0..)
        .map(|_| ())
        .map_err(|_| AeadFailure::InvalidTag);
    if result.is_err() {
        buf.zeroize();
    }
    result
}

/// Encrypt `buf` in place under `key` and `nonce`, authenticating `aad`; returns the tag.
/// The stack the cipher used is scrubbed before this returns (`scrub.rs`).
pub fn seal(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadFailure> {
    if alg == AeadAlgorithm::XChaCha20Poly1305 {
        // `ring` underneath: a shallower stack than the RustCrypto ciphers.
        return scrubbed_xchacha(|| seal_outlined(alg, key, nonce, aad, buf));
    }
    scrubbed(|| seal_outlined(alg, key, nonce, aad, buf))
}

#[inline(never)]
fn seal_outlined(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadFailure> {
    if !alg.nonce_len_ok(nonce.len()) {
        return Err(AeadFailure::NonceLength);
    }
    if alg == AeadAlgorithm::AesGcm && nonce.len() != alg.nonce_len() {
        if !alg.key_len_ok(key.len()) {
            return Err(AeadFailure::KeyLength);
        }
        return gcm_other_nonce(key, nonce, aad, buf, None);
    }
    with_cipher!(
        alg,
        key,
        |c| {
            let tag = c
                .encrypt_in_place_detached(nonce.into(), aad, buf)
                .map_err(|_| AeadFailure::TooLong)?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(&tag);
            Ok(out)
        },
        xchacha => xchacha_ring(key, nonce, aad, buf, None)
    )
}

/// Authenticate and decrypt `buf` in place. On failure `buf` holds no plaintext (the
/// ciphertext, or zeros for AES-GCM-SIV). The stack the cipher used is scrubbed before
/// this returns (`scrub.rs`).
pub fn open(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadFailure> {
    if alg == AeadAlgorithm::XChaCha20Poly1305 {
        return scrubbed_xchacha(|| open_outlined(alg, key, nonce, aad, buf, tag));
    }
    scrubbed(|| open_outlined(alg, key, nonce, aad, buf, tag))
}

#[inline(never)]
fn open_outlined(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadFailure> {
    if !alg.nonce_len_ok(nonce.len()) {
        return Err(AeadFailure::NonceLength);
    }
    if alg == AeadAlgorithm::AesGcm && nonce.len() != alg.nonce_len() {
        if !alg.key_len_ok(key.len()) {
            return Err(AeadFailure::KeyLength);
        }
        let result = gcm_other_nonce(key, nonce, aad, buf, Some(tag)).map(|_| ());
        if result.is_err() {
            buf.zeroize();
        }
        return result;
    }
    let result = with_cipher!(
        alg,
        key,
        |c| c
            .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
            .map_err(|_| AeadFailure::InvalidTag),
        xchacha => xchacha_ring(key, nonce, aad, buf, Some(tag)).map(|_| ())
    );
    if result.is_err() {
        buf.zeroize();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::unhex;

    fn roundtrip(alg: AeadAlgorithm, key: &[u8]) {
        let nonce = vec![3u8; alg.nonce_len()];
        let mut buf = b"attack at dawn".to_vec();
        let tag = seal(alg, key, &nonce, b"ad", &mut buf).expect("seal");
        assert_ne!(&buf[..], b"attack at dawn");
        let ct = buf.clone();
        let mut bad = tag;
        bad[15] ^= 1;
        assert_eq!(
            open(alg, key, &nonce, b"ad", &mut buf, &bad),
            Err(AeadFailure::InvalidTag)
        );
        assert!(buf == ct || buf.iter().all(|&b| b == 0));
        let mut buf = ct.clone();
        assert_eq!(
            open(alg, key, &nonce, b"AD", &mut buf, &tag),
            Err(AeadFailure::InvalidTag)
        );
        let mut buf = ct;
        open(alg, key, &nonce, b"ad", &mut buf, &tag).expect("open");
        assert_eq!(&buf[..], b"attack at dawn");
    }

    #[test]
    fn every_algorithm_roundtrips_and_rejects_forgeries() {
        for len in [16, 24, 32] {
            roundtrip(AeadAlgorithm::AesGcm, &vec![1u8; len]);
        }
        roundtrip(AeadAlgorithm::AesGcmSiv, &[1u8; 16]);
        roundtrip(AeadAlgorithm::AesGcmSiv, &[1u8; 32]);
        roundtrip(AeadAlgorithm::ChaCha20Poly1305, &[1u8; 32]);
        roundtrip(AeadAlgorithm::XChaCha20Poly1305, &[1u8; 32]);
    }

    #[test]
    fn bad_lengths_are_typed() {
        let mut buf = [0u8; 4];
        assert_eq!(
            seal(AeadAlgorithm::AesGcm, &[0u8; 20], &[0u8; 12], b"", &mut buf),
            Err(AeadFailure::KeyLength)
        );
        assert_eq!(
            seal(
                AeadAlgorithm::AesGcmSiv,
                &[0u8; 24],
                &[0u8; 12],
                b"",
                &mut buf
            ),
            Err(AeadFailure::KeyLength)
        );
        assert_eq!(
            seal(
                AeadAlgorithm::ChaCha20Poly1305,
                &[0u8; 32],
                &[0u8; 24],
                b"",
                &mut buf
            ),
            Err(AeadFailure::NonceLength)
        );
    }

    /// RFC 8452 appendix C.2, the first AES-256-GCM-SIV vector with a plaintext.
    #[test]
    fn rfc8452_aes256_vector() {
        let key = unhex("0100000000000000000000000000000000000000000000000000000000000000");
        let nonce = unhex("030000000000000000000000");
        let mut buf = unhex("0100000000000000");
        let tag = seal(AeadAlgorithm::AesGcmSiv, &key, &nonce, b"", &mut buf).expect("seal");
        assert_eq!(buf, unhex("c2ef328e5c71c83b"));
        assert_eq!(tag.to_vec(), unhex("843122130f7364b761e0b97427e3df28"));
    }

    /// AES-GCM with nonces other than 12 bytes agrees with `aes-gcm` (which takes the nonce
    /// length as a type) for every key size, at the shortest and longest lengths and a
    /// spread between, over message and associated-data lengths around the block size;
    /// forgeries leave no plaintext.
    #[test]
    fn gcm_any_nonce_matches_aes_gcm() {
        use aes_gcm::aead::consts::{U128, U13, U16, U17, U31, U32, U60, U64, U8, U9};
        fn check<N: aes_gcm::aead::generic_array::ArrayLength<u8>>() {
            let n = N::to_usize();
            let nonce: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            for key_len in [16, 24, 32] {
                let key: Vec<u8> = (0..key_len).map(|i| (i * 13 + 1) as u8).collect();
                for (msg_len, aad_len) in [(0, 0), (1, 15), (16, 16), (17, 33), (100, 0)] {
                    let msg: Vec<u8> = (0..msg_len).map(|i| i as u8).collect();
                    let aad: Vec<u8> = (0..aad_len).map(|i| !(i as u8)).collect();
                    let mut ours = msg.clone();
                    let tag =
                        seal(AeadAlgorithm::AesGcm, &key, &nonce, &aad, &mut ours).expect("seal");
                    let mut theirs = msg.clone();
                    let nonce_arr = aes_gcm::aead::generic_array::GenericArray::from_slice(&nonce);
                    let their_tag = match key_len {
                        16 => AesGcm::<aes::Aes128, N>::new_from_slice(&key)
                            .expect("key")
                            .encrypt_in_place_detached(nonce_arr, &aad, &mut theirs),
                        24 => AesGcm::<aes::Aes192, N>::new_from_slice(&key)
                            .expect("key")
                            .encrypt_in_place_detached(nonce_arr, &aad, &mut theirs),
                        _ => AesGcm::<aes::Aes256, N>::new_from_slice(&key)
                            .expect("key")
                            .encrypt_in_place_detached(nonce_arr, &aad, &mut theirs),
                    }
                    .expect("aes-gcm");
                    assert_eq!(
                        (&ours, &tag[..]),
                        (&theirs, &their_tag[..]),
                        "{n} {key_len}"
                    );
                    let mut back = ours.clone();
                    open(AeadAlgorithm::AesGcm, &key, &nonce, &aad, &mut back, &tag).expect("open");
                    assert_eq!(back, msg);
                    let mut bad = tag;
                    bad[msg_len % TAG_LEN] ^= 0x80;
                    let mut forged = ours.clone();
                    assert_eq!(
                        open(AeadAlgorithm::AesGcm, &key, &nonce, &aad, &mut forged, &bad),
                        Err(AeadFailure::InvalidTag)
                    );
                    assert!(
                        forged.iter().all(|&b| b == 0),
                        "no plaintext after a forgery"
                    );
                }
            }
        }
        check::<U8>();
        check::<U9>();
        check::<U13>();
        check::<U16>();
        check::<U17>();
        check::<U31>();
        check::<U32>();
        check::<U60>();
        check::<U64>();
        check::<U128>();
        let mut buf = [0u8; 4];
        for bad in [7, 12, 129] {
            assert_eq!(
                gcm_other_nonce(&[0u8; 16], &vec![0u8; bad], b"", &mut buf, None),
                Err(AeadFailure::NonceLength)
            );
        }
    }

    /// draft-irtf-cfrg-xchacha-03 §A.3.1.
    #[test]
    fn xchacha_test_vector() {
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce = unhex("404142434445464748494a4b4c4d4e4f5051525354555657");
        let ct = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52e",
        );
        let tag: [u8; TAG_LEN] = unhex("c0875924c1c7987947deafd8780acf49")
            .try_into()
            .expect("tag");
        let alg = AeadAlgorithm::XChaCha20Poly1305;
        let mut buf = plaintext.to_vec();
        assert_eq!(seal(alg, &key, &nonce, &aad, &mut buf), Ok(tag));
        assert_eq!(buf, ct);
        open(alg, &key, &nonce, &aad, &mut buf, &tag).expect("open");
        assert_eq!(&buf[..], &plaintext[..]);
    }

    /// XChaCha20-Poly1305 here and RustCrypto's `XChaCha20Poly1305` (the key store's cipher
    /// before this one) give the same bytes, so entries sealed by either open with both; a
    /// forgery leaves no plaintext; bad key and nonce lengths are typed.
    #[test]
    fn xchacha_agrees_with_rustcrypto_and_refuses_forgeries() {
        let alg = AeadAlgorithm::XChaCha20Poly1305;
        let key = [5u8; 32];
        let nonce = [6u8; XCHACHA_NONCE_LEN];
        for len in [0usize, 1, 32, 64, 1000] {
            let mut a: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut b = a.clone();
            let ta = seal(alg, &key, &nonce, b"x", &mut a).expect("ring");
            let c = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&key).expect("key");
            let tb = c
                .encrypt_in_place_detached(nonce.as_slice().into(), b"x", &mut b)
                .expect("rustcrypto");
            assert_eq!((&a, ta.to_vec()), (&b, tb.to_vec()), "{len} bytes");
            if len > 0 {
                let mut bad = a.clone();
                bad[0] ^= 1;
                assert_eq!(
                    open(alg, &key, &nonce, b"x", &mut bad, &ta),
                    Err(AeadFailure::InvalidTag)
                );
                assert!(bad.iter().all(|&x| x == 0), "no plaintext after a forgery");
            }
        }
        let mut buf = [0u8; 4];
        assert_eq!(
            seal(alg, &key[..31], &nonce, b"", &mut buf),
            Err(AeadFailure::KeyLength)
        );
        assert_eq!(
            seal(alg, &key, &nonce[..12], b"", &mut buf),
            Err(AeadFailure::NonceLength)
        );
    }

    /// Every algorithm stays within the scrubbed depth, and the key is not left on the
    /// stack after a call. Optimized builds only: unoptimized ChaCha20 reaches about
    /// 72 KiB, deeper than the unoptimized scrub (the release wheel is what
    /// `tests/aead/test_memory_scan_aead.py` scans).
    #[cfg(not(debug_assertions))]
    #[test]
    fn stack_depth_is_covered_and_nothing_is_left() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        const SCRUB_BYTES: usize = crate::crypto::scrub::SCRUB_DEEP_BYTES;
        let key: Vec<u8> = (1..=32).collect();
        for (alg, nonce_len) in [
            (AeadAlgorithm::AesGcm, 12),
            (AeadAlgorithm::AesGcm, 16), // gcm_other_nonce
            (AeadAlgorithm::AesGcmSiv, 12),
            (AeadAlgorithm::ChaCha20Poly1305, 12),
            (AeadAlgorithm::XChaCha20Poly1305, 24),
        ] {
            let nonce = vec![0u8; nonce_len];
            let mut buf = vec![0u8; 300];
            let mut tag = [0u8; TAG_LEN];
            let (depth, _) = stack_after(|| {
                tag = std::hint::black_box(seal_outlined(alg, &key, &nonce, b"", &mut buf))
                    .expect("seal");
            });
            println!("{alg:?}: seal uses {depth} bytes of stack");
            assert!(depth < SCRUB_BYTES, "{alg:?} seal used {depth} bytes");
            let (depth, _) = stack_after(|| {
                std::hint::black_box(open_outlined(alg, &key, &nonce, b"", &mut buf, &tag))
                    .expect("open");
            });
            println!("{alg:?}: open uses {depth} bytes of stack");
            assert!(depth < SCRUB_BYTES, "{alg:?} open used {depth} bytes");
            let (_, stack) = stack_after(|| {
                let t = std::hint::black_box(seal(alg, &key, &nonce, b"", &mut buf)).expect("s");
                std::hint::black_box(open(alg, &key, &nonce, b"", &mut buf, &t)).expect("o");
            });
            assert!(!contains(&stack, &key[..16]), "{alg:?} left the key");
            assert!(!contains(&stack, &key[16..]), "{alg:?} left the key");
        }
    }

    /// The cached (`ring`) path stays within its scrubbed depth, building the cipher state
    /// stays within the deep scrub, and neither leaves the key on the stack. The cipher
    /// state lives in a guarded value beside the key, with the key's isolation.
    #[cfg(not(debug_assertions))]
    #[test]
    fn cached_stack_depth_is_covered() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        use crate::crypto::scrub::SCRUB_DEEP_BYTES;
        let raw: Vec<u8> = (41..=72).collect();
        for (alg, len) in [
            (AeadAlgorithm::AesGcm, 16),
            (AeadAlgorithm::AesGcm, 32),
            (AeadAlgorithm::ChaCha20Poly1305, 32),
        ] {
            let key = SecretBuf::new_with::<MemoryError>(len, |d| {
                d.copy_from_slice(&raw[..len]);
                Ok(())
            })
            .expect("key");
            let cache = CipherCache::default();
            assert!(!cache.holds(alg, len));
            let (depth, _) = stack_after(|| {
                std::hint::black_box(build_ring_key(ring_algorithm(alg, len).expect("r").1, &key))
                    .expect("build");
            });
            println!("{alg:?}/{len}: building the cipher uses {depth} bytes of stack");
            assert!(depth < SCRUB_DEEP_BYTES, "{alg:?} build used {depth} bytes");
            let nonce = [0u8; 12];
            let mut buf = vec![0u8; 1000];
            let mut tag = [0u8; TAG_LEN];
            let (_, stack) = stack_after(|| {
                tag = seal_cached(alg, &key, &cache, &nonce, b"ad", &mut buf).expect("seal");
            });
            assert!(cache.holds(alg, len));
            assert_eq!(
                cache.protection(alg, len).expect("held").isolation,
                key.protection().isolation
            );
            assert!(!contains(&stack, &raw[..16]), "{alg:?} left the key");
            let cipher = cache.cipher(alg, &key).expect("c").expect("cached");
            let (depth, _) = stack_after(|| {
                tag = std::hint::black_box(ring_seal(cipher, alg, &nonce, b"ad", &mut buf))
                    .expect("s");
            });
            println!("{alg:?}/{len}: a cached seal uses {depth} bytes of stack");
            assert!(
                depth < CACHED_SCRUB_BYTES,
                "{alg:?} seal used {depth} bytes"
            );
            let (depth, _) = stack_after(|| {
                std::hint::black_box(ring_open(cipher, alg, &nonce, b"ad", &mut buf, &tag))
                    .expect("o");
            });
            println!("{alg:?}/{len}: a cached open uses {depth} bytes of stack");
            assert!(
                depth < CACHED_SCRUB_BYTES,
                "{alg:?} open used {depth} bytes"
            );
            // The cached cipher agrees with the per-call RustCrypto one.
            let mut a = b"interop".to_vec();
            let mut b = a.clone();
            let ta = seal_cached(alg, &key, &cache, &nonce, b"x", &mut a).expect("a");
            let tb = seal(alg, &raw[..len], &nonce, b"x", &mut b).expect("b");
            assert_eq!((a.clone(), ta), (b, tb));
            let mut bad = ta;
            bad[0] ^= 1;
            assert_eq!(
                open_cached(alg, &key, &cache, &nonce, b"x", &mut a, &bad),
                Err(AeadFailure::InvalidTag)
            );
            assert!(
                a.iter().all(|&x| x == 0),
                "no plaintext after a failed open"
            );
        }
    }

    /// XChaCha20-Poly1305 on `ring` stays within its scrub and leaves neither the key nor
    /// the HChaCha20 subkey on the stack (agreement with RustCrypto's `XChaCha20Poly1305`:
    /// `xchacha_agrees_with_rustcrypto_and_refuses_forgeries`).
    #[cfg(not(debug_assertions))]
    #[test]
    fn xchacha_stack_depth_is_covered() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        use aes_gcm::aead::consts::U10;
        use aes_gcm::aead::generic_array::GenericArray;
        let key: Vec<u8> = (201..=232).collect();
        let nonce: Vec<u8> = (0..24).collect();
        let subkey = chacha20::hchacha::<U10>(
            GenericArray::from_slice(&key),
            GenericArray::from_slice(&nonce[..16]),
        );
        let alg = AeadAlgorithm::XChaCha20Poly1305;
        let mut buf = vec![0u8; 500];
        let mut tag = [0u8; TAG_LEN];
        let (depth, _) = stack_after(|| {
            tag = std::hint::black_box(seal_outlined(alg, &key, &nonce, b"a", &mut buf))
                .expect("seal");
        });
        println!("XChaCha20Poly1305 (ring): seal uses {depth} bytes of stack");
        assert!(depth < XCHACHA_SCRUB_BYTES, "seal used {depth} bytes");
        let (depth, _) = stack_after(|| {
            std::hint::black_box(open_outlined(alg, &key, &nonce, b"a", &mut buf, &tag))
                .expect("open");
        });
        println!("XChaCha20Poly1305 (ring): open uses {depth} bytes of stack");
        assert!(depth < XCHACHA_SCRUB_BYTES, "open used {depth} bytes");
        let (_, stack) = stack_after(|| {
            let t = std::hint::black_box(seal(alg, &key, &nonce, b"a", &mut buf)).expect("s");
            std::hint::black_box(open(alg, &key, &nonce, b"a", &mut buf, &t)).expect("o");
        });
        for secret in [&key[..16], &key[16..], &subkey[..16], &subkey[16..]] {
            assert!(
                !contains(&stack, secret),
                "a key or subkey was left on the stack"
            );
        }
    }
}
