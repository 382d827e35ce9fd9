//! The multi-channel time tagger: channel front ends, time base, entry writer, event FIFO and
//! record formatter.
//!
//! Record format: [`crate::tagfmt`]. Exact cycle behaviour, and the reference model the
//! gateware is checked against: [`crate::tagger_model`]. The design keeps every decision in
//! the per-tick path to a few LUT levels over registered flags, so the tagger clock can run at
//! 150 MHz on an iCE40 HX; the formatter, which only has to keep up with the host, takes
//! three ticks per entry.

use rust_hdl::prelude::*;

use crate::channel::{ChannelFrontEnd, DEAD_TIME_BITS};
use crate::entry_fifo::EntryFifo;
use crate::tagfmt::{
    EPOCH_BITS, KIND_EPOCH, KIND_EVENT, KIND_LOST, KIND_SHIFT, LOST_BITS, LOST_SATURATED, MASK_SHIFT,
    MAX_CHANNELS, RECORD_BITS, TIME_LOW_BITS,
};
use crate::tagger_model::EVENT_FIFO_DEPTH;

/// Address width of the event FIFO (log2 of [`EVENT_FIFO_DEPTH`]).
pub const FIFO_ADDR_BITS: usize = 8;
/// Width of the FIFO occupancy output, in bits (entries).
pub const OCCUPANCY_BITS: usize = FIFO_ADDR_BITS + 1;
/// Width of an event-FIFO entry: kind (2), epoch (30), record (32).
pub const ENTRY_BITS: usize = 64;
/// Width of each half of the time base's epoch counter, in bits.
const EPOCH_HALF_BITS: usize = EPOCH_BITS / 2;

/// The event FIFO: [`EVENT_FIFO_DEPTH`] entries of [`ENTRY_BITS`] bits in block RAM.
pub type EventFifo = EntryFifo<Bits<ENTRY_BITS>, FIFO_ADDR_BITS>;

/// An `N`-channel time tagger (1 ≤ N ≤ 8): [`ChannelFrontEnd`]s feeding a [`TagPipeline`].
///
/// Inputs are the asynchronous detector `pins` and the per-channel configuration; the output
/// is a one-record read port (`read`, `data_out`, `empty`): `data_out` holds the next record
/// while `empty` is low, and a tick with `read` high takes it.
#[derive(LogicBlock)]
pub struct TimeTagger<const N: usize> {
    /// Tagger clock; one tick is the time unit of every tag.
    pub clock: Signal<In, Clock>,
    /// Detector inputs, asynchronous (bit c = channel c).
    pub pins: Signal<In, Bits<N>>,
    /// Channel enable mask.
    pub enable: Signal<In, Bits<N>>,
    /// Falling-edge select mask (1 = tag falling edges).
    pub falling: Signal<In, Bits<N>>,
    /// Dead time per channel, in ticks.
    pub dead_time: [Signal<In, Bits<DEAD_TIME_BITS>>; N],
    /// Read strobe: takes `data_out` when `empty` is low.
    pub read: Signal<In, Bit>,
    /// The next record (valid while `empty` is low).
    pub data_out: Signal<Out, Bits<RECORD_BITS>>,
    /// No record ready.
    pub empty: Signal<Out, Bit>,
    /// Entries in the event FIFO, as the writer counts them.
    pub occupancy: Signal<Out, Bits<OCCUPANCY_BITS>>,
    channels: [ChannelFrontEnd; N],
    pipe: TagPipeline<N>,
    fire: Signal<Local, Bits<N>>,
}

impl<const N: usize> Default for TimeTagger<N> {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            pins: Default::default(),
            enable: Default::default(),
            falling: Default::default(),
            dead_time: array_init::array_init(|_| Default::default()),
            read: Default::default(),
            data_out: Default::default(),
            empty: Default::default(),
            occupancy: Default::default(),
            channels: array_init::array_init(|_| Default::default()),
            pipe: Default::default(),
            fire: Default::default(),
        }
    }
}

