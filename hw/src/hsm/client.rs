//! The host side of the protocol: one request at a time over a
//! [`Transport`], answers matched by tag, garbled answers resent only for
//! commands that are safe to repeat.

use std::io;
use std::time::{Duration, Instant};

use super::protocol::{
    self, Command, Decoder, ErrorKind, Frame, FrameError, ERROR_CODE, IDLE_RESYNC_MS, MAX_CONTEXT,
    MAX_PAYLOAD, PUBLIC_KEY_LEN, RESPONSE_BIT, SIGNATURE_LEN, UNTAGGED,
};

/// A byte link to a device: a serial port, or a pipe in tests.
pub trait Transport: Send {
    /// Writes every byte (and drains them to the device).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads what arrives within `timeout`: `Ok(0)` when nothing did. A
    /// hang-up or end of file is an error.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Drops bytes received but not read (stale answers).
    fn discard_input(&mut self) -> io::Result<()>;
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The link failed: hang-up, end of file, or an I/O error. The device
    /// is gone until it is opened again.
    #[error("the device is gone: {0}")]
    Link(#[source] io::Error),
    /// No answer before the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Every attempt was garbled on the line (wrong CRC, or the device
    /// could not decode the request).
    #[error("the line garbled every attempt ({0})")]
    Garbled(String),
    /// A garbled answer to a request that must not be repeated: whether
    /// the device acted on it is unknown.
    #[error("the answer to a {0:?} request was garbled: whether the device acted is unknown")]
    Unknown(Command),
    /// The device answered with an error.
    #[error("the device refused: {kind:?}: {message}")]
    Device {
        /// The error code, if known.
        kind: Option<ErrorKind>,
        /// The device's message.
        message: String,
    },
    /// The answer decoded but does not fit the request.
    #[error("the device answered nonsense: {0}")]
    Protocol(String),
    /// The request cannot be sent (too long a message or context).
    #[error("{0}")]
    Request(String),
}

impl HsmError {
    /// Whether the error means the device cannot be trusted to answer any
    /// more (as opposed to refusing one request).
    pub fn is_link_failure(&self) -> bool {
        matches!(
            self,
            HsmError::Link(_)
                | HsmError::Timeout(_)
                | HsmError::Garbled(_)
                | HsmError::Unknown(_)
                | HsmError::Protocol(_)
        )
    }
}

/// A STATUS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Whether the device holds its key and can sign.
    pub ready: bool,
    /// The monotonic counter.
    pub counter: u64,
    /// The firmware's name and version.
    pub firmware: String,
}

/// How patient a client is.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// How many times a garbled idempotent request is sent again.
    pub retries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_secs(2),
            retries: 2,
        }
    }
}

/// Counts of what the line did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Garbage bytes and bad headers skipped.
    pub skipped: u64,
    /// Frames with a wrong CRC.
    pub bad_crc: u64,
    /// Requests sent again after a garbled answer.
    pub resent: u64,
    /// Answers to earlier requests, ignored.
    pub stale: u64,
}

/// A protocol client over one transport.
pub struct HsmClient<T> {
    io: T,
    decoder: Decoder,
    last_tag: u16,
    timing: Timing,
    stats: LineStats,
}

enum Outcome {
    Answer(Frame),
    Garbled(String),
}

impl<T: Transport> HsmClient<T> {
    /// A client over `io`.
    pub fn new(io: T, timing: Timing) -> Self {
        HsmClient {
            io,
            decoder: Decoder::new(),
            last_tag: UNTAGGED,
            timing,
            stats: LineStats::default(),
        }
    }

    /// What the line did so far.
    pub fn stats(&self) -> LineStats {
        self.stats
    }

    /// STATUS.
    pub fn status(&mut self) -> Result<Status, HsmError> {
        let p = self.call(Command::Status, &[])?;
        if p.len() < 9 {
            return Err(HsmError::Protocol(format!(
                "a status of {} bytes (at least 9)",
                p.len()
            )));
        }
        let ready = match p[0] {
            0 => false,
            1 => true,
            b => return Err(HsmError::Protocol(format!("readiness byte {b}"))),
        };
        Ok(Status {
            ready,
            counter: u64::from_le_bytes(p[1..9].try_into().unwrap_or_default()),
            firmware: String::from_utf8_lossy(&p[9..]).into_owned(),
        })
    }

    /// PUBLIC_KEY: the identity key's 1,952 bytes.
    pub fn public_key(&mut self) -> Result<Vec<u8>, HsmError> {
        let p = self.call(Command::PublicKey, &[])?;
        expect_len(&p, PUBLIC_KEY_LEN, "public key")?;
        Ok(p)
    }

    /// SIGN: an ML-DSA-65 signature over `msg` with context `ctx`.
    pub fn sign(&mut self, msg: &[u8], ctx: &[u8]) -> Result<Vec<u8>, HsmError> {
        if ctx.len() > MAX_CONTEXT {
            return Err(HsmError::Request(format!(
                "a context of {} bytes (at most {MAX_CONTEXT})",
                ctx.len()
            )));
        }
        if msg.len() + ctx.len() > MAX_PAYLOAD - 1 {
            return Err(HsmError::Request(format!(
                "a message of {} bytes is too long for the HSM (at most {} with this context)",
                msg.len(),
                MAX_PAYLOAD - 1 - ctx.len()
            )));
        }
        let mut payload = Vec::with_capacity(1 + ctx.len() + msg.len());
        payload.push(ctx.len() as u8);
        payload.extend_from_slice(ctx);
        payload.extend_from_slice(msg);
        let p = self.call(Command::Sign, &payload)?;
        expect_len(&p, SIGNATURE_LEN, "signature")?;
        Ok(p)
    }

