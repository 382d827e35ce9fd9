//! Toeplitz privacy amplification throughput (input bits per second), m = n/2.
//!
//! `cargo bench -p qkd-host --bench toeplitz`; criterion reports Melem/s = Mbit/s of input.
//! `hash_m_half` draws the seed from ChaCha20 in the novel basis (no seed conversion);
//! `hash_m_half_monomial` gives the same matrix as explicit diagonals (`ToeplitzSeed::Bits`),
//! which costs one more basis conversion: their ratio in one run is what the novel seed saves.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qkd_host::distill::key::SecretBits;
use qkd_host::distill::toeplitz::{seed_bits, seed_len, toeplitz_hash, ToeplitzSeed};
use rand::{Rng, SeedableRng};

fn bench_toeplitz(c: &mut Criterion) {
    let mut group = c.benchmark_group("toeplitz");
    group.sample_size(10);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for n in [1_000_000usize, 10_000_000, 100_000_000] {
        let words = (0..n.div_ceil(64)).map(|_| rng.gen()).collect();
        let x = SecretBits::from_words(words, n);
        let seed: [u8; 32] = rng.gen();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("hash_m_half", n), &x, |b, x| {
            b.iter(|| toeplitz_hash(x, n / 2, ToeplitzSeed::ChaCha20(seed)).unwrap())
        });
        let diagonals = seed_bits(seed, seed_len(n, n / 2));
        group.bench_with_input(BenchmarkId::new("hash_m_half_monomial", n), &x, |b, x| {
            b.iter(|| toeplitz_hash(x, n / 2, ToeplitzSeed::Bits(&diagonals)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_toeplitz);
criterion_main!(benches);
