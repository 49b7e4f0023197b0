//! Reviews (`POST /v1/admin/reviews`, `cairn review record`): a reviewer
//! signs off the state in force as a `review.record` record. It names the
//! models loaded (names and digests) and the configuration's digest, and
//! signs off everything recorded before it — every model digest,
//! configuration and system prompt — which clears the re-assessment
//! triggers `cairn evidence` reports. Administrators only; the reviewer is
//! the caller as the daemon identifies it (SO_PEERCRED or a token).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_attest::RecordDraft;
use serde::Deserialize;

use super::admin::require_admin;
use super::error::ApiError;
use super::openai::parse;
use super::{AppState, Caller};

/// The longest note, in characters.
const MAX_NOTE_CHARS: usize = 4096;

/// `POST /v1/admin/reviews`: `{"note": …}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewRequest {
    note: String,
}

/// A note a record can hold: not blank, at most [`MAX_NOTE_CHARS`], no
/// control characters but line breaks and tabs.
fn check_note(note: &str) -> Result<&str, ApiError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(ApiError::bad_request("the review note must not be empty"));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(format!(
            "the review note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_request(
            "the review note holds control characters",
        ));
    }
    Ok(note)
}

/// Records a review of the state in force.
pub(super) async fn record_review(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    require_admin(&s, &caller, "/v1/admin/reviews", "recording a review").await?;
    let req: ReviewRequest = parse(body, s.config.limits.max_body_bytes).await?;
    let note = check_note(&req.note)?;
    let models: Vec<serde_json::Value> = s
        .pool
        .list()
        .iter()
        .map(|m| serde_json::json!({"name": m.name, "digest": m.digest}))
        .collect();
    let state = serde_json::json!({
        "models": models,
        "config_digest": s.config.digest(),
    });
    let mut body = state.clone();
    body["note"] = serde_json::json!(note);
    let receipt = s
        .gate
        .pass(RecordDraft::new("review.record", caller.0, body))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"state": state, "cairn": {"record": receipt}})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::check_note;

    #[test]
    fn notes_are_checked() {
        assert_eq!(check_note("  ok\n").unwrap(), "ok");
        for bad in ["", "   ", "a\u{7}b"] {
            assert!(check_note(bad).is_err(), "{bad:?}");
        }
        assert!(check_note(&"x".repeat(4097)).is_err());
        assert!(check_note("line one\nline two\twith a tab").is_ok());
    }
}
