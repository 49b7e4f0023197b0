//! The SIEM forwarder against a real syslog receiver: Debian's rsyslogd on
//! a loopback TCP port with a private configuration, down when cairnd
//! starts, then up, then restarted while records keep coming. Every
//! record must arrive (RFC 5424 with a CEF payload; at least once, told
//! apart by its sequence number), and the JSON-lines file must hold each
//! record exactly once, in order; a restarted cairnd resumes where it
//! left off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cairn_tests::{cairn_ok, Daemon};

/// A private rsyslogd writing what it receives on `port` to `out`.
struct Rsyslog {
    child: Child,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16, out: &Path) -> Rsyslog {
        let bin = Path::new("/usr/sbin/rsyslogd");
        assert!(
            bin.exists(),
            "rsyslogd is missing: apt-get install rsyslog (tests/run does)"
        );
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{}")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="cairn") {{ action(type="omfile" file="{}" template="raw") }}
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="cairn")
"#,
                work.display(),
                out.display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child }
    }

    /// SIGTERM, as a service manager stops it.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ask(d: &Daemon, n: usize) {
    for i in 0..n {
        let body = serde_json::json!({
            "model": "m",
            "messages": [{"role": "system", "content": "be brief | a=b \\ c"}, {"role": "user", "content": format!("question {i}")}],
            "max_tokens": 3,
        })
        .to_string();
        let r = d.request("POST", "/v1/chat/completions", Some(body.as_bytes()));
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn size(d: &Daemon) -> u64 {
    d.request("GET", "/healthz", None).json()["records"]
        .as_u64()
        .unwrap()
}

/// Sequence number → the chain hashes received for it, from the syslog
/// file.
fn received(out: &Path) -> BTreeMap<u64, Vec<String>> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut got: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {line}"))
                .to_string()
        };
        got.entry(field("externalId=").parse().unwrap())
            .or_default()
            .push(field("cs2="));
    }
    got
}

fn wait_for(out: &Path, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received(out);
        if (0..n).all(|s| got.contains_key(&s)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s the receiver has {} of {n} records",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The chain hash of every record in the ledger.
fn hashes(state: &Path) -> Vec<String> {
    let files = cairn_attest::ledger_files::LedgerFiles::open(state).unwrap();
    files
        .log_bytes()
        .entries
        .iter()
        .map(|e| {
            cairn_attest::entry::Entry::parse(e.bytes)
                .unwrap()
                .hash()
                .to_hex()
        })
        .collect()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_record_reaches_rsyslog_and_the_json_lines_file() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    cairn_ok(&["keys", "init", "--dir", state.to_str().unwrap()]);
    let model_dir = tmp.path().join("model");
    cairn_ok(&["models", "generate", "--out", model_dir.to_str().unwrap()]);
    let model: PathBuf = std::fs::read_dir(&model_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap();
    let port = free_port();
    let out = tmp.path().join("syslog.out");
    let lines = tmp.path().join("records.jsonl");
    let config = tmp.path().join("cairnd.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[[models]]\nname = \"m\"\npath = {:?}\n[siem]\nsyslog = \"tcp://127.0.0.1:{port}\"\njsonl = {:?}\nhostname = \"cairn-test\"\n",
            state.display().to_string(),
            model.display().to_string(),
            lines.display().to_string()
        ),
    )
    .unwrap();

    // The receiver is down when cairnd starts.
    let d = Daemon::start_with_config(&config, &state);
    ask(&d, 10);
    std::thread::sleep(Duration::from_millis(500));
    assert!(received(&out).is_empty());
    let rs = Rsyslog::start(tmp.path(), port, &out);
    wait_for(&out, size(&d));
    // Restarted while records keep coming.
    rs.stop();
    ask(&d, 10);
    std::thread::sleep(Duration::from_millis(600));
    let rs = Rsyslog::start(tmp.path(), port, &out);
    ask(&d, 5);
    wait_for(&out, size(&d));
    assert!(d.stop().success());

    let want = hashes(&state);
    let n = want.len() as u64;
    wait_for(&out, n); // daemon.stop, sent as cairnd stopped
    let got = received(&out);
    assert_eq!(
        got.keys().copied().collect::<BTreeSet<_>>(),
        (0..n).collect(),
        "every record, nothing else"
    );
    let mut copies = 0;
    for (seq, hs) in &got {
        assert!(
            hs.iter().all(|h| *h == want[*seq as usize]),
            "record {seq}: {hs:?}"
        );
        copies += hs.len() - 1;
    }
    eprintln!("{n} records reached rsyslogd; {copies} sent again after the restart (told apart by externalId)");

    // RFC 5424 headers and CEF payloads.
    let text = std::fs::read_to_string(&out).unwrap();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.splitn(8, ' ').collect();
        assert!(
            parts[0].starts_with("<13") && parts[0].ends_with(">1"),
            "{line}"
        );
        assert_eq!((parts[2], parts[3]), ("cairn-test", "cairnd"), "{line}");
        assert_eq!(parts[6], "-");
        let cef = parts[7];
        assert!(cef.starts_with("CEF:0|cairn|cairnd|"), "{line}");
        let unescaped = cef.replace("\\\\", "").replace("\\|", "");
        assert!(unescaped.matches('|').count() == 7, "{line}");
    }
    assert!(text.contains("|inference.request|inference request|1|"));

    // JSON lines: each record exactly once, in order, as stored.
    let l = jsonl(&lines);
    assert_eq!(l.len() as u64, n);
    for (i, v) in l.iter().enumerate() {
        assert_eq!(v["seq"], i as u64);
        assert_eq!(v["hash"], want[i].as_str());
        assert!(v["entry"].as_str().unwrap().contains("\n\n\u{2014} "));
    }

    // A restart resumes from the persisted positions: nothing sent twice.
    let before = received(&out).values().map(Vec::len).sum::<usize>();
    let d = Daemon::start_with_config(&config, &state);
    ask(&d, 2);
    assert!(d.stop().success());
    let n2 = hashes(&state).len() as u64;
    wait_for(&out, n2);
    let after = received(&out);
    let resent: usize = after.range(..n).map(|(_, v)| v.len()).sum::<usize>() - before;
    assert_eq!(resent, 0, "records already delivered were sent again");
    assert_eq!(jsonl(&lines).len() as u64, n2);
    rs.stop();
}
