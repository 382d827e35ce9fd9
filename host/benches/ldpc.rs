//! LDPC reconciliation throughput: a full one-process reconciliation (Alice's syndromes, Bob's
//! decoding, blind rounds) of 2^20 key bits at QBER 2 % and 5 %, counted in key bits.
//!
//! `cargo bench -p qkd-host --bench ldpc`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use qkd_host::distill::key::SecretBits;
use qkd_host::distill::ldpc::reconcile_local;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

criterion_group!(benches, bench);
criterion_main!(benches);
