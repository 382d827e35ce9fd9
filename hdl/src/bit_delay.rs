//! A programmable one-bit delay line whose output is a balanced multiplexer tree.
//!
//! rust-hdl's `DelayLine` selects its output with a chain of `if delay == i + 1` tests, which
//! synthesizes to a priority chain as long as the line: the 63-tick lines of the coincidence
//! counter made it the core's critical path (about 26 MHz on the HX8K). Here the line is one
//! shift register, and the output is the bit `delay` of (line, input), an indexed select that
//! yosys builds as a multiplexer tree (`log2(L)` levels, about `L / 3` LUT4s). Same behaviour:
//! `data_out` in tick `t` is `data_in` of tick `t - delay` (`delay = 0` passes it through).

use rust_hdl::prelude::*;

/// A one-bit delay line of 0..=`L - 1` ticks; `L = 2^W`.
#[derive(LogicBlock)]
pub struct BitDelay<const L: usize, const W: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input bit.
    pub data_in: Signal<In, Bit>,
    /// Delay, in ticks.
    pub delay: Signal<In, Bits<W>>,
    /// `data_in` of `delay` ticks ago.
    pub data_out: Signal<Out, Bit>,
    // Bit k: data_in of k + 1 ticks ago (the top bit is never read; synthesis drops it).
    line: DFF<Bits<L>>,
    // Bit 0: data_in now; bit k: line bit k - 1.
    taps: Signal<Local, Bits<L>>,
    one: Constant<Bits<8>>,
}

impl<const L: usize, const W: usize> Default for BitDelay<L, W> {
    fn default() -> Self {
        assert!(W >= 1 && L == 1 << W, "L must be 2^W");
        Self {
            clock: Default::default(),
            data_in: Default::default(),
            delay: Default::default(),
            data_out: Default::default(),
            line: Default::default(),
            taps: Default::default(),
            one: Constant::new(1u64.to_bits()),
        }
    }
}

impl<const L: usize, const W: usize> Logic for BitDelay<L, W> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, line);
        self.taps.next = self.line.q.val() << self.one.val();
        self.taps.next = self.taps.val().replace_bit(0, self.data_in.val());
        self.line.d.next = self.taps.val();
        self.data_out.next = self.taps.val().get_bit(self.delay.val().index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn bit_delay_synthesizes() {
        let mut uut = BitDelay::<64, 6>::default();
        uut.connect_all();
        yosys_validate("bit_delay", &generate_verilog(&uut)).unwrap();
    }

    /// Against rust-hdl's `DelayLine` (the block it replaces), random input and delays.
    #[test]
    fn matches_rust_hdl_delay_line() {
        let mut uut = BitDelay::<64, 6>::default();
        let mut reference = DelayLine::<Bit, 63, 6>::default();
        uut.connect_all();
        reference.connect_all();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut delay = 0u64;
        let mut history = vec![false; 64];
        for t in 0..3000usize {
            if t % 200 == 0 {
                delay = rng.gen_range(0..64);
            }
            let x: bool = rng.gen();
            history.push(x);
            uut.data_in.next = x;
            reference.data_in.next = x;
            uut.delay.next = delay.into();
            reference.delay.next = delay.into();
            uut.clock.next = Clock::from(false);
            reference.clock.next = Clock::from(false);
            simulate(&mut uut, 100);
            simulate(&mut reference, 100);
            assert_eq!(uut.data_out.val(), reference.data_out.val(), "tick {t}, delay {delay}");
            if t >= 64 {
                assert_eq!(uut.data_out.val(), history[history.len() - 1 - delay as usize], "tick {t}");
            }
            uut.clock.next = Clock::from(true);
            reference.clock.next = Clock::from(true);
            simulate(&mut uut, 100);
            simulate(&mut reference, 100);
        }
    }
}
