//! A programmable one-bit delay line of 0..=63 ticks whose output multiplexer is pipelined.
//!
//! rust-hdl's `DelayLine` selects its output with a chain of `if delay == i + 1` tests, which
//! synthesizes to a priority chain as long as the line: the 63-tick lines of the coincidence
//! counter made it the core's critical path (about 26 MHz on the HX8K). A balanced 64:1
//! multiplexer tree is still six LUT4 levels (an iCE40 LUT4 is one 2:1 multiplexer), which
//! missed 150 MHz in the full HX8K core. Here the line is one shift register and the select is
//! split in two registered 8:1 stages, taken two and one ticks early from the shifting line, so
//! that they land on the right bit:
//!
//! * in tick `t − 2`, stage A registers, for each group `a` of eight, the bit `8a + d[2:0]` of
//!   `X = (line, data_in, 0, 0)` (`X[j]` is `data_in` of `j − 2` ticks before, so in tick `t`
//!   it is `data_in` of `j` ticks before);
//! * in tick `t − 1`, stage B registers group `d[5:3]` of stage A;
//! * in tick `t`, `data_out` is stage B, or for `d` = 0 and 1 (which the stages cannot serve)
//!   `data_in` or the line's first bit, chosen by two flags registered from `d`.
//!
//! So `data_out` in tick `t` is `data_in` of tick `t − d` while `d` is held, as before. For two
//! ticks after `d` changes, the stages still hold selects of the old value: the output is
//! `data_in` of `t − j` with `j` mixing the new and old delays ([`BitDelayModel`] gives it
//! exactly). Both paths into the pipeline registers are three LUT levels.

use rust_hdl::prelude::*;

/// Length of the line: delays 0..=`LEN - 1` ticks.
pub const LEN: usize = 64;
/// Width of the delay, in bits.
pub const DELAY_BITS: usize = 6;

/// A one-bit delay line of 0..=63 ticks (see the module documentation).
#[derive(LogicBlock)]
pub struct BitDelay {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input bit.
    pub data_in: Signal<In, Bit>,
    /// Delay, in ticks.
    pub delay: Signal<In, Bits<DELAY_BITS>>,
    /// `data_in` of `delay` ticks ago (for a delay held for at least two ticks).
    pub data_out: Signal<Out, Bit>,
    // Bit k: data_in of k + 1 ticks ago (the top three bits are never read; synthesis drops
    // them).
    line: DFF<Bits<LEN>>,
    // Bit j: data_in of j - 2 ticks ago (bits 0 and 1: zero).
    x: Signal<Local, Bits<LEN>>,
    // `x` shifted down to group `a`, and its eight bits.
    sh: [Signal<Local, Bits<LEN>>; 8],
    grp: [Signal<Local, Bits<8>>; 8],
    stage_a_next: Signal<Local, Bits<8>>,
    stage_a: DFF<Bits<8>>,
    stage_b: DFF<Bit>,
    // The delay of the previous tick is 0 (power-on value of `delay`: set) or 1.
    is0: DFFWithInit<Bit>,
    is1: DFF<Bit>,
    k8: [Constant<Bits<8>>; 8],
    one: Constant<Bits<8>>,
    three: Constant<Bits<8>>,
}

impl Default for BitDelay {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            data_in: Default::default(),
            delay: Default::default(),
            data_out: Default::default(),
            line: Default::default(),
            x: Default::default(),
            sh: array_init::array_init(|_| Default::default()),
            grp: array_init::array_init(|_| Default::default()),
            stage_a_next: Default::default(),
            stage_a: Default::default(),
            stage_b: Default::default(),
            is0: DFFWithInit::new(true),
            is1: Default::default(),
            k8: array_init::array_init(|a| Constant::new(((8 * a) as u64).to_bits())),
            one: Constant::new(1u64.to_bits()),
            three: Constant::new(3u64.to_bits()),
        }
    }
}

