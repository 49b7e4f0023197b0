//! The ledger end to end: append, reopen, checkpoints, proofs, payloads,
//! and failing closed when the signer fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_attest::keys::{PublicKey, Signer};
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::payload::{Disclosure, PayloadPolicy};
use cairn_attest::proof::TlogProof;
use cairn_attest::verify::{verify_log, Options};
use cairn_attest::{merkle, Actor, Error, Keyring, Ledger, LedgerConfig, Record, RecordDraft};

const ORIGIN: &str = "cairn.example/test-log";

fn actor() -> Actor {
    Actor::System {
        name: "test".into(),
    }
}

fn draft(i: u64) -> RecordDraft {
    RecordDraft::new("test.event", actor(), serde_json::json!({ "i": i }))
}

fn new_ledger(dir: &std::path::Path, config: LedgerConfig) -> Ledger {
    let keys = Keyring::create(&dir.join("keys"), ORIGIN).unwrap();
    Ledger::open(dir, keys, config).unwrap()
}

fn reopen(dir: &std::path::Path, config: LedgerConfig) -> Ledger {
    Ledger::open(dir, Keyring::load(&dir.join("keys")).unwrap(), config).unwrap()
}

fn verify_dir(dir: &std::path::Path) -> cairn_attest::verify::Report {
    let files = LedgerFiles::open(dir).unwrap();
    verify_log(&files.log_bytes(), &Options::default())
}

#[test]
fn appends_survive_reopen_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig {
        checkpoint_every_records: 10,
        ..Default::default()
    };
    {
        let l = new_ledger(dir.path(), cfg.clone());
        assert_eq!(l.size(), 1, "genesis");
        for i in 0..25 {
            let r = l.append(draft(i)).unwrap();
            assert_eq!(r.seq, i + 1);
        }
    }
    let l = reopen(dir.path(), cfg);
    assert_eq!(l.size(), 26);
    let rec = Record::parse(
        cairn_attest::entry::Entry::parse(&l.entry(5).unwrap())
            .unwrap()
            .note
            .text,
    )
    .unwrap();
    assert_eq!(rec.body["i"], 4);
    let cp = l.latest_checkpoint().unwrap().0;
    assert_eq!(cp.size, 26, "a clean close checkpoints everything");
    drop(l);
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.records, 26);
    assert!(report.checkpoints >= 2);
}

#[test]
fn concurrent_appends_are_contiguous_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(new_ledger(dir.path(), LedgerConfig::default()));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| l.append(draft(t * 1000 + i)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    l.checkpoint().unwrap();
    drop(l);
    let report = verify_dir(dir.path());
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.checkpointed_size, 201);
}

