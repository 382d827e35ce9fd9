//! Writing the Verilog of the gateware.

use std::path::{Path, PathBuf};

use rust_hdl::prelude::*;

use crate::tagger::TimeTagger;
use crate::top::{Board, BoardTop};

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

/// Writes `time_tagger.v` and one `top_<board>.v` per board into `dir`; returns the paths.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let p = dir.join("time_tagger.v");
    write_if_changed(&p, &tagger_verilog())?;
    out.push(p);
    for board in Board::ALL {
        let p = dir.join(format!("top_{}.v", board.name()));
        write_if_changed(&p, &verilog_of(&mut BoardTop::new(board), &format!("top_{}", board.name())))?;
        out.push(p);
    }
    Ok(out)
}
