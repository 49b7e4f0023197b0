//! Errors in OpenAI's JSON shape: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A message for a person.
    pub message: String,
    /// OpenAI's error type.
    pub kind: &'static str,
    /// A stable machine-readable code.
    pub code: &'static str,
}

impl ApiError {
    /// A bad request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: "invalid_request",
        }
    }

    /// Something that does not exist (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            kind: "invalid_request_error",
            code: "not_found",
        }
    }

    /// The gate could not record the action, so it did not happen (503).
    pub fn gate(why: &str) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the audit gate is unavailable, so the action was not performed: {why}"
            ),
            kind: "server_error",
            code: "gate_unavailable",
        }
    }

    /// A hardware device (the TPM) failed to do what was asked (503).
    pub fn device(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "server_error",
            code: "device_unavailable",
        }
    }

    /// A request body over the limit (413).
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request body is larger than the limit of {limit} bytes"),
            kind: "invalid_request_error",
            code: "request_too_large",
        }
    }

    /// A model that is not loaded (404).
    pub fn model_not_found(name: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model {name:?} does not exist (GET /v1/models lists the loaded models)"
            ),
            kind: "invalid_request_error",
            code: "model_not_found",
        }
    }

    /// The request queue is full (429).
    pub fn queue_full() -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "too many requests are waiting for the model; retry later".into(),
            kind: "rate_limit_error",
            code: "queue_full",
        }
    }

    /// No or a bad credential (401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "invalid_request_error",
            code: "invalid_api_key",
        }
    }

    /// A known caller that may not do this (403).
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            kind: "invalid_request_error",
            code: "permission_denied",
        }
    }

    /// An unexpected internal failure (500).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            code: "internal_error",
        }
    }
}

impl ApiError {
    /// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {"message": self.message, "type": self.kind, "param": null, "code": self.code}
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<cairn_attest::Error> for ApiError {
    fn from(e: cairn_attest::Error) -> Self {
        match e {
            cairn_attest::Error::NotFound(m) => ApiError::not_found(m),
            cairn_attest::Error::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}
