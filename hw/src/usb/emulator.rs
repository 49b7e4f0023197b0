//! The emulated USB sticks: a UDisks2 look-alike (`cairn-udisks-emu`)
//! served on a D-Bus bus, normally a private `dbus-daemon` (`udisksd`
//! cannot see disks without udev).
//!
//! It serves what [`super::UDisks2`] uses, at UDisks2's object paths: the
//! object manager at `/org/freedesktop/UDisks2`, and for each stick a block
//! device (`org.freedesktop.UDisks2.Block` and `.Filesystem`: `Mount`,
//! `Unmount`, `MountPoints`, …) and its drive (`.Drive`: `PowerOff`,
//! `Removable`, `Serial`, …). A stick is a directory (the test puts it on a
//! small tmpfs, so it fills up like a real one); `Mount` bind-mounts it
//! under the media directory (read-only for a write-protected stick), as
//! `udisksd` mounts a device, so writes to it meet the real filesystem's
//! limits. `PowerOff` makes the stick vanish from the bus, as a real one
//! does. Mounting needs root (as `udisksd` does).
//!
//! Faults are injected deterministically with fanotify: the mount is
//! watched for opens (`FAN_OPEN_PERM`), and when the writer opens its Nth
//! file the emulator, before letting that open through, either pulls the
//! stick out (detaches the mount and removes its objects from the bus), or
//! fills it, as a counterfeit stick that reports more space than it has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::fanotify::{
    EventFFlags, Fanotify, FanotifyResponse, InitFlags, MarkFlags, MaskFlags, Response,
};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::udisks::{MANAGER, SERVICE};

/// A fault injected when the writer opens its Nth file on the mounted
/// stick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The stick is pulled out: the mount vanishes and so do its objects.
    UnplugAtOpen(u32),
    /// The stick fills up (it reported more space than it has).
    FillAtOpen(u32),
}

/// One emulated stick, as given on the command line:
/// `label=CAIRN,dir=/path[,serial=S][,uuid=U][,ro][,unplug-at-open=N|fill-at-open=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickSpec {
    /// The filesystem label.
    pub label: String,
    /// The directory that holds the stick's files.
    pub dir: PathBuf,
    /// The drive's serial number.
    pub serial: String,
    /// The filesystem UUID.
    pub uuid: String,
    /// Write-protected: `ReadOnly`, and mounted read-only.
    pub read_only: bool,
    /// A fault to inject.
    pub fault: Option<Fault>,
    /// "Mounted" as a symbolic link to its directory instead of a bind
    /// mount: for users without the right to mount (`cairnd --hw
    /// emulated` as a user); no read-only stick, no faults.
    pub link: bool,
}

impl FromStr for StickSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut spec = StickSpec {
            label: String::new(),
            dir: PathBuf::new(),
            serial: String::new(),
            uuid: String::new(),
            read_only: false,
            fault: None,
            link: false,
        };
        for part in s.split(',') {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let count = || {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{key}={value:?}: a count of at least 1"))
            };
            match key {
                "label" => spec.label = value.into(),
                "dir" => spec.dir = value.into(),
                "serial" => spec.serial = value.into(),
                "uuid" => spec.uuid = value.into(),
                "ro" if value.is_empty() => spec.read_only = true,
                "link" if value.is_empty() => spec.link = true,
                "unplug-at-open" => spec.fault = Some(Fault::UnplugAtOpen(count()?)),
                "fill-at-open" => spec.fault = Some(Fault::FillAtOpen(count()?)),
                _ => return Err(format!("unknown stick option {part:?}")),
            }
        }
        let safe = |v: &str| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if spec.label.is_empty() || !safe(&spec.label) || spec.label.starts_with('.') {
            return Err("label=NAME is required (letters, digits, - _ .)".into());
        }
        if !spec.dir.is_absolute() {
            return Err("dir=PATH is required, absolute".into());
        }
        if !safe(&spec.serial) || !safe(&spec.uuid) {
            return Err("serial and uuid: letters, digits, - _ .".into());
        }
        if spec.link && (spec.read_only || spec.fault.is_some()) {
            return Err("a linked stick cannot be read-only or inject faults".into());
        }
        Ok(spec)
    }
}

/// A stick's state, shared by its three interfaces and its fault watcher.
struct Stick {
    spec: StickSpec,
    /// `sdb1`, `sdc1`, …
    name: String,
    /// Where it is mounted (under the media directory).
    mounted_at: Option<PathBuf>,
}

type Shared = Arc<Mutex<Stick>>;

