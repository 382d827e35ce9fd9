//! `qkd demo`: a simulated satellite pass through the hardware-accurate tagger to distilled key.
//!
//! 1. The physics model (`qkd_sim::physics`) simulates a decoy-BB84 downlink pass (preset
//!    `micius-2017-bb84` by default): Alice's per-slot choices and the ground station's
//!    detector and 1PPS edges in tagger ticks.
//! 2. The edges go through the time tagger: the bit-exact event-level model for the whole pass,
//!    and the Verilated RTL for a slice at its start, which must give the same records.
//! 3. The decoded 64-bit tags become Bob's detection records. Slot assignment uses the
//!    simulated time transfer (the slot each click's time maps to in the physics model);
//!    clock recovery for the downlink is not simulated here.
//! 4. Alice and Bob run the two-station protocol in two threads over a socket pair:
//!    sifting → estimation → Cascade → verification → privacy amplification at the finite-key
//!    length (Lim et al. 2014), with an authenticated channel.
//! 5. A report (counts, QBER, sifted and secret bits, rates against elevation), an SVG plot and
//!    the two key files.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use qkd_hdl::tagfmt::StreamDecoder;
use qkd_hdl::tagger_model::{tag_edges, Edge, TaggerConfig, PIN_TO_TAG_LATENCY};
use qkd_hdl::top::Board;
use qkd_host::distill::auth::{KeyPool, Role};
use qkd_host::distill::sifting::{AliceRecords, Basis, Detection, CLICK_A, CLICK_D, CLICK_H, CLICK_V};
use qkd_host::distill::station::{
    files, run_station, LocalOptions, Method, Protocol, StationConfig, StationInput, StationOutput,
};
use qkd_sim::physics::{self, PassConfig};
use qkd_sim::verilated::VerilatedTagger;
use rand::RngCore;

/// Options of `qkd demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Built-in pass preset, or a TOML file with a pass configuration.
    #[arg(long, default_value = "micius-2017-bb84")]
    pub preset: String,
    /// Simulate at most this much of the pass around culmination, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub duration: f64,
    /// Ticks of the pass to run through the Verilated tagger RTL (the rest uses the bit-exact
    /// model).
    #[arg(long, default_value_t = 30_000_000)]
    pub rtl_ticks: u64,
    /// Output directory for the key files, report and plot.
    #[arg(long, default_value = "target/demo")]
    pub out: PathBuf,
    /// Random seed of the pass.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
}

