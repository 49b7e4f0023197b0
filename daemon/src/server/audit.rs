//! The read-only audit API: records, one record, proofs, checkpoints.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_attest::Ledger;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;

/// The most records one listing returns.
const MAX_LIMIT: u64 = 1000;

/// Runs a ledger read on a blocking thread (reads touch the disk).
pub(super) async fn on_ledger<T: Send + 'static>(
    s: &AppState,
    read: impl FnOnce(&Ledger) -> cairn_attest::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger: Arc<Ledger> = s.gate.ledger().clone();
    Ok(tokio::task::spawn_blocking(move || read(&ledger))
        .await
        .map_err(|_| ApiError::internal("the ledger read stopped unexpectedly"))??)
}

/// Bytes as they are stored (entries, notes, proofs are UTF-8 text).
fn stored_text(bytes: Vec<u8>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes)
}

#[derive(Deserialize)]
pub(super) struct Range {
    from: Option<u64>,
    limit: Option<u64>,
}

/// `GET /v1/audit/records?from=N&limit=M`: entries as stored (text).
pub(super) async fn records(
    State(s): State<AppState>,
    Query(r): Query<Range>,
) -> Result<impl IntoResponse, ApiError> {
    let from = r.from.unwrap_or(0);
    let limit = r.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let (size, entries) = on_ledger(&s, move |l| {
        Ok((l.size(), l.entries(from, from.saturating_add(limit))?))
    })
    .await?;
    let records: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| serde_json::json!({"seq": from + i as u64, "entry": String::from_utf8_lossy(e)}))
        .collect();
    Ok(Json(
        serde_json::json!({"size": size, "from": from, "records": records}),
    ))
}

/// `GET /v1/audit/records/{seq}`: one entry, exactly as stored.
pub(super) async fn record(
    State(s): State<AppState>,
    Path(seq): Path<u64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(stored_text(on_ledger(&s, move |l| l.entry(seq)).await?))
}

/// `GET /v1/audit/proof/{seq}`: a self-contained record proof (tlog-proof).
pub(super) async fn proof(
    State(s): State<AppState>,
    Path(seq): Path<u64>,
) -> Result<impl IntoResponse, ApiError> {
    let proof = on_ledger(&s, move |l| l.record_proof(seq)).await?;
    Ok(stored_text(proof.encode()))
}

#[derive(Deserialize)]
pub(super) struct Sizes {
    from: u64,
    to: u64,
}

/// `GET /v1/audit/consistency?from=M&to=N`: RFC 9162 consistency proof.
pub(super) async fn consistency(
    State(s): State<AppState>,
    Query(q): Query<Sizes>,
) -> Result<impl IntoResponse, ApiError> {
    let proof = on_ledger(&s, move |l| l.consistency_proof(q.from, q.to)).await?;
    let hashes: Vec<String> = proof.iter().map(|h| B64.encode(h)).collect();
    Ok(Json(
        serde_json::json!({"from": q.from, "to": q.to, "proof": hashes}),
    ))
}

/// `GET /v1/audit/checkpoint`: the latest signed checkpoint note.
pub(super) async fn checkpoint(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (_, bytes) = s
        .gate
        .ledger()
        .latest_checkpoint()
        .ok_or_else(|| ApiError::not_found("no checkpoint yet"))?;
    Ok(stored_text(bytes))
}

/// `POST /v1/audit/checkpoint`: checkpoint now and return it. A failure
/// to sign or store it is the gate's failure (503).
pub(super) async fn checkpoint_now(
    State(s): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let made = on_ledger(&s, |l| Ok(l.checkpoint())).await?;
    Ok(stored_text(
        made.map_err(|e| ApiError::gate(&e.to_string()))?,
    ))
}
