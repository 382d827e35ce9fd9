//! Parameter estimation: error rates from disclosed bits, with a statistical upper bound and
//! an abort threshold.
//!
//! Two sources of disclosed bits:
//! * a **random sample of the key** (positions chosen by [`sample_positions`] from a 32-byte
//!   seed that Alice draws after Bob's bits are fixed and sends over the authenticated
//!   channel); the sampled bits are disclosed and removed from the key ([`split_sample`]);
//! * the **test basis** of the asymmetric protocol (all of it is disclosed), counted per
//!   intensity class by [`count_errors_by_class`] for the decoy analysis.
//!
//! The bound is the one-sided Clopper–Pearson upper limit of a binomial proportion at
//! confidence 1 − ε_PE ([`clopper_pearson_upper`]); it is used to decide whether to abort and to
//! size error correction. The security statement of the final key length itself comes from
//! [`super::finite_key`], which applies its own (sampling-without-replacement) bounds.
//!
//! **Abort rule:** a run aborts when the *upper bound* of an error rate exceeds the
//! configured threshold ([`ErrorEstimate::check`]), so a tiny sample cannot pass by luck.

use bitvec::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::key::SecretBits;
use super::sifting::INTENSITY_CLASSES;

/// Errors of parameter estimation.
#[derive(Debug, Error, PartialEq)]
pub enum EstimationError {
    /// The error rate's upper bound is above the abort threshold.
    #[error(
        "{what} QBER too high, aborting: measured {:.3}% ({errors} errors in {sample} bits), \
         upper bound {:.3}% at confidence 1-{eps:.1e}, abort threshold {:.3}%",
        measured * 100.0, upper * 100.0, threshold * 100.0
    )]
    QberAboveThreshold {
        /// Which estimate ("key-sample", "test-basis X").
        what: String,
        /// Errors found.
        errors: u64,
        /// Bits compared.
        sample: u64,
        /// errors / sample.
        measured: f64,
        /// Clopper–Pearson upper bound.
        upper: f64,
        /// Failure probability of the bound.
        eps: f64,
        /// The abort threshold.
        threshold: f64,
    },
    /// Compared strings of different lengths, or classes not matching the bits.
    #[error("cannot compare {what}: lengths {a} and {b} differ")]
    LengthMismatch {
        /// What was compared.
        what: &'static str,
        /// First length.
        a: usize,
        /// Second length.
        b: usize,
    },
    /// A sample larger than the key.
    #[error("sample of {k} bits requested from a key of {n} bits")]
    SampleTooLarge {
        /// Key length (bits).
        n: usize,
        /// Sample size (bits).
        k: usize,
    },
    /// A parameter outside its range.
    #[error("invalid estimation parameter: {0}")]
    BadParam(String),
}

/// Parameters of estimation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EstimationParams {
    /// Fraction of the key bits disclosed as a random sample (0..1). In the asymmetric
    /// protocol it may be 0 (the test basis alone decides the abort).
    pub sample_fraction: f64,
    /// Failure probability ε_PE of each upper bound (probability).
    pub eps_pe: f64,
    /// Abort when an upper bound exceeds this error rate (probability, e.g. 0.11).
    pub max_qber: f64,
}

impl Default for EstimationParams {
    fn default() -> Self {
        Self { sample_fraction: 0.05, eps_pe: 1e-10, max_qber: 0.11 }
    }
}

impl EstimationParams {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), EstimationError> {
        if !(0.0..1.0).contains(&self.sample_fraction) {
            return Err(EstimationError::BadParam(format!(
                "sample_fraction {} must be in [0, 1)",
                self.sample_fraction
            )));
        }
        if !(self.eps_pe > 0.0 && self.eps_pe < 1.0) {
            return Err(EstimationError::BadParam(format!("eps_pe {} must be in (0, 1)", self.eps_pe)));
        }
        if !(self.max_qber > 0.0 && self.max_qber <= 0.5) {
            return Err(EstimationError::BadParam(format!("max_qber {} must be in (0, 0.5]", self.max_qber)));
        }
        Ok(())
    }

    /// Number of bits to sample from a key of `n` bits (rounded to nearest).
    pub fn sample_size(&self, n: usize) -> usize {
        ((n as f64 * self.sample_fraction).round() as usize).min(n)
    }
}

