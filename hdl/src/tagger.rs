//! The multi-channel time tagger: channel front ends, time base, record writer and tag FIFO.
//!
//! Record format: [`crate::tagfmt`]. Exact cycle behaviour, and the reference model the
//! gateware is checked against: [`crate::tagger_model`].

use rust_hdl::prelude::*;

use crate::channel::{ChannelFrontEnd, DEAD_TIME_BITS};
use crate::tagfmt::{
    EPOCH_BITS, KIND_EPOCH, KIND_EVENT, KIND_LOST, KIND_SHIFT, LOST_BITS, LOST_SATURATED, MASK_SHIFT,
    MAX_CHANNELS, RECORD_BITS, TIME_LOW_BITS,
};
use crate::tagger_model::FIFO_DEPTH;

/// Address width of the tag FIFO (log2 of [`FIFO_DEPTH`]).
pub const FIFO_ADDR_BITS: usize = 9;
/// Width of the FIFO occupancy output, in bits (records).
pub const OCCUPANCY_BITS: usize = FIFO_ADDR_BITS + 1;

/// The tag FIFO: [`FIFO_DEPTH`] records of [`RECORD_BITS`] bits in block RAM.
pub type TagFifo = SynchronousFIFO<Bits<RECORD_BITS>, FIFO_ADDR_BITS, OCCUPANCY_BITS, 1>;

/// An `N`-channel time tagger (1 ≤ N ≤ 8).
///
/// Inputs are the asynchronous detector `pins` and the per-channel configuration; the output
/// is the FIFO read port (`read`, `data_out`, `empty`): `data_out` shows the oldest record
/// while `empty` is low, and a tick with `read` high pops it.
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
    /// FIFO read strobe: pops `data_out` when `empty` is low.
    pub read: Signal<In, Bit>,
    /// Oldest record in the FIFO (valid while `empty` is low).
    pub data_out: Signal<Out, Bits<RECORD_BITS>>,
    /// FIFO empty flag.
    pub empty: Signal<Out, Bit>,
    /// Records in the FIFO as the writer counts them (written, not yet read).
    pub occupancy: Signal<Out, Bits<OCCUPANCY_BITS>>,
    channels: [ChannelFrontEnd; N],
    // Time base: `now = now_epoch << TIME_LOW_BITS | now_low`.
    now_low: DFF<Bits<TIME_LOW_BITS>>,
    now_epoch: DFF<Bits<EPOCH_BITS>>,
    wrap: DFF<Bit>,
    // Registered fire mask, its popcount and its time stamp.
    hit: DFF<Bits<MAX_CHANNELS>>,
    hit_n: DFF<Bits<4>>,
    ts_low: DFF<Bits<TIME_LOW_BITS>>,
    ts_epoch: DFF<Bits<EPOCH_BITS>>,
    // Record writer: a 2-entry event queue.
    q0_mask: DFF<Bits<MAX_CHANNELS>>,
    q0_low: DFF<Bits<TIME_LOW_BITS>>,
    q0_epoch: DFF<Bits<EPOCH_BITS>>,
    q1_mask: DFF<Bits<MAX_CHANNELS>>,
    q1_low: DFF<Bits<TIME_LOW_BITS>>,
    q1_epoch: DFF<Bits<EPOCH_BITS>>,
    qcount: DFF<Bits<2>>,
    lost: DFF<Bits<LOST_BITS>>,
    last_epoch: DFF<Bits<EPOCH_BITS>>,
    epoch_valid: DFF<Bit>,
    occ: DFF<Bits<OCCUPANCY_BITS>>,
    room: DFF<Bit>,
    fifo: TagFifo,
    // Combinational helpers.
    fire: Signal<Local, Bits<MAX_CHANNELS>>,
    fire_n: Signal<Local, Bits<4>>,
    wr: Signal<Local, Bit>,
    wdata: Signal<Local, Bits<RECORD_BITS>>,
    pop: Signal<Local, Bit>,
    lost_written: Signal<Local, Bit>,
    after_pop: Signal<Local, Bits<2>>,
    lost_base: Signal<Local, Bits<LOST_BITS>>,
    lost_sum: Signal<Local, Bits<32>>,
    rd: Signal<Local, Bit>,
    // Constants from the one definition of the format.
    kind_event: Constant<Bits<RECORD_BITS>>,
    kind_epoch: Constant<Bits<RECORD_BITS>>,
    kind_lost: Constant<Bits<RECORD_BITS>>,
    low_max: Constant<Bits<TIME_LOW_BITS>>,
    lost_max: Constant<Bits<32>>,
    room_limit: Constant<Bits<OCCUPANCY_BITS>>,
    mask_shift: Constant<Bits<5>>,
}

