//! qkd-station's testbench suite: each testbench is written once against
//! [`qkd_driver::device::Device`] and runs unchanged on the Verilated board (in `cargo test`),
//! on the Verilated board served on a pseudo-terminal and opened as a serial port, and on a
//! real board (`QKD_PORT=/dev/ttyUSB1 cargo test -p qkd-tests --test hardware`, or
//! `qkd selftest --port ...`). Times are device time: counts are taken over the core's own
//! counting gates, so a simulator that runs slower than real time measures the same rates.
//!
//! Every testbench leaves the core with acquisition, the test signal and the RNG slots off.
//! The end-to-end tests live in `tests/tests/`.

use std::time::Duration;

use qkd_driver::device::{ChannelConfig, Ctrl, Device, TestSignal};
use qkd_driver::DriverError;
use qkd_hdl::regmap;
use qkd_hdl::tagfmt::Record;
use serde::Serialize;
use thiserror::Error;

/// Why a testbench failed.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The device or the link failed.
    #[error(transparent)]
    Device(#[from] DriverError),
    /// The device worked but a check did not hold.
    #[error("check failed: {0}")]
    Check(String),
}

/// A testbench's result: what it measured, in words.
pub type BenchResult = Result<String, BenchError>;

/// A testbench: a name and the function that runs it.
pub struct Bench {
    /// Short name (`qkd selftest --only NAME`).
    pub name: &'static str,
    /// What it checks.
    pub what: &'static str,
    /// The optional blocks it needs (`regmap::FEAT_*`); on a build without one of them
    /// (`FEATURES`) it is skipped.
    pub needs: u32,
    /// The testbench.
    pub run: fn(&mut Device) -> BenchResult,
}

/// One testbench's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The testbench.
    pub name: &'static str,
    /// Passed (or skipped).
    pub passed: bool,
    /// Not run: the gateware lacks a block it needs (`detail` names it).
    pub skipped: bool,
    /// What it measured, or why it failed.
    pub detail: String,
}

/// The suite, in the order it runs.
pub const SUITE: &[Bench] = &[
    Bench { name: "identify", what: "identification, register access and rejection of bad accesses", needs: 0, run: identify },
    Bench {
        name: "rate",
        what: "the test signal at rate R gives a count rate within tolerance of R",
        needs: regmap::FEAT_TESTSIG | regmap::FEAT_COINC,
        run: test_signal_rate,
    },
    Bench {
        name: "histogram",
        what: "correlated pairs with delay D put the histogram peak at D",
        needs: regmap::FEAT_TESTSIG | regmap::FEAT_HIST,
        run: histogram_peak,
    },
    Bench {
        name: "coincidence",
        what: "coincidences are counted in window W and not outside it, with delay compensation",
        needs: regmap::FEAT_TESTSIG | regmap::FEAT_COINC,
        run: coincidence_window,
    },
    Bench { name: "rng", what: "the RNG health tests pass and its choices are unbiased", needs: regmap::FEAT_RNG, run: rng_health_and_bias },
    Bench {
        name: "overload",
        what: "an overload is reported as lost data, with the exact count",
        needs: regmap::FEAT_TESTSIG | regmap::FEAT_COINC,
        run: overload_lost_count,
    },
];

/// The names (lower case) of the `FEATURES` bits in `bits`.
pub fn feature_names(bits: u32) -> Vec<String> {
    regmap::FEATURES.fields.iter().filter(|f| f.get(bits) != 0).map(|f| f.name.to_lowercase()).collect()
}

/// Runs the testbenches whose name is in `only` (all when empty), in suite order, calling
/// `progress` before each. Every testbench runs even when an earlier one failed; one that
/// needs a block the gateware lacks (`FEATURES`) is skipped (passed, with `skipped` set).
pub fn run_suite(dev: &mut Device, only: &[String], mut progress: impl FnMut(&Bench)) -> Vec<Outcome> {
    // A device that cannot say (the read failed) is taken to have everything: its benches
    // then fail on their own.
    let features = dev.features().unwrap_or(regmap::FEAT_ALL);
    SUITE
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|o| o == b.name))
        .map(|b| {
            let missing = b.needs & !features;
            if missing != 0 {
                let detail = format!("skipped: this gateware has no {}", feature_names(missing).join(", "));
                return Outcome { name: b.name, passed: true, skipped: true, detail };
            }
            progress(b);
            let r = (b.run)(dev);
            // Leave the core quiet for the next testbench, whatever happened.
            let _ = quiet(dev);
            match r {
                Ok(detail) => Outcome { name: b.name, passed: true, skipped: false, detail },
                Err(e) => Outcome { name: b.name, passed: false, skipped: false, detail: e.to_string() },
            }
        })
        .collect()
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Check(msg()))
    }
}

