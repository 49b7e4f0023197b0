//! The TPM at start: check the rollback counter against the ledger (each
//! outcome that changes something is a record), then bind every later
//! checkpoint to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use cairn_attest::{Actor, RecordDraft};
use cairn_hw::tpm::checkpoint_quote::{attest_checkpoint, AkJson, CheckpointQuote};
use cairn_hw::tpm::{with_tpm, SharedTpm, COUNTER_NV_INDEX};

use super::Gate;
use crate::tpm::{check_counter, CounterBinding, CounterCheck, OpenTpm};

/// The TPM of a running daemon.
pub struct TpmState {
    /// Which TPM.
    pub describe: String,
    /// The TPM itself, shared.
    tpm: SharedTpm,
    /// The latest checkpoints quoted for exports, by size.
    attested: Mutex<BTreeMap<u64, CheckpointQuote>>,
    /// The counter bound to checkpoints.
    pub binding: Arc<CounterBinding>,
    /// What the start-up check found: `bound`, `in-step`, `caught-up` or
    /// `rollback-accepted`.
    pub check: &'static str,
}

/// How many quoted checkpoints [`TpmState`] remembers for export records.
const ATTESTED_KEPT: usize = 16;

impl TpmState {
    /// Extends PCR 23 with the checkpoint note of `size` records and quotes
    /// it (`tpm-quote.json`), remembering the quote for the export's
    /// record. Blocking: call from a blocking thread.
    pub fn attest(&self, size: u64, note: &[u8]) -> anyhow::Result<CheckpointQuote> {
        let q = with_tpm(&self.tpm, |t| attest_checkpoint(t, note))?;
        let mut kept = self.attested.lock().unwrap_or_else(|p| p.into_inner());
        kept.insert(size, q.clone());
        while kept.len() > ATTESTED_KEPT {
            kept.pop_first();
        }
        Ok(q)
    }

    /// What the `ledger.export` record of an export of `size` records says
    /// about the TPM: the PCR 23 value after the checkpoint was extended
    /// into it, when this daemon quoted it.
    pub fn export_facts(&self, size: u64) -> Option<serde_json::Value> {
        let kept = self.attested.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&size).map(|q| {
            serde_json::json!({
                "pcr": q.pcr,
                "value": q.pcrs.get(&q.pcr.to_string()),
                "checkpoint_sha256": q.checkpoint_sha256,
            })
        })
    }

    /// For `/healthz` and the `daemon.start` record.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "device": self.describe,
            "counter": self.binding.counter(),
            "check": self.check,
            "problem": self.binding.problem(),
        })
    }
}

/// Checks the TPM's counter against the ledger behind `gate` and binds the
/// ledger's checkpoints to it. A mismatch is recorded
/// (`tpm.rollback_detected`) and refuses the start, unless `accept` (the
/// operator's `--accept-rollback`), which is recorded as
/// `tpm.rollback_accepted`.
pub async fn bind(
    gate: &Gate,
    opened: &OpenTpm,
    accept: bool,
    min_interval: Duration,
    state_dir: &Path,
) -> anyhow::Result<TpmState> {
    let describe = opened.describe();
    let ledger = gate.ledger().clone();
    let check = on_tpm(&opened.tpm, move |t| check_counter(&ledger, t)).await?;
    let system = Actor::System {
        name: "cairnd".into(),
    };
    let pass = |kind: &'static str, actor: Actor, body: serde_json::Value| async move {
        gate.pass(RecordDraft::new(kind, actor, body))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))
    };
    let ak = || on_tpm(&opened.tpm, |t| Ok(with_tpm(t, |t| t.ak_public())?));
    let (counter, check) = match check {
        CounterCheck::Bound(v) => {
            let body = serde_json::json!({
                "tpm": describe,
                "nv_index": format!("{COUNTER_NV_INDEX:#010x}"),
                "counter": v,
                "attestation_key": AkJson::from(&ak().await?),
            });
            pass("tpm.counter_bound", system, body).await?;
            (v, "bound")
        }
        CounterCheck::InStep(v) => (v, "in-step"),
        CounterCheck::CaughtUp(v) => (v, "caught-up"),
        CounterCheck::Mismatch(m) if !accept => {
            pass("tpm.rollback_detected", system, m.body(&describe)).await?;
            bail!("{}", m.explain(state_dir));
        }
        CounterCheck::Mismatch(m) => {
            let v = match m.tpm_counter {
                Some(v) => v,
                None => {
                    on_tpm(&opened.tpm, |t| Ok(with_tpm(t, |t| t.counter_increment())?)).await?
                }
            };
            let mut body = m.body(&describe);
            body["continues_from"] = v.into();
            body["attestation_key"] = serde_json::to_value(AkJson::from(&ak().await?))?;
            pass("tpm.rollback_accepted", operator(), body).await?;
            (v, "rollback-accepted")
        }
    };
    let binding = Arc::new(CounterBinding::new(
        opened.tpm.clone(),
        counter,
        min_interval,
    ));
    gate.ledger().set_checkpoint_hook(binding.clone());
    Ok(TpmState {
        describe,
        tpm: opened.tpm.clone(),
        attested: Mutex::new(BTreeMap::new()),
        binding,
        check,
    })
}

/// A start without a TPM: a ledger whose newest checkpoint carries a TPM
/// counter was bound to one, and starting it without is refused (the
/// rollback check would be skipped) unless `accept` (`--accept-rollback`),
/// recorded as `tpm.removed`. `--accept-rollback` without a TPM and
/// without a binding is an error.
pub async fn without_tpm(gate: &Gate, accept: bool) -> anyhow::Result<()> {
    let bound = gate
        .ledger()
        .latest_checkpoint()
        .and_then(|(cp, _)| cp.tpm_counter().map(|c| (c, cp.size)));
    match (bound, accept) {
        (None, false) => Ok(()),
        (None, true) => bail!("--accept-rollback: no TPM is configured (hw.tpm), and the ledger is not bound to one"),
        (Some((counter, size)), false) => bail!(
            "this ledger is bound to a TPM (its checkpoint of size {size} carries TPM counter {counter}) but no TPM is configured: set hw.tpm, or, to go on without one (no rollback detection), start once with --accept-rollback (recorded as tpm.removed)"
        ),
        (Some((counter, size)), true) => {
            let body = serde_json::json!({"ledger_counter": counter, "checkpoint_size": size});
            gate.pass(RecordDraft::new("tpm.removed", operator(), body))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            Ok(())
        }
    }
}

/// Runs blocking TPM (and ledger) work off the async runtime.
async fn on_tpm<T: Send + 'static>(
    tpm: &SharedTpm,
    f: impl FnOnce(&SharedTpm) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let tpm = tpm.clone();
    tokio::task::spawn_blocking(move || f(&tpm)).await?
}

/// Whoever started this cairnd (the operator who gave `--accept-rollback`).
fn operator() -> Actor {
    Actor::Unix {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        pid: std::process::id() as i32,
        exe: std::env::current_exe()
            .ok()
            .map(|p| p.display().to_string()),
    }
}
