//! NIST SP 800-90B continuous health tests on a raw binary entropy source.
//!
//! * **Repetition Count Test** (§4.4.1): fails when a run of `rct_cutoff` identical
//!   consecutive samples is seen. `C = 1 + ceil(a / H)` for a false-alarm probability
//!   `α = 2^-a` per sample and claimed min-entropy `H` bits per sample; H = 1, α = 2^-20
//!   gives 21 ([`crate::rng_model::rct_cutoff`]).
//! * **Adaptive Proportion Test** (§4.4.2, binary: window `W = 1024`): the first sample of each
//!   window is the reference, and the test fails when the reference value occurs
//!   `apt_cutoff` times in the window (itself included).
//!   `C = 1 + CRITBINOM(1024, 2^-H, 1 - α)`; H = 1, α = 2^-20 gives 589
//!   ([`crate::rng_model::apt_cutoff`], table in `docs/rng.md`).
//! * **Start-up test** (§4.3): after power-on and after every `clear`, the first full APT window
//!   (1024 samples) is tested and discarded; `out_valid` stays low until it has passed.
//!
//! A failure latches (`rct_failed` / `apt_failed`, `failed`), stops the tests and the output
//! until a `clear` tick. Samples that pass go out one tick later on `out_bit`/`out_valid`; the
//! sample on which a test fails is not passed. The cutoff ports pass a register first (the
//! cutoff in effect, with 0 — the power-on value of the core's register, before the host
//! writes one — replaced by the default, H = 1, α = 2^-20: 21 and 589), which keeps the zero
//! test out of the tests' compare path; so do the cutoff minus 1 and a flag for a cutoff of at
//! most 1, so that "count + 1 reaches the cutoff" is one compare of registers, no adder
//! before it.
//! Cycle model: [`crate::rng_model::HealthModel`].

use rust_hdl::prelude::*;

use crate::rng_model::{APT_CUTOFF_BITS, APT_CUTOFF_DEFAULT, RCT_CUTOFF_BITS, RCT_CUTOFF_DEFAULT};

/// The SP 800-90B repetition count and adaptive proportion tests for a binary source.
#[derive(LogicBlock)]
pub struct HealthTests {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Raw sample.
    pub raw_bit: Signal<In, Bit>,
    /// `raw_bit` is a new sample this tick.
    pub raw_valid: Signal<In, Bit>,
    /// RCT cutoff (≥ 2).
    pub rct_cutoff: Signal<In, Bits<RCT_CUTOFF_BITS>>,
    /// APT cutoff (≥ 2).
    pub apt_cutoff: Signal<In, Bits<APT_CUTOFF_BITS>>,
    /// Clear the failure flags and restart the start-up test.
    pub clear: Signal<In, Bit>,
    /// The sample that passed the tests.
    pub out_bit: Signal<Out, Bit>,
    /// `out_bit` is valid (one tick).
    pub out_valid: Signal<Out, Bit>,
    /// A test has failed (latched until `clear`).
    pub failed: Signal<Out, Bit>,
    /// The repetition count test has failed.
    pub rct_failed: Signal<Out, Bit>,
    /// The adaptive proportion test has failed.
    pub apt_failed: Signal<Out, Bit>,
    /// The start-up test has passed.
    pub started: Signal<Out, Bit>,
    rct_last: DFF<Bit>,
    rct_cnt: DFF<Bits<8>>,
    apt_ref: DFF<Bit>,
    apt_cnt: DFF<Bits<11>>,
    apt_idx: DFF<Bits<10>>,
    rct_fail: DFF<Bit>,
    apt_fail: DFF<Bit>,
    start_ok: DFF<Bit>,
    obit: DFF<Bit>,
    ovalid: DFF<Bit>,
    rct_new: Signal<Local, Bits<9>>,
    apt_new: Signal<Local, Bits<12>>,
    rct_now: Signal<Local, Bit>,
    apt_now: Signal<Local, Bit>,
    // The cutoffs in effect (0 replaced by the default), registered: the zero test and the
    // default select stay out of the test's compare path.
    apt_eff: DFFWithInit<Bits<APT_CUTOFF_BITS>>,
    // The cutoffs in effect minus 1, and whether they are at most 1, registered alongside:
    // `count + 1 >= cutoff` is tested as `count >= cutoff - 1`, so no adder runs in front of
    // the compare.
    rct_eff_m1: DFFWithInit<Bits<RCT_CUTOFF_BITS>>,
    apt_eff_m1: DFFWithInit<Bits<APT_CUTOFF_BITS>>,
    rct_eff_le1: DFF<Bit>,
    apt_eff_le1: DFF<Bit>,
    rct_sel: Signal<Local, Bits<RCT_CUTOFF_BITS>>,
    apt_sel: Signal<Local, Bits<APT_CUTOFF_BITS>>,
    rct_default: Constant<Bits<RCT_CUTOFF_BITS>>,
    apt_default: Constant<Bits<APT_CUTOFF_BITS>>,
}

