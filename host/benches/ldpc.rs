//! LDPC reconciliation benchmarks (being written by the `ldpc` helper).
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(_c: &mut Criterion) {}

criterion_group!(benches, bench);
criterion_main!(benches);
