//! The pass simulator: Alice's records and the ground stations' detector edges over a pass.
//!
//! **Speed.** The simulator never visits every source pulse. For BB84 the pass is cut into
//! segments of `simulation.segment_s` (10 ms by default) over which the link transmittance
//! is constant; within a segment the pulses that give at least one detected photon are
//! independent Bernoulli trials with probability `P = Σ_k p_k (1 − e^{−μ_k η})`, so the gap
//! to the next such pulse is geometric and is drawn directly. Everything else (which class,
//! basis, value, how many photons, which detector) is drawn only for those pulses. Dark and
//! background counts are Poisson processes drawn per detector. Alice's record is produced
//! only for slots that the ground saw a click in; the numbers of pulses sent per class and
//! basis are drawn in aggregate (multinomial). For BBM92 the coincident pairs and the single
//! photons of each station are Poisson processes with rates `R η_A η_B`, `R η_A (1 − η_B)`
//! and `R η_B (1 − η_A)` (multi-pair emission neglected; accidental coincidences still arise
//! from uncorrelated singles and noise).
//!
//! **Time.** Pass time `t` (s) starts at the start of the simulated window. Slot `s` of the
//! BB84 source is emitted at `t = s / pulse_rate_hz`. A photon emitted at `t` reaches a
//! station at true time `t + L(t)/c` (so the range rate appears as Doppler), and is stamped
//! by the station's clock ([`super::Clock`]) in ticks of the tagger clock:
//! `tick = floor(local(t_arrival) · f_tagger)`. Detector dead time, afterpulsing and jitter act
//! in true time. A 1PPS edge (channel [`PPS_CHANNEL`]) marks every true second.
//!
//! **Edges.** The output edges are what the detectors drive into the tagger pins: sorted by
//! tick, at most one per channel per tick, and at least [`MIN_EDGE_SPACING_TICKS`] apart on a
//! channel (a rising edge needs the pin low in between); edges closer than that are merged
//! (counted in the counts' `merged_edges`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use qkd_hdl::tagger_model::Edge;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Geometric, Poisson, StandardNormal};

use super::orbit::SPEED_OF_LIGHT_M_S;
use super::{
    check_range, Basis, Clock, IntensityClass, Orbit, PassConfig, PhysicsError, ReceiverConfig, StationConfig,
};

/// Tagger channel of the sync / 1PPS input.
pub const PPS_CHANNEL: u8 = 4;
/// Smallest spacing of two edges on one channel, in ticks (the pin must be low in between).
pub const MIN_EDGE_SPACING_TICKS: u64 = 2;

/// One sample of the pass geometry and link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassSample {
    /// Pass time, in s.
    pub t_s: f64,
    /// Elevation of the satellite, in rad.
    pub elevation_rad: f64,
    /// Slant range, in m.
    pub range_m: f64,
    /// Range rate, in m/s.
    pub range_rate_m_s: f64,
    /// Link loss from the transmitter to the detectors (detector efficiency excluded), in dB.
    pub link_loss_db: f64,
    /// Probability that one emitted photon is detected (link × detector efficiency).
    pub transmittance: f64,
}

/// What caused a detector click.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClickKind {
    /// A photon from the source.
    Signal,
    /// A dark count or a background photon.
    Noise,
    /// An afterpulse of an earlier click.
    Afterpulse,
}

/// Alice's record of one pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AliceRecord {
    /// Slot index (pulse number since the start of the pass).
    pub slot: u64,
    /// Preparation basis.
    pub basis: Basis,
    /// Bit value (0 = H or D, 1 = V or A).
    pub value: u8,
    /// Intensity class.
    pub class: IntensityClass,
}

/// One accepted detector click of the BB84 receiver, with its ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bb84Click {
    /// Tick of the edge at the tagger pin.
    pub tick: u64,
    /// Detector channel (0 = H, 1 = V, 2 = D, 3 = A).
    pub channel: u8,
    /// What caused it.
    pub kind: ClickKind,
    /// The slot whose pulse would arrive at the click's time (for noise and afterpulses, the
    /// nearest slot).
    pub slot: u64,
}

/// Aggregate BB84 counts over the pass (indices `[class][basis]`, class as
/// [`IntensityClass::index`], basis as [`Basis::index`] of Alice).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bb84Counts {
    /// Pulses Alice sent.
    pub pulses: [[u64; 2]; 3],
    /// Slots with at least one accepted click.
    pub detected: [[u64; 2]; 3],
    /// Detected slots whose measured basis (after squashing multi-clicks: a random value
    /// for clicks of one basis with both values, a random basis for clicks of both bases)
    /// equals Alice's.
    pub sifted: [[u64; 2]; 3],
    /// Sifted slots whose measured value differs from Alice's.
    pub errors: [[u64; 2]; 3],
    /// Accepted signal clicks.
    pub signal_clicks: u64,
    /// Accepted dark and background clicks.
    pub noise_clicks: u64,
    /// Accepted afterpulses.
    pub afterpulse_clicks: u64,
    /// Clicks lost to detector dead time.
    pub dead_time_losses: u64,
    /// Clicks merged because they fell closer than [`MIN_EDGE_SPACING_TICKS`] on a channel.
    pub merged_edges: u64,
    /// Expected number of detected signal photons before dead time (Σ N p_k μ_k η).
    pub expected_signal_photons: f64,
    /// Expected number of slots with at least one detected signal photon.
    pub expected_signal_slots: f64,
    /// Expected number of noise clicks before dead time.
    pub expected_noise_clicks: f64,
}

impl Bb84Counts {
    /// Quantum bit error rate of the sifted slots of one class and basis.
    pub fn qber(&self, class: IntensityClass, basis: Basis) -> f64 {
        let (k, b) = (class.index(), basis.index());
        self.errors[k][b] as f64 / self.sifted[k][b].max(1) as f64
    }
}

