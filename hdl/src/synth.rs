//! The open iCE40 flow: yosys `synth_ice40` → nextpnr-ice40 → icepack, with the utilization
//! and Fmax read back from the tools' logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::top::{Board, TopKind};

/// A failure of the FPGA flow.
#[derive(Debug, Error)]
pub enum SynthError {
    /// A tool could not be started (not installed: run `scripts/setup`).
    #[error("cannot run {tool}: {source} (install the FPGA tools with scripts/setup)")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("{tool} failed with {status}; see {log}")]
    Failed {
        /// The tool.
        tool: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// nextpnr could not place the design: it needs more logic cells than the device has.
    #[error("{top} does not fit the {board}: {used}/{available} logic cells; see {log}")]
    DoesNotFit {
        /// The board.
        board: &'static str,
        /// The top module.
        top: String,
        /// Logic cells the design needs (ICESTORM_LC).
        used: u32,
        /// Logic cells on the device.
        available: u32,
        /// The nextpnr log.
        log: PathBuf,
    },
    /// A seed sweep was given no seed.
    #[error("no nextpnr seed to try")]
    NoSeeds,
    /// The log did not contain a figure the flow needs.
    #[error("{log}: no {what} found in the log")]
    Parse {
        /// The log file.
        log: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
}

/// What place and route reported for one board top.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthReport {
    /// The board.
    pub board: Board,
    /// The top kind.
    pub kind: TopKind,
    /// Logic cells used (ICESTORM_LC).
    pub logic_cells: u32,
    /// Logic cells available on the device.
    pub logic_cells_total: u32,
    /// Block RAMs used (ICESTORM_RAM).
    pub brams: u32,
    /// Block RAMs on the device.
    pub brams_total: u32,
    /// I/O cells used (SB_IO).
    pub ios: u32,
    /// I/O cells on the package.
    pub ios_total: u32,
    /// Fmax of the tagger clock (the PLL's port A), in MHz.
    pub fmax_mhz: f64,
    /// Target of the tagger clock, in MHz.
    pub target_mhz: f64,
    /// Every clock of the top: (clock net, Fmax in MHz, target in MHz). The control clock
    /// (a net named `…ctl_clock…`, the PLL's port B) has its own target,
    /// [`Board::control_clock_mhz`]; paths between the clocks are not timed (nextpnr-ice40 0.4
    /// does not constrain them: the crossings are built not to need it, see `crate::cdc`).
    pub clocks: Vec<(String, f64, f64)>,
    /// The bitstream written by icepack.
    pub bitstream: PathBuf,
    /// nextpnr's placer seed of this build.
    pub seed: u32,
}

impl SynthReport {
    /// True when every clock meets its own target.
    pub fn meets_timing(&self) -> bool {
        self.clocks.iter().all(|&(_, fmax, target)| fmax >= target)
    }

    /// The worst ratio of a clock's Fmax to its target (1.0 or more: every clock meets its
    /// target): how a seed sweep ranks builds that all miss timing.
    pub fn worst_clock_ratio(&self) -> f64 {
        self.clocks.iter().map(|&(_, fmax, target)| fmax / target).fold(f64::INFINITY, f64::min)
    }

    /// The clocks that miss their targets, as "net: Fmax below target" (empty when none).
    pub fn timing_failures(&self) -> Vec<String> {
        self.clocks
            .iter()
            .filter(|&&(_, fmax, target)| fmax < target)
            .map(|(net, fmax, target)| format!("{net}: Fmax {fmax:.1} MHz below {target:.1} MHz"))
            .collect()
    }
}

impl std::fmt::Display for SynthReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |a: u32, b: u32| 100.0 * a as f64 / b.max(1) as f64;
        write!(
            f,
            "{:<17} LCs {:>5}/{:<5} ({:>4.1}%)  BRAM {:>2}/{:<2}  IO {:>2}/{:<3} ",
            self.kind.module_name(self.board),
            self.logic_cells,
            self.logic_cells_total,
            pct(self.logic_cells, self.logic_cells_total),
            self.brams,
            self.brams_total,
            self.ios,
            self.ios_total,
        )?;
        for (net, fmax, target) in &self.clocks {
            let verdict = if fmax >= target { "PASS" } else { "FAIL" };
            write!(f, " {net} {fmax:>6.1} MHz (target {target:.1} MHz: {verdict})")?;
        }
        write!(f, "  seed {}  {}", self.seed, self.bitstream.display())
    }
}

