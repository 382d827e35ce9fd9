//! Physics of a satellite QKD pass: orbit geometry, link loss, sources, detectors, clocks,
//! and a fast, seeded pass simulator that produces the ground station's detector edges for
//! the time tagger ([`qkd_hdl::tagger_model::Edge`]) and Alice's records.
//!
//! * [`orbit`]: circular two-body orbit over a rotating Earth; elevation, range, range rate.
//! * [`channel`]: link loss versus elevation (diffraction, pointing, atmosphere, optics).
//! * [`source`]: decoy-state BB84 and entangled-pair (BBM92) sources.
//! * [`detector`]: detectors and the receiver (basis splitter, background, misalignment).
//! * [`clock`]: station clock offset, drift and random walk.
//! * [`pass`]: [`simulate_bb84_pass`] and [`simulate_bbm92_pass`].
//!
//! Parameters come from TOML ([`PassConfig::from_toml_str`], [`PassConfig::load`]) or from
//! the built-in presets ([`PassConfig::preset`], [`PRESET_NAMES`]) that model the Micius
//! experiments. The models, formulas and parameter sources are in `docs/physics.md`.
//!
//! Channel convention of the board: 0 = H, 1 = V, 2 = D, 3 = A, 4 = sync/1PPS.

pub mod channel;
pub mod clock;
pub mod detector;
pub mod orbit;
pub mod pass;
pub mod source;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use channel::{LinkBudget, LinkConfig};
pub use clock::{Clock, ClockConfig};
pub use detector::{DetectorConfig, ReceiverConfig};
pub use orbit::{LookAngles, Orbit, OrbitConfig, StationConfig};
pub use pass::{
    simulate_bb84_pass, simulate_bbm92_pass, AliceRecord, Bb84Click, Bb84Counts, Bb84Pass, Bbm92Click, Bbm92Counts,
    Bbm92Pass, ClickKind, OffsetSample, PassSample, PPS_CHANNEL,
};
pub use source::{Basis, BellState, DecoyBb84Source, EntangledSource, IntensityClass};

/// Errors of the physics models.
#[derive(Debug, Error)]
pub enum PhysicsError {
    /// No preset of that name.
    #[error("unknown physics preset {name:?} (known: {known})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// The TOML did not parse into a [`PassConfig`].
    #[error("pass configuration TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A configuration file could not be read.
    #[error("reading pass configuration {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter (TOML path).
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The satellite is never above the elevation mask.
    #[error("no usable pass: {0}")]
    NoPass(String),
    /// The configuration lacks the section a simulation needs.
    #[error("pass configuration has no [{0}] section")]
    MissingSection(&'static str),
}

/// Checks `lo <= x <= hi` (and that `x` is finite).
pub(crate) fn check_range(name: &'static str, x: f64, lo: f64, hi: f64) -> Result<(), PhysicsError> {
    if x.is_finite() && x >= lo && x <= hi {
        Ok(())
    } else {
        Err(PhysicsError::InvalidParameter { name, reason: format!("{x} is outside [{lo}, {hi}]") })
    }
}

/// How much of the pass to simulate and at what time resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// Step over which the link transmittance is held constant, in s.
    #[serde(default = "default_segment_s")]
    pub segment_s: f64,
    /// Simulate at most this long a stretch of the visibility window, centred on the
    /// culmination, in s; absent: the whole window above the elevation mask(s).
    #[serde(default)]
    pub max_duration_s: Option<f64>,
}

fn default_segment_s() -> f64 {
    0.01
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig { segment_s: default_segment_s(), max_duration_s: None }
    }
}

/// A decoy-state BB84 downlink to one ground station.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bb84Config {
    /// Alice's transmitter on the satellite.
    pub source: DecoyBb84Source,
    /// Bob's ground receiver.
    pub receiver: ReceiverConfig,
}

/// An entanglement-based (BBM92) link: the satellite sends one photon of each pair to each
/// of two ground stations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bbm92Config {
    /// The pair source on the satellite.
    pub source: EntangledSource,
    /// Station A (its clock is the reference of the offsets).
    pub station_a: ReceiverConfig,
    /// Station B.
    pub station_b: ReceiverConfig,
    /// Error of the orbit prediction (ephemeris) used to predict each station's time of
    /// flight, as a constant range bias for station A and station B, in m.
    #[serde(default)]
    pub ephemeris_range_error_m: [f64; 2],
}

