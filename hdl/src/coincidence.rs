//! The coincidence counter: per-channel delay compensation, a programmable coincidence window,
//! [`GROUPS`] N-fold coincidence groups (any subset of channels each), and singles and
//! coincidence counts integrated over a programmable gate time, readable without stopping
//! acquisition.
//!
//! Input is the tagger's per-tick channel event mask (after dead time). Each channel is
//! delayed by `delay[c]` ticks (0..=63, [`crate::bit_delay::BitDelay`]; for two ticks after a
//! delay changes, its pipelined select still mixes in the old one). With `t_c` the time of
//! channel `c`'s latest delayed event, group `g` (channel mask `G`) counts one coincidence at
//! tick `t` when some member has an event at `t` and every member has one in `[t − W, t]`:
//! the coincidence is counted once, at its latest event. `W = 0` counts same-tick events only.
//!
//! Counts: every gate of `gate` ticks (values 1..=63 act as [`MIN_GATE`], 0 stops the gates),
//! the singles of each channel and the coincidences of each group over the gate are stored in
//! a block RAM that the host reads through `rd_addr`/`rd_data`, and `gate_seq` increments once
//! they are all there, [`COUNT_LATENCY`] ticks after the gate ends; acquisition goes on
//! meanwhile, so a host can read complete gates while the counter runs (read `gate_seq` before
//! and after the counts).
//!
//! # How the counts are kept
//! Nine 32-bit counters with a second 32-bit latch each cost ~600 logic cells in flip-flops and
//! carry chains, the largest part of the counter. Here every counter is a 6-bit prescaler in
//! logic and a 32-bit sum in block RAM, updated by one shared adder: a 5-bit slot counter `r`
//! visits counter `k = r[4:1]` (index [`single_index`] / [`group_index`]) every 32 ticks. On
//! even ticks it adds the prescaler of `k` to `k`'s sum for the current gate (read, then write
//! one tick later) and restarts the prescaler; a prescaler therefore never holds more than 32
//! events. At the end of a gate every prescaler moves to a residue register, the current bank
//! of sums (two banks of 16 words) flips, and on odd ticks each counter's residue is added to
//! its sum in the old bank; that final sum is also written to the host copy (16 words). The
//! first visit of a counter in a gate writes its prescaler instead of adding (the bank still
//! holds the gate before last). All residues are in after 32 ticks; `gate_seq` increments at
//! [`COUNT_LATENCY`]. Hence the minimum gate of [`MIN_GATE`] ticks.
//!
//! # Pipeline (for timing)
//! The read-add-write of a sum takes four ticks, so that no path runs from a block-RAM output
//! through an adder: tick `t` presents the read address; `t + 1` registers the read data
//! (zero for a first visit); `t + 2` registers the low 6 bits of the sum with their carry, the
//! high 26 bits and the high bits plus one (the 26-bit incrementer runs from flip-flops to
//! flip-flops, in parallel with the 6-bit add); `t + 3` writes the high part the carry selects.
//! No sum is read again before its write lands: a counter is visited every 32 ticks, and a
//! flush reads the other bank. On the HX8K the counter alone reaches 161 MHz (with the gate
//! timer split in two 16-bit counters and the visit selects one-hot, below), and 91 MHz with
//! the adder fed by the RAM output in one tick (`scripts/synth --blocks --board hx8k`).
//!
//! The cycle model is [`CoincidenceModel`]; [`GateCounts`] gives the counts a gate must have
//! from the events alone, which the tests check the model and the RTL against.

use rust_hdl::prelude::*;

/// Number of coincidence groups.
pub const GROUPS: usize = 4;
// The sum pipeline ORs the groups' prescalers in one part of four (`Coincidence::w_add`).
const _: () = assert!(GROUPS == 4);
/// Width of a per-channel delay, in bits (ticks, 0..=63).
pub const DELAY_BITS: usize = crate::bit_delay::DELAY_BITS;
/// Largest per-channel delay, in ticks.
pub const MAX_DELAY: usize = (1 << DELAY_BITS) - 1;
/// Width of the coincidence window, in bits (ticks, 0..=255).
pub const WINDOW_BITS: usize = 8;
/// Width of the counters, in bits.
pub const COUNT_BITS: usize = 32;
/// Shortest gate, in ticks: a `gate` of 1..=63 counts as this.
pub const MIN_GATE: u32 = 64;
/// Ticks from the last tick of a gate to the `gate_seq` increment that announces its counts.
pub const COUNT_LATENCY: u32 = 34;
/// Width of the count-RAM read address (16 words: singles 0..8, groups 8..16).
pub const COUNT_ADDR_BITS: usize = 4;
/// Prescaler width, in bits (at most 33 events between two visits).
const PRE_BITS: usize = 6;
/// Counter slots (the read address space); unused slots stay 0.
const SLOTS: usize = 1 << COUNT_ADDR_BITS;
/// Width of a sum's high part, which the pipeline increments separately.
const HI_BITS: usize = COUNT_BITS - PRE_BITS;
/// Width of a sum's low part with its carry.
const LO_BITS: usize = PRE_BITS + 1;

/// Count-RAM word of channel `c`'s singles (`c` < 8).
pub const fn single_index(c: usize) -> usize {
    c
}

