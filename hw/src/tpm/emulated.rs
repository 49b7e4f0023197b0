//! The emulated TPM: in-process, with a real TPM's semantics for what the
//! daemon uses (sha256 PCRs that only extend, sealing bound to PCR values,
//! a monotonic counter that survives restarts, signed quotes), its state in
//! a 0600 file rewritten atomically (temporary file, fsync, rename, fsync
//! of the directory) after every change.
//!
//! # What it protects, and what not
//!
//! It is **not** a security device. Its secret (from which the sealing keys
//! and the attestation key derive) sits in the state file, so whoever can
//! read that file can unseal any seed it sealed, forge its quotes and set
//! its counter. What it does give:
//!
//! - the daemon's code paths of a real TPM, run on machines without one;
//! - a sealed blob is useless without the state file (ChaCha20-Poly1305
//!   under a key derived from the secret, the selection and the PCR
//!   digest; not merely a stored digest compared at unseal);
//! - unsealing fails once a sealed-to PCR was extended, and the counter
//!   never goes back through this API, so rollback detection and a
//!   changed-PCR refusal behave as with hardware.
//!
//! Its PCRs live in the state file too, so they keep their values across
//! restarts (there is no reboot to reset them). One handle at a time holds
//! the state (an exclusive lock on `<state>.lock`), as one client at a time
//! talks to swtpm.

use super::quote::encode_attest;
use super::{
    pcr_digest, AkPublic, Backend, PcrSelection, Quote, QuoteSignature, SealedSeed, Tpm, TpmError,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::Signer as _;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const HEADER: &str = "cairn emulated tpm v1";

/// The emulated TPM, its state in a file.
pub struct EmulatedTpm {
    path: PathBuf,
    secret: Zeroizing<[u8; 32]>,
    pcrs: [[u8; 32]; 24],
    counter: Option<u64>,
    _lock: Flock<File>,
}

impl EmulatedTpm {
    /// Opens the emulated TPM whose state is at `path`, creating it (a new
    /// random secret, PCRs zero, no counter) if the file does not exist.
    /// Fails while another handle holds it.
    pub fn open(path: &Path) -> Result<Self, TpmError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| TpmError::Device(format!("{} is in use: {e}", path.display())))?;
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text, lock),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = Zeroizing::new([0u8; 32]);
                getrandom::getrandom(secret.as_mut_slice())
                    .map_err(|e| TpmError::Device(format!("no randomness: {e}")))?;
                let tpm = Self {
                    path: path.to_path_buf(),
                    secret,
                    pcrs: [[0; 32]; 24],
                    counter: None,
                    _lock: lock,
                };
                tpm.save()?;
                Ok(tpm)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn parse(path: &Path, text: &str, lock: Flock<File>) -> Result<Self, TpmError> {
        let bad = |why: String| TpmError::Malformed {
            what: "emulated TPM state",
            why,
        };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(format!(
                "{} does not start with {HEADER:?}",
                path.display()
            )));
        }
        let mut secret = None;
        let mut counter = None;
        let mut pcrs = [[0u8; 32]; 24];
        for line in lines {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("line {line:?}")))?;
            let hex32 = |v: &str| -> Result<[u8; 32], TpmError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(v, &mut out).map_err(|e| bad(format!("{key}: {e}")))?;
                Ok(out)
            };
            match key {
                "secret" => secret = Some(Zeroizing::new(hex32(value)?)),
                "counter" if value != "none" => {
                    counter = Some(value.parse().map_err(|e| bad(format!("counter: {e}")))?)
                }
                "counter" => {}
                _ if key.starts_with("pcr") => {
                    let i: usize = key[3..]
                        .parse()
                        .ok()
                        .filter(|i| *i < 24)
                        .ok_or_else(|| bad(format!("no such PCR: {key}")))?;
                    pcrs[i] = hex32(value)?;
                }
                _ => return Err(bad(format!("unknown key {key}"))),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            secret: secret.ok_or_else(|| bad("no secret".into()))?,
            pcrs,
            counter,
            _lock: lock,
        })
    }

    fn save(&self) -> Result<(), TpmError> {
        let mut text = Zeroizing::new(format!("{HEADER}\nsecret {}\n", hex::encode(*self.secret)));
        match self.counter {
            Some(c) => text.push_str(&format!("counter {c}\n")),
            None => text.push_str("counter none\n"),
        }
        for (i, v) in self.pcrs.iter().enumerate() {
            text.push_str(&format!("pcr{i} {}\n", hex::encode(v)));
        }
        crate::state_file::replace_private(&self.path, text.as_bytes())?;
        Ok(())
    }

    fn derive(&self, context: &str, parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(self.secret.as_slice());
        for p in parts {
            h.update(p);
        }
        Zeroizing::new(*h.finalize().as_bytes())
    }

    fn ak(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.derive("cairn emulated TPM AK v1", &[]))
    }

    fn seal_cipher(&self, selection: PcrSelection) -> ChaCha20Poly1305 {
        let values: Vec<[u8; 32]> = selection.pcrs().map(|p| self.pcrs[p as usize]).collect();
        let key = self.derive(
            "cairn emulated TPM seal v1",
            &[&selection.mask().to_be_bytes(), &pcr_digest(&values)],
        );
        ChaCha20Poly1305::new(key.as_slice().into())
    }
}

