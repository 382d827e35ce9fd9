//! The Verilated correlation histogram and coincidence stream filter, driven from Rust.
//!
//! Same scheme as [`crate::verilated`], whose model owner and port accessors it uses.

use crate::verilated::{get, put, shim, Dut, CH_MASK};

use qkd_hdl::coinc_filter::{FilterConfig, FILTER_GROUPS, FILTER_MAX_DELAY, FILTER_MAX_WINDOW};
use qkd_hdl::histogram::{HistogramIn, HistogramOut, HIST_BIN_BITS};
use qkd_hdl::verilog::TAGGER_CHANNELS;

/// The Verilated correlation histogram (`qkd_hdl::histogram::Histogram`, 5 channels,
/// [`HIST_BIN_BITS`]-bit bin numbers), in its power-on state.
pub struct VerilatedHistogram {
    d: Dut,
    hits: *mut u8,
    start_ch: *mut u8,
    stop_ch: *mut u8,
    offset: *mut u8,
    shift: *mut u8,
    enable: *mut u8,
    clear: *mut u8,
    rd_addr: *mut u16,
    rd_data: *mut u32,
    overflow: *mut u32,
    busy: *mut u8,
}

unsafe impl Send for VerilatedHistogram {}

impl Default for VerilatedHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedHistogram {
    /// Bin-number width, in bits.
    pub const BIN_BITS: usize = HIST_BIN_BITS;

    /// A new model.
    pub fn new() -> Self {
        let d = Dut::new(shim!(qkd_histogram_new, qkd_histogram_delete, qkd_histogram_eval, qkd_histogram_port));
        Self {
            hits: d.port("hits"),
            start_ch: d.port("start_ch"),
            stop_ch: d.port("stop_ch"),
            offset: d.port("offset"),
            shift: d.port("shift"),
            enable: d.port("enable"),
            clear: d.port("clear"),
            rd_addr: d.port("rd_addr"),
            rd_data: d.port("rd_data"),
            overflow: d.port("overflow"),
            busy: d.port("busy"),
            d,
        }
    }

    /// One tick with inputs `x`; returns the outputs shown during the tick (as
    /// `HistogramModel::step` does).
    pub fn step(&mut self, x: &HistogramIn) -> HistogramOut {
        put(self.hits, x.hits & CH_MASK);
        put(self.start_ch, x.start_ch & 7);
        put(self.stop_ch, x.stop_ch & 7);
        put(self.offset, x.offset);
        put(self.shift, x.shift & 15);
        put(self.enable, x.enable as u8);
        put(self.clear, x.clear as u8);
        put(self.rd_addr, x.rd_addr & ((1 << HIST_BIN_BITS) - 1));
        let out = HistogramOut { rd_data: get(self.rd_data), overflow: get(self.overflow), busy: get(self.busy) != 0 };
        self.d.tick();
        out
    }
}

/// The Verilated coincidence stream filter (`qkd_hdl::coinc_filter::CoincFilter`, 5
/// channels), in its power-on state.
pub struct VerilatedCoincFilter {
    d: Dut,
    hits: *mut u8,
    delay: Vec<*mut u8>,
    window: *mut u8,
    group: Vec<*mut u8>,
    pass: *mut u8,
    kept: *mut u8,
}

unsafe impl Send for VerilatedCoincFilter {}

impl Default for VerilatedCoincFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedCoincFilter {
    /// A new model.
    pub fn new() -> Self {
        let d = Dut::new(shim!(qkd_coinc_filter_new, qkd_coinc_filter_delete, qkd_coinc_filter_eval, qkd_coinc_filter_port));
        Self {
            hits: d.port("hits"),
            delay: (0..TAGGER_CHANNELS).map(|c| d.port(&format!("delay${c}"))).collect(),
            window: d.port("window"),
            group: (0..FILTER_GROUPS).map(|g| d.port(&format!("group${g}"))).collect(),
            pass: d.port("pass"),
            kept: d.port("kept"),
            d,
        }
    }

    /// Applies a configuration to the input ports.
    pub fn set_config(&mut self, cfg: &FilterConfig) {
        for (p, &d) in self.delay.iter().zip(&cfg.delay) {
            put(*p, d & FILTER_MAX_DELAY as u8);
        }
        put(self.window, cfg.window & FILTER_MAX_WINDOW as u8);
        for (p, &g) in self.group.iter().zip(&cfg.group) {
            put(*p, g & CH_MASK);
        }
        put(self.pass, cfg.pass & CH_MASK);
    }

    /// One tick with channel events `hits`; returns the kept events shown during the tick.
    pub fn step(&mut self, hits: u8) -> u8 {
        put(self.hits, hits & CH_MASK);
        let kept = get(self.kept);
        self.d.tick();
        kept
    }
}

/// The Verilated tag-stream crossing (`qkd_hdl::tag_crossing::TagCrossing`) with its two
/// clocks, driven edge by edge: the caller decides which clock rises next, so any ratio,
/// phase and jitter can be played.
pub struct VerilatedTagCrossing {
    m: crate::verilated::Model,
    tick_clock: *mut u8,
    ctl_clock: *mut u8,
    src_data: *mut u32,
    src_empty: *mut u8,
    src_read: *mut u8,
    read: *mut u8,
    data_out: *mut u32,
    empty: *mut u8,
    fill: *mut u16,
}

unsafe impl Send for VerilatedTagCrossing {}

impl Default for VerilatedTagCrossing {
    fn default() -> Self {
        Self::new()
    }
}

impl VerilatedTagCrossing {
    /// A new model, both clocks low.
    pub fn new() -> Self {
        let mut m = crate::verilated::Model::new(shim!(
            qkd_tag_crossing_new,
            qkd_tag_crossing_delete,
            qkd_tag_crossing_eval,
            qkd_tag_crossing_port
        ));
        m.eval();
        Self {
            tick_clock: m.port("tick_clock"),
            ctl_clock: m.port("ctl_clock"),
            src_data: m.port("src_data"),
            src_empty: m.port("src_empty"),
            src_read: m.port("src_read"),
            read: m.port("read"),
            data_out: m.port("data_out"),
            empty: m.port("empty"),
            fill: m.port("fill"),
            m,
        }
    }

    /// One tick-clock cycle with the source offering `src` (`None`: empty); returns whether
    /// the crossing took it at this edge.
    pub fn tick_edge(&mut self, src: Option<u32>) -> bool {
        put(self.src_data, src.unwrap_or(0));
        put(self.src_empty, src.is_none() as u8);
        self.m.eval();
        let took = get(self.src_read) != 0;
        self.m.tick(self.tick_clock);
        took
    }

    /// One control-clock cycle; with `want`, takes the next record if there is one and
    /// returns it.
    pub fn ctl_edge(&mut self, want: bool) -> Option<u32> {
        self.m.eval();
        let take = want && get(self.empty) == 0;
        put(self.read, take as u8);
        self.m.eval();
        let rec = take.then(|| get(self.data_out));
        self.m.tick(self.ctl_clock);
        put(self.read, 0);
        rec
    }

    /// Records in the FIFO as the control side sees them.
    pub fn fill(&mut self) -> u16 {
        self.m.eval();
        get(self.fill)
    }
}
