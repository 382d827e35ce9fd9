//! `qkd`: the qkd-station command line. Thin: the library (`qkd_host`) does the work.
//!
//! Subcommands:
//! * `qkd distill` — run one station (Alice or Bob) of key distillation over TCP;
//! * `qkd distill-gen` — write a matched pair of synthetic input files and pre-shared keys;
//! * `qkd bench distill` — reconciliation report (CSV + SVG) for Cascade and LDPC;
//! * `qkd demo` — a simulated satellite pass through the tagger to distilled key;
//! * device commands (`info`, `config`, `count`, `coinc`, `histogram`, `stream`, `rng`, `regs`,
//!   `selftest`), `replay` of a tag file, and `sim-board` (a Verilated board on a pty).
//!
//! File formats: see `qkd_host::distill::station::files`.

mod demo;
mod device_cmd;

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use qkd_host::distill::auth::{KeyPool, Role};
use qkd_host::distill::estimation::EstimationParams;
use qkd_host::distill::sifting::SiftMode;
use qkd_host::distill::station::{
    files, report, run_station, synthetic, LocalOptions, Method, Protocol, StationConfig, StationInput,
};

#[derive(Parser)]
#[command(name = "qkd", version, about = "qkd-station host tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    device: device_cmd::DeviceArgs,
    /// Configuration file (TOML): tables [device], [channels], [test_signal]; flags win.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run one station of key distillation (sifting → estimation → reconciliation →
    /// verification → privacy amplification) against the peer over TCP.
    Distill(DistillArgs),
    /// Write matched synthetic input files (DIR/alice.rec, DIR/bob.rec) and a pre-shared key
    /// for each station (DIR/alice.psk, DIR/bob.psk).
    DistillGen(GenArgs),
    /// Benchmarks and reports.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulate a satellite pass (Micius 2017 decoy BB84 by default; `--protocol bbm92`: Micius
    /// 2020 entangled pairs to two stations, with clock sync from the tag streams) through the
    /// hardware-accurate tagger (RTL slice + bit-exact model) to distilled key, with a report,
    /// a plot and the key files. Needs no hardware and no flags.
    Demo(demo::DemoArgs),
    /// Replay a tag file written by `qkd stream` through the same analysis (rates, losses,
    /// coincidences, delay), without a device.
    Replay(device_cmd::ReplayArgs),
    /// Serve a Verilated board on a pseudo-terminal and print its path: every `qkd --port`
    /// command then works against the simulated RTL as against a board.
    SimBoard(device_cmd::SimBoardArgs),
    #[command(flatten)]
    Device(device_cmd::DeviceCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Cascade and LDPC over QBERs and block sizes: efficiency, throughput, round trips, frame
    /// error rate, as DIR/distill-report.csv and DIR/distill-report.svg.
    Distill(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Alice,
    Bob,
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Cascade,
    Ldpc,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum ProtocolArg {
    /// Prepare-and-measure BB84 with two decoys (Lim et al. 2014 key length).
    DecoyBb84,
    /// Prepare-and-measure BB84 with a single-photon source (Tomamichel et al. 2012).
    Bb84,
    /// Entanglement-based BBM92 on timestamped detections (Tomamichel et al. 2012).
    Bbm92,
}

#[derive(Clone, Copy, ValueEnum)]
enum SiftModeArg {
    /// Z is the key basis; X is disclosed for estimation.
    Asymmetric,
    /// Both bases are key; errors from a random sample.
    Symmetric,
}

/// Protocol settings; both stations must pass the same values.
#[derive(Args)]
struct ProtocolArgs {
    /// Protocol.
    #[arg(long, value_enum, default_value = "decoy-bb84")]
    protocol: ProtocolArg,
    /// Decoy intensities μ1,μ2,μ3 (photons per pulse).
    #[arg(long, value_delimiter = ',', num_args = 3, default_values_t = [0.5, 0.15, 0.0])]
    intensities: Vec<f64>,
    /// Probabilities of the three intensities.
    #[arg(long, value_delimiter = ',', num_args = 3, default_values_t = [0.5, 0.3, 0.2])]
    probabilities: Vec<f64>,
    /// BBM92 coincidence window (ticks).
    #[arg(long, default_value_t = 4)]
    window: u64,
    /// BBM92: Bob's clock offset subtracted from his timestamps (ticks).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    offset: i64,
    /// BBM92: Bob flips his Z-basis bits (anti-correlated state).
    #[arg(long)]
    flip_z: bool,
    /// BBM92: Bob flips his X-basis bits.
    #[arg(long)]
    flip_x: bool,
}

impl ProtocolArgs {
    fn protocol(&self) -> Protocol {
        match self.protocol {
            ProtocolArg::DecoyBb84 => Protocol::DecoyBb84 {
                intensities: [self.intensities[0], self.intensities[1], self.intensities[2]],
                probabilities: [self.probabilities[0], self.probabilities[1], self.probabilities[2]],
            },
            ProtocolArg::Bb84 => Protocol::Bb84,
            ProtocolArg::Bbm92 => Protocol::Bbm92 { window: self.window, offset: self.offset, bob_flip: [self.flip_z, self.flip_x] },
        }
    }
}

#[derive(Args)]
struct DistillArgs {
    /// Which station this is.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Wait for the peer on this address (e.g. 127.0.0.1:7000).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    listen: Option<String>,
    /// Connect to the peer at this address, retrying until --connect-timeout.
    #[arg(long)]
    connect: Option<String>,
    /// Seconds to wait for the peer to connect or accept.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// Seconds a read may block once connected.
    #[arg(long, default_value_t = 600.0)]
    io_timeout: f64,
    /// Input records: prepared states (Alice, prepare-and-measure) or detections.
    #[arg(long)]
    input: PathBuf,
    /// Pre-shared authentication key file; rewritten after the run with the unused rest (and,
    /// on success, refilled from the new key unless --no-replenish).
    #[arg(long)]
    psk: PathBuf,
    /// Output key file (raw bytes, LSB first).
    #[arg(long)]
    out: PathBuf,
    /// Write the run's report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Reconciliation method.
    #[arg(long, value_enum, default_value = "cascade")]
    method: MethodArg,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Sifting mode.
    #[arg(long, value_enum, default_value = "asymmetric")]
    sift_mode: SiftModeArg,
    /// Abort when an error-rate upper bound exceeds this (probability).
    #[arg(long, default_value_t = 0.11)]
    max_qber: f64,
    /// Fraction of the key disclosed as a random sample.
    #[arg(long, default_value_t = 0.05)]
    sample_fraction: f64,
    /// Failure probability of the estimation bounds.
    #[arg(long, default_value_t = 1e-10)]
    eps_pe: f64,
    /// Secrecy parameter ε_sec.
    #[arg(long, default_value_t = 1e-10)]
    eps_sec: f64,
    /// Correctness parameter ε_cor.
    #[arg(long, default_value_t = 1e-15)]
    eps_cor: f64,
    /// Verification block size (bits).
    #[arg(long, default_value_t = 1 << 18)]
    verify_block: usize,
    /// LDPC target efficiency.
    #[arg(long, default_value_t = qkd_host::distill::ldpc::DEFAULT_TARGET_EFFICIENCY)]
    ldpc_efficiency: f64,
    /// Do not refill the pre-shared key from the distilled key.
    #[arg(long)]
    no_replenish: bool,
    /// Seed for the squashing generator (reproducible tests only; default: from the OS).
    #[arg(long)]
    squash_seed: Option<u64>,
}

#[derive(Args)]
struct GenArgs {
    /// Output directory.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Slots (prepare-and-measure) or pairs (BBM92).
    #[arg(long, default_value_t = 10_000_000)]
    slots: u64,
    /// Misalignment error (probability); the QBER is higher by the squashed multi-clicks.
    #[arg(long, default_value_t = 0.01)]
    qber: f64,
    /// Transmittance including detector efficiency (probability).
    #[arg(long, default_value_t = 0.2)]
    transmittance: f64,
    /// Dark-count probability per detector per slot.
    #[arg(long, default_value_t = 1e-6)]
    dark_count: f64,
    /// Probability of the Z basis.
    #[arg(long, default_value_t = 0.5)]
    p_z: f64,
    /// Bytes of pre-shared key to write.
    #[arg(long, default_value_t = 16384)]
    psk_bytes: usize,
    /// Random seed (default: from the OS).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct BenchArgs {
    /// Output directory.
    #[arg(long, default_value = "target/distill-report")]
    out: PathBuf,
    /// QBERs (probabilities).
    #[arg(long, value_delimiter = ',', default_values_t = [0.005, 0.01, 0.02, 0.04, 0.06, 0.08])]
    qbers: Vec<f64>,
    /// Block sizes (bits).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000, 1_000_000])]
    sizes: Vec<usize>,
    /// Trials per point.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Distill(a) => distill(a),
        Command::DistillGen(a) => generate(a),
        Command::Bench(BenchCommand::Distill(a)) => bench_distill(a),
        Command::Demo(a) => demo::run(a),
        Command::Replay(mut a) => {
            a.json |= cli.json;
            device_cmd::replay(a)
        }
        Command::SimBoard(a) => device_cmd::sim_board(a),
        Command::Device(c) => device_cmd::run(c, &cli.device, cli.config.as_deref(), cli.json),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.001))
}

