//! `cairn-test-history --records N --days D --out DIR`: writes a synthetic
//! appliance history — a real, signed and checkpointed ledger that `cairn
//! verify` accepts — spread over D days from 2026-09-01, so evidence
//! reports can be tested and timed on a large log. Record times are chosen
//! here (a running ledger stamps its own), which is why the journals are
//! written directly from the audit core's parts: records, sealed entries,
//! journal frames, the Merkle frontier and signed checkpoints.
//!
//! What happens, seeded and repeatable (only signatures differ between
//! runs): day 0 creates the log, starts cairnd and loads two models (a
//! Llama with licence `llama3.2`, a Qwen with `apache-2.0`); requests run
//! every day from three callers, 0.3 % of them fail; a few callers are
//! refused each day; a scheduled export runs at 02:00 every day except
//! days 12–14, and exports of days divisible by 3 are anchored
//! (OpenTimestamps) an hour later; reviews sign off the state on day 0,
//! day 11 (after a configuration change on day 10) and day 18 (after a
//! model swap on day 16); day 21 starts after a crash (an aborted
//! request, a recovered torn tail); from day 24 a second system prompt is
//! used and never reviewed; the last day ends with a clean stop. Prints
//! the generated facts as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_attest::checkpoint::Checkpoint;
use cairn_attest::journal::{encode_frame, MAGIC};
use cairn_attest::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use cairn_attest::merkle::{leaf_hash, Frontier};
use cairn_attest::record::{RecordHash, RecordRef, FORMAT_VERSION};
use cairn_attest::{entry, Actor, Keyring, Record};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "history.example/cairn/test";
const LLAMA: &str = "blake3:1111111111111111111111111111111111111111111111111111111111111111";
const QWEN_A: &str = "blake3:2222222222222222222222222222222222222222222222222222222222222222";
const QWEN_B: &str = "blake3:3333333333333333333333333333333333333333333333333333333333333333";
const CONFIG_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CONFIG_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const PROMPT_1: &str = "blake3:4444444444444444444444444444444444444444444444444444444444444444";
const PROMPT_2: &str = "blake3:5555555555555555555555555555555555555555555555555555555555555555";
/// 2026-09-01T00:00:00Z.
const START: i64 = 1_788_220_800;

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The ledger being written.
struct Writer {
    keys: Keyring,
    records: std::io::BufWriter<std::fs::File>,
    checkpoints: std::io::BufWriter<std::fs::File>,
    frontier: Frontier,
    prev: RecordHash,
    seq: u64,
    /// Record texts not yet signed.
    pending: Vec<Vec<u8>>,
    /// Signed checkpoint notes by size.
    notes: std::collections::BTreeMap<u64, Vec<u8>>,
    /// Milliseconds since START of the last record.
    now_ms: i64,
}

fn timestamp(ms: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(START * 1000 + ms) * 1_000_000)
            .expect("a time");
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&f).expect("formats")
}

fn unix(uid: u32, pid: i32, exe: &str) -> Actor {
    Actor::Unix {
        uid,
        gid: uid,
        pid,
        exe: Some(exe.into()),
    }
}

fn system(name: &str) -> Actor {
    Actor::System { name: name.into() }
}

