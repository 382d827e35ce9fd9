//! The tag record format: the one definition that the gateware, the reference model and the
//! host all use.
//!
//! The time tagger emits a stream of 32-bit **records**. Time is counted in **ticks** of the
//! tagger clock (one tick = 1/f_clk, e.g. 6.667 ns at 150 MHz) by a free-running counter
//! split in two: the low [`TIME_LOW_BITS`] bits (the *fine* part, carried in every event
//! record) and the *epoch* above it (`epoch = time >> TIME_LOW_BITS`).
//!
//! ```text
//!  31 30 | 29 ............................................. 0
//!  kind  | payload
//!  01    | mask[7:0] (bits 29..22) | time_low[21:0]          EVENT
//!  10    | epoch[29:0]                                       EPOCH
//!  11    | lost_count[29:0]                                  LOST
//!  00    | never emitted (a zero word is invalid)
//! ```
//!
//! * **EVENT**: every channel `c` whose bit is set in `mask` had an accepted edge in the tick
//!   `epoch << 22 | time_low`. Simultaneous edges on several channels share one record, so
//!   none is merged or dropped; the host expands the mask into one tag per channel.
//! * **EPOCH**: the low 30 bits of the epoch of every following EVENT, until the next EPOCH.
//!   The gateware writes one before the first event of each new epoch, and one whenever the
//!   epoch advances while it is idle, so the host sees the time advance even without events.
//!   The host extends the 30-bit value to a full 42-bit epoch by assuming that consecutive
//!   EPOCH records are less than 2^30 epochs (2^52 ticks, 348 days at 150 MHz) apart; the
//!   resulting time is 64 bits wide.
//! * **LOST**: the number of channel events (a set bit of a mask counts as one event) that
//!   the tagger had to drop because its FIFO was full, since the previous LOST record. It
//!   sits in the stream exactly where the events went missing: after every record older
//!   than the first drop, before every record newer than the last. The count is exact up to
//!   2^29; beyond that the hardware writes [`LOST_SATURATED`] (2^30 − 1), which means "2^29 or
//!   more" and which the host reports as saturated.

use thiserror::Error;

/// Width of one record, in bits.
pub const RECORD_BITS: usize = 32;
/// Width of the fine time field of an EVENT record, in bits (ticks).
pub const TIME_LOW_BITS: usize = 22;
/// Width of the epoch field of an EPOCH record, in bits.
pub const EPOCH_BITS: usize = 30;
/// Width of the lost-count field of a LOST record, in bits.
pub const LOST_BITS: usize = 30;
/// Width of the channel mask of an EVENT record: the most channels one tagger can have.
pub const MAX_CHANNELS: usize = 8;
/// Bit position of the channel mask in an EVENT record.
pub const MASK_SHIFT: usize = TIME_LOW_BITS;
/// Bit position of the 2-bit kind field.
pub const KIND_SHIFT: usize = 30;
/// Kind field of an EVENT record.
pub const KIND_EVENT: u32 = 0b01;
/// Kind field of an EPOCH record.
pub const KIND_EPOCH: u32 = 0b10;
/// Kind field of a LOST record.
pub const KIND_LOST: u32 = 0b11;
/// A LOST count at this value means "2^29 or more channel events".
pub const LOST_SATURATED: u32 = (1 << LOST_BITS) - 1;

const TIME_LOW_MASK: u32 = (1 << TIME_LOW_BITS) - 1;
const PAYLOAD_MASK: u32 = (1 << KIND_SHIFT) - 1;

/// One decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// Edges on the channels set in `mask` (bit c = channel c) at fine time `time_low` (ticks).
    Event {
        /// Channel mask, bit c = channel c.
        mask: u8,
        /// Low [`TIME_LOW_BITS`] bits of the time, in ticks.
        time_low: u32,
    },
    /// The low [`EPOCH_BITS`] bits of the epoch of the events that follow.
    Epoch(u32),
    /// Number of channel events dropped for a full FIFO since the previous LOST record.
    Lost(u32),
}

/// A word that is not a valid record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// Kind bits 00: never written by the gateware (an idle or corrupted word).
    #[error("invalid tag record {0:#010x}: kind bits 00 are never emitted")]
    InvalidKind(u32),
    /// An EVENT record with an empty channel mask.
    #[error("invalid tag record {0:#010x}: EVENT with an empty channel mask")]
    EmptyMask(u32),
}

impl Record {
    /// Encodes the record as a 32-bit word. Fields wider than their slot are truncated.
    pub fn encode(self) -> u32 {
        match self {
            Record::Event { mask, time_low } => {
                (KIND_EVENT << KIND_SHIFT) | ((mask as u32) << MASK_SHIFT) | (time_low & TIME_LOW_MASK)
            }
            Record::Epoch(e) => (KIND_EPOCH << KIND_SHIFT) | (e & PAYLOAD_MASK),
            Record::Lost(n) => (KIND_LOST << KIND_SHIFT) | (n & PAYLOAD_MASK),
        }
    }

