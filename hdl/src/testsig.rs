//! The on-chip test-signal generator: random (Poisson-like) pulses on every channel at a
//! programmable rate, and correlated pairs on two channels with a set delay. It drives the
//! tagger inputs internally, so the same testbench runs on a board with no detectors.
//!
//! Channels `2g` and `2g + 1` share a 32-bit xorshift generator `g` (seeded differently per
//! generator), which advances every tick; channel `c` takes the generator's low 16 bits if `c`
//! is even, its high 16 bits if odd, and emits a one-tick pulse when they are below
//! `threshold[c]` (the compares are registered, and the pulse register is followed by one more
//! register that can sit beside the tagger's front ends, so a pulse reaches the pins three
//! ticks after the generator word it comes from). xorshift32 runs through every non-zero 32-bit word once
//! per period, so the two halves of one word are independent uniform 16-bit numbers (but for
//! the one missing zero word) and one generator serves two channels at the cost of one. The
//! probability per tick is `threshold[c] / 65536` (the rate is
//! `f_clk · threshold / 65536` pulses per second, minus the few lost to the one-tick gap a
//! pulse needs after the previous one). In pair mode, every pulse of channel `pair_src`
//! (while no pair is pending) also schedules a pulse on `pair_dst` exactly `pair_delay` ticks
//! later; `pair_src` pulses while a pair is pending are suppressed, so every `pair_src` pulse
//! has its partner. The block takes the two channels as one-hot masks ([`channel_mask`]): the
//! core decodes them when it loads `TS_CONFIG`, so the pulse logic is a few LUTs per channel
//! (with 3-bit channel numbers, the selects and their decoders were the HX8K core's critical
//! tick path). The reference model is [`TestSignalModel`].

use rust_hdl::prelude::*;

/// Width of a rate threshold, in bits (probability per tick = threshold / 2^16).
pub const THRESHOLD_BITS: usize = 16;
/// Width of the pair delay, in bits (ticks).
pub const PAIR_DELAY_BITS: usize = 16;

/// Seed of xorshift32 generator `g` (channels `2g` and `2g + 1`; never zero).
pub fn seed(g: usize) -> u32 {
    0x9E37_79B9u32.wrapping_mul(g as u32 + 1) ^ 0x5851_F42D
}

/// Generators for `n` channels (two channels per generator).
pub const fn generators(n: usize) -> usize {
    n.div_ceil(2)
}

/// The 16 random bits of channel `c` in a tick whose generator words are `rng`.
pub fn channel_bits(rng: &[u32], c: usize) -> u16 {
    (rng[c / 2] >> (16 * (c % 2))) as u16
}

/// One-hot mask of channel `c` among `n` channels (bit `c`), as the block's `pair_src` and
/// `pair_dst` take it; 0 when `c` is not one of them.
pub fn channel_mask(c: u8, n: usize) -> u8 {
    if (c as usize) < n.min(8) {
        1 << c
    } else {
        0
    }
}

/// One xorshift32 step (Marsaglia 2003: shifts 13, 17, 5).
pub fn xorshift32(x: u32) -> u32 {
    let x = x ^ (x << 13);
    let x = x ^ (x >> 17);
    x ^ (x << 5)
}

