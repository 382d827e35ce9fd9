//! End-to-end: Alice and Bob as two threads over TCP on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use qkd_host::distill::auth::{AuthError, KeyPool, Role};
use qkd_host::distill::estimation::{EstimationError, EstimationParams};
use qkd_host::distill::sifting::SiftMode;
use qkd_host::distill::station::synthetic::{self, EntangledModel, PrepareMeasureModel};
use qkd_host::distill::station::{
    run_station, LocalOptions, Method, Protocol, StationConfig, StationError, StationFailure, StationInput,
    StationOutput,
};

type Outcome = Result<StationOutput, StationFailure>;

/// Pre-shared key size: Cascade's round trips cost 244 MAC key bits each.
const PSK_BYTES: usize = 65536;

fn psk(seed: u64) -> Vec<u8> {
    let mut b = vec![0u8; PSK_BYTES];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut b);
    b
}

/// Runs both stations over a TCP connection on 127.0.0.1.
fn run_pair(
    cfg_a: StationConfig,
    cfg_b: StationConfig,
    input_a: StationInput,
    input_b: StationInput,
    psk_a: &[u8],
    psk_b: &[u8],
) -> (Outcome, Outcome) {
    run_pair_pools(cfg_a, cfg_b, input_a, input_b, KeyPool::from_bytes(psk_a), KeyPool::from_bytes(psk_b), None)
}

/// A stream whose writes fail (broken pipe) once `writes_left` writes have gone through: a
/// link that drops in the middle of a run.
struct DroppingLink<S> {
    inner: S,
    writes_left: usize,
}

impl<S: Read> Read for DroppingLink<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<S: Write> Write for DroppingLink<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.writes_left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "link dropped (test)"));
        }
        self.writes_left -= 1;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// [`run_pair`] with key pools, Bob's link dropping after `bob_writes` writes when given.
fn run_pair_pools(
    cfg_a: StationConfig,
    cfg_b: StationConfig,
    input_a: StationInput,
    input_b: StationInput,
    pa: KeyPool,
    pb: KeyPool,
    bob_writes: Option<usize>,
) -> (Outcome, Outcome) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let alice = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        run_station(Role::Alice, &cfg_a, &LocalOptions::default(), input_a, s, pa)
    });
    let s = TcpStream::connect(addr).unwrap();
    let bob_local = LocalOptions { squash_seed: Some(5) };
    let bob = match bob_writes {
        None => run_station(Role::Bob, &cfg_b, &bob_local, input_b, s, pb),
        Some(n) => run_station(Role::Bob, &cfg_b, &bob_local, input_b, DroppingLink { inner: s, writes_left: n }, pb),
    };
    (alice.join().unwrap(), bob)
}

fn pm_inputs(model: &PrepareMeasureModel, seed: u64) -> (StationInput, StationInput) {
    let (a, b) = synthetic::prepare_measure(model, &mut ChaCha20Rng::seed_from_u64(seed));
    (StationInput::Prepared(a), StationInput::Detections(b))
}

/// Checks both stations succeeded with equal keys; `refilled`: the run refilled the
/// pre-shared key from the new key.
fn check_success(a: Outcome, b: Outcome, refilled: bool) -> (StationOutput, StationOutput) {
    let a = a.unwrap_or_else(|e| panic!("alice failed: {e}"));
    let b = b.unwrap_or_else(|e| panic!("bob failed: {e}"));
    eprintln!("{:#?}", a.report);
    assert!(!a.key.is_empty());
    assert_eq!(a.key, b.key, "keys differ");
    assert_eq!(a.next_psk, b.next_psk, "next pre-shared keys differ");
    assert_eq!(a.key.len() as u64, a.report.final_key_bits);
    assert_eq!(a.report.pa_output_bits, b.report.pa_output_bits);
    if refilled {
        // The key is the PA output less the MAC key moved into the next pre-shared key (then
        // cut to whole bytes); the pre-shared key keeps its size.
        let expect = a.report.pa_output_bits - a.report.mac_key_bits;
        assert!(a.key.len() as u64 <= expect && a.key.len() as u64 + 8 > expect);
        assert_eq!(a.next_psk.len(), PSK_BYTES * 8);
    }
    assert_eq!(a.report.mac_key_bits, b.report.mac_key_bits);
    assert!(a.report.pa_output_bits <= a.report.finite_key_bits);
    (a, b)
}