/// Count-RAM word of group `g`'s coincidences.
pub const fn group_index(g: usize) -> usize {
    8 + g
}

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
    /// Gate time, in ticks (0 = no gates; 1..=63 act as [`MIN_GATE`]). Registered before
    /// use: a reload takes the value of the tick before.
    pub gate: Signal<In, Bits<COUNT_BITS>>,
    /// Coincidence pulse of each group in this tick (registered, one tick after the event).
    pub coinc: Signal<Out, Bits<GROUPS>>,
    /// Clock of the count read port (`rd_addr`/`rd_data`): the tagger clock, or the core's
    /// control clock (the count RAM's read port has its own clock).
    pub rd_clock: Signal<In, Clock>,
    /// Count word to read: [`single_index`] or [`group_index`].
    pub rd_addr: Signal<In, Bits<COUNT_ADDR_BITS>>,
    /// The word `rd_addr` named in the previous `rd_clock` cycle, from the last complete gate.
    pub rd_data: Signal<Out, Bits<COUNT_BITS>>,
    /// Number of complete gates (wraps).
    pub gate_seq: Signal<Out, Bits<16>>,
    lines: [crate::bit_delay::BitDelay; N],
    dh: DFF<Bits<N>>,
    age: [DFF<Bits<WINDOW_BITS>>; N],
    // `age[i]` has saturated at 255: registered, so the age counter's clock enable is one LUT
    // of flip-flops instead of an 8-bit compare.
    age_max: [DFF<Bit>; N],
    seen: DFF<Bits<N>>,
    near: DFF<Bits<N>>,
    coinc_r: DFF<Bits<GROUPS>>,
    dh2: DFF<Bits<N>>,
    left_lo: DFF<Bits<16>>,
    left_hi: DFF<Bits<16>>,
    left_lo_zero: DFF<Bit>,
    // `gate_left == 2` as one LUT: `upper_zero` registers "bits 31..2 of `gate_left` are
    // zero" one tick old, which is their value now whenever the low bits read 10b after a
    // count (a count down from ..11b does not borrow from bit 2); `reloaded` (the tick after a
    // reload, when `gate_left` is the new gate, 0 or at least 64) masks the stale flag. The
    // 32-bit compare it replaces, three LUT levels before the timer's registers, was a
    // failing tick path of the HX8K core.
    upper_zero: DFF<Bit>,
    reloaded: DFF<Bit>,
    gate_reload: DFFWithInit<Bit>,
    // The gate input one tick old and what the reload needs of it, each from one compare:
    // whether it is 1..=63 (read as MIN_GATE: `gate_eff`, one LUT a bit in front of the
    // reload mux), whether its low half is zero (so is the effective gate's) and whether it
    // is non-zero. The compares and the 1..=63 rule on the raw input, in front of the reload
    // mux, were the receiver top's worst tick path (six LUT levels from the gate register to
    // `gate_reload`).
    gate_r: DFF<Bits<COUNT_BITS>>,
    gate_small_r: DFF<Bit>,
    gate_lo_zero_r: DFF<Bit>,
    gate_on_r: DFF<Bit>,
    gate_end: DFF<Bit>,
    seq: DFF<Bits<16>>,
    slot: DFF<Bits<5>>,
    pre_s: [DFF<Bits<PRE_BITS>>; N],
    old_s: [DFF<Bits<PRE_BITS>>; N],
    pre_g: [DFF<Bits<PRE_BITS>>; GROUPS],
    old_g: [DFF<Bits<PRE_BITS>>; GROUPS],
    fresh: DFFWithInit<Bits<SLOTS>>,
    flush: DFF<Bits<SLOTS>>,
    bank: DFF<Bit>,
    w_en: DFF<Bit>,
    w_addr: DFF<Bits<5>>,
    // The prescaler or residue to add, as four partial ORs (singles 0-2, 3-5, 6-7, groups):
    // the OR over all counters was four LUT levels, and its register, which only feeds
    // `w2_add`, was placed beside the adder, far from the counters (the HX8K core's critical
    // tick path); `w2_add` ORs the parts.
    w_add: [DFF<Bits<PRE_BITS>>; 4],
    w_fresh: DFF<Bit>,
    w_flush: DFF<Bit>,
    done: DFF<Bits<6>>,
    rq: DFF<Bits<COUNT_BITS>>,
    w2_en: DFF<Bit>,
    w2_addr: DFF<Bits<5>>,
    w2_add: DFF<Bits<PRE_BITS>>,
    w2_flush: DFF<Bit>,
    lo: DFF<Bits<LO_BITS>>,
    hi: DFF<Bits<HI_BITS>>,
    hi_inc: DFF<Bits<HI_BITS>>,
    w3_en: DFF<Bit>,
    w3_addr: DFF<Bits<5>>,
    w3_flush: DFF<Bit>,
    sums: RAM<Bits<COUNT_BITS>, 5>,
    shown: RAM<Bits<COUNT_BITS>, COUNT_ADDR_BITS>,
    recent: Signal<Local, Bits<N>>,
    all_in: Signal<Local, Bit>,
    dh_next: Signal<Local, Bits<N>>,
    near_next: Signal<Local, Bits<N>>,
    seen_next: Signal<Local, Bits<N>>,
    coinc_next: Signal<Local, Bits<GROUPS>>,
    ev: Signal<Local, Bits<SLOTS>>,
    k: Signal<Local, Bits<COUNT_ADDR_BITS>>,
    ra: Signal<Local, Bits<5>>,
    sum: Signal<Local, Bits<COUNT_BITS>>,
    rq_hi: Signal<Local, Bits<COUNT_BITS>>,
    at_two: Signal<Local, Bit>,
    vsel: DFFWithInit<Bits<SLOTS>>,
    visit: Signal<Local, Bit>,
    visit_r: DFFWithInit<Bit>,
    flushing_r: DFF<Bit>,
    flushing: Signal<Local, Bit>,
    vsel_used: Signal<Local, Bits<SLOTS>>,
    // Per single and group: its prescaler or residue when it is the one visited or flushed.
    term_s: [Signal<Local, Bits<PRE_BITS>>; 8],
    term_g: [Signal<Local, Bits<PRE_BITS>>; GROUPS],
    used: Constant<Bits<SLOTS>>,
    one: Constant<Bits<8>>,
    fifteen: Constant<Bits<8>>,
    fresh_n: Signal<Local, Bits<SLOTS>>,
    flush_n: Signal<Local, Bits<SLOTS>>,
    gate_eff: Signal<Local, Bits<COUNT_BITS>>,
    min_gate: Constant<Bits<COUNT_BITS>>,
    gate_hi: Constant<Bits<COUNT_BITS>>,
    latency: Constant<Bits<6>>,
    ones: Constant<Bits<SLOTS>>,
    pre_shift: Constant<Bits<8>>,
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
            rd_clock: Default::default(),
            rd_addr: Default::default(),
            rd_data: Default::default(),
            gate_seq: Default::default(),
            lines: array_init::array_init(|_| Default::default()),
            dh: Default::default(),
            age: array_init::array_init(|_| Default::default()),
            age_max: array_init::array_init(|_| Default::default()),
            seen: Default::default(),
            near: Default::default(),
            coinc_r: Default::default(),
            dh2: Default::default(),
            left_lo: Default::default(),
            left_hi: Default::default(),
            left_lo_zero: Default::default(),
            upper_zero: Default::default(),
            reloaded: Default::default(),
            gate_reload: DFFWithInit::new(true),
            gate_r: Default::default(),
            gate_small_r: Default::default(),
            gate_lo_zero_r: Default::default(),
            gate_on_r: Default::default(),
            gate_end: Default::default(),
            seq: Default::default(),
            slot: Default::default(),
            pre_s: array_init::array_init(|_| Default::default()),
            old_s: array_init::array_init(|_| Default::default()),
            pre_g: array_init::array_init(|_| Default::default()),
            old_g: array_init::array_init(|_| Default::default()),
            fresh: DFFWithInit::new(((1u64 << SLOTS) - 1).to_bits()),
            flush: Default::default(),
            bank: Default::default(),
            w_en: Default::default(),
            w_addr: Default::default(),
            w_add: array_init::array_init(|_| Default::default()),
            w_fresh: Default::default(),
            w_flush: Default::default(),
            done: Default::default(),
            rq: Default::default(),
            w2_en: Default::default(),
            w2_addr: Default::default(),
            w2_add: Default::default(),
            w2_flush: Default::default(),
            lo: Default::default(),
            hi: Default::default(),
            hi_inc: Default::default(),
            w3_en: Default::default(),
            w3_addr: Default::default(),
            w3_flush: Default::default(),
            // Zero contents, so that simulators agree with the iCE40 (whose block RAMs
            // power up to the bitstream's contents, zero here) before the first gate ends.
            sums: RAM::new((0..2 * SLOTS as u64).map(|a| (a.to_bits(), 0u64.to_bits())).collect()),
            shown: RAM::new((0..SLOTS as u64).map(|a| (a.to_bits(), 0u64.to_bits())).collect()),
            recent: Default::default(),
            all_in: Default::default(),
            dh_next: Default::default(),
            near_next: Default::default(),
            seen_next: Default::default(),
            coinc_next: Default::default(),
            ev: Default::default(),
            k: Default::default(),
            ra: Default::default(),
            sum: Default::default(),
            rq_hi: Default::default(),
            at_two: Default::default(),
            vsel: DFFWithInit::new(1u64.to_bits()),
            visit: Default::default(),
            visit_r: DFFWithInit::new(true),
            flushing_r: Default::default(),
            flushing: Default::default(),
            vsel_used: Default::default(),
            term_s: array_init::array_init(|_| Default::default()),
            term_g: array_init::array_init(|_| Default::default()),
            // The counters that exist: singles 0..N, groups 8..8 + GROUPS.
            used: Constant::new((((1u64 << N) - 1) | (((1u64 << GROUPS) - 1) << 8)).to_bits()),
            one: Constant::new(1u64.to_bits()),
            fifteen: Constant::new(15u64.to_bits()),
            fresh_n: Default::default(),
            flush_n: Default::default(),
            gate_eff: Default::default(),
            min_gate: Constant::new((MIN_GATE as u64).to_bits()),
            gate_hi: Constant::new((!(2 * MIN_GATE as u64 - 1) & 0xFFFF_FFFF).to_bits()),
            latency: Constant::new((COUNT_LATENCY as u64).to_bits()),
            ones: Constant::new(((1u64 << SLOTS) - 1).to_bits()),
            pre_shift: Constant::new((PRE_BITS as u64).to_bits()),
        }
    }
}

