//! The start–stop correlation histogram: the arrival-time differences between a start and a
//! stop channel, binned into `2^A` counters in block RAM, readable while acquiring.
//!
//! # Semantics
//! Channel `start_ch` starts and channel `stop_ch` stops (channel numbers; a number ≥ `N`
//! never fires; the two may be equal). The stop channel is delayed by `offset` ticks
//! (0..=255), so a stop up to `offset` ticks *before* its start is still seen: for each
//! (delayed) stop, with `t_start` the latest start at or before `t_stop + offset`,
//!
//! ```text
//! Δ   = t_stop + offset − t_start            (ticks, ≥ 0)
//! bin = Δ >> shift                           (shift = 0..=15: bin width 2^shift ticks)
//! ```
//!
//! If `bin < 2^A` the bin's 32-bit counter increments (saturating at 2^32 − 1); otherwise,
//! and for a stop before any start, the 32-bit `overflow` counter increments (saturating).
//! Stops count only while `enable` is high. So "zero delay" sits in bin `offset >> shift`.
//! The bin width and offset take effect for stops whose start came after the change;
//! change them with `enable` low, then `clear`.
//!
//! # Clear
//! A tick with `clear` high starts a sweep that writes zero to every bin, one bin per tick
//! (`2^A` ticks); `busy` is high for those ticks and one more, until the last zero is
//! written. `overflow` reads zero from the tick after `clear` on. Stops that reach the
//! increment stage during the sweep are discarded. The power-on state is all zeros.
//!
//! # Read port
//! `rd_data` shows, one tick after `rd_addr` was presented, the count of bin `rd_addr` (block
//! RAM output register). It can be read at any time, also while counting: a count is the
//! same as the internal one up to one tick.
//!
//! # Pipeline (for timing)
//! Every stage is registered: channel select → stop delay (block RAM, `offset` + 2 ticks; the
//! start takes 2 ticks) → time-since-start counters → bin number and RAM read (E) → read data
//! registered (M) → saturating increment (C) → RAM write (W). One stop per tick can arrive
//! forever. A count read in tick `e` misses the writes of ticks `e`, `e + 1` and `e + 2`:
//! * a stop in the same bin as the stop just ahead of it (in M while it is in E) is merged
//!   into it: that one adds 2, and this one goes no further;
//! * M takes the value being written (W: the stop two ahead) or the one written in the tick
//!   before (the stop three ahead) instead of the RAM's when the bin matches; the match flags
//!   are compared in E and registered, so the forwarding mux sits right behind the RAM;
//! * a stop that reaches C in the tick after a clear sweep ended is discarded like those
//!   during the sweep (the last zero is written while it is in C).
//!
//! So no count is lost, and C adds 1 or 2 to a flip-flop: two 16-bit carry chains side by
//! side, registered with the low half's carry, which W uses to pick the high half or the high
//! half plus one (one LUT level, with the saturation); an overflow is registered beside the
//! sum, and W writes 2^32 − 1 instead (saturation). No path
//! runs from a block-RAM output through an adder, nor through a forwarding mux into one (on
//! the HX8K the histogram alone reaches 157 MHz; with read, increment and write in one tick it
//! reached 93 MHz). The bin width is a down counter of the ticks left in the current bin
//! (reloaded with `2^shift − 1` at each start and each bin boundary, its zero registered)
//! rather than a barrel shifter or a compare of a free-running prescaler.
//!
//! The cycle-accurate reference model is [`HistogramModel`]; the Verilated Verilog is checked
//! against it in `qkd-sim`'s tests.

use rust_hdl::prelude::*;

/// Bin-number width of the histogram the board cores use (512 bins).
pub const HIST_BIN_BITS: usize = 9;
/// Width of a bin counter (and of the overflow counter), in bits.
pub const HIST_COUNT_BITS: usize = 32;
/// Largest count (counters saturate here).
pub const HIST_COUNT_MAX: u32 = u32::MAX;
/// Width of the `offset` input (the stop delay), in bits (ticks, 0..=255).
pub const HIST_OFFSET_BITS: usize = 8;
/// Width of the `shift` input, in bits (bin width `2^shift` ticks, shift 0..=15).
pub const HIST_SHIFT_BITS: usize = 4;
/// Width of the channel-number inputs, in bits.
pub const HIST_CHANNEL_BITS: usize = 3;
/// Width of the bin-width prescaler, in bits (the largest `shift`).
const PRESCALE_BITS: usize = 15;
/// A stop in tick `t` is in its bin (the RAM) from tick `t + offset + HIST_LATENCY` on; a
/// read presented in that tick shows it one tick later.
pub const HIST_LATENCY: u64 = 9;

