//! The coincidence stream filter: in coincidence-only mode, only the channel events that
//! belong to a coincidence of an enabled group reach the tagger, which saves link bandwidth
//! when singles rates are far above coincidence rates.
//!
//! # Semantics
//! Input is the per-tick channel event mask `hits` (the same mask the coincidence counter
//! takes). Channel `c` is first delayed by `delay[c]` ticks (0..=[`FILTER_MAX_DELAY`]); call
//! `x` the tick of an event after this delay. With the window `W` (0..=[`FILTER_MAX_WINDOW`]
//! ticks) and the group masks as in [`crate::coincidence`] (an empty mask is off), group `g`
//! *fires* at tick `y` when a member has an event at `y` and every member has one in
//! `[y − W, y]`. An event of channel `c` at `x` is **kept** iff
//!
//! * some group containing `c` fires at a tick `y` with `x ≤ y ≤ x + W`, or
//! * `c` is in the `pass` mask (e.g. the sync/1PPS channel: always kept).
//!
//! Equivalently, an event is kept iff it lies in some interval of `W + 1` ticks in which
//! every member of an enabled group containing its channel has an event: all events of a
//! coincidence are kept, not only the latest one that the counter counts at.
//!
//! The output `kept` is the delay-compensated event mask, kept events only, **delayed by
//! [`FILTER_LATENCY`] ticks**: an event of channel `c` at tick `t` shows in `kept` at tick
//! `t + delay[c] + FILTER_LATENCY`. So a tag taken from `kept` is late by
//! `FILTER_LATENCY + delay[c]` ticks: the host subtracts that per channel (the delays are
//! its own settings), and the tags it gets are delay-compensated.
//!
//! # Integration
//! Put the block between the channel front ends' fire mask and the tagger's entry writer
//! (or in front of whatever takes the hit mask) with a mode bit:
//! `writer_hits = mode ? kept : fire`. Switching the mode changes the time shift, so switch
//! with the tagger disabled (or drop the first `FILTER_LATENCY + 7` ticks of tags after a
//! switch). Settings are static: change them only with the filter's output unused.
//!
//! # How it works
//! Everything is registered. A [`DelayLine`] per channel compensates delays; the
//! coincidence detector is the one of the counter (ticks since each channel's last event,
//! one "near" flag per channel, AND/OR per group); each channel's detection is stretched to
//! `W + 1` ticks by a down-counter. The delay-compensated events wait in one block RAM (a
//! 256-tick delay line, written and read at the same address, so no adder), the stretched
//! detections in a second one, read `W` ticks further ahead: the look-ahead that lets a
//! coincidence completed up to `W` ticks after an event keep that event.
//!
//! The cycle-accurate model is [`FilterModel`], the event-level model [`filter_events`];
//! the Verilated Verilog is checked against both in `qkd-sim`'s tests.

use std::collections::BTreeMap;

use rust_hdl::prelude::*;

pub use crate::coincidence::GROUPS as FILTER_GROUPS;

/// Width of a per-channel delay, in bits.
pub const FILTER_DELAY_BITS: usize = 3;
/// Largest per-channel delay, in ticks.
pub const FILTER_MAX_DELAY: usize = (1 << FILTER_DELAY_BITS) - 1;
/// Width of the window, in bits.
pub const FILTER_WINDOW_BITS: usize = 4;
/// Largest window, in ticks.
pub const FILTER_MAX_WINDOW: usize = (1 << FILTER_WINDOW_BITS) - 1;
/// Ticks from an event (after its channel delay) to its appearance in `kept`.
pub const FILTER_LATENCY: u64 = 259;

