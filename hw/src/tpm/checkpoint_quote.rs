//! A TPM's word on an exported checkpoint: the bundle file
//! `tpm-quote.json` (FORMAT.md section 9).
//!
//! When the daemon exports a checkpoint it extends PCR 23
//! ([`super::CHECKPOINT_PCR`]) with the SHA-256 of the checkpoint note and
//! quotes PCRs 7 and 23 with that same SHA-256 as the nonce, all under one
//! lock on the TPM. The file records PCR 23's value before the extension,
//! so a verifier recomputes the value after it: the quote then says that
//! this TPM, whose attestation key the log published in its
//! `tpm.counter_bound` record, extended PCR 23 with this checkpoint last
//! before quoting, while PCR 7 (the Secure Boot policy) held the value
//! shown.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    extended, pcr_digest, AkPublic, Quote, QuoteSignature, Tpm, TpmError, CHECKPOINT_PCR,
    QUOTE_PCRS,
};

/// The file's name in a bundle.
pub const FILE: &str = "tpm-quote.json";
/// Its `format` value.
pub const FORMAT: &str = "cairn-tpm-quote/v1";

/// An attestation key as records and bundles carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AkJson {
    /// `ecdsa-p256` (a TPM: the SEC1 uncompressed point) or
    /// `ed25519-emulated` (the emulated TPM's key).
    pub kind: String,
    /// The public key, base64.
    pub public: String,
}

impl From<&AkPublic> for AkJson {
    fn from(ak: &AkPublic) -> Self {
        let (kind, bytes) = match ak {
            AkPublic::EcdsaP256(p) => ("ecdsa-p256", p.as_slice()),
            AkPublic::Ed25519(p) => ("ed25519-emulated", p.as_slice()),
        };
        AkJson {
            kind: kind.into(),
            public: B64.encode(bytes),
        }
    }
}

impl AkJson {
    /// The key it names.
    pub fn key(&self) -> Result<AkPublic, TpmError> {
        let bytes = B64
            .decode(&self.public)
            .map_err(|_| bad("AK is not base64"))?;
        match self.kind.as_str() {
            "ecdsa-p256" if bytes.len() == 65 && bytes[0] == 4 => Ok(AkPublic::EcdsaP256(bytes)),
            "ed25519-emulated" => Ok(AkPublic::Ed25519(
                bytes
                    .try_into()
                    .map_err(|_| bad("Ed25519 AK of the wrong length"))?,
            )),
            k => Err(bad(&format!("unknown or malformed AK of kind {k:?}"))),
        }
    }
}

/// `tpm-quote.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuote {
    /// [`FORMAT`].
    pub format: String,
    /// Which TPM (for people; not checked).
    pub tpm: String,
    /// SHA-256 of the checkpoint note, hex: the extension and the nonce.
    pub checkpoint_sha256: String,
    /// The PCR extended: 23.
    pub pcr: u8,
    /// That PCR's value before the extension, hex.
    pub pcr_before: String,
    /// The quoted PCR values, hex, by PCR number ("7", "23").
    pub pcrs: BTreeMap<String, String>,
    /// The attestation key.
    pub attestation_key: AkJson,
    /// The TPMS_ATTEST the TPM signed, base64.
    pub attest: String,
    /// The signature over it, base64: r ‖ s (ECDSA P-256, SHA-256) or the
    /// Ed25519 signature.
    pub signature: String,
}

/// What a checked quote file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    /// The key that signed it.
    pub ak: AkPublic,
    /// The quoted PCR values, ascending.
    pub pcrs: Vec<(u8, [u8; 32])>,
}

fn bad(why: &str) -> TpmError {
    TpmError::BadQuote(why.to_string())
}

fn hex32(what: &str, s: &str) -> Result<[u8; 32], TpmError> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(&format!("{what} is not 32 bytes of hex")))
}

/// Extends PCR 23 with the SHA-256 of `note` and quotes PCRs 7 and 23 with
/// it as the nonce (hold the TPM for the whole call, so nothing extends in
/// between).
pub fn attest_checkpoint(tpm: &mut dyn Tpm, note: &[u8]) -> Result<CheckpointQuote, TpmError> {
    let digest: [u8; 32] = Sha256::digest(note).into();
    let before = tpm.pcr_read(super::PcrSelection::new(&[CHECKPOINT_PCR])?)?[0];
    tpm.pcr_extend(CHECKPOINT_PCR, &digest)?;
    let quote = tpm.quote(QUOTE_PCRS, &digest)?;
    let values = tpm.pcr_read(QUOTE_PCRS)?;
    let ak = tpm.ak_public()?;
    Ok(CheckpointQuote {
        format: FORMAT.into(),
        tpm: tpm.describe(),
        checkpoint_sha256: hex::encode(digest),
        pcr: CHECKPOINT_PCR,
        pcr_before: hex::encode(before),
        pcrs: QUOTE_PCRS
            .pcrs()
            .zip(&values)
            .map(|(p, v)| (p.to_string(), hex::encode(v)))
            .collect(),
        attestation_key: AkJson::from(&ak),
        attest: B64.encode(&quote.attest),
        signature: B64.encode(quote.signature.to_bytes()),
    })
}