/// Acquisition, test signal and RNG slots off; stream FIFOs drained.
fn quiet(dev: &mut Device) -> Result<(), BenchError> {
    dev.set_ctrl(Ctrl::default())?;
    dev.set_test_signal(&TestSignal::default())?;
    dev.write(&regmap::RNG_SLOT_DIV, 0, 0)?;
    drain_tags(dev)?;
    while !dev.rng_read(4096)?.is_empty() {}
    Ok(())
}

/// Reads tag records until the FIFO stays empty; returns them.
fn drain_tags(dev: &mut Device) -> Result<Vec<u32>, BenchError> {
    let mut all = Vec::new();
    loop {
        let got = dev.read_tags(1 << 16)?;
        if got.is_empty() && dev.status()?.tag_level == 0 {
            return Ok(all);
        }
        all.extend(got);
    }
}

/// How long past the expected time a testbench waits for the device before it calls it
/// stalled (generous: a simulated board on a pty runs slower than real time).
const SLACK: Duration = Duration::from_secs(20);

/// Counting gate used by the rate testbenches: 1 ms of device time.
fn gate_ticks(dev: &Device) -> u32 {
    (dev.info().clock_hz / 1000) as u32
}

/// Identification, a scratch register round trip, and the refusals: a value too wide for
/// its register (host side), a read of an unmapped address (device side).
pub fn identify(dev: &mut Device) -> BenchResult {
    let info = dev.info().clone();
    check(info.channels == regmap::CHANNELS && info.groups == regmap::GROUPS, || format!("BUILD says {} channels, {} groups", info.channels, info.groups))?;
    for v in [0xDEAD_BEEF, 0, 0x1234_5678, u32::MAX] {
        dev.write(&regmap::SCRATCH, 0, v)?;
        let r = dev.read(&regmap::SCRATCH, 0)?;
        check(r == v, || format!("SCRATCH wrote {v:#x}, read {r:#x}"))?;
    }
    match dev.write(&regmap::COINC_WINDOW, 0, 1 << 12) {
        Err(DriverError::OutOfRange { .. }) => {}
        other => return Err(BenchError::Check(format!("a 13-bit value for the 8-bit COINC_WINDOW was not refused: {other:?}"))),
    }
    let unmapped = (0u8..=255).find(|&a| regmap::lookup(a).is_none()).expect("the map leaves gaps");
    match dev.transport().read(unmapped, 1) {
        Err(DriverError::Rejected { .. }) => {}
        other => return Err(BenchError::Check(format!("a read of unmapped address {unmapped:#04x} was not rejected: {other:?}"))),
    }
    let st = dev.status()?;
    check(st.pll_locked, || "PLL not locked".into())?;
    Ok(format!("{} board, {} channels, {} groups, clock {} MHz, gateware {}.{}", info.board_name(), info.channels, info.groups, info.clock_hz as f64 / 1e6, info.version_major, info.version_minor))
}

