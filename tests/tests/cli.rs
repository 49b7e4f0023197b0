//! The `cairn` binary on good and bad input: clear messages and exit codes
//! (0 valid, 1 invalid, 2 unreadable), never a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};
use cairn_tests::{cairn, cairn_ok, cairn_verify};

fn make_ledger(dir: &Path, n: u64) {
    let keys = Keyring::create(&dir.join("keys"), "cairn.example/cli").unwrap();
    let l = Ledger::open(dir, keys, LedgerConfig::default()).unwrap();
    for i in 0..n {
        l.append(RecordDraft::new(
            "test.event",
            Actor::System {
                name: "cli-test".into(),
            },
            serde_json::json!(i),
        ))
        .unwrap();
    }
}

fn no_panic(out: &str) {
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn verify_reports_ok_with_counts_and_json() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 30);
    let (code, out) = cairn_verify(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK: 31 records and 1 checkpoints verified"),
        "{out}"
    );
    let json = cairn(&["verify", dir.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["records"], 31);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn verify_pins_the_identity_key() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 3);
    let show = cairn(&[
        "keys",
        "show",
        "--dir",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(show.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let fp = keys["keys"]["identity"]["fingerprint"].as_str().unwrap();
    assert_eq!(cairn_verify(dir.path(), &["--key", fp]).0, 0);
    let other = tempfile::tempdir().unwrap();
    let init = cairn(&["keys", "init", "--dir", other.path().to_str().unwrap()]);
    assert!(init.status.success());
    let other_keys: serde_json::Value = serde_json::from_slice(
        &cairn(&[
            "keys",
            "show",
            "--dir",
            other.path().to_str().unwrap(),
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    let (code, out) = cairn_verify(
        dir.path(),
        &[
            "--key",
            other_keys["keys"]["identity"]["fingerprint"]
                .as_str()
                .unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not the expected key"), "{out}");
}

#[test]
fn unreadable_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (code, out) = cairn_verify(&missing, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("nope") && out.contains("No such file"),
        "{out}"
    );

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let (code, out) = cairn_verify(&file, &[]);
    assert_eq!(code, 2);
    assert!(out.contains("not a directory"), "{out}");

    let (code, out) = cairn_verify(dir.path(), &[]);
    assert_eq!(code, 2);
    assert!(out.contains("holds no ledger"), "{out}");
}

#[test]
fn corrupted_journals_fail_verification_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 5);
    let journal = dir.path().join(cairn_attest::ledger::RECORDS_JOURNAL);
    let good = std::fs::read(&journal).unwrap();
    for garbage in [
        b"not a journal at all".to_vec(),
        Vec::new(),
        [&good[..100], &[0xff; 64][..], &good[164..]].concat(),
        [&good[..], &[0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4][..]].concat(),
    ] {
        std::fs::write(&journal, &garbage).unwrap();
        let (code, out) = cairn_verify(dir.path(), &[]);
        no_panic(&out);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("FAIL:"), "{out}");
    }
}

#[test]
fn keys_init_refuses_to_overwrite_and_show_refuses_loose_modes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        cairn(&["keys", "init", "--dir", d, "--origin", "cairn.example/k"])
            .status
            .success()
    );
    let again = cairn(&["keys", "init", "--dir", d]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    // --if-missing (the packaged unit's ExecStartPre) leaves existing keys
    // alone (the origin shown below is still the first one) and creates
    // missing ones.
    assert!(cairn(&["keys", "init", "--dir", d, "--if-missing"])
        .status
        .success());
    let fresh = dir.path().join("fresh");
    let fresh = fresh.to_str().unwrap();
    assert!(cairn(&["keys", "init", "--dir", fresh, "--if-missing"])
        .status
        .success());
    assert!(dir.path().join("fresh/keys/identity.key").exists());
    let shown = cairn(&["keys", "show", "--dir", d]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("cairn.example/k") && text.contains("fingerprint"),
        "{text}"
    );
    assert!(
        !text.contains("cairn-secret-key"),
        "secrets are never printed"
    );

    let key = dir.path().join("keys/operational.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let loose = cairn(&["keys", "show", "--dir", d]);
    assert_eq!(loose.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&loose.stderr).contains("must be 0600"));

    let bad_origin = cairn(&[
        "keys",
        "init",
        "--dir",
        dir.path().join("x").to_str().unwrap(),
        "--origin",
        "has space",
    ]);
    assert_eq!(bad_origin.status.code(), Some(2));
}

#[test]
fn bench_sign_compares_the_ledger_signer_with_fips204() {
    let text = cairn_ok(&["bench", "sign", "--signatures", "100"]);
    for line in [
        "fips204 try_sign (baseline)",
        "cairn's signer",
        "of which the fips204 check",
        "ratio baseline / cairn",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text}");
    }
    let out = cairn(&["bench", "sign", "--signatures", "10"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("at least 100"), "{err}");
}

#[test]
fn bench_leaves_a_ledger_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench");
    let text = cairn_ok(&[
        "bench",
        "ledger",
        "--records",
        "200",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    for line in [
        "ML-DSA-65 sign+check",
        "durable appends",
        "x sign ceiling",
        "x verify ceiling",
        "disk",
    ] {
        assert!(text.contains(line), "missing {line:?} in {text}");
    }
    assert_eq!(cairn_verify(&out_dir, &[]).0, 0);
    let again = cairn(&[
        "bench",
        "ledger",
        "--records",
        "10",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "refuses to reuse a ledger directory"
    );
}

#[test]
fn a_record_proof_verifies_alone_and_fails_when_altered() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, 40);
    let proof = dir.path().join("r17.tlog-proof");
    let out = cairn(&[
        "proof",
        "17",
        "--ledger",
        ledger.to_str().unwrap(),
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&proof).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 17\n"));

    // The proof alone suffices: move the ledger away.
    std::fs::rename(&ledger, dir.path().join("gone")).unwrap();
    let (code, out) = cairn_verify(&proof, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: record 17"), "{out}");

    // Wrong pinned key, altered index, altered record: all fail.
    let other = dir.path().join("other");
    make_ledger(&other, 1);
    let other_fp = serde_json::from_slice::<serde_json::Value>(
        &cairn(&["keys", "show", "--dir", other.to_str().unwrap(), "--json"]).stdout,
    )
    .unwrap()["keys"]["identity"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(cairn_verify(&proof, &["--key", &other_fp]).0, 1);
    let bad = dir.path().join("bad.tlog-proof");
    std::fs::write(&bad, text.replace("\nindex 17\n", "\nindex 18\n")).unwrap();
    let (code, out) = cairn_verify(&bad, &[]);
    assert_eq!(code, 1, "{out}");
    let extra_at = text.find("extra ").unwrap() + 200;
    let mut altered = text.clone().into_bytes();
    altered[extra_at] = if altered[extra_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    std::fs::write(&bad, altered).unwrap();
    let (code, out) = cairn_verify(&bad, &[]);
    assert_ne!(code, 0, "{out}");
    no_panic(&out);

    // A record that does not exist, and a proof that would overwrite a file.
    std::fs::rename(dir.path().join("gone"), &ledger).unwrap();
    let missing = cairn(&[
        "proof",
        "99",
        "--ledger",
        ledger.to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let again = cairn(&[
        "proof",
        "17",
        "--ledger",
        ledger.to_str().unwrap(),
        "--out",
        proof.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn models_generate_writes_loadable_models_in_real_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for (format, quant) in [("gguf", "f32"), ("gguf", "q8_0"), ("safetensors", "f32")] {
        let out_dir = dir.path().join(format!("{format}-{quant}"));
        let text = cairn_ok(&[
            "models",
            "generate",
            "--format",
            format,
            "--quant",
            quant,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(text.starts_with("blake3:"), "{text}");
        assert!(out_dir.join("tokenizer.json").exists());
        digests.push(text.split_whitespace().next().unwrap().to_string());
    }
    digests.dedup();
    assert_eq!(digests.len(), 3, "each format and type has its own digest");
    let again = cairn(&[
        "models",
        "generate",
        "--out",
        dir.path().join("gguf-f32").to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite a model");
    let bad = cairn(&[
        "models",
        "generate",
        "--quant",
        "q9",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Both binaries are built for x86-64-v2 (`.cargo/config.toml`). On a CPU
/// without it (qemu's `qemu64` model: no SSSE3, SSE4 or POPCNT) they exit
/// with status 2 and name what is missing, before doing anything, rather
/// than die of an illegal instruction mid-request.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_cpu_without_the_builds_extensions_is_refused_by_name() {
    if std::env::var_os("CAIRN_TEST_RUNNER").is_some() {
        return; // already emulated
    }
    for bin in ["cairn", "cairnd"] {
        let out = std::process::Command::new("qemu-x86_64-static")
            .args(["-cpu", "qemu64"])
            .arg(cairn_tests::workspace_bin(bin))
            .arg("--version")
            .output()
            .expect("qemu-x86_64-static (Debian: qemu-user-static; tests/run installs it)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "{bin}: error: this CPU lacks popcnt, ssse3, sse4.1, sse4.2, which this build"
            )),
            "{bin}: {stderr}"
        );
        // The same binary on a CPU that has them.
        let out = std::process::Command::new("qemu-x86_64-static")
            .args(["-cpu", "Nehalem"])
            .arg(cairn_tests::workspace_bin(bin))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} on Nehalem: {out:?}");
    }
}

#[test]
fn bench_gate_reports_each_round_and_all_rounds_together() {
    let out = cairn_ok(&[
        "bench",
        "gate",
        "--clients",
        "1,2",
        "--requests",
        "12",
        "--rounds",
        "2",
        "--gen-tokens",
        "2",
    ]);
    for c in ["  1 clients", "  2 clients"] {
        for label in ["round 1", "round 2", "all 2 rounds"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{c}, {label}")))
                .unwrap_or_else(|| panic!("no {c}, {label} line in:\n{out}"));
            assert!(
                line.contains("requests/s through the gate") && line.contains("p99"),
                "{line}"
            );
        }
    }
    let bad = cairn(&["bench", "gate", "--rounds", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rounds"));
}
