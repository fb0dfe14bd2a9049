//! HMAC-SHA1 with precomputed pads, for legacy protocols: one-time passwords (RFC 4226 and
//! RFC 6238 default to it and most authenticator apps support nothing else) and the
//! HMAC-SHA1 signatures of webhooks and signers that predate SHA-2 (GitHub's
//! `X-Hub-Signature`, Twilio, the default signers of itsdangerous and Django).
//!
//! SHA-1 is not a [`super::hmac::HashAlgorithm`] (the SHA-2 hashes that HKDF, the key
//! store and the audit log use), so nothing else picks it by accident; HMAC takes it as
//! [`super::hmac::MacAlgorithm::Sha1`], by name only. HMAC-SHA1 itself is not broken by
//! SHA-1's collisions; it is here for interoperability.
//!
//! Like the SHA-2 core (`sha2_core.rs`), it is built on the compression function that the
//! `sha1` crate exposes (`sha1::compress`), starts from a midstate kept in a guarded region,
//! and zeroizes every working state before the call returns.

use sha1::digest::block_buffer::{BlockBuffer, Eager};
use sha1::digest::consts::U64;
use zeroize::Zeroize;

/// Digest length of SHA-1, in bytes.
pub const SHA1_DIGEST_LEN: usize = 20;
/// Bytes of the precomputed HMAC-SHA1 pads (inner and outer midstate).
pub const SHA1_PADS_LEN: usize = 40;

const BLOCK_LEN: usize = 64;
const STATE_LEN: usize = 20;
const IV: [u32; 5] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0];

/// Compress the whole blocks of `data` (a multiple of 64 bytes) into `state`, without a
/// copy (the same block-slice cast as `sha2_core::State::compress`).
fn compress(state: &mut [u32; 5], data: &[u8]) {
    let whole = data.len() - data.len() % BLOCK_LEN;
    let mut caster = BlockBuffer::<U64, Eager>::default();
    caster.digest_blocks(&data[..whole], |blocks| sha1::compress(state, blocks));
    debug_assert_eq!(caster.get_pos(), 0);
}

/// A running SHA-1 computation from an arbitrary midstate; wiped on drop. Not `Clone`:
/// copies are made in place with [`Running::copy_from`].
pub(super) struct Running {
    state: [u32; 5],
    buf: [u8; BLOCK_LEN],
    buf_len: usize,
    total: u64,
}

