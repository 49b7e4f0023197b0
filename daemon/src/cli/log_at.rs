//! A log read for a report (`cairn evidence`, `cairn inventory`): a ledger
//! directory — whose running daemon, if one answers, checkpoints first — or
//! an export bundle, verified as `cairn verify` verifies it, then cut at
//! one signed checkpoint, with the records that checkpoint covers parsed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_attest::bundle;
use cairn_attest::checkpoint::Checkpoint;
use cairn_attest::entry::Entry;
use cairn_attest::verify::Report;
use cairn_attest::{KeySet, Record};
use rayon::prelude::*;

use super::verify::Opened;
use crate::client::checkpoint_now;
use crate::evidence::Checkpoints;

/// Which log a report reads, and at which checkpoint (the arguments
/// `cairn evidence` and `cairn inventory` share).
#[derive(clap::Args)]
pub(super) struct LogArgs {
    /// A ledger (state) directory or an export bundle.
    pub path: PathBuf,
    /// The identity key the log must have (verifier key or fingerprint).
    #[arg(long)]
    pub key: Option<String>,
    /// Read the log at the checkpoint of this many records (as an earlier
    /// report names it) instead of the last one.
    #[arg(long)]
    pub at: Option<u64>,
    /// The daemon's socket, for a running daemon's ledger (default:
    /// `cairnd.sock` in the ledger directory, if a daemon answers there).
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

/// A verified log at one checkpoint.
pub(super) struct LogAt {
    /// The records the checkpoint covers that parse, in order.
    pub records: Vec<Record>,
    /// The verification (of the whole log, or of the cut when a running
    /// daemon may be writing past it).
    pub report: Report,
    /// Seconds the verification took.
    pub seconds: f64,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its signed note, as stored.
    pub note: Vec<u8>,
    /// The checkpoints up to it whose signatures verify, by size.
    pub checkpoints: Checkpoints,
    /// Records after the checkpoint, not reported on.
    pub left_out: u64,
    /// Whether a running daemon checkpointed for this read.
    pub daemon_running: bool,
    /// `ledger`, `bundle` or `incremental bundle`.
    pub kind: &'static str,
}

/// Reads the log at `source.path` at its checkpoint of `source.at` records
/// (default: the last), verifying it with `source.key` pinned if given.
/// `source.socket`: the daemon of a ledger directory (default: its
/// `cairnd.sock`, if one answers; given, it must answer).
pub(super) fn read(source: &LogArgs) -> anyhow::Result<LogAt> {
    let (path, socket, at, key) = (
        source.path.as_path(),
        source.socket.as_deref(),
        source.at,
        source.key.clone(),
    );
    // The daemon checkpoints before the journals are mapped, so the
    // mapping holds its checkpoint.
    let daemon_running = if bundle::is_bundle(path) {
        if socket.is_some() {
            bail!("--socket applies to a ledger directory, not to an export bundle");
        }
        false
    } else {
        let s = socket.map_or_else(|| path.join("cairnd.sock"), Path::to_path_buf);
        checkpoint_now(&s, socket.is_some())?
    };
    let opened = Opened::open(path)?;
    let log = opened.log();
    let (cut, checkpoint) = bundle::cut_at_checkpoint(&log, at).with_context(|| match at {
        Some(_) => format!("cannot read {} at that checkpoint", path.display()),
        None => format!(
            "cannot report on {}: cairnd checkpoints every 1,000 records, every minute and at every clean stop; make the report while it runs, or start and stop it once",
            path.display()
        ),
    })?;
    let started = Instant::now();
    // A running daemon may be writing past its checkpoint: only the cut is
    // certain to be whole. Otherwise the whole log is verified, as
    // `cairn verify` does.
    let report = opened.verify(if daemon_running { &cut } else { &log }, key);
    let seconds = started.elapsed().as_secs_f64();
    let genesis = log
        .prefix
        .as_ref()
        .map(|p| p.genesis.bytes)
        .or_else(|| log.entries.first().map(|e| e.bytes));
    let keys = genesis
        .and_then(|g| Entry::parse(g).ok())
        .and_then(|e| KeySet::from_genesis(&e.record.body).ok());
    let mut checkpoints = Checkpoints::new();
    let notes = cut
        .checkpoints
        .iter()
        .map(|c| c.bytes)
        .chain(log.prefix.as_ref().map(|p| p.checkpoint));
    for bytes in notes {
        if let Some(cp) = keys.as_ref().and_then(|k| Checkpoint::open(bytes, k).ok()) {
            checkpoints.insert(cp.size, (B64.encode(cp.root), bytes.to_vec()));
        }
    }
    let first_stored = report.from.saturating_sub(u64::from(report.from > 0));
    let held = first_stored + log.entries.len() as u64;
    let records = cut
        .entries
        .par_iter()
        .filter_map(|s| Entry::parse(s.bytes).ok().map(|e| e.record))
        .collect();
    Ok(LogAt {
        records,
        seconds,
        note: cut
            .checkpoints
            .last()
            .map(|c| c.bytes.to_vec())
            .unwrap_or_default(),
        checkpoints,
        left_out: held.saturating_sub(checkpoint.size),
        daemon_running,
        kind: match (opened.is_bundle(), log.prefix.is_some()) {
            (false, _) => "ledger",
            (true, false) => "bundle",
            (true, true) => "incremental bundle",
        },
        report,
        checkpoint,
    })
}
