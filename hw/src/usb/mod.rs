//! USB export media: removable filesystems, found, mounted, unmounted and
//! powered off through UDisks2 on the D-Bus system bus.
//!
//! [`RemovableMedia`] is what an export needs from the sticks plugged in;
//! [`UDisks2`] implements it over `org.freedesktop.UDisks2`. Its real
//! backend is `udisksd` on the system bus; its emulated backend is
//! [`emulator`], a UDisks2 look-alike (`cairn-udisks-emu`) served on a
//! private `dbus-daemon`, whose sticks are size-limited directories that it
//! really mounts, and which fails the way hardware fails (full, read-only,
//! pulled out mid-write). The client cannot tell them apart: only the bus
//! address differs (`DBUS_SYSTEM_BUS_ADDRESS`).
//!
//! [`Mounted`] is one stick mounted for writing: its free space and
//! read-only state (statvfs), syncing and dropping its cached pages so
//! that a read-back reads the medium, and unmounting and powering off.

pub mod emulator;
mod mounted;
mod udisks;

use std::path::PathBuf;

pub use mounted::{Ejected, Mounted, Space};
pub use udisks::UDisks2;

/// A removable filesystem, as UDisks2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    /// The block device's D-Bus object path.
    pub object: String,
    /// The device node, e.g. `/dev/sdb1`.
    pub device: String,
    /// The filesystem's label (may be empty).
    pub label: String,
    /// The filesystem's UUID (may be empty).
    pub uuid: String,
    /// The filesystem type, e.g. `vfat`.
    pub fs_type: String,
    /// The size in bytes.
    pub size: u64,
    /// Whether the device is read-only (a write-protect switch).
    pub read_only: bool,
    /// Where it is mounted now.
    pub mount_points: Vec<PathBuf>,
    /// The drive's D-Bus object path, when it has one.
    pub drive: Option<String>,
    /// The drive's serial number (may be empty).
    pub serial: String,
    /// The drive's vendor and model, e.g. `SanDisk Cruzer`.
    pub model: String,
    /// Whether the drive can be powered off.
    pub can_power_off: bool,
}

impl Medium {
    /// A name for messages: label (or device), model and serial.
    pub fn describe(&self) -> String {
        let name = if self.label.is_empty() {
            self.device.as_str()
        } else {
            self.label.as_str()
        };
        let mut s = format!("{name} ({}", self.device);
        if !self.model.is_empty() {
            s.push_str(&format!(", {}", self.model));
        }
        if !self.serial.is_empty() {
            s.push_str(&format!(", serial {}", self.serial));
        }
        s.push(')');
        s
    }

    /// Whether `want` names it: its label, UUID, serial or device node.
    pub fn is_named(&self, want: &str) -> bool {
        !want.is_empty()
            && [&self.label, &self.uuid, &self.serial, &self.device]
                .iter()
                .any(|n| n.as_str() == want)
    }
}

/// What went wrong with a medium.
#[derive(Debug, thiserror::Error)]
pub enum UsbError {
    /// No UDisks2 service answered on the bus.
    #[error(
        "cannot reach UDisks2 on the D-Bus system bus ({0}); is udisks2 installed and running?"
    )]
    Bus(String),
    /// UDisks2 refused or failed a call.
    #[error("UDisks2 could not {action} {medium}: {why}")]
    Call {
        /// What was asked (`mount`, `unmount`, `power off`, `list media`).
        action: &'static str,
        /// Which medium.
        medium: String,
        /// UDisks2's answer.
        why: String,
    },
    /// No removable filesystem is plugged in (or none with that name).
    #[error("no USB stick found{0}: plug one in (a removable drive with a filesystem)")]
    NoMedium(String),
    /// Several are plugged in and none was named.
    #[error("several USB sticks are plugged in; name one (label, UUID, serial or device): {}", .0.join("; "))]
    Ambiguous(Vec<String>),
    /// It is (or got mounted) read-only.
    #[error("{0} is read-only (a write-protect switch, or a filesystem the kernel mounted read-only): nothing written")]
    ReadOnly(String),
    /// It has less free space than the export needs.
    #[error(
        "{medium} is full: {free} bytes free, the export needs at least {needed}: nothing written"
    )]
    Full {
        /// Which medium.
        medium: String,
        /// Bytes free.
        free: u64,
        /// Bytes needed, at least.
        needed: u64,
    },
    /// A system call on the mounted filesystem failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// The removable media an export can be written to.
pub trait RemovableMedia {
    /// The removable filesystems plugged in now.
    fn media(&self) -> Result<Vec<Medium>, UsbError>;
    /// Mounts `m` (or finds where it already is) and returns the mount
    /// point.
    fn mount(&self, m: &Medium) -> Result<PathBuf, UsbError>;
    /// Unmounts `m`.
    fn unmount(&self, m: &Medium) -> Result<(), UsbError>;
    /// Powers off `m`'s drive, so it can be pulled out safely.
    fn power_off(&self, m: &Medium) -> Result<(), UsbError>;

    /// Whether `m` is still plugged in.
    fn is_present(&self, m: &Medium) -> Result<bool, UsbError> {
        Ok(self.media()?.iter().any(|x| x.object == m.object))
    }

    /// The one medium to write to: the one `want` names, or the only one
    /// plugged in.
    fn choose(&self, want: Option<&str>) -> Result<Medium, UsbError> {
        let all = self.media()?;
        let mut found: Vec<Medium> = match want {
            Some(w) => all.into_iter().filter(|m| m.is_named(w)).collect(),
            None => all,
        };
        match found.len() {
            0 => Err(UsbError::NoMedium(
                want.map(|w| format!(" named {w:?}")).unwrap_or_default(),
            )),
            1 => Ok(found.remove(0)),
            _ => Err(UsbError::Ambiguous(
                found.iter().map(Medium::describe).collect(),
            )),
        }
    }
}
