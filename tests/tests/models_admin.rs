//! Model management through the daemon: `cairn models list|add|remove`,
//! each a record; administrators only; and a swap while requests are in
//! flight never runs a request on a model other than its record names.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_tests::{cairn, cairn_ok, cairn_verify, ledger_records, Daemon};

/// Writes a tiny random-weight model with `seed`; returns its file.
fn tiny_model(dir: &Path, seed: u64) -> std::path::PathBuf {
    let out = dir.join(format!("model-{seed}"));
    let seed = seed.to_string();
    cairn_ok(&[
        "models",
        "generate",
        "--seed",
        &seed,
        "--out",
        out.to_str().unwrap(),
    ]);
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .expect("a .gguf file")
}

fn ask(d: &Daemon, model: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Which model are you?"}],
        "max_tokens": 12,
    })
    .to_string();
    let r = d.request("POST", "/v1/chat/completions", Some(body.as_bytes()));
    let v = if r.status == 200 {
        r.json()
    } else {
        serde_json::Value::Null
    };
    (r.status, v)
}

#[test]
fn models_are_listed_added_swapped_and_removed_through_records() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (a, b) = (tiny_model(dir.path(), 11), tiny_model(dir.path(), 12));
    let d = Daemon::start(&state, &["--demo"]);
    let s = state.to_str().unwrap();

    let added = cairn_ok(&["models", "add", "--state-dir", s, "m", a.to_str().unwrap()]);
    assert!(added.contains("loaded m (blake3:"), "{added}");
    let list = cairn_ok(&["models", "list", "--state-dir", s]);
    assert!(
        list.contains("demo-tiny") && list.lines().any(|l| l.starts_with("m ")),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cairn_ok(&["models", "list", "--state-dir", s, "--json"])).unwrap();
    let digest_of = |v: &serde_json::Value, name: &str| -> String {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == name)
            .map(|m| m["cairn"]["digest"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let digest_a = digest_of(&json, "m");

    // Bad input: a relative path, a bad name, a file that is no model, an
    // unknown model to remove. Each is refused; the daemon stays up.
    let bad = |body: &str| {
        d.request("POST", "/v1/admin/models", Some(body.as_bytes()))
            .status
    };
    assert_eq!(bad(r#"{"name":"x","path":"relative.gguf"}"#), 400);
    assert_eq!(bad(r#"{"name":"../x","path":"/tmp/x.gguf"}"#), 400);
    assert_eq!(bad(r#"{"name":"x"}"#), 400);
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"GGUF but not really").unwrap();
    let out = cairn(&[
        "models",
        "add",
        "--state-dir",
        s,
        "junk",
        junk.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk"));
    assert_eq!(
        d.request("DELETE", "/v1/admin/models/nope", None).status,
        404
    );

    // Swap m between a and b while four clients keep asking it.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answers: Vec<(u64, String)> = std::thread::scope(|sc| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    let mut got = vec![];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (status, v) = ask(&d, "m");
                        assert_eq!(status, 200);
                        got.push((
                            v["cairn"]["request"]["seq"].as_u64().unwrap(),
                            v["choices"][0]["message"]["content"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        ));
                    }
                    got
                })
            })
            .collect();
        for path in [&b, &a, &b, &a, &b] {
            cairn_ok(&[
                "models",
                "add",
                "--state-dir",
                s,
                "m",
                path.to_str().unwrap(),
            ]);
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let digest_b = digest_of(
        &serde_json::from_str(&cairn_ok(&["models", "list", "--state-dir", s, "--json"])).unwrap(),
        "m",
    );
    assert_ne!(digest_a, digest_b);

    let removed = cairn_ok(&["models", "remove", "--state-dir", s, "m"]);
    assert!(removed.contains("removed m"), "{removed}");
    assert_eq!(ask(&d, "m").0, 404);
    assert!(d.stop().success());

    // Every request ran on the model its record names: greedy answers to
    // the same prompt are a function of the model, so all answers under
    // one digest agree, and the two digests' answers differ.
    let records = ledger_records(&state);
    let mut by_digest: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (seq, text) in &answers {
        let r = &records[*seq as usize];
        assert_eq!(r.kind, "inference.request");
        by_digest
            .entry(r.model.clone().unwrap())
            .or_default()
            .push(text);
    }
    assert_eq!(
        by_digest.keys().collect::<Vec<_>>(),
        {
            let mut k = vec![&digest_a, &digest_b];
            k.sort();
            k
        },
        "requests ran on both models during the swaps"
    );
    let texts: Vec<&String> = by_digest
        .values()
        .map(|v| {
            assert!(v.iter().all(|t| t == &v[0]), "one model, one answer: {v:?}");
            v[0]
        })
        .collect();
    assert_ne!(texts[0], texts[1]);

    // The ledger tells the story: loads naming what they replace, an unload.
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "model.loaded").count(), 7);
    assert_eq!(
        kinds.iter().filter(|k| **k == "model.load_failed").count(),
        1
    );
    let unload = records.iter().find(|r| r.kind == "model.unload").unwrap();
    assert_eq!(unload.model.as_deref(), Some(digest_b.as_str()));
    let swap = records
        .iter()
        .filter(|r| r.kind == "model.load" && r.body["name"] == "m")
        .nth(1)
        .unwrap();
    assert_eq!(swap.body["replaces"], digest_a.as_str());
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}

/// A Qwen2 model, as GGUF (Q8_0) and as a safetensors directory, generated
/// by `cairn models generate --arch qwen2`, added to a running daemon: both
/// answer with receipts, `/v1/models` shows the architecture, and each
/// `model.loaded` record carries the model's metadata.
#[test]
fn qwen2_models_in_both_formats_load_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let gguf_dir = dir.path().join("qwen-gguf");
    let st_dir = dir.path().join("qwen-st");
    for (out, format, quant) in [(&gguf_dir, "gguf", "q8_0"), (&st_dir, "safetensors", "f32")] {
        let printed = cairn_ok(&[
            "models",
            "generate",
            "--arch",
            "qwen2",
            "--format",
            format,
            "--quant",
            quant,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(printed.contains("qwen2 tiny"), "{printed}");
    }
    let d = Daemon::start(&state, &["--demo"]);
    let s = state.to_str().unwrap();
    let gguf = gguf_dir.join("model-q8_0.gguf");
    cairn_ok(&[
        "models",
        "add",
        "--state-dir",
        s,
        "qg",
        gguf.to_str().unwrap(),
    ]);
    cairn_ok(&[
        "models",
        "add",
        "--state-dir",
        s,
        "qs",
        st_dir.to_str().unwrap(),
    ]);
    for name in ["qg", "qs"] {
        let (status, v) = ask(&d, name);
        assert_eq!(status, 200, "{name}");
        assert!(v["cairn"]["result"]["seq"].is_u64(), "{name}: {v}");
    }
    let models = d.request("GET", "/v1/models", None).json();
    for m in models["data"].as_array().unwrap() {
        if m["id"] == "qg" || m["id"] == "qs" {
            assert_eq!(m["cairn"]["arch"], "qwen2", "{m}");
        }
    }
    d.stop();
    let loaded: Vec<_> = ledger_records(&state)
        .into_iter()
        .filter(|r| r.kind == "model.loaded" && r.body["arch"] == "qwen2")
        .collect();
    assert_eq!(loaded.len(), 2);
    let quants: Vec<_> = loaded
        .iter()
        .map(|r| r.body["info"]["quantization"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(quants, ["Q8_0", "F32"]);
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}
