//! Payload commitments. Prompts and outputs are personal data: a record
//! carries only `BLAKE3-keyed(salt, payload)`; the salt and the payload are
//! kept apart and may be erased by policy without touching the chain. A
//! disclosed payload (salt and bytes) is checked against its record with
//! [`Disclosure::check`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::Record;

/// What to keep of payloads after committing to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "days")]
pub enum PayloadPolicy {
    /// Keep salt and payload until erased explicitly.
    Store,
    /// Keep nothing: the commitment alone is recorded.
    HashOnly,
    /// Keep them, and erase those older than this many days.
    EraseAfterDays(u32),
}

/// A payload with its fresh salt and commitment.
pub struct Committed {
    /// The 32-byte salt (the BLAKE3 key).
    pub salt: [u8; 32],
    /// The commitment, hex.
    pub commitment: String,
}

/// Commits to `payload` under a fresh random salt.
pub fn commit(payload: &[u8]) -> Result<Committed> {
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt)
        .map_err(|e| Error::Invalid(format!("no randomness for a payload salt: {e}")))?;
    Ok(Committed {
        commitment: commitment(&salt, payload),
        salt,
    })
}

/// `hex(BLAKE3-keyed(salt, payload))`.
pub fn commitment(salt: &[u8; 32], payload: &[u8]) -> String {
    blake3::keyed_hash(salt, payload).to_hex().to_string()
}

/// A payload disclosed for checking against its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosure {
    /// The record's sequence number.
    pub seq: u64,
    /// The payload's name in the record's `commits`.
    pub name: String,
    /// The salt, hex.
    pub salt: String,
    /// The payload, as UTF-8 text when it is text.
    pub payload: String,
}

impl Disclosure {
    /// Whether this payload is the one `record` committed to.
    pub fn check(&self, record: &Record) -> Result<()> {
        if record.seq != self.seq {
            return Err(Error::Invalid(format!(
                "disclosure is for record {} but record {} was given",
                self.seq, record.seq
            )));
        }
        let mut salt = [0u8; 32];
        hex::decode_to_slice(&self.salt, &mut salt)
            .map_err(|_| Error::malformed("disclosure", "salt is not 64 hex digits"))?;
        let expected = record.commits.get(&self.name).ok_or_else(|| {
            Error::NotFound(format!(
                "record {} commits to no payload named {:?}",
                record.seq, self.name
            ))
        })?;
        if &commitment(&salt, self.payload.as_bytes()) != expected {
            return Err(Error::Invalid(format!(
                "payload {:?} does not match the commitment in record {}",
                self.name, record.seq
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitments_are_salted_and_checkable() {
        let a = commit(b"hello").unwrap();
        let b = commit(b"hello").unwrap();
        assert_ne!(a.commitment, b.commitment, "same text, different salt");
        assert_eq!(a.commitment, commitment(&a.salt, b"hello"));
        assert_ne!(a.commitment, commitment(&a.salt, b"hellp"));
    }
}
