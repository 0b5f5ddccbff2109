//! RFC 6962 transparency log of issued and revoked certificates, sans-IO.
//!
//! Leaves are the canonical encoding of a [`LogEntry`]; leaf and node hashing follow RFC 6962
//! (SHA-256 with 0x00 / 0x01 prefixes, via the `ct-merkle` crate), so inclusion and consistency
//! proofs can be checked offline by anyone holding a root, e.g. the root anchored on chain.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 value.
pub type Hash32 = [u8; 32];

/// Version tag of the leaf encoding.
const LEAF_VERSION: u8 = 1;

/// What a log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeafKind {
    /// A certificate was issued.
    Issued,
    /// A certificate was revoked.
    Revoked,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Issued or revoked.
    pub kind: LeafKind,
    /// SHA-256 of the certificate DER.
    pub cert_hash: Hash32,
    /// Certificate serial number bytes (at most 20).
    pub serial: Vec<u8>,
    /// Unix seconds at which the CA logged the event.
    pub timestamp: u64,
}

impl LogEntry {
    /// Canonical encoding: `version(1) | kind(1) | cert_hash(32) | serial_len(1) | serial |
    /// timestamp(8, big endian)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(43 + self.serial.len());
        out.push(LEAF_VERSION);
        out.push(match self.kind {
            LeafKind::Issued => 0,
            LeafKind::Revoked => 1,
        });
        out.extend_from_slice(&self.cert_hash);
        out.push(self.serial.len() as u8);
        out.extend_from_slice(&self.serial);
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out
    }

    /// Strict inverse of [`LogEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        let (&kind, rest) = rest.split_first()?;
        if version != LEAF_VERSION || rest.len() < 33 {
            return None;
        }
        let kind = match kind {
            0 => LeafKind::Issued,
            1 => LeafKind::Revoked,
            _ => return None,
        };
        let cert_hash: Hash32 = rest[..32].try_into().ok()?;
        let serial_len = rest[32] as usize;
        let rest = &rest[33..];
        if rest.len() != serial_len + 8 {
            return None;
        }
        let timestamp = u64::from_be_bytes(rest[serial_len..].try_into().ok()?);
        Some(LogEntry {
            kind,
            cert_hash,
            serial: rest[..serial_len].to_vec(),
            timestamp,
        })
    }
}

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    /// The requested tree size is zero or larger than the log.
    #[error("tree_size {0} out of range (log has {1} leaves)")]
    TreeSize(u64, u64),
    /// The leaf index is not below the tree size.
    #[error("leaf_index {0} not below tree_size {1}")]
    LeafIndex(u64, u64),
    /// `from` must be at least 1 and at most `to`.
    #[error("consistency range {0}..{1} invalid")]
    Range(u64, u64),
}

/// The append-only log, kept in memory and rebuilt from storage on start.
#[derive(Default)]
pub struct TransparencyLog {
    tree: MemoryBackedTree<Sha256, Vec<u8>>,
}

impl TransparencyLog {
    /// Rebuilds a log from its encoded leaves, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut tree = MemoryBackedTree::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        TransparencyLog { tree }
    }

    /// Appends an entry and returns its leaf index.
    pub fn append(&mut self, entry: &LogEntry) -> u64 {
        self.tree.push(entry.encode());
        self.tree.len() - 1
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    /// Whether the log has no leaves.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The encoded leaf at `index`.
    pub fn leaf(&self, index: u64) -> Option<&[u8]> {
        self.tree
            .get(usize::try_from(index).ok()?)
            .map(Vec::as_slice)
    }

    /// Index of the first entry of `kind` for the certificate with this hash.
    pub fn find(&self, cert_hash: &Hash32, kind: LeafKind) -> Option<u64> {
        self.tree
            .items()
            .iter()
            .position(|leaf| {
                LogEntry::decode(leaf).is_some_and(|e| e.kind == kind && &e.cert_hash == cert_hash)
            })
            .map(|i| i as u64)
    }

    /// RFC 6962 Merkle Tree Hash of the whole log.
    pub fn root(&self) -> Hash32 {
        if self.tree.is_empty() {
            return Sha256::digest([]).into();
        }
        (*self.tree.root().as_bytes()).into()
    }

    /// Root of the first `tree_size` leaves.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash32, LogError> {
        self.with_prefix(tree_size, |t| (*t.root().as_bytes()).into())
    }

    /// Audit path for leaf `index` in the tree of the first `tree_size` leaves.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash32>, LogError> {
        if index >= tree_size {
            return Err(LogError::LeafIndex(index, tree_size));
        }
        self.with_prefix(tree_size, |t| {
            split_hashes(t.prove_inclusion(index as usize).as_bytes())
        })
    }

    /// Consistency proof between tree sizes `from` and `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash32>, LogError> {
        if from == 0 || from > to {
            return Err(LogError::Range(from, to));
        }
        self.with_prefix(to, |t| {
            split_hashes(t.prove_consistency((to - from) as usize).as_bytes())
        })
    }

    fn with_prefix<R>(
        &self,
        tree_size: u64,
        f: impl FnOnce(&MemoryBackedTree<Sha256, Vec<u8>>) -> R,
    ) -> Result<R, LogError> {
        if tree_size == 0 || tree_size > self.len() {
            return Err(LogError::TreeSize(tree_size, self.len()));
        }
        if tree_size == self.len() {
            return Ok(f(&self.tree));
        }
        // Proofs against an older (e.g. anchored) size need that prefix tree; the log is small
        // enough that rebuilding it is cheaper than keeping every historical tree.
        let prefix = TransparencyLog::from_leaves(self.tree.items()[..tree_size as usize].to_vec());
        Ok(f(&prefix.tree))
    }
}