#[test]
fn decoy_bb84_over_tcp_with_cascade() {
    let (ia, ib) = pm_inputs(&PrepareMeasureModel::default(), 1);
    // Cascade's ~300 round trips cost about as much MAC key as this small block yields, so
    // keep the pre-shared key as it is (no refill) and check the whole PA output.
    let cfg = StationConfig { replenish_psk: false, ..Default::default() };
    let (a, b) = run_pair(cfg, cfg, ia, ib, &psk(1), &psk(1));
    let (a, b) = check_success(a, b, false);
    let r = &a.report;
    assert_eq!(r.slots, 10_000_000);
    assert!(r.sift.matched[0].iter().sum::<u64>() > 100_000, "{r:?}");
    assert!(b.report.squash.double_same_basis + b.report.squash.cross_basis > 0);
    let q = r.sample_estimate.unwrap();
    // 1% misalignment plus squashed multi-photon cross-basis clicks: about 2%.
    assert!((q.rate - 0.02).abs() < 0.008, "QBER {q:?}");
    // f is taken against the sampled QBER estimate, which scatters around the true QBER, so
    // it can fall slightly below 1.
    assert!(r.efficiency > 0.85 && r.efficiency < 1.6, "f = {}", r.efficiency);
    assert!(r.channel.round_trips > 5);
    // No refill: the key is the whole PA output, the next PSK what is left.
    assert_eq!(a.key.len() as u64, r.pa_output_bits / 8 * 8);
    assert_eq!(a.next_psk.len() as u64, (PSK_BYTES as u64 * 8 - r.mac_key_bits) / 8 * 8);
}

#[test]
fn decoy_bb84_over_tcp_with_ldpc() {
    let (ia, ib) = pm_inputs(&PrepareMeasureModel::default(), 2);
    let cfg = StationConfig { method: Method::Ldpc, replenish_psk: false, ..Default::default() };
    let (a, b) = run_pair(cfg, cfg, ia, ib, &psk(2), &psk(2));
    let (a, _) = check_success(a, b, false);
    assert!(a.report.efficiency > 1.0 && a.report.efficiency < 1.6, "f = {}", a.report.efficiency);
    // Sifting 1, estimation 1, verification 1, amplification 1 and the hand-overs between
    // stages (6 in all), plus at most `ldpc::REVEAL_ROUNDS` reveal rounds.
    let most = 6 + qkd_host::distill::ldpc::REVEAL_ROUNDS as u64;
    assert!(a.report.channel.round_trips <= most, "{} > {most}", a.report.channel.round_trips);
}

#[test]
fn bbm92_symmetric_over_tcp() {
    // Enough pairs that the key outgrows the MAC key Cascade's round trips consume (refilled).
    let model = EntangledModel { pairs: 2_000_000, ..Default::default() };
    let (da, db) = synthetic::entangled(&model, &mut ChaCha20Rng::seed_from_u64(3));
    let cfg = StationConfig {
        protocol: Protocol::Bbm92 { window: 3, offset: model.offset_ticks as i64, bob_flip: [false, false] },
        sift_mode: SiftMode::Symmetric,
        estimation: EstimationParams { sample_fraction: 0.1, eps_pe: 1e-10, max_qber: 0.05 },
        ..Default::default()
    };
    let (a, b) = run_pair(cfg, cfg, StationInput::Detections(da), StationInput::Detections(db), &psk(3), &psk(3));
    let (a, b) = check_success(a, b, true);
    assert!(a.report.sift.matched[1].iter().sum::<u64>() > 10_000, "both bases are key");
    assert!(a.report.squash.single > 0 && b.report.squash.single > 0);
}

fn is_qber_abort(e: &StationError) -> bool {
    matches!(e, StationError::Estimation(EstimationError::QberAboveThreshold { .. }))
}

