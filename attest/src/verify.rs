//! Pure verification of a log: bytes in, verdict out. Every verifier (the
//! CLI on a ledger directory or an export, the daemon's self-check) goes
//! through [`verify_log`], so they share one definition of "valid".
//!
//! Checked: the genesis record and its key certificate; every entry's
//! storage checksum, syntax and ML-DSA-65 signature; sequence continuity;
//! every chain link; every checkpoint's two signatures, origin, size and
//! Merkle root; checkpoints never shrinking. Because every checkpoint root is
//! recomputed from the same leaves, all checkpoints are proved consistent
//! views of one append-only log.

use rayon::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::entry::Entry;
use crate::keyring::KeySet;
use crate::merkle::{self, Frontier, Hash};
use crate::note::Note;
use crate::record::{RecordHash, KIND_GENESIS};

/// One stored item (an entry or a checkpoint) as a container holds it.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Whether the container's own checksum over them matched.
    pub intact: bool,
    /// Where it is in its container (a byte offset), for messages.
    pub offset: u64,
}

/// A log as bytes, ready to verify.
#[derive(Debug, Default)]
pub struct LogBytes<'a> {
    /// Entries in stored order.
    pub entries: Vec<Stored<'a>>,
    /// Signed checkpoints in stored order.
    pub checkpoints: Vec<Stored<'a>>,
    /// Damage the container reader found (e.g. an unreadable frame).
    pub damage: Vec<Finding>,
    /// For an incremental bundle (FORMAT.md §9): the records before the
    /// stored ones, vouched for by a signed checkpoint. `entries` then
    /// starts with the predecessor, the last record that checkpoint covers.
    pub prefix: Option<Prefix<'a>>,
}

/// The records a log's stored entries continue, as an incremental bundle
/// carries them: the genesis record (for the keys), the signed checkpoint
/// of the first `F` records, its compact range of leaves, and the inclusion
/// proof of record `F-1` (the first stored entry) in it.
#[derive(Debug, Clone)]
pub struct Prefix<'a> {
    /// Record 0, as stored.
    pub genesis: Stored<'a>,
    /// The signed checkpoint of the first `F` records.
    pub checkpoint: &'a [u8],
    /// The roots of the complete subtrees of those `F` leaves, largest first.
    pub frontier: Vec<Hash>,
    /// RFC 9162 inclusion proof of leaf `F-1` in the tree of size `F`.
    pub predecessor_proof: Vec<Hash>,
}

/// What the verifier should trust beyond the log itself.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The identity key the log must have: a verifier key (`name+id+key`)
    /// or its SHA-256 fingerprint in hex. Without it the genesis record's
    /// key is reported for the user to compare with a published one.
    pub expected_identity: Option<String>,
}

/// What a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// The entry at this position (its sequence number if the log is sound).
    Record {
        /// Position in the log.
        seq: u64,
        /// Byte offset in its container.
        offset: u64,
    },
    /// The checkpoint at this position among the checkpoints.
    Checkpoint {
        /// Position among checkpoints.
        index: usize,
        /// Byte offset in its container.
        offset: u64,
    },
    /// A place in a container file.
    Storage {
        /// Which file.
        file: String,
        /// Byte offset.
        offset: u64,
    },
    /// A file of an export bundle as a whole.
    File {
        /// Its name in the bundle.
        file: String,
    },
    /// The log as a whole.
    Log,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Record { seq, offset } => write!(f, "record {seq} (offset {offset})"),
            Subject::Checkpoint { index, offset } => {
                write!(f, "checkpoint #{index} (offset {offset})")
            }
            Subject::Storage { file, offset } => write!(f, "{file} at offset {offset}"),
            Subject::File { file } => f.write_str(file),
            Subject::Log => f.write_str("log"),
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Where.
    pub subject: Subject,
    /// Why it fails.
    pub why: String,
}

/// The verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The log origin, when the genesis record could be read.
    pub origin: Option<String>,
    /// The identity key's verifier key and fingerprint, when known.
    pub identity: Option<(String, String)>,
    /// Records the log holds (for an incremental bundle, counting those
    /// before `from` that its previous checkpoint vouches for).
    pub records: u64,
    /// The first record stored in full (0, or `F` of an incremental
    /// bundle).
    pub from: u64,
    /// Checkpoints examined.
    pub checkpoints: u64,
    /// Size covered by the largest valid checkpoint.
    pub checkpointed_size: u64,
    /// Merkle root over all entries, hex.
    pub root: String,
    /// Problems, in log order; empty means the log verifies.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// Records after the last checkpoint: valid, but not yet covered by a
    /// signed root, so their removal could not be detected.
    pub fn uncovered(&self) -> u64 {
        self.records - self.checkpointed_size
    }
}

