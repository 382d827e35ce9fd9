//! The register map of the qkd-station core: the single source of truth for every address.
//!
//! The gateware's register bank ([`crate::core`]) takes each register's address from the
//! constants below when it is built; the host crate decodes with the same constants; and
//! `qkd-hdl-gen` exports the table as `regmap.json`, `regmap.csv` and the Markdown table of
//! `docs/protocol.md` (LiteX's `csr.json`/`csr.csv` in spirit). [`REGMAP_HASH`], a hash of the
//! whole table, is readable from the device, so a host built against another map refuses it.
//!
//! Addresses are word addresses (8 bits) on the core's register bus ([`crate::core`]); every
//! register is 32 bits wide on the bus, with its defined bits right-aligned and the rest
//! reading as zero. Arrays (`count > 1`) occupy consecutive addresses, element `i` at
//! `addr + i`. The defined bits of a register with fields are its fields' bits (the holes
//! between fields read as zero too); [`Register::element_mask`] gives them per element.

use serde::Serialize;

/// How the bus accesses a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read-write: a write sets it, a read returns it.
    Rw,
    /// Read-only status; writes are ignored.
    Ro,
    /// Write-only strobe: a write triggers the action of each set bit; reads return 0.
    Wo,
    /// Read-only FIFO port: each read pops one word; a read of an empty FIFO returns no data
    /// (the bus flags it, see [`crate::core`]).
    Fifo,
}

impl Access {
    /// Short name used in the exports (`rw`, `ro`, `wo`, `fifo`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Rw => "rw",
            Access::Ro => "ro",
            Access::Wo => "wo",
            Access::Fifo => "fifo",
        }
    }
}

/// A bit field inside a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    /// Field name (upper case).
    pub name: &'static str,
    /// Lowest bit.
    pub lsb: u8,
    /// Width, in bits.
    pub width: u8,
    /// What the field means, with its unit.
    pub doc: &'static str,
}

impl Field {
    /// The field's value in register value `word`.
    pub const fn get(&self, word: u32) -> u32 {
        (word >> self.lsb) & mask(self.width)
    }

    /// `word` with the field set to `value` (which must fit).
    pub const fn set(&self, word: u32, value: u32) -> u32 {
        (word & !(mask(self.width) << self.lsb)) | ((value & mask(self.width)) << self.lsb)
    }
}

/// A register (or an array of identical registers at consecutive addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Register {
    /// Register name (upper case).
    pub name: &'static str,
    /// Word address of element 0.
    pub addr: u8,
    /// Number of elements (1 for a plain register).
    pub count: u8,
    /// Defined bits, counted from bit 0.
    pub width: u8,
    /// Bus access.
    pub access: Access,
    /// Value after power-on (for `rw`), or the constant value (for constant `ro` registers).
    pub reset: u32,
    /// What it is, with units.
    pub doc: &'static str,
    /// Bit fields (empty when the register is one number).
    pub fields: &'static [Field],
    /// For an array whose elements are the 32-bit words of one long number (least
    /// significant word first): the number's width, in bits; the last elements then have
    /// fewer defined bits than `width`. 0 for every other register.
    pub number_bits: u16,
}

impl Register {
    /// Address of element `i` (panics when `i >= count`).
    pub const fn at(&self, i: usize) -> u8 {
        assert!(i < self.count as usize);
        self.addr + i as u8
    }

    /// Mask of the bits below `width`.
    pub const fn mask(&self) -> u32 {
        mask(self.width)
    }

    /// Mask of the defined bits of element `i`: its fields' bits, or the bits below `width`
    /// when it has no fields, limited to `number_bits` for a long number (panics when
    /// `i >= count`). A write keeps only these bits, and only these read back.
    pub const fn element_mask(&self, i: usize) -> u32 {
        assert!(i < self.count as usize);
        let mut m = if self.fields.is_empty() { self.mask() } else { 0 };
        let mut j = 0;
        while j < self.fields.len() {
            m |= mask(self.fields[j].width) << self.fields[j].lsb;
            j += 1;
        }
        if self.number_bits > 0 {
            let below = self.number_bits as i32 - 32 * i as i32;
            m &= if below <= 0 { 0 } else if below >= 32 { u32::MAX } else { mask(below as u8) };
        }
        m
    }