/// One-sided Clopper–Pearson upper bound on a binomial proportion: the largest `p` with
/// P[Bin(n, p) ≤ errors] ≥ ε, i.e. the true rate is below it with probability ≥ 1 − ε.
/// Returns 1 for `n == 0` (nothing known).
pub fn clopper_pearson_upper(errors: u64, n: u64, eps: f64) -> f64 {
    if n == 0 || errors >= n {
        return 1.0;
    }
    let (e, nf) = (errors as f64, n as f64);
    // P[X ≤ e] = I_{1-p}(n - e, e + 1), decreasing in p; bisect for the root of cdf(p) = ε.
    let cdf = |p: f64| statrs::function::beta::beta_reg(nf - e, e + 1.0, 1.0 - p);
    let (mut lo, mut hi) = (e / nf, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) > eps {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    hi
}

/// An error-rate estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEstimate {
    /// Errors found.
    pub errors: u64,
    /// Bits compared.
    pub sample: u64,
    /// errors / sample (0 for an empty sample).
    pub rate: f64,
    /// Clopper–Pearson upper bound at confidence 1 − `eps` (1 for an empty sample).
    pub upper: f64,
    /// Failure probability of the bound.
    pub eps: f64,
}

impl ErrorEstimate {
    /// From counts.
    pub fn new(errors: u64, sample: u64, eps: f64) -> Self {
        let rate = if sample == 0 { 0.0 } else { errors as f64 / sample as f64 };
        Self { errors, sample, rate, upper: clopper_pearson_upper(errors, sample, eps), eps }
    }

    /// Fails with [`EstimationError::QberAboveThreshold`] (naming `what`) when the upper
    /// bound exceeds `threshold`.
    pub fn check(&self, threshold: f64, what: &str) -> Result<(), EstimationError> {
        if self.upper > threshold {
            return Err(EstimationError::QberAboveThreshold {
                what: what.to_string(),
                errors: self.errors,
                sample: self.sample,
                measured: self.rate,
                upper: self.upper,
                eps: self.eps,
                threshold,
            });
        }
        Ok(())
    }
}

/// `k` distinct positions in `0..n`, sorted, drawn uniformly from the shared `seed`
/// (ChaCha20 stream); both stations get the same positions.
pub fn sample_positions(n: usize, k: usize, seed: [u8; 32]) -> Result<Vec<usize>, EstimationError> {
    if k > n {
        return Err(EstimationError::SampleTooLarge { n, k });
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut pos = rand::seq::index::sample(&mut rng, n, k).into_vec();
    pos.sort_unstable();
    Ok(pos)
}

/// Splits `key` into (the bits not at `positions`, the bits at `positions`), both in order.
/// `positions` must be sorted, distinct and below `key.len()`.
pub fn split_sample(key: &SecretBits, positions: &[usize]) -> Result<(SecretBits, SecretBits), EstimationError> {
    let mut mask = bitvec![u64, Lsb0; 0; key.len()];
    for &p in positions {
        if p >= key.len() || mask[p] {
            return Err(EstimationError::BadParam(format!(
                "sample position {p} repeated or outside a key of {} bits",
                key.len()
            )));
        }
        mask.set(p, true);
    }
    let mut rest = SecretBits::new();
    let mut sample = SecretBits::new();
    for (i, b) in key.as_bitslice().iter().by_vals().enumerate() {
        if mask[i] {
            sample.push(b);
        } else {
            rest.push(b);
        }
    }
    Ok((rest, sample))
}

/// Error counts per intensity class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassErrors {
    /// Errors per class (m_k).
    pub errors: [u64; INTENSITY_CLASSES],
    /// Bits compared per class (n_k).
    pub bits: [u64; INTENSITY_CLASSES],
}

impl ClassErrors {
    /// Total errors.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Total bits compared.
    pub fn total_bits(&self) -> u64 {
        self.bits.iter().sum()
    }

    /// The pooled estimate over all classes.
    pub fn estimate(&self, eps: f64) -> ErrorEstimate {
        ErrorEstimate::new(self.total_errors(), self.total_bits(), eps)
    }
}

/// Compares `a` and `b` bit by bit, counting errors per intensity class (`classes[i]` is the
/// class of bit `i`, in 0..=2).
pub fn count_errors_by_class(
    a: &SecretBits,
    b: &SecretBits,
    classes: &[u8],
) -> Result<ClassErrors, EstimationError> {
    if a.len() != b.len() {
        return Err(EstimationError::LengthMismatch { what: "disclosed bits", a: a.len(), b: b.len() });
    }
    if classes.len() != a.len() {
        return Err(EstimationError::LengthMismatch { what: "bits and intensity classes", a: a.len(), b: classes.len() });
    }
    let mut out = ClassErrors::default();
    for (i, &k) in classes.iter().enumerate() {
        let k = k as usize;
        if k >= INTENSITY_CLASSES {
            return Err(EstimationError::BadParam(format!("intensity class {k} at bit {i}")));
        }
        out.bits[k] += 1;
        out.errors[k] += (a.get(i) != b.get(i)) as u64;
    }
    Ok(out)
}

