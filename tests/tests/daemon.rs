//! `cairnd` end to end: the real binary on a Unix socket, its life cycle
//! recorded in the ledger, the audit API, and `cairn verify` afterwards.

use cairn_attest::proof::RecordProof;
use cairn_tests::{cairn_verify, Daemon};

fn kinds(d: &Daemon) -> Vec<String> {
    let r = d.request("GET", "/v1/audit/records?from=0&limit=1000", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = e["entry"].as_str().unwrap();
            let line = text.lines().next().unwrap();
            serde_json::from_str::<serde_json::Value>(line).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn the_daemon_records_its_life_and_serves_the_audit_api() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&state, &["--demo"]);

    let health = d.request("GET", "/healthz", None);
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(
        kinds(&d),
        ["log.genesis", "daemon.start", "model.load", "model.loaded"]
    );

    let one = d.request("GET", "/v1/audit/records/1", None);
    assert_eq!(one.status, 200);
    assert!(one.text().contains("\"kind\":\"daemon.start\""));
    assert!(one.text().contains("config_digest"));

    // A record proof from the API verifies alone.
    let p = d.request("GET", "/v1/audit/proof/1", None);
    assert_eq!(p.status, 200, "{}", p.text());
    let proved = RecordProof::parse(&p.body).unwrap().verify(None).unwrap();
    assert_eq!(proved.record.kind, "daemon.start");

    let cp = d.request("GET", "/v1/audit/checkpoint", None);
    assert_eq!(cp.status, 200);
    assert!(cp.text().lines().nth(1).unwrap().parse::<u64>().unwrap() >= 2);
    let c = d.request("GET", "/v1/audit/consistency?from=1&to=2", None);
    assert_eq!(c.status, 200, "{}", c.text());

    let m = d.request("GET", "/metrics", None).text();
    for needle in [
        "cairn_ledger_records 4",
        "cairn_gate_seconds_bucket",
        "cairn_requests_total{route=\"/healthz\",status=\"200\"} 1",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in\n{m}");
    }

    // Errors come in OpenAI's shape with the right status.
    let missing = d.request("GET", "/v1/audit/records/999", None);
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("999"));
    assert_eq!(d.request("GET", "/nope", None).status, 404);
    assert_eq!(
        d.request("GET", "/v1/audit/consistency?from=5&to=1", None)
            .status,
        400
    );
    assert_eq!(
        d.request("GET", "/v1/audit/consistency?from=1&to=500", None)
            .status,
        404
    );

    assert!(d.stop().success());
    assert!(
        !state.join("cairnd.sock").exists(),
        "socket removed on shutdown"
    );
    let (code, out) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK: 5 records"),
        "genesis, start, model load and loaded, stop: {out}"
    );

    // A restart appends to the same log.
    let d = Daemon::start(&state, &["--demo"]);
    assert_eq!(
        kinds(&d),
        [
            "log.genesis",
            "daemon.start",
            "model.load",
            "model.loaded",
            "daemon.stop",
            "daemon.start",
            "model.load",
            "model.loaded"
        ]
    );
    d.kill();
    let (code, out) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "a SIGKILLed daemon leaves a valid ledger: {out}");
}

#[test]
fn bad_configuration_and_a_second_daemon_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cairnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nsocket_mode = \"0666\"\n",
            dir.path().join("s")
        ),
    )
    .unwrap();
    let out = cairn_tests::workspace_command("cairnd")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("socket_mode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cairn_tests::workspace_command("cairnd")
        .arg("--state-dir")
        .arg(dir.path().join("nokeys"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cairn keys init"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let state = dir.path().join("state");
    let first = Daemon::start(&state, &["--demo"]);
    let second = cairn_tests::workspace_command("cairnd")
        .args(["--demo", "--hw", "none"])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another cairnd") || err.contains("lock"),
        "{err}"
    );
    assert_eq!(
        first.request("GET", "/healthz", None).status,
        200,
        "the first daemon is unharmed"
    );
}

#[test]
fn callers_outside_the_allow_list_get_403_and_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("cairnd.toml");
    // This test's own uid is not allowed.
    let me = nix::unistd::getuid().as_raw();
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[access]\nallow_uids = [{}]\n",
            state,
            me + 1
        ),
    )
    .unwrap();
    assert!(
        cairn_tests::cairn(&["keys", "init", "--dir", state.to_str().unwrap()])
            .status
            .success()
    );
    let d = Daemon::start_with_config(&cfg, &state);
    let r = d.request("GET", "/healthz", None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "permission_denied");
    assert!(d.stop().success());
    let files = cairn_attest::ledger_files::LedgerFiles::open(&state).unwrap();
    let log = files.log_bytes();
    let denied: Vec<_> = log
        .entries
        .iter()
        .filter_map(|e| cairn_attest::entry::Entry::parse(e.bytes).ok())
        .filter(|e| e.record.kind == "access.denied")
        .collect();
    assert_eq!(denied.len(), 1);
    assert!(matches!(denied[0].record.actor, cairn_attest::Actor::Unix { uid, .. } if uid == me));
}

