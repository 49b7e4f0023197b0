//! The TPM 2.0: a key seed sealed to PCR values, a PCR the daemon extends
//! with every exported checkpoint, a monotonic NV counter bumped with each
//! checkpoint (a restored older state directory shows a counter behind the
//! TPM's), and quotes over PCRs for exports.
//!
//! - [`Tpm`]: what the daemon asks of a TPM, whichever backend.
//! - [`emulated`]: [`EmulatedTpm`], in-process, its state in a 0600 file;
//!   always built.
//! - `esapi` (cargo feature `tpm`): `EsapiTpm`, a real TPM (or `swtpm`)
//!   through tpm2-tss's ESAPI, TCTI `device:/dev/tpmrm0` on hardware.
//! - [`quote`]: the TPMS_ATTEST bytes a quote signs, parsed and checked
//!   by [`verify_quote`] without a TPM.
//! - [`checkpoint_quote`]: `tpm-quote.json`, the quote over an exported
//!   checkpoint that bundles carry, made and checked.
//! - [`sealer`]: [`TpmSealer`], a TPM as the ledger's seed sealer for key
//!   files, and [`SharedTpm`], one TPM shared between threads.
//!
//! # Which PCRs
//!
//! - The seed is sealed by default to **sha256 PCR 7** ([`SEAL_PCRS`]):
//!   the Secure Boot policy (its on/off state, the keys in PK/KEK/db/dbx),
//!   measured by the firmware. The seed unseals only on this machine's TPM
//!   while it boots with the same Secure Boot policy.
//! - The daemon owns **sha256 PCR 23** ([`CHECKPOINT_PCR`], the PC Client
//!   profile's application PCR) and extends it with every exported
//!   checkpoint; quotes cover PCRs 7 and 23 ([`QUOTE_PCRS`]).
//! - PCR 23 is deliberately **not** in the sealing policy: it changes with
//!   every export, so a seed sealed to it would not unseal when the daemon
//!   restarts without a reboot; and any process with TPM access may reset
//!   it (TPM2_PCR_Reset is allowed at locality 0), so binding to it would
//!   not keep root out anyway. Callers may seal to any sha256 selection.
//!
//! # What this does not protect against
//!
//! Root on the running machine can use the TPM as the daemon does (unseal
//! while PCR 7 holds its value, extend, quote). The seal keeps the seed
//! from another machine or from a boot with another Secure Boot policy;
//! the counter detects a restored older state directory; quotes let an
//! outsider check PCR values signed by a key that never leaves the TPM.

pub mod checkpoint_quote;
pub mod emulated;
#[cfg(feature = "tpm")]
pub mod esapi;
pub mod quote;
pub mod sealer;

#[cfg(test)]
mod behaviour;
#[cfg(all(test, feature = "tpm"))]
mod swtpm;

pub use emulated::EmulatedTpm;
#[cfg(feature = "tpm")]
pub use esapi::EsapiTpm;
pub use quote::{verify_quote, AkPublic, Quote, QuoteInfo, QuoteSignature};
pub use sealer::{with_tpm, SharedTpm, TpmSealer};

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The PCR the daemon extends with every exported checkpoint's hash.
pub const CHECKPOINT_PCR: u8 = 23;

/// The default sealing policy: sha256 PCR 7 (see the module docs).
pub const SEAL_PCRS: PcrSelection = PcrSelection(1 << 7);

/// The PCRs a quote for an export covers: 7 and 23.
pub const QUOTE_PCRS: PcrSelection = PcrSelection(1 << 7 | 1 << CHECKPOINT_PCR);

/// The NV index of the rollback counter: in the owner's range
/// (0x0100_0000–0x013F_FFFF of the TCG handle registry), "CA12" for cairn.
pub const COUNTER_NV_INDEX: u32 = 0x0100_CA12;

