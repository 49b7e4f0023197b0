//! Anchoring an exported checkpoint: a timestamp authority (OpenSSL's
//! `ts -reply`, with a certificate made for the test) answers the bundle's
//! `checkpoint.tsq`; `cairn anchor import` verifies the response and the
//! daemon records it. A response from another authority, for another
//! checkpoint, or an OpenTimestamps proof of another digest is refused and
//! not recorded.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_tests::{cairn, cairn_verify, ledger_records, Daemon};
use sha2::{Digest, Sha256};

/// A self-signed timestamping certificate and key in `dir`, and the
/// OpenSSL configuration of a TSA using them.
fn make_tsa(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "extendedKeyUsage=critical,timeStamping"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    let cnf = dir.join("tsa.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {}\ncrypto_device = builtin\n\
             signer_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\n\
             ess_cert_id_alg = sha256\n",
            dir.join("serial").display()
        ),
    )
    .unwrap();
    (cert, key, cnf)
}

/// The TSA's answer to `tsq`.
fn reply(tsq: &Path, (cert, key, cnf): &(PathBuf, PathBuf, PathBuf), out: &Path) {
    let r = Command::new("openssl")
        .args(["ts", "-reply", "-queryfile"])
        .arg(tsq)
        .arg("-signer")
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-config")
        .arg(cnf)
        .arg("-out")
        .arg(out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
}

fn export(ledger: &Path, to: &Path) -> PathBuf {
    PathBuf::from(
        cairn_tests::cairn_export(ledger, to)["dir"]
            .as_str()
            .unwrap(),
    )
}

fn import(file: &Path, bundle: &Path, cert: Option<&Path>, state: &Path) -> (i32, String) {
    let mut args = vec![
        "anchor",
        "import",
        file.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    if let Some(c) = cert {
        args.extend(["--tsa-cert", c.to_str().unwrap()]);
    }
    let out = cairn(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

/// An OpenTimestamps proof header committing to `digest`, with some bytes
/// standing in for the attestations.
fn ots(digest: &[u8]) -> Vec<u8> {
    let mut v = b"\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94".to_vec();
    v.extend([1, 0x08]);
    v.extend(digest);
    v.extend([
        0xf0, 0x10, 0x00, 0x83, 0xdf, 0xe3, 0x0d, 0x2e, 0xf9, 0x0c, 0x8e,
    ]);
    v
}

#[test]
fn timestamp_receipts_are_verified_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let daemon = Daemon::start(&state, &["--demo"]);
    let out = dir.path().join("stick");
    std::fs::create_dir(&out).unwrap();
    let first = export(&state, &out);
    let second = export(&state, &out);
    let tsa = make_tsa(&dir.path().join("tsa"), "Test TSA");
    let other_tsa = make_tsa(&dir.path().join("other"), "Other TSA");

    // The authority's answer to the first bundle's request: recorded.
    let tsr = dir.path().join("first.tsr");
    reply(&first.join("checkpoint.tsq"), &tsa, &tsr);
    let (code, text) = import(&tsr, &first, Some(&tsa.0), &state);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("RFC 3161 timestamp of") && text.contains("Test TSA"),
        "{text}"
    );

    // Against another authority's certificate; for the other bundle; with
    // no certificate: refused.
    let (code, text) = import(&tsr, &first, Some(&other_tsa.0), &state);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("not signed by the given TSA certificate"),
        "{text}"
    );
    let (code, text) = import(&tsr, &second, Some(&tsa.0), &state);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("imprint differs"), "{text}");
    let (code, text) = import(&tsr, &first, None, &state);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--tsa-cert"), "{text}");
    // Signed by the other authority, checked against it: the signature is
    // right but the certificate is not the one the operator trusts.
    let other_tsr = dir.path().join("other.tsr");
    reply(&first.join("checkpoint.tsq"), &other_tsa, &other_tsr);
    let (code, text) = import(&other_tsr, &first, Some(&tsa.0), &state);
    assert_eq!(code, 2, "{text}");
    // A response altered after signing.
    let mut forged = std::fs::read(&tsr).unwrap();
    let n = forged.len();
    forged[n - 40] ^= 0x01;
    let forged_path = dir.path().join("forged.tsr");
    std::fs::write(&forged_path, forged).unwrap();
    assert_eq!(import(&forged_path, &first, Some(&tsa.0), &state).0, 2);

    // OpenTimestamps: a proof of the checkpoint's SHA-256 is recorded, one
    // of anything else refused.
    let cp = std::fs::read(second.join("checkpoint")).unwrap();
    let good = dir.path().join("second.ots");
    std::fs::write(&good, ots(&Sha256::digest(&cp))).unwrap();
    let (code, text) = import(&good, &second, None, &state);
    assert_eq!(code, 0, "{text}");
    let bad = dir.path().join("bad.ots");
    std::fs::write(&bad, ots(&[7u8; 32])).unwrap();
    let (code, text) = import(&bad, &second, None, &state);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("commits to"), "{text}");
    daemon.stop();

    // Exactly the two good receipts are in the log, tied to their
    // checkpoints; the log verifies.
    let anchors: Vec<_> = ledger_records(&state)
        .into_iter()
        .filter(|r| r.kind == "ledger.anchor")
        .collect();
    assert_eq!(anchors.len(), 2, "{anchors:?}");
    let first_cp = std::fs::read(first.join("checkpoint")).unwrap();
    assert_eq!(anchors[0].body["kind"], "rfc3161");
    assert_eq!(
        anchors[0].body["checkpoint_sha256"],
        hex::encode(Sha256::digest(&first_cp))
    );
    assert!(anchors[0].body["tsa"]
        .as_str()
        .unwrap()
        .contains("Test TSA"));
    assert_eq!(anchors[1].body["kind"], "opentimestamps");
    assert_eq!(
        anchors[1].body["checkpoint_sha256"],
        hex::encode(Sha256::digest(&cp))
    );
    assert_eq!(cairn_verify(&state, &[]).0, 0);
}
