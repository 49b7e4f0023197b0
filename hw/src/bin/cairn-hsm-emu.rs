//! `cairn-hsm-emu`: the emulated serial HSM. It opens a pseudo-terminal,
//! serves the HSM protocol (`hw/HSM-PROTOCOL.md`) on its master side, and
//! publishes the slave side's path for the host to open as a serial port.
//! Killing it (any signal) unplugs the device: the master closes and the
//! host's port hangs up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_hw::hsm::emulator::{
    open_pty, point_link, serve, Device, EmulatorState, Faults, ServeEnd,
};

#[derive(clap::Parser)]
#[command(
    version,
    about = "The emulated serial HSM, served on a pseudo-terminal"
)]
struct Args {
    /// The state file: the identity key's seed and the counter (mode 0600,
    /// created when missing, rewritten atomically).
    #[arg(long)]
    state: PathBuf,
    /// A symbolic link to (re)point at the pseudo-terminal, as udev's
    /// /dev/serial/by-id links do: a host configured with it finds a
    /// replugged emulator at the same path.
    #[arg(long)]
    link: Option<PathBuf>,
    /// A file to write the pseudo-terminal's path to, once it is served.
    #[arg(long)]
    path_file: Option<PathBuf>,
    /// Answer N requests, then unplug on the next one.
    #[arg(long, value_name = "N")]
    fail_after: Option<u64>,
    /// Answer N requests, then answer nothing (a hung device).
    #[arg(long, value_name = "N")]
    hang_after: Option<u64>,
    /// Write random bytes before every Nth answer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    garbage_every: Option<u64>,
    /// Corrupt the CRC of every Nth answer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    corrupt_every: Option<u64>,
}

fn main() -> ExitCode {
    let args: Args = clap::Parser::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-hsm-emu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let state = EmulatorState::open_or_create(&args.state)?;
    let counter = state.counter();
    let mut device = Device::new(state)?;
    let (master, pty) = open_pty()?;
    if let Some(link) = &args.link {
        point_link(&pty, link)?;
    }
    if let Some(f) = &args.path_file {
        write_atomically(f, format!("{}\n", pty.display()).as_bytes())?;
    }
    let mut out = std::io::stdout();
    writeln!(
        out,
        "cairn-hsm-emu: serving on {} (counter {counter})",
        pty.display()
    )?;
    out.flush()?;
    let end = serve(
        master,
        &mut device,
        Faults {
            fail_after: args.fail_after,
            hang_after: args.hang_after,
            garbage_every: args.garbage_every,
            corrupt_every: args.corrupt_every,
        },
    )?;
    match end {
        ServeEnd::Unplugged => writeln!(out, "cairn-hsm-emu: unplugged (--fail-after)")?,
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, ".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