    /// Whether `value` fits the register's defined bits.
    pub const fn fits(&self, value: u32) -> bool {
        value & !self.mask() == 0
    }
}

const fn mask(width: u8) -> u32 {
    if width >= 32 {
        u32::MAX
    } else {
        (1u32 << width) - 1
    }
}

const fn reg(name: &'static str, addr: u8, width: u8, access: Access, doc: &'static str) -> Register {
    Register { name, addr, count: 1, width, access, reset: 0, doc, fields: &[], number_bits: 0 }
}

const fn field(name: &'static str, lsb: u8, width: u8, doc: &'static str) -> Field {
    Field { name, lsb, width, doc }
}

/// Tagger channels of the core (4 detectors H, V, D, A and the sync/1PPS input, channel 4).
pub const CHANNELS: usize = 5;
/// Coincidence groups of the core.
pub const GROUPS: usize = 4;

/// Value of [`ID`]: ASCII "QKDS".
pub const ID_VALUE: u32 = 0x514B_4453;
/// Gateware version, major.
pub const VERSION_MAJOR: u16 = 1;
/// Gateware version, minor.
pub const VERSION_MINOR: u16 = 0;

/// Identification: always [`ID_VALUE`].
pub const ID: Register =
    Register { reset: ID_VALUE, ..reg("ID", 0x00, 32, Access::Ro, "Identification, ASCII \"QKDS\" (0x514B4453)") };
/// Gateware version.
pub const VERSION: Register = Register {
    reset: (VERSION_MAJOR as u32) << 16 | VERSION_MINOR as u32,
    fields: &[field("MINOR", 0, 16, "minor version"), field("MAJOR", 16, 16, "major version")],
    ..reg("VERSION", 0x01, 32, Access::Ro, "Gateware version")
};
/// Hash of this register map ([`REGMAP_HASH`]).
pub const MAP_HASH: Register = reg("MAP_HASH", 0x02, 32, Access::Ro, "FNV-1a hash of the register map the gateware was built with");
/// Build information.
pub const BUILD: Register = Register {
    fields: &[
        field("CHANNELS", 0, 4, "tagger channels"),
        field("GROUPS", 4, 4, "coincidence groups"),
        field("BOARD", 8, 8, "board: 0 simulator, 1 iCEBreaker, 2 iCE40-HX8K breakout"),
        field("CLOCK", 16, 16, "tagger clock, in units of 100 kHz (1500 = 150 MHz)"),
    ],
    ..reg("BUILD", 0x03, 32, Access::Ro, "Build information")
};
/// Core control.
pub const CTRL: Register = Register {
    fields: &[
        field("ACQUIRE", 0, 1, "tag the enabled channels (0: no events enter the tagger)"),
        field("COINC_ONLY", 1, 1, "coincidence-only stream: only events in a coincidence of an enabled group are tagged"),
        field("TESTSIG", 2, 1, "the on-chip test signal drives the tagger instead of the input pins"),
        field("HIST", 3, 1, "accumulate the correlation histogram"),
    ],
    ..reg("CTRL", 0x04, 4, Access::Rw, "Core control")
};
/// Core status.
pub const STATUS: Register = Register {
    fields: &[
        field("PLL_LOCKED", 0, 1, "clock PLL locked"),
        field("TAG_EMPTY", 1, 1, "no tag record waiting"),
        field("RNG_READY", 2, 1, "the basis generator is seeded and healthy"),
        field("RNG_FAILED", 3, 1, "an entropy health test failed (latched until RNG_CMD.HEALTH_CLEAR)"),
        field("RCT_FAILED", 4, 1, "the repetition count test failed"),
        field("APT_FAILED", 5, 1, "the adaptive proportion test failed"),
        field("RNG_STARTED", 6, 1, "the health start-up test passed"),
        field("RNG_POOL", 7, 1, "at least 160 checked raw bits in the entropy pool since the last reseed"),
        field("HIST_BUSY", 8, 1, "the histogram is clearing"),
        field("TAG_LOST", 9, 1, "the tagger dropped events (a LOST record was made) since CTRL.ACQUIRE was last set"),
    ],
    ..reg("STATUS", 0x05, 10, Access::Ro, "Core status")
};
/// Scratch register for bus tests.
pub const SCRATCH: Register = reg("SCRATCH", 0x06, 32, Access::Rw, "Scratch register, no effect");
/// UART bit period.
pub const UART_DIV: Register = reg(
    "UART_DIV",
    0x07,
    16,
    Access::Rw,
    "UART bit period, in ticks (at least 8: the link runs on the control clock, half the tick, and counts UART_DIV / 2 of its cycles); a write takes effect after its reply is sent; 0 keeps the build default",
);
/// Bad frames received.
pub const LINK_BAD_FRAMES: Register =
    reg("LINK_BAD_FRAMES", 0x08, 16, Access::Ro, "Frames rejected (CRC, length, command, timeout, overrun), wraps");
