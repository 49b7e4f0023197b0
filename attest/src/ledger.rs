//! The ledger: a directory holding the durable journals of entries and
//! checkpoints, and a sled database of everything derived from them.
//!
//! ```text
//! DIR/records.journal      entries, fdatasync'd in groups: the truth
//! DIR/checkpoints.journal  signed checkpoints, fdatasync'd
//! DIR/payloads.store       salts and payloads, fdatasync'd with their
//!                          records, erasable (see [`crate::payload_store`])
//! DIR/index/               sled: entry, checkpoint and payload locations,
//!                          Merkle nodes: derived data only
//! DIR/keys/                secret keys (0600) when kept in software
//! ```
//!
//! Appends are pipelined: a caller takes the next sequence number and the
//! chain hash under a short lock and hands the record text to the signing
//! threads (signing is the cost, so records are signed in parallel). The
//! thread that finishes a signature queues the entry and, unless another
//! thread is writing already, becomes the writer: it commits the contiguous
//! groups it finds with one write and one `fdatasync` each, answers every
//! caller of the group, then indexes it, until no contiguous entry is
//! left. Indexing after the answer takes the sled update off the caller's
//! path; a reader meanwhile waits for it, so every read sees every
//! acknowledged record. A lone record thus passes two threads only: its
//! signer and its caller. Checkpoints are signed and written by a thread
//! of their own, so a slow identity key (a device) never delays records.
//! Nothing is
//! acknowledged before it is durable. If a signature fails, every later
//! record chained to it is refused and the sequence rewinds; if a durable
//! write fails, the ledger refuses all further appends until it is
//! reopened.
//!
//! On open the index is reconciled with the journals: complete frames past
//! the indexed end are checked (sequence, chain, signature) and indexed; a
//! torn tail is saved aside and cut (see [`crate::journal`]). The payload
//! store is reconciled likewise, after the records: payloads of records
//! that never became durable are cut with any torn tail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::entry::{self, Entry};
use crate::error::{Error, Result};
use crate::journal::{Journal, JournalReader, Opened, TornTail, FRAME_HEADER, MAX_GROUP_BYTES};
use crate::keyring::{KeySet, Keyring};
use crate::merkle::{self, Frontier, Hash, NodeSource};
use crate::payload::{self, PayloadPolicy};
use crate::payload_store::{
    self, BodyState, CutTail, Location as PayloadLocation, NewPayload, OpenedStore, PayloadStore,
    MAX_PAYLOAD_BYTES,
};
use crate::record::{
    now_timestamp, Actor, Record, RecordHash, RecordRef, FORMAT_VERSION, KIND_GENESIS,
};

/// File name of the entry journal inside a ledger directory.
pub const RECORDS_JOURNAL: &str = "records.journal";
/// File name of the checkpoint journal inside a ledger directory.
pub const CHECKPOINTS_JOURNAL: &str = "checkpoints.journal";
/// File name of the payload store inside a ledger directory.
pub const PAYLOAD_STORE: &str = "payloads.store";
const INDEX_DIR: &str = "index";
/// The sled tree that held payloads before version 0.1.0 kept them in
/// [`PAYLOAD_STORE`]; moved there on open.
const OLD_PAYLOAD_TREE: &str = "payloads";

/// How a ledger checkpoints and keeps payloads.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// Checkpoint after this many new records (0: never by count).
    pub checkpoint_every_records: u64,
    /// Checkpoint when this much time passed since the last one and new
    /// records exist (`None`: never by time).
    pub checkpoint_every: Option<Duration>,
    /// What to keep of payloads.
    pub payload_policy: PayloadPolicy,
    /// The most records committed by one write and `fdatasync`.
    pub max_group_records: usize,
    /// Threads that sign records (0: one per core).
    pub signing_threads: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            checkpoint_every_records: 1000,
            checkpoint_every: Some(Duration::from_secs(60)),
            payload_policy: PayloadPolicy::Store,
            max_group_records: 256,
            signing_threads: 0,
        }
    }
}

/// What a caller wants recorded.
#[derive(Clone, Debug)]
pub struct RecordDraft {
    /// The record kind, e.g. `inference.request`.
    pub kind: String,
    /// Who asked.
    pub actor: Actor,
    /// The model digest, when a model is involved.
    pub model: Option<String>,
    /// The record this one answers.
    pub reference: Option<RecordRef>,
    /// Kind-specific fields.
    pub body: serde_json::Value,
    /// Payloads to commit to (name, bytes); stored apart per policy.
    pub payloads: Vec<(String, Vec<u8>)>,
}

impl RecordDraft {
    /// A draft with no model, reference or payloads.
    pub fn new(kind: &str, actor: Actor, body: serde_json::Value) -> Self {
        RecordDraft {
            kind: kind.into(),
            actor,
            model: None,
            reference: None,
            body,
            payloads: Vec::new(),
        }
    }
}

/// Proof that a record was durably appended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The record's sequence number.
    pub seq: u64,
    /// BLAKE3 of the record text (the chain hash), hex.
    pub hash: String,
    /// The RFC 6962 leaf hash of the entry, hex.
    pub leaf: String,
}

