//! The entanglement-based (BBM92) two-station pass of `qkd demo`.
//!
//! Station A is Alice and station B is Bob of the distillation protocol. The stations'
//! clocks differ by an offset and a drift, and the times of flight from the satellite differ
//! and change over the pass. The offset `b − a` is recovered from the two tag streams alone
//! ([`qkd_sim::clocksync::track_offset`], with the time-of-flight difference predicted from
//! the orbit, ephemeris error included, as prior) — never from the simulated truth, which is
//! used only to report the residual. Station B then maps its timestamps onto station A's
//! clock (in 1/[`SUBTICKS`] ticks) and the protocol matches coincidences within ±1 tick.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use qkd_hdl::tagger_model::PIN_TO_TAG_LATENCY;
use qkd_host::distill::sifting::{Detection, CLICK_A, CLICK_D, CLICK_H, CLICK_V};
use qkd_host::distill::station::{Protocol, StationConfig, StationInput};
use qkd_sim::clocksync::{self, OffsetTrack, Piecewise, SyncConfig};
use qkd_sim::physics::{self, Basis, Bbm92Click, PassConfig};

use super::{
    clock_hz, distill, elevation_table_and_plot, finish, tag_station, Bins, DemoArgs, DemoReport, SyncReport, Tagged,
};

/// Timestamps handed to the protocol are in 1/`SUBTICKS` of a tagger tick (station B's,
/// mapped onto A's clock, are fractional).
pub const SUBTICKS: u64 = 1000;
/// Coincidence half-window, in ticks: the difference of two floored stamps of one pair lies
/// within ±1 tick of the true offset (the detector jitter is far below a tick).
const HALF_WINDOW_TICKS: f64 = 1.0;
/// Tracking window, in ticks (14.3 s at 150 MHz).
const SYNC_WINDOW: u64 = 1 << 31;
/// Bound on the offset's residual from the orbit prediction searched by the
/// difference-histogram acquisition, in ticks (±27 µs at 150 MHz).
const ACQUISITION_HALF_RANGE: u64 = 1 << 12;

fn click_bit(channel: u8) -> u8 {
    [CLICK_H, CLICK_V, CLICK_D, CLICK_A][channel as usize]
}

/// Detector tags of one station: (tick at the pin, channel), in time order; and the 1PPS count.
fn detector_times(t: &Tagged) -> (Vec<(u64, u8)>, u64) {
    let mut v: Vec<(u64, u8)> =
        t.tags.iter().filter(|x| x.channel < 4).map(|x| (x.time - PIN_TO_TAG_LATENCY, x.channel)).collect();
    v.sort_unstable();
    let pps = (t.tags.len() - v.len()) as u64;
    (v, pps)
}

/// Detection records from (timestamp, channel) pairs sorted by timestamp: one record per
/// distinct timestamp, clicks OR-ed.
fn records(times: impl Iterator<Item = (u64, u8)>) -> Vec<Detection> {
    let mut out: Vec<Detection> = Vec::new();
    for (t, ch) in times {
        match out.last_mut() {
            Some(d) if d.slot == t => d.clicks |= click_bit(ch),
            _ => out.push(Detection { slot: t, clicks: click_bit(ch) }),
        }
    }
    out
}

/// Recovers the offset: tries the circular FFT cross-correlation on the first window (prior
/// removed); where its peak is not significant (few coincidences among many singles fold
/// into every bin of the circular correlation), acquires with a direct difference histogram
/// within ±[`ACQUISITION_HALF_RANGE`] ticks of the orbit prediction. Returns the track, the
/// acquisition used and the FFT peak's significance.
fn sync(a: &[u64], b: &[u64], prior: &Piecewise) -> Result<(OffsetTrack, &'static str, f64)> {
    let base = SyncConfig { coarse_bin: 8, window: SYNC_WINDOW, ..SyncConfig::default() };
    // The FFT probe on the first window, B's times with the prior removed.
    let w0 = a[0];
    let w1 = w0 + SYNC_WINDOW;
    let aw: Vec<u64> = a.iter().copied().take_while(|&t| t < w1).collect();
    let mut bw: Vec<u64> = b
        .iter()
        .map(|&t| (t as f64 - prior.at(t as f64)).round().max(0.0) as u64)
        .filter(|&t| t + SYNC_WINDOW / 4 >= w0 && t < w1 + SYNC_WINDOW / 4)
        .collect();
    bw.sort_unstable();
    let fft_snr = match clocksync::find_offset(&aw, &bw, &base) {
        Ok(e) => e.snr,
        Err(clocksync::SyncError::NoPeak { snr, .. }) => snr,
        Err(e) => return Err(e).context("FFT cross-correlation of the first window"),
    };
    if fft_snr >= base.min_snr {
        if let Ok(track) = clocksync::track_offset(a, b, &base, Some(prior)) {
            return Ok((track, "fft", fft_snr));
        }
    }
    let bounded = SyncConfig { acquisition_half_range: Some(ACQUISITION_HALF_RANGE), ..base };
    let track = clocksync::track_offset(a, b, &bounded, Some(prior)).context("tracking the clock offset")?;
    Ok((track, "difference-histogram", fft_snr))
}

