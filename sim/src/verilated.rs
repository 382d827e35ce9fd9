//! The Verilated gateware blocks, driven from Rust.
//!
//! Ports are raw pointers into the Verilated model, looked up once by name, so setting an
//! input or reading an output is a memory access; only `eval` crosses the FFI boundary (twice
//! per clock tick).

use std::ffi::{c_char, c_void, CString};
use std::ptr::NonNull;

use qkd_hdl::coincidence::{CoincidenceConfig, CoincidenceOutputs, GROUPS};
use qkd_hdl::tagger_model::{ReadPort, TaggerConfig};
use qkd_hdl::rng_model::{BasisRngIn, BasisRngOut};
use qkd_hdl::testsig::TestSignalConfig;
use qkd_hdl::verilog::TAGGER_CHANNELS;

/// The C functions of one Verilated module's shim.
pub(crate) struct Shim {
    pub(crate) new: unsafe extern "C" fn() -> *mut c_void,
    pub(crate) delete: unsafe extern "C" fn(*mut c_void),
    pub(crate) eval: unsafe extern "C" fn(*mut c_void),
    pub(crate) port: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
}

macro_rules! shim {
    ($new:ident, $delete:ident, $eval:ident, $port:ident) => {{
        extern "C" {
            fn $new() -> *mut std::ffi::c_void;
            fn $delete(p: *mut std::ffi::c_void);
            fn $eval(p: *mut std::ffi::c_void);
            fn $port(p: *mut std::ffi::c_void, name: *const std::ffi::c_char) -> *mut std::ffi::c_void;
        }
        $crate::verilated::Shim { new: $new, delete: $delete, eval: $eval, port: $port }
    }};
}
pub(crate) use shim;

extern "C" {
    fn qkd_time_tagger_run_cpp(p: *mut c_void, stim: *const u8, n: u64, pops: *mut u64) -> u64;
}

/// One Verilated model instance, owned.
pub(crate) struct Model {
    handle: NonNull<c_void>,
    shim: Shim,
}

impl Model {
    pub(crate) fn new(shim: Shim) -> Self {
        // SAFETY: the shim's `new` returns a fresh, owned model.
        let handle = NonNull::new(unsafe { (shim.new)() }).expect("Verilated model allocation failed");
        Self { handle, shim }
    }

    /// A pointer to port `name`, valid for the model's lifetime.
    ///
    /// # Panics
    /// If the module has no such port (a mismatch between the gateware and this wrapper).
    pub(crate) fn port<T>(&self, name: &str) -> *mut T {
        self.try_port(name).unwrap_or_else(|| panic!("the Verilated module has no port {name}"))
    }

    /// A pointer to port `name`, or `None` if the module has no such port.
    pub(crate) fn try_port<T>(&self, name: &str) -> Option<*mut T> {
        let c = CString::new(name).expect("port name");
        // SAFETY: the handle is live; the shim returns null for unknown names.
        let p = unsafe { (self.shim.port)(self.handle.as_ptr(), c.as_ptr()) };
        (!p.is_null()).then(|| p.cast())
    }

    #[inline]
    pub(crate) fn eval(&mut self) {
        // SAFETY: the handle is live.
        unsafe { (self.shim.eval)(self.handle.as_ptr()) }
    }

    /// One clock tick on the clock port `clock`: rising edge, then falling edge.
    #[inline]
    pub(crate) fn tick(&mut self, clock: *mut u8) {
        put(clock, 1);
        self.eval();
        put(clock, 0);
        self.eval();
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the handle came from the shim's `new` and is deleted once.
        unsafe { (self.shim.delete)(self.handle.as_ptr()) }
    }
}

// A Verilated model is owned exclusively by its wrapper and may move between threads.
unsafe impl Send for Model {}

/// One Verilated model with its clock port (and the clock of a block's read port,
/// `rd_clock`, where it has one: driven with the same clock).
pub(crate) struct Dut {
    model: Model,
    clock: *mut u8,
    rd_clock: Option<*mut u8>,
}

// The model and its port pointers move together.
unsafe impl Send for Dut {}

impl Dut {
    /// A new model, evaluated once so that its outputs are valid.
    pub(crate) fn new(shim: Shim) -> Self {
        let mut model = Model::new(shim);
        let clock = model.port("clock");
        let rd_clock = model.try_port("rd_clock");
        model.eval();
        Self { model, clock, rd_clock }
    }

    /// A pointer to port `name` (see [`Model::port`]).
    pub(crate) fn port<T>(&self, name: &str) -> *mut T {
        self.model.port(name)
    }