impl<const N: usize> Logic for Coincidence<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, dh, seen, near, coinc_r, dh2, left_lo, left_hi, left_lo_zero, upper_zero, reloaded, gate_reload, gate_r, gate_small_r, gate_lo_zero_r, gate_on_r, gate_end, vsel, visit_r, flushing_r, seq, slot, fresh, flush, bank, w_en,
            w_addr, w_fresh, w_flush, done, rq, w2_en, w2_addr, w2_add, w2_flush, lo, hi, hi_inc, w3_en, w3_addr,
            w3_flush
        );
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
            self.age_max[i].clock.next = self.clock.val();
            self.age_max[i].d.next = self.age_max[i].q.val() | (self.age[i].q.val() == 254);
            if self.dh.q.val().get_bit(i) {
                self.age[i].d.next = 1.into();
                self.age_max[i].d.next = false;
                self.near_next.next = self.near_next.val().replace_bit(i, self.window.val() != 0);
                self.seen_next.next = self.seen_next.val().replace_bit(i, true);
            } else {
                if !self.age_max[i].q.val() {
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
        // A gate of 1..=63 ticks counts as 64: written as bit operations (bits 31..7 are zero
        // then anyway), so that only bits 6..0 need logic.
        self.gate_r.d.next = self.gate.val();
        self.gate_small_r.d.next =
            (self.gate.val().get_bits::<26>(6) == 0) & (self.gate.val().get_bits::<6>(0) != 0);
        self.gate_lo_zero_r.d.next = self.gate.val().get_bits::<16>(0) == 0;
        self.gate_on_r.d.next = self.gate.val() != 0;
        self.gate_eff.next = self.gate_r.q.val();
        if self.gate_small_r.q.val() {
            self.gate_eff.next = (self.gate_r.q.val() & self.gate_hi.val()) | self.min_gate.val();
        }
        // The ticks left, `gate_left` of the model, are `left_hi:left_lo`, two 16-bit down
        // counters (the high one moves when the low one wraps: `left_lo_zero`, registered), so
        // that no 32-bit carry chain limits the clock. `gate_left ≤ 1` is `gate_reload`,
        // registered: the tick after `gate_left == 2`, or after a reload with a stopped gate
        // (a running gate reloads with at least MIN_GATE ticks; power-on reloads).
        self.upper_zero.d.next = (self.left_hi.q.val() == 0) & (self.left_lo.q.val().get_bits::<14>(2) == 0);
        self.reloaded.d.next = self.gate_reload.q.val();
        self.at_two.next = self.upper_zero.q.val()
            & self.left_lo.q.val().get_bit(1)
            & !self.left_lo.q.val().get_bit(0)
            & !self.reloaded.q.val();
        self.gate_end.d.next = self.at_two.val();
        self.gate_reload.d.next = self.at_two.val();
        if self.gate_reload.q.val() {
            self.left_lo.d.next = self.gate_eff.val().get_bits::<16>(0);
            self.left_hi.d.next = self.gate_eff.val().get_bits::<16>(16);
            self.left_lo_zero.d.next = self.gate_lo_zero_r.q.val();
            self.gate_reload.d.next = !self.gate_on_r.q.val();
        } else {
            self.left_lo.d.next = self.left_lo.q.val() - 1;
            self.left_lo_zero.d.next = self.left_lo.q.val() == 1;
            if self.left_lo_zero.q.val() {
                self.left_hi.d.next = self.left_hi.q.val() - 1;
            }
        }
        // Counted events of this tick (`dh2` and `coinc_r`, both one tick old) by slot.
        self.ev.next = 0.into();
        for i in 0..N {
            self.ev.next = self.ev.val().replace_bit(i, self.dh2.q.val().get_bit(i));
        }
        for g in 0..GROUPS {
            self.ev.next = self.ev.val().replace_bit(g + 8, self.coinc_r.q.val().get_bit(g));
        }
        // Sum pipeline (see the module doc): read data (t + 1), split add (t + 2), write (t + 3).
        self.rq.d.next = self.sums.read_data.val();
        if self.w_fresh.q.val() {
            self.rq.d.next = 0.into();
        }
        self.w2_en.d.next = self.w_en.q.val();
        self.w2_addr.d.next = self.w_addr.q.val();
        self.w2_add.d.next = self.w_add[0].q.val() | self.w_add[1].q.val() | self.w_add[2].q.val() | self.w_add[3].q.val();
        self.w2_flush.d.next = self.w_flush.q.val();
        self.lo.d.next = bit_cast::<LO_BITS, PRE_BITS>(self.rq.q.val().get_bits::<PRE_BITS>(0))
            + bit_cast::<LO_BITS, PRE_BITS>(self.w2_add.q.val());
        self.rq_hi.next = self.rq.q.val() >> self.pre_shift.val();
        self.hi.d.next = self.rq_hi.val().get_bits::<HI_BITS>(0);
        self.hi_inc.d.next = self.rq_hi.val().get_bits::<HI_BITS>(0) + 1;
        self.w3_en.d.next = self.w2_en.q.val();
        self.w3_addr.d.next = self.w2_addr.q.val();
        self.w3_flush.d.next = self.w2_flush.q.val();
        self.sum.next = bit_cast::<COUNT_BITS, HI_BITS>(self.hi.q.val()) << self.pre_shift.val();
        if (self.lo.q.val() >> self.pre_shift.val()).any() {
            self.sum.next = bit_cast::<COUNT_BITS, HI_BITS>(self.hi_inc.q.val()) << self.pre_shift.val();
        }
        self.sum.next = self.sum.val() | bit_cast::<COUNT_BITS, PRE_BITS>(self.lo.q.val().get_bits::<PRE_BITS>(0));
        self.sums.write_clock.next = self.clock.val();
        self.sums.write_address.next = self.w3_addr.q.val();
        self.sums.write_data.next = self.sum.val();
        self.sums.write_enable.next = self.w3_en.q.val();
        self.shown.write_clock.next = self.clock.val();
        self.shown.write_address.next = self.w3_addr.q.val().get_bits::<COUNT_ADDR_BITS>(0);
        self.shown.write_data.next = self.sum.val();
        self.shown.write_enable.next = self.w3_en.q.val() & self.w3_flush.q.val();
        // Read stage: even ticks visit counter k in the current bank, odd ticks flush k's
        // residue into the old bank (once per gate end); the gate's last tick does neither.
        self.slot.d.next = self.slot.q.val() + 1;
        self.k.next = self.slot.q.val().get_bits::<COUNT_ADDR_BITS>(1);
        self.ra.next = bit_cast::<5, COUNT_ADDR_BITS>(self.k.val()).replace_bit(4, self.bank.q.val());
        if self.slot.q.val().get_bit(0) {
            self.ra.next = bit_cast::<5, COUNT_ADDR_BITS>(self.k.val()).replace_bit(4, !self.bank.q.val());
        }
        self.sums.read_clock.next = self.clock.val();
        self.sums.read_address.next = self.ra.val();
        self.w_addr.d.next = self.ra.val();
        // The counter visited or flushed this tick is the one-hot `vsel` (bit k), which
        // advances after every odd tick: the selects below are AND-OR trees over the
        // counters, not a chain of comparisons of `k`. It duplicates `slot[4:1]` on purpose
        // (`k` still forms the RAM address); the model keeps only `slot`.
        self.vsel.d.next = self.vsel.q.val();
        if self.slot.q.val().get_bit(0) {
            self.vsel.d.next = (self.vsel.q.val() << self.one.val()) | (self.vsel.q.val() >> self.fifteen.val());
        }
        // Visit (even tick) or flush (odd tick), not in a gate's last tick: registered a tick
        // ahead (the next tick's parity is the opposite, its `gate_end` is `at_two` now).
        self.visit.next = self.visit_r.q.val();
        self.flushing.next = self.flushing_r.q.val();
        self.visit_r.d.next = self.slot.q.val().get_bit(0) & !self.at_two.val();
        self.flushing_r.d.next = !self.slot.q.val().get_bit(0) & !self.at_two.val();
        self.vsel_used.next = self.vsel.q.val() & self.used.val();
        self.w_en.d.next = (self.visit.val() & self.vsel_used.val().any())
            | (self.flushing.val() & (self.vsel_used.val() & self.flush.q.val()).any());
        self.w_fresh.d.next = self.visit.val() & (self.vsel_used.val() & self.fresh.q.val()).any();
        self.w_flush.d.next = self.flushing.val() & (self.vsel_used.val() & self.flush.q.val()).any();
        self.fresh_n.next = self.fresh.q.val();
        if self.visit.val() {
            self.fresh_n.next = self.fresh.q.val() & !self.vsel_used.val();
        }
        self.flush_n.next = self.flush.q.val();
        if self.flushing.val() {
            self.flush_n.next = self.flush.q.val() & !self.vsel_used.val();
        }
        for i in 0..8 {
            self.term_s[i].next = 0.into();
        }
        for g in 0..GROUPS {
            self.term_g[g].next = 0.into();
        }
        // Singles (slot i) and groups (slot g + 8): the same logic, written once per range.
        for i in 0..N {
            self.pre_s[i].clock.next = self.clock.val();
            self.old_s[i].clock.next = self.clock.val();
            self.old_s[i].d.next = self.old_s[i].q.val();
            self.pre_s[i].d.next = self.pre_s[i].q.val();
            if self.ev.val().get_bit(i) {
                self.pre_s[i].d.next = self.pre_s[i].q.val() + 1;
            }
            if self.gate_end.q.val() {
                self.old_s[i].d.next = self.pre_s[i].q.val();
                if self.ev.val().get_bit(i) {
                    self.old_s[i].d.next = self.pre_s[i].q.val() + 1;
                }
                self.pre_s[i].d.next = 0.into();
            }
            if self.vsel.q.val().get_bit(i) {
                if self.visit.val() {
                    self.term_s[i].next = self.pre_s[i].q.val();
                    self.pre_s[i].d.next = 0.into();
                    if self.ev.val().get_bit(i) {
                        self.pre_s[i].d.next = 1.into();
                    }
                }
                if self.flushing.val() & self.flush.q.val().get_bit(i) {
                    self.term_s[i].next = self.term_s[i].val() | self.old_s[i].q.val();
                }
            }
        }
        for g in 0..GROUPS {
            self.pre_g[g].clock.next = self.clock.val();
            self.old_g[g].clock.next = self.clock.val();
            self.old_g[g].d.next = self.old_g[g].q.val();
            self.pre_g[g].d.next = self.pre_g[g].q.val();
            if self.ev.val().get_bit(g + 8) {
                self.pre_g[g].d.next = self.pre_g[g].q.val() + 1;
            }
            if self.gate_end.q.val() {
                self.old_g[g].d.next = self.pre_g[g].q.val();
                if self.ev.val().get_bit(g + 8) {
                    self.old_g[g].d.next = self.pre_g[g].q.val() + 1;
                }
                self.pre_g[g].d.next = 0.into();
            }
            if self.vsel.q.val().get_bit(g + 8) {
                if self.visit.val() {
                    self.term_g[g].next = self.pre_g[g].q.val();
                    self.pre_g[g].d.next = 0.into();
                    if self.ev.val().get_bit(g + 8) {
                        self.pre_g[g].d.next = 1.into();
                    }
                }
                if self.flushing.val() & self.flush.q.val().get_bit(g + 8) {
                    self.term_g[g].next = self.term_g[g].val() | self.old_g[g].q.val();
                }
            }
        }
        for i in 0..4 {
            self.w_add[i].clock.next = self.clock.val();
        }
        self.w_add[0].d.next = self.term_s[0].val() | self.term_s[1].val() | self.term_s[2].val();
        self.w_add[1].d.next = self.term_s[3].val() | self.term_s[4].val() | self.term_s[5].val();
        self.w_add[2].d.next = self.term_s[6].val() | self.term_s[7].val();
        self.w_add[3].d.next = self.term_g[0].val() | self.term_g[1].val() | self.term_g[2].val() | self.term_g[3].val();
        self.fresh.d.next = self.fresh_n.val();
        self.flush.d.next = self.flush_n.val();
        if self.gate_end.q.val() {
            self.fresh.d.next = self.ones.val();
            self.flush.d.next = self.ones.val();
            self.bank.d.next = !self.bank.q.val();
            self.done.d.next = self.latency.val();
        } else {
            if self.done.q.val() != 0 {
                self.done.d.next = self.done.q.val() - 1;
            }
            if self.done.q.val() == 1 {
                self.seq.d.next = self.seq.q.val() + 1;
            }
        }
        self.gate_seq.next = self.seq.q.val();
        self.shown.read_clock.next = self.rd_clock.val();
        self.shown.read_address.next = self.rd_addr.val();
        self.rd_data.next = self.shown.read_data.val();
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
    lines: [crate::bit_delay::BitDelayModel; 8],
    dh: u8,
    age: [u8; 8],
    seen: u8,
    near: u8,
    coinc_r: u8,
    dh2: u8,
    gate_left: u32,
    gate_end: bool,
    // The effective gate of the previous tick (registered in the gateware).
    gate_prev: u32,
    seq: u16,
    slot: u8,
    pre: [u8; SLOTS],
    old: [u8; SLOTS],
    fresh: u16,
    flush: u16,
    bank: bool,
    w_en: bool,
    w_addr: u8,
    w_add: u8,
    w_fresh: bool,
    w_flush: bool,
    done: u8,
    sums: [u32; 2 * SLOTS],
    sums_rd: u32,
    /// Sums on their way to the RAM (index 0 written in 2 ticks, index 1 in this tick):
    /// (enable, address, sum, flush).
    pending: [(bool, u8, u32, bool); 2],
    shown: [u32; SLOTS],
    rd_data: u32,
    ideal: GateCounts,
}

/// What the coincidence counter shows in one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoincidenceOutputs {
    /// Coincidence pulses of the groups (bit g = group g).
    pub coinc: u8,
    /// Gates completed.
    pub gate_seq: u16,
    /// The count word addressed in the previous tick.
    pub rd_data: u32,
}