/// Number of differing bits between two disclosed strings of equal length.
pub fn count_errors(a: &SecretBits, b: &SecretBits) -> Result<u64, EstimationError> {
    if a.len() != b.len() {
        return Err(EstimationError::LengthMismatch { what: "disclosed bits", a: a.len(), b: b.len() });
    }
    Ok(a.hamming_distance(b) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn clopper_pearson_known_values() {
        // Zero errors: upper = 1 - eps^(1/n).
        let u = clopper_pearson_upper(0, 1000, 0.05);
        assert!((u - (1.0 - 0.05f64.powf(1.0 / 1000.0))).abs() < 1e-9, "{u}");
        // Reference values from a direct binomial-sum bisection (exact rational arithmetic):
        // 10/100 at 95% → 0.163718; 3000/100000 at 1-1e-10 → 0.033566.
        let u = clopper_pearson_upper(10, 100, 0.05);
        assert!((u - 0.163_718).abs() < 1e-5, "{u}");
        let big = clopper_pearson_upper(3000, 100_000, 1e-10);
        assert!((big - 0.033_566).abs() < 1e-5, "{big}");
        assert_eq!(clopper_pearson_upper(0, 0, 0.1), 1.0);
        assert_eq!(clopper_pearson_upper(5, 5, 0.1), 1.0);
    }

    /// The bound holds: over many binomial draws, the true rate exceeds it in about ε of them.
    #[test]
    fn bound_coverage() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (p, n, eps) = (0.05, 400u64, 0.1);
        let trials = 2000;
        let mut misses = 0;
        for _ in 0..trials {
            let e = (0..n).filter(|_| rng.gen_bool(p)).count() as u64;
            misses += (clopper_pearson_upper(e, n, eps) < p) as u32;
        }
        // Clopper–Pearson is conservative: misses ≤ ε·trials (+ slack).
        assert!(misses <= 230, "misses {misses}");
        assert!(misses > 50, "bound suspiciously loose: {misses}");
    }

    #[test]
    fn abort_message_names_values() {
        let est = ErrorEstimate::new(150, 1000, 1e-10);
        let err = est.check(0.11, "key-sample").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("measured 15.000%"), "{msg}");
        assert!(msg.contains("threshold 11.000%"), "{msg}");
        assert!(msg.contains("upper bound"), "{msg}");
        assert!(ErrorEstimate::new(20, 10_000, 1e-10).check(0.11, "x").is_ok());
        // A clean but tiny sample still aborts: its upper bound is large.
        assert!(ErrorEstimate::new(0, 10, 1e-10).check(0.11, "x").is_err());
    }

    #[test]
    fn sampling_is_shared_and_removes_bits() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let bits: Vec<bool> = (0..5000).map(|_| rng.gen()).collect();
        let key = SecretBits::from_bools(&bits);
        let seed = [9u8; 32];
        let pos = sample_positions(key.len(), 250, seed).unwrap();
        assert_eq!(pos, sample_positions(key.len(), 250, seed).unwrap());
        assert_eq!(pos.len(), 250);
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
        let (rest, sample) = split_sample(&key, &pos).unwrap();
        assert_eq!(rest.len(), 4750);
        assert_eq!(sample.len(), 250);
        for (j, &p) in pos.iter().enumerate() {
            assert_eq!(sample.get(j), bits[p]);
        }
        assert!(sample_positions(10, 11, seed).is_err());
        assert!(split_sample(&key, &[5000]).is_err());
    }

    #[test]
    fn errors_by_class() {
        let a = SecretBits::from_bools(&[true, true, false, false, true]);
        let b = SecretBits::from_bools(&[true, false, false, true, true]);
        let c = count_errors_by_class(&a, &b, &[0, 0, 1, 2, 2]).unwrap();
        assert_eq!(c.errors, [1, 0, 1]);
        assert_eq!(c.bits, [2, 1, 2]);
        assert_eq!(c.estimate(0.01).errors, 2);
        assert!(count_errors_by_class(&a, &b, &[0]).is_err());
        assert_eq!(count_errors(&a, &b).unwrap(), 2);
    }

    #[test]
    fn params_validate() {
        assert!(EstimationParams::default().validate().is_ok());
        assert!(EstimationParams { sample_fraction: 1.0, ..Default::default() }.validate().is_err());
        assert!(EstimationParams { eps_pe: 0.0, ..Default::default() }.validate().is_err());
        assert!(EstimationParams { max_qber: 0.6, ..Default::default() }.validate().is_err());
        assert_eq!(EstimationParams::default().sample_size(1000), 50);
    }
}
