//! Writes the man pages of `cairn` (one per subcommand: `cairn.1`,
//! `cairn-verify.1`, `cairn-models-generate.1` …) and `cairnd.1` into a
//! directory, from the clap definitions the binaries use. The Debian
//! package ships them (`tests/deb-package` makes them before `cargo deb`):
//!
//! ```sh
//! cargo run -p cairn-daemon --example man-pages -- target/man
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: man-pages OUT_DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| clap_mangen::generate_to(cairn_daemon::cli::command(), &out))
        .and_then(|()| clap_mangen::generate_to(cairn_daemon::cairnd_cli::Args::command(), &out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("man-pages: cannot write into {}: {e}", out.display());
            ExitCode::from(2)
        }
    }
}
