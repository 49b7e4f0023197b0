//! A TPM as the ledger's [`SeedSealer`]: key files hold seeds sealed to
//! PCR values, and the seeds exist in memory only once the TPM unsealed
//! them.

use std::sync::{Arc, Mutex};

use cairn_attest::keys::SeedSealer;
use zeroize::Zeroizing;

use super::{PcrSelection, SealedSeed, Tpm, TpmError};

/// A TPM shared between the daemon's threads (one command at a time).
pub type SharedTpm = Arc<Mutex<Box<dyn Tpm + Send>>>;

/// Runs `f` on the shared TPM (a poisoned lock is taken over: the TPM
/// keeps no state in this process that a panic could leave half-changed).
pub fn with_tpm<T>(tpm: &SharedTpm, f: impl FnOnce(&mut dyn Tpm) -> T) -> T {
    let mut guard = tpm.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.as_mut())
}

/// Seals seeds with a TPM to a PCR selection.
pub struct TpmSealer {
    tpm: SharedTpm,
    selection: PcrSelection,
}

impl TpmSealer {
    /// Seals to the current values of `selection` on `tpm`.
    pub fn new(tpm: SharedTpm, selection: PcrSelection) -> Self {
        Self { tpm, selection }
    }
}

fn refused(e: TpmError) -> cairn_attest::Error {
    cairn_attest::Error::Invalid(e.to_string())
}

impl SeedSealer for TpmSealer {
    fn describe(&self) -> String {
        let pcrs: Vec<String> = self.selection.pcrs().map(|p| p.to_string()).collect();
        format!(
            "the TPM {} (sealed to sha256 PCR {})",
            with_tpm(&self.tpm, |t| t.describe()),
            pcrs.join("+")
        )
    }

    fn seal(&self, seed: &[u8; 32]) -> cairn_attest::Result<Vec<u8>> {
        with_tpm(&self.tpm, |t| t.seal(seed, self.selection))
            .map(|s| s.to_bytes())
            .map_err(refused)
    }

    fn unseal(&self, sealed: &[u8]) -> cairn_attest::Result<Zeroizing<[u8; 32]>> {
        let sealed = SealedSeed::from_bytes(sealed).map_err(refused)?;
        with_tpm(&self.tpm, |t| t.unseal(&sealed)).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::{EmulatedTpm, SEAL_PCRS};
    use cairn_attest::Keyring;

    #[test]
    fn a_keyring_sealed_to_pcr7_loads_until_pcr7_changes() {
        let dir = tempfile::tempdir().unwrap();
        let tpm: SharedTpm = Arc::new(Mutex::new(Box::new(
            EmulatedTpm::open(&dir.path().join("tpm")).unwrap(),
        )));
        let sealer = TpmSealer::new(tpm.clone(), SEAL_PCRS);
        let keys = dir.path().join("keys");
        let ring = Keyring::create_sealed(&keys, "cairn.example/log", Some(&sealer)).unwrap();
        let text = std::fs::read_to_string(keys.join("identity.key")).unwrap();
        assert!(text.starts_with("cairn-sealed-key/v1"));
        assert!(Keyring::load(&keys).is_err(), "no sealer, no key");
        let again = Keyring::load_sealed(&keys, Some(&sealer)).unwrap();
        assert_eq!(again.public(), ring.public());
        with_tpm(&tpm, |t| t.pcr_extend(7, &[1; 32])).unwrap();
        let e = Keyring::load_sealed(&keys, Some(&sealer))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("PCR values differ"), "{e}");
        assert!(sealer.describe().contains("PCR 7"));
    }
}
