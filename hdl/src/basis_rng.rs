//! The random basis generator: per pulse slot, a basis, a bit value and a decoy-intensity
//! class, drawn from a Trivium keystream with programmable probabilities, and recorded.
//!
//! ```text
//!  raw_bit/raw_valid ─► HealthTests ─► 160-bit pool (rotate-XOR) ─┐ (XOR at reseed if mix_enable)
//!  seed_data (host key, IV: 10 × 16 bits) ────────────────────────┴─► Trivium<36> ─► ks[35:0]
//!  slot ─► ks[15:0] ≥ thr_z → basis;  ks[16] → value;  ks[32:17] vs thr_c0/thr_c1 → class
//!       ─► basis/value/intensity/choice_valid (next tick) and a 32-bit record (valid/ready)
//! ```
//!
//! * **Probabilities.** `P(basis = Z = 0) = thr_z / 65536`; class 0 if `r < thr_c0`, else
//!   class 1 if `r < thr_c1`, else class 2, with `r` 16 fresh keystream bits, so
//!   `P(0) = thr_c0 / 65536`, `P(1) = (thr_c1 - thr_c0) / 65536`, `P(2) = 1 - thr_c1 / 65536`
//!   (`thr_c0 ≤ thr_c1`). The value bit is one keystream bit. 33 of the 36 keystream bits
//!   of a tick are used, fresh for every slot, so one slot per tick is possible.
//! * **Entropy mixing.** The health-checked raw bits are folded into a 160-bit pool (rotate
//!   left by one, XOR the bit into bit 0), and at a `reseed` with `mix_enable` the pool's low
//!   80 bits are XORed into the host key and the high 80 bits into the host IV. They are *not*
//!   XORed into the output: the raw source is far slower than one 33-bit choice per tick and
//!   may be biased or correlated (the health tests only catch gross failures), whereas the
//!   keystream of a key the adversary does not know is uniform either way. Key and IV come
//!   in after the `reseed` tick as ten 16-bit chunks on `seed_data`/`seed_valid`
//!   ([`crate::rng_model::seed_chunks`]: key bits `[15:0]` first, then the IV); every chunk
//!   tick XORs the pool's low 16 bits into the chunk (with `mix_enable`) and rotates the pool
//!   right by 16, so ten chunks take pool bits `[15:0]`…`[159:144]` and leave the pool as it
//!   was. A raw bit that passes the health tests in a chunk tick is dropped. With mixing, the
//!   key is unknown to anyone who does not also see the raw source, the host included; the
//!   host key keeps the output unpredictable if the raw source is weak. `pool_ready` says that
//!   ≥ 160 checked bits entered the pool since the last reseed; the host should wait for it
//!   (and reseed periodically; Trivium allows 2^64 bits per key/IV).
//! * **Gating.** A slot gets a choice only when the keystream is ready (seeded and warmed up),
//!   the health tests have not failed, and the record port can take the record (empty, or
//!   being read in this tick). Otherwise `choice_valid` stays low — the transmitter must not
//!   send (or send vacuum) — and `missed` counts the slot; the slot number still advances, so
//!   the host sees the gap in the records.
//! * **Record** (32 bits, [`crate::rng_model::RngRecord`]): `[31:30]` class, `[29]` basis,
//!   `[28]` value, `[27:0]` slot number mod 2^28 (every `slot` strobe since power-on counts).
//!
//! The thresholds are used as they are (in the core they come straight from the register
//! bank); the health cutoffs pass a register in [`HealthTests`]. Cycle model:
//! [`crate::rng_model::BasisRngModel`].

use rust_hdl::prelude::*;

use crate::health::HealthTests;
use crate::rng_model::{
    APT_CUTOFF_BITS, MISSED_BITS, POOL_BITS, RCT_CUTOFF_BITS, RNG_KS_BITS, RNG_RECORD_BITS, SLOT_BITS,
};
use crate::trivium::Trivium;

