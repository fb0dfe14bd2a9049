//! HMAC-SHA256/384/512 (RFC 2104) with precomputed key states.
//!
//! Why not the `hmac` crate: keycell keeps the key-derived inner and outer hash states
//! ("pads", the SHA midstates after absorbing `K' ^ ipad` and `K' ^ opad`) in the key's
//! guarded region, computed once per key, so a one-shot HMAC of a short message costs two
//! compressions instead of four and no key-derived state lives on the heap between calls.
//! The `hmac` crate owns its state in ordinary memory, so we build HMAC on the SHA-2
//! compression functions that `sha2` exposes (`compress256`/`compress512`). Working states
//! copied to the stack during a call are zeroized before the call returns.

use sha2::digest::block_buffer::{BlockBuffer, Eager};
use sha2::digest::consts::{U128, U64};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A hash function usable with HMAC and HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// All supported algorithms, in the order their pads are stored.
    pub const ALL: [HashAlgorithm; 3] = [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ];

    /// Parse `"sha256"`, `"sha384"` or `"sha512"` (case-insensitive, `-` allowed).
    pub fn from_name(name: &str) -> Option<Self> {
        // Compared without allocating: this runs on every one-shot HMAC call.
        let loose_eq = |canonical: &str| {
            let mut it = name
                .bytes()
                .filter(|&c| c != b'-')
                .map(|c| c.to_ascii_lowercase());
            canonical.bytes().all(|c| it.next() == Some(c)) && it.next().is_none()
        };
        Self::ALL.into_iter().find(|alg| loose_eq(alg.name()))
    }

    /// Canonical lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// Output length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Block length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 64,
            _ => 128,
        }
    }

    /// Bytes of one serialized midstate.
    fn state_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            _ => 64,
        }
    }

    /// Bytes of the precomputed pads (inner and outer midstate) for this algorithm.
    pub fn pads_len(self) -> usize {
        2 * self.state_len()
    }
}

/// Largest digest, in bytes.
pub const MAX_DIGEST_LEN: usize = 64;
/// Largest block, in bytes.
const MAX_BLOCK_LEN: usize = 128;

const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const IV384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];
const IV512: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// A SHA-2 chaining state of either family.
#[derive(Clone, Zeroize)]
enum State {
    S256([u32; 8]),
    S512([u64; 8]),
}

impl State {
    fn iv(alg: HashAlgorithm) -> State {
        match alg {
            HashAlgorithm::Sha256 => State::S256(IV256),
            HashAlgorithm::Sha384 => State::S512(IV384),
            HashAlgorithm::Sha512 => State::S512(IV512),
        }
    }

    /// Compress the whole blocks of `data` (callers pass a multiple of the block length).
    ///
    /// All blocks go to `sha2` in one call: its SHA-NI and AVX2 back ends then keep the
    /// state in registers across blocks (SHA-512 on AVX2 even hashes two blocks at once),
    /// instead of loading and storing it around every block. `sha2` wants
    /// `&[GenericArray<u8, N>]`; an empty eager `BlockBuffer` (the buffer `sha2` itself
    /// uses) hands a slice of whole blocks to its callback as exactly that, without a copy
    /// and without `unsafe` here. Since only whole blocks are passed, nothing is ever
    /// stored in the caster's own buffer.
    fn compress(&mut self, data: &[u8]) {
        match self {
            State::S256(s) => {
                let whole = data.len() - data.len() % 64;
                let mut caster = BlockBuffer::<U64, Eager>::default();
                caster.digest_blocks(&data[..whole], |blocks| sha2::compress256(s, blocks));
                debug_assert_eq!(caster.get_pos(), 0);
            }
            State::S512(s) => {
                let whole = data.len() - data.len() % 128;
                let mut caster = BlockBuffer::<U128, Eager>::default();
                caster.digest_blocks(&data[..whole], |blocks| sha2::compress512(s, blocks));
                debug_assert_eq!(caster.get_pos(), 0);
            }
        }
    }

