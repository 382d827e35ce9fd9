//! The Verilated board as a device: [`SimulatedBoard`] runs the generated Verilog of the
//! whole board (core and UART link) with a noise source on its entropy pin, and
//! [`SimChannel`] is its UART as a [`ByteChannel`], so the host stack above runs unchanged
//! against RTL. Time on this channel is the board's simulated time.

use std::time::Duration;

use qkd_sim::board::VerilatedBoard;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::framed::{ByteChannel, FramedLink};

/// The Verilated board plus the physical noise source that feeds its entropy input.
pub struct SimulatedBoard {
    board: VerilatedBoard,
    noise: ChaCha8Rng,
    bits: u64,
    left: u32,
}

impl SimulatedBoard {
    /// A board in its power-on state; `noise_seed` seeds the simulated entropy source.
    pub fn new(noise_seed: u64) -> Self {
        SimulatedBoard { board: VerilatedBoard::new(), noise: ChaCha8Rng::seed_from_u64(noise_seed), bits: 0, left: 0 }
    }

    /// The Verilated board (pins, UART line, ticks).
    pub fn board(&mut self) -> &mut VerilatedBoard {
        &mut self.board
    }

    /// Core clock, in Hz.
    pub fn clock_hz(&self) -> u64 {
        VerilatedBoard::CLOCK_HZ
    }

    /// Runs `n` clock ticks, a fresh noise bit on the entropy pin each tick.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            if self.left == 0 {
                self.bits = self.noise.next_u64();
                self.left = 64;
            }
            self.board.set_entropy(self.bits & 1 == 1);
            self.bits >>= 1;
            self.left -= 1;
            self.board.step();
        }
    }

    /// Ticks in `d` of simulated time.
    pub fn ticks_in(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.clock_hz() as f64).ceil() as u64
    }
}

/// The UART of a [`SimulatedBoard`], as the host's byte channel.
pub struct SimChannel {
    sim: SimulatedBoard,
}

impl SimChannel {
    /// The channel to `sim`.
    pub fn new(sim: SimulatedBoard) -> Self {
        SimChannel { sim }
    }

    /// The simulated board behind the channel.
    pub fn sim(&mut self) -> &mut SimulatedBoard {
        &mut self.sim
    }
}

impl ByteChannel for SimChannel {
    fn describe(&self) -> String {
        format!("Verilated board (UART at {} baud)", self.baud())
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.sim.board.send(bytes);
        Ok(())
    }

    fn recv(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<usize> {
        let limit = self.sim.ticks_in(timeout);
        // Run a byte time at a time; once bytes come, return at the first quiet byte time
        // (or after 64 KiB), so the decoder sees whole frames most of the time.
        let byte_ticks = 10 * self.sim.board.divisor() as u64;
        let mut got = 0;
        let mut ran = 0;
        while ran < limit {
            self.sim.run(byte_ticks);
            ran += byte_ticks;
            let b = self.sim.board.recv();
            if b.is_empty() && got > 0 {
                break;
            }
            got += b.len();
            out.extend_from_slice(&b);
            if got >= 1 << 16 {
                break;
            }
        }
        Ok(got)
    }

    fn baud(&self) -> u32 {
        (VerilatedBoard::CLOCK_HZ / self.sim.board.divisor() as u64) as u32
    }

    fn set_baud(&mut self, baud: u32) -> Result<()> {
        let div = (VerilatedBoard::CLOCK_HZ as f64 / baud as f64).round() as u32;
        self.sim.board.set_divisor(div.clamp(8, 0xffff));
        Ok(())
    }

    fn pause(&mut self, d: Duration) -> Result<()> {
        let n = self.sim.ticks_in(d);
        self.sim.run(n);
        Ok(())
    }
}

/// Default wait for a reply on the simulator, in simulated time (the reply's line time is
/// added to it).
pub const SIM_TIMEOUT: Duration = Duration::from_micros(200);

/// The framed link to a fresh Verilated board.
pub fn sim_link(noise_seed: u64) -> FramedLink<SimChannel> {
    FramedLink::new(SimChannel::new(SimulatedBoard::new(noise_seed)), SIM_TIMEOUT, 8)
}
