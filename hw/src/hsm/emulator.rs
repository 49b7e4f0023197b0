//! The emulated HSM: the device's side of the protocol, the state file
//! that keeps its key seed and counter, and the loop that serves a
//! pseudo-terminal's master side (the `cairn-hsm-emu` binary), with the
//! faults real hardware has (unplug, hang, line noise, bit errors) on
//! demand.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cairn_attest::keys::{Signer, SoftwareMlDsa65};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use zeroize::Zeroizing;

use super::protocol::{
    self, error_payload, Command, Decoder, ErrorKind, Frame, FrameError, ERROR_CODE,
    IDLE_RESYNC_MS, MAX_CONTEXT, RESPONSE_BIT, UNTAGGED,
};

/// First line of the state file.
const STATE_HEADER: &str = "cairn-hsm-emulator-state/v1";

/// The emulator's persistent state: the identity key's seed and the
/// counter, in a 0600 file rewritten atomically (temporary file, fsync,
/// rename, fsync of the directory).
pub struct EmulatorState {
    path: PathBuf,
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
}

impl EmulatorState {
    /// Loads `path`, or creates it with a fresh random seed and counter 0.
    /// A file that group or others can read is refused.
    pub fn open_or_create(path: &Path) -> io::Result<Self> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("{}: the state file must have mode 0600", path.display()),
                    ));
                }
                Self::load(path)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::getrandom(seed.as_mut()).map_err(io::Error::other)?;
                let state = EmulatorState {
                    path: path.to_path_buf(),
                    seed,
                    counter: 0,
                };
                state.save()?;
                Ok(state)
            }
            Err(e) => Err(e),
        }
    }

    fn load(path: &Path) -> io::Result<Self> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        let mut text = Zeroizing::new(String::new());
        File::open(path)?
            .take(4096)
            .read_to_string(&mut text)
            .map_err(|_| bad("not a text file"))?;
        let mut lines = text.lines();
        if lines.next() != Some(STATE_HEADER) {
            return Err(bad("not an HSM emulator state file"));
        }
        let seed = lines
            .next()
            .and_then(|l| l.strip_prefix("seed "))
            .and_then(|b| B64.decode(b).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| bad("no base64 seed line"))?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| bad("the seed is not 32 bytes"))?;
        let counter = lines
            .next()
            .and_then(|l| l.strip_prefix("counter "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("no counter line"))?;
        Ok(EmulatorState {
            path: path.to_path_buf(),
            seed: Zeroizing::new(seed),
            counter,
        })
    }

    /// The counter.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    fn save(&self) -> io::Result<()> {
        let body = Zeroizing::new(format!(
            "{STATE_HEADER}\nseed {}\ncounter {}\n",
            B64.encode(self.seed.as_ref()),
            self.counter
        ));
        crate::state_file::replace_private(&self.path, body.as_bytes())
    }

    /// Adds one to the counter and persists it; on failure the counter is
    /// unchanged.
    fn increment(&mut self) -> Result<u64, ErrorKind> {
        let next = self
            .counter
            .checked_add(1)
            .ok_or(ErrorKind::CounterExhausted)?;
        let before = self.counter;
        self.counter = next;
        if self.save().is_err() {
            self.counter = before;
            return Err(ErrorKind::Storage);
        }
        Ok(next)
    }
}

/// The device: answers decoded requests.
pub struct Device {
    key: SoftwareMlDsa65,
    state: EmulatorState,
}

/// The firmware name STATUS reports.
pub const FIRMWARE: &str = concat!("cairn-hsm-emu ", env!("CARGO_PKG_VERSION"));