/// The test-signal generator for `N` channels.
#[derive(LogicBlock)]
pub struct TestSignal<const N: usize> {
    /// Clock (the tagger clock).
    pub clock: Signal<In, Clock>,
    /// Generator on; when off, `pins` stay low.
    pub enable: Signal<In, Bit>,
    /// Per-channel probability per tick, in units of 2^-16.
    pub threshold: [Signal<In, Bits<THRESHOLD_BITS>>; N],
    /// Pair mode on.
    pub pair_enable: Signal<In, Bit>,
    /// Source channel of the pairs, one-hot ([`channel_mask`]; no bit set: no pair starts).
    pub pair_src: Signal<In, Bits<N>>,
    /// Channel that gets the delayed partner pulse, one-hot ([`channel_mask`]; no bit set: the
    /// partner is not sent, but the source still waits for it).
    pub pair_dst: Signal<In, Bits<N>>,
    /// Delay of the partner pulse, in ticks (at least 1).
    pub pair_delay: Signal<In, Bits<PAIR_DELAY_BITS>>,
    /// Pulses, one tick wide (bit c = channel c); registered.
    pub pins: Signal<Out, Bits<N>>,
    // Generators: the first N.div_ceil(2) feed the channels (two each); the outputs of the
    // rest are unused, so synthesis removes them.
    rng: [DFFWithInit<Bits<32>>; N],
    // The threshold compares of the previous tick, registered (bit c = channel c): the
    // pair logic starts from a flip-flop, not from the compare's carry chain.
    lt: DFF<Bits<N>>,
    out: DFF<Bits<N>>,
    // `out` delayed by one tick: the register that drives the pins. The pulse logic's feedback
    // (`out`) stays beside the generators while this one is placed beside the front ends (the
    // route between the two was most of the HX8K core's critical tick path).
    pins_r: DFF<Bits<N>>,
    pending: DFF<Bit>,
    count: DFF<Bits<PAIR_DELAY_BITS>>,
    // `count` reads 1 in this tick (the partner is due): registered from the tick before
    // (`count == 2` while counting down, `pair_delay == 1` at the load), so the partner pulse
    // does not wait for a 16-bit compare on its way to the pins (it was the HX8K core's
    // critical tick path: the compare plus the pulse logic, six LUT levels).
    due: DFF<Bit>,
    gsel: [Constant<Bits<3>>; N],
    hsel: [Constant<Bit>; N],
    bits: [Signal<Local, Bits<THRESHOLD_BITS>>; N],
    t1: [Signal<Local, Bits<32>>; N],
    t2: [Signal<Local, Bits<32>>; N],
    lt_next: Signal<Local, Bits<N>>,
    fire: Signal<Local, Bits<N>>,
    src_fire: Signal<Local, Bit>,
    src_prev: Signal<Local, Bit>,
    partner: Signal<Local, Bit>,
    sh13: Constant<Bits<5>>,
    sh17: Constant<Bits<5>>,
    sh5: Constant<Bits<5>>,
}

impl<const N: usize> Default for TestSignal<N> {
    fn default() -> Self {
        assert!((1..=8).contains(&N));
        Self {
            clock: Default::default(),
            enable: Default::default(),
            threshold: array_init::array_init(|_| Default::default()),
            pair_enable: Default::default(),
            pair_src: Default::default(),
            pair_dst: Default::default(),
            pair_delay: Default::default(),
            pins: Default::default(),
            rng: array_init::array_init(|c| DFFWithInit::new((seed(c) as u64).to_bits())),
            lt: Default::default(),
            out: Default::default(),
            pins_r: Default::default(),
            pending: Default::default(),
            count: Default::default(),
            due: Default::default(),
            gsel: array_init::array_init(|i| Constant::new(((i / 2) as u64).to_bits())),
            hsel: array_init::array_init(|i| Constant::new(i % 2 == 1)),
            bits: array_init::array_init(|_| Default::default()),
            t1: array_init::array_init(|_| Default::default()),
            t2: array_init::array_init(|_| Default::default()),
            lt_next: Default::default(),
            fire: Default::default(),
            src_fire: Default::default(),
            src_prev: Default::default(),
            partner: Default::default(),
            sh13: Constant::new(13u64.to_bits()),
            sh17: Constant::new(17u64.to_bits()),
            sh5: Constant::new(5u64.to_bits()),
        }
    }
}

impl<const N: usize> Logic for TestSignal<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, lt, out, pins_r, pending, count, due);
        self.fire.next = self.lt.q.val();
        self.lt_next.next = 0.into();
        // The source channel's compare and pulse: an AND-OR over the one-hot mask.
        self.src_fire.next = (self.lt.q.val() & self.pair_src.val()).any();
        self.src_prev.next = (self.out.q.val() & self.pair_src.val()).any();
        for i in 0..N {
            self.rng[i].clock.next = self.clock.val();
            self.t1[i].next = self.rng[i].q.val() ^ (self.rng[i].q.val() << self.sh13.val());
            self.t2[i].next = self.t1[i].val() ^ (self.t1[i].val() >> self.sh17.val());
            self.rng[i].d.next = self.t2[i].val() ^ (self.t2[i].val() << self.sh5.val());
            // Channel i: generator i / 2 (constant selects, folded away by synthesis), its low
            // half if i is even, else its high half.
            self.bits[i].next = 0.into();
            for g in 0..N {
                if self.gsel[i].val().index() == g {
                    if self.hsel[i].val() {
                        self.bits[i].next = self.rng[g].q.val().get_bits::<THRESHOLD_BITS>(16);
                    } else {
                        self.bits[i].next = self.rng[g].q.val().get_bits::<THRESHOLD_BITS>(0);
                    }
                }
            }
            // Written as the bit's value, not as "set the bit if": yosys made the latter a
            // flip-flop with a synchronous set, the compare's carry chain on its slow SR pin
            // (the UP5K core's critical tick path: 59.6 of 60 MHz at seed 1).
            self.lt_next.next =
                self.lt_next.val().replace_bit(i, self.bits[i].val() < self.threshold[i].val());
        }
        self.lt.d.next = self.lt_next.val();
        // Pairs: a pending partner counts down; new source pulses wait until it is sent.
        self.partner.next = false;
        if self.pair_enable.val() & self.enable.val() {
            if self.pending.q.val() {
                self.fire.next = self.fire.val() & !self.pair_src.val();
                if self.due.q.val() {
                    self.pending.d.next = false;
                    self.partner.next = true;
                }
            } else if self.src_fire.val() & !self.src_prev.val() {
                self.pending.d.next = true;
            }
        } else {
            self.pending.d.next = false;
        }
        // The countdown has no clock enable (a pair start decoded from the source channel
        // would fan out to all its flip-flops): it counts while a partner is pending and
        // otherwise holds `pair_delay`, which is what a start loads.
        if self.pending.q.val() {
            self.count.d.next = self.count.q.val() - 1;
            self.due.d.next = self.count.q.val() == 2;
        } else {
            self.count.d.next = self.pair_delay.val();
            self.due.d.next = self.pair_delay.val() == 1;
        }
        if self.partner.val() {
            self.fire.next = self.fire.val() | self.pair_dst.val();
        }
        // One-tick pulses with a low tick between them.
        if self.enable.val() {
            self.out.d.next = self.fire.val() & !self.out.q.val();
        } else {
            self.out.d.next = 0.into();
        }
        self.pins_r.d.next = self.out.q.val();
        self.pins.next = self.pins_r.q.val();
    }
}

