//! Clock synchronization of two stations from their time tags, after qcrypto's `pfind`
//! (offset by FFT cross-correlation) and `costream` (following the offset through a pass).
//!
//! Times are `u64` in any unit (ticks of the tagger clock, or ps); every parameter below is in
//! the same unit (called *ticks* here). The offset is `b − a`: a photon pair stamped at `t` by
//! station A is stamped near `t + offset(t)` by station B.
//!
//! 1. **Coarse** ([`find_offset`]): both streams are binned into a circular histogram of
//!    `coarse_fft_len` bins of `coarse_bin` ticks (`index = (t / coarse_bin) mod len`), the
//!    cross-correlation is computed with `rustfft` and its peak gives the offset to within a
//!    bin, modulo `coarse_fft_len · coarse_bin`.
//! 2. **Fine**: around that peak, the differences `b − a` are histogrammed directly at the fine
//!    bin width (an exact, cheap substitute for a second FFT at fine resolution, since the
//!    search range is now a few coarse bins) and the background-subtracted centroid of the
//!    peak gives a sub-bin offset.
//! 3. **Tracking** ([`track_offset`]): the offset drifts (clock frequency errors, and over a
//!    satellite pass the changing difference of the times of flight). An optional prior
//!    (for a satellite, the time-of-flight difference predicted from the orbit) is subtracted
//!    first. The residual is then estimated on successive windows, each search centred on
//!    the prediction from the previous windows (coarse pass with coarse bins); the coarse track
//!    is smoothed (local linear fit over ±2 windows) and the windows are measured twice more
//!    with fine bins around the previous track, so that the drift within a window no longer
//!    smears the peak. The drift within one window must stay below about a coarse bin.
//! 4. **Coincidences** ([`coincidences`]): pairs `(a, b)` with `|b − a − offset(a)| ≤ window`.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use thiserror::Error;

/// Errors of the synchronization.
#[derive(Debug, Error, PartialEq)]
pub enum SyncError {
    /// A stream has too few times to correlate.
    #[error("clock sync: too few tags (station A {a}, station B {b})")]
    TooFewTags {
        /// Tags of station A.
        a: usize,
        /// Tags of station B.
        b: usize,
    },
    /// The correlation has no significant peak.
    #[error("clock sync: no correlation peak (best {snr:.1} sigma, need {need:.1})")]
    NoPeak {
        /// Significance of the best peak, in standard deviations.
        snr: f64,
        /// Significance required.
        need: f64,
    },
    /// A parameter is invalid.
    #[error("clock sync: invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// No window of the pass gave an offset.
    #[error("clock sync: no window of the pass gave an offset")]
    NoTrack,
}

/// Parameters of the synchronization, in ticks (the unit of the times).
#[derive(Clone, Debug, PartialEq)]
pub struct SyncConfig {
    /// Coarse bin width, in ticks. Must exceed the drift of the offset within a window.
    pub coarse_bin: u64,
    /// Length of the coarse FFT (a power of two); the offset is found modulo
    /// `coarse_fft_len · coarse_bin` ticks, i.e. in ±half of it.
    pub coarse_fft_len: usize,
    /// Fine bin width, in ticks.
    pub fine_bin: u64,
    /// Half-width of the centroid around the fine peak, in fine bins.
    pub centroid_half_bins: u64,
    /// Length of a tracking window, in ticks.
    pub window: u64,
    /// Smallest significance of a correlation peak, in standard deviations of the background.
    pub min_snr: f64,
    /// When set, [`track_offset`] acquires the (residual) offset with a direct difference
    /// histogram over ± this many ticks instead of the FFT. Use it when a prior bounds the
    /// offset: the circular FFT folds every pair of tags of a window into its
    /// `coarse_fft_len` bins, so with few coincidences among many singles its peak drowns
    /// unless `coarse_fft_len · coarse_bin` spans the whole window.
    pub acquisition_half_range: Option<u64>,
}

impl Default for SyncConfig {
    /// 64-tick coarse bins, 2^16-point FFT (±2.1 M ticks = ±14 ms at 150 MHz), 1-tick fine
    /// bins, 2^30-tick windows (7.2 s at 150 MHz), 6 σ, FFT acquisition.
    fn default() -> Self {
        SyncConfig {
            coarse_bin: 64,
            coarse_fft_len: 1 << 16,
            fine_bin: 1,
            centroid_half_bins: 3,
            window: 1 << 30,
            min_snr: 6.0,
            acquisition_half_range: None,
        }
    }
}

