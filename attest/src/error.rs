//! Errors of the audit core. Every failure is a value with a message a
//! person can act on; nothing in this crate panics on bad input.

use std::path::PathBuf;

/// Everything that can go wrong in the audit core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The sled index could not be opened or written.
    #[error("index database {path}: {source}")]
    Index {
        /// The index directory.
        path: PathBuf,
        /// The underlying sled error.
        #[source]
        source: sled::Error,
    },
    /// Bytes that should hold a record, note, checkpoint, proof or key do not.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it was rejected.
        why: String,
    },
    /// A record or note exceeds its size limit.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The signer could not produce a signature (device lost, key unusable).
    #[error("signer {key}: {why}")]
    Signer {
        /// The key name.
        key: String,
        /// What went wrong.
        why: String,
    },
    /// The ledger on disk is inconsistent in a way that recovery must not
    /// paper over (corruption in acknowledged data, a journal shorter than
    /// its index, a foreign key).
    #[error("ledger {path}: {why}")]
    Corrupt {
        /// The ledger directory or file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The ledger stopped accepting appends after a failed durable write or
    /// signature; reopen it to recover.
    #[error("ledger is closed for appends: {0}")]
    Poisoned(String),
    /// A request referred to something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A caller supplied an argument that cannot be honoured.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A parse failure of `what`.
    pub fn malformed(what: &'static str, why: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            why: why.into(),
        }
    }
}

/// Result alias for the audit core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
