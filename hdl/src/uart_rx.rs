//! A UART (8N1) byte receiver with a programmable bit period.
//!
//! rust-hdl has no UART, hence this block. The line passes two synchronizer flip-flops. A
//! falling edge (after the line was seen idle) starts a byte; the start bit is checked half a
//! bit period later (a shorter low pulse is a glitch and ignored), then each data bit and the
//! stop bit are sampled one bit period apart, in the middle of their bit. A byte with a high
//! stop bit is delivered with a one-tick `valid` strobe; a low stop bit gives a `frame_err`
//! strobe instead, and the receiver waits for the line to go idle before the next byte.

use rust_hdl::prelude::*;

pub use crate::uart_tx::UART_DIV_BITS;

/// 8N1 byte receiver.
#[derive(LogicBlock, Default)]
pub struct UartRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Receive line (asynchronous, idle high).
    pub rx: Signal<In, Bit>,
    /// Ticks per bit (at least 4).
    pub divisor: Signal<In, Bits<UART_DIV_BITS>>,
    /// The received byte, valid with `valid` (registered).
    pub data: Signal<Out, Bits<8>>,
    /// One-tick strobe: a byte with a good stop bit arrived.
    pub valid: Signal<Out, Bit>,
    /// One-tick strobe: a byte arrived without its stop bit (framing error).
    pub frame_err: Signal<Out, Bit>,
    /// A byte is being received (registered).
    pub busy: Signal<Out, Bit>,
    // Synchronizers, inverted so that the power-on value is the idle line.
    s1_n: DFF<Bit>,
    s2_n: DFF<Bit>,
    armed: DFF<Bit>,
    active: DFF<Bit>,
    cnt: DFF<Bits<UART_DIV_BITS>>,
    bits: DFF<Bits<4>>,
    sh: DFF<Bits<8>>,
    data_r: DFF<Bits<8>>,
    valid_r: DFF<Bit>,
    ferr_r: DFF<Bit>,
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1_n, s2_n, armed, active, cnt, bits, sh, data_r, valid_r, ferr_r);
        self.s1_n.d.next = !self.rx.val();
        self.s2_n.d.next = self.s1_n.q.val();
        self.data.next = self.data_r.q.val();
        self.valid.next = self.valid_r.q.val();
        self.frame_err.next = self.ferr_r.q.val();
        self.busy.next = self.active.q.val();
        self.valid_r.d.next = false;
        self.ferr_r.d.next = false;
        if !self.active.q.val() {
            if !self.s2_n.q.val() {
                self.armed.d.next = true;
            } else if self.armed.q.val() {
                // Falling edge: the middle of the start bit is half a period away.
                self.active.d.next = true;
                self.armed.d.next = false;
                self.cnt.d.next = (self.divisor.val() >> 1) - 1;
                self.bits.d.next = 0.into();
            }
        } else if self.cnt.q.val() != 0 {
            self.cnt.d.next = self.cnt.q.val() - 1;
        } else {
            self.cnt.d.next = self.divisor.val() - 1;
            self.bits.d.next = self.bits.q.val() + 1;
            if self.bits.q.val() == 0 {
                if !self.s2_n.q.val() {
                    // The start bit did not last: a glitch.
                    self.active.d.next = false;
                }
            } else if self.bits.q.val() == 9 {
                self.active.d.next = false;
                if !self.s2_n.q.val() {
                    // The line is idle now: the next falling edge may start a byte.
                    self.armed.d.next = true;
                    self.valid_r.d.next = true;
                    self.data_r.d.next = self.sh.q.val();
                } else {
                    self.ferr_r.d.next = true;
                }
            } else {
                if self.s2_n.q.val() {
                    self.sh.d.next = self.sh.q.val() >> 1;
                } else {
                    self.sh.d.next = (self.sh.q.val() >> 1) | 0x80;
                }
            }
        }
    }
}

/// Encodes bytes as an 8N1 line, `div` ticks per bit, with `gap` idle ticks after each byte
/// (test helper shared by the UART and link testbenches).
pub fn encode_line(bytes: &[u8], div: usize, gap: usize) -> Vec<bool> {
    let mut line = Vec::with_capacity(bytes.len() * (10 * div + gap));
    for &b in bytes {
        let bits = std::iter::once(false).chain((0..8).map(|k| (b >> k) & 1 == 1)).chain(std::iter::once(true));
        for bit in bits {
            line.extend(std::iter::repeat(bit).take(div));
        }
        line.extend(std::iter::repeat(true).take(gap));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `line` to the receiver; returns the bytes and the number of framing errors.
    fn receive(line: Vec<bool>, div: usize) -> (Vec<u8>, usize) {
        let mut uut = UartRx::default();
        uut.connect_all();
        let mut sim = Simulation::new();
        sim.add_clock(5, |x: &mut Box<UartRx>| x.clock.next = !x.clock.val());
        let out = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), 0usize)));
        let out2 = out.clone();
        let n = line.len();
        sim.add_testbench(move |mut sim: Sim<UartRx>| {
            let mut x = sim.init()?;
            x.divisor.next = (div as u64).into();
            x.rx.next = true;
            for _ in 0..8 {
                wait_clock_cycle!(sim, clock, x);
            }
            for &bit in line.iter().chain(std::iter::repeat(&true).take(4 * div)) {
                x.rx.next = bit;
                wait_clock_cycle!(sim, clock, x);
                if x.valid.val() {
                    out2.lock().unwrap().0.push(x.data.val().index() as u8);
                }
                if x.frame_err.val() {
                    out2.lock().unwrap().1 += 1;
                }
            }
            sim.done(x)
        });
        sim.run(Box::new(uut), 10 * (n as u64 + 100 + 4 * div as u64)).unwrap();
        let r = out.lock().unwrap().clone();
        r
    }

    #[test]
    fn receives_bytes_at_several_rates_and_gaps() {
        let bytes: Vec<u8> = (0..=255u8).step_by(7).chain([0x00, 0xFF, 0x5A]).collect();
        for (div, gap) in [(4, 0), (5, 1), (13, 0), (50, 17)] {
            let (got, ferr) = receive(encode_line(&bytes, div, gap), div);
            assert_eq!(got, bytes, "div {div} gap {gap}");
            assert_eq!(ferr, 0);
        }
    }

    #[test]
    fn tolerates_clock_mismatch() {
        // The sender's bit is 3% longer than the receiver's (div 33 vs 32).
        let bytes: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(73)).collect();
        let (got, _) = receive(encode_line(&bytes, 33, 0), 32);
        assert_eq!(got, bytes);
    }

    #[test]
    fn framing_errors_and_glitches() {
        let div = 8;
        let mut line = encode_line(&[0x12], div, 3);
        // A byte whose stop bit is low, then a break that lasts, then a good byte.
        let mut bad = encode_line(&[0x34], div, 0);
        let l = bad.len();
        bad[l - div..].iter_mut().for_each(|b| *b = false);
        line.extend(bad);
        line.extend(std::iter::repeat(false).take(5 * div));
        line.extend(std::iter::repeat(true).take(2 * div));
        // A short glitch is not a start bit.
        line.extend([false, false]);
        line.extend(std::iter::repeat(true).take(2 * div));
        line.extend(encode_line(&[0x56], div, 0));
        let (got, ferr) = receive(line, div);
        assert_eq!(got, vec![0x12, 0x56]);
        assert_eq!(ferr, 1);
    }
}
