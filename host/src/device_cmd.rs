//! The device subcommands of `qkd`: `info`, `config`, `count`, `coinc`, `histogram`,
//! `stream`, `replay`, `rng`, `regs`, `selftest`, `sim-board`. The work is done by
//! `qkd_driver` (transports, device API, tag files), `qkd_tests` (the testbench suite) and
//! `qkd_host::tags` (stream analysis); this module parses, connects and prints.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use qkd_driver::device::{ChannelConfig, Ctrl, Device, TestSignal};
use qkd_driver::framed::FramedLink;
use qkd_driver::pcie::PcieTransport;
use qkd_driver::pty::PtyServer;
use qkd_driver::serial::SerialChannel;
use qkd_driver::simulated::{sim_link, SimulatedBoard};
use qkd_driver::tagfile::{TagFileHeader, TagReader, TagWriter};
use qkd_driver::transport::Transport;
use qkd_hdl::regmap;
use qkd_hdl::tagfmt::Record;
use qkd_host::tags::{CoincidenceSpec, StreamAnalyzer};

/// How to reach the device (one of `--port`, `--pcie`, `--sim`; also from the `[device]`
/// table of the `--config` file).
#[derive(Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// Serial port of the board (or the pty printed by `qkd sim-board`). Env: QKD_PORT.
    #[arg(long, env = "QKD_PORT", global = true)]
    pub port: Option<String>,
    /// Line rate of the serial port, in bits per second (the gateware's default is 3000000).
    #[arg(long, global = true)]
    pub baud: Option<u32>,
    /// PCIe register file (XDMA: /dev/xdma0_user), optionally with `--pcie-stream`.
    #[arg(long, global = true)]
    pub pcie: Option<PathBuf>,
    /// PCIe card-to-host DMA stream of the tag FIFO (XDMA: /dev/xdma0_c2h_0).
    #[arg(long, global = true, requires = "pcie")]
    pub pcie_stream: Option<PathBuf>,
    /// Use an in-process Verilated board (the RTL, simulated time) instead of hardware.
    #[arg(long, global = true, conflicts_with_all = ["port", "pcie"])]
    pub sim: bool,
    /// Wait for each reply beyond its line time, in milliseconds.
    #[arg(long, global = true)]
    pub timeout_ms: Option<u64>,
    /// Attempts per request before giving up.
    #[arg(long, global = true)]
    pub attempts: Option<u32>,
}

/// The `--config` TOML file: any of these tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Device selection, as the flags.
    #[serde(default)]
    pub device: DeviceTable,
    /// Channel and coincidence settings (see `qkd_driver::device::ChannelConfig`; ticks).
    #[serde(default)]
    pub channels: ChannelConfig,
    /// Test-signal settings.
    pub test_signal: Option<TestSignal>,
}

/// The `[device]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTable {
    /// Serial port.
    pub port: Option<String>,
    /// Baud rate.
    pub baud: Option<u32>,
    /// PCIe register file.
    pub pcie: Option<PathBuf>,
    /// PCIe stream file.
    pub pcie_stream: Option<PathBuf>,
    /// Use the simulator.
    pub sim: Option<bool>,
}

/// Reads a `--config` file.
pub fn load_config(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing the configuration file {}", path.display()))
}