impl SyncConfig {
    fn validate(&self) -> Result<(), SyncError> {
        let bad = |name, reason: &str| Err(SyncError::InvalidParameter { name, reason: reason.into() });
        if self.coarse_bin == 0 {
            return bad("coarse_bin", "must be at least 1");
        }
        if !self.coarse_fft_len.is_power_of_two() || self.coarse_fft_len < 16 {
            return bad("coarse_fft_len", "must be a power of two >= 16");
        }
        if self.fine_bin == 0 || self.fine_bin > self.coarse_bin {
            return bad("fine_bin", "must be in 1..=coarse_bin");
        }
        if self.window == 0 {
            return bad("window", "must be at least 1");
        }
        if !(self.min_snr > 0.0) {
            return bad("min_snr", "must be positive");
        }
        Ok(())
    }
}

/// An offset found on one stretch of the streams.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OffsetEstimate {
    /// Offset `b − a`, in ticks.
    pub offset: f64,
    /// Significance of the correlation peak, in standard deviations.
    pub snr: f64,
    /// Coincidences above background in the peak (estimated).
    pub signal: f64,
}

/// Circular cross-correlation `C[k] = Σ_i A[i] B[i + k]` of the binned streams.
fn coarse_correlation(a: &[i64], b: &[i64], bin: u64, len: usize) -> Vec<f64> {
    let mut fa = vec![Complex::new(0.0, 0.0); len];
    let mut fb = vec![Complex::new(0.0, 0.0); len];
    let idx = |t: i64| (t.div_euclid(bin as i64) as u64 % len as u64) as usize;
    for &t in a {
        fa[idx(t)].re += 1.0;
    }
    for &t in b {
        fb[idx(t)].re += 1.0;
    }
    let mut planner = FftPlanner::new();
    let fwd = planner.plan_fft_forward(len);
    fwd.process(&mut fa);
    fwd.process(&mut fb);
    for (x, y) in fa.iter_mut().zip(&fb) {
        *x = x.conj() * y;
    }
    planner.plan_fft_inverse(len).process(&mut fa);
    fa.iter().map(|c| c.re / len as f64).collect()
}

/// Peak of a histogram and its significance: (index, snr, mean, std).
fn peak(h: &[f64]) -> (usize, f64, f64) {
    let n = h.len() as f64;
    let mean = h.iter().sum::<f64>() / n;
    let var = h.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let (k, &p) = h.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).expect("non-empty");
    // Background: Poisson-like, so the spread is at least sqrt(mean).
    let sd = var.sqrt().max(mean.sqrt()).max(1e-9);
    (k, (p - mean) / sd, mean)
}

/// Coarse offset `b − a` from the FFT correlation, in ticks (a multiple of the bin).
fn coarse_offset(a: &[i64], b: &[i64], cfg: &SyncConfig) -> Result<i64, SyncError> {
    let c = coarse_correlation(a, b, cfg.coarse_bin, cfg.coarse_fft_len);
    let (k, snr, _) = peak(&c);
    if snr < cfg.min_snr {
        return Err(SyncError::NoPeak { snr, need: cfg.min_snr });
    }
    let len = cfg.coarse_fft_len as i64;
    let k = if (k as i64) < len / 2 { k as i64 } else { k as i64 - len };
    Ok(k * cfg.coarse_bin as i64)
}

/// Differences `d = b − a − pred(a)` within `[lo, hi)` histogrammed in `bin`-tick bins
/// (bin i covers `lo + i·bin ..`); `a` and `b` sorted. Returns the counts and the sums of `d`
/// per bin.
fn diff_histogram(a: &[i64], b: &[i64], pred: &dyn Fn(i64) -> f64, lo: i64, hi: i64, bin: u64) -> (Vec<f64>, Vec<f64>) {
    let n = (((hi - lo) as u64).div_ceil(bin) as usize).max(1);
    let (mut h, mut sums) = (vec![0.0; n], vec![0.0; n]);
    let (lo_f, hi_f, bin_f) = (lo as f64, hi as f64, bin as f64);
    let mut j0 = 0usize;
    for &t in a {
        let p = pred(t);
        let from = (t as f64 + p + lo_f).ceil() as i64;
        // `pred` moves slowly, so a lower bound that only moves forward is safe with margin.
        while j0 < b.len() && b[j0] < from - 2 * (hi - lo) {
            j0 += 1;
        }
        // A short forward scan: b[j0..] starts within 2·(hi − lo) ticks of `from` (a binary
        // search over the whole tail costs a cache miss per level on long streams).
        let mut j = j0;
        while j < b.len() && b[j] < from {
            j += 1;
        }
        while j < b.len() {
            let d = (b[j] - t) as f64 - p;
            if d >= hi_f {
                break;
            }
            let i = (((d - lo_f) / bin_f) as usize).min(n - 1);
            h[i] += 1.0;
            sums[i] += d;
            j += 1;
        }
    }
    (h, sums)
}

