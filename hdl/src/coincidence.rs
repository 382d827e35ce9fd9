//! The coincidence counter: per-channel delay compensation, a programmable coincidence window,
//! [`GROUPS`] N-fold coincidence groups (any subset of channels each), and singles and
//! coincidence counts integrated over a programmable gate time, readable without stopping
//! acquisition.
//!
//! Input is the tagger's per-tick channel event mask (after dead time). Each channel is
//! delayed by `delay[c]` ticks (0..=63, rust-hdl's `DelayLine`). With `t_c` the time of
//! channel `c`'s latest delayed event, group `g` (channel mask `G`) counts one coincidence at
//! tick `t` when some member has an event at `t` and every member has one in `[t − W, t]`:
//! the coincidence is counted once, at its latest event. `W = 0` counts same-tick events only.
//!
//! Counts: every gate of `gate` ticks, the singles of each channel and the coincidences of
//! each group are latched into the `*_latched` outputs, the accumulators restart, and
//! `gate_seq` increments, so a host can read complete gates while acquisition runs. The
//! reference model is [`CoincidenceModel`].

use rust_hdl::prelude::*;

/// Number of coincidence groups.
pub const GROUPS: usize = 4;
/// Width of a per-channel delay, in bits (ticks, 0..=63).
pub const DELAY_BITS: usize = 6;
/// Largest per-channel delay, in ticks.
pub const MAX_DELAY: usize = (1 << DELAY_BITS) - 1;
/// Width of the coincidence window, in bits (ticks, 0..=255).
pub const WINDOW_BITS: usize = 8;
/// Width of the counters, in bits.
pub const COUNT_BITS: usize = 32;

/// The coincidence counter for `N` channels.
#[derive(LogicBlock)]
pub struct Coincidence<const N: usize> {
    /// Tagger clock.
    pub clock: Signal<In, Clock>,
    /// Channel events in this tick (bit c = channel c).
    pub hits: Signal<In, Bits<N>>,
    /// Delay per channel, in ticks.
    pub delay: [Signal<In, Bits<DELAY_BITS>>; N],
    /// Coincidence window, in ticks.
    pub window: Signal<In, Bits<WINDOW_BITS>>,
    /// Channel mask of each group (an empty mask never counts).
    pub group: [Signal<In, Bits<N>>; GROUPS],
    /// Gate time, in ticks (at least 1).
    pub gate: Signal<In, Bits<COUNT_BITS>>,
    /// Coincidence pulse of each group in this tick (registered, one tick after the event).
    pub coinc: Signal<Out, Bits<GROUPS>>,
    /// Singles of each channel in the last complete gate.
    pub singles_latched: [Signal<Out, Bits<COUNT_BITS>>; N],
    /// Coincidences of each group in the last complete gate.
    pub coinc_latched: [Signal<Out, Bits<COUNT_BITS>>; GROUPS],
    /// Number of complete gates (wraps).
    pub gate_seq: Signal<Out, Bits<16>>,
    lines: [DelayLine<Bit, MAX_DELAY, DELAY_BITS>; N],
    dh: DFF<Bits<N>>,
    age: [DFF<Bits<WINDOW_BITS>>; N],
    seen: DFF<Bits<N>>,
    near: DFF<Bits<N>>,
    coinc_r: DFF<Bits<GROUPS>>,
    dh2: DFF<Bits<N>>,
    singles: [DFF<Bits<COUNT_BITS>>; N],
    counts: [DFF<Bits<COUNT_BITS>>; GROUPS],
    singles_l: [DFF<Bits<COUNT_BITS>>; N],
    counts_l: [DFF<Bits<COUNT_BITS>>; GROUPS],
    gate_left: DFF<Bits<COUNT_BITS>>,
    gate_end: DFF<Bit>,
    seq: DFF<Bits<16>>,
    recent: Signal<Local, Bits<N>>,
    all_in: Signal<Local, Bit>,
    s_sum: [Signal<Local, Bits<COUNT_BITS>>; N],
    dh_next: Signal<Local, Bits<N>>,
    near_next: Signal<Local, Bits<N>>,
    seen_next: Signal<Local, Bits<N>>,
    coinc_next: Signal<Local, Bits<GROUPS>>,
    c_sum: [Signal<Local, Bits<COUNT_BITS>>; GROUPS],
}

