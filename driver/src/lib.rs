//! qkd-station device driver: one typed API over every way of reaching the core.
//!
//! * [`transport::Transport`]: register reads, writes and FIFO reads; implemented by
//!   [`framed::FramedLink`] (the CRC-checked UART protocol) over a
//!   [`serial::SerialChannel`] or the Verilated board ([`simulated::SimChannel`]), and by
//!   [`pcie::PcieTransport`] (XDMA / LitePCIe character devices).
//! * [`device::Device`]: identify, configure, count, histogram, RNG, tag streaming.
//! * [`tagfile`]: the binary tag file format, writer and reader.
//! * [`pty`]: a Verilated board served on a pseudo-terminal, so `--port` works against it.

pub mod device;
pub mod error;
pub mod framed;
pub mod pcie;
pub mod pty;
pub mod serial;
pub mod simulated;
pub mod tagfile;
pub mod transport;

pub use error::{DriverError, Result};