/// The coincidence stream filter for `N` channels (1 ≤ N ≤ 8).
#[derive(LogicBlock)]
pub struct CoincFilter<const N: usize> {
    /// Tagger clock.
    pub clock: Signal<In, Clock>,
    /// Channel events in this tick (bit c = channel c).
    pub hits: Signal<In, Bits<N>>,
    /// Delay per channel, in ticks.
    pub delay: [Signal<In, Bits<FILTER_DELAY_BITS>>; N],
    /// Coincidence window, in ticks.
    pub window: Signal<In, Bits<FILTER_WINDOW_BITS>>,
    /// Channel mask of each group (an empty mask is off).
    pub group: [Signal<In, Bits<N>>; FILTER_GROUPS],
    /// Channels kept whether in a coincidence or not.
    pub pass: Signal<In, Bits<N>>,
    /// Kept events, delay-compensated, [`FILTER_LATENCY`] ticks late (registered).
    pub kept: Signal<Out, Bits<N>>,
    lines: [DelayLine<Bit, FILTER_MAX_DELAY, FILTER_DELAY_BITS>; N],
    hc: DFF<Bits<N>>,
    age: [DFF<Bits<FILTER_WINDOW_BITS>>; N],
    seen: DFF<Bits<N>>,
    near: DFF<Bits<N>>,
    coinc_r: DFF<Bits<FILTER_GROUPS>>,
    dc: DFF<Bits<N>>,
    cnt: [DFF<Bits<FILTER_WINDOW_BITS>>; N],
    s_r: DFF<Bits<N>>,
    ptr: DFF<Bits<8>>,
    // The detection RAM's read address `ptr + W + S_AHEAD`, registered: `roff` = W + S_AHEAD
    // + 1 from the window, `rptr` = ptr + roff a tick later (the two adders into the RAM's
    // address were among the HX8K core's failing tick paths). A window change reaches the
    // read address two ticks later.
    roff: DFFWithInit<Bits<8>>,
    rptr: DFFWithInit<Bits<8>>,
    ram_h: RAM<Bits<N>, 8>,
    ram_s: RAM<Bits<N>, 8>,
    kept_r: DFF<Bits<N>>,
    hc_next: Signal<Local, Bits<N>>,
    near_next: Signal<Local, Bits<N>>,
    seen_next: Signal<Local, Bits<N>>,
    recent: Signal<Local, Bits<N>>,
    all_in: Signal<Local, Bit>,
    coinc_next: Signal<Local, Bits<FILTER_GROUPS>>,
    dc_next: Signal<Local, Bits<N>>,
    sv: Signal<Local, Bits<N>>,
    s_ahead: Constant<Bits<8>>,
}

impl<const N: usize> Default for CoincFilter<N> {
    fn default() -> Self {
        assert!((1..=8).contains(&N));
        Self {
            clock: Default::default(),
            hits: Default::default(),
            delay: array_init::array_init(|_| Default::default()),
            window: Default::default(),
            group: array_init::array_init(|_| Default::default()),
            pass: Default::default(),
            kept: Default::default(),
            lines: array_init::array_init(|_| Default::default()),
            hc: Default::default(),
            age: array_init::array_init(|_| Default::default()),
            seen: Default::default(),
            near: Default::default(),
            coinc_r: Default::default(),
            dc: Default::default(),
            cnt: array_init::array_init(|_| Default::default()),
            s_r: Default::default(),
            ptr: Default::default(),
            roff: DFFWithInit::new((S_AHEAD + 1).to_bits()),
            rptr: DFFWithInit::new(S_AHEAD.to_bits()),
            ram_h: Default::default(),
            ram_s: Default::default(),
            kept_r: Default::default(),
            hc_next: Default::default(),
            near_next: Default::default(),
            seen_next: Default::default(),
            recent: Default::default(),
            all_in: Default::default(),
            coinc_next: Default::default(),
            dc_next: Default::default(),
            sv: Default::default(),
            s_ahead: Constant::new(S_AHEAD.to_bits()),
        }
    }
}

/// Read-ahead of the detection RAM beyond the window, in ticks (the detection path is this
/// many ticks longer than the event path's register).
const S_AHEAD: u64 = 3;

