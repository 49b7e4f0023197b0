//! # cairn-hw
//!
//! The appliance's hardware, each device behind a trait with a real and an
//! emulated backend: TPM 2.0, the serial HSM, and USB export through
//! UDisks2. Signers here implement `cairn_attest::keys::Signer`.
//!
//! This crate is filled by the hardware work (see the README's roadmap); it
//! exports nothing yet: cairn currently keeps its keys in 0600 files
//! (`cairn_attest::keys`).
