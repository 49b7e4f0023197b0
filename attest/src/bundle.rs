//! Export bundles: a directory a stranger verifies offline with nothing but
//! the identity key's published fingerprint (format in `FORMAT.md` §9).
//!
//! A bundle holds the log up to one signed checkpoint: the records journal
//! cut at the checkpoint's size, the checkpoints up to it, that checkpoint
//! alone, a manifest, a README for whoever finds the stick, and
//! `SHA256SUMS` over every other file. It is written into a hidden
//! `.partial` directory, each file synced, and renamed into place last, so a
//! failed export (missing, read-only or full target) leaves nothing that
//! looks like a bundle.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::journal::{encode_frame, sync_parent, FRAME_HEADER, MAGIC};
use crate::keyring::KeySet;
use crate::ledger::{CHECKPOINTS_JOURNAL, RECORDS_JOURNAL};
use crate::merkle::{self, Frontier, Hash, MemoryTree};
use crate::verify::{verify_log, Finding, LogBytes, Options, Prefix, Subject};

/// The manifest's file name.
pub const MANIFEST: &str = "bundle.json";
/// The checksum list's file name (`sha256sum` format).
pub const SUMS: &str = "SHA256SUMS";
/// The exported checkpoint alone, as a signed note.
pub const CHECKPOINT: &str = "checkpoint";
/// The RFC 3161 timestamp request for the exported checkpoint.
pub const TIMESTAMP_REQUEST: &str = "checkpoint.tsq";
/// The note for a human who finds the bundle.
pub const README: &str = "README.txt";
/// The browser verifier, when the exporter has it (`attest/web`).
pub const VERIFIER: &str = "verify.html";
/// Incremental bundles: record 0.
pub const GENESIS: &str = "genesis";
/// Incremental bundles: the checkpoint they continue.
pub const PREVIOUS_CHECKPOINT: &str = "previous-checkpoint";
/// Incremental bundles: the compact range of the records before them.
pub const FRONTIER: &str = "frontier";
/// Incremental bundles: the inclusion proof of their first stored record.
pub const PREDECESSOR_PROOF: &str = "predecessor.proof";
/// Incremental bundles: the RFC 9162 consistency proof from the previous
/// checkpoint to the exported one.
pub const CONSISTENCY_PROOF: &str = "consistency.proof";

/// How to export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions<'a> {
    /// The Unix time, for the name and the manifest.
    pub now: u64,
    /// The browser verifier page, copied into the bundle as `verify.html`.
    pub verifier: Option<&'a [u8]>,
    /// Continue the export of this size (incremental); none: full.
    pub from: Option<u64>,
    /// Further files (the daemon's TPM quote over the exported checkpoint),
    /// listed in `SHA256SUMS` like the rest: a plain name that is none of
    /// the bundle's own.
    pub attachments: &'a [(&'a str, &'a [u8])],
}
/// The manifest's `format` value.
pub const FORMAT: &str = "cairn-export/v1";

/// The manifest (`bundle.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// Records the bundle vouches for: `0 … records-1`, the exported
    /// checkpoint's size.
    pub records: u64,
    /// The first record it holds in full: 0 for a full bundle, `F` for an
    /// incremental one continuing an export of size `F`.
    #[serde(default)]
    pub from: u64,
    /// The exported checkpoint's Merkle root, base64 as in the checkpoint.
    pub root: String,
    /// SHA-256 fingerprint of the identity key, hex.
    pub identity_fingerprint: String,
    /// When the bundle was written, seconds since the Unix epoch.
    pub created_unix: u64,
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// SHA-256 of its `SHA256SUMS` file, hex: one digest for the whole
    /// bundle.
    pub sums_sha256: String,
}

