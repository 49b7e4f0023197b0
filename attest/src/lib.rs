//! # cairn-attest — the audit core
//!
//! Every action cairn takes is a [`record::Record`]: one line of JSON,
//! hash-chained (BLAKE3) to the one before, sealed by an ML-DSA-65
//! signature into a C2SP signed note ([`entry`]), and made durable in the
//! [`ledger::Ledger`] *before* the action runs. An RFC 6962 SHA-256 Merkle
//! tree ([`merkle`]) over the entries is committed to by signed
//! [`checkpoint`]s in C2SP `tlog-checkpoint` form, and one record's
//! inclusion can be proved offline with a C2SP `tlog-proof` ([`proof`]).
//! [`verify::verify_log`] is the one definition of a valid log.
//!
//! This crate knows nothing of async runtimes, HTTP, models or hardware
//! drivers: signing goes through the [`keys::Signer`] trait so keys can
//! live in software, a TPM or an HSM. The byte formats are specified in
//! `attest/FORMAT.md`.

pub mod anchor;
pub mod bundle;
pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod journal;
pub mod keyring;
pub mod keys;
pub mod ledger;
pub mod ledger_files;
pub mod merkle;
pub mod note;
pub mod payload;
pub mod payload_store;
pub mod proof;
pub mod record;
pub mod secure_mem;
pub mod verify;

pub use error::{Error, Result};
pub use keyring::{KeySet, Keyring};
pub use ledger::{CheckpointHook, Ledger, LedgerConfig, Receipt, RecordDraft};
pub use record::{Actor, Record};
