//! Checkpoints in C2SP `tlog-checkpoint` form: a signed note whose text is
//! the origin, the tree size in decimal and the base64 SHA-256 root, one
//! per line, then any extension lines (cairn's: the TPM rollback counter,
//! [`COUNTER_EXTENSION`]). Signed by the identity key (ML-DSA-65) and
//! co-signed by the Ed25519 cosigner key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::error::{Error, Result};
use crate::keyring::{KeySet, Keyring};
use crate::keys::CTX_CHECKPOINT;
use crate::merkle::Hash;
use crate::note::{self, Note, NoteSignature};

/// A parsed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log origin.
    pub origin: String,
    /// The number of records covered.
    pub size: u64,
    /// The SHA-256 Merkle root over the first `size` entries.
    pub root: Hash,
    /// Extension lines after the root (non-empty printable ASCII), signed
    /// with the rest.
    pub extensions: Vec<String>,
}

/// The extension line that binds a checkpoint to a TPM's rollback counter:
/// `cairn-tpm-counter N`, N the value the counter holds once this
/// checkpoint is stored (FORMAT.md section 4).
pub const COUNTER_EXTENSION: &str = "cairn-tpm-counter";

impl Checkpoint {
    /// The checkpoint body (the note text).
    pub fn text(&self) -> String {
        let mut t = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            t.push_str(e);
            t.push('\n');
        }
        t
    }

    /// The TPM rollback counter this checkpoint carries, if any (the first
    /// well-formed `cairn-tpm-counter N` line).
    pub fn tpm_counter(&self) -> Option<u64> {
        self.extensions.iter().find_map(|e| {
            let n = e.strip_prefix(COUNTER_EXTENSION)?.strip_prefix(' ')?;
            (n.bytes().all(|b| b.is_ascii_digit()) && !(n.len() > 1 && n.starts_with('0')))
                .then(|| n.parse().ok())
                .flatten()
        })
    }

    /// Signs the checkpoint with the identity and cosigner keys, giving the
    /// signed note.
    pub fn sign(&self, keys: &Keyring) -> Result<Vec<u8>> {
        let text = self.text();
        let mut sigs = Vec::with_capacity(2);
        for (signer, ctx) in [(&keys.identity, CTX_CHECKPOINT), (&keys.cosigner, &b""[..])] {
            let pk = signer.public_key();
            sigs.push(NoteSignature {
                name: pk.name().to_string(),
                key_id: pk.key_id(),
                signature: signer.sign(text.as_bytes(), ctx)?,
            });
        }
        Ok(note::assemble(text.as_bytes(), &sigs))
    }

    /// Parses a checkpoint note's text, keeping its extension lines.
    pub fn parse_text(text: &[u8]) -> Result<Self> {
        let s =
            std::str::from_utf8(text).map_err(|_| Error::malformed("checkpoint", "not UTF-8"))?;
        let mut lines = s.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(Error::malformed(
                "checkpoint",
                "needs origin, size and root lines",
            ));
        };
        check_origin(origin)?;
        if size.is_empty()
            || size.len() > 20
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(Error::malformed(
                "checkpoint",
                format!("size {size:?} is not a decimal number"),
            ));
        }
        let size = size
            .parse()
            .map_err(|_| Error::malformed("checkpoint", "size out of range"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| Error::malformed("checkpoint", "root is not 32 base64 bytes"))?;
        // The note text ends in a newline, so the last split is empty.
        let mut extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.last().is_some_and(String::is_empty) {
            extensions.pop();
        }
        if extensions
            .iter()
            .any(|e| e.is_empty() || !e.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(Error::malformed(
                "checkpoint",
                "an extension line is empty or not printable ASCII",
            ));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Parses a signed checkpoint and checks both signatures against `keys`.
    pub fn open(bytes: &[u8], keys: &KeySet) -> Result<Self> {
        let n = Note::parse(bytes)?;
        let cp = Checkpoint::parse_text(n.text)?;
        if cp.origin != keys.origin() {
            return Err(Error::Invalid(format!(
                "checkpoint is for log {:?}, not {:?}",
                cp.origin,
                keys.origin()
            )));
        }
        n.verify_by(&keys.identity, CTX_CHECKPOINT).map_err(|f| {
            Error::Invalid(format!("checkpoint identity (ML-DSA-65) signature: {f}"))
        })?;
        n.verify_by(&keys.cosigner, b"")
            .map_err(|f| Error::Invalid(format!("checkpoint Ed25519 co-signature: {f}")))?;
        Ok(cp)
    }
}

/// Checks a log origin: a non-empty line of printable ASCII without spaces
/// or `+` (it doubles as the key name).
pub fn check_origin(origin: &str) -> Result<()> {
    note::check_key_name(origin)?;
    if !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::malformed(
            "origin",
            format!("{origin:?} must be printable ASCII"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoints_open_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::create(dir.path(), "cairn.example/log").unwrap();
        let cp = Checkpoint {
            origin: "cairn.example/log".into(),
            size: 12,
            root: [5; 32],
            extensions: vec![],
        };
        let signed = cp.sign(&ring).unwrap();
        assert_eq!(Checkpoint::open(&signed, &ring.public()).unwrap(), cp);
        let text = String::from_utf8(signed.clone()).unwrap();
        let forged = text.replacen("\n12\n", "\n13\n", 1);
        assert!(Checkpoint::open(forged.as_bytes(), &ring.public()).is_err());
        assert!(Checkpoint::parse_text(b"o\n012\nAAAA\n").is_err());
    }

    #[test]
    fn extension_lines_are_signed_and_carry_the_tpm_counter() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::create(dir.path(), "cairn.example/log").unwrap();
        let cp = Checkpoint {
            origin: "cairn.example/log".into(),
            size: 3,
            root: [7; 32],
            extensions: vec!["cairn-tpm-counter 41".into()],
        };
        let signed = cp.sign(&ring).unwrap();
        let opened = Checkpoint::open(&signed, &ring.public()).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(opened.tpm_counter(), Some(41));
        let text = String::from_utf8(signed).unwrap();
        let forged = text.replacen("counter 41", "counter 42", 1);
        assert!(Checkpoint::open(forged.as_bytes(), &ring.public()).is_err());
        for text in [
            "o\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n",
            "o\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nx\u{7f}\n",
        ] {
            assert!(Checkpoint::parse_text(text.as_bytes()).is_err(), "{text:?}");
        }
        assert!(Checkpoint::parse_text(
            b"o\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nx y\n"
        )
        .is_ok());
        for bad in [
            "cairn-tpm-counter",
            "cairn-tpm-counter 01",
            "cairn-tpm-counter x",
        ] {
            let c = Checkpoint {
                extensions: vec![bad.into()],
                ..cp.clone()
            };
            assert_eq!(c.tpm_counter(), None, "{bad}");
        }
    }
}