    /// Decodes a 32-bit word.
    pub fn decode(word: u32) -> Result<Record, RecordError> {
        let payload = word & PAYLOAD_MASK;
        match word >> KIND_SHIFT {
            KIND_EVENT => {
                let mask = (payload >> MASK_SHIFT) as u8;
                if mask == 0 {
                    return Err(RecordError::EmptyMask(word));
                }
                Ok(Record::Event { mask, time_low: payload & TIME_LOW_MASK })
            }
            KIND_EPOCH => Ok(Record::Epoch(payload)),
            KIND_LOST => Ok(Record::Lost(payload)),
            _ => Err(RecordError::InvalidKind(word)),
        }
    }
}

/// One time tag: a channel and the full 64-bit time of its edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    /// Time of the edge, in ticks since the tagger's counter started.
    pub time: u64,
    /// Channel number (0-based).
    pub channel: u8,
}

/// What the decoder produced from one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing to report (an EPOCH record).
    None,
    /// Tags of one EVENT record, in channel order; `count` of `tags` are valid.
    Tags {
        /// The tags; only the first `count` are valid.
        tags: [Tag; MAX_CHANNELS],
        /// Number of valid tags.
        count: usize,
    },
    /// Events were lost here: at least this many channel events (saturated if
    /// `saturated`).
    Lost {
        /// Number of channel events lost.
        count: u64,
        /// True when the hardware counter saturated: the loss was at least `count`.
        saturated: bool,
    },
}

/// A stream decoding error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StreamError {
    /// The word is not a record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An EVENT came before any EPOCH record, so its time is unknown.
    #[error("tag stream: EVENT record {0:#010x} before any EPOCH record (stream must start at an EPOCH)")]
    EventBeforeEpoch(u32),
}

/// Turns a record stream into 64-bit tags, tracking the epoch and counting losses.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    epoch: Option<u64>,
    lost: u64,
    lost_saturated: bool,
    events: u64,
}

impl StreamDecoder {
    /// A decoder at the start of a stream (the first record must be an EPOCH).
    pub fn new() -> Self {
        Self::default()
    }

    /// The full epoch of the next event, once known.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Channel events the hardware reported lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// True if any LOST record was saturated (the true loss was larger than [`Self::lost`]).
    pub fn lost_saturated(&self) -> bool {
        self.lost_saturated
    }

    /// Channel events decoded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Decodes one record word.
    pub fn push(&mut self, word: u32) -> Result<Decoded, StreamError> {
        match Record::decode(word)? {
            Record::Epoch(e) => {
                let e = e as u64;
                let full = match self.epoch {
                    None => e,
                    Some(prev) => {
                        let m = 1u64 << EPOCH_BITS;
                        prev + (e.wrapping_sub(prev) & (m - 1))
                    }
                };
                self.epoch = Some(full);
                Ok(Decoded::None)
            }
            Record::Lost(n) => {
                self.lost += n as u64;
                let saturated = n == LOST_SATURATED;
                self.lost_saturated |= saturated;
                Ok(Decoded::Lost { count: n as u64, saturated })
            }
            Record::Event { mask, time_low } => {
                let epoch = self.epoch.ok_or(StreamError::EventBeforeEpoch(word))?;
                let time = (epoch << TIME_LOW_BITS) | time_low as u64;
                let mut tags = [Tag { time, channel: 0 }; MAX_CHANNELS];
                let mut count = 0;
                for c in 0..MAX_CHANNELS {
                    if mask & (1 << c) != 0 {
                        tags[count] = Tag { time, channel: c as u8 };
                        count += 1;
                    }
                }
                self.events += count as u64;
                Ok(Decoded::Tags { tags, count })
            }
        }
    }

    /// Decodes a whole slice of records, appending tags to `out`.
    pub fn push_all(&mut self, words: &[u32], out: &mut Vec<Tag>) -> Result<(), StreamError> {
        for &w in words {
            if let Decoded::Tags { tags, count } = self.push(w)? {
                out.extend_from_slice(&tags[..count]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip() {
        for r in [
            Record::Event { mask: 0b1011, time_low: 0x3f_ffff },
            Record::Epoch(0x3fff_ffff),
            Record::Lost(17),
        ] {
            assert_eq!(Record::decode(r.encode()).unwrap(), r);
        }
        assert_eq!(Record::decode(0), Err(RecordError::InvalidKind(0)));
        assert_eq!(Record::decode(0x4000_0001), Err(RecordError::EmptyMask(0x4000_0001)));
    }

    #[test]
    fn epoch_extension_is_unambiguous_across_wrap() {
        let mut d = StreamDecoder::new();
        d.push(Record::Epoch((1 << EPOCH_BITS) - 1).encode()).unwrap();
        d.push(Record::Epoch(2).encode()).unwrap();
        assert_eq!(d.epoch(), Some((1 << EPOCH_BITS) + 2));
        let mut out = Vec::new();
        d.push_all(&[Record::Event { mask: 0b101, time_low: 5 }.encode()], &mut out).unwrap();
        let t = (((1u64 << EPOCH_BITS) + 2) << TIME_LOW_BITS) | 5;
        assert_eq!(out, vec![Tag { time: t, channel: 0 }, Tag { time: t, channel: 2 }]);
    }

    #[test]
    fn event_before_epoch_is_an_error() {
        let mut d = StreamDecoder::new();
        let w = Record::Event { mask: 1, time_low: 0 }.encode();
        assert_eq!(d.push(w), Err(StreamError::EventBeforeEpoch(w)));
    }
}
