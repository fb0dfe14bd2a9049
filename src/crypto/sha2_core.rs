//! SHA-256/384/512 over secret input, on the compression functions that `sha2` exposes
//! (`compress256`/`compress512`): the core of HMAC and HKDF ([`super::hmac`]) and of
//! Ed25519's seed and nonce hashes ([`SecretHash`]).
//!
//! Unlike the `sha2` hashers, every state here can start from an arbitrary midstate (the
//! precomputed HMAC pads in a key's region) and is zeroized on drop, so no secret-derived
//! hash state outlives the call that made it.

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
    pub(super) fn state_len(self) -> usize {
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
pub(super) const MAX_BLOCK_LEN: usize = 128;

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
pub(super) enum State {
    S256([u32; 8]),
    S512([u64; 8]),
}

impl State {
    pub(super) fn iv(alg: HashAlgorithm) -> State {
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
    pub(super) fn compress(&mut self, data: &[u8]) {
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
    pub(super) fn store(&self, out: &mut [u8]) {
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
pub(super) struct Running {
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
    pub(super) fn new(alg: HashAlgorithm) -> Self {
        Running {
            alg,
            state: State::iv(alg),
            buf: [0u8; MAX_BLOCK_LEN],
            buf_len: 0,
            total: 0,
        }
    }

    /// The algorithm.
    pub(super) fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// Become an exact copy of `other`, writing into this value's own memory (no
    /// temporary copy of the state is made).
    pub(super) fn copy_from(&mut self, other: &Running) {
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
    pub(super) fn load_pad(&mut self, pad: &[u8]) {
        self.state.load(pad);
        self.buf_len = 0;
        self.total = self.alg.block_len() as u128;
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
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
    pub(super) fn finalize_into(&mut self, out: &mut [u8]) {
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
/// buffer are zeroized on drop, unlike the `sha2` hashers. The same core as HMAC
/// ([`super::hmac`]).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