impl Writer {
    fn create(dir: &Path) -> Writer {
        std::fs::create_dir_all(dir).expect("output directory");
        let keys = Keyring::create(&dir.join("keys"), ORIGIN).expect("keys");
        let open = |name: &str| {
            let mut f =
                std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("journal"));
            f.write_all(MAGIC).expect("write");
            f
        };
        Writer {
            keys,
            records: open(RECORDS_JOURNAL),
            checkpoints: open(CHECKPOINTS_JOURNAL),
            frontier: Frontier::new(),
            prev: RecordHash::default(),
            seq: 0,
            pending: Vec::new(),
            notes: Default::default(),
            now_ms: 0,
        }
    }

    /// Appends a record at `at_ms` (or just after the previous one).
    fn push(
        &mut self,
        at_ms: i64,
        kind: &str,
        actor: Actor,
        model: Option<&str>,
        reference: Option<(u64, RecordHash)>,
        body: serde_json::Value,
    ) -> (u64, RecordHash) {
        self.now_ms = at_ms.max(self.now_ms + 1);
        let commits = match kind {
            "inference.request" => [(
                "messages".to_string(),
                hex::encode(Sha256::digest(self.seq.to_le_bytes())),
            )]
            .into(),
            "inference.result" => [(
                "output".to_string(),
                hex::encode(Sha256::digest(self.seq.to_be_bytes())),
            )]
            .into(),
            _ => Default::default(),
        };
        let r = Record {
            v: FORMAT_VERSION,
            log: ORIGIN.into(),
            seq: self.seq,
            time: timestamp(self.now_ms),
            kind: kind.into(),
            actor,
            model: model.map(str::to_owned),
            prev: self.prev.to_hex(),
            reference: reference.map(|(seq, h)| RecordRef {
                seq,
                hash: h.to_hex(),
            }),
            commits,
            body,
        };
        let text = r.to_text().expect("record text");
        let hash = RecordHash::of(&text);
        self.prev = hash;
        self.pending.push(text);
        self.seq += 1;
        (self.seq - 1, hash)
    }

    /// Signs what is pending (on every core), writes it, and checkpoints
    /// every 1,000 records.
    fn flush(&mut self) {
        let texts = std::mem::take(&mut self.pending);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = texts.len().div_ceil(threads).max(1);
        let signer = &self.keys.operational;
        let entries: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = texts
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        c.iter()
                            .map(|t| entry::seal(t, signer.as_ref()).expect("sign"))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signer"))
                .collect()
        });
        let mut buf = Vec::new();
        for e in &entries {
            encode_frame(e, &mut buf);
            self.frontier.push(leaf_hash(e), |_, _, _| {});
            if self.frontier.size().is_multiple_of(1000) {
                self.sign_checkpoint();
            }
        }
        self.records.write_all(&buf).expect("write records");
    }

    fn sign_checkpoint(&mut self) {
        let size = self.frontier.size();
        if self.notes.contains_key(&size) {
            return;
        }
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: self.frontier.root(),
            extensions: vec![],
        };
        let note = cp.sign(&self.keys).expect("sign checkpoint");
        let mut buf = Vec::new();
        encode_frame(&note, &mut buf);
        self.checkpoints.write_all(&buf).expect("write checkpoints");
        self.notes.insert(size, note);
    }

    /// Checkpoints everything so far: (size, base64 root, note).
    fn checkpoint_now(&mut self) -> (u64, String, Vec<u8>) {
        self.flush();
        self.sign_checkpoint();
        let size = self.frontier.size();
        (
            size,
            B64.encode(self.frontier.root()),
            self.notes[&size].clone(),
        )
    }

    fn finish(mut self) {
        self.checkpoint_now();
        self.records.flush().expect("flush");
        self.checkpoints.flush().expect("flush");
    }
}

fn loaded(w: &mut Writer, at: i64, actor: Actor, name: &str, digest: &str, replaces: Option<&str>) {
    let (arch, quant, license, title) = match digest {
        LLAMA => ("llama", "Q4K", "llama3.2", "Llama 3.2 1B Instruct"),
        QWEN_A => ("qwen2", "Q4_0", "apache-2.0", "Qwen2.5 0.5B Instruct"),
        _ => ("qwen2", "Q8_0", "apache-2.0", "Qwen2.5 0.5B Instruct"),
    };
    let path = format!("/var/lib/cairn/models/{name}.gguf");
    let load = w.push(
        at,
        "model.load",
        actor.clone(),
        None,
        None,
        serde_json::json!({"name": name, "path": path, "replaces": replaces}),
    );
    let hex = digest.trim_start_matches("blake3:");
    w.push(at + 900, "model.loaded", actor, Some(digest), Some(load), serde_json::json!({
        "name": name, "arch": arch, "context": 4096, "vocab": 32000,
        "info": {"arch": arch, "parameters": 1_000_000_000u64, "quantization": quant, "tensor_types": {quant: 1_000_000_000u64},
                 "context_length": 4096, "vocab_size": 32000, "hidden_size": 2048, "layers": 16, "heads": 32, "kv_heads": 8,
                 "provenance": {"general.license": license, "general.name": title, "general.source.url": format!("https://huggingface.co/example/{name}")}},
        "files": format!("{name}.gguf\t123456789\t{hex}\n"),
    }));
}

fn start(w: &mut Writer, at: i64, config: &str, recovered: Option<u64>, models: &[(&str, &str)]) {
    w.push(at, "daemon.start", system("cairnd"), None, None, serde_json::json!({
        "version": "0.1.0", "pid": 4100, "config_digest": config, "aborted_requests": u64::from(recovered.is_some()),
        "recovered": {"reindexed": 0, "torn_tail_bytes": recovered, "index_rebuilt": false},
    }));
    for (name, digest) in models {
        loaded(w, at + 1000, system("cairnd"), name, digest, None);
    }
}

