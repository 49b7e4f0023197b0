//! The log's three keys and the genesis record that publishes them.
//!
//! - **identity** (ML-DSA-65): the log's long-term key; signs checkpoints and
//!   certifies the operational key. In software here; in the HSM or sealed
//!   to the TPM where present (the `hw` crate).
//! - **operational** (ML-DSA-65): signs every record.
//! - **cosigner** (Ed25519): co-signs checkpoints so that existing
//!   signed-note verifiers and witnesses accept them today.
//!
//! Record 0 of every log (`log.genesis`) carries all three verifier keys and
//! the identity key's certificate over the operational key, so a log
//! describes its own keys; a verifier pins them by fingerprint.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{self, Algorithm, PublicKey, SeedSealer, Signer, CTX_KEY_CERTIFICATE};

/// File names of the secret keys inside a key directory.
const IDENTITY_FILE: &str = "identity.key";
const OPERATIONAL_FILE: &str = "operational.key";
const COSIGNER_FILE: &str = "cosigner.key";

/// The signers a ledger needs.
pub struct Keyring {
    /// Signs checkpoints and certifies the operational key.
    pub identity: Box<dyn Signer>,
    /// Signs records.
    pub operational: Box<dyn Signer>,
    /// Co-signs checkpoints with Ed25519.
    pub cosigner: Box<dyn Signer>,
}

/// The public halves of a [`Keyring`], as published in the genesis record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    /// The identity key (its name is the log's origin).
    pub identity: PublicKey,
    /// The operational key.
    pub operational: PublicKey,
    /// The Ed25519 co-signing key.
    pub cosigner: PublicKey,
}

impl Keyring {
    /// Creates three fresh software keys in `dir` (mode 0700) for a log
    /// named `origin`; refuses to overwrite existing keys.
    pub fn create(dir: &Path, origin: &str) -> Result<Self> {
        Self::create_sealed(dir, origin, None)
    }

    /// [`Keyring::create`], with every seed sealed by `sealer` when given.
    pub fn create_sealed(
        dir: &Path,
        origin: &str,
        sealer: Option<&dyn SeedSealer>,
    ) -> Result<Self> {
        crate::checkpoint::check_origin(origin)?;
        create_private_dir(dir)?;
        let identity =
            keys::create_key_file(&dir.join(IDENTITY_FILE), Algorithm::MlDsa65, origin, sealer)?;
        Self::create_with_identity(dir, identity, sealer)
    }

    /// Creates fresh software operational and cosigner keys in `dir` for
    /// the log that `identity` names (its key name is the origin), whose
    /// secret lives elsewhere (a device), their seeds sealed by `sealer`
    /// when given; refuses to overwrite existing keys.
    pub fn create_with_identity(
        dir: &Path,
        identity: Box<dyn Signer>,
        sealer: Option<&dyn SeedSealer>,
    ) -> Result<Self> {
        let origin = identity.public_key().name().to_string();
        crate::checkpoint::check_origin(&origin)?;
        check_identity(identity.as_ref(), &origin)?;
        create_private_dir(dir)?;
        Ok(Keyring {
            operational: keys::create_key_file(
                &dir.join(OPERATIONAL_FILE),
                Algorithm::MlDsa65,
                &format!("{origin}/records"),
                sealer,
            )?,
            cosigner: keys::create_key_file(
                &dir.join(COSIGNER_FILE),
                Algorithm::Ed25519,
                &origin,
                sealer,
            )?,
            identity,
        })
    }

    /// Loads the software keys from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_sealed(dir, None)
    }

    /// [`Keyring::load`], unsealing sealed key files with `sealer`.
    pub fn load_sealed(dir: &Path, sealer: Option<&dyn SeedSealer>) -> Result<Self> {
        Self::load_with_identity(
            dir,
            |_| load_file(dir, IDENTITY_FILE, Algorithm::MlDsa65, sealer),
            sealer,
        )
    }

    /// Loads the operational and cosigner keys from `dir` (unsealing them
    /// with `sealer` where sealed), and takes the identity signer from
    /// `identity`, called with the log's origin (the cosigner key's name):
    /// a device-held key, named after the origin.
    pub fn load_with_identity(
        dir: &Path,
        identity: impl FnOnce(&str) -> Result<Box<dyn Signer>>,
        sealer: Option<&dyn SeedSealer>,
    ) -> Result<Self> {
        let operational = load_file(dir, OPERATIONAL_FILE, Algorithm::MlDsa65, sealer)?;
        let cosigner = load_file(dir, COSIGNER_FILE, Algorithm::Ed25519, sealer)?;
        let origin = cosigner.public_key().name().to_string();
        let identity = identity(&origin)?;
        check_identity(identity.as_ref(), &origin)?;
        Ok(Keyring {
            identity,
            operational,
            cosigner,
        })
    }

    /// The public keys.
    pub fn public(&self) -> KeySet {
        KeySet {
            identity: self.identity.public_key().clone(),
            operational: self.operational.public_key().clone(),
            cosigner: self.cosigner.public_key().clone(),
        }
    }

    /// The body of the genesis record: the verifier keys and the identity
    /// key's certificate over the operational key.
    pub fn genesis_body(&self) -> Result<serde_json::Value> {
        let set = self.public();
        let cert = self
            .identity
            .sign(&certificate_text(&set), CTX_KEY_CERTIFICATE)?;
        serde_json::to_value(GenesisBody {
            keys: GenesisKeys {
                identity: set.identity.vkey(),
                operational: set.operational.vkey(),
                cosigner: set.cosigner.vkey(),
            },
            certificate: B64.encode(cert),
        })
        .map_err(|e| Error::Invalid(e.to_string()))
    }
}