/// A simulated decoy-BB84 pass.
#[derive(Clone, Debug)]
pub struct Bb84Pass {
    /// Tagger clock frequency, in Hz.
    pub tagger_clock_hz: f64,
    /// Simulated duration, in s.
    pub duration_s: f64,
    /// Orbit time of pass time 0, in s (culmination over the reference point near 0).
    pub start_orbit_time_s: f64,
    /// Source slot period, in s.
    pub slot_period_s: f64,
    /// Tick (exclusive) up to which the edges are complete.
    pub end_tick: u64,
    /// Alice's records of the slots the ground saw clicks in, sorted by slot.
    pub alice: Vec<AliceRecord>,
    /// Detector and 1PPS edges for the tagger, sorted.
    pub edges: Vec<Edge>,
    /// Accepted detector clicks with their ground truth, sorted by tick.
    pub clicks: Vec<Bb84Click>,
    /// Aggregate counts.
    pub counts: Bb84Counts,
    /// Geometry and link, one sample per second.
    pub timeline: Vec<PassSample>,
}

/// One accepted detector click of a BBM92 station, with its ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bbm92Click {
    /// Tick of the edge at the tagger pin.
    pub tick: u64,
    /// Detector channel (0 = H, 1 = V, 2 = D, 3 = A).
    pub channel: u8,
    /// What caused it.
    pub kind: ClickKind,
    /// Number of the pair the photon belonged to (signal clicks only).
    pub pair: Option<u64>,
}

/// Aggregate BBM92 counts of the pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bbm92Counts {
    /// Pairs whose two photons were both detected (before dead time).
    pub coincident_pairs: u64,
    /// Accepted clicks at station A and B.
    pub clicks: [u64; 2],
    /// Accepted signal clicks at A and B.
    pub signal_clicks: [u64; 2],
    /// Accepted noise clicks at A and B.
    pub noise_clicks: [u64; 2],
    /// Accepted afterpulses at A and B.
    pub afterpulse_clicks: [u64; 2],
    /// Clicks lost to dead time at A and B.
    pub dead_time_losses: [u64; 2],
    /// Edges merged for spacing at A and B.
    pub merged_edges: [u64; 2],
    /// Expected number of coincident pairs (Σ R η_A η_B dt).
    pub expected_coincident_pairs: f64,
}

/// One sample of the true and predicted clock offset between the stations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OffsetSample {
    /// Emission time of a pair, pass time in s.
    pub t_s: f64,
    /// Tick at which station A would stamp that pair's photon (jitter-free), in ticks.
    pub a_tick: f64,
    /// B's stamp minus A's stamp for that pair (time of flight + clocks), in ticks.
    pub true_offset_ticks: f64,
    /// The part of it predicted from the orbit (time-of-flight difference, with the
    /// ephemeris error), in ticks.
    pub predicted_offset_ticks: f64,
}

/// A simulated entanglement-based pass to two stations.
#[derive(Clone, Debug)]
pub struct Bbm92Pass {
    /// Tagger clock frequency (both stations), in Hz.
    pub tagger_clock_hz: f64,
    /// Simulated duration, in s.
    pub duration_s: f64,
    /// Orbit time of pass time 0, in s.
    pub start_orbit_time_s: f64,
    /// Ticks (exclusive) up to which the edges of A and B are complete.
    pub end_tick: [u64; 2],
    /// Station A's detector and 1PPS edges, sorted.
    pub station_a: Vec<Edge>,
    /// Station B's detector and 1PPS edges, sorted.
    pub station_b: Vec<Edge>,
    /// Station A's accepted clicks with ground truth, sorted by tick.
    pub clicks_a: Vec<Bbm92Click>,
    /// Station B's accepted clicks with ground truth, sorted by tick.
    pub clicks_b: Vec<Bbm92Click>,
    /// Aggregate counts.
    pub counts: Bbm92Counts,
    /// True and predicted offset B − A, every 0.1 s.
    pub offsets: Vec<OffsetSample>,
    /// Geometry and link of A and B, one sample per second.
    pub timeline: [Vec<PassSample>; 2],
}

impl Bbm92Pass {
    fn interp(&self, a_tick: f64, f: impl Fn(&OffsetSample) -> f64) -> f64 {
        let o = &self.offsets;
        let i = o.partition_point(|s| s.a_tick <= a_tick).clamp(1, o.len() - 1);
        let (p, q) = (&o[i - 1], &o[i]);
        let x = (a_tick - p.a_tick) / (q.a_tick - p.a_tick);
        f(p) + x * (f(q) - f(p))
    }

    /// True offset B − A (ticks) of a pair that station A stamps at `a_tick`.
    pub fn true_offset_at(&self, a_tick: f64) -> f64 {
        self.interp(a_tick, |s| s.true_offset_ticks)
    }

    /// Orbit-predicted offset B − A (ticks) of a pair that station A stamps at `a_tick`.
    pub fn predicted_offset_at(&self, a_tick: f64) -> f64 {
        self.interp(a_tick, |s| s.predicted_offset_ticks)
    }
}

/// Range of one station over the pass, sampled at segment boundaries (emission time).
struct RangeTable {
    step_s: f64,
    range_m: Vec<f64>,
}

impl RangeTable {
    fn new(orbit: &Orbit, station: &StationConfig, t0: f64, duration: f64, step_s: f64) -> Self {
        let n = (duration / step_s).ceil() as usize + 2;
        RangeTable { step_s, range_m: (0..n).map(|i| orbit.look(station, t0 + i as f64 * step_s).range_m).collect() }
    }

    /// Range at emission pass time `t`, in m (linear interpolation).
    fn range(&self, t: f64) -> f64 {
        let x = (t / self.step_s).max(0.0);
        let i = (x as usize).min(self.range_m.len() - 2);
        let f = x - i as f64;
        self.range_m[i] + f * (self.range_m[i + 1] - self.range_m[i])
    }

    /// True arrival time of light emitted at `t`.
    fn arrival(&self, t: f64) -> f64 {
        t + self.range(t) / SPEED_OF_LIGHT_M_S
    }

    /// Emission time of light arriving at `ta` (fixed point; converges as v/c).
    fn emission(&self, ta: f64) -> f64 {
        let mut te = ta - self.range(ta) / SPEED_OF_LIGHT_M_S;
        for _ in 0..3 {
            te = ta - self.range(te) / SPEED_OF_LIGHT_M_S;
        }
        te
    }
}

