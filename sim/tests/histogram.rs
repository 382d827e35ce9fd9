//! The Verilated correlation histogram against its cycle-accurate model, and its synthesis
//! estimate.

mod support;

use qkd_hdl::histogram::{ideal_histogram, HistogramIn, HistogramModel, Histogram, HIST_BIN_BITS, HIST_COUNT_MAX};
use qkd_hdl::verilog::{verilog_of, TAGGER_CHANNELS};
use qkd_sim::verilated_extra::VerilatedHistogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BINS: usize = 1 << HIST_BIN_BITS;

/// Steps both with `x` and checks the outputs agree.
fn step(v: &mut VerilatedHistogram, m: &mut HistogramModel, x: &HistogramIn, t: u64) {
    let a = v.step(x);
    let b = m.step(x);
    assert_eq!(a, b, "tick {t}: {x:?}");
}

/// Lets the stops in flight land (the stop delay line holds up to 257 ticks), then reads
/// every bin through the read port of both and compares with the model's RAM.
fn read_all(v: &mut VerilatedHistogram, m: &mut HistogramModel, x: &HistogramIn, t: &mut u64) -> Vec<u32> {
    for _ in 0..300 {
        step(v, m, &HistogramIn { hits: 0, clear: false, ..*x }, *t);
        *t += 1;
    }
    let mut got = Vec::with_capacity(BINS);
    for a in 0..=BINS {
        let xi = HistogramIn { hits: 0, clear: false, rd_addr: a.min(BINS - 1) as u16, ..*x };
        let before = m.outputs().rd_data;
        step(v, m, &xi, *t);
        *t += 1;
        if a > 0 {
            got.push(before);
        }
    }
    assert_eq!(got, m.bins(), "read port against the model's RAM");
    got
}

#[test]
fn histogram_bit_exact_over_random_traffic() {
    let mut v = VerilatedHistogram::new();
    let mut m = HistogramModel::new(TAGGER_CHANNELS, HIST_BIN_BITS);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut t = 0u64;
    let mut x = HistogramIn { start_ch: 0, stop_ch: 1, offset: 3, shift: 0, enable: true, ..Default::default() };
    // 1. Back-to-back stops into one bin: start and stop every tick for 20 000 ticks
    //    (Δ = 0: the start at t_stop + offset; the last three stops see Δ = 1, 2, 3), the
    //    forwarding case on every tick.
    for _ in 0..20_000 {
        x.hits = 0b11;
        x.rd_addr = 3;
        step(&mut v, &mut m, &x, t);
        t += 1;
    }
    let bins = read_all(&mut v, &mut m, &x, &mut t);
    assert_eq!(bins[..4], [19_997, 1, 1, 1], "no count lost with a stop every tick into one bin");
    // 2. Alternating bins every tick (forwarding must not hit): stops every tick, starts
    //    every other tick.
    x.hits = 0;
    for k in 0..20_000u64 {
        x.hits = 0b10 | (k % 2 == 0) as u8;
        x.rd_addr = rng.gen_range(0..BINS as u16);
        step(&mut v, &mut m, &x, t);
        t += 1;
    }
    let bins = read_all(&mut v, &mut m, &x, &mut t);
    assert_eq!(bins.iter().sum::<u32>(), 40_000);
    assert_eq!(m.outputs().overflow, 0);
    // 3. Random traffic with random settings, clears, enables and reads.
    let mut rates = (0.3, 0.3);
    let (mut clears, mut most) = (0, 0u64);
    for k in 0..300_000u64 {
        if k % 25_000 == 0 {
            most = most.max(m.bins().iter().map(|&b| b as u64).sum());
            x.start_ch = rng.gen_range(0..8);
            x.stop_ch = rng.gen_range(0..6);
            x.offset = rng.gen();
            x.shift = rng.gen_range(0..16);
            rates = (rng.gen_range(0.001..0.5), rng.gen_range(0.01..0.9));
            x.enable = rng.gen_bool(0.9);
        }
        x.hits = rng.gen::<u8>() & 0x1f;
        for (ch, p) in [(x.start_ch, rates.0), (x.stop_ch, rates.1)] {
            if ch < 8 {
                x.hits = (x.hits & !(1 << ch)) | ((rng.gen_bool(p) as u8) << ch);
            }
        }
        x.clear = rng.gen_bool(2e-5);
        clears += x.clear as u32;
        x.rd_addr = rng.gen_range(0..BINS as u16);
        step(&mut v, &mut m, &x, t);
        t += 1;
    }
    read_all(&mut v, &mut m, &x, &mut t);
    assert!(most > 10_000 && clears > 0, "{most} counts at most, {clears} clears");
    assert!(t > 300_000);
}

