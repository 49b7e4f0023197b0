//! Where forwarded records go: JSON lines in a file (each record exactly
//! once: the file's last line says where to resume), syslog over TCP (at
//! least once: a batch counts as delivered only once the connection is
//! seen alive a while after it was sent, and the position is persisted),
//! or syslog over UDP (best effort: a datagram to a receiver that is down
//! is lost without notice).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_attest::entry::Entry;

use super::cef::{message, Header};

/// A batch sent over TCP counts as delivered once the connection is still
/// open this long after.
const SETTLE: Duration = Duration::from_millis(250);

/// A destination for records.
pub(super) trait Sink: Send {
    /// What it is, for messages.
    fn describe(&self) -> String;
    /// The sequence number to continue from: the first record not known
    /// to have arrived.
    fn resume(&mut self) -> anyhow::Result<u64>;
    /// Sends entries `from …`, in order.
    fn send(&mut self, from: u64, entries: &[Vec<u8>]) -> anyhow::Result<()>;
    /// Records as delivered what is known to have arrived; fails if what
    /// was sent may have been lost (it is then sent again from
    /// [`Sink::resume`]). With `wait`, first waits until everything sent
    /// can be confirmed.
    fn confirm(&mut self, wait: bool) -> anyhow::Result<()>;
}

/// Syslog over the network.
pub(super) enum Transport {
    /// RFC 6587 octet-counted frames on a TCP connection.
    Tcp,
    /// One RFC 5426 datagram per record.
    Udp,
}

/// A syslog destination with its persisted position.
pub(super) struct Syslog {
    target: String,
    transport: Transport,
    address: String,
    header: Header,
    position_file: PathBuf,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    committed: u64,
    /// Batches sent but not yet confirmed: (next sequence number, when).
    unconfirmed: VecDeque<(u64, Instant)>,
}

impl Syslog {
    /// A destination `target` (`tcp://` or `udp://` and `HOST:PORT`) whose
    /// position is kept in `position_file`.
    pub(super) fn new(
        target: &str,
        header: Header,
        position_file: PathBuf,
    ) -> anyhow::Result<Self> {
        let (transport, address) = super::parse_target(target)?;
        Ok(Syslog {
            target: target.to_owned(),
            transport,
            address: address.to_owned(),
            header,
            position_file,
            tcp: None,
            udp: None,
            committed: 0,
            unconfirmed: VecDeque::new(),
        })
    }

    fn persist(&self) -> anyhow::Result<()> {
        let tmp = self.position_file.with_extension("position.tmp");
        let body = serde_json::json!({"target": self.target, "next": self.committed});
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(body.to_string().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.position_file)
        };
        write().with_context(|| format!("cannot write {}", self.position_file.display()))
    }

    fn connect(&mut self) -> anyhow::Result<()> {
        let addr = self
            .address
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.address))?
            .next()
            .with_context(|| format!("{} resolves to no address", self.address))?;
        match self.transport {
            Transport::Tcp if self.tcp.is_none() => {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .with_context(|| format!("cannot connect to {}", self.target))?;
                s.set_write_timeout(Some(Duration::from_secs(10)))?;
                self.tcp = Some(s);
            }
            Transport::Udp if self.udp.is_none() => {
                let bind = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(bind)?;
                s.connect(addr)
                    .with_context(|| format!("cannot address {}", self.target))?;
                self.udp = Some(s);
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the TCP connection is still open (the receiver closes or
    /// resets it when it stops).
    fn alive(s: &TcpStream) -> bool {
        let mut b = [0u8; 1];
        if s.set_nonblocking(true).is_err() {
            return false;
        }
        let alive = match s.peek(&mut b) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        };
        alive && s.set_nonblocking(false).is_ok()
    }
}

impl Sink for Syslog {
    fn describe(&self) -> String {
        format!("syslog {}", self.target)
    }

    fn resume(&mut self) -> anyhow::Result<u64> {
        self.tcp = None;
        self.unconfirmed.clear();
        self.committed = match std::fs::read(&self.position_file) {
            Ok(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).with_context(|| {
                    format!("{} is not a position file", self.position_file.display())
                })?;
                // Another receiver gets the whole log.
                if v["target"] == self.target.as_str() {
                    v["next"].as_u64().unwrap_or(0)
                } else {
                    0
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}", self.position_file.display()))
            }
        };
        Ok(self.committed)
    }

    fn send(&mut self, from: u64, entries: &[Vec<u8>]) -> anyhow::Result<()> {
        self.connect()?;
        let mut frames = Vec::new();
        let mut datagrams = Vec::new();
        for bytes in entries {
            let e = Entry::parse(bytes)?;
            let m = message(&self.header, &e.record, e.note.text);
            match self.transport {
                Transport::Tcp => {
                    frames.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    frames.extend_from_slice(m.as_bytes());
                }
                Transport::Udp => datagrams.push(m),
            }
        }
        let next = from + entries.len() as u64;
        match self.transport {
            Transport::Tcp => {
                let s = self.tcp.as_mut().context("not connected")?;
                if let Err(e) = s.write_all(&frames) {
                    self.tcp = None;
                    return Err(e).with_context(|| format!("cannot send to {}", self.target));
                }
                self.unconfirmed.push_back((next, Instant::now()));
            }
            Transport::Udp => {
                let s = self.udp.as_ref().context("no socket")?;
                for m in &datagrams {
                    s.send(m.as_bytes())
                        .with_context(|| format!("cannot send to {}", self.target))?;
                }
                self.committed = next;
                self.persist()?;
            }
        }
        Ok(())
    }

    fn confirm(&mut self, wait: bool) -> anyhow::Result<()> {
        let Some(&(_, last_sent)) = self.unconfirmed.back() else {
            return Ok(());
        };
        if wait {
            std::thread::sleep(SETTLE.saturating_sub(last_sent.elapsed()));
        }
        let settled = self
            .unconfirmed
            .iter()
            .rev()
            .find(|(_, at)| at.elapsed() >= SETTLE)
            .map(|(next, _)| *next);
        let Some(next) = settled else {
            return Ok(());
        };
        if !self.tcp.as_ref().is_some_and(Self::alive) {
            self.tcp = None;
            bail!(
                "{} closed the connection; sending again what it may have lost",
                self.target
            );
        }
        self.unconfirmed.retain(|(n, _)| *n > next);
        self.committed = next;
        self.persist()
    }
}

