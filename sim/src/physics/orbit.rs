//! Geometry of a low-Earth-orbit pass over ground stations.
//!
//! Model (documented in `docs/physics.md`): a two-body **circular** orbit of radius
//! `R_mean + altitude` around a spherical Earth of mean radius [`EARTH_RADIUS_M`], seen from
//! stations on the WGS-84 ellipsoid that rotate with the Earth at [`EARTH_ROTATION_RAD_S`].
//! Perturbations (J2, drag), light-time in the geometry and refraction are neglected: they
//! change elevation by well under a degree over one pass and range by far less than the
//! link-loss model can resolve. The orbit is placed so that, at orbit time `t = 0`, it
//! culminates over a reference point at a chosen maximum elevation; the inertial frame
//! coincides with the Earth-fixed frame at `t = 0`.

use serde::{Deserialize, Serialize};

use super::PhysicsError;

/// Mean Earth radius used for the orbit, in m.
pub const EARTH_RADIUS_M: f64 = 6_371_000.0;
/// Earth's gravitational parameter GM, in m³/s².
pub const MU_EARTH_M3_S2: f64 = 3.986_004_418e14;
/// Earth's sidereal rotation rate, in rad/s.
pub const EARTH_ROTATION_RAD_S: f64 = 7.292_115_0e-5;
/// WGS-84 semi-major axis, in m.
pub const WGS84_A_M: f64 = 6_378_137.0;
/// WGS-84 flattening (dimensionless).
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;
/// Speed of light in vacuum, in m/s.
pub const SPEED_OF_LIGHT_M_S: f64 = 299_792_458.0;

/// A circular orbit and where its pass culminates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrbitConfig {
    /// Orbit altitude above the mean Earth radius, in m.
    pub altitude_m: f64,
    /// Orbit inclination, in degrees (97.4 for a sun-synchronous orbit near 500 km).
    pub inclination_deg: f64,
    /// Geodetic latitude of the point the pass is placed over, in degrees (north positive).
    pub reference_latitude_deg: f64,
    /// Longitude of the point the pass is placed over, in degrees (east positive).
    pub reference_longitude_deg: f64,
    /// Highest elevation of the satellite seen from the reference point (at sea level) during
    /// the pass, in degrees (90 = through the geocentric zenith, which is within 0.2° of the
    /// geodetic one).
    pub max_elevation_deg: f64,
    /// True for a northbound (ascending) pass, false for a southbound one.
    #[serde(default)]
    pub ascending: bool,
}

/// A ground station: position and elevation mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// Station name (for reports).
    pub name: String,
    /// Geodetic latitude, in degrees (north positive).
    pub latitude_deg: f64,
    /// Longitude, in degrees (east positive).
    pub longitude_deg: f64,
    /// Height above the WGS-84 ellipsoid, in m.
    pub altitude_m: f64,
    /// Lowest elevation at which the station tracks the satellite, in degrees.
    pub elevation_mask_deg: f64,
}

/// Where the satellite is, seen from a station.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LookAngles {
    /// Elevation above the local horizon (ellipsoid normal), in rad.
    pub elevation_rad: f64,
    /// Azimuth from north through east, in rad.
    pub azimuth_rad: f64,
    /// Slant range station–satellite, in m.
    pub range_m: f64,
    /// Rate of change of the slant range, in m/s (negative while approaching).
    pub range_rate_m_s: f64,
}

type V3 = [f64; 3];

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

/// Earth-fixed (ECEF) position of a point on the WGS-84 ellipsoid, in m.
pub fn geodetic_to_ecef(lat_deg: f64, lon_deg: f64, alt_m: f64) -> [f64; 3] {
    let (lat, lon) = (lat_deg.to_radians(), lon_deg.to_radians());
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let n = WGS84_A_M / (1.0 - e2 * lat.sin().powi(2)).sqrt();
    [(n + alt_m) * lat.cos() * lon.cos(), (n + alt_m) * lat.cos() * lon.sin(), (n * (1.0 - e2) + alt_m) * lat.sin()]
}