/// A clean acquisition against the ideal (pipeline-free) histogram: every stop lands in
/// the bin of its Δ.
#[test]
fn histogram_matches_ideal_start_stop_histogram() {
    let mut v = VerilatedHistogram::new();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (offset, shift) = (40u8, 1u8);
    let x = HistogramIn { start_ch: 2, stop_ch: 4, offset, shift, enable: true, ..Default::default() };
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    let ticks = 200_000u64;
    let mut pending = std::collections::VecDeque::new();
    for t in 0..ticks + 400 {
        let mut hits = 0u8;
        if t < ticks {
            // Correlated pairs: a stop 30 ± 4 ticks after a start (so Δ = 70 ± 4 → bins
            // 33..=37), plus background stops.
            if rng.gen_bool(0.01) {
                starts.push(t);
                hits |= 1 << 2;
                pending.push_back(t + 26 + rng.gen_range(0..=8));
            }
            while pending.front().is_some_and(|&p| p <= t) {
                if pending.pop_front() == Some(t) {
                    hits |= 1 << 4;
                }
            }
            if rng.gen_bool(0.02) {
                hits |= 1 << 4;
            }
            if hits & (1 << 4) != 0 {
                stops.push(t);
            }
        }
        v.step(&HistogramIn { hits, ..x });
    }
    let (want, overflow) = ideal_histogram(&starts, &stops, offset as u64, shift as u32, HIST_BIN_BITS);
    let mut got = Vec::new();
    for a in 0..=BINS {
        let o = v.step(&HistogramIn { rd_addr: a.min(BINS - 1) as u16, ..x });
        if a > 0 {
            got.push(o.rd_data as u64);
        }
    }
    assert_eq!(got, want);
    assert_eq!(v.step(&x).overflow as u64, overflow);
    let peak = (0..BINS).max_by_key(|&b| want[b]).unwrap();
    assert!((33..=37).contains(&peak), "peak at bin {peak}");
}

/// Saturation after 2^32 stops into one bin (about 3 minutes; run with `--ignored`).
#[test]
#[ignore]
fn histogram_bins_saturate() {
    let mut v = VerilatedHistogram::new();
    let x = HistogramIn { hits: 0b11, start_ch: 0, stop_ch: 1, enable: true, rd_addr: 0, ..Default::default() };
    let n = (HIST_COUNT_MAX as u64) + 1000;
    for _ in 0..n {
        v.step(&x);
    }
    let idle = HistogramIn { hits: 0, ..x };
    for _ in 0..300 {
        v.step(&idle);
    }
    assert_eq!(v.step(&idle).rd_data, HIST_COUNT_MAX);
    assert_eq!(v.step(&HistogramIn { rd_addr: 1, ..idle }).rd_data, HIST_COUNT_MAX);
    assert_eq!(v.step(&idle).rd_data, 0, "bin 1 is empty");
}

/// Synthesis estimate (needs yosys and nextpnr-ice40; run with `--ignored --nocapture`).
#[test]
#[ignore]
fn histogram_synthesis_estimate() {
    let verilog = verilog_of(&mut Histogram::<TAGGER_CHANNELS, HIST_BIN_BITS>::default(), "histogram");
    let e = support::estimate("histogram", &verilog, 1);
    println!(
        "histogram ({TAGGER_CHANNELS} channels, {BINS} bins of 32 bits) on iCE40-HX8K: {} LCs, {} BRAM, Fmax {:.1} MHz",
        e.logic_cells, e.brams, e.fmax_mhz
    );
    assert!(e.brams >= 8, "{e:?}");
}
