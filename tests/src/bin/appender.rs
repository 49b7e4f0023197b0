//! `cairn-test-appender DIR THREADS`: opens (or creates) the ledger in DIR
//! and appends records from THREADS threads until killed, printing
//! `ack SEQ HASH` for every acknowledged record. The crash tests SIGKILL it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir =
        std::path::PathBuf::from(args.next().expect("usage: cairn-test-appender DIR THREADS"));
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(4);
    let keys_dir = dir.join("keys");
    let keys = if keys_dir.exists() {
        Keyring::load(&keys_dir)
    } else {
        Keyring::create(&keys_dir, "cairn.example/crash-test")
    }
    .expect("keys");
    let config = LedgerConfig {
        checkpoint_every_records: 25,
        ..LedgerConfig::default()
    };
    let ledger = Arc::new(Ledger::open(&dir, keys, config).expect("open ledger"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    writeln!(out.lock().unwrap(), "open {}", ledger.size()).unwrap();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (ledger, out) = (ledger.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let mut d = RecordDraft::new(
                        "test.load",
                        Actor::System {
                            name: format!("worker-{t}"),
                        },
                        serde_json::json!({ "i": i }),
                    );
                    d.payloads = vec![("prompt".into(), format!("payload {t}/{i}").into_bytes())];
                    let r = ledger.append(d).expect("append");
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {} {}", r.seq, r.hash).unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}
