//! The decoy-BB84 downlink of `qkd demo` (one ground station).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use qkd_hdl::tagger_model::PIN_TO_TAG_LATENCY;
use qkd_host::distill::sifting::{AliceRecords, Basis, Detection, CLICK_A, CLICK_D, CLICK_H, CLICK_V};
use qkd_host::distill::station::{Protocol, StationConfig, StationInput};
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

    // 3. Tags → detection records. The tagger tags every edge, so its detector tags are the
    //    simulated clicks in order: each takes its click's slot (the simulated time transfer).
    let mut tags: Vec<(u64, u8)> = tagged
        .tags
        .iter()
        .filter(|t| (t.channel as usize) < 4)
        .map(|t| (t.time - PIN_TO_TAG_LATENCY, t.channel))
        .collect();
    tags.sort_unstable();
    let pps = (tagged.tags.len() - tags.len()) as u64;
    drop(tagged);
    report.detector_tags = vec![tags.len() as u64];
    report.pps_tags = vec![pps];
    if tags.len() != pass.clicks.len() {
        bail!("{} detector tags for {} simulated clicks", tags.len(), pass.clicks.len());
    }
    let mut slot_clicks: Vec<(u64, u8)> = Vec::with_capacity(tags.len());
    for (&(tick, channel), c) in tags.iter().zip(&pass.clicks) {
        if (c.tick, c.channel) != (tick, channel) {
            bail!("tag at tick {tick} channel {channel}, simulated click at tick {} channel {}", c.tick, c.channel);
        }
        slot_clicks.push((c.slot, click_bit(channel)));
    }
    drop(tags);
    slot_clicks.sort_unstable();
    let mut clicks_by_slot: Vec<(u64, u8)> = Vec::with_capacity(slot_clicks.len());
    for (slot, bit) in slot_clicks {
        match clicks_by_slot.last_mut() {
            Some(last) if last.0 == slot => last.1 |= bit,
            _ => clicks_by_slot.push((slot, bit)),
        }
    }
    // Dense slot numbering: only slots with clicks take part in sifting. Alice's records are
    // sorted by slot, as are the detected slots.
    let mut alice = AliceRecords::new(0);
    let mut detections = Vec::with_capacity(clicks_by_slot.len());
    let mut bins = Bins::default();
    for s in &pass.timeline {
        bins.time(s.elevation_rad.to_degrees(), 1.0_f64.min(pass.duration_s - s.t_s).max(0.0));
    }
    let mut records = pass.alice.iter().peekable();
    for (i, &(slot, clicks)) in clicks_by_slot.iter().enumerate() {
        while records.next_if(|r| r.slot < slot).is_some() {}
        let r = records.next_if(|r| r.slot == slot).context("a detected slot without Alice's record")?;
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
        method: a.method.method(),
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
