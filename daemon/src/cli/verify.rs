//! `cairn verify PATH`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::bundle;
use cairn_attest::ledger_files::LedgerFiles;
use cairn_attest::verify::{
    verify_extends, verify_log, Finding, LogBytes, Options, Report, Subject,
};

use super::EXIT_INVALID;

/// A ledger directory or an export bundle, opened for verification: its
/// journals (memory-mapped) and, for an incremental bundle, its prefix.
pub(super) struct Opened {
    path: std::path::PathBuf,
    files: LedgerFiles,
    prefix: Option<bundle::PrefixFiles>,
}

impl Opened {
    /// Opens the ledger or bundle at `path`.
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        let files =
            LedgerFiles::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let prefix = if bundle::is_bundle(path) {
            bundle::PrefixFiles::read(path)
                .with_context(|| format!("cannot read the incremental bundle {}", path.display()))?
        } else {
            None
        };
        Ok(Opened {
            path: path.to_path_buf(),
            files,
            prefix,
        })
    }

    /// Whether it is an export bundle.
    pub(super) fn is_bundle(&self) -> bool {
        bundle::is_bundle(&self.path)
    }

    /// The log as bytes.
    pub(super) fn log(&self) -> LogBytes<'_> {
        let mut log = self.files.log_bytes();
        log.prefix = self.prefix.as_ref().map(bundle::PrefixFiles::prefix);
        log
    }

    /// Verifies `log` (this source's log, or a cut of it) as `cairn verify`
    /// does: the log, and a bundle's own checks.
    pub(super) fn verify(&self, log: &LogBytes<'_>, key: Option<String>) -> Report {
        self.verify_with_quote(log, key).0
    }

    /// [`Opened::verify`], and what a bundle's TPM quote says when it
    /// verifies (a quote that does not is one of the report's findings).
    pub(super) fn verify_with_quote(
        &self,
        log: &LogBytes<'_>,
        key: Option<String>,
    ) -> (Report, Option<super::verify_tpm::QuoteSummary>) {
        let mut report = verify_log(
            log,
            &Options {
                expected_identity: key,
            },
        );
        let mut quote = None;
        if self.is_bundle() {
            let findings = bundle::check(&self.path, &report);
            report.findings.extend(findings);
            match super::verify_tpm::check(&self.path, log) {
                Some(Ok(summary)) => quote = Some(summary),
                Some(Err(why)) => report.findings.push(Finding {
                    subject: Subject::File {
                        file: cairn_hw::tpm::checkpoint_quote::FILE.into(),
                    },
                    why,
                }),
                None => {}
            }
        }
        (report, quote)
    }
}

/// Verifies the ledger or bundle at `path`; with `since` (an earlier
/// bundle, or a checkpoint file), also that the log extends that
/// checkpoint.
pub(super) fn run(
    path: &Path,
    key: Option<String>,
    since: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let opened = Opened::open(path)?;
    let log = opened.log();
    let (mut report, quote) = opened.verify_with_quote(&log, key.clone());
    let mut extends = None;
    if let Some(since) = since {
        let file = if since.is_dir() {
            since.join(bundle::CHECKPOINT)
        } else {
            since.to_path_buf()
        };
        let earlier =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        match verify_extends(&log, &earlier) {
            Ok(cp) => extends = Some((file, cp.size)),
            Err(e) => report.findings.push(Finding {
                subject: Subject::Log,
                why: format!("does not extend {}: {e}", file.display()),
            }),
        }
    }
    let elapsed = started.elapsed();
    if json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(q) = &quote {
            v["tpm_quote"] = serde_json::to_value(q)?;
        }
        if let Some((file, size)) = &extends {
            v["extends"] = serde_json::json!({"checkpoint": file, "size": size});
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_human(
            path,
            &report,
            key.is_some(),
            elapsed,
            bundle::is_bundle(path),
        );
        if let Some((file, size)) = &extends {
            println!(
                "extends     {}: its {size} records are this log's first {size}",
                file.display()
            );
        }
        if let Some(q) = &quote {
            println!("{}", q.line());
        }
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
    // Records checked here: those stored (an incremental bundle's earlier
    // ones are vouched for by its previous checkpoint).
    let stored = r.records - r.from + u64::from(r.from > 0);
    let rate = stored as f64 / elapsed.as_secs_f64().max(1e-9);
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
        let what = match r.from {
            0 => format!("{} records", r.records),
            f => format!(
                "{} records ({f} to {} stored here, the first {f} vouched for by the previous checkpoint)",
                r.records,
                r.records - 1
            ),
        };
        println!(
            "OK: {what} and {} checkpoints verified (signatures, chain, sequence, Merkle roots){uncovered}; {:.0} records/s",
            r.checkpoints, rate
        );
    }
}
