//! # cairn-hw
//!
//! The appliance's hardware, each device behind a trait with a real and an
//! emulated backend. Signers here implement `cairn_attest::keys::Signer`,
//! so the ledger cannot tell a device-held key from a software one.
//!
//! Done: the serial HSM ([`hsm`]), the TPM 2.0 ([`tpm`]; the real one
//! behind the cargo feature `tpm`, the emulated one always), and USB export
//! media through UDisks2 on D-Bus ([`usb`]; the emulated sticks are a
//! UDisks2 look-alike on a private bus).
//!
//! This crate knows no HTTP, configuration or daemon: `cairnd` decides
//! what to do when a device is lost.

pub mod hsm;
mod state_file;
pub mod tpm;
pub mod usb;
