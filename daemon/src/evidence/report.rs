//! The report's data: what `cairn evidence --format json` prints and what
//! the HTML shows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::framework::{Criterion, Framework, Topic};
use super::layer::Layer;
use super::models::ModelFacts;

/// The report format identifier.
pub const FORMAT: &str = "cairn-evidence/v1";

/// The most items of one long list (denials, failures) a report carries;
/// the totals count them all.
pub const MAX_ITEMS: usize = 1000;

/// An evidence report.
#[derive(Debug, Serialize)]
pub struct Evidence {
    /// [`FORMAT`].
    pub format: &'static str,
    /// When the report was made (RFC 3339 UTC).
    pub generated: String,
    /// The period reported on.
    pub period: PeriodInfo,
    /// The frameworks its findings are mapped to.
    pub frameworks: Vec<Framework>,
    /// The log it was computed from.
    pub source: Source,
    /// The signed checkpoint it was computed at: its records are exactly
    /// the records this checkpoint commits to.
    pub checkpoint: Option<CheckpointInfo>,
    /// The verification of the log.
    pub verification: Verification,
    /// Counts over the period.
    pub summary: Summary,
    /// The findings, each mapped to criteria.
    pub findings: Vec<Finding>,
    /// The period's records by responsibility layer.
    pub layers: Vec<LayerSummary>,
    /// The models that served requests in the period.
    pub models: Vec<ModelUse>,
    /// Model, configuration and key changes in the period.
    pub changes: Vec<Change>,
    /// Re-assessment triggers and reviews.
    pub reassessment: Reassessment,
    /// Callers refused in the period.
    pub access_denials: Denials,
    /// What went wrong in the period, as far as the ledger shows it.
    pub gate_failures: Failures,
    /// Exports and anchors (of the whole log up to the checkpoint; each
    /// says whether it falls in the period) and the period's gaps.
    pub exports: Exports,
    /// The data behind the charts.
    pub charts: Charts,
}

/// The period.
#[derive(Debug, Serialize)]
pub struct PeriodInfo {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// Days in it.
    pub days: u64,
    /// What the reader must know about it (empty, before the log, …).
    pub notes: Vec<String>,
}

/// Where the records came from.
#[derive(Debug, Serialize)]
pub struct Source {
    /// The path given.
    pub path: String,
    /// `ledger`, `bundle` or `incremental bundle`.
    pub kind: String,
    /// Whether a running daemon checkpointed it for this report.
    pub daemon_running: bool,
    /// The log's origin.
    pub origin: Option<String>,
    /// The identity key's fingerprint.
    pub identity_fingerprint: Option<String>,
    /// Whether the fingerprint was pinned with `--key` (and matched, unless
    /// verification says otherwise).
    pub key_pinned: bool,
}

/// The checkpoint the report was computed at.
#[derive(Debug, Serialize)]
pub struct CheckpointInfo {
    /// Records it covers.
    pub size: u64,
    /// Its Merkle root, base64.
    pub root: String,
    /// The signed note, as stored.
    pub note: String,
}

/// The verification result.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// Whether everything held.
    pub ok: bool,
    /// Records in the log.
    pub records: u64,
    /// The first record stored in full (an incremental bundle's `F`).
    pub from: u64,
    /// Checkpoints examined.
    pub checkpoints: u64,
    /// Records covered by the largest valid checkpoint.
    pub checkpointed_size: u64,
    /// Problems found.
    pub problems: usize,
    /// The first problems (at most 20).
    pub findings: Vec<Problem>,
    /// Records after the checkpoint, left out of the report.
    pub left_out: u64,
    /// Seconds verification took.
    pub seconds: f64,
}

/// One verification problem.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Where.
    pub subject: String,
    /// Why.
    pub why: String,
}

/// Counts over the period.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Records in the period.
    pub records: u64,
    /// The first sequence number in it.
    pub first_seq: Option<u64>,
    /// The last sequence number in it.
    pub last_seq: Option<u64>,
    /// The log's first record's time.
    pub log_first_time: Option<String>,
    /// The last reported record's time.
    pub log_last_time: Option<String>,
    /// Records per kind in the period.
    pub by_kind: BTreeMap<String, u64>,
    /// Inference requests in the period.
    pub requests: u64,
    /// Distinct callers of inference requests (users and executables, or
    /// tokens).
    pub callers: u64,
}

