//! # cairn-daemon
//!
//! The only crate that knows configuration, the CLI and (with the daemon
//! work) HTTP and systemd. It wires the audit core (`cairn-attest`) to the
//! operator: `cairn verify`, `cairn keys`, `cairn bench`.

pub mod cli;