struct Checked {
    hash: RecordHash,
    prev: Option<RecordHash>,
    seq: u64,
    log: String,
    kind: String,
}

/// Verifies a log. Pure: no I/O, no clock.
pub fn verify_log(log: &LogBytes<'_>, options: &Options) -> Report {
    let mut findings = log.damage.clone();
    // The sequence number of the first stored entry: 0, or the
    // predecessor's in an incremental bundle (as its previous checkpoint
    // says; checked below).
    let base = log.prefix.as_ref().map_or(0, |p| {
        Note::parse(p.checkpoint)
            .and_then(|n| Checkpoint::parse_text(n.text))
            .map_or(0, |cp| cp.size.saturating_sub(1))
    });
    let rec = |i: usize| Subject::Record {
        seq: base + i as u64,
        offset: log.entries.get(i).map(|e| e.offset).unwrap_or(0),
    };

    // The genesis record names the keys everything else is checked against.
    let genesis = match &log.prefix {
        Some(p) => Some((&p.genesis, Subject::Log)),
        None => log.entries.first().map(|g| (g, rec(0))),
    };
    let keys = match genesis {
        None => {
            findings.push(Finding {
                subject: Subject::Log,
                why: "the log holds no records".into(),
            });
            None
        }
        Some((g, subject)) => match genesis_keys(g.bytes) {
            Ok(k) => Some(k),
            Err(why) => {
                findings.push(Finding { subject, why });
                None
            }
        },
    };
    if let (Some(k), Some(exp)) = (&keys, &options.expected_identity) {
        let exp = exp.trim();
        if exp != k.identity.vkey() && !exp.eq_ignore_ascii_case(&k.identity.fingerprint()) {
            findings.push(Finding {
                subject: Subject::Log,
                why: format!(
                    "the log's identity key (fingerprint {}) is not the expected key",
                    k.identity.fingerprint()
                ),
            });
        }
    }

    // Per-entry checks in parallel: syntax and signature.
    let checked: Vec<(Result<Checked, String>, Hash)> = log
        .entries
        .par_iter()
        .map(|s| (check_entry(s, keys.as_ref()), merkle::leaf_hash(s.bytes)))
        .collect();

    // Sequential: sequence, chain, origin; Merkle leaves; checkpoint roots.
    let origin = keys.as_ref().map(|k| k.origin().to_string());
    let mut cps: Vec<(usize, Stored<'_>, Result<Checkpoint, String>)> = log
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, s)| (i, *s, open_checkpoint(s, keys.as_ref())))
        .collect();
    let mut wanted: Vec<u64> = cps
        .iter()
        .filter_map(|(_, _, c)| c.as_ref().ok().map(|c| c.size))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut roots: Vec<(u64, Hash)> = Vec::with_capacity(wanted.len());
    let mut want = wanted.iter().peekable();
    let mut frontier = Frontier::new();
    if let Some(p) = &log.prefix {
        match check_prefix(p, keys.as_ref(), log.entries.first()) {
            Ok(f) => frontier = f,
            Err(why) => findings.push(Finding {
                subject: Subject::Log,
                why,
            }),
        }
    }
    while let Some(&w) = want.next_if(|&&w| w <= frontier.size()) {
        if w == frontier.size() {
            roots.push((w, frontier.root()));
        }
    }
    let mut prev_hash: Option<RecordHash> = None;
    for (i, (s, (c, leaf))) in log.entries.iter().zip(&checked).enumerate() {
        match c {
            Err(why) => findings.push(Finding {
                subject: rec(i),
                why: why.clone(),
            }),
            Ok(c) => {
                let seq = base + i as u64;
                // A full log's first record links to nothing; an
                // incremental bundle's predecessor links to a record it
                // does not hold (the previous checkpoint vouches for it).
                let expected_prev = match (i, &log.prefix) {
                    (0, None) => Some(RecordHash::default()),
                    (0, Some(_)) => None,
                    _ => prev_hash,
                };
                let problem = if c.seq != seq {
                    Some(format!("has sequence number {} where {seq} was expected (records missing, added or reordered)", c.seq))
                } else if expected_prev.is_some() && c.prev != expected_prev {
                    Some(format!(
                        "its chain link does not match the hash of record {}",
                        seq.saturating_sub(1)
                    ))
                } else if origin.as_deref().is_some_and(|o| o != c.log) {
                    Some(format!("belongs to log {:?}, not this one", c.log))
                } else if (seq == 0) != (c.kind == KIND_GENESIS) {
                    Some(format!("kind {:?} is out of place", c.kind))
                } else {
                    None
                };
                if let Some(why) = problem {
                    findings.push(Finding {
                        subject: rec(i),
                        why,
                    });
                }
            }
        }
        // The next link is checked against what is stored, even if damaged.
        prev_hash = c
            .as_ref()
            .ok()
            .map(|c| c.hash)
            .or_else(|| Entry::parse(s.bytes).ok().map(|e| e.hash()));
        // The predecessor's leaf is already in the prefix's frontier.
        if i > 0 || log.prefix.is_none() {
            frontier.push(*leaf, |_, _, _| {});
        }
        while want.next_if(|&&w| w == frontier.size()).is_some() {
            roots.push((frontier.size(), frontier.root()));
        }
    }

    let n = base + log.entries.len() as u64;
    let mut checkpointed = 0u64;
    let mut last_size = 0u64;
    for (i, s, c) in cps.drain(..) {
        let subject = Subject::Checkpoint {
            index: i,
            offset: s.offset,
        };
        let cp = match c {
            Ok(cp) => cp,
            Err(why) => {
                findings.push(Finding { subject, why });
                continue;
            }
        };
        let problem = if cp.size > n {
            Some(format!(
                "covers {} records but only {n} are present: records were removed",
                cp.size
            ))
        } else if cp.size < last_size {
            Some(format!(
                "size {} is smaller than an earlier checkpoint's {last_size}",
                cp.size
            ))
        } else if roots.iter().find(|(sz, _)| *sz == cp.size).map(|(_, r)| r) != Some(&cp.root) {
            Some(format!(
                "its root does not match the Merkle root of the first {} records",
                cp.size
            ))
        } else {
            None
        };
        match problem {
            Some(why) => findings.push(Finding { subject, why }),
            None => {
                checkpointed = checkpointed.max(cp.size);
                last_size = cp.size;
            }
        }
    }
    findings.sort_by_key(|f| match f.subject {
        Subject::Log => (0, 0),
        Subject::Record { seq, .. } => (1, seq),
        Subject::Storage { offset, .. } => (2, offset),
        Subject::Checkpoint { index, .. } => (3, index as u64),
        Subject::File { .. } => (4, 0),
    });

    Report {
        identity: keys
            .as_ref()
            .map(|k| (k.identity.vkey(), k.identity.fingerprint())),
        origin,
        records: n,
        from: log.prefix.as_ref().map_or(0, |_| base + 1),
        checkpoints: log.checkpoints.len() as u64,
        checkpointed_size: checkpointed,
        root: hex::encode(frontier.root()),
        findings,
    }
}

