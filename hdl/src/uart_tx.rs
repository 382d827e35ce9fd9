//! A UART (8N1) byte transmitter with a programmable bit period.
//!
//! rust-hdl has no UART, hence this block. A `start` strobe while not `busy` sends `data`:
//! a start bit (0), 8 data bits least significant first, a stop bit (1), each `divisor`
//! ticks long; `busy` is high from the tick after `start` until the stop bit has been on the
//! line for its full period. The line output is a register (no glitches), idle high.

use rust_hdl::prelude::*;

/// Width of the bit-period divisor, in bits (ticks per bit).
pub const UART_DIV_BITS: usize = 16;

/// 8N1 byte transmitter.
#[derive(LogicBlock, Default)]
pub struct UartTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Ticks per bit (at least 2); hold it steady while `busy`.
    pub divisor: Signal<In, Bits<UART_DIV_BITS>>,
    /// Byte to send, sampled with `start`.
    pub data: Signal<In, Bits<8>>,
    /// Strobe: send `data` (ignored while `busy`).
    pub start: Signal<In, Bit>,
    /// Transmit line (idle high, registered).
    pub tx: Signal<Out, Bit>,
    /// A byte is on the line (registered).
    pub busy: Signal<Out, Bit>,
    cnt: DFF<Bits<UART_DIV_BITS>>,
    sh: DFF<Bits<10>>,
    bits: DFF<Bits<4>>,
    busy_r: DFF<Bit>,
    // Inverted so that the power-on value 0 is the idle level.
    tx_n: DFF<Bit>,
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, cnt, sh, bits, busy_r, tx_n);
        self.tx.next = !self.tx_n.q.val();
        self.busy.next = self.busy_r.q.val();
        if self.busy_r.q.val() {
            if self.cnt.q.val() == 0 {
                if self.bits.q.val() == 0 {
                    self.busy_r.d.next = false;
                } else {
                    self.tx_n.d.next = !self.sh.q.val().get_bit(0);
                    self.sh.d.next = self.sh.q.val() >> 1;
                    self.bits.d.next = self.bits.q.val() - 1;
                    self.cnt.d.next = self.divisor.val() - 1;
                }
            } else {
                self.cnt.d.next = self.cnt.q.val() - 1;
            }
        } else if self.start.val() {
            self.busy_r.d.next = true;
            // Bit 0: start (0); bits 1..8: data; bit 9: stop (1).
            self.sh.d.next = (bit_cast::<10, 8>(self.data.val()) << 1) | 0x200;
            self.bits.d.next = 10.into();
            self.cnt.d.next = 0.into();
        }
    }
}

/// Decodes an 8N1 line sampled once per tick, `div` ticks per bit (test helper shared by the
/// UART and link testbenches). Returns the bytes; panics on a missing stop bit.
pub fn decode_line(line: &[bool], div: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut t = 0;
    while t + 10 * div <= line.len() {
        if line[t] {
            t += 1;
            continue;
        }
        let mid = |k: usize| line[t + k * div + div / 2];
        let mut b = 0u8;
        for k in 0..8 {
            b |= (mid(k + 1) as u8) << k;
        }
        assert!(mid(9), "missing stop bit at tick {}", t + 9 * div);
        out.push(b);
        t += 10 * div - div / 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_bytes_back_to_back_at_the_bit_period() {
        for div in [4usize, 7, 50] {
            let mut uut = UartTx::default();
            uut.connect_all();
            let mut sim = Simulation::new();
            sim.add_clock(5, |x: &mut Box<UartTx>| x.clock.next = !x.clock.val());
            let bytes: Vec<u8> = vec![0x00, 0xFF, 0x5A, 0xA5, 0x01, 0x80, 0x3C];
            let sent = bytes.clone();
            sim.add_testbench(move |mut sim: Sim<UartTx>| {
                let mut x = sim.init()?;
                x.divisor.next = (div as u64).into();
                let mut line = Vec::new();
                let mut k = 0;
                let mut first_start = None;
                let mut last_done = 0;
                for t in 0..(bytes.len() * (10 * div + 3) + 40) {
                    x.start.next = false;
                    if !x.busy.val() && k < bytes.len() && t > 3 {
                        x.start.next = true;
                        x.data.next = (bytes[k] as u64).into();
                        k += 1;
                        first_start.get_or_insert(t);
                    }
                    if x.busy.val() {
                        last_done = t;
                    }
                    line.push(x.tx.val());
                    wait_clock_cycle!(sim, clock, x);
                }
                let got = decode_line(&line, div);
                sim_assert_eq!(sim, got, sent.clone(), x);
                // Back to back: at most 2 idle ticks per byte.
                let span = last_done - first_start.unwrap();
                sim_assert!(sim, span <= sent.len() * (10 * div + 2), x);
                sim.done(x)
            });
            sim.run(Box::new(uut), 100_000).unwrap();
        }
    }
}
