//! The serial HSM end to end: the real `cairn-hsm-emu` serving a
//! pseudo-terminal, `cairn keys init --hsm`, and `cairnd` configured with
//! `[hw] hsm`. The identity key in the emulator certifies the operational
//! key and signs checkpoints that `cairn verify` accepts; unplugging it
//! (SIGKILL) mid-run keeps the daemon up, loses no record and signs no
//! checkpoint until it is back; a noisy line is survived.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use cairn_tests::{cairn, cairn_ok, ledger_records, scaled, workspace_command, Daemon};

/// A running emulator, killed (unplugged) on drop.
/// A running `cairn-hsm-emu` and the link to its pty.
struct Emulator(Child, PathBuf);

impl Emulator {
    /// Starts `cairn-hsm-emu --state STATE --link LINK EXTRA…` and waits
    /// until it serves (it writes its pty's path last; a new pty may reuse
    /// the number, so the link's target cannot tell).
    fn start(state: &Path, link: &Path, extra: &[&str]) -> Emulator {
        let served = link.with_extension("path");
        let _ = std::fs::remove_file(&served);
        let child = workspace_command("cairn-hsm-emu")
            .arg("--state")
            .arg(state)
            .arg("--link")
            .arg(link)
            .arg("--path-file")
            .arg(&served)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn cairn-hsm-emu");
        let mut emu = Emulator(child, link.to_path_buf());
        wait_for("the emulator's pty", || {
            assert!(emu.0.try_wait().unwrap().is_none(), "cairn-hsm-emu exited");
            served.exists()
        });
        emu
    }

    /// Unplugs the device: SIGKILL closes the pty's master side, and its
    /// link goes, as udev removes an unplugged device's node and links (a
    /// link left behind could name another test's new pty of the same
    /// number).
    fn unplug(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + scaled(Duration::from_secs(15));
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    state: PathBuf,
    emu_state: PathBuf,
    link: PathBuf,
    config: PathBuf,
}

/// Keys made with the HSM, and a configuration naming it with `hw`.
fn setup(emu: &[&str], hw: &str) -> (Setup, Emulator) {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup {
        state: dir.path().join("state"),
        emu_state: dir.path().join("hsm.state"),
        link: dir.path().join("ttyHSM"),
        config: dir.path().join("cairnd.toml"),
        _dir: dir,
    };
    let e = Emulator::start(&s.emu_state, &s.link, emu);
    let out = cairn_ok(&[
        "keys",
        "init",
        "--dir",
        s.state.to_str().unwrap(),
        "--hsm",
        s.link.to_str().unwrap(),
    ]);
    assert!(out.contains("serial HSM"), "{out}");
    std::fs::write(
        &s.config,
        format!(
            "state_dir = {:?}\n[ledger]\ncheckpoint_every_secs = 3600\n[hw]\nhsm = {:?}\nhsm_probe_ms = 200\n{hw}",
            s.state, s.link
        ),
    )
    .unwrap();
    (s, e)
}

fn health(d: &Daemon) -> serde_json::Value {
    d.request("GET", "/healthz", None).json()
}

/// A review record (201 when recorded).
fn review(d: &Daemon, note: &str) -> u16 {
    let body = serde_json::json!({ "note": note }).to_string();
    d.request("POST", "/v1/admin/reviews", Some(body.as_bytes()))
        .status
}

fn checkpoint(d: &Daemon) -> u16 {
    d.request("POST", "/v1/audit/checkpoint", None).status
}

#[test]
fn the_hsm_signs_checkpoints_and_an_unplug_loses_no_record() {
    let (s, emu) = setup(&[], "");
    let keys = cairn_ok(&["keys", "show", "--dir", s.state.to_str().unwrap(), "--json"]);
    let keys: serde_json::Value = serde_json::from_str(&keys).unwrap();
    assert!(keys["keys"]["identity"]["held_by"]
        .as_str()
        .unwrap()
        .starts_with("serial HSM "));
    assert_eq!(keys["keys"]["operational"]["held_by"], "software file");

    let d = Daemon::start_with_config(&s.config, &s.state);
    assert_eq!(health(&d)["hsm"]["state"], "present");
    assert_eq!(review(&d, "before the unplug"), 201);
    assert_eq!(checkpoint(&d), 200);
    let covered = health(&d)["checkpoint_size"].as_u64().unwrap();
    assert_eq!(covered, health(&d)["records"].as_u64().unwrap());

    emu.unplug();
    wait_for("the daemon to see the HSM lost", || {
        health(&d)["hsm"]["state"] == "lost"
    });
    let h = health(&d);
    assert_eq!(h["status"], "degraded");
    assert!(h["hsm"]["why"].as_str().unwrap().contains("HSM"), "{h}");
    // Records go on (keep-signing, the default); checkpoints do not.
    assert_eq!(review(&d, "while the HSM is away"), 201);
    let r = d.request("POST", "/v1/audit/checkpoint", None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("is lost"), "{}", r.text());
    assert_eq!(health(&d)["checkpoint_size"].as_u64().unwrap(), covered);
    let status = cairn(&["status", "--state-dir", s.state.to_str().unwrap()]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("HSM") && status.contains("LOST"),
        "{status}"
    );

    // Plugged in again: taken back, recorded, and everything checkpointed.
    let _emu = Emulator::start(&s.emu_state, &s.link, &[]);
    wait_for("the checkpoint after the HSM's return", || {
        let h = health(&d);
        h["hsm"]["state"] == "present" && h["checkpoint_size"] == h["records"]
    });
    assert_eq!(d.stop().code(), Some(0));

    let kinds: Vec<String> = ledger_records(&s.state)
        .into_iter()
        .map(|r| r.kind)
        .collect();
    let lost = kinds.iter().position(|k| k == "hsm.lost").unwrap();
    let back = kinds.iter().position(|k| k == "hsm.restored").unwrap();
    assert!(lost < back, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "review.record").count(), 2);
    let out = cairn_ok(&["verify", s.state.to_str().unwrap()]);
    assert!(out.contains("OK:"), "{out}");
    let fp = keys["keys"]["identity"]["fingerprint"].as_str().unwrap();
    assert!(out.contains(fp), "{out}");
}

