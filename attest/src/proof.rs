//! Offline proofs in C2SP `tlog-proof` form (`c2sp.org/tlog-proof@v1`).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>                     (optional, opaque to tlog-proof)
//! index <leaf index>
//! <base64 inclusion-proof hash>      (one line each, leaf to root)
//!
//! <signed checkpoint note>
//! ```
//!
//! cairn's *record proofs* use `extra` to carry the record's entry and the
//! log's genesis entry, so one file proves one record with nothing else but
//! the identity key's fingerprint (see FORMAT.md §5).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::checkpoint::Checkpoint;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::keyring::KeySet;
use crate::merkle::{self, Hash, MemoryTree};
use crate::record::{Record, KIND_GENESIS};
use crate::verify::LogBytes;

/// The first line of a tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque application data.
    pub extra: Option<Vec<u8>>,
    /// The leaf index (the record's sequence number).
    pub index: u64,
    /// The inclusion proof, leaf to root.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note the proof is against.
    pub checkpoint: Vec<u8>,
}

impl TlogProof {
    /// The proof file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::malformed("tlog-proof", why.to_string());
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let head = std::str::from_utf8(&bytes[..split]).map_err(|_| bad("not UTF-8"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(bad("first line must be c2sp.org/tlog-proof@v1"));
        }
        let extra = match lines.next_if(|l| l.starts_with("extra ")) {
            Some(l) => Some(
                B64.decode(&l["extra ".len()..])
                    .map_err(|_| bad("extra is not base64"))?,
            ),
            None => None,
        };
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .filter(|n| !n.starts_with('+'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("expected an 'index N' line"))?;
        let hashes = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<Hash>>>()?;
        if hashes.len() > 64 {
            return Err(bad("more than 64 proof hashes"));
        }
        Ok(TlogProof {
            extra,
            index,
            hashes,
            checkpoint: bytes[split + 2..].to_vec(),
        })
    }

    /// Checks that `entry` is leaf `index` of the checkpoint, and that the
    /// checkpoint is signed by `keys`. Returns the checkpoint.
    pub fn verify(&self, entry: &[u8], keys: &KeySet) -> Result<Checkpoint> {
        let cp = Checkpoint::open(&self.checkpoint, keys)?;
        if !merkle::verify_inclusion(
            self.index,
            cp.size,
            &merkle::leaf_hash(entry),
            &self.hashes,
            &cp.root,
        ) {
            return Err(Error::Invalid(format!(
                "the entry is not leaf {} of the checkpoint of size {}",
                self.index, cp.size
            )));
        }
        Ok(cp)
    }
}

/// A self-contained proof of one record: a tlog-proof whose `extra` is
/// `u32be(len(genesis)) ‖ genesis entry ‖ record entry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordProof {
    /// The log's genesis entry (record 0), which publishes its keys.
    pub genesis: Vec<u8>,
    /// The proved record's entry.
    pub entry: Vec<u8>,
    /// The inclusion proof and checkpoint.
    pub proof: TlogProof,
}

/// What a verified record proof shows.
#[derive(Clone, Debug)]
pub struct ProvedRecord {
    /// The record.
    pub record: Record,
    /// The checkpoint it is included in.
    pub checkpoint: Checkpoint,
    /// The log's keys (from its genesis record).
    pub keys: KeySet,
}

impl RecordProof {
    /// Builds the proof of record `seq` from a log read from files, against
    /// the largest checkpoint that covers it. The log should have been
    /// verified first ([`crate::verify::verify_log`]).
    pub fn from_log(log: &LogBytes<'_>, keys: &KeySet, seq: u64) -> Result<Self> {
        let n = log.entries.len() as u64;
        if seq >= n {
            return Err(Error::NotFound(format!(
                "record {seq} does not exist (the log has {n} records)"
            )));
        }
        let checkpoint = log
            .checkpoints
            .iter()
            .filter_map(|c| Checkpoint::open(c.bytes, keys).ok().map(|cp| (cp, c.bytes)))
            .filter(|(cp, _)| cp.size > seq && cp.size <= n)
            .max_by_key(|(cp, _)| cp.size);
        let Some((cp, cp_bytes)) = checkpoint else {
            return Err(Error::NotFound(format!(
                "record {seq} is not yet covered by a checkpoint; make one (it happens every 1,000 records, every minute and at shutdown) and try again"
            )));
        };
        let leaves = log.entries[..cp.size as usize]
            .iter()
            .map(|e| merkle::leaf_hash(e.bytes))
            .collect();
        let tree = MemoryTree::from_leaves(leaves);
        if merkle::root(&tree, cp.size)? != cp.root {
            return Err(Error::Invalid(format!(
                "the log does not match its checkpoint of size {}",
                cp.size
            )));
        }
        Ok(RecordProof {
            genesis: log.entries[0].bytes.to_vec(),
            entry: log.entries[seq as usize].bytes.to_vec(),
            proof: TlogProof {
                extra: None,
                index: seq,
                hashes: merkle::inclusion_proof(&tree, seq, cp.size)?,
                checkpoint: cp_bytes.to_vec(),
            },
        })
    }

    /// The proof file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut extra = (self.genesis.len() as u32).to_be_bytes().to_vec();
        extra.extend_from_slice(&self.genesis);
        extra.extend_from_slice(&self.entry);
        TlogProof {
            extra: Some(extra),
            ..self.proof.clone()
        }
        .encode()
    }

    /// Parses a record proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let proof = TlogProof::parse(bytes)?;
        let extra = proof
            .extra
            .as_deref()
            .ok_or_else(|| Error::malformed("record proof", "no extra line with the record"))?;
        let n = extra
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .filter(|n| extra.len() >= 4 + n)
            .ok_or_else(|| Error::malformed("record proof", "extra is truncated"))?;
        Ok(RecordProof {
            genesis: extra[4..4 + n].to_vec(),
            entry: extra[4 + n..].to_vec(),
            proof: TlogProof {
                extra: None,
                ..proof
            },
        })
    }

    /// Verifies the proof: the genesis record and its key certificate, the
    /// identity key against `expected_identity` (a vkey or fingerprint) when
    /// given, the checkpoint's two signatures, the record's inclusion at its
    /// sequence number, and the record's own signature.
    pub fn verify(&self, expected_identity: Option<&str>) -> Result<ProvedRecord> {
        let genesis = Entry::parse(&self.genesis)?;
        if genesis.record.kind != KIND_GENESIS || genesis.record.seq != 0 {
            return Err(Error::Invalid(
                "the proof's first entry is not a genesis record".into(),
            ));
        }
        let keys = KeySet::from_genesis(&genesis.record.body)?;
        genesis.verify(&keys.operational)?;
        if let Some(exp) = expected_identity.map(str::trim) {
            if exp != keys.identity.vkey()
                && !exp.eq_ignore_ascii_case(&keys.identity.fingerprint())
            {
                return Err(Error::Invalid(format!(
                    "the log's identity key (fingerprint {}) is not the expected key",
                    keys.identity.fingerprint()
                )));
            }
        }
        let entry = Entry::parse(&self.entry)?;
        entry.verify(&keys.operational)?;
        if entry.record.seq != self.proof.index || entry.record.log != keys.origin() {
            return Err(Error::Invalid(format!(
                "the record is number {} of log {:?}, but the proof is for leaf {} of {:?}",
                entry.record.seq,
                entry.record.log,
                self.proof.index,
                keys.origin()
            )));
        }
        let checkpoint = self.proof.verify(&self.entry, &keys)?;
        Ok(ProvedRecord {
            record: entry.record,
            checkpoint,
            keys,
        })
    }
}
