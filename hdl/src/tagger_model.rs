//! Bit-exact Rust reference models of the time tagger ([`crate::tagger::TimeTagger`]).
//!
//! * [`TaggerModel`] is cycle-accurate: pins and FIFO read strobes in, one step per clock
//!   tick, FIFO output out. The gateware must match it bit for bit, cycle for cycle.
//! * [`tag_edges`] is the fast event-level model for long simulated passes: detector edge
//!   times in, the record stream out, assuming the host drains the FIFO fast enough that it
//!   never fills. It runs the same record-writer state machine as the cycle model, but only
//!   on the ticks where something happens, so its output equals the cycle model's with the
//!   read strobe held high (a test checks this).
//!
//! # Cycle behaviour (the specification the gateware implements)
//! Per channel `c`, with `pin(t)` the input sampled at the end of tick `t`:
//! * two synchronizer flip-flops `s1 <= pin`, `s2 <= s1`, and `s3 <= s2` for edge detection;
//! * `edge = falling ? (!s2 & s3) : (s2 & !s3)`;
//! * `fire = edge & enable & !busy`; on `fire` the dead-time counter loads `dead_time` and the
//!   channel is busy for that many ticks. Edges while busy are ignored (not lost: the channel
//!   is dead, as a detector is). The settings are used as they are (no register of their own);
//! * the fire mask is registered with the time of its tick (stage 1), again with partial
//!   popcounts (stage 1b), and again with its popcount and an epoch-boundary flag (stage 2). A pin edge sampled at tick `t` is tagged
//!   with time `t + 2` ticks ([`PIN_TO_TAG_LATENCY`]).
//!
//! **Entry writer** (stage 2 → event FIFO, at most one 64-bit entry per tick, all decisions from
//! registers): entries carry their epoch and a payload that is already the final record. If
//! the FIFO has room (a registered, conservative flag: usable depth [`EVENT_FIFO_DEPTH`] − 4;
//! the write into the FIFO is registered too):
//! a pending lost count is written first as a LOST entry (an event in that same tick is then
//! dropped and starts the next lost count); else an event is written as an EVENT entry; else
//! a TICK entry marks an epoch boundary (or power-on) so the host sees time advance. Without
//! room, an event's channel events are added to the lost count, which saturates: once it
//! reaches 2^29 it becomes [`LOST_SATURATED`] ("2^29 or more").
//!
//! **Record formatter** (event FIFO → read port): takes one entry, compares its epoch with the
//! last one sent (a registered comparison), and presents an EPOCH record first when it differs, then the entry's record
//! (nothing for a TICK); it takes five ticks per entry. The read port holds one record: `empty`
//! is low while it does, and `read` takes it.

use crate::tagfmt::{Record, EPOCH_BITS, LOST_BITS, LOST_SATURATED, MAX_CHANNELS, TIME_LOW_BITS};

/// Depth of the tagger's event FIFO, in entries (one entry per event, lost count or epoch
/// tick; the usable depth is two less).
pub const EVENT_FIFO_DEPTH: usize = 256;
/// Ticks from a pin edge being sampled to the time stamp it gets.
pub const PIN_TO_TAG_LATENCY: u64 = 2;
/// Width of a dead-time setting, in bits (ticks).
pub const DEAD_TIME_BITS: usize = 16;

const EPOCH_MASK: u32 = (1 << EPOCH_BITS) - 1;
const LOW_MASK: u32 = (1 << TIME_LOW_BITS) - 1;

/// Per-channel configuration of the tagger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaggerConfig {
    /// Channel enable mask (bit c = channel c).
    pub enable: u8,
    /// Falling-edge select mask (bit c set = channel c tags falling edges, else rising).
    pub falling: u8,
    /// Dead time per channel after each accepted edge, in ticks.
    pub dead_time: [u16; MAX_CHANNELS],
}

impl Default for TaggerConfig {
    /// All channels enabled, rising edges, no dead time.
    fn default() -> Self {
        Self { enable: 0xff, falling: 0, dead_time: [0; MAX_CHANNELS] }
    }
}

