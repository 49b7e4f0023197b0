//! `--hw emulated` (`hw.mode = "emulated"`): the appliance's three devices
//! emulated, and served so that cairnd and cairn use them through the same
//! code as real ones:
//!
//! - the **TPM**: the emulated TPM, its state in `DIR/tpm`
//!   (`hw.tpm = "emulated:DIR/tpm"`);
//! - the **serial HSM**: the emulator serving its protocol on a
//!   pseudo-terminal from a thread of this process, its key and counter in
//!   `DIR/hsm.state`; cairnd opens the terminal through `DIR/ttyHSM` as it
//!   opens a real device (`hw.hsm`), over tokio-serial;
//! - **USB sticks**: the UDisks2 look-alike on a private `dbus-daemon`
//!   (`DIR/usb/bus`), one stick `CAIRN-EXPORT` whose contents are the
//!   directory `DIR/usb/stick`; `cairn export --usb` finds the bus through
//!   the daemon (`/healthz`). As root the stick is bind-mounted, as
//!   udisksd mounts; otherwise it is "mounted" as a link. Without
//!   `dbus-daemon` the other two still run and the daemon says why USB
//!   does not.
//!
//! `DIR` is `hw.emulated_dir`, by default the state directory's name with
//! `-hw`, beside it: never inside it, so that restoring a copy of the
//! state directory does not restore the TPM's counter with it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cairn_hw::usb::emulator::{Emulator, PrivateBus, StickSpec};

use crate::config::{HwMode, HwSection};

/// The label of the emulated stick.
pub const STICK_LABEL: &str = "CAIRN-EXPORT";

/// The emulated devices of a running daemon.
pub struct EmulatedHw {
    dir: PathBuf,
    usb: Result<EmulatedUsb, String>,
    /// One process at a time runs the emulated devices of a directory.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// The emulated USB stick and its bus; stopped on drop.
struct EmulatedUsb {
    // Dropped first: the look-alike unmounts its stick while the bus runs.
    _emulator: Emulator,
    bus: PrivateBus,
    stick: PathBuf,
}

/// The default place of the emulated devices' state: `STATE_DIR-hw`
/// (absolute).
pub fn default_dir(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let state_dir = std::path::absolute(state_dir)?;
    let name = state_dir.file_name().with_context(|| {
        format!(
            "{}: no directory name to put -hw after; set hw.emulated_dir",
            state_dir.display()
        )
    })?;
    let mut hw = name.to_owned();
    hw.push("-hw");
    Ok(state_dir.with_file_name(hw))
}

/// Creates `dir` 0700, or checks that an existing one is a directory (not
/// a link) owned by this user, and takes its lock: another process using
/// the same devices (a second cairnd, `cairn keys` while cairnd runs)
/// fails here, before it touches them.
fn claim(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("{} is not a directory", dir.display()),
        Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() => bail!(
            "{} belongs to another user (uid {}): the emulated devices' state must be this user's",
            dir.display(),
            m.uid()
        ),
        _ => {}
    }
    cairn_attest::keyring::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .with_context(|| format!("cannot open {}", dir.join(".lock").display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        anyhow::anyhow!(
            "the emulated devices in {} are in use by another process (a running cairnd?)",
            dir.display()
        )
    })
}

