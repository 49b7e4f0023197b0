//! Prometheus text-format metrics: request counts, tokens, gate latency
//! histogram, ledger size and checkpoint age.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the gate-latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// The daemon's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    tokens: AtomicU64,
    gate: Mutex<Histogram>,
    gate_failures: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, route: &str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
    }

    /// Counts generated tokens.
    pub fn tokens(&self, n: u64) {
        self.tokens.fetch_add(n, Ordering::Relaxed);
    }

    /// Observes one pass through the gate.
    pub fn gate(&self, took: Duration, ok: bool) {
        if !ok {
            self.gate_failures.fetch_add(1, Ordering::Relaxed);
        }
        let s = took.as_secs_f64();
        let mut h = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    /// The exposition text, with the ledger gauges supplied by the caller.
    pub fn render(&self, ledger_records: u64, checkpoint_age: Option<f64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP cairn_requests_total HTTP requests by route and status.\n# TYPE cairn_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "cairn_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP cairn_tokens_total Tokens generated.\n# TYPE cairn_tokens_total counter\ncairn_tokens_total {}\n",
            self.tokens.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP cairn_gate_seconds Time to sign and durably append one record.\n# TYPE cairn_gate_seconds histogram\n");
        let h = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "cairn_gate_seconds_bucket{{le=\"{b}\"}} {}\n",
                h.counts[i]
            ));
        }
        out.push_str(&format!("cairn_gate_seconds_bucket{{le=\"+Inf\"}} {}\ncairn_gate_seconds_sum {}\ncairn_gate_seconds_count {}\n", h.count, h.sum, h.count));
        out.push_str(&format!(
            "# HELP cairn_gate_failures_total Actions refused because the gate failed.\n# TYPE cairn_gate_failures_total counter\ncairn_gate_failures_total {}\n",
            self.gate_failures.load(Ordering::Relaxed)
        ));
        out.push_str(&format!("# HELP cairn_ledger_records Records in the ledger.\n# TYPE cairn_ledger_records gauge\ncairn_ledger_records {ledger_records}\n"));
        if let Some(age) = checkpoint_age {
            out.push_str(&format!(
                "# HELP cairn_checkpoint_age_seconds Seconds since the latest checkpoint.\n# TYPE cairn_checkpoint_age_seconds gauge\ncairn_checkpoint_age_seconds {age:.3}\n"
            ));
        }
        out
    }
}