/// The log of `log` cut at a checkpoint — the one of `size` records, or
/// the last one: that checkpoint's entries and every checkpoint up to it
/// (an incremental bundle keeps its prefix). Damage past the cut (a write
/// in progress in a running daemon's journals) is left out; damage before
/// it is kept. The checkpoint is parsed, not verified: verify the cut.
pub fn cut_at_checkpoint<'a>(
    log: &LogBytes<'a>,
    size: Option<u64>,
) -> Result<(LogBytes<'a>, Checkpoint)> {
    let (k, cp) = log
        .checkpoints
        .iter()
        .enumerate()
        .rev()
        .find_map(|(k, c)| {
            let note = crate::note::Note::parse(c.bytes).ok()?;
            let cp = Checkpoint::parse_text(note.text).ok()?;
            size.is_none_or(|s| s == cp.size).then_some((k, cp))
        })
        .ok_or_else(|| {
            Error::Invalid(match size {
                None => "the log has no checkpoint yet".into(),
                Some(s) => format!("the log has no checkpoint of size {s}"),
            })
        })?;
    // The sequence number of the first stored entry (an incremental
    // bundle's predecessor).
    let base = log
        .prefix
        .as_ref()
        .and_then(|p| checkpoint_size(p.checkpoint))
        .map_or(0, |f| f.saturating_sub(1));
    let held = base + log.entries.len() as u64;
    if cp.size > held || cp.size <= base {
        return Err(Error::Invalid(format!(
            "the checkpoint covers {} records but the records journal holds records {base} to {}",
            cp.size,
            held.saturating_sub(1)
        )));
    }
    let n = usize::try_from(cp.size - base).unwrap_or(usize::MAX);
    let end_of = |items: &[crate::verify::Stored<'_>], n: usize| {
        items[..n]
            .last()
            .map_or(0, |s| s.offset + (FRAME_HEADER + s.bytes.len()) as u64)
    };
    let records_end = end_of(&log.entries, n);
    let checkpoints_end = end_of(&log.checkpoints, k + 1);
    let damage = log
        .damage
        .iter()
        .filter(|f| match &f.subject {
            Subject::Storage { file, offset } if file == RECORDS_JOURNAL => *offset < records_end,
            Subject::Storage { file, offset } if file == CHECKPOINTS_JOURNAL => {
                *offset < checkpoints_end
            }
            _ => true,
        })
        .cloned()
        .collect();
    Ok((
        LogBytes {
            entries: log.entries[..n].to_vec(),
            checkpoints: log.checkpoints[..=k].to_vec(),
            damage,
            prefix: log.prefix.clone(),
        },
        cp,
    ))
}

/// Writes a bundle of `log` (a ledger's journals) up to its last checkpoint
/// into a new directory inside `parent`, named
/// `cairn-export-SIZE-TIME-ROOT` (`ROOT`: the first 8 hex digits of the
/// checkpoint's root),
/// after verifying that part of the log: an export of a log that does not
/// verify is refused, naming the first problem. `now` is the Unix time.
///
/// `publish` runs once every file is written and synced, before the bundle
/// gets its name (the daemon records the export there); if it fails, the
/// bundle is removed and its error returned.
///
/// With `opts.from` = `F`, the bundle is incremental (FORMAT.md §9): it
/// holds records `F-1 … N-1` and the prefix that ties them to the
/// checkpoint of size `F`; only they are verified (and the first `F`
/// records hashed), so an export costs what was added since.
pub fn export(
    log: &LogBytes<'_>,
    parent: &Path,
    opts: &ExportOptions<'_>,
    publish: impl FnOnce(&Exported) -> Result<()>,
) -> Result<Exported> {
    let meta = std::fs::metadata(parent).map_err(|e| Error::io(parent, e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory",
            parent.display()
        )));
    }
    let (cut, cp) = cut_at_checkpoint(log, None)
        .map_err(|e| Error::Invalid(format!("{e}: nothing to export")))?;
    let prefix = match opts.from {
        Some(f) => Some(PrefixFiles::of(&cut, f)?),
        None => None,
    };
    let part = match &prefix {
        Some(p) => p.continuation(&cut)?,
        None => cut,
    };
    let report = verify_log(&part, &Options::default());
    if let Some(f) = report.findings.first() {
        return Err(Error::Invalid(format!(
            "the ledger does not verify ({}: {}); run `cairn verify` on it; nothing exported",
            f.subject, f.why
        )));
    }
    let genesis = Entry::parse(match &prefix {
        Some(p) => &p.genesis,
        None => part.entries[0].bytes,
    })?;
    let keys = KeySet::from_genesis(&genesis.record.body)?;
    let now = opts.now;
    let manifest = Manifest {
        format: FORMAT.into(),
        origin: cp.origin.clone(),
        records: cp.size,
        from: prefix.as_ref().map_or(0, |p| p.size),
        root: base64::engine::general_purpose::STANDARD.encode(cp.root),
        identity_fingerprint: keys.identity.fingerprint(),
        created_unix: now,
    };
    let name = format!(
        "cairn-export-{}-{now}-{}",
        cp.size,
        &hex::encode(cp.root)[..8]
    );
    let dir = parent.join(&name);
    if dir.exists() {
        return Err(Error::Invalid(format!("{} already exists", dir.display())));
    }
    let partial = parent.join(format!(".{name}.partial"));
    let mut extra: Vec<(&str, Vec<u8>)> = prefix.as_ref().map_or_else(Vec::new, PrefixFiles::files);
    if let Some(page) = opts.verifier {
        extra.push((VERIFIER, page.to_vec()));
    }
    for (name, bytes) in opts.attachments {
        let own = [
            RECORDS_JOURNAL,
            CHECKPOINTS_JOURNAL,
            CHECKPOINT,
            TIMESTAMP_REQUEST,
            MANIFEST,
            README,
            SUMS,
        ];
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || own.contains(name)
            || extra.iter().any(|(n, _)| n == name)
        {
            return Err(Error::Invalid(format!(
                "cannot attach {name:?} to a bundle: not a plain name, or the name of one of its own files"
            )));
        }
        extra.push((name, bytes.to_vec()));
    }
    let written = write_files(&partial, &part, &manifest, extra).and_then(|sums_sha256| {
        let exported = Exported {
            dir: dir.clone(),
            manifest,
            sums_sha256,
        };
        publish(&exported)?;
        std::fs::rename(&partial, &dir).map_err(|e| Error::io(&dir, e))?;
        sync_parent(&dir)?;
        Ok(exported)
    });
    if written.is_err() {
        // Best effort: a half-written bundle must not stay behind.
        let _ = std::fs::remove_dir_all(&partial);
    }
    written
}

