//! Finite-key secret key length: how many bits privacy amplification may output.
//!
//! Two analyses, both composable and valid against general (coherent) attacks:
//!
//! * [`bb84_key_length`]: single-photon BB84 / entanglement-based BBM92, after
//!   M. Tomamichel, C. C. W. Lim, N. Gisin, R. Renner, "Tight finite-key analysis for quantum
//!   cryptography", Nat. Commun. 3, 634 (2012), Eq. (2) and Supplementary Theorem 2.
//! * [`decoy_key_length`]: decoy-state BB84 with one signal and two decoy intensities, after
//!   C. C. W. Lim, M. Curty, N. Walenta, F. Xu, H. Zbinden, "Concise security bounds for
//!   practical decoy-state quantum key distribution", Phys. Rev. A 89, 022307 (2014), Eqs. (1)–(5).
//!
//! The formulas, their sources and the split of the ε budget are written out in
//! `docs/finite-key.md`.
//!
//! # What the length covers
//! The returned length ℓ already subtracts the error-correction leakage (`leak_ec_bits`) and the
//! verification tag (see `verify_tag_bits`). It does **not** subtract the key consumed to
//! authenticate the classical channel (the MAC key of [`super::auth`]): the caller subtracts that
//! from ℓ before feeding the length to [`super::toeplitz`], or replenishes its MAC key pool out of
//! the ℓ bits.
//!
//! # Verification tag
//! Both papers account for a verification hash of ⌈log2(1/ε_cor)⌉ bits by the term
//! log2(2/ε_cor). When the real tag is longer ([`super::verify`] uses whole 64-bit evaluations),
//! pass its length as `verify_tag_bits`: the term becomes `max(verify_tag_bits, log2(2/ε_cor))`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors for invalid finite-key inputs.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FiniteKeyError {
    /// A security parameter is not a probability strictly between 0 and 1.
    #[error("{name} must lie strictly between 0 and 1, got {value}")]
    InvalidEpsilon {
        /// Which parameter (`eps_sec` or `eps_cor`).
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A sample size that must be positive is zero.
    #[error("{name} must be at least 1, got 0")]
    EmptySample {
        /// Which count.
        name: &'static str,
    },
    /// An error rate is not a probability in [0, 1].
    #[error("{name} must lie in [0, 1], got {value}")]
    InvalidRate {
        /// Which rate.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// The intensities do not satisfy μ1 > μ2 + μ3, μ2 > μ3 ≥ 0 (all finite).
    #[error(
        "decoy intensities must satisfy mu1 > mu2 + mu3 and mu2 > mu3 >= 0 (mean photon numbers), \
         got mu1 = {0}, mu2 = {1}, mu3 = {2}"
    )]
    InvalidIntensities(f64, f64, f64),
    /// The intensity probabilities are not positive or do not sum to 1.
    #[error("intensity probabilities must be positive and sum to 1, got {0:?}")]
    InvalidProbabilities([f64; 3]),
    /// More errors than detections for some intensity.
    #[error("intensity {index}: {errors} errors exceed the {detections} detections")]
    ErrorsExceedDetections {
        /// Intensity index (0 = signal μ1, 1 = decoy μ2, 2 = weak decoy μ3).
        index: usize,
        /// Errors given.
        errors: u64,
        /// Detections given.
        detections: u64,
    },
}

/// Binary entropy h(x) = −x log2 x − (1−x) log2(1−x) (bits), taken as 1 for x ≥ 1/2.
///
/// Capping at 1 is what the bounds need: h(Q + μ) and h(φ) bound a max-entropy per bit, which
/// never exceeds 1, so an error rate past 1/2 simply leaves no key.
pub fn binary_entropy(x: f64) -> f64 {
    if x <= 0.0 {
        0.0
    } else if x >= 0.5 {
        1.0
    } else {
        -x * x.log2() - (1.0 - x) * (1.0 - x).log2()
    }
}