fn lock(s: &Shared) -> MutexGuard<'_, Stick> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stick {
    fn block_path(&self) -> String {
        format!("{MANAGER}/block_devices/{}", self.name)
    }

    fn drive_path(&self) -> String {
        format!("{MANAGER}/drives/Cairn_Emulated_Stick_{}", self.spec.serial)
    }

    // The casts are needed where statvfs's counts are 32-bit (armv7).
    #[allow(clippy::unnecessary_cast)]
    fn size(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.spec.dir)
            .map(|s| s.blocks() as u64 * s.fragment_size() as u64)
            .unwrap_or(0)
    }
}

/// UDisks2's errors (`org.freedesktop.UDisks2.Error.*`).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.UDisks2.Error")]
enum UdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Failed(String),
    AlreadyMounted(String),
    NotMounted(String),
    DeviceBusy(String),
}

struct BlockIface(Shared);

#[zbus::interface(name = "org.freedesktop.UDisks2.Block")]
impl BlockIface {
    #[zbus(property)]
    fn device(&self) -> Vec<u8> {
        format!("/dev/{}\0", lock(&self.0).name).into_bytes()
    }
    #[zbus(property)]
    fn id_label(&self) -> String {
        lock(&self.0).spec.label.clone()
    }
    #[zbus(property, name = "IdUUID")]
    fn id_uuid(&self) -> String {
        lock(&self.0).spec.uuid.clone()
    }
    #[zbus(property)]
    fn id_type(&self) -> String {
        "vfat".into()
    }
    #[zbus(property)]
    fn id_usage(&self) -> String {
        "filesystem".into()
    }
    #[zbus(property)]
    fn drive(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(lock(&self.0).drive_path()).expect("a valid object path")
    }
    #[zbus(property)]
    fn read_only(&self) -> bool {
        lock(&self.0).spec.read_only
    }
    #[zbus(property)]
    fn size(&self) -> u64 {
        lock(&self.0).size()
    }
    #[zbus(property)]
    fn hint_auto(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn hint_ignore(&self) -> bool {
        false
    }
    #[zbus(property)]
    fn hint_system(&self) -> bool {
        false
    }
}

struct FilesystemIface {
    stick: Shared,
    media: PathBuf,
}

#[zbus::interface(name = "org.freedesktop.UDisks2.Filesystem")]
impl FilesystemIface {
    async fn mount(
        &self,
        _options: HashMap<String, OwnedValue>,
        #[zbus(connection)] conn: &zbus::Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<String, UdError> {
        let at = {
            let mut st = lock(&self.stick);
            if let Some(at) = &st.mounted_at {
                return Err(UdError::AlreadyMounted(format!(
                    "Device /dev/{} is already mounted at `{}'.",
                    st.name,
                    at.display()
                )));
            }
            let at = self.media.join(&st.spec.label);
            bind_mount(&st.spec, &at).map_err(UdError::Failed)?;
            if let Some(fault) = st.spec.fault {
                if let Err(e) = watch(&at, fault, self.stick.clone(), conn.clone()) {
                    let _ = detach(&at);
                    return Err(UdError::Failed(format!(
                        "fanotify on {}: {e}",
                        at.display()
                    )));
                }
            }
            st.mounted_at = Some(at.clone());
            at
        };
        self.mount_points_changed(&emitter).await?;
        Ok(at.display().to_string())
    }

    async fn unmount(
        &self,
        _options: HashMap<String, OwnedValue>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<(), UdError> {
        {
            let mut st = lock(&self.stick);
            let Some(at) = st.mounted_at.clone() else {
                return Err(UdError::NotMounted(format!(
                    "Device /dev/{} is not mounted",
                    st.name
                )));
            };
            release(&at).map_err(|e| {
                UdError::DeviceBusy(format!("Error unmounting {}: {e}", at.display()))
            })?;
            st.mounted_at = None;
        }
        self.mount_points_changed(&emitter).await?;
        Ok(())
    }

    #[zbus(property)]
    fn mount_points(&self) -> Vec<Vec<u8>> {
        let st = lock(&self.stick);
        st.mounted_at
            .iter()
            .map(|p| {
                let mut b = p.as_os_str().as_encoded_bytes().to_vec();
                b.push(0);
                b
            })
            .collect()
    }
    #[zbus(property)]
    fn size(&self) -> u64 {
        lock(&self.stick).size()
    }
}

struct DriveIface(Shared);

#[zbus::interface(name = "org.freedesktop.UDisks2.Drive")]
impl DriveIface {
    async fn power_off(
        &self,
        _options: HashMap<String, OwnedValue>,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> Result<(), UdError> {
        let (block, drive) = {
            let st = lock(&self.0);
            if st.mounted_at.is_some() {
                return Err(UdError::DeviceBusy(format!(
                    "/dev/{} is mounted: unmount it first",
                    st.name
                )));
            }
            (st.block_path(), st.drive_path())
        };
        unplug_objects(conn, &block, &drive).await?;
        Ok(())
    }

    #[zbus(property)]
    fn vendor(&self) -> String {
        "cairn".into()
    }
    #[zbus(property)]
    fn model(&self) -> String {
        "Emulated Stick".into()
    }
    #[zbus(property)]
    fn serial(&self) -> String {
        lock(&self.0).spec.serial.clone()
    }
    #[zbus(property)]
    fn connection_bus(&self) -> String {
        "usb".into()
    }
    #[zbus(property)]
    fn removable(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn media_removable(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn ejectable(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn can_power_off(&self) -> bool {
        true
    }
}

fn bind_mount(spec: &StickSpec, at: &Path) -> Result<(), String> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "Error mounting {} at {}: {what}: {e}",
            spec.dir.display(),
            at.display()
        )
    };
    if spec.link {
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed("mkdir", &e))?;
        }
        return std::os::unix::fs::symlink(&spec.dir, at).map_err(|e| failed("link", &e));
    }
    std::fs::create_dir_all(at).map_err(|e| failed("mkdir", &e))?;
    mount(
        Some(&spec.dir),
        at,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| failed("bind mount (needs root)", &e))?;
    if spec.read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(e) = mount(None::<&str>, at, None::<&str>, flags, None::<&str>) {
            let _ = detach(at);
            return Err(failed("read-only remount", &e));
        }
    }
    Ok(())
}

