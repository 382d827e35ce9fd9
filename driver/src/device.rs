//! The typed device API: what a user does with a qkd-station core, over any
//! [`Transport`]. Times and delays are in ticks of the core clock ([`DeviceInfo::clock_hz`])
//! unless a name says otherwise.

use std::time::Duration;

use qkd_hdl::coincidence::MIN_GATE;
use qkd_hdl::regmap::{self, Access, Register};
use serde::{Deserialize, Serialize};

use crate::error::{DriverError, Result};
use crate::transport::{LinkStats, Transport};

/// What a device said about itself (HELLO and the BUILD register).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// The transport, in words.
    pub transport: String,
    /// Gateware version, major.
    pub version_major: u16,
    /// Gateware version, minor.
    pub version_minor: u16,
    /// Register-map hash of the gateware (equal to the host's, checked at open).
    pub map_hash: u32,
    /// Tagger channels.
    pub channels: usize,
    /// Coincidence groups.
    pub groups: usize,
    /// Board code (0 simulator, 1 iCEBreaker, 2 iCE40-HX8K breakout).
    pub board: u8,
    /// Core clock, in Hz.
    pub clock_hz: u64,
}

impl DeviceInfo {
    /// The board's name.
    pub fn board_name(&self) -> &'static str {
        match self.board {
            0 => "simulator (Verilated RTL)",
            1 => "iCEBreaker (iCE40UP5K)",
            2 => "iCE40-HX8K breakout",
            _ => "unknown board",
        }
    }

    /// Duration of `ticks` core clock ticks.
    pub fn duration(&self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.clock_hz as f64)
    }

    /// Core clock ticks in `d` (rounded to nearest).
    pub fn ticks(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.clock_hz as f64).round() as u64
    }
}

/// The control bits (`CTRL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ctrl {
    /// Tag the enabled channels.
    pub acquire: bool,
    /// Coincidence-only stream.
    pub coinc_only: bool,
    /// The on-chip test signal drives the tagger instead of the pins.
    pub testsig: bool,
    /// Accumulate the correlation histogram.
    pub hist: bool,
}

impl Ctrl {
    fn word(self) -> u32 {
        self.acquire as u32 | (self.coinc_only as u32) << 1 | (self.testsig as u32) << 2 | (self.hist as u32) << 3
    }
    fn from_word(w: u32) -> Self {
        Ctrl { acquire: w & 1 != 0, coinc_only: w & 2 != 0, testsig: w & 4 != 0, hist: w & 8 != 0 }
    }
}

/// Channel and coincidence configuration; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Enabled channels (bit c = channel c).
    pub enable: Option<u32>,
    /// Channels tagged on the falling edge (bit c = channel c).
    pub falling: Option<u32>,
    /// Dead time per channel, in ticks.
    pub dead_time: Option<Vec<u32>>,
    /// Delay per channel before coincidence finding, in ticks.
    pub delay: Option<Vec<u32>>,
    /// Coincidence window, in ticks.
    pub window: Option<u32>,
    /// Channel mask of each coincidence group (0 = off).
    pub groups: Option<Vec<u32>>,
    /// Counting gate, in ticks (0 = off).
    pub gate: Option<u32>,
    /// Delay per channel before the coincidence-only filter, in ticks.
    pub filter_delay: Option<Vec<u32>>,
    /// Coincidence-only filter window, in ticks.
    pub filter_window: Option<u32>,
    /// Channels the coincidence-only filter always keeps (bit c = channel c).
    pub filter_pass: Option<u32>,
}

/// Counts of one complete counting gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateCounts {
    /// The gate's sequence number (`COINC_GATE_SEQ` after it).
    pub seq: u32,
    /// Gate length, in ticks.
    pub gate_ticks: u32,
    /// Events per channel.
    pub singles: Vec<u32>,
    /// Coincidences per group.
    pub coincidences: Vec<u32>,
}