/// A station's position and local east/north/up unit vectors in the Earth-fixed frame.
#[derive(Clone, Copy, Debug)]
struct Site {
    pos: V3,
    east: V3,
    north: V3,
    up: V3,
}

impl Site {
    fn new(lat_deg: f64, lon_deg: f64, alt_m: f64) -> Self {
        let (lat, lon) = (lat_deg.to_radians(), lon_deg.to_radians());
        Site {
            pos: geodetic_to_ecef(lat_deg, lon_deg, alt_m),
            east: [-lon.sin(), lon.cos(), 0.0],
            north: [-lat.sin() * lon.cos(), -lat.sin() * lon.sin(), lat.cos()],
            up: [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()],
        }
    }

    fn look(&self, sat_pos: V3, sat_vel: V3) -> LookAngles {
        let rel = sub(sat_pos, self.pos);
        let range = norm(rel);
        let (e, n, u) = (dot(rel, self.east), dot(rel, self.north), dot(rel, self.up));
        LookAngles {
            elevation_rad: (u / range).asin(),
            azimuth_rad: e.atan2(n).rem_euclid(std::f64::consts::TAU),
            range_m: range,
            range_rate_m_s: dot(rel, sat_vel) / range,
        }
    }
}

/// A propagated circular orbit (Earth-fixed positions and velocities at any orbit time).
#[derive(Clone, Debug)]
pub struct Orbit {
    radius_m: f64,
    mean_motion_rad_s: f64,
    inclination_rad: f64,
    raan_rad: f64,
    u0_rad: f64,
}

impl Orbit {
    fn with_raan(cfg: &OrbitConfig, raan_shift: f64) -> Self {
        let radius_m = EARTH_RADIUS_M + cfg.altitude_m;
        let i = cfg.inclination_deg.to_radians();
        // Geocentric direction of the reference point; the orbit passes exactly over it at t = 0
        // when `raan_shift` is 0.
        let r = geodetic_to_ecef(cfg.reference_latitude_deg, cfg.reference_longitude_deg, 0.0);
        let phi = (r[2] / norm(r)).asin();
        let lam = r[1].atan2(r[0]);
        let s = (phi.sin() / i.sin()).clamp(-1.0, 1.0).asin();
        let u0 = if cfg.ascending { s } else { std::f64::consts::PI - s };
        let raan = lam - (i.cos() * u0.sin()).atan2(u0.cos()) + raan_shift;
        Orbit {
            radius_m,
            mean_motion_rad_s: (MU_EARTH_M3_S2 / radius_m.powi(3)).sqrt(),
            inclination_rad: i,
            raan_rad: raan,
            u0_rad: u0,
        }
    }

