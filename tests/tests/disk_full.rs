//! A full disk: appends fail closed (an error, nothing acknowledged that is
//! not durable), the ledger stays closed until reopened, and after space is
//! freed every acknowledged record is there and the log verifies.
//! Needs root for a small tmpfs; CI runs as root.

use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::verify::{verify_log, Options};
use cairn_attest::{Actor, Error, Keyring, Ledger, LedgerConfig, RecordDraft};

fn draft(i: u64) -> RecordDraft {
    let mut d = RecordDraft::new(
        "test.event",
        Actor::System {
            name: "disk-full".into(),
        },
        serde_json::json!({ "i": i }),
    );
    d.payloads = vec![("prompt".into(), vec![b'p'; 2000])];
    d
}

#[test]
fn a_full_disk_fails_closed_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    let _tmpfs = cairn_tests::Tmpfs::mount(&mnt, "6m");
    let ledger_dir = mnt.join("ledger");
    let keys = Keyring::create(&ledger_dir.join("keys"), "cairn.example/disk-full").unwrap();
    let config = LedgerConfig {
        checkpoint_every_records: 50,
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(&ledger_dir, keys, config.clone()).unwrap();
    // Something else on the same filesystem that the operator can delete.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();

    let mut acked = Vec::new();
    let mut first_error = None;
    for i in 0..5000 {
        match ledger.append(draft(i)) {
            Ok(r) => acked.push(r),
            Err(e) => {
                first_error = Some(e);
                break;
            }
        }
    }
    let err = first_error.expect("a 6 MiB filesystem must fill up");
    assert!(
        err.to_string().contains("No space left")
            || matches!(err, Error::Poisoned(_) | Error::Index { .. }),
        "{err}"
    );
    // Closed for appends until reopened: no further record is accepted.
    assert!(ledger.append(draft(9999)).is_err());
    drop(ledger);

    // Free space (the operator's job) and reopen.
    std::fs::remove_file(&filler).unwrap();
    let ledger = Ledger::open(
        &ledger_dir,
        Keyring::load(&ledger_dir.join("keys")).unwrap(),
        config,
    )
    .unwrap();
    for r in &acked {
        let e = ledger.entry(r.seq).unwrap();
        assert_eq!(
            cairn_attest::entry::Entry::parse(&e)
                .unwrap()
                .hash()
                .to_hex(),
            r.hash
        );
        assert!(
            ledger.payload(r.seq, "prompt").unwrap().is_some(),
            "payload of acknowledged record {} lost",
            r.seq
        );
    }
    drop(ledger);
    let files = LedgerFiles::open(&ledger_dir).unwrap();
    let report = verify_log(&files.log_bytes(), &Options::default());
    assert!(report.ok(), "{:?}", report.findings.first());
    assert!(report.records > acked.len() as u64 / 2);
    eprintln!(
        "{} records acknowledged before the disk filled; first error: {err}",
        acked.len()
    );
}
