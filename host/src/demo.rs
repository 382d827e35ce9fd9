//! `qkd demo`: a simulated satellite pass through the hardware-accurate tagger to distilled key.
//!
//! Two protocols, chosen by `--protocol` or by the preset's sections:
//!
//! * **Decoy BB84** (default, preset `micius-2017-bb84`), see [`bb84`]: the physics model
//!   (`qkd_sim::physics`) simulates the downlink: Alice's per-slot choices and the ground
//!   station's detector and 1PPS edges in tagger ticks. Slot assignment uses the simulated
//!   time transfer (the slot each click's time maps to); clock recovery for the downlink is
//!   not simulated.
//! * **BBM92** (preset `micius-2020-bbm92`), see [`bbm92`]: entangled pairs to two stations.
//!   Both stations' edges go through their taggers; the clock offset and its drift between
//!   the stations are recovered from the two tag streams alone (`qkd_sim::clocksync`, with
//!   the orbit-predicted time-of-flight difference as prior) and checked against the
//!   simulated truth; station B maps its timestamps onto A's clock and the stations run
//!   BBM92 sifting on timestamps.
//!
//! Common to both:
//! 1. The edges go through the time tagger: the bit-exact event-level model for the whole
//!    pass, and the Verilated RTL for a slice at its start, which must give the same records.
//! 2. Alice and Bob (station A and B) run the two-station protocol in two threads over a
//!    socket pair: sifting → estimation → LDPC (or Cascade, `--method cascade`) → verification →
//!    privacy amplification at the finite-key length, with an authenticated channel.
//! 3. A report (counts, QBER, sifted and secret bits, rates against elevation) printed and
//!    written as `report.json`, an SVG plot `key-rate.svg` and the two key files
//!    `alice.key`/`bob.key`. When the protocol aborts (QBER above the threshold, or no key
//!    left by the finite-key bound) the demo says why, writes the report and no key files,
//!    and still exits successfully: the abort is the protocol's correct answer.

mod bb84;
mod bbm92;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use qkd_hdl::tagfmt::{StreamDecoder, Tag};
use qkd_hdl::tagger_model::{tag_edges, Edge, TaggerConfig};
use qkd_hdl::top::Board;
use qkd_host::distill::auth::{KeyPool, Role};
use qkd_host::distill::station::{
    files, run_station, LocalOptions, Method, StationConfig, StationError, StationInput, StationOutput, StationReport,
};
use qkd_sim::physics::PassConfig;
use qkd_sim::verilated::VerilatedTagger;
use rand::RngCore;
use serde::Serialize;

/// Which protocol the demo runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoProtocol {
    /// Decoy-state BB84 downlink to one station (default preset `micius-2017-bb84`).
    DecoyBb84,
    /// Entanglement-based BBM92 to two stations (default preset `micius-2020-bbm92`).
    Bbm92,
}

/// Reconciliation method of the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMethod {
    /// Interactive Cascade (hundreds of round trips: 61 MAC key bits per message).
    Cascade,
    /// One-way rate-adaptive LDPC (a few messages).
    Ldpc,
}

impl DemoMethod {
    fn method(self) -> Method {
        match self {
            DemoMethod::Cascade => Method::Cascade,
            DemoMethod::Ldpc => Method::Ldpc,
        }
    }
}

/// Options of `qkd demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Built-in pass preset (`micius-2017-bb84`, `micius-2020-bbm92`), or a TOML file with a
    /// pass configuration. Default: the preset of the protocol.
    #[arg(long)]
    pub preset: Option<String>,
    /// Protocol to run. Default: from the preset (decoy BB84 when it has both sections).
    #[arg(long, value_enum)]
    pub protocol: Option<DemoProtocol>,
    /// Simulate at most this much of the pass around culmination, in seconds. Default: 120 s
    /// for decoy BB84, the whole common visibility window for BBM92.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Reconciliation method. LDPC by default: Cascade's hundreds of authenticated round
    /// trips spend about as much MAC key as a 120 s pass distils (see docs/demo.md).
    #[arg(long, value_enum, default_value = "ldpc")]
    pub method: DemoMethod,
    /// Ticks of the pass to run through the Verilated tagger RTL, per station (the rest uses
    /// the bit-exact model).
    #[arg(long, default_value_t = 30_000_000)]
    pub rtl_ticks: u64,
    /// Output directory for the key files, report and plot.
    #[arg(long, default_value = "target/demo")]
    pub out: PathBuf,
    /// Random seed of the pass.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
}

