//! Exports and anchors, checked against the log's own checkpoints, and the
//! stretches of a period without an export.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_attest::{anchor, Record};
use sha2::{Digest, Sha256};

use super::actor_label;
use super::period::{instant, Period};
use super::report::{Anchor, Export, Exports, Gap};

/// The log's verified checkpoints by size: root (base64) and signed note.
pub type Checkpoints = BTreeMap<u64, (String, Vec<u8>)>;

/// Collects the exports and anchors of a log.
pub(super) struct Collector<'a> {
    checkpoints: &'a Checkpoints,
    fingerprint: Option<&'a str>,
    exports: Vec<Export>,
    anchors: Vec<Anchor>,
}

impl<'a> Collector<'a> {
    /// A collector checking against `checkpoints` and the log's identity
    /// fingerprint.
    pub(super) fn new(checkpoints: &'a Checkpoints, fingerprint: Option<&'a str>) -> Self {
        Collector {
            checkpoints,
            fingerprint,
            exports: Vec::new(),
            anchors: Vec::new(),
        }
    }

    /// Applies one record.
    pub(super) fn apply(&mut self, r: &Record, in_period: bool) {
        let b = &r.body;
        match r.kind.as_str() {
            "ledger.export" => {
                let records = b["records"].as_u64().unwrap_or(0);
                let root_ok = self
                    .checkpoints
                    .get(&records)
                    .is_some_and(|(root, _)| b["root"].as_str() == Some(root.as_str()));
                let fp_ok = self.fingerprint.is_some()
                    && b["identity_fingerprint"].as_str() == self.fingerprint;
                self.exports.push(Export {
                    seq: r.seq,
                    time: r.time.clone(),
                    in_period,
                    actor: actor_label(&r.actor),
                    bundle: b["bundle"].as_str().unwrap_or_default().to_owned(),
                    records,
                    matches_log: root_ok && fp_ok,
                    anchored_by: Vec::new(),
                    failed: None,
                });
            }
            // The export it points at never got its bundle: listed as
            // failed, and counted as no export.
            "ledger.export_failed" => {
                let reason = b["reason"].as_str().unwrap_or("no reason given");
                if let Some(failed) = &r.reference {
                    for e in self.exports.iter_mut().filter(|e| e.seq == failed.seq) {
                        e.failed = Some(format!("record {}: {reason}", r.seq));
                    }
                }
            }
            "ledger.anchor" => {
                let size = b["checkpoint_size"].as_u64().unwrap_or(0);
                self.anchors.push(Anchor {
                    seq: r.seq,
                    time: r.time.clone(),
                    in_period,
                    actor: actor_label(&r.actor),
                    kind: b["kind"].as_str().unwrap_or_default().to_owned(),
                    checkpoint_size: size,
                    gen_time: b["gen_time"].as_str().map(str::to_owned),
                    tsa: b["tsa"].as_str().map(str::to_owned),
                    check: match self.check_anchor(b, size) {
                        Ok(()) => "verified".to_owned(),
                        Err(why) => why,
                    },
                });
            }
            _ => {}
        }
    }

    /// Checks an anchor's receipt again, against the log's checkpoint of
    /// its size, as the daemon did before recording it.
    fn check_anchor(&self, b: &serde_json::Value, size: u64) -> Result<(), String> {
        let (_, note) = self
            .checkpoints
            .get(&size)
            .ok_or_else(|| format!("the log has no verified checkpoint of size {size}"))?;
        let digest = hex::encode(Sha256::digest(note));
        if b["checkpoint_sha256"].as_str() != Some(digest.as_str()) {
            return Err("its checkpoint digest is not the log's checkpoint".into());
        }
        let bytes = |k: &str| {
            b[k].as_str()
                .and_then(|s| B64.decode(s).ok())
                .ok_or_else(|| format!("its {k} is not base64"))
        };
        let receipt = bytes("receipt")?;
        match b["kind"].as_str() {
            Some("rfc3161") => {
                let cert = b["tsa_cert"].as_str().ok_or("no TSA certificate")?;
                anchor::verify_timestamp_response(
                    &receipt,
                    &bytes("request")?,
                    note,
                    cert.as_bytes(),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
            Some("opentimestamps") => match anchor::ots_digest(&receipt) {
                Ok(d) if hex::encode(d) == digest => Ok(()),
                Ok(_) => Err("the proof commits to another digest".into()),
                Err(e) => Err(e.to_string()),
            },
            other => Err(format!("unknown anchor kind {other:?}")),
        }
    }

    /// The exports and anchors, with the period's gaps longer than
    /// `gap_days` between `first` and `last` (the period's bounds, within
    /// the log's first and last record times).
    pub(super) fn finish(
        mut self,
        period: &Period,
        log_span: Option<(&str, &str)>,
        gap_days: f64,
    ) -> Exports {
        for e in &mut self.exports {
            e.anchored_by = self
                .anchors
                .iter()
                .filter(|a| a.checkpoint_size == e.records && a.check == "verified")
                .map(|a| a.seq)
                .collect();
        }
        let unanchored = self
            .exports
            .iter()
            .filter(|e| e.in_period && e.failed.is_none() && e.anchored_by.is_empty())
            .map(|e| e.records)
            .collect();
        let gaps = log_span
            .map(|span| gaps(period, span, &self.exports, gap_days))
            .unwrap_or_default();
        Exports {
            exports: self.exports,
            anchors: self.anchors,
            gaps,
            gap_days,
            unanchored,
        }
    }
}

/// Stretches longer than `gap_days` without an export, inside the period
/// and the log's span (first and last record times).
fn gaps(period: &Period, span: (&str, &str), exports: &[Export], gap_days: f64) -> Vec<Gap> {
    let (Some(first), Some(last)) = (instant(span.0), instant(span.1)) else {
        return Vec::new();
    };
    let start = period.start().max(first);
    let end = period.end().min(last);
    if start >= end {
        return Vec::new();
    }
    let mut points = vec![start];
    points.extend(
        exports
            .iter()
            .filter(|e| e.in_period && e.failed.is_none())
            .filter_map(|e| instant(&e.time))
            .filter(|t| *t > start && *t < end),
    );
    points.push(end);
    points
        .windows(2)
        .filter_map(|w| {
            let days = (w[1] - w[0]).as_seconds_f64() / 86_400.0;
            (days > gap_days).then(|| Gap {
                from: rfc3339(w[0]),
                to: rfc3339(w[1]),
                days: (days * 10.0).round() / 10.0,
            })
        })
        .collect()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
