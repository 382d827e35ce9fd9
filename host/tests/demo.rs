//! `qkd demo` end to end through the binary, on short passes: simulated physics → tagger (RTL
//! slice + bit-exact model) → (BBM92: clock sync from the tag streams) → sifting → estimation
//! → Cascade → verification → privacy amplification → finite key; checked through the key
//! files and `report.json`.
//!
//! The passes are scaled so that one run takes seconds: a short stretch of the pass, and for
//! the entanglement-based link a ground-test-bed-like link budget (few dB) so that a few
//! seconds give enough coincidences for a finite key that pays for the authentication key.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const QKD: &str = env!("CARGO_BIN_EXE_qkd");
const BB84: &str = include_str!("../../sim/presets/micius-2017-bb84.toml");
const BBM92: &str = include_str!("../../sim/presets/micius-2020-bbm92.toml");

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("qkd-demo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Sets `key = value` on every line that starts with `key = ` (every station); panics if the
/// preset has no such line, so a renamed parameter cannot silently leave the test unscaled.
fn set(toml: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    let mut hits = 0;
    let out: Vec<String> = toml
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                hits += 1;
                format!("{prefix}{value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(hits > 0, "no `{key}` in the preset");
    out.join("\n")
}

/// Runs `qkd demo` with a pass configuration written to `dir/pass.toml`; returns the report
/// and the printed output.
fn demo(dir: &Path, toml: &str, extra: &[&str]) -> (Value, String) {
    let cfg = dir.join("pass.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = Command::new(QKD)
        .args(["demo", "--preset", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap()])
        .args(["--rtl-ticks", "300000", "--seed", "5"])
        .args(extra)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "qkd demo failed:\n{text}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    (report, text)
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or_else(|| panic!("no integer {path} in {v}"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number {path} in {v}"))
}

/// Both key files: identical, non-empty, as long as the report says.
fn check_keys(dir: &Path, r: &Value) -> Vec<u8> {
    let a = std::fs::read(dir.join("alice.key")).expect("alice.key");
    let b = std::fs::read(dir.join("bob.key")).expect("bob.key");
    assert_eq!(a, b, "the stations' key files differ");
    let bits = u(r, "/secret_bits");
    assert!(bits > 0, "no secret key: {r}");
    assert!(a.len() as u64 >= bits / 8, "key file of {} bytes for {bits} bits", a.len());
    assert!(a.iter().any(|&x| x != 0) && a.iter().any(|&x| x != 0xFF), "a constant key");
    a
}

/// The decoy-BB84 preset without transmitter optics loss (the preset has 2 dB) and with the
/// receiver optics loss set to `rx_loss_db` (the preset has 7 dB): ~9 dB brighter, so that a
/// 10 s stretch gives a finite key well above the authentication key the run spends.
fn bb84(rx_loss_db: f64, misalignment: f64) -> String {
    let t = set(BB84, "tx_optics_loss_db", "0.0");
    let t = set(&t, "rx_optics_loss_db", &format!("{rx_loss_db:.1}"));
    set(&t, "misalignment_error", &format!("{misalignment}"))
}

/// Counts that must agree whatever the pass: protocol against tagger against simulator.
fn check_bb84_counts(r: &Value) {
    let tags = u(r, "/detector_tags/0");
    let det = u(r, "/detections/0");
    assert!(det > 0 && det <= tags && tags - det < tags / 50, "{det} detected slots from {tags} tags");
    assert!(u(r, "/rtl_slice/0/records") > 0, "the RTL slice saw no events");
    let s = &r["station"];
    assert_eq!(u(s, "/sift/announced"), det, "Bob announces every detected slot");
    assert_eq!(u(s, "/sift/no_partner"), 0, "Alice has a record for every detected slot");
    // Passive 50:50 bases on both sides: half the slots match, half of those are key (Z).
    let mismatch = u(s, "/sift/basis_mismatch") as f64;
    assert!((mismatch / det as f64 - 0.5).abs() < 0.02, "basis mismatch {mismatch} of {det}");
    let key = u(s, "/sifted_key_bits") as f64;
    assert!((key / det as f64 - 0.25).abs() < 0.02, "{key} sifted key bits of {det}");
    // Per-elevation bins add up to the detected slots.
    let bins = r["elevation_bins"].as_array().unwrap();
    let n: f64 = bins.iter().map(|b| f(b, "/detections_per_s") * f(b, "/seconds")).sum();
    assert!((n - det as f64).abs() < 1.0, "bins hold {n} of {det} detections");
    let k: f64 = bins.iter().map(|b| f(b, "/secret_bits_per_s") * f(b, "/seconds")).sum();
    let secret = u(r, "/secret_bits") as f64;
    assert!((k - secret).abs() < 1.0 + 1e-9 * secret, "bins hold {k} of {secret} secret bits");
    // The key is the privacy-amplified output less the refilled authentication key.
    let (pa, mac, fin) = (u(s, "/pa_output_bits"), u(s, "/mac_key_bits"), u(s, "/final_key_bits"));
    assert!(pa <= u(s, "/finite_key_bits"));
    assert!(fin <= pa - mac.min(pa) && fin + 8 > pa - mac.min(pa), "final {fin}, PA {pa}, MAC {mac}");
    assert_eq!(fin, u(r, "/secret_bits"));
}

#[test]
fn decoy_bb84_short_pass_gives_identical_keys() {
    let dir = tmp_dir("bb84");
    // 20 s: a finite key of ~180 000 bits, far above the 20 000–72 000 MAC key bits a Cascade
    // run spends (its round trips vary), so the key left after the refill is never empty.
    let (r, text) = demo(&dir, &bb84(0.0, 0.01), &["--duration", "20", "--method", "cascade"]);
    assert_eq!(r["protocol"], "decoy-bb84");
    assert!(r["abort"].is_null(), "aborted: {text}");
    check_keys(&dir, &r);
    check_bb84_counts(&r);
    // The QBER: the protocol's estimate against the simulator's count, and both in the range
    // the misalignment (1 %) and the noise allow.
    let (est, sim) = (f(&r, "/station/qber_for_reconciliation"), f(&r, "/simulated_qber"));
    assert!(sim > 0.01 && sim < 0.03, "simulated QBER {sim}");
    assert!((est - sim).abs() < 0.006, "estimate {est} against simulated {sim}");
    assert!(f(&r, "/simulated_s") > 19.9 && f(&r, "/simulated_s") < 20.1);
    assert!(dir.join("key-rate.svg").exists());
    assert!(text.contains("identical at both stations"), "{text}");
}

/// The entanglement-based preset, scaled to a ground-test-bed link budget (1 µrad beam from a
/// 1 m transmitter into 2.4 m telescopes, no optics loss, 80 % detectors) and 1 M pairs/s, so
/// that a 3 s stretch gives ~10⁶ coincidences.
fn bbm92_testbed() -> String {
    let mut t = BBM92.to_string();
    for (k, v) in [
        ("pair_rate_hz", "1e6"),
        ("divergence_urad", "1.0"),
        ("tx_aperture_m", "1.0"),
        ("rx_aperture_m", "2.4"),
        ("pointing_jitter_urad", "0.2"),
        ("zenith_transmittance", "0.95"),
        ("tx_optics_loss_db", "0.0"),
        ("rx_optics_loss_db", "0.0"),
        ("efficiency", "0.8"),
        ("misalignment_error", "0.01"),
    ] {
        t = set(&t, k, v);
    }
    t
}

#[test]
fn bbm92_short_pass_syncs_clocks_and_gives_identical_keys() {
    let dir = tmp_dir("bbm92");
    // LDPC: a few messages, so the MAC key spent stays ~2 000 bits whatever the pass (the
    // decoy-BB84 test covers Cascade).
    let (r, text) = demo(&dir, &bbm92_testbed(), &["--duration", "3", "--method", "ldpc"]);
    assert_eq!(r["protocol"], "bbm92");
    assert!(r["abort"].is_null(), "aborted: {text}");
    assert_eq!(r["station"]["method"], "ldpc");
    assert!(u(&r, "/station/mac_key_bits") < 10_000, "{}", r["station"]);
    check_keys(&dir, &r);
    // Clock sync from the tag streams: the FFT finds the peak at these rates, and the track
    // lies within a fraction of a tick of the simulated truth.
    let sync = &r["sync"];
    assert_eq!(sync["acquisition"], "fft");
    assert!(f(sync, "/residual_max_ticks") < 0.25, "{sync}");
    // B's clock is 2.5 µs (375 ticks) ahead and the times of flight differ by much more: the
    // offset is far from zero and moves, so a zero or constant guess would not do.
    let off = [f(sync, "/true_offset_ticks/0"), f(sync, "/true_offset_ticks/1")];
    assert!(off[0].abs() > 1000.0 && (off[1] - off[0]).abs() > 100.0, "{off:?}");
    // Coincidences: nearly every pair seen by both stations, few accidentals.
    let (c, truth, both) =
        (u(sync, "/coincidences"), u(sync, "/true_pair_coincidences"), u(sync, "/pairs_tagged_at_both"));
    assert!(both > 500_000, "{both} pairs");
    assert!(truth as f64 > 0.98 * both as f64, "{truth} of {both} pairs found");
    assert!(((c - truth) as f64) < 0.02 * c as f64, "{} accidentals of {c}", c - truth);
    // The protocol's own timestamp matching finds the same coincidences (up to clicks of one
    // station on one tick, which it merges into one detection, and greedy against closest
    // matching: ~0.1 %).
    let s = &r["station"];
    assert_eq!(u(s, "/sift/announced"), u(&r, "/detections/1"));
    let matched = u(s, "/sift/announced") - u(s, "/sift/no_partner");
    assert!((matched as f64 - c as f64).abs() < 0.005 * c as f64, "protocol matched {matched}, sync found {c}");
    let mismatch = u(s, "/sift/basis_mismatch") as f64;
    assert!((mismatch / matched as f64 - 0.5).abs() < 0.01, "basis mismatch {mismatch} of {matched}");
    // QBER: two 1 % misalignments plus the accidentals (half of them errors).
    let (est, sim) = (f(s, "/qber_for_reconciliation"), f(&r, "/simulated_qber"));
    assert!(sim > 0.015 && sim < 0.04, "simulated QBER {sim}");
    assert!((est - sim).abs() < 0.006, "estimate {est} against simulated {sim}");
}

#[test]
fn micius_bbm92_pass_recovers_the_offset_and_aborts_for_lack_of_statistics() {
    // The real preset: ~5 coincidences/s among ~6000 singles/s per station. The FFT peak
    // drowns in the folded singles, the bounded difference histogram finds it; a single pass
    // leaves too few key-sample bits for the 11 % bound at ε = 1e-10, and the demo says so.
    let dir = tmp_dir("micius-bbm92");
    let (r, text) = demo(&dir, BBM92, &["--duration", "200"]);
    let sync = &r["sync"];
    assert_eq!(sync["acquisition"], "difference-histogram", "{sync}");
    assert!(f(sync, "/fft_snr") < 6.0, "{sync}");
    assert!(u(sync, "/windows") >= 10, "{sync}");
    assert!(f(sync, "/residual_rms_ticks") < 0.5 && f(sync, "/residual_max_ticks") < 1.0, "{sync}");
    let (c, truth, both) =
        (u(sync, "/coincidences"), u(sync, "/true_pair_coincidences"), u(sync, "/pairs_tagged_at_both"));
    assert!(both > 300 && truth as f64 > 0.95 * both as f64, "{truth} of {both}");
    assert!(c >= truth);
    let abort = r["abort"].as_str().unwrap_or_else(|| panic!("no abort: {text}"));
    assert!(abort.contains("QBER") && abort.contains("abort threshold 11.000%"), "{abort}");
    assert_eq!(u(&r, "/secret_bits"), 0);
    assert!(!dir.join("alice.key").exists() && !dir.join("bob.key").exists());
    assert!(text.contains("ABORTED, no key"), "{text}");
}

#[test]
fn secret_key_rate_falls_as_loss_rises() {
    // The same pass (seed) with 0, 1.5 and 3 dB of receiver loss: fewer detections, fewer
    // sifted bits, a shorter key (privacy-amplified output, before the authentication key is
    // refilled from it). Measured: ~70 000, ~38 000 and ~16 000 bits.
    let mut last: Option<(u64, u64, u64)> = None;
    for (i, loss) in [0.0, 1.5, 3.0].into_iter().enumerate() {
        let dir = tmp_dir(&format!("loss{i}"));
        let (r, text) = demo(&dir, &bb84(loss, 0.01), &["--duration", "10", "--method", "cascade"]);
        let det = u(&r, "/detections/0");
        let (sifted, pa) = match r["station"].is_null() {
            true => (0, 0),
            false => (u(&r, "/station/sifted_key_bits"), u(&r, "/station/pa_output_bits")),
        };
        assert!(pa > 0, "no key at {loss} dB: {text}");
        if let Some((d0, s0, p0)) = last {
            // 1.5 dB: the signal falls to 0.71; the detected slots a little less (noise).
            let ratio = det as f64 / d0 as f64;
            assert!(ratio > 0.68 && ratio < 0.74, "{loss} dB: {det} detected slots after {d0}");
            assert!(sifted < s0, "{loss} dB: {sifted} sifted bits after {s0}");
            // The key falls faster than the detections: the finite-size corrections and the
            // noise weigh more in fewer detections.
            assert!((pa as f64) < ratio * p0 as f64, "{loss} dB: key {pa} after {p0}");
        }
        last = Some((det, sifted, pa));
    }
}

#[test]
fn secret_key_vanishes_above_the_qber_threshold() {
    // 15 % misalignment: the test-basis QBER is well above 11 %; the protocol aborts and the
    // demo names the QBER and the threshold, and writes no key.
    let dir = tmp_dir("qber");
    let (r, text) = demo(&dir, &bb84(0.0, 0.15), &["--duration", "3", "--method", "cascade"]);
    let abort = r["abort"].as_str().unwrap_or_else(|| panic!("no abort: {text}"));
    assert!(abort.contains("QBER too high") && abort.contains("abort threshold 11.000%"), "{abort}");
    let sim = f(&r, "/simulated_qber");
    assert!(sim > 0.13 && sim < 0.18, "simulated QBER {sim}");
    assert_eq!(u(&r, "/secret_bits"), 0);
    assert!(r["station"].is_null());
    assert!(!dir.join("alice.key").exists() && !dir.join("bob.key").exists());
    assert!(text.contains("ABORTED, no key"), "{text}");
}
