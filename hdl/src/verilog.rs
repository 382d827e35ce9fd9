//! Writing the Verilog of the gateware.

use std::path::{Path, PathBuf};

use rust_hdl::prelude::*;

use crate::tagger::TimeTagger;
use crate::top::{Board, TopKind};

/// Channels of the tagger core used by the board tops and the simulator: 4 detectors
/// (H, V, D, A) and the sync/1PPS input on channel 4.
pub const TAGGER_CHANNELS: usize = 5;

/// The tagger core as verilated by `qkd-sim` (module `time_tagger`).
pub type SimTagger = TimeTagger<TAGGER_CHANNELS>;

/// Verilog text of a block, with the top module renamed from `top` to `name`.
pub fn verilog_of<B: Block>(uut: &mut B, name: &str) -> String {
    uut.connect_all();
    let v = generate_verilog(uut);
    v.replacen("module top(", &format!("module {name}("), 1)
}

/// Verilog of the simulation tagger core, module `time_tagger`.
pub fn tagger_verilog() -> String {
    verilog_of(&mut SimTagger::default(), "time_tagger")
}

/// Verilog of every block that `qkd-sim` verilates, as (module name, Verilog text).
pub fn sim_models() -> Vec<(&'static str, String)> {
    vec![
        ("time_tagger", tagger_verilog()),
        ("coincidence", verilog_of(&mut crate::coincidence::Coincidence::<TAGGER_CHANNELS>::default(), "coincidence")),
        ("test_signal", verilog_of(&mut crate::testsig::TestSignal::<TAGGER_CHANNELS>::default(), "test_signal")),
        ("basis_rng", verilog_of(&mut crate::basis_rng::BasisRng::default(), "basis_rng")),
        ("histogram", verilog_of(&mut crate::histogram::Histogram::<TAGGER_CHANNELS, { crate::histogram::HIST_BIN_BITS }>::default(), "histogram")),
        ("coinc_filter", verilog_of(&mut crate::coinc_filter::CoincFilter::<TAGGER_CHANNELS>::default(), "coinc_filter")),
        ("tag_crossing", verilog_of(&mut crate::tag_crossing::TagCrossing::default(), "tag_crossing")),
        ("board", verilog_of(&mut crate::top::SimBoard::default(), "board")),
    ]
}

/// The blocks that run on every tick of the tagger clock (they take the channel events at
/// tick resolution), by module name: the ones that must meet the tagger clock, whichever clock
/// domain the rest of the core ends up in. `qkd-hdl-synth --blocks` builds each alone.
pub const TICK_DOMAIN_BLOCKS: [&str; 5] = ["time_tagger", "coincidence", "histogram", "coinc_filter", "test_signal"];

/// The blocks that move data between the tagger clock and the control clock
/// (`docs/clocking.md`), by module name: their `tick_clock` must reach the tagger clock, their
/// `ctl_clock` the control clock.
pub const CROSSING_BLOCKS: [&str; 1] = ["tag_crossing"];

/// Verilog of the [`TICK_DOMAIN_BLOCKS`] and the [`CROSSING_BLOCKS`], as (module name,
/// Verilog text): the blocks `qkd-hdl-synth --blocks` builds alone.
pub fn standalone_blocks() -> Vec<(&'static str, String)> {
    sim_models()
        .into_iter()
        .filter(|(name, _)| TICK_DOMAIN_BLOCKS.contains(name) || CROSSING_BLOCKS.contains(name))
        .collect()
}

/// Direction of a module port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortDir {
    /// An input.
    Input,
    /// An output.
    Output,
}

/// One port of a generated module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// Name as in the Verilog (`dead_time$0`).
    pub name: String,
    /// Width, in bits.
    pub width: usize,
    /// Direction.
    pub dir: PortDir,
}

impl Port {
    /// The field name Verilator gives the port (`$` becomes `__024`).
    pub fn verilator_name(&self) -> String {
        self.name.replace('$', "__024")
    }
}

/// The ports of module `module` in rust-hdl generated Verilog, in declaration order.
pub fn ports_of(verilog: &str, module: &str) -> Vec<Port> {
    let head = format!("module {module}(");
    let Some(start) = verilog.find(&head) else { return Vec::new() };
    let body = &verilog[start..];
    let end = body.find("endmodule").unwrap_or(body.len());
    let mut ports = Vec::new();
    for line in body[..end].lines() {
        let l = line.trim().trim_end_matches(';');
        let (dir, rest) = if let Some(r) = l.strip_prefix("input wire") {
            (PortDir::Input, r)
        } else if let Some(r) = l.strip_prefix("output reg").or_else(|| l.strip_prefix("output wire")) {
            (PortDir::Output, r)
        } else {
            continue;
        };
        let rest = rest.trim();
        let (width, name) = match rest.strip_prefix('[') {
            Some(r) => {
                let (range, name) = r.split_once(']').unwrap_or(("0:0", r));
                let hi: usize = range.split(':').next().and_then(|h| h.trim().parse().ok()).unwrap_or(0);
                (hi + 1, name.trim())
            }
            None => (1, rest),
        };
        ports.push(Port { name: name.to_string(), width, dir });
    }
    ports
}

/// Writes a file only when its content changed (keeps build scripts from rebuilding).
pub fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_the_tagger() {
        let ports = ports_of(&tagger_verilog(), "time_tagger");
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(&names[..4], &["clock", "pins", "enable", "falling"]);
        let d = ports.iter().find(|p| p.name == "dead_time$4").unwrap();
        assert_eq!((d.width, d.dir, d.verilator_name().as_str()), (16, PortDir::Input, "dead_time__0244"));
        let o = ports.iter().find(|p| p.name == "data_out").unwrap();
        assert_eq!((o.width, o.dir), (32, PortDir::Output));
    }
}

/// Writes `time_tagger.v` and, per board, the full-core top `top_<board>.v` and the
/// tagger-only top `stream_<board>.v` into `dir` (see [`TopKind`]); returns the paths.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let p = dir.join("time_tagger.v");
    write_if_changed(&p, &tagger_verilog())?;
    out.push(p);
    for board in Board::ALL {
        for kind in TopKind::ALL.into_iter().filter(|k| k.distinct_on(board)) {
            let p = dir.join(format!("{}.v", kind.module_name(board)));
            write_if_changed(&p, &kind.verilog(board))?;
            out.push(p);
        }
    }
    Ok(out)
}