impl Device {
    /// The device for a state.
    pub fn new(state: EmulatorState) -> io::Result<Self> {
        let key = SoftwareMlDsa65::from_seed("hsm", &state.seed)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Device { key, state })
    }

    /// The identity public key.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().bytes()
    }

    /// The answer to what the decoder produced, or `None` for line noise
    /// (garbage bytes are not answered).
    pub fn answer(&mut self, decoded: Result<Frame, FrameError>) -> Option<Vec<u8>> {
        let (code, tag, payload) = match decoded {
            Ok(f) => match self.execute(&f) {
                Ok(p) => (f.code | RESPONSE_BIT, f.tag, p),
                Err((kind, why)) => (ERROR_CODE, f.tag, error_payload(kind, &why)),
            },
            Err(e @ (FrameError::BadCrc | FrameError::BadHeader { .. })) => (
                ERROR_CODE,
                UNTAGGED,
                error_payload(ErrorKind::Frame, &e.to_string()),
            ),
            Err(FrameError::Garbage(_) | FrameError::Short(_)) => return None,
        };
        protocol::encode(code, tag, &payload).ok()
    }

    fn execute(&mut self, f: &Frame) -> Result<Vec<u8>, (ErrorKind, String)> {
        let cmd = Command::from_code(f.code).ok_or_else(|| {
            (
                ErrorKind::UnknownCommand,
                format!("command {:#04x}", f.code),
            )
        })?;
        let no_payload = || {
            if f.payload.is_empty() {
                Ok(())
            } else {
                Err((ErrorKind::BadRequest, format!("{cmd:?} takes no payload")))
            }
        };
        match cmd {
            Command::Status => {
                no_payload()?;
                let mut p = vec![1];
                p.extend_from_slice(&self.state.counter.to_le_bytes());
                p.extend_from_slice(FIRMWARE.as_bytes());
                Ok(p)
            }
            Command::PublicKey => {
                no_payload()?;
                Ok(self.public_key().to_vec())
            }
            Command::Sign => {
                let (&n, rest) = f
                    .payload
                    .split_first()
                    .ok_or((ErrorKind::BadRequest, "no context length".to_string()))?;
                let n = n as usize;
                if n > MAX_CONTEXT || rest.len() < n {
                    return Err((
                        ErrorKind::BadRequest,
                        "the context is longer than the payload".into(),
                    ));
                }
                let (ctx, msg) = rest.split_at(n);
                self.key
                    .sign(msg, ctx)
                    .map_err(|e| (ErrorKind::Key, e.to_string()))
            }
            Command::CounterRead => {
                no_payload()?;
                Ok(self.state.counter.to_le_bytes().to_vec())
            }
            Command::CounterIncrement => {
                no_payload()?;
                self.state
                    .increment()
                    .map(|c| c.to_le_bytes().to_vec())
                    .map_err(|k| (k, "the counter was not incremented".into()))
            }
        }
    }
}

/// Faults to inject, counted in answers (1 is the first).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Answer this many requests, then unplug (close the line) when the
    /// next one arrives.
    pub fail_after: Option<u64>,
    /// Answer this many requests, then read on and answer nothing.
    pub hang_after: Option<u64>,
    /// Write random bytes (sometimes with a magic) before every Nth answer.
    pub garbage_every: Option<u64>,
    /// Flip a bit of every Nth answer's CRC.
    pub corrupt_every: Option<u64>,
}

/// Opens a pseudo-terminal for the emulator: its slave side raw (no echo,
/// no line editing, 8 bits), and closed again so that the host's port is
/// the only one open on it. Returns the master side and the slave's path.
pub fn open_pty() -> io::Result<(OwnedFd, PathBuf)> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let pty = nix::pty::openpty(None, None)?;
    let mut t = tcgetattr(&pty.slave)?;
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t)?;
    let path = nix::unistd::ttyname(&pty.slave)?;
    Ok((pty.master, path))
}

/// Points `link` at `target`, replacing any earlier link in one rename (as
/// udev's /dev/serial/by-id links follow a replugged device).
pub fn point_link(target: &Path, link: &Path) -> io::Result<()> {
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// Serves the emulated HSM whose state is in `state` on a new
/// pseudo-terminal from a thread of this process (`cairnd --hw
/// emulated`), with `link` pointing at the terminal; returns the
/// terminal's path. The thread serves until the process exits.
pub fn serve_in_thread(state: &Path, link: &Path) -> io::Result<PathBuf> {
    let mut device = Device::new(EmulatorState::open_or_create(state)?)?;
    let (master, pty) = open_pty()?;
    point_link(&pty, link)?;
    std::thread::Builder::new()
        .name("cairn-hsm-emulated".into())
        .spawn(move || {
            if let Err(e) = serve(master, &mut device, Faults::default()) {
                eprintln!("the emulated HSM stopped: {e}");
            }
        })?;
    Ok(pty)
}

/// Why [`serve`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum ServeEnd {
    /// `fail_after` answers were given: the caller closes the line.
    Unplugged,
}

/// Serves the protocol on a pseudo-terminal's master side until
/// `faults.fail_after` says to unplug (or an I/O error). While no process
/// has the slave side open, the master reports a hang-up: the emulator
/// waits for one, as a device waits to be enumerated.
pub fn serve(master: OwnedFd, device: &mut Device, faults: Faults) -> io::Result<ServeEnd> {
    let mut line = File::from(master);
    let mut decoder = Decoder::new();
    let mut answered = 0u64;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [PollFd::new(line.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(IDLE_RESYNC_MS as u16))?;
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());
        if ready == 0 {
            while decoder.idle().is_some() {
                while decoder.decode().is_some() {}
            }
            continue;
        }
        if !revents.contains(PollFlags::POLLIN) {
            // No slave open (POLLHUP): nobody to talk to yet.
            decoder.clear();
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        let n = match line.read(&mut buf) {
            Ok(n) => n,
            // EIO: the slave was closed between poll and read.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => 0,
            Err(e) => return Err(e),
        };
        decoder.push(&buf[..n]);
        while let Some(decoded) = decoder.decode() {
            let is_request = decoded.is_ok();
            if faults.fail_after.is_some_and(|k| answered >= k) && is_request {
                return Ok(ServeEnd::Unplugged);
            }
            if faults.hang_after.is_some_and(|k| answered >= k) {
                continue;
            }
            let Some(mut answer) = device.answer(decoded) else {
                continue;
            };
            answered += 1;
            if faults
                .garbage_every
                .is_some_and(|g| answered.is_multiple_of(g))
            {
                let _ = line.write_all(&garbage()?);
            }
            if faults
                .corrupt_every
                .is_some_and(|c| answered.is_multiple_of(c))
            {
                if let Some(last) = answer.last_mut() {
                    *last ^= 0x10;
                }
            }
            // A write fails only when the host closed the line meanwhile.
            let _ = line.write_all(&answer);
        }
    }
}