fn check_eps(name: &'static str, value: f64) -> Result<(), FiniteKeyError> {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(FiniteKeyError::InvalidEpsilon { name, value })
    }
}

/// Cost of error verification (bits): `max(verify_tag_bits, log2(2/ε_cor))`.
fn correctness_cost_bits(eps_cor: f64, verify_tag_bits: u64) -> f64 {
    (2.0 / eps_cor).log2().max(verify_tag_bits as f64)
}

/// ⌊raw⌋ clamped to 0 (bits).
fn floor_length(raw: f64) -> u64 {
    if raw.is_finite() && raw > 0.0 {
        raw.floor() as u64
    } else {
        0
    }
}

/// Inputs of the single-photon BB84 / BBM92 bound (Tomamichel et al. 2012).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bb84Input {
    /// Raw key block size n: sifted bits in the key basis that enter reconciliation (bits).
    pub n: u64,
    /// Parameter-estimation sample size k: sifted bits in the other basis whose errors were
    /// counted (bits).
    pub k: u64,
    /// Tolerated error rate Q_tol on the k estimation bits (probability). The protocol must
    /// abort when the observed rate exceeds it.
    pub q_tol: f64,
    /// Secrecy parameter ε_sec (probability).
    pub eps_sec: f64,
    /// Correctness parameter ε_cor (probability), as used for [`super::verify`].
    pub eps_cor: f64,
    /// Bits disclosed by error correction, leak_EC (bits).
    pub leak_ec_bits: u64,
    /// Length of the verification tag actually sent (bits); 0 to use log2(2/ε_cor).
    pub verify_tag_bits: u64,
}

/// Result of [`bb84_key_length`], with the intermediate quantities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bb84KeyLength {
    /// Statistical deviation μ added to Q_tol (probability).
    pub mu: f64,
    /// h(Q_tol + μ): bound on the phase-error entropy per key bit (bits per bit).
    pub phase_entropy: f64,
    /// Privacy-amplification cost 2·log2(1/ε_sec) (bits).
    pub secrecy_cost_bits: f64,
    /// Verification cost max(tag, log2(2/ε_cor)) (bits).
    pub correctness_cost_bits: f64,
    /// The bound before flooring; negative when no key can be extracted (bits).
    pub raw_length: f64,
    /// Secret key length ℓ = max(0, ⌊raw_length⌋), before subtracting the MAC key (bits).
    pub length_bits: u64,
}

/// Secret key length for single-photon BB84 / BBM92, Tomamichel et al. (2012) Eq. (2):
///
/// ℓ = ⌊n(1 − h(Q_tol + μ)) − leak_EC − log2(2/(ε_sec² ε_cor))⌋,
/// μ = sqrt((n+k)/(nk) · (k+1)/k · ln(4/ε_sec)),
///
/// with preparation quality q = 1 and log2(2/ε_cor) replaced by the tag length when larger.
/// The ln(4/ε_sec) comes from the ε split ε = ε_sec/4 (smoothing), ε̃ = ε_sec/2 (leftover hash) in
/// the paper's Supplementary Theorem 2, which gives 2ε + ε̃ = ε_sec.
pub fn bb84_key_length(input: &Bb84Input) -> Result<Bb84KeyLength, FiniteKeyError> {
    check_eps("eps_sec", input.eps_sec)?;
    check_eps("eps_cor", input.eps_cor)?;
    if input.n == 0 {
        return Err(FiniteKeyError::EmptySample {
            name: "n (raw key bits)",
        });
    }
    if input.k == 0 {
        return Err(FiniteKeyError::EmptySample {
            name: "k (parameter-estimation bits)",
        });
    }
    if !(0.0..=1.0).contains(&input.q_tol) {
        return Err(FiniteKeyError::InvalidRate {
            name: "q_tol",
            value: input.q_tol,
        });
    }
    let (n, k) = (input.n as f64, input.k as f64);
    let mu = ((n + k) / (n * k) * (k + 1.0) / k * (4.0 / input.eps_sec).ln()).sqrt();
    let phase_entropy = binary_entropy(input.q_tol + mu);
    let secrecy_cost_bits = 2.0 * (1.0 / input.eps_sec).log2();
    let correctness_cost_bits = correctness_cost_bits(input.eps_cor, input.verify_tag_bits);
    let raw_length = n * (1.0 - phase_entropy)
        - input.leak_ec_bits as f64
        - secrecy_cost_bits
        - correctness_cost_bits;
    Ok(Bb84KeyLength {
        mu,
        phase_entropy,
        secrecy_cost_bits,
        correctness_cost_bits,
        raw_length,
        length_bits: floor_length(raw_length),
    })
}

