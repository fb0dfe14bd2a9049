//! HMAC-SHA256/384/512 (RFC 2104) with precomputed key states, and HMAC-SHA1 for legacy
//! protocols ([`MacAlgorithm`]; its core is `sha1_core.rs`).
//!
//! Why not the `hmac` crate: keycell keeps the key-derived inner and outer hash states
//! ("pads", the SHA midstates after absorbing `K' ^ ipad` and `K' ^ opad`) in the key's
//! guarded region, computed once per key, so a one-shot HMAC of a short message costs two
//! compressions instead of four and no key-derived state lives on the heap between calls.
//! The `hmac` crate owns its state in ordinary memory, so we build HMAC on the SHA-2
//! compression functions that `sha2` exposes (`compress256`/`compress512`). Working states
//! copied to the stack during a call are zeroized before the call returns. The SHA-2 core
//! itself (midstates, padding, zeroizing running states) is `sha2_core.rs`.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::sha1_core;
use super::sha2_core::{Running, State, MAX_BLOCK_LEN};
// The hash algorithms and the wiping SHA-2 live in `sha2_core.rs`; re-exported here so
// callers keep using `crypto::hmac::{HashAlgorithm, SecretHash, MAX_DIGEST_LEN}`.
pub use super::sha2_core::{HashAlgorithm, SecretHash, MAX_DIGEST_LEN};

/// The hash of an HMAC: one of the SHA-2 [`HashAlgorithm`]s, or SHA-1 for legacy protocols
/// (webhook and token signatures that predate SHA-2, OTP). Only an HMAC takes SHA-1; HKDF,
/// the key store and the audit log take a [`HashAlgorithm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// HMAC-SHA1 (RFC 2202): legacy protocols only.
    Sha1,
    /// HMAC-SHA256/384/512 (RFC 4231).
    Sha2(HashAlgorithm),
}

impl From<HashAlgorithm> for MacAlgorithm {
    fn from(alg: HashAlgorithm) -> Self {
        MacAlgorithm::Sha2(alg)
    }
}

impl MacAlgorithm {
    /// Every algorithm.
    pub const ALL: [MacAlgorithm; 4] = [
        MacAlgorithm::Sha1,
        MacAlgorithm::Sha2(HashAlgorithm::Sha256),
        MacAlgorithm::Sha2(HashAlgorithm::Sha384),
        MacAlgorithm::Sha2(HashAlgorithm::Sha512),
    ];

    /// `"sha1"` or a SHA-2 name, case-insensitive, `-` allowed (as
    /// [`HashAlgorithm::from_name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        let mut loose = name
            .bytes()
            .filter(|&c| c != b'-')
            .map(|c| c.to_ascii_lowercase());
        if b"sha1".iter().all(|&c| loose.next() == Some(c)) && loose.next().is_none() {
            return Some(MacAlgorithm::Sha1);
        }
        HashAlgorithm::from_name(name).map(MacAlgorithm::Sha2)
    }

    /// The SHA-2 algorithm, or `None` for SHA-1.
    pub fn sha2(self) -> Option<HashAlgorithm> {
        match self {
            MacAlgorithm::Sha1 => None,
            MacAlgorithm::Sha2(alg) => Some(alg),
        }
    }

    /// Canonical lowercase name.
    pub fn name(self) -> &'static str {
        self.sha2().map_or("sha1", HashAlgorithm::name)
    }

    /// Digest (tag) length in bytes.
    pub fn digest_len(self) -> usize {
        self.sha2()
            .map_or(sha1_core::SHA1_DIGEST_LEN, HashAlgorithm::digest_len)
    }

    /// Block length of the hash in bytes.
    pub fn block_len(self) -> usize {
        self.sha2().map_or(64, HashAlgorithm::block_len)
    }

    /// Bytes of the precomputed pads (inner and outer midstate).
    pub fn pads_len(self) -> usize {
        self.sha2()
            .map_or(sha1_core::SHA1_PADS_LEN, HashAlgorithm::pads_len)
    }

    /// Compute the pads of `key` into `out` ([`Self::pads_len`] bytes).
    pub fn precompute_pads(self, key: &[u8], out: &mut [u8]) {
        match self.sha2() {
            None => sha1_core::precompute_pads(key, out),
            Some(alg) => precompute_pads(alg, key, out),
        }
    }

    /// One-shot HMAC of `msg` with precomputed `pads`; writes [`Self::digest_len`] bytes
    /// to `out`.
    pub fn mac_with_pads(self, pads: &[u8], msg: &[u8], out: &mut [u8]) {
        match self.sha2() {
            None => sha1_core::hmac_with_pads(pads, msg, out),
            Some(alg) => hmac_with_pads(alg, pads, msg, out),
        }
    }
}

