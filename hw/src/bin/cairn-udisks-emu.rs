//! `cairn-udisks-emu`: emulated USB sticks behind a UDisks2 look-alike on a
//! D-Bus bus (see `cairn_hw::usb::emulator`). Runs until SIGTERM or
//! SIGINT, then unmounts what it mounted.

use std::path::PathBuf;
use std::process::ExitCode;

use cairn_hw::usb::emulator::{Emulator, StickSpec};
use nix::sys::signal::{SigSet, Signal};

#[derive(clap::Parser)]
#[command(
    version,
    about = "Emulated USB sticks, served as UDisks2 on a D-Bus bus"
)]
struct Args {
    /// The bus to serve on (a D-Bus address, e.g. unix:path=/tmp/bus);
    /// default: DBUS_SYSTEM_BUS_ADDRESS.
    #[arg(long)]
    address: Option<String>,
    /// Where sticks are mounted (a directory per label, as udisksd's
    /// /media/USER).
    #[arg(long)]
    media: PathBuf,
    /// A stick: label=NAME,dir=PATH[,serial=S][,uuid=U][,ro]
    /// [,unplug-at-open=N | ,fill-at-open=N]. Repeatable; none: no stick is
    /// plugged in.
    #[arg(long)]
    stick: Vec<StickSpec>,
    /// A file to create once the service is on the bus.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = clap::Parser::parse();
    // Blocked before any thread starts, so only sigwait below sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("cairn-udisks-emu: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let Some(address) = args
        .address
        .or_else(|| std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok())
    else {
        eprintln!("cairn-udisks-emu: no --address and no DBUS_SYSTEM_BUS_ADDRESS");
        return ExitCode::FAILURE;
    };
    let count = args.stick.len();
    let emulator = match Emulator::serve(&address, &args.media, args.stick) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cairn-udisks-emu: cannot serve on {address}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(f) = &args.ready_file {
        if let Err(e) = std::fs::write(f, format!("{address}\n")) {
            eprintln!("cairn-udisks-emu: {}: {e}", f.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!("cairn-udisks-emu: serving {count} stick(s) on {address}");
    let signal = signals.wait();
    drop(emulator);
    eprintln!("cairn-udisks-emu: stopped ({signal:?})");
    ExitCode::SUCCESS
}