/// Inputs of the decoy-state bound (Lim et al. 2014): one signal intensity μ1 and two decoys
/// μ2 > μ3 ≥ 0 with μ1 > μ2 + μ3; the key comes from the X basis (all intensities), the
/// phase error is estimated from the Z basis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecoyInput {
    /// Mean photon numbers [μ1, μ2, μ3] (photons per pulse).
    pub intensities: [f64; 3],
    /// Probabilities [p_μ1, p_μ2, p_μ3] with which Alice chose each intensity (sum 1).
    pub probabilities: [f64; 3],
    /// n_{X,k}: detections with both bases X, per intensity (counts). Their sum n_X is the
    /// raw key block size.
    pub x_detections: [u64; 3],
    /// n_{Z,k}: detections with both bases Z, per intensity (counts).
    pub z_detections: [u64; 3],
    /// m_{Z,k}: bit errors among the Z detections, per intensity (counts).
    pub z_errors: [u64; 3],
    /// Secrecy parameter ε_sec (probability).
    pub eps_sec: f64,
    /// Correctness parameter ε_cor (probability).
    pub eps_cor: f64,
    /// Bits disclosed by error correction, λ_EC (bits).
    pub leak_ec_bits: u64,
    /// Length of the verification tag actually sent (bits); 0 to use log2(2/ε_cor).
    pub verify_tag_bits: u64,
}

/// Result of [`decoy_key_length`], with the intermediate quantities (counts are real-valued
/// bounds on numbers of detection events).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecoyKeyLength {
    /// τ0, τ1: probabilities that Alice sent a 0- or 1-photon pulse (probability).
    pub tau: [f64; 2],
    /// n^-_{X,k}: Hoeffding lower bounds on the X detections, rescaled by e^k / p_k (counts).
    pub x_lower: [f64; 3],
    /// n^+_{X,k}: Hoeffding upper bounds on the X detections, rescaled by e^k / p_k (counts).
    pub x_upper: [f64; 3],
    /// s_{X,0}: lower bound on vacuum events in the key, clamped at 0 (counts).
    pub s_x0: f64,
    /// s_{X,1}: lower bound on single-photon events in the key, clamped at 0 (counts).
    pub s_x1: f64,
    /// s_{Z,0}: lower bound on vacuum events in Z, clamped at 0 (counts).
    pub s_z0: f64,
    /// s_{Z,1}: lower bound on single-photon events in Z, clamped at 0 (counts).
    pub s_z1: f64,
    /// v_{Z,1}: upper bound on bit errors of single-photon events in Z (counts).
    pub v_z1: f64,
    /// γ: finite-sampling correction to the phase error rate (probability).
    pub gamma: f64,
    /// φ_X: upper bound on the single-photon phase error rate in the key, capped at 1/2
    /// (probability).
    pub phase_error: f64,
    /// Decoy-estimation and privacy-amplification cost 6·log2(21/ε_sec) (bits).
    pub secrecy_cost_bits: f64,
    /// Verification cost max(tag, log2(2/ε_cor)) (bits).
    pub correctness_cost_bits: f64,
    /// The bound before flooring; negative when no key can be extracted (bits).
    pub raw_length: f64,
    /// Secret key length ℓ = max(0, ⌊raw_length⌋), before subtracting the MAC key (bits).
    pub length_bits: u64,
}