/// A correlation histogram over `N` channels (1 ≤ N ≤ 8) with `2^A` bins (A ≤ 12).
#[derive(LogicBlock)]
pub struct Histogram<const N: usize, const A: usize> {
    /// Tagger clock.
    pub clock: Signal<In, Clock>,
    /// Channel events in this tick (bit c = channel c), as for the coincidence counter.
    pub hits: Signal<In, Bits<N>>,
    /// Start channel number.
    pub start_ch: Signal<In, Bits<HIST_CHANNEL_BITS>>,
    /// Stop channel number.
    pub stop_ch: Signal<In, Bits<HIST_CHANNEL_BITS>>,
    /// Delay added to the stop channel, in ticks (makes negative delays visible).
    pub offset: Signal<In, Bits<HIST_OFFSET_BITS>>,
    /// Bin width, as a power of two: bins are `2^shift` ticks wide.
    pub shift: Signal<In, Bits<HIST_SHIFT_BITS>>,
    /// Count stops (low: stops are ignored).
    pub enable: Signal<In, Bit>,
    /// Strobe: start zeroing every bin and the overflow counter.
    pub clear: Signal<In, Bit>,
    /// Clock of the bin read port (`rd_addr`/`rd_data`): the tagger clock, or the core's
    /// control clock (the host copy's read port has its own clock).
    pub rd_clock: Signal<In, Clock>,
    /// Bin to read.
    pub rd_addr: Signal<In, Bits<A>>,
    /// Count of the bin presented on `rd_addr` in the previous `rd_clock` cycle.
    pub rd_data: Signal<Out, Bits<HIST_COUNT_BITS>>,
    /// Stops out of range (or before any start), saturating; registered.
    pub overflow: Signal<Out, Bits<HIST_COUNT_BITS>>,
    /// A clear sweep is running (registered).
    pub busy: Signal<Out, Bit>,
    // Stage 1: the selected channels.
    st1: DFF<Bit>,
    sp1: DFF<Bit>,
    // The stop delay line (block RAM) and its pointer; the start's matching 2 ticks.
    dl: RAM<Bit, 8>,
    ptr: DFF<Bits<8>>,
    st2: DFF<Bit>,
    st3: DFF<Bit>,
    // Time since the latest start: ticks left in the current bin (and "none left",
    // registered), bin counter, "beyond the last bin", "a start was seen"; the bin-width mask
    // (registered decode of `shift`: `2^shift − 1`) and "the mask is zero".
    left: DFF<Bits<PRESCALE_BITS>>,
    left_zero: DFFWithInit<Bit>,
    mask: DFF<Bits<PRESCALE_BITS>>,
    mask_zero: DFF<Bit>,
    age: DFF<Bits<A>>,
    aov: DFF<Bit>,
    seen: DFF<Bit>,
    stop_b: DFF<Bit>,
    // Stage E: the event and its bin (RAM read issued).
    ev: DFF<Bit>,
    ovf_ev: DFF<Bit>,
    bin: DFF<Bits<A>>,
    // Stage M: the count read (forwarded); `m_w`/`m_f`: the bin matches the write of W / of
    // the tick before (registered in E).
    m_valid: DFF<Bit>,
    m_bin: DFF<Bits<A>>,
    m_w: DFF<Bit>,
    m_f: DFF<Bit>,
    rq: DFF<Bits<HIST_COUNT_BITS>>,
    // Stage C: increment (by 2 when the next stop merged into this one).
    c_valid: DFF<Bit>,
    c_bin: DFF<Bits<A>>,
    c_two: DFF<Bit>,
    // Stage W: the write (also of a clear sweep), and the previous tick's write.
    w_we: DFF<Bit>,
    w_clear: DFF<Bit>,
    w_addr: DFF<Bits<A>>,
    // Stage C's sum for W, in parts: the low half, the high half and the high half plus one,
    // and the low half's carry, which W uses to pick the high half (so that the carry of the
    // low chain does not also drive a 16-bit multiplexer in C), and the overflow.
    w_lo: DFF<Bits<16>>,
    w_hi: DFF<Bits<16>>,
    w_hi_inc: DFF<Bits<16>>,
    w_lo_c: DFF<Bit>,
    w_sat: DFF<Bit>,
    f_we: DFF<Bit>,
    f_addr: DFF<Bits<A>>,
    f_data: DFF<Bits<HIST_COUNT_BITS>>,
    // Counts: `upd` is read by the increment stage, `host` by the read port; both get the
    // same writes.
    upd: RAM<Bits<HIST_COUNT_BITS>, A>,
    host: RAM<Bits<HIST_COUNT_BITS>, A>,
    // The overflow count, as two 16-bit halves: the high half counts when the low half wraps,
    // known from a registered flag, so the increment is two 16-bit carry chains side by side
    // instead of one of 32 (it was the HX8K core's critical tick path). Same count.
    ovf_lo: DFFWithInit<Bits<16>>,
    ovf_hi: DFFWithInit<Bits<16>>,
    // `ovf_lo` is all ones.
    lo_full: DFFWithInit<Bit>,
    // The count is all ones (saturated): registered, so the counter's enable is one LUT of
    // flip-flops rather than a 32-bit AND tree feeding 32 clock enables.
    ovf_max: DFFWithInit<Bit>,
    // The clock enables of the low half (with `lo_full` and `ovf_max`) and of the high half,
    // registered from the next values of `busy_r`, `ovf_ev`, `ovf_max` and `lo_full` (so each
    // equals its expression of those in the same tick): one flip-flop drives each group of 16
    // enables, instead of a LUT of four flip-flops (the high half's enable was a failing tick
    // path of the HX8K core). `lo_en` = busy_r | (ovf_ev & !ovf_max); `hi_en` = busy_r |
    // (ovf_ev & !ovf_max & lo_full).
    lo_en: DFF<Bit>,
    hi_en: DFF<Bit>,
    // Registered compares, so that the enables' next values above are two LUT levels and not
    // four (`clear` → `busy_next` → `lo_en` over a 16-bit compare was the failing tick path of
    // the HX8K core built without the basis RNG, 7.7 ns of 6.67). Each is kept equal to its
    // expression in every tick: `lo_near` ⇔ `ovf_lo == 0xFFFE`, `hi_full` ⇔ `ovf_hi` all
    // ones (both set from the halves' values one count earlier, when they count), and
    // `clr_last` ⇔ `clr` all ones during a sweep (a sweep steps `clr` by one; set in the tick
    // before, unless a new `clear` restarts it).
    lo_near: DFFWithInit<Bit>,
    hi_full: DFFWithInit<Bit>,
    clr_last: DFF<Bit>,
    lo_before_top: Constant<Bits<16>>,
    hi_before_top: Constant<Bits<16>>,
    clr_before_last: Constant<Bits<A>>,
    busy_next: Signal<Local, Bit>,
    ovf_ev_next: Signal<Local, Bit>,
    ovf_max_next: Signal<Local, Bit>,
    lo_full_next: Signal<Local, Bit>,
    sh16: Constant<Bits<8>>,
    busy_r: DFF<Bit>,
    clr: DFF<Bits<A>>,
    // Combinational helpers.
    start_sel: Signal<Local, Bit>,
    stop_sel: Signal<Local, Bit>,
    mask_next: Signal<Local, Bits<PRESCALE_BITS>>,
    cur: Signal<Local, Bits<HIST_COUNT_BITS>>,
    lo_sum: Signal<Local, Bits<17>>,
    hi_sum: Signal<Local, Bits<17>>,
    sat: Signal<Local, Bit>,
    lo_c: Signal<Local, Bit>,
    merge: Signal<Local, Bit>,
    w_hi_sel: Signal<Local, Bits<16>>,
    c_we: Signal<Local, Bit>,
    c_addr: Signal<Local, Bits<A>>,
    wd: Signal<Local, Bits<HIST_COUNT_BITS>>,
    half: Constant<Bits<8>>,
    all_ones: Constant<Bits<HIST_COUNT_BITS>>,
}

