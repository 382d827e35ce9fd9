//! The decoy-BB84 downlink of `qkd demo` (one ground station).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use qkd_hdl::tagger_model::PIN_TO_TAG_LATENCY;
use qkd_host::distill::sifting::{AliceRecords, Basis, Detection, CLICK_A, CLICK_D, CLICK_H, CLICK_V};
use qkd_host::distill::station::{Method, Protocol, StationConfig, StationInput};
use qkd_sim::physics::{self, PassConfig};

use super::{clock_hz, distill, elevation_table_and_plot, finish, tag_station, Bins, DemoArgs, DemoReport};

fn click_bit(channel: u8) -> u8 {
    [CLICK_H, CLICK_V, CLICK_D, CLICK_A][channel as usize]
}

/// Basis and value of a single-basis, single-detector click mask.
fn single(mask: u8) -> Option<(physics::Basis, u8)> {
    match mask {
        CLICK_H => Some((physics::Basis::Z, 0)),
        CLICK_V => Some((physics::Basis::Z, 1)),
        CLICK_D => Some((physics::Basis::X, 0)),
        CLICK_A => Some((physics::Basis::X, 1)),
        _ => None,
    }
}

/// Simulates the pass of `cfg`, tags it, and distills between Alice and Bob.
pub(super) fn run(a: &DemoArgs, cfg: &PassConfig) -> Result<DemoReport> {
    let Some(bb84) = cfg.bb84.clone() else { bail!("pass configuration {} has no decoy-BB84 downlink", cfg.name) };
    let clock_hz = clock_hz();
    let mut report = DemoReport { protocol: "decoy-bb84".into(), seed: a.seed, ..Default::default() };

    // 1. The pass.
    let t0 = Instant::now();
    let pass = physics::simulate_bb84_pass(cfg, a.seed, clock_hz).context("simulating the pass")?;
    report.physics_s = t0.elapsed().as_secs_f64();
    report.simulated_s = pass.duration_s;
    let els: Vec<f64> = pass.timeline.iter().map(|s| s.elevation_rad.to_degrees()).collect();
    let losses: Vec<f64> = pass.timeline.iter().map(|s| s.link_loss_db).collect();
    let range = |v: &[f64]| v.iter().fold([f64::MAX, f64::MIN], |[lo, hi], &e| [lo.min(e), hi.max(e)]);
    report.elevation_deg = range(&els);
    report.link_loss_db = range(&losses);
    println!(
        "pass {}: {:.1} s simulated in {:.2} s ({:.0}× faster than real time)",
        cfg.name,
        pass.duration_s,
        report.physics_s,
        pass.duration_s / report.physics_s
    );
    println!(
        "  elevation {:.1}°–{:.1}°, link loss {:.1}–{:.1} dB, {} detector + 1PPS edges",
        report.elevation_deg[0],
        report.elevation_deg[1],
        report.link_loss_db[0],
        report.link_loss_db[1],
        pass.edges.len()
    );

    // 2. The tagger.
    let t1 = Instant::now();
    let tagged = tag_station("Bob", &pass.edges, pass.end_tick, a.rtl_ticks)?;
    report.tagger_s = t1.elapsed().as_secs_f64();
    report.rtl_slice = vec![tagged.rtl];

    // 3. Tags → detection records.
    let slot_of: HashMap<(u64, u8), u64> = pass.clicks.iter().map(|c| ((c.tick, c.channel), c.slot)).collect();
    let mut clicks_by_slot: BTreeMap<u64, u8> = BTreeMap::new();
    let mut pps = 0u64;
    for t in &tagged.tags {
        if t.channel as usize >= 4 {
            pps += 1;
            continue;
        }
        let tick = t.time - PIN_TO_TAG_LATENCY;
        let slot = *slot_of.get(&(tick, t.channel)).context("a tag without a simulated click")?;
        *clicks_by_slot.entry(slot).or_default() |= click_bit(t.channel);
    }
    report.detector_tags = vec![tagged.tags.len() as u64 - pps];
    report.pps_tags = vec![pps];
    if report.detector_tags[0] != pass.clicks.len() as u64 {
        bail!("{} detector tags for {} simulated clicks", report.detector_tags[0], pass.clicks.len());
    }
    // Dense slot numbering: only slots with clicks take part in sifting.
    let alice_by_slot: HashMap<u64, &physics::AliceRecord> = pass.alice.iter().map(|r| (r.slot, r)).collect();
    let mut alice = AliceRecords::new(0);
    let mut detections = Vec::with_capacity(clicks_by_slot.len());
    let mut bins = Bins::default();
    for s in &pass.timeline {
        bins.time(s.elevation_rad.to_degrees(), 1.0_f64.min(pass.duration_s - s.t_s).max(0.0));
    }
    for (i, (&slot, &clicks)) in clicks_by_slot.iter().enumerate() {
        let r = alice_by_slot.get(&slot).context("a detected slot without Alice's record")?;
        let basis = if r.basis == physics::Basis::Z { Basis::Z } else { Basis::X };
        alice.push(basis, r.value == 1, r.class.index() as u8).context("Alice's record")?;
        detections.push(Detection { slot: i as u64, clicks });
        let t_s = slot as f64 * pass.slot_period_s;
        let el = els[(t_s as usize).min(els.len() - 1)];
        let m = single(clicks);
        let sifted = m.is_some_and(|(b, _)| b == r.basis);
        bins.detection(el, sifted, m.is_some_and(|(_, v)| v != r.value));
    }
    report.detections = vec![detections.len() as u64];
    let (sifted, errors) = bins.totals();
    report.simulated_qber = errors as f64 / sifted.max(1) as f64;
    println!("  {} detector tags, {pps} 1PPS tags, {} detected slots", report.detector_tags[0], detections.len());

    // 4. The two stations.
    let src = &bb84.source;
    let config = StationConfig {
        protocol: Protocol::DecoyBb84 { intensities: src.intensities, probabilities: src.class_probabilities },
        method: Method::Cascade,
        ..Default::default()
    };
    let t2 = Instant::now();
    let result = distill(&config, StationInput::Prepared(alice), StationInput::Detections(detections))?;
    report.distill_s = t2.elapsed().as_secs_f64();
    finish(&a.out, &config, "Lim et al. 2014", result, &mut report)?;

    // 5. Rates against elevation.
    report.elevation_bins = bins.finish(report.secret_bits);
    elevation_table_and_plot(&a.out, "detected slots", &report.elevation_bins)?;
    Ok(report)
}