fn run(tool: &str, args: &[&str], log: &Path) -> Result<(), SynthError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| SynthError::Spawn { tool: tool.into(), source })?;
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    std::fs::write(log, &text).map_err(|source| SynthError::Io { path: log.into(), source })?;
    if !out.status.success() {
        return Err(SynthError::Failed { tool: tool.into(), status: out.status, log: log.into() });
    }
    Ok(())
}

/// Parses "ICESTORM_LC:  1234/ 7680" style utilization lines of a nextpnr log.
fn utilization(log: &str, cell: &str) -> Option<(u32, u32)> {
    let key = format!("{cell}:");
    let line = log.lines().rev().map(|l| l.trim_start_matches("Info:").trim_start()).find(|l| l.starts_with(&key))?;
    let rest = &line[key.len()..];
    let (used, total) = rest.split_once('/')?;
    Some((used.trim().parse().ok()?, total.split_whitespace().next()?.parse().ok()?))
}

/// Parses the "Max frequency for clock 'X': F MHz" lines of a nextpnr log: the lowest of the
/// last figure reported for each clock that is not the control clock (the tagger clock).
fn fmax(log: &str) -> Option<f64> {
    fmax_per_clock(log).into_iter().filter(|(n, _)| !is_control_clock(n)).map(|(_, f)| f).reduce(f64::min)
}

/// Whether a clock net of a nextpnr log is the control clock (the PLL's port B,
/// `ctl_clock_out`, or a block's `ctl_clock` port).
fn is_control_clock(net: &str) -> bool {
    net.contains("ctl_clock")
}

/// The Python file for nextpnr's `--pre-pack`: every net named `…ctl_clock…` constrained to
/// `mhz` (nextpnr's `--freq` applies to the other clocks).
fn control_clock_constraint(mhz: f64) -> String {
    format!(
        "# Generated by qkd-hdl's synth flow: the control clock's own target.\n\
         for name in [n for n, _ in ctx.nets if \"ctl_clock\" in n]:\n    ctx.addClock(name, {mhz})\n"
    )
}

/// The last "Max frequency for clock 'X': F MHz" figure of each clock in a nextpnr log, by
/// clock net name (nextpnr pads the names of a multi-clock design with spaces).
fn fmax_per_clock(log: &str) -> std::collections::BTreeMap<String, f64> {
    let mut last = std::collections::BTreeMap::new();
    for l in log.lines() {
        let Some((_, r)) = l.split_once("Max frequency for clock") else { continue };
        let Some((name, rest)) = r.trim_start().strip_prefix('\'').and_then(|r| r.split_once("': ")) else { continue };
        if let Some(f) = rest.split_whitespace().next().and_then(|f| f.parse::<f64>().ok()) {
            last.insert(name.to_string(), f);
        }
    }
    last
}

/// (used, available) logic cells and block RAMs from the nextpnr log `log` (file `plog`).
fn cells_and_brams(log: &str, plog: &Path) -> Result<((u32, u32), (u32, u32)), SynthError> {
    let parse = |what| SynthError::Parse { log: plog.into(), what };
    Ok((
        utilization(log, "ICESTORM_LC").ok_or_else(|| parse("ICESTORM_LC"))?,
        utilization(log, "ICESTORM_RAM").ok_or_else(|| parse("ICESTORM_RAM"))?,
    ))
}

/// yosys `synth_ice40` of module `top` of the Verilog file `v`, with the extra options
/// `synth_options` (see [`TopKind::yosys_synth_options`]); writes `<top>.json` and
/// `<top>.yosys.log` into `out_dir` and returns the netlist's path.
fn yosys(top: &str, v: &Path, out_dir: &Path, synth_options: &str) -> Result<PathBuf, SynthError> {
    let json = out_dir.join(format!("{top}.json"));
    let ylog = out_dir.join(format!("{top}.yosys.log"));
    run(
        "yosys",
        &["-q", "-p", &format!("synth_ice40 -abc9 -dff {synth_options} -top {top} -json {}", json.display()), &v.to_string_lossy()],
        &ylog,
    )?;
    Ok(json)
}