impl<const N: usize> Logic for CoincFilter<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, hc, seen, near, coinc_r, dc, s_r, ptr, roff, rptr, kept_r);
        // Delay compensation → `hc`.
        self.hc_next.next = 0.into();
        for i in 0..N {
            self.lines[i].clock.next = self.clock.val();
            self.lines[i].data_in.next = self.hits.val().get_bit(i);
            self.lines[i].delay.next = self.delay[i].val();
            self.hc_next.next = self.hc_next.val().replace_bit(i, self.lines[i].data_out.val());
        }
        self.hc.d.next = self.hc_next.val();
        // Coincidence detection, as in the counter: `near` = "an event at most W ticks ago".
        self.near_next.next = 0.into();
        self.seen_next.next = self.seen.q.val();
        for i in 0..N {
            self.age[i].clock.next = self.clock.val();
            self.age[i].d.next = self.age[i].q.val();
            if self.hc.q.val().get_bit(i) {
                self.age[i].d.next = 1.into();
                self.near_next.next = self.near_next.val().replace_bit(i, self.window.val() != 0);
                self.seen_next.next = self.seen_next.val().replace_bit(i, true);
            } else {
                if !self.age[i].q.val().all() {
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
        self.recent.next = self.hc.q.val() | self.near.q.val();
        self.coinc_next.next = 0.into();
        for g in 0..FILTER_GROUPS {
            self.all_in.next = (self.group[g].val() & !self.recent.val()) == 0;
            self.coinc_next.next = self
                .coinc_next
                .val()
                .replace_bit(g, self.all_in.val() & (self.group[g].val() & self.hc.q.val()).any());
        }
        self.coinc_r.d.next = self.coinc_next.val();
        // Per-channel detection: some group containing the channel fired.
        self.dc_next.next = 0.into();
        for g in 0..FILTER_GROUPS {
            if self.coinc_r.q.val().get_bit(g) {
                self.dc_next.next = self.dc_next.val() | self.group[g].val();
            }
        }
        self.dc.d.next = self.dc_next.val();
        // Stretch to W + 1 ticks.
        self.sv.next = self.dc.q.val();
        for i in 0..N {
            self.cnt[i].clock.next = self.clock.val();
            self.cnt[i].d.next = self.cnt[i].q.val();
            if self.dc.q.val().get_bit(i) {
                self.cnt[i].d.next = self.window.val();
            } else if self.cnt[i].q.val().any() {
                self.cnt[i].d.next = self.cnt[i].q.val() - 1;
                self.sv.next = self.sv.val().replace_bit(i, true);
            }
        }
        self.s_r.d.next = self.sv.val();
        // The two 256-tick delay lines: events (read where written: 256 ticks ago) and
        // detections (read W + S_AHEAD ticks ahead of that).
        self.ptr.d.next = self.ptr.q.val() + 1;
        self.ram_h.write_clock.next = self.clock.val();
        self.ram_h.read_clock.next = self.clock.val();
        self.ram_h.write_address.next = self.ptr.q.val();
        self.ram_h.write_data.next = self.hc.q.val();
        self.ram_h.write_enable.next = true;
        self.ram_h.read_address.next = self.ptr.q.val();
        self.ram_s.write_clock.next = self.clock.val();
        self.ram_s.read_clock.next = self.clock.val();
        self.ram_s.write_address.next = self.ptr.q.val();
        self.ram_s.write_data.next = self.s_r.q.val();
        self.ram_s.write_enable.next = true;
        self.roff.d.next = bit_cast::<8, FILTER_WINDOW_BITS>(self.window.val()) + self.s_ahead.val() + 1;
        self.rptr.d.next = self.ptr.q.val() + self.roff.q.val();
        self.ram_s.read_address.next = self.rptr.q.val();
        self.kept_r.d.next = self.ram_h.read_data.val() & (self.ram_s.read_data.val() | self.pass.val());
        self.kept.next = self.kept_r.q.val();
    }
}

/// Settings of the filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// Delay per channel, in ticks (0..=[`FILTER_MAX_DELAY`]).
    pub delay: [u8; 8],
    /// Coincidence window, in ticks (0..=[`FILTER_MAX_WINDOW`]).
    pub window: u8,
    /// Channel mask of each group.
    pub group: [u8; FILTER_GROUPS],
    /// Channels always kept.
    pub pass: u8,
}

/// Bit-exact, cycle-accurate reference model of [`CoincFilter`].
#[derive(Clone, Debug)]
pub struct FilterModel {
    channels: usize,
    history: [u8; FILTER_MAX_DELAY + 1],
    hc: u8,
    age: [u8; 8],
    seen: u8,
    near: u8,
    coinc_r: u8,
    dc: u8,
    cnt: [u8; 8],
    s_r: u8,
    ptr: u8,
    roff: u8,
    rptr: u8,
    ram_h: [u8; 256],
    ram_s: [u8; 256],
    rh: u8,
    rs: u8,
    kept: u8,
}

