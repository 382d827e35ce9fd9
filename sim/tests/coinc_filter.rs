//! The Verilated coincidence stream filter against its cycle-accurate and event-level
//! models; the link bandwidth it saves on realistic event streams; its synthesis estimate.

mod support;

use qkd_hdl::coinc_filter::{filter_events, CoincFilter, FilterConfig, FilterModel, TickMask, FILTER_LATENCY};
use qkd_hdl::tagger_model::{tag_edges, Edge, TaggerConfig};
use qkd_hdl::verilog::{verilog_of, TAGGER_CHANNELS};
use qkd_sim::stimulus::{generate, StimulusParams};
use qkd_sim::verilated_extra::VerilatedCoincFilter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

const CH: usize = TAGGER_CHANNELS;

#[test]
fn coinc_filter_bit_exact_over_a_million_ticks() {
    let cfgs = [
        FilterConfig { delay: [0, 3, 7, 0, 1, 0, 0, 0], window: 4, group: [0b00011, 0b00101, 0b10110, 0b01111], pass: 0 },
        FilterConfig { delay: [5, 0, 0, 6, 1, 0, 0, 0], window: 0, group: [0b11111, 0b00011, 0, 0b11000], pass: 0b10000 },
        FilterConfig { delay: [0; 8], window: 15, group: [0b00001, 0b10001, 0b00110, 0b01100], pass: 0b00010 },
    ];
    let stim = generate(&StimulusParams { pulse_prob: 0.04, max_width: 1, burst_prob: 0.003, ..Default::default() }, 1_050_000, 8);
    let mut v = VerilatedCoincFilter::new();
    let mut m = FilterModel::new(CH);
    let (mut kept, mut events) = (0u64, 0u64);
    let mut prev = 0u8;
    for (t, &s) in stim.iter().enumerate() {
        let cfg = &cfgs[t / 350_000];
        v.set_config(cfg);
        let pins = s & 0x1f;
        let hits = pins & !prev;
        prev = pins;
        let a = v.step(hits);
        assert_eq!(a, m.step(hits, cfg), "tick {t}");
        kept += a.count_ones() as u64;
        events += hits.count_ones() as u64;
    }
    assert!(kept > 10_000 && kept < events, "{kept} of {events} kept");
}

/// From power-on with constant settings, the gateware shows exactly what the event-level
/// model computes (which the bandwidth figures below use).
#[test]
fn verilated_filter_matches_event_level_model() {
    let cfg = FilterConfig { delay: [2, 0, 1, 0, 0, 0, 0, 0], window: 2, group: [0b0101, 0b0110, 0b1001, 0b1010], pass: 0b10000 };
    let ticks = 200_000u64;
    let (events, _) = pair_stream(&Scenario { singles_hz: 3e6, pairs_hz: 1e6, jitter: 2 }, ticks, 17);
    let want = filter_events(CH, &events, &cfg);
    let mut v = VerilatedCoincFilter::new();
    v.set_config(&cfg);
    let mut got = Vec::new();
    let mut it = events.iter().peekable();
    for t in 0..ticks + FILTER_LATENCY + 20 {
        let hits = match it.peek() {
            Some(e) if e.tick == t => it.next().unwrap().mask,
            _ => 0,
        };
        let k = v.step(hits);
        if k != 0 {
            got.push(TickMask { tick: t, mask: k });
        }
    }
    assert_eq!(got, want);
    assert!(want.len() > 1000);
}

/// Clock of the tagger, in Hz.
const F_CLK: f64 = 150e6;

/// An event stream: 4 detectors, channels 0 and 1 on one side, 2 and 3 on the other, each
/// with `singles_hz` uncorrelated counts plus its share of `pairs_hz` pairs (one detector
/// of each side, the second `0..=jitter` ticks after the first).
struct Scenario {
    singles_hz: f64,
    pairs_hz: f64,
    jitter: u64,
}

/// One generated pair: its two events as (tick, channel).
type Pair = [(u64, u8); 2];

/// Draws `ticks` ticks of the scenario as per-tick event masks, and the pairs in it.
fn pair_stream(s: &Scenario, ticks: u64, seed: u64) -> (Vec<TickMask>, Vec<Pair>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ev: Vec<(u64, u8)> = Vec::new();
    let poisson = |rate_hz: f64, rng: &mut ChaCha8Rng, out: &mut Vec<u64>| {
        let gap = Exp::new(rate_hz / F_CLK).unwrap();
        let mut t = 0.0;
        loop {
            t += gap.sample(rng);
            if t >= ticks as f64 {
                break;
            }
            out.push(t as u64);
        }
    };
    // Background singles: the total per channel is `singles_hz`, pairs included.
    let bg = (s.singles_hz - s.pairs_hz / 2.0).max(0.0);
    for c in 0..4u8 {
        let mut ts = Vec::new();
        poisson(bg, &mut rng, &mut ts);
        ev.extend(ts.into_iter().map(|t| (t, c)));
    }
    let mut ts = Vec::new();
    let mut pairs = Vec::new();
    poisson(s.pairs_hz, &mut rng, &mut ts);
    for t in ts {
        let a = rng.gen_range(0..2u8);
        let b = 2 + rng.gen_range(0..2u8);
        let d = rng.gen_range(0..=s.jitter);
        let (first, second) = if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
        ev.push((t, first));
        if t + d < ticks {
            ev.push((t + d, second));
            pairs.push([(t, first), (t + d, second)]);
        }
    }
    ev.sort_unstable();
    let mut out: Vec<TickMask> = Vec::with_capacity(ev.len());
    for (t, c) in ev {
        match out.last_mut() {
            Some(l) if l.tick == t => l.mask |= 1 << c,
            _ => out.push(TickMask { tick: t, mask: 1 << c }),
        }
    }
    (out, pairs)
}

