//! Administration (`/v1/admin/…`): load, swap and unload models at run
//! time, record exports of the log, and disclose kept payloads, each
//! through the gate. Only
//! administrators may (see [`super::identity::may_administer`]); anyone
//! else gets 403 and an `access.denied` record.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_attest::{Actor, RecordDraft};
use serde::Deserialize;

use super::audit::on_ledger;
use super::error::ApiError;
use super::identity::may_administer;
use super::openai::parse;
use super::{AppState, Caller};

/// `POST /v1/admin/models`: `{"name": …, "path": …}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddModel {
    name: String,
    path: PathBuf,
}

/// Refuses (with an `access.denied` record) callers who may not administer
/// (`action`: what they tried, for the message).
pub(super) async fn require_admin(
    s: &AppState,
    caller: &Caller,
    what: &str,
    action: &str,
) -> Result<(), ApiError> {
    if may_administer(&caller.0, &s.config.tokens, &s.config.access) {
        return Ok(());
    }
    let why = format!("{action} needs an administrator (root, cairnd's user, [access] admin_uids or an admin token)");
    s.gate
        .pass(RecordDraft::new(
            "access.denied",
            caller.0.clone(),
            serde_json::json!({"path": what, "reason": why}),
        ))
        .await?;
    Err(ApiError::forbidden(&why))
}

/// 201 with the receipt of the record an admin request wrote.
fn recorded(receipt: &cairn_attest::Receipt) -> Response {
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"cairn": {"record": receipt}})),
    )
        .into_response()
}

/// A model name clients can type and a record can hold: 1–64 characters
/// of ASCII letters, digits, `.`, `_` and `-`, not starting with `.`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Loads (or swaps) a model.
pub(super) async fn add_model(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/models", "model management").await?;
    let req: AddModel = parse(body, s.config.limits.max_body_bytes).await?;
    if !valid_name(&req.name) {
        return Err(ApiError::bad_request(
            "model names are 1-64 characters of letters, digits, '.', '_' and '-'",
        ));
    }
    if !req.path.is_absolute() {
        return Err(ApiError::bad_request(
            "the model path must be absolute (it is read by cairnd)",
        ));
    }
    let (model, receipt) = s.pool.load(&s.gate, caller.0, &req.name, &req.path).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": model.name,
            "digest": model.digest,
            "arch": model.engine.arch(),
            "context": model.engine.context_len(),
            "cairn": {"record": receipt},
        })),
    )
        .into_response())
}

/// Unloads a model.
pub(super) async fn remove_model(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/models", "model management").await?;
    let receipt = s.pool.unload(&s.gate, caller.0, &name).await?;
    Ok(Json(serde_json::json!({"id": name, "cairn": {"record": receipt}})).into_response())
}

/// `POST /v1/admin/exports`: what `cairn export` wrote.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportDone {
    bundle: String,
    records: u64,
    root: String,
    identity_fingerprint: String,
    sums_sha256: String,
    /// The USB stick, for `cairn export --usb`.
    #[serde(default)]
    medium: Option<super::records::ExportMedium>,
}

/// Records an export of the log (`ledger.export`), after checking that it
/// describes this log: its root at that size and its identity key.
pub(super) async fn record_export(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/exports", "recording an export").await?;
    let e: ExportDone = parse(body, s.config.limits.max_body_bytes).await?;
    let hex64 = |v: &str| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
    if !e.bundle.starts_with("cairn-export-")
        || e.bundle.len() > 128
        || !e
            .bundle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || !hex64(&e.sums_sha256)
    {
        return Err(ApiError::bad_request(
            "not an export: bundle must be a cairn-export-… name and sums_sha256 64 hex digits",
        ));
    }
    if e.medium.as_ref().is_some_and(|m| !m.is_plausible()) {
        return Err(ApiError::bad_request(
            "medium: label, uuid, serial, model and device must be printable, at most 128 bytes each",
        ));
    }
    let size = e.records;
    let root = on_ledger(&s, move |l| Ok(l.root(size)))
        .await?
        .map_err(|err| ApiError::bad_request(format!("no root at size {size}: {err}")))?;
    let fingerprint = s.gate.ledger().keys().identity.fingerprint();
    if B64.encode(root) != e.root || fingerprint != e.identity_fingerprint {
        return Err(ApiError::bad_request(
            "the export's root or identity is not this log's",
        ));
    }
    let receipt = s
        .gate
        .pass(super::records::export(
            caller.0,
            &super::records::ExportFacts {
                bundle: &e.bundle,
                records: e.records,
                root: &e.root,
                identity_fingerprint: &e.identity_fingerprint,
                sums_sha256: &e.sums_sha256,
                medium: e.medium.as_ref(),
                tpm: s.tpm.as_ref().and_then(|t| t.export_facts(e.records)),
            },
        ))
        .await?;
    Ok(recorded(&receipt))
}

