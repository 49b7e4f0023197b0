//! The TPM at start: check the rollback counter against the ledger (each
//! outcome that changes something is a record), then bind every later
//! checkpoint to it.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use cairn_attest::{Actor, RecordDraft};
use cairn_hw::tpm::{with_tpm, COUNTER_NV_INDEX};

use super::Gate;
use crate::tpm::{check_counter, CounterBinding, CounterCheck, OpenTpm};

/// The TPM of a running daemon.
pub struct TpmState {
    /// Which TPM.
    pub describe: String,
    /// The counter bound to checkpoints.
    pub binding: Arc<CounterBinding>,
    /// What the start-up check found: `bound`, `in-step`, `caught-up` or
    /// `rollback-accepted`.
    pub check: &'static str,
}

impl TpmState {
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
    state_dir: &Path,
) -> anyhow::Result<TpmState> {
    let describe = opened.describe();
    let (ledger, tpm) = (gate.ledger().clone(), opened.tpm.clone());
    let check = tokio::task::spawn_blocking(move || check_counter(&ledger, &tpm)).await??;
    let system = Actor::System {
        name: "cairnd".into(),
    };
    let pass = |kind: &str, actor: Actor, body: serde_json::Value| {
        gate.pass(RecordDraft::new(kind, actor, body))
    };
    let (counter, check) = match check {
        CounterCheck::Bound(v) => {
            let ak = with_tpm(&opened.tpm, |t| t.ak_public())?;
            pass(
                "tpm.counter_bound",
                system,
                serde_json::json!({
                    "tpm": describe,
                    "nv_index": format!("{COUNTER_NV_INDEX:#010x}"),
                    "counter": v,
                    "attestation_key": crate::tpm::ak_json(&ak),
                }),
            )
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
            (v, "bound")
        }
        CounterCheck::InStep(v) => (v, "in-step"),
        CounterCheck::CaughtUp(v) => (v, "caught-up"),
        CounterCheck::Mismatch(m) if !accept => {
            pass("tpm.rollback_detected", system, m.body(&describe))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            bail!("{}", m.explain(state_dir));
        }
        CounterCheck::Mismatch(m) => {
            pass("tpm.rollback_accepted", operator(), m.body(&describe))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let v = match m.tpm_counter {
                Some(v) => v,
                None => with_tpm(&opened.tpm, |t| t.counter_increment())?,
            };
            (v, "rollback-accepted")
        }
    };
    let binding = Arc::new(CounterBinding::new(opened.tpm.clone(), counter));
    gate.ledger().set_checkpoint_hook(binding.clone());
    Ok(TpmState {
        describe,
        binding,
        check,
    })
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
