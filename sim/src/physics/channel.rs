//! Link loss of a satellite-to-ground optical downlink versus elevation and range.
//!
//! The transmittance is the product of independent factors (all linear, 0..1):
//! * **diffraction / geometric**: a Gaussian beam of far-field 1/e² half-angle divergence θ
//!   (diffraction-limited θ = λ/(π w₀) with w₀ the transmit aperture radius when no divergence
//!   is given) has radius `w(L) = sqrt(w₀² + (θL)²)` at range L; a receive aperture of radius
//!   a with a central obscuration of radius b collects `exp(-2b²/w²) − exp(-2a²/w²)`;
//! * **pointing**: a static pointing error ε and a Gaussian jitter of σ per axis give the
//!   mean on-axis factor `exp(-2ε²/(θ² + 4σ²)) / (1 + 4σ²/θ²)` (the Gaussian beam profile
//!   averaged over the offset distribution, far field);
//! * **atmosphere**: `T_zenith^AM(el)` with the Kasten & Young (1989) air mass
//!   `AM = 1/(sin el + 0.50572 (el° + 6.07995)^-1.6364)`, which stays finite at the horizon
//!   (1/sin el is within 1% above 15°);
//! * **fixed optics losses** of the transmitter and of the receiver (telescope to detector
//!   fibres), in dB.
//!
//! Detector efficiency is *not* part of the link: it belongs to [`super::DetectorConfig`].

use serde::{Deserialize, Serialize};

use super::PhysicsError;

/// Converts a transmittance (0..1) into a loss in dB (positive).
pub fn to_db(transmittance: f64) -> f64 {
    -10.0 * transmittance.log10()
}

/// Converts a loss in dB (positive) into a transmittance (0..1).
pub fn from_db(loss_db: f64) -> f64 {
    10f64.powf(-loss_db / 10.0)
}

/// The optical link from the satellite's transmit telescope to the ground detectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Wavelength, in nm.
    pub wavelength_nm: f64,
    /// Transmit telescope aperture diameter, in m.
    pub tx_aperture_m: f64,
    /// Far-field 1/e² intensity half-angle divergence of the beam, in µrad; absent: the
    /// diffraction limit of the transmit aperture.
    #[serde(default)]
    pub divergence_urad: Option<f64>,
    /// Receive telescope aperture diameter, in m.
    pub rx_aperture_m: f64,
    /// Diameter of the receive telescope's central obscuration, in m.
    #[serde(default)]
    pub rx_obscuration_m: f64,
    /// Static pointing error of the transmitter, in µrad.
    #[serde(default)]
    pub pointing_bias_urad: f64,
    /// RMS pointing jitter of the transmitter per axis, in µrad.
    #[serde(default)]
    pub pointing_jitter_urad: f64,
    /// Atmospheric transmittance at zenith from the station's altitude at this wavelength
    /// (dimensionless, 0..1).
    pub zenith_transmittance: f64,
    /// Transmitter optics loss, in dB.
    #[serde(default)]
    pub tx_optics_loss_db: f64,
    /// Receiver optics loss from the telescope aperture to the detectors, in dB.
    #[serde(default)]
    pub rx_optics_loss_db: f64,
}

/// The factors of the link transmittance at one elevation and range (linear, 0..1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkBudget {
    /// Diffraction / geometric collection efficiency.
    pub geometric: f64,
    /// Mean pointing factor.
    pub pointing: f64,
    /// Atmospheric transmittance.
    pub atmospheric: f64,
    /// Transmitter and receiver optics transmittance together.
    pub optics: f64,
}

impl LinkBudget {
    /// Total transmittance (linear, 0..1).
    pub fn total(&self) -> f64 {
        self.geometric * self.pointing * self.atmospheric * self.optics
    }

    /// Total loss, in dB.
    pub fn total_db(&self) -> f64 {
        to_db(self.total())
    }
}

/// Kasten & Young (1989) relative air mass at elevation `el_rad` (dimensionless, 1 at zenith).
pub fn air_mass(el_rad: f64) -> f64 {
    let el_deg = el_rad.to_degrees().max(0.0);
    1.0 / (el_rad.max(0.0).sin() + 0.50572 * (el_deg + 6.07995).powf(-1.6364))
}

