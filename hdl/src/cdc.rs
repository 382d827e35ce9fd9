//! Clock-domain crossings of the core besides the tag stream (`docs/clocking.md`): a register
//! write carried from the control clock into the tick domain ([`WriteCrossing`]) and a
//! multi-bit value sampled from one clock into the other ([`SnapshotCrossing`]). Single status
//! bits cross through rust-hdl's `BitSynchronizer` (two flip-flops).
//!
//! Both are request/acknowledge handshakes with toggles: only the toggles pass through
//! two-flip-flop synchronizers, and the multi-bit values beside them are static for at least
//! two periods of the receiving clock before the receiving side takes them (and until it has
//! taken them). Neither keeps a second copy of the value on the receiving side (the HX8K core
//! is short of logic cells): the receiving side uses the sender's register while the handshake
//! says it is static. So no path between the two clocks needs timing analysis (nextpnr-ice40 0.4
//! does not constrain paths between clocks), as long as such a path is shorter than two
//! receiving periods: these paths are a register, an address compare and a multiplexer.

use rust_hdl::prelude::*;

/// A register write from the control clock into the tick domain.
///
/// The control side `start`s a write with an address and data (only while not `busy`), which
/// it must hold static (in its registers) from the cycle of `start` until `done`; a request
/// toggle crosses into the tick domain (two flip-flops). The tick side presents `addr`/`data`
/// with a one-tick `load` strobe: the tick-domain registers take the write at that edge. A
/// `pre_load` strobe comes one tick before `load`, so the receiver can decode the address into
/// registered per-register enables (one flip-flop each, placed beside its register) that are
/// high in the `load` tick: the tick-domain path from the handshake is then one LUT into a
/// flip-flop, instead of a chip-wide enable net through the address decode (on the HX8K core,
/// those enables were most of the tick endpoints below 150 MHz). The
/// acknowledge toggle goes back [`WRITE_ACK_DELAY`] ticks later (so that effects up to two
/// ticks after the load, such as a status bit it sets, are visible before the write is done),
/// crosses two flip-flops, and `done` is high for one control cycle. The tick side raises
/// `pre_load` at least two ticks after its synchronizer saw the request, which was toggled at
/// the edge that ended the cycle of `start`: `addr`/`data` are static for two ticks before
/// `pre_load` and three before `load`.
#[derive(LogicBlock)]
pub struct WriteCrossing<const A: usize, const D: usize> {
    /// Control clock.
    pub ctl_clock: Signal<In, Clock>,
    /// Control: start a write of `addr_in`/`data_in` (only while `busy` is low).
    pub start: Signal<In, Bit>,
    /// Control: address of the write (static from `start` until `done`).
    pub addr_in: Signal<In, Bits<A>>,
    /// Control: data of the write (static from `start` until `done`).
    pub data_in: Signal<In, Bits<D>>,
    /// Control: a write is under way (registered).
    pub busy: Signal<Out, Bit>,
    /// Control: the tick side has applied the write (one control cycle; `busy` falls after it).
    pub done: Signal<Out, Bit>,
    /// Tick clock.
    pub tick_clock: Signal<In, Clock>,
    /// Tick: `load` is high in the next tick (one tick; registered enables decoded from `addr`
    /// in this tick are high with `load`).
    pub pre_load: Signal<Out, Bit>,
    /// Tick: apply `addr`/`data` at this edge (one tick; registered).
    pub load: Signal<Out, Bit>,
    /// `addr_in`, for the tick side (static from two ticks before `pre_load`).
    pub addr: Signal<Out, Bits<A>>,
    /// `data_in`, for the tick side (static from two ticks before `pre_load`).
    pub data: Signal<Out, Bits<D>>,
    req: DFF<Bit>,
    busy_r: DFF<Bit>,
    ack_s1: DFF<Bit>,
    ack_s2: DFF<Bit>,
    req_s1: DFF<Bit>,
    req_s2: DFF<Bit>,
    taken: DFF<Bit>,
    load_r: DFF<Bit>,
    ack1: DFF<Bit>,
    ack2: DFF<Bit>,
    ack3: DFF<Bit>,
    done_w: Signal<Local, Bit>,
}

/// Ticks from a [`WriteCrossing`]'s `load` to the edge that sends its acknowledge back.
pub const WRITE_ACK_DELAY: u64 = 2;