impl<const N: usize> Logic for TimeTagger<N> {
    #[hdl_gen]
    fn update(&mut self) {
        self.fire.next = 0.into();
        for i in 0..N {
            self.channels[i].clock.next = self.clock.val();
            self.channels[i].pin.next = self.pins.val().get_bit(i);
            self.channels[i].enable.next = self.enable.val().get_bit(i);
            self.channels[i].falling.next = self.falling.val().get_bit(i);
            self.channels[i].dead_time.next = self.dead_time[i].val();
            self.fire.next = self.fire.val().replace_bit(i, self.channels[i].fire.val());
        }
        self.pipe.clock.next = self.clock.val();
        self.pipe.hits.next = self.fire.val();
        self.pipe.read.next = self.read.val();
        self.data_out.next = self.pipe.data_out.val();
        self.empty.next = self.pipe.empty.val();
        self.occupancy.next = self.pipe.occupancy.val();
    }
}

/// The tagger behind the channel front ends: time base, entry writer, event FIFO and record
/// formatter, fed with the per-tick channel event mask `hits` (bit c = channel c; the
/// front ends' `fire` outputs, or a filtered version of them). A hit in tick `t` is tagged
/// with time `t` (the time base's count in that tick).
#[derive(LogicBlock)]
pub struct TagPipeline<const N: usize> {
    /// Tagger clock; one tick is the time unit of every tag.
    pub clock: Signal<In, Clock>,
    /// Channel events in this tick (bit c = channel c).
    pub hits: Signal<In, Bits<N>>,
    /// Read strobe: takes `data_out` when `empty` is low.
    pub read: Signal<In, Bit>,
    /// The next record (valid while `empty` is low).
    pub data_out: Signal<Out, Bits<RECORD_BITS>>,
    /// No record ready.
    pub empty: Signal<Out, Bit>,
    /// Entries in the event FIFO, as the writer counts them.
    pub occupancy: Signal<Out, Bits<OCCUPANCY_BITS>>,
    // Time base. The pipeline has a fixed latency, so the time stamp of the events in stage 2
    // is the tick count of three ticks earlier: rather than a counter and three registered
    // copies of it, one counter (`ts2_low`, `ts2_epoch`) runs three ticks behind (it starts
    // counting in tick 3, `start`). `twrap` is high in the last tick of its epoch. `run` is
    // `start` all ones, registered (set the tick `start` reaches 3): the counter's enable is
    // one flip-flop, not a LUT of two (a failing tick path of the HX8K core).
    start: DFF<Bits<2>>,
    run: DFF<Bit>,
    twrap: DFF<Bit>,
    // Stage 1: fire mask.
    hit1: DFF<Bits<MAX_CHANNELS>>,
    // Stage 1b: partial popcounts (4 channels each, one LUT level per bit).
    hit1b: DFF<Bits<MAX_CHANNELS>>,
    pop_lo: DFF<Bits<3>>,
    pop_hi: DFF<Bits<3>>,
    any_lo: DFF<Bit>,
    any_hi: DFF<Bit>,
    // Stage 2: what the entry writer sees.
    hit2: DFF<Bits<MAX_CHANNELS>>,
    hit2_n: DFF<Bits<4>>,
    hit2_any: DFF<Bit>,
    ts2_low: DFFWithInit<Bits<TIME_LOW_BITS>>,
    // The epoch (`ts2_epoch`) as two 15-bit halves: the high half counts when the low half
    // wraps, known from a registered flag (`ep_lo_full`: the low half is all ones) and a
    // registered enable (`ep_hi_en`: `twrap` with `ep_lo_full`, set from `twrap`'s next value;
    // `ep_lo_full` cannot change in between, as `twrap` pulses are 2^22 ticks apart), so the
    // increment is two 15-bit carry chains side by side instead of one of 30 (a failing tick
    // path of the HX8K core). Same count.
    ep_lo: DFFWithInit<Bits<EPOCH_HALF_BITS>>,
    ep_hi: DFFWithInit<Bits<EPOCH_HALF_BITS>>,
    ep_lo_full: DFFWithInit<Bit>,
    ep_hi_en: DFFWithInit<Bit>,
    ts2_epoch: Signal<Local, Bits<EPOCH_BITS>>,
    twrap_next: Signal<Local, Bit>,
    boundary: DFF<Bit>,
    room: DFF<Bit>,
    // The entry writer's decisions, registered from the next values of `room`, `lost_nz` and
    // `hit2_any` (so each equals its expression of those three in the same tick): one flip-flop
    // per decision drives the entry multiplexer and the lost counter's enable, instead of a LUT
    // tree over three flip-flops of ~30 loads each (the tagger's failing tick paths on the
    // HX8K core). `sel_lost` = room & lost_nz; `sel_event` = room & !lost_nz & hit2_any;
    // `lost_acc` = !room & hit2_any.
    sel_lost: DFF<Bit>,
    sel_event: DFF<Bit>,
    lost_acc: DFF<Bit>,
    room_next: Signal<Local, Bit>,
    lost_nz_next: Signal<Local, Bit>,
    hit2_any_next: Signal<Local, Bit>,
    // Entry writer.
    lost: DFF<Bits<LOST_BITS>>,
    lost_nz: DFF<Bit>,
    started: DFF<Bit>,
    occ: DFF<Bits<OCCUPANCY_BITS>>,
    fifo: EventFifo,
    // Registered FIFO write.
    wq_valid: DFF<Bit>,
    wq_data: DFF<Bits<ENTRY_BITS>>,
    // Record formatter.
    ent: DFF<Bits<ENTRY_BITS>>,
    // One-hot formatter phase (bit k = phase k, 1..=4); `fmt_busy` is low in phase 0.
    phase: DFF<Bits<5>>,
    fmt_busy: DFF<Bit>,
    // Registered epoch comparison, split in halves to keep each compare shallow.
    epoch_eq_lo: DFF<Bit>,
    epoch_eq_hi: DFF<Bit>,
    out: DFF<Bits<RECORD_BITS>>,
    out_valid: DFF<Bit>,
    last_epoch: DFF<Bits<EPOCH_BITS>>,
    epoch_valid: DFF<Bit>,
    // Combinational helpers.
    fire: Signal<Local, Bits<MAX_CHANNELS>>,
    fire_lo: Signal<Local, Bits<3>>,
    fire_hi: Signal<Local, Bits<3>>,
    wr: Signal<Local, Bit>,
    wdata: Signal<Local, Bits<ENTRY_BITS>>,
    fifo_rd: Signal<Local, Bit>,
    ent_epoch: Signal<Local, Bits<EPOCH_BITS>>,
    // Constants from the one definition of the format.
    kind_event: Constant<Bits<RECORD_BITS>>,
    kind_epoch: Constant<Bits<RECORD_BITS>>,
    kind_lost: Constant<Bits<RECORD_BITS>>,
    entry_event: Constant<Bits<ENTRY_BITS>>,
    entry_tick: Constant<Bits<ENTRY_BITS>>,
    entry_lost: Constant<Bits<ENTRY_BITS>>,
    entry_kind_shift: Constant<Bits<7>>,
    entry_epoch_shift: Constant<Bits<7>>,
    low_max: Constant<Bits<TIME_LOW_BITS>>,
    ep_lo_top: Constant<Bits<EPOCH_HALF_BITS>>,
    ep_half_shift: Constant<Bits<5>>,
    lost_max: Constant<Bits<LOST_BITS>>,
    lost_half: Constant<Bits<LOST_BITS>>,
    mask_shift: Constant<Bits<5>>,
}

