//! The same tagger in rust-hdl's own simulator, stepped by hand, for cross-checking the
//! Verilated model and for the speed comparison.

use qkd_hdl::tagger_model::{ReadPort, TaggerConfig};
use qkd_hdl::verilog::{SimTagger, TAGGER_CHANNELS};
use rust_hdl::prelude::*;

/// [`SimTagger`] in rust-hdl's event-driven simulator.
pub struct RustHdlTagger {
    uut: SimTagger,
}

impl Default for RustHdlTagger {
    fn default() -> Self {
        Self::new()
    }
}

impl RustHdlTagger {
    /// A tagger in its power-on state.
    pub fn new() -> Self {
        let mut uut = SimTagger::default();
        uut.connect_all();
        uut.clock.next = Clock::from(false);
        simulate(&mut uut, 1000);
        Self { uut }
    }

    /// Applies a configuration to the input ports.
    pub fn set_config(&mut self, cfg: &TaggerConfig) {
        let mask = ((1u16 << TAGGER_CHANNELS) - 1) as u64;
        self.uut.enable.next = ((cfg.enable as u64) & mask).into();
        self.uut.falling.next = ((cfg.falling as u64) & mask).into();
        for c in 0..TAGGER_CHANNELS {
            self.uut.dead_time[c].next = (cfg.dead_time[c] as u64).into();
        }
    }

    /// One clock tick, as [`crate::verilated::VerilatedTagger::step`].
    pub fn step(&mut self, pins: u8, read: bool) -> ReadPort {
        self.uut.pins.next = ((pins as u64) & ((1 << TAGGER_CHANNELS) - 1)).into();
        self.uut.read.next = read;
        simulate(&mut self.uut, 1000);
        let empty = self.uut.empty.val();
        let data = self.uut.data_out.val().to_u32();
        self.uut.clock.next = Clock::from(true);
        simulate(&mut self.uut, 1000);
        self.uut.clock.next = Clock::from(false);
        simulate(&mut self.uut, 1000);
        ReadPort { empty, popped: (read && !empty).then_some(data) }
    }
}
