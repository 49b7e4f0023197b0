//! Forwarding records to a SIEM (`[siem]`): each record, once durable, as
//! an RFC 5424 syslog message with a CEF payload (`cef`) and/or a JSON
//! line in a file (`sink`). One thread per destination reads the ledger
//! behind the gate — it never delays or bypasses it — and resumes where
//! its destination left off, so a receiver that was down gets every
//! record when it is back: JSON lines exactly once, TCP syslog at least
//! once (a receiver may see a record again after a reconnection; the
//! sequence number `externalId` tells duplicates), UDP best effort.

mod cef;
mod sink;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_attest::Ledger;

use crate::config::SiemSection;
use sink::{Jsonl, Sink, Syslog, Transport};

/// Records read from the ledger per batch.
const BATCH: u64 = 256;
/// How often an idle forwarder looks for new records.
const POLL: Duration = Duration::from_millis(200);
/// Retry delays while a destination fails.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long a stopping daemon keeps sending what is left (the rest goes
/// at the next start, from the persisted positions).
const DRAIN: Duration = Duration::from_secs(10);

/// Where a syslog destination's position is kept, in the state directory.
const POSITION_FILE: &str = "siem-syslog.position";

/// `tcp://HOST:PORT` or `udp://HOST:PORT`.
fn parse_target(t: &str) -> anyhow::Result<(Transport, &str)> {
    let (transport, rest) = if let Some(r) = t.strip_prefix("tcp://") {
        (Transport::Tcp, r)
    } else if let Some(r) = t.strip_prefix("udp://") {
        (Transport::Udp, r)
    } else {
        bail!("siem.syslog = {t:?}: must be tcp://HOST:PORT or udp://HOST:PORT");
    };
    let port = rest.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
    match port {
        Some((h, Ok(p))) if !h.is_empty() && p > 0 => Ok((transport, rest)),
        _ => bail!("siem.syslog = {t:?}: must name a host and a port, e.g. tcp://127.0.0.1:6514"),
    }
}

/// Checks a `[siem]` section.
pub fn validate(c: &SiemSection) -> anyhow::Result<()> {
    if let Some(t) = &c.syslog {
        parse_target(t)?;
    }
    if let Some(p) = &c.jsonl {
        if !p.is_absolute() {
            bail!("siem.jsonl = {p:?}: must be an absolute path");
        }
    }
    facility(&c.facility)?;
    if let Some(h) = &c.hostname {
        if h.is_empty() || h.len() > 255 || !h.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("siem.hostname = {h:?}: printable ASCII without spaces, at most 255 characters");
        }
    }
    Ok(())
}

fn facility(name: &str) -> anyhow::Result<u8> {
    cef::FACILITIES
        .iter()
        .position(|f| *f == name)
        .and_then(|i| u8::try_from(i).ok())
        .with_context(|| {
            format!(
                "siem.facility = {name:?}: one of {}",
                cef::FACILITIES.join(", ")
            )
        })
}

/// The running forwarders.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts a thread per destination configured (none: nothing runs).
    pub fn start(
        ledger: &Arc<Ledger>,
        cfg: &SiemSection,
        state_dir: &Path,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(t) = &cfg.syslog {
            let hostname = match &cfg.hostname {
                Some(h) => h.clone(),
                None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "-".into()),
            };
            let header = cef::Header {
                facility: facility(&cfg.facility)?,
                hostname,
                pid: std::process::id(),
            };
            sinks.push(Box::new(Syslog::new(
                t,
                header,
                state_dir.join(POSITION_FILE),
            )?));
        }
        if let Some(p) = &cfg.jsonl {
            sinks.push(Box::new(Jsonl::new(p)));
        }
        let threads = sinks
            .into_iter()
            .map(|sink| {
                let (ledger, stop) = (ledger.clone(), stop.clone());
                std::thread::Builder::new()
                    .name("cairnd-siem".into())
                    .spawn(move || forward(&ledger, sink, &stop))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Forwarder { stop, threads })
    }

    /// Forwards what is left (while the destinations answer, for at most
    /// ten seconds) and stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// One destination's loop: resume, then send every record as it becomes
/// durable, in order; on failure, wait and resume from what is known to
/// have arrived.
fn forward(ledger: &Ledger, mut sink: Box<dyn Sink>, stop: &AtomicBool) {
    let mut next: Option<u64> = None;
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let mut stopping_since = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if stopping
            && stopping_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                > DRAIN
        {
            return;
        }
        let step = (|| -> anyhow::Result<bool> {
            let from = match next {
                Some(n) => n,
                None => sink.resume()?,
            };
            next = Some(from);
            let size = ledger.size();
            if from >= size {
                sink.confirm(stopping)?;
                return Ok(false);
            }
            sink.confirm(false)?;
            let to = size.min(from + BATCH);
            let entries = ledger.entries(from, to)?;
            sink.send(from, &entries)?;
            next = Some(to);
            Ok(true)
        })();
        match step {
            Ok(busy) => {
                if failing {
                    tracing::info!(destination = %sink.describe(), "SIEM destination answers again");
                    failing = false;
                }
                backoff = BACKOFF_MIN;
                if !busy {
                    if stopping {
                        return;
                    }
                    std::thread::sleep(POLL);
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(destination = %sink.describe(), error = %format!("{e:#}"), "SIEM forwarding paused; retrying");
                    failing = true;
                }
                next = None;
                if stopping {
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_facilities() {
        assert!(matches!(
            parse_target("tcp://127.0.0.1:514"),
            Ok((Transport::Tcp, "127.0.0.1:514"))
        ));
        assert!(matches!(
            parse_target("udp://[::1]:514"),
            Ok((Transport::Udp, "[::1]:514"))
        ));
        for bad in [
            "127.0.0.1:514",
            "tcp://host",
            "tcp://:5",
            "udp://h:0",
            "tcp://h:99999",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(facility("local0").unwrap(), 16);
        assert_eq!(facility("audit").unwrap(), 13);
        assert!(facility("nope").is_err());
    }
}