/// A candidate click in true time, before dead time.
#[derive(Clone, Copy, Debug)]
struct Cand {
    t: f64,
    det: u8,
    kind: ClickKind,
    id: u64,
}

/// An accepted click in true time.
#[derive(Clone, Copy, Debug)]
struct Accepted {
    t: f64,
    det: u8,
    kind: ClickKind,
    id: u64,
}

const NO_ID: u64 = u64::MAX;

/// Applies the detectors' dead time and afterpulsing in true time. `id_of_afterpulse` gives
/// an afterpulse at true time t its id. Returns the accepted clicks (sorted by time) and the
/// number lost to dead time.
fn detect(
    mut cands: Vec<Cand>,
    det: &super::DetectorConfig,
    rng: &mut impl Rng,
    id_of_afterpulse: impl Fn(f64) -> u64,
) -> (Vec<Accepted>, u64) {
    cands.sort_by(|a, b| a.t.total_cmp(&b.t));
    let dead = det.dead_time_ns * 1e-9;
    let tau = det.afterpulse_time_constant_ns * 1e-9;
    let mut next_ok = [f64::MIN; 4];
    let mut out = Vec::with_capacity(cands.len());
    let mut lost = 0u64;
    // Pending afterpulses ordered by time: (time in fs as integer key, detector).
    let mut pending: BinaryHeap<Reverse<(u64, u8)>> = BinaryHeap::new();
    let key = |t: f64| (t.max(0.0) * 1e15) as u64;
    let mut i = 0;
    loop {
        let take_pending = match (pending.peek(), cands.get(i)) {
            (Some(Reverse((k, _))), Some(c)) => *k < key(c.t),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let c = if take_pending {
            let Reverse((k, d)) = pending.pop().expect("peeked");
            let t = k as f64 * 1e-15;
            Cand { t, det: d, kind: ClickKind::Afterpulse, id: id_of_afterpulse(t) }
        } else {
            i += 1;
            cands[i - 1]
        };
        let d = c.det as usize;
        if c.t < next_ok[d] {
            lost += 1;
            continue;
        }
        next_ok[d] = c.t + dead;
        out.push(Accepted { t: c.t, det: c.det, kind: c.kind, id: c.id });
        if det.afterpulse_probability > 0.0 && rng.gen::<f64>() < det.afterpulse_probability {
            let delay = dead + tau * -(1.0 - rng.gen::<f64>()).ln();
            pending.push(Reverse((key(c.t + delay), c.det)));
        }
    }
    (out, lost)
}

/// Stamps accepted clicks with the station clock, enforces the edge spacing per channel, and
/// adds the 1PPS edges. Returns (kept clicks as (tick, accepted), edges, merged count, end tick).
fn stamp(
    acc: Vec<Accepted>,
    clock: &Clock,
    f_clk: f64,
    duration: f64,
    pps_jitter_s: f64,
    rng: &mut impl Rng,
) -> (Vec<(u64, Accepted)>, Vec<Edge>, u64, u64) {
    let mut last = [None::<u64>; 8];
    let mut kept = Vec::with_capacity(acc.len());
    let mut merged = 0;
    let mut ticked: Vec<(u64, Accepted)> =
        acc.into_iter().map(|a| ((clock.local(a.t) * f_clk).floor() as u64, a)).collect();
    // The clock is monotone, so only equal-time reorderings can occur; sort to be safe.
    ticked.sort_by_key(|&(t, a)| (t, a.det));
    for (tick, a) in ticked {
        let d = a.det as usize;
        if let Some(l) = last[d] {
            if tick < l + MIN_EDGE_SPACING_TICKS {
                merged += 1;
                continue;
            }
        }
        last[d] = Some(tick);
        kept.push((tick, a));
    }
    let mut edges: Vec<Edge> = kept.iter().map(|&(tick, a)| Edge { tick, channel: a.det }).collect();
    let mut s = 0.0;
    while s <= duration {
        let j: f64 = StandardNormal.sample(rng);
        let t = (s + pps_jitter_s * j).max(0.0);
        edges.push(Edge { tick: (clock.local(t) * f_clk).floor() as u64, channel: PPS_CHANNEL });
        s += 1.0;
    }
    edges.sort();
    edges.dedup_by_key(|e| (e.tick, e.channel));
    let end_tick = (clock.local(duration + 0.01) * f_clk).ceil() as u64 + 16;
    (kept, edges, merged, end_tick)
}

/// The simulated window in orbit time: (start, duration).
fn window(cfg: &PassConfig, orbit: &Orbit, stations: &[&StationConfig]) -> Result<(f64, f64), PhysicsError> {
    let (mut rise, mut set) = (f64::MIN, f64::MAX);
    let mut tcs = Vec::new();
    for s in stations {
        let (r, tc, st) = orbit.pass_window(s)?;
        rise = rise.max(r);
        set = set.min(st);
        tcs.push(tc);
    }
    if set <= rise {
        return Err(PhysicsError::NoPass("the stations' visibility windows do not overlap".into()));
    }
    let tc = (tcs.iter().sum::<f64>() / tcs.len() as f64).clamp(rise, set);
    Ok(match cfg.simulation.max_duration_s {
        Some(d) if d < set - rise => {
            let start = (tc - 0.5 * d).clamp(rise, set - d);
            (start, d)
        }
        _ => (rise, set - rise),
    })
}

fn timeline(orbit: &Orbit, rx: &ReceiverConfig, t0: f64, duration: f64) -> Vec<PassSample> {
    let mut v = Vec::new();
    let mut t = 0.0;
    while t <= duration + 1e-9 {
        let l = orbit.look(&rx.station, t0 + t);
        let b = rx.link.budget(l.elevation_rad, l.range_m);
        v.push(PassSample {
            t_s: t,
            elevation_rad: l.elevation_rad,
            range_m: l.range_m,
            range_rate_m_s: l.range_rate_m_s,
            link_loss_db: b.total_db(),
            transmittance: b.total() * rx.detector.efficiency,
        });
        t += 1.0;
    }
    v
}

/// Photon detection probability (link × detector efficiency) at emission pass time `t`.
fn eta(orbit: &Orbit, rx: &ReceiverConfig, t_orbit: f64) -> f64 {
    let l = orbit.look(&rx.station, t_orbit);
    rx.link.budget(l.elevation_rad, l.range_m).total() * rx.detector.efficiency
}

/// Draws `n ≥ 1` from a Poisson(λ) distribution conditioned on `n ≥ 1`.
fn truncated_poisson(lambda: f64, rng: &mut impl Rng) -> u32 {
    let mut u = rng.gen::<f64>() * -(-lambda).exp_m1();
    let mut p = lambda * (-lambda).exp();
    let mut n = 1;
    while u > p && n < 1000 {
        u -= p;
        n += 1;
        p *= lambda / n as f64;
    }
    n
}

/// Outcome of a photon of polarization (`basis`, `value`) at a receiver with a passive basis
/// splitter: the detector channel that clicks.
fn measure(basis: Basis, value: u8, rx: &ReceiverConfig, rng: &mut impl Rng) -> u8 {
    let b = if rng.gen::<f64>() < rx.p_z { Basis::Z } else { Basis::X };
    let v = if b == basis { value ^ (rng.gen::<f64>() < rx.misalignment_error) as u8 } else { rng.gen::<u8>() & 1 };
    b.channel(v)
}

/// Noise clicks (dark + background) of all four detectors for light arriving while emission
/// time runs over `[t0, t1)`.
fn noise(rx: &ReceiverConfig, ranges: &RangeTable, t0: f64, t1: f64, rng: &mut impl Rng, out: &mut Vec<Cand>) -> f64 {
    let (a0, a1) = (ranges.arrival(t0), ranges.arrival(t1));
    let mean = rx.noise_rate_per_detector_hz() * (a1 - a0);
    if mean > 0.0 {
        let pois = Poisson::new(mean).expect("positive mean");
        for det in 0..4u8 {
            let n = pois.sample(rng) as u64;
            for _ in 0..n {
                out.push(Cand { t: a0 + rng.gen::<f64>() * (a1 - a0), det, kind: ClickKind::Noise, id: NO_ID });
            }
        }
    }
    4.0 * mean
}

fn check_clock(tagger_clock_hz: f64) -> Result<(), PhysicsError> {
    check_range("tagger_clock_hz", tagger_clock_hz, 1e3, 1e11)
}

/// Simulates the decoy-BB84 downlink of `cfg` (which must have a `[bb84]` section) with the
/// RNG seeded by `seed`, the ground tagger running at `tagger_clock_hz` (Hz).
pub fn simulate_bb84_pass(cfg: &PassConfig, seed: u64, tagger_clock_hz: f64) -> Result<Bb84Pass, PhysicsError> {
    check_clock(tagger_clock_hz)?;
    cfg.validate()?;
    let bb = cfg.bb84.as_ref().ok_or(PhysicsError::MissingSection("bb84"))?;
    let (src, rx) = (&bb.source, &bb.receiver);
    let orbit = Orbit::new(&cfg.orbit)?;
    let (t0, duration) = window(cfg, &orbit, &[&rx.station])?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let f_rep = src.pulse_rate_hz;
    let slots_per_seg = ((cfg.simulation.segment_s * f_rep).round() as u64).max(1);
    let seg_s = slots_per_seg as f64 / f_rep;
    let n_slots = (duration * f_rep).floor() as u64;
    let n_seg = n_slots.div_ceil(slots_per_seg) as usize;
    let ranges = RangeTable::new(&orbit, &rx.station, t0, duration + 1.0, seg_s);
    let clock = Clock::new(&rx.clock, duration + 1.0, &mut rng);
    let mu = src.intensities;
    let pk = src.class_probabilities;

    let mut counts = Bb84Counts::default();
    let mut cands: Vec<Cand> = Vec::new();
    let mut alice: Vec<AliceRecord> = Vec::new();
    // Per segment: probability of each (class, basis) for a pulse without a detection.
    let mut quiet_probs: Vec<[f64; 6]> = Vec::with_capacity(n_seg);
    let jitter_s = rx.detector.jitter_ps * 1e-12;
    for j in 0..n_seg {
        let s0 = j as u64 * slots_per_seg;
        let s1 = (s0 + slots_per_seg).min(n_slots);
        let (te0, te1) = (s0 as f64 / f_rep, s1 as f64 / f_rep);
        let eta = eta(&orbit, rx, t0 + 0.5 * (te0 + te1));
        let p_click: [f64; 3] = std::array::from_fn(|k| -(-mu[k] * eta).exp_m1());
        let w: [f64; 3] = std::array::from_fn(|k| pk[k] * p_click[k]);
        let p_det: f64 = w.iter().sum();
        let n = (s1 - s0) as f64;
        counts.expected_signal_slots += n * p_det;
        counts.expected_signal_photons += n * (0..3).map(|k| pk[k] * mu[k] * eta).sum::<f64>();
        let q: [f64; 3] = std::array::from_fn(|k| pk[k] * (1.0 - p_click[k]));
        let qs: f64 = q.iter().sum();
        quiet_probs.push(std::array::from_fn(|i| {
            let (k, b) = (i / 2, i % 2);
            q[k] / qs * if b == 0 { src.p_z } else { 1.0 - src.p_z }
        }));
        if p_det > 0.0 {
            let geo = Geometric::new(p_det).expect("0 < p <= 1");
            let mut s = s0 + geo.sample(&mut rng);
            while s < s1 {
                let mut u = rng.gen::<f64>() * p_det;
                let mut k = 0;
                while k < 2 && u >= w[k] {
                    u -= w[k];
                    k += 1;
                }
                let basis = if rng.gen::<f64>() < src.p_z { Basis::Z } else { Basis::X };
                let value = rng.gen::<u8>() & 1;
                alice.push(AliceRecord { slot: s, basis, value, class: IntensityClass::ALL[k] });
                let te = s as f64 / f_rep;
                let ta = ranges.arrival(te);
                for _ in 0..truncated_poisson(mu[k] * eta, &mut rng) {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    let det = measure(basis, value, rx, &mut rng);
                    cands.push(Cand { t: ta + jitter_s * z, det, kind: ClickKind::Signal, id: s });
                }
                s += 1 + geo.sample(&mut rng);
            }
        }
        counts.expected_noise_clicks += noise(rx, &ranges, te0, te1, &mut rng, &mut cands);
    }
    let nearest_slot = |ta: f64| ((ranges.emission(ta) * f_rep).round().max(0.0) as u64).min(n_slots.saturating_sub(1));
    for c in cands.iter_mut().filter(|c| c.id == NO_ID) {
        c.id = nearest_slot(c.t);
    }
    let (acc, lost) = detect(cands, &rx.detector, &mut rng, nearest_slot);
    counts.dead_time_losses = lost;
    let (kept, edges, merged, end_tick) =
        stamp(acc, &clock, tagger_clock_hz, duration, rx.pps_jitter_ps * 1e-12, &mut rng);
    counts.merged_edges = merged;

    // Alice's records for slots that only noise or afterpulses clicked in.
    alice.sort_unstable_by_key(|r| r.slot);
    let mut extra: Vec<u64> =
        kept.iter().map(|(_, a)| a.id).filter(|s| alice.binary_search_by_key(s, |r| r.slot).is_err()).collect();
    extra.sort_unstable();
    extra.dedup();
    for s in extra {
        let q = &quiet_probs[(s / slots_per_seg) as usize];
        let mut u = rng.gen::<f64>();
        let mut i = 0;
        while i < 5 && u >= q[i] {
            u -= q[i];
            i += 1;
        }
        let basis = if i % 2 == 0 { Basis::Z } else { Basis::X };
        alice.push(AliceRecord { slot: s, basis, value: rng.gen::<u8>() & 1, class: IntensityClass::ALL[i / 2] });
    }
    alice.sort_unstable_by_key(|r| r.slot);
    // Signal slots whose clicks were all lost to dead time keep no record.
    let clicked: std::collections::HashSet<u64> = kept.iter().map(|(_, a)| a.id).collect();
    // Pulses sent: the records of detected slots plus a multinomial over the quiet slots of
    // each segment (including signal slots whose clicks were lost: they count as sent).
    let mut per_seg = vec![0u64; n_seg];
    for r in &alice {
        counts.pulses[r.class.index()][r.basis.index()] += 1;
        per_seg[(r.slot / slots_per_seg) as usize] += 1;
    }
    for (j, q) in quiet_probs.iter().enumerate() {
        let s0 = j as u64 * slots_per_seg;
        let n = (s0 + slots_per_seg).min(n_slots) - s0;
        let mut rest = n - per_seg[j];
        let mut p_rest = 1.0;
        for (i, &p) in q.iter().enumerate() {
            let c = if i == 5 || p_rest <= 0.0 {
                rest
            } else {
                Binomial::new(rest, (p / p_rest).clamp(0.0, 1.0)).expect("valid binomial").sample(&mut rng)
            };
            counts.pulses[i / 2][i % 2] += c;
            rest -= c;
            p_rest -= p;
        }
    }
    alice.retain(|r| clicked.contains(&r.slot));

    // Ground truth sifting of the accepted clicks, slot by slot.
    let mut by_slot: Vec<(u64, u8)> = kept.iter().map(|(_, a)| (a.id, a.det)).collect();
    by_slot.sort_unstable();
    let mut i = 0;
    while i < by_slot.len() {
        let slot = by_slot[i].0;
        let mut mask = 0u8;
        while i < by_slot.len() && by_slot[i].0 == slot {
            mask |= 1 << by_slot[i].1;
            i += 1;
        }
        let rec = alice[alice.binary_search_by_key(&slot, |r| r.slot).expect("record of a clicked slot")];
        let (k, ab) = (rec.class.index(), rec.basis.index());
        counts.detected[k][ab] += 1;
        let (z, x) = (mask & 0b11, (mask >> 2) & 0b11);
        let basis = match (z != 0, x != 0) {
            (true, false) => Basis::Z,
            (false, true) => Basis::X,
            _ => {
                if rng.gen::<bool>() {
                    Basis::Z
                } else {
                    Basis::X
                }
            }
        };
        if basis == rec.basis {
            let bits = if basis == Basis::Z { z } else { x };
            let value = match bits {
                0b01 => 0,
                0b10 => 1,
                _ => rng.gen::<u8>() & 1,
            };
            counts.sifted[k][ab] += 1;
            counts.errors[k][ab] += (value != rec.value) as u64;
        }
    }
    let clicks: Vec<Bb84Click> = kept
        .into_iter()
        .map(|(tick, a)| {
            match a.kind {
                ClickKind::Signal => counts.signal_clicks += 1,
                ClickKind::Noise => counts.noise_clicks += 1,
                ClickKind::Afterpulse => counts.afterpulse_clicks += 1,
            }
            Bb84Click { tick, channel: a.det, kind: a.kind, slot: a.id }
        })
        .collect();
    Ok(Bb84Pass {
        tagger_clock_hz,
        duration_s: duration,
        start_orbit_time_s: t0,
        slot_period_s: 1.0 / f_rep,
        end_tick,
        alice,
        edges,
        clicks,
        counts,
        timeline: timeline(&orbit, rx, t0, duration),
    })
}

/// Simulates the entanglement-based two-station link of `cfg` (which must have a `[bbm92]`
/// section) with the RNG seeded by `seed`, both taggers at `tagger_clock_hz` (Hz).
pub fn simulate_bbm92_pass(cfg: &PassConfig, seed: u64, tagger_clock_hz: f64) -> Result<Bbm92Pass, PhysicsError> {
    check_clock(tagger_clock_hz)?;
    cfg.validate()?;
    let bb = cfg.bbm92.as_ref().ok_or(PhysicsError::MissingSection("bbm92"))?;
    let rxs = [&bb.station_a, &bb.station_b];
    let orbit = Orbit::new(&cfg.orbit)?;
    let (t0, duration) = window(cfg, &orbit, &[&rxs[0].station, &rxs[1].station])?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let seg_s = cfg.simulation.segment_s;
    let n_seg = (duration / seg_s).ceil() as usize;
    let ranges = rxs.map(|rx| RangeTable::new(&orbit, &rx.station, t0, duration + 1.0, seg_s));
    let clocks =
        [Clock::new(&rxs[0].clock, duration + 1.0, &mut rng), Clock::new(&rxs[1].clock, duration + 1.0, &mut rng)];
    let mut cands: [Vec<Cand>; 2] = [Vec::new(), Vec::new()];
    let mut counts = Bbm92Counts::default();
    let rate = bb.source.pair_rate_hz;
    let mut pair_id = 0u64;
    for j in 0..n_seg {
        let (te0, te1) = (j as f64 * seg_s, ((j + 1) as f64 * seg_s).min(duration));
        let dt = te1 - te0;
        let tm = t0 + 0.5 * (te0 + te1);
        let (ea, eb) = (eta(&orbit, rxs[0], tm), eta(&orbit, rxs[1], tm));
        counts.expected_coincident_pairs += rate * ea * eb * dt;
        let means = [rate * ea * eb * dt, rate * ea * (1.0 - eb) * dt, rate * eb * (1.0 - ea) * dt];
        for (kind, &m) in means.iter().enumerate() {
            let n = if m > 0.0 { Poisson::new(m).expect("positive mean").sample(&mut rng) as u64 } else { 0 };
            for _ in 0..n {
                let te = te0 + rng.gen::<f64>() * dt;
                let mut emit = |st: usize, det: u8, rng: &mut ChaCha8Rng| {
                    let z: f64 = StandardNormal.sample(rng);
                    let t = ranges[st].arrival(te) + rxs[st].detector.jitter_ps * 1e-12 * z;
                    cands[st].push(Cand { t, det, kind: ClickKind::Signal, id: pair_id });
                };
                if kind == 0 {
                    // A measures first (its own passive basis choice, a random outcome); that
                    // projects B's photon onto the (anti)correlated state in A's basis, with
                    // A's misalignment folded into it; B then measures it.
                    let a_basis = if rng.gen::<f64>() < rxs[0].p_z { Basis::Z } else { Basis::X };
                    let a_value = rng.gen::<u8>() & 1;
                    let flip_a = (rng.gen::<f64>() < rxs[0].misalignment_error) as u8;
                    let b_value = a_value ^ bb.source.state.anticorrelated(a_basis) as u8 ^ flip_a;
                    let b_det = measure(a_basis, b_value, rxs[1], &mut rng);
                    emit(0, a_basis.channel(a_value), &mut rng);
                    emit(1, b_det, &mut rng);
                } else {
                    // One photon of the pair lost: the other is unpolarized.
                    let st = kind - 1;
                    let basis = if rng.gen::<bool>() { Basis::Z } else { Basis::X };
                    let det = measure(basis, rng.gen::<u8>() & 1, rxs[st], &mut rng);
                    emit(st, det, &mut rng);
                }
                if kind == 0 {
                    counts.coincident_pairs += 1;
                }
                pair_id += 1;
            }
        }
        for st in 0..2 {
            noise(rxs[st], &ranges[st], te0, te1, &mut rng, &mut cands[st]);
        }
    }
    let mut out_edges: [Vec<Edge>; 2] = [Vec::new(), Vec::new()];
    let mut out_clicks: [Vec<Bbm92Click>; 2] = [Vec::new(), Vec::new()];
    let mut end_tick = [0u64; 2];
    for st in 0..2 {
        let (acc, lost) = detect(std::mem::take(&mut cands[st]), &rxs[st].detector, &mut rng, |_| NO_ID);
        counts.dead_time_losses[st] = lost;
        let (kept, edges, merged, end) =
            stamp(acc, &clocks[st], tagger_clock_hz, duration, rxs[st].pps_jitter_ps * 1e-12, &mut rng);
        counts.merged_edges[st] = merged;
        counts.clicks[st] = kept.len() as u64;
        for (_, a) in &kept {
            match a.kind {
                ClickKind::Signal => counts.signal_clicks[st] += 1,
                ClickKind::Noise => counts.noise_clicks[st] += 1,
                ClickKind::Afterpulse => counts.afterpulse_clicks[st] += 1,
            }
        }
        out_clicks[st] = kept
            .into_iter()
            .map(|(tick, a)| Bbm92Click {
                tick,
                channel: a.det,
                kind: a.kind,
                pair: (a.kind == ClickKind::Signal).then_some(a.id),
            })
            .collect();
        out_edges[st] = edges;
        end_tick[st] = end;
    }
    let mut offsets = Vec::new();
    let mut t = 0.0;
    while t <= duration + 1e-9 {
        let (ta, tb) = (ranges[0].arrival(t), ranges[1].arrival(t));
        let a_tick = clocks[0].local(ta) * tagger_clock_hz;
        let b_tick = clocks[1].local(tb) * tagger_clock_hz;
        let (ra, rb) =
            (ranges[0].range(t) + bb.ephemeris_range_error_m[0], ranges[1].range(t) + bb.ephemeris_range_error_m[1]);
        offsets.push(OffsetSample {
            t_s: t,
            a_tick,
            true_offset_ticks: b_tick - a_tick,
            predicted_offset_ticks: (rb - ra) / SPEED_OF_LIGHT_M_S * tagger_clock_hz,
        });
        t += 0.1;
    }
    let [station_a, station_b] = out_edges;
    let [clicks_a, clicks_b] = out_clicks;
    Ok(Bbm92Pass {
        tagger_clock_hz,
        duration_s: duration,
        start_orbit_time_s: t0,
        end_tick,
        station_a,
        station_b,
        clicks_a,
        clicks_b,
        counts,
        offsets,
        timeline: [timeline(&orbit, rxs[0], t0, duration), timeline(&orbit, rxs[1], t0, duration)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qkd_hdl::tagfmt::StreamDecoder;
    use qkd_hdl::tagger_model::{tag_edges, TaggerConfig};

    const F_CLK: f64 = 150e6;

    fn bb84(duration: f64) -> PassConfig {
        let mut cfg = PassConfig::preset("micius-2017-bb84").unwrap();
        cfg.simulation.max_duration_s = Some(duration);
        cfg
    }

    fn rx(cfg: &mut PassConfig) -> &mut ReceiverConfig {
        &mut cfg.bb84.as_mut().unwrap().receiver
    }

    /// |observed − mean| within `k` Poisson standard deviations (plus `slack`).
    fn within(observed: f64, mean: f64, k: f64, slack: f64) -> bool {
        (observed - mean).abs() <= k * mean.sqrt() + slack
    }

    #[test]
    fn edges_are_valid_tagger_input() {
        let p = simulate_bb84_pass(&bb84(3.0), 7, F_CLK).unwrap();
        assert!(p.edges.windows(2).all(|w| w[0] < w[1]), "edges sorted and distinct");
        let mut last = [None::<u64>; 8];
        for e in &p.edges {
            if let Some(l) = last[e.channel as usize] {
                assert!(e.tick >= l + MIN_EDGE_SPACING_TICKS, "{e:?} after {l}");
            }
            last[e.channel as usize] = Some(e.tick);
        }
        let pps = p.edges.iter().filter(|e| e.channel == PPS_CHANNEL).count();
        assert_eq!(pps, 4, "one 1PPS edge per second, 0..=3 s");
        assert_eq!(p.edges.len(), p.clicks.len() + pps);
        // The tagger's event-level model tags every edge.
        let recs = tag_edges(5, &TaggerConfig::default(), &p.edges, p.end_tick);
        let mut tags = Vec::new();
        StreamDecoder::new().push_all(&recs, &mut tags).unwrap();
        assert_eq!(tags.len(), p.edges.len());
        assert!(tags.iter().zip(&p.edges).all(|(t, e)| t.time == e.tick + 2 && t.channel == e.channel));
        // Every click has Alice's record of its slot.
        for c in &p.clicks {
            assert!(p.alice.binary_search_by_key(&c.slot, |r| r.slot).is_ok());
        }
    }

    #[test]
    fn counts_match_poisson_means() {
        let mut cfg = bb84(10.0);
        rx(&mut cfg).detector.dead_time_ns = 0.0;
        rx(&mut cfg).detector.afterpulse_probability = 0.0;
        let p = simulate_bb84_pass(&cfg, 11, F_CLK).unwrap();
        let c = &p.counts;
        assert_eq!(c.dead_time_losses, 0);
        assert_eq!(c.afterpulse_clicks, 0);
        // Every detected photon and noise count is a click, unless merged into a neighbour on
        // its channel within two ticks.
        let clicks = (c.signal_clicks + c.noise_clicks + c.merged_edges) as f64;
        assert!(within(clicks, c.expected_signal_photons + c.expected_noise_clicks, 5.0, 0.0), "{c:?}");
        assert!(within(c.noise_clicks as f64, c.expected_noise_clicks, 5.0, c.merged_edges as f64), "{c:?}");
        assert!(c.signal_clicks > 100_000, "{c:?}");
        // Pulses: exactly one per slot, split by the class and basis probabilities.
        let n: u64 = c.pulses.iter().flatten().sum();
        let slots = (p.duration_s / p.slot_period_s).floor() as u64;
        assert_eq!(n, slots);
        let src = &cfg.bb84.as_ref().unwrap().source;
        for k in 0..3 {
            for b in 0..2 {
                let expect = n as f64 * src.class_probabilities[k] * 0.5;
                assert!(
                    within(c.pulses[k][b] as f64, expect, 5.0, 0.0),
                    "pulses[{k}][{b}] {} vs {expect}",
                    c.pulses[k][b]
                );
            }
        }
        let detected: u64 = c.detected.iter().flatten().sum();
        assert!(within(
            detected as f64,
            c.expected_signal_slots + c.expected_noise_clicks,
            5.0,
            c.merged_edges as f64 + 0.01 * clicks
        ));
    }

    #[test]
    fn qber_is_misalignment_plus_background() {
        let mut cfg = bb84(10.0);
        rx(&mut cfg).background_rate_hz = 20_000.0;
        rx(&mut cfg).misalignment_error = 0.02;
        let p = simulate_bb84_pass(&cfg, 3, F_CLK).unwrap();
        let src = &cfg.bb84.as_ref().unwrap().source;
        let r = &cfg.bb84.as_ref().unwrap().receiver;
        // Per slot of class k: signal yield 1 − exp(−μ η), noise yield R_noise / f_rep.
        let noise = 4.0 * r.noise_rate_per_detector_hz() / src.pulse_rate_hz;
        for class in [IntensityClass::Signal, IntensityClass::Decoy] {
            let mu = src.intensities[class.index()];
            let s: f64 = p.timeline.iter().map(|x| -(-mu * x.transmittance).exp_m1()).sum();
            let b = noise * p.timeline.len() as f64;
            let expect = (r.misalignment_error * s + 0.5 * b) / (s + b);
            for basis in [Basis::Z, Basis::X] {
                let q = p.counts.qber(class, basis);
                let n = p.counts.sifted[class.index()][basis.index()] as f64;
                let sd = (expect * (1.0 - expect) / n).sqrt();
                assert!(
                    (q - expect).abs() < 5.0 * sd + 0.005,
                    "{class:?} {basis:?}: QBER {q}, expected {expect} (n {n})"
                );
            }
        }
        // The vacuum class is detected only through noise: QBER one half.
        let q = p.counts.qber(IntensityClass::Vacuum, Basis::Z);
        let n = p.counts.sifted[2][0] as f64;
        assert!((q - 0.5).abs() < 5.0 * (0.25 / n).sqrt(), "vacuum QBER {q}");
    }

    #[test]
    fn detected_rate_falls_as_loss_rises() {
        let base = simulate_bb84_pass(&bb84(5.0), 5, F_CLK).unwrap();
        let mut cfg = bb84(5.0);
        rx(&mut cfg).link.rx_optics_loss_db += 3.0;
        let lossy = simulate_bb84_pass(&cfg, 5, F_CLK).unwrap();
        let (a, b) = (base.counts.signal_clicks as f64, lossy.counts.signal_clicks as f64);
        // 3 dB more loss halves the signal (dead time aside): ratio 0.501.
        assert!((b / a - 0.501).abs() < 0.02, "ratio {}", b / a);
        // Over a whole pass the loss rises as the elevation falls.
        let cfg = bb84(1.0);
        let r = &cfg.bb84.as_ref().unwrap().receiver;
        let orbit = Orbit::new(&cfg.orbit).unwrap();
        let (rise, _, set) = orbit.pass_window(&r.station).unwrap();
        let t = timeline(&orbit, r, rise, set - rise);
        assert!(t.len() > 100, "a whole pass is several minutes");
        // Rising half: elevation up, loss down; setting half: the reverse. (Between the
        // halves equal elevations differ slightly in range: elevation is geodetic.)
        let top = t.iter().enumerate().max_by(|x, y| x.1.elevation_rad.total_cmp(&y.1.elevation_rad)).unwrap().0;
        for w in t[..=top].windows(2) {
            assert!(w[1].elevation_rad > w[0].elevation_rad && w[1].link_loss_db < w[0].link_loss_db, "{w:?}");
        }
        for w in t[top..].windows(2) {
            assert!(w[1].elevation_rad < w[0].elevation_rad && w[1].link_loss_db > w[0].link_loss_db, "{w:?}");
        }
        assert!(t[0].link_loss_db > t[top].link_loss_db + 10.0, "{:?} {:?}", t[0], t[top]);
    }

    #[test]
    fn bbm92_pairs_and_correlations() {
        let mut cfg = PassConfig::preset("micius-2020-bbm92").unwrap();
        cfg.simulation.max_duration_s = Some(20.0);
        cfg.bbm92.as_mut().unwrap().source.pair_rate_hz = 2e8;
        let p = simulate_bbm92_pass(&cfg, 9, F_CLK).unwrap();
        let c = &p.counts;
        assert!(within(c.coincident_pairs as f64, c.expected_coincident_pairs, 5.0, 0.0), "{c:?}");
        assert!(c.coincident_pairs > 2000, "{c:?}");
        // Ground truth: pairs seen by both stations give Ψ+ correlations with the misalignment
        // error of both stations.
        let bb = cfg.bbm92.as_ref().unwrap();
        let a: std::collections::HashMap<u64, u8> =
            p.clicks_a.iter().filter_map(|x| x.pair.map(|id| (id, x.channel))).collect();
        let (mut same, mut err) = (0u64, 0u64);
        for x in &p.clicks_b {
            if let Some(ca) = x.pair.and_then(|id| a.get(&id)) {
                let (ba, va) = Basis::of_channel(*ca);
                let (bb_, vb) = Basis::of_channel(x.channel);
                if ba == bb_ {
                    same += 1;
                    let anti = bb.source.state.anticorrelated(ba) as u8;
                    err += (vb != va ^ anti) as u64;
                }
            }
        }
        let (ea, eb) = (bb.station_a.misalignment_error, bb.station_b.misalignment_error);
        let expect = ea * (1.0 - eb) + eb * (1.0 - ea);
        let q = err as f64 / same as f64;
        assert!((q - expect).abs() < 5.0 * (expect / same as f64).sqrt(), "QBER {q} vs {expect} over {same}");
        // The true offset is the predicted time-of-flight difference, less its ephemeris
        // error, plus B's clock offset and drift (A's clock is the reference).
        let (ca, cb) = (&bb.station_a.clock, &bb.station_b.clock);
        let eph = (bb.ephemeris_range_error_m[0] - bb.ephemeris_range_error_m[1]) / SPEED_OF_LIGHT_M_S;
        for o in &p.offsets {
            let clocks = cb.offset_s - ca.offset_s + (cb.drift_ppm - ca.drift_ppm) * 1e-6 * o.t_s;
            let expect = (clocks + eph) * F_CLK;
            let resid = o.true_offset_ticks - o.predicted_offset_ticks;
            assert!((resid - expect).abs() < 2.0, "{o:?}: {resid} vs {expect}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Whole preset passes; prints simulated seconds per wall-clock second.
    /// `cargo test -p qkd-sim --lib physics::pass::speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn full_preset_passes() {
        let cfg = PassConfig::preset("micius-2017-bb84").unwrap();
        let t = std::time::Instant::now();
        let p = simulate_bb84_pass(&cfg, 1, 150e6).unwrap();
        let wall = t.elapsed().as_secs_f64();
        let c = &p.counts;
        let sifted: u64 = c.sifted.iter().flatten().sum();
        let errors: u64 = c.errors.iter().flatten().sum();
        println!(
            "bb84: {:.0} s pass in {wall:.2} s wall ({:.0}x real time): {} edges, {} Alice records, \
             sifted {sifted} (QBER {:.4}), loss {:.1}..{:.1} dB",
            p.duration_s,
            p.duration_s / wall,
            p.edges.len(),
            p.alice.len(),
            errors as f64 / sifted as f64,
            p.timeline.iter().map(|s| s.link_loss_db).fold(f64::MAX, f64::min),
            p.timeline.iter().map(|s| s.link_loss_db).fold(f64::MIN, f64::max),
        );
        assert!(wall < p.duration_s, "slower than real time");
        let cfg = PassConfig::preset("micius-2020-bbm92").unwrap();
        let t = std::time::Instant::now();
        let p = simulate_bbm92_pass(&cfg, 1, 150e6).unwrap();
        let wall = t.elapsed().as_secs_f64();
        println!(
            "bbm92: {:.0} s pass in {wall:.2} s wall ({:.0}x real time): {} + {} edges, {} coincident pairs",
            p.duration_s,
            p.duration_s / wall,
            p.station_a.len(),
            p.station_b.len(),
            p.counts.coincident_pairs
        );
        assert!(wall < p.duration_s, "slower than real time");
    }
}