/// The random basis/value/intensity generator with health tests and choice records.
#[derive(LogicBlock)]
pub struct BasisRng {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Raw entropy sample.
    pub raw_bit: Signal<In, Bit>,
    /// `raw_bit` is a new sample.
    pub raw_valid: Signal<In, Bit>,
    /// Repetition count test cutoff.
    pub rct_cutoff: Signal<In, Bits<RCT_CUTOFF_BITS>>,
    /// Adaptive proportion test cutoff.
    pub apt_cutoff: Signal<In, Bits<APT_CUTOFF_BITS>>,
    /// Clears a latched health failure (and restarts the start-up test).
    pub health_clear: Signal<In, Bit>,
    /// Reseed strobe: start a load of key and IV (XOR the pool if `mix_enable`), then warm up.
    pub reseed: Signal<In, Bit>,
    /// `seed_data` holds the next 16 bits of the host key, then IV (ten ticks after a reseed).
    pub seed_valid: Signal<In, Bit>,
    /// Host key and IV, 16 bits per `seed_valid` tick ([`crate::rng_model::seed_chunks`]).
    pub seed_data: Signal<In, Bits<16>>,
    /// Mix the entropy pool into key and IV at reseed.
    pub mix_enable: Signal<In, Bit>,
    /// `P(basis = Z) · 65536`.
    pub thr_z: Signal<In, Bits<16>>,
    /// `P(class 0) · 65536`.
    pub thr_c0: Signal<In, Bits<16>>,
    /// `P(class 0 or 1) · 65536`.
    pub thr_c1: Signal<In, Bits<16>>,
    /// Pulse slot strobe: draw a choice.
    pub slot: Signal<In, Bit>,
    /// The consumer takes `rec_data` in this tick (when `rec_valid`).
    pub rec_ready: Signal<In, Bit>,
    /// The slot strobed in the previous tick got a valid choice (one tick).
    pub choice_valid: Signal<Out, Bit>,
    /// Basis of that choice: 0 = Z, 1 = X.
    pub basis: Signal<Out, Bit>,
    /// Bit value of that choice.
    pub value: Signal<Out, Bit>,
    /// Intensity class of that choice, 0..=2.
    pub intensity: Signal<Out, Bits<2>>,
    /// `rec_data` holds a record.
    pub rec_valid: Signal<Out, Bit>,
    /// The record.
    pub rec_data: Signal<Out, Bits<RNG_RECORD_BITS>>,
    /// Choices can be made (keystream ready and health tests passing).
    pub ready: Signal<Out, Bit>,
    /// A health test failed (latched until `health_clear`).
    pub health_failed: Signal<Out, Bit>,
    /// The repetition count test failed.
    pub rct_failed: Signal<Out, Bit>,
    /// The adaptive proportion test failed.
    pub apt_failed: Signal<Out, Bit>,
    /// The health start-up test passed.
    pub health_started: Signal<Out, Bit>,
    /// ≥ 160 checked raw bits entered the pool since the last reseed.
    pub pool_ready: Signal<Out, Bit>,
    /// Slots without a valid choice (saturating).
    pub missed: Signal<Out, Bits<MISSED_BITS>>,
    trng: Trivium<RNG_KS_BITS>,
    health: HealthTests,
    pool_lo: DFF<Bits<80>>,
    pool_hi: DFF<Bits<80>>,
    fresh: DFF<Bits<8>>,
    slot_cnt: DFF<Bits<SLOT_BITS>>,
    missed_r: DFF<Bits<MISSED_BITS>>,
    cv: DFF<Bit>,
    basis_r: DFF<Bit>,
    value_r: DFF<Bit>,
    inten_r: DFF<Bits<2>>,
    rv: DFF<Bit>,
    rd: DFF<Bits<RNG_RECORD_BITS>>,
    ok: Signal<Local, Bit>,
    r1: Signal<Local, Bits<16>>,
    r2: Signal<Local, Bits<16>>,
    bsel: Signal<Local, Bit>,
    vsel: Signal<Local, Bit>,
    csel: Signal<Local, Bits<2>>,
    rec_next: Signal<Local, Bits<RNG_RECORD_BITS>>,
    lo_sh: Signal<Local, Bits<80>>,
    hi_sh: Signal<Local, Bits<80>>,
    one: Constant<Bits<8>>,
    sh16: Constant<Bits<8>>,
    sh64: Constant<Bits<8>>,
    pool_full: Constant<Bits<8>>,
}