/// A group is indexed after its callers are answered: whoever holds a
/// receipt must still find its record, tree, tip, payload and checkpoint at
/// once, from any thread, and erasing its payload at once must erase it.
#[test]
fn every_acknowledged_record_is_readable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(new_ledger(
        dir.path(),
        LedgerConfig {
            checkpoint_every_records: 0,
            checkpoint_every: None,
            ..Default::default()
        },
    ));
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    let text = format!("payload {t}/{i}").into_bytes();
                    let mut d = draft(t * 1000 + i);
                    d.payloads = vec![("p".into(), text.clone())];
                    let r = l.append(d).unwrap();
                    if i % 5 == 4 {
                        // Erased at once, before any read: none is left.
                        assert_eq!(l.erase_payloads(r.seq, r.seq + 1).unwrap(), 1);
                        assert_eq!(l.payload(r.seq, "p").unwrap(), None);
                        continue;
                    }
                    let size = l.size();
                    assert!(size > r.seq, "size {size} after receipt {}", r.seq);
                    assert!(l.tip().unwrap().0 >= r.seq);
                    let entry = l.entry(r.seq).unwrap();
                    assert_eq!(hex::encode(merkle::leaf_hash(&entry)), r.leaf);
                    let proof = l.inclusion_proof(r.seq, r.seq + 1).unwrap();
                    let root = l.root(r.seq + 1).unwrap();
                    let leaf = merkle::leaf_hash(&entry);
                    assert!(merkle::verify_inclusion(
                        r.seq,
                        r.seq + 1,
                        &leaf,
                        &proof,
                        &root
                    ));
                    assert_eq!(l.payload(r.seq, "p").unwrap().unwrap().1, text);
                    if i % 8 == 0 {
                        let cp = l.checkpoint().unwrap();
                        let cp = cairn_attest::checkpoint::Checkpoint::open(&cp, l.keys()).unwrap();
                        assert!(
                            cp.size > r.seq,
                            "checkpoint of {} misses {}",
                            cp.size,
                            r.seq
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(l.size(), 161);
}

#[test]
fn proofs_verify_against_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(
        dir.path(),
        LedgerConfig {
            checkpoint_every_records: 0,
            checkpoint_every: None,
            ..Default::default()
        },
    );
    for i in 0..40 {
        l.append(draft(i)).unwrap();
    }
    let old = l.checkpoint().unwrap();
    let old_cp = cairn_attest::checkpoint::Checkpoint::open(&old, l.keys()).unwrap();
    for i in 40..77 {
        l.append(draft(i)).unwrap();
    }
    let new = l.checkpoint().unwrap();
    let new_cp = cairn_attest::checkpoint::Checkpoint::open(&new, l.keys()).unwrap();
    assert_eq!((old_cp.size, new_cp.size), (41, 78));
    assert_eq!(l.root(78).unwrap(), new_cp.root);

    for seq in [0, 1, 40, 77] {
        let proof = TlogProof {
            extra: if seq % 2 == 0 {
                Some(b"opaque".to_vec())
            } else {
                None
            },
            index: seq,
            hashes: l.inclusion_proof(seq, 78).unwrap(),
            checkpoint: new.clone(),
        };
        let parsed = TlogProof::parse(&proof.encode()).unwrap();
        assert_eq!(parsed, proof);
        parsed.verify(&l.entry(seq).unwrap(), l.keys()).unwrap();
        assert!(parsed
            .verify(&l.entry((seq + 1) % 78).unwrap(), l.keys())
            .is_err());
    }
    let c = l.consistency_proof(41, 78).unwrap();
    assert!(merkle::verify_consistency(
        41,
        78,
        &old_cp.root,
        &new_cp.root,
        &c
    ));
    assert!(l.inclusion_proof(78, 78).is_err());
    assert!(l.root(79).is_err());
    assert_eq!(l.checkpoint_at(41).unwrap().unwrap(), old);
}

#[test]
fn payloads_are_committed_disclosable_and_erasable() {
    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(dir.path(), LedgerConfig::default());
    let mut d = draft(0);
    d.payloads = vec![("prompt".into(), b"What is the capital of France?".to_vec())];
    let r = l.append(d).unwrap();
    let (salt, bytes) = l.payload(r.seq, "prompt").unwrap().unwrap();
    let record = Record::parse(
        cairn_attest::entry::Entry::parse(&l.entry(r.seq).unwrap())
            .unwrap()
            .note
            .text,
    )
    .unwrap();
    let disclosure = Disclosure {
        seq: r.seq,
        name: "prompt".into(),
        salt: hex_of(&salt),
        payload: String::from_utf8(bytes).unwrap(),
    };
    disclosure.check(&record).unwrap();
    let mut wrong = disclosure.clone();
    wrong.payload.push('!');
    assert!(wrong.check(&record).is_err());
    assert!(
        !String::from_utf8_lossy(&l.entry(r.seq).unwrap()).contains("France"),
        "raw text stays out of the chain"
    );

    assert_eq!(l.erase_payloads(0, 100).unwrap(), 1);
    assert!(l.payload(r.seq, "prompt").unwrap().is_none());
    drop(l);
    assert!(
        verify_dir(dir.path()).ok(),
        "erasure leaves the chain verifiable"
    );
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn payloads_outlive_the_index_and_erasure_leaves_no_copy_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig::default();
    let secret = b"patient 4711: the diagnosis is confidential".to_vec();
    // Large enough that sled would have kept it in a blob file of its own.
    let large: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let (small, big) = {
        let l = new_ledger(dir.path(), cfg.clone());
        let mut d = draft(1);
        d.payloads = vec![("prompt".into(), secret.clone())];
        let small = l.append(d).unwrap();
        let mut d = draft(2);
        d.payloads = vec![("output".into(), large.clone())];
        (small, l.append(d).unwrap())
    };
    // The index is derived data: without it the payloads are still there.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let l = reopen(dir.path(), cfg.clone());
    assert_eq!(l.recovery().reindexed_payloads, 2);
    assert_eq!(l.payload(small.seq, "prompt").unwrap().unwrap().1, secret);
    assert_eq!(l.payload(big.seq, "output").unwrap().unwrap().1, large);

    assert_eq!(l.erase_payloads(small.seq, small.seq + 1).unwrap(), 1);
    assert_eq!(l.erase_payloads(small.seq, small.seq + 1).unwrap(), 0);
    assert!(l.payload(small.seq, "prompt").unwrap().is_none());
    assert!(l.payload(big.seq, "output").unwrap().is_some());
    drop(l);
    assert!(
        !contains(&all_bytes(dir.path()), b"the diagnosis is confidential"),
        "an erased payload has no copy left in the ledger directory"
    );
    // Erased stays erased when the index is rebuilt from the store.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let l = reopen(dir.path(), cfg);
    assert!(l.payload(small.seq, "prompt").unwrap().is_none());
    assert_eq!(l.payload(big.seq, "output").unwrap().unwrap().1, large);
    drop(l);
    assert!(verify_dir(dir.path()).ok());
}

