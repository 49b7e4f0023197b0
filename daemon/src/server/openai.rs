//! The OpenAI-compatible endpoints, each request passing the gate twice:
//! an `inference.request` record before the model runs, an
//! `inference.result` record (pointing at it) before the answer is returned.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_attest::{Receipt, RecordDraft};
use cairn_inference::{GenerateParams, Generation};
use serde::Deserialize;

use super::error::ApiError;
use super::models::Model;
use super::records::{self, finish_reason};
use super::{AppState, Caller};

/// The most new tokens one request may ask for.
const MAX_TOKENS_LIMIT: usize = 4096;

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    temperature: Option<f64>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: String,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    temperature: Option<f64>,
}

/// `GET /v1/models`.
pub(super) async fn models(State(s): State<AppState>) -> impl IntoResponse {
    let default = s.pool.default_name();
    let data: Vec<_> = s
        .pool
        .list()
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.name, "object": "model", "owned_by": "cairn",
                "cairn": {"digest": m.digest, "arch": m.engine.arch(), "context": m.engine.context_len(),
                          "default": default.as_deref() == Some(m.name.as_str())}
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

/// Reads and parses a JSON body of at most `limit` bytes.
async fn parse<T: for<'de> Deserialize<'de>>(body: Body, limit: usize) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// The fallback chat template (ChatML), used until models' own templates
/// are rendered: `<|im_start|>ROLE\nCONTENT<|im_end|>\n` per message, then
/// `<|im_start|>assistant\n`.
fn render_chat(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    out.push_str("<|im_start|>assistant\n");
    out
}

/// A validated request, ready for the gate.
struct Job {
    endpoint: &'static str,
    model: Arc<Model>,
    prompt: String,
    payload_name: &'static str,
    payload: Vec<u8>,
    max_tokens: usize,
    stream: bool,
    temperature: Option<f64>,
}

/// `POST /v1/chat/completions`.
pub(super) async fn chat(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse(body, s.config.limits.max_body_bytes).await?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty"));
    }
    if let Some(m) = req
        .messages
        .iter()
        .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown message role {:?}",
            m.role
        )));
    }
    let model = s
        .pool
        .get(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model))?;
    let payload = serde_json::to_vec(
        &req.messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let job = Job {
        endpoint: "/v1/chat/completions",
        prompt: render_chat(&req.messages),
        model,
        payload_name: "messages",
        payload,
        max_tokens: max_tokens(req.max_completion_tokens.or(req.max_tokens))?,
        stream: req.stream,
        temperature: req.temperature,
    };
    run(s, caller, job, true).await
}

/// `POST /v1/completions`.
pub(super) async fn completions(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse(body, s.config.limits.max_body_bytes).await?;
    if req.prompt.is_empty() {
        return Err(ApiError::bad_request("prompt must not be empty"));
    }
    let model = s
        .pool
        .get(&req.model)
        .ok_or_else(|| ApiError::model_not_found(&req.model))?;
    let job = Job {
        endpoint: "/v1/completions",
        payload: req.prompt.clone().into_bytes(),
        prompt: req.prompt,
        model,
        payload_name: "prompt",
        max_tokens: max_tokens(req.max_tokens)?,
        stream: req.stream,
        temperature: req.temperature,
    };
    run(s, caller, job, false).await
}

fn max_tokens(asked: Option<usize>) -> Result<usize, ApiError> {
    match asked.unwrap_or(64) {
        0 => Err(ApiError::bad_request("max_tokens must be at least 1")),
        n if n > MAX_TOKENS_LIMIT => Err(ApiError::bad_request(format!(
            "max_tokens {n} is over the limit of {MAX_TOKENS_LIMIT}"
        ))),
        n => Ok(n),
    }
}

