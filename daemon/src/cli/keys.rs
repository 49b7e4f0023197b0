//! `cairn keys init|show`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cairn_attest::{KeySet, Keyring};
use clap::Subcommand;

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
        } => {
            if if_missing && keys_dir(&dir).join("identity.key").exists() {
                return Ok(ExitCode::SUCCESS);
            }
            let origin = origin.unwrap_or_else(default_origin);
            let ring = Keyring::create(&keys_dir(&dir), &origin)
                .with_context(|| format!("cannot create keys in {}", keys_dir(&dir).display()))?;
            print_keys(&ring.public(), false)?;
            eprintln!(
                "secret keys written to {} (mode 0600)",
                keys_dir(&dir).display()
            );
        }
        KeysCommand::Show { dir, json } => {
            let ring = Keyring::load(&keys_dir(&dir))
                .with_context(|| format!("cannot load keys from {}", keys_dir(&dir).display()))?;
            print_keys(&ring.public(), json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a ledger directory keeps its software keys.
pub(crate) fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}

fn print_keys(set: &KeySet, json: bool) -> anyhow::Result<()> {
    let rows = [
        (
            "identity",
            "signs checkpoints, certifies the operational key",
            &set.identity,
        ),
        ("operational", "signs every record", &set.operational),
        ("cosigner", "co-signs checkpoints (Ed25519)", &set.cosigner),
    ];
    if json {
        let v: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(role, _, k)| {
                (
                    role.to_string(),
                    serde_json::json!({"algorithm": k.algorithm().label(), "vkey": k.vkey(), "fingerprint": k.fingerprint(), "held_by": "software file"}),
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
    for (role, what, k) in rows {
        println!(
            "\n{role} ({}, software file): {what}",
            k.algorithm().label()
        );
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
