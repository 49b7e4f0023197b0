//! RFC 6962 / RFC 9162 Merkle trees with SHA-256: leaf and node hashing, an
//! append-only frontier, proofs built from stored complete-subtree hashes,
//! and the RFC 9162 proof verification algorithms.
//!
//! A stored node `(level, index)` is the hash of the complete subtree over
//! leaves `[index << level, (index + 1) << level)`. Every such node is stored
//! when it completes, so any root, inclusion or consistency proof needs only
//! O(log n) lookups, never a rescan of the log.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A source of complete-subtree hashes `(level, index)`.
pub trait NodeSource {
    /// The hash of the complete subtree at `level` and `index`.
    fn node(&self, level: u8, index: u64) -> Result<Hash>;
}

/// The right edge of an append-only tree: the roots of its complete
/// subtrees, largest first. Enough to append and to compute the root.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    /// (level, hash), levels strictly decreasing.
    stack: Vec<(u8, Hash)>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of a tree of `size` leaves, read from stored nodes.
    pub fn load(source: &impl NodeSource, size: u64) -> Result<Self> {
        let mut stack = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1u64 << level) != 0 {
                stack.push((level, source.node(level, start >> level)?));
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, stack })
    }

    /// A tree of `size` leaves from its compact range (the roots of its
    /// complete subtrees, largest first: one per set bit of `size`).
    pub fn from_compact(size: u64, hashes: &[Hash]) -> Result<Self> {
        let levels: Vec<u8> = (0..64u8)
            .rev()
            .filter(|l| size & (1u64 << l) != 0)
            .collect();
        if levels.len() != hashes.len() {
            return Err(Error::Invalid(format!(
                "a tree of {size} leaves has {} complete subtrees, not {}",
                levels.len(),
                hashes.len()
            )));
        }
        Ok(Frontier {
            size,
            stack: levels.into_iter().zip(hashes.iter().copied()).collect(),
        })
    }

    /// The compact range: the roots of the complete subtrees, largest first.
    pub fn compact(&self) -> Vec<Hash> {
        self.stack.iter().map(|&(_, h)| h).collect()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; calls `completed(level, index, hash)` for the
    /// leaf and for every subtree it completes, so the caller can store them.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, &Hash)) {
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        completed(0, index, &hash);
        while let Some(&(l, left)) = self.stack.last() {
            if l != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(level, index, &hash);
        }
        self.stack.push((level, hash));
        self.size += 1;
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&(_, last)) => it.fold(last, |acc, (_, left)| node_hash(left, &acc)),
        }
    }
}

/// All complete-subtree hashes of a tree held in memory, for building
/// proofs over a log read from files (no index at hand).
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The tree over these leaf hashes.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(last) = levels.last().filter(|l| l.len() > 1) {
            let next = last
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        MemoryTree { levels }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }
}

impl NodeSource for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| Error::NotFound(format!("Merkle node {level}/{index}")))
    }
}

fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, start + n)`, where `start` is a multiple of the
/// largest power of two not above `n` (as in every RFC 9162 recursion).
fn range_hash(src: &impl NodeSource, start: u64, n: u64) -> Result<Hash> {
    if n.is_power_of_two() {
        let level = n.trailing_zeros() as u8;
        return src.node(level, start >> level);
    }
    let k = largest_power_of_two_below(n);
    Ok(node_hash(
        &range_hash(src, start, k)?,
        &range_hash(src, start + k, n - k)?,
    ))
}

/// The root of the first `size` leaves.
pub fn root(src: &impl NodeSource, size: u64) -> Result<Hash> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(src, 0, size)
}

/// RFC 9162 §2.1.3.1 inclusion proof for leaf `index` in a tree of `size`.
pub fn inclusion_proof(src: &impl NodeSource, index: u64, size: u64) -> Result<Vec<Hash>> {
    if index >= size {
        return Err(Error::Invalid(format!(
            "leaf {index} is not in a tree of size {size}"
        )));
    }
    let mut proof = Vec::new();
    let (mut start, mut n, mut m) = (0u64, size, index);
    while n > 1 {
        let k = largest_power_of_two_below(n);
        if m < k {
            proof.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.4.1 consistency proof between tree sizes `old` and `new`.
pub fn consistency_proof(src: &impl NodeSource, old: u64, new: u64) -> Result<Vec<Hash>> {
    if old > new {
        return Err(Error::Invalid(format!(
            "no consistency proof from size {old} to the smaller size {new}"
        )));
    }
    let mut proof = Vec::new();
    if old == 0 || old == new {
        return Ok(proof);
    }
    let (mut start, mut n, mut m, mut whole) = (0u64, new, old, true);
    while m != n {
        let k = largest_power_of_two_below(n);
        if m <= k {
            proof.push(range_hash(src, start + k, n - k)?);
            n = k;
        } else {
            proof.push(range_hash(src, start, k)?);
            start += k;
            m -= k;
            n -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(src, start, m)?);
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` under `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show the tree of size `old` with root
/// `old_root` is a prefix of the tree of size `new` with root `new_root`?
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Nodes kept in a map, filled through the frontier.
    struct MapNodes(HashMap<(u8, u64), Hash>);

    impl NodeSource for MapNodes {
        fn node(&self, level: u8, index: u64) -> Result<Hash> {
            self.0
                .get(&(level, index))
                .copied()
                .ok_or_else(|| Error::NotFound(format!("node {level}/{index}")))
        }
    }

    fn build(n: u64) -> (Vec<Hash>, MapNodes, Frontier) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut nodes = HashMap::new();
        let mut f = Frontier::new();
        for l in &leaves {
            f.push(*l, |lv, ix, h| {
                nodes.insert((lv, ix), *h);
            });
        }
        (leaves, MapNodes(nodes), f)
    }

    /// RFC 9162 MTH, computed naively from the leaf hashes.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    /// RFC 9162 PATH, naively.
    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    /// RFC 9162 SUBPROOF, naively.
    fn naive_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole {
                vec![]
            } else {
                vec![naive_root(leaves)]
            };
        }
        let k = largest_power_of_two_below(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &leaves[..k], whole);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &leaves[k..], false);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Frontier::new().root(), empty_root());
    }

    proptest! {
        #[test]
        fn roots_and_proofs_match_the_naive_definition(n in 1u64..300, a in 0u64..300, b in 0u64..300) {
            let (leaves, nodes, frontier) = build(n);
            let r = naive_root(&leaves);
            prop_assert_eq!(frontier.root(), r);
            prop_assert_eq!(root(&nodes, n).unwrap(), r);
            prop_assert_eq!(Frontier::load(&nodes, n).unwrap().root(), r);

            let i = a % n;
            let p = inclusion_proof(&nodes, i, n).unwrap();
            prop_assert_eq!(&p, &naive_path(i as usize, &leaves));
            prop_assert!(verify_inclusion(i, n, &leaves[i as usize], &p, &r));
            prop_assert!(!verify_inclusion(i, n, &leaf_hash(b"other"), &p, &r));
            if n > 1 {
                prop_assert!(!verify_inclusion((i + 1) % n, n, &leaves[i as usize], &p, &r));
            }

            let m = b % n + 1;
            let c = consistency_proof(&nodes, m, n).unwrap();
            if m < n {
                prop_assert_eq!(&c, &naive_subproof(m as usize, &leaves, true));
            }
            let mr = naive_root(&leaves[..m as usize]);
            prop_assert!(verify_consistency(m, n, &mr, &r, &c));
            if m < n {
                prop_assert!(!verify_consistency(m, n, &leaf_hash(b"x"), &r, &c));
                prop_assert!(!verify_consistency(m, n, &mr, &leaf_hash(b"x"), &c));
            }
        }
    }

    #[test]
    fn memory_tree_agrees_with_stored_nodes() {
        for n in [1u64, 2, 3, 7, 8, 9, 100] {
            let (leaves, nodes, _) = build(n);
            let t = MemoryTree::from_leaves(leaves);
            assert_eq!(root(&t, n).unwrap(), root(&nodes, n).unwrap());
            assert_eq!(
                inclusion_proof(&t, n / 2, n).unwrap(),
                inclusion_proof(&nodes, n / 2, n).unwrap()
            );
        }
    }

    #[test]
    fn proofs_for_out_of_range_requests_are_errors() {
        let (_, nodes, _) = build(5);
        assert!(inclusion_proof(&nodes, 5, 5).is_err());
        assert!(consistency_proof(&nodes, 6, 5).is_err());
    }
}
