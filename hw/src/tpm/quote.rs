//! Quotes: the TPMS_ATTEST structure a TPM2_Quote signs (TPM 2.0 Library
//! Part 2, 10.12.12), parsed here without a TPM so that a verifier, the
//! emulated TPM and the tests share one reading of it.
//!
//! A real TPM signs with an ECDSA P-256 attestation key (SHA-256); the
//! emulated TPM writes the same structure and signs it with Ed25519, which
//! [`AkPublic::Ed25519`] names so that no one mistakes it for hardware.

use super::{PcrSelection, TpmError};
use ed25519_dalek::Verifier as _;

/// TPM_GENERATED_VALUE: every TPMS_ATTEST a TPM signs starts with it.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// TPM_ALG_SHA256.
pub const ALG_SHA256: u16 = 0x000b;

/// An attestation key's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AkPublic {
    /// A TPM's ECDSA P-256 key: the SEC1 uncompressed point (65 bytes).
    EcdsaP256(Vec<u8>),
    /// The emulated TPM's Ed25519 key (not hardware).
    Ed25519([u8; 32]),
}

/// A quote's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteSignature {
    /// ECDSA P-256 over SHA-256 of the attestation: r and s, 32 bytes each.
    EcdsaP256 {
        /// r, big-endian.
        r: [u8; 32],
        /// s, big-endian.
        s: [u8; 32],
    },
    /// The emulated TPM's Ed25519 signature over the attestation.
    Ed25519([u8; 64]),
}

impl QuoteSignature {
    /// The signature's bytes: r ‖ s for ECDSA, the 64 bytes for Ed25519.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::EcdsaP256 { r, s } => [r.as_slice(), s.as_slice()].concat(),
            Self::Ed25519(sig) => sig.to_vec(),
        }
    }
}

/// A quote: the TPMS_ATTEST bytes as the TPM signed them, and the
/// signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// The attestation key's signature over `attest`.
    pub signature: QuoteSignature,
}

/// What a checked quote says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteInfo {
    /// The TPM's clock (milliseconds since it was cleared).
    pub clock: u64,
    /// TPM resets (reboots) since it was cleared.
    pub reset_count: u32,
    /// The PCRs quoted (sha256 bank).
    pub selection: PcrSelection,
    /// SHA-256 over the quoted PCR values (see [`super::pcr_digest`]).
    pub pcr_digest: [u8; 32],
}

/// Builds the TPMS_ATTEST of a quote (what the emulated TPM signs).
pub(crate) fn encode_attest(
    signer_name: &[u8],
    nonce: &[u8],
    clock: u64,
    selection: PcrSelection,
    pcr_digest: &[u8; 32],
) -> Vec<u8> {
    let mut a = Vec::with_capacity(128);
    a.extend_from_slice(&TPM_GENERATED.to_be_bytes());
    a.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
    push_sized(&mut a, signer_name);
    push_sized(&mut a, nonce);
    // TPMS_CLOCK_INFO: clock, resetCount, restartCount, safe.
    a.extend_from_slice(&clock.to_be_bytes());
    a.extend_from_slice(&0u32.to_be_bytes());
    a.extend_from_slice(&0u32.to_be_bytes());
    a.push(1);
    // firmwareVersion.
    a.extend_from_slice(&0u64.to_be_bytes());
    // TPMS_QUOTE_INFO: TPML_PCR_SELECTION with one sha256 bank, then the
    // digest.
    a.extend_from_slice(&1u32.to_be_bytes());
    a.extend_from_slice(&ALG_SHA256.to_be_bytes());
    a.push(3);
    a.extend_from_slice(&selection.mask().to_le_bytes()[..3]);
    push_sized(&mut a, pcr_digest);
    a
}

