//! Helpers shared by cairn's end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod swtpm;

/// The path of a binary built from this workspace (`cairn`, `cairnd`, …),
/// next to the test executable's directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut p = std::env::current_exe().expect("test executable path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    let bin = p.join(name);
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (tests/run does)",
        bin.display()
    );
    bin
}

/// A command that runs a binary built from this workspace.
///
/// When `CAIRN_TEST_RUNNER` is set, the binary runs under that program
/// (whitespace-separated words, like cargo's `target.<triple>.runner`):
/// `tests/aarch64` sets it to `qemu-aarch64-static`, so that tests cross-built
/// for aarch64 can start the aarch64 `cairn` and `cairnd` without binfmt.
pub fn workspace_command(name: &str) -> Command {
    let bin = workspace_bin(name);
    let runner = std::env::var("CAIRN_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// `d` stretched by `CAIRN_TEST_TIME_SCALE` (a number ≥ 1, default 1), for
/// tests run under emulation: `tests/aarch64` runs them under qemu-user,
/// many times slower, and sets it so that they wait longer (and let work run
/// longer before a kill) while asserting the same.
pub fn scaled(d: std::time::Duration) -> std::time::Duration {
    let Ok(scale) = std::env::var("CAIRN_TEST_TIME_SCALE") else {
        return d;
    };
    match scale.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 1.0 => d.mul_f64(f),
        _ => panic!("CAIRN_TEST_TIME_SCALE must be a number ≥ 1, not {scale:?}"),
    }
}

/// Runs `cairn ARGS…` and returns its output.
pub fn cairn(args: &[&str]) -> Output {
    workspace_command("cairn")
        .args(args)
        .output()
        .expect("run cairn")
}

/// Runs `cairn ARGS…`, requires success, and returns its standard output.
pub fn cairn_ok(args: &[&str]) -> String {
    let out = cairn(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cairn {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cairn verify DIR` and returns (exit code, stdout).
pub fn cairn_verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", dir.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let out = cairn(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs `cairn export --ledger LEDGER --to TO --json` (it must succeed) and
/// returns its JSON answer (`dir`, `manifest`, `sums_sha256`, `record`).
pub fn cairn_export(ledger: &Path, to: &Path) -> serde_json::Value {
    cairn_export_with(ledger, to, &[])
}

/// [`cairn_export`] with more arguments.
pub fn cairn_export_with(ledger: &Path, to: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "export",
        "--ledger",
        ledger.to_str().expect("utf-8 path"),
        "--to",
        to.to_str().expect("utf-8 path"),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = cairn(&args);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("cairn export --json answers JSON")
}

/// Every record in the ledger of a stopped (or killed) daemon, in order.
pub fn ledger_records(state: &Path) -> Vec<cairn_attest::Record> {
    let files = cairn_attest::ledger_files::LedgerFiles::open(state).expect("open the ledger");
    files
        .log_bytes()
        .entries
        .iter()
        .map(|e| {
            cairn_attest::entry::Entry::parse(e.bytes)
                .expect("a valid entry")
                .record
        })
        .collect()
}

/// A response read from the daemon.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The raw header block.
    pub headers: String,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request over a Unix socket (`Connection: close`).
pub fn http_unix(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The daemon may answer (413) and close before a large body is sent.
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    let mut raw = Vec::new();
    // After an early answer the daemon may close with the body unread; the
    // answer is still in our receive queue even if the read then fails.
    let read = s.read_to_end(&mut raw);
    assert!(read.is_ok() || !raw.is_empty(), "read response: {read:?}");
    assert!(
        !raw.is_empty(),
        "cairnd closed the connection without answering"
    );
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header block");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// A running `cairnd`, stopped with SIGTERM (or killed) on drop.
pub struct Daemon {
    /// The child process.
    pub child: std::process::Child,
    /// Its state directory.
    pub state_dir: PathBuf,
}

impl Daemon {
    /// Starts `cairnd --state-dir DIR EXTRA…` and waits until its socket
    /// answers. Its model cache is empty: `--demo` serves the generated
    /// model alone.
    pub fn start(state_dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_model_cache(state_dir, extra, &state_dir.join("empty-model-cache"))
    }

    /// Like [`Daemon::start`], with `CAIRN_MODEL_CACHE` set to `cache`.
    ///
    /// `--demo` gets `--hw none` unless `extra` chooses `--hw`: these
    /// tests are about the gate and the API, on software keys;
    /// `tests/emulated_hw.rs` runs the demo's default, emulated hardware.
    pub fn start_with_model_cache(state_dir: &Path, extra: &[&str], cache: &Path) -> Daemon {
        let mut args = vec!["--state-dir", state_dir.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let chooses_hw = extra.iter().any(|a| *a == "--hw" || a.starts_with("--hw="));
        if extra.contains(&"--demo") && !chooses_hw {
            args.extend_from_slice(&["--hw", "none"]);
        }
        Self::spawn(&args, state_dir, cache)
    }

    /// Starts `cairnd --demo --state-dir DIR` exactly as the README runs
    /// it: emulated hardware, a generated model (the model cache is empty).
    pub fn start_demo(state_dir: &Path) -> Daemon {
        Self::spawn(
            &[
                "--demo",
                "--state-dir",
                state_dir.to_str().expect("utf-8 path"),
            ],
            state_dir,
            &state_dir.join("empty-model-cache"),
        )
    }

    /// Starts `cairnd --config FILE` whose state directory is `state_dir`.
    pub fn start_with_config(config: &Path, state_dir: &Path) -> Daemon {
        Self::start_with_config_and(config, state_dir, &[])
    }

    /// Starts `cairnd --config FILE EXTRA…` whose state directory is
    /// `state_dir`.
    pub fn start_with_config_and(config: &Path, state_dir: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec!["--config", config.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        Self::spawn(&args, state_dir, &state_dir.join("empty-model-cache"))
    }

    fn spawn(args: &[&str], state_dir: &Path, model_cache: &Path) -> Daemon {
        let child = workspace_command("cairnd")
            .args(args)
            .env("CAIRN_MODEL_CACHE", model_cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn cairnd");
        let mut d = Daemon {
            child,
            state_dir: state_dir.to_path_buf(),
        };
        let start_timeout = scaled(std::time::Duration::from_secs(30));
        let deadline = std::time::Instant::now() + start_timeout;
        loop {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("cairnd exited during start-up: {status}");
            }
            if std::os::unix::net::UnixStream::connect(d.socket()).is_ok() {
                return d;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cairnd did not start within {start_timeout:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("cairnd.sock")
    }

    /// A request to the daemon.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> HttpResponse {
        http_unix(&self.socket(), method, path, body)
    }

    /// SIGTERM, and the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.child.wait().expect("wait for cairnd")
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small tmpfs mounted for a test (needs root; CI runs as root), so a
/// test can fill a real filesystem. Unmounted on drop.
pub struct Tmpfs {
    /// The mount point.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"6m"`) on a new directory `path`.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        assert!(
            ok.map(|s| s.success()).unwrap_or(false),
            "this test needs root to mount a small tmpfs (tests/run is run as root on CI)"
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
