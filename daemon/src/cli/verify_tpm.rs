//! The TPM's quote in an export bundle (`tpm-quote.json`, FORMAT.md §9),
//! checked by `cairn verify`: it verifies against the bundle's checkpoint,
//! and its attestation key is the one the log published.

use std::path::Path;

use cairn_attest::entry::Entry;
use cairn_attest::verify::LogBytes;
use cairn_hw::tpm::checkpoint_quote::{AkJson, CheckpointQuote, FILE};
use sha2::{Digest as _, Sha256};

/// What a verified quote says, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct QuoteSummary {
    /// `ecdsa-p256` (a TPM) or `ed25519-emulated`.
    pub ak_kind: String,
    /// SHA-256 of the attestation key's public bytes, hex.
    pub ak_fingerprint: String,
    /// The record that published the key, when the bundle holds it.
    pub published_by: Option<u64>,
    /// PCR 7 and PCR 23 as quoted, hex.
    pub pcr7: String,
    /// PCR 23 after the checkpoint was extended into it.
    pub pcr23: String,
}

/// The newest attestation key the log published (`tpm.counter_bound`, or
/// `tpm.rollback_accepted` with a new TPM) among the bundle's records.
fn published_key(log: &LogBytes<'_>) -> Option<(u64, AkJson)> {
    log.entries.iter().rev().find_map(|s| {
        let r = Entry::parse(s.bytes).ok()?.record;
        if r.kind != "tpm.counter_bound" && r.kind != "tpm.rollback_accepted" {
            return None;
        }
        let ak = serde_json::from_value(r.body.get("attestation_key")?.clone()).ok()?;
        Some((r.seq, ak))
    })
}

/// Checks `dir`'s `tpm-quote.json` against its `checkpoint` and its
/// records: `None` when the bundle has no quote.
pub(super) fn check(dir: &Path, log: &LogBytes<'_>) -> Option<Result<QuoteSummary, String>> {
    let file = dir.join(FILE);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read it: {e}"))),
    };
    Some((|| {
        let quote: CheckpointQuote =
            serde_json::from_slice(&bytes).map_err(|e| format!("does not parse: {e}"))?;
        let note = std::fs::read(dir.join(cairn_attest::bundle::CHECKPOINT))
            .map_err(|e| format!("cannot read the bundle's checkpoint: {e}"))?;
        let attested = quote.verify(&note).map_err(|e| e.to_string())?;
        let published = published_key(log);
        if let Some((seq, ak)) = &published {
            if *ak != quote.attestation_key {
                return Err(format!(
                    "signed by an attestation key other than the one record {seq} published"
                ));
            }
        }
        let value = |p: u8| {
            attested
                .pcrs
                .iter()
                .find(|(i, _)| *i == p)
                .map(|(_, v)| hex::encode(v))
                .unwrap_or_default()
        };
        Ok(QuoteSummary {
            ak_kind: quote.attestation_key.kind.clone(),
            ak_fingerprint: hex::encode(Sha256::digest(quote.attestation_key.public.as_bytes())),
            published_by: published.map(|(seq, _)| seq),
            pcr7: value(7),
            pcr23: value(23),
        })
    })())
}

impl QuoteSummary {
    /// The report's line.
    pub(super) fn line(&self) -> String {
        let whose = match self.published_by {
            Some(seq) => format!("the key the log published in record {seq}"),
            None => "the log's tpm.counter_bound record is not in this bundle: compare the key with an earlier export's".into(),
        };
        let emulated = if self.ak_kind == "ed25519-emulated" {
            " (an emulated TPM: not hardware)"
        } else {
            ""
        };
        format!(
            "tpm         the checkpoint was extended into PCR 23 and quoted{emulated}; signed by {whose} (AK {} {}…)",
            self.ak_kind,
            &self.ak_fingerprint[..16]
        )
    }
}