impl Default for HealthTests {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            raw_bit: Default::default(),
            raw_valid: Default::default(),
            rct_cutoff: Default::default(),
            apt_cutoff: Default::default(),
            clear: Default::default(),
            out_bit: Default::default(),
            out_valid: Default::default(),
            failed: Default::default(),
            rct_failed: Default::default(),
            apt_failed: Default::default(),
            started: Default::default(),
            rct_last: Default::default(),
            rct_cnt: Default::default(),
            apt_ref: Default::default(),
            apt_cnt: Default::default(),
            apt_idx: Default::default(),
            rct_fail: Default::default(),
            apt_fail: Default::default(),
            start_ok: Default::default(),
            obit: Default::default(),
            ovalid: Default::default(),
            rct_new: Default::default(),
            apt_new: Default::default(),
            rct_now: Default::default(),
            apt_now: Default::default(),
            apt_eff: DFFWithInit::new((APT_CUTOFF_DEFAULT as u64).to_bits()),
            rct_eff_m1: DFFWithInit::new((RCT_CUTOFF_DEFAULT as u64 - 1).to_bits()),
            apt_eff_m1: DFFWithInit::new((APT_CUTOFF_DEFAULT as u64 - 1).to_bits()),
            rct_eff_le1: Default::default(),
            apt_eff_le1: Default::default(),
            rct_sel: Default::default(),
            apt_sel: Default::default(),
            rct_default: Constant::new((RCT_CUTOFF_DEFAULT as u64).to_bits()),
            apt_default: Constant::new((APT_CUTOFF_DEFAULT as u64).to_bits()),
        }
    }
}