/// What went wrong with a TPM.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The PCRs named by the sealing policy no longer hold the values the
    /// seed was sealed to (or the sealed blob was altered).
    #[error("the PCR values differ from those the seed was sealed to")]
    PolicyMismatch,
    /// A PCR index outside 0..=23.
    #[error("no such PCR: {0} (0..=23)")]
    NoSuchPcr(u8),
    /// A sealed blob, quote or state file that does not parse, or one
    /// made by the other backend.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// Why it was refused.
        why: String,
    },
    /// A quote whose signature, nonce or contents do not check out.
    #[error("quote refused: {0}")]
    BadQuote(String),
    /// The emulated TPM's state file.
    #[error("emulated TPM state: {0}")]
    Io(#[from] std::io::Error),
    /// An error from the TPM or the TSS libraries.
    #[error("TPM: {0}")]
    Device(String),
}

/// A selection of sha256-bank PCRs (0..=23), as a bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcrSelection(u32);

impl PcrSelection {
    /// The selection of these PCRs; refuses indices above 23 and an empty
    /// selection.
    pub fn new(pcrs: &[u8]) -> Result<Self, TpmError> {
        let mut mask = 0u32;
        for &p in pcrs {
            if p > 23 {
                return Err(TpmError::NoSuchPcr(p));
            }
            mask |= 1 << p;
        }
        Self::from_mask(mask)
    }

    /// The selection from its bit mask (bit n: PCR n).
    pub fn from_mask(mask: u32) -> Result<Self, TpmError> {
        if mask == 0 || mask >> 24 != 0 {
            return Err(TpmError::Malformed {
                what: "PCR selection",
                why: format!("mask {mask:#x} selects nothing or PCRs above 23"),
            });
        }
        Ok(Self(mask))
    }

    /// The bit mask (bit n: PCR n).
    pub fn mask(self) -> u32 {
        self.0
    }

    /// The selected PCRs, ascending (the order TPM2_PolicyPCR and
    /// TPM2_Quote concatenate their values in).
    pub fn pcrs(self) -> impl Iterator<Item = u8> {
        (0..24u8).filter(move |p| self.0 & (1 << p) != 0)
    }
}

/// SHA-256 over the concatenated PCR values: the digest TPM2_PolicyPCR and
/// TPM2_Quote compute over a selection's values (in ascending PCR order).
pub fn pcr_digest(values: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in values {
        h.update(v);
    }
    h.finalize().into()
}

/// The new value of a sha256 PCR after extending `old` with `digest`.
pub fn extended(old: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(old);
    h.update(digest);
    h.finalize().into()
}

/// Which backend sealed a blob (a blob only unseals on its own kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A real TPM (or swtpm) through ESAPI.
    Tpm = 1,
    /// The in-process emulated TPM.
    Emulated = 2,
}

/// A key seed sealed to a PCR selection: opaque bytes for the backend that
/// made them, with the selection they are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSeed {
    /// The backend that sealed it.
    pub backend: Backend,
    /// The PCRs whose values it is bound to.
    pub selection: PcrSelection,
    /// The backend's blob (TPM: TPM2B_PUBLIC and TPM2B_PRIVATE; emulated:
    /// nonce and AEAD ciphertext).
    pub blob: Vec<u8>,
}

const SEALED_MAGIC: &[u8; 8] = b"CTPMSEAL";

impl SealedSeed {
    /// The header bytes: magic, version 1, backend, selection mask.
    fn header(backend: Backend, selection: PcrSelection) -> Vec<u8> {
        let mut h = SEALED_MAGIC.to_vec();
        h.push(1);
        h.push(backend as u8);
        h.extend_from_slice(&selection.mask().to_be_bytes());
        h
    }