/// The prefix of an incremental bundle, owned: what ties its records to
/// the checkpoint of the first `size` records.
#[derive(Debug, Clone)]
pub struct PrefixFiles {
    /// `F`: the records the previous checkpoint covers.
    pub size: u64,
    /// Record 0, as stored.
    pub genesis: Vec<u8>,
    /// The signed checkpoint of size `F`.
    pub checkpoint: Vec<u8>,
    /// The compact range of leaves `0 … F-1`.
    pub frontier: Vec<Hash>,
    /// The inclusion proof of leaf `F-1`.
    pub proof: Vec<Hash>,
    /// The consistency proof from size `F` to the exported size.
    pub consistency: Vec<Hash>,
}

impl PrefixFiles {
    /// The prefix for continuing the export of size `f` of `log` (a full
    /// log cut at its last checkpoint, of size `N`): `0 < f < N` and a
    /// checkpoint of size `f` must be in it.
    fn of(log: &LogBytes<'_>, f: u64) -> Result<Self> {
        let n = log.entries.len() as u64;
        if f == 0 || f >= n {
            return Err(Error::Invalid(format!(
                "cannot continue an export of {f} records: the log's last checkpoint covers {n}"
            )));
        }
        let checkpoint = log
            .checkpoints
            .iter()
            .find(|c| checkpoint_size(c.bytes) == Some(f))
            .ok_or_else(|| Error::Invalid(format!("the log has no checkpoint of size {f}")))?
            .bytes
            .to_vec();
        let leaves: Vec<Hash> = log
            .entries
            .iter()
            .map(|e| merkle::leaf_hash(e.bytes))
            .collect();
        let mut frontier = Frontier::new();
        for leaf in &leaves[..f as usize] {
            frontier.push(*leaf, |_, _, _| {});
        }
        let tree = MemoryTree::from_leaves(leaves);
        Ok(PrefixFiles {
            size: f,
            genesis: log.entries[0].bytes.to_vec(),
            checkpoint,
            frontier: frontier.compact(),
            proof: merkle::inclusion_proof(&tree, f - 1, f)?,
            consistency: merkle::consistency_proof(&tree, f, n)?,
        })
    }

    /// The part of `log` an incremental bundle holds: records `F-1 …` and
    /// the checkpoints after `F`, with this prefix.
    fn continuation<'a>(&'a self, log: &LogBytes<'a>) -> Result<LogBytes<'a>> {
        Ok(LogBytes {
            entries: log.entries[(self.size - 1) as usize..].to_vec(),
            checkpoints: log
                .checkpoints
                .iter()
                .filter(|c| checkpoint_size(c.bytes).is_some_and(|s| s > self.size))
                .copied()
                .collect(),
            damage: log.damage.clone(),
            prefix: Some(self.prefix()),
        })
    }

