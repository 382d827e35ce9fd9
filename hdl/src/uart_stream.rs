//! A UART (8N1) transmitter that streams 32-bit records from a FIFO read port, LSB byte first.
//!
//! This is the raw tag stream of the foundation board tops: every record leaves as four
//! bytes, least significant first, with no framing. Each byte takes `10 * divisor + 1` ticks
//! (start bit, 8 data bits, stop bit, and one tick to load the next byte).

use rust_hdl::prelude::*;

/// Width of the baud divisor, in bits (ticks per bit).
pub const BAUD_DIV_BITS: usize = 16;

/// Streams records from a FIFO read port over a UART transmit line.
#[derive(LogicBlock, Default)]
pub struct UartRecordStreamer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Ticks per UART bit (e.g. 50 for 3 Mbaud at 150 MHz).
    pub divisor: Signal<In, Bits<BAUD_DIV_BITS>>,
    /// FIFO data (the oldest record).
    pub data: Signal<In, Bits<32>>,
    /// FIFO empty flag.
    pub empty: Signal<In, Bit>,
    /// FIFO read strobe (high for one tick per record taken).
    pub read: Signal<Out, Bit>,
    /// UART transmit line (idle high).
    pub tx: Signal<Out, Bit>,
    word: DFF<Bits<32>>,
    bytes_left: DFF<Bits<3>>,
    shift: DFF<Bits<10>>,
    bits_left: DFF<Bits<4>>,
    baud: DFF<Bits<BAUD_DIV_BITS>>,
    // Inverted so that the power-on value 0 is the idle level 1.
    tx_n: DFF<Bit>,
}

impl Logic for UartRecordStreamer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, word, bytes_left, shift, bits_left, baud, tx_n);
        self.read.next = false;
        self.tx.next = !self.tx_n.q.val();
        if self.baud.q.val() != 0 {
            self.baud.d.next = self.baud.q.val() - 1;
        } else if self.bits_left.q.val() != 0 {
            self.tx_n.d.next = !self.shift.q.val().get_bit(0);
            self.shift.d.next = self.shift.q.val() >> 1;
            self.bits_left.d.next = self.bits_left.q.val() - 1;
            self.baud.d.next = self.divisor.val() - 1;
        } else if self.bytes_left.q.val() != 0 {
            // Stop bit (1), 8 data bits LSB first, start bit (0).
            self.shift.d.next = (bit_cast::<10, 8>(self.word.q.val().get_bits::<8>(0)) << 1) | 0x200;
            self.word.d.next = self.word.q.val() >> 8;
            self.bytes_left.d.next = self.bytes_left.q.val() - 1;
            self.bits_left.d.next = 10.into();
        } else if !self.empty.val() {
            self.word.d.next = self.data.val();
            self.read.next = true;
            self.bytes_left.d.next = 4.into();
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
        for _ in 0..(2 * 4 * (10 * div + 1) + 50) {
            uut.empty.next = idx >= words.len();
            uut.data.next = (*words.get(idx).unwrap_or(&0) as u64).into();
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 100);
            if uut.read.val() {
                idx += 1;
            }
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