fn genesis_keys(bytes: &[u8]) -> Result<KeySet, String> {
    let e = Entry::parse(bytes).map_err(|e| e.to_string())?;
    if e.record.kind != KIND_GENESIS {
        return Err(format!(
            "the first record must be {KIND_GENESIS}, found {:?}",
            e.record.kind
        ));
    }
    KeySet::from_genesis(&e.record.body).map_err(|e| e.to_string())
}

fn check_entry(s: &Stored<'_>, keys: Option<&KeySet>) -> Result<Checked, String> {
    if !s.intact {
        return Err("stored checksum does not match: the bytes were altered or damaged".into());
    }
    let e = Entry::parse(s.bytes).map_err(|e| e.to_string())?;
    let keys = keys.ok_or("no trusted keys (the genesis record is unusable)")?;
    e.verify(&keys.operational).map_err(|_| {
        if e.note
            .signatures
            .iter()
            .any(|sig| sig.is_by(&keys.operational))
        {
            "the ML-DSA-65 signature does not verify".to_string()
        } else {
            "not signed by the log's operational key".to_string()
        }
    })?;
    Ok(Checked {
        hash: e.hash(),
        prev: e.record.prev_hash().ok(),
        seq: e.record.seq,
        log: e.record.log,
        kind: e.record.kind,
    })
}