/// nextpnr-ice40 for the netlist `json` of module `top`, at the tagger clock of `board`,
/// with `pins` = (pin constraints `.pcf`, placed design `.asc` to write) if given (none:
/// nextpnr places the ports and nothing is written). Writes `<top>.pre_pack.py` and
/// `<top>.nextpnr.log` into `out_dir`; returns the log. A design larger than the device gives
/// [`SynthError::DoesNotFit`].
fn nextpnr(board: Board, top: &str, json: &Path, pins: Option<(&Path, &Path)>, out_dir: &Path, seed: u32) -> Result<String, SynthError> {
    let plog = out_dir.join(format!("{top}.nextpnr.log"));
    let freq = format!("{}", board.clock_mhz());
    let seed = seed.to_string();
    let [dev, pkg] = board.nextpnr_args();
    let json = json.to_string_lossy().into_owned();
    let pre_pack = out_dir.join(format!("{top}.pre_pack.py"));
    std::fs::write(&pre_pack, control_clock_constraint(board.control_clock_mhz()))
        .map_err(|source| SynthError::Io { path: pre_pack.clone(), source })?;
    let pre_pack = pre_pack.to_string_lossy().into_owned();
    let mut args = vec![dev, pkg, "--json", &json, "--freq", &freq, "--seed", &seed, "--timing-allow-fail"];
    args.extend(["--pre-pack", &pre_pack]);
    // A clock enable promoted onto a global buffer costs ~3.7 ns of routing: more than half a
    // 150 MHz period (it was the tagger's critical path on the HX8K).
    args.push("--no-promote-globals");
    let pins = pins.map(|(pcf, asc)| (pcf.to_string_lossy().into_owned(), asc.to_string_lossy().into_owned()));
    if let Some((pcf, asc)) = &pins {
        args.extend(["--pcf", pcf, "--asc", asc]);
    }
    let placed = run("nextpnr-ice40", &args, &plog);
    if let Err(e) = placed {
        return Err(match std::fs::read_to_string(&plog).ok().and_then(|l| utilization(&l, "ICESTORM_LC")) {
            Some((used, available)) if used > available => {
                SynthError::DoesNotFit { board: board.name(), top: top.into(), used, available, log: plog }
            }
            _ => e,
        });
    }
    std::fs::read_to_string(&plog).map_err(|source| SynthError::Io { path: plog, source })
}

/// What place and route reported for one gateware block built on its own (its ports on
/// I/O pins, no PLL): how fast its logic is, before it shares a device with the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockReport {
    /// The block's module name.
    pub name: String,
    /// Logic cells used (ICESTORM_LC).
    pub logic_cells: u32,
    /// Block RAMs used.
    pub brams: u32,
    /// Each clock of the block: (port name, Fmax in MHz, target in MHz). A port named
    /// `ctl_clock` is the control clock ([`Board::control_clock_mhz`], constrained to it);
    /// any other clock must reach the tagger clock.
    pub clocks: Vec<(String, f64, f64)>,
}

impl BlockReport {
    /// True when every clock meets its target.
    pub fn meets_timing(&self) -> bool {
        self.clocks.iter().all(|&(_, fmax, target)| fmax >= target)
    }
}

impl std::fmt::Display for BlockReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<17} LCs {:>5}  BRAM {:>2} ", self.name, self.logic_cells, self.brams)?;
        for (clock, fmax, target) in &self.clocks {
            let verdict = if fmax >= target { "PASS" } else { "FAIL" };
            write!(f, " {clock} {fmax:>6.1} MHz (target {target:.1} MHz: {verdict})")?;
        }
        Ok(())
    }
}

/// Synthesizes, places and routes module `name` (Verilog text `verilog`) alone on `board`'s
/// device at its tagger clock, in `out_dir` (files `block_<name>.*`).
pub fn synthesize_block(
    board: Board,
    name: &str,
    verilog: &str,
    out_dir: &Path,
    seed: u32,
) -> Result<BlockReport, SynthError> {
    std::fs::create_dir_all(out_dir).map_err(|source| SynthError::Io { path: out_dir.into(), source })?;
    let v = out_dir.join(format!("block_{name}.v"));
    std::fs::write(&v, verilog).map_err(|source| SynthError::Io { path: v.clone(), source })?;
    let json = yosys(name, &v, out_dir, "")?;
    let log = nextpnr(board, name, &json, None, out_dir, seed)?;
    let plog = out_dir.join(format!("{name}.nextpnr.log"));
    let parse = |what| SynthError::Parse { log: plog.clone(), what };
    let ((logic_cells, _), (brams, _)) = cells_and_brams(&log, &plog)?;
    let clocks: Vec<_> = fmax_per_clock(&log)
        .into_iter()
        .map(|(net, fmax)| {
            // nextpnr names a clock after its net: the port, with the I/O buffer's suffix.
            let port = net.split('$').next().unwrap_or(&net).to_string();
            let target = if is_control_clock(&port) { board.control_clock_mhz() } else { board.clock_mhz() };
            (port, fmax, target)
        })
        .collect();
    if clocks.is_empty() {
        return Err(parse("Fmax of the block's clocks"));
    }
    Ok(BlockReport { name: name.into(), logic_cells, brams, clocks })
}