/// 1 to 48 random bytes, a magic among them every other time.
fn garbage() -> io::Result<Vec<u8>> {
    let mut r = [0u8; 49];
    getrandom::getrandom(&mut r).map_err(io::Error::other)?;
    let mut g = r[1..1 + (r[0] as usize % 48) + 1].to_vec();
    if r[0] & 1 == 1 && g.len() >= 2 {
        let at = r[2] as usize % (g.len() - 1);
        g[at..at + 2].copy_from_slice(&protocol::MAGIC);
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::protocol::{PUBLIC_KEY_LEN, SIGNATURE_LEN};

    fn device(dir: &Path) -> Device {
        Device::new(EmulatorState::open_or_create(&dir.join("state")).unwrap()).unwrap()
    }

    fn ask(d: &mut Device, code: u8, tag: u16, payload: &[u8]) -> Frame {
        let bytes = d
            .answer(Ok(Frame {
                code,
                tag,
                payload: payload.to_vec(),
            }))
            .unwrap();
        let mut dec = Decoder::new();
        dec.push(&bytes);
        dec.decode().unwrap().unwrap()
    }

    #[test]
    fn the_state_file_is_0600_and_keeps_key_and_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = device(dir.path());
        let pk = d.public_key().to_vec();
        assert_eq!(pk.len(), PUBLIC_KEY_LEN);
        let meta = std::fs::metadata(dir.path().join("state")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        for want in 1..=3u64 {
            let a = ask(&mut d, Command::CounterIncrement as u8, 5, &[]);
            assert_eq!(a.code, 0x85);
            assert_eq!(a.payload, want.to_le_bytes());
        }
        drop(d);
        let mut again = device(dir.path());
        assert_eq!(again.public_key(), pk);
        let a = ask(&mut again, Command::CounterRead as u8, 6, &[]);
        assert_eq!(a.payload, 3u64.to_le_bytes());
        std::fs::set_permissions(
            dir.path().join("state"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(EmulatorState::open_or_create(&dir.path().join("state")).is_err());
    }

    #[test]
    fn signatures_verify_with_the_context_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = device(dir.path());
        let pk = cairn_attest::keys::PublicKey::new(
            "log.example",
            cairn_attest::keys::Algorithm::MlDsa65,
            d.public_key().to_vec(),
        )
        .unwrap();
        let mut req = vec![3];
        req.extend_from_slice(b"abcmessage");
        let a = ask(&mut d, Command::Sign as u8, 9, &req);
        assert_eq!((a.code, a.tag), (0x83, 9));
        assert_eq!(a.payload.len(), SIGNATURE_LEN);
        assert!(pk.verify(b"message", &a.payload, b"abc"));
        assert!(!pk.verify(b"message", &a.payload, b""));
    }

    #[test]
    fn bad_requests_get_error_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = device(dir.path());
        for (code, payload, kind) in [
            (0x42, &b""[..], ErrorKind::UnknownCommand),
            (Command::Sign as u8, &b""[..], ErrorKind::BadRequest),
            (Command::Sign as u8, &b"\x09abc"[..], ErrorKind::BadRequest),
            (Command::Status as u8, &b"x"[..], ErrorKind::BadRequest),
        ] {
            let a = ask(&mut d, code, 11, payload);
            assert_eq!((a.code, a.tag), (ERROR_CODE, 11));
            assert_eq!(a.payload[0], kind as u8, "{code:#x}");
        }
        let bytes = d.answer(Err(FrameError::BadCrc)).unwrap();
        let mut dec = Decoder::new();
        dec.push(&bytes);
        let a = dec.decode().unwrap().unwrap();
        assert_eq!((a.code, a.tag), (ERROR_CODE, UNTAGGED));
        assert_eq!(a.payload[0], ErrorKind::Frame as u8);
        assert!(d.answer(Err(FrameError::Garbage(3))).is_none());
    }

    #[test]
    fn garbage_is_short_and_sometimes_holds_a_magic() {
        let mut magic = false;
        for _ in 0..200 {
            let g = garbage().unwrap();
            assert!((1..=48).contains(&g.len()));
            magic |= g.windows(2).any(|w| w == protocol::MAGIC);
        }
        assert!(magic);
    }
}
