//! Analysis of a recorded tag stream, in software: singles and rates per channel, losses,
//! and coincidences and the arrival-time-difference histogram between two channels — the
//! same quantities the core counts in gateware, so a replayed file can be compared with
//! what the device reported live. Times are in ticks of the recording's clock.

use qkd_hdl::tagfmt::Tag;
use serde::Serialize;

/// What a pass over a tag stream found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StreamSummary {
    /// Tags per channel.
    pub singles: Vec<u64>,
    /// Time of the first and last tag, in ticks.
    pub span: Option<(u64, u64)>,
    /// Channel events reported lost by LOST records.
    pub lost: u64,
    /// LOST records seen.
    pub loss_records: u64,
    /// Coincidences between the pair's channels (see [`CoincidenceSpec`]).
    pub coincidences: u64,
    /// Histogram of `t_b − t_a` for the pair, bins of `bin` ticks from `-range` to `range`.
    pub histogram: Vec<u64>,
}

/// Which pair of channels to correlate, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CoincidenceSpec {
    /// First channel.
    pub a: u8,
    /// Second channel.
    pub b: u8,
    /// Delay added to channel `a`'s times before matching, in ticks.
    pub delay_a: i64,
    /// A coincidence: |t_b − (t_a + delay_a)| ≤ window, in ticks.
    pub window: u64,
    /// Histogram half-range, in ticks.
    pub range: u64,
    /// Histogram bin width, in ticks.
    pub bin: u64,
}

/// Accumulates a [`StreamSummary`] block by block.
pub struct StreamAnalyzer {
    spec: CoincidenceSpec,
    summary: StreamSummary,
    /// Recent channel-a times (delay applied), within `range` of the newest tag.
    recent_a: std::collections::VecDeque<i64>,
}

impl StreamAnalyzer {
    /// An analyzer for `channels` channels correlating the pair in `spec`.
    pub fn new(channels: usize, spec: CoincidenceSpec) -> Self {
        let bins = (2 * spec.range / spec.bin.max(1) + 1) as usize;
        StreamAnalyzer {
            spec,
            summary: StreamSummary { singles: vec![0; channels.max(spec.a.max(spec.b) as usize + 1)], histogram: vec![0; bins], ..Default::default() },
            recent_a: Default::default(),
        }
    }

    /// Adds tags (in stream order, time-sorted) and a loss count.
    pub fn add(&mut self, tags: &[Tag], lost: u64, loss_records: u64) {
        let s = &mut self.summary;
        s.lost += lost;
        s.loss_records += loss_records;
        let spec = self.spec;
        let range = spec.range as i64;
        // Channel-b tags are matched against channel-a tags up to `range` before and after;
        // b tags wait in `pending_b` until a's horizon passes them.
        for t in tags {
            let c = t.channel as usize;
            if c >= s.singles.len() {
                s.singles.resize(c + 1, 0);
            }
            s.singles[c] += 1;
            s.span = Some(match s.span {
                None => (t.time, t.time),
                Some((a, b)) => (a.min(t.time), b.max(t.time)),
            });
            if t.channel == spec.a {
                self.recent_a.push_back(t.time as i64 + spec.delay_a);
            }
            if t.channel == spec.b {
                let tb = t.time as i64;
                while self.recent_a.front().is_some_and(|&ta| ta < tb - range) {
                    self.recent_a.pop_front();
                }
                for &ta in &self.recent_a {
                    let d = tb - ta;
                    if d.abs() <= spec.window as i64 {
                        s.coincidences += 1;
                    }
                    if d.abs() <= range {
                        let bin = ((d + range) as u64 / spec.bin.max(1)) as usize;
                        if let Some(h) = s.histogram.get_mut(bin) {
                            *h += 1;
                        }
                    }
                }
            }
        }
    }

    /// The summary so far. (Channel-a tags arriving after a channel-b tag are not matched
    /// to it: pass `delay_a` ≥ the pair's delay so channel a leads.)
    pub fn summary(&self) -> &StreamSummary {
        &self.summary
    }
}
