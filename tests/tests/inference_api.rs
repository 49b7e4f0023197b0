//! The OpenAI-compatible API end to end on the demo model: chat, streaming,
//! completions, receipts that point at real records, bad input, fail
//! closed, and a crash in the middle of requests.

use cairn_attest::entry::Entry;
use cairn_attest::ledger_files::LedgerFiles;
use cairn_tests::{cairn_verify, ledger_records as records, Daemon};

/// Posts a chat completion to the daemon.
fn chat(d: &Daemon, body: &[u8]) -> cairn_tests::HttpResponse {
    d.request("POST", "/v1/chat/completions", Some(body))
}

fn chat_body(content: &str, max_tokens: u32, stream: bool) -> Vec<u8> {
    serde_json::json!({
        "model": "demo-tiny",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn chat_streaming_and_completions_carry_receipts_of_real_records() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&state, &["--demo"]);

    let models = d.request("GET", "/v1/models", None).json();
    assert_eq!(models["data"][0]["id"], "demo-tiny");
    let digest = models["data"][0]["cairn"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(digest.starts_with("blake3:"), "{digest}");

    let r = chat(&d, &chat_body("What is the capital of France?", 6, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 6);
    let req_seq = v["cairn"]["request"]["seq"].as_u64().unwrap();
    let res_seq = v["cairn"]["result"]["seq"].as_u64().unwrap();
    assert!(
        r.headers
            .contains(&format!("x-cairn-receipt-request: {req_seq}:")),
        "{}",
        r.headers
    );

    let s = chat(&d, &chat_body("hello", 4, true));
    assert_eq!(s.status, 200, "{}", s.text());
    assert!(s.headers.contains("text/event-stream"), "{}", s.headers);
    let text = s.text();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    let last: serde_json::Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert!(last["cairn"]["result"]["seq"].as_u64().is_some(), "{last}");

    let c = d.request(
        "POST",
        "/v1/completions",
        Some(br#"{"model":"demo-tiny","prompt":"Once upon","max_tokens":3}"#),
    );
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["object"], "text_completion");

    assert!(d.stop().success());
    let recs = records(&state);
    let req = &recs[req_seq as usize];
    let res = &recs[res_seq as usize];
    assert_eq!(req.kind, "inference.request");
    assert_eq!(req.model.as_deref(), Some(digest.as_str()));
    assert!(
        req.commits.contains_key("messages"),
        "the prompt is committed to, not stored in the record"
    );
    assert!(!serde_json::to_string(req).unwrap().contains("France"));
    assert_eq!(res.kind, "inference.result");
    assert_eq!(res.reference.as_ref().unwrap().seq, req_seq);
    assert!(res.commits.contains_key("output"));
    assert!(recs
        .iter()
        .any(|r| r.kind == "model.loaded" && r.model.as_deref() == Some(digest.as_str())));
    let (code, out) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bad_requests_get_their_documented_errors_and_the_daemon_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("state"), &["--demo"]);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":"hi"}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"nope","messages":[{"role":"user","content":"hi"}]}"#.to_vec(), 404, "model_not_found"),
        (br#"{"model":"demo-tiny","messages":[]}"#.to_vec(), 400, "invalid_request"),
        (b"{\"model\":\"demo-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"user","content":"hi"}],"temperature":-1}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"user","content":"hi"}],"top_p":1.5}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"user","content":"hi"}],"stop":[""]}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"user","content":"hi"}],"stop":5}"#.to_vec(), 400, "invalid_request"),
        (br#"{"model":"demo-tiny","messages":[{"role":"wizard","content":"hi"}]}"#.to_vec(), 400, "invalid_request"),
        (format!(r#"{{"model":"demo-tiny","messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(10 << 20)).into_bytes(), 413, "request_too_large"),
        (format!(r#"{{"model":"demo-tiny","messages":[{{"role":"user","content":"{}"}}]}}"#, "word ".repeat(2000)).into_bytes(), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = d.request("POST", "/v1/chat/completions", Some(&body));
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            r.text()
        );
        assert_eq!(r.json()["error"]["code"], code, "{}", r.text());
    }
    assert_eq!(d.request("GET", "/healthz", None).status, 200, "still up");
}

#[test]
fn a_thousand_connections_on_a_small_queue_get_429_and_memory_stays_bounded() {
    // Room for 1,000 sockets on each side (the daemon inherits the limit).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("cairnd.toml");
    std::fs::write(&cfg, format!("state_dir = {state:?}\n[limits]\nmax_queue = 1\n[[models]]\nname = \"demo-tiny\"\npath = {:?}\n", demo_model(dir.path()))).unwrap();
    assert!(
        cairn_tests::cairn(&["keys", "init", "--dir", state.to_str().unwrap()])
            .status
            .success()
    );
    let d = Daemon::start_with_config(&cfg, &state);
    let rss_kb = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    };
    let rss_before = rss_kb();
    let socket = d.socket();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..1000)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, || {
                        cairn_tests::http_unix(
                            &socket,
                            "POST",
                            "/v1/chat/completions",
                            Some(&chat_body("hi", 32, false)),
                        )
                        .status
                    })
                    .unwrap()
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rss_after = rss_kb();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(d.request("GET", "/healthz", None).status, 200);
    // Refused requests hold nothing: 1,000 connections cost the daemon
    // well under 200 MB (a refused request keeps nothing).
    assert!(
        rss_after < rss_before + 200 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

/// Generates a model the way the demo does, for configurations that name one.
fn demo_model(dir: &std::path::Path) -> std::path::PathBuf {
    use cairn_inference::generate::{generate, Format, GgufType, ModelSpec};
    generate(
        &ModelSpec::tiny_llama(7),
        Format::Gguf(GgufType::F32),
        &dir.join("model"),
    )
    .unwrap()
}

#[test]
fn when_the_ledger_cannot_write_requests_get_503_and_no_tokens_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    let _tmpfs = cairn_tests::Tmpfs::mount(&mnt, "4m");
    let state = mnt.join("state");
    let d = Daemon::start(&state, &["--demo"]);
    assert_eq!(chat(&d, &chat_body("hi", 2, false)).status, 200);
    // Fill the filesystem.
    let _ = std::fs::write(mnt.join("filler"), vec![0u8; 8 << 20]);
    let tokens_before = metric(&d, "cairn_tokens_total");
    let mut saw_503 = false;
    for _ in 0..200 {
        let r = chat(&d, &chat_body("fill", 2, false));
        assert!(r.status == 200 || r.status == 503, "{}", r.text());
        if r.status == 503 {
            assert_eq!(r.json()["error"]["code"], "gate_unavailable");
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "a full disk must close the gate");
    let after = metric(&d, "cairn_tokens_total");
    // Once the gate has failed, requests are refused before the model runs.
    for _ in 0..3 {
        assert_eq!(chat(&d, &chat_body("hi", 2, false)).status, 503);
    }
    assert_eq!(
        metric(&d, "cairn_tokens_total"),
        after,
        "no tokens after the gate closed"
    );
    assert!(after >= tokens_before);
    assert_eq!(
        d.request("GET", "/healthz", None).status,
        503,
        "health reports the fault"
    );
    d.kill();
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let (code, out) = cairn_verify(&state, &[]);
    assert!(
        code == 0 || out.contains("starting it once recovers"),
        "{out}"
    );
}

fn metric(d: &Daemon, name: &str) -> u64 {
    let m = d.request("GET", "/metrics", None).text();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn sigkill_during_requests_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&state, &["--demo"]);
    let socket = d.socket();
    let done = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        // Two clients stream, two do not.
        for client in 0..4 {
            let (socket, done) = (socket.clone(), done.clone());
            let stream = client % 2 == 0;
            s.spawn(move || {
                for _ in 0..50 {
                    let Ok(conn) = std::os::unix::net::UnixStream::connect(&socket) else {
                        return;
                    };
                    drop(conn);
                    let r = std::panic::catch_unwind(|| {
                        cairn_tests::http_unix(
                            &socket,
                            "POST",
                            "/v1/chat/completions",
                            Some(&chat_body("go", 4, stream)),
                        )
                    });
                    // The receipt: the body's `cairn` field, or the last
                    // event's; a stream cut before it acknowledged nothing.
                    let receipt = match r {
                        Ok(r) if r.status == 200 && !stream => Some(r.json()["cairn"].clone()),
                        Ok(r) if r.status == 200 => r
                            .text()
                            .lines()
                            .filter_map(|l| l.strip_prefix("data: "))
                            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                            .find_map(|e| e.get("cairn").cloned()),
                        _ => None,
                    };
                    match receipt {
                        Some(receipt) => done.lock().unwrap().push((stream, receipt)),
                        None => return,
                    }
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(600));
        d.kill();
    });
    let acked = done.lock().unwrap().clone();
    assert!(
        acked.iter().any(|(s, _)| *s) && acked.iter().any(|(s, _)| !*s),
        "streamed and whole answers completed before the kill"
    );
    let acked: Vec<serde_json::Value> = acked.into_iter().map(|(_, r)| r).collect();
    // Restart: recovery, then every acknowledged receipt is in the log.
    let d = Daemon::start(&state, &["--demo"]);
    d.stop();
    let recs = records(&state);
    for receipt in &acked {
        for part in ["request", "result"] {
            let seq = receipt[part]["seq"].as_u64().unwrap() as usize;
            let hash = receipt[part]["hash"].as_str().unwrap();
            let files = LedgerFiles::open(&state).unwrap();
            let log = files.log_bytes();
            assert_eq!(
                Entry::parse(log.entries[seq].bytes)
                    .unwrap()
                    .hash()
                    .to_hex(),
                hash
            );
        }
    }
    // Requests cut off by the kill get an `inference.aborted` result at
    // the next start: every request has exactly one answer.
    let mut answers = std::collections::HashMap::new();
    for r in &recs {
        if let Some(x) = &r.reference {
            *answers.entry(x.seq).or_insert(0) += 1;
        }
    }
    for r in recs.iter().filter(|r| r.kind == "inference.request") {
        assert_eq!(
            answers.get(&r.seq),
            Some(&1),
            "request {} has no single answer",
            r.seq
        );
    }
    let aborted = recs
        .iter()
        .filter(|r| r.kind == "inference.aborted")
        .count();
    eprintln!(
        "{} acknowledged requests, {aborted} interrupted and marked aborted",
        acked.len()
    );
    let (code, out) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{out}");
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.extend(bytes); // (the socket cannot be read)
        }
    }
    out
}

/// Under `ledger.payloads = "erase-after-days"` cairnd erases what is due
/// at start (then hourly), recording `ledger.payloads_erased` first: the
/// prompt's text is gone from the state directory and the log verifies.
#[test]
fn payloads_past_their_retention_are_erased_on_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let canary = "retention canary 4711, a prompt that must not outlive its days";
    let held = |state: &std::path::Path| {
        all_bytes(state)
            .windows(canary.len())
            .any(|w| w == canary.as_bytes())
    };
    let d = Daemon::start(&state, &["--demo"]);
    let r = chat(&d, &chat_body(canary, 4, false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(d.stop().success());
    assert!(held(&state), "stored while the policy keeps payloads");

    std::thread::sleep(std::time::Duration::from_millis(1100)); // 0 days: older than now
    let cfg = dir.path().join("cairnd.toml");
    std::fs::write(
        &cfg,
        format!("state_dir = {state:?}\n[ledger]\npayloads = \"erase-after-days\"\nerase_after_days = 0\n"),
    )
    .unwrap();
    let d = Daemon::start_with_config(&cfg, &state);
    let deadline =
        std::time::Instant::now() + cairn_tests::scaled(std::time::Duration::from_secs(20));
    while !records(&state)
        .iter()
        .any(|r| r.kind == "ledger.payloads_erased")
    {
        assert!(std::time::Instant::now() < deadline, "no erasure recorded");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(d.stop().success());
    let all = records(&state);
    let erased = all
        .iter()
        .find(|r| r.kind == "ledger.payloads_erased")
        .unwrap();
    assert_eq!(erased.body["erase_after_days"], 0);
    assert!(
        erased.body["payloads"].as_u64().unwrap() >= 2,
        "the chat's messages and output: {}",
        erased.body
    );
    assert!(
        !held(&state),
        "erased from every file of the state directory"
    );
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}

/// An administrator discloses a request's messages: `cairn disclose`
/// writes them with the record's proof, the daemon records the disclosure,
/// and `cairn verify` checks the file offline; an altered text fails, and
/// a payload that is not kept is refused.
#[test]
fn a_disclosed_payload_is_recorded_and_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&state, &["--demo"]);
    let r = chat(&d, &chat_body("disclose me: 2718", 4, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let (req, res) = (
        v["cairn"]["request"]["seq"].as_u64().unwrap(),
        v["cairn"]["result"]["seq"].as_u64().unwrap(),
    );
    let file = dir.path().join("d.json");
    let at = ["--state-dir", state.to_str().unwrap()];
    let seq = req.to_string();
    let mut args = vec![
        "disclose",
        &seq,
        "messages",
        "--out",
        file.to_str().unwrap(),
    ];
    args.extend(at);
    cairn_tests::cairn_ok(&args);
    let disclosed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        disclosed["disclosure"]["payload"]
            .as_str()
            .unwrap()
            .contains("disclose me: 2718"),
        "{disclosed}"
    );
    let (code, out) = cairn_verify(&file, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("OK: record {req} (inference.request")),
        "{out}"
    );

    // The text altered, or offered as another record's: refused.
    let mut altered = disclosed.clone();
    altered["disclosure"]["payload"] = "disclose me: 3141".into();
    std::fs::write(&file, altered.to_string()).unwrap();
    let (code, out) = cairn_verify(&file, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL"), "{out}");
    let mut moved = disclosed.clone();
    moved["disclosure"]["seq"] = res.into();
    std::fs::write(&file, moved.to_string()).unwrap();
    assert_eq!(cairn_verify(&file, &[]).0, 1);

    // Not kept: no such payload name, or a record that has none.
    for (seq, name) in [(req.to_string(), "output"), ("0".to_string(), "prompt")] {
        let mut args = vec!["disclose", &seq, name];
        args.extend(at);
        let out = cairn_tests::cairn(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is kept"),
            "{out:?}"
        );
    }
    assert!(d.stop().success());
    let disclosures: Vec<_> = records(&state)
        .into_iter()
        .filter(|r| r.kind == "payload.disclosed")
        .collect();
    assert_eq!(disclosures.len(), 1, "one disclosure, recorded");
    assert_eq!(
        disclosures[0].body,
        serde_json::json!({"seq": req, "name": "messages"})
    );
    assert!(matches!(
        disclosures[0].actor,
        cairn_attest::Actor::Unix { .. }
    ));
}
