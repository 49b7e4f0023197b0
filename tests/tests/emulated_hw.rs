//! The demo's default, emulated hardware, end to end: `cairnd --demo` (the
//! README's command) with the emulated TPM, the serial HSM emulator on a
//! pseudo-terminal and a USB stick behind the UDisks2 look-alike on a
//! private `dbus-daemon`, used through the same code as real devices: the
//! identity key in the HSM, the other keys sealed to the TPM, checkpoints
//! bound to its counter, `cairn export --usb` onto the stick with a TPM
//! quote, and a configuration's `hw.mode = "emulated"`.

use std::path::{Path, PathBuf};

use cairn_tests::{cairn, cairn_ok, cairn_verify, ledger_records, Daemon};

fn health(d: &Daemon) -> serde_json::Value {
    d.request("GET", "/healthz", None).json()
}

fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = cairn(args);
    assert!(out.status.success(), "cairn {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn the_demo_runs_on_emulated_hardware_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo");
    let hw = dir.path().join("demo-hw");
    let s = state.to_str().unwrap();
    let d = Daemon::start_demo(&state);
    let h = health(&d);
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["emulated_hw"]["mode"], "emulated", "{h}");
    assert_eq!(h["tpm"]["check"], "bound", "{h}");
    assert_eq!(h["hsm"]["state"], "present", "{h}");
    let bus = h["emulated_hw"]["usb"]["bus"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"));
    assert!(bus.starts_with("unix:path="), "{h}");

    let status = cairn_ok(&["status", "--state-dir", s]);
    assert!(
        status.contains("TPM         emulated TPM")
            && status.contains("hardware    emulated in")
            && status.contains("USB stick CAIRN-EXPORT"),
        "{status}"
    );

    // The identity key is in the emulated HSM, the others are sealed.
    let keys = ok_json(&["keys", "show", "--dir", s, "--json"]);
    let held = |role: &str| keys["keys"][role]["held_by"].as_str().unwrap().to_string();
    assert_eq!(
        held("identity"),
        format!("serial HSM {}", hw.join("ttyHSM").display())
    );
    assert_eq!(held("operational"), "file sealed to the TPM");
    assert_eq!(held("cosigner"), "file sealed to the TPM");

    // A chat, then an export onto the emulated stick through UDisks2.
    let chat = cairn(&["chat", "--state-dir", s, "--max-tokens", "4", "hello"]);
    let receipt = String::from_utf8_lossy(&chat.stderr);
    assert!(
        chat.status.success() && receipt.contains("receipt: request record"),
        "{receipt}"
    );
    let exported = ok_json(&["export", "--ledger", s, "--usb", "--json"]);
    let bundle = PathBuf::from(
        exported["dir"]
            .as_str()
            .unwrap_or_else(|| panic!("{exported}")),
    );
    let name = bundle.file_name().unwrap();
    let on_stick = hw.join("usb/stick").join(name);
    assert!(on_stick.join("tpm-quote.json").is_file(), "{exported}");
    let (code, report) = cairn_verify(&on_stick, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("extended into PCR 23 and quoted (an emulated TPM"),
        "{report}"
    );
    assert_eq!(d.stop().code(), Some(0));

    let export = ledger_records(&state)
        .into_iter()
        .rfind(|r| r.kind == "ledger.export")
        .unwrap();
    assert_eq!(export.body["medium"]["label"], "CAIRN-EXPORT");
    assert_eq!(export.body["tpm"]["pcr"], 23);

    // The same command again: the same devices, the counter in step.
    let d = Daemon::start_demo(&state);
    let h = health(&d);
    assert_eq!(h["tpm"]["check"], "in-step", "{h}");
    assert_eq!(d.stop().code(), Some(0));
    let (code, report) = cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{report}");
    let start = ledger_records(&state)
        .into_iter()
        .rfind(|r| r.kind == "daemon.start")
        .unwrap();
    assert_eq!(start.body["emulated_hw"]["mode"], "emulated");
    assert_eq!(
        start.body["key_files"]["operational"],
        "file sealed to the TPM"
    );
}

#[test]
fn a_configuration_can_ask_for_emulated_hardware() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let hw = dir.path().join("devices");
    let config = dir.path().join("cairnd.toml");
    std::fs::write(
        &config,
        format!("state_dir = {state:?}\n[hw]\nmode = \"emulated\"\nemulated_dir = {hw:?}\n"),
    )
    .unwrap();
    let out = cairn_ok(&["keys", "init", "--config", config.to_str().unwrap()]);
    assert!(
        out.contains("serial HSM") && out.contains("file sealed to the TPM"),
        "{out}"
    );
    assert!(hw.join("hsm.state").is_file() && hw.join("tpm").is_file());
    let d = Daemon::start_with_config(&config, &state);
    let h = health(&d);
    assert_eq!(h["emulated_hw"]["dir"], hw.to_str().unwrap(), "{h}");
    assert_eq!(h["tpm"]["check"], "bound", "{h}");
    assert_eq!(d.stop().code(), Some(0));
    // `--hw none` does not override a configuration's [hw], and the same
    // ledger without its devices does not start.
    let out = cairn_tests::workspace_command("cairnd")
        .args(["--config", config.to_str().unwrap(), "--hw", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("change the configuration"), "{err}");
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, format!("state_dir = {state:?}\n")).unwrap();
    let out = cairn_tests::workspace_command("cairnd")
        .args(["--config", bare.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set hw.hsm"), "{err}");
    check_dir_is_private(&hw);
}

fn check_dir_is_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
}
