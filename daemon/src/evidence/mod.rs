//! Evidence reports for auditors (`cairn evidence`, `cairn inventory`):
//! computed from a verified log's records only — never from a side table —
//! at one signed checkpoint, so anyone holding the log can compute them
//! again. The scan (`scan`) finds what ran, what changed, who was refused,
//! what failed and what left the box; `findings` turns that into verdicts
//! mapped to the frameworks' criteria (`framework`) and grouped by
//! responsibility layer (`layer`); `html` renders them with `svg` charts.

mod exports;
mod findings;
pub mod framework;
pub mod html;
pub mod inventory;
pub mod layer;
pub mod models;
pub mod period;
mod reassess;
pub mod report;
mod scan;
mod svg;

use cairn_attest::{Actor, Record};

pub use exports::Checkpoints;
use framework::Framework;
use layer::Layer;
use period::Period;
use report::{CheckpointInfo, Evidence, LayerSummary, PeriodInfo, Source, Verification};

/// Everything a report is computed from.
pub struct Input<'a> {
    /// The records the checkpoint covers (those that parse), in order.
    pub records: &'a [Record],
    /// The period.
    pub period: Period,
    /// The frameworks to map to.
    pub frameworks: Vec<Framework>,
    /// Where the log came from.
    pub source: Source,
    /// The checkpoint the records are cut at.
    pub checkpoint: Option<CheckpointInfo>,
    /// The log's verification.
    pub verification: Verification,
    /// The log's verified checkpoints.
    pub checkpoints: &'a Checkpoints,
    /// Longest stretch without an export that is not a gap, in days.
    pub gap_days: f64,
    /// The report's time (RFC 3339).
    pub generated: String,
}

/// Computes the report.
pub fn build(input: Input<'_>) -> Evidence {
    let ctx = scan::Context {
        period: input.period,
        checkpoints: input.checkpoints,
        fingerprint: input.source.identity_fingerprint.as_deref(),
        gap_days: input.gap_days,
    };
    let sc = scan::scan(input.records, &ctx);
    let findings = findings::findings(&sc, &input.verification, &input.source, &input.frameworks);
    let layers = Layer::ALL
        .iter()
        .map(|&l| {
            let kinds = sc.layers.get(&l).cloned().unwrap_or_default();
            LayerSummary {
                layer: l,
                title: l.title(),
                duty: l.duty(),
                records: kinds.values().sum(),
                kinds,
            }
        })
        .collect();
    let notes = period_notes(&input.period, input.records, &input.verification);
    Evidence {
        format: report::FORMAT,
        generated: input.generated,
        period: PeriodInfo {
            from: period::day(input.period.from),
            to: period::day(input.period.to),
            days: input.period.days().len() as u64,
            notes,
        },
        frameworks: input.frameworks,
        source: input.source,
        checkpoint: input.checkpoint,
        verification: input.verification,
        summary: sc.summary,
        findings,
        layers,
        models: sc.models,
        changes: sc.changes,
        reassessment: sc.reassessment,
        access_denials: sc.denials,
        gate_failures: sc.failures,
        exports: sc.exports,
        charts: sc.charts,
    }
}

/// Why there is nothing to report on: the period ends before the log's
/// first record.
pub fn before_log(period: &Period, records: &[Record]) -> Option<String> {
    let first = records.first()?;
    let day = period::day_of(&first.time)?;
    (period.to < day).then(|| {
        format!(
            "the period {} to {} ends before the log's first record ({}): the log holds nothing about it",
            period::day(period.from),
            period::day(period.to),
            first.time
        )
    })
}

/// What a reader must know about the period.
fn period_notes(p: &Period, records: &[Record], v: &Verification) -> Vec<String> {
    let mut notes = Vec::new();
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        notes.push("The log holds no readable record.".into());
        return notes;
    };
    if !records.iter().any(|r| p.contains(&r.time)) {
        notes.push(format!(
            "No record in this period: the records reported on run from {} to {}.",
            first.time, last.time
        ));
    }
    if period::day_of(&first.time).is_some_and(|d| p.from < d) {
        let what = if v.from > 0 {
            "this bundle's first record"
        } else {
            "the log's first record"
        };
        notes.push(format!(
            "The period starts before {what} ({}): the days before it are not covered.",
            first.time
        ));
    }
    if period::day_of(&last.time).is_some_and(|d| p.to > d) {
        notes.push(format!(
            "The period ends after the last record reported on ({}, the checkpoint's last record).",
            last.time
        ));
    }
    notes
}

/// An actor as a report shows it.
pub fn actor_label(a: &Actor) -> String {
    match a {
        Actor::Unix { uid, gid, pid, exe } => {
            let exe = exe.as_deref().map_or(String::new(), |e| format!(" {e}"));
            format!("uid {uid} (gid {gid}, pid {pid}{exe})")
        }
        Actor::Token { name } => format!("token {name}"),
        Actor::System { name } => format!("system {name}"),
    }
}

/// Who an actor is, without the process: `uid 1000 /usr/bin/python3`,
/// `token NAME`, `system NAME` (callers are grouped by it).
pub fn caller_label(a: &Actor) -> String {
    match a {
        Actor::Unix { uid, exe, .. } => match exe {
            Some(e) => format!("uid {uid} {e}"),
            None => format!("uid {uid}"),
        },
        other => actor_label(other),
    }
}

/// A digest shortened for labels: `blake3:5f1e0c9d2a7b`.
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.get(..12).unwrap_or(hex)),
        None => digest.get(..16).unwrap_or(digest).to_owned(),
    }
}