/// A constant of any width from a `u64`.
fn konst<const B: usize>(x: u64) -> Constant<Bits<B>> {
    Constant::new(x.to_bits())
}

impl<const N: usize> Default for TagPipeline<N> {
    fn default() -> Self {
        assert!((1..=MAX_CHANNELS).contains(&N), "a tagger has 1..=8 channels");
        assert_eq!(1 << FIFO_ADDR_BITS, EVENT_FIFO_DEPTH);
        // The room flag's logic is written out for this depth.
        assert_eq!(EVENT_FIFO_DEPTH, 256);
        Self {
            clock: Default::default(),
            hits: Default::default(),
            read: Default::default(),
            data_out: Default::default(),
            empty: Default::default(),
            occupancy: Default::default(),
            start: Default::default(),
            run: Default::default(),
            twrap: Default::default(),
            hit1: Default::default(),
            hit1b: Default::default(),
            pop_lo: Default::default(),
            pop_hi: Default::default(),
            any_lo: Default::default(),
            any_hi: Default::default(),
            fire_lo: Default::default(),
            fire_hi: Default::default(),
            hit2: Default::default(),
            hit2_n: Default::default(),
            hit2_any: Default::default(),
            ts2_low: DFFWithInit::new(0u64.to_bits()),
            ep_lo: DFFWithInit::new(0u64.to_bits()),
            ep_hi: DFFWithInit::new(0u64.to_bits()),
            ep_lo_full: DFFWithInit::new(false),
            ep_hi_en: DFFWithInit::new(false),
            ts2_epoch: Default::default(),
            twrap_next: Default::default(),
            boundary: Default::default(),
            room: Default::default(),
            sel_lost: Default::default(),
            sel_event: Default::default(),
            lost_acc: Default::default(),
            room_next: Default::default(),
            lost_nz_next: Default::default(),
            hit2_any_next: Default::default(),
            lost: Default::default(),
            lost_nz: Default::default(),
            started: Default::default(),
            occ: Default::default(),
            fifo: Default::default(),
            wq_valid: Default::default(),
            wq_data: Default::default(),
            ent: Default::default(),
            phase: Default::default(),
            fmt_busy: Default::default(),
            epoch_eq_lo: Default::default(),
            epoch_eq_hi: Default::default(),
            out: Default::default(),
            out_valid: Default::default(),
            last_epoch: Default::default(),
            epoch_valid: Default::default(),
            fire: Default::default(),
            wr: Default::default(),
            wdata: Default::default(),
            fifo_rd: Default::default(),
            ent_epoch: Default::default(),
            kind_event: konst((KIND_EVENT as u64) << KIND_SHIFT),
            kind_epoch: konst((KIND_EPOCH as u64) << KIND_SHIFT),
            kind_lost: konst((KIND_LOST as u64) << KIND_SHIFT),
            entry_event: konst(crate::tagger_model::ENTRY_EVENT << 62),
            entry_tick: konst(crate::tagger_model::ENTRY_TICK << 62),
            entry_lost: konst(crate::tagger_model::ENTRY_LOST << 62),
            entry_kind_shift: konst(62),
            entry_epoch_shift: konst(32),
            low_max: konst((1u64 << TIME_LOW_BITS) - 2),
            ep_lo_top: konst((1u64 << EPOCH_HALF_BITS) - 2),
            ep_half_shift: konst(EPOCH_HALF_BITS as u64),
            lost_max: konst(LOST_SATURATED as u64),
            lost_half: konst(1u64 << (LOST_BITS - 1)),
            mask_shift: konst(MASK_SHIFT as u64),
        }
    }
}