/// Bytes skipped while hunting for a frame.
pub const LINK_SKIPPED: Register =
    reg("LINK_SKIPPED", 0x09, 16, Access::Ro, "Bytes discarded while hunting for a frame start, and bytes with a framing error, wraps");

/// Optional blocks of the core present in this build (bits of [`FEATURES`]); a build leaves
/// blocks out to fit a smaller device (the iCEBreaker's UP5K). The registers of a missing block
/// stay in the map: its rw registers read back what was written, its status and counts read
/// 0, its FIFO reads empty, and its control bits do nothing.
///
/// [`FEATURES`] bit: the coincidence counter (`COINC_*`).
pub const FEAT_COINC: u32 = 1 << 0;
/// [`FEATURES`] bit: the coincidence-only filter (`FILTER_*`, `CTRL.COINC_ONLY`).
pub const FEAT_FILTER: u32 = 1 << 1;
/// [`FEATURES`] bit: the correlation histogram (`HIST_*`, `CTRL.HIST`).
pub const FEAT_HIST: u32 = 1 << 2;
/// [`FEATURES`] bit: the test-signal generator (`TS_*`, `CTRL.TESTSIG`).
pub const FEAT_TESTSIG: u32 = 1 << 3;
/// [`FEATURES`] bit: the basis RNG (`RNG_*`).
pub const FEAT_RNG: u32 = 1 << 4;
/// Every optional block (the simulator's and the HX8K's build).
pub const FEAT_ALL: u32 = FEAT_COINC | FEAT_FILTER | FEAT_HIST | FEAT_TESTSIG | FEAT_RNG;
/// Bit position of a one-bit `FEAT_*` mask (the fields of [`FEATURES`] derive from the masks).
const fn feature_bit(mask: u32) -> u8 {
    mask.trailing_zeros() as u8
}
/// Optional blocks present; `reset` is the full build's value.
pub const FEATURES: Register = Register {
    reset: FEAT_ALL,
    fields: &[
        field("COINC", feature_bit(FEAT_COINC), 1, "coincidence counter (COINC_*)"),
        field("FILTER", feature_bit(FEAT_FILTER), 1, "coincidence-only filter (FILTER_*, CTRL.COINC_ONLY)"),
        field("HIST", feature_bit(FEAT_HIST), 1, "correlation histogram (HIST_*, CTRL.HIST)"),
        field("TESTSIG", feature_bit(FEAT_TESTSIG), 1, "test-signal generator (TS_*, CTRL.TESTSIG)"),
        field("RNG", feature_bit(FEAT_RNG), 1, "basis RNG (RNG_*)"),
    ],
    ..reg(
        "FEATURES",
        0x0A,
        5,
        Access::Ro,
        "Optional blocks in this build (1 = present; reset column: the full build). A missing block's rw registers read back what was written, its status bits, counts and data read 0, its FIFO reads empty, its control bits do nothing",
    )
};

