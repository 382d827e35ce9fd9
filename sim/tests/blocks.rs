//! The Verilated coincidence counter and test-signal generator against their reference models,
//! and the tag crossing between two free-running clocks.

use qkd_hdl::coincidence::{CoincidenceConfig, CoincidenceModel};
use qkd_hdl::testsig::{TestSignalConfig, TestSignalModel};
use qkd_sim::stimulus::{generate, StimulusParams};
use qkd_sim::verilated::{VerilatedCoincidence, VerilatedTestSignal, VerilatedTagger};

const CH: usize = VerilatedTagger::CHANNELS;

#[test]
fn coincidence_counter_bit_exact_over_a_million_ticks() {
    let cfgs = [
        CoincidenceConfig { delay: [0, 3, 17, 0, 63, 0, 0, 0], window: 4, group: [0b00011, 0b00101, 0b10110, 0b01111], gate: 10_007 },
        CoincidenceConfig { delay: [5, 0, 0, 9, 1, 0, 0, 0], window: 0, group: [0b11111, 0b00011, 0, 0b11000], gate: 3_001 },
        CoincidenceConfig { delay: [0; 8], window: 200, group: [0b00001, 0b10001, 0b00110, 0b01100], gate: 65_536 },
        // Below the minimum gate: counts as 64 ticks.
        CoincidenceConfig { delay: [2, 0, 1, 0, 0, 0, 0, 0], window: 1, group: [0b00011, 0b00111, 0b01000, 0b10001], gate: 37 },
    ];
    let stim = generate(&StimulusParams { pulse_prob: 0.04, max_width: 1, burst_prob: 0.003, ..Default::default() }, 1_050_000, 8);
    let mut v = VerilatedCoincidence::new();
    let mut m = CoincidenceModel::new(CH);
    let mut coincs = 0u64;
    let mut prev = 0u8;
    let (mut seq, mut gates) = (0u16, 0u32);
    for (t, &s) in stim.iter().enumerate() {
        let cfg = &cfgs[t / 262_500];
        v.set_config(cfg);
        // Channel events: rising edges of the stimulus pins.
        let pins = s & 0x1f;
        let hits = pins & !prev;
        prev = pins;
        // Read the count words in turn, as a host would.
        let rd = (t % 16) as u8;
        let a = v.step(hits, rd);
        let b = m.step(hits, rd, cfg);
        assert_eq!(a, b, "tick {t}");
        if a.gate_seq != seq {
            seq = a.gate_seq;
            assert_eq!(Some(m.counts()), m.expected_counts(), "gate {seq}: counts differ from the events");
            gates += 1;
        }
        coincs += a.coinc.count_ones() as u64;
    }
    assert!(coincs > 10_000, "{coincs} coincidences");
    assert!(gates > 100, "{gates} gates");
}

#[test]
fn test_signal_bit_exact() {
    let cfgs = [
        TestSignalConfig { enable: true, threshold: [3000, 100, 20000, 0, 65535, 0, 0, 0], ..Default::default() },
        TestSignalConfig {
            enable: true,
            threshold: [4000, 0, 500, 500, 100, 0, 0, 0],
            pair_enable: true,
            pair_src: 0,
            pair_dst: 1,
            pair_delay: 7,
        },
        TestSignalConfig { enable: false, threshold: [9000; 8], ..Default::default() },
    ];
    let mut v = VerilatedTestSignal::new();
    let mut m = TestSignalModel::new(CH);
    let mut ones = 0u64;
    for t in 0..600_000usize {
        let cfg = &cfgs[(t / 200_000) % 3];
        v.set_config(cfg);
        let a = v.step();
        assert_eq!(a, m.step(cfg), "tick {t}");
        ones += a.count_ones() as u64;
    }
    assert!(ones > 100_000);
}

/// The tag crossing (`qkd_hdl::tag_crossing`) between two free-running clocks: every record
/// offered in the tick domain comes out once, in order, in the control domain, at clock
/// ratios both ways, with jitter, with a bursty source and a slow reader (back-pressure).
#[test]
fn tag_crossing_delivers_every_record_in_order_across_clock_ratios() {
    use qkd_sim::verilated_extra::VerilatedTagCrossing;
    use rand::{Rng, SeedableRng};
    // (tick period, control period, jitter) in ps, source offer rate, reader rate.
    let cases = [
        (6_667u64, 13_333u64, 0u64, 0.9, 1.0),
        (6_667, 13_333, 300, 1.0, 0.3),
        (16_667, 6_667, 500, 1.0, 1.0),
        (10_000, 10_001, 0, 0.5, 0.5),
        (6_667, 40_000, 1_000, 0.2, 0.9),
    ];
    for (case, &(pt, pc, jitter, p_src, p_rd)) in cases.iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case as u64);
        let mut x = VerilatedTagCrossing::new();
        let (mut t_tick, mut t_ctl) = (pt, pc / 3);
        let (mut next, mut got, mut offered_not_taken) = (0u32, 0u32, 0u64);
        let mut pending: Option<u32> = None;
        let mut max_fill = 0;
        let edges = 60_000;
        for _ in 0..edges {
            if t_tick <= t_ctl {
                if pending.is_none() && rng.gen_bool(p_src) {
                    // Records differ in every bit position over the run.
                    pending = Some(next.wrapping_mul(0x9E37_79B9) ^ next);
                }
                if x.tick_edge(pending) {
                    pending = None;
                    next += 1;
                } else if pending.is_some() {
                    offered_not_taken += 1;
                }
                t_tick += pt + rng.gen_range(0..=jitter);
            } else {
                if let Some(r) = x.ctl_edge(rng.gen_bool(p_rd)) {
                    assert_eq!(r, got.wrapping_mul(0x9E37_79B9) ^ got, "case {case}: record {got}");
                    got += 1;
                }
                // The fill lags the writes (synchronizer) and the reads (one register).
                let fill = x.fill();
                assert!(u32::from(fill) <= next - got + 1, "case {case}: fill {fill} with {} in flight", next - got);
                max_fill = max_fill.max(fill);
                t_ctl += pc + rng.gen_range(0..=jitter);
            }
        }
        // Drain: no more offers, the reader takes everything.
        for _ in 0..2_000 {
            x.tick_edge(None);
            if let Some(r) = x.ctl_edge(true) {
                assert_eq!(r, got.wrapping_mul(0x9E37_79B9) ^ got, "case {case}: record {got} (drain)");
                got += 1;
            }
        }
        assert_eq!(got, next, "case {case}: records lost or duplicated");
        assert_eq!(x.fill(), 0, "case {case}: fill after the drain");
        assert!(got > 5_000, "case {case}: only {got} records");
        assert!(max_fill <= 256, "case {case}: fill {max_fill}");
        if p_rd < 0.5 {
            assert!(offered_not_taken > 0 && max_fill > 200, "case {case}: no back-pressure seen (fill {max_fill})");
        }
    }
}
