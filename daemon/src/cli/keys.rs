//! `cairn keys init|show`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::keys::{load_key_file, PublicKey};
use cairn_attest::{KeySet, Keyring};
use clap::Subcommand;

use crate::hsm::{Marker, MARKER_FILE};

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// Create the identity, operational and co-signing keys of a ledger
    /// directory (in DIR/keys, mode 0600; never overwrites).
    Init {
        /// The ledger (state) directory.
        #[arg(long)]
        dir: PathBuf,
        /// The log's origin (its name in checkpoints). Default:
        /// HOSTNAME.local/cairn/RANDOM.
        #[arg(long)]
        origin: Option<String>,
        /// Do nothing (and succeed) when DIR already has an identity key;
        /// the packaged unit runs this before every start of cairnd.
        #[arg(long)]
        if_missing: bool,
        /// The serial HSM (e.g. /dev/ttyACM0) that holds the identity key:
        /// only the operational and co-signing keys are created as files,
        /// and the identity key certifies the operational key on the
        /// device. cairnd's configuration must name it as hw.hsm.
        #[arg(long, value_name = "DEVICE")]
        hsm: Option<PathBuf>,
    },
    /// Show the public keys and fingerprints of a ledger directory.
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
            origin,
            if_missing,
            hsm,
        } => {
            let keys = keys_dir(&dir);
            if if_missing && (keys.join("identity.key").exists() || keys.join(MARKER_FILE).exists())
            {
                return Ok(ExitCode::SUCCESS);
            }
            let origin = origin.unwrap_or_else(default_origin);
            let created = match &hsm {
                None => Keyring::create(&keys, &origin).map_err(anyhow::Error::from),
                Some(device) => crate::hsm::create_keys(
                    &keys,
                    device,
                    &origin,
                    cairn_hw::hsm::Timing::default(),
                )
                .map(|(ring, _)| ring),
            };
            let ring =
                created.with_context(|| format!("cannot create keys in {}", keys.display()))?;
            print_keys(&ring.public(), hsm.as_deref(), false)?;
            eprintln!(
                "secret keys written to {} (mode 0600)",
                keys_dir(&dir).display()
            );
        }
        KeysCommand::Show { dir, json } => {
            let keys = keys_dir(&dir);
            let (set, device) = public_keys(&keys)
                .with_context(|| format!("cannot load keys from {}", keys.display()))?;
            print_keys(&set, device.as_deref(), json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a ledger directory keeps its software keys.
pub(crate) fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

/// The public keys of a key directory, and the HSM that holds the
/// identity key when one does (no device is opened).
fn public_keys(keys: &Path) -> anyhow::Result<(KeySet, Option<PathBuf>)> {
    let Some(marker) = Marker::read(keys)? else {
        return Ok((Keyring::load(keys)?.public(), None));
    };
    let load = |f: &str| -> anyhow::Result<PublicKey> {
        Ok(load_key_file(&keys.join(f))?.public_key().clone())
    };
    let set = KeySet {
        identity: marker.identity,
        operational: load("operational.key")?,
        cosigner: load("cosigner.key")?,
    };
    Ok((set, Some(marker.path)))
}

fn print_keys(set: &KeySet, hsm: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let file = "software file".to_string();
    let identity_holder = hsm.map_or(file.clone(), |d| format!("serial HSM {}", d.display()));
    let rows = [
        (
            "identity",
            "signs checkpoints, certifies the operational key",
            &set.identity,
            &identity_holder,
        ),
        ("operational", "signs every record", &set.operational, &file),
        (
            "cosigner",
            "co-signs checkpoints (Ed25519)",
            &set.cosigner,
            &file,
        ),
    ];
    if json {
        let v: serde_json::Map<String, serde_json::Value> = rows
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
            serde_json::to_string_pretty(&serde_json::json!({"origin": set.origin(), "keys": v}))?
        );
        return Ok(());
    }
    println!("log origin  {}", set.origin());
    for (role, what, k, held_by) in rows {
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