/// Whether the stick at `at` is linked rather than mounted.
fn is_link(at: &Path) -> bool {
    std::fs::symlink_metadata(at).is_ok_and(|m| m.file_type().is_symlink())
}

/// Unmounts the stick at `at` (or removes its link) and removes the
/// mount point.
fn release(at: &Path) -> nix::Result<()> {
    if is_link(at) {
        return std::fs::remove_file(at).map_err(|_| nix::errno::Errno::EIO);
    }
    umount2(at, MntFlags::empty())?;
    let _ = std::fs::remove_dir(at);
    Ok(())
}

/// Detaches the mount at `at` (lazily: files open on it stay usable, as
/// on a pulled stick whose writes go nowhere) and removes the directory.
fn detach(at: &Path) -> nix::Result<()> {
    if is_link(at) {
        return release(at);
    }
    umount2(at, MntFlags::MNT_DETACH)?;
    let _ = std::fs::remove_dir(at);
    Ok(())
}

/// Removes what a killed emulator left at a stick's mount point: a link,
/// a mount (detached), the empty directory.
fn clear_mount_point(at: &Path) {
    if is_link(at) {
        let _ = std::fs::remove_file(at);
    } else if at.is_dir() {
        let _ = umount2(at, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(at);
    }
}

/// A private `dbus-daemon` on a Unix socket for the look-alike (udisksd
/// needs udev), with a configuration that lets any local user own any
/// name; killed on drop, and by the kernel when its parent dies.
pub struct PrivateBus {
    child: std::process::Child,
    address: String,
}

impl PrivateBus {
    /// Starts `dbus-daemon` listening on `DIR/bus` (its configuration in
    /// `DIR/bus.conf`) and returns once it printed its address.
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        use std::io::BufRead as _;
        use std::os::unix::process::CommandExt as _;
        std::fs::create_dir_all(dir)?;
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                dir.join("bus").display()
            ),
        )?;
        let mut cmd = std::process::Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        // SAFETY: prctl(2) is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("dbus-daemon (Debian: apt-get install dbus-daemon): {e}"),
            )
        })?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if !line.starts_with("unix:") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!(
                "dbus-daemon did not start (it printed {line:?})"
            )));
        }
        Ok(PrivateBus {
            child,
            address: line.trim().to_string(),
        })
    }

    /// The bus's address (`unix:path=…,guid=…`).
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes a stick's objects from the bus (the object manager announces
/// `InterfacesRemoved`).
async fn unplug_objects(conn: &zbus::Connection, block: &str, drive: &str) -> zbus::Result<()> {
    let server = conn.object_server();
    server.remove::<FilesystemIface, _>(block).await?;
    server.remove::<BlockIface, _>(block).await?;
    server.remove::<DriveIface, _>(drive).await?;
    Ok(())
}