/// The counts each gate must have, from the counted events alone: the specification that
/// [`CoincidenceModel`]'s prescaler and block-RAM scheme is checked against.
#[derive(Clone, Debug, Default)]
pub struct GateCounts {
    running: [u32; SLOTS],
    completed: std::collections::VecDeque<[u32; SLOTS]>,
    announced: Option<[u32; SLOTS]>,
}

impl GateCounts {
    /// Counts one tick's events (`ev`, bit = count-RAM word); `last` = last tick of a gate.
    fn tick(&mut self, ev: u16, last: bool) {
        for (i, r) in self.running.iter_mut().enumerate() {
            *r = r.wrapping_add(u32::from((ev >> i) & 1));
        }
        if last {
            self.completed.push_back(self.running);
            self.running = [0; SLOTS];
        }
    }

    /// The oldest completed gate's counts become the announced ones.
    fn announce(&mut self) {
        self.announced = self.completed.pop_front();
    }
}

impl CoincidenceModel {
    /// The counter in its power-on state.
    pub fn new(channels: usize) -> Self {
        assert!((1..=8).contains(&channels));
        Self {
            channels,
            lines: Default::default(),
            dh: 0,
            age: [0; 8],
            seen: 0,
            near: 0,
            coinc_r: 0,
            dh2: 0,
            gate_left: 0,
            gate_prev: 0,
            gate_end: false,
            seq: 0,
            slot: 0,
            pre: [0; SLOTS],
            old: [0; SLOTS],
            fresh: u16::MAX,
            flush: 0,
            bank: false,
            w_en: false,
            w_addr: 0,
            w_add: 0,
            w_fresh: false,
            w_flush: false,
            done: 0,
            sums: [0; 2 * SLOTS],
            sums_rd: 0,
            pending: [(false, 0, 0, false); 2],
            shown: [0; SLOTS],
            rd_data: 0,
            ideal: GateCounts::default(),
        }
    }