/// JSON lines appended to a file: `{"seq", "hash", "record", "entry"}`.
pub(super) struct Jsonl {
    path: PathBuf,
    file: Option<File>,
}

impl Jsonl {
    /// Lines appended to `path`.
    pub(super) fn new(path: &Path) -> Self {
        Jsonl {
            path: path.to_path_buf(),
            file: None,
        }
    }
}

/// One line of the file: the entry as stored (record text and signature),
/// its chain hash, the record's fields, its sequence number.
#[derive(serde::Serialize)]
struct Line<'a> {
    entry: &'a str,
    hash: String,
    record: &'a cairn_attest::Record,
    seq: u64,
}

/// How every line this sink writes begins.
const LINE_START: &[u8] = b"{\"entry\":";

/// Whether `partial` may be the start of a line this sink wrote.
fn ours(partial: &[u8]) -> bool {
    LINE_START.starts_with(partial) || partial.starts_with(LINE_START)
}

/// The sequence number after the last complete line of `f`; a torn last
/// line (an interrupted write) is cut off. A file that is not this sink's
/// is an error, and left alone.
fn last_complete(f: &mut File, path: &Path) -> anyhow::Result<u64> {
    let len = f.metadata()?.len();
    let foreign = || {
        anyhow::anyhow!(
            "{} is not a cairn JSON-lines file; choose another siem.jsonl",
            path.display()
        )
    };
    let mut back = 0u64;
    let mut tail = Vec::new();
    // Read backwards in growing windows until the last whole line is seen.
    loop {
        back = (back.max(4096) * 2).min(len);
        f.seek(SeekFrom::Start(len - back))?;
        tail.clear();
        Read::by_ref(f).take(back).read_to_end(&mut tail)?;
        let whole = back == len;
        let end = tail.iter().rposition(|&b| b == b'\n').map(|i| i + 1);
        let start = end.and_then(|e| {
            tail[..e - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1)
        });
        let Some(e) = end else {
            if !whole {
                continue;
            }
            // No whole line: an empty file, or a first write torn.
            if !ours(&tail) {
                return Err(foreign());
            }
            f.set_len(0)?;
            return Ok(0);
        };
        if start.is_none() && !whole {
            continue;
        }
        if !ours(&tail[e..]) {
            return Err(foreign());
        }
        let line = &tail[start.unwrap_or(0)..e];
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|_| foreign())?;
        let next = v["seq"].as_u64().map(|s| s + 1).ok_or_else(foreign)?;
        f.set_len(len - back + e as u64)?;
        return Ok(next);
    }
}

impl Sink for Jsonl {
    fn describe(&self) -> String {
        format!("JSON lines {}", self.path.display())
    }

    fn resume(&mut self) -> anyhow::Result<u64> {
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let next = last_complete(&mut f, &self.path)?;
        self.file = Some(f);
        Ok(next)
    }

    fn send(&mut self, _from: u64, entries: &[Vec<u8>]) -> anyhow::Result<()> {
        let mut out = Vec::new();
        for bytes in entries {
            let e = Entry::parse(bytes)?;
            let line = Line {
                entry: &String::from_utf8_lossy(bytes),
                hash: e.hash().to_hex(),
                record: &e.record,
                seq: e.record.seq,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
        let f = self.file.as_mut().context("not open")?;
        let what = || format!("cannot append to {}", self.path.display());
        f.write_all(&out).with_context(what)?;
        f.sync_data().with_context(what)
    }

    fn confirm(&mut self, _wait: bool) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_resumes_after_its_last_whole_line_and_cuts_a_torn_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&p)
            .unwrap();
        assert_eq!(last_complete(&mut f, &p).unwrap(), 0);
        let big = "x".repeat(20_000);
        for seq in 0..3 {
            writeln!(f, "{}", serde_json::json!({"entry": big, "seq": seq})).unwrap();
        }
        f.write_all(b"{\"entry\":\"torn").unwrap();
        assert_eq!(last_complete(&mut f, &p).unwrap(), 3);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 3);
        // Someone else's file is refused and left as it is.
        std::fs::write(&p, b"garbage without newline").unwrap();
        let mut f = OpenOptions::new().read(true).append(true).open(&p).unwrap();
        assert!(last_complete(&mut f, &p).is_err());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 23);
    }
}