/// Refines an offset prediction on sorted streams: histograms the differences from `pred`
/// within ±`half_range` at `bin`, finds the peak and returns its centroid as a correction to
/// `pred` (ticks). The centroid uses the differences themselves (summed per bin), with the
/// flat background of accidentals, measured on the bins away from the peak, subtracted at its
/// own mean position; the difference of two floored stamps is unbiased, so no bin-centre
/// rounding enters.
fn refine(
    a: &[i64],
    b: &[i64],
    pred: &dyn Fn(i64) -> f64,
    half_range: i64,
    bin: u64,
    cfg: &SyncConfig,
) -> Result<OffsetEstimate, SyncError> {
    let (h, sums) = diff_histogram(a, b, pred, -half_range, half_range, bin);
    let (k, _, _) = peak(&h);
    // Coarse bins already hold the whole peak: a narrow centroid keeps the accidentals out.
    let c = if bin == cfg.fine_bin { cfg.centroid_half_bins as usize } else { 1 };
    let (i0, i1) = (k.saturating_sub(c), (k + c + 1).min(h.len()));
    // Background from the bins away from the peak (a flat floor of accidentals).
    let bg: Vec<f64> = h.iter().enumerate().filter(|(i, _)| *i < i0 || *i >= i1).map(|(_, &x)| x).collect();
    if bg.len() < 4 {
        return Err(SyncError::InvalidParameter {
            name: "centroid_half_bins",
            reason: format!("leaves {} background bins of {}", bg.len(), h.len()),
        });
    }
    let mean = bg.iter().sum::<f64>() / bg.len() as f64;
    let sd = (bg.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / bg.len() as f64).sqrt().max(mean.sqrt()).max(1.0);
    let snr = (h[k] - mean) / sd;
    if snr < cfg.min_snr {
        return Err(SyncError::NoPeak { snr, need: cfg.min_snr });
    }
    // Where within its bin the background sits on average (half a bin for continuous
    // differences, (bin − 1)/2 for integer ones), measured on the background bins.
    let start = |i: usize| -half_range as f64 + (i * bin as usize) as f64;
    let (mut pos, mut npos) = (0.0, 0.0);
    for i in (0..h.len()).filter(|&i| (i < i0 || i >= i1) && h[i] > 0.0) {
        pos += sums[i] - h[i] * start(i);
        npos += h[i];
    }
    let within = if npos > 0.0 { pos / npos } else { 0.5 * bin as f64 };
    // Centroid of the peak bins with the background subtracted at its own mean position.
    let (mut w, mut s) = (0.0, 0.0);
    for i in i0..i1 {
        w += h[i] - mean;
        s += sums[i] - mean * (start(i) + within);
    }
    if !(w > 0.0) {
        return Err(SyncError::NoPeak { snr, need: cfg.min_snr });
    }
    Ok(OffsetEstimate { offset: s / w, snr, signal: w })
}

fn to_i64(t: &[u64]) -> Vec<i64> {
    t.iter().map(|&x| x as i64).collect()
}

/// The offset `b − a` (ticks) of two sorted tag streams that overlap in time: coarse FFT
/// correlation, then a fine centroid.
pub fn find_offset(a: &[u64], b: &[u64], cfg: &SyncConfig) -> Result<OffsetEstimate, SyncError> {
    cfg.validate()?;
    if a.len() < 2 || b.len() < 2 {
        return Err(SyncError::TooFewTags { a: a.len(), b: b.len() });
    }
    let (a, b) = (to_i64(a), to_i64(b));
    let c = coarse_offset(&a, &b, cfg)?;
    let e = refine(&a, &b, &|_| c as f64, 2 * cfg.coarse_bin as i64, cfg.fine_bin, cfg)?;
    Ok(OffsetEstimate { offset: c as f64 + e.offset, ..e })
}

