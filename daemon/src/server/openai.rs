//! The OpenAI-compatible endpoints, each request passing the gate twice:
//! an `inference.request` record before the model runs, an
//! `inference.result` record (pointing at it) before the answer is returned
//! or, when streaming, before the final event that carries the receipt.
//!
//! Generation runs in its own task, apart from the connection: a client
//! that disconnects cancels it (at the next token), and its request still
//! gets a result record (`finish_reason` `cancelled`).

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cairn_attest::{Receipt, RecordDraft};
use cairn_inference::chat::Message as ChatMessage;
use cairn_inference::{GenerateParams, Generation};
use serde::Deserialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_stream::StreamExt;

use super::error::ApiError;
use super::models::Model;
use super::records::{self, finish_reason};
use super::{AppState, Caller};

/// The most new tokens one request may ask for.
const MAX_TOKENS_LIMIT: usize = 4096;

/// The decoding parameters both endpoints accept.
#[derive(Deserialize, Default)]
struct Sampling {
    /// 0 (the default here, unlike OpenAI's 1) is greedy.
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<usize>,
    /// Recorded; chosen at random (and recorded) when sampling without one.
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    repetition_penalty: Option<f32>,
    #[serde(default)]
    stop: Option<Stop>,
}

/// `stop`: one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

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
    #[serde(flatten)]
    sampling: Sampling,
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
    #[serde(flatten)]
    sampling: Sampling,
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
                          "info": m.engine.info(),
                          "template": m.engine.chat_template().source(),
                          "default": default.as_deref() == Some(m.name.as_str())}
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