/// Accepts one connection, or fails after `timeout`.
fn accept(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!("qkd distill: listening on {}", listener.local_addr()?);
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, peer)) => {
                eprintln!("qkd distill: peer {peer} connected");
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => bail!("no peer connected to {addr} within {timeout:?}"),
            Err(e) => return Err(e).context("accept failed"),
        }
    }
}

/// Connects, retrying until `timeout` (the peer may not be listening yet).
fn connect(addr: &str, timeout: Duration) -> Result<TcpStream> {
    let target = addr.to_socket_addrs().with_context(|| format!("bad address {addr}"))?.next().context("no address")?;
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot connect to {addr} within {timeout:?}")),
        }
    }
}

fn distill(a: DistillArgs) -> Result<()> {
    let role = match a.role {
        RoleArg::Alice => Role::Alice,
        RoleArg::Bob => Role::Bob,
    };
    let protocol = a.protocol.protocol();
    let config = StationConfig {
        protocol,
        sift_mode: match a.sift_mode {
            SiftModeArg::Asymmetric => SiftMode::Asymmetric,
            SiftModeArg::Symmetric => SiftMode::Symmetric,
        },
        method: match a.method {
            MethodArg::Cascade => Method::Cascade,
            MethodArg::Ldpc => Method::Ldpc,
        },
        estimation: EstimationParams { sample_fraction: a.sample_fraction, eps_pe: a.eps_pe, max_qber: a.max_qber },
        eps_sec: a.eps_sec,
        eps_cor: a.eps_cor,
        verify_block_bits: a.verify_block,
        ldpc_target_efficiency: a.ldpc_efficiency,
        replenish_psk: !a.no_replenish,
    };
    config.validate().context("invalid settings")?;
    let prepared = role == Role::Alice && !matches!(protocol, Protocol::Bbm92 { .. });
    let input = if prepared {
        StationInput::Prepared(files::read_alice_records(&a.input).context("reading Alice's prepared-state records")?)
    } else {
        StationInput::Detections(files::read_detections(&a.input).context("reading detection records")?)
    };
    let psk = files::read_key_file(&a.psk).context("reading the pre-shared key")?;
    let stream = match (&a.listen, &a.connect) {
        (Some(addr), _) => accept(addr, secs(a.connect_timeout))?,
        (None, Some(addr)) => connect(addr, secs(a.connect_timeout))?,
        (None, None) => bail!("give --listen or --connect"),
    };
    stream.set_read_timeout(Some(secs(a.io_timeout)))?;
    stream.set_nodelay(true)?;
    let local = LocalOptions { squash_seed: a.squash_seed };
    match run_station(role, &config, &local, input, stream, KeyPool::from_bits(psk)) {
        Ok(out) => {
            let al = out.report.psk_alignment;
            if al.dropped_bits > 0 {
                println!(
                    "{role}: pre-shared key aligned with the peer's after an earlier failed run: dropped {} of {} bits (peer holds {})",
                    al.dropped_bits, al.local_bits, al.peer_bits
                );
            }
            files::write_key_file(&a.out, &out.key).context("writing the key")?;
            files::write_key_file(&a.psk, &out.next_psk).context("rewriting the pre-shared key")?;
            if let Some(p) = &a.report {
                write_report(p, &out.report)?;
            }
            let r = &out.report;
            println!(
                "{role}: {} key bits written to {} (sifted {} bits, QBER estimate {:.3}%, leak_EC {} bits, \
                 f = {:.3}, MAC key {} bits, {} round trips, {:.2} s)",
                r.final_key_bits,
                a.out.display(),
                r.sifted_key_bits,
                r.qber_for_reconciliation * 100.0,
                r.leak_ec_bits,
                r.efficiency,
                r.mac_key_bits,
                r.channel.round_trips,
                r.timings.total
            );
            Ok(())
        }
        Err(fail) => {
            files::write_key_file(&a.psk, &fail.next_psk)
                .context("rewriting the pre-shared key after the failed run")?;
            let aligned = match fail.psk_dropped_bits {
                0 => String::new(),
                d => format!("; {d} bits dropped first to align with the peer's pool"),
            };
            Err(anyhow::Error::new(fail.error)).context(format!(
                "{role}: distillation aborted ({} pre-shared key bits consumed{aligned}; {} bits left in {}; the next run aligns the two stations' pools)",
                fail.mac_key_bits,
                fail.next_psk.len(),
                a.psk.display()
            ))
        }
    }
}

