//! The tag stream's crossing from the tick clock to the control clock (`docs/clocking.md`):
//! a pump that moves records from a first-word-fall-through source in the tick domain (the
//! tagger's read port: `data_out`/`empty`/`read`) into a dual-clock FIFO, read in the control
//! domain through the same kind of port.
//!
//! The FIFO is the classic dual-clock FIFO with Gray-coded pointers (Cummings, "Simulation
//! and Synthesis Techniques for Asynchronous FIFO Design", SNUG 2002): block RAM with
//! independent read and write clocks; each side keeps a binary and a Gray pointer, the Gray
//! pointer crosses through two flip-flops (one bit changes per step, so a sample taken while
//! it changes is the old or the new value, both safe), and `full` and `empty` are registered
//! from the next pointer. Why not rust-hdl's `AsynchronousFIFO`: its `full` is a
//! combinational compare in front of the RAM's write enable, and it reached 124–139 MHz on the
//! tick side on the HX8K, below the 150 MHz tick; here every flag is a flip-flop, and `full`
//! does not depend on this tick's write (it rises at 255 or 256 unread records).
//!
//! The pump takes a record in every tick in which the source has one and the FIFO is not
//! full, so the source sees back-pressure, never a loss: a full crossing leaves the records in
//! the tagger's FIFO, whose own overflow is counted and marked in the stream (LOST records).
//! The read side is first-word-fall-through: the RAM is read at the next read pointer every
//! control tick, so its output register holds the record at the read pointer.
//!
//! The clocks may have any ratio and phase. Verified in Verilator with two free-running clocks
//! at several ratios and with jitter against a plain queue (`sim/tests/blocks.rs`).

use rust_hdl::prelude::*;

use crate::tagfmt::RECORD_BITS;

/// Address width of the crossing FIFO: 256 records (two 256 × 16 block RAMs).
pub const CROSSING_ADDR_BITS: usize = 8;
/// Width of the fill level, in records (0..=256).
pub const CROSSING_FILL_BITS: usize = CROSSING_ADDR_BITS + 1;

/// Width of the FIFO pointers (one more bit than the address: full and empty differ in it).
const PTR_BITS: usize = CROSSING_ADDR_BITS + 1;

/// Moves tag records from the tick clock to the control clock.
#[derive(LogicBlock)]
pub struct TagCrossing {
    /// Tick (tagger) clock: the source side.
    pub tick_clock: Signal<In, Clock>,
    /// The source's next record (valid while `src_empty` is low).
    pub src_data: Signal<In, Bits<RECORD_BITS>>,
    /// The source has no record.
    pub src_empty: Signal<In, Bit>,
    /// Takes the source's record in this tick (high only while `src_empty` is low).
    pub src_read: Signal<Out, Bit>,
    /// Tick side: records written that the control side has not yet been seen to read (the
    /// write pointer differs from the synchronized read pointer; from flip-flops).
    pub src_unread: Signal<Out, Bit>,
    /// Control clock: the read side.
    pub ctl_clock: Signal<In, Clock>,
    /// Read strobe (control clock): takes `data_out` when `empty` is low.
    pub read: Signal<In, Bit>,
    /// The next record (valid while `empty` is low).
    pub data_out: Signal<Out, Bits<RECORD_BITS>>,
    /// No record ready on the control side.
    pub empty: Signal<Out, Bit>,
    /// Records in the FIFO as the control side sees them (registered; lags the writes by the
    /// synchronizer).
    pub fill: Signal<Out, Bits<CROSSING_FILL_BITS>>,
    ram: RAM<Bits<RECORD_BITS>, CROSSING_ADDR_BITS>,
    // Write side (tick clock): pointers, full flag, the read pointer synchronized.
    wbin: DFF<Bits<PTR_BITS>>,
    wgray: DFF<Bits<PTR_BITS>>,
    wbin1: DFFWithInit<Bits<PTR_BITS>>,
    wgray1: DFFWithInit<Bits<PTR_BITS>>,
    // 255 unread (the pointer plus one is a lap ahead), 256 unread.
    full_if_write: Signal<Local, Bit>,
    full_if_not: Signal<Local, Bit>,
    rq_lap: Signal<Local, Bits<PTR_BITS>>,
    wfull: DFF<Bit>,
    rq1: DFF<Bits<PTR_BITS>>,
    rq2: DFF<Bits<PTR_BITS>>,
    // Read side (control clock): pointers, empty flag, the write pointer synchronized, fill.
    rbin: DFF<Bits<PTR_BITS>>,
    rgray: DFF<Bits<PTR_BITS>>,
    rempty: DFFWithInit<Bit>,
    wq1: DFF<Bits<PTR_BITS>>,
    wq2: DFF<Bits<PTR_BITS>>,
    fill_r: DFF<Bits<CROSSING_FILL_BITS>>,
    winc: Signal<Local, Bit>,
    wbin2: Signal<Local, Bits<PTR_BITS>>,
    wgray2: Signal<Local, Bits<PTR_BITS>>,
    rinc: Signal<Local, Bit>,
    rbin_next: Signal<Local, Bits<PTR_BITS>>,
    rgray_next: Signal<Local, Bits<PTR_BITS>>,
    g_shift: Signal<Local, Bits<PTR_BITS>>,
    wq_bin: Signal<Local, Bits<PTR_BITS>>,
    one: Constant<Bits<8>>,
    top_two: Constant<Bits<PTR_BITS>>,
}