/// Dead time per channel.
pub const DEAD_TIME: Register = Register {
    count: CHANNELS as u8,
    reset: 8,
    ..reg("DEAD_TIME", 0x10, 16, Access::Rw, "Dead time of channel i after each event, in ticks")
};
/// Channel enable mask.
pub const CHAN_ENABLE: Register =
    Register { reset: 0x1f, ..reg("CHAN_ENABLE", 0x18, CHANNELS as u8, Access::Rw, "Channel enable mask (bit i = channel i)") };
/// Falling-edge select mask.
pub const CHAN_FALLING: Register =
    reg("CHAN_FALLING", 0x19, CHANNELS as u8, Access::Rw, "Tag falling edges (bit i = channel i; 0 = rising)");
/// Tag FIFO level.
pub const TAG_LEVEL: Register = reg("TAG_LEVEL", 0x1A, 9, Access::Ro, "Entries in the tagger's event FIFO (not counting the up to 256 records in the crossing to the control clock), a few cycles late");
/// Tag record stream.
pub const TAG_DATA: Register =
    reg("TAG_DATA", 0x1B, 32, Access::Fifo, "Tag records (EVENT/EPOCH/LOST, see the tag format)");

/// Coincidence delay per channel.
pub const COINC_DELAY: Register = Register {
    count: CHANNELS as u8,
    ..reg("COINC_DELAY", 0x20, 6, Access::Rw, "Delay of channel i before coincidence finding, in ticks (0..63)")
};
/// Coincidence group masks.
pub const COINC_GROUP: Register = Register {
    count: GROUPS as u8,
    ..reg(
        "COINC_GROUP",
        0x28,
        CHANNELS as u8,
        Access::Rw,
        "Channel mask of coincidence group g (0 = off), for the counter and the coincidence-only filter",
    )
};
/// Coincidence window.
pub const COINC_WINDOW: Register =
    reg("COINC_WINDOW", 0x2C, 8, Access::Rw, "Coincidence window, in ticks (all members within it)");
/// Gate time.
pub const COINC_GATE: Register = reg(
    "COINC_GATE",
    0x2D,
    32,
    Access::Rw,
    "Counting gate, in ticks (1..63 count as 64); 0 = off. The counts of a gate are readable, and COINC_GATE_SEQ increments, 34 ticks after its end (seen on the bus a few control-clock cycles later). A new value applies at the end of the gate in progress (at once when it was 0), so the first gate after power-on or a change is incomplete",
);
/// Completed gates.
pub const COINC_GATE_SEQ: Register =
    reg("COINC_GATE_SEQ", 0x2E, 16, Access::Ro, "Number of completed gates (wraps); read before and after the counts");
/// Singles per channel in the last gate.
pub const COINC_SINGLES: Register = Register {
    count: CHANNELS as u8,
    ..reg("COINC_SINGLES", 0x30, 32, Access::Ro, "Events of channel i in the last complete gate")
};
/// Coincidences per group in the last gate.
pub const COINC_COUNT: Register = Register {
    count: GROUPS as u8,
    ..reg("COINC_COUNT", 0x38, 32, Access::Ro, "Coincidences of group g in the last complete gate")
};

