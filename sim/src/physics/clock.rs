//! A station clock against true time: offset, constant frequency error (drift) and a phase
//! random walk.
//!
//! `local(t) = t + offset + drift·t + W(t)`, where `W` is a Wiener process with
//! `Var W(t) = σ² t` (σ in s/√s, i.e. white frequency noise), sampled on a grid and linearly
//! interpolated. The differential Doppler and time of flight of a satellite link are not part
//! of the clock: they come from the range (see [`super::pass`]).

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{check_range, PhysicsError};

/// Parameters of a station clock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// Clock reading at true time 0 (the start of the simulated pass), in s. Must keep the
    /// reading non-negative over the pass.
    #[serde(default)]
    pub offset_s: f64,
    /// Constant fractional frequency error, in ppm (positive: the clock runs fast).
    #[serde(default)]
    pub drift_ppm: f64,
    /// Phase random-walk strength σ, in ps/√s.
    #[serde(default)]
    pub random_walk_ps_per_sqrt_s: f64,
}

impl ClockConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        check_range("clock.offset_s", self.offset_s, 0.0, 1e6)?;
        check_range("clock.drift_ppm", self.drift_ppm, -1e4, 1e4)?;
        check_range("clock.random_walk_ps_per_sqrt_s", self.random_walk_ps_per_sqrt_s, 0.0, 1e9)
    }
}

/// Grid step of the sampled random walk, in s.
const WALK_STEP_S: f64 = 0.01;

/// A realised clock: maps true time (s since the start of the pass) to the clock reading (s).
#[derive(Clone, Debug)]
pub struct Clock {
    cfg: ClockConfig,
    walk: Vec<f64>,
}

impl Clock {
    /// A clock with its random walk drawn from `rng` over `[0, duration_s]`.
    pub fn new(cfg: &ClockConfig, duration_s: f64, rng: &mut impl Rng) -> Self {
        let n = (duration_s / WALK_STEP_S).ceil() as usize + 2;
        let sigma = cfg.random_walk_ps_per_sqrt_s * 1e-12 * WALK_STEP_S.sqrt();
        let mut walk = Vec::with_capacity(n);
        let mut w = 0.0;
        for _ in 0..n {
            walk.push(w);
            if sigma > 0.0 {
                let z: f64 = StandardNormal.sample(rng);
                w += sigma * z;
            }
        }
        Clock { cfg: cfg.clone(), walk }
    }

    /// Clock reading at true time `t_s`, in s.
    pub fn local(&self, t_s: f64) -> f64 {
        let x = (t_s / WALK_STEP_S).max(0.0);
        let i = (x as usize).min(self.walk.len() - 2);
        let f = (x - i as f64).min(1.0);
        let w = self.walk[i] + f * (self.walk[i + 1] - self.walk[i]);
        t_s + self.cfg.offset_s + self.cfg.drift_ppm * 1e-6 * t_s + w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn offset_drift_and_walk() {
        let cfg = ClockConfig { offset_s: 1e-3, drift_ppm: 2.0, random_walk_ps_per_sqrt_s: 0.0 };
        let c = Clock::new(&cfg, 100.0, &mut ChaCha8Rng::seed_from_u64(1));
        assert!((c.local(0.0) - 1e-3).abs() < 1e-15);
        assert!((c.local(50.0) - (50.0 + 1e-3 + 100e-6)).abs() < 1e-12);
        // Random walk: the spread after 100 s is σ·√100 (checked over many clocks).
        let cfg = ClockConfig { offset_s: 0.0, drift_ppm: 0.0, random_walk_ps_per_sqrt_s: 1000.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 400;
        let var: f64 =
            (0..n).map(|_| (Clock::new(&cfg, 100.0, &mut rng).local(100.0) - 100.0).powi(2)).sum::<f64>() / n as f64;
        let expect = (1e-9f64 * 10.0).powi(2);
        assert!((var / expect - 1.0).abs() < 0.25, "variance ratio {}", var / expect);
    }
}