/// `POST /v1/admin/exports/failed`: `{"record": SEQ, "reason": …}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFailed {
    record: u64,
    reason: String,
}

/// Records that an export whose `ledger.export` record (`record`) was
/// written did not get its name after all (`ledger.export_failed`, pointing
/// at it): the stick was pulled, the rename failed.
pub(super) async fn record_export_failed(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    require_admin(
        &s,
        &caller,
        "/v1/admin/exports/failed",
        "recording a failed export",
    )
    .await?;
    let f: ExportFailed = parse(body, s.config.limits.max_body_bytes).await?;
    if f.reason.is_empty() || f.reason.len() > 1024 || f.reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "reason: 1 to 1024 bytes of printable text",
        ));
    }
    let seq = f.record;
    // The newest export, not declared failed yet, by the caller who made
    // it (cairn export reports its own failure).
    let found = on_ledger(&s, move |l| {
        for at in (0..l.size()).rev() {
            let bytes = l.entry(at)?;
            let entry = cairn_attest::entry::Entry::parse(&bytes)?;
            let r = &entry.record;
            match r.kind.as_str() {
                "ledger.export_failed" if r.reference.as_ref().is_some_and(|x| x.seq == seq) => {
                    return Ok(Err(format!("export {seq} is already recorded as failed")));
                }
                "ledger.export" if at == seq => return Ok(Ok((r.clone(), entry.hash()))),
                "ledger.export" => {
                    return Ok(Err(format!(
                        "record {seq} is not the newest export (record {at} is)"
                    )))
                }
                _ => {}
            }
        }
        Ok(Err(format!("record {seq} is not an export")))
    })
    .await?
    .map_err(ApiError::bad_request)?;
    let (record, hash) = found;
    let same = match (&record.actor, &caller.0) {
        (Actor::Unix { uid: a, .. }, Actor::Unix { uid: b, .. }) => a == b,
        (Actor::Token { name: a }, Actor::Token { name: b }) => a == b,
        _ => false,
    };
    if !same {
        return Err(ApiError::forbidden(
            "only the user (or token) who made an export can record that it failed",
        ));
    }
    let bundle = record.body["bundle"].as_str().unwrap_or_default();
    let export = cairn_attest::record::RecordRef {
        seq,
        hash: hash.to_hex(),
    };
    let receipt = s
        .gate
        .pass(super::records::export_failed(
            caller.0, export, bundle, &f.reason,
        ))
        .await?;
    Ok(recorded(&receipt))
}

/// `POST /v1/admin/tpm/quote`: `{"checkpoint": base64 note}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteAsk {
    checkpoint: String,
}

/// Extends PCR 23 with one of this log's stored checkpoints and answers
/// with the TPM's quote over it (`tpm-quote.json`, FORMAT.md §9), for
/// `cairn export` to put into the bundle; 404 without a TPM.
pub(super) async fn tpm_quote(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/tpm/quote", "a TPM quote").await?;
    let tpm = s
        .tpm
        .clone()
        .ok_or_else(|| ApiError::not_found("this cairnd has no TPM (hw.tpm)"))?;
    let ask: QuoteAsk = parse(body, s.config.limits.max_body_bytes).await?;
    let note = B64
        .decode(&ask.checkpoint)
        .map_err(|_| ApiError::bad_request("checkpoint: not base64"))?;
    let cp = cairn_attest::checkpoint::Checkpoint::open(&note, s.gate.ledger().keys())
        .map_err(|e| ApiError::bad_request(format!("not a checkpoint of this log: {e}")))?;
    let size = cp.size;
    let stored = on_ledger(&s, move |l| l.checkpoint_at(size)).await?;
    if stored.as_deref() != Some(note.as_slice()) {
        return Err(ApiError::bad_request(format!(
            "this log stored no such checkpoint of size {size}"
        )));
    }
    let quote = tokio::task::spawn_blocking(move || tpm.attest(size, &note))
        .await
        .map_err(|_| ApiError::internal("the TPM call stopped unexpectedly"))?
        .map_err(|e| ApiError::device(format!("the TPM did not quote: {e:#}")))?;
    Ok(Json(quote).into_response())
}

/// `POST /v1/admin/anchors`: a timestamp receipt for one of the log's
/// checkpoints, as `cairn anchor import` sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorImport {
    checkpoint_size: u64,
    /// `rfc3161` or `opentimestamps`.
    kind: String,
    /// The receipt (`.tsr` or `.ots`), base64.
    receipt: String,
    /// RFC 3161 only: the request (`.tsq`), base64, and the TSA's
    /// certificate, PEM.
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    tsa_cert: Option<String>,
}

