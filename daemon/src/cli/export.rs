//! `cairn export`: a bundle of the log for offline verification.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cairn_attest::bundle;
use cairn_attest::ledger_files::LedgerFiles;

/// Writes a bundle of the ledger in `ledger` into a new directory in `to`.
pub(super) fn run(ledger: &Path, to: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let files =
        LedgerFiles::open(ledger).with_context(|| format!("cannot read {}", ledger.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exported = bundle::export(&files.log_bytes(), to, now)
        .with_context(|| format!("cannot export to {}", to.display()))?;
    let m = &exported.manifest;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dir": exported.dir,
                "manifest": m,
            }))?
        );
    } else {
        println!("exported    {}", exported.dir.display());
        println!("log         {}", m.origin);
        println!(
            "records     {} (up to the checkpoint with root {})",
            m.records, m.root
        );
        println!("identity    {}", m.identity_fingerprint);
        println!(
            "verify with: cairn verify {} --key {}",
            exported.dir.display(),
            m.identity_fingerprint
        );
    }
    Ok(ExitCode::SUCCESS)
}
