//! Synthetic input records from simple physical models, for trying the two-station flow
//! without hardware (`qkd distill-gen`) and for tests.
//!
//! **Prepare-and-measure** ([`prepare_measure`]): per slot Alice picks an intensity class with
//! [`PrepareMeasureModel::probabilities`], a basis (Z with probability `p_z`) and a uniform bit.
//! The number of photons reaching Bob's detectors is Poisson with mean
//! `transmittance · μ_k` (or, with `single_photon`, one photon with probability
//! `transmittance`). Bob's basis choice is passive: each photon independently goes to the Z
//! pair of detectors with probability `p_z`, else to the X pair. In the matching basis a photon
//! hits the correct detector except with probability `misalignment` (≈ the QBER at high
//! signal-to-noise); in the other basis it hits either detector with probability ½. Each slot
//! has probability 4·`dark_count` of one dark click on a uniformly chosen detector (two dark
//! clicks in a slot, of order `dark_count`², are neglected). Several photons, or a photon and a
//! dark click, give multi-click records, which exercise the squashing rules.
//!
//! **Entanglement-based** ([`entangled`]): one pair per period of `period_ticks`; each
//! station detects its photon with its transmittance, measures it in Z with probability `p_z`;
//! in equal bases the outcomes agree (Φ⁺) except with probability `misalignment`; dark clicks as
//! above. Bob's timestamps carry `offset_ticks` and a uniform jitter of ±`jitter_ticks`.

use rand::Rng;

use crate::distill::sifting::{AliceRecords, Basis, Detection};

/// Parameters of the prepare-and-measure model (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrepareMeasureModel {
    /// Number of slots (pulses).
    pub slots: u64,
    /// Mean photon numbers of the intensity classes (photons per pulse).
    pub intensities: [f64; 3],
    /// Probabilities of the classes (sum 1).
    pub probabilities: [f64; 3],
    /// Probability of the Z basis for Alice's choice and Bob's passive split.
    pub p_z: f64,
    /// Overall transmittance, channel × detector efficiency (probability per photon).
    pub transmittance: f64,
    /// Probability that a photon measured in the right basis hits the wrong detector.
    pub misalignment: f64,
    /// Dark-count probability per detector per slot.
    pub dark_count: f64,
    /// Ideal single-photon source: exactly one photon per pulse, all in class 0.
    pub single_photon: bool,
}

impl Default for PrepareMeasureModel {
    fn default() -> Self {
        Self {
            slots: 10_000_000,
            intensities: [0.5, 0.15, 0.0],
            probabilities: [0.5, 0.3, 0.2],
            p_z: 0.5,
            transmittance: 0.2,
            misalignment: 0.01,
            dark_count: 1e-6,
            single_photon: false,
        }
    }
}

/// Parameters of the entanglement-based model (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntangledModel {
    /// Number of emitted pairs.
    pub pairs: u64,
    /// Time between pairs (ticks); must exceed 2·`jitter_ticks` + 1.
    pub period_ticks: u64,
    /// Transmittance to Alice's and Bob's detectors (probability per photon).
    pub transmittance: [f64; 2],
    /// Probability of Z for each station's measurement.
    pub p_z: f64,
    /// Probability of unequal outcomes in equal bases.
    pub misalignment: f64,
    /// Dark-count probability per detector per period.
    pub dark_count: f64,
    /// Bob's timing jitter, uniform in ±jitter (ticks).
    pub jitter_ticks: u64,
    /// Bob's clock offset (ticks, ≥ 0).
    pub offset_ticks: u64,
}

impl Default for EntangledModel {
    fn default() -> Self {
        Self {
            pairs: 1_000_000,
            period_ticks: 100,
            transmittance: [0.5, 0.5],
            p_z: 0.5,
            misalignment: 0.02,
            dark_count: 1e-5,
            jitter_ticks: 2,
            offset_ticks: 1000,
        }
    }
}

fn poisson<R: Rng>(lambda: f64, rng: &mut R) -> u32 {
    // Inversion; the means here are below a few photons.
    let u: f64 = rng.gen();
    let mut p = (-lambda).exp();
    let mut cdf = p;
    let mut k = 0u32;
    while u > cdf && k < 64 {
        k += 1;
        p *= lambda / k as f64;
        cdf += p;
    }
    k
}

fn click(basis: Basis, bit: bool) -> u8 {
    1 << (2 * basis as u8 + bit as u8)
}

