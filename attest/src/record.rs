//! Records: one action each, as one line of ASCII JSON ending in a newline.
//! That line is the signed text of a signed note (see [`crate::note`]); the
//! verifier checks signatures over the stored bytes and parses them only to
//! read fields, never to re-serialise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The record format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest record text accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// The `kind` of the first record of every log.
pub const KIND_GENESIS: &str = "log.genesis";

/// A BLAKE3 hash of a record's text (the chain hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RecordHash(pub [u8; 32]);

impl RecordHash {
    /// The chain hash of a record text.
    pub fn of(text: &[u8]) -> Self {
        RecordHash(*blake3::hash(text).as_bytes())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| Error::malformed("record hash", format!("{s:?} is not 64 hex digits")))?;
        Ok(RecordHash(out))
    }
}

/// Who asked for an action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// A local process on the Unix socket, from SO_PEERCRED.
    Unix {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
        /// Process id.
        pid: i32,
        /// The executable, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
    },
    /// A client authenticated with a named API token.
    Token {
        /// The token's name (never the secret).
        name: String,
    },
    /// cairn itself or an operator tool acting on its own behalf.
    System {
        /// The component, e.g. `cairnd` or `cairn-cli`.
        name: String,
    },
}

/// A pointer from one record to another (a result to its request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    /// The sequence number of the record pointed at.
    pub seq: u64,
    /// Its chain hash, hex.
    pub hash: String,
}

/// A sealed record's fields, in the order they are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version, [`FORMAT_VERSION`].
    pub v: u32,
    /// The log's identity (its checkpoint origin).
    pub log: String,
    /// Sequence number, from 0, without gaps.
    pub seq: u64,
    /// Time of recording, RFC 3339 UTC with microseconds.
    pub time: String,
    /// What kind of action, e.g. `inference.request`.
    pub kind: String,
    /// Who asked.
    pub actor: Actor,
    /// Digest of the model involved, when one is.
    #[serde(default)]
    pub model: Option<String>,
    /// BLAKE3 of the previous record's text, hex (64 zeros for seq 0).
    pub prev: String,
    /// The record this one completes or answers, if any.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<RecordRef>,
    /// Salted commitments to payloads kept apart (name → hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commits: BTreeMap<String, String>,
    /// Kind-specific fields.
    #[serde(default)]
    pub body: serde_json::Value,
}

impl Record {
    /// The record's text: compact JSON with every non-ASCII character
    /// escaped, and a final newline. These are the bytes that get signed.
    pub fn to_text(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
        self.serialize(&mut ser)
            .map_err(|e| Error::Invalid(format!("record cannot be serialised: {e}")))?;
        out.push(b'\n');
        if out.len() > MAX_RECORD_BYTES {
            return Err(Error::TooLarge {
                what: "record",
                size: out.len(),
                limit: MAX_RECORD_BYTES,
            });
        }
        Ok(out)
    }

    /// Parses a record text (one JSON line and its newline).
    pub fn parse(text: &[u8]) -> Result<Self> {
        if text.len() > MAX_RECORD_BYTES {
            return Err(Error::TooLarge {
                what: "record",
                size: text.len(),
                limit: MAX_RECORD_BYTES,
            });
        }
        let line = text
            .strip_suffix(b"\n")
            .filter(|l| !l.contains(&b'\n'))
            .ok_or_else(|| Error::malformed("record", "text must be exactly one line"))?;
        let r: Record =
            serde_json::from_slice(line).map_err(|e| Error::malformed("record", e.to_string()))?;
        if r.v != FORMAT_VERSION {
            return Err(Error::malformed(
                "record",
                format!("unsupported format version {}", r.v),
            ));
        }
        Ok(r)
    }

    /// The chain hash this record names as its predecessor.
    pub fn prev_hash(&self) -> Result<RecordHash> {
        RecordHash::from_hex(&self.prev)
    }
}

/// The current time as a record timestamp.
pub fn now_timestamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000Z".into())
}

/// A JSON formatter that writes `\uXXXX` escapes for every non-ASCII
/// character, so record texts are plain ASCII whatever a client sends.
struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            v: 1,
            log: "cairn.example/log".into(),
            seq: 7,
            time: now_timestamp(),
            kind: "inference.request".into(),
            actor: Actor::Unix {
                uid: 1000,
                gid: 1000,
                pid: 42,
                exe: Some("/usr/bin/curl".into()),
            },
            model: Some("blake3:00".into()),
            prev: "00".repeat(32),
            reference: None,
            commits: BTreeMap::from([("prompt".into(), "ab".repeat(32))]),
            body: serde_json::json!({"note": "caf\u{e9} \u{1F600}\n\u{0}"}),
        }
    }

    #[test]
    fn text_is_ascii_one_line_and_round_trips() {
        let r = sample();
        let t = r.to_text().unwrap();
        assert!(t.is_ascii());
        assert_eq!(t.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(std::str::from_utf8(&t).unwrap().contains("\\ud83d\\ude00"));
        assert_eq!(Record::parse(&t).unwrap(), r);
    }

    #[test]
    fn rejects_unknown_fields_versions_and_oversize() {
        let t = String::from_utf8(sample().to_text().unwrap()).unwrap();
        assert!(Record::parse(t.replace("\"v\":1", "\"v\":2").as_bytes()).is_err());
        assert!(Record::parse(t.replace("\"seq\"", "\"extra\":1,\"seq\"").as_bytes()).is_err());
        let mut big = sample();
        big.body = serde_json::json!({"x": "a".repeat(MAX_RECORD_BYTES)});
        assert!(matches!(big.to_text(), Err(Error::TooLarge { .. })));
    }
}
