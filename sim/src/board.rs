//! The Verilated board (`qkd_hdl::top::SimBoard`: the whole core and the UART host link),
//! driven through its pins: the host side talks to it byte by byte over a UART model, exactly
//! as a host talks to a real board over its FTDI.
//!
//! The board has two clocks (`docs/clocking.md`): the tick clock, the time base (`step` is
//! one tick, `ticks` counts them), and the control clock of the bus side and the UART link,
//! half the tick by default as on the boards, or any other ratio
//! ([`VerilatedBoard::with_clock_periods`]). Their rising edges are played in time order
//! (coincident edges in one evaluation, as a PLL's aligned outputs). The host's UART line
//! model runs on the control clock, so the link works at any ratio.

use std::collections::VecDeque;

use qkd_hdl::top::{link_divisor, SIM_CLOCK_HZ, SIM_UART_DIV};
use qkd_hdl::verilog::TAGGER_CHANNELS;

use crate::verilated::{get, put, shim, Model, CH_MASK};

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
    m: Model,
    clock: *mut u8,
    ctl_clock: *mut u8,
    /// Clock periods (tick, control), in any common time unit.
    periods: (u64, u64),
    /// Times of the next rising edge of each clock.
    next_tick: u64,
    next_ctl: u64,
    ctl_cycles: u64,
    pins: *mut u8,
    entropy: *mut u8,
    uart_rx: *mut u8,
    uart_tx: *mut u8,
    led: *mut u8,
    ticks: u64,
    /// The host side's UART bit period, in ticks (the `UART_DIV` unit).
    div: u32,
    /// Line levels to send, one per control cycle.
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

    /// A new board, the control clock at half the tick clock with aligned edges (as on the
    /// boards).
    pub fn new() -> Self {
        Self::with_clock_periods(1, 2)
    }

    /// A new board whose tick and control clocks have the periods `tick` and `ctl` (any
    /// common unit; the first control edge comes with the `ctl / tick`-th tick edge when
    /// that is whole). The UART's `UART_DIV` still counts two ticks per control cycle, as on
    /// the boards, so at another ratio a bit lasts `UART_DIV / 2` control cycles.
    pub fn with_clock_periods(tick: u64, ctl: u64) -> Self {
        assert!(tick > 0 && ctl > 0);
        let mut m = Model::new(shim!(qkd_board_new, qkd_board_delete, qkd_board_eval, qkd_board_port));
        m.eval();
        let mut b = Self {
            clock: m.port("clock"),
            ctl_clock: m.port("ctl_clock"),
            periods: (tick, ctl),
            next_tick: tick,
            next_ctl: ctl,
            ctl_cycles: 0,
            pins: m.port("pins"),
            entropy: m.port("entropy"),
            uart_rx: m.port("uart_rx"),
            uart_tx: m.port("uart_tx"),
            led: m.port("led"),
            m,
            ticks: 0,
            div: Self::DEFAULT_DIV,
            line_out: VecDeque::new(),
            rx: LineReceiver::new(link_divisor(Self::DEFAULT_DIV as u16) as u32),
            received: Vec::new(),
        };
        put(b.uart_rx, 1);
        b.run(16);
        b
    }

    /// Control clock cycles since power-on.
    pub fn ctl_cycles(&self) -> u64 {
        self.ctl_cycles
    }

    /// Clock ticks since power-on.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The host side's UART bit period, in ticks.
    pub fn divisor(&self) -> u32 {
        self.div
    }

    /// Sets the host side's UART bit period, in ticks (after the board was told with
    /// `UART_DIV`).
    pub fn set_divisor(&mut self, div: u32) {
        assert!((8..=0xffff).contains(&div), "the board's UART needs 8 to 65535 ticks per bit (4 control cycles or more)");
        self.div = div;
        self.rx.set_divisor(link_divisor(div as u16) as u32);
    }

    /// Queues bytes for the board's UART receive line (sent back to back, 8N1).
    pub fn send(&mut self, bytes: &[u8]) {
        let cycles = link_divisor(self.div as u16) as usize;
        for &b in bytes {
            let bits = std::iter::once(false).chain((0..8).map(|k| (b >> k) & 1 == 1)).chain(std::iter::once(true));
            for bit in bits {
                self.line_out.extend(std::iter::repeat(bit).take(cycles));
            }
        }
    }

    /// Ticks until every queued byte has been sent.
    pub fn send_backlog(&self) -> u64 {
        self.line_out.len() as u64 * self.periods.1 / self.periods.0
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

    /// One tick: the control edges before the next tick edge, then that edge (with the
    /// control edge that coincides with it).
    #[inline]
    pub fn step(&mut self) {
        loop {
            let ctl = self.next_ctl <= self.next_tick;
            let tick = self.next_tick <= self.next_ctl;
            if ctl {
                put(self.uart_rx, self.line_out.pop_front().unwrap_or(true) as u8);
                put(self.ctl_clock, 1);
                self.next_ctl += self.periods.1;
                self.ctl_cycles += 1;
            }
            if tick {
                put(self.clock, 1);
                self.next_tick += self.periods.0;
                self.ticks += 1;
            }
            self.m.eval();
            put(self.clock, 0);
            put(self.ctl_clock, 0);
            self.m.eval();
            if ctl {
                if let Some(b) = self.rx.push(get(self.uart_tx) != 0) {
                    self.received.push(b);
                }
            }
            if tick {
                return;
            }
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