/// A finding's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Holds.
    Pass,
    /// Informational.
    Info,
    /// Needs someone's attention.
    Attention,
    /// Does not hold.
    Fail,
}

/// One finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// What it is about.
    pub topic: Topic,
    /// A one-line title.
    pub title: String,
    /// The verdict.
    pub status: Status,
    /// The layer answerable for it.
    pub layer: Layer,
    /// What the ledger shows.
    pub detail: String,
    /// Records that show it (sequence numbers; at most 20).
    pub evidence: Vec<u64>,
    /// The criteria of the chosen frameworks it is evidence for.
    pub criteria: Vec<Criterion>,
}

/// The period's records of one layer.
#[derive(Debug, Serialize)]
pub struct LayerSummary {
    /// The layer.
    pub layer: Layer,
    /// Its name.
    pub title: &'static str,
    /// What it answers for.
    pub duty: &'static str,
    /// Records per kind.
    pub kinds: BTreeMap<String, u64>,
    /// Records in all.
    pub records: u64,
}

/// One model's use in the period.
#[derive(Debug, Serialize)]
pub struct ModelUse {
    /// Its digest.
    pub digest: String,
    /// Names requests used for it.
    pub names: Vec<String>,
    /// The time of its first request in the period.
    pub first_use: String,
    /// The time of its last request in the period.
    pub last_use: String,
    /// Requests.
    pub requests: u64,
    /// Results, by finish reason.
    pub finish_reasons: BTreeMap<String, u64>,
    /// `inference.failed` answers.
    pub failed: u64,
    /// `inference.aborted` answers.
    pub aborted: u64,
    /// Prompt tokens of its results.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Its last `model.loaded` record up to the checkpoint, if the log
    /// holds one.
    pub facts: Option<ModelFacts>,
}

/// A change of model, configuration or keys.
#[derive(Debug, Serialize)]
pub struct Change {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// Its kind.
    pub kind: String,
    /// Who made it.
    pub actor: String,
    /// What changed.
    pub what: String,
    /// The layer.
    pub layer: Layer,
}

/// Re-assessment triggers and the reviews that cleared them.
#[derive(Debug, Default, Serialize)]
pub struct Reassessment {
    /// Reviews in the period.
    pub reviews: Vec<Review>,
    /// Triggers open at some time in the period.
    pub triggers: Vec<Trigger>,
    /// Triggers still open at the checkpoint.
    pub open: usize,
}

/// A `review.record`.
#[derive(Debug, Serialize)]
pub struct Review {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// The reviewer.
    pub reviewer: String,
    /// The reviewer's note.
    pub note: String,
    /// Triggers it cleared.
    pub cleared: usize,
}

/// A state not yet reviewed: a model digest, a configuration or a system
/// prompt first seen after the last review.
#[derive(Debug, Serialize)]
pub struct Trigger {
    /// `model`, `configuration` or `system prompt`.
    pub subject: &'static str,
    /// The digest.
    pub value: String,
    /// A name, where there is one (the model's).
    pub name: Option<String>,
    /// The record where it was first seen.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// The review that cleared it, if any.
    pub cleared_by: Option<u64>,
    /// That review's time.
    pub cleared_at: Option<String>,
}

/// Access denials.
#[derive(Debug, Default, Serialize)]
pub struct Denials {
    /// In the period.
    pub total: u64,
    /// Per caller and path.
    pub by_caller: Vec<DenialGroup>,
    /// The first [`MAX_ITEMS`].
    pub items: Vec<Denial>,
}

/// Denials of one caller on one path.
#[derive(Debug, Serialize)]
pub struct DenialGroup {
    /// The caller (user and executable, or token, without the process).
    pub caller: String,
    /// The path refused.
    pub path: String,
    /// How many times.
    pub count: u64,
    /// The first record.
    pub first_seq: u64,
}