/// Checks an incremental bundle's prefix (FORMAT.md §9) and returns the
/// tree of its `F` records: the previous checkpoint verifies under the
/// keys, the frontier folds to its root, and the predecessor (the first
/// stored entry) is its leaf `F-1`.
fn check_prefix(
    p: &Prefix<'_>,
    keys: Option<&KeySet>,
    predecessor: Option<&Stored<'_>>,
) -> Result<Frontier, String> {
    let keys = keys.ok_or("no trusted keys (the genesis record is unusable)")?;
    let cp = Checkpoint::open(p.checkpoint, keys)
        .map_err(|e| format!("the previous checkpoint does not verify: {e}"))?;
    if cp.size == 0 {
        return Err("the previous checkpoint covers no records".into());
    }
    let frontier = Frontier::from_compact(cp.size, &p.frontier)
        .map_err(|e| format!("the frontier does not fit the previous checkpoint: {e}"))?;
    if frontier.root() != cp.root {
        return Err(format!(
            "the frontier is not the previous checkpoint's tree of {} records",
            cp.size
        ));
    }
    let predecessor = predecessor.ok_or("the bundle holds no records")?;
    let leaf = merkle::leaf_hash(predecessor.bytes);
    if !merkle::verify_inclusion(cp.size - 1, cp.size, &leaf, &p.predecessor_proof, &cp.root) {
        return Err(format!(
            "the first stored record is not record {} of the previous checkpoint",
            cp.size - 1
        ));
    }
    Ok(frontier)
}

fn open_checkpoint(s: &Stored<'_>, keys: Option<&KeySet>) -> Result<Checkpoint, String> {
    if !s.intact {
        return Err("stored checksum does not match: the bytes were altered or damaged".into());
    }
    let keys = keys.ok_or("no trusted keys (the genesis record is unusable)")?;
    Checkpoint::open(s.bytes, keys).map_err(|e| e.to_string())
}

/// Checks that `log` extends an earlier checkpoint of the same log (for
/// instance an earlier export's): its signatures verify under the log's
/// keys (from the genesis record), it covers no more records than the log
/// holds, and the log's Merkle root at its size is its root. A log
/// rewritten since — even re-signed by someone holding the keys — fails.
/// Returns the earlier checkpoint.
pub fn verify_extends(log: &LogBytes<'_>, earlier: &[u8]) -> crate::Result<Checkpoint> {
    let genesis = match &log.prefix {
        Some(p) => &p.genesis,
        None => log
            .entries
            .first()
            .ok_or_else(|| crate::Error::Invalid("the log is empty".into()))?,
    };
    let keys = KeySet::from_genesis(&Entry::parse(genesis.bytes)?.record.body)?;
    let cp = Checkpoint::open(earlier, &keys)?;
    // The tree the stored entries extend, and the first entry to append.
    let (mut frontier, skip) = match &log.prefix {
        None => (Frontier::new(), 0),
        Some(p) => {
            let f = Note::parse(p.checkpoint)
                .and_then(|n| Checkpoint::parse_text(n.text))?
                .size;
            if cp.size < f {
                return Err(crate::Error::Invalid(format!(
                    "this bundle holds records from {f} on; check the earlier checkpoint of size {} against the bundle that holds it",
                    cp.size
                )));
            }
            (Frontier::from_compact(f, &p.frontier)?, 1)
        }
    };
    let held = frontier.size() + (log.entries.len() as u64).saturating_sub(skip as u64);
    if cp.size > held {
        return Err(crate::Error::Invalid(format!(
            "the earlier checkpoint covers {} records, this log holds {held}: records were removed",
            cp.size
        )));
    }
    for e in log.entries.iter().skip(skip) {
        if frontier.size() == cp.size {
            break;
        }
        frontier.push(merkle::leaf_hash(e.bytes), |_, _, _| {});
    }
    if frontier.root() != cp.root {
        return Err(crate::Error::Invalid(format!(
            "this log's first {} records are not the ones the earlier checkpoint signed: the log was rewritten",
            cp.size
        )));
    }
    Ok(cp)
}