impl Default for TagCrossing {
    fn default() -> Self {
        Self {
            tick_clock: Default::default(),
            src_data: Default::default(),
            src_empty: Default::default(),
            src_read: Default::default(),
            src_unread: Default::default(),
            ctl_clock: Default::default(),
            read: Default::default(),
            data_out: Default::default(),
            empty: Default::default(),
            fill: Default::default(),
            ram: Default::default(),
            wbin: Default::default(),
            wgray: Default::default(),
            wbin1: DFFWithInit::new(1u64.to_bits()),
            wgray1: DFFWithInit::new(1u64.to_bits()),
            full_if_write: Default::default(),
            full_if_not: Default::default(),
            rq_lap: Default::default(),
            wfull: Default::default(),
            rq1: Default::default(),
            rq2: Default::default(),
            rbin: Default::default(),
            rgray: Default::default(),
            rempty: DFFWithInit::new(true),
            wq1: Default::default(),
            wq2: Default::default(),
            fill_r: Default::default(),
            winc: Default::default(),
            wbin2: Default::default(),
            wgray2: Default::default(),
            rinc: Default::default(),
            rbin_next: Default::default(),
            rgray_next: Default::default(),
            g_shift: Default::default(),
            wq_bin: Default::default(),
            one: Constant::new(1u64.to_bits()),
            top_two: Constant::new((3u64 << (PTR_BITS - 2)).to_bits()),
        }
    }
}