/// Histogram configuration.
pub const HIST_CONFIG: Register = Register {
    fields: &[
        field("START", 0, 3, "start channel"),
        field("STOP", 4, 3, "stop channel"),
        field("SHIFT", 8, 4, "bin width = 2^SHIFT ticks"),
    ],
    ..reg("HIST_CONFIG", 0x40, 12, Access::Rw, "Correlation histogram: channels and bin width")
};
/// Histogram offset.
pub const HIST_OFFSET: Register = reg(
    "HIST_OFFSET",
    0x41,
    8,
    Access::Rw,
    "Delay of the stop channel, in ticks (0..255), added to t_stop - t_start before binning (so negative delays land in bins)",
);
/// Histogram read address.
pub const HIST_ADDR: Register =
    reg("HIST_ADDR", 0x42, 9, Access::Rw, "Next bin HIST_DATA returns; increments after each HIST_DATA read");
/// Histogram bin data.
pub const HIST_DATA: Register =
    reg("HIST_DATA", 0x43, 32, Access::Fifo, "Count of bin HIST_ADDR (then HIST_ADDR increments); never empty");
/// Histogram commands.
pub const HIST_CMD: Register = Register {
    fields: &[field("CLEAR", 0, 1, "clear every bin and the overflow count")],
    ..reg("HIST_CMD", 0x44, 1, Access::Wo, "Histogram commands")
};
/// Histogram overflow.
pub const HIST_OVERFLOW: Register =
    reg("HIST_OVERFLOW", 0x45, 32, Access::Ro, "Stop events whose difference fell outside the bins");

/// Test-signal rate per channel.
pub const TS_THRESHOLD: Register = Register {
    count: CHANNELS as u8,
    ..reg("TS_THRESHOLD", 0x50, 16, Access::Rw, "Test-signal pulse probability per tick of channel i, times 65536")
};
/// Test-signal configuration.
pub const TS_CONFIG: Register = Register {
    fields: &[
        field("ENABLE", 0, 1, "generate pulses"),
        field("PAIRS", 1, 1, "correlated pairs: each PAIR_SRC pulse is followed by a PAIR_DST pulse"),
        field("PAIR_SRC", 4, 3, "pair source channel"),
        field("PAIR_DST", 8, 3, "pair destination channel"),
    ],
    ..reg("TS_CONFIG", 0x58, 11, Access::Rw, "Test-signal generator configuration")
};
/// Test-signal pair delay.
pub const TS_PAIR_DELAY: Register =
    reg("TS_PAIR_DELAY", 0x59, 16, Access::Rw, "Delay of the pair's second pulse, in ticks");

/// RNG key.
pub const RNG_KEY: Register = Register {
    count: 3,
    number_bits: 80,
    ..reg("RNG_KEY", 0x60, 32, Access::Rw, "Trivium key bits [32i+31:32i] (80 bits; element 2 uses bits 15:0)")
};
/// RNG IV.
pub const RNG_IV: Register = Register {
    count: 3,
    number_bits: 80,
    ..reg("RNG_IV", 0x63, 32, Access::Rw, "Trivium IV bits [32i+31:32i] (80 bits; element 2 uses bits 15:0)")
};
/// RNG commands.
pub const RNG_CMD: Register = Register {
    fields: &[
        field("RESEED", 0, 1, "load RNG_KEY/RNG_IV (mixed with the entropy pool if RNG_CONFIG.MIX) and warm up"),
        field("HEALTH_CLEAR", 1, 1, "clear a latched health-test failure and restart the start-up test"),
    ],
    ..reg("RNG_CMD", 0x66, 2, Access::Wo, "Basis generator commands")
};
/// RNG configuration.
pub const RNG_CONFIG: Register = Register {
    fields: &[field("MIX", 0, 1, "mix the health-checked entropy pool into key and IV at reseed")],
    ..reg("RNG_CONFIG", 0x67, 1, Access::Rw, "Basis generator configuration")
};
/// Basis probability.
pub const RNG_THR_Z: Register = Register {
    reset: 0x8000,
    ..reg("RNG_THR_Z", 0x68, 16, Access::Rw, "P(basis Z) times 65536")
};
/// Intensity thresholds.
pub const RNG_THR_CLASS: Register = Register {
    reset: 0xC000_8000,
    fields: &[
        field("C0", 0, 16, "P(class 0) times 65536"),
        field("C1", 16, 16, "P(class 0 or 1) times 65536"),
    ],
    ..reg("RNG_THR_CLASS", 0x69, 32, Access::Rw, "Decoy intensity class thresholds")
};
/// Health-test cutoffs.
pub const RNG_CUTOFF: Register = Register {
    fields: &[
        field("RCT", 0, 8, "repetition count cutoff (0 = default 21)"),
        field("APT", 16, 11, "adaptive proportion cutoff in a 1024-sample window (0 = default 589)"),
    ],
    ..reg("RNG_CUTOFF", 0x6A, 27, Access::Rw, "SP 800-90B health test cutoffs")
};
/// Slot period.
pub const RNG_SLOT_DIV: Register =
    reg("RNG_SLOT_DIV", 0x6B, 32, Access::Rw, "Pulse slot period, in control-clock cycles (2 ticks on the boards; 0 = no slots)");