/// A correlation histogram read from the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Histogram {
    /// Start channel.
    pub start: u32,
    /// Stop channel.
    pub stop: u32,
    /// Bin width, in ticks.
    pub bin_ticks: u32,
    /// Offset added to `t_stop - t_start` before binning, in ticks.
    pub offset: u32,
    /// Counts per bin; bin `b` holds differences `d` with `(d + offset) >> shift == b`.
    pub bins: Vec<u32>,
    /// Stop events outside the bins.
    pub overflow: u32,
}

impl Histogram {
    /// Delay of the fullest bin's centre, in ticks (stop minus start), if any bin has counts.
    pub fn peak_delay(&self) -> Option<f64> {
        let (b, &n) = self.bins.iter().enumerate().max_by_key(|&(_, n)| *n)?;
        (n > 0).then(|| (b as f64 + 0.5) * self.bin_ticks as f64 - self.offset as f64)
    }
}

/// Test-signal generator settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSignal {
    /// Pulse rate per channel, in pulses per second (Poisson-like; at most the clock rate).
    pub rate_hz: Vec<f64>,
    /// Correlated pairs: (source channel, destination channel, delay in ticks).
    pub pairs: Option<(u32, u32, u32)>,
}

/// Health of the basis generator (from `STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RngHealth {
    /// Seeded and healthy: choices are being made.
    pub ready: bool,
    /// A health test failed (latched).
    pub failed: bool,
    /// The repetition count test failed.
    pub rct_failed: bool,
    /// The adaptive proportion test failed.
    pub apt_failed: bool,
    /// The start-up test passed.
    pub started: bool,
    /// At least 160 checked raw bits are pooled.
    pub pool_ready: bool,
    /// Slots without a choice (saturating).
    pub missed: u32,
}

/// One choice of the basis generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Slot number, mod 2^28.
    pub slot: u32,
    /// Basis: false = Z, true = X.
    pub basis_x: bool,
    /// Bit value.
    pub value: bool,
    /// Decoy intensity class (0–2).
    pub class: u8,
}

impl Choice {
    /// Decodes an `RNG_DATA` record.
    pub fn from_record(w: u32) -> Self {
        Choice { slot: w & 0x0FFF_FFFF, basis_x: w >> 29 & 1 == 1, value: w >> 28 & 1 == 1, class: (w >> 30) as u8 }
    }
}

/// Decoded `STATUS` and levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The clock PLL is locked.
    pub pll_locked: bool,
    /// Tag records waiting.
    pub tag_level: u32,
    /// The tagger dropped events since acquisition started.
    pub tag_lost: bool,
    /// RNG records waiting.
    pub rng_level: u32,
    /// The histogram is clearing.
    pub hist_busy: bool,
    /// Frames the device rejected (wraps at 2^16).
    pub link_bad_frames: u32,
    /// Bytes the device skipped (wraps at 2^16).
    pub link_skipped: u32,
    /// Raw `STATUS`.
    pub raw: u32,
}

/// A qkd-station core, identified and checked against this host's register map.
pub struct Device {
    t: Box<dyn Transport>,
    info: DeviceInfo,
}

fn field(r: &Register, name: &str) -> &'static regmap::Field {
    r.fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{} has no field {name}", r.name))
}

impl Device {
    /// Identifies the device behind `t` (HELLO) and checks that it is a qkd-station core with
    /// this host's register map and major version.
    pub fn open(mut t: Box<dyn Transport>) -> Result<Device> {
        let h = t.hello()?;
        if h.id != regmap::ID_VALUE {
            return Err(DriverError::WrongDevice { id: h.id, expected: regmap::ID_VALUE });
        }
        let major = (h.version >> 16) as u16;
        if major != regmap::VERSION_MAJOR {
            return Err(DriverError::Incompatible { reason: format!("gateware version {major}.x, host speaks {}.x", regmap::VERSION_MAJOR) });
        }
        if h.map_hash != regmap::REGMAP_HASH {
            return Err(DriverError::Incompatible {
                reason: format!("register map hash {:#010x} on the device, {:#010x} in this host", h.map_hash, regmap::REGMAP_HASH),
            });
        }
        let b = |n| field(&regmap::BUILD, n).get(h.build);
        let info = DeviceInfo {
            transport: t.describe(),
            version_major: major,
            version_minor: h.version as u16,
            map_hash: h.map_hash,
            channels: b("CHANNELS") as usize,
            groups: b("GROUPS") as usize,
            board: b("BOARD") as u8,
            clock_hz: b("CLOCK") as u64 * 100_000,
        };
        if info.clock_hz == 0 || info.channels == 0 {
            return Err(DriverError::Incompatible { reason: format!("BUILD register {:#010x} names no clock or no channels", h.build) });
        }
        Ok(Device { t, info })
    }