/// Runs the whole flow for the `kind` top of `board` on the Verilog in `verilog_dir` (as
/// written by [`crate::verilog::write_all`]), writing into `out_dir` files named after the top
/// module (`top_hx8k.json`, `stream_hx8k.bin`, ...), with the pin constraints
/// `constraints_dir/<board>.pcf`. `seed` is nextpnr's placer seed. A design larger than the
/// device gives [`SynthError::DoesNotFit`].
pub fn synthesize(
    board: Board,
    kind: TopKind,
    verilog_dir: &Path,
    constraints_dir: &Path,
    out_dir: &Path,
    seed: u32,
) -> Result<SynthReport, SynthError> {
    let json = synthesize_netlist(board, kind, verilog_dir, out_dir)?;
    place_top(board, kind, &json, constraints_dir, out_dir, seed)
}

/// yosys for the `kind` top of `board` (Verilog in `verilog_dir`) into `out_dir`, which it
/// creates; the netlist's path.
fn synthesize_netlist(board: Board, kind: TopKind, verilog_dir: &Path, out_dir: &Path) -> Result<PathBuf, SynthError> {
    std::fs::create_dir_all(out_dir).map_err(|source| SynthError::Io { path: out_dir.into(), source })?;
    let top = kind.module_name(board);
    yosys(&top, &verilog_dir.join(format!("{top}.v")), out_dir, kind.yosys_synth_options(board))
}

/// nextpnr (seed `seed`) and icepack for the netlist `json` of the `kind` top of `board`,
/// into `out_dir` (created if needed), with the pins of `constraints_dir/<board>.pcf`; the
/// figures read back from the log.
fn place_top(board: Board, kind: TopKind, json: &Path, constraints_dir: &Path, out_dir: &Path, seed: u32) -> Result<SynthReport, SynthError> {
    std::fs::create_dir_all(out_dir).map_err(|source| SynthError::Io { path: out_dir.into(), source })?;
    let top = kind.module_name(board);
    let name = top.as_str();
    let asc = out_dir.join(format!("{name}.asc"));
    let bin = out_dir.join(format!("{name}.bin"));
    let pcf = constraints_dir.join(format!("{}.pcf", board.name()));
    let plog = out_dir.join(format!("{name}.nextpnr.log"));
    let target = board.clock_mhz();
    let log = nextpnr(board, name, json, Some((&pcf, &asc)), out_dir, seed)?;
    run("icepack", &[&asc.to_string_lossy(), &bin.to_string_lossy()], &out_dir.join(format!("{name}.icepack.log")))?;
    let parse = |what| SynthError::Parse { log: plog.clone(), what };
    let ((logic_cells, logic_cells_total), (brams, brams_total)) = cells_and_brams(&log, &plog)?;
    let (ios, ios_total) = utilization(&log, "SB_IO").ok_or_else(|| parse("SB_IO"))?;
    let fmax_mhz = fmax(&log).ok_or_else(|| parse("Fmax of the PLL clock"))?;
    let clocks = fmax_per_clock(&log)
        .into_iter()
        .map(|(net, f)| {
            let t = if is_control_clock(&net) { board.control_clock_mhz() } else { target };
            (net, f, t)
        })
        .collect();
    Ok(SynthReport {
        board,
        kind,
        logic_cells,
        logic_cells_total,
        brams,
        brams_total,
        ios,
        ios_total,
        fmax_mhz,
        target_mhz: target,
        clocks,
        bitstream: bin,
        seed,
    })
}

/// What a seed sweep ([`synthesize_seeds`]) built: the chosen build and every attempt.
#[derive(Debug)]
pub struct SeedSweep {
    /// The first build that met every clock's target, else the one with the best
    /// [`SynthReport::worst_clock_ratio`]; its bitstream, placed design and nextpnr log are
    /// copied to the sweep's output directory under the top's usual names.
    pub best: SynthReport,
    /// Every seed tried, in order: its report, or why nextpnr failed for it.
    pub tried: Vec<(u32, Result<SynthReport, SynthError>)>,
}