/// Whether event (tick, channel) is in the filter output (sorted by tick).
fn is_kept(kept: &[TickMask], tick: u64, channel: u8) -> bool {
    let t = tick + FILTER_LATENCY;
    kept.binary_search_by_key(&t, |k| k.tick).is_ok_and(|i| kept[i].mask & (1 << channel) != 0)
}

/// Tag records (EVENT + EPOCH, as the tagger writes them) for a stream of event masks.
fn records(events: &[TickMask], end: u64) -> usize {
    let edges: Vec<Edge> = events
        .iter()
        .flat_map(|e| (0..8u8).filter(move |c| e.mask & (1 << c) != 0).map(move |c| Edge { tick: e.tick, channel: c }))
        .collect();
    tag_edges(CH, &TaggerConfig::default(), &edges, end).len()
}

/// One row of the bandwidth table.
struct Row {
    singles_hz: f64,
    pairs_hz: f64,
    window: u8,
    raw_rps: f64,
    kept_rps: f64,
    pairs_kept: f64,
}

fn measure(singles_hz: f64, pairs_hz: f64, window: u8, seconds: f64, seed: u64) -> Row {
    let ticks = (seconds * F_CLK) as u64;
    // Pair jitter up to the window (a window shorter than the jitter loses pairs).
    let s = Scenario { singles_hz, pairs_hz, jitter: window.min(1) as u64 };
    let (events, pairs) = pair_stream(&s, ticks, seed);
    let cfg = FilterConfig { window, group: [0b0101, 0b0110, 0b1001, 0b1010], ..Default::default() };
    let kept = filter_events(CH, &events, &cfg);
    let end = ticks + FILTER_LATENCY + 16;
    let raw = records(&events, end);
    let filt = records(&kept, end);
    let whole = pairs.iter().filter(|p| p.iter().all(|&(t, c)| is_kept(&kept, t, c))).count();
    Row {
        singles_hz,
        pairs_hz,
        window,
        raw_rps: raw as f64 / seconds,
        kept_rps: filt as f64 / seconds,
        pairs_kept: whole as f64 / pairs.len().max(1) as f64,
    }
}

fn print_table(rows: &[Row]) {
    println!("| singles/ch | pairs/s | W (ticks) | records/s raw | records/s filtered | MB/s raw | MB/s filtered | reduction | pairs kept |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {:.0} k | {:.0} k | {} | {:.0} | {:.0} | {:.3} | {:.4} | {:.1}× | {:.2} |",
            r.singles_hz / 1e3,
            r.pairs_hz / 1e3,
            r.window,
            r.raw_rps,
            r.kept_rps,
            r.raw_rps * 4.0 / 1e6,
            r.kept_rps * 4.0 / 1e6,
            r.raw_rps / r.kept_rps,
            r.pairs_kept
        );
    }
}

/// Accidental two-fold coincidences per second of the four groups, for the check.
fn accidentals_hz(singles_hz: f64, window: u8) -> f64 {
    4.0 * (2.0 * window as f64 + 1.0) * singles_hz * singles_hz / F_CLK
}

#[test]
fn bandwidth_reduction_quick() {
    let rows = [measure(1e5, 1e3, 1, 0.05, 1), measure(1e6, 1e4, 2, 0.02, 2)];
    print_table(&rows);
    for r in &rows {
        // Raw: about one record per event (4 channels × singles).
        assert!((r.raw_rps / (4.0 * r.singles_hz) - 1.0).abs() < 0.1, "raw {}", r.raw_rps);
        // Filtered: pairs' two events plus both events of each accidental coincidence.
        let expect = 2.0 * (r.pairs_hz + accidentals_hz(r.singles_hz, r.window));
        assert!((r.kept_rps / expect - 1.0).abs() < 0.25, "filtered {} expected about {expect}", r.kept_rps);
        assert_eq!(r.pairs_kept, 1.0, "every true pair is kept");
    }
}

/// The table of docs/coincidence-stream.md (1 s of events per row; run with
/// `cargo test --release -p qkd-sim --test coinc_filter -- --ignored --nocapture bandwidth_table`).
#[test]
#[ignore]
fn bandwidth_table() {
    let mut rows = Vec::new();
    let mut seed = 100;
    for singles in [1e5, 3e5, 1e6] {
        for pairs in [1e3, 1e4] {
            for w in [1u8, 2, 4] {
                rows.push(measure(singles, pairs, w, 1.0, seed));
                seed += 1;
            }
        }
    }
    print_table(&rows);
}

/// Synthesis estimate (needs yosys and nextpnr-ice40; run with `--ignored --nocapture`).
#[test]
#[ignore]
fn coinc_filter_synthesis_estimate() {
    let verilog = verilog_of(&mut CoincFilter::<CH>::default(), "coinc_filter");
    let e = support::estimate("coinc_filter", &verilog, 1);
    println!("coinc_filter ({CH} channels) on iCE40-HX8K: {} LCs, {} BRAM, Fmax {:.1} MHz", e.logic_cells, e.brams, e.fmax_mhz);
    assert_eq!(e.brams, 2, "{e:?}");
}
