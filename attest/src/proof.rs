//! Offline proofs in C2SP `tlog-proof` form (`c2sp.org/tlog-proof@v1`):
//! one record's inclusion in a signed checkpoint, checkable with nothing
//! else but the record's entry bytes and the log's keys.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index <leaf index>
//! <base64 inclusion-proof hash>      (one line each, leaf to root)
//!
//! <signed checkpoint note>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::keyring::KeySet;
use crate::merkle::{self, Hash};

/// The first line of a tlog-proof.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// The leaf index (the record's sequence number).
    pub index: u64,
    /// The inclusion proof, leaf to root.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note the proof is against.
    pub checkpoint: Vec<u8>,
}

impl TlogProof {
    /// The proof file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{HEADER}\nindex {}\n", self.index);
        for h in &self.hashes {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.checkpoint);
        out
    }

    /// Parses a proof file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| Error::malformed("tlog-proof", why.to_string());
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let head = std::str::from_utf8(&bytes[..split]).map_err(|_| bad("not UTF-8"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("first line must be c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        if line.starts_with("extra ") {
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("second line must be 'index N'"))?;
        let hashes = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| bad("a proof line is not a base64 SHA-256 hash"))
            })
            .collect::<Result<Vec<Hash>>>()?;
        if hashes.len() > 64 {
            return Err(bad("more than 64 proof hashes"));
        }
        Ok(TlogProof {
            index,
            hashes,
            checkpoint: bytes[split + 2..].to_vec(),
        })
    }

    /// Checks that `entry` is leaf `index` of the checkpoint, and that the
    /// checkpoint is signed by `keys`. Returns the checkpoint.
    pub fn verify(&self, entry: &[u8], keys: &KeySet) -> Result<Checkpoint> {
        let cp = Checkpoint::open(&self.checkpoint, keys)?;
        if !merkle::verify_inclusion(
            self.index,
            cp.size,
            &merkle::leaf_hash(entry),
            &self.hashes,
            &cp.root,
        ) {
            return Err(Error::Invalid(format!(
                "the entry is not leaf {} of the checkpoint of size {}",
                self.index, cp.size
            )));
        }
        Ok(cp)
    }
}
