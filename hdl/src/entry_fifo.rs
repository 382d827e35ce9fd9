//! The tagger's event FIFO: block RAM with registered status, built for a fast clock.
//!
//! rust-hdl's `SynchronousFIFO` derives `full` and `empty` combinationally from both address
//! pointers, which couples the write and read sides into one long path (it capped the tagger
//! at ~46 MHz on the UP5K). This FIFO leaves the room check to its writer (the tagger keeps a
//! registered occupancy count) and gives the reader a registered `nonempty` flag, one tick
//! stale: a reader that reads at most every other tick (the record formatter reads at most
//! every fifth) can never read past the data.
//!
//! Timing: a write at tick `t` is visible in `nonempty` at `t + 2`; a read strobe at tick `t`
//! puts the entry on `data_out` at `t + 1`.

use rust_hdl::prelude::*;

/// A FIFO of `2^A` words of type `D`.
#[derive(LogicBlock, Default)]
pub struct EntryFifo<D: Synth, const A: usize> {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Write strobe (the writer must know there is room).
    pub write: Signal<In, Bit>,
    /// Word to write.
    pub data_in: Signal<In, D>,
    /// Read strobe: take the oldest word (only while `nonempty`, at most every other tick).
    pub read: Signal<In, Bit>,
    /// The word taken by the read strobe of the previous tick.
    pub data_out: Signal<Out, D>,
    /// Registered "not empty" (as of the previous tick).
    pub nonempty: Signal<Out, Bit>,
    ram: RAM<D, A>,
    wptr: DFF<Bits<A>>,
    rptr: DFF<Bits<A>>,
    nonempty_r: DFF<Bit>,
}

impl<D: Synth, const A: usize> Logic for EntryFifo<D, A> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, wptr, rptr, nonempty_r);
        self.ram.write_clock.next = self.clock.val();
        self.ram.read_clock.next = self.clock.val();
        self.ram.write_address.next = self.wptr.q.val();
        self.ram.write_data.next = self.data_in.val();
        self.ram.write_enable.next = self.write.val();
        self.ram.read_address.next = self.rptr.q.val();
        self.data_out.next = self.ram.read_data.val();
        if self.write.val() {
            self.wptr.d.next = self.wptr.q.val() + 1;
        }
        if self.read.val() {
            self.rptr.d.next = self.rptr.q.val() + 1;
        }
        self.nonempty_r.d.next = self.wptr.q.val() != self.rptr.q.val();
        self.nonempty.next = self.nonempty_r.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_fifo_synthesizes() {
        let mut uut = EntryFifo::<Bits<64>, 8>::default();
        uut.connect_all();
        yosys_validate("entry_fifo", &generate_verilog(&uut)).unwrap();
    }
}
