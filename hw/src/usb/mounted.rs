//! One stick mounted for an export.

use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use nix::sys::statvfs::{statvfs, FsFlags};

use super::{Medium, RemovableMedia, UsbError};

/// A medium mounted by [`Mounted::mount`]. Dropped without
/// [`Mounted::eject`] (an export that failed), it is unmounted if it is
/// still there, and not powered off.
pub struct Mounted<'a> {
    media: &'a dyn RemovableMedia,
    medium: Medium,
    path: PathBuf,
    ejected: bool,
}

/// A mounted filesystem's space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// The filesystem's size in bytes.
    pub total: u64,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

/// What [`Mounted::eject`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejected {
    /// Whether the drive was powered off (some cannot be: then it is only
    /// unmounted, which is as safe to pull).
    pub powered_off: bool,
}

impl<'a> Mounted<'a> {
    /// Mounts `medium` through `media` (or takes it where it is already
    /// mounted).
    pub fn mount(media: &'a dyn RemovableMedia, medium: Medium) -> Result<Self, UsbError> {
        let path = media.mount(&medium)?;
        Ok(Mounted {
            media,
            medium,
            path,
            ejected: false,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The medium.
    pub fn medium(&self) -> &Medium {
        &self.medium
    }

    /// Its space, from statvfs.
    pub fn space(&self) -> Result<Space, UsbError> {
        let s = statvfs(&self.path).map_err(|e| self.io("statvfs", e))?;
        let block = s.fragment_size() as u64;
        Ok(Space {
            free: (s.blocks_available() as u64).saturating_mul(block),
            total: (s.blocks() as u64).saturating_mul(block),
            read_only: s.flags().contains(FsFlags::ST_RDONLY),
        })
    }

    /// Fails unless it is writable with at least `needed` bytes free.
    pub fn check_writable(&self, needed: u64) -> Result<Space, UsbError> {
        let space = self.space()?;
        if space.read_only || self.medium.read_only {
            return Err(UsbError::ReadOnly(self.medium.describe()));
        }
        if space.free < needed {
            return Err(UsbError::Full {
                medium: self.medium.describe(),
                free: space.free,
                needed,
            });
        }
        Ok(space)
    }

    /// Whether the medium is still plugged in (false also when UDisks2
    /// cannot be asked).
    pub fn is_present(&self) -> bool {
        self.media.is_present(&self.medium).unwrap_or(false)
    }

    /// Flushes the whole filesystem (syncfs) and drops the cached pages of
    /// every file under `dir`, so that reading them back reads the medium,
    /// not the page cache.
    pub fn flush_and_forget(&self, dir: &Path) -> Result<(), UsbError> {
        let root = std::fs::File::open(&self.path).map_err(|e| self.io_std(&self.path, e))?;
        nix::unistd::syncfs(root.as_raw_fd()).map_err(|e| self.io("syncfs", e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| self.io_std(dir, e))? {
            let path = entry.map_err(|e| self.io_std(dir, e))?.path();
            let f = std::fs::File::open(&path).map_err(|e| self.io_std(&path, e))?;
            posix_fadvise(f.as_raw_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
                .map_err(|e| self.io("posix_fadvise", e))?;
        }
        Ok(())
    }

    /// Unmounts the medium and powers its drive off, when it can be.
    pub fn eject(mut self) -> Result<Ejected, UsbError> {
        self.ejected = true;
        self.media.unmount(&self.medium)?;
        if !self.medium.can_power_off {
            return Ok(Ejected { powered_off: false });
        }
        self.media.power_off(&self.medium)?;
        Ok(Ejected { powered_off: true })
    }

    fn io(&self, what: &str, e: nix::Error) -> UsbError {
        UsbError::Io(
            format!(
                "{what} on {} ({})",
                self.path.display(),
                self.medium.describe()
            ),
            e.into(),
        )
    }

    fn io_std(&self, path: &Path, e: std::io::Error) -> UsbError {
        UsbError::Io(
            format!("{} ({})", path.display(), self.medium.describe()),
            e,
        )
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.ejected && self.is_present() {
            // Best effort: a failed export leaves the stick unmounted, so it
            // can be pulled out; the error that ended it is the one to see.
            let _ = self.media.unmount(&self.medium);
        }
    }
}
