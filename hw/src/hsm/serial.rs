//! The real backend: a serial port (a USB CDC-ACM device such as
//! `/dev/ttyACM0`, or the emulator's pseudo-terminal).
//!
//! The port is opened through `tokio-serial` (default features off: no
//! libudev, since the HSM is opened by its configured path and never
//! enumerated) but used through its blocking half, the `serialport` API it
//! re-exports, not through a tokio reactor: the ledger signs through the
//! synchronous [`cairn_attest::keys::Signer`] trait on its own threads, one
//! request at a time, so a blocking read with a deadline (ppoll underneath)
//! is the whole need. An async port would need a runtime inside the signer
//! and a `block_on` on ledger threads, for no gain.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use tokio_serial::{ClearBuffer, SerialPort};

use super::client::Transport;

/// The line speed asked for. A USB CDC-ACM device and a pseudo-terminal
/// ignore it; a real UART must match it (115200 8N1, no flow control).
pub const BAUD: u32 = 115_200;

/// A serial port as a [`Transport`].
pub struct SerialTransport {
    port: Box<dyn SerialPort>,
}

impl SerialTransport {
    /// Opens `path` raw, 8N1, no flow control, exclusively (TIOCEXCL).
    pub fn open(path: &Path) -> io::Result<Self> {
        let port = tokio_serial::new(path.to_string_lossy(), BAUD)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::None)
            .stop_bits(tokio_serial::StopBits::One)
            .flow_control(tokio_serial::FlowControl::None)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(io::Error::from)?;
        Ok(SerialTransport { port })
    }
}

impl Transport for SerialTransport {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.port.set_timeout(timeout).map_err(io::Error::from)?;
        match self.port.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of file on the serial port",
            )),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn discard_input(&mut self) -> io::Result<()> {
        self.port.clear(ClearBuffer::Input).map_err(io::Error::from)
    }
}
