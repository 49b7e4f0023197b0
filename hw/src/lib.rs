//! # cairn-hw
//!
//! The appliance's hardware, each device behind a trait with a real and an
//! emulated backend. Signers here implement `cairn_attest::keys::Signer`,
//! so the ledger cannot tell a device-held key from a software one.
//!
//! Done: the serial HSM ([`hsm`]). To come (see the README's roadmap): the
//! TPM and USB export through UDisks2.
//!
//! This crate knows no HTTP, configuration or daemon: `cairnd` decides
//! what to do when a device is lost.

pub mod hsm;