/// Tagger clock of the simulated board, in Hz.
fn clock_hz() -> f64 {
    Board::Hx8k.clock_mhz() * 1e6
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let preset = a.preset.clone().unwrap_or_else(|| match a.protocol {
        Some(DemoProtocol::Bbm92) => "micius-2020-bbm92".into(),
        _ => "micius-2017-bb84".into(),
    });
    let mut cfg = if preset.ends_with(".toml") {
        PassConfig::load(&preset).with_context(|| format!("loading {preset}"))?
    } else {
        PassConfig::preset(&preset).with_context(|| format!("preset {preset}"))?
    };
    let protocol = match (a.protocol, cfg.bb84.is_some(), cfg.bbm92.is_some()) {
        (Some(p), _, _) => p,
        (None, true, _) => DemoProtocol::DecoyBb84,
        (None, false, true) => DemoProtocol::Bbm92,
        (None, false, false) => bail!("preset {preset} has neither a [bb84] nor a [bbm92] section"),
    };
    cfg.simulation.max_duration_s = match (a.duration, protocol) {
        (Some(d), _) => Some(d),
        (None, DemoProtocol::DecoyBb84) => Some(120.0),
        (None, DemoProtocol::Bbm92) => None,
    };
    // Stale keys of an earlier run must not survive an aborted one.
    for f in ["alice.key", "bob.key"] {
        let p = a.out.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let mut report = match protocol {
        DemoProtocol::DecoyBb84 => bb84::run(&a, &cfg)?,
        DemoProtocol::Bbm92 => bbm92::run(&a, &cfg)?,
    };
    report.preset = preset;
    report.wall_s = t0.elapsed().as_secs_f64();
    report.real_time_ratio = report.simulated_s / report.wall_s;
    println!(
        "whole demo: {:.1} s of pass in {:.1} s wall clock: {:.1}× faster than real time",
        report.simulated_s, report.wall_s, report.real_time_ratio
    );
    let path = a.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Everything the demo measured; written as `report.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DemoReport {
    /// `decoy-bb84` or `bbm92`.
    pub protocol: String,
    /// Preset name or TOML path.
    pub preset: String,
    /// Seed of the simulation.
    pub seed: u64,
    /// Simulated stretch of the pass, in s.
    pub simulated_s: f64,
    /// Wall-clock time of the whole demo, in s.
    pub wall_s: f64,
    /// Simulated seconds per wall-clock second of the whole demo.
    pub real_time_ratio: f64,
    /// Wall-clock time of the physics simulation, in s.
    pub physics_s: f64,
    /// Wall-clock time of the tagger (model and RTL slice, all stations), in s.
    pub tagger_s: f64,
    /// Wall-clock time of the clock synchronization (BBM92), in s.
    pub sync_s: f64,
    /// Wall-clock time of the two-station distillation, in s.
    pub distill_s: f64,
    /// Elevation range of the simulated stretch (station A for BBM92), in degrees.
    pub elevation_deg: [f64; 2],
    /// Link-loss range (station A for BBM92), in dB.
    pub link_loss_db: [f64; 2],
    /// Per station: the tagger's decoded detector tags.
    pub detector_tags: Vec<u64>,
    /// Per station: 1PPS tags.
    pub pps_tags: Vec<u64>,
    /// Per station: ticks checked against the Verilated RTL, and its records there.
    pub rtl_slice: Vec<RtlSlice>,
    /// Per station: detection records handed to the protocol (distinct slots or timestamps).
    pub detections: Vec<u64>,
    /// Clock synchronization (BBM92 only).
    pub sync: Option<SyncReport>,
    /// Error rate of the sifted (basis-matched, single-click) detections counted with the
    /// simulator's view of both sides, before the protocol's estimate (probability).
    pub simulated_qber: f64,
    /// What the protocol did (`None` when it aborted before finishing).
    pub station: Option<StationReport>,
    /// Secret key bits, identical at both stations (0 when aborted).
    pub secret_bits: u64,
    /// Secret bits per simulated second.
    pub secret_bits_per_s: f64,
    /// Why the protocol aborted, if it did.
    pub abort: Option<String>,
    /// Rates against elevation.
    pub elevation_bins: Vec<ElevationBin>,
}

/// The Verilated-RTL cross-check of one station's tagger.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RtlSlice {
    /// Ticks run through the RTL.
    pub ticks: u64,
    /// Records the RTL produced (identical to the model's).
    pub records: u64,
}

/// Clock synchronization of a BBM92 pass.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SyncReport {
    /// How the offset was acquired: `fft` (circular FFT cross-correlation) or
    /// `difference-histogram` (direct histogram of time differences within a bound).
    pub acquisition: String,
    /// Significance of the FFT cross-correlation peak on the first window, in σ.
    pub fft_snr: f64,
    /// Tracking windows with an offset.
    pub windows: u64,
    /// Smallest and largest significance of the windows' peaks, in σ.
    pub window_snr: [f64; 2],
    /// RMS of (tracked − true offset) over the tracked span, in ticks.
    pub residual_rms_ticks: f64,
    /// Largest |tracked − true offset| over the tracked span, in ticks.
    pub residual_max_ticks: f64,
    /// Mean of (tracked − true offset), in ticks.
    pub residual_mean_ticks: f64,
    /// Tagger tick, in ns.
    pub tick_ns: f64,
    /// True offset B − A at the start and the end of the pass, in ticks.
    pub true_offset_ticks: [f64; 2],
    /// Coincidences within the window found with the tracked offset.
    pub coincidences: u64,
    /// Coincidence half-window, in ticks.
    pub half_window_ticks: f64,
    /// Of those, photons of one pair (ground truth).
    pub true_pair_coincidences: u64,
    /// Pairs whose photons were tagged at both stations (ground truth).
    pub pairs_tagged_at_both: u64,
    /// Basis-matched coincidences of one pair (ground truth).
    pub sifted_pairs: u64,
    /// Basis-matched accidental coincidences (ground truth).
    pub sifted_accidentals: u64,
}

/// Rates in one elevation bin.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ElevationBin {
    /// Lower edge, in degrees.
    pub lo_deg: f64,
    /// Upper edge, in degrees.
    pub hi_deg: f64,
    /// Time spent in the bin, in s.
    pub seconds: f64,
    /// Detected slots (BB84) or coincidences (BBM92) per second.
    pub detections_per_s: f64,
    /// Basis-matched single-click detections per second (simulator's view).
    pub sifted_per_s: f64,
    /// Their error rate (probability).
    pub qber: f64,
    /// Secret key bits per second: the pass's secret key shared out over the bins in
    /// proportion to sifted bits × (1 − 2.1 h(QBER)), the asymptotic fraction with f = 1.1.
    pub secret_bits_per_s: f64,
}

/// Width of an elevation bin, in degrees.
const BIN_DEG: f64 = 5.0;

/// Accumulates per-elevation-bin counts.
#[derive(Default)]
struct Bins {
    /// bin → (seconds, detections, sifted, errors).
    map: std::collections::BTreeMap<i64, (f64, u64, u64, u64)>,
}

impl Bins {
    fn key(el_deg: f64) -> i64 {
        (el_deg / BIN_DEG).floor() as i64
    }
    fn time(&mut self, el_deg: f64, s: f64) {
        self.map.entry(Self::key(el_deg)).or_default().0 += s;
    }
    fn detection(&mut self, el_deg: f64, sifted: bool, error: bool) {
        let e = self.map.entry(Self::key(el_deg)).or_default();
        e.1 += 1;
        e.2 += sifted as u64;
        e.3 += (sifted && error) as u64;
    }
    /// Totals (sifted, errors).
    fn totals(&self) -> (u64, u64) {
        self.map.values().fold((0, 0), |(s, e), v| (s + v.2, e + v.3))
    }
    /// The bins, with the pass's `secret_bits` shared out over them in proportion to
    /// [`secret_weight`].
    fn finish(&self, secret_bits: u64) -> Vec<ElevationBin> {
        let total: f64 = self.map.values().map(|&(_, _, s, e)| secret_weight(s, e)).sum();
        self.map
            .iter()
            .filter(|(_, v)| v.0 > 0.0)
            .map(|(&k, &(secs, n, s, e))| ElevationBin {
                lo_deg: k as f64 * BIN_DEG,
                hi_deg: (k + 1) as f64 * BIN_DEG,
                seconds: secs,
                detections_per_s: n as f64 / secs,
                sifted_per_s: s as f64 / secs,
                qber: e as f64 / s.max(1) as f64,
                secret_bits_per_s: if total > 0.0 {
                    secret_bits as f64 * secret_weight(s, e) / total / secs
                } else {
                    0.0
                },
            })
            .collect()
    }
}

/// Share of the secret key of `sifted` bits with `errors` errors: the asymptotic fraction
/// `1 − (1 + f) h(Q)` with f = 1.1 (bits). Only the shape across elevations is used: the pass's
/// finite-key length is what gets shared out.
fn secret_weight(sifted: u64, errors: u64) -> f64 {
    let q = errors as f64 / sifted.max(1) as f64;
    let h = qkd_host::distill::finite_key::binary_entropy(q);
    sifted as f64 * (1.0 - 2.1 * h).max(0.0)
}

/// One station's tag stream.
struct Tagged {
    /// Decoded tags, in time order.
    tags: Vec<Tag>,
    rtl: RtlSlice,
}

/// Sends one station's edges through the tagger: the bit-exact model for the whole pass, and
/// the Verilated RTL for the first `rtl_ticks` ticks, which must give the same records.
fn tag_station(name: &str, edges: &[Edge], end_tick: u64, rtl_ticks: u64) -> Result<Tagged> {
    let channels = VerilatedTagger::CHANNELS;
    let tcfg = TaggerConfig { dead_time: [0; 8], ..Default::default() };
    let t1 = Instant::now();
    let records = tag_edges(channels, &tcfg, edges, end_tick);
    let t_tag = t1.elapsed().as_secs_f64();
    let slice_end = rtl_ticks.min(end_tick);
    let slice_edges: Vec<Edge> = edges.iter().copied().filter(|e| e.tick + 8 < slice_end).collect();
    let want = tag_edges(channels, &tcfg, &slice_edges, slice_end);
    let t2 = Instant::now();
    let mut rtl = VerilatedTagger::new();
    rtl.set_config(&tcfg);
    let mut got = Vec::new();
    let mut next = 0usize;
    for t in 0..slice_end {
        let mut pins = 0u8;
        while next < slice_edges.len() && slice_edges[next].tick == t {
            pins |= 1 << slice_edges[next].channel;
            next += 1;
        }
        got.extend(rtl.step(pins, true).popped);
    }
    let t_rtl = t2.elapsed().as_secs_f64();
    if !(want.starts_with(&got) && want.len() - got.len() <= 8) {
        bail!("{name}: the Verilated tagger RTL and the reference model disagree on the first {slice_end} ticks");
    }
    let mut dec = StreamDecoder::new();
    let mut tags = Vec::new();
    dec.push_all(&records, &mut tags).with_context(|| format!("{name}: decoding the tag stream"))?;
    if dec.lost() > 0 {
        bail!("{name}: the tagger reported {} lost events", dec.lost());
    }
    println!(
        "  tagger {name}: {} records for the pass (model, {t_tag:.2} s); RTL slice of {slice_end} ticks = {:.3} s: \
         {} records, identical to the model ({t_rtl:.1} s)",
        records.len(),
        slice_end as f64 / clock_hz(),
        got.len(),
    );
    Ok(Tagged { tags, rtl: RtlSlice { ticks: slice_end, records: got.len() as u64 } })
}

/// The outcome of the two stations.
enum Distilled {
    /// Both stations finished with the same key.
    Key { alice: Box<StationOutput>, bob: Box<StationOutput> },
    /// The protocol aborted (QBER above threshold, no key left by the finite-key bound).
    Aborted(String),
}

/// Runs Alice (or station A) and Bob (station B) in two threads over a socket pair with a
/// fresh random pre-shared authentication key.
fn distill(config: &StationConfig, alice: StationInput, bob: StationInput) -> Result<Distilled> {
    let mut psk = vec![0u8; 1 << 16];
    rand::rngs::OsRng.fill_bytes(&mut psk);
    let (sa, sb) = UnixStream::pair().context("socket pair")?;
    let (ca, cb) = (*config, *config);
    let (pa, pb) = (KeyPool::from_bytes(&psk), KeyPool::from_bytes(&psk));
    let alice_thread =
        std::thread::spawn(move || run_station(Role::Alice, &ca, &LocalOptions::default(), alice, sa, pa));
    let bob = run_station(Role::Bob, &cb, &LocalOptions::default(), bob, sb, pb);
    let alice = alice_thread.join().map_err(|_| anyhow::anyhow!("Alice's thread panicked"))?;
    // An abort the protocol decided on (from the data) is a result; anything else is a bug.
    let decided = |e: &StationError| {
        matches!(
            e,
            StationError::Estimation(qkd_host::distill::estimation::EstimationError::QberAboveThreshold { .. })
                | StationError::NoSecretKey(_)
        )
    };
    match (alice, bob) {
        (Ok(alice), Ok(bob)) => {
            if alice.key != bob.key {
                bail!("Alice's and Bob's keys differ");
            }
            Ok(Distilled::Key { alice: Box::new(alice), bob: Box::new(bob) })
        }
        (Err(fa), Err(fb)) => {
            // The station that decided names the reason; the other saw `PeerAborted`.
            let mine = [&fa.error, &fb.error].into_iter().find(|e| !matches!(e, StationError::PeerAborted(_)));
            match mine {
                Some(e) if decided(e) => Ok(Distilled::Aborted(e.to_string())),
                Some(e) => bail!("distillation failed: {e}"),
                None => bail!("distillation failed: alice: {}, bob: {}", fa.error, fb.error),
            }
        }
        (Err(f), Ok(_)) => bail!("Alice failed alone: {}", f.error),
        (Ok(_), Err(f)) => bail!("Bob failed alone: {}", f.error),
    }
}

/// Prints the distillation result, writes the key files, and fills the report's protocol
/// fields. `finite_key` names the bound.
fn finish(out: &Path, config: &StationConfig, finite_key: &str, result: Distilled, report: &mut DemoReport) -> Result<()> {
    println!(
        "distillation ({}, {finite_key} finite key, ε_sec = {:e}, ε_cor = {:e}, abort above QBER {:.1} %):",
        config.protocol.name(),
        config.eps_sec,
        config.eps_cor,
        100.0 * config.estimation.max_qber
    );
    match result {
        Distilled::Aborted(reason) => {
            println!("  ABORTED, no key: {reason}");
            println!("  (simulated QBER of the sifted detections {:.3} %)", 100.0 * report.simulated_qber);
            report.abort = Some(reason);
        }
        Distilled::Key { alice, bob } => {
            let r = &bob.report;
            println!("  announced detections  {:>10}", r.sift.announced);
            println!("  without a partner     {:>10}", r.sift.no_partner);
            println!("  basis mismatch        {:>10}", r.sift.basis_mismatch);
            println!("  sifted key bits       {:>10}", r.sifted_key_bits);
            if let Some(e) = &r.test_estimate {
                println!(
                    "  test-basis QBER       {:>10.3} % ({} errors in {} bits, upper bound {:.3} %)",
                    100.0 * e.rate,
                    e.errors,
                    e.sample,
                    100.0 * e.upper
                );
            }
            println!(
                "  QBER estimate         {:>10.3} % (simulated {:.3} %)",
                100.0 * r.qber_for_reconciliation,
                100.0 * report.simulated_qber
            );
            println!(
                "  leak_EC {:<13} {:>10} bits (f = {:.3}, {} round trips)",
                format!("({})", config.method.name()),
                r.leak_ec_bits,
                r.efficiency,
                r.channel.round_trips
            );
            println!("  finite-key length     {:>10} bits", r.finite_key_bits);
            println!("  MAC key consumed      {:>10} bits (refilled from the key)", r.mac_key_bits);
            println!("  secret key            {:>10} bits, identical at both stations", r.final_key_bits);
            report.secret_bits = r.final_key_bits;
            report.secret_bits_per_s = r.final_key_bits as f64 / report.simulated_s;
            println!(
                "  secret key rate       {:>10.2} bit/s over the simulated {:.0} s",
                report.secret_bits_per_s, report.simulated_s
            );
            files::write_key_file(&out.join("alice.key"), &alice.key).context("writing alice.key")?;
            files::write_key_file(&out.join("bob.key"), &bob.key).context("writing bob.key")?;
            println!(
                "wrote {}/alice.key, {}/bob.key ({} bytes each)",
                out.display(),
                out.display(),
                alice.key.len() / 8
            );
            report.station = Some(bob.report.clone());
        }
    }
    Ok(())
}

/// Prints the elevation table and writes the plot.
fn elevation_table_and_plot(out: &Path, what: &str, bins: &[ElevationBin]) -> Result<()> {
    println!("  elevation   {what:>14}/s   sifted/s   QBER     secret bit/s");
    for b in bins {
        println!(
            "  {:>3}–{:<3}°   {:>16.1}   {:>8.1}   {:>5.2} %   {:>10.2}",
            b.lo_deg,
            b.hi_deg,
            b.detections_per_s,
            b.sifted_per_s,
            100.0 * b.qber,
            b.secret_bits_per_s
        );
    }
    plot(&out.join("key-rate.svg"), what, bins).context("writing the plot")?;
    println!("wrote {}/key-rate.svg", out.display());
    Ok(())
}

/// Detection, sifted and secret key rates against elevation (log scale).
fn plot(path: &Path, what: &str, bins: &[ElevationBin]) -> Result<()> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mid = |b: &ElevationBin| 0.5 * (b.lo_deg + b.hi_deg);
    let positive = |x: f64| if x > 0.0 { Some(x) } else { None };
    let all = bins.iter().flat_map(|b| [b.detections_per_s, b.sifted_per_s, b.secret_bits_per_s]);
    let ymax = all.clone().fold(1.0, f64::max) * 2.0;
    let ymin = all.filter_map(positive).fold(ymax, f64::min).max(1e-3) / 2.0;
    let xmin = bins.iter().map(|b| b.lo_deg).fold(90.0, f64::min);
    let xmax = bins.iter().map(|b| b.hi_deg).fold(0.0, f64::max).max(xmin + BIN_DEG);
    let mut chart = ChartBuilder::on(&root)
        .caption("Simulated pass: rates against elevation", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xmin..xmax, (ymin..ymax).log_scale())?;
    chart.configure_mesh().x_desc("elevation (degrees)").y_desc("rate (1/s)").draw()?;
    type Series<'a> = (&'a str, RGBColor, fn(&ElevationBin) -> f64);
    let series: [Series; 3] = [
        (what, BLUE, |b| b.detections_per_s),
        ("sifted bits", GREEN, |b| b.sifted_per_s),
        ("secret key bits", RED, |b| b.secret_bits_per_s),
    ];
    for (label, color, f) in series {
        let pts: Vec<(f64, f64)> = bins.iter().filter_map(|b| positive(f(b)).map(|y| (mid(b), y))).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color))?
            .label(format!("{label} per second"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_weight_follows_the_asymptotic_fraction() {
        assert_eq!(secret_weight(1000, 0), 1000.0);
        // h(0.02) = 0.1414: 1 − 2.1 · 0.1414 = 0.703.
        assert!((secret_weight(1000, 20) - 703.0).abs() < 1.0, "{}", secret_weight(1000, 20));
        // h(0.10) = 0.469: a sliver left; above ~10.4 % (2.1 h = 1) nothing.
        assert!((secret_weight(1000, 100) - 15.1).abs() < 0.1, "{}", secret_weight(1000, 100));
        assert_eq!(secret_weight(1000, 105), 0.0);
        assert_eq!(secret_weight(0, 0), 0.0);
    }

    #[test]
    fn bins_share_out_the_key_and_count_detections() {
        let mut b = Bins::default();
        b.time(22.0, 10.0);
        b.time(47.0, 20.0);
        for i in 0..100 {
            b.detection(22.0, i % 2 == 0, i % 10 == 0);
        }
        for i in 0..400 {
            b.detection(47.0, i % 2 == 0, false);
        }
        let bins = b.finish(1000);
        assert_eq!(bins.len(), 2);
        assert_eq!((bins[0].lo_deg, bins[0].hi_deg), (20.0, 25.0));
        assert_eq!(bins[0].detections_per_s, 10.0);
        assert_eq!(bins[1].sifted_per_s, 10.0);
        assert!((bins[0].qber - 0.2).abs() < 1e-12, "{}", bins[0].qber);
        // 20 % QBER gives no key: all of it goes to the clean bin.
        assert_eq!(bins[0].secret_bits_per_s, 0.0);
        assert!((bins[1].secret_bits_per_s * bins[1].seconds - 1000.0).abs() < 1e-9);
    }
}
