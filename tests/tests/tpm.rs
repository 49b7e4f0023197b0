//! The TPM end to end, on the emulated TPM and on a real swtpm: `cairn keys
//! init --config` seals the key seeds to PCR 7; `cairnd` with `[hw] tpm`
//! binds its checkpoints to the TPM's counter; a state directory restored
//! from an older copy is refused at start with a `tpm.rollback_detected`
//! record, and accepted only by `--accept-rollback`, itself a record; once
//! PCR 7 is extended from outside, the keys no longer unseal and cairnd
//! does not start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_hw::tpm::Tpm as _;
use cairn_tests::swtpm::Swtpm;
use cairn_tests::{cairn_ok, cairn_verify, ledger_records, scaled, workspace_command, Daemon};

/// The TPM a test runs against.
trait Backend {
    /// `hw.tpm`.
    fn spec(&self) -> String;
    /// Extends PCR 7 from outside cairnd (while it is stopped).
    fn extend_pcr7_outside(&mut self);
}

struct Emulated(PathBuf);

impl Backend for Emulated {
    fn spec(&self) -> String {
        format!("emulated:{}", self.0.display())
    }
    fn extend_pcr7_outside(&mut self) {
        let mut tpm = cairn_hw::tpm::EmulatedTpm::open(&self.0).unwrap();
        tpm.pcr_extend(7, &[0x42; 32]).unwrap();
    }
}

impl Backend for Swtpm {
    fn spec(&self) -> String {
        self.tcti()
    }
    fn extend_pcr7_outside(&mut self) {
        self.extend_outside(7, &[0x42; 32]);
    }
}

