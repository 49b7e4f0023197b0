//! `cairn proof SEQ`: a self-contained offline proof of one record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::proof::RecordProof;
use cairn_attest::verify::{verify_log, Options};
use cairn_attest::KeySet;

use super::EXIT_INVALID;

/// Writes the proof of record `seq` of the ledger in `ledger` to `out`
/// (default `record-SEQ.tlog-proof`), after verifying the whole log.
pub(super) fn write(seq: u64, ledger: &Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let files =
        LedgerFiles::open(ledger).with_context(|| format!("cannot read {}", ledger.display()))?;
    let log = files.log_bytes();
    let report = verify_log(&log, &Options::default());
    if let Some(f) = report.findings.first() {
        eprintln!(
            "cairn: the ledger does not verify ({}: {}); no proof written",
            f.subject, f.why
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let genesis = cairn_attest::entry::Entry::parse(log.entries[0].bytes)?;
    let keys = KeySet::from_genesis(&genesis.record.body)?;
    let proof = RecordProof::from_log(&log, &keys, seq)?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("record-{seq}.tlog-proof")));
    write_new(&out, &proof.encode())?;
    let cp = proof.verify(None)?.checkpoint;
    println!(
        "wrote {}: record {seq} included in checkpoint of size {} (log {}, identity fingerprint {})",
        out.display(),
        cp.size,
        keys.origin(),
        keys.identity.fingerprint()
    );
    Ok(ExitCode::SUCCESS)
}

/// Verifies a record proof file and prints the record.
pub(super) fn verify(path: &Path, key: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let proof = RecordProof::parse(&bytes)
        .with_context(|| format!("{} is not a record proof", path.display()))?;
    match proof.verify(key) {
        Ok(p) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "ok": true,
                        "record": p.record,
                        "checkpoint": {"origin": p.checkpoint.origin, "size": p.checkpoint.size},
                        "identity_fingerprint": p.keys.identity.fingerprint(),
                    }))?
                );
            } else {
                println!(
                    "record      {} ({}) at {}",
                    p.record.seq, p.record.kind, p.record.time
                );
                println!(
                    "identity    {}{}",
                    p.keys.identity.fingerprint(),
                    if key.is_some() {
                        "  (matches the expected key)"
                    } else {
                        "  (compare with the published fingerprint)"
                    }
                );
                println!(
                    "OK: record {} is signed and included in the checkpoint of log {} at size {}",
                    p.record.seq, p.checkpoint.origin, p.checkpoint.size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAIL: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// Whether `path` is a file that starts like a tlog-proof.
pub(super) fn looks_like_proof(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 22];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && head == *cairn_attest::proof::HEADER.as_bytes()
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if path.exists() {
        bail!("{} already exists; not overwriting", path.display());
    }
    let tmp = path.with_extension("tlog-proof.partial");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