impl Logic for BitDelay {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, line, stage_a, stage_b, is0, is1);
        self.line.d.next = (self.line.q.val() << self.one.val()).replace_bit(0, self.data_in.val());
        self.x.next = (self.line.q.val() << self.three.val()).replace_bit(2, self.data_in.val());
        self.stage_a_next.next = 0.into();
        for a in 0..8 {
            self.sh[a].next = self.x.val() >> self.k8[a].val();
            self.grp[a].next = self.sh[a].val().get_bits::<8>(0);
            self.stage_a_next.next = self
                .stage_a_next
                .val()
                .replace_bit(a, self.grp[a].val().get_bit(self.delay.val().get_bits::<3>(0).index()));
        }
        self.stage_a.d.next = self.stage_a_next.val();
        self.stage_b.d.next = self.stage_a.q.val().get_bit(self.delay.val().get_bits::<3>(3).index());
        self.is0.d.next = self.delay.val() == 0;
        self.is1.d.next = self.delay.val() == 1;
        if self.is0.q.val() {
            self.data_out.next = self.data_in.val();
        } else if self.is1.q.val() {
            self.data_out.next = self.line.q.val().get_bit(0);
        } else {
            self.data_out.next = self.stage_b.q.val();
        }
    }
}

/// Bit-exact model of [`BitDelay`], including the two ticks after a delay change.
#[derive(Clone, Debug, Default)]
pub struct BitDelayModel {
    /// Bit k: the input of k ticks ago (bit 0 is this tick's, once [`Self::step`] took it).
    history: u64,
    /// Delay of the previous tick and of the tick before.
    d1: u8,
    d2: u8,
}

impl BitDelayModel {
    /// A line at power-on (all zeros, delay 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// One tick with input `x` and delay `delay` (ticks; bits above the sixth are ignored);
    /// returns the output in this tick.
    pub fn step(&mut self, x: bool, delay: u8) -> bool {
        self.history = self.history << 1 | u64::from(x);
        // The tap the registers select this tick: the flags from the previous tick's delay,
        // stage B's group from it too, stage A's bit from the delay of the tick before.
        let j = match self.d1 {
            0 => 0,
            1 => 1,
            d1 => usize::from(d1 & 0x38 | self.d2 & 7),
        };
        // Stage A's bits 0 and 1 (taps that would be in the future) are zero.
        let out = if self.d1 >= 2 && j < 2 { false } else { self.history >> j & 1 == 1 };
        self.d2 = self.d1;
        self.d1 = delay & (LEN as u8 - 1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn bit_delay_synthesizes() {
        let mut uut = BitDelay::default();
        uut.connect_all();
        yosys_validate("bit_delay", &generate_verilog(&uut)).unwrap();
    }

    /// Against the model at every tick, and against rust-hdl's `DelayLine` (the block it
    /// replaced) and the input history whenever the delay has been held for two ticks: random
    /// input, delays changed every few ticks (often, so that the transients are exercised)
    /// or held for long.
    #[test]
    fn matches_model_and_rust_hdl_delay_line() {
        let mut uut = BitDelay::default();
        let mut reference = DelayLine::<Bit, 63, 6>::default();
        uut.connect_all();
        reference.connect_all();
        let mut model = BitDelayModel::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut delay = 0u64;
        let mut held = 0usize;
        let mut history = vec![false; 64];
        let mut checked = [0usize; 64];
        for t in 0..20_000usize {
            let change = if t < 10_000 { rng.gen_range(0..4) == 0 } else { t % 150 == 0 };
            if change {
                let d = if rng.gen_range(0..4) == 0 { rng.gen_range(0..3) } else { rng.gen_range(0..64) };
                if d != delay {
                    held = 0;
                }
                delay = d;
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
            let m = model.step(x, delay as u8);
            assert_eq!(uut.data_out.val(), m, "tick {t}, delay {delay} (model)");
            if held >= 2 && t >= 64 {
                assert_eq!(uut.data_out.val(), reference.data_out.val(), "tick {t}, delay {delay}");
                assert_eq!(uut.data_out.val(), history[history.len() - 1 - delay as usize], "tick {t}");
                checked[delay as usize] += 1;
            }
            held += 1;
            uut.clock.next = Clock::from(true);
            reference.clock.next = Clock::from(true);
            simulate(&mut uut, 100);
            simulate(&mut reference, 100);
        }
        assert!(checked.iter().all(|&c| c > 0), "every delay held and checked: {checked:?}");
    }
}
