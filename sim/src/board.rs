//! The Verilated board (`qkd_hdl::top::SimBoard`: the whole core and the UART host link),
//! driven through its pins: the host side talks to it byte by byte over a UART model, exactly
//! as a host talks to a real board over its FTDI.

use std::collections::VecDeque;

use qkd_hdl::top::{SIM_CLOCK_HZ, SIM_UART_DIV};
use qkd_hdl::verilog::TAGGER_CHANNELS;

use crate::verilated::{get, put, shim, Dut, CH_MASK};

/// An 8N1 receiver on a sampled line (one sample per tick), the host side of the UART.
#[derive(Clone, Debug)]
pub struct LineReceiver {
    div: u32,
    /// Ticks into the current byte (`None`: waiting for a start bit).
    phase: Option<u32>,
    bits: u16,
    prev: bool,
    /// Bytes whose stop bit was missing.
    pub framing_errors: u64,
}

impl LineReceiver {
    /// A receiver for `div` ticks per bit.
    pub fn new(div: u32) -> Self {
        Self { div, phase: None, bits: 0, prev: true, framing_errors: 0 }
    }

    /// Changes the bit period (between bytes).
    pub fn set_divisor(&mut self, div: u32) {
        self.div = div;
    }

    /// Feeds one sample; returns a byte when its stop bit has been sampled.
    pub fn push(&mut self, level: bool) -> Option<u8> {
        let prev = std::mem::replace(&mut self.prev, level);
        match self.phase {
            None => {
                if prev && !level {
                    self.phase = Some(0);
                    self.bits = 0;
                }
                None
            }
            Some(p) => {
                let p = p + 1;
                self.phase = Some(p);
                // Sample bit k in its middle: tick k·div + div/2 after the falling edge.
                if p >= self.div / 2 && (p - self.div / 2) % self.div == 0 {
                    let k = (p - self.div / 2) / self.div;
                    if k >= 1 && k <= 8 {
                        self.bits |= (level as u16) << (k - 1);
                    } else if k == 9 {
                        self.phase = None;
                        if level {
                            return Some(self.bits as u8);
                        }
                        self.framing_errors += 1;
                    }
                }
                None
            }
        }
    }
}

/// The Verilated simulated board, in its power-on state.
pub struct VerilatedBoard {
    d: Dut,
    pins: *mut u8,
    entropy: *mut u8,
    uart_rx: *mut u8,
    uart_tx: *mut u8,
    led: *mut u8,
    ticks: u64,
    div: u32,
    line_out: VecDeque<bool>,
    rx: LineReceiver,
    received: Vec<u8>,
}

// The model and its port pointers move together.
unsafe impl Send for VerilatedBoard {}

impl Default for VerilatedBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedBoard {
    /// Core clock, in Hz (the simulator's time base).
    pub const CLOCK_HZ: u64 = SIM_CLOCK_HZ;
    /// UART bit period after power-on, in ticks.
    pub const DEFAULT_DIV: u32 = SIM_UART_DIV as u32;

    /// A new board.
    pub fn new() -> Self {
        let d = Dut::new(shim!(qkd_board_new, qkd_board_delete, qkd_board_eval, qkd_board_port));
        let mut b = Self {
            pins: d.port("pins"),
            entropy: d.port("entropy"),
            uart_rx: d.port("uart_rx"),
            uart_tx: d.port("uart_tx"),
            led: d.port("led"),
            d,
            ticks: 0,
            div: Self::DEFAULT_DIV,
            line_out: VecDeque::new(),
            rx: LineReceiver::new(Self::DEFAULT_DIV),
            received: Vec::new(),
        };
        put(b.uart_rx, 1);
        b.run(16);
        b
    }

    /// Clock ticks since power-on.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The host side's UART bit period, in ticks.
    pub fn divisor(&self) -> u32 {
        self.div
    }

    /// Sets the host side's UART bit period (after the board was told with `UART_DIV`).
    pub fn set_divisor(&mut self, div: u32) {
        assert!(div >= 4, "the board's UART needs at least 4 ticks per bit");
        self.div = div;
        self.rx.set_divisor(div);
    }

    /// Queues bytes for the board's UART receive line (sent back to back, 8N1).
    pub fn send(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let bits = std::iter::once(false).chain((0..8).map(|k| (b >> k) & 1 == 1)).chain(std::iter::once(true));
            for bit in bits {
                self.line_out.extend(std::iter::repeat(bit).take(self.div as usize));
            }
        }
    }

    /// Ticks until every queued byte has been sent.
    pub fn send_backlog(&self) -> u64 {
        self.line_out.len() as u64
    }

    /// Takes the bytes the board has sent so far.
    pub fn recv(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received)
    }

    /// Bytes from the board whose stop bit was missing (never expected).
    pub fn framing_errors(&self) -> u64 {
        self.rx.framing_errors
    }

    /// Sets the detector pins (bit c = channel c).
    pub fn set_pins(&mut self, pins: u8) {
        put(self.pins, pins & CH_MASK);
    }

    /// Sets the raw entropy input.
    pub fn set_entropy(&mut self, level: bool) {
        put(self.entropy, level as u8);
    }

    /// The status LEDs.
    pub fn leds(&self) -> u8 {
        get(self.led)
    }

    /// One clock tick.
    #[inline]
    pub fn step(&mut self) {
        put(self.uart_rx, self.line_out.pop_front().unwrap_or(true) as u8);
        self.d.tick();
        self.ticks += 1;
        if let Some(b) = self.rx.push(get(self.uart_tx) != 0) {
            self.received.push(b);
        }
    }

    /// `n` clock ticks.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    /// One tick per element of `pins` (detector pin levels, bit c = channel c).
    pub fn run_pins(&mut self, pins: &[u8]) {
        for &p in pins {
            put(self.pins, p & CH_MASK);
            self.step();
        }
    }
}

const _: () = assert!(TAGGER_CHANNELS <= 8);