fn write_report(path: &Path, r: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(r)?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}

fn generate(a: GenArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let mut rng = match a.seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_entropy(),
    };
    let (alice, bob) = (a.dir.join("alice.rec"), a.dir.join("bob.rec"));
    match a.protocol.protocol {
        ProtocolArg::Bbm92 => {
            let m = synthetic::EntangledModel {
                pairs: a.slots,
                transmittance: [a.transmittance.sqrt(), a.transmittance.sqrt()],
                p_z: a.p_z,
                misalignment: a.qber,
                dark_count: a.dark_count,
                offset_ticks: a.protocol.offset.max(0) as u64,
                ..Default::default()
            };
            let (da, db) = synthetic::entangled(&m, &mut rng);
            files::write_detections(&alice, &da)?;
            files::write_detections(&bob, &db)?;
            println!("{} and {} detections", da.len(), db.len());
        }
        p => {
            let m = synthetic::PrepareMeasureModel {
                slots: a.slots,
                intensities: [a.protocol.intensities[0], a.protocol.intensities[1], a.protocol.intensities[2]],
                probabilities: [a.protocol.probabilities[0], a.protocol.probabilities[1], a.protocol.probabilities[2]],
                p_z: a.p_z,
                transmittance: a.transmittance,
                misalignment: a.qber,
                dark_count: a.dark_count,
                single_photon: p == ProtocolArg::Bb84,
            };
            let (ra, db) = synthetic::prepare_measure(&m, &mut rng);
            files::write_alice_records(&alice, &ra)?;
            files::write_detections(&bob, &db)?;
            println!("{} slots, {} detections", ra.len(), db.len());
        }
    }
    let mut psk = vec![0u8; a.psk_bytes];
    rand::RngCore::fill_bytes(&mut rng, &mut psk);
    let bits = qkd_host::distill::auth::bits_from_bytes(&psk);
    zeroize::Zeroize::zeroize(&mut psk);
    files::write_key_file(&a.dir.join("alice.psk"), &bits)?;
    files::write_key_file(&a.dir.join("bob.psk"), &bits)?;
    let d = a.dir.display();
    println!("wrote {d}/alice.rec {d}/bob.rec {d}/alice.psk {d}/bob.psk; run for example:");
    println!("  qkd distill --role alice --listen 127.0.0.1:7000 --input {d}/alice.rec --psk {d}/alice.psk --out {d}/alice.key");
    println!("  qkd distill --role bob --connect 127.0.0.1:7000 --input {d}/bob.rec --psk {d}/bob.psk --out {d}/bob.key");
    println!("(add the same --protocol/--intensities/--probabilities/--window/--offset options to both)");
    Ok(())
}

fn bench_distill(a: BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let rows = report::sweep(&a.qbers, &a.sizes, a.trials, a.seed, |r| {
        eprintln!(
            "{:8} n={:8} QBER={:.3}: f={:.3} {:.2e} bits/s {:.1} round trips FER={:.4}",
            r.method, r.n, r.qber, r.efficiency, r.throughput_bits_per_s, r.round_trips, r.frame_error_rate
        )
    })?;
    let (csv, svg) = (a.out.join("distill-report.csv"), a.out.join("distill-report.svg"));
    report::write_csv(&rows, &csv)?;
    report::write_svg(&rows, &svg)?;
    println!("wrote {} and {}", csv.display(), svg.display());
    Ok(())
}
