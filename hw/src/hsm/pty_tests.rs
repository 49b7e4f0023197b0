//! The client and the real serial backend against the emulator on a
//! pseudo-terminal, with the emulator's faults.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use super::emulator::{open_pty, serve, Device, EmulatorState, Faults, ServeEnd};
use super::protocol::{MAX_PAYLOAD, MAX_SIGN_MESSAGE, SIGNATURE_LEN};
use super::{HsmClient, HsmError, SerialTransport, Timing};
use cairn_attest::keys::{Algorithm, PublicKey};

/// A device served on a thread from the state file in `dir`.
fn emulator_in(
    dir: &std::path::Path,
    faults: Faults,
) -> (PathBuf, JoinHandle<std::io::Result<ServeEnd>>) {
    let mut device = Device::new(EmulatorState::open_or_create(&dir.join("s")).unwrap()).unwrap();
    let (master, path) = open_pty().unwrap();
    (
        path,
        std::thread::spawn(move || serve(master, &mut device, faults)),
    )
}

fn point(link: &std::path::Path, at: &std::path::Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(at, link).unwrap();
}

#[test]
fn the_signer_is_lost_on_unplug_and_taken_back_only_with_its_key() {
    use super::{Health, HsmSigner};
    use cairn_attest::keys::Signer;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyHSM");
    // STATUS, PUBLIC_KEY and one SIGN, then unplugged.
    let (pty, first) = emulator_in(
        dir.path(),
        Faults {
            fail_after: Some(3),
            ..Faults::default()
        },
    );
    point(&link, &pty);
    let timing = Timing {
        timeout: Duration::from_millis(500),
        retries: 2,
    };
    let hsm = HsmSigner::open(&link, "log.example", timing).unwrap();
    let sig = hsm.sign(b"cp", b"cairn/checkpoint/v1").unwrap();
    assert!(hsm.public_key().verify(b"cp", &sig, b"cairn/checkpoint/v1"));
    let err = hsm
        .sign(b"cp2", b"cairn/checkpoint/v1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone"), "{err}");
    assert!(matches!(hsm.health(), Health::Lost { .. }));
    first.join().unwrap().unwrap();
    // Lost: no I/O, an immediate error.
    let t = std::time::Instant::now();
    assert!(hsm
        .sign(b"cp3", b"")
        .unwrap_err()
        .to_string()
        .contains("is lost"));
    assert!(t.elapsed() < Duration::from_millis(50));
    assert!(matches!(hsm.probe().0, Health::Lost { .. }));
    // Another device (another key) at the path is not taken.
    let other = tempfile::tempdir().unwrap();
    let (pty, _t) = emulator_in(other.path(), Faults::default());
    point(&link, &pty);
    match hsm.probe().0 {
        Health::Lost { why, .. } => assert!(why.contains("different key"), "{why}"),
        h => panic!("{h:?}"),
    }
    // The same device replugged is.
    let (pty, _t) = emulator_in(dir.path(), Faults::default());
    point(&link, &pty);
    let (health, status) = hsm.probe();
    assert_eq!(health, Health::Present);
    assert!(status.unwrap().ready);
    let sig = hsm.sign(b"cp4", b"cairn/checkpoint/v1").unwrap();
    assert!(hsm
        .public_key()
        .verify(b"cp4", &sig, b"cairn/checkpoint/v1"));
    assert_eq!(hsm.increment_counter().unwrap(), 1);
    assert!(!hsm.can_race());
}

struct Emu {
    path: PathBuf,
    public: Vec<u8>,
    thread: JoinHandle<std::io::Result<ServeEnd>>,
    _dir: tempfile::TempDir,
}

fn emulator(faults: Faults) -> Emu {
    let dir = tempfile::tempdir().unwrap();
    let mut device =
        Device::new(EmulatorState::open_or_create(&dir.path().join("s")).unwrap()).unwrap();
    let public = device.public_key().to_vec();
    let (master, path) = open_pty().unwrap();
    let thread = std::thread::spawn(move || serve(master, &mut device, faults));
    Emu {
        path,
        public,
        thread,
        _dir: dir,
    }
}

fn client(e: &Emu, timeout_ms: u64) -> HsmClient<SerialTransport> {
    HsmClient::new(
        SerialTransport::open(&e.path).unwrap(),
        Timing {
            timeout: Duration::from_millis(timeout_ms),
            retries: 2,
        },
    )
}

