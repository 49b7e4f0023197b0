//! `cairn export`: a bundle verifies alone with `cairn verify`; every
//! tamper case of the audit core is caught on a bundle, even when the
//! tamperer recomputes `SHA256SUMS`; a missing, read-only or full target
//! gives a clear error and leaves nothing that looks like a bundle.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_attest::bundle::{Manifest, MANIFEST, SUMS};
use cairn_attest::journal::{encode_frame, split_frames, MAGIC};
use cairn_attest::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};
use cairn_tests::{cairn, cairn_verify};
use sha2::{Digest, Sha256};

/// A ledger of `n` records plus genesis, checkpointed every 10 and on close.
fn make_ledger(dir: &Path, origin: &str, n: u64) {
    let keys = Keyring::create(&dir.join("keys"), origin).unwrap();
    let config = LedgerConfig {
        checkpoint_every_records: 10,
        ..LedgerConfig::default()
    };
    let l = Ledger::open(dir, keys, config).unwrap();
    append(&l, "export-test", n, |i| serde_json::json!({ "i": i }));
}

/// Appends `n` `test.event` records by system actor `name`, the `i`-th
/// with body `body(i)`.
fn append(l: &Ledger, name: &str, n: u64, body: impl Fn(u64) -> serde_json::Value) {
    for i in 0..n {
        l.append(RecordDraft::new(
            "test.event",
            Actor::System { name: name.into() },
            body(i),
        ))
        .unwrap();
    }
}

/// Exports `ledger` into `to` and returns the bundle directory.
fn export(ledger: &Path, to: &Path) -> PathBuf {
    PathBuf::from(
        cairn_tests::cairn_export(ledger, to)["dir"]
            .as_str()
            .unwrap(),
    )
}

fn manifest(bundle: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(bundle.join(MANIFEST)).unwrap()).unwrap()
}

/// Rewrites `SHA256SUMS` to match the files, as a careful tamperer would.
fn recompute_sums(bundle: &Path) {
    let text = std::fs::read_to_string(bundle.join(SUMS)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let (_, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(bundle.join(name)).unwrap();
        out.push_str(&format!(
            "{}  {name}\n",
            hex::encode(Sha256::digest(&bytes))
        ));
    }
    std::fs::write(bundle.join(SUMS), out).unwrap();
}

fn entries(journal: &[u8]) -> Vec<Vec<u8>> {
    split_frames(&journal[MAGIC.len()..], MAGIC.len() as u64)
        .0
        .iter()
        .map(|f| f.entry.to_vec())
        .collect()
}

fn journal(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for e in entries {
        encode_frame(e, &mut out);
    }
    out
}

/// A fresh copy of `bundle` to tamper with.
fn copy(bundle: &Path, to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(bundle).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to.to_path_buf()
}

#[test]
fn a_bundle_verifies_alone_and_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/export", 25);
    let sticks = dir.path().join("stick");
    std::fs::create_dir(&sticks).unwrap();
    let bundle = export(&ledger, &sticks);
    let m = manifest(&bundle);
    assert_eq!(m.format, "cairn-export/v1");
    assert_eq!(m.origin, "cairn.example/export");
    // Genesis, 25 records; the clean close checkpointed them all.
    assert_eq!(m.records, 26);
    let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
    assert!(readme.contains(&m.identity_fingerprint), "{readme}");
    // `sha256sum -c` accepts the checksum list as written.
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg(SUMS)
        .current_dir(&bundle)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{sums:?}");

    // OpenSSL parses the RFC 3161 request and shows the checkpoint's SHA-256.
    let tsq = Command::new("openssl")
        .args(["ts", "-query", "-in"])
        .arg(bundle.join("checkpoint.tsq"))
        .arg("-text")
        .output()
        .unwrap();
    assert!(tsq.status.success(), "{tsq:?}");
    let text = String::from_utf8_lossy(&tsq.stdout);
    let shown: String = text
        .lines()
        .filter(|l| l.trim_start().starts_with("00"))
        .flat_map(|l| l.split(" - ").nth(1).unwrap_or("").split("   ").next())
        .collect::<String>()
        .replace(['-', ' '], "");
    let checkpoint = std::fs::read(bundle.join("checkpoint")).unwrap();
    assert_eq!(shown, hex::encode(Sha256::digest(&checkpoint)), "{text}");
    assert!(text.contains("Certificate required: yes"), "{text}");

    // The bundle alone, the ledger gone, with the fingerprint pinned.
    std::fs::remove_dir_all(&ledger).unwrap();
    let (code, out) = cairn_verify(&bundle, &["--key", &m.identity_fingerprint]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("26 records"), "{out}");
    assert!(out.contains("matches the expected key"), "{out}");
    // Nothing but the bundle was written to the stick.
    let names: Vec<_> = std::fs::read_dir(&sticks).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn a_running_ledgers_export_stops_at_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let keys = Keyring::create(&ledger.join("keys"), "cairn.example/live").unwrap();
    let config = LedgerConfig {
        checkpoint_every_records: 10,
        checkpoint_every: None,
        ..LedgerConfig::default()
    };
    let l = Ledger::open(&ledger, keys, config).unwrap();
    append(&l, "live", 14, |i| serde_json::json!(i));
    // Still open: 15 records, the last checkpoint at 10.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let bundle = export(&ledger, &out_dir);
    assert_eq!(manifest(&bundle).records, 10);
    assert_eq!(cairn_verify(&bundle, &[]).0, 0);
    drop(l);
}