impl<const N: usize> Default for TimeTagger<N> {
    fn default() -> Self {
        assert!((1..=MAX_CHANNELS).contains(&N), "a tagger has 1..=8 channels");
        assert_eq!(1 << FIFO_ADDR_BITS, FIFO_DEPTH);
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
            now_low: Default::default(),
            now_epoch: Default::default(),
            wrap: Default::default(),
            hit: Default::default(),
            hit_n: Default::default(),
            ts_low: Default::default(),
            ts_epoch: Default::default(),
            q0_mask: Default::default(),
            q0_low: Default::default(),
            q0_epoch: Default::default(),
            q1_mask: Default::default(),
            q1_low: Default::default(),
            q1_epoch: Default::default(),
            qcount: Default::default(),
            lost: Default::default(),
            last_epoch: Default::default(),
            epoch_valid: Default::default(),
            occ: Default::default(),
            room: Default::default(),
            fifo: Default::default(),
            fire: Default::default(),
            fire_n: Default::default(),
            wr: Default::default(),
            wdata: Default::default(),
            pop: Default::default(),
            lost_written: Default::default(),
            after_pop: Default::default(),
            lost_base: Default::default(),
            lost_sum: Default::default(),
            rd: Default::default(),
            kind_event: Constant::new(((KIND_EVENT as u64) << KIND_SHIFT).to_bits()),
            kind_epoch: Constant::new(((KIND_EPOCH as u64) << KIND_SHIFT).to_bits()),
            kind_lost: Constant::new(((KIND_LOST as u64) << KIND_SHIFT).to_bits()),
            low_max: Constant::new((((1u64 << TIME_LOW_BITS) - 2) as u64).to_bits()),
            lost_max: Constant::new((LOST_SATURATED as u64).to_bits()),
            room_limit: Constant::new(((FIFO_DEPTH - 2) as u64).to_bits()),
            mask_shift: Constant::new((MASK_SHIFT as u64).to_bits()),
        }
    }
}