/// Kind of an event-FIFO entry (bits 63..62).
pub(crate) const ENTRY_EVENT: u64 = 0b01;
pub(crate) const ENTRY_TICK: u64 = 0b10;
pub(crate) const ENTRY_LOST: u64 = 0b11;

fn entry(kind: u64, epoch: u32, payload: u32) -> u64 {
    (kind << 62) | ((epoch as u64) << 32) | payload as u64
}

/// The entry writer's inputs in one tick: the stage-2 fire mask and its time, whether the
/// epoch of `ts_epoch` began this tick, and the registered room flag.
#[derive(Clone, Copy, Debug, Default)]
struct WriterInput {
    hit: u8,
    ts_low: u32,
    ts_epoch: u32,
    boundary: bool,
    room: bool,
}

/// The entry writer: lost accounting and epoch ticks. Shared by the cycle model and the
/// event-level model so that they cannot disagree.
#[derive(Clone, Debug, Default)]
struct EntryWriter {
    lost: u32,
    started: bool,
}

impl EntryWriter {
    /// One tick; returns the entry written, if any.
    fn step(&mut self, x: WriterInput) -> Option<u64> {
        let n = x.hit.count_ones();
        let add_lost = |lost: u32| if lost >= 1 << (LOST_BITS - 1) { LOST_SATURATED } else { lost + n };
        if x.room {
            if self.lost != 0 {
                let e = entry(ENTRY_LOST, x.ts_epoch, Record::Lost(self.lost).encode());
                self.lost = if x.hit != 0 { n } else { 0 };
                self.started = true;
                return Some(e);
            }
            if x.hit != 0 {
                self.started = true;
                return Some(entry(ENTRY_EVENT, x.ts_epoch, Record::Event { mask: x.hit, time_low: x.ts_low }.encode()));
            }
            if x.boundary || !self.started {
                self.started = true;
                return Some(entry(ENTRY_TICK, x.ts_epoch, 0));
            }
        } else if x.hit != 0 {
            self.lost = add_lost(self.lost);
        }
        None
    }

    /// True when the writer has nothing to do until an epoch boundary or an event.
    fn quiet(&self) -> bool {
        self.lost == 0 && self.started
    }
}

/// Epoch tracking of the record formatter: the records an entry becomes, in order.
#[derive(Clone, Debug, Default)]
struct EpochTracker {
    last: Option<u32>,
}

impl EpochTracker {
    /// The EPOCH record due before `entry` (if its epoch is new) and the entry's own record
    /// (none for a TICK).
    fn records(&mut self, entry: u64) -> (Option<u32>, Option<u32>) {
        let epoch = ((entry >> 32) as u32) & EPOCH_MASK;
        let ep = (self.last != Some(epoch)).then(|| Record::Epoch(epoch).encode());
        self.last = Some(epoch);
        let rec = (entry >> 62 != ENTRY_TICK).then_some(entry as u32);
        (ep, rec)
    }
}

/// Register-level model of [`crate::entry_fifo::EntryFifo`].
#[derive(Clone, Debug)]
struct FifoModel {
    mem: Vec<u64>,
    w: u32,
    r: u32,
    nonempty: bool,
    data_out: u64,
}

impl FifoModel {
    fn new(depth: usize) -> Self {
        Self { mem: vec![0; depth], w: 0, r: 0, nonempty: false, data_out: 0 }
    }

    /// Clocks the FIFO registers with this tick's write and read strobes.
    fn clock(&mut self, write: Option<u64>, read: bool) {
        let n = self.mem.len();
        self.data_out = self.mem[self.r as usize % n];
        self.nonempty = self.w != self.r;
        if let Some(x) = write {
            self.mem[self.w as usize % n] = x;
            self.w = (self.w + 1) % n as u32;
        }
        if read {
            self.r = (self.r + 1) % n as u32;
        }
    }
}

/// Register-level model of the record formatter (event FIFO → read port). `phase` 0 waits
/// for an entry and reads it, 1 latches it, 2 lets the registered epoch comparison settle,
/// 3 sends an EPOCH record if the epoch is new, 4 sends the entry's record.
#[derive(Clone, Debug, Default)]
struct Formatter {
    ent: u64,
    phase: u8,
    epoch_eq: bool,
    out: u32,
    out_valid: bool,
    last_epoch: u32,
    epoch_valid: bool,
}