/// Compute the pads of `key` for `alg` into `out` (`alg.pads_len()` bytes): the midstate
/// after `K' ^ ipad`, then the midstate after `K' ^ opad`. Keys longer than a block are
/// hashed first (RFC 2104).
pub fn precompute_pads(alg: HashAlgorithm, key: &[u8], out: &mut [u8]) {
    let bl = alg.block_len();
    let mut kblock = [0u8; MAX_BLOCK_LEN];
    if key.len() > bl {
        let mut h = Running::new(alg);
        h.update(key);
        h.finalize_into(&mut kblock[..]);
    } else {
        kblock[..key.len()].copy_from_slice(key);
    }
    let sl = alg.state_len();
    for (pad, dst) in [(0x36u8, 0..sl), (0x5cu8, sl..2 * sl)] {
        let mut block = kblock;
        for b in block[..bl].iter_mut() {
            *b ^= pad;
        }
        let mut st = State::iv(alg);
        st.compress(&block[..bl]);
        st.store(&mut out[dst]);
        st.zeroize();
        block[..].zeroize();
    }
    kblock[..].zeroize();
}

fn split_pads(alg: HashAlgorithm, pads: &[u8]) -> (&[u8], &[u8]) {
    let sl = alg.state_len();
    (&pads[..sl], &pads[sl..2 * sl])
}

/// The inner and outer pad of `alg` (each half of [`MacAlgorithm::pads_len`]).
fn split_mac_pads(alg: MacAlgorithm, pads: &[u8]) -> (&[u8], &[u8]) {
    let half = alg.pads_len() / 2;
    (&pads[..half], &pads[half..2 * half])
}

fn finish(alg: HashAlgorithm, outer_pad: &[u8], inner: &mut Running, out: &mut [u8]) {
    let mut inner_digest = [0u8; MAX_DIGEST_LEN];
    let dl = alg.digest_len();
    inner.finalize_into(&mut inner_digest);
    let mut outer = Running::new(alg);
    outer.load_pad(outer_pad);
    outer.update(&inner_digest[..dl]);
    outer.finalize_into(out);
    inner_digest[..].zeroize();
}

/// One-shot HMAC of `msg` with precomputed `pads`; writes `alg.digest_len()` bytes to `out`.
pub fn hmac_with_pads(alg: HashAlgorithm, pads: &[u8], msg: &[u8], out: &mut [u8]) {
    hmac_with_pads_parts(alg, pads, &[msg], out);
}

/// One-shot HMAC of the concatenation of `parts` with precomputed `pads` (HKDF's
/// `T(i-1) | info | i` without assembling the message in a buffer); writes
/// `alg.digest_len()` bytes to `out`.
pub fn hmac_with_pads_parts(alg: HashAlgorithm, pads: &[u8], parts: &[&[u8]], out: &mut [u8]) {
    let (ipad, opad) = split_pads(alg, pads);
    let mut inner = Running::new(alg);
    inner.load_pad(ipad);
    for part in parts {
        inner.update(part);
    }
    finish(alg, opad, &mut inner, out);
}

/// The running inner hash of a streaming HMAC.
enum Inner {
    Sha2(Running),
    Sha1(sha1_core::Running),
}

impl Inner {
    /// A running hash of `alg` holding no key-derived state yet (the initial value);
    /// [`Inner::load_pad`] then loads the pad into it where it lies, so the key-derived
    /// state never sits in a temporary that is moved and left behind on the stack.
    fn blank(alg: MacAlgorithm) -> Self {
        match alg {
            MacAlgorithm::Sha2(a) => Inner::Sha2(Running::new(a)),
            MacAlgorithm::Sha1 => Inner::Sha1(sha1_core::Running::new()),
        }
    }

    /// Continue from the inner pad `ipad`, loaded in place.
    fn load_pad(&mut self, ipad: &[u8]) {
        match self {
            Inner::Sha2(r) => r.load_pad(ipad),
            Inner::Sha1(r) => r.load_pad(ipad),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Inner::Sha2(r) => r.update(data),
            Inner::Sha1(r) => r.update(data),
        }
    }