/// Entropy sample period.
pub const RNG_RAW_DIV: Register = Register {
    reset: 16,
    ..reg("RNG_RAW_DIV", 0x6C, 16, Access::Rw, "Entropy input sample period, in control-clock cycles (2 ticks on the boards; 0 = not sampled)")
};
/// RNG record level.
pub const RNG_LEVEL: Register = reg("RNG_LEVEL", 0x6D, 9, Access::Ro, "Choice records waiting in the RNG FIFO");
/// RNG records.
pub const RNG_DATA: Register = reg(
    "RNG_DATA",
    0x6E,
    32,
    Access::Fifo,
    "Choice records: [31:30] intensity class, [29] basis (1 = X), [28] value, [27:0] slot number",
);
/// Missed slots.
pub const RNG_MISSED: Register =
    reg("RNG_MISSED", 0x6F, 16, Access::Ro, "Slots without a choice (not ready, unhealthy, or FIFO full), saturating");

/// Coincidence-only filter delay per channel.
pub const FILTER_DELAY: Register = Register {
    count: CHANNELS as u8,
    ..reg("FILTER_DELAY", 0x70, 3, Access::Rw, "Delay of channel i before the coincidence-only filter, in ticks (0..7)")
};
/// Coincidence-only filter window.
pub const FILTER_WINDOW: Register = reg(
    "FILTER_WINDOW",
    0x78,
    4,
    Access::Rw,
    "Coincidence-only filter window, in ticks (0..15): an event is kept when all members of a group containing its channel fall in W + 1 ticks around it",
);
/// Channels the coincidence-only filter always keeps.
pub const FILTER_PASS: Register =
    reg("FILTER_PASS", 0x79, CHANNELS as u8, Access::Rw, "Channels kept in coincidence-only mode without a coincidence (bit i = channel i; e.g. the sync channel)");
/// Time shift of the coincidence-only stream.
pub const FILTER_LATENCY: Register = Register {
    reset: crate::coinc_filter::FILTER_LATENCY as u32 + 1,
    ..reg(
        "FILTER_LATENCY",
        0x7A,
        16,
        Access::Ro,
        "In coincidence-only mode an event of channel i is tagged this many ticks plus FILTER_DELAY[i] late",
    )
};

