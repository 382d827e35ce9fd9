//! `qkd-hdl-gen`: writes the Verilog of the tagger core and of every board top.
//!
//! Usage: `cargo run -p qkd-hdl --bin qkd-hdl-gen -- [OUT_DIR]` (default `build/verilog`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Write the gateware's Verilog into a build directory.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Output directory.
    #[arg(default_value = "build/verilog")]
    out_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let files = qkd_hdl::verilog::write_all(&args.out_dir)
        .with_context(|| format!("writing Verilog into {}", args.out_dir.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
