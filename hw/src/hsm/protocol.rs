//! The serial HSM's wire protocol, version 1 (specified in
//! `hw/HSM-PROTOCOL.md`): frames, their encoding, and a decoder that
//! treats every byte as hostile.
//!
//! ```text
//! offset  size  field
//! 0       2     magic CA B1
//! 2       1     version 01
//! 3       1     code (request: command; response: command | 0x80, or 0x7F error)
//! 4       2     tag, u16 little-endian (a response echoes its request's)
//! 6       2     payload length N, u16 little-endian, N ≤ 8192
//! 8       N     payload
//! 8+N     4     CRC-32/ISO-HDLC of bytes 0 … 8+N-1, u32 little-endian
//! ```

use crc::{Crc, CRC_32_ISO_HDLC};

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = [0xCA, 0xB1];
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes before the payload: magic, version, code, tag, length.
pub const HEADER_LEN: usize = 8;
/// Bytes after the payload: the CRC-32.
pub const TRAILER_LEN: usize = 4;
/// The largest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 8192;
/// The largest frame on the wire.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN;
/// The code of an error response.
pub const ERROR_CODE: u8 = 0x7F;
/// The bit a success response sets on its request's command code.
pub const RESPONSE_BIT: u8 = 0x80;
/// The tag of a device's answer to a frame it could not decode (hosts never
/// use it for a request).
pub const UNTAGGED: u16 = 0;
/// How long a receiver holding part of a frame waits for more bytes before
/// it drops the first byte and searches for the next magic.
pub const IDLE_RESYNC_MS: u64 = 50;
/// ML-DSA-65 public key length.
pub const PUBLIC_KEY_LEN: usize = 1952;
/// ML-DSA-65 signature length.
pub const SIGNATURE_LEN: usize = 3309;
/// The longest ML-DSA context string (FIPS 204).
pub const MAX_CONTEXT: usize = 255;
/// The longest message a SIGN request carries whatever its context: the
/// payload less the context length byte and the longest context. (Message
/// and context together may fill the payload less one byte.)
pub const MAX_SIGN_MESSAGE: usize = MAX_PAYLOAD - 1 - MAX_CONTEXT;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// The commands of protocol version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Readiness, the counter and the firmware's name.
    Status = 0x01,
    /// The identity key's ML-DSA-65 public key (1,952 bytes).
    PublicKey = 0x02,
    /// An ML-DSA-65 signature (3,309 bytes) over a message, with a context.
    Sign = 0x03,
    /// The monotonic counter's value.
    CounterRead = 0x04,
    /// Adds one to the counter, persists it, and answers the new value.
    CounterIncrement = 0x05,
}

impl Command {
    /// The command with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => Command::Status,
            0x02 => Command::PublicKey,
            0x03 => Command::Sign,
            0x04 => Command::CounterRead,
            0x05 => Command::CounterIncrement,
            _ => return None,
        })
    }

    /// Whether sending the request twice has the effect of sending it once,
    /// so that a host may resend it when the answer was lost or garbled.
    /// Everything but the increment: a second signature over the same
    /// message is harmless; a second increment is not.
    pub fn idempotent(self) -> bool {
        self != Command::CounterIncrement
    }
}

/// The error codes of an error response (its payload's first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The device could not decode a frame (CRC, version, length); it did
    /// not act on it. Sent with tag [`UNTAGGED`].
    Frame = 0x01,
    /// Unknown command code.
    UnknownCommand = 0x02,
    /// The payload does not fit the command.
    BadRequest = 0x03,
    /// The key is missing or signing failed.
    Key = 0x04,
    /// The counter could not be persisted; it did not change.
    Storage = 0x05,
    /// The counter is at its maximum.
    CounterExhausted = 0x06,
}

impl ErrorKind {
    /// The kind with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x01 => ErrorKind::Frame,
            0x02 => ErrorKind::UnknownCommand,
            0x03 => ErrorKind::BadRequest,
            0x04 => ErrorKind::Key,
            0x05 => ErrorKind::Storage,
            0x06 => ErrorKind::CounterExhausted,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The code: a command, a command with [`RESPONSE_BIT`], or [`ERROR_CODE`].
    pub code: u8,
    /// The tag that pairs a response with its request.
    pub tag: u16,
    /// The payload, at most [`MAX_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

/// A payload too large for one frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a payload of {0} bytes does not fit a frame (at most {MAX_PAYLOAD})")]
pub struct TooLarge(pub usize);

/// Encodes one frame.
pub fn encode(code: u8, tag: u16, payload: &[u8]) -> Result<Vec<u8>, TooLarge> {
    if payload.len() > MAX_PAYLOAD {
        return Err(TooLarge(payload.len()));
    }
    let mut f = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    f.extend_from_slice(&MAGIC);
    f.push(VERSION);
    f.push(code);
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    f.extend_from_slice(payload);
    let crc = CRC32.checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    Ok(f)
}

/// An error response's payload: the kind, then a UTF-8 message cut to 255
/// bytes.
pub fn error_payload(kind: ErrorKind, message: &str) -> Vec<u8> {
    let mut cut = message.len().min(255);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut p = vec![kind as u8];
    p.extend_from_slice(&message.as_bytes()[..cut]);
    p
}

/// What the decoder skipped instead of a frame. None of these stops it: it
/// resynchronises on the next magic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Bytes before a magic.
    #[error("{0} bytes of garbage")]
    Garbage(usize),
    /// A magic followed by an unknown version or a length over the limit.
    #[error("a frame header with version {version} and length {len}")]
    BadHeader {
        /// The version byte.
        version: u8,
        /// The declared payload length.
        len: usize,
    },
    /// A frame whose CRC does not match.
    #[error("a frame with a wrong CRC")]
    BadCrc,
    /// Part of a frame after which nothing came for [`IDLE_RESYNC_MS`].
    #[error("a short frame ({0} bytes, then silence)")]
    Short(usize),
}

