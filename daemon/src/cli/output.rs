//! Where a command's report goes: standard output, or a file written
//! atomically (a temporary file beside it, renamed into place). The file's
//! directory is checked when the command starts, so an unwritable output
//! fails before the work, with a message naming the path.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// An output, opened.
pub(super) enum Output {
    /// Standard output.
    Stdout,
    /// A file, written to `tmp` and renamed to `path`.
    File {
        /// The temporary file beside `path`.
        tmp: tempfile::NamedTempFile,
        /// The file to write.
        path: PathBuf,
    },
}

impl Output {
    /// Opens `out` (standard output when none).
    pub(super) fn open(out: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = out else {
            return Ok(Output::Stdout);
        };
        if path.is_dir() {
            anyhow::bail!("cannot write {}: it is a directory", path.display());
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".cairn-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Output::File {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Writes `bytes` and puts the file in place.
    pub(super) fn write(self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()?;
            }
            Output::File { mut tmp, path } => {
                let what = || format!("cannot write {}", path.display());
                tmp.write_all(bytes).with_context(what)?;
                tmp.as_file().sync_all().with_context(what)?;
                tmp.persist(&path).map_err(|e| e.error).with_context(what)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                    .with_context(what)?;
            }
        }
        Ok(())
    }

    /// The file's path, if it is one.
    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            Output::Stdout => None,
            Output::File { path, .. } => Some(path),
        }
    }
}