#[test]
fn tcp_needs_a_known_bearer_token_and_admin_needs_an_admin_token() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (token, admin) = ("s3cret-token-for-tests", "0ps-token-for-tests");
    let sha = |t: &str| hex::encode(sha2::Sha256::digest(t.as_bytes()));
    let cfg = dir.path().join("cairnd.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\ntcp = \"127.0.0.1:{port}\"\n\
             [[tokens]]\nname = \"ehr\"\nsha256 = \"{}\"\n\
             [[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nadmin = true\n",
            state,
            sha(token),
            sha(admin),
        ),
    )
    .unwrap();
    let model_dir = dir.path().join("model");
    cairn_tests::cairn_ok(&["models", "generate", "--out", model_dir.to_str().unwrap()]);
    let model = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap();
    assert!(
        cairn_tests::cairn(&["keys", "init", "--dir", state.to_str().unwrap()])
            .status
            .success()
    );
    let d = Daemon::start_with_config(&cfg, &state);
    // cairnd opens its Unix socket (which start waits for) before it binds
    // TCP: under emulation the gap is long enough to be refused.
    let deadline =
        std::time::Instant::now() + cairn_tests::scaled(std::time::Duration::from_secs(30));
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "cairnd did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let call = |method: &str, path: &str, auth: Option<&str>, body: &str| -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let auth = auth
            .map(|a| format!("Authorization: Bearer {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split(' ').nth(1).unwrap().parse().unwrap();
        (status, out)
    };
    assert_eq!(call("GET", "/healthz", None, "").0, 401);
    assert_eq!(call("GET", "/healthz", Some("wrong"), "").0, 401);
    assert_eq!(call("GET", "/healthz", Some(token), "").0, 200);

    // Model management: only the admin token.
    let add = serde_json::json!({"name": "tiny", "path": model}).to_string();
    assert_eq!(call("POST", "/v1/admin/models", Some(token), &add).0, 403);
    let (status, out) = call("POST", "/v1/admin/models", Some(admin), &add);
    assert_eq!(status, 201, "{out}");

    // Chat, streaming chat and completions over TCP, each with a receipt.
    let chat = |stream: bool| {
        serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4, "stream": stream})
        .to_string()
    };
    let (status, out) = call("POST", "/v1/chat/completions", Some(token), &chat(false));
    assert_eq!(status, 200, "{out}");
    assert!(out.contains("x-cairn-receipt-request:") && out.contains("\"cairn\""));
    let (status, out) = call("POST", "/v1/chat/completions", Some(token), &chat(true));
    assert_eq!(status, 200, "{out}");
    assert!(
        out.contains("data: [DONE]") && out.contains("\"cairn\""),
        "{out}"
    );
    let completion = r#"{"model":"tiny","prompt":"Once upon","max_tokens":4}"#;
    let (status, out) = call("POST", "/v1/completions", Some(token), completion);
    assert_eq!(status, 200, "{out}");
    assert_eq!(call("POST", "/v1/completions", None, completion).0, 401);
    assert!(d.stop().success());

    let records = cairn_tests::ledger_records(&state);
    let denied: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "access.denied")
        .collect();
    assert_eq!(denied.len(), 1);
    assert!(
        matches!(&denied[0].actor, cairn_attest::Actor::Token { name } if name == "ehr"),
        "{:?}",
        denied[0].actor
    );
    let requests: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "inference.request")
        .collect();
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| matches!(&r.actor, cairn_attest::Actor::Token { name } if name == "ehr")));
    assert_eq!(cairn_tests::cairn_verify(&state, &[]).0, 0);
}

#[test]
fn cairn_status_and_records_talk_to_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = Daemon::start(&state, &["--demo"]);
    let s = state.to_str().unwrap();
    let out = cairn_tests::cairn(&["status", "--state-dir", s]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("(ok)") && text.contains("records     4"),
        "{text}"
    );
    let out = cairn_tests::cairn(&["records", "--socket", d.socket().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("log.genesis") && text.contains("daemon.start"),
        "{text}"
    );
    // `cairn chat` streams the answer and prints the receipt; its records
    // are then in the log.
    let out = cairn_tests::cairn(&["chat", "--state-dir", s, "--max-tokens", "5", "hello"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("receipt: request record 4 ("), "{err}");
    assert!(err.contains("result record 5 ("), "{err}");
    let out = cairn_tests::cairn(&["chat", "--state-dir", s, "--model", "nope", "hello"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    drop(d);
    let out = cairn_tests::cairn(&["status", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach cairnd"));
}
