//! `cairn inventory --format cyclonedx`: the models a daemon loaded, from
//! its verified ledger, as a CycloneDX 1.6 ML-BOM that the official JSON
//! schema accepts (tests/cyclonedx/validate).

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::{cairn, cairn_ok, ledger_records, Daemon};

/// Runs the schema validator on `boms`; returns (success, output).
fn validate(boms: &[&Path]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cyclonedx/validate");
    let out = Command::new(&script)
        .args(boms)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (needs python3 and npm)", script.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A generated model in `format` (gguf or safetensors) under `dir`.
fn model(dir: &Path, format: &str, seed: &str) -> PathBuf {
    let out = dir.join(format!("{format}-{seed}"));
    cairn_ok(&[
        "models",
        "generate",
        "--format",
        format,
        "--seed",
        seed,
        "--out",
        out.to_str().unwrap(),
    ]);
    if format == "safetensors" {
        return out;
    }
    std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap()
}

#[test]
fn the_models_a_daemon_loaded_make_a_valid_cyclonedx_ml_bom() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();
    let st = model(tmp.path(), "safetensors", "21");
    let gone = model(tmp.path(), "gguf", "22");
    let d = Daemon::start(&state, &["--demo"]);
    cairn_ok(&[
        "models",
        "add",
        "--state-dir",
        s,
        "st",
        st.to_str().unwrap(),
    ]);
    cairn_ok(&[
        "models",
        "add",
        "--state-dir",
        s,
        "gone",
        gone.to_str().unwrap(),
    ]);
    cairn_ok(&["models", "remove", "--state-dir", s, "gone"]);
    // While the daemon runs, through the checkpoint it makes.
    let bom_running = tmp.path().join("running.cdx.json");
    cairn_ok(&["inventory", s, "--out", bom_running.to_str().unwrap()]);
    assert!(d.stop().success());

    let bom_path = tmp.path().join("bom.cdx.json");
    let out = cairn(&[
        "inventory",
        s,
        "--format",
        "cyclonedx",
        "--out",
        bom_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 model(s) loaded at checkpoint"));
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bom_path).unwrap()).unwrap();
    assert_eq!(bom["specVersion"], "1.6");
    assert_eq!(bom, {
        let mut running: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&bom_running).unwrap()).unwrap();
        // Only the serial number, time and checkpoint differ.
        running["serialNumber"] = bom["serialNumber"].clone();
        running["metadata"] = bom["metadata"].clone();
        running
    });

    // The components are the models loaded at the end, as their records say.
    let loaded: Vec<_> = ledger_records(&state)
        .into_iter()
        .filter(|r| r.kind == "model.loaded")
        .collect();
    let components = bom["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| {
            c["properties"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "cairn:name")
                .unwrap()["value"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        ["demo-tiny", "st"],
        "the removed model is not on the appliance"
    );
    for c in components {
        assert_eq!(c["type"], "machine-learning-model");
        let digest = c["bom-ref"].as_str().unwrap();
        let rec = loaded
            .iter()
            .rev()
            .find(|r| r.model.as_deref() == Some(digest))
            .unwrap();
        assert_eq!(
            c["hashes"][0]["content"],
            digest.trim_start_matches("blake3:")
        );
        let files = rec.body["files"].as_str().unwrap().lines().count();
        assert_eq!(c["components"].as_array().unwrap().len(), files);
        let format = c["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cairn:format")
            .unwrap()["value"]
            .clone();
        assert_eq!(
            format,
            if rec.body["name"] == "st" {
                "safetensors"
            } else {
                "gguf"
            }
        );
        assert!(c["modelCard"]["modelParameters"]["architectureFamily"].is_string());
    }

    // The official schema accepts it, and the history's (with licences
    // and source URLs); it refuses a broken one, so the check is real.
    let history = tmp.path().join("history");
    let out = cairn_tests::workspace_command("cairn-test-history")
        .args(["--records", "600", "--days", "30", "--out"])
        .arg(&history)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bom_history = tmp.path().join("history.cdx.json");
    cairn_ok(&[
        "inventory",
        history.to_str().unwrap(),
        "--out",
        bom_history.to_str().unwrap(),
    ]);
    let h: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bom_history).unwrap()).unwrap();
    assert_eq!(
        h["components"][0]["licenses"][0]["license"]["name"],
        "llama3.2"
    );
    assert_eq!(
        h["components"][1]["licenses"][0]["license"]["id"],
        "Apache-2.0"
    );
    assert!(h["components"][1]["externalReferences"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let (ok, text) = validate(&[&bom_path, &bom_history]);
    assert!(ok, "{text}");
    let broken = tmp.path().join("broken.cdx.json");
    let mut b = bom.clone();
    b["components"][0]["type"] = "large-language-model".into();
    std::fs::write(&broken, serde_json::to_vec(&b).unwrap()).unwrap();
    let (ok, text) = validate(&[&broken]);
    assert!(!ok && text.contains("large-language-model"), "{text}");

    // A log that does not verify gets no inventory.
    let journal = state.join("records.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let n = bytes.len();
    bytes[n - 200] ^= 1;
    std::fs::write(&journal, bytes).unwrap();
    let out = cairn(&["inventory", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{out:?}"
    );
}