/// Opens the device the flags (or the config file) name; checks identity and compatibility.
pub fn open(a: &DeviceArgs, file: &ConfigFile) -> Result<Device> {
    let d = &file.device;
    let port = a.port.clone().or(d.port.clone());
    let pcie = a.pcie.clone().or(d.pcie.clone());
    let sim = a.sim || d.sim.unwrap_or(false);
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let attempts = a.attempts.unwrap_or(5);
    let t: Box<dyn Transport> = if sim {
        Box::new(sim_link(1))
    } else if let Some(p) = port {
        let baud = a.baud.or(d.baud).unwrap_or(3_000_000);
        let ch = SerialChannel::open(&p, baud)?;
        Box::new(FramedLink::new(ch, timeout.unwrap_or(qkd_driver::serial::SERIAL_TIMEOUT), attempts))
    } else if let Some(r) = pcie {
        let s = a.pcie_stream.clone().or(d.pcie_stream.clone());
        Box::new(PcieTransport::open(&r, s.as_deref())?)
    } else {
        bail!("no device given: use --port /dev/ttyUSB1 (or QKD_PORT), --pcie /dev/xdma0_user, or --sim for the Verilated board; `qkd sim-board` serves one on a pty");
    };
    let what = t.describe();
    Device::open(t).with_context(|| format!("identifying the device on {what}"))
}

/// Device subcommands.
#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Identify the device: board, gateware version, register-map hash, clock, status.
    Info,
    /// Apply channel settings (flags, or the [channels] table of --config) and show them all.
    Config(ConfigArgs),
    /// Count rates per channel over counting gates.
    Count(GateArgs),
    /// Coincidence counts per group over counting gates.
    Coinc(GateArgs),
    /// Accumulate and read the correlation histogram between two channels.
    Histogram(HistArgs),
    /// Stream tags to a file (the documented format of `qkd_driver::tagfile`).
    Stream(StreamArgs),
    /// Control and read the random basis generator.
    #[command(subcommand)]
    Rng(RngCommand),
    /// Read or write registers by name; `--list` prints the register map.
    Regs(RegsArgs),
    /// Run the testbench suite (the one `cargo test` runs) against the device.
    Selftest(SelftestArgs),
}

/// `qkd config` flags (ticks unless the name says otherwise).
#[derive(Args, Default)]
pub struct ConfigArgs {
    /// Enabled channels, a mask (e.g. 0x1f).
    #[arg(long, value_parser = parse_u32)]
    pub enable: Option<u32>,
    /// Channels tagged on the falling edge, a mask.
    #[arg(long, value_parser = parse_u32)]
    pub falling: Option<u32>,
    /// Dead time per channel, in ticks (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub dead_time: Option<Vec<u32>>,
    /// Delay per channel before coincidence finding, in ticks (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub delay: Option<Vec<u32>>,
    /// Coincidence window, in ticks.
    #[arg(long)]
    pub window: Option<u32>,
    /// Channel mask of each coincidence group (comma-separated masks, e.g. 0x3,0xc).
    #[arg(long, value_delimiter = ',', value_parser = parse_u32)]
    pub groups: Option<Vec<u32>>,
    /// Counting gate, in milliseconds.
    #[arg(long)]
    pub gate_ms: Option<f64>,
}

/// Gate-count flags.
#[derive(Args)]
pub struct GateArgs {
    /// Number of gates to read.
    #[arg(long, default_value_t = 1)]
    pub gates: u32,
    /// Gate length, in milliseconds (sets COINC_GATE).
    #[arg(long, default_value_t = 100.0)]
    pub gate_ms: f64,
    /// Drive the channels from the on-chip test signal at this rate per channel (pulses/s).
    #[arg(long)]
    pub test_rate: Option<f64>,
}