fn click_bit(channel: u8) -> u8 {
    [CLICK_H, CLICK_V, CLICK_D, CLICK_A][channel as usize]
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut cfg = if a.preset.ends_with(".toml") {
        PassConfig::load(&a.preset).with_context(|| format!("loading {}", a.preset))?
    } else {
        PassConfig::preset(&a.preset).with_context(|| format!("preset {}", a.preset))?
    };
    cfg.simulation.max_duration_s = Some(a.duration);
    let Some(bb84) = cfg.bb84.clone() else { bail!("preset {} has no decoy-BB84 downlink", a.preset) };
    let clock_hz = Board::Hx8k.clock_mhz() * 1e6;

    // 1. The pass.
    let t0 = Instant::now();
    let pass = physics::simulate_bb84_pass(&cfg, a.seed, clock_hz).context("simulating the pass")?;
    let t_phys = t0.elapsed().as_secs_f64();
    let els: Vec<f64> = pass.timeline.iter().map(|s| s.elevation_rad.to_degrees()).collect();
    let losses: Vec<f64> = pass.timeline.iter().map(|s| s.link_loss_db).collect();
    let (el_min, el_max) = els.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &e| (lo.min(e), hi.max(e)));
    let (l_min, l_max) = losses.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &e| (lo.min(e), hi.max(e)));
    println!("pass {}: {:.1} s simulated in {:.2} s ({:.0}× faster than real time)", cfg.name, pass.duration_s, t_phys, pass.duration_s / t_phys);
    println!("  elevation {el_min:.1}°–{el_max:.1}°, link loss {l_min:.1}–{l_max:.1} dB, {} detector + 1PPS edges", pass.edges.len());

    // 2. The tagger: event-level model for the whole pass, Verilated RTL for a slice.
    let channels = VerilatedTagger::CHANNELS;
    let tcfg = TaggerConfig { dead_time: [0; 8], ..Default::default() };
    let t1 = Instant::now();
    let records = tag_edges(channels, &tcfg, &pass.edges, pass.end_tick);
    let t_tag = t1.elapsed().as_secs_f64();
    let slice_end = a.rtl_ticks.min(pass.end_tick);
    let slice_edges: Vec<Edge> = pass.edges.iter().copied().filter(|e| e.tick + 8 < slice_end).collect();
    let want = tag_edges(channels, &tcfg, &slice_edges, slice_end);
    let t2 = Instant::now();
    let mut rtl = VerilatedTagger::new();
    rtl.set_config(&tcfg);
    let mut pins_at: HashMap<u64, u8> = HashMap::new();
    for e in &slice_edges {
        *pins_at.entry(e.tick).or_default() |= 1 << e.channel;
    }
    let mut got = Vec::new();
    for t in 0..slice_end {
        got.extend(rtl.step(pins_at.get(&t).copied().unwrap_or(0), true).popped);
    }
    let t_rtl = t2.elapsed().as_secs_f64();
    if !(want.starts_with(&got) && want.len() - got.len() <= 8) {
        bail!("the Verilated tagger RTL and the reference model disagree on the first {slice_end} ticks");
    }
    println!(
        "tagger: {} records for the pass (model, {:.2} s); RTL slice of {} ticks = {:.3} s: {} records, identical to the model ({:.1} s)",
        records.len(),
        t_tag,
        slice_end,
        slice_end as f64 / clock_hz,
        got.len(),
        t_rtl
    );

    // 3. Tags → detection records.
    let mut dec = StreamDecoder::new();
    let mut tags = Vec::new();
    dec.push_all(&records, &mut tags).context("decoding the tag stream")?;
    if dec.lost() > 0 {
        bail!("the tagger reported {} lost events", dec.lost());
    }
    let slot_of: HashMap<(u64, u8), u64> = pass.clicks.iter().map(|c| ((c.tick, c.channel), c.slot)).collect();
    let mut clicks_by_slot: std::collections::BTreeMap<u64, u8> = Default::default();
    let mut pps = 0;
    for t in &tags {
        if t.channel as usize >= 4 {
            pps += 1;
            continue;
        }
        let tick = t.time - PIN_TO_TAG_LATENCY;
        let slot = *slot_of.get(&(tick, t.channel)).context("a tag without a simulated click")?;
        *clicks_by_slot.entry(slot).or_default() |= click_bit(t.channel);
    }
    // Dense slot numbering: only slots with clicks take part in sifting.
    let alice_by_slot: HashMap<u64, &physics::pass::AliceRecord> = pass.alice.iter().map(|r| (r.slot, r)).collect();
    let mut alice = AliceRecords::new(0);
    let mut detections = Vec::with_capacity(clicks_by_slot.len());
    let mut el_of_detection = Vec::with_capacity(clicks_by_slot.len());
    for (i, (&slot, &clicks)) in clicks_by_slot.iter().enumerate() {
        let r = alice_by_slot.get(&slot).context("a detected slot without Alice's record")?;
        let basis = if r.basis == physics::source::Basis::Z { Basis::Z } else { Basis::X };
        alice.push(basis, r.value == 1, r.class.index() as u8).context("Alice's record")?;
        detections.push(Detection { slot: i as u64, clicks });
        let t_s = slot as f64 * pass.slot_period_s;
        el_of_detection.push(els[((t_s) as usize).min(els.len() - 1)]);
    }
    println!("  {} detector tags, {pps} 1PPS tags, {} detected slots", tags.len() - pps, detections.len());

    // 4. The two stations.
    let src = &bb84.source;
    let config = StationConfig {
        protocol: Protocol::DecoyBb84 { intensities: src.intensities, probabilities: src.class_probabilities },
        method: Method::Cascade,
        ..Default::default()
    };
    let mut psk = vec![0u8; 1 << 16];
    rand::rngs::OsRng.fill_bytes(&mut psk);
    let (sa, sb) = UnixStream::pair().context("socket pair")?;
    let (ca, cb) = (config.clone(), config.clone());
    let (pa, pb) = (KeyPool::from_bytes(&psk), KeyPool::from_bytes(&psk));
    let alice_thread = std::thread::spawn(move || {
        run_station(Role::Alice, &ca, &LocalOptions::default(), StationInput::Prepared(alice), sa, pa)
    });
    let bob_out: StationOutput = run_station(Role::Bob, &cb, &LocalOptions::default(), StationInput::Detections(detections), sb, pb)
        .map_err(|e| anyhow::anyhow!("Bob: {e}"))?;
    let alice_out = alice_thread.join().map_err(|_| anyhow::anyhow!("Alice's thread panicked"))?.map_err(|e| anyhow::anyhow!("Alice: {e}"))?;
    if alice_out.key != bob_out.key {
        bail!("Alice's and Bob's keys differ");
    }
    let r = &bob_out.report;
    files::write_key_file(&a.out.join("alice.key"), &alice_out.key).context("writing alice.key")?;
    files::write_key_file(&a.out.join("bob.key"), &bob_out.key).context("writing bob.key")?;

    // 5. Report.
    let q = r.qber_for_reconciliation;
    println!("distillation (decoy BB84, Lim et al. 2014 finite key, ε_sec = {:e}, ε_cor = {:e}):", config.eps_sec, config.eps_cor);
    println!("  sifted key bits       {:>10}", r.sifted_key_bits);
    println!("  QBER estimate         {:>10.3} %", 100.0 * q);
    println!("  leak_EC (Cascade)     {:>10} bits (f = {:.3}, {} round trips)", r.leak_ec_bits, r.efficiency, r.channel.round_trips);
    println!("  finite-key length     {:>10} bits", r.finite_key_bits);
    println!("  MAC key consumed      {:>10} bits", r.mac_key_bits);
    println!("  secret key            {:>10} bits, identical at both stations", r.final_key_bits);
    println!("  secret key rate       {:>10.1} bit/s over the simulated {:.0} s", r.final_key_bits as f64 / pass.duration_s, pass.duration_s);
    // Detection rate against elevation (5° bins).
    let mut bins: std::collections::BTreeMap<i64, (u64, f64)> = Default::default();
    for s in &pass.timeline {
        bins.entry((s.elevation_rad.to_degrees() / 5.0).floor() as i64).or_default().1 += 1.0;
    }
    for &e in &el_of_detection {
        bins.entry((e / 5.0).floor() as i64).or_default().0 += 1;
    }
    println!("  elevation   detected slots/s");
    let mut series = Vec::new();
    for (b, (n, secs)) in &bins {
        if *secs > 0.0 {
            println!("  {:>3}–{:<3}°   {:>12.0}", b * 5, b * 5 + 5, *n as f64 / secs);
            series.push(((*b as f64 + 0.5) * 5.0, *n as f64 / secs));
        }
    }
    let secret_fraction = r.final_key_bits as f64 / clicks_by_slot.len().max(1) as f64;
    plot(&a.out.join("key-rate.svg"), &series, secret_fraction).context("writing the plot")?;
    println!(
        "wrote {}/alice.key, {}/bob.key ({} bytes each), {}/key-rate.svg",
        a.out.display(),
        a.out.display(),
        alice_out.key.len() / 8,
        a.out.display()
    );
    Ok(())
}

/// Detection rate and the secret key rate it supports (the pass's secret fraction per
/// detected slot) against elevation.
fn plot(path: &std::path::Path, series: &[(f64, f64)], secret_fraction: f64) -> Result<()> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = series.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let xmin = series.iter().map(|p| p.0).fold(90.0, f64::min) - 2.5;
    let xmax = series.iter().map(|p| p.0).fold(0.0, f64::max) + 2.5;
    let mut chart = ChartBuilder::on(&root)
        .caption("Simulated pass: rates against elevation", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xmin..xmax, 0.0..ymax)?;
    chart.configure_mesh().x_desc("elevation (degrees)").y_desc("rate (1/s)").draw()?;
    chart
        .draw_series(LineSeries::new(series.iter().copied(), &BLUE))?
        .label("detected slots per second")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(series.iter().map(|&(e, r)| (e, r * secret_fraction)), &RED))?
        .label("secret key bits per second (pass-average fraction)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