    /// A state of the same kind as `other`, for [`Inner::copy_from`].
    fn blank_like(other: &Inner) -> Inner {
        match other {
            Inner::Sha2(r) => Inner::Sha2(Running::new(r.algorithm())),
            Inner::Sha1(_) => Inner::Sha1(sha1_core::Running::new()),
        }
    }

    fn copy_from(&mut self, other: &Inner) {
        match (self, other) {
            (Inner::Sha2(dst), Inner::Sha2(src)) => dst.copy_from(src),
            (Inner::Sha1(dst), Inner::Sha1(src)) => dst.copy_from(src),
            // Callers make `self` with `blank_like(other)`.
            _ => unreachable!("copy between different hashes"),
        }
    }

    /// Finish the inner hash and the outer one from `opad`; writes the tag to `out`.
    fn finish(&mut self, opad: &[u8], out: &mut [u8]) {
        match self {
            Inner::Sha2(r) => finish(r.algorithm(), opad, r, out),
            Inner::Sha1(r) => {
                let mut inner_digest = [0u8; sha1_core::SHA1_DIGEST_LEN];
                r.finalize_into(&mut inner_digest);
                let mut outer = sha1_core::Running::new();
                outer.load_pad(opad);
                outer.update(&inner_digest);
                outer.finalize_into(out);
                inner_digest[..].zeroize();
            }
        }
    }
}

impl Zeroize for Inner {
    fn zeroize(&mut self) {
        match self {
            Inner::Sha2(r) => r.zeroize(),
            Inner::Sha1(r) => r.zeroize(),
        }
    }
}

/// A streaming HMAC. Until the first full block of message arrives it holds no
/// key-derived state at all (only buffered message bytes); after that it holds the running
/// inner hash state, which is zeroized on drop. The pads are read from the key's region on
/// each call that needs them.
///
/// Not `Clone`: [`HmacStream::copy_from`] copies one in place, so the running state is
/// never left behind in a temporary.
pub struct HmacStream {
    alg: MacAlgorithm,
    /// `None` while every absorbed byte is still in `pending`.
    inner: Option<Inner>,
    pending: [u8; MAX_BLOCK_LEN],
    pending_len: usize,
}

impl Zeroize for HmacStream {
    fn zeroize(&mut self) {
        self.inner.zeroize();
        self.pending[..].zeroize();
        self.pending_len.zeroize();
    }
}

impl Drop for HmacStream {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for HmacStream {}

impl HmacStream {
    /// A new stream for `alg`.
    pub fn new(alg: impl Into<MacAlgorithm>) -> Self {
        HmacStream {
            alg: alg.into(),
            inner: None,
            pending: [0u8; MAX_BLOCK_LEN],
            pending_len: 0,
        }
    }

    /// Become an exact copy of `other` (same algorithm, same data absorbed), writing into
    /// this value's own memory.
    pub fn copy_from(&mut self, other: &HmacStream) {
        self.alg = other.alg;
        match &other.inner {
            Some(src) => self.inner.insert(Inner::blank_like(src)).copy_from(src),
            None => self.inner.zeroize(),
        }
        self.pending.copy_from_slice(&other.pending);
        self.pending_len = other.pending_len;
    }

    /// The algorithm.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.alg
    }

    /// Whether the next `update` of `len` bytes needs the pads.
    pub fn needs_pads(&self, len: usize) -> bool {
        self.inner.is_none() && self.pending_len + len >= self.alg.block_len()
    }

    /// Absorb `data`. `pads` is consulted only when [`Self::needs_pads`] says so; pass the
    /// key's pads (or `None` when not needed).
    pub fn update(&mut self, pads: Option<&[u8]>, data: &[u8]) {
        if let Some(inner) = self.inner.as_mut() {
            inner.update(data);
            return;
        }
        match pads {
            Some(pads) if self.pending_len + data.len() >= self.alg.block_len() => {
                let (ipad, _) = split_mac_pads(self.alg, pads);
                // Built in place: the key-derived state never sits in a temporary.
                let inner = self.inner.insert(Inner::blank(self.alg));
                inner.load_pad(ipad);
                inner.update(&self.pending[..self.pending_len]);
                inner.update(data);
                self.pending[..].zeroize();
                self.pending_len = 0;
            }
            _ => {
                // Fits in the pending block (the caller checked needs_pads).
                let end = self.pending_len + data.len();
                self.pending[self.pending_len..end].copy_from_slice(data);
                self.pending_len = end;
            }
        }
    }

