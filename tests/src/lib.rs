//! Helpers shared by cairn's end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of a binary built from this workspace (`cairn`, `cairnd`, …),
/// next to the test executable's directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut p = std::env::current_exe().expect("test executable path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    let bin = p.join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (tests/run does)",
        bin.display()
    );
    bin
}

/// Runs `cairn ARGS…` and returns its output.
pub fn cairn(args: &[&str]) -> Output {
    Command::new(workspace_bin("cairn"))
        .args(args)
        .output()
        .expect("run cairn")
}

/// Runs `cairn verify DIR` and returns (exit code, stdout).
pub fn cairn_verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", dir.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let out = cairn(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