async fn run(s: AppState, caller: Caller, job: Job, chat: bool) -> Result<Response, ApiError> {
    // Bounded queue: refuse rather than pile up.
    let _permit = s
        .queue
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::queue_full())?;
    let prompt_tokens = job
        .model
        .engine
        .encode(&job.prompt)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if prompt_tokens.len() >= job.model.engine.context_len() {
        return Err(ApiError::bad_request(format!(
            "the prompt is {} tokens; model {} accepts at most {} tokens in all",
            prompt_tokens.len(),
            job.model.name,
            job.model.engine.context_len()
        )));
    }

    // Gate, first pass: nothing runs before this record is durable.
    let draft = records::request(
        caller.0.clone(),
        &job.model,
        serde_json::json!({
            "endpoint": job.endpoint,
            "model_name": job.model.name,
            "params": {"max_tokens": job.max_tokens, "stream": job.stream, "temperature": job.temperature, "decoding": "greedy"},
            "prompt_tokens": prompt_tokens.len(),
        }),
        (job.payload_name, job.payload),
    );
    let request = s.gate.pass(draft).await?;

    // The model runs on the exact engine named in the request record.
    let model = job.model.clone();
    let _compute = s
        .compute
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("shutting down"))?;
    let params = GenerateParams {
        max_new_tokens: job.max_tokens,
        stop_at_eos: true,
        ..GenerateParams::default()
    };
    let generated =
        tokio::task::spawn_blocking(move || model.engine.generate_tokens(&prompt_tokens, &params))
            .await
            .map_err(|_| ApiError::internal("generation stopped unexpectedly"))?;

    // Gate, second pass: the answer is returned only once its record is durable.
    let (result, generation) = match generated {
        Ok(g) => {
            s.metrics.tokens(g.tokens.len() as u64);
            let done = records::result(caller.0, &job.model, &request, &g);
            (s.gate.pass(done).await?, g)
        }
        Err(e) => {
            let mut failed = RecordDraft::new(
                "inference.failed",
                caller.0,
                serde_json::json!({"error": e.to_string()}),
            );
            failed.model = Some(job.model.digest.clone());
            failed.reference = Some(request.reference());
            s.gate.pass(failed).await?;
            return Err(ApiError::internal(format!("generation failed: {e}")));
        }
    };
    Ok(respond(
        &job.model,
        chat,
        job.stream,
        &request,
        &result,
        &generation,
    ))
}

fn receipt_json(request: &Receipt, result: &Receipt) -> serde_json::Value {
    serde_json::json!({"request": request, "result": result})
}

fn respond(
    model: &Model,
    chat: bool,
    stream: bool,
    request: &Receipt,
    result: &Receipt,
    g: &Generation,
) -> Response {
    let id = format!("cairn-{}", request.seq);
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let usage = serde_json::json!({
        "prompt_tokens": g.prompt_tokens.len(),
        "completion_tokens": g.tokens.len(),
        "total_tokens": g.prompt_tokens.len() + g.tokens.len(),
    });
    let mut headers = HeaderMap::new();
    for (name, r) in [
        ("x-cairn-receipt-request", request),
        ("x-cairn-receipt-result", result),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{}:{}", r.seq, r.hash)) {
            headers.insert(name, v);
        }
    }
    if !stream {
        let (object, choice) = if chat {
            (
                "chat.completion",
                serde_json::json!({"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": finish_reason(g)}),
            )
        } else {
            (
                "text_completion",
                serde_json::json!({"index": 0, "text": g.text, "finish_reason": finish_reason(g)}),
            )
        };
        let body = serde_json::json!({
            "id": id, "object": object, "created": created, "model": model.name,
            "choices": [choice], "usage": usage, "cairn": receipt_json(request, result),
        });
        return (headers, Json(body)).into_response();
    }
    // Streaming: the answer is released only after its result record is
    // durable, so the events carry the whole text, then the receipt.
    let (object, delta, last) = if chat {
        (
            "chat.completion.chunk",
            serde_json::json!({"index": 0, "delta": {"role": "assistant", "content": g.text}, "finish_reason": null}),
            serde_json::json!({"index": 0, "delta": {}, "finish_reason": finish_reason(g)}),
        )
    } else {
        (
            "text_completion",
            serde_json::json!({"index": 0, "text": g.text, "finish_reason": null}),
            serde_json::json!({"index": 0, "text": "", "finish_reason": finish_reason(g)}),
        )
    };
    let chunk = |choice: serde_json::Value, extra: Option<serde_json::Value>| {
        let mut v = serde_json::json!({"id": id, "object": object, "created": created, "model": model.name, "choices": [choice]});
        if let Some((k, e)) = extra.map(|e| ("cairn", e)) {
            v[k] = e;
            v["usage"] = usage.clone();
        }
        Ok::<_, Infallible>(Event::default().data(v.to_string()))
    };
    let events = vec![
        chunk(delta, None),
        chunk(last, Some(receipt_json(request, result))),
        Ok(Event::default().data("[DONE]")),
    ];
    (headers, Sse::new(futures_stream(events))).into_response()
}

fn futures_stream(
    events: Vec<Result<Event, Infallible>>,
) -> impl tokio_stream::Stream<Item = Result<Event, Infallible>> {
    tokio_stream::iter(events)
}