/// Reads and parses a JSON body of at most `limit` bytes.
pub(super) async fn parse<T: for<'de> Deserialize<'de>>(
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// A validated request, ready for the gate.
struct Job {
    endpoint: &'static str,
    model: Arc<Model>,
    prompt: String,
    payload_name: &'static str,
    payload: Vec<u8>,
    stream: bool,
    params: GenerateParams,
    /// The digest of a chat's system messages, if it has any.
    system_prompt: Option<String>,
}

/// The digest of a chat's system messages — `blake3:` and the hex BLAKE3
/// of the JSON array of their contents — so that the log shows when the
/// system prompt changes (a re-assessment trigger) without holding it.
fn system_prompt_digest(messages: &[Message]) -> Option<String> {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect();
    if system.is_empty() {
        return None;
    }
    let json = serde_json::to_vec(&system).ok()?;
    Some(format!("blake3:{}", blake3::hash(&json).to_hex()))
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
    let messages: Vec<ChatMessage> = req
        .messages
        .iter()
        .map(|m| ChatMessage::new(&m.role, &m.content))
        .collect();
    let prompt = model
        .engine
        .chat_template()
        .render(&messages, true)
        .map_err(|e| ApiError::bad_request(format!("the model's chat template: {e}")))?;
    let payload = serde_json::to_vec(&messages).map_err(|e| ApiError::internal(e.to_string()))?;
    let job = Job {
        endpoint: "/v1/chat/completions",
        prompt,
        model,
        payload_name: "messages",
        payload,
        stream: req.stream,
        params: params(req.max_completion_tokens.or(req.max_tokens), req.sampling)?,
        system_prompt: system_prompt_digest(&req.messages),
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
        stream: req.stream,
        params: params(req.max_tokens, req.sampling)?,
        system_prompt: None,
    };
    run(s, caller, job, false).await
}

/// The generation parameters of a request, validated (400 otherwise).
fn params(max_tokens: Option<usize>, s: Sampling) -> Result<GenerateParams, ApiError> {
    let max_new_tokens = match max_tokens.unwrap_or(64) {
        0 => return Err(ApiError::bad_request("max_tokens must be at least 1")),
        n if n > MAX_TOKENS_LIMIT => {
            return Err(ApiError::bad_request(format!(
                "max_tokens {n} is over the limit of {MAX_TOKENS_LIMIT}"
            )))
        }
        n => n,
    };
    let defaults = GenerateParams::default();
    let temperature = s.temperature.unwrap_or(0.0);
    let seed = match s.seed {
        Some(seed) => seed,
        None if temperature > 0.0 => {
            let mut b = [0u8; 8];
            getrandom::getrandom(&mut b)
                .map_err(|e| ApiError::internal(format!("no randomness for a seed: {e}")))?;
            u64::from_le_bytes(b)
        }
        None => defaults.seed,
    };
    let p = GenerateParams {
        max_new_tokens,
        stop_at_eos: true,
        temperature,
        top_p: s.top_p.unwrap_or(defaults.top_p),
        top_k: s.top_k,
        seed,
        repetition_penalty: s.repetition_penalty.unwrap_or(defaults.repetition_penalty),
        stop: match s.stop {
            None => vec![],
            Some(Stop::One(x)) => vec![x],
            Some(Stop::Many(v)) => v,
        },
        ..defaults
    };
    p.validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(p)
}

/// What the generation task reports to the response.
enum Progress {
    /// Text as it is decoded (streaming only).
    Text(String),
    /// The result record is durable (or the request failed).
    Done(Result<(Receipt, Generation), ApiError>),
    /// Nothing follows (after a successful `Done`).
    End,
}

async fn run(s: AppState, caller: Caller, job: Job, chat: bool) -> Result<Response, ApiError> {
    // Bounded queue: refuse rather than pile up.
    let queued = s
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
    let p = &job.params;
    let mut body = serde_json::json!({
            "endpoint": job.endpoint,
            "model_name": job.model.name,
            "params": {
                "max_tokens": p.max_new_tokens, "stream": job.stream,
                "decoding": if p.temperature > 0.0 { "sampled" } else { "greedy" },
                "temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k,
                "seed": p.seed, "repetition_penalty": p.repetition_penalty,
                "stop": p.stop,
            },
            "prompt_tokens": prompt_tokens.len(),
    });
    if let Some(digest) = &job.system_prompt {
        body["system_prompt"] = serde_json::json!(digest);
    }
    let draft = records::request(
        caller.0.clone(),
        &job.model,
        body,
        (job.payload_name, job.payload),
    );
    let request = s.gate.pass(draft).await?;

    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(execute(
        s.clone(),
        caller,
        job.model.clone(),
        prompt_tokens,
        job.params,
        request.clone(),
        job.stream,
        tx,
        queued,
    ));
    let answer = Answer {
        model: job.model.name.clone(),
        chat,
        request,
        id: String::new(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
    .with_id();
    if job.stream {
        return Ok(answer.stream(rx));
    }
    match rx.recv().await {
        Some(Progress::Done(Ok((result, g)))) => Ok(answer.whole(&result, &g)),
        Some(Progress::Done(Err(e))) => Err(e),
        _ => Err(ApiError::internal("generation stopped unexpectedly")),
    }
}

/// Runs the model on the engine named in the request record, then writes
/// the result record (`inference.result`, or `inference.failed`), whatever
/// became of the client.
#[allow(clippy::too_many_arguments)]
async fn execute(
    s: AppState,
    caller: Caller,
    model: Arc<Model>,
    prompt_tokens: Vec<u32>,
    params: GenerateParams,
    request: Receipt,
    stream: bool,
    tx: mpsc::Sender<Progress>,
    _queued: OwnedSemaphorePermit,
) {
    let outcome = async {
        let compute = s
            .compute
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("shutting down"))?;
        let (engine_model, text_tx) = (model.clone(), tx.clone());
        let generated = tokio::task::spawn_blocking(move || {
            let _compute = compute;
            engine_model
                .engine
                .generate_stream(&prompt_tokens, &params, |chunk| {
                    let gone = if stream {
                        text_tx
                            .blocking_send(Progress::Text(chunk.to_string()))
                            .is_err()
                    } else {
                        text_tx.is_closed()
                    };
                    if gone {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
        })
        .await
        .map_err(|_| "the generation task stopped".to_string());
        match generated {
            Ok(Ok(g)) => {
                s.metrics.tokens(g.tokens.len() as u64);
                let done = records::result(caller.0.clone(), &model, &request, &g);
                // Gate, second pass: the answer (or the final event) is
                // released only once this record is durable.
                Ok((s.gate.pass(done).await?, g))
            }
            Ok(Err(e)) => Err(failed(&s, &caller, &model, &request, e.to_string()).await),
            Err(why) => Err(failed(&s, &caller, &model, &request, why).await),
        }
    }
    .await;
    let ok = outcome.is_ok();
    if tx.send(Progress::Done(outcome)).await.is_ok() && ok {
        let _ = tx.send(Progress::End).await;
    }
}

/// Records `inference.failed` for `request`; the error for the client.
async fn failed(
    s: &AppState,
    caller: &Caller,
    model: &Model,
    request: &Receipt,
    error: String,
) -> ApiError {
    let mut draft = RecordDraft::new(
        "inference.failed",
        caller.0.clone(),
        serde_json::json!({ "error": error }),
    );
    draft.model = Some(model.digest.clone());
    draft.reference = Some(request.reference());
    match s.gate.pass(draft).await {
        Ok(_) => ApiError::internal(format!("generation failed: {error}")),
        Err(e) => e,
    }
}

/// The parts of an answer known before the model runs.
struct Answer {
    model: String,
    chat: bool,
    request: Receipt,
    id: String,
    created: u64,
}

impl Answer {
    fn with_id(mut self) -> Self {
        self.id = format!("cairn-{}", self.request.seq);
        self
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.chat, chunk) {
            (true, false) => "chat.completion",
            (true, true) => "chat.completion.chunk",
            (false, _) => "text_completion",
        }
    }

    fn headers(&self, result: Option<&Receipt>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let receipts = [
            ("x-cairn-receipt-request", Some(&self.request)),
            ("x-cairn-receipt-result", result),
        ];
        for (name, r) in receipts {
            if let Some(v) =
                r.and_then(|r| HeaderValue::from_str(&format!("{}:{}", r.seq, r.hash)).ok())
            {
                headers.insert(name, v);
            }
        }
        headers
    }

    fn receipt(&self, result: &Receipt) -> serde_json::Value {
        serde_json::json!({"request": self.request, "result": result})
    }

    fn usage(g: &Generation) -> serde_json::Value {
        serde_json::json!({
            "prompt_tokens": g.prompt_tokens.len(),
            "completion_tokens": g.tokens.len(),
            "total_tokens": g.prompt_tokens.len() + g.tokens.len(),
        })
    }

    /// The whole answer, with both receipts.
    fn whole(&self, result: &Receipt, g: &Generation) -> Response {
        let choice = if self.chat {
            serde_json::json!({"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": finish_reason(g)})
        } else {
            serde_json::json!({"index": 0, "text": g.text, "finish_reason": finish_reason(g)})
        };
        let body = serde_json::json!({
            "id": self.id, "object": self.object(false), "created": self.created, "model": self.model,
            "choices": [choice], "usage": Self::usage(g), "cairn": self.receipt(result),
        });
        (self.headers(Some(result)), Json(body)).into_response()
    }

    /// One event.
    fn chunk(&self, choice: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"id": self.id, "object": self.object(true), "created": self.created,
                           "model": self.model, "choices": [choice]})
    }

    /// Server-sent events: text as it is generated, then a final event with
    /// the finish reason, usage and both receipts (once the result record
    /// is durable), then `[DONE]`. The request's receipt is in the headers.
    fn stream(self, rx: mpsc::Receiver<Progress>) -> Response {
        let headers = self.headers(None);
        let mut first = true;
        let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |p| {
            let event = match p {
                Progress::Text(text) => {
                    let choice = if self.chat {
                        let delta = if std::mem::take(&mut first) {
                            serde_json::json!({"role": "assistant", "content": text})
                        } else {
                            serde_json::json!({"content": text})
                        };
                        serde_json::json!({"index": 0, "delta": delta, "finish_reason": null})
                    } else {
                        serde_json::json!({"index": 0, "text": text, "finish_reason": null})
                    };
                    Event::default().data(self.chunk(choice).to_string())
                }
                Progress::Done(Ok((result, g))) => {
                    let choice = if self.chat {
                        serde_json::json!({"index": 0, "delta": {}, "finish_reason": finish_reason(&g)})
                    } else {
                        serde_json::json!({"index": 0, "text": "", "finish_reason": finish_reason(&g)})
                    };
                    let mut last = self.chunk(choice);
                    last["usage"] = Self::usage(&g);
                    last["cairn"] = self.receipt(&result);
                    Event::default().data(last.to_string())
                }
                Progress::Done(Err(e)) => Event::default().event("error").data(e.body().to_string()),
                Progress::End => Event::default().data("[DONE]"),
            };
            Ok::<_, Infallible>(event)
        });
        (headers, Sse::new(events)).into_response()
    }
}
