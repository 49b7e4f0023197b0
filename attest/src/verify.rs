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
    /// Entries examined.
    pub records: u64,
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
    let rec = |i: usize| Subject::Record {
        seq: i as u64,
        offset: log.entries.get(i).map(|e| e.offset).unwrap_or(0),
    };

    // The genesis record names the keys everything else is checked against.
    let keys = match log.entries.first() {
        None => {
            findings.push(Finding {
                subject: Subject::Log,
                why: "the log holds no records".into(),
            });
            None
        }
        Some(g) => match genesis_keys(g.bytes) {
            Ok(k) => Some(k),
            Err(why) => {
                findings.push(Finding {
                    subject: rec(0),
                    why,
                });
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
    while want.next_if(|&&w| w == 0).is_some() {
        roots.push((0, frontier.root()));
    }
    let mut prev_hash: Option<RecordHash> = None;
    for (i, (s, (c, leaf))) in log.entries.iter().zip(&checked).enumerate() {
        match c {
            Err(why) => findings.push(Finding {
                subject: rec(i),
                why: why.clone(),
            }),
            Ok(c) => {
                let expected_prev = if i == 0 {
                    Some(RecordHash::default())
                } else {
                    prev_hash
                };
                let problem = if c.seq != i as u64 {
                    Some(format!("has sequence number {} where {i} was expected (records missing, added or reordered)", c.seq))
                } else if expected_prev.is_some() && c.prev != expected_prev {
                    Some(format!(
                        "its chain link does not match the hash of record {}",
                        i.saturating_sub(1)
                    ))
                } else if origin.as_deref().is_some_and(|o| o != c.log) {
                    Some(format!("belongs to log {:?}, not this one", c.log))
                } else if (i == 0) != (c.kind == KIND_GENESIS) {
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
        frontier.push(*leaf, |_, _, _| {});
        while want.next_if(|&&w| w == frontier.size()).is_some() {
            roots.push((frontier.size(), frontier.root()));
        }
    }

    let n = log.entries.len() as u64;
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
    let genesis = log
        .entries
        .first()
        .ok_or_else(|| crate::Error::Invalid("the log is empty".into()))?;
    let keys = KeySet::from_genesis(&Entry::parse(genesis.bytes)?.record.body)?;
    let cp = Checkpoint::open(earlier, &keys)?;
    if cp.size > log.entries.len() as u64 {
        return Err(crate::Error::Invalid(format!(
            "the earlier checkpoint covers {} records, this log holds {}: records were removed",
            cp.size,
            log.entries.len()
        )));
    }
    let mut frontier = Frontier::new();
    for e in &log.entries[..cp.size as usize] {
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
