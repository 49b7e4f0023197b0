//! Tampering: every single-byte change, deleted record, swapped pair,
//! truncation below a checkpoint, swapped checkpoint or replaced key set is
//! detected. Random mutations, not a handful of hand-picked ones.

use cairn_attest::journal::{encode_frame, split_frames, MAGIC};
use cairn_attest::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use cairn_attest::ledger_files::log_from_journals;
use cairn_attest::verify::{verify_log, Options, Report};
use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};
use rand::seq::SliceRandom;
use rand::Rng;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    records: Vec<u8>,
    checkpoints: Vec<u8>,
}

/// A ledger of 61 records with checkpoints every 10 records.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let keys = Keyring::create(&path.join("keys"), "cairn.example/tamper").unwrap();
    let l = Ledger::open(
        &path,
        keys,
        LedgerConfig {
            checkpoint_every_records: 10,
            checkpoint_every: None,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..60 {
        let mut d = RecordDraft::new(
            "test.event",
            Actor::Token { name: "app".into() },
            serde_json::json!({"i": i, "note": "caf\u{e9}"}),
        );
        d.payloads = vec![("prompt".into(), vec![b'x'; 10])];
        l.append(d).unwrap();
    }
    drop(l);
    Fixture {
        records: std::fs::read(path.join(RECORDS_JOURNAL)).unwrap(),
        checkpoints: std::fs::read(path.join(CHECKPOINTS_JOURNAL)).unwrap(),
        _dir: dir,
        path,
    }
}

fn verify(records: &[u8], checkpoints: &[u8]) -> Report {
    verify_log(
        &log_from_journals(records, checkpoints),
        &Options::default(),
    )
}

/// Frames of a journal as (offset, length including header).
fn frames(journal: &[u8]) -> Vec<(usize, usize)> {
    split_frames(&journal[MAGIC.len()..], MAGIC.len() as u64)
        .0
        .iter()
        .map(|f| (f.offset as usize, f.entry.len() + 8))
        .collect()
}

fn rebuild(journal: &[u8], entries: &[&[u8]]) -> Vec<u8> {
    let mut out = journal[..MAGIC.len()].to_vec();
    for e in entries {
        encode_frame(e, &mut out);
    }
    out
}

fn entries(journal: &[u8]) -> Vec<Vec<u8>> {
    split_frames(&journal[MAGIC.len()..], 8)
        .0
        .iter()
        .map(|f| f.entry.to_vec())
        .collect()
}

#[test]
fn the_untouched_fixture_verifies() {
    let f = fixture();
    let r = verify(&f.records, &f.checkpoints);
    assert!(r.ok(), "{:?}", r.findings);
    assert_eq!(
        (r.records, r.checkpointed_size),
        (61, 61),
        "a clean close checkpoints every record"
    );
}

#[test]
fn every_random_byte_flip_is_detected() {
    let f = fixture();
    let mut rng = rand::thread_rng();
    for trial in 0..400 {
        let in_checkpoints = trial % 5 == 4;
        let (mut rec, mut cps) = (f.records.clone(), f.checkpoints.clone());
        let target = if in_checkpoints { &mut cps } else { &mut rec };
        let pos = rng.gen_range(0..target.len());
        target[pos] ^= 1 << rng.gen_range(0..8);
        let r = verify(&rec, &cps);
        assert!(
            !r.ok(),
            "flip at byte {pos} ({}) went unnoticed",
            if in_checkpoints {
                "checkpoints"
            } else {
                "records"
            }
        );
    }
}

#[test]
fn byte_flips_with_recomputed_checksums_are_detected() {
    // An attacker who knows the framing fixes the CRC: the signatures,
    // chain and Merkle roots must still catch it.
    let f = fixture();
    let mut rng = rand::thread_rng();
    for _ in 0..300 {
        let mut es = entries(&f.records);
        let i = rng.gen_range(0..es.len());
        let pos = rng.gen_range(0..es[i].len());
        es[i][pos] ^= 1 << rng.gen_range(0..8);
        let refs: Vec<&[u8]> = es.iter().map(Vec::as_slice).collect();
        let r = verify(&rebuild(&f.records, &refs), &f.checkpoints);
        assert!(!r.ok(), "flip in record {i} at {pos} went unnoticed");
        let first = &r.findings[0];
        assert!(
            first
                .subject
                .to_string()
                .starts_with(&format!("record {i} "))
                || i == 0,
            "first finding {first:?} should name record {i}"
        );
    }
}

#[test]
fn deletions_swaps_and_truncations_are_detected() {
    let f = fixture();
    let mut rng = rand::thread_rng();
    let es = entries(&f.records);
    for _ in 0..60 {
        // Delete one record.
        let i = rng.gen_range(0..es.len());
        let mut refs: Vec<&[u8]> = es.iter().map(Vec::as_slice).collect();
        refs.remove(i);
        let r = verify(&rebuild(&f.records, &refs), &f.checkpoints);
        assert!(!r.ok(), "deleting record {i} went unnoticed");

        // Swap two distinct records.
        let mut idx: Vec<usize> = (0..es.len()).collect();
        idx.shuffle(&mut rng);
        let (a, b) = (idx[0].min(idx[1]), idx[0].max(idx[1]));
        let mut refs: Vec<&[u8]> = es.iter().map(Vec::as_slice).collect();
        refs.swap(a, b);
        let r = verify(&rebuild(&f.records, &refs), &f.checkpoints);
        assert!(!r.ok(), "swapping {a} and {b} went unnoticed");
        assert!(
            r.findings[0]
                .subject
                .to_string()
                .starts_with(&format!("record {a} ")),
            "{:?}",
            r.findings[0]
        );
    }
    // Truncate at every frame boundary.
    for (k, (off, _)) in frames(&f.records).into_iter().enumerate() {
        let r = verify(&f.records[..off], &f.checkpoints);
        assert!(!r.ok(), "truncating to {k} records went unnoticed");
    }
    // Records no checkpoint covers yet (after a crash) could be cut
    // unnoticed; the verifier says how many there are.
    let cps = entries(&f.checkpoints);
    let without_last: Vec<&[u8]> = cps[..cps.len() - 1].iter().map(Vec::as_slice).collect();
    let r = verify(&f.records, &rebuild(&f.checkpoints, &without_last));
    assert!(r.ok());
    assert_eq!(r.uncovered(), 1);
}

#[test]
fn swapped_checkpoints_and_replaced_keys_are_detected() {
    let f = fixture();
    // Reorder the checkpoints: sizes go backwards.
    let cps = entries(&f.checkpoints);
    let mut refs: Vec<&[u8]> = cps.iter().map(Vec::as_slice).collect();
    refs.swap(1, 4);
    assert!(!verify(&f.records, &rebuild(&f.checkpoints, &refs)).ok());

    // A checkpoint from another log with the same origin and keys of its own.
    let other = fixture_with_other_keys(&f);
    let mut refs: Vec<&[u8]> = cps.iter().map(Vec::as_slice).collect();
    let foreign = entries(&other.checkpoints);
    refs[2] = &foreign[2];
    assert!(!verify(&f.records, &rebuild(&f.checkpoints, &refs)).ok());

    // A whole log re-signed with other keys verifies on its own (it is a
    // different log) but not against the pinned identity of the original.
    let report = verify(&f.records, &f.checkpoints);
    let (_, fingerprint) = report.identity.clone().unwrap();
    let pinned = Options {
        expected_identity: Some(fingerprint),
    };
    assert!(verify_log(&log_from_journals(&f.records, &f.checkpoints), &pinned).ok());
    let r = verify_log(
        &log_from_journals(&other.records, &other.checkpoints),
        &pinned,
    );
    assert!(
        !r.ok() && r.findings[0].why.contains("not the expected key"),
        "{:?}",
        r.findings
    );

    // Genesis from the other log spliced in front of the original records.
    let mut es = entries(&f.records);
    es[0] = entries(&other.records)[0].clone();
    let refs: Vec<&[u8]> = es.iter().map(Vec::as_slice).collect();
    assert!(!verify(&rebuild(&f.records, &refs), &f.checkpoints).ok());
    assert!(f.path.exists());
}

fn fixture_with_other_keys(_like: &Fixture) -> Fixture {
    fixture()
}
