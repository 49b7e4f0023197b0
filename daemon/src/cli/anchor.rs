//! `cairn anchor import`: a timestamp receipt brought back for an exported
//! checkpoint, verified here and recorded by the daemon (which verifies it
//! again against its own checkpoint).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_attest::{anchor, bundle};
use clap::Subcommand;

use super::daemon_cmds::DaemonAt;
use crate::client::request;

/// `cairn anchor …`.
#[derive(Subcommand)]
pub(super) enum AnchorCommand {
    /// Import a timestamp receipt for a bundle's checkpoint: an RFC 3161
    /// response (`.tsr`, checked against `--tsa-cert`) or an OpenTimestamps
    /// proof (`.ots`, checked for the digest it commits to). The running
    /// daemon records it (`ledger.anchor`).
    Import {
        /// The receipt file.
        file: PathBuf,
        /// The export bundle whose `checkpoint` (and `checkpoint.tsq`) it
        /// answers.
        #[arg(long)]
        bundle: PathBuf,
        /// The timestamp authority's certificate (PEM or DER), obtained
        /// from the authority; required for `.tsr`.
        #[arg(long)]
        tsa_cert: Option<PathBuf>,
        #[command(flatten)]
        at: DaemonAt,
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(command: AnchorCommand) -> anyhow::Result<ExitCode> {
    let AnchorCommand::Import {
        file,
        bundle: dir,
        tsa_cert,
        at,
        json,
    } = command;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let receipt = read(&file)?;
    let checkpoint = read(&dir.join(bundle::CHECKPOINT))?;
    let size = cairn_attest::note::Note::parse(&checkpoint)
        .and_then(|n| cairn_attest::checkpoint::Checkpoint::parse_text(n.text))
        .with_context(|| format!("{} holds no checkpoint", dir.display()))?
        .size;
    let mut body = serde_json::json!({
        "checkpoint_size": size,
        "receipt": B64.encode(&receipt),
    });
    let what = match anchor::ots_digest(&receipt) {
        Ok(_) => {
            body["kind"] = "opentimestamps".into();
            "OpenTimestamps proof".to_string()
        }
        Err(_) => {
            let Some(cert_path) = tsa_cert else {
                bail!(
                    "{} is not an OpenTimestamps proof; an RFC 3161 response is checked against the authority's certificate: pass --tsa-cert",
                    file.display()
                );
            };
            let cert = read(&cert_path)?;
            let tsq = read(&dir.join(bundle::TIMESTAMP_REQUEST))?;
            let ts = anchor::verify_timestamp_response(&receipt, &tsq, &checkpoint, &cert)
                .with_context(|| format!("{} does not verify", file.display()))?;
            let pem = if cert.starts_with(b"-----BEGIN") {
                String::from_utf8(cert).context("the certificate is not PEM text")?
            } else {
                pem_certificate(&cert)
            };
            body["kind"] = "rfc3161".into();
            body["request"] = B64.encode(&tsq).into();
            body["tsa_cert"] = pem.into();
            format!("RFC 3161 timestamp of {} by {}", ts.gen_time, ts.tsa)
        }
    };
    let answer = request(
        &at.socket(),
        "POST",
        "/v1/admin/anchors",
        Some(body.to_string().into()),
    )?
    .ok()?
    .json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!("verified    {what}");
        println!("checkpoint  size {size} ({})", dir.display());
        println!(
            "recorded    as record {} (ledger.anchor)",
            answer["cairn"]["record"]["seq"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A DER certificate as PEM text.
fn pem_certificate(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