    /// As [`verify_log`] takes it.
    pub fn prefix(&self) -> Prefix<'_> {
        Prefix {
            genesis: crate::verify::Stored {
                bytes: &self.genesis,
                intact: true,
                offset: 0,
            },
            checkpoint: &self.checkpoint,
            frontier: self.frontier.clone(),
            predecessor_proof: self.proof.clone(),
        }
    }

    /// The bundle files holding it.
    fn files(&self) -> Vec<(&'static str, Vec<u8>)> {
        let lines = |hashes: &[Hash]| {
            hashes
                .iter()
                .map(|h| format!("{}\n", base64::engine::general_purpose::STANDARD.encode(h)))
                .collect::<String>()
                .into_bytes()
        };
        vec![
            (GENESIS, self.genesis.clone()),
            (PREVIOUS_CHECKPOINT, self.checkpoint.clone()),
            (FRONTIER, lines(&self.frontier)),
            (PREDECESSOR_PROOF, lines(&self.proof)),
            (CONSISTENCY_PROOF, lines(&self.consistency)),
        ]
    }

    /// The prefix files of the bundle in `dir`, if its manifest says it is
    /// incremental (a missing prefix file is then an error).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| Error::io(&path, e))
        };
        // A manifest that cannot be read is a finding of [`check`]; the
        // bundle is then verified as a full one.
        let Some(manifest) = std::fs::read(dir.join(MANIFEST))
            .ok()
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        else {
            return Ok(None);
        };
        if manifest.from == 0 {
            return Ok(None);
        }
        let hashes = |name: &'static str| -> Result<Vec<Hash>> {
            let text =
                String::from_utf8(read(name)?).map_err(|_| Error::malformed(name, "not UTF-8"))?;
            text.lines()
                .map(|l| {
                    base64::engine::general_purpose::STANDARD
                        .decode(l)
                        .ok()
                        .and_then(|b| Hash::try_from(b).ok())
                        .ok_or_else(|| {
                            Error::malformed(name, format!("{l:?} is not a base64 hash"))
                        })
                })
                .collect()
        };
        Ok(Some(PrefixFiles {
            size: manifest.from,
            genesis: read(GENESIS)?,
            checkpoint: read(PREVIOUS_CHECKPOINT)?,
            frontier: hashes(FRONTIER)?,
            proof: hashes(PREDECESSOR_PROOF)?,
            consistency: hashes(CONSISTENCY_PROOF)?,
        }))
    }
}

/// What a checkpoint note declares, if it parses (signatures unchecked).
fn checkpoint_text(note: &[u8]) -> Option<Checkpoint> {
    let n = crate::note::Note::parse(note).ok()?;
    Checkpoint::parse_text(n.text).ok()
}

/// The size a checkpoint note declares, if it parses.
fn checkpoint_size(note: &[u8]) -> Option<u64> {
    checkpoint_text(note).map(|c| c.size)
}

/// The size of the last export recorded in `log` (a `ledger.export`
/// record, FORMAT.md §3) that an incremental bundle can continue: below
/// the log's last checkpoint, with a checkpoint of its own, and not
/// declared failed by a later `ledger.export_failed` (its bundle never got
/// its name, so nothing would hold the records before it).
pub fn previous_export(log: &LogBytes<'_>) -> Option<u64> {
    let sizes: Vec<u64> = log
        .checkpoints
        .iter()
        .filter_map(|c| checkpoint_size(c.bytes))
        .collect();
    let last = *sizes.last()?;
    let mut failed = std::collections::HashSet::new();
    log.entries.iter().rev().find_map(|e| {
        let r = Entry::parse(e.bytes).ok()?.record;
        match r.kind.as_str() {
            "ledger.export_failed" => {
                failed.extend(r.reference.map(|x| x.seq));
                None
            }
            "ledger.export" if !failed.contains(&r.seq) => {
                let f = r.body["records"].as_u64()?;
                (f > 0 && f < last && sizes.contains(&f)).then_some(f)
            }
            _ => None,
        }
    })
}

