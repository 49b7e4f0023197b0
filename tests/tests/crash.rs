//! Crash safety: a child appends under load and reports what was
//! acknowledged; it is SIGKILLed at random moments; every acknowledged
//! record must be there after reopening, and the chain must verify.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_attest::entry::Entry;
use cairn_attest::journal::encode_frame;
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::verify::{verify_log, Options};
use cairn_attest::{Keyring, Ledger, LedgerConfig};
use cairn_tests::{scaled, workspace_command};
use rand::Rng;

const TRIALS: usize = 50;

fn reopen(dir: &std::path::Path) -> Ledger {
    Ledger::open(
        dir,
        Keyring::load(&dir.join("keys")).unwrap(),
        LedgerConfig::default(),
    )
    .expect("reopen after crash")
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    Keyring::create(&ledger_dir.join("keys"), "cairn.example/crash-test").unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<(u64, String)> = Vec::new();
    for trial in 0..TRIALS {
        let mut child = workspace_command("cairn-test-appender")
            .arg(&ledger_dir)
            .arg("4")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn appender");
        let stdout = child.stdout.take().unwrap();
        // Kill at a random moment: sometimes during start-up and recovery,
        // mostly while records are being appended.
        let kill_after = scaled(Duration::from_millis(if trial % 5 == 0 {
            rng.gen_range(0..40)
        } else {
            rng.gen_range(30..250)
        }));
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        let started = Instant::now();
        std::thread::sleep(kill_after.saturating_sub(started.elapsed()));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            let mut parts = line.split(' ');
            if parts.next() == Some("ack") {
                let seq: u64 = parts.next().unwrap().parse().unwrap();
                acked.push((seq, parts.next().unwrap().to_string()));
            }
        }
    }
    assert!(
        acked.len() >= TRIALS,
        "the load produced too few acknowledgements ({}) to test anything",
        acked.len()
    );

    let ledger = reopen(&ledger_dir);
    for (seq, hash) in &acked {
        let bytes = ledger
            .entry(*seq)
            .unwrap_or_else(|e| panic!("acknowledged record {seq} is missing: {e}"));
        assert_eq!(
            &Entry::parse(&bytes).unwrap().hash().to_hex(),
            hash,
            "record {seq} changed"
        );
        assert!(
            ledger.payload(*seq, "prompt").unwrap().is_some(),
            "payload of acknowledged record {seq} is missing"
        );
    }
    drop(ledger);
    let files = LedgerFiles::open(&ledger_dir).unwrap();
    let report = verify_log(&files.log_bytes(), &Options::default());
    assert!(report.ok(), "{:?}", report.findings.first());
    eprintln!(
        "{TRIALS} SIGKILLs, {} acknowledged records, {} in the log, all present",
        acked.len(),
        report.records
    );
}

#[test]
fn a_torn_write_at_the_tail_recovers_to_the_last_complete_record() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keyring::create(&dir.path().join("keys"), "cairn.example/torn").unwrap();
    let ledger = Ledger::open(dir.path(), keys, LedgerConfig::default()).unwrap();
    for i in 0..10 {
        ledger
            .append(cairn_attest::RecordDraft::new(
                "t",
                cairn_attest::Actor::System { name: "t".into() },
                serde_json::json!(i),
            ))
            .unwrap();
    }
    let last = ledger.entry(10).unwrap();
    drop(ledger);

    let journal = dir.path().join(cairn_attest::ledger::RECORDS_JOURNAL);
    for cut in [1usize, 7, 8, 100, 3000] {
        // A group write torn after `cut` bytes of a new frame.
        let mut frame = Vec::new();
        encode_frame(&last, &mut frame);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        f.write_all(&frame[..cut.min(frame.len() - 1)]).unwrap();
        drop(f);
        let (code, out) = cairn_tests::cairn_verify(dir.path(), &[]);
        assert_eq!(
            code, 1,
            "verify must flag the torn tail before recovery: {out}"
        );

        let ledger = reopen(dir.path());
        let torn = ledger
            .recovery()
            .torn_records
            .clone()
            .expect("the tail was cut");
        assert!(torn.saved_to.exists(), "cut bytes are kept for inspection");
        assert_eq!(ledger.size(), 11);
        assert_eq!(ledger.entry(10).unwrap(), last);
        drop(ledger);
        let (code, out) = cairn_tests::cairn_verify(dir.path(), &[]);
        assert_eq!(code, 0, "{out}");
    }
}
