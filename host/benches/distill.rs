//! Sifting and MAC throughput.
//!
//! `cargo bench -p qkd-host --bench distill`
//! * `sifting/bob_squash_and_sift` — Bob squashes 10⁶ detection records and sifts (elements =
//!   detection records per second);
//! * `sifting/alice_reply_and_sift` — Alice answers the announcement from 2·10⁷ slots of
//!   prepared states and sifts (elements = detections per second);
//! * `mac/tag` — one Wegman–Carter tag over 1 MiB (bytes per second; ×8 for bits/s);
//! * `mac/channel_1MiB` — send + receive of a 1 MiB message through `AuthChannel` over a Unix
//!   socket pair (bytes per second).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use qkd_host::distill::auth::{mac_tag, AuthChannel, KeyPool, OneTimeKey, Role};
use qkd_host::distill::sifting::{alice_reply, sift, Measurements, SiftMode};
use qkd_host::distill::station::synthetic::{prepare_measure, PrepareMeasureModel};

fn sifting(c: &mut Criterion) {
    let model = PrepareMeasureModel { slots: 20_000_000, ..Default::default() };
    let (alice, bob) = prepare_measure(&model, &mut ChaCha20Rng::seed_from_u64(1));
    let mut g = c.benchmark_group("sifting");
    g.sample_size(10);
    g.throughput(Throughput::Elements(bob.len() as u64));
    g.bench_function("bob_squash_and_sift", |b| {
        let (reply, _) = {
            let m = Measurements::from_detections(&bob, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
            alice_reply(&alice, &m.announce()).unwrap()
        };
        b.iter(|| {
            let m = Measurements::from_detections(&bob, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
            let ann = m.announce();
            black_box(sift(&ann, &reply, m.values(), SiftMode::Asymmetric).unwrap())
        })
    });
    let m = Measurements::from_detections(&bob, &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
    let ann = m.announce();
    g.bench_function("alice_reply_and_sift", |b| {
        b.iter(|| {
            let (reply, values) = alice_reply(&alice, &ann).unwrap();
            black_box(sift(&ann, &reply, &values, SiftMode::Asymmetric).unwrap())
        })
    });
    g.finish();
}

fn mac(c: &mut Criterion) {
    let mut msg = vec![0u8; 1 << 20];
    ChaCha20Rng::seed_from_u64(3).fill_bytes(&mut msg);
    let mut g = c.benchmark_group("mac");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    let key = OneTimeKey::new(0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321);
    g.bench_function("tag", |b| b.iter(|| black_box(mac_tag(&key, &[&msg]))));
    g.sample_size(20);
    g.bench_function("channel_1MiB", |b| {
        b.iter_custom(|iters| {
            // A pool large enough for `iters` messages each way.
            let mut psk = vec![0u8; 64 + iters as usize * 32];
            ChaCha20Rng::seed_from_u64(4).fill_bytes(&mut psk);
            let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
            let psk_b = psk.clone();
            let len = msg.len();
            let rx = std::thread::spawn(move || {
                let mut ch = AuthChannel::new(sb, KeyPool::from_bytes(&psk_b), Role::Bob);
                for _ in 0..iters {
                    assert_eq!(ch.recv().unwrap().len(), len);
                }
            });
            let mut ch = AuthChannel::new(sa, KeyPool::from_bytes(&psk), Role::Alice);
            let t = std::time::Instant::now();
            for _ in 0..iters {
                ch.send(&msg).unwrap();
            }
            rx.join().unwrap();
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, sifting, mac);
criterion_main!(benches);