impl<const N: usize, const A: usize> Default for Histogram<N, A> {
    fn default() -> Self {
        assert!((1..=8).contains(&N) && (1..=12).contains(&A));
        Self {
            clock: Default::default(),
            hits: Default::default(),
            start_ch: Default::default(),
            stop_ch: Default::default(),
            offset: Default::default(),
            shift: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            rd_clock: Default::default(),
            rd_addr: Default::default(),
            rd_data: Default::default(),
            overflow: Default::default(),
            busy: Default::default(),
            st1: Default::default(),
            sp1: Default::default(),
            dl: Default::default(),
            ptr: Default::default(),
            st2: Default::default(),
            st3: Default::default(),
            left: Default::default(),
            left_zero: DFFWithInit::new(true),
            mask: Default::default(),
            mask_zero: Default::default(),
            age: Default::default(),
            aov: Default::default(),
            seen: Default::default(),
            stop_b: Default::default(),
            ev: Default::default(),
            ovf_ev: Default::default(),
            bin: Default::default(),
            m_valid: Default::default(),
            m_bin: Default::default(),
            m_w: Default::default(),
            m_f: Default::default(),
            rq: Default::default(),
            c_valid: Default::default(),
            c_bin: Default::default(),
            c_two: Default::default(),
            w_we: Default::default(),
            w_clear: Default::default(),
            w_addr: Default::default(),
            w_lo: Default::default(),
            w_hi: Default::default(),
            w_hi_inc: Default::default(),
            w_lo_c: Default::default(),
            w_sat: Default::default(),
            f_we: Default::default(),
            f_addr: Default::default(),
            f_data: Default::default(),
            upd: Default::default(),
            host: Default::default(),
            ovf_lo: DFFWithInit::new(0u64.to_bits()),
            ovf_hi: DFFWithInit::new(0u64.to_bits()),
            lo_full: DFFWithInit::new(false),
            ovf_max: DFFWithInit::new(false),
            lo_en: Default::default(),
            hi_en: Default::default(),
            busy_next: Default::default(),
            ovf_ev_next: Default::default(),
            ovf_max_next: Default::default(),
            lo_full_next: Default::default(),
            lo_near: DFFWithInit::new(false),
            hi_full: DFFWithInit::new(false),
            clr_last: Default::default(),
            lo_before_top: Constant::new(0xFFFDu64.to_bits()),
            hi_before_top: Constant::new(0xFFFEu64.to_bits()),
            clr_before_last: Constant::new(((1u64 << A) - 2).to_bits()),
            sh16: Constant::new(16u64.to_bits()),
            busy_r: Default::default(),
            clr: Default::default(),
            start_sel: Default::default(),
            stop_sel: Default::default(),
            mask_next: Default::default(),
            cur: Default::default(),
            lo_sum: Default::default(),
            hi_sum: Default::default(),
            sat: Default::default(),
            lo_c: Default::default(),
            merge: Default::default(),
            w_hi_sel: Default::default(),
            c_we: Default::default(),
            c_addr: Default::default(),
            wd: Default::default(),
            half: Constant::new(16u64.to_bits()),
            all_ones: Constant::new((HIST_COUNT_MAX as u64).to_bits()),
        }
    }
}

impl<const N: usize, const A: usize> Histogram<N, A> {
    /// A histogram whose bins all start at `count` instead of zero (for tests of saturation;
    /// the board cores use [`Default`]).
    pub fn with_counts(count: u32) -> Self {
        let init = || RAM::new((0..1u64 << A).map(|a| (a.to_bits(), (count as u64).to_bits())).collect());
        Self { upd: init(), host: init(), ..Default::default() }
    }

    /// A histogram whose overflow count starts at `count` instead of zero (for tests of its
    /// carry and saturation; the board cores use [`Default`]). A power-on value: a clear sweep
    /// zeroes it as usual.
    pub fn with_overflow(count: u32) -> Self {
        Self {
            ovf_lo: DFFWithInit::new(u64::from(count & 0xFFFF).to_bits()),
            ovf_hi: DFFWithInit::new(u64::from(count >> 16).to_bits()),
            lo_full: DFFWithInit::new(count & 0xFFFF == 0xFFFF),
            ovf_max: DFFWithInit::new(count == HIST_COUNT_MAX),
            lo_near: DFFWithInit::new(count & 0xFFFF == 0xFFFE),
            hi_full: DFFWithInit::new(count >> 16 == 0xFFFF),
            ..Default::default()
        }
    }
}

