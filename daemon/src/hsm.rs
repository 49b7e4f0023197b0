//! The serial HSM as the log's identity key: building the [`Keyring`] with
//! it, the marker file that says which device holds the identity key, and
//! the device-lost policy for records.
//!
//! The HSM signs what the identity key signs — checkpoints and the
//! certificate over the operational key in the genesis record — and
//! nothing per record (`../shared/DESIGN.md`: a microcontroller signs
//! ML-DSA in tens of milliseconds). The operational and cosigner keys stay
//! 0600 files in `STATE_DIR/keys`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_attest::keys::{PublicKey, SeedSealer, Signer};
use cairn_attest::Keyring;
use cairn_hw::hsm::{HsmSigner, OpenError, Timing};

use crate::config::{HsmLostPolicy, HwSection};

/// Beside the software keys: names the device that holds the identity key
/// and its public key, so that `cairn keys show` and a restart know it.
pub const MARKER_FILE: &str = "identity.hsm";
const MARKER_HEADER: &str = "cairn-identity-hsm/v1";

/// Where the identity key lives, as recorded in a key directory.
pub struct Marker {
    /// The serial device the key was created on.
    pub path: PathBuf,
    /// The identity key (named after the log's origin).
    pub identity: PublicKey,
}

impl Marker {
    /// Reads `KEYS/identity.hsm`, if there is one.
    pub fn read(keys_dir: &Path) -> anyhow::Result<Option<Marker>> {
        let file = keys_dir.join(MARKER_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let mut lines = text.lines();
        let field = |l: Option<&str>, name: &str| -> anyhow::Result<String> {
            l.and_then(|l| l.strip_prefix(name))
                .and_then(|v| v.strip_prefix(' '))
                .map(str::to_string)
                .with_context(|| format!("{}: no {name} line", file.display()))
        };
        if lines.next() != Some(MARKER_HEADER) {
            bail!("{}: not an identity HSM marker", file.display());
        }
        let path = PathBuf::from(field(lines.next(), "path")?);
        let identity = PublicKey::from_vkey(&field(lines.next(), "vkey")?)
            .with_context(|| format!("{}: bad vkey", file.display()))?;
        Ok(Some(Marker { path, identity }))
    }

    fn write(&self, keys_dir: &Path) -> anyhow::Result<()> {
        let file = keys_dir.join(MARKER_FILE);
        let tmp = keys_dir.join(format!("{MARKER_FILE}.tmp"));
        let body = format!(
            "{MARKER_HEADER}\npath {}\nvkey {}\n",
            self.path.display(),
            self.identity.vkey()
        );
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|_| std::fs::rename(&tmp, &file))
            .and_then(|_| std::fs::File::open(keys_dir)?.sync_all())
            .with_context(|| format!("cannot write {}", file.display()))
    }
}

/// The HSM's client timing from the configuration.
pub fn timing(hw: &HwSection) -> Timing {
    Timing {
        timeout: Duration::from_millis(hw.hsm_timeout_ms),
        ..Timing::default()
    }
}

/// Creates the software operational and cosigner keys in `keys_dir` for a
/// log named `origin` whose identity key is the HSM's at `device`, and
/// records that in the marker file.
pub fn create_keys(
    keys_dir: &Path,
    device: &Path,
    origin: &str,
    timing: Timing,
    sealer: Option<&dyn SeedSealer>,
) -> anyhow::Result<(Keyring, Arc<HsmSigner>)> {
    if keys_dir.join("identity.key").exists() || keys_dir.join(MARKER_FILE).exists() {
        bail!("{} already holds keys", keys_dir.display());
    }
    let hsm = Arc::new(HsmSigner::open(device, origin, timing).map_err(anyhow::Error::msg)?);
    let ring = Keyring::create_with_identity(keys_dir, Box::new(Shared(hsm.clone())), sealer)?;
    Marker {
        path: device.to_path_buf(),
        identity: hsm.public_key().clone(),
    }
    .write(keys_dir)?;
    Ok((ring, hsm))
}

/// Loads a key directory whose identity key is the HSM's at `device`,
/// checking that the device holds the key the marker file names. With
/// `absent_ok`, a device that does not answer is taken as lost from the
/// start (its public key from the marker file; the daemon's monitor takes
/// it back when it answers with that key); without, that is an error.
pub fn load_keys(
    keys_dir: &Path,
    device: &Path,
    timing: Timing,
    sealer: Option<&dyn SeedSealer>,
    absent_ok: bool,
) -> anyhow::Result<(Keyring, Arc<HsmSigner>)> {
    if keys_dir.join("identity.key").exists() {
        bail!(
            "hw.hsm is set but this ledger's identity key is a software file ({}): moving an existing log's identity key into an HSM is a key rotation, which cairn does not do yet",
            keys_dir.join("identity.key").display()
        );
    }
    let marker = Marker::read(keys_dir)?.with_context(|| {
        format!(
            "no keys in {}: create them with `cairn keys init --dir STATE_DIR --hsm {}`",
            keys_dir.display(),
            device.display()
        )
    })?;
    let mut opened = None;
    let ring = Keyring::load_with_identity(
        keys_dir,
        |origin| {
            let hsm = Arc::new(match HsmSigner::open(device, origin, timing) {
                Ok(hsm) => hsm,
                Err(OpenError::Unreachable(why)) if absent_ok => {
                    tracing::warn!(%why, "the HSM holding the identity key is absent at start");
                    HsmSigner::absent(device, marker.identity.clone(), timing, why)
                }
                Err(e) => return Err(cairn_attest::Error::Invalid(e.to_string())),
            });
            opened = Some(hsm.clone());
            Ok(Box::new(Shared(hsm)))
        },
        sealer,
    )?;
    let hsm = opened.context("the identity key was not opened")?;
    if hsm.public_key() != &marker.identity {
        bail!(
            "the HSM at {} holds the key {}, but this ledger's identity key is {} (created on {}): wrong device",
            device.display(),
            hsm.public_key().fingerprint(),
            marker.identity.fingerprint(),
            marker.path.display()
        );
    }
    Ok((ring, hsm))
}

/// The HSM signer shared between the keyring and the daemon's monitor.
struct Shared(Arc<HsmSigner>);

impl Signer for Shared {
    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }

    fn sign(&self, msg: &[u8], ctx: &[u8]) -> cairn_attest::Result<Vec<u8>> {
        self.0.sign(msg, ctx)
    }
}

/// The operational key under the `refuse-records` policy: it refuses to
/// sign while the flag is up (the HSM is lost), so the gate refuses every
/// record with 503.
pub struct Guarded {
    inner: Box<dyn Signer>,
    refusing: Arc<AtomicBool>,
}

impl Guarded {
    /// Wraps `inner`; the flag is raised and lowered by the monitor.
    pub fn new(inner: Box<dyn Signer>, refusing: Arc<AtomicBool>) -> Self {
        Guarded { inner, refusing }
    }
}

impl Signer for Guarded {
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }

    fn sign(&self, msg: &[u8], ctx: &[u8]) -> cairn_attest::Result<Vec<u8>> {
        if self.refusing.load(Ordering::SeqCst) {
            return Err(cairn_attest::Error::Signer {
                key: self.inner.public_key().name().to_string(),
                why: format!(
                    "the HSM holding the identity key is lost and hw.hsm_lost = \"{}\"",
                    HsmLostPolicy::RefuseRecords.label()
                ),
            });
        }
        self.inner.sign(msg, ctx)
    }

    fn can_race(&self) -> bool {
        self.inner.can_race()
    }
}