#[test]
fn tampered_bundles_fail_verification_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/tamper-export", 30);
    let other = dir.path().join("other");
    make_ledger(&other, "cairn.example/tamper-export", 30);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let bundle = export(&ledger, &out);
    let other_bundle = export(&other, &out);
    let fp = manifest(&bundle).identity_fingerprint;
    let records = std::fs::read(bundle.join(RECORDS_JOURNAL)).unwrap();
    let all = entries(&records);
    let work = dir.path().join("work");

    let mut n = 0;
    let mut case = |what: &str, tamper: &dyn Fn(&Path), expect: &str, sums: bool| {
        n += 1;
        let b = copy(&bundle, &work.join(n.to_string()));
        tamper(&b);
        if sums {
            recompute_sums(&b);
        }
        let (code, text) = cairn_verify(&b, &["--key", &fp]);
        assert_eq!(code, 1, "{what}: {text}");
        assert!(
            text.contains(expect),
            "{what}: expected {expect:?} in\n{text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    };
    let set_records = |b: &Path, e: &[Vec<u8>]| {
        std::fs::write(b.join(RECORDS_JOURNAL), journal(e)).unwrap();
    };

    // A byte changed in a record's text, checksums left alone / recomputed.
    let flip = |b: &Path| {
        let mut e = all.clone();
        let i = e[12].iter().position(|&c| c == b'"').unwrap() + 1;
        e[12][i] ^= 0x01;
        set_records(b, &e);
    };
    case("edited record", &flip, "does not match its SHA-256", false);
    case("edited record, sums recomputed", &flip, "record 12", true);
    // A record deleted, two swapped, the tail cut off.
    let delete = |b: &Path| {
        let mut e = all.clone();
        e.remove(7);
        set_records(b, &e);
    };
    case("deleted record", &delete, "record 7", true);
    let swap = |b: &Path| {
        let mut e = all.clone();
        e.swap(4, 5);
        set_records(b, &e);
    };
    case("swapped records", &swap, "record 4", true);
    let truncate = |b: &Path| set_records(b, &all[..20]);
    case("truncated", &truncate, "checkpoint", true);
    // The other log's checkpoint (same origin, other keys) put in.
    let swap_checkpoint = |b: &Path| {
        for f in [CHECKPOINTS_JOURNAL, "checkpoint"] {
            std::fs::copy(other_bundle.join(f), b.join(f)).unwrap();
        }
    };
    case("swapped checkpoint", &swap_checkpoint, "checkpoint", true);
    // The whole log replaced by one under other keys: only the pinned
    // fingerprint tells.
    let replace_keys = |b: &Path| {
        for f in [RECORDS_JOURNAL, CHECKPOINTS_JOURNAL, "checkpoint", MANIFEST] {
            std::fs::copy(other_bundle.join(f), b.join(f)).unwrap();
        }
    };
    case("replaced key set", &replace_keys, "identity", true);
    // The manifest lying about the size; a file slipped in.
    let lie = |b: &Path| {
        let mut m = manifest(b);
        m.records += 1;
        std::fs::write(b.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
    };
    case("manifest edited", &lie, "bundle.json", true);
    let extra = |b: &Path| std::fs::write(b.join("extra.txt"), b"hello").unwrap();
    case(
        "unlisted file",
        &extra,
        "is not listed in SHA256SUMS",
        false,
    );
    let lost = |b: &Path| std::fs::remove_file(b.join("checkpoint")).unwrap();
    case("missing file", &lost, "checkpoint", false);
}

#[test]
fn bad_targets_give_clear_errors_and_leave_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/targets", 400);
    let run = |to: &Path| {
        cairn(&[
            "export",
            "--ledger",
            ledger.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ])
    };
    let no_bundle = |to: &Path| {
        let names: Vec<String> = std::fs::read_dir(to)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("cairn-export") && !n.ends_with(".partial")),
            "{names:?}"
        );
    };

    let missing = dir.path().join("no-such-stick");
    let out = run(&missing);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-stick") && err.contains("No such file"),
        "{err}"
    );
    assert!(!missing.exists());

    // A stick too small for the ~2 MB of records.
    let small = cairn_tests::Tmpfs::mount(&dir.path().join("small"), "256k");
    let out = run(&small.path);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left"), "{err}");
    no_bundle(&small.path);

    // A read-only stick.
    let ro = cairn_tests::Tmpfs::mount(&dir.path().join("ro"), "8m");
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro.path)
        .status()
        .unwrap();
    assert!(remount.success());
    let out = run(&ro.path);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Read-only file system"), "{err}");
    no_bundle(&ro.path);

    // A ledger that does not verify is not exported.
    let records = ledger.join(RECORDS_JOURNAL);
    let mut bytes = std::fs::read(&records).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&records, bytes).unwrap();
    let fine = dir.path().join("fine");
    std::fs::create_dir(&fine).unwrap();
    let out = run(&fine);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify"), "{err}");
    no_bundle(&fine);
}