/// What the history holds, for the tests to compare with.
#[derive(Default, serde::Serialize)]
struct Facts {
    records: u64,
    requests: u64,
    exports: u64,
    anchors: u64,
    denials: u64,
    failed: u64,
    reviews: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut records, mut days, mut out) = (100_000u64, 30u64, None);
    while let Some(a) = args.next() {
        let v = args
            .next()
            .expect("usage: cairn-test-history --records N --days D --out DIR");
        match a.as_str() {
            "--records" => records = v.parse().expect("--records N"),
            "--days" => days = v.parse().expect("--days D"),
            "--out" => out = Some(PathBuf::from(v)),
            _ => panic!("unknown argument {a}"),
        }
    }
    let out = out.expect("--out DIR");
    assert!(days >= 26, "the history's events need at least 26 days");
    let mut w = Writer::create(&out);
    let mut rng = Rng(7);
    let mut facts = Facts::default();
    let genesis = w.keys.genesis_body().expect("genesis body");
    w.push(0, "log.genesis", system("cairnd"), None, None, genesis);
    let mut models = vec![("llama-3.2-1b", LLAMA), ("qwen2.5-0.5b", QWEN_A)];
    start(&mut w, 1000, CONFIG_A, None, &models);
    let day_ms = 86_400_000i64;
    // Weekends (days 5 and 6 of each week) see 60 % of a weekday's requests.
    let weight = |day: u64| if day % 7 == 5 || day % 7 == 6 { 6 } else { 10 };
    let weights: u64 = (0..days).map(weight).sum();
    let per_day = (records / 2 * 10 / weights).max(10);
    let callers = [
        unix(1000, 4242, "/usr/bin/python3.11"),
        unix(1002, 5150, "/opt/ehr/bin/ehr-bridge"),
        Actor::Token {
            name: "ehr-integration".into(),
        },
    ];
    for day in 0..days as i64 {
        let base = day * day_ms;
        if day > 0 && !(12..=14).contains(&day) {
            let (size, root, note) = w.checkpoint_now();
            w.push(base + 2 * 3_600_000, "ledger.export", system("scheduled-export"), None, None, serde_json::json!({
                "bundle": format!("cairn-export-{size}-{}-{}", START + base / 1000, &hex::encode(B64.decode(&root).unwrap())[..8]),
                "records": size, "root": root, "identity_fingerprint": w.keys.public().identity.fingerprint(),
                "sums_sha256": hex::encode(Sha256::digest(size.to_le_bytes())),
            }));
            facts.exports += 1;
            if day % 3 == 0 {
                let digest = Sha256::digest(&note);
                let mut ots =
                    b"\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94\x01\x08"
                        .to_vec();
                ots.extend_from_slice(&digest);
                w.push(base + 3 * 3_600_000, "ledger.anchor", unix(0, 900, "/usr/bin/cairn"), None, None, serde_json::json!({
                    "checkpoint_size": size, "checkpoint_sha256": hex::encode(digest), "kind": "opentimestamps", "receipt": B64.encode(&ots),
                }));
                facts.anchors += 1;
            }
        }
        if day == 21 {
            // A crash before 03:30: one request never answered.
            let (seq, hash) = w.push(base + 3 * 3_600_000 + 1_000_000, "inference.request", callers[0].clone(), Some(LLAMA), None,
                serde_json::json!({"endpoint": "/v1/chat/completions", "model_name": "llama-3.2-1b", "params": {"max_tokens": 64}, "prompt_tokens": 40, "system_prompt": PROMPT_1}));
            facts.requests += 1;
            start(
                &mut w,
                base + 3 * 3_600_000 + 1_800_000,
                CONFIG_B,
                Some(4096),
                &[],
            );
            w.push(
                base + 3 * 3_600_000 + 1_800_100,
                "inference.aborted",
                system("cairnd"),
                None,
                Some((seq, hash)),
                serde_json::json!({"reason": "cairnd stopped before the request finished"}),
            );
            for (name, digest) in &models {
                loaded(
                    &mut w,
                    base + 3 * 3_600_000 + 1_801_000,
                    system("cairnd"),
                    name,
                    digest,
                    None,
                );
            }
        }
        if day == 11 || day == 18 {
            w.push(base + 6 * 3_600_000 + 1_800_000, "review.record", unix(0, 881, "/usr/bin/cairn"), None, None, serde_json::json!({"note": format!("day {day}: changes reviewed"), "models": [], "config_digest": CONFIG_B}));
            facts.reviews += 1;
        }
        // The day's requests, 07:00 to 19:00, spaced evenly with jitter.
        let n = per_day * weight(day as u64) / 10;
        let span = 12 * 3_600_000i64;
        for i in 0..n as i64 {
            let t = base + 7 * 3_600_000 + span * i / n as i64 + rng.below(1000) as i64;
            if day == 0 && i == n as i64 / 2 {
                w.push(t, "review.record", unix(0, 880, "/usr/bin/cairn"), None, None, serde_json::json!({"note": "initial deployment reviewed", "models": [], "config_digest": CONFIG_A}));
                facts.reviews += 1;
            }
            let (name, digest) = models[(rng.below(10) >= 6) as usize];
            let caller = callers[rng.below(3) as usize].clone();
            let prompt = if day >= 24 && rng.below(4) == 0 {
                PROMPT_2
            } else {
                PROMPT_1
            };
            let (seq, hash) = w.push(t, "inference.request", caller.clone(), Some(digest), None, serde_json::json!({
                "endpoint": "/v1/chat/completions", "model_name": name, "prompt_tokens": 40 + rng.below(400), "system_prompt": prompt,
                "params": {"max_tokens": 256, "stream": false, "decoding": "greedy", "temperature": 0.0, "top_p": 1.0, "top_k": null, "seed": 0, "repetition_penalty": 1.0, "stop": []},
            }));
            facts.requests += 1;
            let gen_ms = 200.0 + rng.below(2800) as f64;
            let overhead = 1 + rng.below(8) as i64;
            let at = t + gen_ms as i64 + overhead;
            if rng.below(1000) < 3 {
                w.push(
                    at,
                    "inference.failed",
                    caller,
                    Some(digest),
                    Some((seq, hash)),
                    serde_json::json!({"error": "the model produced a non-finite logit"}),
                );
                facts.failed += 1;
            } else {
                let completion = 16 + rng.below(240);
                w.push(at, "inference.result", caller, Some(digest), Some((seq, hash)), serde_json::json!({
                    "finish_reason": if completion > 240 { "length" } else { "stop" }, "prompt_tokens": 100, "completion_tokens": completion,
                    "timings": {"prompt_ms": gen_ms * 0.2, "decode_ms": gen_ms * 0.8, "decode_tokens_per_s": 30.0, "prompt_tokens_per_s": 500.0},
                }));
            }
        }
        for k in 0..(3 + rng.below(5)) {
            let (path, reason) = if k == 0 {
                ("/v1/admin/models", "model management needs an administrator (root, cairnd's user, [access] admin_uids or an admin token)")
            } else {
                (
                    "/v1/chat/completions",
                    "uid 1001 is not in [access] allow_uids",
                )
            };
            w.push(
                base + 20 * 3_600_000 + k as i64 * 60_000,
                "access.denied",
                unix(1001, 7000 + k as i32, "/usr/bin/curl"),
                None,
                None,
                serde_json::json!({"path": path, "reason": reason}),
            );
            facts.denials += 1;
        }
        match day {
            10 => {
                w.push(
                    base + 20 * 3_600_000 + 3_000_000,
                    "daemon.stop",
                    system("cairnd"),
                    None,
                    None,
                    serde_json::json!({"reason": "signal"}),
                );
                start(
                    &mut w,
                    base + 20 * 3_600_000 + 3_300_000,
                    CONFIG_B,
                    None,
                    &models,
                );
            }
            16 => {
                loaded(
                    &mut w,
                    base + 21 * 3_600_000,
                    unix(0, 990, "/usr/bin/cairn"),
                    "qwen2.5-0.5b",
                    QWEN_B,
                    Some(QWEN_A),
                );
                models[1] = ("qwen2.5-0.5b", QWEN_B);
            }
            _ => {}
        }
        w.flush();
    }
    w.push(
        (days as i64) * day_ms - 60_000,
        "daemon.stop",
        system("cairnd"),
        None,
        None,
        serde_json::json!({"reason": "signal"}),
    );
    facts.records = w.seq;
    w.finish();
    println!("{}", serde_json::to_string(&facts).expect("json"));
}
