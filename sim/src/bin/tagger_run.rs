//! `qkd-sim-tagger`: runs detector pulses through the Verilated time tagger (the generated
//! RTL), decodes the 64-bit tags, checks them against the fast reference model, and prints
//! per-channel counts and rates.
//!
//! Usage: `cargo run --release -p qkd-sim --bin qkd-sim-tagger -- [--ticks N] [--rate P] [--seed S]`

use std::time::Instant;

use qkd_hdl::tagfmt::StreamDecoder;
use qkd_hdl::tagger_model::{tag_edges, Edge, TaggerConfig};
use qkd_hdl::top::Board;
use qkd_sim::stimulus::{generate, StimulusParams};
use qkd_sim::verilated::VerilatedTagger;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: cannot parse {:?}", args[i + 1])),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Result<(usize, f64, u64), String> {
        Ok((arg(&args, "--ticks", 20_000_000)?, arg(&args, "--rate", 0.002)?, arg(&args, "--seed", 1)?))
    })();
    let (ticks, rate, seed) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("qkd-sim-tagger: {e}\nusage: qkd-sim-tagger [--ticks N] [--rate P] [--seed S]");
            std::process::exit(2);
        }
    };
    let mhz = Board::Hx8k.clock_mhz();
    let p = StimulusParams { pulse_prob: rate, max_width: 1, burst_prob: rate / 20.0, read_prob: 1.0, ..Default::default() };
    let stim = generate(&p, ticks, seed);
    let cfg = TaggerConfig { dead_time: [8; 8], ..Default::default() };
    let mut v = VerilatedTagger::new();
    v.set_config(&cfg);
    let t0 = Instant::now();
    let mut recs = Vec::new();
    for &s in &stim {
        recs.extend(v.step(s & 0x7f, true).popped);
    }
    let dt = t0.elapsed().as_secs_f64();
    let mut dec = StreamDecoder::new();
    let mut tags = Vec::new();
    if let Err(e) = dec.push_all(&recs, &mut tags) {
        eprintln!("qkd-sim-tagger: bad record stream: {e}");
        std::process::exit(1);
    }
    // The same edges through the fast event-level model.
    let mut edges = Vec::new();
    let mut prev = 0u8;
    for (t, &s) in stim.iter().enumerate() {
        let rise = s & 0x1f & !prev;
        for c in 0..VerilatedTagger::CHANNELS {
            if rise & (1 << c) != 0 {
                edges.push(Edge { tick: t as u64, channel: c as u8 });
            }
        }
        prev = s & 0x1f;
    }
    let fast = tag_edges(VerilatedTagger::CHANNELS, &cfg, &edges, ticks as u64);
    let agree = fast.starts_with(&recs) && fast.len() - recs.len() <= 8;
    let secs = ticks as f64 / (mhz * 1e6);
    println!("Verilated time tagger: {ticks} ticks = {:.3} s at {mhz} MHz, simulated in {dt:.2} s ({:.1} M ticks/s)", secs, ticks as f64 / dt / 1e6);
    println!("{:<8} {:>10} {:>14}", "channel", "tags", "rate (kHz)");
    for (c, name) in ["H", "V", "D", "A", "sync"].iter().enumerate() {
        let n = tags.iter().filter(|t| t.channel as usize == c).count();
        println!("{:<8} {:>10} {:>14.1}", format!("{c} {name}"), n, n as f64 / secs / 1e3);
    }
    println!("records {}, lost events {}, 64-bit span {} ticks", recs.len(), dec.lost(), tags.last().map_or(0, |t| t.time));
    println!("fast reference model agrees: {}", if agree { "yes" } else { "NO" });
    if !agree {
        std::process::exit(1);
    }
}