impl Formatter {
    /// One tick: `fifo_nonempty`/`fifo_data` from the event FIFO, `read` from the host side.
    /// Returns (event FIFO read strobe, record popped on the read port).
    fn step(&mut self, fifo_nonempty: bool, fifo_data: u64, read: bool) -> (bool, Option<u32>) {
        let popped = (read && self.out_valid).then_some(self.out);
        let fifo_rd = self.phase == 0 && fifo_nonempty;
        let epoch = ((self.ent >> 32) as u32) & EPOCH_MASK;
        let mut next = self.clone();
        next.epoch_eq = epoch == self.last_epoch;
        if popped.is_some() {
            next.out_valid = false;
        }
        match self.phase {
            0 if fifo_rd => next.phase = 1,
            1 => {
                next.ent = fifo_data;
                next.phase = 2;
            }
            2 => next.phase = 3,
            3 if !self.out_valid => {
                if !self.epoch_valid || !self.epoch_eq {
                    next.out = Record::Epoch(epoch).encode();
                    next.out_valid = true;
                    next.last_epoch = epoch;
                    next.epoch_valid = true;
                }
                next.phase = 4;
            }
            4 if !self.out_valid => {
                if self.ent >> 62 != ENTRY_TICK {
                    next.out = self.ent as u32;
                    next.out_valid = true;
                }
                next.phase = 0;
            }
            _ => {}
        }
        *self = next;
        (fifo_rd, popped)
    }
}

/// Per-channel front-end state.
#[derive(Clone, Copy, Debug, Default)]
struct ChannelState {
    /// Dead-time counter, in ticks.
    dead: u16,
    /// Registered "the channel is dead" (`dead != 0`).
    dead_busy: bool,
}

/// Cycle-accurate model of the time tagger with `channels` inputs.
#[derive(Clone, Debug)]
pub struct TaggerModel {
    channels: usize,
    cfg: TaggerConfig,
    s1: u8,
    s2: u8,
    s3: u8,
    ch: [ChannelState; MAX_CHANNELS],
    // Stage 1: fire mask and its time.
    hit1: u8,
    ts1_low: u32,
    ts1_epoch: u32,
    // Stage 1b (partial popcounts in the gateware).
    hit1b: u8,
    ts1b_low: u32,
    ts1b_epoch: u32,
    // Stage 2: what the entry writer sees.
    w: WriterInput,
    now_low: u32,
    now_epoch: u32,
    writer: EntryWriter,
    /// The entry written into the event FIFO next tick (the write is registered).
    wq: Option<u64>,
    occ: u32,
    fifo: FifoModel,
    fmt: Formatter,
    tick: u64,
    fired: u64,
}

/// What the read port showed in one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPort {
    /// Read-port empty flag in this tick.
    pub empty: bool,
    /// The record popped in this tick (`read` was high and the port not empty).
    pub popped: Option<u32>,
}

impl TaggerModel {
    /// A tagger with `channels` inputs (1..=8) in its power-on state.
    ///
    /// # Panics
    /// If `channels` is 0 or more than [`MAX_CHANNELS`].
    pub fn new(channels: usize, cfg: TaggerConfig) -> Self {
        assert!((1..=MAX_CHANNELS).contains(&channels), "channels must be 1..=8, got {channels}");
        Self {
            channels,
            cfg,
            s1: 0,
            s2: 0,
            s3: 0,
            ch: [ChannelState::default(); MAX_CHANNELS],
            hit1: 0,
            ts1_low: 0,
            ts1_epoch: 0,
            hit1b: 0,
            ts1b_low: 0,
            ts1b_epoch: 0,
            w: WriterInput::default(),
            now_low: 0,
            now_epoch: 0,
            writer: EntryWriter::default(),
            wq: None,
            occ: 0,
            fifo: FifoModel::new(EVENT_FIFO_DEPTH),
            fmt: Formatter::default(),
            tick: 0,
            fired: 0,
        }
    }

    /// Changes the configuration. The front ends use the settings as they are, as in the
    /// gateware, so they apply to the edges of this tick on.
    pub fn set_config(&mut self, cfg: TaggerConfig) {
        self.cfg = cfg;
    }