impl<const A: usize, const D: usize> Default for WriteCrossing<A, D> {
    fn default() -> Self {
        Self {
            ctl_clock: Default::default(),
            start: Default::default(),
            addr_in: Default::default(),
            data_in: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            tick_clock: Default::default(),
            pre_load: Default::default(),
            load: Default::default(),
            addr: Default::default(),
            data: Default::default(),
            req: Default::default(),
            busy_r: Default::default(),
            ack_s1: Default::default(),
            ack_s2: Default::default(),
            req_s1: Default::default(),
            req_s2: Default::default(),
            taken: Default::default(),
            load_r: Default::default(),
            ack1: Default::default(),
            ack2: Default::default(),
            ack3: Default::default(),
            done_w: Default::default(),
        }
    }
}

impl<const A: usize, const D: usize> Logic for WriteCrossing<A, D> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, ctl_clock, req, busy_r, ack_s1, ack_s2);
        dff_setup!(self, tick_clock, req_s1, req_s2, taken, load_r, ack1, ack2, ack3);
        // Control side.
        self.ack_s1.d.next = self.ack3.q.val();
        self.ack_s2.d.next = self.ack_s1.q.val();
        self.done_w.next = self.busy_r.q.val() & (self.ack_s2.q.val() == self.req.q.val());
        if self.done_w.val() {
            self.busy_r.d.next = false;
        }
        if self.start.val() {
            self.req.d.next = !self.req.q.val();
            self.busy_r.d.next = true;
        }
        self.done.next = self.done_w.val();
        self.busy.next = self.busy_r.q.val();
        self.addr.next = self.addr_in.val();
        self.data.next = self.data_in.val();
        // Tick side.
        self.req_s1.d.next = self.req.q.val();
        self.req_s2.d.next = self.req_s1.q.val();
        self.taken.d.next = self.req_s2.q.val();
        self.pre_load.next = self.req_s2.q.val() != self.taken.q.val();
        self.load_r.d.next = self.pre_load.val();
        self.load.next = self.load_r.q.val();
        // `taken` flips at the edge that starts the `load` tick; the acknowledge three ticks
        // later, so it leaves WRITE_ACK_DELAY ticks after the load edge.
        self.ack1.d.next = self.taken.q.val();
        self.ack2.d.next = self.ack1.q.val();
        self.ack3.d.next = self.ack2.q.val();
    }
}

/// A `W`-bit value of the source clock's domain, sampled into the destination clock's domain.
///
/// A free-running handshake: the destination toggles a request, the source (seeing it through
/// two flip-flops, and one tick later from a register) copies `value` into a holding register
/// and toggles the acknowledge, and the destination (seeing that through two flip-flops) has
/// `stable` high for one cycle and
/// requests again at its end. `out` is the holding register itself: the destination may take
/// it only in a cycle with `stable` high. Then the holding register has been static for two
/// destination cycles since the acknowledge, and it changes again only after the next request
/// has crossed two source flip-flops, so the value taken is always a value `value` had (never a
/// mix of two), a few cycles of each clock late.
#[derive(LogicBlock)]
pub struct SnapshotCrossing<const W: usize> {
    /// Source clock.
    pub src_clock: Signal<In, Clock>,
    /// The value (source domain).
    pub value: Signal<In, Bits<W>>,
    /// Destination clock.
    pub dst_clock: Signal<In, Clock>,
    /// A recent `value`: a source-domain register, to be taken only while `stable`.
    pub out: Signal<Out, Bits<W>>,
    /// Destination: `out` is static in this cycle (one cycle per handshake round).
    pub stable: Signal<Out, Bit>,
    hold: DFF<Bits<W>>,
    // The copy happens in the tick after the request is seen, from a flip-flop: the hold
    // register's W clock enables hang off one register, not off a compare of two.
    take: DFF<Bit>,
    ack: DFF<Bit>,
    req_s1: DFF<Bit>,
    req_s2: DFF<Bit>,
    req: DFF<Bit>,
    ack_s1: DFF<Bit>,
    ack_s2: DFF<Bit>,
}

impl<const W: usize> Default for SnapshotCrossing<W> {
    fn default() -> Self {
        Self {
            src_clock: Default::default(),
            value: Default::default(),
            dst_clock: Default::default(),
            out: Default::default(),
            stable: Default::default(),
            hold: Default::default(),
            take: Default::default(),
            ack: Default::default(),
            req_s1: Default::default(),
            req_s2: Default::default(),
            req: Default::default(),
            ack_s1: Default::default(),
            ack_s2: Default::default(),
        }
    }
}

