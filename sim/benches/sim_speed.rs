//! Simulation speed of the time tagger, in cycles/s, for one stimulus: Verilator driven from
//! Rust, the same Verilated model in a pure C++ loop, rust-hdl's simulator, and the Rust
//! reference model; with the ratios from this one run.
//!
//! Run: `cargo bench -p qkd-sim --bench sim_speed`

use std::time::Instant;

use qkd_hdl::tagger_model::{TaggerConfig, TaggerModel};
use qkd_sim::rusthdl::RustHdlTagger;
use qkd_sim::stimulus::{generate, StimulusParams};
use qkd_sim::verilated::VerilatedTagger;

fn best_of<F: FnMut() -> (u64, u64)>(runs: usize, mut f: F) -> (f64, (u64, u64)) {
    let mut best = f64::INFINITY;
    let mut result = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        result = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, result)
}

fn main() {
    let cfg = TaggerConfig { dead_time: [3; 8], ..Default::default() };
    let ticks = 4_000_000;
    let stim = generate(&StimulusParams::default(), ticks, 2024);
    let (t_rust, r_rust) = best_of(3, || {
        let mut v = VerilatedTagger::new();
        v.set_config(&cfg);
        v.run_rust(&stim)
    });
    let (t_cpp, r_cpp) = best_of(3, || {
        let mut v = VerilatedTagger::new();
        v.set_config(&cfg);
        v.run_cpp(&stim)
    });
    assert_eq!(r_rust, r_cpp, "Rust-driven and C++-driven runs disagree");
    let (t_model, r_model) = best_of(3, || {
        let mut m = TaggerModel::new(VerilatedTagger::CHANNELS, cfg);
        let (mut pops, mut sum) = (0u64, 0u64);
        for &s in &stim {
            if let Some(r) = m.step(s & 0x7f, s >> 7 != 0).popped {
                sum = sum.wrapping_mul(31).wrapping_add(r as u64);
                pops += 1;
            }
        }
        (pops, sum)
    });
    assert_eq!(r_rust, r_model, "Verilated model and reference model disagree");
    let hdl_ticks = 40_000;
    let (t_hdl, r_hdl) = best_of(1, || {
        let mut h = RustHdlTagger::new();
        h.set_config(&cfg);
        let (mut pops, mut sum) = (0u64, 0u64);
        for &s in &stim[..hdl_ticks] {
            if let Some(r) = h.step(s & 0x7f, s >> 7 != 0).popped {
                sum = sum.wrapping_mul(31).wrapping_add(r as u64);
                pops += 1;
            }
        }
        (pops, sum)
    });
    let mut v = VerilatedTagger::new();
    v.set_config(&cfg);
    assert_eq!(r_hdl, v.run_rust(&stim[..hdl_ticks]), "rust-hdl simulator and Verilated model disagree");
    let rate = |n: usize, t: f64| n as f64 / t;
    let (rr, rc, rm, rh) = (rate(ticks, t_rust), rate(ticks, t_cpp), rate(ticks, t_model), rate(hdl_ticks, t_hdl));
    println!("tagger simulation speed ({} channels, {} records popped in {ticks} cycles)", VerilatedTagger::CHANNELS, r_rust.0);
    println!("  Verilator driven from Rust : {:>12.0} cycles/s", rr);
    println!("  Verilator pure C++ loop    : {:>12.0} cycles/s", rc);
    println!("  rust-hdl simulator         : {:>12.0} cycles/s ({hdl_ticks} cycles)", rh);
    println!("  Rust reference model       : {:>12.0} cycles/s", rm);
    println!("  ratio Rust-driven / C++ loop : {:.3}", rr / rc);
    println!("  ratio Rust-driven / rust-hdl : {:.1}", rr / rh);
}
