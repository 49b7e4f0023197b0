//! `cairn evidence` end to end: a report over a generated history of more
//! than 100,000 signed records, checked against counts computed here from
//! the journal; its HTML in headless Chromium (screenshot and PDF kept in
//! target/artifacts/); a tampered log's report says so on its first
//! screen; bad input gets clear messages; and reviews clear the
//! re-assessment triggers of a running daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cairn_attest::Record;
use cairn_tests::{cairn, cairn_ok, ledger_records, workspace_command, Daemon};

/// The build's target directory (the test executable is in
/// `target/PROFILE/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Where the tests keep what a person looks at afterwards.
fn artifacts() -> PathBuf {
    let d = target_dir().join("artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The synthetic history of (about) `records` records over 30 days,
/// generated once into target/evidence-history/ (signing 100,000 records
/// takes a minute or two) and reused.
fn history(records: u64) -> PathBuf {
    // Bump when cairn-test-history changes what it writes.
    const VERSION: &str = "v1";
    let root = target_dir().join("evidence-history");
    let dir = root.join(format!("{VERSION}-{records}"));
    if dir.join("facts.json").exists() {
        return dir;
    }
    let tmp = root.join(format!(".{VERSION}-{records}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = Instant::now();
    let out = workspace_command("cairn-test-history")
        .args(["--records", &records.to_string(), "--days", "30", "--out"])
        .arg(&tmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    eprintln!(
        "generated a {records}-record history in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(tmp.join("facts.json"), &out.stdout).unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another test made it meanwhile.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// `cairn evidence ARGS` as JSON (it must succeed).
fn evidence_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["evidence", "--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cairn_ok(&all)).expect("JSON report")
}

fn in_period(r: &Record, from: &str, to: &str) -> bool {
    let day = &r.time[..10];
    day >= from && day <= to
}

#[test]
fn a_report_over_100000_records_takes_seconds_and_agrees_with_the_journal() {
    let dir = history(100_000);
    let d = dir.to_str().unwrap();
    let (from, to) = ("2026-09-05", "2026-09-25");
    let started = Instant::now();
    let r = evidence_json(&[d, "--from", from, "--to", to]);
    let seconds = started.elapsed().as_secs_f64();

    // Counted here, from the journal itself.
    let all = ledger_records(&dir);
    assert!(all.len() >= 100_000, "{} records", all.len());
    let period: Vec<&Record> = all.iter().filter(|x| in_period(x, from, to)).collect();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for x in &period {
        *by_kind.entry(x.kind.clone()).or_default() += 1;
    }
    let requests: Vec<&&Record> = period
        .iter()
        .filter(|x| x.kind == "inference.request")
        .collect();
    let mut per_model: BTreeMap<String, (u64, String, String)> = BTreeMap::new();
    let mut per_day: BTreeMap<(String, String), u64> = BTreeMap::new();
    for x in &requests {
        let digest = x.model.clone().unwrap();
        let e = per_model
            .entry(digest.clone())
            .or_insert((0, x.time.clone(), String::new()));
        e.0 += 1;
        e.2 = x.time.clone();
        *per_day
            .entry((x.time[..10].to_string(), digest))
            .or_default() += 1;
    }

    assert_eq!(r["verification"]["ok"], true, "{}", r["verification"]);
    assert_eq!(r["verification"]["records"], all.len() as u64);
    assert_eq!(r["checkpoint"]["size"], all.len() as u64);
    assert_eq!(r["verification"]["left_out"], 0);
    assert_eq!(r["summary"]["records"], period.len() as u64);
    assert_eq!(r["summary"]["requests"], requests.len() as u64);
    assert_eq!(
        serde_json::to_value(&by_kind).unwrap(),
        r["summary"]["by_kind"]
    );
    let layered: u64 = r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["records"].as_u64().unwrap())
        .sum();
    assert_eq!(layered, period.len() as u64, "every record in one layer");

    // Which models ran, by digest, with first and last use and counts.
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), per_model.len());
    assert_eq!(
        per_model.len(),
        3,
        "a Llama, and a Qwen before and after its swap"
    );
    for m in models {
        let (n, first, last) = &per_model[m["digest"].as_str().unwrap()];
        assert_eq!(m["requests"], *n);
        assert_eq!(m["first_use"], first.as_str());
        assert_eq!(m["last_use"], last.as_str());
        assert!(m["facts"]["license"].is_string(), "{m}");
    }
    // Requests per day per model: the chart's data.
    let days = r["charts"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 21);
    for s in r["charts"]["requests_per_day"].as_array().unwrap() {
        let digest = s["digest"].as_str().unwrap();
        for (day, count) in days.iter().zip(s["counts"].as_array().unwrap()) {
            let want = per_day
                .get(&(day.as_str().unwrap().to_string(), digest.to_string()))
                .copied()
                .unwrap_or(0);
            assert_eq!(count.as_u64().unwrap(), want, "{day} {digest}");
        }
    }

    // Denials, failures, exports.
    let count = |kind: &str| period.iter().filter(|x| x.kind == kind).count() as u64;
    assert_eq!(r["access_denials"]["total"], count("access.denied"));
    assert_eq!(
        r["gate_failures"]["counts"]["inference.failed"],
        count("inference.failed")
    );
    assert_eq!(r["gate_failures"]["counts"]["unclean stop"], 1);
    assert_eq!(r["gate_failures"]["counts"]["inference.aborted"], 1);
    let exports = r["exports"]["exports"].as_array().unwrap();
    assert_eq!(
        exports.iter().filter(|e| e["in_period"] == true).count() as u64,
        count("ledger.export")
    );
    assert!(exports.iter().all(|e| e["matches_log"] == true));
    assert!(r["exports"]["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["check"] == "verified"));
    // The history skips the exports of days 12 to 14: one gap, from the
    // export of the 12th to that of the 16th.
    let gaps = r["exports"]["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0]["from"]
        .as_str()
        .unwrap()
        .starts_with("2026-09-12T02:00"));
    assert!(gaps[0]["to"]
        .as_str()
        .unwrap()
        .starts_with("2026-09-16T02:00"));
    assert!(!r["exports"]["unanchored"].as_array().unwrap().is_empty());

    // Changes with who made them: every model record of the period.
    let model_changes = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"].as_str().unwrap().starts_with("model."))
        .count() as u64;
    assert_eq!(
        model_changes,
        count("model.load") + count("model.loaded") + count("model.unload")
    );
    // Re-assessment: the configuration of day 10 and the swap of day 16
    // were reviewed; the second system prompt (from day 24) never was.
    let triggers = r["reassessment"]["triggers"].as_array().unwrap();
    let open: Vec<_> = triggers
        .iter()
        .filter(|t| t["cleared_by"].is_null())
        .collect();
    assert_eq!(open.len(), 1, "{triggers:?}");
    assert_eq!(open[0]["subject"], "system prompt");
    assert!(open[0]["value"]
        .as_str()
        .unwrap()
        .starts_with("blake3:5555"));
    assert!(triggers
        .iter()
        .any(|t| t["subject"] == "configuration" && !t["cleared_by"].is_null()));
    assert!(triggers.iter().any(|t| t["subject"] == "model"
        && t["value"].as_str().unwrap().starts_with("blake3:3333")
        && !t["cleared_by"].is_null()));
    assert_eq!(r["reassessment"]["reviews"].as_array().unwrap().len(), 2);

    // Findings carry criteria of every framework.
    let criteria: BTreeSet<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["criteria"].as_array().unwrap())
        .map(|c| c["framework"].as_str().unwrap())
        .collect();
    assert_eq!(
        criteria,
        BTreeSet::from(["eu-ai-act", "iso42001", "nist-ai-rmf", "soc2"])
    );
    eprintln!(
        "cairn evidence over {} records ({} in the period): {seconds:.1} s, of which verification {} s",
        all.len(),
        period.len(),
        r["verification"]["seconds"]
    );
    assert!(
        seconds < 120.0,
        "the report took {seconds:.1} s (seconds expected, even on 2 shared cores)"
    );

    // The whole history as HTML, in a browser: screenshot and print.
    let html = artifacts().join("evidence-report.html");
    let started = Instant::now();
    let out = cairn(&[
        "evidence",
        d,
        "--key",
        r["source"]["identity_fingerprint"].as_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    eprintln!(
        "HTML report of the whole history: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let page = std::fs::read_to_string(&html).unwrap();
    for outside in ["<script", " src=", " href=", "url(", "@import"] {
        assert!(
            !page.contains(outside),
            "the page must be self-contained: {outside}"
        );
    }
    assert_eq!(page.matches("<svg ").count(), 4, "four charts");
    let first_screen = &page[..page.find("</header>").unwrap()];
    assert!(first_screen.contains("VERIFIED") && first_screen.contains("pinned with --key"));
    screenshot(&html, &artifacts().join("evidence-report.png"), 3200);
    print_pdf(&html, &artifacts().join("evidence-report.pdf"));
}

/// The Chromium the browser tests use.
fn chromium() -> PathBuf {
    let c = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        c.exists(),
        "{} is missing: install chromium (tests/run does)",
        c.display()
    );
    c
}

fn headless(page: &Path, extra: &[String]) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {out:?}");
}

/// A PNG of the page's first `height` pixels at 1200 wide.
fn screenshot(page: &Path, png: &Path, height: u32) {
    let _ = std::fs::remove_file(png);
    headless(
        page,
        &[
            format!("--window-size=1200,{height}"),
            format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(png).expect("a screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
}

/// The page printed to PDF, as an auditor would print it.
fn print_pdf(page: &Path, pdf: &Path) {
    let _ = std::fs::remove_file(pdf);
    headless(
        page,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".into(),
        ],
    );
    let bytes = std::fs::read(pdf).expect("a PDF");
    assert!(
        bytes.starts_with(b"%PDF") && bytes.len() > 20_000,
        "{} bytes",
        bytes.len()
    );
}

/// A copy of the small history in `to`.
fn small_copy(to: &Path) -> PathBuf {
    let src = history(2_000);
    let dst = to.join("ledger");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["records.journal", "checkpoints.journal"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

#[test]
fn a_log_that_fails_verification_gets_a_report_that_says_so_first() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = small_copy(tmp.path());
    // Change one digit inside a record in the middle of the journal.
    let path = ledger.join("records.journal");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    let pos = at
        + bytes[at..]
            .windows(16)
            .position(|w| w == b"\"prompt_tokens\":")
            .unwrap()
        + 16;
    bytes[pos] = if bytes[pos] == b'9' { b'8' } else { b'9' };
    std::fs::write(&path, bytes).unwrap();

    let html = artifacts().join("evidence-report-failed.html");
    let out = cairn(&[
        "evidence",
        ledger.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("VERIFICATION FAILED"));
    let page = std::fs::read_to_string(&html).unwrap();
    let first_screen = &page[..page.find("</header>").unwrap()];
    assert!(
        first_screen.contains("class=\"verdict fail\""),
        "{first_screen}"
    );
    assert!(first_screen.contains("VERIFICATION FAILED — do not rely on this report"));
    assert!(
        first_screen.contains("stored checksum does not match"),
        "{first_screen}"
    );
    assert!(!page.contains("class=\"verdict ok\"") && !page.contains("<b>Verified</b>"));
    screenshot(&html, &artifacts().join("evidence-report-failed.png"), 1000);

    let out = cairn(&["evidence", ledger.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["verification"]["ok"], false);
    let integrity = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["topic"] == "integrity")
        .unwrap();
    assert_eq!(integrity["status"], "fail");
}

/// Runs `cairn ARGS`; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = cairn(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gets_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let ledger = small_copy(tmp.path());
    let l = ledger.to_str().unwrap();
    let out = tmp.path().join("r.html");
    let o = out.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 9] = [
        (
            &["--framework", "hipaa"],
            2,
            "possible values: soc2, eu-ai-act, iso42001, nist-ai-rmf, all",
        ),
        (
            &["--from", "2026-13-01"],
            2,
            "--from \"2026-13-01\" is not a date of the form YYYY-MM-DD",
        ),
        (
            &["--from", "2026-09-10", "--to", "2026-09-01"],
            2,
            "the period starts (2026-09-10) after it ends (2026-09-01)",
        ),
        (
            &["--from", "2020-01-01", "--to", "2020-01-31"],
            2,
            "ends before the log's first record (2026-09-01T00:00:00.001000Z)",
        ),
        (
            &["--out", "/nonexistent/dir/r.html"],
            2,
            "cannot write /nonexistent/dir/r.html",
        ),
        (
            &["--out", "/tmp"],
            2,
            "cannot write /tmp: it is a directory",
        ),
        (
            &["--at", "12345"],
            2,
            "the log has no checkpoint of size 12345",
        ),
        (
            &["--export-gap-days", "0"],
            2,
            "--export-gap-days must be a positive number",
        ),
        (
            &["--socket", "/nonexistent.sock"],
            2,
            "cannot reach cairnd at /nonexistent.sock",
        ),
    ];
    for (extra, code, needle) in cases {
        let mut args = vec!["evidence", l];
        args.extend_from_slice(extra);
        let (c, _, err) = run(&args);
        assert_eq!(c, code, "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (c, _, err) = run(&["evidence", "/nonexistent", "--out", o]);
    assert_eq!(c, 2);
    assert!(err.contains("cannot read /nonexistent"), "{err}");
    assert!(!out.exists(), "no report is left behind");

    // A period after the last record: a report that says it holds nothing.
    let (c, stdout, err) = run(&[
        "evidence",
        l,
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
        "--format",
        "json",
    ]);
    assert_eq!(c, 0, "{err}");
    assert!(err.contains("No record in this period"), "{err}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["summary"]["records"], 0);
    assert!(r["period"]["notes"][0]
        .as_str()
        .unwrap()
        .contains("No record in this period"));
    // A period starting before the log: said so.
    let (c, _, err) = run(&[
        "evidence",
        l,
        "--from",
        "2026-08-01",
        "--to",
        "2026-09-03",
        "--out",
        o,
    ]);
    assert_eq!(c, 0, "{err}");
    assert!(err.contains("the days before it are not covered"), "{err}");
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("the days before it are not covered"));
    // A report at an earlier checkpoint covers exactly its records.
    let r = evidence_json(&[l, "--at", "1000"]);
    assert_eq!(r["checkpoint"]["size"], 1000);
    assert_eq!(
        r["verification"]["left_out"],
        r["verification"]["records"].as_u64().unwrap() - 1000
    );
    let sum: u64 = r["summary"]["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sum, 1000);
}

/// A chat request with `system` as its system message.
fn chat(d: &Daemon, system: &str) {
    let body = serde_json::json!({
        "model": "demo-tiny",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hello"}],
        "max_tokens": 4,
    })
    .to_string();
    let r = d.request("POST", "/v1/chat/completions", Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn reviews_clear_the_re_assessment_triggers_of_a_running_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let s = state.to_str().unwrap();
    let d = Daemon::start(&state, &["--demo"]);
    chat(&d, "You are a careful assistant.");

    // The request record holds the system prompt's digest, not its text.
    let records = |d: &Daemon| {
        let r = d
            .request("GET", "/v1/audit/records?from=0&limit=1000", None)
            .json();
        r["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let text = e["entry"].as_str().unwrap();
                serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let req = records(&d)
        .into_iter()
        .find(|r| r["kind"] == "inference.request")
        .unwrap();
    let digest = format!(
        "blake3:{}",
        cairn_attest::record::RecordHash::of(br#"["You are a careful assistant."]"#).to_hex()
    );
    assert_eq!(req["body"]["system_prompt"], digest.as_str());

    // While the daemon runs, the report is computed at a checkpoint it
    // makes for it.
    let r = evidence_json(&[s]);
    assert_eq!(r["source"]["daemon_running"], true);
    assert_eq!(r["verification"]["ok"], true);
    let open = |r: &serde_json::Value| -> Vec<String> {
        r["reassessment"]["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["cleared_by"].is_null())
            .map(|t| t["subject"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(open(&r), ["configuration", "model", "system prompt"]);

    let (c, _, err) = run(&["review", "record", "--state-dir", s, "--note", "   "]);
    assert_ne!(c, 0);
    assert!(err.contains("must not be empty"), "{err}");
    let said = cairn_ok(&[
        "review",
        "record",
        "--state-dir",
        s,
        "--note",
        "Demo model and configuration reviewed for the pilot.",
    ]);
    assert!(
        said.contains("(review.record)") && said.contains("demo-tiny blake3:"),
        "{said}"
    );

    let r = evidence_json(&[s]);
    assert!(open(&r).is_empty(), "{}", r["reassessment"]);
    let reviews = r["reassessment"]["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(
        reviews[0]["note"],
        "Demo model and configuration reviewed for the pilot."
    );
    assert!(reviews[0]["reviewer"]
        .as_str()
        .unwrap()
        .starts_with(&format!("uid {}", nix::unistd::getuid())));
    assert_eq!(reviews[0]["cleared"], 3);
    let review = records(&d)
        .into_iter()
        .find(|r| r["kind"] == "review.record")
        .unwrap();
    assert_eq!(review["actor"]["type"], "unix");
    assert!(review["body"]["config_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(review["body"]["models"][0]["name"], "demo-tiny");

    // A new system prompt is a new trigger; the reviewed one is not.
    chat(&d, "You are a careful assistant.");
    chat(&d, "Answer in French.");
    let r = evidence_json(&[s]);
    assert_eq!(open(&r), ["system prompt"]);
    assert!(d.stop().success());
    let (code, out) = cairn_tests::cairn_verify(&state, &[]);
    assert_eq!(code, 0, "{out}");
}
