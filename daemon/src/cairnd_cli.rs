//! `cairnd`'s command line. It lives in the library so that the man pages
//! (`examples/man-pages.rs`) are made from the same definition as the binary.

use std::path::PathBuf;

use clap::Parser;

/// `--hw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HwChoice {
    /// TPM, serial HSM and USB all emulated.
    Emulated,
    /// No devices: software keys.
    None,
}

/// The audited inference daemon: every action signed, chained and durable
/// before it runs
#[derive(Parser)]
#[command(name = "cairnd", version)]
pub struct Args {
    /// Configuration file (TOML). Default: the built-in defaults.
    #[arg(long, conflicts_with = "demo")]
    pub config: Option<PathBuf>,
    /// Demo mode: no configuration, no root, keys created on first start.
    #[arg(long)]
    pub demo: bool,
    /// The state directory (ledger, keys, socket). Default with --demo:
    /// ~/.local/share/cairn/demo.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The hardware: `emulated` (the TPM, the serial HSM and a USB stick,
    /// all emulated: hw.mode = "emulated"; the default with --demo) or
    /// `none` (software keys, no devices). Default: as the configuration
    /// says.
    #[arg(long, value_enum)]
    pub hw: Option<HwChoice>,
    /// Start even though the TPM's rollback counter says this state
    /// directory is older than the one the TPM last saw (a restored copy)
    /// or belongs to another TPM; the acceptance is recorded
    /// (`tpm.rollback_accepted`, with who started cairnd). For one start.
    #[arg(long)]
    pub accept_rollback: bool,
    /// Check the configuration and exit (0: valid; 2: the problem is
    /// printed), without starting.
    #[arg(long)]
    pub check_config: bool,
}
