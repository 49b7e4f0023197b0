//! `cairn evidence`: an evidence report for auditors over a period,
//! computed from the verified log at one signed checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::{Args as ClapArgs, ValueEnum};

use super::log_at::{self, LogArgs, LogAt};
use super::output::Output;
use crate::evidence::framework::Framework;
use crate::evidence::period::{self, parse_date, Period};
use crate::evidence::report::{CheckpointInfo, Problem, Source, Verification};
use crate::evidence::{self, Input};

/// `cairn evidence` arguments.
#[derive(ClapArgs)]
pub(super) struct Args {
    #[command(flatten)]
    source: LogArgs,
    /// The first day of the period, YYYY-MM-DD (UTC; default: the day of
    /// the log's first record).
    #[arg(long)]
    from: Option<String>,
    /// The last day of the period, included (default: the day of the last
    /// record reported on).
    #[arg(long)]
    to: Option<String>,
    /// The frameworks to map findings to (repeat or separate by commas).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    framework: Vec<Choice>,
    /// The report's format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    format: Format,
    /// Where to write the report (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Longest stretch without an export that is not reported as a gap,
    /// in days.
    #[arg(long, default_value_t = 2.0)]
    export_gap_days: f64,
}

/// A `--framework` value.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Choice {
    /// SOC 2 Trust Services Criteria.
    Soc2,
    /// EU AI Act.
    EuAiAct,
    /// ISO/IEC 42001 Annex A.
    Iso42001,
    /// NIST AI RMF.
    NistAiRmf,
    /// All four.
    All,
}

/// A `--format` value.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One self-contained HTML page with charts.
    Html,
    /// The same data as JSON.
    Json,
}

/// The frameworks chosen, in report order.
fn frameworks(choices: &[Choice]) -> Vec<Framework> {
    Framework::ALL
        .into_iter()
        .filter(|f| {
            choices.iter().any(|c| {
                *c == Choice::All
                    || matches!(
                        (c, f),
                        (Choice::Soc2, Framework::Soc2)
                            | (Choice::EuAiAct, Framework::EuAiAct)
                            | (Choice::Iso42001, Framework::Iso42001)
                            | (Choice::NistAiRmf, Framework::NistAiRmf)
                    )
            })
        })
        .collect()
}

/// Makes the report. Exit status 0 when the log verified, 1 when it did
/// not (the report says so), 2 when no report could be made.
pub(super) fn run(a: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if !(a.export_gap_days > 0.0 && a.export_gap_days.is_finite()) {
        bail!("--export-gap-days must be a positive number of days");
    }
    let from = a
        .from
        .as_deref()
        .map(|s| parse_date("--from", s))
        .transpose()?;
    let to = a.to.as_deref().map(|s| parse_date("--to", s)).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        Period::new(f, t)?;
    }
    let out = Output::open(a.out.as_deref())?;
    let log = log_at::read(&a.source)?;
    let first_day = log.records.first().and_then(|r| period::day_of(&r.time));
    let last_day = log.records.last().and_then(|r| period::day_of(&r.time));
    let Some(from) = from.or(first_day) else {
        bail!(
            "{}: no readable record to report on",
            a.source.path.display()
        );
    };
    let Some(to) = to.or(last_day.map(|l| l.max(from))) else {
        bail!(
            "{}: no readable record to report on",
            a.source.path.display()
        );
    };
    let period = Period::new(from, to)?;
    if let Some(why) = evidence::before_log(&period, &log.records) {
        bail!("{why}");
    }
    let ok = log.report.ok();
    let input = input(&a, &log, period);
    let report = evidence::build(input);
    let bytes = match a.format {
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(&report)?;
            v.push(b'\n');
            v
        }
        Format::Html => evidence::html::render(&report).into_bytes(),
    };
    let target = out.path().map(|p| p.display().to_string());
    out.write(&bytes)?;
    for note in &report.period.notes {
        eprintln!("cairn evidence: {note}");
    }
    eprintln!(
        "{}: {} records in {} to {} at checkpoint {} ({} records verified in {:.1} s; report in {:.1} s){}",
        if ok { "VERIFIED" } else { "VERIFICATION FAILED" },
        report.summary.records,
        report.period.from,
        report.period.to,
        log.checkpoint.size,
        log.report.records,
        log.seconds,
        started.elapsed().as_secs_f64(),
        target.map_or(String::new(), |t| format!("; written to {t}"))
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_INVALID)
    })
}

fn input<'a>(a: &Args, log: &'a LogAt, period: Period) -> Input<'a> {
    let r = &log.report;
    Input {
        records: &log.records,
        period,
        frameworks: frameworks(&a.framework),
        source: Source {
            path: a.source.path.display().to_string(),
            kind: log.kind.to_owned(),
            daemon_running: log.daemon_running,
            origin: r.origin.clone(),
            identity_fingerprint: r.identity.as_ref().map(|(_, fp)| fp.clone()),
            key_pinned: a.source.key.is_some(),
        },
        checkpoint: Some(CheckpointInfo {
            size: log.checkpoint.size,
            root: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                log.checkpoint.root,
            ),
            note: String::from_utf8_lossy(&log.note).into_owned(),
        }),
        verification: Verification {
            ok: r.ok(),
            records: r.records,
            from: r.from,
            checkpoints: r.checkpoints,
            checkpointed_size: r.checkpointed_size,
            problems: r.findings.len(),
            findings: r
                .findings
                .iter()
                .take(20)
                .map(|f| Problem {
                    subject: f.subject.to_string(),
                    why: f.why.clone(),
                })
                .collect(),
            left_out: log.left_out,
            seconds: (log.seconds * 10.0).round() / 10.0,
        },
        checkpoints: &log.checkpoints,
        gap_days: a.export_gap_days,
        generated: cairn_attest::record::now_timestamp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framework_choices() {
        assert_eq!(frameworks(&[Choice::All]), Framework::ALL);
        assert_eq!(
            frameworks(&[Choice::NistAiRmf, Choice::Soc2, Choice::Soc2]),
            [Framework::Soc2, Framework::NistAiRmf]
        );
    }
}
