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
use cairn_tests::{
    cairn_export_with, cairn_ok, cairn_verify, ledger_records, scaled, workspace_command, Daemon,
};

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

/// Writes `DIR/NAME`: a configuration for `state` with the emulated TPM
/// whose state is `DIR/TPM`.
fn emulated_tpm_config(dir: &Path, name: &str, state: &Path, tpm: &str) -> PathBuf {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[hw]\ntpm = \"emulated:{}\"\n",
            dir.join(tpm).display()
        ),
    )
    .unwrap();
    config
}

/// Replaces a bundle file and its line in SHA256SUMS (a forger who can
/// recompute checksums).
fn rewrite_with_sums(bundle: &Path, name: &str, bytes: &[u8]) {
    use sha2::Digest as _;
    std::fs::write(bundle.join(name), bytes).unwrap();
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    let fixed: String = sums
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, n)) if n == name => {
                format!("{}  {n}\n", hex::encode(sha2::Sha256::digest(bytes)))
            }
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(bundle.join("SHA256SUMS"), fixed).unwrap();
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
    let (ledger_counter, tpm_counter) = (
        b["ledger_counter"].as_u64().unwrap(),
        b["tpm_counter"].as_u64().unwrap(),
    );
    assert!(ledger_counter < tpm_counter, "{b}");
    assert!(
        records_of(&state, "daemon.start").len() == 1,
        "no start recorded"
    );
    // Still refused the next time: nothing was accepted, and the TPM's
    // counter did not move.
    let (code, err) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);
    assert!(err.contains("rollback detected"), "{err}");
    let detected = records_of(&state, "tpm.rollback_detected");
    assert_eq!(detected.len(), 2);
    assert_eq!(detected[1].body["tpm_counter"], tpm_counter);
    // Removing the counter checkpoints (and the index) does not help: the
    // log's binding record is older than the TPM too.
    std::fs::remove_file(state.join("checkpoints.journal")).unwrap();
    std::fs::remove_dir_all(state.join("index")).unwrap();
    let (code, err) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);
    assert!(err.contains("rollback detected"), "{err}");

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
    assert!(accepted[0].body["attestation_key"]["public"].is_string());
    let d = Daemon::start_with_config(&config, &state);
    assert_eq!(health_tpm(&d)["check"], "in-step");

    // An export carries the TPM's quote over its checkpoint, which
    // `cairn verify` checks against the key the log published.
    review(&d, "to export");
    let out = dir.join("exports");
    std::fs::create_dir(&out).unwrap();
    let exported = cairn_export_with(&state, &out, &["--full"]);
    let bundle = PathBuf::from(exported["dir"].as_str().unwrap());
    assert!(bundle.join("tpm-quote.json").is_file());
    assert_eq!(d.stop().code(), Some(0));
    let export_record = records_of(&state, "ledger.export").pop().unwrap();
    assert_eq!(export_record.seq, exported["record"]["seq"]);
    let tpm_fact = &export_record.body["tpm"];
    assert_eq!(tpm_fact["pcr"], 23, "{tpm_fact}");
    let (code, report) = cairn_verify(&bundle, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("the checkpoint was extended into PCR 23 and quoted")
            && report.contains("the key the log published in record"),
        "{report}"
    );
    let quote: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("tpm-quote.json")).unwrap()).unwrap();
    assert_eq!(quote["pcrs"]["23"], tpm_fact["value"]);
    // A quote altered (its checksum fixed up) fails, naming the file.
    let mut forged = quote.clone();
    forged["pcr_before"] = "11".repeat(32).into();
    rewrite_with_sums(
        &bundle,
        "tpm-quote.json",
        &serde_json::to_vec(&forged).unwrap(),
    );
    let (code, report) = cairn_verify(&bundle, &[]);
    assert_ne!(code, 0, "{report}");
    assert!(report.contains("tpm-quote.json: quote refused"), "{report}");
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
fn plain_keys_bind_are_recorded_as_plain_and_can_be_sealed() {
    // A ledger made before the TPM was configured: its key files are
    // plain, the first start with a TPM binds the counter and records
    // where the keys are; `cairn keys seal` seals them in place.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    cairn_ok(&["keys", "init", "--dir", state.to_str().unwrap()]);
    let d = Daemon::start(&state, &[]);
    assert_eq!(d.stop().code(), Some(0));
    let config = emulated_tpm_config(dir.path(), "cairnd.toml", &state, "hw/tpm");
    let d = Daemon::start_with_config(&config, &state);
    assert_eq!(health_tpm(&d)["check"], "bound");
    assert_eq!(d.stop().code(), Some(0));
    let shown = cairn_ok(&["keys", "show", "--dir", state.to_str().unwrap()]);
    assert_eq!(shown.matches("software file").count(), 3, "{shown}");
    let start = records_of(&state, "daemon.start").pop().unwrap();
    assert_eq!(start.body["key_files"]["operational"], "software file");
    // Bound now: without the TPM it does not start, until the operator
    // says so, on the record.
    let s = state.to_str().unwrap();
    let (code, err) = start_fails(&["--state-dir", s]);
    assert_ne!(code, 0);
    assert!(err.contains("bound to a TPM"), "{err}");
    let d = Daemon::start(&state, &["--accept-rollback"]);
    assert_eq!(d.stop().code(), Some(0));
    assert_eq!(records_of(&state, "tpm.removed").len(), 1);
    let d = Daemon::start(&state, &[]);
    assert_eq!(d.stop().code(), Some(0));
    let out = cairn_ok(&["keys", "seal", "--config", config.to_str().unwrap()]);
    assert_eq!(out.matches("sealed now").count(), 3, "{out}");
    let out = cairn_ok(&["keys", "seal", "--config", config.to_str().unwrap()]);
    assert_eq!(out.matches("sealed already").count(), 3, "{out}");
    let d = Daemon::start_with_config(&config, &state);
    assert_eq!(health_tpm(&d)["check"], "in-step");
    assert_eq!(d.stop().code(), Some(0));
    let start = records_of(&state, "daemon.start").pop().unwrap();
    assert_eq!(
        start.body["key_files"]["identity"],
        "file sealed to the TPM"
    );
    let (code, report) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{report}");
    // Without the TPM's configuration, cairnd starts on the plain files;
    // a ledger whose keys are sealed does not.
    let sealed = dir.path().join("sealed");
    let cfg2 = emulated_tpm_config(dir.path(), "sealed.toml", &sealed, "hw/tpm2");
    cairn_ok(&["keys", "init", "--config", cfg2.to_str().unwrap()]);
    let (code, err) = start_fails(&["--state-dir", sealed.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("sealed to a TPM"), "{err}");
}

#[test]
fn a_new_ledger_on_a_tpm_that_counted_needs_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        emulated_tpm_config(
            dir.path(),
            &format!("{name}.toml"),
            &dir.path().join(name),
            "hw/tpm",
        )
    };
    // The first ledger binds and counts.
    let first = config("first");
    cairn_ok(&["keys", "init", "--config", first.to_str().unwrap()]);
    let d = Daemon::start_with_config(&first, &dir.path().join("first"));
    assert_eq!(health_tpm(&d)["check"], "bound");
    assert_eq!(d.stop().code(), Some(0));
    // A second ledger on the same TPM (a reinstallation, or a state
    // directory from before the TPM was configured) is refused …
    let second = config("second");
    let cfg = second.to_str().unwrap();
    cairn_ok(&["keys", "init", "--config", cfg]);
    let (code, err) = start_fails(&["--config", cfg]);
    assert_ne!(code, 0);
    assert!(err.contains("never bound to this TPM"), "{err}");
    let state = dir.path().join("second");
    assert_eq!(
        records_of(&state, "tpm.rollback_detected")[0].body["verdict"],
        "never-bound"
    );
    // … until the operator accepts it.
    let d = Daemon::start_with_config_and(&second, &state, &["--accept-rollback"]);
    assert_eq!(health_tpm(&d)["check"], "rollback-accepted");
    assert_eq!(d.stop().code(), Some(0));
    let d = Daemon::start_with_config(&second, &state);
    assert_eq!(health_tpm(&d)["check"], "in-step");
    assert_eq!(d.stop().code(), Some(0));
}