/// Settings of the test-signal generator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestSignalConfig {
    /// Generator on.
    pub enable: bool,
    /// Per-channel probability per tick, in units of 2^-16.
    pub threshold: [u16; 8],
    /// Pair mode on.
    pub pair_enable: bool,
    /// Source channel of the pairs.
    pub pair_src: u8,
    /// Partner channel.
    pub pair_dst: u8,
    /// Partner delay, in ticks (at least 1).
    pub pair_delay: u16,
}

/// Bit-exact reference model of [`TestSignal`].
#[derive(Clone, Debug)]
pub struct TestSignalModel {
    channels: usize,
    rng: [u32; 8],
    lt: u8,
    out: u8,
    pins_r: u8,
    pending: bool,
    count: u16,
}

impl TestSignalModel {
    /// The generator in its power-on state.
    pub fn new(channels: usize) -> Self {
        assert!((1..=8).contains(&channels));
        Self { channels, rng: std::array::from_fn(seed), lt: 0, out: 0, pins_r: 0, pending: false, count: 0 }
    }

    /// One tick; returns the pins during this tick (registered twice: the pulse logic set them
    /// two ticks ago).
    pub fn step(&mut self, cfg: &TestSignalConfig) -> u8 {
        let pins = self.pins_r;
        self.pins_r = self.out;
        // The compares of the previous tick (registered in the gateware).
        let mut fire = self.lt;
        let src_fire = (cfg.pair_src as usize) < self.channels && (self.lt >> cfg.pair_src) & 1 == 1;
        self.lt = 0;
        for c in 0..self.channels {
            if channel_bits(&self.rng, c) < cfg.threshold[c] {
                self.lt |= 1 << c;
            }
        }
        for g in 0..generators(self.channels) {
            self.rng[g] = xorshift32(self.rng[g]);
        }
        let mut partner = false;
        if cfg.pair_enable && cfg.enable {
            if self.pending {
                fire &= !(1u8.checked_shl(cfg.pair_src as u32).unwrap_or(0));
                if self.count == 1 {
                    self.pending = false;
                    partner = true;
                }
                self.count = self.count.wrapping_sub(1);
            } else if src_fire && (self.out >> cfg.pair_src) & 1 == 0 {
                self.pending = true;
                self.count = cfg.pair_delay;
            }
        } else {
            self.pending = false;
        }
        if partner && (cfg.pair_dst as usize) < self.channels {
            fire |= 1 << cfg.pair_dst;
        }
        let mask = if self.channels == 8 { 0xff } else { (1u8 << self.channels) - 1 };
        self.out = if cfg.enable { fire & !self.out & mask } else { 0 };
        pins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 5;

    fn set(uut: &mut TestSignal<N>, cfg: &TestSignalConfig) {
        uut.enable.next = cfg.enable;
        for c in 0..N {
            uut.threshold[c].next = (cfg.threshold[c] as u64).into();
        }
        uut.pair_enable.next = cfg.pair_enable;
        uut.pair_src.next = (channel_mask(cfg.pair_src, N) as u64).into();
        uut.pair_dst.next = (channel_mask(cfg.pair_dst, N) as u64).into();
        uut.pair_delay.next = (cfg.pair_delay as u64).into();
    }

    #[test]
    fn test_signal_synthesizes() {
        let mut uut = TestSignal::<N>::default();
        uut.connect_all();
        yosys_validate("test_signal", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn rust_hdl_block_matches_model() {
        let cfgs = [
            TestSignalConfig { enable: true, threshold: [3000, 100, 20000, 0, 65535, 0, 0, 0], ..Default::default() },
            TestSignalConfig {
                enable: true,
                threshold: [4000, 0, 500, 500, 100, 0, 0, 0],
                pair_enable: true,
                pair_src: 0,
                pair_dst: 1,
                pair_delay: 7,
            },
            // The shortest delays: the partner is due at the load (1) or one tick after it (2).
            TestSignalConfig {
                enable: true,
                threshold: [0, 0, 9000, 0, 300, 0, 0, 0],
                pair_enable: true,
                pair_src: 2,
                pair_dst: 4,
                pair_delay: 1,
            },
            TestSignalConfig {
                enable: true,
                threshold: [0, 0, 9000, 0, 300, 0, 0, 0],
                pair_enable: true,
                pair_src: 2,
                pair_dst: 3,
                pair_delay: 2,
            },
        ];
        let mut uut = TestSignal::<N>::default();
        uut.connect_all();
        let mut m = TestSignalModel::new(N);
        let mut ones = 0;
        for t in 0..3000 * cfgs.len() {
            let cfg = &cfgs[(t / 3000) as usize];
            set(&mut uut, cfg);
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let hw = uut.pins.val().to_u8();
            let sw = m.step(cfg);
            assert_eq!(hw, sw, "tick {t}");
            ones += sw.count_ones();
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
        }
        assert!(ones > 2000);
    }

    /// Channels that share a generator (0 and 1: the two halves of one word) are as
    /// independent as channels that do not (1 and 2): their coincidences at lags of -4..=4
    /// ticks match the product of their rates, and each runs at its own rate.
    #[test]
    fn shared_generator_channels_are_independent() {
        let cfg = TestSignalConfig { enable: true, threshold: [6554, 3277, 6554, 0, 0, 0, 0, 0], ..Default::default() };
        let mut m = TestSignalModel::new(N);
        let ticks = 400_000usize;
        let pins: Vec<u8> = (0..ticks).map(|_| m.step(&cfg)).collect();
        let n = |c: usize| pins.iter().filter(|p| *p >> c & 1 == 1).count() as f64;
        for (c, p) in [(0, 0.1), (1, 0.05), (2, 0.1)] {
            // Poisson at p per tick minus the refractory tick: p (1 - p) per tick.
            let expect = ticks as f64 * p * (1.0 - p);
            assert!((n(c) - expect).abs() < 5.0 * expect.sqrt(), "channel {c}: {} vs {expect}", n(c));
        }
        for (a, b) in [(0, 1), (1, 2), (0, 2)] {
            let expect = n(a) * n(b) / ticks as f64;
            for lag in -4i64..=4 {
                let k = (4..ticks - 4)
                    .filter(|&t| pins[t] >> a & 1 == 1 && pins[(t as i64 + lag) as usize] >> b & 1 == 1)
                    .count() as f64;
                assert!((k - expect).abs() < 5.0 * expect.sqrt(), "channels {a},{b} lag {lag}: {k} vs {expect}");
            }
        }
    }

    #[test]
    fn rate_and_pair_delay() {
        let thr = 655; // 1% per tick
        let cfg = TestSignalConfig {
            enable: true,
            threshold: [thr, 0, thr, 0, 0, 0, 0, 0],
            pair_enable: true,
            pair_src: 0,
            pair_dst: 1,
            pair_delay: 25,
        };
        let mut m = TestSignalModel::new(N);
        let ticks = 400_000;
        let pins: Vec<u8> = (0..ticks).map(|_| m.step(&cfg)).collect();
        // Channel 2: Poisson at ~1% per tick (minus the refractory tick).
        let n2 = pins.iter().filter(|p| *p & 4 != 0).count() as f64;
        let expect = ticks as f64 * 0.01 * 0.99;
        assert!((n2 - expect).abs() < 5.0 * expect.sqrt(), "{n2} vs {expect}");
        // Every channel-1 pulse is exactly 25 ticks after a channel-0 pulse.
        let src: Vec<usize> = (0..ticks).filter(|&t| pins[t] & 1 != 0).collect();
        let dst: Vec<usize> = (0..ticks).filter(|&t| pins[t] & 2 != 0).collect();
        assert!(src.len() > 1000);
        assert!(dst.len() + 1 >= src.len() && dst.len() <= src.len());
        assert!(dst.iter().zip(&src).all(|(d, s)| d - s == 25));
    }
}
