//! `cairn disclose SEQ NAME`: a kept payload, disclosed by the daemon (an
//! administrator's act, recorded as `payload.disclosed`) into a file that
//! carries the record's tlog-proof too; and `cairn verify FILE` of such a
//! file: the proof verifies and the record commits to the disclosed text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::payload::Disclosure;
use cairn_attest::proof::RecordProof;

use super::daemon_cmds::DaemonAt;
use super::EXIT_INVALID;
use crate::client::request;

/// A disclosure file: what `GET /v1/admin/payloads/{seq}/{name}` answers,
/// less the receipt.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DisclosureFile {
    disclosure: Disclosure,
    /// The record's tlog-proof, as text.
    proof: String,
}

/// Asks the daemon for the payload and writes the file (default
/// `record-SEQ-NAME.disclosure.json`).
pub(super) fn write(
    at: &DaemonAt,
    seq: u64,
    name: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        anyhow::bail!("payload name {name:?}: expected letters, digits, '_' or '-' (e.g. messages, prompt, output)");
    }
    let answer = request(
        &at.socket(),
        "GET",
        &format!("/v1/admin/payloads/{seq}/{name}"),
        None,
    )?
    .ok()?
    .json()?;
    let file = DisclosureFile {
        disclosure: serde_json::from_value(answer["disclosure"].clone())
            .context("the daemon's answer holds no disclosure")?,
        proof: answer["proof"]
            .as_str()
            .context("the daemon's answer holds no proof")?
            .to_string(),
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("record-{seq}-{name}.disclosure.json")));
    std::fs::write(&out, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {} (disclosure recorded as record {})",
        out.display(),
        answer["cairn"]["record"]["seq"]
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` holds a disclosure file (a JSON object with both keys).
pub(super) fn looks_like_disclosure(path: &Path) -> bool {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("disclosure").is_some() && v.get("proof").is_some())
}

/// Verifies a disclosure file: its proof (against `key` if given) and the
/// disclosed text against the proved record's commitment.
pub(super) fn verify(path: &Path, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: DisclosureFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a disclosure file", path.display()))?;
    let checked = RecordProof::parse(file.proof.as_bytes())
        .and_then(|p| p.verify(key))
        .and_then(|p| file.disclosure.check(&p.record).map(|()| p));
    match checked {
        Ok(p) => {
            println!(
                "OK: record {} ({}, log {}) committed to this {} ({} bytes); the record is in the checkpoint at size {}",
                p.record.seq,
                p.record.kind,
                p.checkpoint.origin,
                file.disclosure.name,
                file.disclosure.payload.len(),
                p.checkpoint.size
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAIL: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}