#[test]
fn a_noisy_line_is_survived() {
    let (s, _emu) = setup(&["--garbage-every", "1", "--corrupt-every", "3"], "");
    let d = Daemon::start_with_config(&s.config, &s.state);
    for i in 0..6 {
        assert_eq!(review(&d, &format!("review {i}")), 201);
        assert_eq!(checkpoint(&d), 200, "checkpoint {i}");
    }
    assert_eq!(health(&d)["hsm"]["state"], "present");
    assert_eq!(d.stop().code(), Some(0));
    let out = cairn_ok(&["verify", s.state.to_str().unwrap()]);
    assert!(out.contains("OK:"), "{out}");
}

#[test]
fn refuse_records_policy_refuses_while_the_hsm_is_lost() {
    let (s, emu) = setup(&[], "hsm_lost = \"refuse-records\"\n");
    let d = Daemon::start_with_config(&s.config, &s.state);
    assert_eq!(review(&d, "before"), 201);
    emu.unplug();
    wait_for("the daemon to see the HSM lost", || {
        health(&d)["hsm"]["state"] == "lost"
    });
    assert_eq!(review(&d, "refused"), 503);
    let _emu = Emulator::start(&s.emu_state, &s.link, &[]);
    wait_for("the HSM back", || health(&d)["hsm"]["state"] == "present");
    assert_eq!(review(&d, "after"), 201);
    assert_eq!(d.stop().code(), Some(0));
    let kinds: Vec<String> = ledger_records(&s.state)
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert!(kinds.contains(&"hsm.lost".to_string()));
    assert!(kinds.contains(&"hsm.restored".to_string()));
    assert_eq!(kinds.iter().filter(|k| *k == "review.record").count(), 2);
}