/// Secret key length for decoy-state BB84, Lim et al. (2014) Eq. (1):
///
/// ℓ = ⌊s_{X,0} + s_{X,1}(1 − h(φ_X)) − λ_EC − 6 log2(21/ε_sec) − log2(2/ε_cor)⌋
///
/// with s_{X,0}, s_{X,1} from Eqs. (2)–(3) (Hoeffding bounds with ε_sec/21 each), v_{Z,1} from
/// Eq. (4) and φ_X ≤ v_{Z,1}/s_{Z,1} + γ(ε_sec, v_{Z,1}/s_{Z,1}, s_{Z,1}, s_{X,1}) from Eq. (5).
///
/// Conventions where the paper's formulas degenerate (all conservative):
/// * s_{X,0}, s_{X,1}, s_{Z,0}, s_{Z,1} are clamped at 0 (they bound non-negative counts);
/// * when s_{Z,1} = 0 or s_{X,1} = 0 there is no phase-error estimate: φ_X = 1/2;
/// * γ is evaluated at b = max(v_{Z,1}/s_{Z,1}, 1/s_{Z,1}), since b(1−b)·log(…/(b(1−b))) grows with
///   b for small b and the paper's γ vanishes at b = 0;
/// * φ_X is capped at 1/2, where h(φ_X) = 1.
pub fn decoy_key_length(input: &DecoyInput) -> Result<DecoyKeyLength, FiniteKeyError> {
    check_eps("eps_sec", input.eps_sec)?;
    check_eps("eps_cor", input.eps_cor)?;
    let [m1, m2, m3] = input.intensities;
    let ordered = m3 >= 0.0 && m2 > m3 && m1 > m2 + m3 && m1.is_finite();
    if !ordered {
        return Err(FiniteKeyError::InvalidIntensities(m1, m2, m3));
    }
    let p = input.probabilities;
    if !(p.iter().all(|&x| x > 0.0 && x <= 1.0) && (p.iter().sum::<f64>() - 1.0).abs() <= 1e-9) {
        return Err(FiniteKeyError::InvalidProbabilities(p));
    }
    for (index, (&errors, &detections)) in
        input.z_errors.iter().zip(&input.z_detections).enumerate()
    {
        if errors > detections {
            return Err(FiniteKeyError::ErrorsExceedDetections {
                index,
                errors,
                detections,
            });
        }
    }

    let mu = input.intensities;
    // τ_j = Σ_k e^{-k} k^j p_k / j!
    let tau0: f64 = (0..3).map(|i| (-mu[i]).exp() * p[i]).sum();
    let tau1: f64 = (0..3).map(|i| (-mu[i]).exp() * mu[i] * p[i]).sum();
    let ln_21 = (21.0 / input.eps_sec).ln();

    // n^±_k = e^{μ_k}/p_k · (n_k ± sqrt(n/2 · ln(21/ε_sec))), n the sum over intensities.
    let hoeffding = |counts: &[u64; 3]| -> ([f64; 3], [f64; 3]) {
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        let delta = (total / 2.0 * ln_21).sqrt();
        let scale = |i: usize| mu[i].exp() / p[i];
        let lower = [0, 1, 2].map(|i| scale(i) * (counts[i] as f64 - delta));
        let upper = [0, 1, 2].map(|i| scale(i) * (counts[i] as f64 + delta));
        (lower, upper)
    };
    // Eqs. (2) and (3).
    let vacuum_and_single = |lower: &[f64; 3], upper: &[f64; 3]| -> (f64, f64) {
        let s0 = (tau0 * (m2 * lower[2] - m3 * upper[1]) / (m2 - m3)).max(0.0);
        let s1 = tau1
            * m1
            * (lower[1] - upper[2] - (m2 * m2 - m3 * m3) / (m1 * m1) * (upper[0] - s0 / tau0))
            / (m1 * (m2 - m3) - m2 * m2 + m3 * m3);
        (s0, s1.max(0.0))
    };
    let (x_lower, x_upper) = hoeffding(&input.x_detections);
    let (s_x0, s_x1) = vacuum_and_single(&x_lower, &x_upper);
    let (z_lower, z_upper) = hoeffding(&input.z_detections);
    let (s_z0, s_z1) = vacuum_and_single(&z_lower, &z_upper);
    // Eq. (4).
    let (m_lower, m_upper) = hoeffding(&input.z_errors);
    let v_z1 = (tau1 * (m_upper[1] - m_lower[2]) / (m2 - m3)).max(0.0);

    // Eq. (5).
    let (gamma, phase_error) = if s_z1 > 0.0 && s_x1 > 0.0 {
        let b_obs = v_z1 / s_z1;
        let b = b_obs.max(1.0 / s_z1);
        let g = if b >= 0.5 {
            0.0
        } else {
            gamma_lim(input.eps_sec, b, s_z1, s_x1)
        };
        (g, (b_obs + g).min(0.5))
    } else {
        (0.0, 0.5)
    };

    let secrecy_cost_bits = 6.0 * (21.0 / input.eps_sec).log2();
    let correctness_cost_bits = correctness_cost_bits(input.eps_cor, input.verify_tag_bits);
    let raw_length = s_x0 + s_x1 * (1.0 - binary_entropy(phase_error))
        - input.leak_ec_bits as f64
        - secrecy_cost_bits
        - correctness_cost_bits;
    Ok(DecoyKeyLength {
        tau: [tau0, tau1],
        x_lower,
        x_upper,
        s_x0,
        s_x1,
        s_z0,
        s_z1,
        v_z1,
        gamma,
        phase_error,
        secrecy_cost_bits,
        correctness_cost_bits,
        raw_length,
        length_bits: floor_length(raw_length),
    })
}