impl Receipt {
    /// A reference to this record, for a record that answers it.
    pub fn reference(&self) -> RecordRef {
        RecordRef {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// What opening a ledger found and repaired.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Complete entries found past the indexed end and re-indexed.
    pub reindexed: u64,
    /// Checkpoints found past the indexed end and re-indexed.
    pub reindexed_checkpoints: u64,
    /// A torn tail cut from the records journal.
    pub torn_records: Option<TornTail>,
    /// A torn tail cut from the checkpoints journal.
    pub torn_checkpoints: Option<TornTail>,
    /// The index could not be read and was rebuilt from the journals; the
    /// old one was moved to the path given, with the reason.
    pub index_rebuilt: Option<(PathBuf, String)>,
    /// Payloads found past the indexed end of the payload store and
    /// re-indexed.
    pub reindexed_payloads: u64,
    /// A tail cut from the payload store: torn, or the payloads of records
    /// that never became durable.
    pub torn_payloads: Option<CutTail>,
    /// Payloads moved from the index database into the payload store
    /// (ledgers written before the store existed).
    pub migrated_payloads: u64,
    /// Payloads of such a ledger that could not be moved (a name or size
    /// the store refuses), with the old index kept where it was moved.
    pub unmoved_payloads: Option<(PathBuf, u64)>,
}

/// What a ledger asks of the outside world around each checkpoint it
/// makes (the daemon binds a TPM's rollback counter to checkpoints). Both
/// calls run on the ledger's checkpointer thread, one checkpoint at a time,
/// in order of size.
pub trait CheckpointHook: Send + Sync {
    /// Extension lines for the checkpoint about to be signed (non-empty
    /// printable ASCII, C2SP `tlog-checkpoint` extension lines).
    fn extensions(&self) -> Vec<String>;
    /// The checkpoint was durably stored.
    fn stored(&self, checkpoint: &Checkpoint);
}

/// An open ledger. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Ledger {
    shared: Arc<Shared>,
    sign_jobs: Option<crossbeam_channel::Sender<SignJob>>,
    signers: Vec<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    recovery: Recovery,
}

/// Where an append's outcome goes: called once, on a ledger thread (or on
/// the caller's, for a refusal found before signing).
type Reply = Box<dyn FnOnce(Result<Receipt>) + Send>;

/// A sequenced record text waiting for its signature.
struct SignJob {
    seq: u64,
    epoch: u64,
    hash: RecordHash,
    text: Vec<u8>,
    payloads: Vec<(String, [u8; 32], Vec<u8>)>,
    reply: Reply,
}

struct Shared {
    dir: PathBuf,
    keys: Keyring,
    public: KeySet,
    config: LedgerConfig,
    db: sled::Db,
    index: sled::Tree,
    /// Payload locations: `seq ‖ name` → [`PayloadLocation`].
    payload_index: sled::Tree,
    /// The payload store; held by the writer while it appends.
    payloads: Mutex<PayloadStore>,
    records: JournalReader,
    checkpoints: JournalReader,
    seq: Mutex<Sequencer>,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    state: Mutex<State>,
    /// Signalled when a durable group becomes visible (see [`Shared::visible`]).
    indexed_cv: Condvar,
    /// The records journal; held by whichever thread is the writer.
    journal: Mutex<Journal>,
    /// The checkpoints journal; held by the checkpointer.
    cp_journal: Mutex<Journal>,
    /// Asked around every checkpoint, once set.
    hook: Mutex<Option<Arc<dyn CheckpointHook>>>,
}

struct Sequencer {
    next: u64,
    last: RecordHash,
    epoch: u64,
}

struct Slot {
    hash: RecordHash,
    sealed: Result<Vec<u8>>,
    payloads: Vec<(String, [u8; 32], Vec<u8>)>,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    slots: BTreeMap<u64, Slot>,
    epoch: u64,
    checkpoint_requests: Vec<SyncSender<Result<Vec<u8>>>>,
    /// A thread is writing (see [`Shared::write_queued`]).
    writing: bool,
    shutdown: bool,
}

/// A durable group's index update, applied after its callers are answered.
struct Indexing {
    records: sled::Batch,
    payloads: sled::Batch,
    frontier: Frontier,
    /// The chain hash of the group's last record.
    tip: Option<RecordHash>,
    added: u64,
}

struct State {
    /// Records visible to readers: durable and indexed.
    size: u64,
    /// Records durable (and acknowledged), `size` or more.
    durable: u64,
    tip: RecordHash,
    frontier: Frontier,
    latest_checkpoint: Option<(Checkpoint, Vec<u8>)>,
    last_checkpoint_at: Instant,
    poisoned: Option<String>,
}

/// Index keys: `r`+seq → entry location, `m`+level+index → Merkle node,
/// `c`+size → checkpoint location.
fn rkey(seq: u64) -> [u8; 9] {
    let mut k = [b'r'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn mkey(level: u8, index: u64) -> [u8; 10] {
    let mut k = [b'm'; 10];
    k[1] = level;
    k[2..].copy_from_slice(&index.to_be_bytes());
    k
}

fn ckey(size: u64) -> [u8; 9] {
    let mut k = [b'c'; 9];
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

/// Where an entry lives: offset, length, and its chain hash.
struct Location {
    offset: u64,
    len: u32,
    hash: RecordHash,
}

impl Location {
    fn encode(&self) -> [u8; 44] {
        let mut v = [0u8; 44];
        v[..8].copy_from_slice(&self.offset.to_be_bytes());
        v[8..12].copy_from_slice(&self.len.to_be_bytes());
        v[12..].copy_from_slice(&self.hash.0);
        v
    }

    fn decode(v: &[u8], dir: &Path) -> Result<Self> {
        if v.len() != 44 {
            return Err(Error::Corrupt {
                path: dir.join(INDEX_DIR),
                why: "index entry has the wrong size".into(),
            });
        }
        Ok(Location {
            offset: u64::from_be_bytes(v[..8].try_into().unwrap_or_default()),
            len: u32::from_be_bytes(v[8..12].try_into().unwrap_or_default()),
            hash: RecordHash(v[12..44].try_into().unwrap_or_default()),
        })
    }

    fn end(&self) -> u64 {
        self.offset + FRAME_HEADER as u64 + self.len as u64
    }
}

struct IndexNodes<'a>(&'a sled::Tree, &'a Path);

impl NodeSource for IndexNodes<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        let v = self
            .0
            .get(mkey(level, index))
            .map_err(|source| Error::Index {
                path: self.1.join(INDEX_DIR),
                source,
            })?
            .ok_or_else(|| Error::Corrupt {
                path: self.1.join(INDEX_DIR),
                why: format!("Merkle node {level}/{index} is missing"),
            })?;
        v.as_ref().try_into().map_err(|_| Error::Corrupt {
            path: self.1.join(INDEX_DIR),
            why: "Merkle node has the wrong size".into(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it (with its genesis record) when
    /// the directory holds none. `keys` must be the keys the log was created
    /// with.
    pub fn open(dir: &Path, keys: Keyring, config: LedgerConfig) -> Result<Self> {
        crate::keyring::create_private_dir(dir)?;
        let index_path = dir.join(INDEX_DIR);
        let mut recovery = Recovery::default();
        let opened = match open_index(&index_path) {
            Ok(trees) => trees,
            Err(e) => {
                // The index is derived state: move it aside and rebuild it
                // from the journals, which are checked as they are read.
                let aside = dir.join(format!("{INDEX_DIR}.unreadable-{}", unix_now()));
                std::fs::rename(&index_path, &aside).map_err(|e| Error::io(&index_path, e))?;
                recovery.index_rebuilt = Some((aside, e.to_string()));
                open_index(&index_path)?
            }
        };
        let (db, index, payload_index) = if has_old_payloads(&opened.0) {
            // The old index goes: no handle on it may stay open.
            let (db, index, payload_index) = opened;
            drop((index, payload_index));
            migrate_old_payloads(dir, db, &mut recovery)?;
            open_index(&index_path)?
        } else {
            opened
        };
        let sled_err = |source| Error::Index {
            path: index_path.clone(),
            source,
        };
        let public = keys.public();

        // Reconcile the records journal with the index.
        let last = index
            .scan_prefix([b'r'])
            .next_back()
            .transpose()
            .map_err(sled_err)?;
        let (mut size, trusted_end, mut tip) = match &last {
            Some((k, v)) => {
                let seq = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                let loc = Location::decode(v, dir)?;
                (seq + 1, loc.end(), Some((seq, loc)))
            }
            None => (0, 0, None),
        };
        let rpath = dir.join(RECORDS_JOURNAL);
        let Opened {
            journal,
            found,
            torn,
        } = Journal::open(&rpath, trusted_end)?;
        recovery.torn_records = torn;
        if let Some(first) = journal.first()? {
            check_genesis(&first, &public, dir)?;
        }
        let mut tip_hash = RecordHash::default();
        if let Some((seq, loc)) = tip.take() {
            let bytes = journal.read(loc.offset, loc.len)?;
            let e = Entry::parse(&bytes)?;
            if e.hash() != loc.hash || e.record.seq != seq {
                return Err(Error::Corrupt {
                    path: rpath,
                    why: format!("record {seq} in the journal is not the one the index holds"),
                });
            }
            tip_hash = loc.hash;
        }
        let mut frontier = Frontier::load(&IndexNodes(&index, dir), size)?;
        let mut batch = sled::Batch::default();
        for (offset, bytes) in &found {
            let e = Entry::parse(bytes).map_err(|err| Error::Corrupt {
                path: rpath.clone(),
                why: format!("entry at offset {offset}: {err}"),
            })?;
            let expect_prev = if size == 0 {
                RecordHash::default()
            } else {
                tip_hash
            };
            if e.record.seq != size || e.record.prev_hash()? != expect_prev {
                return Err(Error::Corrupt {
                    path: rpath,
                    why: format!(
                        "entry at offset {offset} does not continue the chain at record {size}"
                    ),
                });
            }
            e.verify(&public.operational)
                .map_err(|err| Error::Corrupt {
                    path: rpath.clone(),
                    why: err.to_string(),
                })?;
            tip_hash = e.hash();
            batch.insert(
                &rkey(size)[..],
                &Location {
                    offset: *offset,
                    len: bytes.len() as u32,
                    hash: tip_hash,
                }
                .encode()[..],
            );
            frontier.push(merkle::leaf_hash(bytes), |l, i, h| {
                batch.insert(&mkey(l, i)[..], &h[..])
            });
            size += 1;
            recovery.reindexed += 1;
        }
        index.apply_batch(batch).map_err(sled_err)?;

        // Reconcile checkpoints.
        let last_cp = index
            .scan_prefix([b'c'])
            .next_back()
            .transpose()
            .map_err(sled_err)?;
        let cp_trusted_end = match &last_cp {
            Some((_, v)) => Location::decode(v, dir)?.end(),
            None => 0,
        };
        let cpath = dir.join(CHECKPOINTS_JOURNAL);
        let Opened {
            journal: cp_journal,
            found: cp_found,
            torn: cp_torn,
        } = Journal::open(&cpath, cp_trusted_end)?;
        recovery.torn_checkpoints = cp_torn;
        let mut latest_checkpoint = match &last_cp {
            Some((_, v)) => {
                let loc = Location::decode(v, dir)?;
                let bytes = cp_journal.read(loc.offset, loc.len)?;
                Some((Checkpoint::open(&bytes, &public)?, bytes))
            }
            None => None,
        };
        for (offset, bytes) in cp_found {
            let cp = Checkpoint::open(&bytes, &public).map_err(|e| Error::Corrupt {
                path: cpath.clone(),
                why: format!("checkpoint at offset {offset}: {e}"),
            })?;
            if cp.size > size {
                return Err(Error::Corrupt {
                    path: cpath,
                    why: format!("checkpoint covers {} records but the journal holds {size}: records were lost or removed", cp.size),
                });
            }
            let loc = Location {
                offset,
                len: bytes.len() as u32,
                hash: RecordHash(cp.root),
            };
            index
                .insert(ckey(cp.size), &loc.encode()[..])
                .map_err(sled_err)?;
            recovery.reindexed_checkpoints += 1;
            latest_checkpoint = Some((cp, bytes));
        }
        if let Some((cp, _)) = &latest_checkpoint {
            if cp.size > size {
                return Err(Error::Corrupt {
                    path: cpath,
                    why: format!(
                        "checkpoint covers {} records but the journal holds {size}",
                        cp.size
                    ),
                });
            }
            if merkle::root(&IndexNodes(&index, dir), cp.size)? != cp.root {
                return Err(Error::Corrupt {
                    path: cpath,
                    why: format!(
                        "the log's root at size {} differs from its signed checkpoint",
                        cp.size
                    ),
                });
            }
        }
        let payloads = open_payloads(dir, &payload_index, size, &mut recovery)?;

        let shared = Arc::new(Shared {
            records: journal.reader()?,
            checkpoints: cp_journal.reader()?,
            dir: dir.to_path_buf(),
            public,
            keys,
            config,
            db,
            index,
            payload_index,
            payloads: Mutex::new(payloads),
            seq: Mutex::new(Sequencer {
                next: size,
                last: tip_hash,
                epoch: 0,
            }),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            indexed_cv: Condvar::new(),
            state: Mutex::new(State {
                size,
                durable: size,
                tip: tip_hash,
                frontier,
                latest_checkpoint,
                last_checkpoint_at: Instant::now(),
                poisoned: None,
            }),
            journal: Mutex::new(journal),
            cp_journal: Mutex::new(cp_journal),
            hook: Mutex::new(None),
        });
        let checkpointer_shared = shared.clone();
        let checkpointer = std::thread::Builder::new()
            .name("cairn-ledger-checkpointer".into())
            .spawn(move || checkpointer_shared.checkpointer_loop())
            .map_err(|e| Error::io(dir, e))?;
        let (sign_jobs, jobs) = crossbeam_channel::unbounded::<SignJob>();
        let threads = match shared.config.signing_threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        // Idle signers join the signing of a record whose signer found no
        // other work waiting (see `Race`).
        let (race_tx, races) = crossbeam_channel::bounded::<Arc<Race>>(threads.saturating_sub(1));
        let mut ledger = Ledger {
            shared: shared.clone(),
            sign_jobs: Some(sign_jobs),
            signers: Vec::new(),
            checkpointer: Some(checkpointer),
            recovery,
        };
        for i in 0..threads {
            let (shared, jobs) = (shared.clone(), jobs.clone());
            let (race_tx, races) = (race_tx.clone(), races.clone());
            let h = std::thread::Builder::new()
                .name(format!("cairn-ledger-signer-{i}"))
                .spawn(move || shared.signer_loop(&jobs, &races, &race_tx))
                .map_err(|e| Error::io(dir, e))?;
            ledger.signers.push(h);
        }
        if size == 0 {
            let body = ledger.shared.keys.genesis_body()?;
            ledger.append(RecordDraft::new(
                KIND_GENESIS,
                Actor::System {
                    name: "cairn-attest".into(),
                },
                body,
            ))?;
        }
        Ok(ledger)
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The log's public keys.
    pub fn keys(&self) -> &KeySet {
        &self.shared.public
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        self.shared.public.origin()
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Records `draft`: seals it, makes it durable, and only then returns
    /// its receipt. An error means the record was not written.
    pub fn append(&self, draft: RecordDraft) -> Result<Receipt> {
        let (reply, rx) = sync_channel(1);
        self.append_then(draft, move |r| {
            let _ = reply.send(r);
        });
        wait(rx)
    }

    /// Records `draft` like [`Ledger::append`] without waiting: sequences it
    /// on the calling thread and calls `done` with the receipt once the
    /// record is durable, or with the reason it was not written. `done` runs
    /// once, on a ledger thread (on the calling thread when the record is
    /// refused before signing), and must not block for long: the writer
    /// answers a group's callers one after the other. Nor may `done` read
    /// the ledger: a group is indexed after its callers are answered, so
    /// such a read on the writer's thread would wait for itself.
    pub fn append_then(
        &self,
        draft: RecordDraft,
        done: impl FnOnce(Result<Receipt>) + Send + 'static,
    ) {
        let reply: Reply = Box::new(done);
        let s = &self.shared;
        if let Some(why) = &lock(&s.state).poisoned {
            return reply(Err(Error::Poisoned(why.clone())));
        }
        if let Err(e) = draft
            .payloads
            .iter()
            .try_for_each(|(name, _)| payload_store::check_name(name))
        {
            return reply(Err(e));
        }
        let frames: usize = draft
            .payloads
            .iter()
            .map(|(name, bytes)| payload_store::frame_len(name, bytes.len()))
            .sum();
        if frames > MAX_PAYLOAD_BYTES {
            return reply(Err(Error::TooLarge {
                what: "a record's payloads",
                size: frames,
                limit: MAX_PAYLOAD_BYTES,
            }));
        }
        let keep = s.config.payload_policy != PayloadPolicy::HashOnly;
        let mut commits = BTreeMap::new();
        let mut payloads = Vec::with_capacity(draft.payloads.len());
        for (name, bytes) in draft.payloads {
            let c = match payload::commit(&bytes) {
                Ok(c) => c,
                Err(e) => return reply(Err(e)),
            };
            commits.insert(name.clone(), c.commitment);
            if keep {
                payloads.push((name, c.salt, bytes));
            }
        }
        let sequenced = {
            let mut sq = lock(&s.seq);
            let record = Record {
                v: FORMAT_VERSION,
                log: s.public.origin().to_string(),
                seq: sq.next,
                time: now_timestamp(),
                kind: draft.kind,
                actor: draft.actor,
                model: draft.model,
                prev: sq.last.to_hex(),
                reference: draft.reference,
                commits,
                body: draft.body,
            };
            record.to_text().map(|text| {
                sq.last = RecordHash::of(&text);
                sq.next += 1;
                (record.seq, sq.epoch, sq.last, text)
            })
        };
        let (seq, epoch, hash, text) = match sequenced {
            Ok(v) => v,
            Err(e) => return reply(Err(e)),
        };
        let job = SignJob {
            seq,
            epoch,
            hash,
            text,
            payloads,
            reply,
        };
        match &self.sign_jobs {
            None => (job.reply)(Err(Error::Poisoned("the ledger is closing".into()))),
            Some(jobs) => {
                if let Err(crossbeam_channel::SendError(job)) = jobs.send(job) {
                    (job.reply)(Err(Error::Poisoned("the ledger's signers stopped".into())));
                }
            }
        }
    }

    /// Makes and durably stores a checkpoint of the current log now.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let (tx, rx) = sync_channel(1);
        lock(&self.shared.queue).checkpoint_requests.push(tx);
        self.shared.queue_cv.notify_all();
        wait(rx)
    }

    /// Why the ledger refuses appends, if it does (a failed durable write
    /// or index update); `None` when healthy.
    pub fn fault(&self) -> Option<String> {
        lock(&self.shared.state).poisoned.clone()
    }

    /// The self-contained proof of record `seq` against the latest
    /// checkpoint, making a checkpoint first if none covers it yet.
    pub fn record_proof(&self, seq: u64) -> Result<crate::proof::RecordProof> {
        let entry = self.entry(seq)?;
        let covered = self.latest_checkpoint().filter(|(c, _)| c.size > seq);
        let (cp, bytes) = match covered {
            Some(c) => c,
            None => {
                let bytes = self.checkpoint()?;
                (Checkpoint::open(&bytes, &self.shared.public)?, bytes)
            }
        };
        Ok(crate::proof::RecordProof {
            genesis: self.entry(0)?,
            entry,
            proof: crate::proof::TlogProof {
                extra: None,
                index: seq,
                hashes: self.inclusion_proof(seq, cp.size)?,
                checkpoint: bytes,
            },
        })
    }

    /// The number of durable records: every acknowledged one (a group
    /// acknowledged but still being indexed is waited for).
    pub fn size(&self) -> u64 {
        self.shared.visible().size
    }

    /// The last record's sequence number and chain hash.
    pub fn tip(&self) -> Option<(u64, RecordHash)> {
        let st = self.shared.visible();
        st.size.checked_sub(1).map(|s| (s, st.tip))
    }

    /// The latest signed checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Option<(Checkpoint, Vec<u8>)> {
        lock(&self.shared.state).latest_checkpoint.clone()
    }

    /// Time since the latest checkpoint was made by this process (or since
    /// the ledger was opened, for a checkpoint made earlier).
    pub fn checkpoint_age(&self) -> Option<Duration> {
        let st = lock(&self.shared.state);
        st.latest_checkpoint
            .as_ref()
            .map(|_| st.last_checkpoint_at.elapsed())
    }

    /// From now on, asks `hook` for extension lines before signing each
    /// checkpoint and tells it once each is stored.
    pub fn set_checkpoint_hook(&self, hook: Arc<dyn CheckpointHook>) {
        *lock(&self.shared.hook) = Some(hook);
    }

    /// The newest stored checkpoint for which `wanted` holds, its
    /// signatures checked, looking back from the latest.
    pub fn latest_checkpoint_where(
        &self,
        wanted: impl Fn(&Checkpoint) -> bool,
    ) -> Result<Option<(Checkpoint, Vec<u8>)>> {
        let s = &self.shared;
        for item in s.index.scan_prefix([b'c']).rev() {
            let (_, v) = item.map_err(|e| self.index_err(e))?;
            let loc = Location::decode(&v, &s.dir)?;
            let bytes = s.checkpoints.read(loc.offset, loc.len)?;
            let cp = Checkpoint::parse_text(crate::note::Note::parse(&bytes)?.text)?;
            if wanted(&cp) {
                return Ok(Some((Checkpoint::open(&bytes, &s.public)?, bytes)));
            }
        }
        Ok(None)
    }

    /// The signed checkpoint of exactly `size` records, if one was made.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<Vec<u8>>> {
        let s = &self.shared;
        match s.index.get(ckey(size)).map_err(|e| self.index_err(e))? {
            Some(v) => {
                let loc = Location::decode(&v, &s.dir)?;
                Ok(Some(s.checkpoints.read(loc.offset, loc.len)?))
            }
            None => Ok(None),
        }
    }

    /// The entry bytes of record `seq`.
    pub fn entry(&self, seq: u64) -> Result<Vec<u8>> {
        let s = &self.shared;
        let size = self.size();
        if seq >= size {
            return Err(Error::NotFound(format!(
                "record {seq} does not exist (the log has {size} records)"
            )));
        }
        let v = s
            .index
            .get(rkey(seq))
            .map_err(|e| self.index_err(e))?
            .ok_or_else(|| Error::Corrupt {
                path: s.dir.join(INDEX_DIR),
                why: format!("record {seq} is not indexed"),
            })?;
        let loc = Location::decode(&v, &s.dir)?;
        s.records.read(loc.offset, loc.len)
    }

    /// The entries `[from, to)`, clipped to the log.
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<Vec<u8>>> {
        (from..to.min(self.size())).map(|i| self.entry(i)).collect()
    }

    /// The Merkle root of the first `size` records.
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        merkle::root(&IndexNodes(&self.shared.index, &self.shared.dir), size)
    }

    /// RFC 9162 inclusion proof of record `seq` in the tree of `size`.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>> {
        self.check_size(size)?;
        merkle::inclusion_proof(&IndexNodes(&self.shared.index, &self.shared.dir), seq, size)
    }

    /// RFC 9162 consistency proof between two tree sizes.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        self.check_size(new)?;
        merkle::consistency_proof(&IndexNodes(&self.shared.index, &self.shared.dir), old, new)
    }

    /// A payload kept for record `seq`, with its salt, unless erased.
    pub fn payload(&self, seq: u64, name: &str) -> Result<Option<([u8; 32], Vec<u8>)>> {
        let s = &self.shared;
        drop(s.visible());
        let Some(v) = s
            .payload_index
            .get(payload_key(seq, name))
            .map_err(|e| self.index_err(e))?
        else {
            return Ok(None);
        };
        let loc = PayloadLocation::decode(&v, &s.dir.join(PAYLOAD_STORE))?;
        lock(&s.payloads).read(seq, name, &loc)
    }

    /// Erases the payloads of records `[from, to)`: their bytes and salts
    /// are overwritten in the payload store; the chain is untouched.
    /// Returns how many payloads were erased.
    pub fn erase_payloads(&self, from: u64, to: u64) -> Result<u64> {
        self.erase_where(|seq, _| seq >= from && seq < to, |_| Ok(()))
    }

    /// Applies [`PayloadPolicy::EraseAfterDays`]: finds the payloads stored
    /// longer ago than the policy allows and, when there are any, calls
    /// `before(count, stored_before)` (unix seconds) first, where the caller
    /// records the erasure; erases them only if it returns `Ok`. Returns
    /// how many were erased.
    pub fn erase_expired_payloads(
        &self,
        before: impl FnOnce(u64, u64) -> Result<()>,
    ) -> Result<u64> {
        let PayloadPolicy::EraseAfterDays(days) = self.shared.config.payload_policy else {
            return Ok(0);
        };
        let cutoff = unix_now().saturating_sub(u64::from(days) * 86_400);
        self.erase_where(|_, loc| loc.stored_at < cutoff, |n| before(n, cutoff))
    }

    /// Erases the payloads for which `pred(seq, location)` holds and that
    /// are not erased yet, once `before(count)` allowed it (not called when
    /// there are none), a thousand at a time (appends wait for the store
    /// meanwhile): durably in the store first, then in the index (were the
    /// index to miss the second step, the zeros read as erased).
    fn erase_where(
        &self,
        pred: impl Fn(u64, &PayloadLocation) -> bool,
        before: impl FnOnce(u64) -> Result<()>,
    ) -> Result<u64> {
        let s = &self.shared;
        // Payloads of acknowledged records still being indexed are erased too.
        drop(s.visible());
        let path = s.dir.join(PAYLOAD_STORE);
        let mut chosen = Vec::new();
        for kv in s.payload_index.iter() {
            let (k, v) = kv.map_err(|e| self.index_err(e))?;
            let loc = PayloadLocation::decode(&v, &path)?;
            let (Some(seq), Some(name)) = (k.get(..8), k.get(8..)) else {
                continue;
            };
            let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
            if loc.state != BodyState::Erased && pred(seq, &loc) {
                chosen.push((
                    k.clone(),
                    seq,
                    String::from_utf8_lossy(name).into_owned(),
                    loc,
                ));
            }
        }
        if chosen.is_empty() {
            return Ok(0);
        }
        before(chosen.len() as u64)?;
        for part in chosen.chunks(1000) {
            let named: Vec<(u64, &str, PayloadLocation)> = part
                .iter()
                .map(|(_, seq, name, loc)| (*seq, name.as_str(), *loc))
                .collect();
            lock(&s.payloads).erase(&named)?;
            let mut batch = sled::Batch::default();
            for (k, _, _, mut loc) in part.iter().cloned() {
                loc.state = BodyState::Erased;
                batch.insert(k, &loc.encode()[..]);
            }
            s.payload_index
                .apply_batch(batch)
                .map_err(|e| self.index_err(e))?;
        }
        Ok(chosen.len() as u64)
    }

    fn check_size(&self, size: u64) -> Result<()> {
        let have = self.size();
        if size > have {
            return Err(Error::NotFound(format!(
                "tree size {size} is larger than the log ({have} records)"
            )));
        }
        Ok(())
    }

    fn index_err(&self, source: sled::Error) -> Error {
        Error::Index {
            path: self.shared.dir.join(INDEX_DIR),
            source,
        }
    }
}

/// One record being signed, possibly by several signers at once: the first
/// to finish takes the job and queues its signature; the others' are
/// dropped. Only a signer that [`Signer::can_race`] races, and only when no
/// other record waits for a signer, so racing spends idle cores only; it
/// cuts the latency of a lone record (the first of two random-length
/// ML-DSA rejection loops) and most of its tail.
struct Race {
    text: Vec<u8>,
    job: Mutex<Option<SignJob>>,
}

impl Shared {
    /// A signing thread: takes records to sign, or joins a race on one.
    fn signer_loop(
        &self,
        jobs: &crossbeam_channel::Receiver<SignJob>,
        races: &crossbeam_channel::Receiver<Arc<Race>>,
        race_tx: &crossbeam_channel::Sender<Arc<Race>>,
    ) {
        loop {
            crossbeam_channel::select_biased! {
                recv(jobs) -> job => {
                    let Ok(mut job) = job else { return };
                    let race = Arc::new(Race {
                        text: std::mem::take(&mut job.text),
                        job: Mutex::new(Some(job)),
                    });
                    if self.keys.operational.can_race() && jobs.is_empty() {
                        for _ in 0..race_tx.capacity().unwrap_or(0) {
                            if race_tx.try_send(race.clone()).is_err() {
                                break;
                            }
                        }
                    }
                    self.sign_and_queue(&race);
                }
                recv(races) -> race => {
                    if let Ok(race) = race {
                        if lock(&race.job).is_some() {
                            self.sign_and_queue(&race);
                        }
                    }
                }
            }
        }
    }

    /// Seals the record and, if no other signer finished it first, queues
    /// it for writing, unless sequencing was rewound since it was numbered;
    /// then writes what is queued unless another thread is writing.
    fn sign_and_queue(&self, race: &Race) {
        let sealed = entry::seal(&race.text, self.keys.operational.as_ref());
        let Some(job) = lock(&race.job).take() else {
            return;
        };
        let slot = Slot {
            hash: job.hash,
            sealed,
            payloads: job.payloads,
            reply: job.reply,
        };
        let mut q = lock(&self.queue);
        if q.shutdown {
            drop(q);
            return (slot.reply)(Err(Error::Poisoned(
                "the ledger stopped accepting records".into(),
            )));
        }
        if q.epoch != job.epoch {
            drop(q);
            return (slot.reply)(Err(Error::Signer {
                key: self.public.operational.name().into(),
                why: "an earlier record failed to sign; this one was not written".into(),
            }));
        }
        q.slots.insert(job.seq, slot);
        if !std::mem::replace(&mut q.writing, true) {
            drop(q);
            self.write_queued();
        }
    }

    /// The writer's loop, run by the thread that set [`Queue::writing`]:
    /// commits contiguous groups until none is left, then clears the flag.
    /// Whoever queues a record while the flag is set leaves it to this
    /// loop; the flag is tested and cleared under the queue's lock, so no
    /// record is stranded.
    fn write_queued(&self) {
        let mut journal = lock(&self.journal);
        loop {
            let group = {
                let mut q = lock(&self.queue);
                match self.next_group(&mut q) {
                    Some(group) => group,
                    None => {
                        q.writing = false;
                        return;
                    }
                }
            };
            self.commit(&mut journal, group);
        }
    }

    /// The checkpointer's loop: makes the checkpoints asked for, and those
    /// due by count (the writer wakes it) or by time (it wakes at least
    /// once a second). Signing a checkpoint can be slow (a device holding
    /// the identity key), so it happens here, apart from record writes.
    fn checkpointer_loop(&self) {
        let tick = self
            .config
            .checkpoint_every
            .unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_secs(1));
        let mut q = lock(&self.queue);
        while !q.shutdown {
            if q.checkpoint_requests.is_empty() && !self.checkpoint_due() {
                q = self
                    .queue_cv
                    .wait_timeout(q, tick)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                continue;
            }
            let waiters = std::mem::take(&mut q.checkpoint_requests);
            drop(q);
            let r = self.make_checkpoint();
            for w in waiters {
                let _ = w.send(
                    r.as_ref()
                        .map(|(_, b)| b.clone())
                        .map_err(|e| Error::Invalid(e.to_string())),
                );
            }
            q = lock(&self.queue);
            if r.is_err() && q.checkpoint_requests.is_empty() {
                // Cadence retries at the next tick, not in a loop.
                q = self
                    .queue_cv
                    .wait_timeout(q, tick)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        // Requests that came with the close are answered by the final
        // checkpoint.
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Signers finish (and write) what they hold, then stop.
        self.sign_jobs = None;
        for h in self.signers.drain(..) {
            let _ = h.join();
        }
        let s = &self.shared;
        let leftovers = {
            let mut q = lock(&s.queue);
            q.shutdown = true;
            std::mem::take(&mut q.slots)
        };
        s.queue_cv.notify_all();
        if let Some(c) = self.checkpointer.take() {
            let _ = c.join();
        }
        // Anything left cannot be contiguous with the log.
        for (_, slot) in leftovers {
            (slot.reply)(Err(Error::Poisoned(
                "the ledger closed before this record was written".into(),
            )));
        }
        // A clean close leaves every record covered by a checkpoint.
        let last = s.make_checkpoint();
        for w in std::mem::take(&mut lock(&s.queue).checkpoint_requests) {
            let _ = w.send(
                last.as_ref()
                    .map(|(_, b)| b.clone())
                    .map_err(|e| Error::Invalid(e.to_string())),
            );
        }
        let _ = s.db.flush();
    }
}

/// Opens the sled index and its trees, turning a panic inside sled on a
/// damaged file into an error.
fn open_index(path: &Path) -> Result<(sled::Db, sled::Tree, sled::Tree)> {
    let p = path.to_path_buf();
    let opened = std::panic::catch_unwind(move || -> Result<_> {
        let err = |source| Error::Index {
            path: p.clone(),
            source,
        };
        let db = sled::Config::new().path(&p).open().map_err(err)?;
        let index = db.open_tree("index").map_err(err)?;
        let payload_index = db.open_tree("payload_locations").map_err(err)?;
        // Touch the last entries so damage shows now, not on first use.
        index.last().map_err(err)?;
        payload_index.last().map_err(err)?;
        Ok((db, index, payload_index))
    });
    opened.unwrap_or_else(|_| {
        Err(Error::Corrupt {
            path: path.to_path_buf(),
            why: "the index database is damaged".into(),
        })
    })
}

/// Reconciles the payload store with its index once the log's size is
/// known: drops index entries of records past the log's end, indexes the
/// frames past the indexed end, and cuts a torn tail and the payloads of
/// records past the log's end.
fn open_payloads(
    dir: &Path,
    payload_index: &sled::Tree,
    size: u64,
    recovery: &mut Recovery,
) -> Result<PayloadStore> {
    let path = dir.join(PAYLOAD_STORE);
    let sled_err = |source| Error::Index {
        path: dir.join(INDEX_DIR),
        source,
    };
    // Locations of records past the log's end were never acknowledged.
    for k in payload_index.range(size.to_be_bytes()..).keys() {
        payload_index
            .remove(k.map_err(sled_err)?)
            .map_err(sled_err)?;
    }
    // The indexed end: the last indexed record's frames are the last
    // indexed frames, in the order of its draft, not of their names.
    let mut trusted_end = 0;
    if let Some((k, _)) = payload_index.last().map_err(sled_err)? {
        for kv in payload_index.scan_prefix(&k[..8.min(k.len())]) {
            let (_, v) = kv.map_err(sled_err)?;
            trusted_end = trusted_end.max(PayloadLocation::decode(&v, &path)?.end());
        }
    }
    let OpenedStore { store, found, torn } = PayloadStore::open(&path, trusted_end, size)?;
    recovery.torn_payloads = torn;
    let mut batch = sled::Batch::default();
    for f in &found {
        batch.insert(payload_key(f.seq, &f.name), &f.location.encode()[..]);
    }
    payload_index.apply_batch(batch).map_err(sled_err)?;
    recovery.reindexed_payloads = found.len() as u64;
    Ok(store)
}

/// Whether the index database holds payloads the way ledgers did before
/// the payload store.
fn has_old_payloads(db: &sled::Db) -> bool {
    db.tree_names()
        .iter()
        .any(|n| n.as_ref() == OLD_PAYLOAD_TREE.as_bytes())
}

/// Moves the payloads an older ledger kept in its index database `db`
/// (tree `payloads`: key `u64be(seq) ‖ name`, value `u64be(stored_at) ‖
/// salt ‖ payload`) into the payload store, in sequence order, a few
/// megabytes per write. Then the old index goes (the caller reopens it
/// empty, and it is rebuilt from the journals and the store), so that no
/// copy of a payload outlives its erasure in sled's files; it is kept,
/// moved aside, if some payload could not be moved. An interrupted move
/// resumes: payloads already in the store are skipped. Payloads of
/// records past the log's end are cut when the store is opened.
fn migrate_old_payloads(dir: &Path, db: sled::Db, recovery: &mut Recovery) -> Result<()> {
    let index_path = dir.join(INDEX_DIR);
    let sled_err = |source| Error::Index {
        path: index_path.clone(),
        source,
    };
    let old = db.open_tree(OLD_PAYLOAD_TREE).map_err(sled_err)?;
    let OpenedStore {
        mut store, found, ..
    } = PayloadStore::open(&dir.join(PAYLOAD_STORE), 0, u64::MAX)?;
    let present: std::collections::HashSet<Vec<u8>> =
        found.iter().map(|f| payload_key(f.seq, &f.name)).collect();
    // (seq, name, stored_at, salt, payload)
    type Old = (u64, String, u64, [u8; 32], Vec<u8>);
    let mut chunk: Vec<Old> = Vec::new();
    let (mut chunk_bytes, mut moved, mut unmoved) = (0, 0, 0);
    let mut entries = old.iter();
    loop {
        let next = entries.next().transpose().map_err(sled_err)?;
        if let Some((k, v)) = &next {
            let seq = k
                .get(..8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()));
            let name = k.get(8..).map(|n| String::from_utf8_lossy(n).into_owned());
            match (seq, name) {
                _ if present.contains(&k[..]) => {}
                (Some(seq), Some(name))
                    if payload_store::check_name(&name).is_ok()
                        && v.len() >= 40
                        && v.len() - 8 <= MAX_PAYLOAD_BYTES =>
                {
                    let stored_at = u64::from_be_bytes(v[..8].try_into().unwrap_or_default());
                    let salt: [u8; 32] = v[8..40].try_into().unwrap_or_default();
                    chunk_bytes += v.len();
                    chunk.push((seq, name, stored_at, salt, v[40..].to_vec()));
                }
                _ => unmoved += 1,
            }
        }
        if !chunk.is_empty() && (next.is_none() || chunk_bytes >= MAX_GROUP_BYTES / 2) {
            let new: Vec<NewPayload> = chunk
                .iter()
                .map(|(seq, name, stored_at, salt, bytes)| NewPayload {
                    seq: *seq,
                    name,
                    stored_at: *stored_at,
                    salt,
                    bytes,
                })
                .collect();
            store.append(&new)?;
            moved += new.len() as u64;
            chunk.clear();
            chunk_bytes = 0;
        }
        if next.is_none() {
            break;
        }
    }
    drop((old, db));
    recovery.migrated_payloads = moved;
    if unmoved > 0 {
        let aside = dir.join(format!("{INDEX_DIR}.unmoved-payloads-{}", unix_now()));
        std::fs::rename(&index_path, &aside).map_err(|e| Error::io(&index_path, e))?;
        recovery.unmoved_payloads = Some((aside, unmoved));
    } else {
        std::fs::remove_dir_all(&index_path).map_err(|e| Error::io(&index_path, e))?;
    }
    crate::journal::sync_parent(&index_path)
}

/// Checks that the log's genesis record publishes exactly `public`.
fn check_genesis(first: &[u8], public: &KeySet, dir: &Path) -> Result<()> {
    let e = Entry::parse(first).map_err(|e| Error::Corrupt {
        path: dir.join(RECORDS_JOURNAL),
        why: format!("genesis record: {e}"),
    })?;
    if e.record.kind != KIND_GENESIS {
        return Err(Error::Corrupt {
            path: dir.join(RECORDS_JOURNAL),
            why: "the first record is not a genesis record".into(),
        });
    }
    if &KeySet::from_genesis(&e.record.body)? != public {
        return Err(Error::Invalid(format!(
            "{}: this ledger was created with other keys than the ones given",
            dir.display()
        )));
    }
    Ok(())
}

fn wait<T>(rx: Receiver<Result<T>>) -> Result<T> {
    rx.recv()
        .unwrap_or_else(|_| Err(Error::Poisoned("the ledger writer stopped".into())))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn payload_key(seq: u64, name: &str) -> Vec<u8> {
    let mut k = seq.to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

impl Shared {
    /// The contiguous group at the log's end, if its first entry is queued.
    fn next_group(&self, q: &mut Queue) -> Option<Vec<(u64, Slot)>> {
        let next = lock(&self.state).size;
        if !q.slots.contains_key(&next) {
            return None;
        }
        let mut group = Vec::new();
        let mut bytes = 0usize;
        let mut seq = next;
        while group.len() < self.config.max_group_records && bytes < MAX_GROUP_BYTES / 2 {
            let Some(slot) = q.slots.remove(&seq) else {
                break;
            };
            bytes += slot.sealed.as_ref().map(Vec::len).unwrap_or(0)
                + slot.payloads.iter().map(|(_, _, b)| b.len()).sum::<usize>();
            let failed = slot.sealed.is_err();
            group.push((seq, slot));
            seq += 1;
            if failed {
                break;
            }
        }
        Some(group)
    }

    fn checkpoint_due(&self) -> bool {
        let st = lock(&self.state);
        let covered = st
            .latest_checkpoint
            .as_ref()
            .map(|(c, _)| c.size)
            .unwrap_or(0);
        if st.poisoned.is_some() || st.size == covered {
            return false;
        }
        let every = self.config.checkpoint_every_records;
        (every > 0 && st.size - covered >= every)
            || self
                .config
                .checkpoint_every
                .is_some_and(|d| st.last_checkpoint_at.elapsed() >= d)
    }

    fn commit(&self, journal: &mut Journal, group: Vec<(u64, Slot)>) {
        let (ok, failed): (Vec<_>, Vec<_>) =
            group.into_iter().partition(|(_, sl)| sl.sealed.is_ok());
        if !ok.is_empty() {
            match self.write_group(journal, &ok) {
                Ok((receipts, indexing)) => {
                    // The group is indexed even if a reply panics, so that
                    // readers waiting for it are released.
                    let replied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        for ((_, slot), r) in ok.into_iter().zip(receipts) {
                            (slot.reply)(Ok(r));
                        }
                    }));
                    self.index(indexing);
                    if let Err(panic) = replied {
                        std::panic::resume_unwind(panic);
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    lock(&self.state).poisoned = Some(why.clone());
                    for (_, slot) in ok {
                        (slot.reply)(Err(Error::Poisoned(why.clone())));
                    }
                    let queued = {
                        let mut q = lock(&self.queue);
                        q.shutdown = true;
                        std::mem::take(&mut q.slots)
                    };
                    for (_, slot) in queued {
                        (slot.reply)(Err(Error::Poisoned(why.clone())));
                    }
                    return;
                }
            }
        }
        if let Some((seq, slot)) = failed.into_iter().next() {
            // A record could not be signed: it and every record chained after
            // it are refused, and sequencing rewinds to it.
            let err = slot
                .sealed
                .err()
                .unwrap_or_else(|| Error::Invalid("unsigned".into()));
            let why = err.to_string();
            let later = {
                let mut q = lock(&self.queue);
                let mut sq = lock(&self.seq);
                sq.epoch += 1;
                sq.next = seq;
                sq.last = lock(&self.state).tip;
                q.epoch = sq.epoch;
                std::mem::take(&mut q.slots)
            };
            // Answer only after the rewind, so the callers' next appends are
            // sequenced afresh.
            for (_, later) in later {
                (later.reply)(Err(Error::Signer {
                    key: self.public.operational.name().into(),
                    why: format!("record {seq} before this one failed to sign ({why}); this one was not written"),
                }));
            }
            (slot.reply)(Err(err));
        }
        if self.checkpoint_due() {
            self.queue_cv.notify_all();
        }
    }

    /// Writes a group durably (records to the journal, payloads to the
    /// store, in parallel); returns its receipts and its index update.
    fn write_group(
        &self,
        journal: &mut Journal,
        group: &[(u64, Slot)],
    ) -> Result<(Vec<Receipt>, Indexing)> {
        // Payloads go to the payload store and the records to the journal,
        // both durably and in parallel (two device flushes overlap), before
        // any acknowledgement: an acknowledged record never lacks its
        // payloads. A crash between the two can leave an unacknowledged
        // record without them (read as erased) or payloads past the log's
        // end (cut on reopen).
        let stored_at = unix_now();
        let payloads: Vec<NewPayload> = group
            .iter()
            .flat_map(|(seq, slot)| {
                slot.payloads.iter().map(|(name, salt, bytes)| NewPayload {
                    seq: *seq,
                    name,
                    stored_at,
                    salt,
                    bytes,
                })
            })
            .collect();
        let entries: Vec<&[u8]> = group
            .iter()
            .filter_map(|(_, sl)| sl.sealed.as_deref().ok())
            .collect();
        let (offsets, locations) = std::thread::scope(|scope| {
            let stored = (!payloads.is_empty())
                .then(|| scope.spawn(|| lock(&self.payloads).append(&payloads)));
            let offsets = journal.append(&entries);
            let locations = match stored {
                None => Ok(Vec::new()),
                Some(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Invalid("the payload write panicked".into()))),
            };
            Ok::<_, Error>((offsets?, locations?))
        })?;
        // Durable now. The index and the tree's new nodes go in one sled
        // batch, applied by `index` after the callers are answered.
        let mut st = lock(&self.state);
        st.durable += group.len() as u64;
        let mut frontier = st.frontier.clone();
        drop(st);
        let mut records = sled::Batch::default();
        let mut receipts = Vec::with_capacity(group.len());
        for (((seq, slot), bytes), offset) in group.iter().zip(&entries).zip(offsets) {
            let leaf = merkle::leaf_hash(bytes);
            records.insert(
                &rkey(*seq)[..],
                &Location {
                    offset,
                    len: bytes.len() as u32,
                    hash: slot.hash,
                }
                .encode()[..],
            );
            frontier.push(leaf, |l, i, h| records.insert(&mkey(l, i)[..], &h[..]));
            receipts.push(Receipt {
                seq: *seq,
                hash: slot.hash.to_hex(),
                leaf: hex::encode(leaf),
            });
        }
        let mut payloads_batch = sled::Batch::default();
        for (p, loc) in payloads.iter().zip(locations) {
            payloads_batch.insert(payload_key(p.seq, p.name), &loc.encode()[..]);
        }
        let indexing = Indexing {
            records,
            payloads: payloads_batch,
            frontier,
            tip: group.last().map(|(_, slot)| slot.hash),
            added: group.len() as u64,
        };
        Ok((receipts, indexing))
    }

    /// Applies a durable group's index batch and only then makes the group
    /// visible to readers (its size, tip and tree); readers wait for this in
    /// [`Shared::visible`].
    fn index(&self, ix: Indexing) {
        // A panic inside sled must not leave readers waiting for a group
        // that will never become visible: it poisons the ledger instead.
        let (records, payloads) = (ix.records, ix.payloads);
        let indexed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.index
                .apply_batch(records)
                .and_then(|_| self.payload_index.apply_batch(payloads))
                .map_err(|e| {
                    Error::Index {
                        path: self.dir.join(INDEX_DIR),
                        source: e,
                    }
                    .to_string()
                })
        }))
        .unwrap_or_else(|_| Err("the index database panicked".into()));
        let mut st = lock(&self.state);
        st.size += ix.added;
        st.tip = ix.tip.unwrap_or(st.tip);
        st.frontier = ix.frontier;
        if let Err(why) = indexed {
            // The records and payloads are durable (the journal and the store
            // are the truth) and were acknowledged; the index is rebuilt from
            // them on reopen.
            st.poisoned = Some(format!("index update failed, reopen the ledger: {why}"));
        }
        drop(st);
        self.indexed_cv.notify_all();
    }

    /// The state once every durable record is visible: a reader waits out
    /// the indexing of a group whose callers were answered already, so it
    /// sees every acknowledged record.
    fn visible(&self) -> MutexGuard<'_, State> {
        let mut st = lock(&self.state);
        while st.size < st.durable && st.poisoned.is_none() {
            st = self
                .indexed_cv
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        st
    }

    /// Signs a checkpoint of the log as it is now and appends it to the
    /// checkpoints journal (one checkpointer at a time: it holds that lock
    /// throughout, so checkpoints are appended in order of size).
    fn make_checkpoint(&self) -> Result<(Checkpoint, Vec<u8>)> {
        let mut cp_journal = lock(&self.cp_journal);
        let (size, root) = {
            let st = self.visible();
            if let Some(p) = &st.poisoned {
                return Err(Error::Poisoned(p.clone()));
            }
            if let Some((c, b)) = &st.latest_checkpoint {
                if c.size == st.size {
                    return Ok((c.clone(), b.clone()));
                }
            }
            (st.size, st.frontier.root())
        };
        let hook = lock(&self.hook).clone();
        let cp = Checkpoint {
            origin: self.public.origin().to_string(),
            size,
            root,
            extensions: hook.as_ref().map_or_else(Vec::new, |h| h.extensions()),
        };
        let signed = cp.sign(&self.keys)?;
        let offset = cp_journal.append(&[&signed])?[0];
        let loc = Location {
            offset,
            len: signed.len() as u32,
            hash: RecordHash(root),
        };
        self.index
            .insert(ckey(size), &loc.encode()[..])
            .map_err(|source| Error::Index {
                path: self.dir.join(INDEX_DIR),
                source,
            })?;
        {
            let mut st = lock(&self.state);
            st.latest_checkpoint = Some((cp.clone(), signed.clone()));
            st.last_checkpoint_at = Instant::now();
        }
        // Still holding the checkpoints journal: the hook hears of
        // checkpoints in order.
        if let Some(h) = hook {
            h.stored(&cp);
        }
        Ok((cp, signed))
    }
}
