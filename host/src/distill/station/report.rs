//! Reconciliation report: Cascade and LDPC over a grid of QBERs and block sizes, from their
//! `simulate` functions, written as CSV and an SVG plot (`qkd bench distill`).
//!
//! Columns (one row per method × block size × QBER):
//! * `efficiency` — f = leaked bits / (n·h(QBER)), mean over trials (1 = Shannon limit);
//! * `throughput_bits_per_s` — key bits reconciled per second of computation: Cascade runs
//!   both sides in one thread; LDPC is Bob's decoding wall time (rayon over frames);
//! * `round_trips` — network round trips: Cascade's parity-oracle calls; LDPC's reveal rounds
//!   plus one for the syndrome/`Done` exchange;
//! * `frame_error_rate` — Cascade: fraction of trials whose key still has errors after all
//!   passes (caught by verification); LDPC: fraction of frames discarded after all reveal
//!   rounds.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::distill::{cascade, ldpc};

/// Errors of the report.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Cascade refused the parameters.
    #[error("cascade at n = {n}, QBER = {qber}: {source}")]
    Cascade {
        /// Block size (bits).
        n: usize,
        /// QBER (probability).
        qber: f64,
        /// The cause.
        source: cascade::CascadeError,
    },
    /// LDPC cannot run these parameters.
    #[error("ldpc at n = {n}, QBER = {qber}: {detail}")]
    Ldpc {
        /// Block size (bits).
        n: usize,
        /// QBER (probability).
        qber: f64,
        /// Why.
        detail: String,
    },
    /// Writing the CSV failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing the plot failed.
    #[error("plot {path}: {detail}")]
    Plot {
        /// The file.
        path: String,
        /// The cause.
        detail: String,
    },
}

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// `cascade` or `ldpc`.
    pub method: String,
    /// Block size (bits).
    pub n: usize,
    /// Channel QBER (probability).
    pub qber: f64,
    /// Trials.
    pub trials: usize,
    /// Mean efficiency f.
    pub efficiency: f64,
    /// Reconciled bits per second (see the module docs).
    pub throughput_bits_per_s: f64,
    /// Mean round trips.
    pub round_trips: f64,
    /// Frame error rate (see the module docs).
    pub frame_error_rate: f64,
}

/// Runs both methods on every (n, QBER) with `trials` trials each; `progress` sees each row.
pub fn sweep(
    qbers: &[f64],
    sizes: &[usize],
    trials: usize,
    seed: u64,
    mut progress: impl FnMut(&SweepRow),
) -> Result<Vec<SweepRow>, ReportError> {
    let mut rows = Vec::new();
    for &n in sizes {
        for &qber in qbers {
            let c = cascade::simulate(n, qber, trials, seed).map_err(|source| ReportError::Cascade { n, qber, source })?;
            let row = SweepRow {
                method: "cascade".into(),
                n,
                qber,
                trials,
                efficiency: c.efficiency,
                throughput_bits_per_s: c.throughput_bits_per_s,
                round_trips: c.round_trips_mean,
                frame_error_rate: c.frame_error_rate,
            };
            progress(&row);
            rows.push(row);
            // `ldpc::simulate` panics on unsupported parameters: check them first.
            ldpc::choose_params(qber, n, ldpc::DEFAULT_TARGET_EFFICIENCY)
                .map_err(|e| ReportError::Ldpc { n, qber, detail: e.to_string() })?;
            let l = ldpc::simulate(n, qber, trials, seed);
            let row = SweepRow {
                method: "ldpc".into(),
                n,
                qber,
                trials,
                efficiency: l.efficiency,
                throughput_bits_per_s: l.decode_bits_per_second,
                round_trips: 1.0 + l.mean_round_trips,
                frame_error_rate: l.frame_error_rate,
            };
            progress(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Writes the rows as CSV with a header line.
pub fn write_csv(rows: &[SweepRow], path: &Path) -> Result<(), ReportError> {
    let mut s = String::from("method,n,qber,trials,efficiency,throughput_bits_per_s,round_trips,frame_error_rate\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{:.4},{:.0},{:.2},{:.5}\n",
            r.method, r.n, r.qber, r.trials, r.efficiency, r.throughput_bits_per_s, r.round_trips, r.frame_error_rate
        ));
    }
    std::fs::write(path, s).map_err(|source| ReportError::Io { path: path.display().to_string(), source })
}

/// Draws efficiency, throughput and round trips against QBER, one line per method and block
/// size, as an SVG file.
pub fn write_svg(rows: &[SweepRow], path: &Path) -> Result<(), ReportError> {
    let err = |e: &dyn std::fmt::Display| ReportError::Plot { path: path.display().to_string(), detail: e.to_string() };
    let root = SVGBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let panels = root.split_evenly((1, 3));
    let qmax = rows.iter().map(|r| r.qber * 100.0).fold(0.0, f64::max) * 1.05;
    let mut series: Vec<(String, usize)> = rows.iter().map(|r| (r.method.clone(), r.n)).collect();
    series.sort();
    series.dedup();
    type Getter = fn(&SweepRow) -> f64;
    let metrics: [(&str, Getter, bool); 3] = [
        ("efficiency f", |r| r.efficiency, false),
        ("throughput (bits/s)", |r| r.throughput_bits_per_s.max(1.0), true),
        ("round trips", |r| r.round_trips.max(1.0), true),
    ];
    for (panel, (name, get, log)) in panels.iter().zip(metrics) {
        let values: Vec<f64> = rows.iter().map(get).collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(panel);
        chart.caption(name, ("sans-serif", 20)).margin(10).x_label_area_size(40).y_label_area_size(70);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("QBER (%)")
                    .y_desc(name)
                    .draw()
                    .map_err(|e| err(&e))?;
                for (i, (method, n)) in series.iter().enumerate() {
                    let color = Palette99::pick(i).stroke_width(2);
                    let pts: Vec<(f64, f64)> = rows
                        .iter()
                        .filter(|r| &r.method == method && r.n == *n)
                        .map(|r| (r.qber * 100.0, get(r)))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), color))
                        .map_err(|e| err(&e))?
                        .label(format!("{method} n={n}"))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], Palette99::pick(i)));
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, Palette99::pick(i).filled())))
                        .map_err(|e| err(&e))?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(&e))?;
            }};
        }
        if log {
            draw!(chart.build_cartesian_2d(0.0..qmax, (lo * 0.8..hi * 1.25).log_scale()).map_err(|e| err(&e))?);
        } else {
            draw!(chart.build_cartesian_2d(0.0..qmax, (lo.min(1.0) * 0.95)..(hi * 1.05)).map_err(|e| err(&e))?);
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sweep_writes_csv_and_svg() {
        let rows = sweep(&[0.02, 0.05], &[10_000], 1, 3, |_| {}).unwrap();
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert!(r.efficiency > 1.0 && r.efficiency < 2.0, "{r:?}");
            assert!(r.round_trips >= 1.0);
        }
        let dir = std::env::temp_dir().join(format!("qkd-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_csv(&rows, &dir.join("r.csv")).unwrap();
        write_svg(&rows, &dir.join("r.svg")).unwrap();
        let csv = std::fs::read_to_string(dir.join("r.csv")).unwrap();
        assert_eq!(csv.lines().count(), 5);
        let svg = std::fs::read_to_string(dir.join("r.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("polyline"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