/// A piecewise-linear function of time (ticks → ticks), e.g. an offset predicted from the
/// orbit: `(t, value)` points sorted by `t` (distinct), extrapolated linearly beyond the ends
/// (a single point: constant).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Piecewise {
    /// `(t, value)` points, sorted by `t`, both in ticks.
    pub points: Vec<(f64, f64)>,
}

impl Piecewise {
    /// Value at `t` (0 when there are no points).
    pub fn at(&self, t: f64) -> f64 {
        let p = &self.points;
        match p.len() {
            0 => 0.0,
            1 => p[0].1,
            _ => {
                let i = p.partition_point(|q| q.0 <= t).clamp(1, p.len() - 1);
                let (x0, y0) = p[i - 1];
                let (x1, y1) = p[i];
                y0 + (t - x0) / (x1 - x0) * (y1 - y0)
            }
        }
    }
}

/// One window's estimate of the offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OffsetPoint {
    /// Centre of the window (station A's time), in ticks.
    pub t: f64,
    /// Total offset `b − a` at `t` (prior included), in ticks.
    pub offset: f64,
    /// Significance of the window's peak, in standard deviations.
    pub snr: f64,
    /// Coincidences above background in the window's peak (estimated).
    pub signal: f64,
}

/// The offset followed through a pass.
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetTrack {
    /// Per-window estimates, in time order.
    pub points: Vec<OffsetPoint>,
    prior: Piecewise,
    residual: Piecewise,
}

impl OffsetTrack {
    /// The offset `b − a` at station-A time `t` (ticks), interpolated between windows.
    pub fn offset_at(&self, t: f64) -> f64 {
        self.prior.at(t) + self.residual.at(t)
    }
}

/// Acquires the offset of one window without a prediction: by FFT, or by a direct difference
/// histogram when `acquisition_half_range` is set. Returns the offset (ticks) and its estimate.
fn acquire(
    aw: &[i64],
    b: &[i64],
    w0: i64,
    w1: i64,
    cfg: &SyncConfig,
    bin: u64,
    half_range: i64,
) -> Option<(f64, OffsetEstimate)> {
    match cfg.acquisition_half_range {
        Some(r) => {
            let e = refine(aw, b, &|_| 0.0, r as i64, cfg.coarse_bin, cfg).ok()?;
            let e2 = refine(aw, b, &|_| e.offset, half_range, bin, cfg).ok()?;
            Some((e.offset + e2.offset, e2))
        }
        None => {
            let w = w1 - w0;
            let bw0 = b.partition_point(|&t| t < w0 - w / 4);
            let bw1 = b.partition_point(|&t| t < w1 + w / 4);
            let c = coarse_offset(aw, &b[bw0..bw1], cfg).ok()?;
            let e = refine(aw, b, &|_| c as f64, half_range, bin, cfg).ok()?;
            Some((c as f64 + e.offset, e))
        }
    }
}

/// One pass of window estimates of the residual of `b` (prior removed) against `a`.
fn window_pass(
    a: &[i64],
    b: &[i64],
    cfg: &SyncConfig,
    guide: Option<&Piecewise>,
    bin: u64,
    half_range: i64,
) -> Vec<OffsetPoint> {
    let (t_first, t_last) = (a[0], a[a.len() - 1]);
    let w = cfg.window as i64;
    let mut points: Vec<OffsetPoint> = Vec::new();
    let mut w0 = t_first;
    while w0 <= t_last {
        let w1 = w0 + w;
        let (i0, i1) = (a.partition_point(|&t| t < w0), a.partition_point(|&t| t < w1));
        let aw = &a[i0..i1];
        if aw.len() >= 2 {
            // Prediction for this window: the guide, or the last points extrapolated.
            let pred: Box<dyn Fn(i64) -> f64> = match (guide, points.len()) {
                (Some(g), _) => {
                    let g = g.clone();
                    Box::new(move |t| g.at(t as f64))
                }
                (None, 0) => match acquire(aw, b, w0, w1, cfg, bin, half_range) {
                    Some((o, _)) => Box::new(move |_| o),
                    None => {
                        w0 = w1;
                        continue;
                    }
                },
                (None, 1) => {
                    let o = points[0].offset;
                    Box::new(move |_| o)
                }
                (None, n) => {
                    let (p, q) = (points[n - 2], points[n - 1]);
                    let slope = (q.offset - p.offset) / (q.t - p.t);
                    Box::new(move |t| q.offset + slope * (t as f64 - q.t))
                }
            };
            let tc = (aw[0] + aw[aw.len() - 1]) as f64 / 2.0;
            let found = match refine(aw, b, &*pred, half_range, bin, cfg) {
                Ok(e) => Some((pred(tc as i64) + e.offset, e)),
                // Lost while following: search the whole coarse range again.
                Err(_) if guide.is_none() && !points.is_empty() => acquire(aw, b, w0, w1, cfg, bin, half_range),
                Err(_) => None,
            };
            if let Some((offset, e)) = found {
                points.push(OffsetPoint { t: tc, offset, snr: e.snr, signal: e.signal });
            }
        }
        w0 = w1;
    }
    points
}

