//! `cairn inventory`: the models on the appliance, from its verified log,
//! as a CycloneDX 1.6 ML-BOM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, ValueEnum};

use super::log_at::{self, LogArgs};
use super::output::Output;
use crate::evidence::inventory::{cyclonedx, random_serial, Appliance};
use crate::evidence::models::{ModelFacts, Pool};

/// `cairn inventory` arguments.
#[derive(ClapArgs)]
pub(super) struct Args {
    #[command(flatten)]
    source: LogArgs,
    /// `cyclonedx` (a CycloneDX 1.6 JSON ML-BOM) or `json` (the facts of
    /// each model's `model.loaded` record).
    #[arg(long, value_enum, default_value_t = Format::Cyclonedx)]
    format: Format,
    /// Where to write it (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A `--format` value.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// The models' facts as JSON.
    Json,
}

/// Writes the inventory of the models loaded at the checkpoint. A log that
/// does not verify gets none (exit status 1).
pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let out = Output::open(a.out.as_deref())?;
    let log = log_at::read(&a.source)?;
    if let Some(f) = log.report.findings.first() {
        eprintln!(
            "cairn inventory: the log does not verify ({}: {}); no inventory is made from it (run `cairn verify {}`)",
            f.subject,
            f.why,
            a.source.path.display()
        );
        return Ok(ExitCode::from(super::EXIT_INVALID));
    }
    let mut pool = Pool::default();
    for r in &log.records {
        pool.apply(r);
    }
    let models: Vec<&ModelFacts> = pool.loaded().collect();
    let value = match a.format {
        Format::Json => serde_json::to_value(&models)?,
        Format::Cyclonedx => {
            let root = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                log.checkpoint.root,
            );
            let (origin, fingerprint) = match &log.report.identity {
                Some((_, fp)) => (log.report.origin.clone().unwrap_or_default(), fp.clone()),
                None => (String::new(), String::new()),
            };
            cyclonedx(
                &models,
                &Appliance {
                    origin: &origin,
                    fingerprint: &fingerprint,
                    checkpoint_size: log.checkpoint.size,
                    checkpoint_root: &root,
                },
                &rfc3339_now(),
                &random_serial()?,
            )
        }
    };
    let mut bytes = serde_json::to_vec_pretty(&value)?;
    bytes.push(b'\n');
    let target = out.path().map(|p| p.display().to_string());
    out.write(&bytes)?;
    eprintln!(
        "{} model(s) loaded at checkpoint {} of {}{}",
        models.len(),
        log.checkpoint.size,
        log.report.origin.as_deref().unwrap_or("?"),
        target.map_or(String::new(), |t| format!("; written to {t}"))
    );
    Ok(ExitCode::SUCCESS)
}

/// Now, RFC 3339 UTC to the second (CycloneDX's `date-time`).
fn rfc3339_now() -> String {
    let t = cairn_attest::record::now_timestamp();
    format!("{}Z", t.get(..19).unwrap_or("1970-01-01T00:00:00"))
}
