//! The behaviour every [`Tpm`] backend must show, written once and run
//! against the emulated TPM here and against a real `swtpm` in
//! `swtpm.rs` (feature `tpm`).

use super::{
    extended, pcr_digest, verify_quote, EmulatedTpm, PcrSelection, SealedSeed, Tpm, TpmError,
    CHECKPOINT_PCR, QUOTE_PCRS, SEAL_PCRS,
};
use std::path::PathBuf;

/// A TPM under test and the world around it.
pub(super) trait Fixture {
    /// A new handle on the TPM (the test drops it before `restart` and
    /// `extend_outside`, as a TPM without a resource manager serves one
    /// client at a time).
    fn open(&mut self) -> Box<dyn Tpm>;
    /// Restarts the TPM, keeping its persistent state.
    fn restart(&mut self);
    /// Extends `pcr` with `digest` through something other than the code
    /// under test.
    fn extend_outside(&mut self, pcr: u8, digest: &[u8; 32]);
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).unwrap();
    b
}

pub(super) fn seal_unseal_round_trip(fx: &mut dyn Fixture) {
    let seed = random32();
    let stored = {
        let mut tpm = fx.open();
        let sealed = tpm.seal(&seed, SEAL_PCRS).unwrap();
        assert_eq!(sealed.selection, SEAL_PCRS);
        assert_eq!(*tpm.unseal(&sealed).unwrap(), seed);
        sealed.to_bytes()
    };
    assert!(!stored.windows(32).any(|w| w == seed), "seed in clear");
    // Through its stored bytes, on a new handle.
    let sealed = SealedSeed::from_bytes(&stored).unwrap();
    assert_eq!(*fx.open().unseal(&sealed).unwrap(), seed);
}

pub(super) fn unseal_fails_after_the_pcr_is_extended_outside(fx: &mut dyn Fixture) {
    let seed = random32();
    let other = PcrSelection::new(&[16]).unwrap();
    let (sealed, elsewhere, before) = {
        let mut tpm = fx.open();
        let before = tpm.pcr_read(SEAL_PCRS).unwrap()[0];
        (
            tpm.seal(&seed, SEAL_PCRS).unwrap(),
            tpm.seal(&seed, other).unwrap(),
            before,
        )
    };
    let digest = random32();
    fx.extend_outside(7, &digest);
    let mut tpm = fx.open();
    assert_eq!(
        tpm.pcr_read(SEAL_PCRS).unwrap(),
        vec![extended(&before, &digest)]
    );
    assert!(matches!(tpm.unseal(&sealed), Err(TpmError::PolicyMismatch)));
    // A seed sealed to PCRs that did not change still unseals.
    assert_eq!(*tpm.unseal(&elsewhere).unwrap(), seed);
}

pub(super) fn the_counter_is_monotonic_and_survives_a_restart(fx: &mut dyn Fixture) {
    let last = {
        let mut tpm = fx.open();
        assert_eq!(tpm.counter_read().unwrap(), None);
        let first = tpm.counter_increment().unwrap();
        assert_eq!(tpm.counter_read().unwrap(), Some(first));
        let second = tpm.counter_increment().unwrap();
        assert_eq!(second, first + 1);
        assert_eq!(tpm.counter_read().unwrap(), Some(second));
        second
    };
    fx.restart();
    let mut tpm = fx.open();
    assert_eq!(tpm.counter_read().unwrap(), Some(last));
    assert_eq!(tpm.counter_increment().unwrap(), last + 1);
}

pub(super) fn extending_follows_sha256(fx: &mut dyn Fixture) {
    let mut tpm = fx.open();
    let only = PcrSelection::new(&[CHECKPOINT_PCR]).unwrap();
    let before = tpm.pcr_read(only).unwrap()[0];
    let digest = random32();
    tpm.pcr_extend(CHECKPOINT_PCR, &digest).unwrap();
    assert_eq!(
        tpm.pcr_read(only).unwrap(),
        vec![extended(&before, &digest)]
    );
    assert!(matches!(
        tpm.pcr_extend(24, &digest),
        Err(TpmError::NoSuchPcr(24))
    ));
}

pub(super) fn quotes_verify_with_the_ak(fx: &mut dyn Fixture) {
    let (quote, ak, values, nonce) = {
        let mut tpm = fx.open();
        tpm.pcr_extend(CHECKPOINT_PCR, &random32()).unwrap();
        let nonce = random32();
        let quote = tpm.quote(QUOTE_PCRS, &nonce).unwrap();
        let values = tpm.pcr_read(QUOTE_PCRS).unwrap();
        (quote, tpm.ak_public().unwrap(), values, nonce)
    };
    let info = verify_quote(&quote, &ak, &nonce).unwrap();
    assert_eq!(info.selection, QUOTE_PCRS);
    assert_eq!(info.pcr_digest, pcr_digest(&values));
    // Another nonce, a changed byte, a changed signature: refused.
    assert!(verify_quote(&quote, &ak, &[0; 32]).is_err());
    for i in [0, quote.attest.len() / 2, quote.attest.len() - 1] {
        let mut bad = quote.clone();
        bad.attest[i] ^= 1;
        assert!(verify_quote(&bad, &ak, &nonce).is_err(), "byte {i}");
    }
    // The AK stays the same across restarts (a verifier pins it).
    fx.restart();
    assert_eq!(fx.open().ak_public().unwrap(), ak);
}

/// The emulated TPM: a state file; "outside" is a second handle on it.
struct Emulated {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Emulated {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tpm.state");
        Self { _dir: dir, path }
    }
}

impl Fixture for Emulated {
    fn open(&mut self) -> Box<dyn Tpm> {
        Box::new(EmulatedTpm::open(&self.path).unwrap())
    }
    fn restart(&mut self) {}
    fn extend_outside(&mut self, pcr: u8, digest: &[u8; 32]) {
        EmulatedTpm::open(&self.path)
            .unwrap()
            .pcr_extend(pcr, digest)
            .unwrap();
    }
}

/// Runs each behaviour as its own test against a fixture made by `$new`.
macro_rules! behaviour_tests {
    ($new:expr) => {
        #[test]
        fn seal_unseal_round_trip() {
            $crate::tpm::behaviour::seal_unseal_round_trip(&mut $new);
        }
        #[test]
        fn unseal_fails_after_the_pcr_is_extended_outside() {
            $crate::tpm::behaviour::unseal_fails_after_the_pcr_is_extended_outside(&mut $new);
        }
        #[test]
        fn the_counter_is_monotonic_and_survives_a_restart() {
            $crate::tpm::behaviour::the_counter_is_monotonic_and_survives_a_restart(&mut $new);
        }
        #[test]
        fn extending_follows_sha256() {
            $crate::tpm::behaviour::extending_follows_sha256(&mut $new);
        }
        #[test]
        fn quotes_verify_with_the_ak() {
            $crate::tpm::behaviour::quotes_verify_with_the_ak(&mut $new);
        }
    };
}
#[cfg(feature = "tpm")]
pub(super) use behaviour_tests;

mod emulated {
    behaviour_tests!(super::Emulated::new());
}