#[test]
fn every_command_over_a_pty() {
    let e = emulator(Faults::default());
    let mut c = client(&e, 2000);
    let st = c.status().unwrap();
    assert!(st.ready);
    assert_eq!(st.counter, 0);
    assert!(st.firmware.starts_with("cairn-hsm-emu"));
    assert_eq!(c.public_key().unwrap(), e.public);
    let pk = PublicKey::new("log.example", Algorithm::MlDsa65, e.public.clone()).unwrap();
    let msg = vec![b'x'; MAX_SIGN_MESSAGE];
    let sig = c.sign(&msg, b"").unwrap();
    assert_eq!(sig.len(), SIGNATURE_LEN);
    assert!(pk.verify(&msg, &sig, b""));
    // A checkpoint-sized message, timed (printed with --nocapture: the
    // README quotes it).
    let mut times = Vec::new();
    for i in 0..50u32 {
        let msg =
            format!("log.example/cairn/1\n{i}\nbnIzml6s14ULn6ZBsc8zXz0CteRjp6zhVFslmvdyL2M=\n");
        let t = std::time::Instant::now();
        let sig = c.sign(msg.as_bytes(), b"cairn/checkpoint/v1").unwrap();
        times.push(t.elapsed());
        assert!(pk.verify(msg.as_bytes(), &sig, b"cairn/checkpoint/v1"));
    }
    times.sort();
    eprintln!(
        "HSM sign over a pty (emulator, test build): p50 {:?}, p90 {:?}, max {:?}",
        times[25], times[45], times[49]
    );
    // Message and context fill one payload with the context length byte.
    let sig = c.sign(&[7; MAX_PAYLOAD - 3], b"ab").unwrap();
    assert!(pk.verify(&[7; MAX_PAYLOAD - 3], &sig, b"ab"));
    assert!(matches!(
        c.sign(&[7; MAX_PAYLOAD - 2], b"ab"),
        Err(HsmError::Request(_))
    ));
    assert!(matches!(c.sign(b"m", &[0; 256]), Err(HsmError::Request(_))));
    assert_eq!(c.increment_counter().unwrap(), 1);
    assert_eq!(c.increment_counter().unwrap(), 2);
    assert_eq!(c.counter().unwrap(), 2);
    assert_eq!(c.stats().resent, 0);
    // The host closes its port and opens it again: the device serves on.
    drop(c);
    assert_eq!(client(&e, 2000).counter().unwrap(), 2);
}

#[test]
fn garbage_and_wrong_crcs_are_survived_by_resending() {
    let e = emulator(Faults {
        garbage_every: Some(1),
        corrupt_every: Some(3),
        ..Faults::default()
    });
    let mut c = client(&e, 2000);
    let pk = PublicKey::new("log.example", Algorithm::MlDsa65, e.public.clone()).unwrap();
    for i in 0..12u32 {
        let msg = i.to_le_bytes();
        let sig = c.sign(&msg, b"ctx").unwrap();
        assert!(pk.verify(&msg, &sig, b"ctx"));
    }
    let s = c.stats();
    assert!(s.bad_crc >= 3, "{s:?}");
    assert!(s.resent >= 3, "{s:?}");
    // An increment whose answer is garbled is not resent: the outcome is
    // unknown, and reading the counter tells it.
    let mut unknown = 0;
    for _ in 0..6 {
        match c.increment_counter() {
            Ok(_) => {}
            Err(HsmError::Unknown(_)) => unknown += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(unknown >= 1);
    assert_eq!(c.counter().unwrap(), 6);
}

#[test]
fn an_unplugged_device_is_a_link_failure() {
    let e = emulator(Faults {
        fail_after: Some(2),
        ..Faults::default()
    });
    let mut c = client(&e, 2000);
    c.status().unwrap();
    c.public_key().unwrap();
    let err = c.sign(b"m", b"").unwrap_err();
    assert!(err.is_link_failure(), "{err}");
    assert!(matches!(err, HsmError::Link(_)), "{err}");
    // serve returned; the test thread drops the master, as the process
    // would on exit.
    assert_eq!(e.thread.join().unwrap().unwrap(), ServeEnd::Unplugged);
    assert!(matches!(c.status(), Err(HsmError::Link(_))));
}

#[test]
fn a_hung_device_times_out() {
    let e = emulator(Faults {
        hang_after: Some(1),
        ..Faults::default()
    });
    let mut c = client(&e, 300);
    c.status().unwrap();
    let started = std::time::Instant::now();
    let err = c.status().unwrap_err();
    assert!(matches!(err, HsmError::Timeout(_)), "{err}");
    assert!(err.is_link_failure());
    assert!(started.elapsed() < Duration::from_secs(2));
}