    /// One clock tick.
    pub(crate) fn tick(&mut self) {
        match self.rd_clock {
            None => self.model.tick(self.clock),
            Some(rd) => {
                put(self.clock, 1);
                put(rd, 1);
                self.model.eval();
                put(self.clock, 0);
                put(rd, 0);
                self.model.eval();
            }
        }
    }
}

/// Writes a value to an input port.
#[inline]
pub(crate) fn put<T>(p: *mut T, v: T) {
    // SAFETY: every port pointer stays valid while its model lives, and the wrappers hold
    // both together.
    unsafe { *p = v }
}

/// Reads a port.
#[inline]
pub(crate) fn get<T: Copy>(p: *mut T) -> T {
    // SAFETY: as for `put`.
    unsafe { *p }
}

/// Mask of the [`TAGGER_CHANNELS`] channel bits.
pub(crate) const CH_MASK: u8 = ((1u16 << TAGGER_CHANNELS) - 1) as u8;

/// The Verilated time tagger (`qkd_hdl::verilog::SimTagger`), in its power-on state.
pub struct VerilatedTagger {
    m: Model,
    clock: *mut u8,
    pins: *mut u8,
    enable: *mut u8,
    falling: *mut u8,
    dead_time: Vec<*mut u16>,
    read: *mut u8,
    data_out: *mut u32,
    empty: *mut u8,
    occupancy: *mut u16,
    ticks: u64,
}

unsafe impl Send for VerilatedTagger {}

impl Default for VerilatedTagger {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedTagger {
    /// Number of detector channels of the Verilated core.
    pub const CHANNELS: usize = TAGGER_CHANNELS;

    /// A new model, evaluated once so that its outputs are valid.
    pub fn new() -> Self {
        let mut m = Model::new(shim!(qkd_time_tagger_new, qkd_time_tagger_delete, qkd_time_tagger_eval, qkd_time_tagger_port));
        let t = Self {
            clock: m.port("clock"),
            pins: m.port("pins"),
            enable: m.port("enable"),
            falling: m.port("falling"),
            dead_time: (0..TAGGER_CHANNELS).map(|c| m.port(&format!("dead_time${c}"))).collect(),
            read: m.port("read"),
            data_out: m.port("data_out"),
            empty: m.port("empty"),
            occupancy: m.port("occupancy"),
            ticks: 0,
            m: {
                m.eval();
                m
            },
        };
        put(t.clock, 0);
        t
    }

    /// Applies a configuration to the input ports (it takes effect at the next clock edge).
    pub fn set_config(&mut self, cfg: &TaggerConfig) {
        put(self.enable, cfg.enable & CH_MASK);
        put(self.falling, cfg.falling & CH_MASK);
        for (p, &d) in self.dead_time.iter().zip(&cfg.dead_time) {
            put(*p, d);
        }
    }

    /// One clock tick with pin levels `pins` and read strobe `read`; returns what the read
    /// port showed during the tick (as [`qkd_hdl::tagger_model::TaggerModel::step`] does).
    #[inline]
    pub fn step(&mut self, pins: u8, read: bool) -> ReadPort {
        put(self.pins, pins & CH_MASK);
        put(self.read, read as u8);
        let empty = get(self.empty) != 0;
        let data = get(self.data_out);
        put(self.clock, 1);
        self.m.eval();
        put(self.clock, 0);
        self.m.eval();
        self.ticks += 1;
        ReadPort { empty, popped: (read && !empty).then_some(data) }
    }

    /// Entries in the event FIFO, as the writer counts them.
    pub fn occupancy(&self) -> u16 {
        get(self.occupancy)
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Runs `stim` (per tick: bits 0..6 pins, bit 7 read strobe) in a pure C++ loop, the
    /// baseline of the speed benchmark. Returns (records popped, checksum of them).
    pub fn run_cpp(&mut self, stim: &[u8]) -> (u64, u64) {
        let mut pops = 0;
        // SAFETY: the handle is live and `stim` valid for the call.
        let sum = unsafe { qkd_time_tagger_run_cpp(self.m.handle.as_ptr(), stim.as_ptr(), stim.len() as u64, &mut pops) };
        self.ticks += stim.len() as u64;
        (pops, sum)
    }

    /// The same loop and checksum as [`Self::run_cpp`], driven from Rust.
    pub fn run_rust(&mut self, stim: &[u8]) -> (u64, u64) {
        let (mut pops, mut sum) = (0u64, 0u64);
        for &s in stim {
            if let Some(r) = self.step(s & 0x7f, s >> 7 != 0).popped {
                sum = sum.wrapping_mul(31).wrapping_add(r as u64);
                pops += 1;
            }
        }
        (pops, sum)
    }
}

/// The Verilated coincidence counter (`qkd_hdl::coincidence::Coincidence`, 5 channels).
pub struct VerilatedCoincidence {
    m: Model,
    clock: *mut u8,
    /// The count read port's clock, driven with `clock` here.
    rd_clock: *mut u8,
    hits: *mut u8,
    delay: Vec<*mut u8>,
    window: *mut u8,
    group: Vec<*mut u8>,
    gate: *mut u32,
    coinc: *mut u8,
    rd_addr: *mut u8,
    rd_data: *mut u32,
    gate_seq: *mut u16,
}

unsafe impl Send for VerilatedCoincidence {}

impl Default for VerilatedCoincidence {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedCoincidence {
    /// A new model, evaluated once.
    pub fn new() -> Self {
        let mut m = Model::new(shim!(qkd_coincidence_new, qkd_coincidence_delete, qkd_coincidence_eval, qkd_coincidence_port));
        m.eval();
        Self {
            clock: m.port("clock"),
            rd_clock: m.port("rd_clock"),
            hits: m.port("hits"),
            delay: (0..TAGGER_CHANNELS).map(|c| m.port(&format!("delay${c}"))).collect(),
            window: m.port("window"),
            group: (0..GROUPS).map(|g| m.port(&format!("group${g}"))).collect(),
            gate: m.port("gate"),
            coinc: m.port("coinc"),
            rd_addr: m.port("rd_addr"),
            rd_data: m.port("rd_data"),
            gate_seq: m.port("gate_seq"),
            m,
        }
    }

