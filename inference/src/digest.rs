//! Model identity: one digest over every file that determines behaviour.
//!
//! The digest is `blake3:<hex>` of a canonical listing with one line per
//! file, sorted by file name (bytewise):
//!
//! ```text
//! <file name>\t<length in bytes>\t<BLAKE3 of the content, lowercase hex>\n
//! ```
//!
//! Only the file name (not the directory) enters the listing, so the same
//! model copied elsewhere keeps its digest. Names must be unique within one
//! listing and must not contain tabs, newlines or other control characters.
//!
//! Files are read in a streaming fashion (fixed-size buffer); a 4 GB weight
//! file is never held in memory. Hashing a large model takes a while, so the
//! per-file BLAKE3 is cached in a small JSON file, keyed by (canonical path,
//! size, modification time in nanoseconds). A cached hash is reused only
//! while size and mtime are unchanged; an edit that keeps both (possible
//! with deliberate `touch -d`) is not noticed, so [`DigestCache::Off`] is
//! there for a full re-hash (an auditor's check). Entries whose mtime is
//! less than [`RACY_WINDOW`] old when hashing starts are not stored, since a
//! write in the same timestamp tick could otherwise go unnoticed.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The cache file's name, beside the model or in the chosen cache directory.
pub const CACHE_FILE: &str = ".cairn-digest-cache.json";

/// Files modified more recently than this are hashed but not cached.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Where (and whether) per-file hashes are cached.
#[derive(Debug, Clone, Default)]
pub enum DigestCache {
    /// `CACHE_FILE` in the directory of the first file (beside the model).
    #[default]
    BesideModel,
    /// `CACHE_FILE` in this directory.
    Dir(PathBuf),
    /// Hash everything, read and write no cache.
    Off,
}

/// One line of the canonical listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDigest {
    /// The file name as it appears in the listing.
    pub name: String,
    /// The file's full path as given.
    pub path: PathBuf,
    /// Length in bytes.
    pub len: u64,
    /// BLAKE3 of the content, lowercase hex.
    pub blake3: String,
    /// Whether the hash came from the cache rather than reading the file.
    pub cached: bool,
}

/// A model's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDigest {
    /// `blake3:<hex>` over the canonical listing.
    pub digest: String,
    /// The listing's lines, sorted by name.
    pub files: Vec<FileDigest>,
}

impl ModelDigest {
    /// The canonical listing the digest is computed over.
    pub fn listing(&self) -> String {
        listing(&self.files)
    }

    /// How many files were actually read (not taken from the cache).
    pub fn hashed_files(&self) -> usize {
        self.files.iter().filter(|f| !f.cached).count()
    }
}

fn listing(files: &[FileDigest]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!("{}\t{}\t{}\n", f.name, f.len, f.blake3));
    }
    s
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    files: BTreeMap<String, CacheEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    size: u64,
    mtime_ns: u128,
    blake3: String,
}

const CACHE_VERSION: u32 = 1;

/// Computes the digest of `files` (weights, tokenizer.json, config.json,
/// tokenizer_config.json, … as the caller lists them; see
/// [`crate::ModelSource::behaviour_files`]).
///
/// A cache that cannot be read is ignored; one that cannot be written is
/// left as it was (a read-only model directory still gets its digest).
pub fn digest_files(files: &[PathBuf], cache: &DigestCache) -> Result<ModelDigest> {
    if files.is_empty() {
        return Err(Error::Request("no files to digest".into()));
    }
    let cache_path = match cache {
        DigestCache::Off => None,
        DigestCache::Dir(d) => Some(d.join(CACHE_FILE)),
        DigestCache::BesideModel => Some(
            files[0]
                .parent()
                .map(|p| p.join(CACHE_FILE))
                .unwrap_or_else(|| PathBuf::from(CACHE_FILE)),
        ),
    };
    let mut stored = cache_path
        .as_deref()
        .and_then(read_cache)
        .unwrap_or_default();
    let started = SystemTime::now();
    let mut changed = false;

    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let name = file_name(path)?;
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::invalid(path, "not a regular file"));
        }
        let size = meta.len();
        let mtime = meta.modified().map_err(|e| Error::io(path, e))?;
        let mtime_ns = mtime
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = std::fs::canonicalize(path)
            .map_err(|e| Error::io(path, e))?
            .to_string_lossy()
            .into_owned();

        let hit = cache_path.is_some()
            && stored
                .files
                .get(&key)
                .is_some_and(|e| e.size == size && e.mtime_ns == mtime_ns);
        let (blake3, cached) = if hit {
            (stored.files[&key].blake3.clone(), true)
        } else {
            let (len, hash) = hash_file(path)?;
            if len != size {
                return Err(Error::invalid(path, "file changed while it was hashed"));
            }
            let old_enough = started
                .duration_since(mtime)
                .is_ok_and(|age| age >= RACY_WINDOW);
            if cache_path.is_some() && old_enough {
                stored.files.insert(
                    key,
                    CacheEntry {
                        size,
                        mtime_ns,
                        blake3: hash.clone(),
                    },
                );
                changed = true;
            }
            (hash, false)
        };
        out.push(FileDigest {
            name,
            path: path.clone(),
            len: size,
            blake3,
            cached,
        });
    }

    out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for w in out.windows(2) {
        if w[0].name == w[1].name {
            return Err(Error::invalid(
                &w[1].path,
                format!("two files named {} in one model", w[1].name),
            ));
        }
    }
    let digest = format!("blake3:{}", blake3::hash(listing(&out).as_bytes()).to_hex());

    if changed {
        if let Some(p) = &cache_path {
            stored.version = CACHE_VERSION;
            write_cache(p, &stored);
        }
    }
    Ok(ModelDigest { digest, files: out })
}