impl Zeroize for Running {
    fn zeroize(&mut self) {
        self.state[..].zeroize();
        self.buf[..].zeroize();
        self.buf_len.zeroize();
        self.total.zeroize();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl Running {
    pub(super) fn new() -> Self {
        Running {
            state: IV,
            buf: [0u8; BLOCK_LEN],
            buf_len: 0,
            total: 0,
        }
    }

    /// Continue from a pad, loaded straight into this running state.
    pub(super) fn load_pad(&mut self, pad: &[u8]) {
        for (w, b) in self.state.iter_mut().zip(pad.chunks_exact(4)) {
            *w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        }
        self.buf_len = 0;
        self.total = BLOCK_LEN as u64;
    }

    /// Become an exact copy of `other`, in this value's own memory.
    pub(super) fn copy_from(&mut self, other: &Running) {
        self.state.copy_from_slice(&other.state);
        self.buf.copy_from_slice(&other.buf);
        self.buf_len = other.buf_len;
        self.total = other.total;
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (BLOCK_LEN - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK_LEN {
                return;
            }
            compress(&mut self.state, &self.buf);
            self.buf_len = 0;
        }
        let whole = data.len() - data.len() % BLOCK_LEN;
        compress(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pad, compress and write the 20-byte digest into `out`.
    pub(super) fn finalize_into(&mut self, out: &mut [u8]) {
        let mut block = [0u8; 2 * BLOCK_LEN];
        block[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        block[self.buf_len] = 0x80;
        let n = if self.buf_len + 9 <= BLOCK_LEN {
            BLOCK_LEN
        } else {
            2 * BLOCK_LEN
        };
        block[n - 8..n].copy_from_slice(&self.total.wrapping_mul(8).to_be_bytes());
        compress(&mut self.state, &block[..n]);
        block[..].zeroize();
        for (w, o) in self
            .state
            .iter()
            .zip(out[..SHA1_DIGEST_LEN].chunks_exact_mut(4))
        {
            o.copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// Compute the HMAC-SHA1 pads of `key` into `out` ([`SHA1_PADS_LEN`] bytes): the midstate
/// after `K' ^ ipad`, then the one after `K' ^ opad`, in native byte order. Keys longer
/// than a block are hashed first (RFC 2104).
pub fn precompute_pads(key: &[u8], out: &mut [u8]) {
    let mut kblock = [0u8; BLOCK_LEN];
    if key.len() > BLOCK_LEN {
        let mut h = Running::new();
        h.update(key);
        h.finalize_into(&mut kblock[..]);
    } else {
        kblock[..key.len()].copy_from_slice(key);
    }
    for (pad, dst) in [(0x36u8, 0..STATE_LEN), (0x5cu8, STATE_LEN..2 * STATE_LEN)] {
        let mut block = kblock;
        for b in block.iter_mut() {
            *b ^= pad;
        }
        let mut st = IV;
        compress(&mut st, &block);
        for (w, o) in st.iter().zip(out[dst].chunks_exact_mut(4)) {
            o.copy_from_slice(&w.to_ne_bytes());
        }
        st[..].zeroize();
        block[..].zeroize();
    }
    kblock[..].zeroize();
}

/// One-shot HMAC-SHA1 of `msg` with precomputed `pads`; writes 20 bytes to `out`.
pub fn hmac_with_pads(pads: &[u8], msg: &[u8], out: &mut [u8]) {
    // Pads loaded in place (a state returned by value would leave a copy behind).
    let mut inner = Running::new();
    inner.load_pad(&pads[..STATE_LEN]);
    inner.update(msg);
    let mut inner_digest = [0u8; SHA1_DIGEST_LEN];
    inner.finalize_into(&mut inner_digest);
    let mut outer = Running::new();
    outer.load_pad(&pads[STATE_LEN..2 * STATE_LEN]);
    outer.update(&inner_digest);
    outer.finalize_into(out);
    inner_digest[..].zeroize();
}

/// HMAC-SHA1 of `msg` under `key` (pads computed on the stack and wiped).
pub fn hmac(key: &[u8], msg: &[u8], out: &mut [u8]) {
    let mut pads = [0u8; SHA1_PADS_LEN];
    precompute_pads(key, &mut pads);
    hmac_with_pads(&pads, msg, out);
    pads[..].zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::unhex as hex;

    fn tag(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut out = [0u8; SHA1_DIGEST_LEN];
        hmac(key, msg, &mut out);
        out.to_vec()
    }

    // RFC 2202 section 3, test cases 1, 2, 3, 6 (key longer than a block) and 7.
    #[test]
    fn rfc2202() {
        assert_eq!(
            tag(&[0x0b; 20], b"Hi There"),
            hex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
        assert_eq!(
            tag(b"Jefe", b"what do ya want for nothing?"),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert_eq!(
            tag(&[0xaa; 20], &[0xdd; 50]),
            hex("125d7342b9ac11cd91a39af48aa17b4f63f175d3")
        );
        assert_eq!(
            tag(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            hex("aa4ae5e15272d00e95705637ce8a3b55ed402112")
        );
        assert_eq!(
            tag(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
            ),
            hex("e8e99d0f45237d786d6bbaa7965c7808bbff1a91")
        );
    }

    // Padding, length encoding and buffering, against the `sha1` crate's own hasher.
    #[test]
    fn plain_sha1_matches_the_sha1_crate() {
        use sha1::Digest;
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in 0..data.len() {
            let msg = &data[..len];
            let mut ours = [0u8; SHA1_DIGEST_LEN];
            let mut h = Running::new();
            let (a, b) = msg.split_at(len / 3);
            h.update(a);
            h.update(b);
            h.finalize_into(&mut ours);
            assert_eq!(ours.to_vec(), sha1::Sha1::digest(msg).to_vec(), "len {len}");
        }
    }
}
