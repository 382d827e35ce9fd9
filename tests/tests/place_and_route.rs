//! The tagger board tops synthesize, place and route for both iCE40 boards at their target
//! clocks (HX8K: 150 MHz, UP5K: 60 MHz), with the real pin constraints, and icepack writes
//! the bitstreams. Takes about a minute (yosys and nextpnr run for real).

use std::path::Path;

use qkd_hdl::synth::synthesize;
use qkd_hdl::top::Board;

#[test]
fn board_tops_place_and_route_at_target_clock() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("place_and_route");
    let vdir = tmp.join("verilog");
    qkd_hdl::verilog::write_all(&vdir).expect("write Verilog");
    let constraints = Path::new(env!("CARGO_MANIFEST_DIR")).join("../constraints");
    for board in Board::ALL {
        let r = synthesize(board, &vdir, &constraints, &tmp.join("synth"), 1)
            .unwrap_or_else(|e| panic!("{}: {e}", board.name()));
        println!("{r}");
        assert!(r.meets_timing(), "{}: Fmax {:.1} MHz below {:.1} MHz", board.name(), r.fmax_mhz, r.target_mhz);
        assert!(r.logic_cells * 100 <= r.logic_cells_total * 60, "{}: {} logic cells", board.name(), r.logic_cells);
        let bits = std::fs::metadata(&r.bitstream).expect("bitstream written").len();
        assert!(bits > 30_000, "{}: bitstream of {bits} bytes", board.name());
    }
}
