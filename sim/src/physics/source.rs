//! Photon sources: decoy-state BB84 weak coherent pulses and an entangled-pair source.

use serde::{Deserialize, Serialize};

use super::{check_range, PhysicsError};

/// Intensity class of a decoy-state BB84 pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum IntensityClass {
    /// The signal intensity μ.
    Signal = 0,
    /// The decoy intensity ν.
    Decoy = 1,
    /// The vacuum (or weakest) intensity.
    Vacuum = 2,
}

impl IntensityClass {
    /// All classes, in index order.
    pub const ALL: [IntensityClass; 3] = [IntensityClass::Signal, IntensityClass::Decoy, IntensityClass::Vacuum];

    /// Index 0..3 of the class.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Polarization basis: Z = {H, V}, X = {D, A}.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Basis {
    /// Rectilinear basis (H = 0, V = 1).
    Z = 0,
    /// Diagonal basis (D = 0, A = 1).
    X = 1,
}

impl Basis {
    /// Index 0..2 of the basis.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The detector channel of the board that measures `value` in this basis
    /// (0 = H, 1 = V, 2 = D, 3 = A).
    pub fn channel(self, value: u8) -> u8 {
        2 * self as u8 + (value & 1)
    }

    /// The basis and value a detector channel (0..4) measures.
    pub fn of_channel(channel: u8) -> (Basis, u8) {
        (if channel < 2 { Basis::Z } else { Basis::X }, channel & 1)
    }
}

/// A decoy-state BB84 transmitter (weak coherent pulses, three intensities).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoyBb84Source {
    /// Pulse repetition rate, in Hz.
    pub pulse_rate_hz: f64,
    /// Mean photon numbers per pulse leaving the transmitter for the signal, decoy and vacuum
    /// classes (dimensionless).
    pub intensities: [f64; 3],
    /// Probabilities of sending the signal, decoy and vacuum classes (sum 1).
    pub class_probabilities: [f64; 3],
    /// Probability that Alice prepares a pulse in the Z basis (dimensionless).
    pub p_z: f64,
}

impl DecoyBb84Source {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        check_range("bb84.source.pulse_rate_hz", self.pulse_rate_hz, 1.0, 1e11)?;
        for &m in &self.intensities {
            check_range("bb84.source.intensities", m, 0.0, 100.0)?;
        }
        for &p in &self.class_probabilities {
            check_range("bb84.source.class_probabilities", p, 0.0, 1.0)?;
        }
        let s: f64 = self.class_probabilities.iter().sum();
        if (s - 1.0).abs() > 1e-9 {
            return Err(PhysicsError::InvalidParameter {
                name: "bb84.source.class_probabilities",
                reason: format!("must sum to 1, sum to {s}"),
            });
        }
        check_range("bb84.source.p_z", self.p_z, 0.0, 1.0)
    }

    /// Mean photon number per pulse averaged over the classes (dimensionless).
    pub fn mean_photon_number(&self) -> f64 {
        self.intensities.iter().zip(&self.class_probabilities).map(|(m, p)| m * p).sum()
    }
}

/// Which Bell state the entangled source emits (it fixes the correlations of the outcomes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BellState {
    /// |Φ+⟩ = (|HH⟩ + |VV⟩)/√2: equal outcomes in Z and in X.
    PhiPlus,
    /// |Ψ+⟩ = (|HV⟩ + |VH⟩)/√2: opposite outcomes in Z, equal outcomes in X.
    PsiPlus,
    /// |Ψ−⟩ = (|HV⟩ − |VH⟩)/√2: opposite outcomes in Z and in X.
    PsiMinus,
}

impl BellState {
    /// Whether station B's outcome is the complement of A's when both measure in `basis`.
    pub fn anticorrelated(self, basis: Basis) -> bool {
        match (self, basis) {
            (BellState::PhiPlus, _) => false,
            (BellState::PsiPlus, Basis::Z) => true,
            (BellState::PsiPlus, Basis::X) => false,
            (BellState::PsiMinus, _) => true,
        }
    }
}

/// An entangled photon-pair source on the satellite sending one photon to each of two
/// stations (BBM92).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntangledSource {
    /// Pairs emitted into the two transmitters per second, in Hz.
    pub pair_rate_hz: f64,
    /// The emitted Bell state.
    pub state: BellState,
}

impl EntangledSource {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        check_range("bbm92.source.pair_rate_hz", self.pair_rate_hz, 0.0, 1e12)
    }
}