impl Tpm for EmulatedTpm {
    fn describe(&self) -> String {
        format!("emulated TPM ({})", self.path.display())
    }

    fn pcr_read(&mut self, selection: PcrSelection) -> Result<Vec<[u8; 32]>, TpmError> {
        Ok(selection.pcrs().map(|p| self.pcrs[p as usize]).collect())
    }

    fn pcr_extend(&mut self, pcr: u8, digest: &[u8; 32]) -> Result<(), TpmError> {
        let slot = self
            .pcrs
            .get_mut(pcr as usize)
            .ok_or(TpmError::NoSuchPcr(pcr))?;
        *slot = super::extended(slot, digest);
        self.save()
    }

    fn seal(&mut self, seed: &[u8; 32], selection: PcrSelection) -> Result<SealedSeed, TpmError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| TpmError::Device(format!("no randomness: {e}")))?;
        let aad = SealedSeed::header(Backend::Emulated, selection);
        let ciphertext = self
            .seal_cipher(selection)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: seed,
                    aad: &aad,
                },
            )
            .map_err(|_| TpmError::Device("sealing failed".into()))?;
        Ok(SealedSeed {
            backend: Backend::Emulated,
            selection,
            blob: [nonce.as_slice(), &ciphertext].concat(),
        })
    }

    fn unseal(&mut self, sealed: &SealedSeed) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        if sealed.backend != Backend::Emulated || sealed.blob.len() != 12 + 32 + 16 {
            return Err(TpmError::Malformed {
                what: "sealed seed",
                why: "not sealed by the emulated TPM".into(),
            });
        }
        let (nonce, ciphertext) = sealed.blob.split_at(12);
        let aad = SealedSeed::header(Backend::Emulated, sealed.selection);
        let plain = Zeroizing::new(
            self.seal_cipher(sealed.selection)
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| TpmError::PolicyMismatch)?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&plain);
        Ok(seed)
    }

    fn counter_read(&mut self) -> Result<Option<u64>, TpmError> {
        Ok(self.counter)
    }

    fn counter_increment(&mut self) -> Result<u64, TpmError> {
        let next = self.counter.map_or(Ok(1), |c| {
            c.checked_add(1)
                .ok_or_else(|| TpmError::Device("counter overflow".into()))
        })?;
        self.counter = Some(next);
        self.save()?;
        Ok(next)
    }

    fn ak_public(&mut self) -> Result<AkPublic, TpmError> {
        Ok(AkPublic::Ed25519(self.ak().verifying_key().to_bytes()))
    }

    fn quote(&mut self, selection: PcrSelection, nonce: &[u8]) -> Result<Quote, TpmError> {
        if nonce.len() > 64 {
            return Err(TpmError::Device("nonce longer than 64 bytes".into()));
        }
        let ak = self.ak();
        // The AK's "name" as a TPM forms one: name algorithm, then a
        // digest of the public key.
        let name = [
            &super::quote::ALG_SHA256.to_be_bytes()[..],
            &pcr_digest(&[ak.verifying_key().to_bytes()]),
        ]
        .concat();
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let values = self.pcr_read(selection)?;
        let attest = encode_attest(&name, nonce, clock, selection, &pcr_digest(&values));
        let signature = QuoteSignature::Ed25519(ak.sign(&attest).to_bytes());
        Ok(Quote { attest, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_state_is_0600_and_held_by_one_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tpm.state");
        let tpm = EmulatedTpm::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(EmulatedTpm::open(&path).is_err());
        drop(tpm);
        EmulatedTpm::open(&path).unwrap();
    }

    #[test]
    fn a_damaged_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tpm.state");
        drop(EmulatedTpm::open(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("secret ", "secret 00")).unwrap();
        assert!(matches!(
            EmulatedTpm::open(&path),
            Err(TpmError::Malformed { .. })
        ));
    }
}