    /// The registered outputs during the current tick.
    pub fn outputs(&self) -> CoincidenceOutputs {
        CoincidenceOutputs { coinc: self.coinc_r, gate_seq: self.seq, rd_data: self.rd_data }
    }

    /// The counts of the last complete gate (word [`single_index`] / [`group_index`]), as
    /// the host reads them.
    pub fn counts(&self) -> [u32; SLOTS] {
        self.shown
    }

    /// The counts the last announced gate must have by definition (events of its ticks), or
    /// `None` before the first announcement. Equal to [`Self::counts`] whenever the model is
    /// right; the first gate after power-on or a gate change is incomplete, as in hardware.
    pub fn expected_counts(&self) -> Option<[u32; SLOTS]> {
        self.ideal.announced
    }

    /// One tick with channel events `hits` and count-RAM read address `rd_addr`; returns the
    /// outputs shown during the tick.
    pub fn step(&mut self, hits: u8, rd_addr: u8, cfg: &CoincidenceConfig) -> CoincidenceOutputs {
        let out = self.outputs();
        let n = self.channels;
        let mut delayed = 0u8;
        for c in 0..n {
            let d = cfg.delay[c] & MAX_DELAY as u8;
            delayed |= u8::from(self.lines[c].step(hits >> c & 1 == 1, d)) << c;
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
        // Counted events of this tick, by count-RAM word.
        let mut ev = 0u16;
        for c in 0..n {
            ev |= u16::from((self.dh2 >> c) & 1) << single_index(c);
        }
        for g in 0..GROUPS {
            ev |= u16::from((self.coinc_r >> g) & 1) << group_index(g);
        }
        self.ideal.tick(ev, self.gate_end);
        // Block RAMs: registered reads see the contents before this tick's write.
        let sum = if self.w_fresh { 0 } else { self.sums_rd }.wrapping_add(u32::from(self.w_add));
        let k = usize::from((self.slot >> 1) & 0xF);
        let odd = self.slot & 1 != 0;
        let ra = k | (usize::from(self.bank != odd) << 4);
        self.sums_rd = self.sums[ra];
        self.rd_data = self.shown[usize::from(rd_addr) & (SLOTS - 1)];
        // The sum of the read of two ticks ago lands now (the pipeline's extra two ticks).
        let (en, addr, value, to_host) = self.pending[1];
        if en {
            self.sums[usize::from(addr)] = value;
            if to_host {
                self.shown[usize::from(addr) & (SLOTS - 1)] = value;
            }
        }
        self.pending[1] = self.pending[0];
        self.pending[0] = (self.w_en, self.w_addr, sum, self.w_flush);
        // Visits (even ticks), flushes (odd ticks) and the gate end.
        let (mut w_en, mut w_add, mut w_fresh, mut w_flush) = (false, 0u8, false, false);
        let (mut fresh, mut flush) = (self.fresh, self.flush);
        for i in 0..SLOTS {
            let e = ((ev >> i) & 1) as u8;
            if self.gate_end {
                self.old[i] = (self.pre[i] + e) & 0x3F;
                self.pre[i] = 0;
            } else if i == k && !odd {
                w_en = true;
                w_add = self.pre[i];
                w_fresh = self.fresh & (1 << i) != 0;
                fresh &= !(1 << i);
                self.pre[i] = e;
            } else {
                if i == k && self.flush & (1 << i) != 0 {
                    w_en = true;
                    w_add = self.old[i];
                    w_flush = true;
                    flush &= !(1 << i);
                }
                self.pre[i] = (self.pre[i] + e) & 0x3F;
            }
        }
        if self.gate_end {
            fresh = u16::MAX;
            flush = u16::MAX;
            self.bank = !self.bank;
            self.done = COUNT_LATENCY as u8;
        } else {
            if self.done == 1 {
                self.seq = self.seq.wrapping_add(1);
                self.ideal.announce();
            }
            self.done = self.done.saturating_sub(1);
        }
        (self.w_en, self.w_addr, self.w_add, self.w_fresh, self.w_flush) = (w_en, ra as u8, w_add, w_fresh, w_flush);
        (self.fresh, self.flush) = (fresh, flush);
        self.slot = (self.slot + 1) & 0x1F;
        // Gate timer.
        self.gate_end = self.gate_left == 2;
        self.gate_left = if self.gate_left <= 1 { self.gate_prev } else { self.gate_left - 1 };
        self.gate_prev = if cfg.gate != 0 && cfg.gate < MIN_GATE { MIN_GATE } else { cfg.gate };
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

    /// Runs the rust-hdl block against the model for `ticks` ticks with configuration
    /// `cfg_at(t)` and random hits (probability `p` per channel and tick); returns the number
    /// of coincidences and the model.
    fn run_vs_model(cfg_at: impl Fn(u32) -> CoincidenceConfig, p: f64, ticks: u32, seed: u64) -> (u32, CoincidenceModel) {
        let mut uut = Coincidence::<N>::default();
        uut.connect_all();
        let mut m = CoincidenceModel::new(N);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut coincs = 0;
        for t in 0..ticks {
            let cfg = cfg_at(t);
            set(&mut uut, &cfg);
            let hits: u8 = (0..N).map(|c| (rng.gen_bool(p) as u8) << c).sum();
            let rd_addr = (t % 16) as u8;
            uut.hits.next = (hits as u64).into();
            uut.rd_addr.next = (rd_addr as u64).into();
            uut.clock.next = Clock::from(false);
            uut.rd_clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let want = m.step(hits, rd_addr, &cfg);
            let got = CoincidenceOutputs {
                coinc: uut.coinc.val().to_u8(),
                gate_seq: uut.gate_seq.val().to_u16(),
                rd_data: uut.rd_data.val().to_u32(),
            };
            assert_eq!(got, want, "tick {t}");
            coincs += want.coinc.count_ones();
            uut.clock.next = Clock::from(true);
            uut.rd_clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
        }
        (coincs, m)
    }

    #[test]
    fn rust_hdl_block_matches_model() {
        let cfg = CoincidenceConfig {
            delay: [0, 3, 17, 0, 63, 0, 0, 0],
            window: 4,
            group: [0b00011, 0b00101, 0b10110, 0b01111],
            gate: 700,
        };
        // The second half runs gates of 40 ticks, which count as MIN_GATE.
        let short = CoincidenceConfig { gate: 40, ..cfg };
        let (coincs, m) = run_vs_model(|t| if t < 4000 { cfg } else { short }, 0.08, 8000, 5);
        assert!(coincs > 100, "{coincs} coincidences");
        assert!(m.outputs().gate_seq >= 60, "{} gates", m.outputs().gate_seq);
    }

    /// The gate timer around its reloads: gates whose low bits read 10b right after the reload
    /// (66, 130: `upper_zero` is stale then and `reloaded` masks it), the minimum gate, a gate
    /// of 0 (stopped: the timer reloads every tick) and back, against the model in every tick.
    #[test]
    fn rust_hdl_gate_timer_around_its_reloads_matches_model() {
        let cfg = CoincidenceConfig { window: 3, group: [0b00011, 0b00110, 0b01100, 0b11000], ..Default::default() };
        let gate = |t: u32| match t {
            0..=999 => 66,
            1000..=1499 => 0,
            1500..=2499 => 130,
            2500..=2999 => 64,
            3000..=3099 => 0,
            _ => 67,
        };
        let at = |t: u32| {
            let mut c = cfg;
            c.gate = gate(t);
            c
        };
        let (coincs, m) = run_vs_model(at, 0.08, 4000, 9);
        assert!(coincs > 50, "{coincs} coincidences");
        assert!(m.outputs().gate_seq >= 40, "{} gates", m.outputs().gate_seq);
    }

    /// Gates longer than 2^16 ticks, so the gate timer's high half counts: a low half of 2 at
    /// the reload (`at_two` as soon as the high half runs out) and of 0 (the high half moves
    /// the tick after the reload), against the model in every tick.
    #[test]
    fn rust_hdl_gates_beyond_two_to_the_sixteen_match_model() {
        let cfg = CoincidenceConfig { window: 2, group: [0b00011, 0, 0, 0], gate: 0x1_0002, ..Default::default() };
        let second = CoincidenceConfig { gate: 0x1_0000, ..cfg };
        let (_, m) = run_vs_model(|t| if t < 140_000 { cfg } else { second }, 0.01, 275_000, 8);
        assert!(m.outputs().gate_seq >= 4, "{} gates", m.outputs().gate_seq);
    }

    /// The widest window (255 ticks) with sparse events, so that the ages saturate between
    /// them: an age that stopped short of 255 (or wrapped) would count a coincidence the
    /// model does not.
    #[test]
    fn widest_window_with_saturated_ages_matches_model() {
        let cfg = CoincidenceConfig { window: 255, group: [0b00011, 0b00110, 0, 0], gate: 5000, ..Default::default() };
        let (coincs, _) = run_vs_model(|_| cfg, 1.0 / 400.0, 30_000, 6);
        assert!(coincs > 20, "{coincs} coincidences");
    }

    /// The prescaler/block-RAM counts equal the per-gate event counts, for busy channels
    /// (an event nearly every tick: the prescalers' worst case), quiet ones, short gates
    /// (below and at [`MIN_GATE`]) and gates that are not multiples of the 32-tick visit cycle.
    #[test]
    fn counts_equal_the_events_of_each_gate() {
        for (gate, p, seed) in [(64u32, 0.97, 1u64), (1, 0.5, 2), (97, 0.9, 3), (1000, 0.02, 4), (65_537, 0.3, 5)] {
            let cfg = CoincidenceConfig { window: 3, group: [0b00011, 0b11111, 0b10100, 0], gate, ..Default::default() };
            let mut m = CoincidenceModel::new(N);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut seq, mut checked, mut nonzero) = (0u16, 0, 0);
            for _ in 0..200_000 {
                let hits: u8 = (0..N).map(|c| (rng.gen_bool(p) as u8) << c).sum();
                let out = m.step(hits, 0, &cfg);
                if out.gate_seq != seq {
                    seq = out.gate_seq;
                    let want = m.expected_counts().expect("a gate was announced");
                    assert_eq!(m.counts(), want, "gate {gate}, p {p}: gate {seq}");
                    checked += 1;
                    nonzero += usize::from(want[group_index(1)] > 0);
                }
            }
            let gate_ticks = gate.max(MIN_GATE) as usize;
            assert!(checked + 2 >= 200_000 / gate_ticks, "gate {gate}: only {checked} gates");
            assert!(p < 0.1 || nonzero > 0, "gate {gate}: no 5-fold coincidences counted");
        }
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
                n += m.step(hits, 0, cfg).coinc.count_ones();
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
