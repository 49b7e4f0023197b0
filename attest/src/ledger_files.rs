//! Reading a ledger directory's journals for verification, without the
//! index and without a lock, so a stopped (or even running) daemon's state
//! directory can be checked by a separate process.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
use crate::journal::{split_frames, MAGIC};
use crate::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use crate::verify::{Finding, LogBytes, Stored, Subject};

/// The journals of a ledger directory, memory-mapped read-only.
pub struct LedgerFiles {
    records: Option<memmap2::Mmap>,
    checkpoints: Option<memmap2::Mmap>,
}

impl LedgerFiles {
    /// Maps the journals in `dir`; the records journal must exist.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let records = dir.join(RECORDS_JOURNAL);
        if !records.exists() {
            return Err(Error::NotFound(format!(
                "{} holds no ledger ({RECORDS_JOURNAL} is missing)",
                dir.display()
            )));
        }
        let cps = dir.join(CHECKPOINTS_JOURNAL);
        Ok(LedgerFiles {
            records: map(&records)?,
            checkpoints: map_optional(&cps)?,
        })
    }

    /// The log as bytes for [`crate::verify::verify_log`].
    pub fn log_bytes(&self) -> LogBytes<'_> {
        log_from_journals(
            self.records.as_deref().unwrap_or_default(),
            self.checkpoints.as_deref().unwrap_or_default(),
        )
    }
}

/// Splits the bytes of a records journal and a checkpoints journal into a
/// log to verify; damage to the framing becomes findings.
pub fn log_from_journals<'a>(records: &'a [u8], checkpoints: &'a [u8]) -> LogBytes<'a> {
    let mut log = LogBytes::default();
    log.entries = frames(RECORDS_JOURNAL, records, &mut log.damage);
    log.checkpoints = frames(CHECKPOINTS_JOURNAL, checkpoints, &mut log.damage);
    log
}

fn map(path: &Path) -> Result<Option<memmap2::Mmap>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the journals are append-only; the mapping is read-only and
    // every length read from it is bounds-checked by split_frames.
    unsafe { memmap2::Mmap::map(&f) }
        .map(Some)
        .map_err(|e| Error::io(path, e))
}

fn map_optional(path: &Path) -> Result<Option<memmap2::Mmap>> {
    if path.exists() {
        map(path)
    } else {
        Ok(None)
    }
}

fn frames<'a>(file: &str, bytes: &'a [u8], damage: &mut Vec<Finding>) -> Vec<Stored<'a>> {
    let file = file.to_string();
    if bytes.is_empty() {
        return Vec::new();
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        damage.push(Finding {
            subject: Subject::Storage { file, offset: 0 },
            why: "not a cairn journal (bad magic)".into(),
        });
        return Vec::new();
    }
    let (found, brk) = split_frames(&bytes[MAGIC.len()..], MAGIC.len() as u64);
    if let Some(b) = brk {
        damage.push(Finding {
            subject: Subject::Storage { file, offset: b.offset },
            why: format!(
                "{} ({} bytes to the end); if cairnd was interrupted, starting it once recovers an unacknowledged tail",
                b.why,
                bytes.len() as u64 - b.offset
            ),
        });
    }
    found
        .into_iter()
        .map(|f| Stored {
            bytes: f.entry,
            intact: f.checksum_ok,
            offset: f.offset,
        })
        .collect()
}