    /// What the device said about itself.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The transport underneath.
    pub fn transport(&mut self) -> &mut dyn Transport {
        self.t.as_mut()
    }

    /// What the link saw so far.
    pub fn link_stats(&self) -> LinkStats {
        self.t.stats()
    }

    /// Lets `d` of device time pass.
    pub fn pause(&mut self, d: Duration) -> Result<()> {
        self.t.pause(d)
    }

    fn element(r: &Register, i: usize) -> Result<u8> {
        if i >= r.count as usize {
            return Err(DriverError::OutOfRange { register: r.name.into(), value: i as u64, range: format!("element index 0..{}", r.count) });
        }
        Ok(r.at(i))
    }

    /// Reads element `i` of register `r` (a FIFO register pops one word).
    pub fn read(&mut self, r: &Register, i: usize) -> Result<u32> {
        if r.access == Access::Wo {
            return Err(DriverError::Access { register: r.name.into(), access: r.access.name(), op: "read" });
        }
        let a = Self::element(r, i)?;
        Ok(self.t.read(a, 1)?[0])
    }

    /// Reads every element of register array `r`.
    pub fn read_all(&mut self, r: &Register) -> Result<Vec<u32>> {
        self.t.read(r.addr, r.count as usize)
    }

    /// Writes `value` to element `i` of `r`, refusing read-only registers and values with
    /// bits outside the element's defined bits.
    pub fn write(&mut self, r: &Register, i: usize, value: u32) -> Result<()> {
        if !matches!(r.access, Access::Rw | Access::Wo) {
            return Err(DriverError::Access { register: r.name.into(), access: r.access.name(), op: "write" });
        }
        let a = Self::element(r, i)?;
        let m = r.element_mask(i);
        if value & !m != 0 {
            let name = if r.count > 1 { format!("{}[{i}]", r.name) } else { r.name.to_string() };
            return Err(DriverError::OutOfRange { register: name, value: value as u64, range: format!("bits {m:#x}") });
        }
        self.t.write(a, value)?;
        if r.addr == regmap::UART_DIV.addr && value != 0 {
            self.t.uart_divisor_changed(value, self.info.clock_hz)?;
        }
        Ok(())
    }

