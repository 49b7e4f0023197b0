//! The payload store: the salts and payloads that records commit to, kept
//! apart from the chain in one append-only file, durable before the records
//! that commit to them are acknowledged, and erasable in place.
//!
//! The file is the 8 bytes `CAIRNP1\n` followed by frames (all integers
//! little-endian):
//!
//! ```text
//! u32(header_len) ‖ u32(CRC-32(header)) ‖ header ‖ u32(CRC-32(body)) ‖ body
//! header = u64(seq) ‖ u64(stored_at, unix seconds) ‖ u32(body_len) ‖ u8(name_len) ‖ name
//! body   = salt (32 bytes) ‖ payload
//! ```
//!
//! Frames are appended in sequence order, a group with one write and one
//! `fdatasync`. Erasure overwrites a body with zeros (punching a hole where
//! the filesystem can) and leaves the header: an all-zero body whose
//! checksum fails is an erased payload. Everything else about a frame is
//! checked, so recovery tells a torn tail (cut) from an erased payload in
//! the middle (kept as erased). Unlike a journal's, a cut tail is not saved
//! aside: it holds personal data of records never acknowledged, which
//! erasure could not reach in a copy.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{sync_parent, MAX_GROUP_BYTES};

/// The first bytes of a payload store.
pub const MAGIC: &[u8; 8] = b"CAIRNP1\n";
/// The most bytes one record's payload frames may take.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// The longest damaged tail recovery cuts (one group of records and their
/// payloads); longer damage is corruption and is refused.
const MAX_TAIL_BYTES: u64 = (MAX_GROUP_BYTES + MAX_PAYLOAD_BYTES) as u64;
/// Bytes before a frame's header: its length and checksum.
const PREFIX: usize = 8;
/// Bytes of a header before the name.
const FIXED_HEADER: usize = 8 + 8 + 4 + 1;
/// Bytes of a salt.
const SALT: usize = 32;

/// A payload to store.
pub struct NewPayload<'a> {
    /// The record that commits to it.
    pub seq: u64,
    /// Its name in the record's `commits`.
    pub name: &'a str,
    /// When it is stored, unix seconds (erasure by age reads it).
    pub stored_at: u64,
    /// The commitment's salt.
    pub salt: &'a [u8; 32],
    /// The payload.
    pub bytes: &'a [u8],
}

impl NewPayload<'_> {
    /// The bytes its frame takes in the store.
    pub fn frame_len(&self) -> usize {
        frame_len(self.name, self.bytes.len())
    }
}

/// The bytes the frame of a payload named `name` of `len` bytes takes.
pub fn frame_len(name: &str, len: usize) -> usize {
    PREFIX + FIXED_HEADER + name.len() + 4 + SALT + len
}

/// Refuses a payload name the store cannot hold (1 to 255 bytes).
pub fn check_name(name: &str) -> Result<()> {
    if (1..=255).contains(&name.len()) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "payload name {name:?} must be 1 to 255 bytes"
        )))
    }
}

/// What a stored body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyState {
    /// The salt and payload as written.
    Intact,
    /// Zeros: erased.
    Erased,
    /// Neither: damaged (reads fail).
    Damaged,
}

/// Where a payload's frame is, as the index keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Offset of the frame.
    pub offset: u64,
    /// When it was stored, unix seconds.
    pub stored_at: u64,
    /// Bytes of the header.
    pub header_len: u16,
    /// Bytes of the body (salt and payload).
    pub body_len: u32,
    /// What the body holds.
    pub state: BodyState,
}

impl Location {
    const ENCODED: usize = 8 + 8 + 2 + 4 + 1;

    /// Offset of the body.
    fn body_offset(&self) -> u64 {
        self.offset + (PREFIX + self.header_len as usize + 4) as u64
    }

    /// Offset just past the frame.
    pub fn end(&self) -> u64 {
        self.body_offset() + u64::from(self.body_len)
    }

    /// The index's encoding.
    pub fn encode(&self) -> [u8; Self::ENCODED] {
        let mut v = [0u8; Self::ENCODED];
        v[..8].copy_from_slice(&self.offset.to_le_bytes());
        v[8..16].copy_from_slice(&self.stored_at.to_le_bytes());
        v[16..18].copy_from_slice(&self.header_len.to_le_bytes());
        v[18..22].copy_from_slice(&self.body_len.to_le_bytes());
        v[22] = match self.state {
            BodyState::Intact => 0,
            BodyState::Erased => 1,
            BodyState::Damaged => 2,
        };
        v
    }