impl<const N: usize, const A: usize> Logic for Histogram<N, A> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, st1, sp1, ptr, st2, st3, left, left_zero, mask, mask_zero, age, aov, seen, stop_b, ev, ovf_ev, bin, m_valid, m_bin,
            m_w, m_f, rq, c_valid, c_bin, c_two, w_we, w_clear, w_addr, w_lo, w_hi, w_hi_inc, w_lo_c, w_sat, f_we, f_addr, f_data, ovf_lo, ovf_hi, lo_full, ovf_max, lo_en, hi_en, lo_near, hi_full, clr_last,
            busy_r, clr
        );
        // Stage 1: channel select (numbers ≥ N select nothing).
        self.start_sel.next = false;
        self.stop_sel.next = false;
        for i in 0..N {
            if self.start_ch.val().index() == i {
                self.start_sel.next = self.hits.val().get_bit(i);
            }
            if self.stop_ch.val().index() == i {
                self.stop_sel.next = self.hits.val().get_bit(i);
            }
        }
        self.st1.d.next = self.start_sel.val();
        self.sp1.d.next = self.stop_sel.val();
        // Stop delay: written at `ptr`, read at `ptr − offset − 1`; the read data is the
        // stop of `offset + 2` ticks ago. The start takes 2 ticks.
        self.dl.write_clock.next = self.clock.val();
        self.dl.read_clock.next = self.clock.val();
        self.dl.write_address.next = self.ptr.q.val();
        self.dl.write_data.next = self.sp1.q.val();
        self.dl.write_enable.next = true;
        self.dl.read_address.next = self.ptr.q.val() + !self.offset.val();
        self.ptr.d.next = self.ptr.q.val() + 1;
        self.st2.d.next = self.st1.q.val();
        self.st3.d.next = self.st2.q.val();
        // Time since the latest start, in bins.
        self.mask_next.next = 0.into();
        for i in 0..PRESCALE_BITS {
            self.mask_next.next = self.mask_next.val().replace_bit(i, self.shift.val().index() > i);
        }
        self.mask.d.next = self.mask_next.val();
        self.mask_zero.d.next = self.shift.val() == 0;
        // A bin lasts `mask + 1` ticks: `left` counts them down and reloads with `mask`.
        if self.st3.q.val() {
            self.left.d.next = self.mask.q.val();
            self.left_zero.d.next = self.mask_zero.q.val();
            self.age.d.next = 0.into();
            self.aov.d.next = false;
            self.seen.d.next = true;
        } else if self.left_zero.q.val() {
            self.left.d.next = self.mask.q.val();
            self.left_zero.d.next = self.mask_zero.q.val();
            self.age.d.next = self.age.q.val() + 1;
            if self.age.q.val().all() {
                self.aov.d.next = true;
            }
        } else {
            self.left.d.next = self.left.q.val() - 1;
            self.left_zero.d.next = self.left.q.val() == 1;
        }
        self.stop_b.d.next = self.dl.read_data.val() & self.enable.val();
        // Stage E: the bin, and the read of its count.
        self.ev.d.next = self.stop_b.q.val() & self.seen.q.val() & !self.aov.q.val();
        self.ovf_ev_next.next = self.stop_b.q.val() & (!self.seen.q.val() | self.aov.q.val());
        self.ovf_ev.d.next = self.ovf_ev_next.val();
        self.bin.d.next = self.age.q.val();
        self.upd.read_clock.next = self.clock.val();
        self.upd.read_address.next = self.bin.q.val();
        // Stage W's write data: the registered sum (its high half chosen by the low half's
        // carry: one LUT per bit with the saturation below), all ones if it overflowed.
        self.w_hi_sel.next = self.w_hi.q.val();
        if self.w_lo_c.q.val() {
            self.w_hi_sel.next = self.w_hi_inc.q.val();
        }
        self.wd.next = bit_cast::<HIST_COUNT_BITS, 16>(self.w_lo.q.val())
            | (bit_cast::<HIST_COUNT_BITS, 16>(self.w_hi_sel.val()) << self.half.val());
        if self.w_sat.q.val() {
            self.wd.next = self.all_ones.val();
        }
        // Stage C's write for stage W: a clear sweep writes zero at `clr`, otherwise a stop in
        // C writes its incremented count; a stop in C during the sweep or the tick after it
        // (`w_clear`: the last zero is being written) is dropped.
        self.c_we.next = self.busy_r.q.val() | (self.c_valid.q.val() & !self.w_clear.q.val());
        self.c_addr.next = self.c_bin.q.val();
        if self.busy_r.q.val() {
            self.c_addr.next = self.clr.q.val();
        }
        // Stage E (bin.q, read issued): merge into the stop in M if it has the same bin; will
        // the count miss the write of W (next tick) or the one of this tick?
        self.merge.next = self.ev.q.val() & self.m_valid.q.val() & (self.bin.q.val() == self.m_bin.q.val());
        self.m_valid.d.next = self.ev.q.val() & !self.merge.val();
        self.m_bin.d.next = self.bin.q.val();
        self.m_w.d.next = self.c_we.val() & (self.c_addr.val() == self.bin.q.val());
        self.m_f.d.next = self.w_we.q.val() & (self.w_addr.q.val() == self.bin.q.val());
        // Stage M: the count, forwarded.
        self.rq.d.next = self.upd.read_data.val();
        if self.m_w.q.val() {
            self.rq.d.next = self.wd.val();
        } else if self.m_f.q.val() {
            self.rq.d.next = self.f_data.q.val();
        }
        self.c_valid.d.next = self.m_valid.q.val();
        self.c_bin.d.next = self.m_bin.q.val();
        self.c_two.d.next = self.merge.val();
        // Stage C: saturating increment by 1 or 2, two 16-bit halves (the high one selected
        // by the low one's carry); a clear writes zero.
        self.cur.next = self.rq.q.val();
        self.lo_sum.next = bit_cast::<17, 16>(self.cur.val().get_bits::<16>(0)) + 1;
        if self.c_two.q.val() {
            self.lo_sum.next = bit_cast::<17, 16>(self.cur.val().get_bits::<16>(0)) + 2;
        }
        self.hi_sum.next = bit_cast::<17, 16>(self.cur.val().get_bits::<16>(16)) + 1;
        self.lo_c.next = (self.lo_sum.val() >> self.half.val()).any();
        self.sat.next = self.lo_c.val() & (self.hi_sum.val() >> self.half.val()).any();
        // The sum wraps here; W makes it all ones when it overflowed (`w_sat`), so that the
        // saturation costs no logic level after the carry chains.
        self.w_lo.d.next = self.lo_sum.val().get_bits::<16>(0);
        self.w_hi.d.next = self.cur.val().get_bits::<16>(16);
        self.w_hi_inc.d.next = self.hi_sum.val().get_bits::<16>(0);
        self.w_lo_c.d.next = self.lo_c.val();
        self.w_sat.d.next = self.sat.val();
        if self.busy_r.q.val() {
            self.w_lo.d.next = 0.into();
            self.w_hi.d.next = 0.into();
            self.w_lo_c.d.next = false;
            self.w_sat.d.next = false;
        }
        self.w_we.d.next = self.c_we.val();
        self.w_clear.d.next = self.busy_r.q.val();
        self.w_addr.d.next = self.c_addr.val();
        self.f_we.d.next = self.w_we.q.val();
        self.f_addr.d.next = self.w_addr.q.val();
        self.f_data.d.next = self.wd.val();
        // Stage W: the write.
        self.upd.write_clock.next = self.clock.val();
        self.upd.write_address.next = self.w_addr.q.val();
        self.upd.write_data.next = self.wd.val();
        self.upd.write_enable.next = self.w_we.q.val();
        self.host.write_clock.next = self.clock.val();
        self.host.write_address.next = self.w_addr.q.val();
        self.host.write_data.next = self.wd.val();
        self.host.write_enable.next = self.w_we.q.val();
        // Overflow counter: a clear sweep zeroes it; otherwise an overflow event counts, up to
        // all ones. `lo_en` / `hi_en` are those conditions, registered (see the fields).
        if self.lo_en.q.val() {
            if self.busy_r.q.val() {
                self.ovf_lo.d.next = 0.into();
                self.lo_full.d.next = false;
                self.ovf_max.d.next = false;
                self.lo_near.d.next = false;
            } else {
                self.ovf_lo.d.next = self.ovf_lo.q.val() + 1;
                self.lo_full.d.next = self.lo_near.q.val();
                self.ovf_max.d.next = self.hi_full.q.val() & self.lo_near.q.val();
                self.lo_near.d.next = self.ovf_lo.q.val() == self.lo_before_top.val();
            }
        }
        if self.hi_en.q.val() {
            if self.busy_r.q.val() {
                self.ovf_hi.d.next = 0.into();
                self.hi_full.d.next = false;
            } else {
                self.ovf_hi.d.next = self.ovf_hi.q.val() + 1;
                self.hi_full.d.next = self.ovf_hi.q.val() == self.hi_before_top.val();
            }
        }
        // Clear sweep.
        self.busy_next.next = self.busy_r.q.val();
        if self.clear.val() {
            self.busy_next.next = true;
            self.clr.d.next = 0.into();
        } else if self.busy_r.q.val() {
            self.clr.d.next = self.clr.q.val() + 1;
            if self.clr_last.q.val() {
                self.busy_next.next = false;
            }
        }
        self.clr_last.d.next = !self.clear.val() & self.busy_r.q.val() & (self.clr.q.val() == self.clr_before_last.val());
        self.busy_r.d.next = self.busy_next.val();
        // The next `ovf_max` and `lo_full` as the counter above sets them, and the next enables.
        self.ovf_max_next.next = self.ovf_max.q.val();
        self.lo_full_next.next = self.lo_full.q.val();
        if self.lo_en.q.val() {
            self.ovf_max_next.next = !self.busy_r.q.val() & self.hi_full.q.val() & self.lo_near.q.val();
            self.lo_full_next.next = !self.busy_r.q.val() & self.lo_near.q.val();
        }
        self.lo_en.d.next = self.busy_next.val() | (self.ovf_ev_next.val() & !self.ovf_max_next.val());
        self.hi_en.d.next =
            self.busy_next.val() | (self.ovf_ev_next.val() & !self.ovf_max_next.val() & self.lo_full_next.val());
        // Outputs.
        self.host.read_clock.next = self.rd_clock.val();
        self.host.read_address.next = self.rd_addr.val();
        self.rd_data.next = self.host.read_data.val();
        self.overflow.next = (bit_cast::<HIST_COUNT_BITS, 16>(self.ovf_hi.q.val()) << self.sh16.val())
            | bit_cast::<HIST_COUNT_BITS, 16>(self.ovf_lo.q.val());
        self.busy.next = self.busy_r.q.val() | self.w_clear.q.val();
    }
}