#[test]
fn a_record_whose_payloads_are_too_large_is_refused_before_it_is_numbered() {
    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(dir.path(), LedgerConfig::default());
    let mut d = draft(1);
    d.payloads = vec![(
        "prompt".into(),
        vec![b'x'; cairn_attest::payload_store::MAX_PAYLOAD_BYTES],
    )];
    assert!(matches!(l.append(d), Err(Error::TooLarge { .. })));
    assert_eq!(
        l.append(draft(2)).unwrap().seq,
        1,
        "no sequence number lost"
    );
}

#[test]
fn payloads_an_older_ledger_kept_in_its_index_are_moved_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig::default();
    {
        let l = new_ledger(dir.path(), cfg.clone());
        for i in 0..3 {
            l.append(draft(i)).unwrap();
        }
    }
    // As versions before the payload store wrote them: a sled tree
    // `payloads`, key u64be(seq) ‖ name, value u64be(stored_at) ‖ salt ‖ bytes.
    {
        let db = sled::open(dir.path().join("index")).unwrap();
        let old = db.open_tree("payloads").unwrap();
        for (seq, name, text) in [
            (1u64, "prompt", "an old question"),
            (2, "output", "an old answer"),
            (9, "prompt", "past the log's end"),
        ] {
            let mut k = seq.to_be_bytes().to_vec();
            k.extend_from_slice(name.as_bytes());
            let mut v = 1_600_000_000u64.to_be_bytes().to_vec();
            v.extend_from_slice(&[seq as u8; 32]);
            v.extend_from_slice(text.as_bytes());
            old.insert(k, v).unwrap();
        }
        db.flush().unwrap();
    }
    let l = reopen(dir.path(), cfg.clone());
    let r = l.recovery();
    assert_eq!((r.migrated_payloads, r.unmoved_payloads.clone()), (3, None));
    assert!(
        r.torn_payloads
            .as_ref()
            .unwrap()
            .why
            .contains("past the log's end"),
        "{r:?}"
    );
    assert_eq!(
        l.payload(1, "prompt").unwrap().unwrap(),
        ([1; 32], b"an old question".to_vec())
    );
    assert_eq!(l.payload(2, "output").unwrap().unwrap().1, b"an old answer");
    assert!(l.payload(9, "prompt").unwrap().is_none());
    assert_eq!(l.size(), 4, "the index was rebuilt from the journal");
    drop(l);
    let l = reopen(
        dir.path(),
        LedgerConfig {
            payload_policy: PayloadPolicy::EraseAfterDays(365),
            ..cfg
        },
    );
    assert_eq!(l.recovery().migrated_payloads, 0, "moved once");
    assert_eq!(
        l.erase_expired_payloads(|_, _| Ok(())).unwrap(),
        2,
        "they keep the time they were stored"
    );
    drop(l);
    assert!(
        !contains(&all_bytes(dir.path()), b"an old question"),
        "the old index, which held the text, is gone"
    );

    // A payload the store cannot take (an empty name) stays in the old
    // index, which is kept aside.
    let dir = tempfile::tempdir().unwrap();
    drop(new_ledger(dir.path(), cfg.clone()));
    {
        let db = sled::open(dir.path().join("index")).unwrap();
        let mut v = 1_600_000_000u64.to_be_bytes().to_vec();
        v.extend_from_slice(&[0; 32]);
        db.open_tree("payloads")
            .unwrap()
            .insert(0u64.to_be_bytes(), v)
            .unwrap();
        db.flush().unwrap();
    }
    let l = reopen(dir.path(), cfg);
    let (aside, n) = l.recovery().unmoved_payloads.clone().unwrap();
    assert_eq!(n, 1);
    assert!(aside.join("db").exists());
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A signer that can be unplugged, like an HSM.
struct Unpluggable {
    inner: Box<dyn Signer>,
    unplugged: Arc<AtomicBool>,
}