impl<const W: usize> Logic for SnapshotCrossing<W> {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, src_clock, hold, take, ack, req_s1, req_s2);
        dff_setup!(self, dst_clock, req, ack_s1, ack_s2);
        self.req_s1.d.next = self.req.q.val();
        self.req_s2.d.next = self.req_s1.q.val();
        self.take.d.next = (self.req_s2.q.val() != self.ack.q.val()) & !self.take.q.val();
        if self.take.q.val() {
            self.hold.d.next = self.value.val();
            self.ack.d.next = self.req_s2.q.val();
        }
        self.ack_s1.d.next = self.ack.q.val();
        self.ack_s2.d.next = self.ack_s1.q.val();
        self.stable.next = self.ack_s2.q.val() == self.req.q.val();
        if self.ack_s2.q.val() == self.req.q.val() {
            self.req.d.next = !self.req.q.val();
        }
        self.out.next = self.hold.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clocks as (period, phase) in time units, their rising edges played in time order
    /// (coincident edges in one step).
    fn edges(pa: u64, pb: u64, until: u64) -> Vec<(bool, bool)> {
        let (mut ta, mut tb) = (pa, pb / 2 + 1);
        let mut v = Vec::new();
        while ta.min(tb) < until {
            let t = ta.min(tb);
            v.push((ta == t, tb == t));
            if ta == t {
                ta += pa;
            }
            if tb == t {
                tb += pb;
            }
        }
        v
    }

    /// Every snapshot is a value the source had, snapshots come in source order, and a counter
    /// is seen to advance, at 2:1, 1:2 and non-integer ratios.
    #[test]
    fn snapshot_is_always_a_past_value() {
        for (pa, pb) in [(10u64, 20u64), (20, 10), (10, 23), (17, 10)] {
            let mut uut = SnapshotCrossing::<32>::default();
            uut.connect_all();
            let mut src = 0u64;
            let mut seen = Vec::new();
            for (ea, eb) in edges(pa, pb, 40_000) {
                uut.src_clock.next = Clock::from(false);
                uut.dst_clock.next = Clock::from(false);
                uut.value.next = (src << 16 | src).to_bits();
                simulate(&mut uut, 100);
                // Taken at the destination edge: the value before it.
                let (stable, out) = (uut.stable.val(), uut.out.val().index() as u64);
                uut.src_clock.next = Clock::from(ea);
                uut.dst_clock.next = Clock::from(eb);
                simulate(&mut uut, 100);
                if ea {
                    src += 1;
                }
                if eb && stable {
                    seen.push((out, src));
                }
            }
            let mut last = 0;
            for &(v, now) in &seen {
                assert_eq!(v >> 16, v & 0xffff, "{pa}:{pb}: a mix of two values: {v:#x}");
                let k = v & 0xffff;
                assert!(k >= last && k <= now, "{pa}:{pb}: {k} after {last}, source at {now}");
                last = k;
            }
            assert!(last > 100, "{pa}:{pb}: {last}");
        }
    }

    /// Writes from the control clock reach the tick side once each, in order, with the data
    /// static from the load strobe's request to its done.
    #[test]
    fn writes_cross_once_each() {
        for (pt, pc) in [(10u64, 20u64), (10, 23), (23, 10)] {
            let mut uut = WriteCrossing::<8, 32>::default();
            uut.connect_all();
            let mut sent = 0u32;
            let mut got = Vec::new();
            let mut pending = false;
            // The write in flight (or the next one): its address and data are held.
            let mut cur = 0u32;
            let mut pre_before = false;
            for (et, ec) in edges(pt, pc, 200_000) {
                uut.tick_clock.next = Clock::from(false);
                uut.ctl_clock.next = Clock::from(false);
                uut.start.next = false;
                simulate(&mut uut, 100);
                let mut start = false;
                if ec {
                    if uut.done.val() {
                        pending = false;
                        cur += 1;
                    } else if !pending {
                        assert!(!uut.busy.val());
                        start = true;
                        pending = true;
                    }
                }
                uut.start.next = start;
                uut.addr_in.next = ((cur & 0xff) as u64).to_bits();
                uut.data_in.next = ((cur as u64) * 3).to_bits();
                simulate(&mut uut, 100);
                if start {
                    sent += 1;
                }
                if et && uut.load.val() {
                    assert!(pre_before, "{pt}:{pc}: a load without pre_load in the tick before");
                    got.push((uut.addr.val().index() as u32, uut.data.val().index() as u32));
                }
                if et {
                    assert!(!(uut.load.val() && uut.pre_load.val()), "{pt}:{pc}: pre_load during load");
                    pre_before = uut.pre_load.val();
                }
                uut.tick_clock.next = Clock::from(et);
                uut.ctl_clock.next = Clock::from(ec);
                simulate(&mut uut, 100);
            }
            assert!(got.len() > 100, "{pt}:{pc}: {} writes", got.len());
            for (i, &(a, d)) in got.iter().enumerate() {
                assert_eq!((a, d), (i as u32 & 0xff, i as u32 * 3), "{pt}:{pc}: write {i}");
            }
            assert!(sent as usize - got.len() <= 1);
        }
    }
}