    /// The orbit of `cfg`, with its node placed so that the pass culminates at
    /// `cfg.max_elevation_deg` over the reference point near orbit time 0.
    pub fn new(cfg: &OrbitConfig) -> Result<Self, PhysicsError> {
        super::check_range("orbit.altitude_m", cfg.altitude_m, 100e3, 3000e3)?;
        super::check_range("orbit.inclination_deg", cfg.inclination_deg, 1.0, 179.0)?;
        super::check_range("orbit.max_elevation_deg", cfg.max_elevation_deg, 1.0, 90.0)?;
        if cfg.reference_latitude_deg.abs() > cfg.inclination_deg.min(180.0 - cfg.inclination_deg) {
            return Err(PhysicsError::InvalidParameter {
                name: "orbit.reference_latitude_deg",
                reason: format!(
                    "{} deg is beyond the ground track of an orbit inclined {} deg",
                    cfg.reference_latitude_deg, cfg.inclination_deg
                ),
            });
        }
        let site = Site::new(cfg.reference_latitude_deg, cfg.reference_longitude_deg, 0.0);
        let max_el = |shift: f64| {
            let o = Orbit::with_raan(cfg, shift);
            o.max_elevation(&site)
        };
        let target = cfg.max_elevation_deg.to_radians();
        if cfg.max_elevation_deg >= 89.999 {
            return Ok(Orbit::with_raan(cfg, 0.0));
        }
        // Rotate the orbit plane about the polar axis until the culmination elevation drops to
        // the target (monotone in the shift for shifts below the half-width of visibility).
        let (mut lo, mut hi) = (0.0f64, 0.002);
        while max_el(hi) > target {
            lo = hi;
            hi *= 2.0;
            if hi > 1.0 {
                return Err(PhysicsError::NoPass(format!("no node shift gives a {} deg pass", cfg.max_elevation_deg)));
            }
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if max_el(mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // West of the reference for an ascending pass and east for a descending one is an
        // arbitrary, fixed choice; the sign only mirrors the geometry.
        Ok(Orbit::with_raan(cfg, 0.5 * (lo + hi)))
    }

    /// Orbital period, in s.
    pub fn period_s(&self) -> f64 {
        std::f64::consts::TAU / self.mean_motion_rad_s
    }

    /// Earth-fixed position (m) and velocity (m/s) of the satellite at orbit time `t_s`.
    pub fn state_ecef(&self, t_s: f64) -> ([f64; 3], [f64; 3]) {
        let u = self.u0_rad + self.mean_motion_rad_s * t_s;
        let (so, co) = self.raan_rad.sin_cos();
        let (su, cu) = u.sin_cos();
        let (si, ci) = self.inclination_rad.sin_cos();
        let r = self.radius_m;
        let v = r * self.mean_motion_rad_s;
        let p = [r * (co * cu - so * su * ci), r * (so * cu + co * su * ci), r * su * si];
        let w = [v * (-co * su - so * cu * ci), v * (-so * su + co * cu * ci), v * cu * si];
        let th = EARTH_ROTATION_RAD_S * t_s;
        let (st, ct) = th.sin_cos();
        let pe = [ct * p[0] + st * p[1], -st * p[0] + ct * p[1], p[2]];
        let we = [ct * w[0] + st * w[1], -st * w[0] + ct * w[1], w[2]];
        // v_ecef = R v_eci - ω × r_ecef
        let ve = [we[0] + EARTH_ROTATION_RAD_S * pe[1], we[1] - EARTH_ROTATION_RAD_S * pe[0], we[2]];
        (pe, ve)
    }

    fn max_elevation(&self, site: &Site) -> f64 {
        let el = |t: f64| {
            let (p, v) = self.state_ecef(t);
            site.look(p, v).elevation_rad
        };
        let (mut best_t, mut best) = (0.0, f64::MIN);
        let mut t = -900.0;
        while t <= 900.0 {
            let e = el(t);
            if e > best {
                best = e;
                best_t = t;
            }
            t += 5.0;
        }
        golden_max(el, best_t - 5.0, best_t + 5.0).1
    }

    /// Look angles from `station` at orbit time `t_s`.
    pub fn look(&self, station: &StationConfig, t_s: f64) -> LookAngles {
        let site = Site::new(station.latitude_deg, station.longitude_deg, station.altitude_m);
        let (p, v) = self.state_ecef(t_s);
        site.look(p, v)
    }

    /// The visibility window of `station` (elevation above its mask) around orbit time 0,
    /// in orbit time (s): `(rise, culmination, set)`.
    pub fn pass_window(&self, station: &StationConfig) -> Result<(f64, f64, f64), PhysicsError> {
        let site = Site::new(station.latitude_deg, station.longitude_deg, station.altitude_m);
        let mask = station.elevation_mask_deg.to_radians();
        let el = |t: f64| {
            let (p, v) = self.state_ecef(t);
            site.look(p, v).elevation_rad
        };
        let (mut best_t, mut best) = (0.0, f64::MIN);
        let mut t = -1200.0;
        while t <= 1200.0 {
            let e = el(t);
            if e > best {
                best = e;
                best_t = t;
            }
            t += 5.0;
        }
        let (tc, emax) = golden_max(el, best_t - 5.0, best_t + 5.0);
        if emax <= mask {
            return Err(PhysicsError::NoPass(format!(
                "station {} sees at most {:.2} deg, below its {} deg mask",
                station.name,
                emax.to_degrees(),
                station.elevation_mask_deg
            )));
        }
        let edge = |dir: f64| {
            let mut t_in = tc;
            let mut t_out = tc + dir * 10.0;
            while el(t_out) > mask {
                t_in = t_out;
                t_out += dir * 10.0;
            }
            for _ in 0..50 {
                let mid = 0.5 * (t_in + t_out);
                if el(mid) > mask {
                    t_in = mid;
                } else {
                    t_out = mid;
                }
            }
            t_in
        };
        Ok((edge(-1.0), tc, edge(1.0)))
    }
}

/// Maximum of a unimodal `f` on `[a, b]` by golden-section search: `(argmax, max)`.
fn golden_max(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> (f64, f64) {
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
        if fc > fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let t = 0.5 * (a + b);
    (t, f(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_el: f64) -> OrbitConfig {
        OrbitConfig {
            altitude_m: 500e3,
            inclination_deg: 97.4,
            reference_latitude_deg: 40.0,
            reference_longitude_deg: 117.0,
            max_elevation_deg: max_el,
            ascending: false,
        }
    }

    fn station(mask: f64) -> StationConfig {
        StationConfig {
            name: "ref".into(),
            latitude_deg: 40.0,
            longitude_deg: 117.0,
            altitude_m: 0.0,
            elevation_mask_deg: mask,
        }
    }

    #[test]
    fn overhead_pass_geometry() {
        let o = Orbit::new(&cfg(90.0)).unwrap();
        let l = o.look(&station(10.0), 0.0);
        // Overhead the geocentric direction: within the 0.19 deg geodetic-geocentric angle.
        assert!(l.elevation_rad.to_degrees() > 89.75, "{l:?}");
        assert!((l.range_m - 500e3).abs() < 10e3, "{l:?}");
        assert!(l.range_rate_m_s.abs() < 50.0, "{l:?}");
        // ~94.6 min period at 500 km.
        assert!((o.period_s() - 5677.0).abs() < 20.0, "{}", o.period_s());
        let (rise, tc, set) = o.pass_window(&station(10.0)).unwrap();
        assert!(tc.abs() < 2.0);
        // A 500 km overhead pass above 10 deg lasts about 8 minutes.
        assert!((set - rise) > 400.0 && (set - rise) < 600.0, "{rise} {set}");
        // Range rate: approaching (negative) before culmination, receding after; |v| < 7.7 km/s.
        let before = o.look(&station(10.0), rise + 1.0);
        let after = o.look(&station(10.0), set - 1.0);
        assert!(before.range_rate_m_s < -5000.0 && before.range_rate_m_s > -7700.0, "{before:?}");
        assert!(after.range_rate_m_s > 5000.0 && after.range_rate_m_s < 7700.0, "{after:?}");
        // The range rate is the derivative of the range.
        let t = rise + 60.0;
        let num = (o.look(&station(10.0), t + 0.01).range_m - o.look(&station(10.0), t - 0.01).range_m) / 0.02;
        assert!((num - o.look(&station(10.0), t).range_rate_m_s).abs() < 0.1);
    }

    #[test]
    fn culmination_elevation_is_honoured() {
        for target in [30.0, 50.0, 75.0] {
            let o = Orbit::new(&cfg(target)).unwrap();
            let (_, tc, _) = o.pass_window(&station(5.0)).unwrap();
            let el = o.look(&station(5.0), tc).elevation_rad.to_degrees();
            assert!((el - target).abs() < 0.05, "target {target}, got {el}");
        }
    }
}