/// `qkd histogram` flags.
#[derive(Args)]
pub struct HistArgs {
    /// Start channel.
    #[arg(long, default_value_t = 0)]
    pub start: u32,
    /// Stop channel.
    #[arg(long, default_value_t = 1)]
    pub stop: u32,
    /// Bin width = 2^shift ticks.
    #[arg(long, default_value_t = 0)]
    pub shift: u32,
    /// Delay added to the stop channel, in ticks (0..255): shows stops before their start.
    #[arg(long, default_value_t = 0)]
    pub offset: u32,
    /// Accumulation time, in milliseconds.
    #[arg(long, default_value_t = 100.0)]
    pub ms: f64,
    /// Drive pairs from the on-chip test signal: start → stop with this delay (ticks).
    #[arg(long)]
    pub test_pairs: Option<u32>,
    /// Write the bins as CSV (bin, delay_ticks, count).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// `qkd stream` flags.
#[derive(Args)]
pub struct StreamArgs {
    /// Output tag file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Stop after this many seconds of wall time.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Stop after this many records.
    #[arg(long)]
    pub records: Option<u64>,
    /// Coincidence-only stream (only events in a coincidence of a group).
    #[arg(long)]
    pub coinc_only: bool,
    /// Drive the channels from the on-chip test signal at this rate per channel (pulses/s).
    #[arg(long)]
    pub test_rate: Option<f64>,
    /// Free-form note stored in the file header.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// `qkd replay` flags.
#[derive(Args)]
pub struct ReplayArgs {
    /// Tag file written by `qkd stream`.
    pub file: PathBuf,
    /// Channel pair to correlate, `A,B`.
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [0u8, 1])]
    pub pair: Vec<u8>,
    /// Coincidence window, in ticks.
    #[arg(long, default_value_t = 2)]
    pub window: u64,
    /// Delay added to the first channel of the pair, in ticks.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub delay: i64,
    /// Emit JSON.
    #[arg(long)]
    pub json: bool,
}