impl<const N: usize> Default for Coincidence<N> {
    fn default() -> Self {
        assert!((1..=8).contains(&N));
        Self {
            clock: Default::default(),
            hits: Default::default(),
            delay: array_init::array_init(|_| Default::default()),
            window: Default::default(),
            group: array_init::array_init(|_| Default::default()),
            gate: Default::default(),
            coinc: Default::default(),
            singles_latched: array_init::array_init(|_| Default::default()),
            coinc_latched: array_init::array_init(|_| Default::default()),
            gate_seq: Default::default(),
            lines: array_init::array_init(|_| Default::default()),
            dh: Default::default(),
            age: array_init::array_init(|_| Default::default()),
            seen: Default::default(),
            near: Default::default(),
            coinc_r: Default::default(),
            dh2: Default::default(),
            singles: array_init::array_init(|_| Default::default()),
            counts: array_init::array_init(|_| Default::default()),
            singles_l: array_init::array_init(|_| Default::default()),
            counts_l: array_init::array_init(|_| Default::default()),
            gate_left: Default::default(),
            gate_end: Default::default(),
            seq: Default::default(),
            recent: Default::default(),
            all_in: Default::default(),
            s_sum: array_init::array_init(|_| Default::default()),
            dh_next: Default::default(),
            near_next: Default::default(),
            seen_next: Default::default(),
            coinc_next: Default::default(),
            c_sum: array_init::array_init(|_| Default::default()),
        }
    }
}

impl<const N: usize> Logic for Coincidence<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, dh, seen, near, coinc_r, dh2, gate_left, gate_end, seq);
        // Delay compensation → registered delayed hits `dh`.
        self.dh_next.next = 0.into();
        for i in 0..N {
            self.lines[i].clock.next = self.clock.val();
            self.lines[i].data_in.next = self.hits.val().get_bit(i);
            self.lines[i].delay.next = self.delay[i].val();
            self.dh_next.next = self.dh_next.val().replace_bit(i, self.lines[i].data_out.val());
        }
        self.dh.d.next = self.dh_next.val();
        // Ages: ticks since each channel's previous event; `near` = "previous event no
        // more than W ticks ago", registered one tick ahead.
        self.near_next.next = 0.into();
        self.seen_next.next = self.seen.q.val();
        for i in 0..N {
            self.age[i].clock.next = self.clock.val();
            self.age[i].d.next = self.age[i].q.val();
            if self.dh.q.val().get_bit(i) {
                self.age[i].d.next = 1.into();
                self.near_next.next = self.near_next.val().replace_bit(i, self.window.val() != 0);
                self.seen_next.next = self.seen_next.val().replace_bit(i, true);
            } else {
                if self.age[i].q.val() != 255 {
                    self.age[i].d.next = self.age[i].q.val() + 1;
                }
                self.near_next.next = self
                    .near_next
                    .val()
                    .replace_bit(i, self.seen.q.val().get_bit(i) & (self.age[i].q.val() < self.window.val()));
            }
        }
        self.near.d.next = self.near_next.val();
        self.seen.d.next = self.seen_next.val();
        self.recent.next = self.dh.q.val() | self.near.q.val();
        // Groups.
        self.coinc_next.next = 0.into();
        for g in 0..GROUPS {
            self.all_in.next = (self.group[g].val() & !self.recent.val()) == 0;
            self.coinc_next.next = self
                .coinc_next
                .val()
                .replace_bit(g, self.all_in.val() & (self.group[g].val() & self.dh.q.val()).any());
        }
        self.coinc_r.d.next = self.coinc_next.val();
        self.coinc.next = self.coinc_r.q.val();
        self.dh2.d.next = self.dh.q.val();
        // Gate timer: `gate_end` is high in the last tick of a gate.
        if self.gate_left.q.val() <= 1 {
            self.gate_left.d.next = self.gate.val();
        } else {
            self.gate_left.d.next = self.gate_left.q.val() - 1;
        }
        self.gate_end.d.next = self.gate_left.q.val() == 2;
        // Counters (the counted events are `dh2` and `coinc_r`, both one tick old).
        for i in 0..N {
            self.singles[i].clock.next = self.clock.val();
            self.singles_l[i].clock.next = self.clock.val();
            self.singles_l[i].d.next = self.singles_l[i].q.val();
            self.s_sum[i].next = self.singles[i].q.val();
            if self.dh2.q.val().get_bit(i) {
                self.s_sum[i].next = self.singles[i].q.val() + 1;
            }
            self.singles[i].d.next = self.s_sum[i].val();
            if self.gate_end.q.val() {
                self.singles_l[i].d.next = self.s_sum[i].val();
                self.singles[i].d.next = 0.into();
            }
            self.singles_latched[i].next = self.singles_l[i].q.val();
        }
        for g in 0..GROUPS {
            self.counts[g].clock.next = self.clock.val();
            self.counts_l[g].clock.next = self.clock.val();
            self.counts_l[g].d.next = self.counts_l[g].q.val();
            self.c_sum[g].next = self.counts[g].q.val();
            if self.coinc_r.q.val().get_bit(g) {
                self.c_sum[g].next = self.counts[g].q.val() + 1;
            }
            self.counts[g].d.next = self.c_sum[g].val();
            if self.gate_end.q.val() {
                self.counts_l[g].d.next = self.c_sum[g].val();
                self.counts[g].d.next = 0.into();
            }
            self.coinc_latched[g].next = self.counts_l[g].q.val();
        }
        if self.gate_end.q.val() {
            self.seq.d.next = self.seq.q.val() + 1;
        }
        self.gate_seq.next = self.seq.q.val();
    }
}

