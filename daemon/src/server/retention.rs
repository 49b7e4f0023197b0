//! Payload retention. Under `ledger.payloads = "erase-after-days"` cairnd
//! erases, at start and then every hour, the payloads stored more than
//! `ledger.erase_after_days` days ago. Erasing is an action like any other:
//! the `ledger.payloads_erased` record (how many, stored before when, under
//! which setting) is durable before a byte is erased, and if the gate
//! refuses it nothing is erased.

use std::time::Duration;

use cairn_attest::payload::PayloadPolicy;
use cairn_attest::{Actor, RecordDraft};

use super::gate::Gate;

/// How often the retention runs after the one at start.
const EVERY: Duration = Duration::from_secs(3600);

/// Starts the retention under `erase-after-days`; it ends when `stop`
/// turns true.
pub(super) fn spawn(
    gate: Gate,
    policy: PayloadPolicy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let PayloadPolicy::EraseAfterDays(days) = policy else {
        return None;
    };
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let g = gate.clone();
            match tokio::task::spawn_blocking(move || erase_once(&g, days)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(
                    payloads = n,
                    days,
                    "payloads erased (ledger.erase_after_days)"
                ),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "payload retention failed; nothing more was erased")
                }
                Err(e) => tracing::error!(error = %e, "payload retention stopped"),
            }
        }
    }))
}

/// Records and erases what is due; how many payloads were erased.
fn erase_once(gate: &Gate, days: u32) -> cairn_attest::Result<u64> {
    let handle = tokio::runtime::Handle::current();
    gate.ledger()
        .erase_expired_payloads(|count, stored_before| {
            let draft = RecordDraft::new(
                "ledger.payloads_erased",
                Actor::System {
                    name: "payload-retention".into(),
                },
                serde_json::json!({
                    "payloads": count,
                    "stored_before": stored_before,
                    "erase_after_days": days,
                }),
            );
            handle
                .block_on(gate.pass(draft))
                .map(|_| ())
                .map_err(|e| cairn_attest::Error::Invalid(e.message))
        })
}
