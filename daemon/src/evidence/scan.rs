//! One pass over the reported records: what ran, what changed, who was
//! refused, what failed, and the charts' data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_attest::Record;

use super::exports::{Checkpoints, Collector};
use super::layer::Layer;
use super::models::ModelFacts;
use super::period::{instant, Period};
use super::reassess::Tracker;
use super::report::{
    Change, Charts, DayLatency, Denial, DenialGroup, Denials, Exports, Failure, Failures, ModelUse,
    Reassessment, Series, Summary, MAX_ITEMS,
};
use super::{actor_label, caller_label, short};

/// What the scan needs besides the records.
pub(super) struct Context<'a> {
    /// The period.
    pub period: Period,
    /// The log's verified checkpoints.
    pub checkpoints: &'a Checkpoints,
    /// The log's identity fingerprint.
    pub fingerprint: Option<&'a str>,
    /// Longest stretch without an export that is not a gap, in days.
    pub gap_days: f64,
}

/// What the scan found.
pub(super) struct Scanned {
    pub summary: Summary,
    pub layers: BTreeMap<Layer, BTreeMap<String, u64>>,
    pub models: Vec<ModelUse>,
    pub changes: Vec<Change>,
    pub reassessment: Reassessment,
    pub denials: Denials,
    pub failures: Failures,
    pub exports: Exports,
    pub charts: Charts,
}

/// An inference request waiting for its answer.
struct Pending {
    time: String,
    day: Option<usize>,
    digest: String,
    in_period: bool,
}

/// A model's use, accumulated.
#[derive(Default)]
struct Use {
    names: BTreeSet<String>,
    first: String,
    last: String,
    requests: u64,
    finish: BTreeMap<String, u64>,
    failed: u64,
    aborted: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    per_day: Vec<u64>,
}

struct Scan<'a> {
    ctx: &'a Context<'a>,
    days: Vec<String>,
    summary: Summary,
    layers: BTreeMap<Layer, BTreeMap<String, u64>>,
    callers: BTreeSet<String>,
    facts: HashMap<String, ModelFacts>,
    pending: HashMap<u64, Pending>,
    uses: BTreeMap<String, Use>,
    latency: Vec<Vec<(f64, f64)>>,
    changes: Vec<Change>,
    last_config: Option<String>,
    running: bool,
    denials: Denials,
    denial_groups: BTreeMap<(String, String), (u64, u64)>,
    failures: Failures,
    tracker: Tracker,
    collector: Collector<'a>,
}

/// Scans `records` (in log order) for `ctx.period`.
pub(super) fn scan(records: &[Record], ctx: &Context<'_>) -> Scanned {
    let days = ctx.period.days();
    let mut s = Scan {
        ctx,
        latency: vec![Vec::new(); days.len()],
        days,
        summary: Summary::default(),
        layers: BTreeMap::new(),
        callers: BTreeSet::new(),
        facts: HashMap::new(),
        pending: HashMap::new(),
        uses: BTreeMap::new(),
        changes: Vec::new(),
        last_config: None,
        running: false,
        denials: Denials::default(),
        denial_groups: BTreeMap::new(),
        failures: Failures::default(),
        tracker: Tracker::default(),
        collector: Collector::new(ctx.checkpoints, ctx.fingerprint),
    };
    for r in records {
        s.record(r);
    }
    s.summary.log_first_time = records.first().map(|r| r.time.clone());
    s.summary.log_last_time = records.last().map(|r| r.time.clone());
    s.finish()
}

