//! `cairn`: the operator and auditor CLI.

fn main() -> std::process::ExitCode {
    cairn_daemon::cli::main()
}