/// Creates `dir` and writes every bundle file into it, `SHA256SUMS` last;
/// returns the SHA-256 of `SHA256SUMS`, hex.
fn write_files(
    dir: &Path,
    log: &LogBytes<'_>,
    manifest: &Manifest,
    extra: Vec<(&str, Vec<u8>)>,
) -> Result<String> {
    std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let last_checkpoint = log.checkpoints.last().map_or(&[][..], |c| c.bytes);
    let mut manifest_json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Invalid(format!("manifest: {e}")))?;
    manifest_json.push(b'\n');
    let tsq = crate::anchor::timestamp_request(last_checkpoint, crate::anchor::random_nonce()?)?;
    let journals = [
        (RECORDS_JOURNAL, &log.entries),
        (CHECKPOINTS_JOURNAL, &log.checkpoints),
    ];
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (CHECKPOINT, last_checkpoint.to_vec()),
        (TIMESTAMP_REQUEST, tsq),
        (MANIFEST, manifest_json),
        (
            README,
            readme(manifest, extra.iter().any(|(n, _)| *n == VERIFIER)).into_bytes(),
        ),
    ];
    files.extend(extra);
    let mut sums = String::new();
    for (name, items) in journals {
        // Streamed frame by frame: a log of any size takes little memory.
        let digest = write_synced(&dir.join(name), |out| {
            out.write_all(MAGIC)?;
            let mut frame = Vec::new();
            for s in items.iter() {
                frame.clear();
                encode_frame(s.bytes, &mut frame);
                out.write_all(&frame)?;
            }
            Ok(())
        })?;
        sums.push_str(&format!("{digest}  {name}\n"));
    }
    for (name, bytes) in &files {
        let digest = write_synced(&dir.join(name), |out| out.write_all(bytes))?;
        sums.push_str(&format!("{digest}  {name}\n"));
    }
    write_synced(&dir.join(SUMS), |out| out.write_all(sums.as_bytes()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    Ok(hex::encode(Sha256::digest(sums.as_bytes())))
}

/// Creates `path` (it must not exist), lets `write` fill it through a
/// buffer, syncs it, and returns the SHA-256 of what was written, hex.
fn write_synced(
    path: &Path,
    write: impl FnOnce(&mut HashingWriter) -> std::io::Result<()>,
) -> Result<String> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut out = HashingWriter {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    };
    write(&mut out)
        .and_then(|()| out.inner.flush())
        .map_err(|e| Error::io(path, e))?;
    out.inner
        .get_ref()
        .sync_all()
        .map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(out.hash.finalize()))
}

/// A buffered file that hashes what goes through it.
struct HashingWriter {
    inner: std::io::BufWriter<File>,
    hash: Sha256,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn readme(m: &Manifest, with_verifier: bool) -> String {
    let browser = if with_verifier {
        format!(
            "Or, without installing anything: open {VERIFIER} (in this directory) in\n\
             a web browser and give it this directory. It works offline.\n\
             \n"
        )
    } else {
        String::new()
    };
    format!(
        "This directory is an export of a cairn audit log: signed records of what an AI\n\
         appliance did, hash-chained and committed to by a signed Merkle checkpoint.\n\
         \n\
         Log:                  {origin}\n\
         Records:              {records} (sequence numbers 0 to {last})\n\
         Checkpoint root:      {root} (SHA-256, RFC 6962)\n\
         Identity fingerprint: {fp}\n\
         \n\
         To verify it, with the cairn command line tool:\n\
         \n\
         \x20   cairn verify . --key {fp}\n\
         \n\
         {browser}\
         Compare the fingerprint with the one the appliance's operator published\n\
         elsewhere (a signed letter, a web page, a report): the bundle proves that\n\
         its records were signed by that key and not changed since, so it is only\n\
         as trustworthy as your copy of the fingerprint.\n\
         \n\
         Files: {RECORDS_JOURNAL} (the signed records), {CHECKPOINTS_JOURNAL} (signed\n\
         checkpoints), {CHECKPOINT} (the checkpoint this export stops at), {MANIFEST}\n\
         (this summary as JSON), {SUMS} (checksums of the others: `sha256sum -c {SUMS}`),\n\
         {TIMESTAMP_REQUEST} (an RFC 3161 timestamp request for the checkpoint's SHA-256:\n\
         `openssl ts -query -in {TIMESTAMP_REQUEST} -text` shows it; send it to a timestamp\n\
         authority to anchor the checkpoint in time; an OpenTimestamps client can stamp\n\
         the file `{CHECKPOINT}` itself: `ots stamp {CHECKPOINT}`).\n\
         The byte formats are specified in cairn's attest/FORMAT.md, so a verifier\n\
         can be written without cairn.\n",
        origin = m.origin,
        records = m.records,
        last = m.records.saturating_sub(1),
        root = m.root,
        fp = m.identity_fingerprint,
    )
}

/// Whether `dir` looks like a bundle (it has a `SHA256SUMS`).
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(SUMS).is_file()
}

