//! Reproducible stimulus for the tagger: detector pulses and FIFO read strobes, one byte per
//! tick (bits 0..6 pin levels, bit 7 the read strobe), from a seeded ChaCha generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How to draw the stimulus.
#[derive(Clone, Copy, Debug)]
pub struct StimulusParams {
    /// Channels driven (pins 0..channels).
    pub channels: usize,
    /// Probability per tick that an idle channel starts a pulse.
    pub pulse_prob: f64,
    /// Longest pulse, in ticks (pulses last 1..=max_width ticks; a pin then stays low at least
    /// one tick, so every pulse is one rising and one falling edge).
    pub max_width: u32,
    /// Probability per tick that every channel starts a pulse at once (simultaneous events).
    pub burst_prob: f64,
    /// Read-strobe probability per tick while the reader is active.
    pub read_prob: f64,
    /// Probability per tick that the reader stalls (stops reading) for `stall_len` ticks, so
    /// that the FIFO fills and events are lost.
    pub stall_prob: f64,
    /// Length of a reader stall, in ticks.
    pub stall_len: u32,
}

impl Default for StimulusParams {
    fn default() -> Self {
        Self {
            channels: 5,
            pulse_prob: 0.01,
            max_width: 3,
            burst_prob: 0.0005,
            read_prob: 0.5,
            stall_prob: 0.0,
            stall_len: 0,
        }
    }
}

/// Draws `ticks` ticks of stimulus.
pub fn generate(params: &StimulusParams, ticks: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(ticks);
    // Remaining high ticks per channel; 0 = low. `cool` forces one low tick after a pulse.
    let mut high = [0u32; 8];
    let mut cool = [false; 8];
    let mut stall = 0u32;
    for _ in 0..ticks {
        let burst = rng.gen_bool(params.burst_prob);
        let mut pins = 0u8;
        for c in 0..params.channels {
            if high[c] > 0 {
                high[c] -= 1;
                pins |= 1 << c;
                if high[c] == 0 {
                    cool[c] = true;
                }
            } else if cool[c] {
                cool[c] = false;
            } else if burst || rng.gen_bool(params.pulse_prob) {
                high[c] = rng.gen_range(1..=params.max_width) - 1;
                pins |= 1 << c;
                if high[c] == 0 {
                    cool[c] = true;
                }
            }
        }
        if stall > 0 {
            stall -= 1;
        } else if params.stall_prob > 0.0 && rng.gen_bool(params.stall_prob) {
            stall = params.stall_len;
        }
        let read = stall == 0 && rng.gen_bool(params.read_prob);
        out.push(pins | ((read as u8) << 7));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulses_are_separated_by_a_low_tick() {
        let s = generate(&StimulusParams { pulse_prob: 0.5, ..Default::default() }, 10_000, 1);
        let ch0: Vec<bool> = s.iter().map(|b| b & 1 != 0).collect();
        let rises = ch0.windows(2).filter(|w| !w[0] && w[1]).count();
        assert!(rises > 1000, "{rises} rising edges");
        assert_eq!(generate(&StimulusParams::default(), 100, 7), generate(&StimulusParams::default(), 100, 7));
    }
}