impl Scan<'_> {
    fn record(&mut self, r: &Record) {
        let in_period = self.ctx.period.contains(&r.time);
        if in_period {
            let s = &mut self.summary;
            s.records += 1;
            s.first_seq.get_or_insert(r.seq);
            s.last_seq = Some(r.seq);
            *s.by_kind.entry(r.kind.clone()).or_default() += 1;
            *self
                .layers
                .entry(Layer::of_kind(&r.kind))
                .or_default()
                .entry(r.kind.clone())
                .or_default() += 1;
        }
        self.tracker.apply(r);
        self.collector.apply(r, in_period);
        match r.kind.as_str() {
            "inference.request" => self.request(r, in_period),
            "inference.result" | "inference.failed" | "inference.aborted" => {
                self.answer(r, in_period)
            }
            "model.loaded" => {
                if let Some(f) = ModelFacts::of(r) {
                    if in_period {
                        self.change(
                            r,
                            format!(
                                "{} is {} ({} {})",
                                f.name,
                                f.digest,
                                f.arch.as_deref().unwrap_or("?"),
                                f.quantization.as_deref().unwrap_or("?")
                            ),
                        );
                    }
                    self.facts.insert(f.digest.clone(), f);
                }
            }
            "model.load" if in_period => {
                let b = &r.body;
                let swap = b["replaces"]
                    .as_str()
                    .map_or(String::new(), |d| format!(", replacing {}", short(d)));
                self.change(
                    r,
                    format!(
                        "load {} from {}{swap}",
                        b["name"].as_str().unwrap_or("?"),
                        b["path"].as_str().unwrap_or("?")
                    ),
                );
            }
            "model.unload" if in_period => self.change(
                r,
                format!(
                    "unload {} ({})",
                    r.body["name"].as_str().unwrap_or("?"),
                    r.model.as_deref().unwrap_or("?")
                ),
            ),
            "model.load_failed" if in_period => {
                let what = format!(
                    "loading {} failed: {}",
                    r.body["name"].as_str().unwrap_or("?"),
                    r.body["error"].as_str().unwrap_or("?")
                );
                self.fail(r, "model.load_failed", what.clone());
                self.change(r, what);
            }
            "daemon.start" => self.start(r, in_period),
            "daemon.stop" => self.running = false,
            "log.genesis" if in_period => {
                let fp = cairn_attest::KeySet::from_genesis(&r.body)
                    .map(|k| k.identity.fingerprint())
                    .unwrap_or_else(|_| "?".into());
                self.change(
                    r,
                    format!("the log's keys were published (identity fingerprint {fp})"),
                );
            }
            "access.denied" if in_period => self.denied(r),
            k if in_period && k.starts_with("key.") => {
                self.change(r, format!("key event {k}: {}", r.body))
            }
            _ => {}
        }
    }

    fn change(&mut self, r: &Record, what: String) {
        self.changes.push(Change {
            seq: r.seq,
            time: r.time.clone(),
            kind: r.kind.clone(),
            actor: actor_label(&r.actor),
            what,
            layer: Layer::of_kind(&r.kind),
        });
    }

    fn fail(&mut self, r: &Record, what: &str, detail: String) {
        *self.failures.counts.entry(what.to_owned()).or_default() += 1;
        if self.failures.items.len() < MAX_ITEMS {
            self.failures.items.push(Failure {
                seq: r.seq,
                time: r.time.clone(),
                what: what.to_owned(),
                detail,
            });
        }
    }

    fn request(&mut self, r: &Record, in_period: bool) {
        let digest = r.model.clone().unwrap_or_else(|| "(none)".into());
        let day = r
            .time
            .get(..10)
            .and_then(|d| self.days.iter().position(|x| x == d));
        if in_period {
            self.summary.requests += 1;
            self.callers.insert(caller_label(&r.actor));
            let n = self.days.len();
            let u = self.uses.entry(digest.clone()).or_insert_with(|| Use {
                first: r.time.clone(),
                per_day: vec![0; n],
                ..Use::default()
            });
            if let Some(name) = r.body["model_name"].as_str() {
                u.names.insert(name.to_owned());
            }
            u.last = r.time.clone();
            u.requests += 1;
            if let Some(d) = day {
                u.per_day[d] += 1;
            }
        }
        self.pending.insert(
            r.seq,
            Pending {
                time: r.time.clone(),
                day,
                digest,
                in_period,
            },
        );
    }

    fn answer(&mut self, r: &Record, in_period: bool) {
        let b = &r.body;
        match r.kind.as_str() {
            "inference.failed" if in_period => self.fail(
                r,
                "inference.failed",
                b["error"].as_str().unwrap_or("?").to_owned(),
            ),
            "inference.aborted" if in_period => self.fail(
                r,
                "inference.aborted",
                b["reason"].as_str().unwrap_or("?").to_owned(),
            ),
            _ => {}
        }
        let Some(req) = r
            .reference
            .as_ref()
            .and_then(|x| self.pending.remove(&x.seq))
        else {
            return;
        };
        if !req.in_period {
            return;
        }
        let Some(u) = self.uses.get_mut(&req.digest) else {
            return;
        };
        match r.kind.as_str() {
            "inference.result" => {
                let reason = b["finish_reason"].as_str().unwrap_or("?").to_owned();
                *u.finish.entry(reason).or_default() += 1;
                u.prompt_tokens += b["prompt_tokens"].as_u64().unwrap_or(0);
                u.completion_tokens += b["completion_tokens"].as_u64().unwrap_or(0);
                let t = &b["timings"];
                let generation =
                    t["prompt_ms"].as_f64().unwrap_or(0.0) + t["decode_ms"].as_f64().unwrap_or(0.0);
                if let (Some(day), Some(a), Some(z)) =
                    (req.day, instant(&req.time), instant(&r.time))
                {
                    let total = (z - a).as_seconds_f64() * 1000.0;
                    self.latency[day].push((total, (total - generation).max(0.0)));
                }
            }
            "inference.failed" => u.failed += 1,
            _ => u.aborted += 1,
        }
    }

    fn start(&mut self, r: &Record, in_period: bool) {
        let b = &r.body;
        let config = b["config_digest"].as_str().map(str::to_owned);
        if in_period {
            if self.running {
                self.fail(r, "unclean stop", "cairnd started again without a daemon.stop record before (a crash, kill or power loss)".into());
            }
            let rec = &b["recovered"];
            let torn = rec["torn_tail_bytes"].as_u64();
            let torn_payloads = rec["torn_payload_bytes"].as_u64();
            if torn.is_some() || torn_payloads.is_some() || rec["index_rebuilt"] == true {
                self.fail(r, "recovery", format!(
                    "opening the ledger repaired it: {} torn bytes of an unacknowledged write cut off, {} bytes of unacknowledged payloads cut off, index rebuilt: {}",
                    torn.unwrap_or(0),
                    torn_payloads.unwrap_or(0),
                    rec["index_rebuilt"] == true
                ));
            }
            if config != self.last_config {
                let what = match (&self.last_config, &config) {
                    (None, Some(c)) => format!("configuration {c} (first start in the log)"),
                    (Some(old), Some(c)) => format!("configuration changed from {old} to {c}"),
                    _ => "started without a configuration digest".to_owned(),
                };
                self.change(r, what);
            }
        }
        self.last_config = config;
        self.running = true;
    }

    fn denied(&mut self, r: &Record) {
        let path = r.body["path"].as_str().unwrap_or("?").to_owned();
        self.denials.total += 1;
        let g = self
            .denial_groups
            .entry((caller_label(&r.actor), path.clone()))
            .or_insert((0, r.seq));
        g.0 += 1;
        if self.denials.items.len() < MAX_ITEMS {
            self.denials.items.push(Denial {
                seq: r.seq,
                time: r.time.clone(),
                caller: actor_label(&r.actor),
                path,
                reason: r.body["reason"].as_str().unwrap_or("?").to_owned(),
            });
        }
    }

    fn finish(mut self) -> Scanned {
        self.summary.callers = self.callers.len() as u64;
        self.failures.in_flight = self.pending.values().filter(|p| p.in_period).count() as u64;
        self.denials.by_caller = std::mem::take(&mut self.denial_groups)
            .into_iter()
            .map(|((caller, path), (count, first_seq))| DenialGroup {
                caller,
                path,
                count,
                first_seq,
            })
            .collect();
        let series = self
            .uses
            .iter()
            .map(|(digest, u)| Series {
                label: label(u, digest),
                digest: digest.clone(),
                counts: u.per_day.clone(),
            })
            .collect();
        let latency = self
            .days
            .iter()
            .zip(&mut self.latency)
            .filter(|(_, v)| !v.is_empty())
            .map(|(day, v)| day_latency(day, v))
            .collect();
        let log_span = self
            .summary
            .log_first_time
            .as_deref()
            .zip(self.summary.log_last_time.as_deref());
        let exports = self
            .collector
            .finish(&self.ctx.period, log_span, self.ctx.gap_days);
        let models = std::mem::take(&mut self.uses)
            .into_iter()
            .map(|(digest, u)| ModelUse {
                facts: self.facts.get(&digest).cloned(),
                digest,
                names: u.names.into_iter().collect(),
                first_use: u.first,
                last_use: u.last,
                requests: u.requests,
                finish_reasons: u.finish,
                failed: u.failed,
                aborted: u.aborted,
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            })
            .collect();
        Scanned {
            summary: self.summary,
            layers: self.layers,
            models,
            changes: self.changes,
            reassessment: self.tracker.finish(&self.ctx.period),
            denials: self.denials,
            failures: self.failures,
            exports,
            charts: Charts {
                days: self.days,
                requests_per_day: series,
                latency,
            },
        }
    }
}

fn label(u: &Use, digest: &str) -> String {
    if u.names.is_empty() {
        short(digest)
    } else {
        u.names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Percentiles of one day's (total, outside generation) times.
fn day_latency(day: &str, v: &mut [(f64, f64)]) -> DayLatency {
    let mut totals: Vec<f64> = v.iter().map(|x| x.0).collect();
    let mut outside: Vec<f64> = v.iter().map(|x| x.1).collect();
    totals.sort_by(f64::total_cmp);
    outside.sort_by(f64::total_cmp);
    DayLatency {
        day: day.to_owned(),
        results: v.len() as u64,
        total_p50_ms: percentile(&totals, 0.5),
        total_p95_ms: percentile(&totals, 0.95),
        outside_p50_ms: percentile(&outside, 0.5),
        outside_p95_ms: percentile(&outside, 0.95),
    }
}

/// The nearest-rank percentile of sorted values, rounded to 0.1 ms.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1] * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
