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
/// cycle behaviour. The settings are used as they are, without a register of their own: in
/// the core they come straight from the register bank (one flip-flop per bit, not two).
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
    // Dead-time counter, counted down while `busy` and otherwise loaded with `dead_time` in
    // every tick (so it holds `dead_time` at a fire; no clock enable: an enable decoded from
    // the edge would fan out to all its flip-flops); `busy` is registered (`dead != 0` of the
    // next tick), so no comparator sits in the fire path.
    dead: DFF<Bits<DEAD_TIME_BITS>>,
    busy: DFF<Bit>,
    edge_seen: Signal<Local, Bit>,
}

impl Logic for ChannelFrontEnd {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, prev, dead, busy);
        clock!(self, clock, sync);
        self.sync.sig_in.next = self.pin.val();
        self.prev.d.next = self.sync.sig_out.val();
        self.edge_seen.next = (self.sync.sig_out.val() & !self.prev.q.val() & !self.falling.val())
            | (!self.sync.sig_out.val() & self.prev.q.val() & self.falling.val());
        self.fire.next = false;
        if self.busy.q.val() {
            self.dead.d.next = self.dead.q.val() - 1;
            self.busy.d.next = self.dead.q.val() != 1;
        } else {
            self.dead.d.next = self.dead_time.val();
            if self.edge_seen.val() & self.enable.val() {
                self.fire.next = true;
                self.busy.d.next = self.dead_time.val().any();
            }
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