impl Logic for HealthTests {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, apt_eff, rct_eff_m1, apt_eff_m1, rct_eff_le1, apt_eff_le1, rct_last, rct_cnt, apt_ref, apt_cnt, apt_idx, rct_fail,
            apt_fail, start_ok, obit, ovalid
        );
        self.obit.d.next = self.raw_bit.val();
        self.ovalid.d.next = false;
        // Repetition count: the run length including this sample.
        if self.rct_cnt.q.val().any() & (self.raw_bit.val() == self.rct_last.q.val()) {
            self.rct_new.next = bit_cast::<9, 8>(self.rct_cnt.q.val()) + 1;
        } else {
            self.rct_new.next = 1.into();
        }
        // A cutoff of 0 (also the power-on value of the registers) selects the default.
        self.rct_sel.next = self.rct_cutoff.val();
        if !self.rct_cutoff.val().any() {
            self.rct_sel.next = self.rct_default.val();
        }
        self.apt_sel.next = self.apt_cutoff.val();
        if !self.apt_cutoff.val().any() {
            self.apt_sel.next = self.apt_default.val();
        }
        self.apt_eff.d.next = self.apt_sel.val();
        self.rct_eff_m1.d.next = self.rct_sel.val() - 1;
        self.apt_eff_m1.d.next = self.apt_sel.val() - 1;
        self.rct_eff_le1.d.next = self.rct_sel.val() <= 1;
        self.apt_eff_le1.d.next = self.apt_sel.val() <= 1;
        // rct_now = rct_new >= cutoff, without the adder of rct_new in front of the compare.
        if self.rct_cnt.q.val().any() & (self.raw_bit.val() == self.rct_last.q.val()) {
            self.rct_now.next = self.rct_cnt.q.val() >= self.rct_eff_m1.q.val();
        } else {
            self.rct_now.next = self.rct_eff_le1.q.val();
        }
        // Adaptive proportion: occurrences of the window's first sample, this one included.
        if !self.apt_idx.q.val().any() {
            self.apt_new.next = 1.into();
        } else if self.raw_bit.val() == self.apt_ref.q.val() {
            self.apt_new.next = bit_cast::<12, 11>(self.apt_cnt.q.val()) + 1;
        } else {
            self.apt_new.next = bit_cast::<12, 11>(self.apt_cnt.q.val());
        }
        // apt_now = apt_new >= cutoff, likewise.
        if !self.apt_idx.q.val().any() {
            self.apt_now.next = self.apt_eff_le1.q.val();
        } else if self.raw_bit.val() == self.apt_ref.q.val() {
            self.apt_now.next = self.apt_cnt.q.val() >= self.apt_eff_m1.q.val();
        } else {
            self.apt_now.next = self.apt_cnt.q.val() >= self.apt_eff.q.val();
        }
        if self.clear.val() {
            self.rct_cnt.d.next = 0.into();
            self.apt_idx.d.next = 0.into();
            self.rct_fail.d.next = false;
            self.apt_fail.d.next = false;
            self.start_ok.d.next = false;
        } else if self.raw_valid.val() & !self.rct_fail.q.val() & !self.apt_fail.q.val() {
            self.rct_last.d.next = self.raw_bit.val();
            self.rct_cnt.d.next = bit_cast::<8, 9>(self.rct_new.val());
            if !self.apt_idx.q.val().any() {
                self.apt_ref.d.next = self.raw_bit.val();
            }
            self.apt_cnt.d.next = bit_cast::<11, 12>(self.apt_new.val());
            self.apt_idx.d.next = self.apt_idx.q.val() + 1;
            if self.apt_idx.q.val().all() & !self.rct_now.val() & !self.apt_now.val() {
                self.start_ok.d.next = true;
            }
            self.rct_fail.d.next = self.rct_now.val();
            self.apt_fail.d.next = self.apt_now.val();
            self.ovalid.d.next = self.start_ok.q.val() & !self.rct_now.val() & !self.apt_now.val();
        }
        self.out_bit.next = self.obit.q.val();
        self.out_valid.next = self.ovalid.q.val();
        self.failed.next = self.rct_fail.q.val() | self.apt_fail.q.val();
        self.rct_failed.next = self.rct_fail.q.val();
        self.apt_failed.next = self.apt_fail.q.val();
        self.started.next = self.start_ok.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng_model::{
        apt_cutoff, binom_upper_tail, rct_cutoff, HealthIn, HealthModel, APT_CUTOFF_DEFAULT, APT_WINDOW,
        RCT_CUTOFF_DEFAULT,
    };
    use rand::{Rng, SeedableRng};

    #[test]
    fn health_synthesizes() {
        let mut uut = HealthTests::default();
        uut.connect_all();
        yosys_validate("health_tests", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn cutoffs_follow_sp800_90b() {
        assert_eq!(rct_cutoff(1.0, 20), RCT_CUTOFF_DEFAULT);
        assert_eq!(rct_cutoff(0.5, 20), 41);
        assert_eq!(rct_cutoff(1.0, 40), 41);
        assert_eq!(apt_cutoff(1.0, 20), APT_CUTOFF_DEFAULT);
        // The cutoff is the first count whose upper tail is ≤ α.
        let c = APT_CUTOFF_DEFAULT as usize;
        let a = 2f64.powi(-20);
        assert!(binom_upper_tail(APT_WINDOW, 0.5, c) <= a);
        assert!(binom_upper_tail(APT_WINDOW, 0.5, c - 1) > a);
    }

    /// Runs the model over a bit source; returns (failed, rct, apt, tick of failure).
    fn run_model(src: &mut dyn FnMut() -> bool, n: usize, rct: u32, apt: u32) -> (bool, bool, bool, usize) {
        let mut m = HealthModel::default();
        let cfg = HealthIn { rct_cutoff: rct, apt_cutoff: apt, ..Default::default() };
        m.tick(&cfg); // load the cutoff registers
        for t in 0..n {
            m.tick(&HealthIn { raw_bit: src(), raw_valid: true, ..cfg });
            let o = m.outputs();
            if o.failed {
                return (true, o.rct_failed, o.apt_failed, t);
            }
        }
        (false, false, false, n)
    }

    #[test]
    fn triggers_on_stuck_and_biased_not_on_fair() {
        let (rct, apt) = (RCT_CUTOFF_DEFAULT, APT_CUTOFF_DEFAULT);
        // Stuck at 1: the RCT fails on the 21st sample.
        let r = run_model(&mut || true, 10_000, rct, apt);
        assert_eq!(r, (true, true, false, 20));
        // Stuck at 0 after a fair start.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut t = 0;
        let r = run_model(&mut || { t += 1; if t > 5000 { false } else { rng.gen() } }, 10_000, rct, apt);
        assert!(r.0 && r.1 && r.3 < 5000 + 21, "{r:?}");
        // Biased: P(1) = 0.65 keeps runs short enough for the RCT, the APT catches it.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let r = run_model(&mut || rng.gen_bool(0.65), 100_000, rct, apt);
        assert!(r.0 && r.2 && !r.1, "biased 0.65: {r:?}");
        // Fair: 300 k samples (300 APT windows) pass. (With α = 2^-20 the expected number of
        // false alarms in 300 k samples is about 0.3; this seed has none.)
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let r = run_model(&mut || rng.gen(), 300_000, rct, apt);
        assert!(!r.0, "fair source failed: {r:?}");
        // P(1) = 0.6: the APT still catches it within a few windows.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let r = run_model(&mut || rng.gen_bool(0.6), 100_000, rct, apt);
        assert!(r.0 && r.2, "biased 0.6: {r:?}");
    }

    #[test]
    fn clear_restarts_and_startup_window_gates_output() {
        let mut m = HealthModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        m.tick(&HealthIn::default());
        let mut outs = 0;
        for t in 0..3000 {
            m.tick(&HealthIn { raw_bit: rng.gen(), raw_valid: true, ..Default::default() });
            let o = m.outputs();
            assert_eq!(o.started, t >= 1023, "t {t}");
            outs += o.out_valid as usize;
        }
        assert_eq!(outs, 3000 - 1024);
        for _ in 0..30 {
            m.tick(&HealthIn { raw_bit: true, raw_valid: true, ..Default::default() });
        }
        assert!(m.outputs().failed && !m.outputs().out_valid);
        m.tick(&HealthIn { clear: true, ..Default::default() });
        let o = m.outputs();
        assert!(!o.failed && !o.started && !o.out_valid);
    }

    /// The gateware against the model for 9000 ticks: fair, biased and stuck stretches,
    /// gaps in raw_valid, clears, and cutoff changes.
    #[test]
    fn gateware_matches_model() {
        let mut uut = HealthTests::default();
        uut.connect_all();
        let mut model = HealthModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut fails = 0;
        let mut valids = 0;
        let (mut rct_seen, mut apt_seen) = (false, false);
        // Fair source with the default cutoffs (port 0 for the first 1000 ticks), then a stuck
        // stretch, a biased stretch and a fair one with a tight RCT cutoff; failures are
        // cleared a little later.
        let mut run = 0;
        for t in 0..9000usize {
            let raw_valid = rng.gen_bool(0.9);
            // The biased stretch, P(1) = 0.75, has its runs of valid ones cut at 15 so that the
            // APT, not the RCT, catches it.
            let raw_bit = match t {
                3000..=3199 => true,
                3200..=5999 => run < 15 && rng.gen_bool(0.75),
                _ => rng.gen(),
            };
            if raw_valid {
                run = if raw_bit { run + 1 } else { 0 };
            }
            let (rct, apt) = match t {
                0..=999 => (0, 0),
                1000..=3199 => (RCT_CUTOFF_DEFAULT, APT_CUTOFF_DEFAULT),
                3200..=5999 => (RCT_CUTOFF_DEFAULT, 560),
                _ => (9, 600),
            };
            let inp = HealthIn {
                raw_bit,
                raw_valid,
                rct_cutoff: rct,
                apt_cutoff: apt,
                clear: (model.outputs().failed && rng.gen_ratio(1, 20)) || rng.gen_ratio(1, 3000),
            };
            uut.raw_bit.next = inp.raw_bit;
            uut.raw_valid.next = inp.raw_valid;
            uut.rct_cutoff.next = (inp.rct_cutoff as u64).into();
            uut.apt_cutoff.next = (inp.apt_cutoff as u64).into();
            uut.clear.next = inp.clear;
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let o = model.outputs();
            let got = crate::rng_model::HealthOut {
                out_bit: uut.out_bit.val(),
                out_valid: uut.out_valid.val(),
                failed: uut.failed.val(),
                rct_failed: uut.rct_failed.val(),
                apt_failed: uut.apt_failed.val(),
                started: uut.started.val(),
            };
            assert_eq!(got, o, "tick {t}");
            fails += (o.failed && inp.clear) as usize;
            rct_seen |= o.rct_failed;
            apt_seen |= o.apt_failed;
            valids += o.out_valid as usize;
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
            model.tick(&inp);
        }
        assert!(
            fails > 3 && valids > 1000 && rct_seen && apt_seen,
            "coverage: {fails} cleared failures, {valids} outputs, rct {rct_seen} apt {apt_seen}"
        );
    }
}
