//! One detector channel's front end: synchronizer, edge select, enable and dead time.

use rust_hdl::prelude::*;

/// Width of the dead-time setting, in bits (ticks).
pub use crate::tagger_model::DEAD_TIME_BITS;

/// The front end of one tagger channel.
///
/// The asynchronous `pin` passes a two-flip-flop [`BitSynchronizer`]; a third flip-flop gives
/// the previous level for edge detection. `fire` is high for the one tick in which an edge of
/// the selected polarity is accepted: the channel is enabled and not dead. After a fire the
/// channel ignores edges for `dead_time` ticks. See [`crate::tagger_model`] for the exact
/// cycle behaviour. All settings pass a register first.
#[derive(LogicBlock, Default)]
pub struct ChannelFrontEnd {
    /// Tagger clock.
    pub clock: Signal<In, Clock>,
    /// Detector input, asynchronous to `clock`.
    pub pin: Signal<In, Bit>,
    /// Channel enable.
    pub enable: Signal<In, Bit>,
    /// Tag falling edges instead of rising ones.
    pub falling: Signal<In, Bit>,
    /// Dead time after each accepted edge, in ticks.
    pub dead_time: Signal<In, Bits<DEAD_TIME_BITS>>,
    /// High for one tick when an edge is accepted.
    pub fire: Signal<Out, Bit>,
    sync: BitSynchronizer,
    prev: DFF<Bit>,
    // Dead-time counter with a sign bit: loaded with `dead_time - 1` on a fire, counted down
    // while non-negative; the channel is busy while the sign bit is clear. No comparator sits
    // in the fire path, only the counter's carry chain.
    dead: DFF<Bits<17>>,
    dead_time_m1: DFF<Bits<17>>,
    // Registered configuration: the settings come from far away (registers, pins).
    enable_r: DFF<Bit>,
    falling_r: DFF<Bit>,
    edge_seen: Signal<Local, Bit>,
    busy: Signal<Local, Bit>,
}

impl Logic for ChannelFrontEnd {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, prev, dead, dead_time_m1, enable_r, falling_r);
        self.enable_r.d.next = self.enable.val();
        self.falling_r.d.next = self.falling.val();
        clock!(self, clock, sync);
        self.sync.sig_in.next = self.pin.val();
        self.prev.d.next = self.sync.sig_out.val();
        self.edge_seen.next = (self.sync.sig_out.val() & !self.prev.q.val() & !self.falling_r.q.val())
            | (!self.sync.sig_out.val() & self.prev.q.val() & self.falling_r.q.val());
        self.dead_time_m1.d.next = bit_cast::<17, DEAD_TIME_BITS>(self.dead_time.val()) - 1;
        // Bit 16 is the sign bit (DEAD_TIME_BITS == 16, checked below).
        self.busy.next = !self.dead.q.val().get_bit(16);
        self.fire.next = false;
        if self.edge_seen.val() & self.enable_r.q.val() & !self.busy.val() {
            self.fire.next = true;
            self.dead.d.next = self.dead_time_m1.q.val();
        } else if self.busy.val() {
            self.dead.d.next = self.dead.q.val() - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_front_end_synthesizes() {
        let mut uut = ChannelFrontEnd::default();
        uut.connect_all();
        yosys_validate("channel_front_end", &generate_verilog(&uut)).unwrap();
    }

    /// Steps the block by hand and checks fire against the reference model's rules.
    #[test]
    fn dead_time_and_polarity_match_model() {
        use crate::tagger_model::{TaggerConfig, TaggerModel};
        for falling in [false, true] {
            let mut uut = ChannelFrontEnd::default();
            uut.connect_all();
            uut.enable.next = true;
            uut.falling.next = falling;
            uut.dead_time.next = 3.into();
            let mut cfg = TaggerConfig::default();
            cfg.dead_time[0] = 3;
            cfg.falling = falling as u8;
            let mut model = TaggerModel::new(1, cfg);
            let pins = [0, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0];
            let mut fires = Vec::new();
            for (t, &p) in pins.iter().enumerate() {
                uut.pin.next = p == 1;
                uut.clock.next = Clock::from(false);
                simulate(&mut uut, 100);
                if uut.fire.val() {
                    fires.push(t);
                }
                uut.clock.next = Clock::from(true);
                simulate(&mut uut, 100);
            }
            // The model tags fire at tick f with time f; compare against its records.
            let mut recs = Vec::new();
            for &p in pins.iter().chain([0u8; 64].iter()) {
                recs.extend(model.step(p, true).popped);
            }
            let mut tags = Vec::new();
            crate::tagfmt::StreamDecoder::new().push_all(&recs, &mut tags).unwrap();
            let model_fires: Vec<usize> = tags.iter().map(|t| t.time as usize).collect();
            assert_eq!(fires, model_fires, "falling={falling}");
            assert!(!fires.is_empty());
        }
    }
}

const _: () = assert!(DEAD_TIME_BITS == 16, "the dead-time counter's sign bit is bit 16");