fn push_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over big-endian TPM structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TpmError> {
        if self.0.len() < n {
            return Err(TpmError::BadQuote("attestation is truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, TpmError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, TpmError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, TpmError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, TpmError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn sized(&mut self) -> Result<&'a [u8], TpmError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// Parses a quote's TPMS_ATTEST (no signature check).
pub fn parse_attest(attest: &[u8]) -> Result<(Vec<u8>, QuoteInfo), TpmError> {
    let bad = |why: &str| TpmError::BadQuote(why.to_string());
    let mut r = Reader(attest);
    if r.u32()? != TPM_GENERATED {
        return Err(bad("not TPM-generated (magic)"));
    }
    if r.u16()? != ST_ATTEST_QUOTE {
        return Err(bad("not a quote"));
    }
    r.sized()?; // qualifiedSigner
    let nonce = r.sized()?.to_vec();
    let clock = r.u64()?;
    let reset_count = r.u32()?;
    r.u32()?; // restartCount
    r.u8()?; // safe
    r.u64()?; // firmwareVersion
    let banks = r.u32()?;
    let mut mask = None;
    for _ in 0..banks {
        let alg = r.u16()?;
        let size = r.u8()? as usize;
        let bits = r.take(size)?;
        if bits.iter().skip(3).any(|b| *b != 0) {
            return Err(bad("PCRs above 23 quoted"));
        }
        let m = bits
            .iter()
            .take(3)
            .enumerate()
            .fold(0u32, |m, (i, b)| m | (u32::from(*b) << (8 * i)));
        if alg == ALG_SHA256 && m != 0 {
            if mask.is_some() {
                return Err(bad("two sha256 selections"));
            }
            mask = Some(m);
        } else if m != 0 {
            return Err(bad("PCRs of another bank than sha256"));
        }
    }
    let selection = mask
        .and_then(|m| PcrSelection::from_mask(m).ok())
        .ok_or_else(|| bad("no sha256 PCRs quoted"))?;
    let pcr_digest: [u8; 32] = r
        .sized()?
        .try_into()
        .map_err(|_| bad("PCR digest is not 32 bytes"))?;
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok((
        nonce,
        QuoteInfo {
            clock,
            reset_count,
            selection,
            pcr_digest,
        },
    ))
}

/// Checks a quote: the signature over the attestation with `ak`, that it
/// is a TPM-generated quote, and that its qualifying data is `nonce`.
/// Returns what it says; the caller compares `pcr_digest` with the values
/// it expects.
pub fn verify_quote(quote: &Quote, ak: &AkPublic, nonce: &[u8]) -> Result<QuoteInfo, TpmError> {
    let bad = |why: &str| TpmError::BadQuote(why.to_string());
    match (ak, &quote.signature) {
        (AkPublic::EcdsaP256(point), QuoteSignature::EcdsaP256 { r, s }) => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map_err(|_| bad("the AK is not a P-256 point"))?;
            let sig = p256::ecdsa::Signature::from_scalars(*r, *s)
                .map_err(|_| bad("r or s out of range"))?;
            key.verify(&quote.attest, &sig)
                .map_err(|_| bad("the signature does not verify"))?;
        }
        (AkPublic::Ed25519(public), QuoteSignature::Ed25519(sig)) => {
            let key = ed25519_dalek::VerifyingKey::from_bytes(public)
                .map_err(|_| bad("the AK is not an Ed25519 key"))?;
            key.verify(&quote.attest, &ed25519_dalek::Signature::from_bytes(sig))
                .map_err(|_| bad("the signature does not verify"))?;
        }
        _ => return Err(bad("signature and AK are of different algorithms")),
    }
    let (signed_nonce, info) = parse_attest(&quote.attest)?;
    if signed_nonce != nonce {
        return Err(bad("the nonce differs"));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::QUOTE_PCRS;

    #[test]
    fn encoded_attestations_parse_back() {
        let a = encode_attest(b"name", b"nonce", 42, QUOTE_PCRS, &[7; 32]);
        let (nonce, info) = parse_attest(&a).unwrap();
        assert_eq!(nonce, b"nonce");
        assert_eq!(info.clock, 42);
        assert_eq!(info.selection, QUOTE_PCRS);
        assert_eq!(info.pcr_digest, [7; 32]);
        for cut in 0..a.len() {
            assert!(parse_attest(&a[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = a.clone();
        wrong[0] ^= 1;
        assert!(parse_attest(&wrong).is_err());
    }
}
