//! Reading a ledger directory's journals for verification, without the
//! index and without a lock, so a stopped (or even running) daemon's state
//! directory can be checked by a separate process.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{split_frames, MAGIC};
use crate::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use crate::verify::{Finding, LogBytes, Stored, Subject};

/// The journals of a ledger directory, memory-mapped read-only.
pub struct LedgerFiles {
    records: (PathBuf, Option<memmap2::Mmap>),
    checkpoints: (PathBuf, Option<memmap2::Mmap>),
}

impl LedgerFiles {
    /// Maps the journals in `dir`; the records journal must exist.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("{} is not a directory", dir.display())));
        }
        let records = dir.join(RECORDS_JOURNAL);
        if !records.exists() {
            return Err(Error::NotFound(format!(
                "{} holds no ledger ({RECORDS_JOURNAL} is missing)",
                dir.display()
            )));
        }
        let cps = dir.join(CHECKPOINTS_JOURNAL);
        Ok(LedgerFiles { records: (records.clone(), map(&records)?), checkpoints: (cps.clone(), map_optional(&cps)?) })
    }

    /// The log as bytes for [`crate::verify::verify_log`].
    pub fn log_bytes(&self) -> LogBytes<'_> {
        let mut log = LogBytes::default();
        log.entries = frames(&self.records, &mut log.damage);
        log.checkpoints = frames(&self.checkpoints, &mut log.damage);
        log
    }
}

fn map(path: &Path) -> Result<Option<memmap2::Mmap>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    if f.metadata().map_err(|e| Error::io(path, e))?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the journals are append-only; the mapping is read-only and
    // every length read from it is bounds-checked by split_frames.
    unsafe { memmap2::Mmap::map(&f) }.map(Some).map_err(|e| Error::io(path, e))
}

fn map_optional(path: &Path) -> Result<Option<memmap2::Mmap>> {
    if path.exists() {
        map(path)
    } else {
        Ok(None)
    }
}

fn frames<'a>((path, map): &'a (PathBuf, Option<memmap2::Mmap>), damage: &mut Vec<Finding>) -> Vec<Stored<'a>> {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(bytes) = map.as_deref() else { return Vec::new() };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        damage.push(Finding { subject: Subject::Storage { file, offset: 0 }, why: "not a cairn journal (bad magic)".into() });
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
    found.into_iter().map(|f| Stored { bytes: f.entry, intact: f.checksum_ok, offset: f.offset }).collect()
}
