//! Cascade reconciliation throughput (key bits per second, Alice and Bob in one thread with a
//! local oracle) at QBER 2%, n = 1e5 and 1e6 bits. Also prints the measured efficiency f,
//! frame error rate and round trips.
//!
//! Run: `cargo bench -p qkd-host --bench cascade`

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use qkd_host::distill::cascade::{noisy_pair, reconcile_bob, simulate, CascadeAlice, CascadeParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const QBER: f64 = 0.02;

fn bench_cascade(c: &mut Criterion) {
    let mut group = c.benchmark_group("cascade_qber2");
    group.sample_size(10);
    for &n in &[100_000usize, 1_000_000] {
        let r = simulate(n, QBER, 5, 42).expect("simulate");
        eprintln!(
            "cascade n={n} qber={QBER}: f={:.4} FER={} round_trips={:.1} leaked={:.0} bits",
            r.efficiency, r.frame_error_rate, r.round_trips_mean, r.leaked_bits_mean
        );
        let params = CascadeParams::for_qber(n, QBER).expect("params");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || noisy_pair(n, QBER, &mut rng),
                |(alice_key, mut bob_key)| {
                    let mut alice = CascadeAlice::new(&alice_key, &params, 99).expect("alice");
                    let stats = reconcile_bob(&mut bob_key, &params, 99, &mut alice).expect("bob");
                    assert!(bob_key == alice_key, "residual errors");
                    stats
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cascade);
criterion_main!(benches);