    /// Applies a configuration to the input ports.
    pub fn set_config(&mut self, cfg: &CoincidenceConfig) {
        for (p, &d) in self.delay.iter().zip(&cfg.delay) {
            put(*p, d);
        }
        put(self.window, cfg.window);
        for (p, &g) in self.group.iter().zip(&cfg.group) {
            put(*p, g & CH_MASK);
        }
        put(self.gate, cfg.gate);
    }

    /// One tick with channel events `hits` and count-RAM read address `rd_addr`; returns the
    /// outputs shown during the tick.
    pub fn step(&mut self, hits: u8, rd_addr: u8) -> CoincidenceOutputs {
        put(self.hits, hits & CH_MASK);
        put(self.rd_addr, rd_addr & 0xF);
        let out = CoincidenceOutputs { coinc: get(self.coinc), gate_seq: get(self.gate_seq), rd_data: get(self.rd_data) };
        put(self.clock, 1);
        put(self.rd_clock, 1);
        self.m.eval();
        put(self.clock, 0);
        put(self.rd_clock, 0);
        self.m.eval();
        out
    }
}

/// The Verilated test-signal generator (`qkd_hdl::testsig::TestSignal`, 5 channels).
pub struct VerilatedTestSignal {
    m: Model,
    clock: *mut u8,
    enable: *mut u8,
    threshold: Vec<*mut u16>,
    pair_enable: *mut u8,
    pair_src: *mut u8,
    pair_dst: *mut u8,
    pair_delay: *mut u16,
    pins: *mut u8,
}

unsafe impl Send for VerilatedTestSignal {}

impl Default for VerilatedTestSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedTestSignal {
    /// A new model, evaluated once.
    pub fn new() -> Self {
        let mut m = Model::new(shim!(qkd_test_signal_new, qkd_test_signal_delete, qkd_test_signal_eval, qkd_test_signal_port));
        m.eval();
        Self {
            clock: m.port("clock"),
            enable: m.port("enable"),
            threshold: (0..TAGGER_CHANNELS).map(|c| m.port(&format!("threshold${c}"))).collect(),
            pair_enable: m.port("pair_enable"),
            pair_src: m.port("pair_src"),
            pair_dst: m.port("pair_dst"),
            pair_delay: m.port("pair_delay"),
            pins: m.port("pins"),
            m,
        }
    }

    /// Applies a configuration to the input ports.
    pub fn set_config(&mut self, cfg: &TestSignalConfig) {
        put(self.enable, cfg.enable as u8);
        for (p, &t) in self.threshold.iter().zip(&cfg.threshold) {
            put(*p, t);
        }
        put(self.pair_enable, cfg.pair_enable as u8);
        // The block takes the pair channels one-hot (the core decodes them from `TS_CONFIG`).
        put(self.pair_src, qkd_hdl::testsig::channel_mask(cfg.pair_src, TAGGER_CHANNELS));
        put(self.pair_dst, qkd_hdl::testsig::channel_mask(cfg.pair_dst, TAGGER_CHANNELS));
        put(self.pair_delay, cfg.pair_delay);
    }

