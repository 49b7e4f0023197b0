//! The `cairn` command line.

mod anchor;
mod bench;
mod bench_gate;
mod bench_inference;
mod bench_sign;
mod daemon_cmds;
mod disclose;
mod evidence;
mod export;
mod export_usb;
mod inventory;
mod keys;
mod log_at;
mod models;
mod output;
pub(crate) use keys::{default_origin, held_keys, keys_dir};
mod proof;
mod review;
mod verify;
mod verify_tpm;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit status when verification finds a problem.
pub const EXIT_INVALID: u8 = 1;
/// Exit status for usage errors and unreadable input.
pub const EXIT_ERROR: u8 = 2;

/// The operator's and auditor's tool for cairn, verifiable on-prem AI
#[derive(Parser)]
#[command(name = "cairn", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a ledger directory (every signature, chain link, sequence
    /// number, checkpoint signature and Merkle root) or a record proof file
    /// from `cairn proof`.
    ///
    /// Exit status: 0 when everything holds, 1 when something does not
    /// (the first bad record is named), 2 when the input cannot be read.
    Verify {
        /// A ledger (state) directory, a bundle, a `.tlog-proof` file or a
        /// disclosure file (`cairn disclose`).
        path: PathBuf,
        /// The identity key the log must have: a verifier key or its
        /// SHA-256 fingerprint (from `cairn keys show`), obtained out of band.
        #[arg(long)]
        key: Option<String>,
        /// An earlier export (a bundle directory, or a checkpoint file) the
        /// log must extend: its records must be this log's first ones.
        #[arg(long)]
        since: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained offline proof that one record is in the log
    /// (C2SP tlog-proof, carrying the record): `cairn verify FILE` checks it
    /// with nothing else.
    Proof {
        /// The record's sequence number.
        seq: u64,
        /// The ledger (state) directory of a stopped daemon.
        #[arg(long)]
        ledger: PathBuf,
        /// Where to write the proof (default: record-SEQ.tlog-proof).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export the log as a bundle a stranger verifies offline (`cairn verify
    /// BUNDLE --key FINGERPRINT`): a new directory
    /// `cairn-export-SIZE-TIME-ROOT` inside `--to`. When the ledger's
    /// daemon runs, it checkpoints first and records the export
    /// (`ledger.export`); otherwise the bundle stops at the last checkpoint
    /// and the export is not recorded. With `--usb`, onto a USB stick
    /// through UDisks2: mounted, written, read back and verified, unmounted
    /// and powered off.
    Export {
        /// The ledger (state) directory; a running daemon's is fine (its
        /// journals are only appended to).
        #[arg(long)]
        ledger: PathBuf,
        /// The daemon's socket (default: `cairnd.sock` in the ledger
        /// directory, if a daemon answers there; given, it must answer).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The browser verifier page to put into the bundle as
        /// `verify.html` (default: /usr/share/cairn/verify.html when
        /// installed).
        #[arg(long)]
        verifier: Option<PathBuf>,
        /// Export the whole log, not only what was added since the last
        /// recorded export.
        #[arg(long, conflicts_with = "from_size")]
        full: bool,
        /// Continue the export of this many records (it must have a
        /// checkpoint of that size), instead of the last recorded one.
        #[arg(long)]
        from_size: Option<u64>,
        /// The directory to write the bundle into (it must exist: a mounted
        /// stick, for instance).
        #[arg(long, required_unless_present = "usb", conflicts_with = "usb")]
        to: Option<PathBuf>,
        /// Write to the USB stick plugged in (or the one this label, UUID,
        /// serial or device names), found and mounted through UDisks2 on
        /// the system bus (DBUS_SYSTEM_BUS_ADDRESS when set), then read it
        /// back, verify it, unmount the stick and power it off.
        #[arg(long, value_name = "STICK", num_args = 0..=1, default_missing_value = "")]
        usb: Option<String>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Timestamp anchors of exported checkpoints.
    Anchor {
        #[command(subcommand)]
        command: anchor::AnchorCommand,
    },
    /// An evidence report for auditors over a period (HTML with charts, or
    /// JSON), computed from the verified log at one signed checkpoint and
    /// mapped to SOC 2, the EU AI Act, ISO/IEC 42001 and the NIST AI RMF.
    ///
    /// Exit status: 0 when the log verified, 1 when it did not (the report
    /// says so first), 2 when no report could be made.
    Evidence(evidence::Args),
    /// The models on the appliance, from its verified log, as a CycloneDX
    /// 1.6 ML-BOM.
    Inventory(inventory::Args),
    /// Reviews: sign off the model and configuration state.
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// Models: list, add (load or swap) and remove a running daemon's
    /// models; generate test models.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Show a running daemon's health, log and latest checkpoint.
    Status {
        #[command(flatten)]
        at: daemon_cmds::DaemonAt,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running daemon's model something; prints the answer and its
    /// audit receipt (the request and result records).
    Chat {
        #[command(flatten)]
        at: daemon_cmds::DaemonAt,
        /// The message.
        message: String,
        /// The model (default: the daemon's default model).
        #[arg(long)]
        model: Option<String>,
        /// The most tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        /// The system message ("" sends none, leaving the model's template
        /// to use its own default, if it has one).
        #[arg(long, default_value = "You are a helpful assistant.")]
        system: String,
        /// Print the daemon's whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List a running daemon's records.
    Records {
        #[command(flatten)]
        at: daemon_cmds::DaemonAt,
        /// First sequence number.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many (at most 1,000).
        #[arg(long, default_value_t = 20)]
        limit: u64,
        /// Print the entries as stored (JSON lines of the API answer).
        #[arg(long)]
        json: bool,
    },
    /// Disclose a kept payload (a prompt, messages or an output) of a
    /// record to a file that also carries the record's proof; the daemon
    /// records the disclosure (administrators only). `cairn verify FILE`
    /// checks it offline.
    Disclose {
        #[command(flatten)]
        at: daemon_cmds::DaemonAt,
        /// The record's sequence number.
        seq: u64,
        /// The payload's name in the record's `commits` (`messages` or
        /// `prompt` of a request, `output` of a result).
        name: String,
        /// Where to write it (default: record-SEQ-NAME.disclosure.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Manage the software keys of a ledger directory.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Measure performance.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// The command-line definition, for the man pages (`examples/man-pages.rs`).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the CLI and maps outcomes to exit codes.
pub fn main() -> ExitCode {
    crate::cpu::require(c"cairn");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify {
            path,
            since: Some(_),
            ..
        } if proof::looks_like_proof(&path) || disclose::looks_like_disclosure(&path) => {
            Err(anyhow::anyhow!(
                "--since applies to ledgers and bundles, not to a record proof or a disclosure"
            ))
        }
        Command::Verify {
            path, key, json, ..
        } if disclose::looks_like_disclosure(&path) => {
            if json {
                Err(anyhow::anyhow!("--json is not available for a disclosure"))
            } else {
                disclose::verify(&path, key.as_deref())
            }
        }
        Command::Verify {
            path, key, json, ..
        } if proof::looks_like_proof(&path) => proof::verify(&path, key.as_deref(), json),
        Command::Verify {
            path,
            key,
            since,
            json,
        } => verify::run(&path, key, since.as_deref(), json),
        Command::Proof { seq, ledger, out } => proof::write(seq, &ledger, out),
        Command::Export {
            ledger,
            to,
            usb,
            socket,
            verifier,
            full,
            from_size,
            json,
        } => {
            let extent = match (full, from_size) {
                (true, _) => export::Extent::Full,
                (false, Some(f)) => export::Extent::From(f),
                (false, None) => export::Extent::SincePrevious,
            };
            match (usb, to) {
                (Some(stick), _) => {
                    let stick = Some(stick.as_str()).filter(|s| !s.is_empty());
                    export_usb::run(&ledger, stick, socket, verifier.as_deref(), extent, json)
                }
                (None, Some(to)) => {
                    export::run(&ledger, &to, socket, verifier.as_deref(), extent, json)
                }
                (None, None) => unreachable!("clap requires --to or --usb"),
            }
        }
        Command::Evidence(args) => evidence::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Review { command } => review::run(command),
        Command::Keys { command } => keys::run(command),
        Command::Anchor { command } => anchor::run(command),
        Command::Models { command } => models::run(command),
        Command::Status { at, json } => daemon_cmds::status(&at, json),
        Command::Chat {
            at,
            message,
            model,
            max_tokens,
            system,
            json,
        } => daemon_cmds::chat(&at, &message, &system, model, max_tokens, json),
        Command::Records {
            at,
            from,
            limit,
            json,
        } => daemon_cmds::records(&at, from, limit, json),
        Command::Bench { command } => bench::run(command),
        Command::Disclose { at, seq, name, out } => disclose::write(&at, seq, &name, out),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: error: {}", error_chain(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error and its causes, `: `-separated, leaving out a cause whose text
/// its parent already ends with (errors that print their source, as
/// `path: os error` does, would otherwise show it twice).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if !out.ends_with(&cause) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&cause);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn causes_already_printed_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(cairn_attest::Error::io("/x", io)).context("cannot export");
        assert_eq!(error_chain(&e), "cannot export: /x: No such file");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&e), "outer: inner");
    }
}
