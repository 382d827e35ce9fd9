//! The UART host link: synthesis estimate (the Verilated board tests are in `board.rs`).

mod support;

use qkd_hdl::link::UartLink;
use qkd_hdl::verilog::verilog_of;

/// `cargo test -p qkd-sim --test link -- --ignored --nocapture`
#[test]
#[ignore]
fn link_synthesis_estimate() {
    let verilog = verilog_of(&mut UartLink::default(), "uart_link");
    let e = support::estimate("uart_link", &verilog, 1);
    println!("UART link on iCE40-HX8K: {} LCs, {} BRAM, Fmax {:.1} MHz", e.logic_cells, e.brams, e.fmax_mhz);
    assert!(e.brams >= 4, "{e:?}");
}