    /// Writes field `name` of `r` (read-modify-write), checking that `value` fits the field.
    pub fn write_field(&mut self, r: &Register, name: &str, value: u32) -> Result<()> {
        let f = r.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).ok_or_else(|| DriverError::UnknownRegister(format!("{}.{name}", r.name)))?;
        if f.width < 32 && value >> f.width != 0 {
            return Err(DriverError::OutOfRange { register: format!("{}.{}", r.name, f.name), value: value as u64, range: format!("0..={}", (1u64 << f.width) - 1) });
        }
        let old = if r.access == Access::Wo { 0 } else { self.read(r, 0)? };
        self.write(r, 0, f.set(old, value))
    }

    fn write_scaled(&mut self, r: &Register, i: usize, value: u64) -> Result<()> {
        let m = r.element_mask(i) as u64;
        if value > m {
            let name = if r.count > 1 { format!("{}[{i}]", r.name) } else { r.name.to_string() };
            return Err(DriverError::OutOfRange { register: name, value, range: format!("0..={m}") });
        }
        self.write(r, i, value as u32)
    }

    fn write_per_channel(&mut self, r: &Register, values: &[u32]) -> Result<()> {
        if values.len() > r.count as usize {
            return Err(DriverError::OutOfRange { register: r.name.into(), value: values.len() as u64, range: format!("at most {} values", r.count) });
        }
        for (i, &v) in values.iter().enumerate() {
            self.write_scaled(r, i, v as u64)?;
        }
        Ok(())
    }

    /// Applies the settings present in `c`.
    pub fn configure(&mut self, c: &ChannelConfig) -> Result<()> {
        if let Some(v) = c.enable {
            self.write_scaled(&regmap::CHAN_ENABLE, 0, v as u64)?;
        }
        if let Some(v) = c.falling {
            self.write_scaled(&regmap::CHAN_FALLING, 0, v as u64)?;
        }
        if let Some(v) = &c.dead_time {
            self.write_per_channel(&regmap::DEAD_TIME, v)?;
        }
        if let Some(v) = &c.delay {
            self.write_per_channel(&regmap::COINC_DELAY, v)?;
        }
        if let Some(v) = c.window {
            self.write_scaled(&regmap::COINC_WINDOW, 0, v as u64)?;
        }
        if let Some(v) = &c.groups {
            self.write_per_channel(&regmap::COINC_GROUP, v)?;
        }
        if let Some(v) = c.gate {
            self.write_scaled(&regmap::COINC_GATE, 0, v as u64)?;
        }
        if let Some(v) = &c.filter_delay {
            self.write_per_channel(&regmap::FILTER_DELAY, v)?;
        }
        if let Some(v) = c.filter_window {
            self.write_scaled(&regmap::FILTER_WINDOW, 0, v as u64)?;
        }
        if let Some(v) = c.filter_pass {
            self.write_scaled(&regmap::FILTER_PASS, 0, v as u64)?;
        }
        Ok(())
    }

    /// The settings as the device holds them now (every field present).
    pub fn configuration(&mut self) -> Result<ChannelConfig> {
        Ok(ChannelConfig {
            enable: Some(self.read(&regmap::CHAN_ENABLE, 0)?),
            falling: Some(self.read(&regmap::CHAN_FALLING, 0)?),
            dead_time: Some(self.read_all(&regmap::DEAD_TIME)?),
            delay: Some(self.read_all(&regmap::COINC_DELAY)?),
            window: Some(self.read(&regmap::COINC_WINDOW, 0)?),
            groups: Some(self.read_all(&regmap::COINC_GROUP)?),
            gate: Some(self.read(&regmap::COINC_GATE, 0)?),
            filter_delay: Some(self.read_all(&regmap::FILTER_DELAY)?),
            filter_window: Some(self.read(&regmap::FILTER_WINDOW, 0)?),
            filter_pass: Some(self.read(&regmap::FILTER_PASS, 0)?),
        })
    }

    /// The control bits.
    pub fn ctrl(&mut self) -> Result<Ctrl> {
        Ok(Ctrl::from_word(self.read(&regmap::CTRL, 0)?))
    }

    /// Sets the control bits.
    pub fn set_ctrl(&mut self, c: Ctrl) -> Result<()> {
        self.write(&regmap::CTRL, 0, c.word())
    }

    /// Starts (`true`) or stops tagging, leaving the other control bits.
    pub fn set_acquire(&mut self, on: bool) -> Result<()> {
        let c = self.ctrl()?;
        self.set_ctrl(Ctrl { acquire: on, ..c })
    }

    /// The optional blocks the gateware was built with (`FEATURES`: `regmap::FEAT_*` bits, e.g.
    /// no histogram on the iCEBreaker). A missing block's registers stay in the map and read 0.
    pub fn features(&mut self) -> Result<u32> {
        self.read(&regmap::FEATURES, 0)
    }

    /// Status and FIFO levels.
    pub fn status(&mut self) -> Result<Status> {
        let s = self.t.status()?;
        let f = |n| field(&regmap::STATUS, n).get(s.status) != 0;
        Ok(Status {
            pll_locked: f("PLL_LOCKED"),
            tag_level: s.tag_level,
            tag_lost: f("TAG_LOST"),
            rng_level: s.rng_level,
            hist_busy: f("HIST_BUSY"),
            link_bad_frames: s.link & 0xFFFF,
            link_skipped: s.link >> 16,
            raw: s.status,
        })
    }

    /// Waits for the end of a counting gate that started after this call and returns its
    /// counts. The gate (`COINC_GATE`) must be set; waits at most three gates plus `slack`.
    pub fn next_gate(&mut self, slack: Duration) -> Result<GateCounts> {
        let gate = self.read(&regmap::COINC_GATE, 0)?;
        if gate == 0 {
            return Err(DriverError::OutOfRange { register: "COINC_GATE".into(), value: 0, range: "a gate length in ticks; 0 means counting is off".into() });
        }
        let gate_d = self.info.duration(gate as u64);
        let limit = gate_d * 3 + slack;
        let poll = (gate_d / 16).max(Duration::from_micros(2));
        let mut waited = Duration::ZERO;
        let seq0 = self.read(&regmap::COINC_GATE_SEQ, 0)?;
        // The gate in progress began before the call: skip it, take the next complete one.
        let mut target = None;
        loop {
            let s = self.read(&regmap::COINC_GATE_SEQ, 0)?;
            match target {
                None if s != seq0 => target = Some(s.wrapping_add(1) & 0xFFFF),
                Some(t) if s == t => {
                    let singles = self.read_all(&regmap::COINC_SINGLES)?;
                    let coincidences = self.read_all(&regmap::COINC_COUNT)?;
                    if self.read(&regmap::COINC_GATE_SEQ, 0)? == t {
                        let gate_ticks = if gate < MIN_GATE { MIN_GATE } else { gate };
                        return Ok(GateCounts { seq: t, gate_ticks, singles, coincidences });
                    }
                    // The next gate ended while reading: take that one.
                    target = Some(t.wrapping_add(1) & 0xFFFF);
                }
                Some(t) if s != t && s != t.wrapping_sub(1) & 0xFFFF => target = Some(s.wrapping_add(1) & 0xFFFF),
                _ => {}
            }
            if waited > limit {
                return Err(DriverError::Stalled { what: format!("the end of a {gate}-tick counting gate (COINC_GATE_SEQ stuck at {s})"), waited });
            }
            self.t.pause(poll)?;
            waited += poll;
        }
    }

    /// Sets the histogram's channels, bin width (2^`shift` ticks) and stop-channel offset
    /// (ticks), then clears it.
    pub fn histogram_setup(&mut self, start: u32, stop: u32, shift: u32, offset: u32) -> Result<()> {
        let r = &regmap::HIST_CONFIG;
        for (n, v) in [("START", start), ("STOP", stop)] {
            if v as usize >= self.info.channels {
                return Err(DriverError::OutOfRange { register: format!("HIST_CONFIG.{n}"), value: v as u64, range: format!("channels 0..{}", self.info.channels) });
            }
        }
        let mut w = 0;
        for (n, v) in [("START", start), ("STOP", stop), ("SHIFT", shift)] {
            let f = field(r, n);
            if v >> f.width != 0 {
                return Err(DriverError::OutOfRange { register: format!("HIST_CONFIG.{n}"), value: v as u64, range: format!("0..={}", (1u32 << f.width) - 1) });
            }
            w = f.set(w, v);
        }
        self.write(r, 0, w)?;
        self.write_scaled(&regmap::HIST_OFFSET, 0, offset as u64)?;
        self.histogram_clear()
    }

    /// Clears every bin and the overflow count, and waits until the clear is done.
    pub fn histogram_clear(&mut self) -> Result<()> {
        self.write(&regmap::HIST_CMD, 0, 1)?;
        for _ in 0..1000 {
            if !self.status()?.hist_busy {
                return Ok(());
            }
            self.t.pause(Duration::from_micros(5))?;
        }
        Err(DriverError::Stalled { what: "the histogram clear (STATUS.HIST_BUSY)".into(), waited: Duration::from_millis(5) })
    }

    /// Reads the whole histogram (bins and overflow).
    pub fn histogram(&mut self) -> Result<Histogram> {
        let cfg = self.read(&regmap::HIST_CONFIG, 0)?;
        let offset = self.read(&regmap::HIST_OFFSET, 0)?;
        let n = 1usize << regmap::HIST_ADDR.width;
        self.write(&regmap::HIST_ADDR, 0, 0)?;
        let mut bins = Vec::with_capacity(n);
        while bins.len() < n {
            let got = self.t.read_fifo(regmap::HIST_DATA.addr, n - bins.len())?;
            if got.is_empty() {
                return Err(DriverError::Malformed { request: "READ_FIFO of HIST_DATA".into(), reason: "no words (the histogram port is never empty)".into() });
            }
            bins.extend(got);
        }
        let overflow = self.read(&regmap::HIST_OVERFLOW, 0)?;
        let r = &regmap::HIST_CONFIG;
        Ok(Histogram { start: field(r, "START").get(cfg), stop: field(r, "STOP").get(cfg), bin_ticks: 1 << field(r, "SHIFT").get(cfg), offset, bins, overflow })
    }

    /// Programs the test-signal generator (`rate_hz` per channel; an empty list turns it off)
    /// and returns the rates it will really make (pulses/s, quantized to 1/65536 per tick).
    pub fn set_test_signal(&mut self, ts: &TestSignal) -> Result<Vec<f64>> {
        if ts.rate_hz.len() > self.info.channels {
            return Err(DriverError::OutOfRange { register: "TS_THRESHOLD".into(), value: ts.rate_hz.len() as u64, range: format!("at most {} channel rates", self.info.channels) });
        }
        let max = self.info.clock_hz as f64 * 65535.0 / 65536.0;
        let mut real = Vec::new();
        for i in 0..self.info.channels {
            let r = ts.rate_hz.get(i).copied().unwrap_or(0.0);
            if !(0.0..=max).contains(&r) {
                return Err(DriverError::OutOfRange { register: format!("test-signal rate of channel {i}"), value: r as u64, range: format!("0..={max:.0} pulses/s") });
            }
            let thr = (r / self.info.clock_hz as f64 * 65536.0).round() as u32;
            self.write(&regmap::TS_THRESHOLD, i, thr)?;
            real.push(thr as f64 / 65536.0 * self.info.clock_hz as f64);
        }
        let mut cfg = field(&regmap::TS_CONFIG, "ENABLE").set(0, (!ts.rate_hz.is_empty()) as u32);
        if let Some((src, dst, delay)) = ts.pairs {
            for (n, c) in [("PAIR_SRC", src), ("PAIR_DST", dst)] {
                if c as usize >= self.info.channels {
                    return Err(DriverError::OutOfRange { register: format!("TS_CONFIG.{n}"), value: c as u64, range: format!("channels 0..{}", self.info.channels) });
                }
            }
            self.write_scaled(&regmap::TS_PAIR_DELAY, 0, delay as u64)?;
            cfg = field(&regmap::TS_CONFIG, "PAIRS").set(cfg, 1);
            cfg = field(&regmap::TS_CONFIG, "PAIR_SRC").set(cfg, src);
            cfg = field(&regmap::TS_CONFIG, "PAIR_DST").set(cfg, dst);
        }
        self.write(&regmap::TS_CONFIG, 0, cfg)?;
        Ok(real)
    }

    /// Turns the test-signal generator on or off, keeping its rates.
    pub fn test_signal_enable(&mut self, on: bool) -> Result<()> {
        self.write_field(&regmap::TS_CONFIG, "ENABLE", on as u32)
    }

    /// Seeds the basis generator with an 80-bit `key` and `iv` (mixed with the checked entropy
    /// pool when `mix`) and restarts it.
    pub fn rng_seed(&mut self, key: &[u8; 10], iv: &[u8; 10], mix: bool) -> Result<()> {
        for (r, bytes) in [(&regmap::RNG_KEY, key), (&regmap::RNG_IV, iv)] {
            let mut b = [0u8; 12];
            b[..10].copy_from_slice(bytes);
            for i in 0..3 {
                self.write(r, i, u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))?;
            }
            b.iter_mut().for_each(|x| *x = 0);
        }
        self.write(&regmap::RNG_CONFIG, 0, mix as u32)?;
        self.write(&regmap::RNG_CMD, 0, field(&regmap::RNG_CMD, "RESEED").set(0, 1))
    }

    /// Sets the choice probabilities (P(Z basis), P(class 0), P(class 1); class 2 takes the
    /// rest) and the pulse slot period, in ticks (0 stops drawing).
    pub fn rng_configure(&mut self, p_z: f64, p_class0: f64, p_class1: f64, slot_ticks: u32) -> Result<()> {
        let q = |name: &str, p: f64| -> Result<u32> {
            if !(0.0..=1.0).contains(&p) {
                return Err(DriverError::OutOfRange { register: name.into(), value: p as u64, range: "probabilities 0..=1".into() });
            }
            Ok(((p * 65536.0).round() as u32).min(65535))
        };
        let z = q("P(Z)", p_z)?;
        let c0 = q("P(class 0)", p_class0)?;
        let c01 = q("P(class 0) + P(class 1)", p_class0 + p_class1)?;
        self.write(&regmap::RNG_THR_Z, 0, z)?;
        self.write(&regmap::RNG_THR_CLASS, 0, c0 | c01 << 16)?;
        self.write(&regmap::RNG_SLOT_DIV, 0, slot_ticks)
    }

    /// The basis generator's health.
    pub fn rng_health(&mut self) -> Result<RngHealth> {
        let s = self.read(&regmap::STATUS, 0)?;
        let f = |n| field(&regmap::STATUS, n).get(s) != 0;
        Ok(RngHealth {
            ready: f("RNG_READY"),
            failed: f("RNG_FAILED"),
            rct_failed: f("RCT_FAILED"),
            apt_failed: f("APT_FAILED"),
            started: f("RNG_STARTED"),
            pool_ready: f("RNG_POOL"),
            missed: self.read(&regmap::RNG_MISSED, 0)?,
        })
    }

    /// Clears a latched health failure and restarts the start-up test.
    pub fn rng_clear_health(&mut self) -> Result<()> {
        self.write(&regmap::RNG_CMD, 0, field(&regmap::RNG_CMD, "HEALTH_CLEAR").set(0, 1))
    }

    /// Pops up to `max` choice records.
    pub fn rng_read(&mut self, max: usize) -> Result<Vec<Choice>> {
        Ok(self.t.read_fifo(regmap::RNG_DATA.addr, max)?.into_iter().map(Choice::from_record).collect())
    }

    /// Pops up to `max` raw tag records (see `qkd_hdl::tagfmt`).
    pub fn read_tags(&mut self, max: usize) -> Result<Vec<u32>> {
        self.t.read_fifo(regmap::TAG_DATA.addr, max)
    }

    /// Changes the UART line rate (bits per second) of the device and of this host.
    pub fn set_baud(&mut self, baud: u32) -> Result<()> {
        let div = (self.info.clock_hz as f64 / baud as f64).round() as u64;
        // The link runs on the control clock (half the tick): at least 4 of its cycles a bit.
        if !(8..=0xFFFF).contains(&div) {
            return Err(DriverError::OutOfRange {
                register: "UART_DIV".into(),
                value: div,
                range: format!("8..=65535 ticks per bit: {}..={} baud at this clock", self.info.clock_hz / 0xFFFF, self.info.clock_hz / 8),
            });
        }
        self.write(&regmap::UART_DIV, 0, div as u32)
    }
}