    /// Decodes an index value, checking that its sizes are possible.
    pub fn decode(v: &[u8], path: &Path) -> Result<Self> {
        let bad = || Error::Corrupt {
            path: path.into(),
            why: "a payload location in the index is malformed".into(),
        };
        if v.len() != Self::ENCODED {
            return Err(bad());
        }
        let u64_at = |i: usize| u64::from_le_bytes(v[i..i + 8].try_into().unwrap_or_default());
        let loc = Location {
            offset: u64_at(0),
            stored_at: u64_at(8),
            header_len: u16::from_le_bytes([v[16], v[17]]),
            body_len: u32::from_le_bytes(v[18..22].try_into().unwrap_or_default()),
            state: match v[22] {
                0 => BodyState::Intact,
                1 => BodyState::Erased,
                2 => BodyState::Damaged,
                _ => return Err(bad()),
            },
        };
        let sane = (FIXED_HEADER + 1..=FIXED_HEADER + 255).contains(&(loc.header_len as usize))
            && (SALT..=MAX_PAYLOAD_BYTES).contains(&(loc.body_len as usize))
            && loc.offset >= MAGIC.len() as u64
            && loc.offset <= u64::MAX / 2;
        if sane {
            Ok(loc)
        } else {
            Err(bad())
        }
    }
}

/// A frame found by [`PayloadStore::open`] past the indexed end.
#[derive(Debug)]
pub struct Found {
    /// The record it belongs to.
    pub seq: u64,
    /// Its name.
    pub name: String,
    /// Where it is.
    pub location: Location,
}

/// A tail cut from the payload store (not kept: see the module's notes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutTail {
    /// Where the store was cut.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why: a torn frame, or payloads of records past the log's end.
    pub why: String,
}

/// What [`PayloadStore::open`] found.
pub struct OpenedStore {
    /// The store, positioned for appends.
    pub store: PayloadStore,
    /// Frames past the trusted end, in file order.
    pub found: Vec<Found>,
    /// The tail that was cut, if any.
    pub torn: Option<CutTail>,
}

/// An open payload store.
pub struct PayloadStore {
    path: PathBuf,
    file: File,
    len: u64,
}

/// A frame header.
struct Header {
    seq: u64,
    stored_at: u64,
    body_len: u32,
    name: String,
}

