//! qkd-station simulation: the gateware Verilated and driven from Rust, checked against the
//! reference models of `qkd-hdl`; later, the physics of the link.
//!
//! * [`verilated`]: the Verilated time tagger ([`verilated::VerilatedTagger`]).
//! * [`rusthdl`]: the same tagger in rust-hdl's own simulator.
//! * [`stimulus`]: reproducible detector and read-strobe stimulus for tests and benchmarks.

pub mod clocksync;
pub mod physics;
pub mod rusthdl;
pub mod stimulus;
pub mod verilated;
pub mod verilated_extra;
pub mod board;