impl<const N: usize> TagPipeline<N> {
    /// A tagger whose time base starts at epoch `epoch` and low count `low` (ticks) instead of
    /// zero, so that tests reach the epoch counter's carries (a new epoch every 2^22 ticks; the
    /// board cores use [`Default`]). A hit in tick `t` is then tagged with time
    /// `epoch · 2^22 + low + t`.
    pub fn with_time(epoch: u32, low: u32) -> Self {
        assert!(u64::from(epoch) < 1 << EPOCH_BITS && u64::from(low) < 1 << TIME_LOW_BITS);
        let half = (1u32 << EPOCH_HALF_BITS) - 1;
        Self {
            ts2_low: DFFWithInit::new(u64::from(low).to_bits()),
            ep_lo: DFFWithInit::new(u64::from(epoch & half).to_bits()),
            ep_hi: DFFWithInit::new(u64::from(epoch >> EPOCH_HALF_BITS).to_bits()),
            ep_lo_full: DFFWithInit::new(epoch & half == half),
            ..Default::default()
        }
    }
}

impl<const N: usize> Logic for TagPipeline<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, start, run, twrap, hit1, hit1b, pop_lo, pop_hi, any_lo, any_hi, hit2,
            hit2_n, hit2_any, ts2_low, ep_lo, ep_hi, ep_lo_full, ep_hi_en, boundary, room, sel_lost, sel_event, lost_acc, lost, lost_nz, started, occ,
            wq_valid, wq_data, ent, phase, fmt_busy, epoch_eq_lo, epoch_eq_hi, out, out_valid, last_epoch, epoch_valid
        );
        self.fifo.clock.next = self.clock.val();
        // Channel events → stage 1.
        self.fire.next = bit_cast::<MAX_CHANNELS, N>(self.hits.val());
        self.hit1.d.next = self.fire.val();
        // Time base: in tick t (t >= 3) `ts2` = t - 3, the time of the hits stage 2 holds (a
        // hit of tick t reaches stage 2 in tick t + 3); 0 before.
        if !self.start.q.val().all() {
            self.start.d.next = self.start.q.val() + 1;
        }
        self.run.d.next = self.run.q.val() | (self.start.q.val() == 2);
        if self.run.q.val() {
            self.ts2_low.d.next = self.ts2_low.q.val() + 1;
        }
        self.twrap_next.next = self.ts2_low.q.val() == self.low_max.val();
        self.twrap.d.next = self.twrap_next.val();
        if self.twrap.q.val() {
            self.ep_lo.d.next = self.ep_lo.q.val() + 1;
            self.ep_lo_full.d.next = self.ep_lo.q.val() == self.ep_lo_top.val();
        }
        if self.ep_hi_en.q.val() {
            self.ep_hi.d.next = self.ep_hi.q.val() + 1;
        }
        self.ep_hi_en.d.next = self.twrap_next.val() & self.ep_lo_full.q.val();
        self.ts2_epoch.next = (bit_cast::<EPOCH_BITS, EPOCH_HALF_BITS>(self.ep_hi.q.val()) << self.ep_half_shift.val())
            | bit_cast::<EPOCH_BITS, EPOCH_HALF_BITS>(self.ep_lo.q.val());
        // Stage 1b: popcounts of channels 0-3 and 4-7.
        self.fire_lo.next = 0.into();
        self.fire_hi.next = 0.into();
        for i in 0..N {
            if self.hit1.q.val().get_bit(i) {
                if i < 4 {
                    self.fire_lo.next = self.fire_lo.val() + 1;
                } else {
                    self.fire_hi.next = self.fire_hi.val() + 1;
                }
            }
        }
        self.hit1b.d.next = self.hit1.q.val();
        self.pop_lo.d.next = self.fire_lo.val();
        self.pop_hi.d.next = self.fire_hi.val();
        self.any_lo.d.next = self.hit1.q.val().get_bits::<4>(0).any();
        self.any_hi.d.next = self.hit1.q.val().get_bits::<4>(4).any();
        // Stage 2: popcount, any, boundary.
        self.hit2.d.next = self.hit1b.q.val();
        self.hit2_n.d.next = bit_cast::<4, 3>(self.pop_lo.q.val()) + bit_cast::<4, 3>(self.pop_hi.q.val());
        self.hit2_any_next.next = self.any_lo.q.val() | self.any_hi.q.val();
        self.hit2_any.d.next = self.hit2_any_next.val();
        // Room ⇔ occ ≤ depth − 4 (written out below), computed here for the writer's decisions.
        self.room_next.next = !(self.occ.q.val().get_bit(8)
            | (self.occ.q.val().get_bits::<6>(2).all() & self.occ.q.val().get_bits::<2>(0).any()));
        // The epoch boundary: ts2 entered a new epoch in this tick.
        self.boundary.d.next = self.twrap.q.val();
        // Entry writer: at most one entry per tick, chosen from registered flags. The first tick
        // with room always writes something, so `started` is simply "room was seen".
        self.started.d.next = self.started.q.val() | self.room.q.val();
        self.wr.next = false;
        self.wdata.next = self.entry_tick.val()
            | (bit_cast::<ENTRY_BITS, EPOCH_BITS>(self.ts2_epoch.val()) << self.entry_epoch_shift.val());
        if self.sel_lost.q.val() {
            self.wr.next = true;
            self.wdata.next = self.entry_lost.val()
                | (bit_cast::<ENTRY_BITS, EPOCH_BITS>(self.ts2_epoch.val()) << self.entry_epoch_shift.val())
                | bit_cast::<ENTRY_BITS, RECORD_BITS>(
                    self.kind_lost.val() | bit_cast::<RECORD_BITS, LOST_BITS>(self.lost.q.val()),
                );
            // An event in this tick starts the next lost count.
            self.lost.d.next = bit_cast::<LOST_BITS, 4>(self.hit2_n.q.val());
            self.lost_nz.d.next = self.hit2_any.q.val();
        } else if self.sel_event.q.val() {
            self.wr.next = true;
            self.wdata.next = self.entry_event.val()
                | (bit_cast::<ENTRY_BITS, EPOCH_BITS>(self.ts2_epoch.val()) << self.entry_epoch_shift.val())
                | bit_cast::<ENTRY_BITS, RECORD_BITS>(
                    self.kind_event.val()
                        | (bit_cast::<RECORD_BITS, MAX_CHANNELS>(self.hit2.q.val()) << self.mask_shift.val())
                        | bit_cast::<RECORD_BITS, TIME_LOW_BITS>(self.ts2_low.q.val()),
                );
        } else if self.room.q.val() & (self.boundary.q.val() | !self.started.q.val()) {
            // (room here means no lost count and no event: the branches above took those.)
            self.wr.next = true;
        } else if self.lost_acc.q.val() {
            self.lost_nz.d.next = true;
            if self.lost.q.val() >= self.lost_half.val() {
                self.lost.d.next = self.lost_max.val();
            } else {
                self.lost.d.next = self.lost.q.val() + bit_cast::<LOST_BITS, 4>(self.hit2_n.q.val());
            }
        }
        // The next `lost_nz` as the branches above set it, and the decisions of the next tick.
        self.lost_nz_next.next = self.lost_nz.q.val();
        if self.room.q.val() {
            if self.lost_nz.q.val() {
                self.lost_nz_next.next = self.hit2_any.q.val();
            }
        } else if self.hit2_any.q.val() {
            self.lost_nz_next.next = true;
        }
        self.sel_lost.d.next = self.room_next.val() & self.lost_nz_next.val();
        self.sel_event.d.next = self.room_next.val() & !self.lost_nz_next.val() & self.hit2_any_next.val();
        self.lost_acc.d.next = !self.room_next.val() & self.hit2_any_next.val();
        self.wq_valid.d.next = self.wr.val();
        self.wq_data.d.next = self.wdata.val();
        self.fifo.write.next = self.wq_valid.q.val();
        self.fifo.data_in.next = self.wq_data.q.val();
        // Occupancy and the registered room flag.
        self.fifo_rd.next = !self.fmt_busy.q.val() & self.fifo.nonempty.val();
        // Room ⇔ occ ≤ depth − 4 = 252 = 0_1111_1100b. Written as LUT logic, not a carry-chain
        // compare (the compare was the tagger's critical path at 150 MHz on the HX8K):
        // occ ≥ 253 ⇔ occ[8] | (occ[7:2] all ones & occ[1:0] ≠ 0). `Default` asserts the depth.
        self.room.d.next = self.room_next.val();
        if self.wq_valid.q.val() & !self.fifo_rd.val() {
            self.occ.d.next = self.occ.q.val() + 1;
        }
        if !self.wq_valid.q.val() & self.fifo_rd.val() {
            self.occ.d.next = self.occ.q.val() - 1;
        }
        self.occupancy.next = self.occ.q.val();
        // Record formatter: entry → (EPOCH record if the epoch is new) → entry's record.
        self.fifo.read.next = self.fifo_rd.val();
        self.empty.next = !self.out_valid.q.val();
        self.data_out.next = self.out.q.val();
        if self.read.val() & self.out_valid.q.val() {
            self.out_valid.d.next = false;
        }
        self.ent_epoch.next = bit_cast::<EPOCH_BITS, ENTRY_BITS>(self.ent.q.val() >> self.entry_epoch_shift.val());
        self.epoch_eq_lo.d.next =
            self.ent_epoch.val().get_bits::<15>(0) == self.last_epoch.q.val().get_bits::<15>(0);
        self.epoch_eq_hi.d.next =
            self.ent_epoch.val().get_bits::<15>(15) == self.last_epoch.q.val().get_bits::<15>(15);
        // Phases advance as a shift register; 3 and 4 wait for the read port to be free.
        if self.fifo_rd.val() {
            self.phase.d.next = 2.into();
            self.fmt_busy.d.next = true;
        } else if self.phase.q.val().get_bit(1)
            | self.phase.q.val().get_bit(2)
            | ((self.phase.q.val().get_bit(3) | self.phase.q.val().get_bit(4)) & !self.out_valid.q.val())
        {
            self.phase.d.next = self.phase.q.val() << 1;
        }
        if self.phase.q.val().get_bit(4) & !self.out_valid.q.val() {
            self.fmt_busy.d.next = false;
        }
        if self.phase.q.val().get_bit(1) {
            self.ent.d.next = self.fifo.data_out.val();
        }
        if self.phase.q.val().get_bit(3) & !self.out_valid.q.val() {
            if !self.epoch_valid.q.val() | !(self.epoch_eq_lo.q.val() & self.epoch_eq_hi.q.val()) {
                self.out.d.next = self.kind_epoch.val() | bit_cast::<RECORD_BITS, EPOCH_BITS>(self.ent_epoch.val());
                self.out_valid.d.next = true;
                self.last_epoch.d.next = self.ent_epoch.val();
                self.epoch_valid.d.next = true;
            }
        }
        if self.phase.q.val().get_bit(4) & !self.out_valid.q.val() {
            if (self.ent.q.val() >> self.entry_kind_shift.val()) != (self.entry_tick.val() >> self.entry_kind_shift.val()) {
                self.out.d.next = bit_cast::<RECORD_BITS, ENTRY_BITS>(self.ent.q.val());
                self.out_valid.d.next = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The epoch counter carries from its low half into its high half and wraps at 2^30: time
    /// bases preloaded a few ticks before the end of an epoch (and at its last ticks), one hit
    /// every 7 ticks; the records must give every hit its full time across the wrap, with
    /// exactly one EPOCH record for each of the two epochs.
    #[test]
    fn rust_hdl_epoch_carries_across_its_halves() {
        use crate::tagfmt::Record;
        const LOW: u64 = 1 << TIME_LOW_BITS;
        let cases = [5u32, 0x7FFF, 0x7FFE, 0x1234_7FFF, (1 << EPOCH_BITS) - 1].map(|e| (e, LOW - 30));
        for (epoch, low) in cases.into_iter().chain([(9, LOW - 4), (9, LOW - 6), (0x7FFF, LOW - 5)]) {
            let low = low as u32;
            let mut uut = TagPipeline::<2>::with_time(epoch, low);
            uut.connect_all();
            simulate(&mut uut, 1000);
            let (mut want, mut got, mut epochs) = (Vec::new(), Vec::new(), Vec::new());
            let mut cur_epoch = None;
            for t in 0..120u64 {
                let hit = t >= 3 && t < 80 && t % 7 == 0;
                if hit {
                    let time = (u64::from(epoch) * LOW + u64::from(low) + t) % (LOW << EPOCH_BITS);
                    want.push(time);
                }
                uut.hits.next = u64::from(hit).into();
                uut.read.next = !uut.empty.val();
                if !uut.empty.val() {
                    match Record::decode(uut.data_out.val().to_u32()).unwrap() {
                        Record::Epoch(e) => {
                            cur_epoch = Some(u64::from(e));
                            epochs.push(e);
                        }
                        Record::Event { time_low, .. } => got.push(cur_epoch.unwrap() * LOW + u64::from(time_low)),
                        Record::Lost(n) => panic!("lost {n}"),
                    }
                }
                uut.clock.next = Clock::from(true);
                simulate(&mut uut, 1000);
                uut.clock.next = Clock::from(false);
                simulate(&mut uut, 1000);
            }
            assert_eq!(got, want, "from epoch {epoch:#x}");
            // One EPOCH record per epoch entered, with no wrong one in between.
            assert_eq!(epochs, [epoch, (epoch + 1) % (1 << EPOCH_BITS)], "from epoch {epoch:#x}");
        }
    }

    /// Long overflows: five channels pulsing every other tick while nothing is read for 2 600
    /// ticks, then a drain and a second overflow, the rust-hdl block against the cycle model
    /// in every tick; one LOST record must count more than 3 · 2^10 events.
    #[test]
    fn rust_hdl_long_overflows_match_model() {
        long_overflow_against_model(8_000, 3_000..5_000, 2_600..5_000, 7_000, 3 << 10);
    }

    /// An overflow of about 50 000 events (five channels every other tick, nothing read for
    /// 20 000 ticks, then a quiet drain), against the cycle model in every tick: the lost count
    /// passes 2^15 and 2^16, so its carry chain is exercised past the low bits.
    #[test]
    fn rust_hdl_lost_count_past_two_to_the_fifteen_matches_model() {
        long_overflow_against_model(23_000, 20_000..23_000, 20_000..23_000, 23_000, 1 << 15);
    }

    /// Five channels pulse every other tick except in `quiet`; nothing is read outside `read`
    /// until `read_again`. The rust-hdl tagger must equal the cycle model in every tick, and
    /// the largest LOST record must exceed `least`.
    fn long_overflow_against_model(
        ticks: u32,
        quiet: std::ops::Range<u32>,
        read: std::ops::Range<u32>,
        read_again: u32,
        least: u32,
    ) {
        use crate::tagfmt::Record;
        use crate::tagger_model::{ReadPort, TaggerConfig, TaggerModel};
        let mut uut = TimeTagger::<5>::default();
        uut.connect_all();
        uut.enable.next = 0x1f.into();
        simulate(&mut uut, 1000);
        let mut m = TaggerModel::new(5, TaggerConfig::default());
        let mut most = 0;
        for t in 0..ticks {
            let pins: u8 = if t % 2 == 0 && !quiet.contains(&t) { 0x1f } else { 0 };
            let read = read.contains(&t) || t >= read_again;
            uut.pins.next = u64::from(pins).into();
            uut.read.next = read;
            let empty = uut.empty.val();
            let got = ReadPort { empty, popped: (read && !empty).then(|| uut.data_out.val().to_u32()) };
            assert_eq!(got, m.step(pins, read), "tick {t}");
            if let Some(Ok(Record::Lost(n))) = got.popped.map(Record::decode) {
                most = most.max(n);
            }
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
        }
        assert!(most > least, "largest LOST record {most}, expected more than {least}");
    }

    #[test]
    fn tagger_synthesizes_in_yosys() {
        let mut uut = TimeTagger::<5>::default();
        uut.connect_all();
        yosys_validate("time_tagger", &generate_verilog(&uut)).unwrap();
    }
}