/// `qkd rng` subcommands.
#[derive(Subcommand)]
pub enum RngCommand {
    /// Seed from fresh host randomness (mixed with the device's checked entropy pool).
    Seed {
        /// Do not mix in the device's entropy pool.
        #[arg(long)]
        no_mix: bool,
    },
    /// Health-test state and missed slots.
    Health,
    /// Clear a latched health failure.
    Clear,
    /// Draw choices: set probabilities and the slot period, then read N choices.
    Read {
        /// Number of choices.
        #[arg(long, short, default_value_t = 1000)]
        n: usize,
        /// P(Z basis).
        #[arg(long, default_value_t = 0.5)]
        p_z: f64,
        /// Probabilities of intensity classes 0 and 1 (class 2 takes the rest).
        #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [0.5, 0.25])]
        classes: Vec<f64>,
        /// Slot period, in ticks.
        #[arg(long, default_value_t = 1024)]
        slot_ticks: u32,
        /// Write the choices as CSV (slot, basis, value, class).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
}

/// `qkd regs` flags.
#[derive(Args)]
pub struct RegsArgs {
    /// Print the register map.
    #[arg(long)]
    pub list: bool,
    /// Registers to read: NAME or NAME[i].
    #[arg(long, short)]
    pub read: Vec<String>,
    /// Register writes: NAME=VALUE or NAME[i]=VALUE (VALUE decimal or 0x hex).
    #[arg(long, short)]
    pub write: Vec<String>,
}

/// `qkd selftest` flags.
#[derive(Args)]
pub struct SelftestArgs {
    /// Run only these testbenches (names from the list `--help` prints after running).
    #[arg(long)]
    pub only: Vec<String>,
}

/// `qkd sim-board` flags.
#[derive(Args)]
pub struct SimBoardArgs {
    /// Seed of the simulated entropy source.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long)]
    pub seconds: Option<f64>,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else if let Some(b) = s.strip_prefix("0b") {
        u32::from_str_radix(b, 2)
    } else {
        s.parse()
    };
    r.map_err(|e| format!("{s:?} is not a number (decimal, 0x hex or 0b binary): {e}"))
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({eta})").expect("valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}

/// Runs a device subcommand.
pub fn run(cmd: DeviceCommand, a: &DeviceArgs, config: Option<&Path>, json: bool) -> Result<()> {
    let file = match config {
        Some(p) => load_config(p)?,
        None => ConfigFile::default(),
    };
    if let DeviceCommand::Regs(r) = &cmd {
        if r.list {
            print!("{}", regmap::to_markdown());
            if r.read.is_empty() && r.write.is_empty() {
                return Ok(());
            }
        }
    }
    let mut dev = open(a, &file)?;
    if config.is_some() {
        dev.configure(&file.channels).context("applying the [channels] table of the configuration file")?;
        if let Some(ts) = &file.test_signal {
            dev.set_test_signal(ts).context("applying the [test_signal] table of the configuration file")?;
        }
    }
    match cmd {
        DeviceCommand::Info => info(&mut dev, json),
        DeviceCommand::Config(c) => configure(&mut dev, c, json),
        DeviceCommand::Count(g) => gates(&mut dev, g, json, false),
        DeviceCommand::Coinc(g) => gates(&mut dev, g, json, true),
        DeviceCommand::Histogram(h) => histogram(&mut dev, h, json),
        DeviceCommand::Stream(s) => stream(&mut dev, s, json),
        DeviceCommand::Rng(r) => rng(&mut dev, r, json),
        DeviceCommand::Regs(r) => regs(&mut dev, r, json),
        DeviceCommand::Selftest(s) => selftest(&mut dev, s, json),
    }
}

fn info(dev: &mut Device, json: bool) -> Result<()> {
    let st = dev.status()?;
    let features = dev.features()?;
    let i = dev.info().clone();
    if json {
        return print_json(&serde_json::json!({ "device": i, "status": st, "features": features, "link": dev.link_stats() }));
    }
    println!("transport        {}", i.transport);
    println!("board            {}", i.board_name());
    println!("gateware         {}.{}", i.version_major, i.version_minor);
    println!("register map     {:#010x} (matches this host)", i.map_hash);
    println!("channels         {}", i.channels);
    println!("coinc. groups    {}", i.groups);
    println!("clock            {} MHz ({:.3} ns per tick)", i.clock_hz as f64 / 1e6, 1e9 / i.clock_hz as f64);
    let names: Vec<&str> = regmap::FEATURES.fields.iter().filter(|f| f.get(features) != 0).map(|f| f.name).collect();
    println!("optional blocks  {}", if names.is_empty() { "none".to_string() } else { names.join(", ").to_lowercase() });
    println!("PLL locked       {}", st.pll_locked);
    println!("tag FIFO         {} records{}", st.tag_level, if st.tag_lost { ", data LOST since acquisition start" } else { "" });
    println!("RNG FIFO         {} records", st.rng_level);
    println!("link errors      {} bad frames, {} bytes skipped (device side)", st.link_bad_frames, st.link_skipped);
    Ok(())
}

fn configure(dev: &mut Device, c: ConfigArgs, json: bool) -> Result<()> {
    let gate = c.gate_ms.map(|ms| dev.info().ticks(Duration::from_secs_f64(ms / 1e3)));
    if let Some(g) = gate {
        if g > u32::MAX as u64 {
            bail!("--gate-ms {}: at most {:.0} ms at this clock", c.gate_ms.unwrap_or(0.0), dev.info().duration(u32::MAX as u64).as_secs_f64() * 1e3);
        }
    }
    dev.configure(&ChannelConfig {
        enable: c.enable,
        falling: c.falling,
        dead_time: c.dead_time,
        delay: c.delay,
        window: c.window,
        groups: c.groups,
        gate: gate.map(|g| g as u32),
        ..Default::default()
    })?;
    let now = dev.configuration()?;
    if json {
        return print_json(&now);
    }
    let v = |o: &Option<Vec<u32>>| o.as_ref().map(|v| v.iter().map(|x| format!("{x:>5}")).collect::<Vec<_>>().join("")).unwrap_or_default();
    println!("enabled channels  {:#07b}", now.enable.unwrap_or(0));
    println!("falling edges     {:#07b}", now.falling.unwrap_or(0));
    println!("dead time (ticks) {}", v(&now.dead_time));
    println!("delay (ticks)     {}", v(&now.delay));
    println!("window (ticks)    {}", now.window.unwrap_or(0));
    println!("groups (masks)    {}", now.groups.as_ref().map(|g| g.iter().map(|m| format!("{m:#07b}")).collect::<Vec<_>>().join(" ")).unwrap_or_default());
    let gate = now.gate.unwrap_or(0);
    println!("gate              {gate} ticks ({:.3} ms)", dev.info().duration(gate as u64).as_secs_f64() * 1e3);
    Ok(())
}

fn test_signal(dev: &mut Device, rate: Option<f64>, pairs: Option<(u32, u32, u32)>) -> Result<()> {
    if let Some(r) = rate {
        let n = dev.info().channels;
        let mut rates = vec![r; n - 1];
        rates.push(0.0);
        dev.set_test_signal(&TestSignal { rate_hz: rates, pairs })?;
        let c = dev.ctrl()?;
        dev.set_ctrl(Ctrl { testsig: true, ..c })?;
    }
    Ok(())
}

fn gates(dev: &mut Device, g: GateArgs, json: bool, coinc: bool) -> Result<()> {
    let ticks = dev.info().ticks(Duration::from_secs_f64(g.gate_ms / 1e3));
    if ticks == 0 || ticks > u32::MAX as u64 {
        bail!("--gate-ms {}: must be between one tick and {:.0} ms", g.gate_ms, dev.info().duration(u32::MAX as u64).as_secs_f64() * 1e3);
    }
    dev.configure(&ChannelConfig { gate: Some(ticks as u32), ..Default::default() })?;
    test_signal(dev, g.test_rate, None)?;
    let secs = ticks as f64 / dev.info().clock_hz as f64;
    let pb = if json { ProgressBar::hidden() } else { progress(g.gates as u64, "gates") };
    let mut all = Vec::new();
    for _ in 0..g.gates {
        all.push(dev.next_gate(Duration::from_secs(5))?);
        pb.inc(1);
    }
    pb.finish_and_clear();
    if g.test_rate.is_some() {
        let c = dev.ctrl()?;
        dev.set_ctrl(Ctrl { testsig: false, ..c })?;
        dev.set_test_signal(&TestSignal::default())?;
    }
    if json {
        return print_json(&all);
    }
    let (label, n) = if coinc { ("group", dev.info().groups) } else { ("ch", dev.info().channels) };
    print!("{:>6}", "gate");
    for i in 0..n {
        print!("{:>16}", format!("{label} {i} (/s)"));
    }
    println!();
    for gc in &all {
        print!("{:>6}", gc.seq);
        let v = if coinc { &gc.coincidences } else { &gc.singles };
        for x in v {
            print!("{:>16.1}", *x as f64 / secs);
        }
        println!();
    }
    Ok(())
}

fn histogram(dev: &mut Device, h: HistArgs, json: bool) -> Result<()> {
    if let Some(d) = h.test_pairs {
        let r = (dev.info().clock_hz as f64 / 200.0).min(1e6);
        let mut rates = vec![0.0; dev.info().channels];
        let n = rates.len();
        rates[h.start as usize % n] = r;
        dev.set_test_signal(&TestSignal { rate_hz: rates, pairs: Some((h.start, h.stop, d)) })?;
    }
    dev.histogram_setup(h.start, h.stop, h.shift, h.offset)?;
    let c = dev.ctrl()?;
    dev.set_ctrl(Ctrl { hist: true, testsig: h.test_pairs.is_some() || c.testsig, ..c })?;
    dev.pause(Duration::from_secs_f64(h.ms / 1e3))?;
    dev.set_ctrl(Ctrl { hist: false, ..c })?;
    let hist = dev.histogram()?;
    if h.test_pairs.is_some() {
        dev.set_test_signal(&TestSignal::default())?;
    }
    if let Some(p) = &h.csv {
        let mut s = String::from("bin,delay_ticks,count\n");
        for (b, n) in hist.bins.iter().enumerate() {
            s += &format!("{b},{},{n}\n", b as i64 * hist.bin_ticks as i64 - hist.offset as i64);
        }
        std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))?;
    }
    if json {
        return print_json(&hist);
    }
    let total: u64 = hist.bins.iter().map(|&b| b as u64).sum();
    println!("channels {} → {}, bin {} ticks, offset {} ticks: {total} entries, {} outside the bins", hist.start, hist.stop, hist.bin_ticks, hist.offset, hist.overflow);
    match hist.peak_delay() {
        Some(p) => {
            let ns = p * 1e9 / dev.info().clock_hz as f64;
            println!("peak at {p:.1} ticks ({ns:.2} ns): set COINC_DELAY so the channels line up");
            // The populated part of the histogram, as bars.
            let max = *hist.bins.iter().max().unwrap_or(&1) as f64;
            let first = hist.bins.iter().position(|&b| b > 0).unwrap_or(0);
            let last = hist.bins.iter().rposition(|&b| b > 0).unwrap_or(0);
            for b in first.saturating_sub(2)..=(last + 2).min(hist.bins.len() - 1) {
                let n = hist.bins[b];
                println!("{:>8} {:>10} {}", b as i64 * hist.bin_ticks as i64 - hist.offset as i64, n, "#".repeat((n as f64 / max * 50.0).round() as usize));
            }
        }
        None => println!("no entries: check the channels, the rates and CTRL.HIST"),
    }
    Ok(())
}