/// The largest receipt, request or certificate accepted.
const MAX_ANCHOR_BYTES: usize = 64 * 1024;

/// Records a timestamp receipt (`ledger.anchor`) after verifying it
/// against the daemon's own checkpoint of that size: an RFC 3161 response
/// must timestamp that checkpoint, answer the request and be signed by the
/// given TSA certificate; an OpenTimestamps proof must commit to the
/// checkpoint's SHA-256.
pub(super) async fn record_anchor(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    use cairn_attest::anchor;
    use sha2::{Digest, Sha256};

    require_admin(&s, &caller, "/v1/admin/anchors", "importing an anchor").await?;
    let a: AnchorImport = parse(body, s.config.limits.max_body_bytes).await?;
    let decode = |what: &str, v: &str| {
        B64.decode(v)
            .ok()
            .filter(|b| b.len() <= MAX_ANCHOR_BYTES)
            .ok_or_else(|| {
                ApiError::bad_request(format!("{what} must be base64 of at most 64 KiB"))
            })
    };
    let receipt = decode("receipt", &a.receipt)?;
    let size = a.checkpoint_size;
    let checkpoint = on_ledger(&s, move |l| l.checkpoint_at(size))
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!("this log has no checkpoint of size {size}"))
        })?;
    let digest = hex::encode(Sha256::digest(&checkpoint));
    let mut body = serde_json::json!({
        "checkpoint_size": size,
        "checkpoint_sha256": digest,
        "kind": a.kind,
        "receipt": a.receipt,
    });
    match a.kind.as_str() {
        "rfc3161" => {
            let (Some(request), Some(cert)) = (&a.request, &a.tsa_cert) else {
                return Err(ApiError::bad_request(
                    "an RFC 3161 receipt needs its request and the TSA certificate",
                ));
            };
            if cert.len() > MAX_ANCHOR_BYTES {
                return Err(ApiError::bad_request("the TSA certificate is too large"));
            }
            let tsq = decode("request", request)?;
            let ts =
                anchor::verify_timestamp_response(&receipt, &tsq, &checkpoint, cert.as_bytes())
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
            body["request"] = serde_json::json!(request);
            body["tsa_cert"] = serde_json::json!(cert);
            body["gen_time"] = serde_json::json!(ts.gen_time);
            body["tsa"] = serde_json::json!(ts.tsa);
            body["serial"] = serde_json::json!(ts.serial);
        }
        "opentimestamps" => {
            let committed =
                anchor::ots_digest(&receipt).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if hex::encode(committed) != digest {
                return Err(ApiError::bad_request(format!(
                    "the OpenTimestamps proof commits to {}, not to the checkpoint of size {size} ({digest})",
                    hex::encode(committed)
                )));
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown anchor kind {other:?} (rfc3161 or opentimestamps)"
            )))
        }
    }
    let receipt = s
        .gate
        .pass(RecordDraft::new("ledger.anchor", caller.0, body))
        .await?;
    Ok(recorded(&receipt))
}

/// `GET /v1/admin/payloads/{seq}/{name}`: discloses a kept payload (an
/// administrator's act, recorded as `payload.disclosed` before the text
/// leaves): `{"disclosure": {seq, name, salt, payload}, "proof": the
/// record's tlog-proof, "cairn": {"record": receipt}}`. The disclosure and
/// the proof together let anyone check, offline, that the log's record
/// committed to this text (`cairn verify FILE`).
pub(super) async fn disclose_payload(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((seq, name)): Path<(u64, String)>,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/payloads", "disclosing a payload").await?;
    let wanted = name.clone();
    let kept = on_ledger(&s, move |l| l.payload(seq, &wanted)).await?;
    let Some((salt, bytes)) = kept else {
        return Err(ApiError::not_found(format!(
            "no payload {name:?} of record {seq} is kept (never stored, hash-only, or erased)"
        )));
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::internal(format!("payload {name:?} of record {seq} is not text")))?;
    let receipt = s
        .gate
        .pass(RecordDraft::new(
            "payload.disclosed",
            caller.0,
            serde_json::json!({"seq": seq, "name": name}),
        ))
        .await?;
    let proof = on_ledger(&s, move |l| l.record_proof(seq)).await?;
    let disclosure = cairn_attest::payload::Disclosure {
        seq,
        name,
        salt: hex::encode(salt),
        payload: text,
    };
    Ok(Json(serde_json::json!({
        "disclosure": disclosure,
        "proof": String::from_utf8_lossy(&proof.encode()),
        "cairn": {"record": receipt},
    }))
    .into_response())
}
