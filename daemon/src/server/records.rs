//! The records an inference request writes through the gate, built in one
//! place for the API and for `cairn bench gate`.

use cairn_attest::{Actor, Receipt, RecordDraft};
use cairn_inference::{Generation, StopReason};

use super::models::Model;

/// The `inference.request` record: the caller, the model's digest, `body`
/// (endpoint, parameters, prompt length) and a salted commitment to the
/// request's payload (`(name, bytes)`: the messages or the prompt).
pub fn request(
    caller: Actor,
    model: &Model,
    body: serde_json::Value,
    payload: (&str, Vec<u8>),
) -> RecordDraft {
    let mut draft = RecordDraft::new("inference.request", caller, body);
    draft.model = Some(model.digest.clone());
    draft.payloads = vec![(payload.0.to_string(), payload.1)];
    draft
}

/// The `inference.result` record answering `request`: finish reason, token
/// counts, timings, and a commitment to the output text.
pub fn result(caller: Actor, model: &Model, request: &Receipt, g: &Generation) -> RecordDraft {
    let mut done = RecordDraft::new(
        "inference.result",
        caller,
        serde_json::json!({
            "finish_reason": finish_reason(g),
            "prompt_tokens": g.prompt_tokens.len(),
            "completion_tokens": g.tokens.len(),
            "timings": g.timings,
        }),
    );
    done.model = Some(model.digest.clone());
    done.reference = Some(request.reference());
    done.payloads = vec![("output".into(), g.text.clone().into_bytes())];
    done
}

/// OpenAI's `finish_reason` for a generation: `stop` (end of sequence or
/// a stop sequence), `length` (`max_tokens` or the context), and cairn's
/// `cancelled` (the client went away; only ever seen in the record).
pub fn finish_reason(g: &Generation) -> &'static str {
    match g.stop {
        StopReason::Eos | StopReason::Stop => "stop",
        StopReason::MaxTokens | StopReason::Context => "length",
        StopReason::Cancelled => "cancelled",
    }
}

/// What an export was, as its `ledger.export` record holds it.
pub struct ExportFacts<'a> {
    /// The bundle's directory name.
    pub bundle: &'a str,
    /// Records in it (its checkpoint's size).
    pub records: u64,
    /// Its checkpoint's root, base64.
    pub root: &'a str,
    /// The identity key's fingerprint.
    pub identity_fingerprint: &'a str,
    /// SHA-256 of its `SHA256SUMS`, hex.
    pub sums_sha256: &'a str,
    /// The USB stick it was written to, for `cairn export --usb`.
    pub medium: Option<&'a ExportMedium>,
    /// The TPM's PCR 23 after the export's checkpoint was extended into
    /// it (see `TpmState::export_facts`).
    pub tpm: Option<serde_json::Value>,
}

/// The USB stick an export was written to, as UDisks2 described it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMedium {
    /// The filesystem's label.
    #[serde(default)]
    pub label: String,
    /// The filesystem's UUID.
    #[serde(default)]
    pub uuid: String,
    /// The drive's serial number.
    #[serde(default)]
    pub serial: String,
    /// The drive's vendor and model.
    #[serde(default)]
    pub model: String,
    /// The device node, e.g. `/dev/sdb1`.
    #[serde(default)]
    pub device: String,
}

impl ExportMedium {
    /// Whether every field is short printable text (it goes into the log
    /// as the caller sent it).
    pub fn is_plausible(&self) -> bool {
        [
            &self.label,
            &self.uuid,
            &self.serial,
            &self.model,
            &self.device,
        ]
        .iter()
        .all(|f| f.len() <= 128 && !f.chars().any(char::is_control))
    }
}

/// The `ledger.export` record of an export by `actor`.
pub fn export(actor: Actor, e: &ExportFacts<'_>) -> RecordDraft {
    let mut body = serde_json::json!({
        "bundle": e.bundle,
        "records": e.records,
        "root": e.root,
        "identity_fingerprint": e.identity_fingerprint,
        "sums_sha256": e.sums_sha256,
    });
    if let Some(m) = e.medium {
        body["medium"] = serde_json::json!(m);
    }
    if let Some(t) = &e.tpm {
        body["tpm"] = t.clone();
    }
    RecordDraft::new("ledger.export", actor, body)
}

/// An error's text as a record's `reason`: one line of at most 1,024
/// bytes (control characters become spaces).
pub fn failure_reason(error: &str) -> String {
    let mut reason: String = error
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.len() > 1024 {
        let mut cut = 1021;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
}

/// The `ledger.export_failed` record: the export that `export` (its
/// `ledger.export` record) announced did not get its name (`reason`), so
/// no bundle of that name exists.
pub fn export_failed(
    actor: Actor,
    export: cairn_attest::record::RecordRef,
    bundle: &str,
    reason: &str,
) -> RecordDraft {
    let mut draft = RecordDraft::new(
        "ledger.export_failed",
        actor,
        serde_json::json!({ "bundle": bundle, "reason": failure_reason(reason) }),
    );
    draft.reference = Some(export);
    draft
}

#[cfg(test)]
mod tests {
    #[test]
    fn failure_reasons_are_one_bounded_line() {
        assert_eq!(super::failure_reason("a\nb"), "a b");
        let long = "é".repeat(700);
        let r = super::failure_reason(&long);
        assert!(r.len() <= 1024 && r.ends_with("..."), "{}", r.len());
    }
}
