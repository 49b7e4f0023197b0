//! `cairn keys init|show`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::keys::{read_key_file_public, Protection, PublicKey, SeedSealer};
use cairn_attest::Keyring;
use clap::Subcommand;

use crate::config::{Config, HwSection};
use crate::emulated_hw::EmulatedHw;
use crate::hsm::{Marker, MARKER_FILE};
use crate::tpm::OpenTpm;

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create the identity, operational and co-signing keys of a ledger
    /// directory (in DIR/keys, mode 0600; never overwrites).
    Init {
        /// The ledger (state) directory.
        #[arg(long, required_unless_present = "config")]
        dir: Option<PathBuf>,
        /// Take the state directory and the hardware (hw.hsm, hw.tpm,
        /// hw.tpm_seal_pcrs) from cairnd's configuration file; the packaged
        /// unit runs `cairn keys init --config /etc/cairn/cairnd.toml
        /// --if-missing` before every start.
        #[arg(long, conflicts_with_all = ["dir", "hsm", "tpm"])]
        config: Option<PathBuf>,
        /// The log's origin (its name in checkpoints). Default:
        /// HOSTNAME.local/cairn/RANDOM.
        #[arg(long)]
        origin: Option<String>,
        /// Do nothing (and succeed) when DIR already has an identity key.
        #[arg(long)]
        if_missing: bool,
        /// The serial HSM (e.g. /dev/ttyACM0) that holds the identity key:
        /// only the operational and co-signing keys are created as files,
        /// and the identity key certifies the operational key on the
        /// device. cairnd's configuration must name it as hw.hsm.
        #[arg(long, value_name = "DEVICE")]
        hsm: Option<PathBuf>,
        /// Seal the key files' seeds to this TPM's PCR 7 (as hw.tpm:
        /// device:/dev/tpmrm0, swtpm:host=H,port=P or emulated:/PATH).
        /// cairnd's configuration must name the same TPM.
        #[arg(long, value_name = "TPM")]
        tpm: Option<String>,
    },
    /// Seal the key files that hold their seeds in the clear to the TPM
    /// that cairnd's configuration names (hw.tpm): a ledger made before
    /// the TPM was configured. Each file is replaced atomically; the keys
    /// stay the same.
    Seal {
        /// cairnd's configuration file (its state_dir and [hw] tpm).
        #[arg(long)]
        config: PathBuf,
    },
    /// Show the public keys and fingerprints of a ledger directory, and
    /// which device holds each (no device is opened).
    Show {
        /// The ledger (state) directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Init {
            dir,
            config,
            origin,
            if_missing,
            hsm,
            tpm,
        } => {
            let (dir, mut hw) = match (config, dir) {
                (Some(path), _) => {
                    let c = Config::load(&path)?;
                    (c.state_dir, c.hw)
                }
                (None, Some(dir)) => {
                    let hw = HwSection {
                        hsm,
                        tpm,
                        ..HwSection::default()
                    };
                    hw.validate(&dir)?;
                    (dir, hw)
                }
                (None, None) => anyhow::bail!("give --dir DIR or --config FILE"),
            };
            let keys = keys_dir(&dir);
            if if_missing && (keys.join("identity.key").exists() || keys.join(MARKER_FILE).exists())
            {
                return Ok(ExitCode::SUCCESS);
            }
            let origin = origin.unwrap_or_else(default_origin);
            // hw.mode = "emulated": the emulated HSM and TPM, as cairnd
            // will use them.
            let _emulated = EmulatedHw::start(&mut hw, &dir, false)?;
            let tpm = OpenTpm::from_config(&hw, &dir)?;
            let sealer = tpm.as_ref().map(|t| &t.sealer as &dyn SeedSealer);
            let created = match &hw.hsm {
                None => Keyring::create_sealed(&keys, &origin, sealer).map_err(anyhow::Error::from),
                Some(device) => {
                    crate::hsm::create_keys(&keys, device, &origin, crate::hsm::timing(&hw), sealer)
                        .map(|(ring, _)| ring)
                }
            };
            created.with_context(|| format!("cannot create keys in {}", keys.display()))?;
            drop(tpm);
            print_keys(&held_keys(&keys)?, false)?;
            eprintln!("key files written to {} (mode 0600)", keys.display());
        }
        KeysCommand::Seal { config } => {
            let mut c = Config::load(&config)?;
            let _emulated = EmulatedHw::start(&mut c.hw, &c.state_dir, false)?;
            let tpm = OpenTpm::from_config(&c.hw, &c.state_dir)?
                .with_context(|| format!("{}: no hw.tpm to seal the keys to", config.display()))?;
            let keys = keys_dir(&c.state_dir);
            for f in ["identity.key", "operational.key", "cosigner.key"] {
                let path = keys.join(f);
                if f == "identity.key" && !path.exists() && keys.join(MARKER_FILE).exists() {
                    println!("{f}: in the HSM");
                    continue;
                }
                let sealed = cairn_attest::keys::seal_key_file(&path, &tpm.sealer)
                    .with_context(|| format!("cannot seal {}", path.display()))?;
                println!(
                    "{f}: {}",
                    if sealed {
                        "sealed now"
                    } else {
                        "sealed already"
                    }
                );
            }
            eprintln!(
                "the old files' blocks were freed, not overwritten: on journaling or copy-on-write file systems the seeds may stay readable on the disk"
            );
        }
        KeysCommand::Show { dir, json } => {
            let keys = keys_dir(&dir);
            let held = held_keys(&keys)
                .with_context(|| format!("cannot load keys from {}", keys.display()))?;
            print_keys(&held, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What holds a key whose seed is in its file in the clear.
const SOFTWARE_FILE: &str = "software file";

/// Where a ledger directory keeps its software keys.
pub(crate) fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

/// A key directory's public keys and what holds each secret.
pub(crate) struct HeldKeys {
    origin: String,
    /// (role, what it signs, public key, what holds the secret).
    keys: Vec<(&'static str, &'static str, PublicKey, String)>,
}

/// Reads the public keys of a key directory: from the files (sealed files
/// carry theirs) and, for an identity key in an HSM, from the marker file.
pub(crate) fn held_keys(keys: &Path) -> anyhow::Result<HeldKeys> {
    let file = |f: &str| -> anyhow::Result<(PublicKey, String)> {
        let (pk, protection) = read_key_file_public(&keys.join(f))?;
        let holder = match protection {
            Protection::File => SOFTWARE_FILE,
            Protection::Sealed => "file sealed to the TPM",
        };
        Ok((pk, holder.to_string()))
    };
    let (identity, identity_holder) = match Marker::read(keys)? {
        Some(m) => (m.identity, format!("serial HSM {}", m.path.display())),
        None => file("identity.key")?,
    };
    let (operational, op_holder) = file("operational.key")?;
    let (cosigner, co_holder) = file("cosigner.key")?;
    Ok(HeldKeys {
        origin: identity.name().to_string(),
        keys: vec![
            (
                "identity",
                "signs checkpoints, certifies the operational key",
                identity,
                identity_holder,
            ),
            ("operational", "signs every record", operational, op_holder),
            (
                "cosigner",
                "co-signs checkpoints (Ed25519)",
                cosigner,
                co_holder,
            ),
        ],
    })
}

impl HeldKeys {
    /// `{"identity": HOLDER, "operational": …, "cosigner": …}`.
    pub(crate) fn holders(&self) -> serde_json::Value {
        self.keys
            .iter()
            .map(|(role, _, _, held_by)| (role.to_string(), held_by.clone().into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Whether a key's seed is in a file in the clear.
    pub(crate) fn any_in_the_clear(&self) -> bool {
        self.keys.iter().any(|(_, _, _, h)| h == SOFTWARE_FILE)
    }
}

fn print_keys(held: &HeldKeys, json: bool) -> anyhow::Result<()> {
    if json {
        let v: serde_json::Map<String, serde_json::Value> = held
            .keys
            .iter()
            .map(|(role, _, k, held_by)| {
                (
                    role.to_string(),
                    serde_json::json!({"algorithm": k.algorithm().label(), "vkey": k.vkey(), "fingerprint": k.fingerprint(), "held_by": held_by}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"origin": held.origin, "keys": v}))?
        );
        return Ok(());
    }
    println!("log origin  {}", held.origin);
    for (role, what, k, held_by) in &held.keys {
        println!("\n{role} ({}, {held_by}): {what}", k.algorithm().label());
        println!("  fingerprint {}", k.fingerprint());
        println!("  vkey        {}…", &k.vkey()[..k.vkey().len().min(100)]);
    }
    Ok(())
}

/// `HOSTNAME.local/cairn/RANDOM`, with the host name reduced to safe characters.
/// (/etc/hostname when /proc/sys is hidden, as in the packaged unit.)
pub(crate) fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "appliance".into());
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let host = if host.is_empty() {
        "appliance".to_string()
    } else {
        host.to_lowercase()
    };
    let mut rnd = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd));
    format!(
        "{host}.local/cairn/{:02x}{:02x}{:02x}{:02x}",
        rnd[0], rnd[1], rnd[2], rnd[3]
    )
}
