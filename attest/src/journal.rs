//! Append-only journals of sealed entries: the durable truth of a ledger.
//!
//! A journal file is an 8-byte magic followed by frames
//! `len: u32 LE ‖ crc32(entry): u32 LE ‖ entry`. A group of frames is
//! written with one `write` and made durable with one `fdatasync` before any
//! of them is acknowledged, so an acknowledged entry survives kill -9 and
//! power loss. A crash can only leave a torn *tail*: the frames of the last,
//! unacknowledged group, partly written. Recovery cuts such a tail off after
//! saving it aside; damage anywhere else is corruption and is reported,
//! never repaired silently.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The first bytes of every journal file.
pub const MAGIC: &[u8; 8] = b"CAIRNJ1\n";
/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 8;
/// The largest entry a frame may hold.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// The most bytes one group write may add; a damaged tail longer than this
/// cannot be a torn group write and is treated as corruption.
pub const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// A frame found in journal bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Offset of the frame header in the file.
    pub offset: u64,
    /// The entry bytes.
    pub entry: &'a [u8],
    /// Whether the stored checksum matches the entry.
    pub checksum_ok: bool,
}

/// Why frame parsing stopped before the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBreak {
    /// Offset of the first byte that is not a complete frame.
    pub offset: u64,
    /// What is wrong there.
    pub why: String,
}

/// Splits journal bytes (after the magic, starting at file offset `base`)
/// into frames. Stops at the first incomplete or insane frame header; a
/// checksum mismatch is reported on the frame, not as a break, so that a
/// verifier can name the damaged record.
pub fn split_frames(bytes: &[u8], base: u64) -> (Vec<Frame<'_>>, Option<FrameBreak>) {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = base + pos as u64;
        let rest = &bytes[pos..];
        if rest.len() < FRAME_HEADER {
            return (
                frames,
                Some(FrameBreak {
                    offset,
                    why: format!("{} stray bytes, not a frame header", rest.len()),
                }),
            );
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len > MAX_ENTRY_BYTES {
            return (
                frames,
                Some(FrameBreak {
                    offset,
                    why: format!("frame length {len} is impossible"),
                }),
            );
        }
        if rest.len() < FRAME_HEADER + len {
            return (
                frames,
                Some(FrameBreak {
                    offset,
                    why: format!(
                        "frame of {len} bytes is cut off after {}",
                        rest.len() - FRAME_HEADER
                    ),
                }),
            );
        }
        let entry = &rest[FRAME_HEADER..FRAME_HEADER + len];
        frames.push(Frame {
            offset,
            entry,
            checksum_ok: crc32fast::hash(entry) == crc,
        });
        pos += FRAME_HEADER + len;
    }
    (frames, None)
}

/// Encodes one frame.
pub fn encode_frame(entry: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(entry).to_le_bytes());
    out.extend_from_slice(entry);
}

/// What recovery did to a journal's tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the tail was cut.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Where the cut bytes were saved.
    pub saved_to: PathBuf,
    /// Why the tail was not a complete frame.
    pub why: String,
}

/// What [`Journal::open`] found.
pub struct Opened {
    /// The journal, positioned for appends.
    pub journal: Journal,
    /// Complete frames after the trusted end, as `(offset, entry)`.
    pub found: Vec<(u64, Vec<u8>)>,
    /// The torn tail that was cut, if any.
    pub torn: Option<TornTail>,
}

/// An open journal, positioned for appends.
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
}

