//! A real `swtpm` for tests: each one on its own state directory and its
//! own loopback ports, so tests run in parallel; "outside the daemon" is
//! `tpm2_pcrextend` from tpm2-tools.
//!
//! swtpm listens on loopback TCP, not on a unix socket: tss-esapi 7's
//! `TctiNameConf` knows only `host` and `port` for the swtpm TCTI and
//! drops libtss2's `path=`. Each swtpm takes a free port pair (server,
//! control = server + 1), never handed out twice in this process, and
//! tries the next pair if swtpm cannot listen.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ports this process already gave a swtpm.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free loopback port whose successor is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a loopback port")
            .local_addr()
            .expect("its address")
            .port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
        let taken = taken.get_or_insert_with(HashSet::new);
        if taken.contains(&port) || taken.contains(&next) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", next)).is_ok() {
            taken.insert(port);
            taken.insert(next);
            return port;
        }
    }
}

/// A swtpm process and its state directory; killed on drop.
pub struct Swtpm {
    state: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Swtpm {
    /// Starts a swtpm whose state lives in `state` (created if missing).
    pub fn start(state: PathBuf) -> Self {
        std::fs::create_dir_all(&state).expect("swtpm state directory");
        let mut s = Self {
            state,
            port: 0,
            child: None,
        };
        while !s.spawn(free_port_pair()) {}
        s
    }

    /// Its TCTI, as `hw.tpm` and `TPM2TOOLS_TCTI` name it.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Starts swtpm on `port` (and `port + 1`); false if it could not
    /// listen there.
    fn spawn(&mut self, port: u16) -> bool {
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", self.state.display()))
            .args(["--flags", "startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm (apt-get install swtpm)");
        let deadline = Instant::now() + crate::scaled(Duration::from_secs(10));
        // Ready when both its ports answer: the TCTI opens the control
        // port as well as the command port.
        let listening = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(listening(port) && listening(port + 1)) {
            if child.try_wait().expect("swtpm status").is_some() {
                return false;
            }
            assert!(Instant::now() < deadline, "swtpm did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.port = port;
        self.child = Some(child);
        true
    }

    /// Kills swtpm (SIGKILL: a power cut, no orderly shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills swtpm and starts it again on the same state and ports (a
    /// reboot: PCRs reset, NV memory kept).
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        let deadline = Instant::now() + crate::scaled(Duration::from_secs(10));
        while !self.spawn(port) {
            assert!(Instant::now() < deadline, "swtpm could not listen again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Extends sha256 PCR `pcr` with `digest` from outside, with
    /// `tpm2_pcrextend`.
    pub fn extend_outside(&self, pcr: u8, digest: &[u8; 32]) {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let out = Command::new("tpm2_pcrextend")
            .arg(format!("{pcr}:sha256={hex}"))
            .env("TPM2TOOLS_TCTI", self.tcti())
            .output()
            .expect("tpm2_pcrextend (apt-get install tpm2-tools)");
        assert!(
            out.status.success(),
            "tpm2_pcrextend: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}