impl LinkConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), PhysicsError> {
        use super::check_range;
        check_range("link.wavelength_nm", self.wavelength_nm, 200.0, 20_000.0)?;
        check_range("link.tx_aperture_m", self.tx_aperture_m, 1e-3, 10.0)?;
        check_range("link.rx_aperture_m", self.rx_aperture_m, 1e-3, 50.0)?;
        check_range("link.rx_obscuration_m", self.rx_obscuration_m, 0.0, self.rx_aperture_m)?;
        if let Some(d) = self.divergence_urad {
            check_range("link.divergence_urad", d, 1e-3, 1e6)?;
        }
        check_range("link.pointing_bias_urad", self.pointing_bias_urad, 0.0, 1e6)?;
        check_range("link.pointing_jitter_urad", self.pointing_jitter_urad, 0.0, 1e6)?;
        check_range("link.zenith_transmittance", self.zenith_transmittance, 1e-6, 1.0)?;
        check_range("link.tx_optics_loss_db", self.tx_optics_loss_db, 0.0, 100.0)?;
        check_range("link.rx_optics_loss_db", self.rx_optics_loss_db, 0.0, 100.0)?;
        Ok(())
    }

    /// The beam's far-field 1/e² half-angle divergence, in rad.
    pub fn divergence_rad(&self) -> f64 {
        match self.divergence_urad {
            Some(d) => d * 1e-6,
            None => self.wavelength_nm * 1e-9 / (std::f64::consts::PI * 0.5 * self.tx_aperture_m),
        }
    }

    /// The link budget at elevation `el_rad` and slant range `range_m`.
    pub fn budget(&self, el_rad: f64, range_m: f64) -> LinkBudget {
        let theta = self.divergence_rad();
        let w0 = 0.5 * self.tx_aperture_m;
        let w2 = w0 * w0 + (theta * range_m).powi(2);
        let a = 0.5 * self.rx_aperture_m;
        let b = 0.5 * self.rx_obscuration_m;
        let geometric = (-2.0 * b * b / w2).exp() - (-2.0 * a * a / w2).exp();
        let s2 = (self.pointing_jitter_urad * 1e-6).powi(2);
        let e2 = (self.pointing_bias_urad * 1e-6).powi(2);
        let pointing = (-2.0 * e2 / (theta * theta + 4.0 * s2)).exp() / (1.0 + 4.0 * s2 / (theta * theta));
        let atmospheric = if el_rad <= 0.0 { 0.0 } else { self.zenith_transmittance.powf(air_mass(el_rad)) };
        let optics = from_db(self.tx_optics_loss_db + self.rx_optics_loss_db);
        LinkBudget { geometric, pointing, atmospheric, optics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkConfig {
        LinkConfig {
            wavelength_nm: 850.0,
            tx_aperture_m: 0.3,
            divergence_urad: Some(10.0),
            rx_aperture_m: 1.0,
            rx_obscuration_m: 0.0,
            pointing_bias_urad: 0.0,
            pointing_jitter_urad: 1.0,
            zenith_transmittance: 0.7,
            tx_optics_loss_db: 1.0,
            rx_optics_loss_db: 2.0,
        }
    }

    #[test]
    fn loss_rises_as_elevation_falls() {
        let l = link();
        let h: f64 = 500e3;
        let mut prev = 0.0;
        for el_deg in [90.0, 70.0, 50.0, 30.0, 20.0, 10.0, 5.0] {
            let el = f64::to_radians(el_deg);
            // Slant range to a 500 km orbit over a spherical Earth.
            let re: f64 = 6371e3;
            let range = (((re + h).powi(2) - (re * el.cos()).powi(2)).sqrt()) - re * el.sin();
            let db = l.budget(el, range).total_db();
            assert!(db > prev, "loss {db} dB at {el_deg} deg is not above {prev} dB");
            prev = db;
        }
    }

    #[test]
    fn budget_factors_match_closed_forms() {
        let l = link();
        let b = l.budget(std::f64::consts::FRAC_PI_2, 1000e3);
        // w ≈ θL = 10 m; η = 1 − exp(−2·0.25/100.0225).
        let w2 = 0.15f64.powi(2) + 100.0;
        assert!((b.geometric - (1.0 - (-0.5 / w2).exp())).abs() < 1e-12);
        assert!((b.pointing - 1.0 / (1.0 + 4.0 * 1e-12 / 1e-10)).abs() < 1e-12);
        assert!((b.atmospheric - 0.7f64.powf(air_mass(std::f64::consts::FRAC_PI_2))).abs() < 1e-12);
        assert!((air_mass(std::f64::consts::FRAC_PI_2) - 1.0).abs() < 1e-3);
        assert!((air_mass(30f64.to_radians()) - 2.0).abs() < 0.01);
        assert!((b.optics - from_db(3.0)).abs() < 1e-12);
        assert!((to_db(from_db(27.5)) - 27.5).abs() < 1e-12);
        // Diffraction-limited divergence of a 300 mm aperture at 850 nm: 1.80 µrad.
        let dl = LinkConfig { divergence_urad: None, ..link() };
        assert!((dl.divergence_rad() - 1.8038e-6).abs() < 1e-9);
    }
}