fn stream(dev: &mut Device, s: StreamArgs, json: bool) -> Result<()> {
    let hello = dev.transport().hello()?;
    let header = TagFileHeader::from_hello(&hello, s.note.clone());
    let mut w = TagWriter::create(&s.out, &header)?;
    test_signal(dev, s.test_rate, None)?;
    let c = dev.ctrl()?;
    dev.set_ctrl(Ctrl { acquire: true, coinc_only: s.coinc_only, ..c })?;
    let pb = if json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    let start = Instant::now();
    let limit = Duration::from_secs_f64(s.seconds);
    // Events the device reports lost (FIFO full), from the LOST records of the stream.
    let lost_in = |recs: &[u32]| -> u64 {
        recs.iter().filter_map(|&r| match Record::decode(r) {
            Ok(Record::Lost(n)) => Some(n as u64),
            _ => None,
        }).sum()
    };
    let mut lost = 0u64;
    while start.elapsed() < limit && s.records.is_none_or(|n| w.records() < n) {
        let recs = dev.read_tags(1 << 14)?;
        lost += lost_in(&recs);
        w.write_records(&recs)?;
        pb.set_message(format!("{} records, {lost} events lost", w.records()));
        pb.tick();
        if recs.is_empty() {
            dev.pause(Duration::from_millis(1))?;
        }
    }
    dev.set_ctrl(Ctrl { acquire: false, ..c })?;
    // What was tagged before acquisition stopped is part of the recording.
    loop {
        let recs = dev.read_tags(1 << 14)?;
        if recs.is_empty() {
            break;
        }
        lost += lost_in(&recs);
        w.write_records(&recs)?;
    }
    if s.test_rate.is_some() {
        dev.set_test_signal(&TestSignal::default())?;
        dev.set_ctrl(c)?;
    }
    let n = w.finish()?;
    pb.finish_and_clear();
    if json {
        return print_json(&serde_json::json!({ "file": s.out, "records": n, "events_lost": lost, "seconds": start.elapsed().as_secs_f64() }));
    }
    println!("{n} records in {} ({:.2} s){}", s.out.display(), start.elapsed().as_secs_f64(), if lost > 0 { format!("; {lost} events LOST in the device (FIFO full): the stream marks where") } else { String::new() });
    Ok(())
}

