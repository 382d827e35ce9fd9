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
//! * `fire = edge & enable & (dead == 0)`; on `fire`, `dead <= dead_time`, otherwise it counts
//!   down to 0. Edges in the `dead_time` ticks after a fire are ignored (not lost: the channel
//!   is dead, like a detector);
//! * the fire mask is registered with the time of that tick, `ts = now`. So a pin edge sampled
//!   at tick `t` is tagged with time `t + 2` ticks ([`PIN_TO_TAG_LATENCY`]).
//!
//! The record writer then takes at most one record into the FIFO per tick, in this priority:
//! the head of a 2-entry event queue (preceded by an EPOCH record when its epoch differs from
//! the last one written), else a pending LOST record, else an EPOCH record when the time's
//! epoch moved on. A new event is queued if the queue has room after this tick's pop and no
//! LOST record is pending (so a LOST record always sits where the events went missing);
//! otherwise its channel events are added to the lost count. The writer only writes while its
//! registered occupancy says the FIFO will have room, so the usable FIFO depth is
//! `FIFO_DEPTH - 1` records.

use crate::tagfmt::{Record, EPOCH_BITS, LOST_SATURATED, MAX_CHANNELS, TIME_LOW_BITS};

/// FIFO depth of the tagger, in records (the usable depth is one less).
pub const FIFO_DEPTH: usize = 512;
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

/// One queued event: channel mask and the 52-bit time split as the hardware keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct QueuedEvent {
    mask: u8,
    low: u32,
    epoch: u32,
}

/// The record writer: event queue, LOST accounting and EPOCH insertion. Shared by the cycle
/// model and the event-level model so that they cannot disagree.
#[derive(Clone, Debug, Default)]
struct RecordWriter {
    queue: [QueuedEvent; 2],
    qcount: usize,
    lost: u32,
    last_epoch: u32,
    epoch_valid: bool,
}

impl RecordWriter {
    /// One tick. `hit`/`hit_n`/`ts_*` are the registered fire mask, its popcount and its
    /// time; `room` is the registered room flag. Returns the record written, if any.
    fn step(&mut self, hit: u8, hit_n: u32, ts_low: u32, ts_epoch: u32, room: bool) -> Option<u32> {
        let mut write = None;
        let mut pop = 0;
        let mut lost_written = false;
        if room {
            if self.qcount > 0 {
                let head = self.queue[0];
                if !self.epoch_valid || head.epoch != self.last_epoch {
                    write = Some(Record::Epoch(head.epoch).encode());
                    self.last_epoch = head.epoch;
                    self.epoch_valid = true;
                } else {
                    write = Some(Record::Event { mask: head.mask, time_low: head.low }.encode());
                    pop = 1;
                }
            } else if self.lost != 0 {
                write = Some(Record::Lost(self.lost).encode());
                lost_written = true;
            } else if !self.epoch_valid || ts_epoch != self.last_epoch {
                write = Some(Record::Epoch(ts_epoch).encode());
                self.last_epoch = ts_epoch;
                self.epoch_valid = true;
            }
        }
        if pop == 1 {
            self.queue[0] = self.queue[1];
        }
        let after_pop = self.qcount - pop;
        let lost_base = if lost_written { 0 } else { self.lost };
        self.lost = lost_base;
        if hit != 0 {
            if after_pop < 2 && lost_base == 0 {
                self.queue[after_pop] = QueuedEvent { mask: hit, low: ts_low, epoch: ts_epoch };
                self.qcount = after_pop + 1;
                return write;
            }
            self.lost = (lost_base + hit_n).min(LOST_SATURATED);
        }
        self.qcount = after_pop;
        write
    }

    /// True when the writer has nothing to do until the epoch changes or an event comes.
    fn quiet(&self, ts_epoch: u32) -> bool {
        self.qcount == 0 && self.lost == 0 && self.epoch_valid && ts_epoch == self.last_epoch
    }
}

/// Register-level model of the FIFO (the rust-hdl `SynchronousFIFO`): a write becomes
/// readable two ticks later.
#[derive(Clone, Debug)]
struct FifoModel {
    mem: Vec<u32>,
    w: u32,
    wd: u32,
    r: u32,
}

impl FifoModel {
    fn new() -> Self {
        Self { mem: vec![0; FIFO_DEPTH], w: 0, wd: 0, r: 0 }
    }
}

/// Cycle-accurate model of the time tagger with `channels` inputs.
#[derive(Clone, Debug)]
pub struct TaggerModel {
    channels: usize,
    cfg: TaggerConfig,
    s1: u8,
    s2: u8,
    s3: u8,
    dead: [u16; MAX_CHANNELS],
    hit: u8,
    hit_n: u32,
    ts_low: u32,
    ts_epoch: u32,
    now_low: u32,
    now_epoch: u32,
    writer: RecordWriter,
    occ: u32,
    room: bool,
    fifo: FifoModel,
    tick: u64,
}