/// The test signal at rate R on channels 0–3: the gated count rate is within 4 σ + 1 % of
/// the expected rate of Bernoulli pulses per tick (a pulse right after another merges with
/// it: rate `f · p (1 − p)` with dead time 0).
pub fn test_signal_rate(dev: &mut Device) -> BenchResult {
    let f = dev.info().clock_hz as f64;
    let rate = 2e6f64.min(f / 50.0);
    let gate = 10 * gate_ticks(dev);
    dev.configure(&ChannelConfig { enable: Some(0x1F), falling: Some(0), dead_time: Some(vec![0; 5]), gate: Some(gate), ..Default::default() })?;
    let real = dev.set_test_signal(&TestSignal { rate_hz: vec![rate, rate, rate, rate, 0.0], pairs: None })?;
    dev.set_ctrl(Ctrl { testsig: true, ..Default::default() })?;
    let g = dev.next_gate(SLACK)?;
    let mut out = Vec::new();
    for c in 0..4 {
        let p = real[c] / f;
        let expect = p * (1.0 - p) * gate as f64;
        let n = g.singles[c] as f64;
        let tol = 4.0 * expect.sqrt() + 0.01 * expect;
        check((n - expect).abs() <= tol, || format!("channel {c}: {n} events in a {gate}-tick gate, expected {expect:.0} ± {tol:.0}"))?;
        out.push(format!("{:.4} MHz", n / gate as f64 * f / 1e6));
    }
    check(g.singles[4] == 0, || format!("channel 4 has no test signal but counted {}", g.singles[4]))?;
    Ok(format!("asked {:.4} MHz per channel, measured {}", real[0] / 1e6, out.join(", ")))
}

/// Correlated pairs 0 → 1 with delay D: the histogram of t1 − t0 peaks at D, and holds
/// nothing else (a start never falls inside a pending pair, and with offset 0 no later start
/// can pair with a stop).
pub fn histogram_peak(dev: &mut Device) -> BenchResult {
    let f = dev.info().clock_hz as f64;
    let delay = 37;
    let offset = 0;
    dev.configure(&ChannelConfig { enable: Some(0x1F), dead_time: Some(vec![0; 5]), ..Default::default() })?;
    dev.set_test_signal(&TestSignal { rate_hz: vec![(f / 200.0).min(1e6)], pairs: Some((0, 1, delay)) })?;
    dev.histogram_setup(0, 1, 0, offset)?;
    let (mut h, mut total) = (None, 0u64);
    // Accumulate until there are enough entries (device time runs at its own pace).
    for _ in 0..50 {
        dev.set_ctrl(Ctrl { testsig: true, hist: true, ..Default::default() })?;
        dev.pause(Duration::from_millis(2))?;
        dev.set_ctrl(Ctrl { testsig: true, ..Default::default() })?;
        let hh = dev.histogram()?;
        total = hh.bins.iter().map(|&b| b as u64).sum();
        h = Some(hh);
        if total >= 1000 {
            break;
        }
    }
    let h = h.expect("read at least once");
    let peak = h.peak_delay().ok_or_else(|| BenchError::Check("the histogram is empty".into()))?;
    let peak_bin = (delay + offset) as usize;
    check(total > 100, || format!("only {total} entries"))?;
    check((peak - delay as f64 - 0.5).abs() < 1e-9, || format!("peak at {peak} ticks, pairs were {delay} ticks apart"))?;
    check(h.bins[peak_bin] as u64 == total, || format!("{} of {total} entries in the peak bin", h.bins[peak_bin]))?;
    Ok(format!("{total} entries, all in the bin of {delay} ticks; overflow {}", h.overflow))
}

/// Pairs 0 → 1 with delay D and group {0, 1}: every pair coincides with window W = D, none
/// with W = D − 1, and all again with W = 0 once channel 0 is delayed by D. With W > 0 a
/// channel-0 pulse up to W ticks after a pair's channel-1 pulse also coincides (accidentals,
/// by the definition of the window); the rate is low enough that these stay below
/// `a + 4√a + 2` for `a` = pairs · W · p expected.
pub fn coincidence_window(dev: &mut Device) -> BenchResult {
    let f = dev.info().clock_hz as f64;
    let d = 2u32;
    let gate = 2 * gate_ticks(dev);
    let p = 1.0 / 400.0;
    dev.configure(&ChannelConfig {
        enable: Some(0x1F),
        dead_time: Some(vec![0; 5]),
        delay: Some(vec![0; 5]),
        groups: Some(vec![0b11, 0, 0, 0]),
        gate: Some(gate),
        ..Default::default()
    })?;
    dev.set_test_signal(&TestSignal { rate_hz: vec![f * p], pairs: Some((0, 1, d)) })?;
    dev.set_ctrl(Ctrl { testsig: true, ..Default::default() })?;
    let mut out = Vec::new();
    for (window, delay0, all) in [(d, 0, true), (d - 1, 0, false), (0, d, true)] {
        dev.configure(&ChannelConfig { window: Some(window), delay: Some(vec![delay0, 0, 0, 0, 0]), ..Default::default() })?;
        // A setting applies at once; the gate that straddles the change is skipped.
        let g = dev.next_gate(SLACK)?;
        let (pairs, c) = (g.singles[0] as f64, g.coincidences[0] as f64);
        check(pairs > 100.0, || format!("only {pairs} pairs in a gate"))?;
        let a = pairs * window as f64 * p;
        let acc = a + 4.0 * a.sqrt() + 2.0;
        if all {
            // A pair that straddles the gate's end counts its coincidence in the next gate.
            check(c >= pairs - 1.0 && c <= pairs + acc, || format!("W={window}, channel 0 delayed {delay0}: {c} coincidences of {pairs} pairs"))?;
        } else {
            check(c <= acc, || format!("W={window} < D={d}: {c} coincidences of {pairs} pairs (accidentals allowed: {acc:.0})"))?;
        }
        out.push(format!("W={window} delay0={delay0}: {c}/{pairs}"));
    }
    Ok(out.join("; "))
}