impl KeySet {
    /// The log's origin: the identity key's name.
    pub fn origin(&self) -> &str {
        self.identity.name()
    }

    /// Reads and checks a genesis body: keys parse, have the right
    /// algorithms and names, and the certificate verifies.
    pub fn from_genesis(body: &serde_json::Value) -> Result<Self> {
        let g: GenesisBody = serde_json::from_value(body.clone())
            .map_err(|e| Error::malformed("genesis record", e.to_string()))?;
        let set = KeySet {
            identity: PublicKey::from_vkey(&g.keys.identity)?,
            operational: PublicKey::from_vkey(&g.keys.operational)?,
            cosigner: PublicKey::from_vkey(&g.keys.cosigner)?,
        };
        let bad = |why: &str| Error::malformed("genesis record", why.to_string());
        if set.identity.algorithm() != Algorithm::MlDsa65
            || set.operational.algorithm() != Algorithm::MlDsa65
        {
            return Err(bad("identity and operational keys must be ML-DSA-65"));
        }
        if set.cosigner.algorithm() != Algorithm::Ed25519 {
            return Err(bad("cosigner key must be Ed25519"));
        }
        if set.cosigner.name() != set.origin() {
            return Err(bad("cosigner key name must be the log origin"));
        }
        let cert = B64
            .decode(&g.certificate)
            .map_err(|_| bad("certificate is not base64"))?;
        if !set
            .identity
            .verify(&certificate_text(&set), &cert, CTX_KEY_CERTIFICATE)
        {
            return Err(bad(
                "the identity key's certificate over the operational key does not verify",
            ));
        }
        Ok(set)
    }
}

/// Loads one key file of `dir`, of algorithm `alg`.
fn load_file(
    dir: &Path,
    file: &str,
    alg: Algorithm,
    sealer: Option<&dyn SeedSealer>,
) -> Result<Box<dyn Signer>> {
    let s = keys::load_key_file(&dir.join(file), sealer)?;
    if s.public_key().algorithm() != alg {
        return Err(Error::Invalid(format!(
            "{}: expected an {} key",
            dir.join(file).display(),
            alg.label()
        )));
    }
    Ok(s)
}

/// An identity key must be ML-DSA-65 and named after the origin.
fn check_identity(identity: &dyn Signer, origin: &str) -> Result<()> {
    let pk = identity.public_key();
    if pk.algorithm() != Algorithm::MlDsa65 || pk.name() != origin {
        return Err(Error::Invalid(format!(
            "the identity key must be an ML-DSA-65 key named {origin:?}, not an {} key named {:?}",
            pk.algorithm().label(),
            pk.name()
        )));
    }
    Ok(())
}

/// The text the identity key signs to certify the operational key.
pub fn certificate_text(set: &KeySet) -> Vec<u8> {
    format!(
        "cairn key certificate v1\nlog {}\nrole operational\nkey {}\n",
        set.origin(),
        set.operational.vkey()
    )
    .into_bytes()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisBody {
    keys: GenesisKeys,
    certificate: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisKeys {
    identity: String,
    operational: String,
    cosigner: String,
}

/// Creates `dir` with mode 0700 (or checks an existing one is not open to
/// group or others).
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(Error::io(dir, e)),
    }
    let mode = std::fs::metadata(dir)
        .map_err(|e| Error::io(dir, e))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_publishes_and_certifies_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::create(&dir.path().join("keys"), "cairn.example/log").unwrap();
        let body = ring.genesis_body().unwrap();
        assert_eq!(KeySet::from_genesis(&body).unwrap(), ring.public());
        let other = Keyring::create(&dir.path().join("other"), "cairn.example/log").unwrap();
        let mut forged = body.clone();
        forged["keys"]["operational"] = other.public().operational.vkey().into();
        assert!(KeySet::from_genesis(&forged).is_err());
        let again = Keyring::load(&dir.path().join("keys")).unwrap();
        assert_eq!(again.public(), ring.public());
    }

    #[test]
    fn an_identity_held_elsewhere_certifies_software_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let device = || -> Box<dyn Signer> {
            Box::new(keys::SoftwareMlDsa65::from_seed("cairn.example/log", &[9; 32]).unwrap())
        };
        let ring = Keyring::create_with_identity(&keys, device(), None).unwrap();
        assert!(!keys.join(IDENTITY_FILE).exists());
        assert_eq!(ring.public().origin(), "cairn.example/log");
        let body = ring.genesis_body().unwrap();
        assert_eq!(KeySet::from_genesis(&body).unwrap(), ring.public());
        let again = Keyring::load_with_identity(
            &keys,
            |origin| {
                assert_eq!(origin, "cairn.example/log");
                Ok(device())
            },
            None,
        )
        .unwrap();
        assert_eq!(again.public(), ring.public());
        // An identity named after another log, or of the wrong algorithm,
        // is refused.
        let wrong = Keyring::load_with_identity(
            &keys,
            |_| {
                Ok(Box::new(
                    keys::SoftwareMlDsa65::from_seed("other.example", &[9; 32]).unwrap(),
                ))
            },
            None,
        );
        assert!(wrong.is_err());
        let wrong = Keyring::load_with_identity(
            &keys,
            |o| {
                Ok(Box::new(
                    keys::SoftwareEd25519::from_seed(o, &[9; 32]).unwrap(),
                ))
            },
            None,
        );
        assert!(wrong.is_err());
        // The software keys are not overwritten.
        assert!(Keyring::create_with_identity(&keys, device(), None).is_err());
    }
}