/// What the FIFO's read port showed in one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPort {
    /// FIFO empty flag in this tick.
    pub empty: bool,
    /// The record popped in this tick (`read` was high and the FIFO not empty).
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
            dead: [0; MAX_CHANNELS],
            hit: 0,
            hit_n: 0,
            ts_low: 0,
            ts_epoch: 0,
            now_low: 0,
            now_epoch: 0,
            writer: RecordWriter::default(),
            occ: 0,
            room: false,
            fifo: FifoModel::new(),
            tick: 0,
        }
    }

    /// Changes the configuration (takes effect from the next tick, as a register write does).
    pub fn set_config(&mut self, cfg: TaggerConfig) {
        self.cfg = cfg;
    }

    /// Ticks simulated so far.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Records in the FIFO (written and not yet read), as the writer counts them.
    pub fn occupancy(&self) -> u32 {
        self.occ
    }

    /// Advances one clock tick with pin levels `pins` (bit c = channel c) and FIFO read strobe
    /// `read`; returns what the FIFO read port showed during the tick.
    pub fn step(&mut self, pins: u8, read: bool) -> ReadPort {
        let chmask = if self.channels == 8 { 0xff } else { (1u8 << self.channels) - 1 };
        // FIFO read port.
        let f = &mut self.fifo;
        let empty = f.r == f.wd;
        let rd = read && !empty;
        let popped = rd.then(|| f.mem[(f.r as usize) % FIFO_DEPTH]);
        // Record writer.
        let write = self.writer.step(self.hit, self.hit_n, self.ts_low, self.ts_epoch, self.room);
        // FIFO registers.
        f.wd = f.w;
        if let Some(word) = write {
            f.mem[(f.w as usize) % FIFO_DEPTH] = word;
            f.w = f.w.wrapping_add(1);
        }
        if rd {
            f.r = f.r.wrapping_add(1);
        }
        self.room = self.occ <= FIFO_DEPTH as u32 - 2;
        self.occ = self.occ + write.is_some() as u32 - rd as u32;
        // Channel front ends.
        let rise = self.s2 & !self.s3;
        let fall = !self.s2 & self.s3;
        let edge = ((rise & !self.cfg.falling) | (fall & self.cfg.falling)) & self.cfg.enable & chmask;
        let mut fire = 0u8;
        for c in 0..self.channels {
            if self.dead[c] == 0 {
                if edge & (1 << c) != 0 {
                    fire |= 1 << c;
                    self.dead[c] = self.cfg.dead_time[c];
                }
            } else {
                self.dead[c] -= 1;
            }
        }
        self.hit = fire;
        self.hit_n = fire.count_ones();
        self.ts_low = self.now_low;
        self.ts_epoch = self.now_epoch;
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

/// The fast event-level model: the records the tagger writes for `edges` (sorted by tick;
/// each edge on a channel must be a clean transition of the configured polarity), assuming
/// the FIFO is read every tick, from tick 0 up to tick `end` (exclusive). Equal to what
/// [`TaggerModel`] pops with `read` held high, record for record.
///
/// # Panics
/// If `edges` is not sorted by tick, or names a channel ≥ `channels`.
pub fn tag_edges(channels: usize, cfg: &TaggerConfig, edges: &[Edge], end: u64) -> Vec<u32> {
    assert!((1..=MAX_CHANNELS).contains(&channels));
    let mut out = Vec::with_capacity(edges.len() + 16);
    let mut writer = RecordWriter::default();
    // Last fire tick per channel (dead-time bookkeeping); the dead counter is `dead_time`
    // right after a fire and reaches 0 `dead_time` ticks later.
    let mut next_ok = [0u64; MAX_CHANNELS];
    // Ticks at which the writer has hits: fire at tick f is seen by the writer at f + 1 with
    // ts = f.
    let mut i = 0;
    // `t` is the tick of the writer step being simulated.
    let mut t: u64 = 0;
    let epoch_of = |tick: u64| ((tick >> TIME_LOW_BITS) as u32) & EPOCH_MASK;
    let low_of = |tick: u64| (tick as u32) & LOW_MASK;
    // In the cycle model, room is false in tick 0 (power-on) and true afterwards when the FIFO
    // is read every tick.
    let mut pending: Option<(u8, u32, u64)> = None; // (mask, popcount, fire tick)
    while t < end {
        // Gather the fires whose writer step is tick t (fire tick t - 1, edge sampled at t - 3).
        if pending.is_none() && i < edges.len() {
            let fire_tick = edges[i].tick + PIN_TO_TAG_LATENCY;
            if fire_tick + 1 <= t {
                unreachable!("edges processed in order");
            }
            if fire_tick + 1 == t {
                let mut mask = 0u8;
                while i < edges.len() && edges[i].tick + PIN_TO_TAG_LATENCY == fire_tick {
                    let e = edges[i];
                    assert!((e.channel as usize) < channels, "edge on channel {} of {channels}", e.channel);
                    let c = e.channel as usize;
                    if cfg.enable & (1 << c) != 0 && fire_tick >= next_ok[c] {
                        mask |= 1 << c;
                        next_ok[c] = fire_tick + cfg.dead_time[c] as u64 + 1;
                    }
                    i += 1;
                }
                if i < edges.len() {
                    assert!(edges[i].tick + PIN_TO_TAG_LATENCY > fire_tick, "edges must be sorted by tick");
                }
                pending = Some((mask, mask.count_ones(), fire_tick));
            }
        }
        let (hit, hit_n) = match pending.take() {
            Some((m, n, _)) => (m, n),
            None => (0, 0),
        };
        let ts = t.saturating_sub(1);
        let room = t >= 1;
        if let Some(w) = writer.step(hit, hit_n, low_of(ts), epoch_of(ts), room) {
            out.push(w);
        }
        t += 1;
        // Skip quiet stretches: jump to the next event's writer tick or the next epoch start.
        if writer.quiet(epoch_of(t.saturating_sub(1))) && t >= 1 {
            let next_event = if i < edges.len() { edges[i].tick + PIN_TO_TAG_LATENCY + 1 } else { u64::MAX };
            // The writer sees a new epoch at the tick after `now` enters it.
            let next_epoch_tick = (((t - 1) >> TIME_LOW_BITS) + 1) << TIME_LOW_BITS;
            let jump = next_event.min(next_epoch_tick + 1).min(end);
            if jump > t {
                t = jump;
            }
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