impl Default for BasisRng {
    fn default() -> Self {
        assert!(RNG_KS_BITS >= 33 && SLOT_BITS == 28 && RNG_RECORD_BITS == 32 && POOL_BITS == 160);
        Self {
            clock: Default::default(),
            raw_bit: Default::default(),
            raw_valid: Default::default(),
            rct_cutoff: Default::default(),
            apt_cutoff: Default::default(),
            health_clear: Default::default(),
            reseed: Default::default(),
            seed_valid: Default::default(),
            seed_data: Default::default(),
            mix_enable: Default::default(),
            thr_z: Default::default(),
            thr_c0: Default::default(),
            thr_c1: Default::default(),
            slot: Default::default(),
            rec_ready: Default::default(),
            choice_valid: Default::default(),
            basis: Default::default(),
            value: Default::default(),
            intensity: Default::default(),
            rec_valid: Default::default(),
            rec_data: Default::default(),
            ready: Default::default(),
            health_failed: Default::default(),
            rct_failed: Default::default(),
            apt_failed: Default::default(),
            health_started: Default::default(),
            pool_ready: Default::default(),
            missed: Default::default(),
            trng: Default::default(),
            health: Default::default(),
            pool_lo: Default::default(),
            pool_hi: Default::default(),
            fresh: Default::default(),
            slot_cnt: Default::default(),
            missed_r: Default::default(),
            cv: Default::default(),
            basis_r: Default::default(),
            value_r: Default::default(),
            inten_r: Default::default(),
            rv: Default::default(),
            rd: Default::default(),
            ok: Default::default(),
            r1: Default::default(),
            r2: Default::default(),
            bsel: Default::default(),
            vsel: Default::default(),
            csel: Default::default(),
            rec_next: Default::default(),
            lo_sh: Default::default(),
            hi_sh: Default::default(),
            one: Constant::new(1u64.to_bits()),
            sh16: Constant::new(16u64.to_bits()),
            sh64: Constant::new(64u64.to_bits()),
            pool_full: Constant::new((POOL_BITS as u64).to_bits()),
        }
    }
}

impl BasisRng {
    /// The keystream word the generator shows now (for tests of the key/IV path).
    pub fn keystream(&self) -> Bits<RNG_KS_BITS> {
        self.trng.ks.val()
    }
}