/// `qkd replay`: a recorded file through the same analysis, with no device.
pub fn replay(r: ReplayArgs) -> Result<()> {
    let mut rd = TagReader::open(&r.file)?;
    let h = rd.header().clone();
    let spec = CoincidenceSpec { a: r.pair[0], b: r.pair[1], delay_a: r.delay, window: r.window, range: 64, bin: 1 };
    let mut an = StreamAnalyzer::new(h.channels as usize, spec);
    let mut damaged = None;
    loop {
        match rd.next_tags() {
            Ok(Some(b)) => {
                let lost: u64 = b.losses.iter().map(|l| l.count).sum();
                an.add(&b.tags, lost, b.losses.len() as u64);
            }
            Ok(None) => break,
            Err(e) => {
                damaged = Some(e.to_string());
                break;
            }
        }
    }
    let s = an.summary();
    let secs = s.span.map(|(a, b)| (b - a) as f64 / h.tick_hz as f64).unwrap_or(0.0);
    if r.json {
        print_json(&serde_json::json!({ "header": { "tick_hz": h.tick_hz, "channels": h.channels, "board": h.board, "note": h.note }, "summary": s, "seconds": secs, "damaged": damaged }))?;
    } else {
        println!("{}: {} records, {} ticks/s, {} channels, board code {}{}", r.file.display(), rd.records_read(), h.tick_hz, h.channels, h.board, if h.note.is_empty() { String::new() } else { format!(", note: {}", h.note) });
        println!("span {secs:.6} s");
        for (c, n) in s.singles.iter().enumerate() {
            println!("channel {c}: {n:>10} tags  {:>14.1} /s", if secs > 0.0 { *n as f64 / secs } else { 0.0 });
        }
        println!("lost: {} events in {} LOST records", s.lost, s.loss_records);
        println!("coincidences {}–{} within ±{} ticks (channel {} delayed {}): {}", spec.a, spec.b, spec.window, spec.a, spec.delay_a, s.coincidences);
        if let Some((b, &n)) = s.histogram.iter().enumerate().max_by_key(|x| *x.1) {
            if n > 0 {
                println!("t{} − t{} peaks at {} ticks ({n} entries)", spec.b, spec.a, b as i64 - spec.range as i64);
            }
        }
    }
    if let Some(e) = damaged {
        bail!("the file is damaged; everything before the damage was analysed: {e}");
    }
    Ok(())
}

