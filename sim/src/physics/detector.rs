//! Single-photon detectors and the receiver around them (passive basis choice, background,
//! polarization misalignment).

use serde::{Deserialize, Serialize};

use super::{check_range, clock::ClockConfig, LinkConfig, PhysicsError, StationConfig};

/// One kind of single-photon detector (all four of a receiver are alike).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Detection efficiency (dimensionless, 0..1).
    pub efficiency: f64,
    /// Dark count rate per detector, in Hz.
    pub dark_count_rate_hz: f64,
    /// Dead time after each click, in ns.
    pub dead_time_ns: f64,
    /// RMS timing jitter (Gaussian), in ps.
    pub jitter_ps: f64,
    /// Probability that a click is followed by an afterpulse (dimensionless, 0..1).
    #[serde(default)]
    pub afterpulse_probability: f64,
    /// Mean delay of an afterpulse after the end of the dead time (exponential), in ns.
    #[serde(default = "default_afterpulse_ns")]
    pub afterpulse_time_constant_ns: f64,
}

fn default_afterpulse_ns() -> f64 {
    50.0
}

impl DetectorConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        check_range("detector.efficiency", self.efficiency, 0.0, 1.0)?;
        check_range("detector.dark_count_rate_hz", self.dark_count_rate_hz, 0.0, 1e8)?;
        check_range("detector.dead_time_ns", self.dead_time_ns, 0.0, 1e6)?;
        check_range("detector.jitter_ps", self.jitter_ps, 0.0, 1e6)?;
        check_range("detector.afterpulse_probability", self.afterpulse_probability, 0.0, 0.5)?;
        check_range("detector.afterpulse_time_constant_ns", self.afterpulse_time_constant_ns, 0.0, 1e7)
    }
}

/// A ground receiver: where it is, the link to it, its four detectors (0 = H, 1 = V, 2 = D,
/// 3 = A), its clock and its noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The station.
    pub station: StationConfig,
    /// The optical link from the satellite to this station's detectors.
    pub link: LinkConfig,
    /// The detectors.
    pub detector: DetectorConfig,
    /// Probability that the passive basis splitter sends a photon to the Z (H/V) detectors
    /// (dimensionless).
    pub p_z: f64,
    /// Polarization misalignment error e_d: probability that a photon measured in its own
    /// basis ends in the wrong detector (dimensionless).
    pub misalignment_error: f64,
    /// Background light counts summed over the four detectors, in Hz (spread evenly).
    pub background_rate_hz: f64,
    /// The station's tagger clock against true time.
    #[serde(default)]
    pub clock: ClockConfig,
    /// RMS jitter of the station's 1PPS (sync channel 4) edges, in ps.
    #[serde(default)]
    pub pps_jitter_ps: f64,
}

impl ReceiverConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        self.link.validate()?;
        self.detector.validate()?;
        self.clock.validate()?;
        check_range("receiver.p_z", self.p_z, 0.0, 1.0)?;
        check_range("receiver.misalignment_error", self.misalignment_error, 0.0, 0.5)?;
        check_range("receiver.background_rate_hz", self.background_rate_hz, 0.0, 1e9)?;
        check_range("receiver.pps_jitter_ps", self.pps_jitter_ps, 0.0, 1e9)
    }

    /// Noise clicks (dark + background) per detector, in Hz.
    pub fn noise_rate_per_detector_hz(&self) -> f64 {
        self.detector.dark_count_rate_hz + 0.25 * self.background_rate_hz
    }
}
