//! The serial HSM: a device that holds the log's identity key (ML-DSA-65)
//! and a monotonic counter, reached over a serial line with the framed
//! protocol of `hw/HSM-PROTOCOL.md`.
//!
//! - [`protocol`]: frames and the hostile-input decoder, shared by both
//!   sides.
//! - [`client`]: the host side ([`HsmClient`]) over any [`Transport`].
//! - [`serial`]: the real backend, a serial port ([`SerialTransport`]).
//! - [`signer`]: [`HsmSigner`], the identity key as a
//!   `cairn_attest::keys::Signer`, which tells a lost device from a
//!   present one.
//! - [`emulator`]: the emulated device that `cairn-hsm-emu` serves on a
//!   pseudo-terminal, so that the host talks to it through the same serial
//!   code as to hardware.

pub mod client;
pub mod emulator;
pub mod protocol;
pub mod serial;
pub mod signer;

pub use client::{HsmClient, HsmError, Status, Timing, Transport};
pub use serial::SerialTransport;
pub use signer::{Health, HsmSigner, OpenError};

#[cfg(test)]
mod pty_tests;