impl Logic for BasisRng {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, pool_lo, pool_hi, fresh, slot_cnt, missed_r, cv,
            basis_r, value_r, inten_r, rv, rd
        );
        self.trng.clock.next = self.clock.val();
        self.health.clock.next = self.clock.val();
        // Health tests on the raw source.
        self.health.raw_bit.next = self.raw_bit.val();
        self.health.raw_valid.next = self.raw_valid.val();
        self.health.rct_cutoff.next = self.rct_cutoff.val();
        self.health.apt_cutoff.next = self.apt_cutoff.val();
        self.health.clear.next = self.health_clear.val();
        // Entropy pool: rotate left by one across 160 bits, XOR the checked bit into bit 0.
        self.lo_sh.next = self.pool_lo.q.val() << self.one.val();
        self.hi_sh.next = self.pool_hi.q.val() << self.one.val();
        // A chunk tick of a reseed rotates it right by 16 instead (the raw bit is dropped).
        if self.seed_valid.val() {
            self.pool_lo.d.next = (self.pool_lo.q.val() >> self.sh16.val())
                | (bit_cast::<80, 16>(self.pool_hi.q.val().get_bits::<16>(0)) << self.sh64.val());
            self.pool_hi.d.next = (self.pool_hi.q.val() >> self.sh16.val())
                | (bit_cast::<80, 16>(self.pool_lo.q.val().get_bits::<16>(0)) << self.sh64.val());
        } else if self.health.out_valid.val() {
            self.pool_lo.d.next = self
                .lo_sh
                .val()
                .replace_bit(0, self.pool_hi.q.val().get_bit(79) ^ self.health.out_bit.val());
            self.pool_hi.d.next = self.hi_sh.val().replace_bit(0, self.pool_lo.q.val().get_bit(79));
        }
        if self.reseed.val() {
            self.fresh.d.next = 0.into();
        } else if self.health.out_valid.val() & !self.seed_valid.val() & (self.fresh.q.val() != self.pool_full.val()) {
            self.fresh.d.next = self.fresh.q.val() + 1;
        }
        // Keystream generator, reseeded from the host key/IV chunks and the pool.
        self.trng.reseed.next = self.reseed.val();
        self.trng.load.next = self.seed_valid.val();
        if self.mix_enable.val() {
            self.trng.load_data.next = self.seed_data.val() ^ self.pool_lo.q.val().get_bits::<16>(0);
        } else {
            self.trng.load_data.next = self.seed_data.val();
        }
        // A slot gets a choice when the keystream is ready, the source healthy and the
        // record port free (empty or read in this tick).
        self.ok.next = self.slot.val()
            & self.trng.ready.val()
            & !self.health.failed.val()
            & (!self.rv.q.val() | self.rec_ready.val());
        self.trng.advance.next = self.ok.val();
        // The draw.
        self.r1.next = self.trng.ks.val().get_bits::<16>(0);
        self.vsel.next = self.trng.ks.val().get_bit(16);
        self.r2.next = self.trng.ks.val().get_bits::<16>(17);
        self.bsel.next = self.r1.val() >= self.thr_z.val();
        if self.r2.val() < self.thr_c0.val() {
            self.csel.next = 0.into();
        } else if self.r2.val() < self.thr_c1.val() {
            self.csel.next = 1.into();
        } else {
            self.csel.next = 2.into();
        }
        self.rec_next.next = bit_cast::<RNG_RECORD_BITS, SLOT_BITS>(self.slot_cnt.q.val());
        self.rec_next.next = self.rec_next.val().replace_bit(28, self.vsel.val());
        self.rec_next.next = self.rec_next.val().replace_bit(29, self.bsel.val());
        self.rec_next.next = self.rec_next.val().replace_bit(30, self.csel.val().get_bit(0));
        self.rec_next.next = self.rec_next.val().replace_bit(31, self.csel.val().get_bit(1));
        self.cv.d.next = self.ok.val();
        if self.rv.q.val() & self.rec_ready.val() {
            self.rv.d.next = false;
        }
        if self.ok.val() {
            self.basis_r.d.next = self.bsel.val();
            self.value_r.d.next = self.vsel.val();
            self.inten_r.d.next = self.csel.val();
            self.rv.d.next = true;
            self.rd.d.next = self.rec_next.val();
        }
        if self.slot.val() {
            self.slot_cnt.d.next = self.slot_cnt.q.val() + 1;
            if !self.ok.val() & !self.missed_r.q.val().all() {
                self.missed_r.d.next = self.missed_r.q.val() + 1;
            }
        }
        // Outputs.
        self.choice_valid.next = self.cv.q.val();
        self.basis.next = self.basis_r.q.val();
        self.value.next = self.value_r.q.val();
        self.intensity.next = self.inten_r.q.val();
        self.rec_valid.next = self.rv.q.val();
        self.rec_data.next = self.rd.q.val();
        self.ready.next = self.trng.ready.val() & !self.health.failed.val();
        self.health_failed.next = self.health.failed.val();
        self.rct_failed.next = self.health.rct_failed.val();
        self.apt_failed.next = self.health.apt_failed.val();
        self.health_started.next = self.health.started.val();
        self.pool_ready.next = self.fresh.q.val() == self.pool_full.val();
        self.missed.next = self.missed_r.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng_model::{
        apt_cutoff, prob_threshold, rct_cutoff, rng_stats, seed_chunks, BasisRngIn, BasisRngModel, BasisRngOut, RngRecord,
        RngStats,
    };
    use rand::{Rng, SeedableRng};

    #[test]
    fn basis_rng_synthesizes() {
        let mut uut = BasisRng::default();
        uut.connect_all();
        yosys_validate("basis_rng", &generate_verilog(&uut)).unwrap();
    }

    fn outputs(uut: &BasisRng) -> BasisRngOut {
        BasisRngOut {
            choice_valid: uut.choice_valid.val(),
            basis: uut.basis.val(),
            value: uut.value.val(),
            intensity: uut.intensity.val().to_u64() as u8,
            rec_valid: uut.rec_valid.val(),
            rec_data: uut.rec_data.val().to_u64() as u32,
            ready: uut.ready.val(),
            health_failed: uut.health_failed.val(),
            rct_failed: uut.rct_failed.val(),
            apt_failed: uut.apt_failed.val(),
            health_started: uut.health_started.val(),
            pool_ready: uut.pool_ready.val(),
            missed: uut.missed.val().to_u64() as u32,
        }
    }

    /// The gateware against the cycle model, hand-stepped: every output in every tick for
    /// 7000 ticks, through health start-up, pool filling, mixed and unmixed reseeds, a
    /// stuck-source failure and its clear, back-pressure on the record port and changing
    /// probabilities.
    #[test]
    fn gateware_matches_model() {
        let mut uut = BasisRng::default();
        uut.connect_all();
        let mut model = BasisRngModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut key, mut iv): (u128, u128) = (0x1234_5678_9abc_def0_1357, 0x0246_8ace_1357_9bdf_aaaa);
        let mut chunks: Vec<u16> = Vec::new();
        let mut inp = BasisRngIn::default();
        let (mut choices, mut mixed_reseeds, mut failures, mut missed_seen) = (0, 0, 0, false);
        for t in 0..7000usize {
            inp.raw_valid = rng.gen_bool(0.5);
            // A stuck source from 4000 to 4100, cleared at 4300.
            inp.raw_bit = if (4000..4100).contains(&t) { true } else { rng.gen() };
            inp.health_clear = t == 4300;
            inp.reseed = t == 3 || t == 4400 || (t > 200 && rng.gen_ratio(1, 900));
            inp.mix_enable = t > 2500;
            if inp.reseed && rng.gen_bool(0.5) {
                key = rng.gen::<u128>() & ((1 << 80) - 1);
                iv = rng.gen::<u128>() & ((1 << 80) - 1);
            }
            // Key and IV chunks after a reseed, with gaps now and then.
            if inp.reseed {
                chunks = seed_chunks(key, iv).into_iter().rev().collect();
            }
            inp.seed_valid = !inp.reseed && !chunks.is_empty() && rng.gen_ratio(7, 8);
            inp.seed_data = if inp.seed_valid { chunks.pop().unwrap() } else { rng.gen() };
            if t % 1000 == 0 {
                inp.thr_z = rng.gen();
                let (a, b): (u16, u16) = (rng.gen(), rng.gen());
                inp.thr_c0 = a.min(b);
                inp.thr_c1 = a.max(b);
            }
            inp.slot = rng.gen_bool(0.7);
            inp.rec_ready = rng.gen_bool(0.8);
            uut.raw_bit.next = inp.raw_bit;
            uut.raw_valid.next = inp.raw_valid;
            uut.rct_cutoff.next = (inp.rct_cutoff as u64).into();
            uut.apt_cutoff.next = (inp.apt_cutoff as u64).into();
            uut.health_clear.next = inp.health_clear;
            uut.seed_valid.next = inp.seed_valid;
            uut.seed_data.next = (inp.seed_data as u64).into();
            uut.reseed.next = inp.reseed;
            uut.mix_enable.next = inp.mix_enable;
            uut.thr_z.next = (inp.thr_z as u64).into();
            uut.thr_c0.next = (inp.thr_c0 as u64).into();
            uut.thr_c1.next = (inp.thr_c1 as u64).into();
            uut.slot.next = inp.slot;
            uut.rec_ready.next = inp.rec_ready;
            uut.clock.next = Clock::from(false);
            simulate(&mut uut, 1000);
            let mo = model.outputs();
            assert_eq!(outputs(&uut), mo, "tick {t}");
            choices += mo.choice_valid as usize;
            mixed_reseeds += (inp.reseed && inp.mix_enable && mo.pool_ready) as usize;
            failures += (mo.health_failed && inp.health_clear) as usize;
            missed_seen |= mo.missed > 0 && mo.ready;
            uut.clock.next = Clock::from(true);
            simulate(&mut uut, 1000);
            model.tick(&inp);
        }
        assert!(choices > 2000 && mixed_reseeds >= 1 && failures == 1 && missed_seen, "coverage");
    }

    /// Records of `n` slots (one per tick, record port always ready) from the model after a
    /// mixed reseed, with the health tests at α = 2^-40.
    fn records(n: usize, thr: (u16, u16, u16), tweak: impl FnOnce(&mut BasisRngModel)) -> Vec<RngRecord> {
        let mut m = BasisRngModel::default();
        tweak(&mut m);
        let mut src = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        let mut inp = BasisRngIn {
            rct_cutoff: rct_cutoff(1.0, 40),
            apt_cutoff: apt_cutoff(1.0, 40),
            mix_enable: true,
            thr_z: thr.0,
            thr_c0: thr.1,
            thr_c1: thr.2,
            ..Default::default()
        };
        // Fill the pool (start-up window + 160 bits), then reseed.
        while !m.outputs().pool_ready {
            inp.raw_bit = src.gen();
            inp.raw_valid = true;
            m.tick(&inp);
        }
        inp.reseed = true;
        m.tick(&inp);
        inp.reseed = false;
        for d in seed_chunks(0x0bad_5eed_c0ff_ee00_1234, 1) {
            m.tick(&BasisRngIn { seed_valid: true, seed_data: d, ..inp });
        }
        inp.slot = true;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            inp.raw_bit = src.gen();
            inp.raw_valid = src.gen_ratio(1, 16);
            m.tick(&inp);
            let o = m.outputs();
            assert!(!o.health_failed);
            if o.rec_valid && o.choice_valid {
                out.push(RngRecord::decode(o.rec_data));
            }
        }
        // Slots are consecutive from the first choice.
        assert!(out.windows(2).all(|w| w[1].slot == (w[0].slot + 1) & ((1 << 28) - 1)));
        out
    }

    const N: usize = 1_000_000;

    fn report(name: &str, s: &RngStats) {
        println!(
            "{name}: n={} p_z={:.5} z_basis={:.2} z_value={:.2} r_basis={:.5} r_value={:.5} r_class={:.5} \
             r_bv={:.5} (bound {:.5}) classes={:?} chi2={:.2} lc={}/{} -> {:?}",
            s.n,
            s.p_z,
            s.z_basis,
            s.z_value,
            s.r_basis,
            s.r_value,
            s.r_class,
            s.r_basis_value,
            s.r_bound(),
            s.class_counts,
            s.chi2_class,
            s.lc_value,
            s.lc_n,
            s.failures()
        );
    }

    #[test]
    fn statistics_pass_for_bb84_and_decoy_settings() {
        for (name, pz, c0, c1) in [("BB84 0.5 / 0.5,0.25,0.25", 0.5, 0.5, 0.75), ("decoy 0.9 / 0.7,0.2,0.1", 0.9, 0.7, 0.9)]
        {
            let thr = (prob_threshold(pz), prob_threshold(c0), prob_threshold(c1));
            let recs = records(N, thr, |_| {});
            let s = rng_stats(&recs, thr.0, thr.1, thr.2);
            report(name, &s);
            assert!(s.failures().is_empty(), "{name}: {:?}", s.failures());
        }
    }

    #[test]
    fn linear_complexity_test_works() {
        use crate::rng_model::linear_complexity;
        // x^7 + x^6 + 1 LFSR output: complexity 7.
        let mut st = 1u32;
        let seq: Vec<u8> = (0..500)
            .map(|_| {
                let b = (st & 1) as u8;
                let fb = (st ^ (st >> 1)) & 1;
                st = (st >> 1) | (fb << 6);
                b
            })
            .collect();
        assert_eq!(linear_complexity(&seq), 7);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let seq: Vec<u8> = (0..4000).map(|_| rng.gen::<bool>() as u8).collect();
        let l = linear_complexity(&seq);
        assert!((l as i64 - 2000).abs() <= 3, "{l}");
    }

    #[test]
    fn statistics_catch_broken_generators() {
        let thr = (prob_threshold(0.5), prob_threshold(0.7), prob_threshold(0.9));
        // A biased threshold: programmed 0.51 / 0.71, claimed 0.5 / 0.7.
        let recs = records(N, (prob_threshold(0.51), prob_threshold(0.71), thr.2), |_| {});
        let s = rng_stats(&recs, thr.0, thr.1, thr.2);
        report("biased threshold", &s);
        let f = s.failures();
        assert!(f.iter().any(|x| x.starts_with("basis bias")) && f.iter().any(|x| x.starts_with("class chi2")), "{f:?}");
        // The keystream replaced by short LFSRs.
        for bits in [7, 11, 16] {
            let recs = records(N, thr, |m| m.lfsr_bits = bits);
            let s = rng_stats(&recs, thr.0, thr.1, thr.2);
            report(&format!("{bits}-bit LFSR"), &s);
            assert!(!s.failures().is_empty(), "{bits}-bit LFSR passed");
        }
        // Trivium with a state bit stuck at 0.
        for stuck in [1, 94, 178] {
            let recs = records(N, thr, |m| m.trng.set_stuck(stuck));
            let s = rng_stats(&recs, thr.0, thr.1, thr.2);
            report(&format!("Trivium s{stuck} stuck at 0"), &s);
            assert!(!s.failures().is_empty(), "stuck s{stuck} passed");
        }
    }
}
