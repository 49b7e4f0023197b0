//! # cairn-daemon
//!
//! The only crate that knows configuration, the CLI, HTTP and systemd. It wires the audit core (`cairn-attest`) to the
//! operator: `cairn verify`, `cairn keys`, `cairn bench`.

pub mod cairnd_cli;
pub mod cli;
pub mod client;
pub mod config;
pub mod cpu;
pub mod emulated_hw;
pub mod evidence;
pub mod hsm;
pub mod server;
pub mod tpm;
pub mod verifier_page;
