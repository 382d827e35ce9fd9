//! `qkd-hdl-synth`: generates the Verilog and runs yosys → nextpnr-ice40 → icepack for the
//! board tops of every kind (the tagger-only `stream_<board>`, the core `top_<board>` and
//! the receiver core without the basis RNG `rx_<board>`, where that differs from the core),
//! printing utilization and Fmax, or "does not fit" with the logic cells nextpnr needed.
//! Exits non-zero if a tagger-only top fails or misses its clock; the core tops' status is
//! reported but not fatal (the HX8K's full core misses its tick clock).
//!
//! Usage: `cargo run -p qkd-hdl --bin qkd-hdl-synth -- [--board icebreaker|hx8k]...
//! [--top stream|top|rx]... [--out build] [--seed N] [--seeds K] [--blocks]`; `--seeds K` tries
//! K placer seeds per top until one meets timing and keeps the best; `--blocks` builds the blocks that run at
//! the tagger clock each alone instead, and reports their Fmax.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use qkd_hdl::synth::{synthesize_block, synthesize_seeds, SynthError};
use qkd_hdl::top::{Board, TopKind};

/// Synthesize, place and route the board tops.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Boards to build (default: all).
    #[arg(long = "board", value_parser = ["icebreaker", "hx8k"])]
    boards: Vec<String>,
    /// Top kinds to build: `stream` (tagger only), `top` (the board's core) or `rx` (the
    /// core without the basis RNG, `TopKind::Receiver`); default: all.
    #[arg(long = "top", value_parser = ["stream", "top", "rx"])]
    tops: Vec<String>,
    /// Build directory (Verilog in OUT/verilog, bitstreams in OUT/synth).
    #[arg(long, default_value = "build")]
    out: PathBuf,
    /// Directory of the pin constraint files.
    #[arg(long, default_value = "constraints")]
    constraints: PathBuf,
    /// nextpnr placer seed (the first of the sweep with `--seeds`).
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Seeds to try per top: SEED, SEED+1, ..., until one meets every clock's target; the
    /// best build is kept under the top's usual names (`qkd_hdl::synth::synthesize_seeds`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    seeds: u32,
    /// Instead of the board tops, build each block that runs at the tagger clock
    /// (`qkd_hdl::verilog::TICK_DOMAIN_BLOCKS`) alone and report its Fmax (into OUT/blocks;
    /// HX8K only: a block alone puts every port on a pin).
    #[arg(long)]
    blocks: bool,
    /// Print the extra yosys `synth_ice40` options of the one top given by `--board` and
    /// `--top` (`TopKind::yosys_synth_options`; empty when none) and exit, so that scripts
    /// running yosys themselves (`scripts/timing-report`) use the flow's options.
    #[arg(long)]
    print_yosys_options: bool,
}

/// The members of `all` whose name is in `chosen` (all of them when `chosen` is empty).
fn pick<T: Copy>(all: &[T], chosen: &[String], name: impl Fn(T) -> &'static str) -> Vec<T> {
    all.iter().copied().filter(|&x| chosen.is_empty() || chosen.iter().any(|n| n == name(x))).collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_yosys_options {
        let (boards, kinds) = (pick(&Board::ALL, &args.boards, Board::name), pick(&TopKind::ALL, &args.tops, TopKind::name));
        let ([board], [kind]) = (boards.as_slice(), kinds.as_slice()) else {
            bail!("--print-yosys-options needs exactly one --board and one --top");
        };
        println!("{}", kind.yosys_synth_options(*board));
        return Ok(());
    }
    let vdir = args.out.join("verilog");
    qkd_hdl::verilog::write_all(&vdir).with_context(|| format!("writing Verilog into {}", vdir.display()))?;
    let boards = pick(&Board::ALL, &args.boards, Board::name);
    if args.blocks {
        let dir = args.out.join("blocks");
        for &board in &boards {
            println!("{}:", board.name());
            if board == Board::IceBreaker {
                // A block alone puts every port on a pin; the UP5K's sg48 package has 39.
                println!("  skipped: the UP5K's sg48 package has too few pins for a block's ports");
                continue;
            }
            for (name, v) in qkd_hdl::verilog::standalone_blocks() {
                let r = synthesize_block(board, name, &v, &dir.join(board.name()), args.seed)
                    .with_context(|| format!("building block {name} for {}", board.name()))?;
                println!("  {r}");
            }
        }
        return Ok(());
    }
    // The tagger-only tops first: they are the ones that must pass.
    let kinds = pick(&[TopKind::Stream, TopKind::Core, TopKind::Receiver], &args.tops, TopKind::name);
    let mut failed = Vec::new();
    for kind in kinds {
        for &board in &boards {
            let top = kind.module_name(board);
            if !kind.distinct_on(board) {
                println!("{top:<17} not built: the same core as {}", TopKind::Core.module_name(board));
                continue;
            }
            let fatal = kind == TopKind::Stream;
            let seeds: Vec<u32> = (args.seed..).take(args.seeds as usize).collect();
            match synthesize_seeds(board, kind, &vdir, &args.constraints, &args.out.join("synth"), &seeds) {
                Ok(sweep) => {
                    if sweep.tried.len() > 1 {
                        for (seed, t) in &sweep.tried {
                            match t {
                                Ok(r) => eprintln!("  {top} seed {seed}: {}", r.clocks.iter().map(|(n, f, t)| format!("{n} {f:.1}/{t:.0} MHz")).collect::<Vec<_>>().join(", ")),
                                Err(e) => eprintln!("  {top} seed {seed}: {e}"),
                            }
                        }
                    }
                    let r = sweep.best;
                    println!("{r}");
                    if fatal && !r.meets_timing() {
                        failed.push(format!("{top}: {}", r.timing_failures().join(", ")));
                    }
                }
                Err(SynthError::DoesNotFit { used, available, log, .. }) => {
                    println!(
                        "{top:<17} does not fit: {used}/{available} logic cells ({:.0}%); see {}",
                        100.0 * used as f64 / available.max(1) as f64,
                        log.display()
                    );
                    if fatal {
                        failed.push(format!("{top}: does not fit"));
                    }
                }
                Err(e) if !fatal => println!("{top:<17} failed: {e}"),
                Err(e) => return Err(e).with_context(|| format!("building {top}")),
            }
        }
    }
    if !failed.is_empty() {
        bail!("tagger-only tops failed: {}", failed.join("; "));
    }
    Ok(())
}