/// Seeds the basis generator, waits for its health start-up test, draws choices and checks
/// the basis and value bias (within 5 σ), the lag-1 serial correlation of the basis bits, the
/// intensity classes (χ² against 0.5/0.25/0.25, 2 degrees of freedom, below 27.6, p ≈ 10⁻⁶),
/// and that every slot without a record is counted in `RNG_MISSED`.
pub fn rng_health_and_bias(dev: &mut Device) -> BenchResult {
    let n_want = 8000usize;
    dev.rng_configure(0.5, 0.5, 0.25, 0)?;
    dev.rng_clear_health()?;
    dev.rng_seed(b"qkd-statio", b"n-selftest", true)?;
    let mut waited = Duration::ZERO;
    loop {
        let h = dev.rng_health()?;
        check(!h.failed, || format!("entropy health test failed: {h:?}"))?;
        if h.ready {
            break;
        }
        if waited > SLACK {
            return Err(BenchError::Check(format!("not ready after {waited:?}: {h:?}")));
        }
        dev.pause(Duration::from_micros(100))?;
        waited += Duration::from_micros(100);
    }
    let missed0 = dev.rng_health()?.missed;
    dev.write(&regmap::RNG_SLOT_DIV, 0, 512)?;
    let mut ch = Vec::new();
    while ch.len() < n_want {
        ch.extend(dev.rng_read(n_want - ch.len())?);
    }
    dev.write(&regmap::RNG_SLOT_DIV, 0, 0)?;
    let h = dev.rng_health()?;
    check(h.ready && !h.failed, || format!("health after drawing: {h:?}"))?;
    let n = ch.len() as f64;
    let sigma = 0.5 / n.sqrt();
    let x = ch.iter().filter(|c| c.basis_x).count() as f64 / n;
    let v = ch.iter().filter(|c| c.value).count() as f64 / n;
    check((x - 0.5).abs() < 5.0 * sigma, || format!("P(X basis) = {x:.4}, expected 0.5 ± {:.4}", 5.0 * sigma))?;
    check((v - 0.5).abs() < 5.0 * sigma, || format!("P(value 1) = {v:.4}, expected 0.5 ± {:.4}", 5.0 * sigma))?;
    let b: Vec<f64> = ch.iter().map(|c| if c.basis_x { 1.0 } else { -1.0 }).collect();
    let corr = b.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1.0);
    check(corr.abs() < 5.0 / n.sqrt(), || format!("lag-1 correlation of the basis bits {corr:.4}"))?;
    let mut k = [0f64; 3];
    for c in &ch {
        if c.class > 2 {
            return Err(BenchError::Check(format!("intensity class {} drawn, only 0–2 programmed", c.class)));
        }
        k[c.class as usize] += 1.0;
    }
    let chi2: f64 = k.iter().zip([0.5, 0.25, 0.25]).map(|(o, p)| (o - n * p).powi(2) / (n * p)).sum();
    check(chi2 < 27.6, || format!("classes {k:?}: χ² = {chi2:.1}"))?;
    let gaps: u64 = ch.windows(2).map(|w| (w[1].slot.wrapping_sub(w[0].slot) & 0x0FFF_FFFF) as u64 - 1).sum();
    let missed = h.missed.saturating_sub(missed0) as u64;
    check(gaps <= missed, || format!("{gaps} slots missing between records, RNG_MISSED rose by {missed}"))?;
    Ok(format!("{n} choices: P(X) {x:.4}, P(1) {v:.4}, lag-1 corr {corr:+.4}, classes χ² {chi2:.2}, {gaps} slots missed (RNG_MISSED +{missed})"))
}