/// Settings of the coincidence counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoincidenceConfig {
    /// Delay per channel, in ticks (0..=63).
    pub delay: [u8; 8],
    /// Coincidence window, in ticks.
    pub window: u8,
    /// Channel mask of each group.
    pub group: [u8; GROUPS],
    /// Gate time, in ticks.
    pub gate: u32,
}

impl Default for CoincidenceConfig {
    fn default() -> Self {
        Self { delay: [0; 8], window: 0, group: [0; GROUPS], gate: 1_000_000 }
    }
}

/// Bit-exact reference model of [`Coincidence`].
#[derive(Clone, Debug)]
pub struct CoincidenceModel {
    channels: usize,
    history: Vec<u8>,
    dh: u8,
    age: [u8; 8],
    seen: u8,
    near: u8,
    coinc_r: u8,
    dh2: u8,
    singles: [u32; 8],
    counts: [u32; GROUPS],
    singles_l: [u32; 8],
    counts_l: [u32; GROUPS],
    gate_left: u32,
    gate_end: bool,
    seq: u16,
}

/// What the coincidence counter shows in one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoincidenceOutputs {
    /// Coincidence pulses of the groups (bit g = group g).
    pub coinc: u8,
    /// Gates completed.
    pub gate_seq: u16,
    /// Singles of the last complete gate.
    pub singles: [u32; 8],
    /// Coincidences of the last complete gate.
    pub counts: [u32; GROUPS],
}

impl CoincidenceModel {
    /// The counter in its power-on state.
    pub fn new(channels: usize) -> Self {
        assert!((1..=8).contains(&channels));
        Self {
            channels,
            history: vec![0; MAX_DELAY + 1],
            dh: 0,
            age: [0; 8],
            seen: 0,
            near: 0,
            coinc_r: 0,
            dh2: 0,
            singles: [0; 8],
            counts: [0; GROUPS],
            singles_l: [0; 8],
            counts_l: [0; GROUPS],
            gate_left: 0,
            gate_end: false,
            seq: 0,
        }
    }

    /// The registered outputs during the current tick.
    pub fn outputs(&self) -> CoincidenceOutputs {
        CoincidenceOutputs { coinc: self.coinc_r, gate_seq: self.seq, singles: self.singles_l, counts: self.counts_l }
    }

