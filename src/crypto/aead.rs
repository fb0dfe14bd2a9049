//! XChaCha20-Poly1305 (the `chacha20poly1305` crate) in place, over buffers the caller
//! owns (guarded regions for plaintext).
//!
//! Why in place: `AeadInPlace::{encrypt,decrypt}_in_place_detached` work on the caller's
//! slice and return/take the tag separately, so the plaintext is never copied anywhere
//! else (checked in the crate source: `Cipher::encrypt_in_place_detached` applies the
//! keystream to the slice and feeds the same slice to Poly1305; decryption authenticates
//! the ciphertext first and applies the keystream only when the tag matches, so a forged
//! entry never produces plaintext). The cipher object holds a copy of the key on the
//! stack, which the crate zeroizes on drop; the ChaCha20 state is zeroized on drop too.
//! (The Poly1305 one-time key is not zeroized by `poly1305` 0.8; it is derived per nonce
//! and lives on the stack for the duration of one call.)
//!
//! Moving the cipher value and the crate's own temporaries leave key material on the
//! stack that no `Drop` reaches, so both calls run outlined and scrub the stack they used
//! afterwards (`scrub::scrubbed_deep`, as the AEAD classes do); the key store's entries go
//! through here.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use super::scrub::scrubbed_deep;

/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (random nonces are safe at this size).
pub const NONCE_LEN: usize = 24;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Encryption or authentication failed. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

fn cipher(key: &[u8]) -> Result<XChaCha20Poly1305, AeadError> {
    if key.len() != KEY_LEN {
        return Err(AeadError);
    }
    XChaCha20Poly1305::new_from_slice(key).map_err(|_| AeadError)
}

/// Encrypt `buf` in place; returns the tag. The stack the cipher used is scrubbed before
/// this returns.
pub fn seal_in_place(
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadError> {
    scrubbed_deep(|| seal_outlined(key, nonce, aad, buf))
}

#[inline(never)]
fn seal_outlined(
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadError> {
    let c = cipher(key)?;
    let tag = c
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf)
        .map_err(|_| AeadError)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    Ok(out)
}

/// Authenticate and decrypt `buf` in place. On failure `buf` still holds the ciphertext.
/// The stack the cipher used is scrubbed before this returns.
pub fn open_in_place(
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadError> {
    scrubbed_deep(|| open_outlined(key, nonce, aad, buf, tag))
}

#[inline(never)]
fn open_outlined(
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadError> {
    let c = cipher(key)?;
    c.decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
        .map_err(|_| AeadError)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex;

    /// draft-irtf-cfrg-xchacha-03 §A.3.1.
    #[test]
    fn xchacha_test_vector() {
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let aad = unhex("50515253c0c1c2c3c4c5c6c7");
        let key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        let nonce: [u8; 24] = unhex("404142434445464748494a4b4c4d4e4f5051525354555657")
            .try_into()
            .expect("nonce");
        let ct = unhex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52e",
        );
        let tag = unhex("c0875924c1c7987947deafd8780acf49");
        let mut buf = plaintext.to_vec();
        let t = seal_in_place(&key, &nonce, &aad, &mut buf).expect("seal");
        assert_eq!(buf, ct);
        assert_eq!(t.to_vec(), tag);
        let tag: [u8; 16] = tag.try_into().expect("tag");
        open_in_place(&key, &nonce, &aad, &mut buf, &tag).expect("open");
        assert_eq!(&buf[..], &plaintext[..]);
    }

    /// The store's entry cipher stays within the scrubbed depth and leaves no key on the
    /// stack (optimized builds: unoptimized ChaCha20 reaches deeper than the scrub, and the
    /// release wheel is what runs).
    #[cfg(not(debug_assertions))]
    #[test]
    fn seal_and_open_leave_no_key_on_the_stack() {
        use crate::crypto::scrub::probe::{contains, stack_after};
        use crate::crypto::scrub::SCRUB_DEEP_BYTES;
        let key: Vec<u8> = (101..=132).collect();
        let nonce = [4u8; NONCE_LEN];
        let mut buf = vec![0u8; 300];
        let mut tag = [0u8; TAG_LEN];
        let (depth, _) = stack_after(|| {
            tag = std::hint::black_box(seal_outlined(&key, &nonce, b"", &mut buf)).expect("s");
        });
        assert!(depth < SCRUB_DEEP_BYTES, "seal used {depth} bytes");
        let (depth, _) = stack_after(|| {
            std::hint::black_box(open_outlined(&key, &nonce, b"", &mut buf, &tag)).expect("o");
        });
        assert!(depth < SCRUB_DEEP_BYTES, "open used {depth} bytes");
        let (_, stack) = stack_after(|| {
            let t = std::hint::black_box(seal_in_place(&key, &nonce, b"", &mut buf)).expect("s");
            std::hint::black_box(open_in_place(&key, &nonce, b"", &mut buf, &t)).expect("o");
        });
        assert!(
            !contains(&stack, &key[..16]),
            "the key was left on the stack"
        );
        assert!(
            !contains(&stack, &key[16..]),
            "the key was left on the stack"
        );
    }

    #[test]
    fn tampering_fails_and_leaves_ciphertext() {
        let key = [7u8; 32];
        let nonce = [9u8; 24];
        let mut buf = *b"secret bytes";
        let tag = seal_in_place(&key, &nonce, b"ad", &mut buf).expect("seal");
        let ct = buf;
        assert_eq!(
            open_in_place(&key, &nonce, b"other", &mut buf, &tag),
            Err(AeadError)
        );
        assert_eq!(buf, ct);
        let mut bad = tag;
        bad[0] ^= 1;
        assert!(open_in_place(&key, &nonce, b"ad", &mut buf, &bad).is_err());
        assert!(open_in_place(&[8u8; 32], &nonce, b"ad", &mut buf, &tag).is_err());
        assert!(open_in_place(&key[..31], &nonce, b"ad", &mut buf, &tag).is_err());
        open_in_place(&key, &nonce, b"ad", &mut buf, &tag).expect("open");
        assert_eq!(&buf, b"secret bytes");
    }
}