    /// Finish with the key's `pads`; writes `digest_len` bytes to `out`.
    pub fn finalize(&mut self, pads: &[u8], out: &mut [u8]) {
        let (ipad, opad) = split_mac_pads(self.alg, pads);
        if self.inner.is_none() {
            let inner = self.inner.insert(Inner::blank(self.alg));
            inner.load_pad(ipad);
            inner.update(&self.pending[..self.pending_len]);
        }
        if let Some(inner) = self.inner.as_mut() {
            inner.finish(opad, out);
        }
        self.zeroize();
    }
}

/// HMAC of `msg` under an arbitrary `key` (pads computed on the stack and wiped). For keys
/// that are not secret (e.g. an HKDF salt) or already transient.
pub fn hmac(alg: HashAlgorithm, key: &[u8], msg: &[u8], out: &mut [u8]) {
    let mut pads = [0u8; 2 * 64];
    let pl = alg.pads_len();
    precompute_pads(alg, key, &mut pads[..pl]);
    hmac_with_pads(alg, &pads[..pl], msg, out);
    pads[..].zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex as hex;

    /// HMAC of `msg` under `key` with `alg`, pads computed here (the reference for streams).
    fn one_shot(alg: MacAlgorithm, key: &[u8], msg: &[u8], out: &mut [u8; 64]) {
        let mut pads = vec![0u8; alg.pads_len()];
        alg.precompute_pads(key, &mut pads);
        alg.mac_with_pads(&pads, msg, out);
    }

    #[test]
    fn mac_algorithm_names() {
        for alg in MacAlgorithm::ALL {
            assert_eq!(MacAlgorithm::from_name(alg.name()), Some(alg));
        }
        for sha1 in ["sha1", "SHA1", "SHA-1"] {
            assert_eq!(MacAlgorithm::from_name(sha1), Some(MacAlgorithm::Sha1));
        }
        for bad in ["sha1 ", "sha", "sha11", "md5", "", "sha224"] {
            assert_eq!(MacAlgorithm::from_name(bad), None, "{bad}");
        }
        assert_eq!(
            (
                MacAlgorithm::Sha1.digest_len(),
                MacAlgorithm::Sha1.block_len()
            ),
            (20, 64)
        );
    }

    #[test]
    fn sha1_stream_matches_rfc2202() {
        // RFC 2202 test cases 3 and 7 (two blocks of data, a key longer than a block),
        // absorbed a byte at a time.
        let cases: [(&[u8], &[u8], &str); 2] = [
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
                "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
            ),
        ];
        for (key, msg, want) in cases {
            let alg = MacAlgorithm::Sha1;
            let mut pads = vec![0u8; alg.pads_len()];
            alg.precompute_pads(key, &mut pads);
            let mut s = HmacStream::new(alg);
            for b in msg.chunks(1) {
                let p = s.needs_pads(1).then_some(&pads[..]);
                s.update(p, b);
            }
            let mut out = [0u8; 20];
            s.finalize(&pads, &mut out);
            assert_eq!(out.to_vec(), hex(want));
        }
    }

    fn tag(alg: HashAlgorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut out = [0u8; 64];
        hmac(alg, key, msg, &mut out);
        out[..alg.digest_len()].to_vec()
    }

    // RFC 4231 test cases 1, 2 and 6 (key longer than the block).
    #[test]
    fn rfc4231() {
        let k1 = [0x0bu8; 20];
        assert_eq!(
            tag(HashAlgorithm::Sha256, &k1, b"Hi There"),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        assert_eq!(
            tag(HashAlgorithm::Sha384, &k1, b"Hi There"),
            hex("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
        );
        assert_eq!(
            tag(HashAlgorithm::Sha512, &k1, b"Hi There"),
            hex("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
        );
        assert_eq!(
            tag(
                HashAlgorithm::Sha256,
                b"Jefe",
                b"what do ya want for nothing?"
            ),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        let k6 = [0xaau8; 131];
        assert_eq!(
            tag(
                HashAlgorithm::Sha256,
                &k6,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        assert_eq!(
            tag(HashAlgorithm::Sha512, &k6, b"Test Using Larger Than Block-Size Key - Hash Key First"),
            hex("80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598")
        );
    }

    #[test]
    fn parts_equal_concatenation() {
        let key = b"parts key";
        for alg in HashAlgorithm::ALL {
            let mut pads = vec![0u8; alg.pads_len()];
            precompute_pads(alg, key, &mut pads);
            let msg: Vec<u8> = (0..=255u8).cycle().take(400).collect();
            let mut whole = [0u8; 64];
            hmac_with_pads(alg, &pads, &msg, &mut whole);
            for (a, b) in [(0usize, 0usize), (10, 100), (64, 128), (1, 399), (200, 200)] {
                let mut parts = [0u8; 64];
                hmac_with_pads_parts(alg, &pads, &[&msg[..a], &msg[a..b], &msg[b..]], &mut parts);
                assert_eq!(parts, whole, "{alg:?} {a} {b}");
            }
        }
    }

    #[test]
    fn copy_from_forks_the_stream() {
        let msg: Vec<u8> = (0..500u32).map(|i| (i * 13 % 256) as u8).collect();
        for alg in MacAlgorithm::ALL {
            let mut pads = vec![0u8; alg.pads_len()];
            alg.precompute_pads(b"copy key", &mut pads);
            for cut in [0usize, 10, 127, 128, 129, 300] {
                let mut a = HmacStream::new(alg);
                let p = a.needs_pads(cut).then_some(&pads[..]);
                a.update(p, &msg[..cut]);
                // Copy into streams of every algorithm (the target's own state is replaced).
                for other in MacAlgorithm::ALL {
                    let mut other_pads = vec![0u8; other.pads_len()];
                    other.precompute_pads(b"other key", &mut other_pads);
                    let mut b = HmacStream::new(other);
                    b.update(Some(&other_pads[..]), &[7u8; 200][..other.block_len()]);
                    b.copy_from(&a);
                    assert_eq!(b.algorithm(), alg);
                    let p = b.needs_pads(msg.len() - cut).then_some(&pads[..]);
                    b.update(p, &msg[cut..]);
                    let mut out = [0u8; 64];
                    b.finalize(&pads, &mut out);
                    let mut expect = [0u8; 64];
                    alg.mac_with_pads(&pads, &msg, &mut expect);
                    assert_eq!(out, expect, "{alg:?} cut {cut} into {other:?}");
                }
                // The original is unaffected by its copies.
                let p = a.needs_pads(5).then_some(&pads[..]);
                a.update(p, &msg[cut..cut + 5]);
                let mut out = [0u8; 64];
                a.finalize(&pads, &mut out);
                let mut expect = [0u8; 64];
                alg.mac_with_pads(&pads, &msg[..cut + 5], &mut expect);
                assert_eq!(out, expect, "{alg:?} original after cut {cut}");
            }
        }
    }

    #[test]
    fn stream_matches_oneshot_for_every_split() {
        let key = b"a key that is long enough";
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in MacAlgorithm::ALL {
            let mut pads = vec![0u8; alg.pads_len()];
            alg.precompute_pads(key, &mut pads);
            let mut expect = [0u8; 64];
            alg.mac_with_pads(&pads, &msg, &mut expect);
            for split in [0usize, 1, 63, 64, 65, 127, 128, 129, 200, 300] {
                let mut s = HmacStream::new(alg);
                let (a, b) = msg.split_at(split);
                for part in [a, b] {
                    let p = if s.needs_pads(part.len()) {
                        Some(&pads[..])
                    } else {
                        None
                    };
                    s.update(p, part);
                }
                let mut out = [0u8; 64];
                s.finalize(&pads, &mut out);
                assert_eq!(out, expect, "{alg:?} split {split}");
            }
        }
    }

    #[test]
    fn sha_lengths_across_padding_boundary() {
        // HMAC over messages around the padding boundary agrees between one-shot and stream
        // (exercises the two-block finalization).
        for alg in MacAlgorithm::ALL {
            for len in 50..140 {
                let msg = vec![0x61u8; len];
                let mut one = [0u8; 64];
                one_shot(alg, b"k", &msg, &mut one);
                let mut pads = vec![0u8; alg.pads_len()];
                alg.precompute_pads(b"k", &mut pads);
                let mut s = HmacStream::new(alg);
                for byte in msg.chunks(1) {
                    let p = if s.needs_pads(1) {
                        Some(&pads[..])
                    } else {
                        None
                    };
                    s.update(p, byte);
                }
                let mut out = [0u8; 64];
                s.finalize(&pads, &mut out);
                assert_eq!(out, one, "{alg:?} len {len}");
            }
        }
    }
}
