//! Block-level synthesis estimate for the tests of single gateware blocks: yosys
//! `synth_ice40` and nextpnr-ice40 on an iCE40-HX8K (ct256, enough pins for a block's ports;
//! the UP5K's logic cell is the same LUT4 + flip-flop, so the cell count carries over), at a
//! 150 MHz target. Only the `#[ignore]`d estimate tests use it.

use std::path::PathBuf;
use std::process::Command;

/// What place and route reported for one block.
#[derive(Debug)]
pub struct Estimate {
    /// Logic cells (ICESTORM_LC).
    pub logic_cells: u32,
    /// Block RAMs (ICESTORM_RAM).
    pub brams: u32,
    /// Fmax of the block's clock, in MHz.
    pub fmax_mhz: f64,
}

fn run(cmd: &mut Command, log: &PathBuf) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install the tools with scripts/setup)"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    std::fs::write(log, &text).unwrap();
    assert!(out.status.success(), "{cmd:?} failed; see {}", log.display());
    text
}

fn used(log: &str, cell: &str) -> u32 {
    let key = format!("{cell}:");
    let line = log
        .lines()
        .rev()
        .map(|l| l.trim_start_matches("Info:").trim())
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no {cell} in the nextpnr log"));
    line[key.len()..].split('/').next().unwrap().trim().parse().unwrap()
}

/// Synthesizes, places and routes module `module` of `verilog`, in a scratch directory
/// under the system temporary directory (logs kept there).
pub fn estimate(module: &str, verilog: &str, seed: u32) -> Estimate {
    let dir = std::env::temp_dir().join(format!("qkd-block-{module}"));
    std::fs::create_dir_all(&dir).unwrap();
    let v = dir.join(format!("{module}.v"));
    let json = dir.join(format!("{module}.json"));
    std::fs::write(&v, verilog).unwrap();
    run(
        Command::new("yosys").args(["-q", "-p"]).arg(format!("synth_ice40 -abc9 -dff -top {module} -json {}", json.display())).arg(&v),
        &dir.join("yosys.log"),
    );
    let log = run(
        Command::new("nextpnr-ice40")
            .args(["--hx8k", "--package", "ct256", "--freq", "150", "--timing-allow-fail", "--seed"])
            .arg(seed.to_string())
            .arg("--json")
            .arg(&json),
        &dir.join("nextpnr.log"),
    );
    let fmax_mhz = log
        .lines()
        .filter(|l| l.contains("Max frequency for clock"))
        .filter_map(|l| l.split("': ").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .last()
        .expect("no Fmax in the nextpnr log");
    Estimate { logic_cells: used(&log, "ICESTORM_LC"), brams: used(&log, "ICESTORM_RAM"), fmax_mhz }
}