/// Overloads the tagger FIFO with a burst of the test signal inside one counting gate, then
/// checks that the stream's events plus its LOST counts equal the gate's singles exactly, and
/// that `STATUS.TAG_LOST` is set.
pub fn overload_lost_count(dev: &mut Device) -> BenchResult {
    let f = dev.info().clock_hz as f64;
    let gate = 8 * gate_ticks(dev);
    let burst = dev.info().duration(gate as u64 / 16);
    dev.configure(&ChannelConfig { enable: Some(0x1F), dead_time: Some(vec![0; 5]), gate: Some(gate), ..Default::default() })?;
    let rate = f / 10.0;
    dev.set_test_signal(&TestSignal { rate_hz: vec![rate, rate, rate, rate, 0.0], pairs: None })?;
    dev.test_signal_enable(false)?;
    dev.set_ctrl(Ctrl { testsig: true, ..Default::default() })?;
    drain_tags(dev)?;
    dev.set_ctrl(Ctrl { testsig: true, acquire: true, ..Default::default() })?;
    for attempt in 0..3 {
        // Start the burst just after a gate begins, so the whole burst falls in that gate.
        let s0 = dev.read(&regmap::COINC_GATE_SEQ, 0)?;
        let mut s = s0;
        let mut waited = Duration::ZERO;
        while s == s0 {
            if waited > SLACK {
                return Err(BenchError::Check(format!("COINC_GATE_SEQ stuck at {s0} for {waited:?}")));
            }
            dev.pause(Duration::from_micros(20))?;
            waited += Duration::from_micros(20);
            s = dev.read(&regmap::COINC_GATE_SEQ, 0)?;
        }
        dev.test_signal_enable(true)?;
        dev.pause(burst)?;
        dev.test_signal_enable(false)?;
        let s_after = dev.read(&regmap::COINC_GATE_SEQ, 0)?;
        // Read the stream while the gate finishes (a fast link may catch up; no matter).
        let mut records = Vec::new();
        let g = loop {
            records.extend(dev.read_tags(4096)?);
            let now = dev.read(&regmap::COINC_GATE_SEQ, 0)?;
            if now != s {
                let g_singles = dev.read_all(&regmap::COINC_SINGLES)?;
                break (now, g_singles);
            }
            dev.pause(Duration::from_micros(200))?;
        };
        records.extend(drain_tags(dev)?);
        if s_after != s || g.0 != (s + 1) & 0xFFFF {
            // The burst or the read straddled a gate boundary: the counts do not cover it.
            if attempt == 2 {
                return Err(BenchError::Check("could not fit the burst into one counting gate in 3 attempts".into()));
            }
            continue;
        }
        let singles: u64 = g.1.iter().map(|&x| x as u64).sum();
        let (mut events, mut lost, mut lost_records) = (0u64, 0u64, 0u64);
        for &w in &records {
            match Record::decode(w) {
                Ok(Record::Event { mask, .. }) => events += mask.count_ones() as u64,
                Ok(Record::Lost(n)) => {
                    lost += n as u64;
                    lost_records += 1;
                }
                Ok(Record::Epoch(_)) => {}
                Err(e) => return Err(BenchError::Check(format!("invalid record {w:#010x} in the stream: {e}"))),
            }
        }
        let st = dev.status()?;
        check(lost > 0 && lost_records > 0, || format!("no LOST record after a burst of {singles} events"))?;
        check(st.tag_lost, || "STATUS.TAG_LOST not set after an overload".into())?;
        check(events + lost == singles, || format!("{events} events + {lost} lost ≠ {singles} counted"))?;
        return Ok(format!("{singles} events in the burst: {events} streamed + {lost} reported lost in {lost_records} LOST records"));
    }
    unreachable!("the loop returns")
}