fn encode_header(seq: u64, stored_at: u64, body_len: u32, name: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&stored_at.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

/// Parses a header whose checksum matched; `None` if it is insane.
fn parse_header(h: &[u8]) -> Option<Header> {
    let fixed = h.get(..FIXED_HEADER)?;
    let name_len = fixed[20] as usize;
    if name_len == 0 || h.len() != FIXED_HEADER + name_len {
        return None;
    }
    let body_len = u32::from_le_bytes(fixed[16..20].try_into().ok()?);
    if (body_len as usize) < SALT || body_len as usize > MAX_PAYLOAD_BYTES {
        return None;
    }
    Some(Header {
        seq: u64::from_le_bytes(fixed[..8].try_into().ok()?),
        stored_at: u64::from_le_bytes(fixed[8..16].try_into().ok()?),
        body_len,
        name: String::from_utf8(h[FIXED_HEADER..].to_vec()).ok()?,
    })
}

/// What a body holds, given its stored checksum.
fn body_state(body: &[u8], crc: u32) -> BodyState {
    if crc32fast::hash(body) == crc {
        BodyState::Intact
    } else if body.iter().all(|&b| b == 0) {
        BodyState::Erased
    } else {
        BodyState::Damaged
    }
}

/// Reads the frame at `offset` from `r` (positioned there): `Ok(None)` at
/// the end of the file, `Err(why)` for a frame that is not complete and sound.
fn next_frame(
    r: &mut impl Read,
    offset: u64,
) -> std::result::Result<Option<(Header, Location)>, String> {
    let mut prefix = [0u8; PREFIX];
    match read_fully(r, &mut prefix)? {
        0 => return Ok(None),
        n if n < PREFIX => return Err(format!("{n} stray bytes, not a frame")),
        _ => {}
    }
    let header_len = u32::from_le_bytes(prefix[..4].try_into().unwrap_or_default()) as usize;
    if !(FIXED_HEADER + 1..=FIXED_HEADER + 255).contains(&header_len) {
        return Err(format!("header length {header_len} is impossible"));
    }
    let mut header = vec![0u8; header_len];
    if read_fully(r, &mut header)? < header_len {
        return Err("the frame's header is cut off".into());
    }
    let crc = u32::from_le_bytes(prefix[4..].try_into().unwrap_or_default());
    if crc32fast::hash(&header) != crc {
        return Err("header checksum mismatch".into());
    }
    let h = parse_header(&header).ok_or("the header is malformed")?;
    let mut body = vec![0u8; 4 + h.body_len as usize];
    if read_fully(r, &mut body)? < body.len() {
        return Err("the frame's body is cut off".into());
    }
    let body_crc = u32::from_le_bytes(body[..4].try_into().unwrap_or_default());
    let location = Location {
        offset,
        stored_at: h.stored_at,
        header_len: header_len as u16,
        body_len: h.body_len,
        state: body_state(&body[4..], body_crc),
    };
    Ok(Some((h, location)))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::result::Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    Ok(n)
}

impl PayloadStore {
    /// Opens (creating if absent) the store at `path`. Frames from
    /// `trusted_end` on are read and returned for the caller to index; the
    /// first frame that is not complete and sound, or that belongs to a
    /// record at or past `log_size` (whose write never finished), and all
    /// after it are cut off.
    pub fn open(path: &Path, trusted_end: u64, log_size: u64) -> Result<OpenedStore> {
        let io = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut len = file.metadata().map_err(io)?.len();
        if len == 0 {
            file.write_all_at(MAGIC, 0)
                .and_then(|_| file.sync_all())
                .map_err(io)?;
            sync_parent(path)?;
            len = MAGIC.len() as u64;
        }
        let corrupt = |why: String| Error::Corrupt {
            path: path.into(),
            why,
        };
        let mut magic = [0u8; 8];
        file.read_exact_at(&mut magic, 0)
            .map_err(|_| corrupt("too short to be a payload store".into()))?;
        if &magic != MAGIC {
            return Err(corrupt("not a cairn payload store (bad magic)".into()));
        }
        let start = trusted_end.max(MAGIC.len() as u64);
        if start > len {
            return Err(corrupt(format!("the payload store is {len} bytes but its index says {start} bytes were written: acknowledged payloads are missing")));
        }
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 20, &mut file);
        let mut found: Vec<Found> = Vec::new();
        let mut good_end = start;
        let mut why = None;
        loop {
            match next_frame(&mut reader, good_end) {
                Ok(None) => break,
                Err(w) => {
                    why = Some(w);
                    break;
                }
                Ok(Some((h, _))) if h.seq >= log_size => {
                    why = Some(format!(
                        "payload of record {}, past the log's end ({log_size} records)",
                        h.seq
                    ));
                    break;
                }
                Ok(Some((h, location))) => {
                    if found.last().is_some_and(|f| f.seq > h.seq) {
                        return Err(corrupt(format!(
                            "the payload frame at offset {good_end} (record {}) is out of order",
                            h.seq
                        )));
                    }
                    good_end = location.end();
                    found.push(Found {
                        seq: h.seq,
                        name: h.name,
                        location,
                    });
                }
            }
        }
        drop(reader);
        let mut torn = None;
        if good_end < len {
            let why = why.unwrap_or_else(|| "unreadable frame".into());
            let cut = len - good_end;
            if cut > MAX_TAIL_BYTES {
                return Err(corrupt(format!("damage at offset {good_end} ({why}) with {cut} bytes after it: too much to be a torn write; refusing to cut")));
            }
            file.set_len(good_end)
                .and_then(|_| file.sync_all())
                .map_err(io)?;
            torn = Some(CutTail {
                offset: good_end,
                bytes: cut,
                why,
            });
            len = good_end;
        }
        Ok(OpenedStore {
            store: PayloadStore {
                path: path.into(),
                file,
                len,
            },
            found,
            torn,
        })
    }

    /// Appends payloads, in sequence order, as one write and one
    /// `fdatasync`. Returns each one's location. On error nothing may be
    /// assumed durable.
    pub fn append(&mut self, payloads: &[NewPayload]) -> Result<Vec<Location>> {
        let mut buf = Vec::with_capacity(payloads.iter().map(NewPayload::frame_len).sum());
        let mut locations = Vec::with_capacity(payloads.len());
        let mut header = Vec::new();
        for p in payloads {
            check_name(p.name)?;
            let body_len = SALT + p.bytes.len();
            if body_len > MAX_PAYLOAD_BYTES {
                return Err(Error::TooLarge {
                    what: "payload",
                    size: p.bytes.len(),
                    limit: MAX_PAYLOAD_BYTES - SALT,
                });
            }
            header.clear();
            encode_header(p.seq, p.stored_at, body_len as u32, p.name, &mut header);
            locations.push(Location {
                offset: self.len + buf.len() as u64,
                stored_at: p.stored_at,
                header_len: header.len() as u16,
                body_len: body_len as u32,
                state: BodyState::Intact,
            });
            buf.extend_from_slice(&(header.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
            buf.extend_from_slice(&header);
            let mut crc = crc32fast::Hasher::new();
            crc.update(p.salt);
            crc.update(p.bytes);
            buf.extend_from_slice(&crc.finalize().to_le_bytes());
            buf.extend_from_slice(p.salt);
            buf.extend_from_slice(p.bytes);
        }
        self.file
            .write_all_at(&buf, self.len)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += buf.len() as u64;
        Ok(locations)
    }

    /// Reads the payload of record `seq` named `name` at `loc`: its salt
    /// and bytes, or `None` if it was erased.
    pub fn read(
        &self,
        seq: u64,
        name: &str,
        loc: &Location,
    ) -> Result<Option<([u8; 32], Vec<u8>)>> {
        if loc.state == BodyState::Erased {
            return Ok(None);
        }
        let damaged = |why: &str| self.corrupt(seq, name, loc, why);
        if loc.end() > self.len {
            return Err(damaged("beyond the end of the store"));
        }
        let mut frame = vec![0u8; (loc.end() - loc.offset) as usize];
        self.file
            .read_exact_at(&mut frame, loc.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        let (h, found) = next_frame(&mut frame.as_slice(), loc.offset)
            .ok()
            .flatten()
            .ok_or_else(|| damaged("the frame is damaged"))?;
        if h.seq != seq || h.name != name || found.end() != loc.end() {
            return Err(damaged("the frame there is another payload's"));
        }
        match found.state {
            BodyState::Erased => Ok(None),
            BodyState::Damaged => Err(damaged("the payload is damaged")),
            BodyState::Intact => {
                let body = &frame[frame.len() - loc.body_len as usize..];
                let mut salt = [0u8; SALT];
                salt.copy_from_slice(&body[..SALT]);
                Ok(Some((salt, body[SALT..].to_vec())))
            }
        }
    }

    /// Erases the bodies of the payloads `(seq, name, location)`: checks
    /// that each frame's header is that payload's, then punches holes where
    /// the filesystem can and writes zeros where it cannot, then `fsync`s
    /// (a punched hole is a metadata change). Refuses, erasing nothing more,
    /// at a frame that is not the one named.
    pub fn erase(&mut self, payloads: &[(u64, &str, Location)]) -> Result<()> {
        use nix::fcntl::{fallocate, FallocateFlags};
        let io = |e| Error::io(&self.path, e);
        let zeros = vec![0u8; 1 << 16];
        for (seq, name, loc) in payloads {
            self.check_header(*seq, name, loc)?;
            let (start, len) = (loc.body_offset(), u64::from(loc.body_len));
            let punched = fallocate(
                self.file.as_raw_fd(),
                FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE,
                start as i64,
                len as i64,
            );
            if punched.is_err() {
                let mut at = start;
                while at < start + len {
                    let n = zeros.len().min((start + len - at) as usize);
                    self.file.write_all_at(&zeros[..n], at).map_err(io)?;
                    at += n as u64;
                }
            }
        }
        self.file.sync_all().map_err(io)
    }

    /// Checks that the frame at `loc` holds the header of payload `name` of
    /// record `seq`, with the lengths `loc` gives.
    fn check_header(&self, seq: u64, name: &str, loc: &Location) -> Result<()> {
        let wrong = |why: &str| self.corrupt(seq, name, loc, why);
        if loc.end() > self.len {
            return Err(wrong("beyond the end of the store"));
        }
        let mut h = vec![0u8; PREFIX + loc.header_len as usize];
        self.file
            .read_exact_at(&mut h, loc.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        let crc = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default());
        let header = &h[PREFIX..];
        let ok = u32::from_le_bytes(h[..4].try_into().unwrap_or_default()) as usize == header.len()
            && crc32fast::hash(header) == crc
            && parse_header(header)
                .is_some_and(|p| p.seq == seq && p.name == name && p.body_len == loc.body_len);
        if ok {
            Ok(())
        } else {
            Err(wrong("the frame there is not this payload's"))
        }
    }

    /// What is wrong with payload `name` of record `seq` at `loc`.
    fn corrupt(&self, seq: u64, name: &str, loc: &Location, why: &str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            why: format!(
                "payload {name:?} of record {seq} at offset {}: {why}",
                loc.offset
            ),
        }
    }

    /// The store's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the store holds no frames.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &mut PayloadStore, seq: u64, name: &str, bytes: &[u8]) -> Location {
        s.append(&[NewPayload {
            seq,
            name,
            stored_at: 1_700_000_000,
            salt: &[seq as u8; 32],
            bytes,
        }])
        .unwrap()[0]
    }

    #[test]
    fn stores_reads_erases_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("payloads.store");
        let mut s = PayloadStore::open(&p, 0, 10).unwrap().store;
        let a = put(&mut s, 1, "prompt", b"the secret prompt");
        let b = put(&mut s, 2, "output", b"Paris");
        assert_eq!(
            s.read(1, "prompt", &a).unwrap().unwrap(),
            ([1; 32], b"the secret prompt".to_vec())
        );
        assert!(matches!(
            s.read(2, "prompt", &b),
            Err(Error::Corrupt { .. })
        ));
        assert!(
            s.erase(&[(2, "output", a)]).is_err(),
            "not that payload's frame"
        );
        s.erase(&[(1, "prompt", a)]).unwrap();
        assert!(s.read(1, "prompt", &a).unwrap().is_none());
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"), "erased on disk");
        drop(s);
        // A full rescan finds both: one erased, one intact.
        let o = PayloadStore::open(&p, 0, 10).unwrap();
        assert!(o.torn.is_none());
        let states: Vec<_> = o.found.iter().map(|f| (f.seq, f.location.state)).collect();
        assert_eq!(states, [(1, BodyState::Erased), (2, BodyState::Intact)]);
        assert_eq!(o.found[1].location, b);
    }

    #[test]
    fn a_torn_tail_and_payloads_past_the_log_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("payloads.store");
        let mut s = PayloadStore::open(&p, 0, 10).unwrap().store;
        let a = put(&mut s, 3, "prompt", b"kept");
        put(&mut s, 4, "prompt", b"never acknowledged");
        let full = s.len();
        drop(s);
        // The log holds records 0..4: record 4's payload is past its end.
        let o = PayloadStore::open(&p, a.end(), 4).unwrap();
        let torn = o.torn.clone().unwrap();
        assert_eq!((torn.offset, torn.bytes), (a.end(), full - a.end()));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["payloads.store"], "no copy of cut payloads is kept");
        assert!(torn.why.contains("past the log's end"), "{}", torn.why);
        assert_eq!(o.store.len(), a.end());
        drop(o);
        // A half-written frame.
        let f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all_at(&[40, 0, 0, 0, 1, 2], a.end()).unwrap();
        let o = PayloadStore::open(&p, 0, 10).unwrap();
        assert_eq!(o.found.len(), 1);
        assert_eq!(o.torn.unwrap().bytes, 6);
    }

    #[test]
    fn damage_is_reported_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("payloads.store");
        let mut s = PayloadStore::open(&p, 0, 10).unwrap().store;
        let a = put(&mut s, 1, "prompt", b"bytes that rot");
        put(&mut s, 2, "prompt", b"after");
        drop(s);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"R", a.end() - 3).unwrap();
        let o = PayloadStore::open(&p, 0, 10).unwrap();
        assert!(o.torn.is_none());
        assert_eq!(o.found[0].location.state, BodyState::Damaged);
        assert!(matches!(
            o.store.read(1, "prompt", &a),
            Err(Error::Corrupt { .. })
        ));
        drop(o);
        // A damaged header in the middle cannot be skipped over, and more
        // than a group lies after it: refused, not cut.
        let mut s = PayloadStore::open(&p, 0, 10).unwrap().store;
        let big = vec![7u8; MAX_PAYLOAD_BYTES - SALT];
        for seq in 3..6 {
            put(&mut s, seq, "output", &big);
        }
        drop(s);
        f.write_all_at(&[0xff], a.offset + 9).unwrap();
        assert!(matches!(
            PayloadStore::open(&p, 0, 10),
            Err(Error::Corrupt { .. })
        ));
        std::fs::write(&p, b"CAIRNJ1\n").unwrap();
        assert!(matches!(
            PayloadStore::open(&p, 0, 10),
            Err(Error::Corrupt { .. })
        ));
    }
}