impl CheckpointQuote {
    /// Checks the file against the checkpoint note it came with: the
    /// format; the nonce and the extension are the note's SHA-256; the
    /// signature verifies with the file's attestation key; the quote covers
    /// exactly PCRs 7 and 23 and its digest is over the values listed; and
    /// PCR 23's value is PCR 23 before, extended with the note's SHA-256.
    /// The caller checks that the key is the log's (its `tpm.counter_bound`
    /// record).
    pub fn verify(&self, note: &[u8]) -> Result<Attested, TpmError> {
        if self.format != FORMAT {
            return Err(bad(&format!("format {:?}, not {FORMAT}", self.format)));
        }
        let digest: [u8; 32] = Sha256::digest(note).into();
        if hex32("checkpoint_sha256", &self.checkpoint_sha256)? != digest {
            return Err(bad("it is about another checkpoint"));
        }
        if self.pcr != CHECKPOINT_PCR {
            return Err(bad(&format!(
                "it extends PCR {}, not {CHECKPOINT_PCR}",
                self.pcr
            )));
        }
        let ak = self.attestation_key.key()?;
        let sig = B64
            .decode(&self.signature)
            .map_err(|_| bad("the signature is not base64"))?;
        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| bad("the signature is not 64 bytes"))?;
        let signature = match ak {
            AkPublic::EcdsaP256(_) => QuoteSignature::EcdsaP256 {
                r: sig[..32].try_into().expect("32"),
                s: sig[32..].try_into().expect("32"),
            },
            AkPublic::Ed25519(_) => QuoteSignature::Ed25519(sig),
        };
        let quote = Quote {
            attest: B64
                .decode(&self.attest)
                .map_err(|_| bad("attest is not base64"))?,
            signature,
        };
        let info = super::verify_quote(&quote, &ak, &digest)?;
        if info.selection != QUOTE_PCRS {
            return Err(bad("the quote covers other PCRs than 7 and 23"));
        }
        let mut pcrs = Vec::new();
        for p in QUOTE_PCRS.pcrs() {
            let v = self
                .pcrs
                .get(&p.to_string())
                .ok_or_else(|| bad(&format!("no value for PCR {p}")))?;
            pcrs.push((p, hex32(&format!("PCR {p}"), v)?));
        }
        if self.pcrs.len() != pcrs.len() {
            return Err(bad("values for PCRs the quote does not cover"));
        }
        let values: Vec<[u8; 32]> = pcrs.iter().map(|(_, v)| *v).collect();
        if pcr_digest(&values) != info.pcr_digest {
            return Err(bad("the PCR values listed are not the ones quoted"));
        }
        let before = hex32("pcr_before", &self.pcr_before)?;
        let after = pcrs
            .iter()
            .find(|(p, _)| *p == CHECKPOINT_PCR)
            .map(|(_, v)| *v)
            .expect("PCR 23 is quoted");
        if extended(&before, &digest) != after {
            return Err(bad(
                "PCR 23 is not its value before extended with this checkpoint",
            ));
        }
        Ok(Attested { ak, pcrs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::EmulatedTpm;

    #[test]
    fn a_checkpoint_quote_verifies_and_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut tpm = EmulatedTpm::open(&dir.path().join("tpm")).unwrap();
        let note = b"origin\n3\nroot\n\n- sig\n";
        let first = attest_checkpoint(&mut tpm, b"an earlier checkpoint").unwrap();
        let q = attest_checkpoint(&mut tpm, note).unwrap();
        assert_eq!(q.pcr_before, first.pcrs["23"], "extensions accumulate");
        let ok = q.verify(note).unwrap();
        assert_eq!(ok.ak, tpm.ak_public().unwrap());
        assert_eq!(ok.pcrs.len(), 2);
        // Through JSON and back.
        let json = serde_json::to_string(&q).unwrap();
        let back: CheckpointQuote = serde_json::from_str(&json).unwrap();
        back.verify(note).unwrap();
        // Another checkpoint, a changed value, a changed attestation.
        assert!(q.verify(b"another note").is_err());
        let mut w = q.clone();
        w.pcrs.insert("7".into(), hex::encode([1u8; 32]));
        assert!(w.verify(note).is_err());
        let mut w = q.clone();
        w.pcr_before = hex::encode([1u8; 32]);
        assert!(w.verify(note).is_err());
        let mut w = q.clone();
        let mut a = B64.decode(&w.attest).unwrap();
        let n = a.len();
        a[n - 1] ^= 1;
        w.attest = B64.encode(a);
        assert!(w.verify(note).is_err());
        let mut w = q.clone();
        w.attestation_key = AkJson::from(&AkPublic::Ed25519([3; 32]));
        assert!(w.verify(note).is_err());
        assert!(serde_json::from_str::<CheckpointQuote>("{\"format\":1}").is_err());
    }
}