/// The histogram's inputs in one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramIn {
    /// Channel events (bit c = channel c).
    pub hits: u8,
    /// Start channel number (0..=7).
    pub start_ch: u8,
    /// Stop channel number (0..=7).
    pub stop_ch: u8,
    /// Stop delay, in ticks.
    pub offset: u8,
    /// Bin width `2^shift` ticks (0..=15).
    pub shift: u8,
    /// Count stops.
    pub enable: bool,
    /// Clear strobe.
    pub clear: bool,
    /// Bin to read.
    pub rd_addr: u16,
}

/// What the histogram shows in one tick (all registered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramOut {
    /// Count of the bin read in the previous tick.
    pub rd_data: u32,
    /// Out-of-range stops.
    pub overflow: u32,
    /// Clear sweep running.
    pub busy: bool,
}

/// Bit-exact, cycle-accurate reference model of [`Histogram`].
///
/// It counts into the bins directly when a stop reaches the write stage, so it has no
/// forwarding: that the gateware, which reads counts from a RAM three ticks earlier, matches
/// it is the check of the gateware's forwarding.
#[derive(Clone, Debug)]
pub struct HistogramModel {
    channels: usize,
    bin_bits: usize,
    bins: Vec<u32>,
    dl: [bool; 256],
    ptr: u8,
    st1: bool,
    sp1: bool,
    st2: bool,
    st3: bool,
    dl_rd: bool,
    left: u16,
    mask: u16,
    age: u16,
    aov: bool,
    seen: bool,
    stop_b: bool,
    ev: bool,
    ovf_ev: bool,
    bin: u16,
    m_valid: bool,
    m_bin: u16,
    c_valid: bool,
    c_bin: u16,
    c_two: bool,
    /// The write of stage W: (bin, increment); increment 0 is a clear's zero.
    w_op: Option<(u16, u32)>,
    ovf: u32,
    busy: bool,
    clr: u16,
    rd: u32,
}