impl<const N: usize> Logic for TimeTagger<N> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, now_low, now_epoch, wrap, hit, hit_n, ts_low, ts_epoch, q0_mask, q0_low,
            q0_epoch, q1_mask, q1_low, q1_epoch, qcount, lost, last_epoch, epoch_valid, occ, room
        );
        self.fifo.clock.next = self.clock.val();
        // Channel front ends and the fire mask.
        self.fire.next = 0.into();
        self.fire_n.next = 0.into();
        for i in 0..N {
            self.channels[i].clock.next = self.clock.val();
            self.channels[i].pin.next = self.pins.val().get_bit(i);
            self.channels[i].enable.next = self.enable.val().get_bit(i);
            self.channels[i].falling.next = self.falling.val().get_bit(i);
            self.channels[i].dead_time.next = self.dead_time[i].val();
            self.fire.next = self.fire.val().replace_bit(i, self.channels[i].fire.val());
            if self.channels[i].fire.val() {
                self.fire_n.next = self.fire_n.val() + 1;
            }
        }
        // Time base; `wrap` is high in the last tick of an epoch.
        self.now_low.d.next = self.now_low.q.val() + 1;
        self.wrap.d.next = self.now_low.q.val() == self.low_max.val();
        if self.wrap.q.val() {
            self.now_epoch.d.next = self.now_epoch.q.val() + 1;
        }
        self.hit.d.next = self.fire.val();
        self.hit_n.d.next = self.fire_n.val();
        self.ts_low.d.next = self.now_low.q.val();
        self.ts_epoch.d.next = self.now_epoch.q.val();
        // FIFO read port.
        self.fifo.read.next = self.read.val();
        self.data_out.next = self.fifo.data_out.val();
        self.empty.next = self.fifo.empty.val();
        self.rd.next = self.read.val() & !self.fifo.empty.val();
        // Record writer: choose this tick's record.
        self.wr.next = false;
        self.wdata.next = 0.into();
        self.pop.next = false;
        self.lost_written.next = false;
        if self.room.q.val() {
            if self.qcount.q.val() != 0 {
                if !self.epoch_valid.q.val() | (self.q0_epoch.q.val() != self.last_epoch.q.val()) {
                    self.wr.next = true;
                    self.wdata.next = self.kind_epoch.val() | bit_cast::<RECORD_BITS, EPOCH_BITS>(self.q0_epoch.q.val());
                    self.last_epoch.d.next = self.q0_epoch.q.val();
                    self.epoch_valid.d.next = true;
                } else {
                    self.wr.next = true;
                    self.wdata.next = self.kind_event.val()
                        | (bit_cast::<RECORD_BITS, MAX_CHANNELS>(self.q0_mask.q.val()) << self.mask_shift.val())
                        | bit_cast::<RECORD_BITS, TIME_LOW_BITS>(self.q0_low.q.val());
                    self.pop.next = true;
                }
            } else if self.lost.q.val() != 0 {
                self.wr.next = true;
                self.wdata.next = self.kind_lost.val() | bit_cast::<RECORD_BITS, LOST_BITS>(self.lost.q.val());
                self.lost_written.next = true;
            } else if !self.epoch_valid.q.val() | (self.ts_epoch.q.val() != self.last_epoch.q.val()) {
                self.wr.next = true;
                self.wdata.next = self.kind_epoch.val() | bit_cast::<RECORD_BITS, EPOCH_BITS>(self.ts_epoch.q.val());
                self.last_epoch.d.next = self.ts_epoch.q.val();
                self.epoch_valid.d.next = true;
            }
        }
        self.fifo.write.next = self.wr.val();
        self.fifo.data_in.next = self.wdata.val();
        // Queue: pop, then append the new event or count it lost.
        self.after_pop.next = self.qcount.q.val();
        if self.pop.val() {
            self.q0_mask.d.next = self.q1_mask.q.val();
            self.q0_low.d.next = self.q1_low.q.val();
            self.q0_epoch.d.next = self.q1_epoch.q.val();
            self.after_pop.next = self.qcount.q.val() - 1;
        }
        self.lost_base.next = self.lost.q.val();
        if self.lost_written.val() {
            self.lost_base.next = 0.into();
        }
        self.lost.d.next = self.lost_base.val();
        self.qcount.d.next = self.after_pop.val();
        self.lost_sum.next =
            bit_cast::<32, LOST_BITS>(self.lost_base.val()) + bit_cast::<32, 4>(self.hit_n.q.val());
        if self.hit.q.val() != 0 {
            if (self.after_pop.val() != 2) & (self.lost_base.val() == 0) {
                if self.after_pop.val() == 0 {
                    self.q0_mask.d.next = self.hit.q.val();
                    self.q0_low.d.next = self.ts_low.q.val();
                    self.q0_epoch.d.next = self.ts_epoch.q.val();
                } else {
                    self.q1_mask.d.next = self.hit.q.val();
                    self.q1_low.d.next = self.ts_low.q.val();
                    self.q1_epoch.d.next = self.ts_epoch.q.val();
                }
                self.qcount.d.next = self.after_pop.val() + 1;
            } else if self.lost_sum.val() > self.lost_max.val() {
                self.lost.d.next = bit_cast::<LOST_BITS, 32>(self.lost_max.val());
            } else {
                self.lost.d.next = bit_cast::<LOST_BITS, 32>(self.lost_sum.val());
            }
        }
        // Occupancy and the registered room flag.
        self.room.d.next = self.occ.q.val() <= self.room_limit.val();
        self.occ.d.next = self.occ.q.val();
        if self.wr.val() & !self.rd.val() {
            self.occ.d.next = self.occ.q.val() + 1;
        }
        if !self.wr.val() & self.rd.val() {
            self.occ.d.next = self.occ.q.val() - 1;
        }
        self.occupancy.next = self.occ.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagger_synthesizes_in_yosys() {
        let mut uut = TimeTagger::<5>::default();
        uut.connect_all();
        yosys_validate("time_tagger", &generate_verilog(&uut)).unwrap();
    }
}