impl FilterModel {
    /// The filter in its power-on state.
    ///
    /// # Panics
    /// If `channels` is not in 1..=8.
    pub fn new(channels: usize) -> Self {
        assert!((1..=8).contains(&channels));
        Self {
            channels,
            history: [0; FILTER_MAX_DELAY + 1],
            hc: 0,
            age: [0; 8],
            seen: 0,
            near: 0,
            coinc_r: 0,
            dc: 0,
            cnt: [0; 8],
            s_r: 0,
            ptr: 0,
            roff: S_AHEAD as u8 + 1,
            rptr: S_AHEAD as u8,
            ram_h: [0; 256],
            ram_s: [0; 256],
            rh: 0,
            rs: 0,
            kept: 0,
        }
    }

    /// One tick with channel events `hits`; returns the kept mask shown during the tick.
    pub fn step(&mut self, hits: u8, cfg: &FilterConfig) -> u8 {
        let out = self.kept;
        let n = self.channels;
        let cmask = ((1u16 << n) - 1) as u8;
        let w = cfg.window & FILTER_MAX_WINDOW as u8;
        let groups = cfg.group.map(|g| g & cmask);
        // history[k] = hits of k ticks ago.
        self.history.rotate_right(1);
        self.history[0] = hits & cmask;
        let mut hc = 0u8;
        for c in 0..n {
            hc |= self.history[cfg.delay[c] as usize & FILTER_MAX_DELAY] & (1 << c);
        }
        // Detection.
        let recent = self.hc | self.near;
        let mut coinc = 0u8;
        for (g, &m) in groups.iter().enumerate() {
            if m & !recent == 0 && m & self.hc != 0 {
                coinc |= 1 << g;
            }
        }
        let mut near = 0u8;
        let mut age = self.age;
        for c in 0..n {
            if self.hc & (1 << c) != 0 {
                age[c] = 1;
                near |= ((w != 0) as u8) << c;
                self.seen |= 1 << c;
            } else {
                if self.age[c] != FILTER_MAX_WINDOW as u8 {
                    age[c] = self.age[c] + 1;
                }
                if self.seen & (1 << c) != 0 && self.age[c] < w {
                    near |= 1 << c;
                }
            }
        }
        let mut dc = 0u8;
        for (g, &m) in groups.iter().enumerate() {
            if self.coinc_r & (1 << g) != 0 {
                dc |= m;
            }
        }
        let mut sv = self.dc;
        let mut cnt = self.cnt;
        for c in 0..n {
            if self.dc & (1 << c) != 0 {
                cnt[c] = w;
            } else if self.cnt[c] != 0 {
                cnt[c] = self.cnt[c] - 1;
                sv |= 1 << c;
            }
        }
        // Block RAMs: read before write.
        let p = self.ptr as usize;
        let rh = self.ram_h[p];
        let rs = self.ram_s[self.rptr as usize];
        self.rptr = self.ptr.wrapping_add(self.roff);
        self.roff = w.wrapping_add(S_AHEAD as u8 + 1);
        self.ram_h[p] = self.hc;
        self.ram_s[p] = self.s_r;
        self.ptr = self.ptr.wrapping_add(1);
        self.kept = self.rh & (self.rs | (cfg.pass & cmask));
        (self.rh, self.rs) = (rh, rs);
        self.s_r = sv;
        self.cnt = cnt;
        self.dc = dc;
        self.coinc_r = coinc;
        self.near = near;
        self.age = age;
        self.hc = hc;
        out
    }
}

/// One tick's channel events: the tick and its event mask (bit c = channel c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TickMask {
    /// Tick.
    pub tick: u64,
    /// Events in it (bit c = channel c).
    pub mask: u8,
}