impl HistogramModel {
    /// The histogram of `channels` channels and `2^bin_bits` bins in its power-on state.
    ///
    /// # Panics
    /// If `channels` is not in 1..=8 or `bin_bits` not in 1..=12.
    pub fn new(channels: usize, bin_bits: usize) -> Self {
        assert!((1..=8).contains(&channels) && (1..=12).contains(&bin_bits));
        Self {
            channels,
            bin_bits,
            bins: vec![0; 1 << bin_bits],
            dl: [false; 256],
            ptr: 0,
            st1: false,
            sp1: false,
            st2: false,
            st3: false,
            dl_rd: false,
            left: 0,
            mask: 0,
            age: 0,
            aov: false,
            seen: false,
            stop_b: false,
            ev: false,
            ovf_ev: false,
            bin: 0,
            m_valid: false,
            m_bin: 0,
            c_valid: false,
            c_bin: 0,
            c_two: false,
            w_op: None,
            ovf: 0,
            busy: false,
            clr: 0,
            rd: 0,
        }
    }

    /// The registered outputs during the current tick.
    pub fn outputs(&self) -> HistogramOut {
        HistogramOut { rd_data: self.rd, overflow: self.ovf, busy: self.busy || matches!(self.w_op, Some((_, 0))) }
    }

    /// The counts as the gateware holds them (its RAM).
    pub fn bins(&self) -> &[u32] {
        &self.bins
    }

    /// One tick with inputs `x`; returns the outputs shown during the tick.
    pub fn step(&mut self, x: &HistogramIn) -> HistogramOut {
        let out = self.outputs();
        let amax = (1u16 << self.bin_bits) - 1;
        let sel = |ch: u8| (ch as usize) < self.channels && x.hits & (1 << ch) != 0;
        let (st1, sp1) = (sel(x.start_ch), sel(x.stop_ch));
        // Stop delay line: read before write.
        let dl_rd = self.dl[self.ptr.wrapping_sub(x.offset).wrapping_sub(1) as usize];
        self.dl[self.ptr as usize] = self.sp1;
        self.ptr = self.ptr.wrapping_add(1);
        // Time since start.
        let mask = (1u16 << (x.shift & 15)) - 1;
        let (left, mut age, mut aov, seen);
        if self.st3 {
            (left, age, aov, seen) = (self.mask, 0, false, true);
        } else {
            (age, aov, seen) = (self.age, self.aov, self.seen);
            if self.left == 0 {
                left = self.mask;
                age = (self.age + 1) & amax;
                aov |= self.age == amax;
            } else {
                left = self.left - 1;
            }
        }
        let stop_b = self.dl_rd & x.enable;
        let ev = self.stop_b && self.seen && !self.aov;
        let ovf_ev = self.stop_b && (!self.seen || self.aov);
        // The read port sees the RAM before this tick's write.
        let rd = self.bins.get(x.rd_addr as usize & amax as usize).copied().unwrap_or(0);
        // Stage W: the write that stage C decided in the previous tick.
        let w_clear = matches!(self.w_op, Some((_, 0)));
        match self.w_op {
            Some((a, 0)) => self.bins[a as usize] = 0,
            Some((a, k)) => {
                let b = &mut self.bins[a as usize];
                *b = b.saturating_add(k);
            }
            None => {}
        }
        let w_op = if self.busy {
            Some((self.clr, 0))
        } else if self.c_valid && !w_clear {
            Some((self.c_bin, 1 + u32::from(self.c_two)))
        } else {
            None
        };
        // A stop in the same bin as the one just ahead merges into it.
        let merge = self.ev && self.m_valid && self.bin == self.m_bin;
        let ovf = if self.busy {
            0
        } else if self.ovf_ev && self.ovf != HIST_COUNT_MAX {
            self.ovf + 1
        } else {
            self.ovf
        };
        let (busy, clr) = if x.clear {
            (true, 0)
        } else if self.busy {
            (self.clr != amax, (self.clr + 1) & amax)
        } else {
            (false, self.clr)
        };
        self.w_op = w_op;
        self.c_valid = self.m_valid;
        self.c_bin = self.m_bin;
        self.c_two = merge;
        self.m_valid = self.ev && !merge;
        self.m_bin = self.bin;
        self.ev = ev;
        self.ovf_ev = ovf_ev;
        self.bin = self.age;
        self.stop_b = stop_b;
        (self.left, self.mask, self.age, self.aov, self.seen) = (left, mask, age, aov, seen);
        self.st3 = self.st2;
        self.st2 = self.st1;
        self.dl_rd = dl_rd;
        (self.st1, self.sp1) = (st1, sp1);
        (self.ovf, self.busy, self.clr, self.rd) = (ovf, busy, clr, rd);
        out
    }
}