fn file_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid(path, "file name is not UTF-8"))?;
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            path,
            "file name contains a control character",
        ));
    }
    Ok(name.to_string())
}

/// Streams a file through BLAKE3; returns (bytes read, hex hash).
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(&mut file)
        .map_err(|e| Error::io(path, e))?;
    Ok((hasher.count(), hasher.finalize().to_hex().to_string()))
}

fn read_cache(path: &Path) -> Option<CacheFile> {
    let bytes = std::fs::read(path).ok()?;
    let c: CacheFile = serde_json::from_slice(&bytes).ok()?;
    (c.version == CACHE_VERSION).then_some(c)
}

/// Writes the cache atomically (temp file + rename); failures are ignored.
fn write_cache(path: &Path, c: &CacheFile) {
    let Ok(bytes) = serde_json::to_vec_pretty(c) else {
        return;
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(data).unwrap();
        p
    }

    fn age(p: &Path, secs: u64) {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn listing_is_sorted_and_digest_is_over_it() {
        let d = tempfile::tempdir().unwrap();
        let b = write(d.path(), "b.bin", b"bee");
        let a = write(d.path(), "a.json", b"{}");
        let m = digest_files(&[b, a], &DigestCache::Off).unwrap();
        let expect = format!(
            "a.json\t2\t{}\nb.bin\t3\t{}\n",
            blake3::hash(b"{}").to_hex(),
            blake3::hash(b"bee").to_hex()
        );
        assert_eq!(m.listing(), expect);
        assert_eq!(
            m.digest,
            format!("blake3:{}", blake3::hash(expect.as_bytes()).to_hex())
        );
    }

    #[test]
    fn changing_one_byte_changes_the_digest() {
        let d = tempfile::tempdir().unwrap();
        let data = vec![7u8; 300_000];
        let w = write(d.path(), "model.safetensors", &data);
        let c = write(d.path(), "config.json", b"{\"a\":1}");
        let files = [w.clone(), c];
        let before = digest_files(&files, &DigestCache::Off).unwrap();
        let mut changed = data.clone();
        changed[123_456] ^= 1;
        write(d.path(), "model.safetensors", &changed);
        let after = digest_files(&files, &DigestCache::Off).unwrap();
        assert_ne!(before.digest, after.digest);
        // Renaming a file changes the digest too (the name is in the listing).
        let moved = d.path().join("other.safetensors");
        std::fs::rename(&w, &moved).unwrap();
        let renamed = digest_files(&[moved, files[1].clone()], &DigestCache::Off).unwrap();
        assert_ne!(renamed.digest, after.digest);
    }

    #[test]
    fn cache_is_used_while_size_and_mtime_are_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let w = write(d.path(), "w.gguf", b"0123456789");
        let t = write(d.path(), "tokenizer.json", b"{}");
        age(&w, 3600);
        age(&t, 3600);
        let files = [w.clone(), t.clone()];
        let first = digest_files(&files, &DigestCache::BesideModel).unwrap();
        assert_eq!(first.hashed_files(), 2);
        assert!(d.path().join(CACHE_FILE).exists());

        let second = digest_files(&files, &DigestCache::BesideModel).unwrap();
        assert_eq!(second.hashed_files(), 0);
        assert_eq!(second.digest, first.digest);

        // Same size, mtime put back: the cache is trusted (documented limit),
        // which proves the content was not re-read ...
        let mtime = std::fs::metadata(&w).unwrap().modified().unwrap();
        write(d.path(), "w.gguf", b"0123456780");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&w)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let stale = digest_files(&files, &DigestCache::BesideModel).unwrap();
        assert_eq!(stale.digest, first.digest);
        // ... while a full re-hash sees the change,
        let full = digest_files(&files, &DigestCache::Off).unwrap();
        assert_ne!(full.digest, first.digest);
        // and a new mtime invalidates the entry.
        age(&w, 1800);
        let fresh = digest_files(&files, &DigestCache::BesideModel).unwrap();
        assert_eq!(fresh.hashed_files(), 1);
        assert_eq!(fresh.digest, full.digest);
    }

    #[test]
    fn recent_files_are_not_cached_and_cache_dir_is_honoured() {
        let d = tempfile::tempdir().unwrap();
        let c = tempfile::tempdir().unwrap();
        let w = write(d.path(), "w.bin", b"abc");
        let cache = DigestCache::Dir(c.path().to_path_buf());
        digest_files(std::slice::from_ref(&w), &cache).unwrap();
        let again = digest_files(std::slice::from_ref(&w), &cache).unwrap();
        assert_eq!(again.hashed_files(), 1, "a just-written file is racy");
        age(&w, 60);
        digest_files(std::slice::from_ref(&w), &cache).unwrap();
        let cached = digest_files(std::slice::from_ref(&w), &cache).unwrap();
        assert_eq!(cached.hashed_files(), 0);
        assert!(c.path().join(CACHE_FILE).exists());
        assert!(!d.path().join(CACHE_FILE).exists());
    }

    #[test]
    fn corrupt_cache_is_ignored_and_errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        let w = write(d.path(), "w.bin", b"abc");
        write(d.path(), CACHE_FILE, b"not json");
        let m = digest_files(std::slice::from_ref(&w), &DigestCache::BesideModel).unwrap();
        assert_eq!(m.hashed_files(), 1);
        let missing = d.path().join("nope.bin");
        let e = digest_files(&[missing], &DigestCache::Off).unwrap_err();
        assert!(matches!(e, Error::Missing { .. }), "{e}");
        assert!(e.to_string().contains("nope.bin"));
        let dup = d.path().join("sub");
        std::fs::create_dir(&dup).unwrap();
        let w2 = write(&dup, "w.bin", b"x");
        assert!(digest_files(&[w, w2], &DigestCache::Off).is_err());
    }
}
