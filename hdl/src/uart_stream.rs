//! A UART (8N1) transmitter that streams 32-bit records from a FIFO read port, LSB byte first.
//!
//! This is the raw tag stream of the foundation board tops: every record leaves as four
//! bytes, least significant first, with no framing. A free-running divider makes one bit
//! period of `divisor` ticks; each byte takes exactly 10 bit periods (start, 8 data, stop) and
//! each record one more to fetch it, so the line carries payload at 32/41 = 78% of the raw
//! bit rate (97.6% of the 8N1 byte rate). All decisions are taken on registered strobes, and
//! the FIFO read strobe is registered, so the streamer adds no long path to a fast clock.

use rust_hdl::prelude::*;

/// Width of the baud divisor, in bits (ticks per bit).
pub const BAUD_DIV_BITS: usize = 16;

/// Streams records from a read port (`data`, `empty`, `read`) over a UART transmit line.
///
/// The read port must keep `data` and `empty` until the registered `read` strobe takes the
/// record (one tick after the streamer latched it).
#[derive(LogicBlock, Default)]
pub struct UartRecordStreamer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Ticks per UART bit (e.g. 50 for 3 Mbaud at 150 MHz); at least 2.
    pub divisor: Signal<In, Bits<BAUD_DIV_BITS>>,
    /// The next record.
    pub data: Signal<In, Bits<32>>,
    /// No record ready.
    pub empty: Signal<In, Bit>,
    /// Read strobe (high for one tick per record taken, registered).
    pub read: Signal<Out, Bit>,
    /// UART transmit line (idle high).
    pub tx: Signal<Out, Bit>,
    divider: DFF<Bits<BAUD_DIV_BITS>>,
    bit_tick: DFF<Bit>,
    word: DFF<Bits<32>>,
    bytes_left: DFF<Bits<3>>,
    shift: DFF<Bits<9>>,
    bits_left: DFF<Bits<4>>,
    read_r: DFF<Bit>,
    // Registered "a record is ready" (one tick stale; harmless, as a fetch is followed by
    // at least 40 bit periods of sending).
    avail: DFF<Bit>,
    // Registered zero flags of the bit and byte counters (they change only on bit ticks,
    // which are at least two ticks apart).
    bits_zero: DFF<Bit>,
    bytes_zero: DFF<Bit>,
    // Inverted so that the power-on value 0 is the idle level 1.
    tx_n: DFF<Bit>,
}

impl Logic for UartRecordStreamer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, divider, bit_tick, word, bytes_left, shift, bits_left, read_r, avail, bits_zero, bytes_zero, tx_n);
        self.bits_zero.d.next = self.bits_left.q.val() == 0;
        self.bytes_zero.d.next = self.bytes_left.q.val() == 0;
        self.avail.d.next = !self.empty.val();
        // Free-running bit-period divider.
        if self.divider.q.val() == 0 {
            self.divider.d.next = self.divisor.val() - 1;
        } else {
            self.divider.d.next = self.divider.q.val() - 1;
        }
        self.bit_tick.d.next = self.divider.q.val() == 0;
        self.read_r.d.next = false;
        self.read.next = self.read_r.q.val();
        self.tx.next = !self.tx_n.q.val();
        if self.bit_tick.q.val() {
            if !self.bits_zero.q.val() {
                self.tx_n.d.next = !self.shift.q.val().get_bit(0);
                self.shift.d.next = self.shift.q.val() >> 1;
                self.bits_left.d.next = self.bits_left.q.val() - 1;
            } else if !self.bytes_zero.q.val() {
                // Start bit now; then 8 data bits LSB first and the stop bit (1).
                self.tx_n.d.next = true;
                self.shift.d.next = bit_cast::<9, 8>(self.word.q.val().get_bits::<8>(0)) | 0x100;
                self.bits_left.d.next = 9.into();
                self.word.d.next = self.word.q.val() >> 8;
                self.bytes_left.d.next = self.bytes_left.q.val() - 1;
            } else {
                self.tx_n.d.next = false;
                if self.avail.q.val() & !self.read_r.q.val() {
                    self.word.d.next = self.data.val();
                    self.read_r.d.next = true;
                    self.bytes_left.d.next = 4.into();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes 8N1 from a sampled line, `div` ticks per bit.
    fn decode_uart(line: &[bool], div: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = 0;
        while t + 10 * div <= line.len() {
            if line[t] {
                t += 1;
                continue;
            }
            let mid = |k: usize| line[t + k * div + div / 2];
            assert!(!mid(0), "start bit");
            let mut b = 0u8;
            for k in 0..8 {
                b |= (mid(k + 1) as u8) << k;
            }
            assert!(mid(9), "stop bit");
            out.push(b);
            t += 10 * div;
        }
        out
    }

    #[test]
    fn streams_records_lsb_first() {
        let mut uut = UartRecordStreamer::default();
        uut.connect_all();
        let div = 4;
        uut.divisor.next = (div as u64).into();
        let words = [0x8000_0001u32, 0x4123_4567];
        let mut idx = 0;
        let mut line = Vec::new();
        for _ in 0..(2 * 41 * div + 50) {
            uut.empty.next = idx >= words.len();
            uut.data.next = (*words.get(idx).unwrap_or(&0) as u64).into();
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 100);
            if uut.read.val() {
                idx += 1;
            }
            uut.empty.next = idx >= words.len();
            uut.data.next = (*words.get(idx).unwrap_or(&0) as u64).into();
            simulate(&mut uut, 100);
            line.push(uut.tx.val());
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 100);
        }
        assert_eq!(decode_uart(&line, div), vec![0x01, 0, 0, 0x80, 0x67, 0x45, 0x23, 0x41]);
    }

    #[test]
    fn streamer_synthesizes() {
        let mut uut = UartRecordStreamer::default();
        uut.connect_all();
        yosys_validate("uart_stream", &generate_verilog(&uut)).unwrap();
    }
}