/// One `access.denied` record.
#[derive(Debug, Serialize)]
pub struct Denial {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// The caller.
    pub caller: String,
    /// The path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Failures the ledger shows.
#[derive(Debug, Default, Serialize)]
pub struct Failures {
    /// In the period, by what.
    pub counts: BTreeMap<String, u64>,
    /// The first [`MAX_ITEMS`].
    pub items: Vec<Failure>,
    /// Requests without an answer at the checkpoint (still running then).
    pub in_flight: u64,
}

/// One failure.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// The record that shows it.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// `inference.failed`, `inference.aborted`, `model.load_failed`,
    /// `unclean stop` or `recovery`.
    pub what: String,
    /// Details.
    pub detail: String,
}

/// Exports, anchors and gaps.
#[derive(Debug, Default, Serialize)]
pub struct Exports {
    /// Every `ledger.export` up to the checkpoint.
    pub exports: Vec<Export>,
    /// Every `ledger.anchor` up to the checkpoint.
    pub anchors: Vec<Anchor>,
    /// Stretches of the period longer than the threshold without an export.
    pub gaps: Vec<Gap>,
    /// The threshold, in days.
    pub gap_days: f64,
    /// Sizes of exported checkpoints (exports in the period) that no
    /// anchor covers.
    pub unanchored: Vec<u64>,
}

/// One export.
#[derive(Debug, Serialize)]
pub struct Export {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// Whether it is in the period.
    pub in_period: bool,
    /// Who exported.
    pub actor: String,
    /// The bundle's name.
    pub bundle: String,
    /// Records exported (its checkpoint's size).
    pub records: u64,
    /// Whether its root and fingerprint are the log's (a verified
    /// checkpoint of that size has that root).
    pub matches_log: bool,
    /// Anchors of its checkpoint (their records).
    pub anchored_by: Vec<u64>,
    /// Why it failed, when a `ledger.export_failed` record says its
    /// bundle never got its name (it then counts as no export).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// One anchor, checked again here.
#[derive(Debug, Serialize)]
pub struct Anchor {
    /// The record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// Whether it is in the period.
    pub in_period: bool,
    /// Who imported it.
    pub actor: String,
    /// `rfc3161` or `opentimestamps`.
    pub kind: String,
    /// The checkpoint's size.
    pub checkpoint_size: u64,
    /// The authority's time (RFC 3161).
    pub gen_time: Option<String>,
    /// The authority (RFC 3161).
    pub tsa: Option<String>,
    /// `verified`, or why checking it again failed.
    pub check: String,
}

/// A stretch without an export.
#[derive(Debug, Serialize)]
pub struct Gap {
    /// From (an export, the period's start or the log's first record).
    pub from: String,
    /// To (the next export, or the period's end or last record).
    pub to: String,
    /// Its length in days.
    pub days: f64,
}

/// The data behind the charts.
#[derive(Debug, Default, Serialize)]
pub struct Charts {
    /// The period's days.
    pub days: Vec<String>,
    /// Requests per day per model.
    pub requests_per_day: Vec<Series>,
    /// Request-to-result times per day.
    pub latency: Vec<DayLatency>,
}

/// One model's requests per day.
#[derive(Debug, Serialize)]
pub struct Series {
    /// A label (the model's names).
    pub label: String,
    /// The digest.
    pub digest: String,
    /// Requests on each of [`Charts::days`].
    pub counts: Vec<u64>,
}

/// Request-to-result times of one day's answered requests, from record
/// times: `total` is the result record's time minus the request record's,
/// `outside_generation` that minus the generation time the result record
/// states (queueing, the request record's signing and fsync, tokenising).
#[derive(Debug, Serialize)]
pub struct DayLatency {
    /// The day.
    pub day: String,
    /// Results measured.
    pub results: u64,
    /// Median total, ms.
    pub total_p50_ms: f64,
    /// 95th percentile total, ms.
    pub total_p95_ms: f64,
    /// Median outside generation, ms.
    pub outside_p50_ms: f64,
    /// 95th percentile outside generation, ms.
    pub outside_p95_ms: f64,
}
