//! `cairnd`: the audited inference daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cairn_daemon::cairnd_cli::{Args, HwChoice};
use cairn_daemon::config::{Config, HwMode, HwSection};
use cairn_daemon::server::{run, RunOptions};
use clap::Parser;

fn main() -> ExitCode {
    cairn_daemon::cpu::require(c"cairnd");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match start(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairnd: error: {}", cairn_daemon::cli::error_chain(&e));
            ExitCode::from(2)
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let dir = match (&args.state_dir, args.demo) {
                (Some(d), _) => d.clone(),
                (None, true) => demo_dir()?,
                (None, false) => anyhow::bail!("give --config FILE, --state-dir DIR, or --demo"),
            };
            Config::for_state_dir(&dir)
        }
    };
    if let (Some(dir), Some(_)) = (&args.state_dir, &args.config) {
        config.state_dir = dir.clone();
    }
    // The demo is the appliance with emulated hardware.
    match args.hw.or(args.demo.then_some(HwChoice::Emulated)) {
        Some(HwChoice::Emulated) => config.hw.mode = HwMode::Emulated,
        Some(HwChoice::None) if args.config.is_some() && !config.hw.is_off() => {
            anyhow::bail!(
                "--hw none: the configuration names hardware ([hw]); change the configuration instead"
            )
        }
        Some(HwChoice::None) => config.hw = HwSection::default(),
        None => {}
    }
    config.validate()?;
    if args.check_config {
        println!(
            "cairnd: configuration valid (state_dir {})",
            config.state_dir.display()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(run(RunOptions {
        config,
        create_keys: args.demo,
        accept_rollback: args.accept_rollback,
    }))
}

fn demo_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("neither XDG_DATA_HOME nor HOME is set; give --state-dir")?;
    Ok(base.join("cairn/demo"))
}