/// Simulates the two-station pass of `cfg`, tags both streams, synchronizes the clocks and
/// distills between station A (Alice) and station B (Bob).
pub(super) fn run(a: &DemoArgs, cfg: &PassConfig) -> Result<DemoReport> {
    let Some(bb) = cfg.bbm92.clone() else { bail!("pass configuration {} has no [bbm92] link", cfg.name) };
    let clock_hz = clock_hz();
    let mut report = DemoReport { protocol: "bbm92".into(), seed: a.seed, ..Default::default() };

    // 1. The pass.
    let t0 = Instant::now();
    let pass = physics::simulate_bbm92_pass(cfg, a.seed, clock_hz).context("simulating the pass")?;
    report.physics_s = t0.elapsed().as_secs_f64();
    report.simulated_s = pass.duration_s;
    let els = pass.timeline.clone().map(|t| t.iter().map(|s| s.elevation_rad.to_degrees()).collect::<Vec<f64>>());
    let range = |v: &mut dyn Iterator<Item = f64>| v.fold([f64::MAX, f64::MIN], |[lo, hi], e| [lo.min(e), hi.max(e)]);
    report.elevation_deg = range(&mut els[0].iter().copied());
    report.link_loss_db = range(&mut pass.timeline[0].iter().map(|s| s.link_loss_db));
    let el_b = range(&mut els[1].iter().copied());
    let loss_b = range(&mut pass.timeline[1].iter().map(|s| s.link_loss_db));
    let c = &pass.counts;
    println!(
        "pass {}: {:.1} s simulated in {:.2} s ({:.0}× faster than real time)",
        cfg.name,
        pass.duration_s,
        report.physics_s,
        pass.duration_s / report.physics_s
    );
    println!(
        "  {}: elevation {:.1}°–{:.1}°, link loss {:.1}–{:.1} dB; {}: elevation {:.1}°–{:.1}°, link loss {:.1}–{:.1} dB",
        bb.station_a.station.name,
        report.elevation_deg[0],
        report.elevation_deg[1],
        report.link_loss_db[0],
        report.link_loss_db[1],
        bb.station_b.station.name,
        el_b[0],
        el_b[1],
        loss_b[0],
        loss_b[1]
    );
    println!(
        "  {:.2e} pairs/s; clicks A {} B {}; pairs detected at both stations {} (expected {:.0})",
        bb.source.pair_rate_hz, c.clicks[0], c.clicks[1], c.coincident_pairs, c.expected_coincident_pairs
    );

    // 2. The taggers of both stations.
    let t1 = Instant::now();
    let tagged_a = tag_station(&format!("A ({})", bb.station_a.station.name), &pass.station_a, pass.end_tick[0], a.rtl_ticks)?;
    let tagged_b = tag_station(&format!("B ({})", bb.station_b.station.name), &pass.station_b, pass.end_tick[1], a.rtl_ticks)?;
    report.tagger_s = t1.elapsed().as_secs_f64();
    report.rtl_slice = vec![tagged_a.rtl, tagged_b.rtl];
    let (ta, pps_a) = detector_times(&tagged_a);
    let (tb, pps_b) = detector_times(&tagged_b);
    drop((tagged_a, tagged_b));
    report.detector_tags = vec![ta.len() as u64, tb.len() as u64];
    report.pps_tags = vec![pps_a, pps_b];
    if ta.len() != pass.clicks_a.len() || tb.len() != pass.clicks_b.len() {
        bail!(
            "detector tags A {} B {} for simulated clicks A {} B {}",
            ta.len(),
            tb.len(),
            pass.clicks_a.len(),
            pass.clicks_b.len()
        );
    }
    // The tags are the simulated clicks, in the same order: pair them with the ground truth.
    if ta.iter().zip(&pass.clicks_a).chain(tb.iter().zip(&pass.clicks_b)).any(|(t, c)| (t.0, t.1) != (c.tick, c.channel)) {
        bail!("the tags differ from the simulated clicks");
    }

    // 3. Clock synchronization from the tag streams.
    let t2 = Instant::now();
    let a_times: Vec<u64> = ta.iter().map(|x| x.0).collect();
    let b_times: Vec<u64> = tb.iter().map(|x| x.0).collect();
    // Prior: the time-of-flight difference predicted from the orbit (with its ephemeris error).
    let prior = Piecewise { points: pass.offsets.iter().map(|o| (o.a_tick, o.predicted_offset_ticks)).collect() };
    let (track, acquisition, fft_snr) = sync(&a_times, &b_times, &prior)?;
    let coinc = clocksync::coincidences(&a_times, &b_times, &track, HALF_WINDOW_TICKS);
    report.sync_s = t2.elapsed().as_secs_f64();
    // Residual against the simulated truth over the tracked span.
    let (s0, s1) = (track.points[0].t, track.points[track.points.len() - 1].t);
    let resid: Vec<f64> = (0..=400)
        .map(|i| {
            let t = s0 + (s1 - s0) * i as f64 / 400.0;
            track.offset_at(t) - pass.true_offset_at(t)
        })
        .collect();
    let n = resid.len() as f64;
    let pair = |x: &Bbm92Click| x.pair;
    let ids_b: HashSet<u64> = pass.clicks_b.iter().filter_map(pair).collect();
    let sync = SyncReport {
        acquisition: acquisition.into(),
        fft_snr,
        windows: track.points.len() as u64,
        window_snr: track.points.iter().fold([f64::MAX, f64::MIN], |[lo, hi], p| [lo.min(p.snr), hi.max(p.snr)]),
        residual_rms_ticks: (resid.iter().map(|r| r * r).sum::<f64>() / n).sqrt(),
        residual_max_ticks: resid.iter().fold(0.0, |m, r| m.max(r.abs())),
        residual_mean_ticks: resid.iter().sum::<f64>() / n,
        tick_ns: 1e9 / clock_hz,
        true_offset_ticks: [pass.offsets[0].true_offset_ticks, pass.offsets[pass.offsets.len() - 1].true_offset_ticks],
        coincidences: coinc.len() as u64,
        half_window_ticks: HALF_WINDOW_TICKS,
        true_pair_coincidences: coinc
            .iter()
            .filter(|x| pair(&pass.clicks_a[x.a]).is_some() && pair(&pass.clicks_a[x.a]) == pair(&pass.clicks_b[x.b]))
            .count() as u64,
        pairs_tagged_at_both: pass.clicks_a.iter().filter_map(pair).filter(|id| ids_b.contains(id)).count() as u64,
        sifted_pairs: 0,
        sifted_accidentals: 0,
    };
    println!(
        "clock sync ({:.2} s): FFT cross-correlation peak {:.1} σ on the first window → acquisition by {}; \
         {} windows of {:.1} s (peaks {:.1}–{:.1} σ)",
        report.sync_s,
        sync.fft_snr,
        sync.acquisition,
        sync.windows,
        SYNC_WINDOW as f64 / clock_hz,
        sync.window_snr[0],
        sync.window_snr[1]
    );
    println!(
        "  true offset B − A {:.1} → {:.1} ticks; residual of the track against the truth: rms {:.3} ticks ({:.2} ns), \
         max {:.3} ticks ({:.2} ns), mean {:+.3} ticks",
        sync.true_offset_ticks[0],
        sync.true_offset_ticks[1],
        sync.residual_rms_ticks,
        sync.residual_rms_ticks * sync.tick_ns,
        sync.residual_max_ticks,
        sync.residual_max_ticks * sync.tick_ns,
        sync.residual_mean_ticks
    );
    println!(
        "  {} coincidences within ±{} tick: {} of one pair (of {} pairs tagged at both stations), {} accidental",
        sync.coincidences,
        HALF_WINDOW_TICKS,
        sync.true_pair_coincidences,
        sync.pairs_tagged_at_both,
        sync.coincidences - sync.true_pair_coincidences
    );

    // 4. Detection records: A's own timestamps; B's mapped onto A's clock with the track
    //    (B inverts t_b = t_a + offset(t_a) by fixed-point iteration; the offset's slope ≪ 1).
    let to_a = |t: u64| {
        let tb = t as f64;
        let mut x = tb - track.offset_at(tb);
        for _ in 0..2 {
            x = tb - track.offset_at(x);
        }
        (x * SUBTICKS as f64).round().max(0.0) as u64
    };
    let det_a = records(ta.iter().map(|&(t, ch)| (t * SUBTICKS, ch)));
    let det_b = records(tb.iter().map(|&(t, ch)| (to_a(t), ch)));
    if det_b.windows(2).any(|w| w[0].slot >= w[1].slot) {
        bail!("station B's timestamps are not increasing after the mapping onto A's clock");
    }
    report.detections = vec![det_a.len() as u64, det_b.len() as u64];

    // Simulator's view of the coincidences: sifted (same basis, single clicks) and errors.
    let mut bins = Bins::default();
    let min_el = |t: usize| els[0][t.min(els[0].len() - 1)].min(els[1][t.min(els[1].len() - 1)]);
    for s in 0..pass.timeline[0].len() {
        bins.time(min_el(s), 1.0_f64.min(pass.duration_s - s as f64).max(0.0));
    }
    let anti = [bb.source.state.anticorrelated(Basis::Z), bb.source.state.anticorrelated(Basis::X)];
    // [true pairs, accidentals] × (sifted, errors).
    let mut split = [(0u64, 0u64); 2];
    for x in &coinc {
        let (ca, cb) = (&pass.clicks_a[x.a], &pass.clicks_b[x.b]);
        let ((ba, va), (bbs, vb)) = (Basis::of_channel(ca.channel), Basis::of_channel(cb.channel));
        let sifted = ba == bbs;
        let error = sifted && (va ^ vb == 1) != anti[ba.index()];
        bins.detection(min_el((ca.tick as f64 / clock_hz) as usize), sifted, error);
        let k = (ca.pair.is_none() || ca.pair != cb.pair) as usize;
        split[k].0 += sifted as u64;
        split[k].1 += error as u64;
    }
    let (sifted, errors) = bins.totals();
    report.simulated_qber = errors as f64 / sifted.max(1) as f64;
    let rate = |(n, e): (u64, u64)| 100.0 * e as f64 / n.max(1) as f64;
    println!(
        "  simulated QBER of the sifted coincidences {:.2} %: {} of one pair at {:.2} % (misalignment), \
         {} accidentals at {:.1} % ({:.1} ns window)",
        100.0 * report.simulated_qber,
        split[0].0,
        rate(split[0]),
        split[1].0,
        rate(split[1]),
        2.0 * HALF_WINDOW_TICKS * sync.tick_ns
    );
    report.sync = Some(SyncReport { sifted_pairs: split[0].0, sifted_accidentals: split[1].0, ..sync });

    // 5. The two stations.
    let config = StationConfig {
        protocol: Protocol::Bbm92 {
            window: (HALF_WINDOW_TICKS * SUBTICKS as f64) as u64,
            offset: 0,
            bob_flip: [anti[0], anti[1]],
        },
        method: a.method.method(),
        ..Default::default()
    };
    let t3 = Instant::now();
    let result = distill(&config, StationInput::Detections(det_a), StationInput::Detections(det_b))?;
    report.distill_s = t3.elapsed().as_secs_f64();
    finish(&a.out, &config, "Tomamichel et al. 2012", result, &mut report)?;

    // 6. Rates against elevation (the lower of the two stations' elevations).
    report.elevation_bins = bins.finish(report.secret_bits);
    elevation_table_and_plot(&a.out, "coincidences", &report.elevation_bins)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_clicks_of_one_timestamp() {
        let r = records([(5, 0), (5, 3), (9, 1), (12, 2)].into_iter());
        let got: Vec<(u64, u8)> = r.iter().map(|d| (d.slot, d.clicks)).collect();
        assert_eq!(got, vec![(5, CLICK_H | CLICK_A), (9, CLICK_V), (12, CLICK_D)]);
    }
}