/// A frame decoder over a byte stream. Feed it bytes with [`push`], take
/// frames and skip reports with [`decode`] until it answers `None`; call
/// [`idle`] when no byte came for [`IDLE_RESYNC_MS`]. It holds at most one
/// frame's bytes plus what was pushed since the last `None`.
///
/// [`push`]: Decoder::push
/// [`decode`]: Decoder::decode
/// [`idle`]: Decoder::idle
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held: part of a frame, or not yet examined.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything buffered.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The tag of the partial frame held, if the bytes held start with a
    /// plausible header (magic, version, length within bounds).
    pub fn partial_tag(&self) -> Option<u16> {
        let h = self.buf.get(..HEADER_LEN)?;
        let len = u16::from_le_bytes([h[6], h[7]]) as usize;
        (h[..2] == MAGIC && h[2] == VERSION && len <= MAX_PAYLOAD)
            .then(|| u16::from_le_bytes([h[4], h[5]]))
    }

    /// Nothing arrived for [`IDLE_RESYNC_MS`]: a partial frame will not be
    /// completed, so its first byte is dropped and the search for a magic
    /// starts again from the next one. Returns the report, if anything was
    /// held.
    pub fn idle(&mut self) -> Option<FrameError> {
        if self.buf.is_empty() {
            return None;
        }
        let held = self.buf.len();
        self.buf.drain(..1);
        Some(FrameError::Short(held))
    }

    /// The next frame or skip report, or `None` when more bytes are needed.
    pub fn decode(&mut self) -> Option<Result<Frame, FrameError>> {
        // Find the magic; a lone MAGIC[0] at the end may be its start.
        let start = self
            .buf
            .windows(2)
            .position(|w| w == MAGIC)
            .unwrap_or_else(|| {
                if self.buf.last() == Some(&MAGIC[0]) {
                    self.buf.len() - 1
                } else {
                    self.buf.len()
                }
            });
        if start > 0 {
            self.buf.drain(..start);
            return Some(Err(FrameError::Garbage(start)));
        }
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        let version = self.buf[2];
        let len = u16::from_le_bytes([self.buf[6], self.buf[7]]) as usize;
        if version != VERSION || len > MAX_PAYLOAD {
            self.buf.drain(..1);
            return Some(Err(FrameError::BadHeader { version, len }));
        }
        let total = HEADER_LEN + len + TRAILER_LEN;
        if self.buf.len() < total {
            return None;
        }
        let body = &self.buf[..HEADER_LEN + len];
        let crc = u32::from_le_bytes([
            self.buf[total - 4],
            self.buf[total - 3],
            self.buf[total - 2],
            self.buf[total - 1],
        ]);
        if CRC32.checksum(body) != crc {
            self.buf.drain(..1);
            return Some(Err(FrameError::BadCrc));
        }
        let frame = Frame {
            code: self.buf[3],
            tag: u16::from_le_bytes([self.buf[4], self.buf[5]]),
            payload: self.buf[HEADER_LEN..HEADER_LEN + len].to_vec(),
        };
        self.buf.drain(..total);
        Some(Ok(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(d: &mut Decoder) -> (Vec<Frame>, Vec<FrameError>) {
        let (mut frames, mut errors) = (Vec::new(), Vec::new());
        while let Some(r) = d.decode() {
            match r {
                Ok(f) => frames.push(f),
                Err(e) => errors.push(e),
            }
        }
        (frames, errors)
    }

    #[test]
    fn a_frame_round_trips_byte_by_byte() {
        let f = encode(0x03, 7, b"payload").unwrap();
        assert_eq!(f.len(), HEADER_LEN + 7 + TRAILER_LEN);
        assert_eq!(&f[..8], &[0xCA, 0xB1, 1, 3, 7, 0, 7, 0]);
        let mut d = Decoder::new();
        for (i, b) in f.iter().enumerate() {
            d.push(&[*b]);
            let got = d.decode();
            if i + 1 < f.len() {
                assert_eq!(got, None, "complete after {i} bytes");
            } else {
                assert_eq!(
                    got,
                    Some(Ok(Frame {
                        code: 3,
                        tag: 7,
                        payload: b"payload".to_vec()
                    }))
                );
            }
        }
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn the_crc_is_zlibs() {
        // CRC-32/ISO-HDLC check value.
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn oversize_payloads_are_refused_and_oversize_lengths_skipped() {
        assert_eq!(
            encode(1, 1, &vec![0; MAX_PAYLOAD + 1]),
            Err(TooLarge(MAX_PAYLOAD + 1))
        );
        assert!(encode(1, 1, &vec![0; MAX_PAYLOAD]).is_ok());
        let mut bad = encode(1, 1, b"").unwrap();
        bad[6..8].copy_from_slice(&(MAX_PAYLOAD as u16 + 1).to_le_bytes());
        let good = encode(2, 2, b"ok").unwrap();
        let mut d = Decoder::new();
        d.push(&bad);
        d.push(&good);
        let (frames, errors) = drain(&mut d);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload, b"ok");
        assert!(matches!(
            errors[0],
            FrameError::BadHeader {
                len: 8193,
                version: 1
            }
        ));
    }

    #[test]
    fn garbage_wrong_crc_and_wrong_versions_are_skipped() {
        let mut wrong_crc = encode(1, 9, b"abc").unwrap();
        let n = wrong_crc.len();
        wrong_crc[n - 1] ^= 1;
        let mut v2 = encode(1, 9, b"abc").unwrap();
        v2[2] = 2;
        let mut d = Decoder::new();
        d.push(b"\x00\xffnoise\xca");
        d.push(&wrong_crc);
        d.push(&v2);
        d.push(&encode(0x81, 9, b"yes").unwrap());
        let (frames, errors) = drain(&mut d);
        assert_eq!(frames.len(), 1, "{errors:?}");
        assert_eq!(frames[0].code, 0x81);
        assert!(errors.contains(&FrameError::BadCrc));
        assert!(errors.contains(&FrameError::BadHeader { version: 2, len: 3 }));
        assert!(errors.contains(&FrameError::Garbage(8)));
    }

    #[test]
    fn a_short_frame_is_dropped_when_the_line_goes_idle() {
        let full = encode(1, 3, &[5; 100]).unwrap();
        let mut d = Decoder::new();
        d.push(&full[..50]);
        assert_eq!(d.decode(), None);
        // The rest never comes; a new frame does, but is swallowed as the
        // short frame's payload until the line goes quiet.
        d.push(&encode(1, 4, b"").unwrap());
        assert_eq!(d.decode(), None);
        assert_eq!(d.idle(), Some(FrameError::Short(62)));
        let (frames, _) = drain(&mut d);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].tag, 4);
        assert_eq!(d.idle(), None);
    }

    #[test]
    fn error_payloads_cut_messages_on_character_boundaries() {
        let p = error_payload(ErrorKind::Key, &"é".repeat(200));
        assert_eq!(p[0], 4);
        assert_eq!(p.len(), 1 + 254);
        assert!(std::str::from_utf8(&p[1..]).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes, in any pieces, with idle timeouts anywhere: no panic,
        /// bounded memory, and every frame that comes out has a matching CRC
        /// (re-encoding it gives bytes that occur in the input).
        #[test]
        fn hostile_bytes_never_panic(
            chunks in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..300), any::<bool>()), 0..40)
        ) {
            let mut d = Decoder::new();
            let mut all = Vec::new();
            for (chunk, idle) in chunks {
                all.extend_from_slice(&chunk);
                d.push(&chunk);
                while let Some(r) = d.decode() {
                    if let Ok(f) = r {
                        let bytes = encode(f.code, f.tag, &f.payload).unwrap();
                        prop_assert!(all.windows(bytes.len()).any(|w| w == bytes));
                    }
                }
                prop_assert!(d.pending() < MAX_FRAME);
                if idle {
                    d.idle();
                }
            }
        }

        /// Frames among garbage (which may hold magics and fake headers)
        /// all come out once the garbage is flushed by silence: a frame is
        /// lost only when a fake header swallows it, never delivered wrong.
        #[test]
        fn frames_survive_garbage_between_them(
            items in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 0..64),
                 any::<u8>(), any::<u16>(),
                 prop::collection::vec(any::<u8>(), 0..200)), 1..10)
        ) {
            let mut d = Decoder::new();
            let mut sent = Vec::new();
            let mut got = Vec::new();
            for (garbage, code, tag, payload) in items {
                d.push(&garbage);
                // A sender that goes quiet after garbage, as the emulator
                // does, lets the receiver drop a fake partial header.
                while d.decode().is_some() {}
                while d.idle().is_some() {
                    while let Some(r) = d.decode() {
                        if let Ok(f) = r { got.push(f) }
                    }
                }
                let f = Frame { code, tag, payload };
                d.push(&encode(f.code, f.tag, &f.payload).unwrap());
                sent.push(f);
                while let Some(r) = d.decode() {
                    if let Ok(f) = r { got.push(f) }
                }
            }
            prop_assert_eq!(got, sent);
        }
    }
}