    /// One tick; returns the pins shown during the tick.
    pub fn step(&mut self) -> u8 {
        let pins = get(self.pins);
        put(self.clock, 1);
        self.m.eval();
        put(self.clock, 0);
        self.m.eval();
        pins
    }
}

/// The Verilated random basis generator (`qkd_hdl::basis_rng::BasisRng`).
pub struct VerilatedBasisRng {
    m: Model,
    clock: *mut u8,
    inputs: BasisRngPorts,
    outputs: BasisRngOutPorts,
}

struct BasisRngPorts {
    raw_bit: *mut u8,
    raw_valid: *mut u8,
    rct_cutoff: *mut u8,
    apt_cutoff: *mut u16,
    health_clear: *mut u8,
    reseed: *mut u8,
    seed_valid: *mut u8,
    seed_data: *mut u16,
    mix_enable: *mut u8,
    thr_z: *mut u16,
    thr_c0: *mut u16,
    thr_c1: *mut u16,
    slot: *mut u8,
    rec_ready: *mut u8,
}

struct BasisRngOutPorts {
    choice_valid: *mut u8,
    basis: *mut u8,
    value: *mut u8,
    intensity: *mut u8,
    rec_valid: *mut u8,
    rec_data: *mut u32,
    ready: *mut u8,
    health_failed: *mut u8,
    rct_failed: *mut u8,
    apt_failed: *mut u8,
    health_started: *mut u8,
    pool_ready: *mut u8,
    missed: *mut u16,
}

unsafe impl Send for VerilatedBasisRng {}

impl Default for VerilatedBasisRng {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedBasisRng {
    /// A new model, evaluated once.
    pub fn new() -> Self {
        let mut m = Model::new(shim!(qkd_basis_rng_new, qkd_basis_rng_delete, qkd_basis_rng_eval, qkd_basis_rng_port));
        m.eval();
        Self {
            clock: m.port("clock"),
            inputs: BasisRngPorts {
                raw_bit: m.port("raw_bit"),
                raw_valid: m.port("raw_valid"),
                rct_cutoff: m.port("rct_cutoff"),
                apt_cutoff: m.port("apt_cutoff"),
                health_clear: m.port("health_clear"),
                reseed: m.port("reseed"),
                seed_valid: m.port("seed_valid"),
                seed_data: m.port("seed_data"),
                mix_enable: m.port("mix_enable"),
                thr_z: m.port("thr_z"),
                thr_c0: m.port("thr_c0"),
                thr_c1: m.port("thr_c1"),
                slot: m.port("slot"),
                rec_ready: m.port("rec_ready"),
            },
            outputs: BasisRngOutPorts {
                choice_valid: m.port("choice_valid"),
                basis: m.port("basis"),
                value: m.port("value"),
                intensity: m.port("intensity"),
                rec_valid: m.port("rec_valid"),
                rec_data: m.port("rec_data"),
                ready: m.port("ready"),
                health_failed: m.port("health_failed"),
                rct_failed: m.port("rct_failed"),
                apt_failed: m.port("apt_failed"),
                health_started: m.port("health_started"),
                pool_ready: m.port("pool_ready"),
                missed: m.port("missed"),
            },
            m,
        }
    }

    /// One tick with inputs `x`; returns the outputs shown during the tick (as
    /// `BasisRngModel::outputs` before `BasisRngModel::tick`).
    pub fn tick(&mut self, x: &BasisRngIn) -> BasisRngOut {
        let i = &self.inputs;
        put(i.raw_bit, x.raw_bit as u8);
        put(i.raw_valid, x.raw_valid as u8);
        put(i.rct_cutoff, x.rct_cutoff as u8);
        put(i.apt_cutoff, x.apt_cutoff as u16);
        put(i.health_clear, x.health_clear as u8);
        put(i.reseed, x.reseed as u8);
        put(i.seed_valid, x.seed_valid as u8);
        put(i.seed_data, x.seed_data);
        put(i.mix_enable, x.mix_enable as u8);
        put(i.thr_z, x.thr_z);
        put(i.thr_c0, x.thr_c0);
        put(i.thr_c1, x.thr_c1);
        put(i.slot, x.slot as u8);
        put(i.rec_ready, x.rec_ready as u8);
        let o = &self.outputs;
        let out = BasisRngOut {
            choice_valid: get(o.choice_valid) != 0,
            basis: get(o.basis) != 0,
            value: get(o.value) != 0,
            intensity: get(o.intensity),
            rec_valid: get(o.rec_valid) != 0,
            rec_data: get(o.rec_data),
            ready: get(o.ready) != 0,
            health_failed: get(o.health_failed) != 0,
            rct_failed: get(o.rct_failed) != 0,
            apt_failed: get(o.apt_failed) != 0,
            health_started: get(o.health_started) != 0,
            pool_ready: get(o.pool_ready) != 0,
            missed: get(o.missed) as u32,
        };
        put(self.clock, 1);
        self.m.eval();
        put(self.clock, 0);
        self.m.eval();
        out
    }
}