/// γ(a, b, c, d) = sqrt( (c+d)(1−b)b / (c d ln 2) · log2( (c+d)/(c d (1−b) b) · 21²/a² ) ),
/// Lim et al. (2014) Eq. (5); 0 when the logarithm is negative.
fn gamma_lim(a: f64, b: f64, c: f64, d: f64) -> f64 {
    let bb = (1.0 - b) * b;
    let log_term = ((c + d) / (c * d * bb) * 441.0 / (a * a)).log2();
    if log_term <= 0.0 {
        return 0.0;
    }
    ((c + d) * bb / (c * d * std::f64::consts::LN_2) * log_term).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(1.0)
    }

    /// Worked example, computed independently with this Python 3 (math module only):
    /// ```text
    /// from math import *
    /// def h(x): return 0.0 if x<=0 else 1.0 if x>=0.5 else -x*log2(x)-(1-x)*log2(1-x)
    /// n,k,q,es,ec = 10**6, 10**5, 0.02, 1e-10, 1e-15
    /// leak = ceil(1.1*n*h(0.02))                                  # 155585
    /// mu = sqrt((n+k)/(n*k)*(k+1)/k*log(4/es))                    # 0.016387076723370947
    /// raw = n*(1-h(q+mu)) - leak - 2*log2(1/es) - log2(2/ec)      # 618823.280541476
    /// ```
    #[test]
    fn bb84_worked_example() {
        let input = Bb84Input {
            n: 1_000_000,
            k: 100_000,
            q_tol: 0.02,
            eps_sec: 1e-10,
            eps_cor: 1e-15,
            leak_ec_bits: 155_585,
            verify_tag_bits: 0,
        };
        let r = bb84_key_length(&input).unwrap();
        assert!(close(r.mu, 0.016387076723370947, 1e-12), "mu {}", r.mu);
        assert!(close(r.phase_entropy, 0.22547445197520305, 1e-12));
        assert!(
            close(r.raw_length, 618823.280541476, 1e-12),
            "raw {}",
            r.raw_length
        );
        assert_eq!(r.length_bits, 618_823);
        // A 128-bit tag costs more than log2(2/1e-15) ≈ 50.8 bits: 77.2 bits fewer.
        let tagged = bb84_key_length(&Bb84Input {
            verify_tag_bits: 128,
            ..input
        })
        .unwrap();
        assert_eq!(tagged.correctness_cost_bits, 128.0);
        assert_eq!(tagged.length_bits, 618_746);
    }

    /// Same BB84 setting with leak_EC = f·n·h(Q), f = 1.0, and a large block (n = k = 1e9):
    /// 1 − 2h(Q) crosses 0 at Q ≈ 11.0 %.
    fn bb84_at(q: f64) -> u64 {
        let n = 1_000_000_000u64;
        let leak = (n as f64 * binary_entropy(q)).ceil() as u64;
        let input = Bb84Input {
            n,
            k: n,
            q_tol: q,
            eps_sec: 1e-10,
            eps_cor: 1e-15,
            leak_ec_bits: leak,
            verify_tag_bits: 128,
        };
        bb84_key_length(&input).unwrap().length_bits
    }

    #[test]
    fn bb84_length_falls_with_qber_and_vanishes_near_11_percent() {
        let mut last = u64::MAX;
        for i in 0..=120 {
            let q = i as f64 * 0.001;
            let l = bb84_at(q);
            assert!(l <= last, "length rose from {last} to {l} at Q = {q}");
            last = l;
        }
        assert!(bb84_at(0.105) > 0);
        assert_eq!(bb84_at(0.111), 0);
        assert_eq!(bb84_at(0.2), 0);
    }

    #[test]
    fn bb84_rejects_invalid_inputs() {
        let ok = Bb84Input {
            n: 1000,
            k: 1000,
            q_tol: 0.01,
            eps_sec: 1e-9,
            eps_cor: 1e-15,
            leak_ec_bits: 0,
            verify_tag_bits: 0,
        };
        assert!(bb84_key_length(&ok).is_ok());
        for bad in [
            Bb84Input { eps_sec: 0.0, ..ok },
            Bb84Input { eps_sec: 1.0, ..ok },
            Bb84Input {
                eps_cor: -1e-3,
                ..ok
            },
            Bb84Input {
                eps_cor: f64::NAN,
                ..ok
            },
            Bb84Input { n: 0, ..ok },
            Bb84Input { k: 0, ..ok },
            Bb84Input { q_tol: -0.01, ..ok },
            Bb84Input { q_tol: 1.5, ..ok },
            Bb84Input {
                q_tol: f64::NAN,
                ..ok
            },
        ] {
            assert!(bb84_key_length(&bad).is_err(), "{bad:?} accepted");
        }
        let msg = bb84_key_length(&Bb84Input { eps_sec: 2.0, ..ok })
            .unwrap_err()
            .to_string();
        assert!(msg.contains("eps_sec") && msg.contains('2'), "{msg}");
    }

    /// Synthetic counts for decoy-state BB84 (1e10 or 1e12 pulses, q_x = 0.9, η_sys = 0.01,
    /// dark count p_dc, e_mis = 0.01), made and evaluated independently in Python 3:
    /// ```text
    /// from math import *
    /// def h(x): return 0.0 if x<=0 else 1.0 if x>=0.5 else -x*log2(x)-(1-x)*log2(1-x)
    /// def lim(mus,ps,nx,nz,mz,es,ec,leak):
    ///     m1,m2,m3=mus
    ///     tau=lambda j: sum(exp(-mu)*mu**j*p/factorial(j) for mu,p in zip(mus,ps))
    ///     t0,t1=tau(0),tau(1)
    ///     def pm(cnt,tot):
    ///         d=sqrt(tot/2*log(21/es))
    ///         return ([exp(mu)/p*(c-d) for mu,p,c in zip(mus,ps,cnt)],
    ///                 [exp(mu)/p*(c+d) for mu,p,c in zip(mus,ps,cnt)])
    ///     def s01(cnt):
    ///         lo,hi=pm(cnt,sum(cnt))
    ///         s0=max(0.0,t0*(m2*lo[2]-m3*hi[1])/(m2-m3))
    ///         s1=t1*m1*(lo[1]-hi[2]-(m2**2-m3**2)/m1**2*(hi[0]-s0/t0))/(m1*(m2-m3)-m2**2+m3**2)
    ///         return s0,max(0.0,s1)
    ///     sx0,sx1=s01(nx); sz0,sz1=s01(nz)
    ///     lo,hi=pm(mz,sum(mz)); vz1=t1*(hi[1]-lo[2])/(m2-m3)
    ///     b=vz1/sz1; c,d=sz1,sx1
    ///     g=sqrt((c+d)*(1-b)*b/(c*d*log(2))*log2((c+d)/(c*d*(1-b)*b)*21**2/es**2))
    ///     phi=min(0.5,b+g)
    ///     return sx0,sx1,sz1,vz1,g,phi,sx0+sx1*(1-h(phi))-leak-6*log2(21/es)-log2(2/ec)
    /// mus=(0.5,0.1,0.0002); ps=(0.7,0.2,0.1); qx=0.9; eta=0.01; emis=0.01
    /// for N,pdc in ((10**10,6e-7),(10**12,3e-6)):
    ///     D=[1-(1-2*pdc)*exp(-eta*mu) for mu in mus]; E=[pdc+emis*(1-exp(-eta*mu)) for mu in mus]
    ///     nx=[round(N*qx*qx*p*d) for p,d in zip(ps,D)]; nz=[round(N*(1-qx)**2*p*d) for p,d in zip(ps,D)]
    ///     mz=[round(N*(1-qx)**2*p*e) for p,e in zip(ps,E)]
    ///     ex=sum(N*qx*qx*p*e for p,e in zip(ps,E))/sum(nx); leak=ceil(1.16*sum(nx)*h(ex))
    ///     print(nx,nz,mz,leak,lim(mus,ps,nx,nz,mz,1e-10,1e-15,leak))
    /// ```
    fn decoy_example(big: bool) -> DecoyInput {
        let (x, z, m, leak) = if big {
            (
                [2_831_309_330, 162_890_055, 647_999],
                [34_954_436, 2_010_988, 8_000],
                [370_126, 25_990, 3_020],
                298_835_650,
            )
        } else {
            (
                [28_286_013, 1_621_132, 2_592],
                [349_210, 20_014, 32],
                [3_533, 212, 6],
                2_839_707,
            )
        };
        DecoyInput {
            intensities: [0.5, 0.1, 0.0002],
            probabilities: [0.7, 0.2, 0.1],
            x_detections: x,
            z_detections: z,
            z_errors: m,
            eps_sec: 1e-10,
            eps_cor: 1e-15,
            leak_ec_bits: leak,
            verify_tag_bits: 0,
        }
    }

    #[test]
    fn decoy_worked_example_small_block() {
        let r = decoy_key_length(&decoy_example(false)).unwrap();
        assert!(close(r.tau[0], 0.7055189474059019, 1e-12));
        assert!(close(r.tau[1], 0.23040247526054086, 1e-12));
        assert_eq!(
            r.s_x0, 0.0,
            "vacuum bound is negative for this block and clamps to 0"
        );
        assert!(close(r.s_x1, 17204701.07706723, 1e-10), "s_x1 {}", r.s_x1);
        assert!(close(r.s_z1, 124442.70822305534, 1e-10), "s_z1 {}", r.s_z1);
        assert!(close(r.v_z1, 10492.826785069254, 1e-10), "v_z1 {}", r.v_z1);
        assert!(
            close(r.gamma, 0.007476693570752257, 1e-9),
            "gamma {}",
            r.gamma
        );
        assert!(close(r.phase_error, 0.0917952280586192, 1e-10));
        assert!(
            close(r.raw_length, 6752775.667405911, 1e-10),
            "raw {}",
            r.raw_length
        );
        assert_eq!(r.length_bits, 6_752_775);
    }

    #[test]
    fn decoy_worked_example_large_block() {
        let r = decoy_key_length(&decoy_example(true)).unwrap();
        assert!(close(r.s_x0, 1910613.29814237, 1e-9), "s_x0 {}", r.s_x0);
        assert!(close(r.s_x1, 1801361820.9885707, 1e-10), "s_x1 {}", r.s_x1);
        assert_eq!(r.s_z0, 0.0);
        assert!(close(r.s_z1, 21354984.450883478, 1e-10));
        assert!(close(r.v_z1, 343593.92628053355, 1e-10));
        assert!(close(r.gamma, 0.0002480856718782144, 1e-9));
        assert!(close(r.phase_error, 0.016337721656900846, 1e-10));
        assert!(
            close(r.raw_length, 1287639483.1046898, 1e-10),
            "raw {}",
            r.raw_length
        );
        assert_eq!(r.length_bits, 1_287_639_483);
    }

    #[test]
    fn decoy_length_falls_with_z_errors() {
        let base = decoy_example(true);
        let mut last = u64::MAX;
        let mut reached_zero = false;
        for step in 0..=80 {
            // Scale the Z error counts from 0 to 40 times the example's.
            let f = 0.5 * step as f64;
            let mut input = base;
            for i in 0..3 {
                input.z_errors[i] =
                    ((base.z_errors[i] as f64 * f).round() as u64).min(input.z_detections[i]);
            }
            let l = decoy_key_length(&input).unwrap().length_bits;
            assert!(l <= last, "length rose to {l} at error scale {f}");
            last = l;
            reached_zero |= l == 0;
        }
        assert!(reached_zero, "40 times the errors must leave no key");
    }

    #[test]
    fn decoy_without_detections_gives_no_key() {
        let mut input = decoy_example(false);
        input.x_detections = [0; 3];
        input.z_detections = [0; 3];
        input.z_errors = [0; 3];
        let r = decoy_key_length(&input).unwrap();
        assert_eq!((r.s_x0, r.s_x1, r.length_bits), (0.0, 0.0, 0));
        assert_eq!(r.phase_error, 0.5);
    }

    #[test]
    fn decoy_rejects_invalid_inputs() {
        let ok = decoy_example(false);
        let bad_inputs = [
            DecoyInput { eps_sec: 0.0, ..ok },
            DecoyInput { eps_cor: 1.0, ..ok },
            DecoyInput {
                intensities: [0.5, 0.1, -0.01],
                ..ok
            },
            DecoyInput {
                intensities: [0.5, 0.1, 0.1],
                ..ok
            },
            DecoyInput {
                intensities: [0.15, 0.1, 0.06],
                ..ok
            },
            DecoyInput {
                intensities: [f64::NAN, 0.1, 0.0],
                ..ok
            },
            DecoyInput {
                probabilities: [0.7, 0.2, 0.2],
                ..ok
            },
            DecoyInput {
                probabilities: [0.8, 0.2, 0.0],
                ..ok
            },
            DecoyInput {
                z_errors: [3_533, 212, 33],
                ..ok
            },
        ];
        for bad in bad_inputs {
            assert!(decoy_key_length(&bad).is_err(), "{bad:?} accepted");
        }
        let err = decoy_key_length(&DecoyInput {
            z_errors: [3_533, 212, 33],
            ..ok
        })
        .unwrap_err();
        assert_eq!(
            err,
            FiniteKeyError::ErrorsExceedDetections {
                index: 2,
                errors: 33,
                detections: 32
            }
        );
        // A vacuum weak decoy (μ3 = 0) is allowed.
        assert!(decoy_key_length(&DecoyInput {
            intensities: [0.5, 0.1, 0.0],
            ..ok
        })
        .is_ok());
    }

    #[test]
    fn entropy_values() {
        assert_eq!(binary_entropy(0.0), 0.0);
        assert_eq!(binary_entropy(0.5), 1.0);
        assert_eq!(binary_entropy(0.7), 1.0);
        assert!(close(binary_entropy(0.11), 0.4999162, 1e-6));
    }
}
