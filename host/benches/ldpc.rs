//! LDPC reconciliation benchmarks.
//!
//! 1. A sweep (printed first): [`simulate`] of 2 × 2^20 key bits at QBER 1–5 %, with the
//!    efficiency, frame error rates, round trips and Bob's decoding throughput (key bits per
//!    second of decoding wall time, all rounds included). For a before/after ratio on a noisy
//!    machine, build the bench in a worktree of an older commit and run both binaries one after
//!    the other (`LDPC_BENCH_REPS` repeats the sweep; `LDPC_BENCH_SWEEP=0` skips it); drop the
//!    fields the older library lacks from the print. `LDPC_BENCH_Q` (comma-separated QBERs)
//!    and `LDPC_BENCH_BITS` (key bits per trial) change the sweep.
//! 2. Criterion: a full one-process reconciliation (Alice's syndromes, Bob's decoding, blind
//!    rounds) of 2^20 key bits at QBER 2 % and 5 %, counted in key bits.
//!
//! `cargo bench -p qkd-host --bench ldpc`

use criterion::{BatchSize, Criterion, Throughput};
use qkd_host::distill::key::SecretBits;
use qkd_host::distill::ldpc::{reconcile_local, simulate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

const BITS: usize = 1 << 20;

fn keys(qber: f64, seed: u64) -> (SecretBits, SecretBits) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut a = SecretBits::zeros(BITS);
    let mut b = SecretBits::zeros(BITS);
    for i in 0..BITS {
        let x = rng.gen::<bool>();
        a.set(i, x);
        b.set(i, x ^ rng.gen_bool(qber));
    }
    (a, b)
}

/// Process CPU time (user + system, seconds) from `/proc/self/stat`; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn sweep() {
    let reps: usize = std::env::var("LDPC_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let bits: usize = std::env::var("LDPC_BENCH_BITS").map_or(BITS, |v| v.parse().expect("LDPC_BENCH_BITS: key bits per trial"));
    println!("ldpc sweep: {bits} key bits x 2 trials per line, {} rayon threads", rayon::current_num_threads());
    for rep in 0..reps {
        let qs: Vec<f64> = std::env::var("LDPC_BENCH_Q").map_or_else(|_| vec![0.01, 0.02, 0.03, 0.04, 0.05], |v| v.split(',').map(|x| x.parse().expect("LDPC_BENCH_Q: QBERs, comma-separated")).collect());
        for &q in &qs {
            let (t, c) = (Instant::now(), cpu_seconds());
            let r = simulate(bits, q, 2, 42);
            let wall = t.elapsed().as_secs_f64();
            let cpu = c.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
            println!(
                "rep {rep} QBER {:.2}: f = {:.4}  FER = {:.4}  first-attempt FER = {:.3}  rounds mean {:.2}  undetected bit errors {}  caught by the frame hash {}  decode {:.2} Mbit/s  (n = {}, whole simulate {:.2} s wall, {:.2} s CPU)",
                q,
                r.efficiency,
                r.frame_error_rate,
                r.first_attempt_fer,
                r.mean_round_trips,
                r.residual_errors,
                r.wrong_decodings,
                r.decode_bits_per_second / 1e6,
                r.frame_len,
                wall,
                cpu
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ldpc_reconcile");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BITS as u64));
    for &q in &[0.02, 0.05] {
        let (a, b) = keys(q, 1);
        g.bench_function(format!("qber_{:.0}pct_{}bits", q * 100.0, BITS), |bench| {
            bench.iter_batched(
                || (a.clone(), b.clone()),
                |(mut a, mut b)| reconcile_local(&mut a, &mut b, q, 7).expect("reconcile"),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn main() {
    if std::env::var("LDPC_BENCH_SWEEP").map_or(true, |v| v != "0") {
        sweep();
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