/// The checks a bundle adds to [`verify_log`]'s (whose `report` for the
/// bundle's journals is given): `SHA256SUMS` lists every other file and
/// every checksum holds; the manifest parses and agrees with the log (its
/// origin, size, root and identity); the `checkpoint` file is the last
/// checkpoint of the journal, and it covers every record. Problems are
/// returned as findings on the files.
pub fn check(dir: &Path, report: &crate::verify::Report) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut problem = |file: &str, why: String| {
        findings.push(Finding {
            subject: Subject::File { file: file.into() },
            why,
        })
    };
    let read = |name: &str| std::fs::read(dir.join(name));
    match read(SUMS) {
        Err(e) => problem(SUMS, format!("cannot be read: {e}")),
        Ok(sums) => {
            let listed = check_sums(dir, &sums, &mut problem);
            match std::fs::read_dir(dir) {
                Err(e) => problem(".", format!("cannot be listed: {e}")),
                Ok(entries) => {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name != SUMS && !listed.contains(&name) {
                            problem(&name, format!("is not listed in {SUMS}"));
                        }
                    }
                }
            }
        }
    }
    let manifest: Option<Manifest> = match read(MANIFEST) {
        Err(e) => {
            problem(MANIFEST, format!("cannot be read: {e}"));
            None
        }
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Err(e) => {
                problem(MANIFEST, format!("is not a bundle manifest: {e}"));
                None
            }
            Ok(m) if m.format != FORMAT => {
                problem(
                    MANIFEST,
                    format!("format {:?}, expected {FORMAT:?}", m.format),
                );
                None
            }
            Ok(m) => Some(m),
        },
    };
    if let Some(m) = manifest {
        let root_hex = base64::engine::general_purpose::STANDARD
            .decode(&m.root)
            .map(hex::encode)
            .unwrap_or_default();
        let fp = report.identity.as_ref().map(|(_, fp)| fp.as_str());
        if report.origin.as_deref() != Some(m.origin.as_str())
            || report.records != m.records
            || report.from != m.from
            || report.root != root_hex
            || fp != Some(m.identity_fingerprint.as_str())
        {
            problem(
                MANIFEST,
                format!(
                    "says log {} with {} records from {}, root {} and identity {}; the journals hold log {} with {} records from {}, root {} and identity {}",
                    m.origin,
                    m.records,
                    m.from,
                    m.root,
                    m.identity_fingerprint,
                    report.origin.as_deref().unwrap_or("?"),
                    report.records,
                    report.from,
                    report.root,
                    fp.unwrap_or("?"),
                ),
            );
        }
    }
    if report.from > 0 {
        if let Err(why) = check_consistency(dir, report) {
            problem(CONSISTENCY_PROOF, why);
        }
    }
    if report.checkpointed_size != report.records {
        problem(
            CHECKPOINTS_JOURNAL,
            format!(
                "the last valid checkpoint covers {} of the bundle's {} records",
                report.checkpointed_size, report.records
            ),
        );
    }
    match (read(CHECKPOINT), read(CHECKPOINTS_JOURNAL)) {
        (Ok(alone), Ok(journal)) => {
            let last = crate::ledger_files::log_from_journals(&[], &journal)
                .checkpoints
                .last()
                .map(|c| c.bytes.to_vec());
            if last.as_deref() != Some(&alone[..]) {
                problem(
                    CHECKPOINT,
                    format!("is not the last checkpoint in {CHECKPOINTS_JOURNAL}"),
                );
            }
        }
        (Err(e), _) => problem(CHECKPOINT, format!("cannot be read: {e}")),
        (_, Err(e)) => problem(CHECKPOINTS_JOURNAL, format!("cannot be read: {e}")),
    }
    findings
}