    /// COUNTER_READ.
    pub fn counter(&mut self) -> Result<u64, HsmError> {
        let p = self.call(Command::CounterRead, &[])?;
        expect_len(&p, 8, "counter")?;
        Ok(u64::from_le_bytes(p[..8].try_into().unwrap_or_default()))
    }

    /// COUNTER_INCREMENT: the new value. Never resent: a garbled answer is
    /// [`HsmError::Unknown`] (read the counter to learn the outcome).
    pub fn increment_counter(&mut self) -> Result<u64, HsmError> {
        let p = self.call(Command::CounterIncrement, &[])?;
        expect_len(&p, 8, "counter")?;
        Ok(u64::from_le_bytes(p[..8].try_into().unwrap_or_default()))
    }

    fn next_tag(&mut self) -> u16 {
        self.last_tag = match self.last_tag.wrapping_add(1) {
            UNTAGGED => 1,
            t => t,
        };
        self.last_tag
    }

    fn call(&mut self, cmd: Command, payload: &[u8]) -> Result<Vec<u8>, HsmError> {
        let attempts = if cmd.idempotent() {
            1 + self.timing.retries
        } else {
            1
        };
        let mut why = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                self.stats.resent += 1;
            }
            let tag = self.next_tag();
            let frame = protocol::encode(cmd as u8, tag, payload)
                .map_err(|e| HsmError::Request(e.to_string()))?;
            self.io.discard_input().map_err(HsmError::Link)?;
            self.decoder.clear();
            self.io.send(&frame).map_err(HsmError::Link)?;
            match self.answer(tag)? {
                Outcome::Answer(f) if f.code == ERROR_CODE => {
                    let kind = f.payload.first().and_then(|&c| ErrorKind::from_code(c));
                    let message = String::from_utf8_lossy(f.payload.get(1..).unwrap_or_default())
                        .into_owned();
                    if kind == Some(ErrorKind::Frame) {
                        why = format!("the device could not decode the request: {message}");
                        continue;
                    }
                    return Err(HsmError::Device { kind, message });
                }
                Outcome::Answer(f) if f.code == cmd as u8 | RESPONSE_BIT => return Ok(f.payload),
                Outcome::Answer(f) => {
                    return Err(HsmError::Protocol(format!(
                        "code {:#04x} in answer to {cmd:?}",
                        f.code
                    )))
                }
                Outcome::Garbled(w) if cmd.idempotent() => why = w,
                Outcome::Garbled(_) => return Err(HsmError::Unknown(cmd)),
            }
        }
        Err(HsmError::Garbled(why))
    }

    /// Reads until the answer tagged `tag` (or an untagged frame error)
    /// arrives, a garbled frame shows the answer was damaged, or the
    /// deadline passes.
    fn answer(&mut self, tag: u16) -> Result<Outcome, HsmError> {
        let deadline = Instant::now() + self.timing.timeout;
        let mut buf = [0u8; 4096];
        loop {
            while let Some(r) = self.decoder.decode() {
                match r {
                    Ok(f) if f.tag == tag => return Ok(Outcome::Answer(f)),
                    Ok(f) if f.tag == UNTAGGED && f.code == ERROR_CODE => {
                        return Ok(Outcome::Answer(f))
                    }
                    Ok(_) => self.stats.stale += 1,
                    // Stale input was discarded before the request, so a
                    // damaged frame is most likely the answer.
                    Err(FrameError::BadCrc) => {
                        self.stats.bad_crc += 1;
                        return Ok(Outcome::Garbled("an answer with a wrong CRC".into()));
                    }
                    Err(_) => self.stats.skipped += 1,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(HsmError::Timeout(self.timing.timeout));
            }
            let wait = (deadline - now).min(Duration::from_millis(IDLE_RESYNC_MS));
            let n = self.io.recv(&mut buf, wait).map_err(HsmError::Link)?;
            if n > 0 {
                self.decoder.push(&buf[..n]);
            } else if wait == Duration::from_millis(IDLE_RESYNC_MS) {
                // The line went quiet with part of a frame held: our answer
                // cut short, or a fake header in garbage swallowing what
                // followed it (dropping its first byte lets the search find
                // the real frame).
                let ours = self.decoder.partial_tag() == Some(tag);
                if self.decoder.idle().is_some() {
                    self.stats.skipped += 1;
                    if ours {
                        return Ok(Outcome::Garbled("an answer cut short".into()));
                    }
                }
            }
        }
    }
}

fn expect_len(p: &[u8], len: usize, what: &str) -> Result<(), HsmError> {
    if p.len() != len {
        return Err(HsmError::Protocol(format!(
            "a {what} of {} bytes (expected {len})",
            p.len()
        )));
    }
    Ok(())
}