/// Local linear least-squares fit of the window offsets over ±`k` neighbours, evaluated at
/// each window (suppresses the scatter of single windows while following a drift).
fn smooth(points: &[OffsetPoint], k: usize) -> Piecewise {
    let n = points.len();
    let out = (0..n)
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(k), (i + k + 1).min(n));
            let m = (hi - lo) as f64;
            let t0 = points[i].t;
            let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
            for p in &points[lo..hi] {
                let x = p.t - t0;
                sx += x;
                sy += p.offset;
                sxx += x * x;
                sxy += x * p.offset;
            }
            let den = m * sxx - sx * sx;
            let slope = if den.abs() > 0.0 { (m * sxy - sx * sy) / den } else { 0.0 };
            (t0, (sy - slope * sx) / m)
        })
        .collect();
    Piecewise { points: out }
}

/// Follows the offset `b − a` through a pass of sorted streams `a` and `b` (ticks), with an
/// optional prior (e.g. the orbit-predicted time-of-flight difference, as a function of A's
/// time). See the module documentation for the method.
pub fn track_offset(
    a: &[u64],
    b: &[u64],
    cfg: &SyncConfig,
    prior: Option<&Piecewise>,
) -> Result<OffsetTrack, SyncError> {
    cfg.validate()?;
    if a.len() < 2 || b.len() < 2 {
        return Err(SyncError::TooFewTags { a: a.len(), b: b.len() });
    }
    let prior = prior.cloned().unwrap_or_default();
    let a = to_i64(a);
    // The prior is a function of A's time: evaluate it at B's time mapped back to A's (two
    // fixed-point steps; the prior's slope is ≪ 1).
    let mut b: Vec<i64> = b
        .iter()
        .map(|&t| {
            let tb = t as f64;
            let x = tb - prior.at(tb);
            let x = tb - prior.at(x);
            (tb - prior.at(x)).round() as i64
        })
        .collect();
    b.sort_unstable();
    // Coarse pass: coarse bins, searching ±16 bins around the prediction.
    let coarse = window_pass(&a, &b, cfg, None, cfg.coarse_bin, 16 * cfg.coarse_bin as i64);
    if coarse.is_empty() {
        return Err(SyncError::NoTrack);
    }
    // Fine passes: the (smoothed) previous track removed, fine bins within ± one coarse bin.
    // The second pass removes what is left of the smear of the first.
    let mut guide = smooth(&coarse, 2);
    let mut fine = Vec::new();
    for _ in 0..2 {
        let next = window_pass(&a, &b, cfg, Some(&guide), cfg.fine_bin, cfg.coarse_bin as i64);
        if next.is_empty() {
            break;
        }
        guide = smooth(&next, 1);
        fine = next;
    }
    if fine.is_empty() {
        fine = coarse;
    }
    let residual = Piecewise { points: fine.iter().map(|p| (p.t, p.offset)).collect() };
    let points = fine.iter().map(|p| OffsetPoint { offset: p.offset + prior.at(p.t), ..*p }).collect();
    Ok(OffsetTrack { points, prior, residual })
}

/// A coincidence of a tag of station A and one of station B.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coincidence {
    /// Index into A's times.
    pub a: usize,
    /// Index into B's times.
    pub b: usize,
    /// `b − a − offset(a)`, in ticks.
    pub delta: f64,
}