    /// Serialize in native byte order (midstates stored in a region).
    fn store(&self, out: &mut [u8]) {
        match self {
            State::S256(s) => {
                for (w, o) in s.iter().zip(out.chunks_exact_mut(4)) {
                    o.copy_from_slice(&w.to_ne_bytes());
                }
            }
            State::S512(s) => {
                for (w, o) in s.iter().zip(out.chunks_exact_mut(8)) {
                    o.copy_from_slice(&w.to_ne_bytes());
                }
            }
        }
    }

    /// Overwrite this state, in place, with a midstate serialized by [`State::store`]
    /// (no temporary copy of the midstate is made).
    fn load(&mut self, bytes: &[u8]) {
        match self {
            State::S256(s) => {
                for (w, b) in s.iter_mut().zip(bytes.chunks_exact(4)) {
                    *w = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            State::S512(s) => {
                for (w, b) in s.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w = u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                }
            }
        }
    }

    /// Big-endian digest bytes, truncated to `out.len()`.
    fn digest(&self, out: &mut [u8]) {
        match self {
            State::S256(s) => {
                for (w, o) in s.iter().zip(out.chunks_mut(4)) {
                    let be = w.to_be_bytes();
                    o.copy_from_slice(&be[..o.len()]);
                }
            }
            State::S512(s) => {
                for (w, o) in s.iter().zip(out.chunks_mut(8)) {
                    let be = w.to_be_bytes();
                    o.copy_from_slice(&be[..o.len()]);
                }
            }
        }
    }
}

/// A running SHA-2 computation whose state starts from an arbitrary midstate. Not
/// `Clone`: copies are made in place with [`Running::copy_from`].
struct Running {
    alg: HashAlgorithm,
    state: State,
    buf: [u8; MAX_BLOCK_LEN],
    buf_len: usize,
    /// Total bytes absorbed, including the ones behind the starting midstate.
    total: u128,
}

// Zeroization note: `[u8; N]::zeroize()` writes byte by byte with volatile stores, while
// `<[u8]>::zeroize()` is a bulk fill followed by an optimization barrier (equally
// un-elidable, much faster). A one-shot HMAC wipes about 850 bytes of buffers; wiping
// them as slices took `key.hmac(32 bytes)` from 315 to 236 ns. Buffers are therefore
// always wiped as slices.
impl Zeroize for Running {
    fn zeroize(&mut self) {
        self.state.zeroize();
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

impl ZeroizeOnDrop for Running {}

impl Running {
    /// A plain hash computation from the algorithm's IV.
    fn new(alg: HashAlgorithm) -> Self {
        Running {
            alg,
            state: State::iv(alg),
            buf: [0u8; MAX_BLOCK_LEN],
            buf_len: 0,
            total: 0,
        }
    }

    /// Become an exact copy of `other`, writing into this value's own memory (no
    /// temporary copy of the state is made).
    fn copy_from(&mut self, other: &Running) {
        self.alg = other.alg;
        if std::mem::discriminant(&self.state) != std::mem::discriminant(&other.state) {
            self.state = State::iv(other.alg);
        }
        match (&mut self.state, &other.state) {
            (State::S256(dst), State::S256(src)) => dst.copy_from_slice(src),
            (State::S512(dst), State::S512(src)) => dst.copy_from_slice(src),
            _ => {}
        }
        self.buf.copy_from_slice(&other.buf);
        self.buf_len = other.buf_len;
        self.total = other.total;
    }

    /// Continue from a precomputed pad (the midstate after one key block): the midstate
    /// is loaded straight into this running state.
    fn load_pad(&mut self, pad: &[u8]) {
        self.state.load(pad);
        self.buf_len = 0;
        self.total = self.alg.block_len() as u128;
    }

    fn update(&mut self, mut data: &[u8]) {
        let bl = self.alg.block_len();
        self.total += data.len() as u128;
        if self.buf_len > 0 {
            let take = (bl - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < bl {
                return;
            }
            self.state.compress(&self.buf[..bl]);
            self.buf_len = 0;
        }
        let whole = data.len() - data.len() % bl;
        self.state.compress(&data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pad, compress and write the digest (`digest_len` bytes) into `out`.
    fn finalize_into(&mut self, out: &mut [u8]) {
        let bl = self.alg.block_len();
        let len_bytes = if bl == 64 { 8 } else { 16 };
        let bits = self.total.wrapping_mul(8);
        let mut block = [0u8; 2 * MAX_BLOCK_LEN];
        block[..self.buf_len].copy_from_slice(&self.buf[..self.buf_len]);
        block[self.buf_len] = 0x80;
        let n = if self.buf_len + 1 + len_bytes <= bl {
            bl
        } else {
            2 * bl
        };
        let be = bits.to_be_bytes();
        block[n - len_bytes..n].copy_from_slice(&be[16 - len_bytes..]);
        self.state.compress(&block[..n]);
        block[..].zeroize();
        self.state.digest(&mut out[..self.alg.digest_len()]);
    }
}

/// SHA-2 over secret input (e.g. the Ed25519 seed and nonce hashes): the running state and
/// buffer are zeroized on drop, unlike the `sha2` hashers. The same core as HMAC.
pub struct SecretHash(Running);

impl SecretHash {
    /// A new hash computation for `alg`.
    pub fn new(alg: HashAlgorithm) -> Self {
        SecretHash(Running::new(alg))
    }

    /// Absorb `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Write the digest (`alg.digest_len()` bytes) into `out` (e.g. a region slice); the
    /// state is wiped when `self` drops here.
    pub fn finalize_into(mut self, out: &mut [u8]) {
        self.0.finalize_into(out);
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

/// A streaming HMAC. Until the first full block of message arrives it holds no
/// key-derived state at all (only buffered message bytes); after that it holds the running
/// inner hash state, which is zeroized on drop. The pads are read from the key's region on
/// each call that needs them.
///
/// Not `Clone`: [`HmacStream::copy_from`] copies one in place, so the running state is
/// never left behind in a temporary.
pub struct HmacStream {
    alg: HashAlgorithm,
    /// `None` while every absorbed byte is still in `pending`.
    inner: Option<Running>,
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
    pub fn new(alg: HashAlgorithm) -> Self {
        HmacStream {
            alg,
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
            Some(src) => self.inner.insert(Running::new(other.alg)).copy_from(src),
            None => self.inner.zeroize(),
        }
        self.pending.copy_from_slice(&other.pending);
        self.pending_len = other.pending_len;
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
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
                let (ipad, _) = split_pads(self.alg, pads);
                // Built in place: the key-derived state never sits in a temporary.
                let inner = self.inner.insert(Running::new(self.alg));
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
        let (ipad, opad) = split_pads(self.alg, pads);
        if self.inner.is_none() {
            let inner = self.inner.insert(Running::new(self.alg));
            inner.load_pad(ipad);
            inner.update(&self.pending[..self.pending_len]);
        }
        if let Some(inner) = self.inner.as_mut() {
            finish(self.alg, opad, inner, out);
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

    fn reference_sha(alg: HashAlgorithm, msg: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match alg {
            HashAlgorithm::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            HashAlgorithm::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            HashAlgorithm::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }

    fn our_sha(alg: HashAlgorithm, parts: &[&[u8]]) -> Vec<u8> {
        let mut h = Running::new(alg);
        for p in parts {
            h.update(p);
        }
        let mut out = [0u8; MAX_DIGEST_LEN];
        h.finalize_into(&mut out);
        out[..alg.digest_len()].to_vec()
    }

    // The padding, length encoding, buffering and multi-block compression of `Running`,
    // checked independently against the `sha2` crate's own `Digest` implementation.
    #[test]
    fn plain_sha2_matches_the_sha2_crate() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for alg in HashAlgorithm::ALL {
            for len in 0..300 {
                let msg = &data[..len];
                let expect = reference_sha(alg, msg);
                assert_eq!(our_sha(alg, &[msg]), expect, "{alg:?} len {len}");
                for split in [1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, len / 2] {
                    if split <= len {
                        let (a, b) = msg.split_at(split);
                        assert_eq!(our_sha(alg, &[a, b]), expect, "{alg:?} {len}/{split}");
                    }
                }
                // Byte by byte: every buffer position.
                let bytes: Vec<&[u8]> = msg.chunks(1).collect();
                assert_eq!(our_sha(alg, &bytes), expect, "{alg:?} len {len} bytewise");
            }
            // Long inputs: many blocks per compress call, in uneven chunks.
            for len in [1_000usize, 4_113, 65_536, 70_000] {
                let msg = &data[..len];
                let expect = reference_sha(alg, msg);
                assert_eq!(our_sha(alg, &[msg]), expect, "{alg:?} len {len}");
                let chunks: Vec<&[u8]> = msg.chunks(1_237).collect();
                assert_eq!(our_sha(alg, &chunks), expect, "{alg:?} len {len} chunked");
            }
        }
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
        for alg in HashAlgorithm::ALL {
            let mut pads = vec![0u8; alg.pads_len()];
            precompute_pads(alg, b"copy key", &mut pads);
            for cut in [0usize, 10, 127, 128, 129, 300] {
                let mut a = HmacStream::new(alg);
                let p = a.needs_pads(cut).then_some(&pads[..]);
                a.update(p, &msg[..cut]);
                // Copy into streams of every algorithm (the target's own state is replaced).
                for other in HashAlgorithm::ALL {
                    let mut other_pads = vec![0u8; other.pads_len()];
                    precompute_pads(other, b"other key", &mut other_pads);
                    let mut b = HmacStream::new(other);
                    b.update(Some(&other_pads[..]), &[7u8; 200][..other.block_len()]);
                    b.copy_from(&a);
                    assert_eq!(b.algorithm(), alg);
                    let p = b.needs_pads(msg.len() - cut).then_some(&pads[..]);
                    b.update(p, &msg[cut..]);
                    let mut out = [0u8; 64];
                    b.finalize(&pads, &mut out);
                    let mut expect = [0u8; 64];
                    hmac_with_pads(alg, &pads, &msg, &mut expect);
                    assert_eq!(out, expect, "{alg:?} cut {cut} into {other:?}");
                }
                // The original is unaffected by its copies.
                let p = a.needs_pads(5).then_some(&pads[..]);
                a.update(p, &msg[cut..cut + 5]);
                let mut out = [0u8; 64];
                a.finalize(&pads, &mut out);
                let mut expect = [0u8; 64];
                hmac_with_pads(alg, &pads, &msg[..cut + 5], &mut expect);
                assert_eq!(out, expect, "{alg:?} original after cut {cut}");
            }
        }
    }

    #[test]
    fn algorithm_names() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(
            HashAlgorithm::from_name("SHA-256"),
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(
            HashAlgorithm::from_name("Sha-512"),
            Some(HashAlgorithm::Sha512)
        );
        for bad in ["md5", "sha224", "sha", "sha2566", "sha25", "", "sha512/256"] {
            assert_eq!(HashAlgorithm::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn stream_matches_oneshot_for_every_split() {
        let key = b"a key that is long enough";
        let msg: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for alg in HashAlgorithm::ALL {
            let mut pads = vec![0u8; alg.pads_len()];
            precompute_pads(alg, key, &mut pads);
            let mut expect = [0u8; 64];
            hmac_with_pads(alg, &pads, &msg, &mut expect);
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
        for alg in HashAlgorithm::ALL {
            for len in 50..140 {
                let msg = vec![0x61u8; len];
                let one = tag(alg, b"k", &msg);
                let mut pads = vec![0u8; alg.pads_len()];
                precompute_pads(alg, b"k", &mut pads);
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
                assert_eq!(&out[..alg.digest_len()], one.as_slice());
            }
        }
    }
}
