//! The Verilated coincidence counter and test-signal generator against their reference models.

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