/// Watches the mount at `at` for file opens and injects `fault` at the
/// Nth, on a thread of its own.
fn watch(at: &Path, fault: Fault, stick: Shared, conn: zbus::Connection) -> nix::Result<()> {
    let fan = Fanotify::init(
        InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC,
        EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE,
    )?;
    fan.mark(
        MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT,
        MaskFlags::FAN_OPEN_PERM,
        None,
        Some(at),
    )?;
    let n = match fault {
        Fault::UnplugAtOpen(n) | Fault::FillAtOpen(n) => n,
    };
    std::thread::spawn(move || {
        let mut opens = 0;
        loop {
            let Ok(events) = fan.read_events() else {
                return;
            };
            let mut done = false;
            for ev in &events {
                if ev.mask().contains(MaskFlags::FAN_OPEN_PERM) {
                    opens += 1;
                    if opens == n {
                        inject(fault, &stick, &conn);
                        done = true;
                    }
                }
                if let Some(fd) = ev.fd() {
                    let _ = fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW));
                }
            }
            if done {
                // Dropping the group lets any later open through.
                return;
            }
        }
    });
    Ok(())
}

fn inject(fault: Fault, stick: &Shared, conn: &zbus::Connection) {
    let mut st = lock(stick);
    match fault {
        Fault::UnplugAtOpen(_) => {
            if let Some(at) = st.mounted_at.take() {
                let _ = detach(&at);
            }
            let (block, drive) = (st.block_path(), st.drive_path());
            drop(st);
            let _ = zbus::block_on(unplug_objects(conn, &block, &drive));
            eprintln!("cairn-udisks-emu: {block} pulled out");
        }
        Fault::FillAtOpen(_) => {
            // Written through the stick's own directory, not the watched
            // mount, so the watcher sees none of it.
            let filler = st.spec.dir.join(".cairn-emu-filler");
            let written = fill(&filler);
            eprintln!(
                "cairn-udisks-emu: {} filled ({written} bytes)",
                st.block_path()
            );
        }
    }
}

/// Writes zeros into `path` until the filesystem is full; returns how many
/// were written.
fn fill(path: &Path) -> u64 {
    use std::io::Write as _;
    let Ok(mut f) = std::fs::File::create(path) else {
        return 0;
    };
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0u64;
    let mut size = chunk.len();
    while size > 0 {
        match f.write(&chunk[..size]) {
            Ok(0) => break,
            Ok(k) => written += k as u64,
            Err(_) => size /= 2,
        }
    }
    let _ = f.sync_all();
    written
}

/// The emulator, serving its sticks on a bus until dropped.
pub struct Emulator {
    _conn: zbus::blocking::Connection,
    sticks: Vec<Shared>,
}

impl Emulator {
    /// Connects to the bus at `address`, takes the name
    /// `org.freedesktop.UDisks2` and serves `sticks`, plugged in, to be
    /// mounted under `media`.
    pub fn serve(address: &str, media: &Path, sticks: Vec<StickSpec>) -> zbus::Result<Self> {
        let mut builder = zbus::blocking::connection::Builder::address(address)?
            .name(SERVICE)?
            .serve_at(MANAGER, zbus::fdo::ObjectManager)?;
        let mut shared = Vec::new();
        for (i, spec) in sticks.into_iter().enumerate() {
            // What an earlier emulator left mounted or linked there (it
            // was killed): the stick is not mounted now.
            clear_mount_point(&media.join(&spec.label));
            let letter = (b'b' + (i % 25) as u8) as char;
            let stick = Arc::new(Mutex::new(Stick {
                spec,
                name: format!("sd{letter}1"),
                mounted_at: None,
            }));
            let (block, drive) = {
                let st = lock(&stick);
                (st.block_path(), st.drive_path())
            };
            builder = builder
                .serve_at(block.clone(), BlockIface(stick.clone()))?
                .serve_at(
                    block,
                    FilesystemIface {
                        stick: stick.clone(),
                        media: media.to_path_buf(),
                    },
                )?
                .serve_at(drive, DriveIface(stick.clone()))?;
            shared.push(stick);
        }
        Ok(Emulator {
            _conn: builder.build()?,
            sticks: shared,
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for stick in &self.sticks {
            if let Some(at) = lock(stick).mounted_at.take() {
                let _ = detach(&at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stick_specs_parse_and_bad_ones_are_refused() {
        let s: StickSpec = "label=CAIRN,dir=/s,serial=42,ro,fill-at-open=3"
            .parse()
            .unwrap();
        assert_eq!(s.label, "CAIRN");
        assert_eq!(s.dir, PathBuf::from("/s"));
        assert_eq!(s.serial, "42");
        assert!(s.read_only);
        assert_eq!(s.fault, Some(Fault::FillAtOpen(3)));
        for bad in [
            "dir=/s",
            "label=../x,dir=/s",
            "label=A,dir=relative",
            "label=A,dir=/s,unplug-at-open=0",
            "label=A,dir=/s,colour=red",
            "label=A,dir=/s,serial=a/b",
            "label=A,dir=/s,link,ro",
            "label=A,dir=/s,link,fill-at-open=1",
        ] {
            assert!(bad.parse::<StickSpec>().is_err(), "{bad}");
        }
    }
}