/// Checks an incremental bundle's RFC 9162 consistency proof from its
/// previous checkpoint to the log's root.
fn check_consistency(
    dir: &Path,
    report: &crate::verify::Report,
) -> std::result::Result<(), String> {
    let prefix = PrefixFiles::read(dir)
        .map_err(|e| e.to_string())?
        .ok_or("the manifest does not say the bundle is incremental")?;
    let old = checkpoint_text(&prefix.checkpoint)
        .ok_or("the previous checkpoint does not parse")?
        .root;
    let new: Hash = hex::decode(&report.root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or("the log's root is unknown")?;
    if merkle::verify_consistency(prefix.size, report.records, &old, &new, &prefix.consistency) {
        Ok(())
    } else {
        Err(format!(
            "does not prove the tree of {} records extends the previous checkpoint's of {}",
            report.records, prefix.size
        ))
    }
}

/// Checks each `HEX  NAME` line of `sums`; returns the names listed.
fn check_sums(dir: &Path, sums: &[u8], problem: &mut impl FnMut(&str, String)) -> Vec<String> {
    let mut listed = Vec::new();
    let Ok(text) = std::str::from_utf8(sums) else {
        problem(SUMS, "is not UTF-8".into());
        return listed;
    };
    for (i, line) in text.lines().enumerate() {
        let Some((hash, name)) = line.split_once("  ") else {
            problem(SUMS, format!("line {} is not `HASH  NAME`", i + 1));
            continue;
        };
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            problem(
                SUMS,
                format!("line {} names {name:?}, not a file of the bundle", i + 1),
            );
            continue;
        }
        listed.push(name.to_string());
        match std::fs::read(dir.join(name)) {
            Err(e) => problem(name, format!("listed in {SUMS} but cannot be read: {e}")),
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) != hash.to_ascii_lowercase() => {
                problem(name, format!("does not match its SHA-256 in {SUMS}"))
            }
            Ok(_) => {}
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger_files::LedgerFiles;
    use crate::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};

    #[test]
    fn attachments_are_listed_in_the_sums_and_may_not_replace_bundle_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        {
            let keys = Keyring::create(&state.join("keys"), "cairn.example/log").unwrap();
            let l = Ledger::open(&state, keys, LedgerConfig::default()).unwrap();
            let actor = Actor::System { name: "t".into() };
            l.append(RecordDraft::new("t", actor, serde_json::json!({})))
                .unwrap();
        }
        let files = LedgerFiles::open(&state).unwrap();
        let log = files.log_bytes();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        for name in [SUMS, CHECKPOINT, "../x", ".hidden", ""] {
            let opts = ExportOptions {
                attachments: &[(name, b"x")],
                ..Default::default()
            };
            assert!(export(&log, &out, &opts, |_| Ok(())).is_err(), "{name:?}");
        }
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing left");
        let opts = ExportOptions {
            attachments: &[("tpm-quote.json", b"{}\n")],
            ..Default::default()
        };
        let e = export(&log, &out, &opts, |_| Ok(())).unwrap();
        assert_eq!(
            std::fs::read(e.dir.join("tpm-quote.json")).unwrap(),
            b"{}\n"
        );
        let sums = std::fs::read_to_string(e.dir.join(SUMS)).unwrap();
        assert!(sums.contains("  tpm-quote.json\n"), "{sums}");
        let report = verify_log(
            &LedgerFiles::open(&e.dir).unwrap().log_bytes(),
            &Options::default(),
        );
        assert!(check(&e.dir, &report).is_empty());
    }

    #[test]
    fn an_export_declared_failed_is_not_continued() {
        let dir = tempfile::tempdir().unwrap();
        let actor = || Actor::System { name: "t".into() };
        let keys = Keyring::create(&dir.path().join("keys"), "cairn.example/log").unwrap();
        let l = Ledger::open(dir.path(), keys, LedgerConfig::default()).unwrap();
        let export = |records: u64| {
            let body = serde_json::json!({ "records": records });
            l.append(RecordDraft::new("ledger.export", actor(), body))
                .unwrap()
        };
        l.append(RecordDraft::new("t", actor(), serde_json::json!({})))
            .unwrap();
        l.checkpoint().unwrap(); // size 2
        export(2);
        l.checkpoint().unwrap(); // size 3
        let second = export(3);
        l.checkpoint().unwrap(); // size 4
        let previous = |l: &Ledger| {
            let files = LedgerFiles::open(l.dir()).unwrap();
            previous_export(&files.log_bytes())
        };
        assert_eq!(previous(&l), Some(3));
        let mut failed = RecordDraft::new(
            "ledger.export_failed",
            actor(),
            serde_json::json!({ "bundle": "b", "reason": "pulled" }),
        );
        failed.reference = Some(second.reference());
        l.append(failed).unwrap();
        l.checkpoint().unwrap();
        assert_eq!(previous(&l), Some(2), "the failed export is skipped");
    }
}