/// What an ideal start–stop histogram (no pipeline) counts for a list of events: `starts`
/// and `stops` are event ticks (sorted), and the result is (bins, overflow), with the same Δ,
/// binning and overflow rules as [`Histogram`]. For checks of the semantics and for the host.
pub fn ideal_histogram(starts: &[u64], stops: &[u64], offset: u64, shift: u32, bin_bits: usize) -> (Vec<u64>, u64) {
    let mut bins = vec![0u64; 1 << bin_bits];
    let mut overflow = 0;
    let mut i = 0;
    for &s in stops {
        let t = s + offset;
        while i < starts.len() && starts[i] <= t {
            i += 1;
        }
        if i == 0 {
            overflow += 1;
            continue;
        }
        let b = ((t - starts[i - 1]) >> shift) as usize;
        match bins.get_mut(b) {
            Some(c) => *c += 1,
            None => overflow += 1,
        }
    }
    (bins, overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const N: usize = 5;
    const A: usize = 6;

    /// Runs the model until the pipeline has drained (no input events).
    fn drain(m: &mut HistogramModel, x: &HistogramIn) {
        let idle = HistogramIn { hits: 0, clear: false, ..*x };
        for _ in 0..300 + HIST_LATENCY as usize {
            m.step(&idle);
        }
    }

    #[test]
    fn histogram_synthesizes() {
        let mut uut = Histogram::<N, 9>::default();
        uut.connect_all();
        yosys_validate("histogram", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn model_matches_ideal_histogram() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for &(offset, shift) in &[(0u8, 0u8), (20, 0), (37, 2), (255, 3), (3, 15)] {
            let x = HistogramIn { start_ch: 1, stop_ch: 3, offset, shift, enable: true, ..Default::default() };
            let mut m = HistogramModel::new(N, A);
            let (mut starts, mut stops) = (Vec::new(), Vec::new());
            for t in 0..20_000u64 {
                let mut hits = 0u8;
                if rng.gen_bool(0.03) {
                    hits |= 1 << 1;
                    starts.push(t);
                }
                if rng.gen_bool(0.05) {
                    hits |= 1 << 3;
                    stops.push(t);
                }
                hits |= rng.gen::<u8>() & 0b10101;
                m.step(&HistogramIn { hits, ..x });
            }
            drain(&mut m, &x);
            let (bins, overflow) = ideal_histogram(&starts, &stops, offset as u64, shift as u32, A);
            let got: Vec<u64> = m.bins().iter().map(|&b| b as u64).collect();
            assert_eq!(got, bins, "offset {offset} shift {shift}");
            assert_eq!(m.outputs().overflow as u64, overflow, "offset {offset} shift {shift}");
            assert!(bins.iter().sum::<u64>() > 100);
        }
    }

    #[test]
    fn clear_zeroes_bins_and_takes_one_tick_per_bin() {
        let x = HistogramIn { start_ch: 0, stop_ch: 0, offset: 5, enable: true, ..Default::default() };
        let mut m = HistogramModel::new(N, A);
        for t in 0..2000 {
            m.step(&HistogramIn { hits: (t % 10 == 0) as u8, ..x });
        }
        drain(&mut m, &x);
        assert_eq!(m.bins()[5], 200, "each event is a start and, delayed by 5, a stop");
        assert_eq!(m.bins().iter().sum::<u32>(), 200);
        assert_eq!(m.outputs().overflow, 0);
        m.step(&HistogramIn { clear: true, ..x });
        let mut busy_ticks = 0;
        while m.step(&x).busy {
            busy_ticks += 1;
        }
        // One bin per tick, and one more tick until the last zero is written.
        assert_eq!(busy_ticks, (1 << A) + 1);
        assert!(m.bins().iter().all(|&b| b == 0));
        assert_eq!(m.outputs().overflow, 0);
    }

    #[test]
    fn latency_to_the_read_port() {
        let offset = 13u8;
        let x = HistogramIn { start_ch: 0, stop_ch: 1, offset, enable: true, rd_addr: 13, ..Default::default() };
        let mut m = HistogramModel::new(N, A);
        let t0 = 50u64;
        for t in 0..200u64 {
            let out = m.step(&HistogramIn { hits: if t == t0 { 0b11 } else { 0 }, ..x });
            // The read presented in tick t shows at t + 1.
            let visible = t >= t0 + offset as u64 + HIST_LATENCY + 1;
            assert_eq!(out.rd_data, visible as u32, "tick {t}");
        }
    }

    #[test]
    fn counts_saturate() {
        let mut m = HistogramModel::new(N, A);
        m.bins[0] = HIST_COUNT_MAX - 3;
        let x = HistogramIn { start_ch: 2, stop_ch: 2, enable: true, ..Default::default() };
        for _ in 0..50 {
            m.step(&HistogramIn { hits: 0b100, ..x });
        }
        drain(&mut m, &x);
        assert_eq!(m.bins()[0], HIST_COUNT_MAX);
    }

    /// The rust-hdl block against the model, with stops every tick into few bins so that the
    /// forwarding path is exercised, then random traffic, a clear and reads.
    #[test]
    fn rust_hdl_block_matches_model() {
        let mut uut = Histogram::<N, A>::default();
        uut.connect_all();
        let mut m = HistogramModel::new(N, A);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut x = HistogramIn { start_ch: 0, stop_ch: 1, offset: 2, shift: 0, enable: true, ..Default::default() };
        let mut counted = 0u64;
        for t in 0..6000u32 {
            x.hits = match t {
                // Back-to-back stops, same bin: start and stop together every tick (Δ = 2).
                0..=499 => 0b11,
                // One start, then a stop every tick: consecutive bins, then overflow.
                500..=1499 => ((t == 500) as u8) | 0b10,
                _ => rng.gen::<u8>() & rng.gen::<u8>() & 0x1f,
            };
            if t == 3000 {
                x.shift = 2;
                x.offset = 9;
            }
            x.clear = t == 4000 || t == 4010;
            x.rd_addr = rng.gen_range(0..1 << A);
            counted += step_both(&mut uut, &mut m, &x, t).rd_data as u64;
        }
        assert!(counted > 1000);
    }

    /// A clear that restarts a sweep in each of its last ticks (and just after it), with stops
    /// coming in: the block against the model in every tick (`clr_last` must not end the
    /// restarted sweep).
    #[test]
    fn rust_hdl_clear_restarts_at_the_end_of_a_sweep() {
        let mut uut = Histogram::<N, A>::default();
        uut.connect_all();
        let mut m = HistogramModel::new(N, A);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut x = HistogramIn { start_ch: 0, stop_ch: 1, offset: 2, shift: 0, enable: true, ..Default::default() };
        let bins = 1u32 << A;
        let mut t = 0u32;
        let mut busy_ticks = 0;
        for late in [0u32, 1, 2, 3, 4] {
            // A sweep started by a clear (the first ticks of the block also sweep), then a
            // second clear `bins - late` ticks later, then quiet until both sweeps are over.
            let first = t + 20;
            let second = first + bins - late;
            while t < second + 2 * bins + 20 {
                x.hits = rng.gen::<u8>() & rng.gen::<u8>() & 0x1f;
                x.clear = t == first || t == second;
                x.rd_addr = rng.gen_range(0..bins as u16);
                busy_ticks += step_both(&mut uut, &mut m, &x, t).busy as u32;
                t += 1;
            }
        }
        assert!(busy_ticks > 5 * 2 * (bins - 4), "{busy_ticks} busy ticks");
    }

    /// One tick of the rust-hdl block and the model with inputs `x`; asserts that their
    /// outputs agree and returns them.
    fn step_both(uut: &mut Histogram<N, A>, m: &mut HistogramModel, x: &HistogramIn, t: u32) -> HistogramOut {
        uut.hits.next = (x.hits as u64).into();
        uut.start_ch.next = (x.start_ch as u64).into();
        uut.stop_ch.next = (x.stop_ch as u64).into();
        uut.offset.next = (x.offset as u64).into();
        uut.shift.next = (x.shift as u64).into();
        uut.enable.next = x.enable;
        uut.clear.next = x.clear;
        uut.rd_addr.next = (x.rd_addr as u64).into();
        uut.clock.next = Clock::from(false);
        uut.rd_clock.next = Clock::from(false);
        simulate(uut, 1000);
        let want = m.step(x);
        let got = HistogramOut {
            rd_data: uut.rd_data.val().to_u32(),
            overflow: uut.overflow.val().to_u32(),
            busy: uut.busy.val(),
        };
        assert_eq!(got, want, "tick {t}");
        uut.clock.next = Clock::from(true);
        uut.rd_clock.next = Clock::from(true);
        simulate(uut, 1000);
        want
    }

    /// The overflow count carries from its low 16-bit half into its high half: stops with no
    /// start (each one an overflow) for more than 2^16 ticks, some of them spaced out around
    /// the carry, the block checked against the model in every tick.
    #[test]
    fn rust_hdl_overflow_count_carries_into_the_high_half() {
        let mut uut = Histogram::<N, A>::default();
        uut.connect_all();
        let mut m = HistogramModel::new(N, A);
        let x = HistogramIn { start_ch: 0, stop_ch: 1, enable: true, ..Default::default() };
        let mut last = 0;
        for t in 0..66_000u32 {
            let stop = !(65_520..65_560).contains(&t) || t % 3 == 0;
            last = step_both(&mut uut, &mut m, &HistogramIn { hits: (stop as u8) << 1, ..x }, t).overflow;
        }
        assert!(last > 1 << 16, "{last}");
    }

    /// The overflow count saturates at 2^32 − 1 and carries at every 2^16 on the way: counts
    /// preloaded just below a carry or the limit, overflow stops (no start) every tick or every
    /// other tick, checked against the model in every tick; then a clear zeroes it.
    #[test]
    fn rust_hdl_overflow_count_saturates() {
        for (start, every) in [(HIST_COUNT_MAX - 5, 1u32), (HIST_COUNT_MAX - 3, 2), (0xFFFE_FFFD, 1), (0x0001_FFFE, 2)] {
            let mut uut = Histogram::<N, A>::with_overflow(start);
            uut.connect_all();
            let mut m = HistogramModel::new(N, A);
            m.ovf = start;
            let x = HistogramIn { start_ch: 0, stop_ch: 1, enable: true, ..Default::default() };
            let mut stops = 0u32;
            for t in 0..40 {
                let hit = t % every == 0;
                stops += u32::from(hit);
                step_both(&mut uut, &mut m, &HistogramIn { hits: u8::from(hit) << 1, ..x }, t);
            }
            // (Stops reach the counter a few ticks after they enter.)
            let last = (40..50).map(|t| step_both(&mut uut, &mut m, &x, t).overflow).last();
            assert_eq!(last, Some(start.saturating_add(stops)), "from {start:#x}, every {every}");
            for t in 50..50 + (1 << A) + 8 {
                step_both(&mut uut, &mut m, &HistogramIn { clear: t == 50, ..x }, t);
            }
            assert_eq!(uut.overflow.val().to_u32(), 0);
        }
    }

    /// A count carries from its low 16-bit half into its high half (W picks the high half by
    /// the low half's registered carry): bins preloaded 1 to 3 below a multiple of 2^16, merged
    /// stops (adding 2) and single ones, checked against the model in every tick and read back.
    #[test]
    fn rust_hdl_count_carries_into_the_high_half() {
        for (start, every) in [(0x0000_FFFDu32, 1u32), (0x1234_FFFE, 1), (0x7FFF_FFFF, 3), (0x0003_FFFF, 2)] {
            let mut uut = Histogram::<N, A>::with_counts(start);
            uut.connect_all();
            let mut m = HistogramModel::new(N, A);
            m.bins.iter_mut().for_each(|b| *b = start);
            let x = HistogramIn { start_ch: 2, stop_ch: 2, enable: true, ..Default::default() };
            let mut stops = 0;
            for t in 0..60 {
                let hit = t % every == 0;
                stops += u32::from(hit);
                step_both(&mut uut, &mut m, &HistogramIn { hits: u8::from(hit) << 2, ..x }, t);
            }
            for t in 60..70 {
                step_both(&mut uut, &mut m, &x, t);
            }
            assert_eq!(step_both(&mut uut, &mut m, &x, 70).rd_data, start + stops, "from {start:#x}, every {every}");
        }
    }

    /// The block saturates at 2^32 − 1 also when merged stops add 2 across the limit, and
    /// on single stops: bins preloaded 2 to 4 below the limit, stops every tick into bin 0
    /// (merged pairs) or every third tick (single stops), read back through the read port.
    #[test]
    fn rust_hdl_block_saturates() {
        for (start, every) in [(HIST_COUNT_MAX - 3, 1u32), (HIST_COUNT_MAX - 4, 1), (HIST_COUNT_MAX - 2, 3)] {
            let mut uut = Histogram::<N, A>::with_counts(start);
            uut.connect_all();
            let mut m = HistogramModel::new(N, A);
            m.bins.iter_mut().for_each(|b| *b = start);
            let x = HistogramIn { start_ch: 2, stop_ch: 2, enable: true, ..Default::default() };
            for t in 0..100 {
                step_both(&mut uut, &mut m, &HistogramIn { hits: ((t % every == 0) as u8) << 2, ..x }, t);
            }
            for t in 100..110 {
                step_both(&mut uut, &mut m, &x, t);
            }
            assert_eq!(step_both(&mut uut, &mut m, &x, 110).rd_data, HIST_COUNT_MAX, "from {start}, every {every}");
        }
    }
}