impl Journal {
    /// Opens (creating if absent) the journal at `path`. Frames from
    /// `trusted_end` on are checked; a torn tail of at most
    /// [`MAX_GROUP_BYTES`] is saved to `PATH.torn-OFFSET-NANOS` and cut off.
    /// The complete frames found after `trusted_end` are returned for the
    /// caller to re-index.
    pub fn open(path: &Path, trusted_end: u64) -> Result<Opened> {
        let io = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut len = file.metadata().map_err(io)?.len();
        if len == 0 {
            file.write_all(MAGIC)
                .and_then(|_| file.sync_all())
                .map_err(io)?;
            sync_parent(path)?;
            len = MAGIC.len() as u64;
        }
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|_| Error::Corrupt {
                path: path.into(),
                why: "too short to be a journal".into(),
            })?;
        if &magic != MAGIC {
            return Err(Error::Corrupt {
                path: path.into(),
                why: "not a cairn journal (bad magic)".into(),
            });
        }
        let start = trusted_end.max(MAGIC.len() as u64);
        if start > len {
            return Err(Error::Corrupt {
                path: path.into(),
                why: format!("journal is {len} bytes but its index says {start} bytes were durably written: acknowledged records are missing"),
            });
        }
        let mut tail = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut tail, start).map_err(io)?;
        let (frames, brk) = split_frames(&tail, start);
        let mut found = Vec::with_capacity(frames.len());
        let mut good_end = start;
        let mut torn = None;
        for f in &frames {
            if !f.checksum_ok {
                // Checksum failure inside the tail: the rest is the torn group.
                break;
            }
            found.push((f.offset, f.entry.to_vec()));
            good_end = f.offset + (FRAME_HEADER + f.entry.len()) as u64;
        }
        if good_end < len {
            let why = brk
                .filter(|b| b.offset == good_end)
                .map(|b| b.why)
                .unwrap_or_else(|| "frame checksum mismatch".into());
            let cut = len - good_end;
            if cut > MAX_GROUP_BYTES as u64 {
                return Err(Error::Corrupt {
                    path: path.into(),
                    why: format!("damage at offset {good_end} ({why}) with {cut} bytes after it: too much to be a torn write; refusing to cut"),
                });
            }
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let saved_to = PathBuf::from(format!("{}.torn-{good_end}-{stamp}", path.display()));
            let bytes = &tail[(good_end - start) as usize..];
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&saved_to)
                .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
                .map_err(|e| Error::io(&saved_to, e))?;
            sync_parent(&saved_to)?;
            file.set_len(good_end)
                .and_then(|_| file.sync_all())
                .map_err(io)?;
            torn = Some(TornTail {
                offset: good_end,
                bytes: cut,
                saved_to,
                why,
            });
            len = good_end;
        }
        Ok(Opened {
            journal: Journal {
                path: path.into(),
                file,
                len,
            },
            found,
            torn,
        })
    }

    /// Appends entries as one write and one `fdatasync`. Returns each
    /// entry's frame offset. On error nothing may be assumed durable and the
    /// journal must not be appended to again (the caller poisons its ledger).
    pub fn append(&mut self, entries: &[&[u8]]) -> Result<Vec<u64>> {
        let mut buf = Vec::with_capacity(entries.iter().map(|e| e.len() + FRAME_HEADER).sum());
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            if e.len() > MAX_ENTRY_BYTES {
                return Err(Error::TooLarge {
                    what: "journal entry",
                    size: e.len(),
                    limit: MAX_ENTRY_BYTES,
                });
            }
            offsets.push(self.len + buf.len() as u64);
            encode_frame(e, &mut buf);
        }
        self.file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += buf.len() as u64;
        Ok(offsets)
    }

    /// Reads the entry whose frame starts at `offset`.
    pub fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        read_entry(&self.file, &self.path, offset, len)
    }

    /// Reads the first entry, if the journal has one.
    pub fn first(&self) -> Result<Option<Vec<u8>>> {
        let start = MAGIC.len() as u64;
        if self.len < start + FRAME_HEADER as u64 {
            return Ok(None);
        }
        let mut header = [0u8; 4];
        self.file
            .read_exact_at(&mut header, start)
            .map_err(|e| Error::io(&self.path, e))?;
        self.read(start, u32::from_le_bytes(header)).map(Some)
    }

    /// The journal's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no frames.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }

    /// A second handle for concurrent reads.
    pub fn reader(&self) -> Result<JournalReader> {
        Ok(JournalReader {
            path: self.path.clone(),
            file: File::open(&self.path).map_err(|e| Error::io(&self.path, e))?,
        })
    }
}

/// A read-only handle on a journal, safe to use while it is appended to.
pub struct JournalReader {
    path: PathBuf,
    file: File,
}

impl JournalReader {
    /// Reads the entry whose frame starts at `offset`, checking its checksum.
    pub fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>> {
        read_entry(&self.file, &self.path, offset, len)
    }
}

fn read_entry(file: &File, path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; FRAME_HEADER + len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io(path, e))?;
    match split_frames(&buf, offset).0.first() {
        Some(f) if f.checksum_ok && f.entry.len() == len as usize => Ok(f.entry.to_vec()),
        _ => Err(Error::Corrupt {
            path: path.into(),
            why: format!("frame at offset {offset} is damaged"),
        }),
    }
}

/// fsyncs the directory holding `path`, so a new file's name is durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_reopen_and_cut_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let Opened {
            journal: mut j,
            found,
            torn,
        } = Journal::open(&p, 0).unwrap();
        assert!(found.is_empty() && torn.is_none() && j.is_empty());
        let offs = j.append(&[b"one", b"two"]).unwrap();
        assert_eq!(j.read(offs[1], 3).unwrap(), b"two");
        drop(j);
        // A torn third frame: header and half the entry.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        let mut frame = Vec::new();
        encode_frame(b"three-three", &mut frame);
        f.write_all(&frame[..12]).unwrap();
        drop(f);
        let Opened {
            journal: j,
            found,
            torn,
        } = Journal::open(&p, 0).unwrap();
        assert_eq!(
            found.iter().map(|(_, e)| e.as_slice()).collect::<Vec<_>>(),
            [&b"one"[..], b"two"]
        );
        let torn = torn.unwrap();
        assert_eq!(torn.bytes, 12);
        assert_eq!(std::fs::read(&torn.saved_to).unwrap(), &frame[..12]);
        assert_eq!(j.len(), std::fs::metadata(&p).unwrap().len());
    }

    #[test]
    fn a_journal_shorter_than_its_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        drop(Journal::open(&p, 0).unwrap());
        assert!(matches!(
            Journal::open(&p, 1000),
            Err(Error::Corrupt { .. })
        ));
        std::fs::write(&p, b"NOTAJRNL").unwrap();
        assert!(matches!(Journal::open(&p, 0), Err(Error::Corrupt { .. })));
    }
}