fn split_hashes(bytes: &[u8]) -> Vec<Hash32> {
    bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("chunks_exact yields 32 bytes"))
        .collect()
}

fn root_hash(root: &Hash32, tree_size: u64) -> RootHash<Sha256> {
    RootHash::new((*root).into(), tree_size)
}

/// Checks that `entry` is leaf `index` of the tree of `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    entry: &LogEntry,
    index: u64,
    tree_size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> bool {
    let proof = InclusionProof::<Sha256>::from_bytes(proof.concat());
    root_hash(root, tree_size)
        .verify_inclusion(&entry.encode(), index, &proof)
        .is_ok()
}

/// Checks that the tree `(from, old_root)` is a prefix of the tree `(to, new_root)`.
pub fn verify_consistency(
    from: u64,
    old_root: &Hash32,
    to: u64,
    new_root: &Hash32,
    proof: &[Hash32],
) -> bool {
    let Ok(proof) = ConsistencyProof::<Sha256>::try_from_bytes(proof.concat()) else {
        return false;
    };
    root_hash(new_root, to)
        .verify_consistency(&root_hash(old_root, from), &proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> LogEntry {
        LogEntry {
            kind: if i % 3 == 0 {
                LeafKind::Revoked
            } else {
                LeafKind::Issued
            },
            cert_hash: [i; 32],
            serial: vec![i, 1, 2],
            timestamp: 1_700_000_000 + i as u64,
        }
    }

    #[test]
    fn leaf_encoding_round_trips_and_is_strict() {
        let e = entry(5);
        let enc = e.encode();
        assert_eq!(LogEntry::decode(&enc), Some(e));
        assert_eq!(LogEntry::decode(&enc[..enc.len() - 1]), None);
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        // RFC 6962 §2.1: MTH({}) = SHA-256().
        assert_eq!(
            hex::encode(TransparencyLog::default().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_proofs_verify_for_every_size_and_index() {
        let mut log = TransparencyLog::default();
        for i in 0..13 {
            log.append(&entry(i));
        }
        for size in 1..=13u64 {
            let root = log.root_at(size).unwrap();
            for idx in 0..size {
                let proof = log.inclusion_proof(idx, size).unwrap();
                assert!(verify_inclusion(
                    &entry(idx as u8),
                    idx,
                    size,
                    &proof,
                    &root
                ));
                // the same proof must not prove another entry
                assert!(!verify_inclusion(&entry(200), idx, size, &proof, &root));
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_detect_rewrites() {
        let mut log = TransparencyLog::default();
        for i in 0..9 {
            log.append(&entry(i));
        }
        for from in 1..=9u64 {
            for to in from..=9 {
                let proof = log.consistency_proof(from, to).unwrap();
                let old = log.root_at(from).unwrap();
                let new = log.root_at(to).unwrap();
                assert!(verify_consistency(from, &old, to, &new, &proof));
            }
        }
        // a forked history is detected
        let mut forked = TransparencyLog::default();
        for i in 0..9 {
            forked.append(&entry(if i == 2 { 99 } else { i }));
        }
        let proof = log.consistency_proof(4, 9).unwrap();
        assert!(!verify_consistency(
            4,
            &forked.root_at(4).unwrap(),
            9,
            &log.root(),
            &proof
        ));
    }

    #[test]
    fn bad_ranges_are_errors_not_panics() {
        let mut log = TransparencyLog::default();
        log.append(&entry(1));
        assert_eq!(log.inclusion_proof(1, 1), Err(LogError::LeafIndex(1, 1)));
        assert_eq!(log.inclusion_proof(0, 2), Err(LogError::TreeSize(2, 1)));
        assert_eq!(log.consistency_proof(0, 1), Err(LogError::Range(0, 1)));
        assert_eq!(log.find(&[1; 32], LeafKind::Issued), Some(0));
        assert_eq!(log.find(&[1; 32], LeafKind::Revoked), None);
    }
}
