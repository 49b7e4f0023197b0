//! The daemon on the real model, SmolLM2-135M-Instruct (fetched once by
//! `tests/fetch-smollm2`): the demo serves it by default with the chat
//! template from its GGUF, answers a real question, streams token by token,
//! and a client that leaves mid-stream cancels generation and still gets a
//! result record. Skipped, saying so, when the model is not in the cache.

use std::io::{Read, Write};
use std::path::PathBuf;

use cairn_tests::{cairn, cairn_verify, http_unix, ledger_records, Daemon};

/// The model cache holding the pinned SmolLM2 file, if it is there.
fn model_cache() -> Option<PathBuf> {
    let cache = std::env::var_os("CAIRN_MODEL_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn/models"))
        })?;
    if cache.join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file() {
        Some(cache)
    } else {
        eprintln!(
            "SKIPPED: SmolLM2-135M-Instruct is not in {} (run tests/fetch-smollm2)",
            cache.display()
        );
        None
    }
}

fn ask(content: &str, max_tokens: u32, stream: bool) -> Vec<u8> {
    serde_json::json!({
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": content},
        ],
        "max_tokens": max_tokens,
        "stream": stream,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn the_demo_answers_with_the_real_model_streams_and_records_cancellations() {
    let Some(cache) = model_cache() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start_with_model_cache(&state, &["--demo"], &cache);

    let models = d.request("GET", "/v1/models", None).json();
    let real = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "smollm2-135m-instruct")
        .expect("the real model is loaded");
    assert_eq!(real["cairn"]["default"], true);
    assert_eq!(real["cairn"]["template"], "gguf");

    // `cairn chat` picks the default model; the answer is real.
    let out = cairn(&[
        "chat",
        "--state-dir",
        state.to_str().unwrap(),
        "What is the capital of France?",
    ]);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{answer}");
    assert!(answer.contains("Paris"), "{answer}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("receipt: request record"));

    // Streaming: several text events, then the receipt, then [DONE].
    let r = d.request(
        "POST",
        "/v1/chat/completions",
        Some(&ask("What is the capital of France?", 40, true)),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<serde_json::Value> = r
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(events.len() > 3, "token by token: {events:?}");
    assert!(text.contains("Paris"), "{text}");
    assert!(r.text().trim_end().ends_with("data: [DONE]"));
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["cairn"]["result"]["seq"].is_u64());

    // A client that leaves after the first event: generation stops early
    // and the request still gets its result record.
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    let body = ask(
        "Write a very long story about a cat who travels the world.",
        400,
        true,
    );
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200 OK"));
    drop(s);
    // Wait until the cancelled request's result is recorded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let cancelled = loop {
        let recs = d
            .request("GET", "/v1/audit/records?from=0&limit=1000", None)
            .json();
        let found = recs["records"].as_array().unwrap().iter().find_map(|r| {
            let entry = r["entry"].as_str()?;
            let rec: serde_json::Value = serde_json::from_str(entry.lines().next()?).ok()?;
            (rec["kind"] == "inference.result" && rec["body"]["finish_reason"] == "cancelled")
                .then_some(rec)
        });
        if let Some(rec) = found {
            break rec;
        }
        assert!(std::time::Instant::now() < deadline, "no cancelled result");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(cancelled["body"]["completion_tokens"].as_u64().unwrap() < 400);
    assert_eq!(http_unix(&d.socket(), "GET", "/healthz", None).status, 200);
    assert!(d.stop().success());

    // Every request has exactly one answer, and the ledger verifies.
    let recs = ledger_records(&state);
    let requests = recs
        .iter()
        .filter(|r| r.kind == "inference.request")
        .count();
    let answers = recs
        .iter()
        .filter(|r| r.kind.starts_with("inference.") && r.kind != "inference.request")
        .count();
    assert_eq!((requests, answers), (3, 3));
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}