#[test]
fn high_qber_aborts_both_stations() {
    let (ia, ib) = pm_inputs(&PrepareMeasureModel { misalignment: 0.15, slots: 500_000, ..Default::default() }, 4);
    let cfg = StationConfig::default();
    let (a, b) = run_pair(cfg, cfg, ia, ib, &psk(4), &psk(4));
    let (ea, eb) = (a.unwrap_err(), b.unwrap_err());
    assert!(is_qber_abort(&ea.error), "alice: {}", ea.error);
    assert!(is_qber_abort(&eb.error), "bob: {}", eb.error);
    let msg = eb.error.to_string();
    assert!(msg.contains("QBER too high") && msg.contains("threshold 11.000%"), "{msg}");
    // The failed run consumed MAC key, and the rest is handed back.
    assert!(ea.mac_key_bits > 0 && ea.next_psk.len() < PSK_BYTES * 8);
}

#[test]
fn mismatched_settings_abort_cleanly() {
    let (ia, ib) = pm_inputs(&PrepareMeasureModel { slots: 100_000, ..Default::default() }, 5);
    let cfg_b = StationConfig { method: Method::Ldpc, ..Default::default() };
    let (a, b) = run_pair(StationConfig::default(), cfg_b, ia, ib, &psk(5), &psk(5));
    let eb = b.unwrap_err().error;
    assert!(matches!(eb, StationError::Config(_)), "bob: {eb}");
    let ea = a.unwrap_err().error;
    assert!(matches!(ea, StationError::PeerAborted(_)), "alice: {ea}");
}

#[test]
fn different_psk_fails_authentication() {
    let (ia, ib) = pm_inputs(&PrepareMeasureModel { slots: 100_000, ..Default::default() }, 6);
    let cfg = StationConfig::default();
    let (a, b) = run_pair(cfg, cfg, ia, ib, &psk(6), &psk(7));
    let eb = b.unwrap_err().error;
    assert!(matches!(eb, StationError::Auth(AuthError::BadTag { .. })), "bob: {eb}");
    let ea = a.unwrap_err().error;
    assert!(matches!(ea, StationError::Auth(_)), "alice: {ea}");
}

/// A run whose link drops after Bob has spent one pad more than Alice saw leaves the two
/// pools at different points; the next run aligns them (Alice drops the difference) and
/// distills the same key at both stations.
#[test]
fn failed_run_leaves_pools_that_the_next_run_aligns() {
    let cfg = StationConfig { method: Method::Ldpc, ..Default::default() };
    let model = PrepareMeasureModel::default();
    let (ia, ib) = pm_inputs(&model, 8);
    // Bob's writes: the alignment opening, his first message, then the link drops.
    let (a, b) = run_pair_pools(cfg, cfg, ia, ib, KeyPool::from_bytes(&psk(8)), KeyPool::from_bytes(&psk(8)), Some(2));
    let (fa, fb) = (a.unwrap_err(), b.unwrap_err());
    assert!(matches!(fb.error, StationError::Auth(AuthError::Io(_))), "bob: {}", fb.error);
    assert!(matches!(fa.error, StationError::Auth(_)), "alice: {}", fa.error);
    assert!(fb.mac_key_bits > fa.mac_key_bits, "bob spent {} bits, alice {}", fb.mac_key_bits, fa.mac_key_bits);
    let (la, lb) = (fa.next_psk.len(), fb.next_psk.len());
    assert!(la > lb && la % 8 == 0 && lb % 8 == 0, "pools left: alice {la}, bob {lb}");
    // Both tails end where the pre-shared key ends.
    let full = KeyPool::from_bytes(&psk(8)).remainder();
    assert_eq!(fa.next_psk, full.slice(full.len() - la, full.len()));
    assert_eq!(fb.next_psk, full.slice(full.len() - lb, full.len()));

    let (ia, ib) = pm_inputs(&model, 9);
    let (a, b) = run_pair_pools(cfg, cfg, ia, ib, KeyPool::from_bits(fa.next_psk), KeyPool::from_bits(fb.next_psk), None);
    let (a, b) = check_success(a, b, false);
    let (al_a, al_b) = (a.report.psk_alignment, b.report.psk_alignment);
    assert_eq!((al_a.local_bits, al_a.peer_bits, al_a.dropped_bits), (la as u64, lb as u64, (la - lb) as u64));
    assert_eq!((al_b.local_bits, al_b.peer_bits, al_b.dropped_bits), (lb as u64, la as u64, 0));
    // The refilled pool is Bob's tail less this run's MAC key, plus that much new key.
    assert_eq!(a.next_psk.len(), lb / 8 * 8);
}
