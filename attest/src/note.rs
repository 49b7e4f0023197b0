//! C2SP signed notes (`c2sp.org/signed-note`): a UTF-8 text ending in a
//! newline, a blank line, then one line per signature:
//! `— <key name> <base64(key id ‖ signature)>`.
//!
//! Records and checkpoints are both signed notes, so tools that already parse
//! transparency-log notes can split and display them. See `FORMAT.md` for the
//! signature type byte chosen for ML-DSA-65.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::error::{Error, Result};
use crate::keys::{KeyId, PublicKey};

/// The separator between a note's text and its signatures.
const SIG_SPLIT: &[u8] = b"\n\n";
/// The prefix of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// The most signature lines a note may carry (as in the Go reference).
pub const MAX_SIGNATURES: usize = 100;

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: String,
    /// The 4-byte key id that prefixes the signature.
    pub key_id: KeyId,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, including its final newline.
    pub fn line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Whether this line names `key` (same name and key id).
    pub fn is_by(&self, key: &PublicKey) -> bool {
        self.name == key.name() && self.key_id == key.key_id()
    }
}

/// A parsed signed note, borrowing its text from the input bytes.
#[derive(Debug)]
pub struct Note<'a> {
    /// The signed text, ending in a newline: exactly the bytes that were signed.
    pub text: &'a [u8],
    /// The signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

impl<'a> Note<'a> {
    /// Splits `bytes` into text and signature lines, checking the note's
    /// syntax (not the signatures).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let split = find_last(bytes, SIG_SPLIT)
            .ok_or_else(|| Error::malformed("signed note", "no blank line before signatures"))?;
        let text = &bytes[..split + 1];
        check_text(text)?;
        let block = std::str::from_utf8(&bytes[split + 2..])
            .map_err(|_| Error::malformed("signed note", "signature block is not UTF-8"))?;
        if !block.ends_with('\n') {
            return Err(Error::malformed(
                "signed note",
                "signature block does not end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in block[..block.len() - 1].split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(Error::malformed("signed note", "too many signatures"));
            }
            signatures.push(parse_sig_line(line)?);
        }
        Ok(Note { text, signatures })
    }

    /// The text as a string (it is valid UTF-8 by construction).
    pub fn text_str(&self) -> &'a str {
        std::str::from_utf8(self.text).unwrap_or_default()
    }

    /// The first signature by `key` that verifies over the text with `ctx`.
    pub fn verify_by(&self, key: &PublicKey, ctx: &[u8]) -> Result<(), SignatureFault> {
        let mut found = false;
        for sig in self.signatures.iter().filter(|s| s.is_by(key)) {
            found = true;
            if key.verify(self.text, &sig.signature, ctx) {
                return Ok(());
            }
        }
        Err(if found {
            SignatureFault::Invalid
        } else {
            SignatureFault::Missing
        })
    }
}

/// Why a note's signature by a given key was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureFault {
    /// No signature line names the key.
    Missing,
    /// A line names the key but its signature does not verify.
    Invalid,
}

impl std::fmt::Display for SignatureFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureFault::Missing => "no signature by the expected key",
            SignatureFault::Invalid => "signature does not verify",
        })
    }
}

/// Assembles a note from its text and signature lines.
pub fn assemble(text: &[u8], signatures: &[NoteSignature]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1 + signatures.len() * 4500);
    out.extend_from_slice(text);
    out.push(b'\n');
    for s in signatures {
        out.extend_from_slice(s.line().as_bytes());
    }
    out
}

/// Checks the rules for a note's text: non-empty, valid UTF-8, ends in a
/// newline, and no control characters other than newline.
pub fn check_text(text: &[u8]) -> Result<()> {
    let s = std::str::from_utf8(text)
        .map_err(|_| Error::malformed("signed note", "text is not valid UTF-8"))?;
    if !s.ends_with('\n') {
        return Err(Error::malformed(
            "signed note",
            "text does not end with a newline",
        ));
    }
    if let Some(c) = s.chars().find(|&c| c != '\n' && c.is_control()) {
        return Err(Error::malformed(
            "signed note",
            format!("text contains control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// Checks a key name: non-empty, no white space, no `+`.
pub fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(Error::malformed(
            "key name",
            format!("{name:?} must be non-empty without spaces or '+'"),
        ));
    }
    Ok(())
}

fn parse_sig_line(line: &str) -> Result<NoteSignature> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
        Error::malformed("signed note", "signature line does not start with '— '")
    })?;
    let (name, b64) = rest
        .split_once(' ')
        .ok_or_else(|| Error::malformed("signed note", "signature line has no signature"))?;
    check_key_name(name)?;
    let raw = B64
        .decode(b64)
        .map_err(|_| Error::malformed("signed note", "signature is not base64"))?;
    if raw.len() < 5 {
        return Err(Error::malformed("signed note", "signature too short"));
    }
    Ok(NoteSignature {
        name: name.to_string(),
        key_id: KeyId([raw[0], raw[1], raw[2], raw[3]]),
        signature: raw[4..].to_vec(),
    })
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_assembles() {
        let sig = NoteSignature {
            name: "example.com/log".into(),
            key_id: KeyId([1, 2, 3, 4]),
            signature: vec![9; 64],
        };
        let bytes = assemble(b"hello\nworld\n", std::slice::from_ref(&sig));
        let note = Note::parse(&bytes).unwrap();
        assert_eq!(note.text, b"hello\nworld\n");
        assert_eq!(note.signatures, vec![sig]);
    }

    #[test]
    fn verifies_the_c2sp_signed_note_example() {
        // The example of c2sp.org/signed-note (Ed25519, type 0x01).
        let key = PublicKey::from_vkey(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        let n = Note::parse(note.as_bytes()).unwrap();
        assert_eq!(n.text, b"This is an example message.\n");
        n.verify_by(&key, b"").unwrap();
        let forged = note.replace("example message", "example massage");
        assert_eq!(
            Note::parse(forged.as_bytes()).unwrap().verify_by(&key, b""),
            Err(SignatureFault::Invalid)
        );
    }

    #[test]
    fn rejects_bad_notes() {
        for bad in [
            &b"no separator\n"[..],
            b"text\n\n- name AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 name AAAAAAA=",
            b"te\x01xt\n\n\xe2\x80\x94 name AAAAAAAA\n",
            b"text\n\n\xe2\x80\x94 na+me AAAAAAAA\n",
            b"text\n\n\xe2\x80\x94 name !!!!\n",
        ] {
            assert!(
                Note::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