/// Pairs of tags with `|b − a − offset(a)| ≤ half_window` ticks; each tag is used at most
/// once (the closest partner of each A tag, in time order). `a` and `b` sorted.
pub fn coincidences(a: &[u64], b: &[u64], track: &OffsetTrack, half_window: f64) -> Vec<Coincidence> {
    let mut out = Vec::new();
    let mut j0 = 0usize;
    let mut used_upto: Option<usize> = None;
    for (i, &t) in a.iter().enumerate() {
        let pred = t as f64 + track.offset_at(t as f64);
        while j0 < b.len() && (b[j0] as f64) < pred - half_window {
            j0 += 1;
        }
        let mut best: Option<(usize, f64)> = None;
        let mut j = j0;
        while j < b.len() && (b[j] as f64) <= pred + half_window {
            let d = b[j] as f64 - pred;
            if used_upto.map_or(true, |u| j > u) && best.map_or(true, |(_, bd)| d.abs() < bd.abs()) {
                best = Some((j, d));
            }
            j += 1;
        }
        if let Some((j, d)) = best {
            out.push(Coincidence { a: i, b: j, delta: d });
            used_upto = Some(j);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Exp, Normal};

    /// Synthetic streams: pairs at `pair_rate` (Hz), independent singles at `single_rate` (Hz)
    /// per station, `f` Hz ticks, station B's clock `b = a + offset(t)` plus Gaussian jitter of
    /// `jitter` ticks on each side. Returns (a, b, pair count).
    fn streams(
        seed: u64,
        seconds: f64,
        pair_rate: f64,
        single_rate: f64,
        offset: impl Fn(f64) -> f64,
        jitter: f64,
    ) -> (Vec<u64>, Vec<u64>) {
        let f = 150e6;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let jit = Normal::new(0.0, jitter).unwrap();
        let mut t = 0.0;
        let gap = Exp::new(pair_rate).unwrap();
        loop {
            t += gap.sample(&mut rng);
            if t > seconds {
                break;
            }
            let ta = t * f + 1e6 + jit.sample(&mut rng);
            let tb = t * f + 1e6 + offset(t * f) + jit.sample(&mut rng);
            a.push(ta.floor() as u64);
            b.push(tb.floor() as u64);
        }
        for v in [&mut a, &mut b] {
            let n = (single_rate * seconds) as usize;
            for _ in 0..n {
                v.push((rng.gen::<f64>() * seconds * f + 1e6) as u64);
            }
            v.sort_unstable();
        }
        (a, b)
    }

    #[test]
    fn find_offset_recovers_a_constant_offset() {
        let off = 1_234_567.3;
        let (a, b) = streams(1, 4.0, 1000.0, 20_000.0, |_| off, 0.5);
        let e = find_offset(&a, &b, &SyncConfig::default()).unwrap();
        assert!((e.offset - off).abs() < 0.5, "found {e:?}, true {off}");
        assert!(e.snr > 8.0, "{e:?}");
        // A negative offset too.
        let (a, b) = streams(2, 4.0, 1000.0, 20_000.0, |_| -98_765.8, 0.5);
        let e = find_offset(&a, &b, &SyncConfig::default()).unwrap();
        assert!((e.offset + 98_765.8).abs() < 0.5, "found {e:?}");
        // Uncorrelated streams have no peak.
        let (a, _) = streams(3, 2.0, 10.0, 20_000.0, |_| 0.0, 0.5);
        let (_, b) = streams(4, 2.0, 10.0, 20_000.0, |_| 0.0, 0.5);
        assert!(matches!(find_offset(&a, &b, &SyncConfig::default()), Err(SyncError::NoPeak { .. })));
    }

    #[test]
    fn track_follows_offset_and_drift() {
        // 2 ppm drift (300 ticks/s at 150 MHz) plus a slow wobble, over 60 s.
        let truth = |t: f64| 500_000.0 + 2e-6 * t + 40.0 * (t / 150e6 / 20.0).sin();
        let (a, b) = streams(5, 60.0, 3000.0, 20_000.0, truth, 0.5);
        let cfg = SyncConfig { coarse_bin: 512, window: 1 << 27, ..SyncConfig::default() };
        let track = track_offset(&a, &b, &cfg, None).unwrap();
        assert!(track.points.len() > 60, "{} windows", track.points.len());
        let mut worst: f64 = 0.0;
        for p in &track.points {
            worst = worst.max((p.offset - truth(p.t - 1e6)).abs());
        }
        // Between windows, too.
        for i in 1..100 {
            let t = 1e6 + i as f64 * 0.59 * 150e6;
            worst = worst.max((track.offset_at(t) - truth(t - 1e6)).abs());
        }
        assert!(worst < 3.0, "worst residual {worst} ticks");
        // Coincidences: nearly every pair found, few accidentals.
        let c = coincidences(&a, &b, &track, 3.0);
        let pairs = 3000.0 * 60.0;
        assert!((c.len() as f64) > 0.97 * pairs && (c.len() as f64) < 1.03 * pairs, "{} coincidences", c.len());
        let rms = (c.iter().map(|x| x.delta * x.delta).sum::<f64>() / c.len() as f64).sqrt();
        assert!(rms < 1.2, "rms {rms}");
    }

    #[test]
    fn recovers_the_offset_of_a_simulated_micius_bbm92_pass() {
        use crate::physics::{simulate_bbm92_pass, ClickKind, PassConfig};
        let mut cfg = PassConfig::preset("micius-2020-bbm92").unwrap();
        cfg.simulation.max_duration_s = Some(120.0);
        let p = simulate_bbm92_pass(&cfg, 21, 150e6).unwrap();
        let a: Vec<u64> = p.clicks_a.iter().map(|c| c.tick).collect();
        let b: Vec<u64> = p.clicks_b.iter().map(|c| c.tick).collect();
        let prior = Piecewise { points: p.offsets.iter().map(|o| (o.a_tick, o.predicted_offset_ticks)).collect() };
        // Disciplined clocks drift < 0.1 tick per window, so small coarse bins keep the few
        // coincidences (~4/s among ~7000 singles/s per station) above the accidentals.
        let sync = SyncConfig {
            coarse_bin: 8,
            window: 1 << 31,
            acquisition_half_range: Some(1 << 12),
            ..SyncConfig::default()
        };
        let track = track_offset(&a, &b, &sync, Some(&prior)).unwrap();
        assert!(track.points.len() >= 6, "{} windows", track.points.len());
        // Residual against the simulated truth over the tracked span.
        let (t0, t1) = (track.points[0].t, track.points[track.points.len() - 1].t);
        let mut worst: f64 = 0.0;
        let mut i = 0;
        while i <= 200 {
            let t = t0 + (t1 - t0) * i as f64 / 200.0;
            worst = worst.max((track.offset_at(t) - p.true_offset_at(t)).abs());
            i += 1;
        }
        assert!(worst < 3.0, "worst residual {worst} ticks");
        // The true pairs seen by both stations are found as coincidences.
        let c = coincidences(&a, &b, &track, 3.0);
        let pair = |x: &crate::physics::Bbm92Click| if x.kind == ClickKind::Signal { x.pair } else { None };
        let found = c
            .iter()
            .filter(|x| pair(&p.clicks_a[x.a]).is_some() && pair(&p.clicks_a[x.a]) == pair(&p.clicks_b[x.b]))
            .count();
        let ids_b: std::collections::HashSet<u64> = p.clicks_b.iter().filter_map(pair).collect();
        let truth = p.clicks_a.iter().filter_map(pair).filter(|id| ids_b.contains(id)).count();
        assert!(found as f64 > 0.9 * truth as f64, "found {found} of {truth} pairs");
        // The rest are accidentals of the singles: about n_a n_b (2·3 + 1) / (T f) of them
        // (rates vary over the pass, hence the loose bounds).
        let acc = (c.len() - found) as f64;
        let expect = a.len() as f64 * b.len() as f64 * 7.0 / (p.duration_s * 150e6);
        assert!(acc > 0.7 * expect && acc < 1.3 * expect, "{acc} accidentals, expected {expect}");
    }

    #[test]
    fn piecewise_interpolates_and_holds_ends() {
        let p = Piecewise { points: vec![(0.0, 1.0), (10.0, 3.0)] };
        assert_eq!(p.at(-5.0), 0.0);
        assert_eq!(p.at(5.0), 2.0);
        assert_eq!(p.at(20.0), 5.0);
        assert_eq!(Piecewise { points: vec![(1.0, 7.0)] }.at(9.0), 7.0);
        assert_eq!(Piecewise::default().at(1.0), 0.0);
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let cfg = SyncConfig { coarse_fft_len: 1000, ..SyncConfig::default() };
        assert!(matches!(find_offset(&[1, 2], &[1, 2], &cfg), Err(SyncError::InvalidParameter { .. })));
        assert!(matches!(find_offset(&[1], &[1, 2], &SyncConfig::default()), Err(SyncError::TooFewTags { .. })));
    }
}