fn dark<R: Rng>(p: f64, rng: &mut R) -> u8 {
    if p > 0.0 && rng.gen_bool((4.0 * p).min(1.0)) {
        1 << rng.gen_range(0..4)
    } else {
        0
    }
}

/// Generates Alice's prepared states and Bob's detection records.
pub fn prepare_measure<R: Rng>(m: &PrepareMeasureModel, rng: &mut R) -> (AliceRecords, Vec<Detection>) {
    let mut alice = AliceRecords::new(0);
    let mut bob = Vec::new();
    let cdf = [m.probabilities[0], m.probabilities[0] + m.probabilities[1]];
    for slot in 0..m.slots {
        let k = if m.single_photon {
            0
        } else {
            let u: f64 = rng.gen();
            (u >= cdf[0]) as u8 + (u >= cdf[1]) as u8
        };
        let basis = Basis::from_bit(!rng.gen_bool(m.p_z));
        let value: bool = rng.gen();
        alice.push(basis, value, k).expect("class below 3");
        let photons = if m.single_photon {
            rng.gen_bool(m.transmittance) as u32
        } else {
            poisson(m.transmittance * m.intensities[k as usize], rng)
        };
        let mut mask = dark(m.dark_count, rng);
        for _ in 0..photons {
            let arm = Basis::from_bit(!rng.gen_bool(m.p_z));
            let bit = if arm == basis { value ^ rng.gen_bool(m.misalignment) } else { rng.gen() };
            mask |= click(arm, bit);
        }
        if mask != 0 {
            bob.push(Detection { slot, clicks: mask });
        }
    }
    (alice, bob)
}

/// Generates Alice's and Bob's detection records (timestamps in ticks).
pub fn entangled<R: Rng>(m: &EntangledModel, rng: &mut R) -> (Vec<Detection>, Vec<Detection>) {
    assert!(m.period_ticks > 2 * m.jitter_ticks + 1, "period must exceed twice the jitter");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let base = m.period_ticks + m.jitter_ticks;
    for i in 0..m.pairs {
        let t = base + i * m.period_ticks;
        let value: bool = rng.gen();
        let ba = Basis::from_bit(!rng.gen_bool(m.p_z));
        let bb = Basis::from_bit(!rng.gen_bool(m.p_z));
        let a_det = rng.gen_bool(m.transmittance[0]);
        let b_det = rng.gen_bool(m.transmittance[1]);
        let mut ma = dark(m.dark_count, rng);
        if a_det {
            ma |= click(ba, value);
        }
        let mut mb = dark(m.dark_count, rng);
        if b_det {
            let bit = if a_det && ba == bb { value ^ rng.gen_bool(m.misalignment) } else if ba == bb { value } else { rng.gen() };
            mb |= click(bb, bit);
        }
        if ma != 0 {
            a.push(Detection { slot: t, clicks: ma });
        }
        if mb != 0 {
            let jitter = rng.gen_range(0..=2 * m.jitter_ticks) as i64 - m.jitter_ticks as i64;
            b.push(Detection { slot: (t as i64 + jitter) as u64 + m.offset_ticks, clicks: mb });
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn detection_rate_and_multi_clicks() {
        let m = PrepareMeasureModel { slots: 200_000, ..Default::default() };
        let (a, b) = prepare_measure(&m, &mut ChaCha20Rng::seed_from_u64(1));
        assert_eq!(a.len(), 200_000);
        // Expected detection probability ≈ Σ p_k (1 − e^{−η μ_k}) + 4 d ≈ 0.05645.
        let rate = b.len() as f64 / 200_000.0;
        assert!((rate - 0.05645).abs() < 0.003, "rate {rate}");
        let multi = b.iter().filter(|d| d.clicks.count_ones() > 1).count();
        assert!(multi > 0, "multi-photon pulses give some multi-clicks");
        assert!(b.windows(2).all(|w| w[0].slot < w[1].slot));
    }

    #[test]
    fn entangled_times_are_ordered() {
        let m = EntangledModel { pairs: 10_000, ..Default::default() };
        let (a, b) = entangled(&m, &mut ChaCha20Rng::seed_from_u64(2));
        assert!(a.windows(2).all(|w| w[0].slot < w[1].slot));
        assert!(b.windows(2).all(|w| w[0].slot < w[1].slot));
        assert!((a.len() as f64 - 5000.0).abs() < 300.0);
    }
}
