//! Log entries: a record text sealed by the operational key into a signed
//! note. The entry bytes are what the journal stores, what the Merkle tree
//! hashes as a leaf, and what an export carries.

use crate::error::{Error, Result};
use crate::keys::{PublicKey, Signer, CTX_RECORD};
use crate::note::{self, Note, NoteSignature};
use crate::record::{Record, RecordHash};

/// Signs a record text with `signer` and returns the entry bytes.
pub fn seal(text: &[u8], signer: &dyn Signer) -> Result<Vec<u8>> {
    let pk = signer.public_key();
    let sig = NoteSignature {
        name: pk.name().to_string(),
        key_id: pk.key_id(),
        signature: signer.sign(text, CTX_RECORD)?,
    };
    Ok(note::assemble(text, std::slice::from_ref(&sig)))
}

/// An entry split into its signed note and parsed record.
pub struct Entry<'a> {
    /// The note (record text and signatures).
    pub note: Note<'a>,
    /// The record fields.
    pub record: Record,
}

impl<'a> Entry<'a> {
    /// Parses entry bytes (no signature check).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let note = Note::parse(bytes)?;
        let record = Record::parse(note.text)?;
        Ok(Entry { note, record })
    }

    /// The chain hash of the record text.
    pub fn hash(&self) -> RecordHash {
        RecordHash::of(self.note.text)
    }

    /// Checks the operational key's signature.
    pub fn verify(&self, operational: &PublicKey) -> Result<()> {
        self.note
            .verify_by(operational, CTX_RECORD)
            .map_err(|f| Error::Invalid(format!("record {}: {f}", self.record.seq)))
    }
}
