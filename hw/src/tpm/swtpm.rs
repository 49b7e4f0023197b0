//! The behaviour tests against a real `swtpm` (feature `tpm`): each test
//! starts its own swtpm on its own state directory, so tests run in
//! parallel; "outside" is `tpm2_pcrextend` from tpm2-tools.
//!
//! swtpm listens on loopback TCP, not on a unix socket: tss-esapi 7's
//! `TctiNameConf` knows only `host` and `port` for the swtpm TCTI and
//! drops libtss2's `path=`. Each test takes a free port pair (server,
//! control = server + 1), never handed out twice in this process, and
//! tries the next pair if swtpm cannot listen.

use super::behaviour::{behaviour_tests, Fixture};
use super::{EsapiTpm, Tpm};
use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ports this process already gave a swtpm.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free loopback port whose successor is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Some(next) = port.checked_add(1) else {
            continue;
        };
        let mut taken = TAKEN.lock().unwrap();
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

/// A swtpm process and its state directory.
pub(super) struct Swtpm {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Swtpm {
    pub(super) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let mut s = Self {
            dir,
            port: 0,
            child: None,
        };
        while !s.spawn(free_port_pair()) {}
        s
    }

    pub(super) fn tcti(&self) -> String {
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
            .arg(format!("dir={}", self.dir.path().join("state").display()))
            .args(["--flags", "startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm (apt-get install swtpm)");
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ready when both its ports answer: the TCTI opens the control
        // port as well as the command port.
        let listening = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(listening(port) && listening(port + 1)) {
            if child.try_wait().unwrap().is_some() {
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
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Fixture for Swtpm {
    fn open(&mut self) -> Box<dyn Tpm> {
        Box::new(EsapiTpm::open(&self.tcti()).unwrap())
    }
    fn restart(&mut self) {
        self.stop();
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.spawn(port) {
            assert!(Instant::now() < deadline, "swtpm could not listen again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn extend_outside(&mut self, pcr: u8, digest: &[u8; 32]) {
        let out = Command::new("tpm2_pcrextend")
            .arg(format!("{pcr}:sha256={}", hex::encode(digest)))
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

behaviour_tests!(Swtpm::start());

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "swtpm {name}: p50 {:.2} ms, max {:.2} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

/// Times each operation against swtpm (printed with `--nocapture`; the
/// README's figures), checking every result on the way.
#[test]
fn latencies_of_each_operation() {
    let fx = Swtpm::start();
    let mut tpm = EsapiTpm::open(&fx.tcti()).unwrap();
    let seed = [7u8; 32];
    let nonce = [9u8; 32];
    let ak = tpm.ak_public().unwrap();
    let (mut seal, mut unseal, mut extend, mut quote, mut count) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..10 {
        let t = Instant::now();
        let sealed = tpm.seal(&seed, super::SEAL_PCRS).unwrap();
        seal.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(*tpm.unseal(&sealed).unwrap(), seed);
        unseal.push(t.elapsed());
        let t = Instant::now();
        tpm.pcr_extend(super::CHECKPOINT_PCR, &seed).unwrap();
        extend.push(t.elapsed());
        let t = Instant::now();
        let q = tpm.quote(super::QUOTE_PCRS, &nonce).unwrap();
        quote.push(t.elapsed());
        super::verify_quote(&q, &ak, &nonce).unwrap();
        let t = Instant::now();
        tpm.counter_increment().unwrap();
        count.push(t.elapsed());
    }
    report("seal", seal);
    report("unseal", unseal);
    report("extend", extend);
    report("quote", quote);
    report("counter increment", count);
}
