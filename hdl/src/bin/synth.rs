//! `qkd-hdl-synth`: generates the Verilog and runs yosys → nextpnr-ice40 → icepack for the
//! board tops, printing utilization and Fmax. Exits non-zero if a board misses its clock.
//!
//! Usage: `cargo run -p qkd-hdl --bin qkd-hdl-synth -- [--board icebreaker|hx8k]... [--out build]`

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use qkd_hdl::top::Board;

/// Synthesize, place and route the board tops.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Boards to build (default: all).
    #[arg(long = "board", value_parser = ["icebreaker", "hx8k"])]
    boards: Vec<String>,
    /// Build directory (Verilog in OUT/verilog, bitstreams in OUT/synth).
    #[arg(long, default_value = "build")]
    out: PathBuf,
    /// Directory of the pin constraint files.
    #[arg(long, default_value = "constraints")]
    constraints: PathBuf,
    /// nextpnr placer seed.
    #[arg(long, default_value_t = 1)]
    seed: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vdir = args.out.join("verilog");
    qkd_hdl::verilog::write_all(&vdir).with_context(|| format!("writing Verilog into {}", vdir.display()))?;
    let boards: Vec<Board> = if args.boards.is_empty() {
        Board::ALL.to_vec()
    } else {
        Board::ALL.into_iter().filter(|b| args.boards.iter().any(|n| n == b.name())).collect()
    };
    let mut failed = Vec::new();
    for board in boards {
        let r = qkd_hdl::synth::synthesize(board, &vdir, &args.constraints, &args.out.join("synth"), args.seed)
            .with_context(|| format!("building the {} bitstream", board.name()))?;
        println!("{r}");
        if !r.meets_timing() {
            failed.push(board.name());
        }
    }
    if !failed.is_empty() {
        bail!("timing not met for: {}", failed.join(", "));
    }
    Ok(())
}
