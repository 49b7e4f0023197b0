//! The UDisks2 client: [`RemovableMedia`] over `org.freedesktop.UDisks2`
//! on a D-Bus bus, with zbus's blocking API (no async runtime needed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use zbus::blocking::fdo::ObjectManagerProxy;
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use super::{Medium, RemovableMedia, UsbError};

/// The UDisks2 service's bus name.
pub const SERVICE: &str = "org.freedesktop.UDisks2";
/// Its object manager's path.
pub const MANAGER: &str = "/org/freedesktop/UDisks2";
/// A block device.
pub const BLOCK: &str = "org.freedesktop.UDisks2.Block";
/// A mountable filesystem on a block device.
pub const FILESYSTEM: &str = "org.freedesktop.UDisks2.Filesystem";
/// A drive.
pub const DRIVE: &str = "org.freedesktop.UDisks2.Drive";

/// How long one call may take: mounting or powering off a slow stick takes
/// seconds, not minutes.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// UDisks2 on a bus: the system bus (`udisksd`), or the look-alike on a
/// private bus.
pub struct UDisks2 {
    conn: Connection,
}

type Props = HashMap<String, OwnedValue>;

impl UDisks2 {
    /// Connects to the system bus: `DBUS_SYSTEM_BUS_ADDRESS` when set (the
    /// emulated appliance's private bus), else the well-known socket.
    pub fn system() -> Result<Self, UsbError> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".into());
        Self::at(&address)
    }

    /// Connects to the bus at `address` (a D-Bus address, e.g.
    /// `unix:path=/run/cairn-emu/bus`).
    pub fn at(address: &str) -> Result<Self, UsbError> {
        let bus = |e: zbus::Error| UsbError::Bus(format!("{address}: {e}"));
        let conn = zbus::blocking::connection::Builder::address(address)
            .map_err(bus)?
            .method_timeout(CALL_TIMEOUT)
            .build()
            .map_err(bus)?;
        Ok(UDisks2 { conn })
    }

    fn call<R>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        action: &'static str,
        m: &Medium,
    ) -> Result<R, UsbError>
    where
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let failed = |e: zbus::Error| UsbError::Call {
            action,
            medium: m.describe(),
            why: e.to_string(),
        };
        // Never wait for a password prompt: an appliance has no one to
        // answer it.
        let options: HashMap<&str, Value<'_>> =
            HashMap::from([("auth.no_user_interaction", Value::from(true))]);
        let reply = self
            .conn
            .call_method(Some(SERVICE), path, Some(iface), method, &(options,))
            .map_err(failed)?;
        reply.body().deserialize::<R>().map_err(failed)
    }
}

fn get<T: TryFrom<OwnedValue>>(props: &Props, name: &str) -> Option<T> {
    T::try_from(props.get(name)?.try_clone().ok()?).ok()
}

/// A byte string property (`ay`) as UDisks2 sends paths: NUL-terminated.
fn bytes_path(b: Vec<u8>) -> PathBuf {
    let b = b.strip_suffix(&[0]).unwrap_or(&b);
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

use std::os::unix::ffi::OsStrExt as _;

impl RemovableMedia for UDisks2 {
    fn media(&self) -> Result<Vec<Medium>, UsbError> {
        let unreachable = |e: zbus::Error| UsbError::Bus(e.to_string());
        let manager = ObjectManagerProxy::builder(&self.conn)
            .destination(SERVICE)
            .and_then(|b| b.path(MANAGER))
            .and_then(|b| b.build())
            .map_err(unreachable)?;
        let objects = manager
            .get_managed_objects()
            .map_err(|e| UsbError::Bus(e.to_string()))?;
        let props = |path: &OwnedObjectPath, iface: &str| -> Option<&Props> {
            objects
                .get(path)?
                .iter()
                .find(|(name, _)| name.as_str() == iface)
                .map(|(_, p)| p)
        };
        let mut found = Vec::new();
        for path in objects.keys() {
            let (Some(block), Some(fs)) = (props(path, BLOCK), props(path, FILESYSTEM)) else {
                continue;
            };
            let flag = |name| get::<bool>(block, name).unwrap_or(false);
            if flag("HintIgnore") {
                continue;
            }
            let drive_path = get::<OwnedObjectPath>(block, "Drive").filter(|p| p.as_str() != "/");
            let drive = drive_path.as_ref().and_then(|d| props(d, DRIVE));
            let drive_flag = |name| drive.and_then(|d| get::<bool>(d, name)).unwrap_or(false);
            let removable = drive_flag("Removable")
                || drive_flag("MediaRemovable")
                || (flag("HintAuto") && !flag("HintSystem"));
            if !removable {
                continue;
            }
            let text = |p: Option<&Props>, name| {
                p.and_then(|p| get::<String>(p, name)).unwrap_or_default()
            };
            let model = [text(drive, "Vendor"), text(drive, "Model")]
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            found.push(Medium {
                object: path.to_string(),
                device: bytes_path(get::<Vec<u8>>(block, "Device").unwrap_or_default())
                    .display()
                    .to_string(),
                label: text(Some(block), "IdLabel"),
                uuid: text(Some(block), "IdUUID"),
                fs_type: text(Some(block), "IdType"),
                size: get::<u64>(block, "Size").unwrap_or(0),
                read_only: flag("ReadOnly"),
                mount_points: get::<Vec<Vec<u8>>>(fs, "MountPoints")
                    .unwrap_or_default()
                    .into_iter()
                    .map(bytes_path)
                    .collect(),
                drive: drive_path.map(|d| d.to_string()),
                serial: text(drive, "Serial"),
                model,
                can_power_off: drive_flag("CanPowerOff"),
            });
        }
        found.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(found)
    }

    fn mount(&self, m: &Medium) -> Result<PathBuf, UsbError> {
        if let Some(p) = m.mount_points.first() {
            return Ok(p.clone());
        }
        let at: String = self.call(&m.object, FILESYSTEM, "Mount", "mount", m)?;
        Ok(PathBuf::from(at))
    }

    fn unmount(&self, m: &Medium) -> Result<(), UsbError> {
        self.call::<()>(&m.object, FILESYSTEM, "Unmount", "unmount", m)
    }

    fn power_off(&self, m: &Medium) -> Result<(), UsbError> {
        let Some(drive) = &m.drive else {
            return Err(UsbError::Call {
                action: "power off",
                medium: m.describe(),
                why: "it has no drive object".into(),
            });
        };
        self.call::<()>(drive, DRIVE, "PowerOff", "power off", m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_string_paths_lose_their_terminating_nul() {
        assert_eq!(
            bytes_path(b"/media/CAIRN\0".to_vec()),
            PathBuf::from("/media/CAIRN")
        );
        assert_eq!(
            bytes_path(b"/dev/sdb1".to_vec()),
            PathBuf::from("/dev/sdb1")
        );
    }
}