/// Every register, in address order.
pub const REGISTERS: &[Register] = &[
    ID, VERSION, MAP_HASH, BUILD, CTRL, STATUS, SCRATCH, UART_DIV, LINK_BAD_FRAMES, LINK_SKIPPED, FEATURES,
    DEAD_TIME, CHAN_ENABLE, CHAN_FALLING, TAG_LEVEL, TAG_DATA,
    COINC_DELAY, COINC_GROUP, COINC_WINDOW, COINC_GATE, COINC_GATE_SEQ, COINC_SINGLES, COINC_COUNT,
    HIST_CONFIG, HIST_OFFSET, HIST_ADDR, HIST_DATA, HIST_CMD, HIST_OVERFLOW,
    TS_THRESHOLD, TS_CONFIG, TS_PAIR_DELAY,
    RNG_KEY, RNG_IV, RNG_CMD, RNG_CONFIG, RNG_THR_Z, RNG_THR_CLASS, RNG_CUTOFF, RNG_SLOT_DIV, RNG_RAW_DIV,
    RNG_LEVEL, RNG_DATA, RNG_MISSED,
    FILTER_DELAY, FILTER_WINDOW, FILTER_PASS, FILTER_LATENCY,
];

/// FNV-1a (32-bit) over the canonical text of [`REGISTERS`] (name, address, count, width,
/// access, reset and fields of each), computed at compile time.
pub const REGMAP_HASH: u32 = hash_map(REGISTERS);

// FNV-1a by hand: it has to run in a const fn, which no hashing crate offers.
const fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

const fn fnv_u32(h: u32, v: u32) -> u32 {
    fnv(h, &v.to_le_bytes())
}

const fn hash_map(regs: &[Register]) -> u32 {
    let mut h = 0x811c_9dc5;
    let mut i = 0;
    while i < regs.len() {
        let r = &regs[i];
        h = fnv(h, r.name.as_bytes());
        h = fnv_u32(h, r.addr as u32 | (r.count as u32) << 8 | (r.width as u32) << 16 | (r.access as u32) << 24);
        h = fnv_u32(h, r.reset);
        h = fnv_u32(h, r.number_bits as u32);
        let mut j = 0;
        while j < r.fields.len() {
            let f = &r.fields[j];
            h = fnv(h, f.name.as_bytes());
            h = fnv_u32(h, f.lsb as u32 | (f.width as u32) << 8);
            j += 1;
        }
        i += 1;
    }
    h
}

/// The register whose address range holds `addr`, with the element index.
pub fn lookup(addr: u8) -> Option<(&'static Register, usize)> {
    REGISTERS
        .iter()
        .find(|r| addr >= r.addr && (addr as usize) < r.addr as usize + r.count as usize)
        .map(|r| (r, (addr - r.addr) as usize))
}

/// The register called `name` (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// The map as JSON (LiteX `csr.json` style): version, hash and the registers.
pub fn to_json() -> String {
    #[derive(Serialize)]
    struct Export<'a> {
        id: String,
        version: String,
        hash: String,
        bus_word_bits: u32,
        registers: &'a [Register],
    }
    let export = Export {
        id: format!("0x{ID_VALUE:08x}"),
        version: format!("{VERSION_MAJOR}.{VERSION_MINOR}"),
        hash: format!("0x{REGMAP_HASH:08x}"),
        bus_word_bits: 32,
        registers: REGISTERS,
    };
    serde_json::to_string_pretty(&export).expect("register map serializes")
}

/// The map as CSV: one line per register element, `name,address,width,access,reset,doc`.
pub fn to_csv() -> String {
    let mut out = String::from("name,address,width,access,reset,description\n");
    for r in REGISTERS {
        for i in 0..r.count as usize {
            let name = if r.count > 1 { format!("{}[{i}]", r.name) } else { r.name.to_string() };
            out += &format!(
                "{name},0x{:02x},{},{},0x{:x},\"{}\"\n",
                r.at(i),
                r.width,
                r.access.name(),
                r.reset,
                r.doc.replace('"', "\"\"")
            );
        }
    }
    out
}