    /// Ticks simulated so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Channel events accepted by the front ends so far (each is either tagged or counted
    /// in a LOST record).
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Entries in the event FIFO (written and not yet taken by the formatter).
    pub fn occupancy(&self) -> u32 {
        self.occ
    }

    /// Advances one clock tick with pin levels `pins` (bit c = channel c) and read strobe
    /// `read`; returns what the read port showed during the tick.
    pub fn step(&mut self, pins: u8, read: bool) -> ReadPort {
        let chmask = if self.channels == 8 { 0xff } else { (1u8 << self.channels) - 1 };
        let empty = !self.fmt.out_valid;
        let (fifo_rd, popped) = self.fmt.step(self.fifo.nonempty, self.fifo.data_out, read);
        let write = self.writer.step(self.w);
        let fifo_write = self.wq;
        self.fifo.clock(fifo_write, fifo_rd);
        self.wq = write;
        // Stage 2 and the registered room flag (the occupancy counts the FIFO's own writes,
        // so the room check allows for the decision in flight: usable depth DEPTH - 4).
        let room = self.occ <= EVENT_FIFO_DEPTH as u32 - 4;
        self.occ = self.occ + fifo_write.is_some() as u32 - fifo_rd as u32;
        self.w = WriterInput {
            hit: self.hit1b,
            ts_low: self.ts1b_low,
            ts_epoch: self.ts1b_epoch,
            boundary: self.ts1b_epoch != self.w.ts_epoch,
            room,
        };
        self.hit1b = self.hit1;
        self.ts1b_low = self.ts1_low;
        self.ts1b_epoch = self.ts1_epoch;
        // Channel front ends (stage 1).
        let rise = self.s2 & !self.s3;
        let fall = !self.s2 & self.s3;
        let mut fire = 0u8;
        for c in 0..self.channels {
            let ch = &mut self.ch[c];
            let (enable, falling) = (self.cfg.enable & (1 << c) != 0, self.cfg.falling & (1 << c) != 0);
            let edge = if falling { fall } else { rise } & (1 << c) != 0;
            if edge && enable && !ch.dead_busy {
                fire |= 1 << c;
                ch.dead = self.cfg.dead_time[c];
                ch.dead_busy = self.cfg.dead_time[c] != 0;
            } else if ch.dead_busy {
                ch.dead_busy = ch.dead != 1;
                ch.dead = ch.dead.wrapping_sub(1);
            }
        }
        self.hit1 = fire;
        self.fired += fire.count_ones() as u64;
        self.ts1_low = self.now_low;
        self.ts1_epoch = self.now_epoch;
        self.s3 = self.s2;
        self.s2 = self.s1;
        self.s1 = pins & chmask;
        // Time base.
        if self.now_low == LOW_MASK {
            self.now_epoch = (self.now_epoch + 1) & EPOCH_MASK;
        }
        self.now_low = (self.now_low + 1) & LOW_MASK;
        self.tick += 1;
        ReadPort { empty, popped }
    }
}

/// One detector edge for the event-level model: the tick at which the pin was sampled high
/// (or low, for a falling-edge channel) and the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Tick at which the new pin level was first sampled.
    pub tick: u64,
    /// Channel number.
    pub channel: u8,
}

/// Ticks from the fire of an edge to the writer seeing it.
const FIRE_TO_WRITER: u64 = 3;

