//! Verification hash throughput (key bits per second) with the default eps_cor = 1e-15.
//!
//! `cargo bench -p qkd-host --bench verify`; criterion reports Melem/s = Mbit/s of key.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qkd_host::distill::key::SecretBits;
use qkd_host::distill::verify::{tag, VerifyKey, VerifyParams};
use rand::{Rng, SeedableRng};

fn bench_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let params = VerifyParams::default();
    for n in [1_000_000usize, 100_000_000] {
        let words = (0..n.div_ceil(64)).map(|_| rng.gen()).collect();
        let key = SecretBits::from_words(words, n);
        let hash_key = VerifyKey::from_seed(&params, n, rng.gen()).unwrap();
        group.throughput(Throughput::Elements(n as u64));
        let id = BenchmarkId::new(format!("tag_{}bit", hash_key.tag_bits()), n);
        group.bench_with_input(id, &key, |b, key| b.iter(|| tag(key, &hash_key).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
