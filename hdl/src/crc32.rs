//! A bit-serial CRC-32/ISO-HDLC engine (the Ethernet/zlib CRC that the host computes with the
//! `crc` crate): reflected polynomial `0xEDB88320`, initial value `0xFFFFFFFF`, final XOR
//! `0xFFFFFFFF`.
//!
//! rust-hdl has no CRC block, hence this one. It absorbs one byte in 8 ticks (least
//! significant bit first, one bit per tick), which is far faster than the UART delivers
//! bytes (10 bit periods of at least 4 ticks), and costs about 40 logic cells instead of the
//! XOR network of a byte-parallel CRC.
//!
//! * The register `crc` is the raw shift register; the CRC to transmit is `!crc`, least
//!   significant byte first.
//! * A receiver that feeds the message *and* its four CRC bytes finds the raw register equal
//!   to [`CRC32_RESIDUE`] exactly when the CRC matched.

use rust_hdl::prelude::*;

/// The reflected CRC-32 polynomial.
pub const CRC32_POLY: u32 = 0xEDB8_8320;
/// Raw register value after a message followed by its (correct) CRC, least significant byte
/// first.
pub const CRC32_RESIDUE: u32 = 0xDEBB_20E3;

/// Bit-serial CRC-32 engine.
#[derive(LogicBlock)]
pub struct Crc32Serial {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Strobe: set the register to `0xFFFFFFFF` (start of a message). Do not combine with
    /// `load` or use while `busy`.
    pub init: Signal<In, Bit>,
    /// Strobe: absorb `data` over the next 8 ticks (only when not `busy`).
    pub load: Signal<In, Bit>,
    /// Byte to absorb, sampled with `load`.
    pub data: Signal<In, Bits<8>>,
    /// The raw CRC register (registered).
    pub crc: Signal<Out, Bits<32>>,
    /// A byte is being absorbed (registered; high from the tick after `load` for 8 ticks).
    pub busy: Signal<Out, Bit>,
    reg_crc: DFF<Bits<32>>,
    sh: DFF<Bits<8>>,
    cnt: DFF<Bits<4>>,
    poly: Constant<Bits<32>>,
    ones: Constant<Bits<32>>,
}

impl Default for Crc32Serial {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            init: Default::default(),
            load: Default::default(),
            data: Default::default(),
            crc: Default::default(),
            busy: Default::default(),
            reg_crc: Default::default(),
            sh: Default::default(),
            cnt: Default::default(),
            poly: Constant::new((CRC32_POLY as u64).into()),
            ones: Constant::new(0xFFFF_FFFFu64.into()),
        }
    }
}

impl Logic for Crc32Serial {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, reg_crc, sh, cnt);
        self.crc.next = self.reg_crc.q.val();
        self.busy.next = self.cnt.q.val() != 0;
        if self.cnt.q.val() != 0 {
            if self.reg_crc.q.val().get_bit(0) ^ self.sh.q.val().get_bit(0) {
                self.reg_crc.d.next = (self.reg_crc.q.val() >> 1) ^ self.poly.val();
            } else {
                self.reg_crc.d.next = self.reg_crc.q.val() >> 1;
            }
            self.sh.d.next = self.sh.q.val() >> 1;
            self.cnt.d.next = self.cnt.q.val() - 1;
        }
        if self.init.val() {
            self.reg_crc.d.next = self.ones.val();
        }
        if self.load.val() {
            self.sh.d.next = self.data.val();
            self.cnt.d.next = 8.into();
        }
    }
}

/// The raw register after absorbing `bytes` from the initial value (reference model).
pub fn crc32_raw(bytes: &[u8]) -> u32 {
    let mut r = 0xFFFF_FFFFu32;
    for &b in bytes {
        for k in 0..8 {
            let bit = (r ^ (b as u32 >> k)) & 1;
            r = (r >> 1) ^ if bit != 0 { CRC32_POLY } else { 0 };
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CRC;

    #[test]
    fn model_is_the_crc_crate_and_the_residue_holds() {
        let msgs: [&[u8]; 4] = [b"123456789", b"", &[0x5A, 0, 1, 0, 0], &[0xFF; 300]];
        for m in msgs {
            assert_eq!(!crc32_raw(m), CRC.checksum(m), "{m:02x?}");
            let mut framed = m.to_vec();
            framed.extend_from_slice(&CRC.checksum(m).to_le_bytes());
            assert_eq!(crc32_raw(&framed), CRC32_RESIDUE);
            framed[0] ^= 0x10;
            assert_ne!(crc32_raw(&framed), CRC32_RESIDUE);
        }
        assert_eq!(!crc32_raw(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn gateware_matches_the_model() {
        let mut uut = Crc32Serial::default();
        uut.connect_all();
        let mut sim = Simulation::new();
        let msg: Vec<u8> = (0..40u32).map(|i| (i * 37 + 11) as u8).collect();
        let expect = crc32_raw(&msg);
        sim.add_clock(5, |x: &mut Box<Crc32Serial>| x.clock.next = !x.clock.val());
        sim.add_testbench(move |mut sim: Sim<Crc32Serial>| {
            let mut x = sim.init()?;
            x.init.next = true;
            wait_clock_cycle!(sim, clock, x);
            x.init.next = false;
            for &b in &msg {
                x.load.next = true;
                x.data.next = (b as u64).into();
                wait_clock_cycle!(sim, clock, x);
                x.load.next = false;
                // A gap as on the line: between 8 (the minimum) and 12 ticks.
                for _ in 0..(8 + (b as usize % 5)) {
                    wait_clock_cycle!(sim, clock, x);
                }
                sim_assert!(sim, !x.busy.val(), x);
            }
            sim_assert_eq!(sim, x.crc.val(), expect as u64, x);
            sim.done(x)
        });
        sim.run(Box::new(uut), 10_000).unwrap();
    }
}