fn rng(dev: &mut Device, r: RngCommand, json: bool) -> Result<()> {
    match r {
        RngCommand::Seed { no_mix } => {
            let mut key = [0u8; 10];
            let mut iv = [0u8; 10];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
            let res = dev.rng_seed(&key, &iv, !no_mix);
            zeroize::Zeroize::zeroize(&mut key);
            zeroize::Zeroize::zeroize(&mut iv);
            res?;
            println!("reseeded from host randomness{}", if no_mix { "" } else { ", mixed with the device's entropy pool" });
            Ok(())
        }
        RngCommand::Health => {
            let h = dev.rng_health()?;
            if json {
                return print_json(&h);
            }
            println!("ready {}  failed {}  (RCT {}, APT {})  start-up passed {}  pool {}  missed slots {}", h.ready, h.failed, h.rct_failed, h.apt_failed, h.started, h.pool_ready, h.missed);
            Ok(())
        }
        RngCommand::Clear => Ok(dev.rng_clear_health()?),
        RngCommand::Read { n, p_z, classes, slot_ticks, csv } => {
            dev.rng_configure(p_z, classes[0], classes[1], slot_ticks)?;
            let pb = if json { ProgressBar::hidden() } else { progress(n as u64, "choices") };
            let mut ch = Vec::with_capacity(n);
            let mut idle = 0;
            while ch.len() < n {
                let got = dev.rng_read(n - ch.len())?;
                if got.is_empty() {
                    idle += 1;
                    if idle > 2000 {
                        let h = dev.rng_health()?;
                        bail!("no choices arrive (health: {h:?}); seed the generator with `qkd rng seed`");
                    }
                    dev.pause(Duration::from_millis(1))?;
                }
                pb.inc(got.len() as u64);
                ch.extend(got);
            }
            dev.write(&regmap::RNG_SLOT_DIV, 0, 0)?;
            pb.finish_and_clear();
            if let Some(p) = &csv {
                let mut s = String::from("slot,basis,value,class\n");
                for c in &ch {
                    s += &format!("{},{},{},{}\n", c.slot, if c.basis_x { "X" } else { "Z" }, c.value as u8, c.class);
                }
                std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))?;
            }
            if json {
                return print_json(&ch);
            }
            let f = |k: usize| k as f64 / n as f64;
            let mut cls = [0usize; 4];
            ch.iter().for_each(|c| cls[c.class as usize & 3] += 1);
            println!("{n} choices: P(X) {:.4}  P(1) {:.4}  classes {:.4}/{:.4}/{:.4}  missed slots {}", f(ch.iter().filter(|c| c.basis_x).count()), f(ch.iter().filter(|c| c.value).count()), f(cls[0]), f(cls[1]), f(cls[2]), dev.rng_health()?.missed);
            Ok(())
        }
    }
}