/// [`synthesize`] with each nextpnr seed of `seeds` in turn, until one meets every clock's
/// target: at 60–95 % of an iCE40 the placer's seed moves Fmax by ±10 % (the UP5K core top's
/// tick clock: 55.3, 60.8, 62.4, 57.0 and 63.7 MHz at seeds 1 to 5), so timing closure is a
/// search, as in the vendors' flows. yosys runs once (its netlist and log in `out_dir`), then
/// each seed places and routes into `out_dir/seed-<n>`; the chosen build's `.bin`, `.asc` and `.nextpnr.log` are copied to `out_dir`. A seed for which
/// nextpnr fails (no legal placement) is recorded and the sweep goes on; a design that does
/// not fit ([`SynthError::DoesNotFit`], the same for every seed) ends it. If no seed builds,
/// the last seed's error is returned.
pub fn synthesize_seeds(
    board: Board,
    kind: TopKind,
    verilog_dir: &Path,
    constraints_dir: &Path,
    out_dir: &Path,
    seeds: &[u32],
) -> Result<SeedSweep, SynthError> {
    let json = synthesize_netlist(board, kind, verilog_dir, out_dir)?;
    let mut tried: Vec<(u32, Result<SynthReport, SynthError>)> = Vec::new();
    for &seed in seeds {
        let r = place_top(board, kind, &json, constraints_dir, &out_dir.join(format!("seed-{seed}")), seed);
        if let Err(e @ SynthError::DoesNotFit { .. }) = r {
            return Err(e);
        }
        let met = r.as_ref().is_ok_and(SynthReport::meets_timing);
        tried.push((seed, r));
        if met {
            break;
        }
    }
    let best = tried
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .max_by(|a, b| a.worst_clock_ratio().total_cmp(&b.worst_clock_ratio()))
        .cloned();
    let Some(mut best) = best else {
        return Err(match tried.pop() {
            Some((_, Err(e))) => e,
            _ => SynthError::NoSeeds,
        });
    };
    let name = kind.module_name(board);
    let from = out_dir.join(format!("seed-{}", best.seed));
    for ext in ["bin", "asc", "nextpnr.log"] {
        let (src, dst) = (from.join(format!("{name}.{ext}")), out_dir.join(format!("{name}.{ext}")));
        std::fs::copy(&src, &dst).map_err(|source| SynthError::Io { path: dst.clone(), source })?;
    }
    best.bitstream = out_dir.join(format!("{name}.bin"));
    Ok(SeedSweep { best, tried })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_clock_ratio_ranks_by_the_clock_furthest_below_its_target() {
        let report = |clocks: Vec<(String, f64, f64)>| SynthReport {
            board: Board::IceBreaker,
            kind: TopKind::Core,
            logic_cells: 0,
            logic_cells_total: 5280,
            brams: 0,
            brams_total: 30,
            ios: 0,
            ios_total: 96,
            fmax_mhz: clocks[0].1,
            target_mhz: clocks[0].2,
            clocks,
            bitstream: PathBuf::new(),
            seed: 1,
        };
        let a = report(vec![("core.clock".into(), 55.3, 60.0), ("core.ctl_clock".into(), 40.9, 30.0)]);
        let b = report(vec![("core.clock".into(), 60.8, 60.0), ("core.ctl_clock".into(), 29.0, 30.0)]);
        let c = report(vec![("core.clock".into(), 60.8, 60.0), ("core.ctl_clock".into(), 39.7, 30.0)]);
        assert!((a.worst_clock_ratio() - 55.3 / 60.0).abs() < 1e-12);
        assert!((b.worst_clock_ratio() - 29.0 / 30.0).abs() < 1e-12);
        assert!(a.worst_clock_ratio() < b.worst_clock_ratio() && b.worst_clock_ratio() < 1.0);
        assert!(c.worst_clock_ratio() >= 1.0 && c.meets_timing() && !b.meets_timing());
    }

    #[test]
    fn parses_nextpnr_log_lines() {
        let log = "Info: Device utilisation:\nInfo: \t         ICESTORM_LC:   812/ 7680    10%\n\
                   Info: Max frequency for clock 'pll.clock_out': 162.55 MHz (PASS at 150.00 MHz)\n";
        assert_eq!(utilization(log, "ICESTORM_LC"), Some((812, 7680)));
        assert_eq!(fmax(log), Some(162.55));
        // Two clocks, one name padded; the last figure of each counts.
        let two = "Info: Max frequency for clock 'tick_clock$SB_IO_IN': 139.43 MHz (FAIL at 150.00 MHz)\n\
                   Warning: Max frequency for clock  'ctl_clock$SB_IO_IN': 148.19 MHz (PASS at 75.00 MHz)\n\
                   Info: Max frequency for clock 'tick_clock$SB_IO_IN': 192.27 MHz (PASS at 150.00 MHz)\n";
        let per = fmax_per_clock(two);
        assert_eq!((per["tick_clock$SB_IO_IN"], per["ctl_clock$SB_IO_IN"]), (192.27, 148.19));
        assert_eq!(fmax(two), Some(192.27), "the tagger clock's");
        assert!(is_control_clock("pll.ctl_clock_out") && !is_control_clock("pll.clock_out"));
    }
}
