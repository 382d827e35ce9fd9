//! The register-level transport trait: what every way of reaching a core offers.
//!
//! A transport moves 32-bit register accesses between the host and the core's register bus
//! (see `docs/protocol.md` §3). The UART transports ([`crate::framed::FramedLink`] over a
//! serial port, a pseudo-terminal or the Verilated board's pins) carry them in CRC-checked
//! frames; the PCIe transport ([`crate::pcie::PcieTransport`]) maps them onto a BAR and a
//! DMA stream. Everything above ([`crate::device::Device`], the CLI, the testbench suite) is
//! written once against this trait, as basil does: only the transport changes between the
//! simulator and a board.

use std::time::Duration;

use qkd_hdl::regmap;

use crate::error::Result;

/// The four words a HELLO returns (`ID`, `VERSION`, `MAP_HASH`, `BUILD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// `ID` register (`0x514B4453` on a qkd-station core).
    pub id: u32,
    /// `VERSION` register (major in bits 31:16, minor in 15:0).
    pub version: u32,
    /// `MAP_HASH` register: hash of the register map the gateware was built with.
    pub map_hash: u32,
    /// `BUILD` register (channels, groups, board, clock in 100 kHz units).
    pub build: u32,
}

/// The four words a STATUS returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusWords {
    /// `STATUS` register.
    pub status: u32,
    /// `TAG_LEVEL`: records waiting in the tagger FIFO.
    pub tag_level: u32,
    /// `RNG_LEVEL`: choice records waiting in the RNG FIFO.
    pub rng_level: u32,
    /// `LINK_BAD_FRAMES | LINK_SKIPPED << 16`.
    pub link: u32,
}

/// Counters of what a transport saw on its link (all zero on a lossless link).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Requests sent, resends included.
    pub requests: u64,
    /// Requests sent again after a timeout, a corrupt reply or a transient device error.
    pub resends: u64,
    /// Replies that failed their CRC or length check.
    pub bad_replies: u64,
    /// Waits that ended without a reply.
    pub timeouts: u64,
    /// Error replies from the device (CRC, timeout, framing: the request was damaged).
    pub device_errors: u64,
    /// Bytes skipped between reply frames.
    pub skipped_bytes: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// A way to reach a core's register bus. Addresses are word addresses (`docs/protocol.md` §6).
pub trait Transport: Send {
    /// What this transport is connected to, for messages (e.g. "serial /dev/ttyUSB1 at 3000000 baud").
    fn describe(&self) -> String;

    /// Identifies the device; on the UART link this also clears the device's stored replies.
    fn hello(&mut self) -> Result<Hello>;

    /// Reads `count` consecutive registers from `addr` (a FIFO register in the range is popped
    /// once; an empty one reads 0).
    fn read(&mut self, addr: u8, count: usize) -> Result<Vec<u32>>;

    /// Writes `value` to the register at `addr`.
    fn write(&mut self, addr: u8, value: u32) -> Result<()>;

    /// Pops up to `max` words from the FIFO register at `addr`: every word the FIFO holds,
    /// up to `max`, and possibly words that arrive while reading. Never drops a popped word.
    fn read_fifo(&mut self, addr: u8, max: usize) -> Result<Vec<u32>>;

    /// The STATUS words.
    fn status(&mut self) -> Result<StatusWords> {
        let s = self.read(regmap::STATUS.addr, 1)?[0];
        let t = self.read(regmap::TAG_LEVEL.addr, 1)?[0];
        let r = self.read(regmap::RNG_LEVEL.addr, 1)?[0];
        let l = self.read(regmap::LINK_BAD_FRAMES.addr, 1)?[0] | self.read(regmap::LINK_SKIPPED.addr, 1)?[0] << 16;
        Ok(StatusWords { status: s, tag_level: t, rng_level: r, link: l })
    }

    /// Lets `d` of device time pass (wall time on a board; simulated time on the simulator).
    fn pause(&mut self, d: Duration) -> Result<()>;

    /// Called after `UART_DIV` was written with `div` (ticks per bit at `clock_hz`): a UART
    /// transport switches its own line rate to match; others ignore it.
    fn uart_divisor_changed(&mut self, _div: u32, _clock_hz: u64) -> Result<()> {
        Ok(())
    }

    /// What the link saw so far.
    fn stats(&self) -> LinkStats;
}