fn reg_ref(s: &str) -> Result<(&'static regmap::Register, usize)> {
    let (name, idx) = match s.split_once('[') {
        Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().with_context(|| format!("{s:?}: the index must be a number"))?),
        None => (s, 0),
    };
    let r = regmap::by_name(name).ok_or_else(|| qkd_driver::DriverError::UnknownRegister(name.into()))?;
    Ok((r, idx))
}

fn regs(dev: &mut Device, r: RegsArgs, json: bool) -> Result<()> {
    for w in &r.write {
        let (lhs, v) = w.split_once('=').with_context(|| format!("{w:?}: write as NAME=VALUE"))?;
        let (reg, i) = reg_ref(lhs.trim())?;
        let v = parse_u32(v.trim()).map_err(anyhow::Error::msg)?;
        dev.write(reg, i, v)?;
    }
    let mut out = Vec::new();
    for name in &r.read {
        let (reg, i) = reg_ref(name)?;
        out.push((name.clone(), dev.read(reg, i)?));
    }
    if json {
        return print_json(&out.iter().map(|(n, v)| serde_json::json!({ "register": n, "value": v })).collect::<Vec<_>>());
    }
    for (n, v) in out {
        println!("{n:<20} {v:#010x} {v}");
    }
    Ok(())
}

fn selftest(dev: &mut Device, s: SelftestArgs, json: bool) -> Result<()> {
    for o in &s.only {
        if !qkd_tests::SUITE.iter().any(|b| &b.name == o) {
            bail!("no testbench {o:?}; the suite has: {}", qkd_tests::SUITE.iter().map(|b| b.name).collect::<Vec<_>>().join(", "));
        }
    }
    let quiet = json;
    let outcomes = qkd_tests::run_suite(dev, &s.only, |b| {
        if !quiet {
            eprintln!("running {:<12} {}", b.name, b.what);
        }
    });
    if json {
        print_json(&outcomes)?;
    } else {
        for o in &outcomes {
            println!("{:<12} {}  {}", o.name, if o.skipped { "SKIP" } else if o.passed { "PASS" } else { "FAIL" }, o.detail);
        }
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).map(|o| o.name).collect();
    if !failed.is_empty() {
        bail!("{} of {} testbenches failed: {}", failed.len(), outcomes.len(), failed.join(", "));
    }
    Ok(())
}

/// `qkd sim-board`: serves a Verilated board on a pseudo-terminal until interrupted.
pub fn sim_board(a: SimBoardArgs) -> Result<()> {
    let mut server = PtyServer::open(SimulatedBoard::new(a.seed)).context("opening a pseudo-terminal")?;
    println!("{}", server.path().display());
    eprintln!("serving the Verilated board on {} (use `qkd --port {} info`); Ctrl-C stops", server.path().display(), server.path().display());
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(s) = a.seconds {
        let st = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(s));
            st.store(true, Ordering::Relaxed);
        });
    }
    server.serve(&stop).context("serving the simulated board")?;
    Ok(())
}
