//! `cairn export --usb` through UDisks2: a real private `dbus-daemon`, the
//! UDisks2 look-alike `cairn-udisks-emu` on it, and sticks that are small
//! tmpfs filesystems it bind-mounts. The bundle written through the
//! UDisks2 path verifies with `cairn verify`; the stick is unmounted and
//! powered off; a running daemon records the stick in `ledger.export`; a
//! stick that fills up mid-export, a too small, a read-only or a pulled
//! stick, and no stick at all give clear errors and no complete-looking
//! bundle. Needs root (tmpfs and bind mounts, fanotify); CI runs as root.

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use cairn_attest::{Actor, Keyring, Ledger, LedgerConfig, RecordDraft};
use cairn_hw::usb::emulator::PrivateBus;
use cairn_tests::{cairn_verify, scaled, workspace_command, Tmpfs};

/// `cairn-udisks-emu` on a bus, its sticks mounted under `media`; stopped
/// (and what it mounted unmounted) on drop.
struct Emu {
    child: Child,
}

impl Emu {
    fn start(bus: &PrivateBus, dir: &Path, sticks: &[String]) -> Emu {
        let ready = dir.join("emu.ready");
        // An earlier emulator's file would read as this one being ready.
        let _ = std::fs::remove_file(&ready);
        let mut cmd = workspace_command("cairn-udisks-emu");
        cmd.args(["--address", bus.address(), "--media"])
            .arg(dir.join("media"))
            .arg("--ready-file")
            .arg(&ready);
        for s in sticks {
            cmd.args(["--stick", s]);
        }
        let mut child = cmd.spawn().expect("spawn cairn-udisks-emu");
        let deadline = Instant::now() + scaled(Duration::from_secs(20));
        while !ready.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("cairn-udisks-emu exited: {status}");
            }
            assert!(Instant::now() < deadline, "cairn-udisks-emu did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Emu { child }
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A test's world: a temporary directory, a bus and a stick directory on a
/// tmpfs of `size`.
struct World {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    stick: Tmpfs,
}

impl World {
    fn new(size: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start(dir.path())
            .expect("dbus-daemon (Debian: apt-get install dbus-daemon; tests/run installs it)");
        let stick = Tmpfs::mount(&dir.path().join("stick"), size);
        World { dir, bus, stick }
    }

    /// The emulator serving one stick (`OPTIONS` appended to its spec).
    fn emu(&self, options: &str) -> Emu {
        let spec = format!(
            "label=CAIRN,dir={},serial=0042,uuid=1234-ABCD{options}",
            self.stick.path.display()
        );
        Emu::start(&self.bus, self.dir.path(), &[spec])
    }

    /// `cairn export --ledger LEDGER --usb ARGS…` with the private bus as
    /// the system bus.
    fn export(&self, ledger: &Path, args: &[&str]) -> Output {
        workspace_command("cairn")
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus.address())
            .args(["export", "--ledger"])
            .arg(ledger)
            .arg("--usb")
            .args(args)
            .output()
            .expect("run cairn")
    }

    /// Names in the stick's directory.
    fn on_stick(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.stick.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Whether anything is still mounted under the media directory.
    fn mounted(&self) -> bool {
        let media = self.dir.path().join("media");
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(media.to_str().unwrap()))
    }

    /// The stick holds no complete-looking bundle.
    fn assert_no_bundle(&self) {
        let names = self.on_stick();
        assert!(
            names.iter().all(|n| !n.starts_with("cairn-export")),
            "{names:?}"
        );
        assert!(!self.mounted(), "the stick is still mounted");
    }
}

/// A ledger of `n` records plus genesis, checkpointed every 10 and on
/// close.
fn make_ledger(dir: &Path, n: u64) {
    let keys = Keyring::create(&dir.join("keys"), "cairn.example/usb").unwrap();
    let config = LedgerConfig {
        checkpoint_every_records: 10,
        ..LedgerConfig::default()
    };
    let l = Ledger::open(dir, keys, config).unwrap();
    for i in 0..n {
        l.append(RecordDraft::new(
            "test.event",
            Actor::System { name: "usb".into() },
            serde_json::json!({ "i": i, "pad": "x".repeat(200) }),
        ))
        .unwrap();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The answer of a successful `--json` export.
fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_export_through_udisks2_verifies_and_the_stick_is_powered_off() {
    let w = World::new("16m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 2000);
    let _emu = w.emu("");
    let out = w.export(&ledger, &["--json"]);
    let v = json(&out);
    assert_eq!(v["verified"], true);
    assert_eq!(v["powered_off"], true);
    assert_eq!(v["manifest"]["records"], 2001);
    assert_eq!(v["medium"]["label"], "CAIRN");
    assert_eq!(v["medium"]["serial"], "0042");
    assert_eq!(v["medium"]["uuid"], "1234-ABCD");
    let bundle = v["bundle"].as_str().unwrap();
    eprintln!(
        "exported {} records ({} bytes) to the emulated stick, read back and verified, in {:.2} s",
        v["manifest"]["records"], v["bytes"], v["seconds"]
    );
    // Unmounted, and the bundle is on the stick under its final name.
    assert!(!w.mounted());
    assert_eq!(w.on_stick(), vec![bundle.to_string()]);
    let on_stick = w.stick.path.join(bundle);
    let fp = v["manifest"]["identity_fingerprint"].as_str().unwrap();
    let (code, text) = cairn_verify(&on_stick, &["--key", fp]);
    assert_eq!(code, 0, "{text}");
    let bytes: u64 = std::fs::read_dir(&on_stick)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(v["bytes"], bytes);

    // Powered off, it is gone from the bus: no stick to write to.
    let out = w.export(&ledger, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("no USB stick found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_stick_linked_instead_of_mounted_takes_the_same_export() {
    // As `cairnd --hw emulated` serves its stick to a user who may not
    // mount: the same client code, the stick's directory behind a link.
    let w = World::new("16m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 20);
    let _emu = w.emu(",link");
    let v = json(&w.export(&ledger, &["--json"]));
    assert_eq!(
        (v["verified"].clone(), v["powered_off"].clone()),
        (true.into(), true.into())
    );
    let bundle = v["bundle"].as_str().unwrap();
    assert_eq!(w.on_stick(), vec![bundle.to_string()]);
    assert!(
        !w.dir.path().join("media/CAIRN").exists(),
        "the link is gone"
    );
    let (code, text) = cairn_verify(&w.stick.path.join(bundle), &[]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_running_daemon_records_the_usb_export_with_the_stick() {
    let w = World::new("16m");
    let state = w.dir.path().join("state");
    let daemon = cairn_tests::Daemon::start(&state, &["--demo"]);
    let _emu = w.emu("");
    // Named by its serial; the human report.
    let out = w.export(&state, &["0042"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "stick       CAIRN (/dev/sdb1, cairn Emulated Stick, serial 0042)",
        "read back   verified",
        "(ledger.export, with the stick's label, UUID and serial)",
        "unmounted and powered off",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    daemon.stop();
    let records = cairn_tests::ledger_records(&state);
    let export = records
        .iter()
        .rfind(|r| r.kind == "ledger.export")
        .expect("a ledger.export record");
    assert_eq!(
        export.body["medium"],
        serde_json::json!({
            "label": "CAIRN", "uuid": "1234-ABCD", "serial": "0042",
            "model": "cairn Emulated Stick", "device": "/dev/sdb1",
        })
    );
    let bundle = w.stick.path.join(export.body["bundle"].as_str().unwrap());
    assert_eq!(cairn_verify(&bundle, &[]).0, 0);
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}

#[test]
fn a_stick_that_fills_up_mid_export_gives_a_clear_error_and_no_bundle() {
    let w = World::new("16m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 400);
    // It fills up when the second file (checkpoints.journal) is opened.
    let _emu = w.emu(",fill-at-open=2");
    let out = w.export(&ledger, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("No space left on device") && err.contains("on the stick CAIRN"),
        "{err}"
    );
    w.assert_no_bundle();
    // Nothing but the filler: the partial bundle was removed.
    assert_eq!(w.on_stick(), vec![".cairn-emu-filler".to_string()]);
}

#[test]
fn a_stick_too_small_is_refused_before_anything_is_written() {
    let w = World::new("256k");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 400);
    let _emu = w.emu("");
    let out = w.export(&ledger, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("CAIRN (/dev/sdb1")
            && err.contains("is full")
            && err.contains("needs at least"),
        "{err}"
    );
    w.assert_no_bundle();
    assert!(w.on_stick().is_empty());
}

#[test]
fn a_read_only_stick_gives_a_clear_error() {
    let w = World::new("16m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 20);
    let _emu = w.emu(",ro");
    let out = w.export(&ledger, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("is read-only"), "{err}");
    w.assert_no_bundle();
    assert!(w.on_stick().is_empty());
}

#[test]
fn a_stick_pulled_out_mid_write_leaves_only_a_partial_bundle() {
    let w = World::new("16m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 400);
    // Pulled out as the second file is opened: that one is written to a
    // detached filesystem, the next cannot be created.
    let _emu = w.emu(",unplug-at-open=2");
    let out = w.export(&ledger, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("the stick CAIRN (/dev/sdb1")
            && err.contains("was pulled out during the export"),
        "{err}"
    );
    w.assert_no_bundle();
    let names = w.on_stick();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with(".cairn-export-") && names[0].ends_with(".partial"),
        "{names:?}"
    );
    // What was written is incomplete: no SHA256SUMS, not a bundle.
    let partial = w.stick.path.join(&names[0]);
    assert!(!partial.join("SHA256SUMS").exists());
    assert!(!partial.join("bundle.json").exists());
}

#[test]
fn no_stick_no_bus_and_a_wrong_name_give_clear_messages() {
    let w = World::new("1m");
    let ledger = w.dir.path().join("ledger");
    make_ledger(&ledger, 5);
    {
        let _emu = Emu::start(&w.bus, w.dir.path(), &[]);
        let out = w.export(&ledger, &[]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("no USB stick found: plug one in"), "{err}");
    }
    {
        let _emu = w.emu("");
        let out = w.export(&ledger, &["NOPE"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            stderr(&out).contains("no USB stick found named \"NOPE\""),
            "{}",
            stderr(&out)
        );
    }
    let out = workspace_command("cairn")
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", w.dir.path().join("no-bus").display()),
        )
        .args(["export", "--usb", "--ledger"])
        .arg(&ledger)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("cannot reach UDisks2 on the D-Bus system bus"),
        "{}",
        stderr(&out)
    );
    assert!(w.on_stick().is_empty());
}