/// The fast event-level model: the records the tagger produces for `edges` (sorted by tick;
/// each edge on a channel must be a clean transition of the configured polarity, and the
/// configuration constant) from tick 0 up to tick `end` (exclusive), assuming the event FIFO
/// never fills (the host drains faster than events arrive). Equal, record for record, to what
/// [`TaggerModel`] pops with `read` held high once it has drained.
///
/// # Panics
/// If `edges` is not sorted by tick, or names a channel ≥ `channels`.
pub fn tag_edges(channels: usize, cfg: &TaggerConfig, edges: &[Edge], end: u64) -> Vec<u32> {
    assert!((1..=MAX_CHANNELS).contains(&channels));
    let mut out = Vec::with_capacity(edges.len() + 16);
    let mut writer = EntryWriter::default();
    let mut epochs = EpochTracker::default();
    // First tick at which each channel may fire again (dead-time bookkeeping).
    let mut next_ok = [0u64; MAX_CHANNELS];
    let epoch_of = |tick: u64| ((tick >> TIME_LOW_BITS) as u32) & EPOCH_MASK;
    let low_of = |tick: u64| (tick as u32) & LOW_MASK;
    let mut i = 0;
    // `t` is the tick of the writer step being simulated; it sees the fires of tick t - 3.
    let mut t: u64 = 0;
    while t < end {
        let mut hit = 0u8;
        if i < edges.len() && t >= FIRE_TO_WRITER {
            let fire_tick = t - FIRE_TO_WRITER;
            assert!(edges[i].tick + PIN_TO_TAG_LATENCY >= fire_tick, "edges must be sorted by tick");
            while i < edges.len() && edges[i].tick + PIN_TO_TAG_LATENCY == fire_tick {
                let e = edges[i];
                assert!((e.channel as usize) < channels, "edge on channel {} of {channels}", e.channel);
                let c = e.channel as usize;
                if cfg.enable & (1 << c) != 0 && fire_tick >= next_ok[c] {
                    hit |= 1 << c;
                    next_ok[c] = fire_tick + cfg.dead_time[c] as u64 + 1;
                }
                i += 1;
            }
        }
        let ts = t.saturating_sub(FIRE_TO_WRITER);
        let x = WriterInput {
            hit,
            ts_low: low_of(ts),
            ts_epoch: epoch_of(ts),
            boundary: t > FIRE_TO_WRITER && epoch_of(ts) != epoch_of(ts - 1),
            // The room flag is low in the power-on tick only.
            room: t >= 1,
        };
        if let Some(e) = writer.step(x) {
            let (ep, rec) = epochs.records(e);
            out.extend(ep);
            out.extend(rec);
        }
        t += 1;
        // Skip quiet stretches: jump to the next event's writer tick or the next boundary.
        if writer.quiet() && t > FIRE_TO_WRITER {
            let next_event =
                if i < edges.len() { edges[i].tick + PIN_TO_TAG_LATENCY + FIRE_TO_WRITER } else { u64::MAX };
            let next_boundary = ((((t - FIRE_TO_WRITER) >> TIME_LOW_BITS) + 1) << TIME_LOW_BITS) + FIRE_TO_WRITER;
            t = t.max(next_event.min(next_boundary).min(end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tagfmt::{StreamDecoder, Tag};

    fn run_cycle(channels: usize, cfg: TaggerConfig, pins: &[u8]) -> Vec<u32> {
        let mut m = TaggerModel::new(channels, cfg);
        pins.iter().filter_map(|&p| m.step(p, true).popped).collect()
    }

    #[test]
    fn first_record_is_epoch_and_tags_have_latency() {
        let mut pins = vec![0u8; 40];
        pins[10] = 0b01;
        pins[11] = 0b01;
        pins[20] = 0b11;
        let recs = run_cycle(2, TaggerConfig::default(), &pins);
        let mut d = StreamDecoder::new();
        let mut tags = Vec::new();
        d.push_all(&recs, &mut tags).unwrap();
        assert_eq!(recs[0], Record::Epoch(0).encode());
        assert_eq!(
            tags,
            vec![Tag { time: 12, channel: 0 }, Tag { time: 22, channel: 0 }, Tag { time: 22, channel: 1 }]
        );
    }

    #[test]
    fn dead_time_suppresses_edges() {
        let mut cfg = TaggerConfig::default();
        cfg.dead_time[0] = 5;
        let mut pins = vec![0u8; 60];
        for t in [10, 12, 15, 18, 30] {
            pins[t] = 1;
        }
        let recs = run_cycle(1, cfg, &pins);
        let mut tags = Vec::new();
        StreamDecoder::new().push_all(&recs, &mut tags).unwrap();
        // Fire at 12; dead through tick 17; the edges at 14 (pin 12) and 17 (pin 15) are
        // ignored, 20 (pin 18) and 32 (pin 30) accepted.
        let times: Vec<u64> = tags.iter().map(|t| t.time).collect();
        assert_eq!(times, vec![12, 20, 32]);
    }
}