impl Signer for Unpluggable {
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    fn sign(&self, msg: &[u8], ctx: &[u8]) -> cairn_attest::Result<Vec<u8>> {
        if self.unplugged.load(Ordering::SeqCst) {
            return Err(Error::Signer {
                key: self.public_key().name().into(),
                why: "device unplugged".into(),
            });
        }
        self.inner.sign(msg, ctx)
    }
}

#[test]
fn a_failing_signer_refuses_the_record_and_the_chain_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let created = Keyring::create(&dir.path().join("keys"), ORIGIN).unwrap();
    let unplugged = Arc::new(AtomicBool::new(false));
    let keys = Keyring {
        operational: Box::new(Unpluggable {
            inner: created.operational,
            unplugged: unplugged.clone(),
        }),
        ..created
    };
    let l = Ledger::open(dir.path(), keys, LedgerConfig::default()).unwrap();
    l.append(draft(1)).unwrap();
    unplugged.store(true, Ordering::SeqCst);
    let err = l.append(draft(2)).unwrap_err();
    assert!(err.to_string().contains("unplugged"), "{err}");
    assert_eq!(l.size(), 2);
    unplugged.store(false, Ordering::SeqCst);
    let r = l.append(draft(3)).unwrap();
    assert_eq!(r.seq, 2, "the sequence rewound to the refused record");
    drop(l);
    assert!(verify_dir(dir.path()).ok());
}

#[test]
fn opening_with_other_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(new_ledger(dir.path(), LedgerConfig::default()));
    let other = Keyring::create(&dir.path().join("other-keys"), ORIGIN).unwrap();
    let err = Ledger::open(dir.path(), other, LedgerConfig::default())
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("other keys") || err.to_string().contains("operational"),
        "{err}"
    );
}

#[test]
fn a_huge_record_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(dir.path(), LedgerConfig::default());
    let big = RecordDraft::new(
        "test.event",
        actor(),
        serde_json::json!({ "x": "a".repeat(300 * 1024) }),
    );
    assert!(matches!(l.append(big), Err(Error::TooLarge { .. })));
    assert_eq!(l.append(draft(1)).unwrap().seq, 1, "the ledger carries on");
}

#[test]
fn a_corrupted_index_is_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig::default();
    {
        let l = new_ledger(dir.path(), cfg.clone());
        for i in 0..20 {
            l.append(draft(i)).unwrap();
        }
    }
    let db = dir.path().join("index/db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().skip(64).step_by(7) {
        *b ^= 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();
    let l = reopen(dir.path(), cfg.clone());
    assert_eq!(l.size(), 21);
    let r = l.recovery();
    assert!(r.reindexed > 0 || r.index_rebuilt.is_some(), "{r:?}");
    assert_eq!(l.root(21).unwrap(), l.latest_checkpoint().unwrap().0.root);
    drop(l);

    // An index sled cannot open at all is moved aside and rebuilt.
    std::fs::write(dir.path().join("index/conf"), b"\xff\xfe garbage").unwrap();
    std::fs::write(dir.path().join("index/db"), b"garbage").unwrap();
    let l = reopen(dir.path(), cfg);
    let (aside, why) = l.recovery().index_rebuilt.clone().expect("rebuilt");
    assert!(aside.exists(), "{why}");
    assert_eq!(l.size(), 21);
    assert_eq!(l.recovery().reindexed, 21);
    assert_eq!(l.root(21).unwrap(), l.latest_checkpoint().unwrap().0.root);
}

