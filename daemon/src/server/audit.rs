//! The read-only audit API: records, one record, proofs, checkpoints.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;

/// The most records one listing returns.
const MAX_LIMIT: u64 = 1000;

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
    let ledger = s.gate.ledger().clone();
    let size = ledger.size();
    let from = r.from.unwrap_or(0);
    let limit = r.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let entries =
        tokio::task::spawn_blocking(move || ledger.entries(from, from.saturating_add(limit)))
            .await
            .map_err(|_| ApiError::internal("reading records failed"))??;
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
    let ledger = s.gate.ledger().clone();
    let entry = tokio::task::spawn_blocking(move || ledger.entry(seq))
        .await
        .map_err(|_| ApiError::internal("reading failed"))??;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], entry))
}

/// `GET /v1/audit/proof/{seq}`: a self-contained record proof (tlog-proof).
pub(super) async fn proof(
    State(s): State<AppState>,
    Path(seq): Path<u64>,
) -> Result<impl IntoResponse, ApiError> {
    let ledger = s.gate.ledger().clone();
    let proof = tokio::task::spawn_blocking(move || ledger.record_proof(seq))
        .await
        .map_err(|_| ApiError::internal("proof failed"))??;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        proof.encode(),
    ))
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
    let ledger = s.gate.ledger().clone();
    let proof = tokio::task::spawn_blocking(move || ledger.consistency_proof(q.from, q.to))
        .await
        .map_err(|_| ApiError::internal("proof failed"))??;
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
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes))
}

/// `POST /v1/audit/checkpoint`: checkpoint now and return it.
pub(super) async fn checkpoint_now(
    State(s): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let ledger = s.gate.ledger().clone();
    let bytes = tokio::task::spawn_blocking(move || ledger.checkpoint())
        .await
        .map_err(|_| ApiError::internal("checkpoint failed"))?
        .map_err(|e| ApiError::gate(&e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes))
}