    /// The bytes to store: header, then the blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Self::header(self.backend, self.selection);
        b.extend_from_slice(&self.blob);
        b
    }

    /// Parses [`SealedSeed::to_bytes`]'s output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        let bad = |why: &str| TpmError::Malformed {
            what: "sealed seed",
            why: why.to_string(),
        };
        if bytes.len() < 14 || &bytes[..8] != SEALED_MAGIC {
            return Err(bad("no CTPMSEAL header"));
        }
        if bytes[8] != 1 {
            return Err(bad("unknown version"));
        }
        let backend = match bytes[9] {
            1 => Backend::Tpm,
            2 => Backend::Emulated,
            _ => return Err(bad("unknown backend")),
        };
        let mask = u32::from_be_bytes(bytes[10..14].try_into().expect("4 bytes"));
        Ok(Self {
            backend,
            selection: PcrSelection::from_mask(mask)?,
            blob: bytes[14..].to_vec(),
        })
    }
}

/// What the daemon asks of a TPM. Blocking calls (a real TPM takes
/// milliseconds to tens of milliseconds a command): call from a blocking
/// thread.
pub trait Tpm {
    /// Which TPM this is, for logs and `cairn status` (TCTI or state file).
    fn describe(&self) -> String;

    /// The current values of the selected sha256 PCRs, ascending.
    fn pcr_read(&mut self, selection: PcrSelection) -> Result<Vec<[u8; 32]>, TpmError>;

    /// Extends sha256 PCR `pcr` with `digest`.
    fn pcr_extend(&mut self, pcr: u8, digest: &[u8; 32]) -> Result<(), TpmError>;

    /// Seals a 32-byte seed to the current values of the selected PCRs.
    fn seal(&mut self, seed: &[u8; 32], selection: PcrSelection) -> Result<SealedSeed, TpmError>;

    /// Unseals a seed; [`TpmError::PolicyMismatch`] when the PCRs no
    /// longer hold the values it was sealed to.
    fn unseal(&mut self, sealed: &SealedSeed) -> Result<Zeroizing<[u8; 32]>, TpmError>;

    /// The rollback counter, `None` while it has never been incremented
    /// (not defined yet).
    fn counter_read(&mut self) -> Result<Option<u64>, TpmError>;

    /// Increments the rollback counter (defining it first if it does not
    /// exist) and returns its new value. It never goes back: a real TPM
    /// starts a new counter at the highest value any counter had.
    fn counter_increment(&mut self) -> Result<u64, TpmError>;

    /// The attestation key's public key, to verify quotes with.
    fn ak_public(&mut self) -> Result<AkPublic, TpmError>;

    /// TPM2_Quote over the selected PCRs with `nonce` (at most 64 bytes)
    /// as qualifying data, signed by the attestation key.
    fn quote(&mut self, selection: PcrSelection, nonce: &[u8]) -> Result<Quote, TpmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_refuse_pcrs_above_23_and_nothing() {
        assert!(matches!(
            PcrSelection::new(&[7, 24]),
            Err(TpmError::NoSuchPcr(24))
        ));
        assert!(PcrSelection::new(&[]).is_err());
        assert!(PcrSelection::from_mask(1 << 24).is_err());
        let s = PcrSelection::new(&[23, 7, 7]).unwrap();
        assert_eq!(s, QUOTE_PCRS);
        assert_eq!(s.pcrs().collect::<Vec<_>>(), vec![7, 23]);
    }

    #[test]
    fn sealed_seeds_round_trip_and_refuse_garbage() {
        let s = SealedSeed {
            backend: Backend::Emulated,
            selection: SEAL_PCRS,
            blob: vec![1, 2, 3],
        };
        assert_eq!(SealedSeed::from_bytes(&s.to_bytes()).unwrap(), s);
        let mut b = s.to_bytes();
        b[9] = 7;
        assert!(SealedSeed::from_bytes(&b).is_err());
        assert!(SealedSeed::from_bytes(b"CTPMSEA").is_err());
    }

    #[test]
    fn extending_is_sha256_of_old_and_digest() {
        // SHA-256 of 64 zero bytes.
        let zero = [0u8; 32];
        assert_eq!(
            hex::encode(extended(&zero, &zero)),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
    }
}
