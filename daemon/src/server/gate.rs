//! The one gate every action passes: build the record, sign it, append it
//! durably, and only then act. If any step fails the action does not
//! happen and the caller gets 503 (fail closed).

use std::sync::Arc;
use std::time::Instant;

use cairn_attest::{Ledger, Receipt, RecordDraft};

use super::error::ApiError;
use super::metrics::Metrics;

/// The gate: the ledger and the metrics it reports to.
#[derive(Clone)]
pub struct Gate {
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// A gate over `ledger`.
    pub fn new(ledger: Arc<Ledger>, metrics: Arc<Metrics>) -> Self {
        Gate { ledger, metrics }
    }

    /// Records `draft` durably; the caller acts only on `Ok`.
    ///
    /// The record is sequenced on this task and signed and written on the
    /// ledger's threads, which wake this task when it is durable: no
    /// blocking-pool thread sits between the request and the ledger.
    pub async fn pass(&self, draft: RecordDraft) -> Result<Receipt, ApiError> {
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.ledger.append_then(draft, move |r| {
            let _ = tx.send(r);
        });
        let result = match rx.await {
            Ok(r) => r.map_err(|e| ApiError::gate(&e.to_string())),
            Err(_) => Err(ApiError::gate("the ledger dropped the record unanswered")),
        };
        self.metrics.gate(started.elapsed(), result.is_ok());
        if let Err(e) = &result {
            tracing::error!(error = %e.message, "gate refused an action");
        }
        result
    }

    /// The ledger behind the gate (for read-only audit requests).
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }
}
