//! Watches the serial HSM that holds the identity key: probes it every
//! `hw.hsm_probe_ms`, records each loss (`hsm.lost`) and return
//! (`hsm.restored`), applies `hw.hsm_lost` to records, and checkpoints as
//! soon as the device is back. Checkpoints need no policy: the ledger signs
//! them with the HSM, which refuses at once while lost (fail closed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_attest::{Actor, RecordDraft};
use cairn_hw::hsm::{Health, HsmSigner};

use super::Gate;
use crate::config::{HsmLostPolicy, HwSection};

/// The HSM's state as last probed, for `/healthz`.
pub struct HsmReport(Mutex<serde_json::Value>);

impl HsmReport {
    /// The JSON `/healthz` shows under `hsm`.
    pub fn json(&self) -> serde_json::Value {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the HSM was lost at the last probe.
    pub fn lost(&self) -> bool {
        self.json()["state"] == "lost"
    }

    fn set(&self, v: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// At start: when the HSM did not answer (cairnd starts without it only
/// under `keep-signing`), records `hsm.lost`. Returns whether it is
/// present.
pub async fn record_if_absent(
    gate: &Gate,
    hsm: &HsmSigner,
    policy: HsmLostPolicy,
) -> anyhow::Result<bool> {
    let Health::Lost { why, .. } = hsm.health() else {
        return Ok(true);
    };
    tracing::error!(device = %hsm.path().display(), %why,
        "cairnd starts without the HSM holding the identity key: records are signed, no checkpoint until it is back");
    eprintln!(
        "cairnd: warning: the HSM at {} is absent ({why}): records continue (hw.hsm_lost = \"{}\"), no checkpoint is signed until it is back",
        hsm.path().display(),
        policy.label()
    );
    gate.pass(lost_record(hsm, &format!("absent at start: {why}"), policy))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(false)
}

/// The `hsm.lost` record.
fn lost_record(hsm: &HsmSigner, why: &str, policy: HsmLostPolicy) -> RecordDraft {
    RecordDraft::new(
        "hsm.lost",
        Actor::System {
            name: "hsm-monitor".into(),
        },
        serde_json::json!({
            "device": hsm.path().display().to_string(),
            "reason": why,
            "policy": policy.label(),
        }),
    )
}

/// Starts the monitor (`present`: whether the HSM answered at start); it
/// stops when `stop` turns true.
pub fn spawn(
    gate: Gate,
    hsm: Arc<HsmSigner>,
    present: bool,
    hw: HwSection,
    refusing: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Arc<HsmReport>, tokio::task::JoinHandle<()>) {
    let device = hsm.path().display().to_string();
    let report = Arc::new(HsmReport(Mutex::new(serde_json::json!({
        "device": device,
        "state": if present { "present" } else { "lost" },
        "holds": "identity",
    }))));
    let shown = report.clone();
    let actor = || Actor::System {
        name: "hsm-monitor".into(),
    };
    let task = tokio::spawn(async move {
        let every = Duration::from_millis(hw.hsm_probe_ms);
        let mut present = present;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(every) => {}
            }
            let h = hsm.clone();
            let Ok((health, status)) = tokio::task::spawn_blocking(move || h.probe()).await else {
                continue;
            };
            match health {
                Health::Lost { why, .. } => {
                    shown.set(serde_json::json!({
                        "device": device, "state": "lost", "holds": "identity",
                        "why": why, "policy": hw.hsm_lost.label(),
                    }));
                    if !present {
                        continue;
                    }
                    present = false;
                    tracing::error!(%device, %why, policy = hw.hsm_lost.label(),
                        "the HSM holding the identity key is lost: no checkpoint is signed until it is back");
                    if let Err(e) = gate.pass(lost_record(&hsm, &why, hw.hsm_lost)).await {
                        tracing::error!(error = %e.message, "cannot record the HSM's loss");
                    }
                    if hw.hsm_lost == HsmLostPolicy::RefuseRecords {
                        refusing.store(true, Ordering::SeqCst);
                    }
                }
                Health::Present => {
                    let counter = status.as_ref().map(|s| s.counter);
                    shown.set(serde_json::json!({
                        "device": device, "state": "present", "holds": "identity",
                        "counter": counter,
                        "firmware": status.as_ref().map(|s| s.firmware.clone()),
                    }));
                    if present {
                        continue;
                    }
                    present = true;
                    refusing.store(false, Ordering::SeqCst);
                    tracing::info!(%device, "the HSM holding the identity key is back");
                    let draft = RecordDraft::new(
                        "hsm.restored",
                        actor(),
                        serde_json::json!({"device": device, "counter": counter}),
                    );
                    if let Err(e) = gate.pass(draft).await {
                        tracing::error!(error = %e.message, "cannot record the HSM's return");
                    }
                    // Cover what was recorded meanwhile.
                    let ledger = gate.ledger().clone();
                    match tokio::task::spawn_blocking(move || ledger.checkpoint()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "checkpoint after the HSM's return failed")
                        }
                        Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
                    }
                }
            }
        }
    });
    (report, task)
}