/// Everything that defines a simulated pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassConfig {
    /// Name of the configuration.
    pub name: String,
    /// What it models and where its numbers come from.
    #[serde(default)]
    pub description: String,
    /// The orbit and the placement of the pass.
    pub orbit: OrbitConfig,
    /// Time resolution and extent of the simulation.
    #[serde(default)]
    pub simulation: SimulationConfig,
    /// The decoy-BB84 downlink, if this configuration has one.
    #[serde(default)]
    pub bb84: Option<Bb84Config>,
    /// The entanglement-based two-station link, if this configuration has one.
    #[serde(default)]
    pub bbm92: Option<Bbm92Config>,
}

/// Names of the built-in presets.
pub const PRESET_NAMES: [&str; 2] = ["micius-2017-bb84", "micius-2020-bbm92"];

const PRESET_TOML: [&str; 2] =
    [include_str!("../../presets/micius-2017-bb84.toml"), include_str!("../../presets/micius-2020-bbm92.toml")];

impl PassConfig {
    /// Parses and checks a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, PhysicsError> {
        let cfg: PassConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a configuration from a TOML file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, PhysicsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PhysicsError::Io { path: path.display().to_string(), source })?;
        Self::from_toml_str(&text)
    }

    /// A built-in preset by name (see [`PRESET_NAMES`]); the TOML files live in
    /// `sim/presets/` and are compiled in.
    pub fn preset(name: &str) -> Result<Self, PhysicsError> {
        match PRESET_NAMES.iter().position(|&n| n == name) {
            Some(i) => Self::from_toml_str(PRESET_TOML[i]),
            None => Err(PhysicsError::UnknownPreset { name: name.to_string(), known: PRESET_NAMES.join(", ") }),
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        check_range("simulation.segment_s", self.simulation.segment_s, 1e-5, 10.0)?;
        if let Some(d) = self.simulation.max_duration_s {
            check_range("simulation.max_duration_s", d, 1e-3, 1e5)?;
        }
        Orbit::new(&self.orbit)?;
        if let Some(b) = &self.bb84 {
            b.source.validate()?;
            b.receiver.validate()?;
        }
        if let Some(b) = &self.bbm92 {
            b.source.validate()?;
            b.station_a.validate()?;
            b.station_b.validate()?;
            for &e in &b.ephemeris_range_error_m {
                check_range("bbm92.ephemeris_range_error_m", e, -1e5, 1e5)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_load_and_validate() {
        for name in PRESET_NAMES {
            let cfg = PassConfig::preset(name).unwrap();
            assert_eq!(cfg.name, name);
        }
        assert!(PassConfig::preset("micius-2017-bb84").unwrap().bb84.is_some());
        assert!(PassConfig::preset("micius-2020-bbm92").unwrap().bbm92.is_some());
        assert!(matches!(PassConfig::preset("nope"), Err(PhysicsError::UnknownPreset { .. })));
        // The files on disk are the same presets.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/presets/micius-2017-bb84.toml");
        assert_eq!(PassConfig::load(dir).unwrap(), PassConfig::preset("micius-2017-bb84").unwrap());
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let text = PRESET_TOML[0].replace("efficiency = 0.5", "efficiency = 1.5");
        assert!(matches!(PassConfig::from_toml_str(&text), Err(PhysicsError::InvalidParameter { .. })));
        let text = PRESET_TOML[0].replace("[orbit]", "[orbit]\nbogus = 1");
        assert!(matches!(PassConfig::from_toml_str(&text), Err(PhysicsError::Toml(_))));
    }

    #[test]
    fn preset_link_loss_resembles_liao_2017() {
        // Liao et al. 2017 quote a link loss of about 22 dB at 645 km and 35 dB at 1200 km.
        let cfg = PassConfig::preset("micius-2017-bb84").unwrap();
        let rx = &cfg.bb84.unwrap().receiver;
        let el_at = |range: f64| {
            // Elevation of a 500 km-orbit satellite at this slant range (spherical Earth).
            let re = orbit::EARTH_RADIUS_M;
            let r = re + cfg.orbit.altitude_m;
            ((r * r - re * re - range * range) / (2.0 * re * range)).asin()
        };
        // The quoted loss runs from the satellite to the receive telescope's focus: the
        // receiver's internal optics (and the detectors) are outside it.
        let quoted = |range: f64| rx.link.budget(el_at(range), range).total_db() - rx.link.rx_optics_loss_db;
        let (l645, l1200) = (quoted(645e3), quoted(1200e3));
        assert!((l645 - 22.0).abs() < 2.0, "{l645} dB at 645 km");
        assert!((l1200 - 35.0).abs() < 3.0, "{l1200} dB at 1200 km");
    }
}