#[test]
fn checkpoints_follow_the_time_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig {
        checkpoint_every_records: 0,
        checkpoint_every: Some(std::time::Duration::from_millis(200)),
        ..Default::default()
    };
    let l = new_ledger(dir.path(), cfg);
    l.append(draft(1)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while l.latest_checkpoint().map(|c| c.0.size) != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 10 s of a 200 ms cadence"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn payload_policies_hash_only_and_erase_after_days() {
    let with_payload = |i| {
        let mut d = draft(i);
        d.payloads = vec![("output".into(), b"Paris".to_vec())];
        d
    };
    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(
        dir.path(),
        LedgerConfig {
            payload_policy: PayloadPolicy::HashOnly,
            ..Default::default()
        },
    );
    let r = l.append(with_payload(1)).unwrap();
    assert!(
        l.payload(r.seq, "output").unwrap().is_none(),
        "hash-only keeps no payload"
    );
    let rec = Record::parse(
        cairn_attest::entry::Entry::parse(&l.entry(r.seq).unwrap())
            .unwrap()
            .note
            .text,
    )
    .unwrap();
    assert!(rec.commits.contains_key("output"), "but commits to it");

    let dir = tempfile::tempdir().unwrap();
    let l = new_ledger(
        dir.path(),
        LedgerConfig {
            payload_policy: PayloadPolicy::EraseAfterDays(0),
            ..Default::default()
        },
    );
    let r = l.append(with_payload(1)).unwrap();
    assert!(l.payload(r.seq, "output").unwrap().is_some());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let refused = l.erase_expired_payloads(|n, _| {
        assert_eq!(n, 1);
        Err(Error::Invalid(
            "the record of the erasure was refused".into(),
        ))
    });
    assert!(refused.is_err());
    assert!(
        l.payload(r.seq, "output").unwrap().is_some(),
        "nothing is erased when the erasure cannot be recorded"
    );
    assert_eq!(l.erase_expired_payloads(|_, _| Ok(())).unwrap(), 1);
    assert!(l.payload(r.seq, "output").unwrap().is_none());
    assert_eq!(
        l.erase_expired_payloads(|_, _| panic!("nothing left to announce"))
            .unwrap(),
        0
    );
}

/// A hook that numbers checkpoints like the daemon's TPM counter: the next
/// value in an extension line, remembered once stored.
struct Counting {
    stored: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
    next: std::sync::atomic::AtomicU64,
}

impl cairn_attest::CheckpointHook for Counting {
    fn extensions(&self) -> Vec<String> {
        vec![format!(
            "cairn-tpm-counter {}",
            self.next.load(Ordering::SeqCst)
        )]
    }
    fn stored(&self, cp: &cairn_attest::checkpoint::Checkpoint) {
        self.stored
            .lock()
            .unwrap()
            .push((cp.size, cp.tpm_counter()));
        self.next.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_checkpoint_hook_adds_signed_extension_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LedgerConfig {
        checkpoint_every_records: 0,
        checkpoint_every: None,
        ..Default::default()
    };
    let hook = Arc::new(Counting {
        stored: Default::default(),
        next: 7.into(),
    });
    {
        let l = new_ledger(dir.path(), cfg.clone());
        l.checkpoint().unwrap();
        l.set_checkpoint_hook(hook.clone());
        for i in 0..3 {
            l.append(draft(i)).unwrap();
            l.checkpoint().unwrap();
        }
        // No new records: no new checkpoint, and the hook hears nothing.
        l.checkpoint().unwrap();
        let (cp, _) = l
            .latest_checkpoint_where(|c| c.tpm_counter().is_some())
            .unwrap()
            .unwrap();
        assert_eq!((cp.size, cp.tpm_counter()), (4, Some(9)));
        let (cp, _) = l
            .latest_checkpoint_where(|c| c.tpm_counter().is_none())
            .unwrap()
            .unwrap();
        assert_eq!(cp.size, 1, "the checkpoint made before the hook");
    }
    assert_eq!(
        *hook.stored.lock().unwrap(),
        vec![(2, Some(7)), (3, Some(8)), (4, Some(9))]
    );
    // The extension lines are signed and the log verifies.
    let report = verify_dir(dir.path());
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let l = reopen(dir.path(), cfg);
    let (cp, _) = l.latest_checkpoint().unwrap();
    assert_eq!(cp.tpm_counter(), Some(9));
}