impl Logic for TagCrossing {
    #[hdl_gen]
    fn update(&mut self) {
        // Write side, tick clock.
        self.wbin.clock.next = self.tick_clock.val();
        self.wgray.clock.next = self.tick_clock.val();
        self.wfull.clock.next = self.tick_clock.val();
        self.rq1.clock.next = self.tick_clock.val();
        self.rq2.clock.next = self.tick_clock.val();
        self.rq1.d.next = self.rgray.q.val();
        self.rq2.d.next = self.rq1.q.val();
        self.winc.next = !self.src_empty.val() & !self.wfull.q.val();
        self.src_read.next = self.winc.val();
        self.src_unread.next = self.wgray.q.val() != self.rq2.q.val();
        // The pointer plus one is kept in registers too (`wbin1`, `wgray1`; `wbin2` is the
        // pointer plus two), so that the next pointer's Gray code is a flip-flop whether or
        // not this tick writes.
        self.wbin1.clock.next = self.tick_clock.val();
        self.wgray1.clock.next = self.tick_clock.val();
        self.wbin.d.next = self.wbin.q.val();
        self.wgray.d.next = self.wgray.q.val();
        self.wbin1.d.next = self.wbin1.q.val();
        self.wgray1.d.next = self.wgray1.q.val();
        self.wbin2.next = self.wbin1.q.val() + 1;
        self.wgray2.next = (self.wbin2.val() >> self.one.val()) ^ self.wbin2.val();
        if self.winc.val() {
            self.wbin.d.next = self.wbin1.q.val();
            self.wgray.d.next = self.wgray1.q.val();
            self.wbin1.d.next = self.wbin2.val();
            self.wgray1.d.next = self.wgray2.val();
        }
        // Full: the write pointer, or the pointer plus one, is a whole lap ahead of the
        // synchronized read pointer (Gray: the top two bits inverted, the rest equal), i.e. 256
        // or 255 records unread. Not asking whether this tick writes keeps the pump's `winc`
        // (the tagger's `empty`, a long net) out of the flag's LUTs: on the UP5K core the
        // select put it at the head of a six-LUT chain (57.2 of 60 MHz at every seed). The
        // price is one slot: without a write at 255 the flag rises with one slot free. Never
        // an overflow: a write needs the flag low, so at most 254 unread a tick earlier, at
        // most 255 now and 256 after the write.
        self.rq_lap.next = self.rq2.q.val() ^ self.top_two.val();
        self.full_if_write.next = self.wgray1.q.val() == self.rq_lap.val();
        self.full_if_not.next = self.wgray.q.val() == self.rq_lap.val();
        self.wfull.d.next = self.full_if_write.val() | self.full_if_not.val();
        self.ram.write_clock.next = self.tick_clock.val();
        self.ram.write_address.next = self.wbin.q.val().get_bits::<CROSSING_ADDR_BITS>(0);
        self.ram.write_data.next = self.src_data.val();
        self.ram.write_enable.next = self.winc.val();
        // Read side, control clock.
        self.rbin.clock.next = self.ctl_clock.val();
        self.rgray.clock.next = self.ctl_clock.val();
        self.rempty.clock.next = self.ctl_clock.val();
        self.wq1.clock.next = self.ctl_clock.val();
        self.wq2.clock.next = self.ctl_clock.val();
        self.fill_r.clock.next = self.ctl_clock.val();
        self.wq1.d.next = self.wgray.q.val();
        self.wq2.d.next = self.wq1.q.val();
        self.rinc.next = self.read.val() & !self.rempty.q.val();
        self.rbin_next.next = self.rbin.q.val() + bit_cast::<PTR_BITS, 1>(self.rinc.val().into());
        self.rgray_next.next = (self.rbin_next.val() >> self.one.val()) ^ self.rbin_next.val();
        self.rbin.d.next = self.rbin_next.val();
        self.rgray.d.next = self.rgray_next.val();
        self.rempty.d.next = self.rgray_next.val() == self.wq2.q.val();
        self.ram.read_clock.next = self.ctl_clock.val();
        self.ram.read_address.next = self.rbin_next.val().get_bits::<CROSSING_ADDR_BITS>(0);
        self.data_out.next = self.ram.read_data.val();
        self.empty.next = self.rempty.q.val();
        // Fill: the synchronized write pointer back to binary, minus the read pointer.
        self.wq_bin.next = self.wq2.q.val();
        self.g_shift.next = self.wq2.q.val();
        for _i in 1..PTR_BITS {
            self.g_shift.next = self.g_shift.val() >> self.one.val();
            self.wq_bin.next = self.wq_bin.val() ^ self.g_shift.val();
        }
        self.fill_r.d.next = self.wq_bin.val() - self.rbin.q.val();
        self.fill.next = self.fill_r.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_crossing_synthesizes() {
        let mut uut = TagCrossing::default();
        uut.connect_all();
        yosys_validate("tag_crossing", &generate_verilog(&uut)).unwrap();
    }
}
