//! The Merkle tree of RFC 6962 section 2.1 over the lines of a log, kept as a compact
//! range (the roots of the perfect subtrees of the leaves so far, largest first): adding a
//! leaf and computing the root take `O(log n)` time and memory, so the writer and the
//! streaming verifier never hold the whole tree. Also inclusion proofs (section 2.1.1) and
//! their verification (RFC 9162 section 2.1.3.2).

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || line)`.
pub fn leaf_hash(line: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(line);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The roots of the perfect subtrees covering leaves `0..size`, largest first (one per set
/// bit of `size`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    stack: Vec<Hash>,
}

impl CompactRange {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A range from its parts; `None` unless `hashes` has one hash per set bit of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(CompactRange {
            size,
            stack: hashes,
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.stack
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            let left = self.stack.pop().unwrap_or_default();
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// The tree head: `SHA-256()` for no leaves, else the RFC 6962 root.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        match it.next() {
            None => Sha256::digest([]).into(),
            Some(last) => it.fold(*last, |r, h| node_hash(h, &r)),
        }
    }
}

/// The leaf ranges `[start, end)` whose tree heads make up the inclusion proof of leaf `m`
/// in a tree of `n` leaves, in proof order (RFC 6962 section 2.1.1, `PATH(m, D[n])`).
pub fn proof_ranges(m: u64, n: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, n, m);
    // Walk down from the root, remembering the sibling range at each level.
    while hi - lo > 1 {
        let k = largest_power_of_two_below(hi - lo);
        if m < k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    out.reverse();
    out
}

fn largest_power_of_two_below(n: u64) -> u64 {
    // n >= 2
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Check an inclusion proof of the leaf hash `leaf` at index `m` in a tree of `n` leaves
/// with root `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, m: u64, n: u64, proof: &[Hash], root: &Hash) -> bool {
    if m >= n {
        return false;
    }
    let (mut fnode, mut snode) = (m, n - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 MTH, recursively, as the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn compact_range_matches_recursive_definition() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut cr = CompactRange::new();
        assert_eq!(cr.root(), mth(&[]));
        for n in 1..=leaves.len() {
            cr.push(leaves[n - 1]);
            assert_eq!(cr.root(), mth(&leaves[..n]), "size {n}");
            assert_eq!(cr.hashes().len(), n.count_ones() as usize);
        }
    }

    #[test]
    fn inclusion_proofs_verify() {
        let leaves: Vec<Hash> = (0..23u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() as u64 {
            let root = mth(&leaves[..n as usize]);
            for m in 0..n {
                let proof: Vec<Hash> = proof_ranges(m, n)
                    .iter()
                    .map(|&(a, b)| mth(&leaves[a as usize..b as usize]))
                    .collect();
                assert!(verify_inclusion(&leaves[m as usize], m, n, &proof, &root));
                let other = leaves[((m + 1) % n) as usize];
                if n > 1 {
                    assert!(!verify_inclusion(&other, m, n, &proof, &root));
                }
            }
        }
    }
}
