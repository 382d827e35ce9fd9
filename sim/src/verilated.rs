//! The Verilated time tagger (`qkd_hdl::verilog::SimTagger`), driven from Rust.
//!
//! Ports are raw pointers into the Verilated model, so setting an input or reading an output
//! is a memory access; only `eval` crosses the FFI boundary (twice per clock tick).

use std::ffi::c_void;
use std::ptr::NonNull;

use qkd_hdl::tagger_model::{ReadPort, TaggerConfig};
use qkd_hdl::verilog::TAGGER_CHANNELS;

#[repr(C)]
struct RawPorts {
    clock: *mut u8,
    pins: *mut u8,
    enable: *mut u8,
    falling: *mut u8,
    dead_time: [*mut u16; 8],
    read: *mut u8,
    data_out: *mut u32,
    empty: *mut u8,
    occupancy: *mut u16,
}

extern "C" {
    fn tt_new() -> *mut c_void;
    fn tt_delete(p: *mut c_void);
    fn tt_eval(p: *mut c_void);
    fn tt_ports(p: *mut c_void, out: *mut RawPorts);
    fn tt_run_cpp(p: *mut c_void, stim: *const u8, n: u64, pops: *mut u64) -> u64;
}

/// The Verilated time tagger with [`TAGGER_CHANNELS`] channels, in its power-on state.
pub struct VerilatedTagger {
    handle: NonNull<c_void>,
    ports: RawPorts,
    ticks: u64,
}

// The model is owned exclusively by this value; Verilator models may move between threads.
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
        // SAFETY: tt_new returns a fresh, owned model; tt_ports fills pointers to its fields,
        // which live as long as the model.
        unsafe {
            let handle = NonNull::new(tt_new()).expect("tt_new returned null");
            let mut ports = std::mem::MaybeUninit::<RawPorts>::uninit();
            tt_ports(handle.as_ptr(), ports.as_mut_ptr());
            let ports = ports.assume_init();
            *ports.clock = 0;
            tt_eval(handle.as_ptr());
            Self { handle, ports, ticks: 0 }
        }
    }

    /// Applies a configuration to the input ports (it takes effect at the next clock edge).
    pub fn set_config(&mut self, cfg: &TaggerConfig) {
        let mask = ((1u16 << TAGGER_CHANNELS) - 1) as u8;
        // SAFETY: the pointers are valid for the model's lifetime (see `new`).
        unsafe {
            *self.ports.enable = cfg.enable & mask;
            *self.ports.falling = cfg.falling & mask;
            for (c, &d) in cfg.dead_time.iter().enumerate().take(TAGGER_CHANNELS) {
                *self.ports.dead_time[c] = d;
            }
        }
    }

    /// One clock tick with pin levels `pins` and read strobe `read`; returns what the read
    /// port showed during the tick (as [`qkd_hdl::tagger_model::TaggerModel::step`] does).
    #[inline]
    pub fn step(&mut self, pins: u8, read: bool) -> ReadPort {
        // SAFETY: the pointers are valid for the model's lifetime (see `new`).
        unsafe {
            *self.ports.pins = pins & ((1u16 << TAGGER_CHANNELS) - 1) as u8;
            *self.ports.read = read as u8;
            let empty = *self.ports.empty != 0;
            let data = *self.ports.data_out;
            *self.ports.clock = 1;
            tt_eval(self.handle.as_ptr());
            *self.ports.clock = 0;
            tt_eval(self.handle.as_ptr());
            self.ticks += 1;
            ReadPort { empty, popped: (read && !empty).then_some(data) }
        }
    }

    /// Entries in the event FIFO, as the writer counts them.
    pub fn occupancy(&self) -> u16 {
        // SAFETY: valid pointer (see `new`).
        unsafe { *self.ports.occupancy }
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Runs `stim` (per tick: bits 0..6 pins, bit 7 read strobe) in a pure C++ loop, the
    /// baseline of the speed benchmark. Returns (records popped, checksum of them).
    pub fn run_cpp(&mut self, stim: &[u8]) -> (u64, u64) {
        let mut pops = 0;
        // SAFETY: `stim` is a valid slice for the duration of the call.
        let sum = unsafe { tt_run_cpp(self.handle.as_ptr(), stim.as_ptr(), stim.len() as u64, &mut pops) };
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

impl Drop for VerilatedTagger {
    fn drop(&mut self) {
        // SAFETY: the handle came from tt_new and is deleted once.
        unsafe { tt_delete(self.handle.as_ptr()) }
    }
}
