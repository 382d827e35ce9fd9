//! A serial port (USB-UART bridge of a dev board, or the pseudo-terminal of `qkd sim-board`)
//! as a [`ByteChannel`], with the `serialport` crate.

use std::io::{Read, Write};
use std::time::Duration;

use serialport::SerialPort;

use crate::error::{DriverError, Result};
use crate::framed::ByteChannel;

/// An open serial port, 8N1, no flow control.
pub struct SerialChannel {
    port: Box<dyn SerialPort>,
    path: String,
    baud: u32,
}

impl SerialChannel {
    /// Opens `path` at `baud` bits per second.
    pub fn open(path: &str, baud: u32) -> Result<Self> {
        let port = serialport::new(path, baud)
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| DriverError::NoPort { path: path.into(), reason: e.to_string() })?;
        // Bytes a previous session left in the buffers would only look like garbage.
        let _ = port.clear(serialport::ClearBuffer::All);
        Ok(SerialChannel { port, path: path.into(), baud })
    }

    fn io(&self, source: std::io::Error) -> DriverError {
        DriverError::Io { what: format!("serial port {}", self.path), source }
    }
}

impl ByteChannel for SerialChannel {
    fn describe(&self) -> String {
        format!("serial port {} at {} baud", self.path, self.baud)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.port.write_all(bytes).map_err(|e| self.io(e))?;
        self.port.flush().map_err(|e| self.io(e))
    }

    fn recv(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        self.port
            .set_timeout(timeout)
            .map_err(|e| DriverError::Io { what: format!("serial port {}", self.path), source: e.into() })?;
        let mut buf = [0u8; 4096];
        match self.port.read(&mut buf) {
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(self.io(e)),
        }
    }

    fn baud(&self) -> u32 {
        self.baud
    }

    fn set_baud(&mut self, baud: u32) -> Result<()> {
        // Let the last reply at the old rate drain first.
        let _ = self.port.flush();
        self.port
            .set_baud_rate(baud)
            .map_err(|e| DriverError::Io { what: format!("serial port {}", self.path), source: e.into() })?;
        self.baud = baud;
        Ok(())
    }

    fn pause(&mut self, d: Duration) -> Result<()> {
        std::thread::sleep(d);
        Ok(())
    }
}

/// Default wait for a reply on a serial port, beyond the reply's own line time (wall time;
/// generous enough for the simulated board on a pty, which runs slower than real time).
pub const SERIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// The framed link over the serial port `path` at `baud`, with the default timeout and five
/// attempts per request.
pub fn serial_link(path: &str, baud: u32) -> Result<crate::framed::FramedLink<SerialChannel>> {
    Ok(crate::framed::FramedLink::new(SerialChannel::open(path, baud)?, SERIAL_TIMEOUT, 5))
}
