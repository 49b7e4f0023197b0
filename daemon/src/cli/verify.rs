//! `cairn verify PATH`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::bundle;
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::verify::{verify_log, Options, Report};

use super::EXIT_INVALID;

pub(super) fn run(path: &Path, key: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let files =
        LedgerFiles::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut report = verify_log(
        &files.log_bytes(),
        &Options {
            expected_identity: key.clone(),
        },
    );
    if bundle::is_bundle(path) {
        let findings = bundle::check(path, &report);
        report.findings.extend(findings);
    }
    let elapsed = started.elapsed();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(
            path,
            &report,
            key.is_some(),
            elapsed,
            bundle::is_bundle(path),
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn print_human(path: &Path, r: &Report, pinned: bool, elapsed: std::time::Duration, bundle: bool) {
    let what = if bundle { "bundle " } else { "ledger " };
    println!("{what}     {}", path.display());
    if let Some(o) = &r.origin {
        println!("log         {o}");
    }
    if let Some((_, fp)) = &r.identity {
        let note = if pinned {
            "matches the expected key"
        } else {
            "compare with the fingerprint published for this appliance"
        };
        println!("identity    {fp}  ({note})");
    }
    println!(
        "root        {} (SHA-256, RFC 6962, {} records)",
        r.root, r.records
    );
    for f in r.findings.iter().take(20) {
        println!("problem     {}: {}", f.subject, f.why);
    }
    if r.findings.len() > 20 {
        println!("problem     … and {} more", r.findings.len() - 20);
    }
    let rate = r.records as f64 / elapsed.as_secs_f64().max(1e-9);
    if let Some(first) = r.findings.first() {
        println!(
            "FAIL: {}: {}  ({} problems; {} records, {} checkpoints examined)",
            first.subject,
            first.why,
            r.findings.len(),
            r.records,
            r.checkpoints
        );
    } else {
        let uncovered = match r.uncovered() {
            0 => String::new(),
            n => format!("; {n} newest records not yet covered by a checkpoint"),
        };
        println!(
            "OK: {} records and {} checkpoints verified (signatures, chain, sequence, Merkle roots){uncovered}; {:.0} records/s",
            r.records, r.checkpoints, rate
        );
    }
}