    /// One tick with channel events `hits`; returns the outputs shown during the tick.
    pub fn step(&mut self, hits: u8, cfg: &CoincidenceConfig) -> CoincidenceOutputs {
        let out = self.outputs();
        let n = self.channels;
        // history[k] = hits of k ticks ago (k = 0 is this tick).
        self.history.rotate_right(1);
        self.history[0] = hits;
        let mut delayed = 0u8;
        for c in 0..n {
            let d = cfg.delay[c] as usize & MAX_DELAY;
            delayed |= self.history[d] & (1 << c);
        }
        let recent = self.dh | self.near;
        let mut coinc = 0u8;
        for (g, &m) in cfg.group.iter().enumerate() {
            let m = m & ((1u16 << n) - 1) as u8;
            if m & !recent == 0 && m & self.dh != 0 {
                coinc |= 1 << g;
            }
        }
        let mut near = 0u8;
        let mut age = self.age;
        for c in 0..n {
            if self.dh & (1 << c) != 0 {
                age[c] = 1;
                near |= ((cfg.window != 0) as u8) << c;
                self.seen |= 1 << c;
            } else {
                if self.age[c] != 255 {
                    age[c] = self.age[c] + 1;
                }
                if self.seen & (1 << c) != 0 && self.age[c] < cfg.window {
                    near |= 1 << c;
                }
            }
        }
        // Counters use the values before this tick's register update.
        let mut singles = self.singles;
        let mut counts = self.counts;
        for c in 0..n {
            singles[c] = singles[c].wrapping_add(((self.dh2 >> c) & 1) as u32);
        }
        for g in 0..GROUPS {
            counts[g] = counts[g].wrapping_add(((self.coinc_r >> g) & 1) as u32);
        }
        if self.gate_end {
            self.singles_l = singles;
            self.counts_l = counts;
            singles = [0; 8];
            counts = [0; GROUPS];
            self.seq = self.seq.wrapping_add(1);
        }
        self.gate_end = self.gate_left == 2;
        self.gate_left = if self.gate_left <= 1 { cfg.gate } else { self.gate_left - 1 };
        self.singles = singles;
        self.counts = counts;
        self.dh2 = self.dh;
        self.coinc_r = coinc;
        self.near = near;
        self.age = age;
        self.dh = delayed;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const N: usize = 5;

    fn set(uut: &mut Coincidence<N>, cfg: &CoincidenceConfig) {
        for c in 0..N {
            uut.delay[c].next = (cfg.delay[c] as u64).into();
        }
        uut.window.next = (cfg.window as u64).into();
        for g in 0..GROUPS {
            uut.group[g].next = (cfg.group[g] as u64).into();
        }
        uut.gate.next = (cfg.gate as u64).into();
    }

    #[test]
    fn coincidence_synthesizes() {
        let mut uut = Coincidence::<N>::default();
        uut.connect_all();
        yosys_validate("coincidence", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn rust_hdl_block_matches_model() {
        let cfg = CoincidenceConfig {
            delay: [0, 3, 17, 0, 63, 0, 0, 0],
            window: 4,
            group: [0b00011, 0b00101, 0b10110, 0b01111],
            gate: 700,
        };
        let mut uut = Coincidence::<N>::default();
        uut.connect_all();
        set(&mut uut, &cfg);
        let mut m = CoincidenceModel::new(N);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut coincs = 0;
        for t in 0..8000 {
            let hits: u8 = (0..N).map(|c| (rng.gen_bool(0.08) as u8) << c).sum();
            uut.hits.next = (hits as u64).into();
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let want = m.step(hits, &cfg);
            let got = CoincidenceOutputs {
                coinc: uut.coinc.val().to_u8(),
                gate_seq: uut.gate_seq.val().to_u16(),
                singles: std::array::from_fn(|c| if c < N { uut.singles_latched[c].val().to_u32() } else { 0 }),
                counts: std::array::from_fn(|g| uut.coinc_latched[g].val().to_u32()),
            };
            assert_eq!(got, want, "tick {t}");
            coincs += want.coinc.count_ones();
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
        }
        assert!(coincs > 100, "{coincs} coincidences");
        assert!(m.outputs().gate_seq >= 10);
    }

    #[test]
    fn window_and_delay_semantics() {
        // Channel 1 lags channel 0 by 5 ticks; compensate channel 0 by 5.
        let mut cfg = CoincidenceConfig { window: 2, group: [0b11, 0, 0, 0], gate: 100, ..Default::default() };
        let run = |cfg: &CoincidenceConfig, lag: usize| {
            let mut m = CoincidenceModel::new(2);
            let mut n = 0;
            for t in 0..1000 {
                let mut hits = 0;
                if t % 50 == 10 {
                    hits |= 1;
                }
                if t % 50 == 10 + lag {
                    hits |= 2;
                }
                n += m.step(hits, cfg).coinc.count_ones();
            }
            n
        };
        assert_eq!(run(&cfg, 5), 0, "outside the window without delay compensation");
        cfg.delay[0] = 5;
        assert_eq!(run(&cfg, 5), 20, "inside with compensation");
        cfg.delay[0] = 3;
        assert_eq!(run(&cfg, 5), 20, "2 ticks apart: inside a window of 2");
        cfg.delay[0] = 2;
        assert_eq!(run(&cfg, 5), 0, "3 ticks apart: outside a window of 2");
    }
}
