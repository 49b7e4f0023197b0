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
    pub async fn pass(&self, draft: RecordDraft) -> Result<Receipt, ApiError> {
        let ledger = self.ledger.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || ledger.append(draft)).await;
        let result = match result {
            Ok(r) => r.map_err(|e| ApiError::gate(&e.to_string())),
            Err(_) => Err(ApiError::gate("the ledger task failed")),
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