#[test]
fn an_hsm_absent_at_start_is_recorded_lost_and_taken_back() {
    let (s, emu) = setup(&[], "");
    // The ledger's first start signs its genesis with the HSM; then the
    // device is unplugged while cairnd is stopped.
    let d = Daemon::start_with_config(&s.config, &s.state);
    assert_eq!(d.stop().code(), Some(0));
    emu.unplug();
    // keep-signing (the default): cairnd starts, records go on, no
    // checkpoint is signed.
    let d = Daemon::start_with_config(&s.config, &s.state);
    let h = health(&d);
    assert_eq!(
        (h["hsm"]["state"].clone(), h["status"].clone()),
        ("lost".into(), "degraded".into()),
        "{h}"
    );
    assert_eq!(review(&d, "while the HSM is absent"), 201);
    assert_eq!(checkpoint(&d), 503);
    let _emu = Emulator::start(&s.emu_state, &s.link, &[]);
    wait_for("the checkpoint after the HSM's return", || {
        let h = health(&d);
        h["hsm"]["state"] == "present" && h["checkpoint_size"] == h["records"]
    });
    assert_eq!(d.stop().code(), Some(0));
    let records = ledger_records(&s.state);
    let lost = records.iter().position(|r| r.kind == "hsm.lost").unwrap();
    let start = records
        .iter()
        .rposition(|r| r.kind == "daemon.start")
        .unwrap();
    let back = records
        .iter()
        .position(|r| r.kind == "hsm.restored")
        .unwrap();
    assert!(
        lost < start && start < back,
        "{:?}",
        records.iter().map(|r| &r.kind).collect::<Vec<_>>()
    );
    let reason = records[lost].body["reason"].as_str().unwrap();
    assert!(reason.starts_with("absent at start"), "{reason}");
    let out = cairn_ok(&["verify", s.state.to_str().unwrap()]);
    assert!(out.contains("OK:"), "{out}");
}

#[test]
fn with_a_tpm_too_an_absent_hsm_delays_the_counter_checkpoint_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let tpm = format!("tpm = \"emulated:{}\"\n", dir.path().join("tpm").display());
    let (s, emu) = setup(&[], &tpm);
    let d = Daemon::start_with_config(&s.config, &s.state);
    assert_eq!(health(&d)["tpm"]["check"], "bound");
    assert_eq!(d.stop().code(), Some(0));
    emu.unplug();
    // Without the HSM no checkpoint is signed, so the start's counter
    // checkpoint waits; the counter check itself runs.
    let d = Daemon::start_with_config(&s.config, &s.state);
    let h = health(&d);
    assert_eq!(
        (h["tpm"]["check"].clone(), h["hsm"]["state"].clone()),
        ("in-step".into(), "lost".into()),
        "{h}"
    );
    let counter = h["tpm"]["counter"].as_u64().unwrap();
    let _emu = Emulator::start(&s.emu_state, &s.link, &[]);
    wait_for("the checkpoint after the HSM's return", || {
        let h = health(&d);
        h["hsm"]["state"] == "present" && h["checkpoint_size"] == h["records"]
    });
    assert_eq!(health(&d)["tpm"]["counter"].as_u64(), Some(counter + 1));
    assert_eq!(d.stop().code(), Some(0));
    let d = Daemon::start_with_config(&s.config, &s.state);
    assert_eq!(health(&d)["tpm"]["check"], "in-step");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_missing_device_under_refuse_records_or_a_wrong_one_stops_the_start() {
    let (s, emu) = setup(&[], "hsm_lost = \"refuse-records\"\n");
    let start_fails_with = |why: &str| {
        let out = workspace_command("cairnd")
            .arg("--config")
            .arg(&s.config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    };
    emu.unplug();
    start_fails_with("cannot open the HSM");
    // Another device (another key) at the configured path is refused.
    let other = s.emu_state.with_file_name("other.state");
    let _other = Emulator::start(&other, &s.link, &[]);
    start_fails_with("wrong device");
}