impl EmulatedHw {
    /// When `hw.mode = "emulated"`: starts the devices (the USB stick only
    /// `with_usb`) and turns `hw` into the real-hardware section that names
    /// them (so the rest of cairnd cannot tell); `None` otherwise.
    pub fn start(
        hw: &mut HwSection,
        state_dir: &Path,
        with_usb: bool,
    ) -> anyhow::Result<Option<Self>> {
        if hw.mode != HwMode::Emulated {
            return Ok(None);
        }
        let dir = match &hw.emulated_dir {
            Some(d) => d.clone(),
            None => default_dir(state_dir)?,
        };
        let lock = claim(&dir)?;
        let link = dir.join("ttyHSM");
        cairn_hw::hsm::emulator::serve_in_thread(&dir.join("hsm.state"), &link)
            .with_context(|| format!("cannot start the emulated HSM in {}", dir.display()))?;
        let usb = if with_usb {
            start_usb(&dir.join("usb")).map_err(|e| format!("{e:#}"))
        } else {
            Err("not started".into())
        };
        if let (true, Err(why)) = (with_usb, &usb) {
            tracing::warn!(%why, "no emulated USB stick");
        }
        *hw = HwSection {
            mode: HwMode::Real,
            emulated_dir: None,
            tpm: Some(format!("emulated:{}", dir.join("tpm").display())),
            hsm: Some(link),
            ..hw.clone()
        };
        Ok(Some(EmulatedHw {
            dir,
            usb,
            _lock: lock,
        }))
    }

    /// For `/healthz` and the `daemon.start` record.
    pub fn json(&self) -> serde_json::Value {
        let usb = match &self.usb {
            Ok(u) => serde_json::json!({
                "bus": u.bus.address(),
                "stick": STICK_LABEL,
                "stick_dir": u.stick,
            }),
            Err(why) => serde_json::json!({ "unavailable": why }),
        };
        serde_json::json!({
            "mode": "emulated",
            "dir": self.dir,
            "usb": usb,
        })
    }

    /// What an operator reads at start.
    pub fn describe(&self) -> String {
        let usb = match &self.usb {
            Ok(u) => format!(
                "USB stick {STICK_LABEL} (its contents in {}) on bus {}",
                u.stick.display(),
                u.bus.address()
            ),
            Err(why) => format!("no USB stick ({why})"),
        };
        format!(
            "emulated hardware in {}: TPM, serial HSM on {}, {usb}",
            self.dir.display(),
            self.dir.join("ttyHSM").display()
        )
    }
}

/// The look-alike on a private bus with one stick, its contents in
/// `DIR/stick`.
fn start_usb(dir: &Path) -> anyhow::Result<EmulatedUsb> {
    let stick = dir.join("stick");
    std::fs::create_dir_all(&stick)
        .with_context(|| format!("cannot create {}", stick.display()))?;
    // dbus-daemon dies with the thread that starts it (PR_SET_PDEATHSIG):
    // this runs on the thread that runs cairnd to its end.
    let bus = PrivateBus::start(dir).context("cannot start a private dbus-daemon")?;
    let spec: StickSpec = format!(
        "label={STICK_LABEL},dir={},serial=EMULATED0001,uuid=CA12-0001{}",
        stick.display(),
        if nix::unistd::geteuid().is_root() {
            ""
        } else {
            ",link"
        }
    )
    .parse()
    .map_err(anyhow::Error::msg)?;
    if spec.dir != stick {
        bail!("{}: not a path the look-alike can take", stick.display());
    }
    let emulator = Emulator::serve(bus.address(), &dir.join("media"), vec![spec])
        .context("cannot serve the UDisks2 look-alike")?;
    Ok(EmulatedUsb {
        _emulator: emulator,
        bus,
        stick,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devices_of_a_dir_are_claimed_by_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let hw = dir.path().join("hw");
        let first = claim(&hw).unwrap();
        let e = claim(&hw).err().unwrap().to_string();
        assert!(e.contains("in use"), "{e}");
        drop(first);
        claim(&hw).unwrap();
        std::os::unix::fs::symlink(&hw, dir.path().join("link")).unwrap();
        assert!(
            claim(&dir.path().join("link")).is_err(),
            "a link is refused"
        );
    }

    #[test]
    fn the_default_dir_is_beside_the_state_dir() {
        assert_eq!(
            default_dir(Path::new("/var/lib/cairn")).unwrap(),
            PathBuf::from("/var/lib/cairn-hw")
        );
        assert!(default_dir(Path::new("/")).is_err());
    }
}