/// The event-level model of the filter: what [`CoincFilter`] shows in `kept` for the events
/// `events` (sorted by tick, distinct ticks) with the constant settings `cfg`, as
/// (output tick, kept mask), sorted. Equal to what the gateware and [`FilterModel`] show
/// (checked in the tests); fast enough for long event streams (O(events · groups)).
///
/// # Panics
/// If `events` is not sorted by distinct ticks.
pub fn filter_events(channels: usize, events: &[TickMask], cfg: &FilterConfig) -> Vec<TickMask> {
    assert!((1..=8).contains(&channels));
    let cmask = ((1u16 << channels) - 1) as u8;
    let w = (cfg.window as u64) & FILTER_MAX_WINDOW as u64;
    let groups = cfg.group.map(|g| g & cmask);
    // Delay compensation.
    let mut comp: BTreeMap<u64, u8> = BTreeMap::new();
    for pair in events.windows(2) {
        assert!(pair[0].tick < pair[1].tick, "events must be sorted by distinct ticks");
    }
    for e in events {
        for c in 0..channels {
            if e.mask & (1 << c) != 0 {
                *comp.entry(e.tick + (cfg.delay[c] as u64 & FILTER_MAX_DELAY as u64)).or_default() |= 1 << c;
            }
        }
    }
    // Detections per channel: the ticks at which a group containing the channel fires.
    let mut last: [Option<u64>; 8] = [None; 8];
    let mut det: Vec<Vec<u64>> = vec![Vec::new(); channels];
    for (&x, &m) in &comp {
        for c in 0..channels {
            if m & (1 << c) != 0 {
                last[c] = Some(x);
            }
        }
        let mut dmask = 0u8;
        for &g in &groups {
            let all_in = (0..channels).filter(|c| g & (1 << c) != 0).all(|c| last[c].is_some_and(|l| x - l <= w));
            if g & m != 0 && all_in {
                dmask |= g;
            }
        }
        for (c, d) in det.iter_mut().enumerate() {
            if dmask & (1 << c) != 0 {
                d.push(x);
            }
        }
    }
    // An event is kept when a detection of its channel lies in [x, x + W].
    let mut out = Vec::new();
    let mut next = vec![0usize; channels];
    for (&x, &m) in &comp {
        let mut k = 0u8;
        for c in 0..channels {
            if m & (1 << c) == 0 {
                continue;
            }
            let d = &det[c];
            while next[c] < d.len() && d[next[c]] < x {
                next[c] += 1;
            }
            if cfg.pass & (1 << c) != 0 || (next[c] < d.len() && d[next[c]] <= x + w) {
                k |= 1 << c;
            }
        }
        if k != 0 {
            out.push(TickMask { tick: x + FILTER_LATENCY, mask: k });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const N: usize = 5;

    fn set(uut: &mut CoincFilter<N>, cfg: &FilterConfig) {
        for c in 0..N {
            uut.delay[c].next = (cfg.delay[c] as u64).into();
        }
        uut.window.next = (cfg.window as u64).into();
        for g in 0..FILTER_GROUPS {
            uut.group[g].next = (cfg.group[g] as u64).into();
        }
        uut.pass.next = (cfg.pass as u64).into();
    }

    /// Runs the cycle model over `ticks` ticks of `events`; returns the nonzero outputs as
    /// (tick, mask).
    fn run_model(events: &[TickMask], cfg: &FilterConfig, ticks: u64) -> Vec<TickMask> {
        let mut m = FilterModel::new(N);
        let mut it = events.iter().peekable();
        let mut out = Vec::new();
        for t in 0..ticks {
            let hits = match it.peek() {
                Some(e) if e.tick == t => it.next().unwrap().mask,
                _ => 0,
            };
            let k = m.step(hits, cfg);
            if k != 0 {
                out.push(TickMask { tick: t, mask: k });
            }
        }
        out
    }

    fn random_events(seed: u64, ticks: u64, p: f64) -> Vec<TickMask> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..ticks)
            .filter_map(|tick| {
                let mask: u8 = (0..N).map(|c| (rng.gen_bool(p) as u8) << c).sum();
                (mask != 0).then_some(TickMask { tick, mask })
            })
            .collect()
    }

    #[test]
    fn coinc_filter_synthesizes() {
        let mut uut = CoincFilter::<N>::default();
        uut.connect_all();
        yosys_validate("coinc_filter", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn keeps_both_events_of_a_pair_and_drops_singles() {
        let cfg = FilterConfig { window: 2, group: [0b0011, 0, 0, 0], ..Default::default() };
        let ev = |tick, mask| TickMask { tick, mask };
        // Pair 2 ticks apart (kept), pair 3 apart (dropped), lone event on 0, on 2 (not in a group).
        let events = [ev(100, 1), ev(102, 2), ev(200, 1), ev(203, 2), ev(300, 1), ev(400, 4)];
        let kept = filter_events(N, &events, &cfg);
        let l = FILTER_LATENCY;
        assert_eq!(kept, vec![ev(100 + l, 1), ev(102 + l, 2)]);
        assert_eq!(run_model(&events, &cfg, 1000), kept);
        // Delay compensation: channel 0 delayed by 3 brings the second pair in, shifted.
        let cfg2 = FilterConfig { delay: [3, 0, 0, 0, 0, 0, 0, 0], pass: 0b100, ..cfg };
        let kept = filter_events(N, &events, &cfg2);
        assert_eq!(kept, vec![ev(102 + l, 2), ev(103 + l, 1), ev(203 + l, 3), ev(400 + l, 4)]);
        assert_eq!(run_model(&events, &cfg2, 1000), kept);
    }

    #[test]
    fn three_fold_keeps_all_members_within_the_window() {
        let cfg = FilterConfig { window: 4, group: [0b0111, 0, 0, 0], ..Default::default() };
        let ev = |tick, mask| TickMask { tick, mask };
        // 0 at 10, 1 at 12, 0 again at 13, 2 at 14: all inside [10, 14]. 1 at 20 alone.
        let events = [ev(10, 1), ev(12, 2), ev(13, 1), ev(14, 4), ev(20, 2)];
        let kept = filter_events(N, &events, &cfg);
        let l = FILTER_LATENCY;
        assert_eq!(kept, vec![ev(10 + l, 1), ev(12 + l, 2), ev(13 + l, 1), ev(14 + l, 4)]);
        assert_eq!(run_model(&events, &cfg, 600), kept);
    }

    #[test]
    fn event_model_matches_cycle_model() {
        let cfgs = [
            FilterConfig { delay: [0, 3, 7, 0, 1, 0, 0, 0], window: 3, group: [0b00011, 0b00101, 0b10110, 0], pass: 0 },
            FilterConfig { delay: [0; 8], window: 0, group: [0b00011, 0b01100, 0, 0b11111], pass: 0b10000 },
            FilterConfig { delay: [5, 0, 2, 2, 0, 0, 0, 0], window: 15, group: [0b00111, 0, 0b11000, 0], pass: 0 },
        ];
        for (i, cfg) in cfgs.iter().enumerate() {
            let events = random_events(i as u64, 40_000, 0.02);
            let ticks = 40_000 + 300;
            let want = filter_events(N, &events, cfg);
            let got = run_model(&events, cfg, ticks);
            assert_eq!(got, want, "config {i}");
            assert!(want.len() > 200, "config {i}: {} kept", want.len());
            assert!(want.len() < events.len(), "config {i}");
        }
    }

    /// Runs the rust-hdl block against the model for `ticks` ticks from configuration `cfg`,
    /// which `change` may alter before each tick, with random hits (probability `p` per channel
    /// and tick, from the same generator); returns the number of kept events.
    fn block_vs_model(
        mut cfg: FilterConfig,
        ticks: u32,
        p: f64,
        seed: u64,
        mut change: impl FnMut(&mut ChaCha8Rng, &mut FilterConfig),
    ) -> u32 {
        let mut uut = CoincFilter::<N>::default();
        uut.connect_all();
        let mut m = FilterModel::new(N);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut kept = 0;
        for t in 0..ticks {
            change(&mut rng, &mut cfg);
            set(&mut uut, &cfg);
            let hits: u8 = (0..N).map(|c| (rng.gen_bool(p) as u8) << c).sum();
            uut.hits.next = (hits as u64).into();
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let want = m.step(hits, &cfg);
            assert_eq!(uut.kept.val().to_u8(), want, "tick {t}");
            kept += want.count_ones();
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
        }
        kept
    }

    #[test]
    fn rust_hdl_block_matches_model() {
        let cfg = FilterConfig { delay: [0, 3, 7, 0, 1, 0, 0, 0], window: 3, group: [0b00011, 0b00101, 0b10110, 0], pass: 0b01000 };
        let kept = block_vs_model(cfg, 4000, 0.05, 9, |_, _| {});
        assert!(kept > 200, "{kept} kept");
    }

    /// The block against the model while the window, delays and groups change every few ticks
    /// (so the read address's two-tick lag after a window change is exercised) under dense hits.
    #[test]
    fn rust_hdl_block_matches_model_while_settings_change() {
        let cfg = FilterConfig { group: [0b00011, 0b01100, 0, 0], ..Default::default() };
        let kept = block_vs_model(cfg, 6000, 0.15, 21, |rng, cfg| {
            if rng.gen_range(0..6) == 0 {
                cfg.window = rng.gen_range(0..=FILTER_MAX_WINDOW as u8);
                if rng.gen_range(0..4) == 0 {
                    cfg.delay[rng.gen_range(0..N)] = rng.gen_range(0..=FILTER_MAX_DELAY as u8);
                }
            }
        });
        assert!(kept > 500, "{kept} kept");
    }
}