#[test]
fn a_running_daemon_checkpoints_for_the_export_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let daemon = cairn_tests::Daemon::start(&state, &["--demo"]);
    let out_dir = dir.path().join("stick");
    std::fs::create_dir(&out_dir).unwrap();
    let v = cairn_tests::cairn_export(&state, &out_dir);
    let bundle = PathBuf::from(v["dir"].as_str().unwrap());
    let m = manifest(&bundle);
    let seq = v["record"]["seq"]
        .as_u64()
        .expect("the export was recorded");
    // The daemon checkpointed just before: every record up to the export's
    // own is in the bundle.
    assert_eq!(m.records, seq);
    // What `cairn export` says when the bundle did not get its name after
    // its record was written (a stick pulled before the rename): a
    // `ledger.export_failed` record pointing at it. Only an export record
    // can be said to have failed, and the reason must be text.
    let failed = |body: serde_json::Value| {
        daemon.request(
            "POST",
            "/v1/admin/exports/failed",
            Some(body.to_string().as_bytes()),
        )
    };
    let r = failed(serde_json::json!({"record": seq, "reason": "the stick was pulled out"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let failed_seq = r.json()["cairn"]["record"]["seq"].as_u64().unwrap();
    // Once only, and only the newest export.
    let again = failed(serde_json::json!({"record": seq, "reason": "again"}));
    assert_eq!(again.status, 400);
    assert!(
        again.text().contains("already recorded"),
        "{}",
        again.text()
    );
    assert_eq!(
        failed(serde_json::json!({"record": 0, "reason": "x"})).status,
        400
    );
    assert_eq!(
        failed(serde_json::json!({"record": seq, "reason": "a\nb"})).status,
        400
    );
    assert_eq!(
        failed(serde_json::json!({"record": 9999, "reason": "x"})).status,
        400
    );
    daemon.stop();

    let records = cairn_tests::ledger_records(&state);
    let r = &records[seq as usize];
    assert_eq!(r.kind, "ledger.export");
    assert_eq!(r.body["records"], m.records);
    assert_eq!(r.body["root"], m.root);
    assert_eq!(
        r.body["bundle"],
        bundle.file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(r.body["sums_sha256"], v["sums_sha256"]);
    let f = &records[failed_seq as usize];
    assert_eq!(f.kind, "ledger.export_failed");
    assert_eq!(f.reference.as_ref().unwrap().seq, seq);
    assert_eq!(f.body["bundle"], r.body["bundle"]);
    assert_eq!(cairn_verify(&state, &[]).0, 0);
    assert_eq!(
        cairn_verify(&bundle, &["--key", &m.identity_fingerprint]).0,
        0
    );

    // Asked to record with a daemon that is not there: an error, no bundle.
    let out = cairn(&[
        "export",
        "--ledger",
        state.to_str().unwrap(),
        "--to",
        out_dir.to_str().unwrap(),
        "--socket",
        state.join("cairnd.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 1);
}

#[test]
fn a_later_export_must_extend_the_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/since", 12);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let first = export(&ledger, &out);
    // More records, a second export: it extends the first.
    let keys = Keyring::load(&ledger.join("keys")).unwrap();
    let l = Ledger::open(&ledger, keys, LedgerConfig::default()).unwrap();
    append(&l, "later", 7, |i| serde_json::json!(i));
    drop(l);
    let second = export(&ledger, &out);
    let (code, text) = cairn_verify(&second, &["--since", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("its 13 records are this log's first 13"),
        "{text}"
    );

    // Someone holding the keys starts the log over with other records: it
    // verifies alone, but not as an extension of the first export.
    let forged = dir.path().join("forged");
    std::fs::create_dir(&forged).unwrap();
    copy(&ledger.join("keys"), &forged.join("keys"));
    let keys = Keyring::load(&forged.join("keys")).unwrap();
    let l = Ledger::open(&forged, keys, LedgerConfig::default()).unwrap();
    append(&l, "forger", 20, |i| serde_json::json!(i * 2));
    drop(l);
    let forged_bundle = export(&forged, &out);
    let fp = manifest(&first).identity_fingerprint;
    assert_eq!(cairn_verify(&forged_bundle, &["--key", &fp]).0, 0);
    let (code, text) = cairn_verify(
        &forged_bundle,
        &[
            "--key",
            &fp,
            "--since",
            first.join("checkpoint").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("the log was rewritten"), "{text}");
    // And the first export does not extend the longer second one.
    let (code, text) = cairn_verify(&first, &["--since", second.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("records were removed"), "{text}");
}

#[test]
fn the_daemon_exports_on_its_schedule_records_each_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    let cfg = dir.path().join("cairnd.toml");
    std::fs::write(
        &cfg,
        format!("state_dir = {state:?}\n[export]\ndir = {exports:?}\nevery_secs = 1\nkeep = 2\n"),
    )
    .unwrap();
    assert!(cairn(&["keys", "init", "--dir", state.to_str().unwrap()])
        .status
        .success());
    let daemon = cairn_tests::Daemon::start_with_config(&cfg, &state);
    let bundles = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&exports)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    };
    let exported = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while count_exports(&daemon) < n {
            assert!(std::time::Instant::now() < deadline, "no export {n}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    exported(1);
    // Activity (a failed model load writes two records), then more exports.
    for n in 2..=3 {
        let r = daemon.request(
            "POST",
            "/v1/admin/models",
            Some(br#"{"name": "nope", "path": "/nonexistent/model.gguf"}"#),
        );
        assert!(r.status >= 400, "{}", r.text());
        exported(n);
    }
    // Idle: nothing new but the last export's record, so no new export.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(count_exports(&daemon), 3);
    daemon.stop();

    // Only the newest two bundles remain; both verify; each export is a
    // record naming its bundle.
    let kept = bundles();
    assert_eq!(kept.len(), 2, "{kept:?}");
    // After the first, each export continues the one before.
    for b in &kept {
        assert!(manifest(b).from > 0, "{b:?} is not incremental");
    }
    let records = cairn_tests::ledger_records(&state);
    let names: Vec<String> = records
        .iter()
        .filter(|r| r.kind == "ledger.export")
        .map(|r| r.body["bundle"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3);
    for b in &kept {
        assert_eq!(cairn_verify(b, &[]).0, 0);
        let name = b.file_name().unwrap().to_str().unwrap();
        assert!(
            names[1..].contains(&name.to_string()),
            "{name} in {names:?}"
        );
    }
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}

/// `ledger.export` records in the running daemon's log.
fn count_exports(daemon: &cairn_tests::Daemon) -> usize {
    let r = daemon.request("GET", "/v1/audit/records?from=0&limit=1000", None);
    r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["entry"]
                .as_str()
                .unwrap()
                .contains(r#""kind":"ledger.export""#)
        })
        .count()
}

#[test]
fn the_browser_verifier_goes_into_the_bundle_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/page", 3);
    let page = dir.path().join("verify.html");
    std::fs::write(&page, "<!doctype html><title>verify</title>").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let run = |verifier: &Path| {
        cairn(&[
            "export",
            "--ledger",
            ledger.to_str().unwrap(),
            "--to",
            out.to_str().unwrap(),
            "--verifier",
            verifier.to_str().unwrap(),
        ])
    };
    let done = run(&page);
    assert!(done.status.success(), "{done:?}");
    let bundle = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read(bundle.join("verify.html")).unwrap(),
        std::fs::read(&page).unwrap()
    );
    let sums = std::fs::read_to_string(bundle.join(SUMS)).unwrap();
    assert!(sums.contains("  verify.html\n"), "{sums}");
    let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
    assert!(readme.contains("open verify.html"), "{readme}");
    assert_eq!(cairn_verify(&bundle, &[]).0, 0);
    // A page that is not there is an error, not a bundle without it.
    let missing = run(&dir.path().join("nope.html"));
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.html"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[test]
fn an_incremental_bundle_holds_what_was_added_and_verifies_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    make_ledger(&ledger, "cairn.example/incremental", 25);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let first = export(&ledger, &out);
    let f = manifest(&first).records; // 26
    let keys = Keyring::load(&ledger.join("keys")).unwrap();
    let config = LedgerConfig {
        checkpoint_every_records: 10,
        ..LedgerConfig::default()
    };
    let l = Ledger::open(&ledger, keys, config).unwrap();
    append(&l, "more", 17, |i| serde_json::json!(i));
    drop(l);
    let v = cairn_tests::cairn_export_with(&ledger, &out, &["--from-size", &f.to_string()]);
    let second = PathBuf::from(v["dir"].as_str().unwrap());
    let m = manifest(&second);
    assert_eq!(m.from, f);
    assert!(m.records > f + 16, "{m:?}");
    for name in [
        "genesis",
        "previous-checkpoint",
        "frontier",
        "predecessor.proof",
        "consistency.proof",
    ] {
        assert!(second.join(name).is_file(), "{name}");
    }
    // The predecessor and the new records only.
    let stored = entries(&std::fs::read(second.join(RECORDS_JOURNAL)).unwrap());
    assert_eq!(stored.len() as u64, m.records - f + 1);
    let fp = m.identity_fingerprint.clone();
    let (code, text) = cairn_verify(&second, &["--key", &fp]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("{} records", m.records)), "{text}");
    let (code, text) = cairn_verify(&second, &["--since", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");

    // Tampered: each fails, naming what is wrong.
    let all = stored.clone();
    let work = dir.path().join("work");
    let mut n = 0;
    let mut case = |what: &str, tamper: &dyn Fn(&Path), expect: &str| {
        n += 1;
        let b = copy(&second, &work.join(n.to_string()));
        tamper(&b);
        recompute_sums(&b);
        let (code, text) = cairn_verify(&b, &["--key", &fp]);
        assert_eq!(code, 1, "{what}: {text}");
        assert!(
            text.contains(expect),
            "{what}: expected {expect:?} in\n{text}"
        );
    };
    case(
        "frontier hash changed",
        &|b: &Path| {
            let text = std::fs::read_to_string(b.join("frontier")).unwrap();
            let first_char = if text.starts_with('A') { "B" } else { "A" };
            std::fs::write(b.join("frontier"), format!("{first_char}{}", &text[1..])).unwrap();
        },
        "frontier",
    );
    case(
        "predecessor replaced",
        &|b: &Path| {
            let mut e = all.clone();
            e[0] = all[1].clone();
            std::fs::write(b.join(RECORDS_JOURNAL), journal(&e)).unwrap();
        },
        &format!("not record {}", f - 1),
    );
    case(
        "previous checkpoint of another size",
        &|b: &Path| {
            let cps = entries(&std::fs::read(first.join(CHECKPOINTS_JOURNAL)).unwrap());
            std::fs::write(b.join("previous-checkpoint"), &cps[0]).unwrap();
        },
        "frontier",
    );
    case(
        "consistency proof cut",
        &|b: &Path| {
            let text = std::fs::read_to_string(b.join("consistency.proof")).unwrap();
            let kept: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
            std::fs::write(b.join("consistency.proof"), kept).unwrap();
        },
        "consistency.proof",
    );
    case(
        "new record deleted",
        &|b: &Path| {
            let mut e = all.clone();
            e.remove(5);
            std::fs::write(b.join(RECORDS_JOURNAL), journal(&e)).unwrap();
        },
        &format!("record {}", f + 4),
    );
    case(
        "manifest from changed",
        &|b: &Path| {
            let mut m = manifest(b);
            m.from -= 1;
            std::fs::write(b.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        },
        "bundle.json",
    );
}