/// Runs cairnd with `args`, expecting it to refuse to start: its exit code
/// and standard error.
fn start_fails(args: &[&str]) -> (i32, String) {
    let mut child = workspace_command("cairnd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairnd");
    let deadline = Instant::now() + scaled(Duration::from_secs(30));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairnd {args:?} did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn health_tpm(d: &Daemon) -> serde_json::Value {
    d.request("GET", "/healthz", None).json()["tpm"].clone()
}

fn review(d: &Daemon, note: &str) {
    let body = serde_json::json!({ "note": note }).to_string();
    let r = d.request("POST", "/v1/admin/reviews", Some(body.as_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
}

fn copy_dir(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn records_of(state: &Path, kind: &str) -> Vec<cairn_attest::Record> {
    ledger_records(state)
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

fn rollback_is_refused_recorded_and_accepted_only_by_the_operator(
    dir: &Path,
    tpm: &mut dyn Backend,
) {
    let state = dir.join("state");
    let config = dir.join("cairnd.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[ledger]\ncheckpoint_every_secs = 3600\n[hw]\ntpm = {:?}\n",
            tpm.spec()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = cairn_ok(&["keys", "init", "--config", cfg]);
    assert_eq!(out.matches("file sealed to the TPM").count(), 3, "{out}");
    let key = std::fs::read_to_string(state.join("keys/operational.key")).unwrap();
    assert!(key.starts_with("cairn-sealed-key/v1"), "{key}");

    // First start: the ledger binds to the counter, and the start's
    // checkpoint carries it.
    let d = Daemon::start_with_config(&config, &state);
    let t = health_tpm(&d);
    assert_eq!(t["check"], "bound", "{t}");
    let bound = t["counter"].as_u64().unwrap();
    review(&d, "before the backup");
    assert_eq!(d.stop().code(), Some(0));
    let bound_rec = &records_of(&state, "tpm.counter_bound")[0];
    // The start's checkpoint incremented it once.
    assert_eq!(bound_rec.body["counter"].as_u64(), Some(bound - 1));
    assert!(bound_rec.body["attestation_key"]["public"].is_string());

    // A backup, then more work the backup does not have.
    let backup = dir.join("backup");
    copy_dir(&state, &backup);
    let d = Daemon::start_with_config(&config, &state);
    let t = health_tpm(&d);
    assert_eq!(t["check"], "in-step", "{t}");
    assert!(t["counter"].as_u64().unwrap() > bound, "{t}");
    review(&d, "after the backup");
    assert_eq!(d.stop().code(), Some(0));

    // Restoring the backup is refused, with a record saying why.
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::rename(&backup, &state).unwrap();
    let (code, err) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);
    assert!(
        err.contains("rollback detected") && err.contains("--accept-rollback"),
        "{err}"
    );
    let detected = records_of(&state, "tpm.rollback_detected");
    assert_eq!(detected.len(), 1);
    let b = &detected[0].body;
    assert_eq!(b["verdict"], "state-older-than-tpm", "{b}");
    assert!(
        b["ledger_counter"].as_u64() < b["tpm_counter"].as_u64(),
        "{b}"
    );
    assert!(
        records_of(&state, "daemon.start").len() == 1,
        "no start recorded"
    );
    // Still refused the next time: nothing was accepted.
    let (code, _) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);

    // The operator accepts it, once, on the record.
    let d = Daemon::start_with_config_and(&config, &state, &["--accept-rollback"]);
    assert_eq!(health_tpm(&d)["check"], "rollback-accepted");
    assert_eq!(d.stop().code(), Some(0));
    let accepted = records_of(&state, "tpm.rollback_accepted");
    assert_eq!(accepted.len(), 1);
    match &accepted[0].actor {
        cairn_attest::Actor::Unix { uid, .. } => {
            assert_eq!(*uid, nix::unistd::getuid().as_raw())
        }
        other => panic!("accepted by {other:?}"),
    }
    let d = Daemon::start_with_config(&config, &state);
    assert_eq!(health_tpm(&d)["check"], "in-step");
    assert_eq!(d.stop().code(), Some(0));
    let (code, report) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{report}");

    // PCR 7 changes (another Secure Boot policy): the keys stay sealed.
    tpm.extend_pcr7_outside();
    let (code, err) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot unseal"), "{err}");
    let shown = cairn_ok(&["keys", "show", "--dir", state.to_str().unwrap()]);
    assert!(shown.contains("file sealed to the TPM"), "{shown}");
}

#[test]
fn emulated_tpm_refuses_a_restored_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut tpm = Emulated(dir.path().join("hw/tpm"));
    rollback_is_refused_recorded_and_accepted_only_by_the_operator(dir.path(), &mut tpm);
}

#[test]
fn swtpm_refuses_a_restored_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut tpm = Swtpm::start(dir.path().join("swtpm"));
    let probe = dir.path().join("probe.toml");
    std::fs::write(
        &probe,
        format!(
            "state_dir = {:?}\n[hw]\ntpm = {:?}\n",
            dir.path().join("probe"),
            tpm.spec()
        ),
    )
    .unwrap();
    let (_, err) = start_fails(&["--config", probe.to_str().unwrap()]);
    assert!(
        !err.contains("built without TPM support"),
        "cairnd was built without the `tpm` feature: build it with `cargo build --workspace --bins --features cairn-daemon/tpm` (tests/run does)"
    );
    rollback_is_refused_recorded_and_accepted_only_by_the_operator(dir.path(), &mut tpm);
}

#[test]
fn a_tpm_configured_without_sealed_keys_still_binds_and_says_so() {
    // A ledger made before the TPM was configured: its key files are
    // plain, and the first start with a TPM binds the counter.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    cairn_ok(&["keys", "init", "--dir", state.to_str().unwrap()]);
    let d = Daemon::start(&state, &[]);
    assert_eq!(d.stop().code(), Some(0));
    let config = dir.path().join("cairnd.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[hw]\ntpm = \"emulated:{}\"\n",
            dir.path().join("hw/tpm").display()
        ),
    )
    .unwrap();
    let d = Daemon::start_with_config(&config, &state);
    assert_eq!(health_tpm(&d)["check"], "bound");
    assert_eq!(d.stop().code(), Some(0));
    let shown = cairn_ok(&["keys", "show", "--dir", state.to_str().unwrap()]);
    assert_eq!(shown.matches("software file").count(), 3, "{shown}");
    // Without the TPM's configuration, cairnd starts on the plain files;
    // a ledger whose keys are sealed does not.
    let sealed = dir.path().join("sealed");
    let cfg2 = dir.path().join("sealed.toml");
    std::fs::write(
        &cfg2,
        format!(
            "state_dir = {sealed:?}\n[hw]\ntpm = \"emulated:{}\"\n",
            dir.path().join("hw/tpm2").display()
        ),
    )
    .unwrap();
    cairn_ok(&["keys", "init", "--config", cfg2.to_str().unwrap()]);
    let (code, err) = start_fails(&["--state-dir", sealed.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("sealed to a TPM"), "{err}");
}