/// The map as a Markdown table (the register section of `docs/protocol.md`).
pub fn to_markdown() -> String {
    let mut out = format!(
        "Register map version {VERSION_MAJOR}.{VERSION_MINOR}, hash `0x{REGMAP_HASH:08x}`.\n\n\
         | address | name | bits | access | reset | description |\n|---|---|---|---|---|---|\n"
    );
    for r in REGISTERS {
        let addr = if r.count > 1 {
            format!("0x{:02x}–0x{:02x}", r.addr, r.addr + r.count - 1)
        } else {
            format!("0x{:02x}", r.addr)
        };
        let name = if r.count > 1 { format!("{}[0..{}]", r.name, r.count) } else { r.name.to_string() };
        let mut doc = r.doc.to_string();
        for f in r.fields {
            let bits = if f.width == 1 { format!("{}", f.lsb) } else { format!("{}:{}", f.lsb + f.width - 1, f.lsb) };
            doc += &format!("<br>`[{bits}]` {}: {}", f.name, f.doc);
        }
        out += &format!("| {addr} | {name} | {} | {} | 0x{:x} | {doc} |\n", r.width, r.access.name(), r.reset);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_do_not_overlap_and_fields_fit() {
        let mut used = [false; 256];
        for r in REGISTERS {
            assert!(r.count >= 1 && (1..=32).contains(&r.width), "{}", r.name);
            assert!(r.fits(r.reset), "{} reset value", r.name);
            assert!((0..r.count as usize).all(|i| r.access != Access::Rw || r.reset & !r.element_mask(i) == 0), "{} reset value", r.name);
            // The register bank tells rw registers by bit 0 of their write mask.
            assert!((0..r.count as usize).all(|i| r.access != Access::Rw || r.element_mask(i) & 1 == 1), "{}", r.name);
            for i in 0..r.count as usize {
                let a = r.at(i) as usize;
                assert!(!used[a], "{} overlaps at 0x{a:02x}", r.name);
                used[a] = true;
            }
            for f in r.fields {
                assert!(f.lsb + f.width <= r.width, "{}.{} exceeds the register", r.name, f.name);
            }
            for (k, f) in r.fields.iter().enumerate() {
                for g in &r.fields[k + 1..] {
                    assert!(f.lsb + f.width <= g.lsb || g.lsb + g.width <= f.lsb, "{}: {} and {} overlap", r.name, f.name, g.name);
                }
            }
        }
        assert!(REGISTERS.windows(2).all(|w| w[0].addr < w[1].addr), "table is in address order");
    }

    #[test]
    fn lookup_and_fields() {
        assert_eq!(lookup(0x12), Some((&DEAD_TIME, 2)));
        assert_eq!(lookup(0xff), None);
        assert_eq!(by_name("tag_data"), Some(&TAG_DATA));
        assert_eq!(RNG_KEY.element_mask(1), u32::MAX);
        assert_eq!(RNG_KEY.element_mask(2), 0xffff);
        assert_eq!(HIST_CONFIG.element_mask(0), 0xf77);
        assert_eq!(DEAD_TIME.element_mask(4), 0xffff);
        let f = RNG_THR_CLASS.fields[1];
        assert_eq!(f.get(f.set(0x1234, 0xbeef)), 0xbeef);
        assert_eq!(f.set(0x1234, 0xbeef) & 0xffff, 0x1234);
    }

    #[test]
    fn hash_covers_the_table() {
        let mut changed = REGISTERS.to_vec();
        changed[4].reset ^= 1;
        assert_ne!(hash_map(&changed), REGMAP_HASH);
        assert!(to_json().contains(&format!("0x{REGMAP_HASH:08x}")));
        assert_eq!(to_csv().lines().count(), 1 + REGISTERS.iter().map(|r| r.count as usize).sum::<usize>());
    }

    #[test]
    fn protocol_doc_has_the_current_register_table() {
        let doc = include_str!("../../docs/protocol.md");
        assert!(
            doc.contains(&to_markdown()),
            "docs/protocol.md is out of date: run `cargo run -p qkd-hdl --bin qkd-hdl-gen -- --regmap-only --doc docs/protocol.md`"
        );
    }
}
