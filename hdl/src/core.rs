//! The qkd-station core: every gateware block behind one register bank, on the register bus
//! that the UART link (and a PCIe bridge) masters. Every address comes from
//! [`crate::regmap`], the single source of truth.
//!
//! ```text
//!  pins ─┬─► mux (CTRL.TESTSIG) ─► ChannelFrontEnd ×5 ─► fire ─┬─────────────► TagPipeline ─► TAG_DATA
//!  TestSignal ┘                    (enable, edge, dead time)    │ (CTRL.ACQUIRE;  ▲ CTRL.COINC_ONLY
//!                                                               ├─► CoincFilter ──┘
//!                                                               ├─► Coincidence ─► COINC_SINGLES/COUNT
//!                                                               └─► Histogram ───► HIST_DATA
//!  entropy ─► sync ─► sampler (RNG_RAW_DIV) ─► BasisRng ◄─ slots (RNG_SLOT_DIV) ─► FIFO ─► RNG_DATA
//! ```
//!
//! # Clock domains
//! Two clocks (`docs/clocking.md`): `clock`, the tick (tagger) clock of the channel front
//! ends, the tagger, the coincidence counter, the histogram, the coincidence-only filter, the
//! test signal and their configuration registers; and `ctl_clock`, the control clock of the
//! bus and everything else (any ratio and phase; half the tick on the boards). The crossings:
//! the tag stream through [`TagCrossing`]; writes of tick-domain registers (and the
//! `HIST_CMD` strobe) through a [`WriteCrossing`]; `TAG_LEVEL` and `HIST_OVERFLOW` through
//! [`SnapshotCrossing`]s; `COINC_GATE_SEQ` counted from `gate_seq` bit 0 (a toggle per gate);
//! the count and histogram RAMs read through their own read ports on the control clock; status
//! bits through two flip-flops. No path between the clocks needs timing analysis.
//!
//! # Bus timing
//! In control-clock cycles. A strobe (`bus_re` or `bus_we`, one cycle) in cycle `t` is
//! answered by `bus_ack` high in cycle `t + 2` only, with `bus_rdata`, `bus_rempty` and
//! `bus_rvalid_addr` valid in that cycle. Cycle `t` registers the access and the one-hot read
//! selects; cycle `t + 1` applies a write, pops a FIFO register and registers the read data;
//! so no combinational path runs from the bus inputs to the bus outputs, and the read
//! multiplexer is one registered AND-OR level. One access at a time: the next strobe may come
//! in the cycle of `bus_ack` or later, and the master holds the address until the ack.
//! Four accesses wait longer: a `TAG_DATA` read that finds the crossing empty while records
//! are on their way; a `TAG_LEVEL` or `HIST_OVERFLOW` read, until its snapshot is stable (one
//! cycle per handshake round of a few cycles); a write of a tick-domain register,
//! acknowledged when the tick side has applied it (7 cycles after the strobe at 2:1 with
//! aligned edges); and a write of `RNG_CMD` with `RESEED` set, acknowledged in cycle
//! `t + RESEED_BUS_LATENCY` (13) after the key/IV load (below).
//!
//! # Register semantics
//! * **rw**: a write keeps the defined bits ([`crate::regmap::Register::element_mask`]); a
//!   read returns them. Reads come from a 256 × 32 shadow block RAM written alongside the
//!   hardware registers, so the read multiplexer holds only status sources; a 256 × 32 ROM
//!   generated from the map gives each address's write mask (bit 0 set = rw). Exception:
//!   `HIST_ADDR`, which the hardware increments, reads from its register.
//! * **ro**: writes are ignored (acknowledged with `bus_rvalid_addr` high).
//! * **wo** (`HIST_CMD`, `RNG_CMD`): a write makes a one-tick strobe of each set bit; reads
//!   return 0.
//! * **fifo**: a read of `TAG_DATA` or `RNG_DATA` pops one word; when the FIFO is empty it pops
//!   nothing, returns 0 and sets `bus_rempty`. A read of `HIST_DATA` returns bin `HIST_ADDR`
//!   and increments `HIST_ADDR` (never empty).
//! * An address outside the map acknowledges with `bus_rvalid_addr` low and `bus_rdata` 0;
//!   writes to it change nothing.
//!
//! # Integration details
//! * Channel front ends (synchronizer, edge select, enable, dead time) take the pins, or the
//!   test signal while `CTRL.TESTSIG`. Their event mask `fire` feeds the tagger directly and,
//!   registered one tick, the coincidence counter, the histogram and the coincidence-only
//!   filter; so counts and the histogram run whether or not `CTRL.ACQUIRE` is set.
//! * The tagger takes events only while `CTRL.ACQUIRE`: `fire`, or while `CTRL.COINC_ONLY`
//!   the filter's `kept` mask, which is late by `FILTER_LATENCY + FILTER_DELAY[c]` ticks
//!   ([`COINC_ONLY_SHIFT`] + delay). The filter uses the coincidence groups `COINC_GROUP`.
//! * `RNG_KEY`/`RNG_IV` live only in the shadow RAM: a `RESEED` strobes the generator, then
//!   streams key and IV into it as ten 16-bit chunks read from the shadow RAM, one per tick,
//!   while the `RNG_CMD` write waits for its ack (so the read port is free). The warm-up
//!   starts after the last chunk.
//! * The RNG draws one choice per slot (every `RNG_SLOT_DIV` ticks), samples the entropy pin
//!   every `RNG_RAW_DIV` ticks, and writes its records into a 256-entry block-RAM FIFO; a
//!   slot whose record finds the FIFO full is missed (counted in `RNG_MISSED`).
//! * `STATUS.TAG_LOST` latches when the crossing presents a LOST record and clears when
//!   `CTRL.ACQUIRE` goes from 0 to 1.
//! * The RNG's slot and entropy dividers count control-clock cycles.
//!
//! # LEDs
//! `leds[0]` acquiring (`CTRL.ACQUIRE`), `leds[1]` RNG ready, `leds[2]` RNG health failure,
//! `leds[3]` tag data lost (`STATUS.TAG_LOST`).

use std::collections::BTreeMap;

use rust_hdl::prelude::*;

use crate::basis_rng::BasisRng;
use crate::cdc::{SnapshotCrossing, WriteCrossing};
use crate::channel::{ChannelFrontEnd, DEAD_TIME_BITS};
use crate::coinc_filter::{CoincFilter, FILTER_DELAY_BITS, FILTER_GROUPS, FILTER_LATENCY, FILTER_WINDOW_BITS};
use crate::coincidence::{group_index, single_index, Coincidence, COUNT_ADDR_BITS, COUNT_BITS, DELAY_BITS, GROUPS, WINDOW_BITS};
use crate::entry_fifo::EntryFifo;
use crate::histogram::{Histogram, HIST_BIN_BITS, HIST_COUNT_BITS, HIST_OFFSET_BITS};
use crate::regmap::{self, Access, Register};
use crate::tag_crossing::TagCrossing;
use crate::tagfmt::RECORD_BITS;
use crate::tagger::{TagPipeline, OCCUPANCY_BITS};
use crate::testsig::{TestSignal, PAIR_DELAY_BITS, THRESHOLD_BITS};

/// Channels of the core (4 detectors and the sync input, channel 4).
pub const CORE_CHANNELS: usize = regmap::CHANNELS;
/// Address width of the RNG record FIFO (256 entries of 32 bits, one block RAM pair).
pub const RNG_FIFO_ADDR_BITS: usize = 8;
/// Control-clock cycles from a strobe to its `bus_ack`.
pub const BUS_LATENCY: u64 = 2;
/// Control-clock cycles from the strobe of an `RNG_CMD` write with `RESEED` to its `bus_ack`:
/// the key/IV load (ten shadow-RAM reads) runs in between.
pub const RESEED_BUS_LATENCY: u64 = BUS_LATENCY + 11;
/// In coincidence-only mode an event of channel `c` is tagged `COINC_ONLY_SHIFT +
/// FILTER_DELAY[c]` ticks late (the filter's latency and the register in front of it).
pub const COINC_ONLY_SHIFT: u64 = FILTER_LATENCY + 1;

const _: () = assert!(CORE_CHANNELS == 5 && GROUPS == regmap::GROUPS && FILTER_GROUPS == GROUPS);
const _: () = assert!(regmap::FILTER_LATENCY.reset as u64 == COINC_ONLY_SHIFT);
const _: () = assert!(regmap::HIST_ADDR.width as usize == HIST_BIN_BITS);
const _: () = assert!(regmap::HIST_OFFSET.width as usize == HIST_OFFSET_BITS);
const _: () = assert!(regmap::COINC_DELAY.width as usize == DELAY_BITS);
// The counter's count RAM is read with the low address bits of COINC_SINGLES / COINC_COUNT.
const _: () = assert!(regmap::COINC_SINGLES.addr as usize % 16 == single_index(0));
const _: () = assert!(regmap::COINC_COUNT.addr as usize == regmap::COINC_SINGLES.addr as usize - single_index(0) + group_index(0));
const _: () = assert!(regmap::COINC_WINDOW.width as usize == WINDOW_BITS);
const _: () = assert!(regmap::FILTER_DELAY.width as usize == FILTER_DELAY_BITS);
const _: () = assert!(regmap::FILTER_WINDOW.width as usize == FILTER_WINDOW_BITS);
const _: () = assert!(regmap::DEAD_TIME.width as usize == DEAD_TIME_BITS);
const _: () = assert!(regmap::TAG_LEVEL.width as usize == OCCUPANCY_BITS);

type Cfg<const W: usize> = DFFWithInit<Bits<W>>;

/// The qkd-station core: tagger, coincidence counter, coincidence-only filter, histogram,
/// test signal and basis RNG behind the register bank of [`crate::regmap`].
#[derive(LogicBlock)]
pub struct Core {
    /// Tick clock (the tagger clock); one tick is the time unit of every tag.
    pub clock: Signal<In, Clock>,
    /// Control clock: the register bank and bus, the basis RNG, status and LEDs. Any ratio
    /// and phase to `clock` (the boards take half the tick clock from the PLL).
    pub ctl_clock: Signal<In, Clock>,
    /// Detector inputs, asynchronous (bit c = channel c; channel 4 = sync/1PPS).
    pub pins: Signal<In, Bits<CORE_CHANNELS>>,
    /// Raw entropy input, asynchronous.
    pub entropy: Signal<In, Bit>,
    /// The clock PLL is locked (asynchronous).
    pub pll_locked: Signal<In, Bit>,
    /// Bus: word address.
    pub bus_addr: Signal<In, Bits<8>>,
    /// Bus: write data.
    pub bus_wdata: Signal<In, Bits<32>>,
    /// Bus: write strobe (one control cycle).
    pub bus_we: Signal<In, Bit>,
    /// Bus: read strobe (one control cycle).
    pub bus_re: Signal<In, Bit>,
    /// Bus: the access is done (one control cycle, [`BUS_LATENCY`] or more cycles after the
    /// strobe).
    pub bus_ack: Signal<Out, Bit>,
    /// Bus: read data, valid with `bus_ack` (0 for writes).
    pub bus_rdata: Signal<Out, Bits<32>>,
    /// Bus: with `bus_ack`, a FIFO register was empty and nothing was popped.
    pub bus_rempty: Signal<Out, Bit>,
    /// Bus: with `bus_ack`, the address is in the register map.
    pub bus_rvalid_addr: Signal<Out, Bit>,
    /// The link's count of rejected frames (read at `LINK_BAD_FRAMES`).
    pub link_bad_frames: Signal<In, Bits<16>>,
    /// The link's count of skipped bytes (read at `LINK_SKIPPED`).
    pub link_skipped: Signal<In, Bits<16>>,
    /// The `UART_DIV` register: UART bit period, in ticks (0 = build default).
    pub uart_div: Signal<Out, Bits<16>>,
    /// Status LEDs: acquiring, RNG ready, RNG failed, tag data lost.
    pub leds: Signal<Out, Bits<4>>,
    // Blocks.
    tsig: TestSignal<CORE_CHANNELS>,
    channels: [ChannelFrontEnd; CORE_CHANNELS],
    pipe: TagPipeline<CORE_CHANNELS>,
    filter: CoincFilter<CORE_CHANNELS>,
    coinc: Coincidence<CORE_CHANNELS>,
    hist: Histogram<CORE_CHANNELS, HIST_BIN_BITS>,
    rng: BasisRng,
    rng_fifo: EntryFifo<Bits<32>, RNG_FIFO_ADDR_BITS>,
    ent_sync: BitSynchronizer,
    pll_sync: BitSynchronizer,
    // Clock-domain crossings: the tag stream, register writes into the tick domain, the
    // tagger's FIFO level and the histogram's overflow count, and single bits.
    xing: TagCrossing,
    wx: WriteCrossing<8, 32>,
    level_x: SnapshotCrossing<OCCUPANCY_BITS>,
    ovf_x: SnapshotCrossing<HIST_COUNT_BITS>,
    busy_sync: BitSynchronizer,
    seq_sync: BitSynchronizer,
    pend_sync: BitSynchronizer,
    // Register bank: bus stage 1, write masks, shadow of the rw registers.
    a1: DFF<Bits<8>>,
    wd1: DFF<Bits<32>>,
    we1: DFF<Bit>,
    re1: DFF<Bit>,
    wmask: SyncROM<Bits<32>, 8>,
    shadow: RAM<Bits<32>, 8>,
    // One-hot read selects of the non-shadowed registers (registered in stage 1).
    s_id: DFF<Bit>,
    s_version: DFF<Bit>,
    s_hash: DFF<Bit>,
    s_build: DFF<Bit>,
    s_features: DFF<Bit>,
    s_flat: DFF<Bit>,
    s_status: DFF<Bit>,
    s_bad: DFF<Bit>,
    s_skip: DFF<Bit>,
    s_tag_level: DFF<Bit>,
    s_tag_data: DFF<Bit>,
    s_gate_seq: DFF<Bit>,
    s_counts: DFF<Bit>,
    s_hist_addr: DFF<Bit>,
    s_hist_data: DFF<Bit>,
    s_hist_ovf: DFF<Bit>,
    s_rng_level: DFF<Bit>,
    s_rng_data: DFF<Bit>,
    s_rng_missed: DFF<Bit>,
    s_wo: DFF<Bit>,
    // The address is a register of the tick domain (written through `wx`).
    s_tick: DFF<Bit>,
    // Bus stage 2 outputs.
    ack: DFF<Bit>,
    rdata: DFF<Bits<32>>,
    rempty: DFF<Bit>,
    rvalid: DFF<Bit>,
    // rw registers (hardware copies). Control domain: `ctrl`, `uart_div_r`, `hist_addr`, the
    // RNG's; tick domain (loaded through `wx`): `ctrl_t` and the rest.
    ctrl: Cfg<4>,
    ctrl_t: Cfg<4>,
    uart_div_r: Cfg<16>,
    dead_time: [Cfg<DEAD_TIME_BITS>; CORE_CHANNELS],
    chan_enable: Cfg<CORE_CHANNELS>,
    chan_falling: Cfg<CORE_CHANNELS>,
    coinc_delay: [Cfg<DELAY_BITS>; CORE_CHANNELS],
    coinc_group: [Cfg<CORE_CHANNELS>; GROUPS],
    coinc_window: Cfg<WINDOW_BITS>,
    coinc_gate: Cfg<COUNT_BITS>,
    hist_config: Cfg<12>,
    hist_offset: Cfg<HIST_OFFSET_BITS>,
    hist_addr: Cfg<HIST_BIN_BITS>,
    ts_threshold: [Cfg<THRESHOLD_BITS>; CORE_CHANNELS],
    ts_config: Cfg<11>,
    // `TS_CONFIG`'s pair channels as one-hot masks (`testsig::channel_mask`), decoded from the
    // held write data when `ts_config` loads: the test signal's pulse logic then needs no
    // 3-bit selects (the rest of the register is read from the shadow RAM as before).
    ts_src_mask: DFFWithInit<Bits<CORE_CHANNELS>>,
    ts_dst_mask: DFFWithInit<Bits<CORE_CHANNELS>>,
    ts_src_dec: Signal<Local, Bits<CORE_CHANNELS>>,
    ts_dst_dec: Signal<Local, Bits<CORE_CHANNELS>>,
    ts_pair_delay: Cfg<PAIR_DELAY_BITS>,
    rng_config: Cfg<1>,
    rng_thr_z: Cfg<16>,
    rng_thr_class: Cfg<32>,
    rng_cutoff: Cfg<27>,
    rng_slot_div: Cfg<32>,
    rng_raw_div: Cfg<16>,
    filter_delay: [Cfg<FILTER_DELAY_BITS>; CORE_CHANNELS],
    filter_window: Cfg<FILTER_WINDOW_BITS>,
    filter_pass: Cfg<CORE_CHANNELS>,
    // Tick domain: the write enable of each register that `wx` loads, decoded from its held
    // address in the `pre_load` tick and high in the `load` tick (`crate::cdc`).
    we_ctrl: DFF<Bit>,
    we_chan_enable: DFF<Bit>,
    we_chan_falling: DFF<Bit>,
    we_coinc_window: DFF<Bit>,
    we_coinc_gate: DFF<Bit>,
    we_hist_config: DFF<Bit>,
    we_hist_offset: DFF<Bit>,
    we_hist_cmd: DFF<Bit>,
    we_ts_config: DFF<Bit>,
    we_ts_pair_delay: DFF<Bit>,
    we_filter_window: DFF<Bit>,
    we_filter_pass: DFF<Bit>,
    we_dead_time: [DFF<Bit>; CORE_CHANNELS],
    we_coinc_delay: [DFF<Bit>; CORE_CHANNELS],
    we_ts_threshold: [DFF<Bit>; CORE_CHANNELS],
    we_filter_delay: [DFF<Bit>; CORE_CHANNELS],
    we_coinc_group: [DFF<Bit>; GROUPS],
    // Command strobes.
    hist_clear: DFF<Bit>,
    rng_reseed: DFF<Bit>,
    rng_hclear: DFF<Bit>,
    // Event paths.
    fire_r: DFF<Bits<CORE_CHANNELS>>,
    lost: DFF<Bit>,
    acq_prev: DFF<Bit>,
    // Tick side: records in the tagger or unread in the crossing.
    pend_t: DFF<Bit>,
    // Completed gates, counted on the control side from `gate_seq` bit 0.
    gate_cnt: DFF<Bits<16>>,
    seq_prev: DFF<Bit>,
    // RNG slots, entropy sampling and record FIFO.
    slot_cnt: DFF<Bits<32>>,
    // `slot_cnt > 1` and `raw_cnt > 1`, kept in step with the counters (no compare chain in
    // front of the reload).
    slot_gt1: DFF<Bit>,
    raw_gt1: DFF<Bit>,
    slot: DFF<Bit>,
    slot_on: DFF<Bit>,
    raw_cnt: DFF<Bits<16>>,
    raw_valid: DFF<Bit>,
    raw_bit: DFF<Bit>,
    raw_on: DFF<Bit>,
    rf_occ: DFF<Bits<9>>,
    rf_room: DFF<Bit>,
    rf_pend: DFF<Bit>,
    rf_out: DFF<Bits<32>>,
    rf_valid: DFF<Bit>,
    rf_level: DFF<Bits<9>>,
    // RNG key/IV load: after a RESEED, ten reads of the shadow RAM (RNG_KEY[0] low half,
    // high half, RNG_KEY[1] …, RNG_IV[2] low half), one per tick, while the RNG_CMD write
    // waits for its ack (so no other access needs the RAM's read port).
    ld_on: DFF<Bit>,
    ld_cnt: DFF<Bits<4>>,
    ld_v: DFF<Bit>,
    ld_hi: DFF<Bit>,
    ld_start: Signal<Local, Bit>,
    ld_fin: Signal<Local, Bit>,
    ld_addr: Signal<Local, Bits<8>>,
    // Combinational helpers.
    fire: Signal<Local, Bits<CORE_CHANNELS>>,
    status: Signal<Local, Bits<10>>,
    ro: Signal<Local, Bits<32>>,
    // A TAG_DATA read that finds the output register refilling waits (holds stage 2).
    hold: Signal<Local, Bit>,
    rf_rd: Signal<Local, Bit>,
    rf_wr: Signal<Local, Bit>,
    rf_pop: Signal<Local, Bit>,
    tw_start: Signal<Local, Bit>,
    // Addresses (from the register map) and constant register values.
    k_id: Constant<Bits<8>>,
    k_version: Constant<Bits<8>>,
    k_hash: Constant<Bits<8>>,
    k_build: Constant<Bits<8>>,
    k_features: Constant<Bits<8>>,
    k_status: Constant<Bits<8>>,
    k_bad: Constant<Bits<8>>,
    k_skip: Constant<Bits<8>>,
    k_tag_level: Constant<Bits<8>>,
    k_tag_data: Constant<Bits<8>>,
    k_gate_seq: Constant<Bits<8>>,
    k_singles: [Constant<Bits<8>>; CORE_CHANNELS],
    k_count: [Constant<Bits<8>>; GROUPS],
    k_hist_data: Constant<Bits<8>>,
    k_hist_ovf: Constant<Bits<8>>,
    k_hist_cmd: Constant<Bits<8>>,
    k_rng_level: Constant<Bits<8>>,
    k_rng_data: Constant<Bits<8>>,
    k_rng_missed: Constant<Bits<8>>,
    k_rng_cmd: Constant<Bits<8>>,
    k_flat: Constant<Bits<8>>,
    k_ctrl: Constant<Bits<8>>,
    k_uart_div: Constant<Bits<8>>,
    k_dead_time: [Constant<Bits<8>>; CORE_CHANNELS],
    k_chan_enable: Constant<Bits<8>>,
    k_chan_falling: Constant<Bits<8>>,
    k_coinc_delay: [Constant<Bits<8>>; CORE_CHANNELS],
    k_coinc_group: [Constant<Bits<8>>; GROUPS],
    k_coinc_window: Constant<Bits<8>>,
    k_coinc_gate: Constant<Bits<8>>,
    k_hist_config: Constant<Bits<8>>,
    k_hist_offset: Constant<Bits<8>>,
    k_hist_addr: Constant<Bits<8>>,
    k_ts_threshold: [Constant<Bits<8>>; CORE_CHANNELS],
    k_ts_config: Constant<Bits<8>>,
    k_ts_pair_delay: Constant<Bits<8>>,
    k_rng_key: [Constant<Bits<8>>; 3],
    k_rng_iv: [Constant<Bits<8>>; 3],
    k_rng_config: Constant<Bits<8>>,
    k_rng_thr_z: Constant<Bits<8>>,
    k_rng_thr_class: Constant<Bits<8>>,
    k_rng_cutoff: Constant<Bits<8>>,
    k_rng_slot_div: Constant<Bits<8>>,
    k_rng_raw_div: Constant<Bits<8>>,
    k_filter_delay: [Constant<Bits<8>>; CORE_CHANNELS],
    k_filter_window: Constant<Bits<8>>,
    k_filter_pass: Constant<Bits<8>>,
    v_id: Constant<Bits<32>>,
    v_version: Constant<Bits<32>>,
    v_hash: Constant<Bits<32>>,
    v_build: Constant<Bits<32>>,
    v_features: Constant<Bits<32>>,
    // The optional blocks in this build (`FEATURES`): a missing block's outputs are ignored
    // and its inputs held, so synthesis removes it.
    has_coinc: Constant<Bit>,
    has_filter: Constant<Bit>,
    has_hist: Constant<Bit>,
    has_tsig: Constant<Bit>,
    has_rng: Constant<Bit>,
    v_flat: Constant<Bits<32>>,
    k_ld_last: Constant<Bits<4>>,
    lost_kind: Constant<Bits<2>>,
    rf_room_limit: Constant<Bits<9>>,
}

/// Address of element `i` of `r`, as a constant.
fn addr(r: &Register, i: usize) -> Constant<Bits<8>> {
    Constant::new((r.at(i) as u64).to_bits())
}

/// Addresses of every element of `r`.
fn addrs<const K: usize>(r: &Register) -> [Constant<Bits<8>>; K] {
    assert_eq!(r.count as usize, K, "{}", r.name);
    array_init::array_init(|i| addr(r, i))
}

/// A 32-bit constant.
fn word(x: u32) -> Constant<Bits<32>> {
    Constant::new((x as u64).to_bits())
}

/// The hardware copy of element `i` of rw register `r`, at its reset value.
fn cfg<const W: usize>(r: &Register, i: usize) -> Cfg<W> {
    assert!(r.access == Access::Rw && W == r.width as usize, "{}", r.name);
    DFFWithInit::new(((r.reset & r.element_mask(i)) as u64).to_bits())
}

/// Hardware copies of every element of rw register `r` (element `i` at its reset value).
fn cfgs<const W: usize, const K: usize>(r: &Register) -> [Cfg<W>; K] {
    assert_eq!(r.count as usize, K, "{}", r.name);
    array_init::array_init(|i| cfg(r, i))
}

/// The `BUILD` register value for a board code and clock frequency (in Hz).
pub fn build_word(board_code: u8, clock_hz: u64) -> u32 {
    let f = &regmap::BUILD.fields;
    let mut w = 0;
    w = f[0].set(w, CORE_CHANNELS as u32);
    w = f[1].set(w, GROUPS as u32);
    w = f[2].set(w, board_code as u32);
    f[3].set(w, (clock_hz / 100_000).min(0xffff) as u32)
}

/// The write mask of every address: [`Register::element_mask`] for rw elements, 0 elsewhere.
pub fn write_masks() -> [u32; 256] {
    let mut m = [0u32; 256];
    for r in regmap::REGISTERS.iter().filter(|r| r.access == Access::Rw) {
        for i in 0..r.count as usize {
            m[r.at(i) as usize] = r.element_mask(i);
        }
    }
    m
}

/// The power-on value of every rw address (0 elsewhere).
pub fn reset_values() -> [u32; 256] {
    let mut m = [0u32; 256];
    for r in regmap::REGISTERS.iter().filter(|r| r.access == Access::Rw) {
        for i in 0..r.count as usize {
            m[r.at(i) as usize] = r.reset & r.element_mask(i);
        }
    }
    m
}

fn table(values: [u32; 256]) -> BTreeMap<Bits<8>, Bits<32>> {
    values.iter().enumerate().map(|(a, &v)| ((a as u64).to_bits(), (v as u64).to_bits())).collect()
}

impl Core {
    /// The full core for a board: `board_code` goes into `BUILD.BOARD` (0 simulator, 1
    /// iCEBreaker, 2 iCE40-HX8K breakout) and `clock_hz`, the core clock in Hz, into
    /// `BUILD.CLOCK`.
    pub fn new(board_code: u8, clock_hz: u64) -> Self {
        Self::with_features(board_code, clock_hz, regmap::FEAT_ALL)
    }

    /// The core with only the optional blocks in `features` (`regmap::FEAT_*` bits, read back
    /// in `FEATURES`); see [`regmap::FEATURES`] for what a missing block's registers do.
    pub fn with_features(board_code: u8, clock_hz: u64, features: u32) -> Self {
        use regmap::*;
        assert_eq!(features & !FEAT_ALL, 0, "unknown feature bits {features:#x}");
        Self {
            clock: Default::default(),
            ctl_clock: Default::default(),
            pins: Default::default(),
            entropy: Default::default(),
            pll_locked: Default::default(),
            bus_addr: Default::default(),
            bus_wdata: Default::default(),
            bus_we: Default::default(),
            bus_re: Default::default(),
            bus_ack: Default::default(),
            bus_rdata: Default::default(),
            bus_rempty: Default::default(),
            bus_rvalid_addr: Default::default(),
            link_bad_frames: Default::default(),
            link_skipped: Default::default(),
            uart_div: Default::default(),
            leds: Default::default(),
            tsig: Default::default(),
            channels: array_init::array_init(|_| Default::default()),
            pipe: Default::default(),
            filter: Default::default(),
            coinc: Default::default(),
            hist: Default::default(),
            rng: Default::default(),
            rng_fifo: Default::default(),
            ent_sync: Default::default(),
            pll_sync: Default::default(),
            xing: Default::default(),
            wx: Default::default(),
            level_x: Default::default(),
            ovf_x: Default::default(),
            busy_sync: Default::default(),
            seq_sync: Default::default(),
            pend_sync: Default::default(),
            a1: Default::default(),
            wd1: Default::default(),
            we1: Default::default(),
            re1: Default::default(),
            wmask: SyncROM::new(table(write_masks())),
            shadow: RAM::new(table(reset_values())),
            s_id: Default::default(),
            s_version: Default::default(),
            s_hash: Default::default(),
            s_build: Default::default(),
            s_features: Default::default(),
            s_flat: Default::default(),
            s_status: Default::default(),
            s_bad: Default::default(),
            s_skip: Default::default(),
            s_tag_level: Default::default(),
            s_tag_data: Default::default(),
            s_gate_seq: Default::default(),
            s_counts: Default::default(),
            s_hist_addr: Default::default(),
            s_hist_data: Default::default(),
            s_hist_ovf: Default::default(),
            s_rng_level: Default::default(),
            s_rng_data: Default::default(),
            s_rng_missed: Default::default(),
            s_wo: Default::default(),
            s_tick: Default::default(),
            ack: Default::default(),
            rdata: Default::default(),
            rempty: Default::default(),
            rvalid: Default::default(),
            ctrl: cfg(&CTRL, 0),
            ctrl_t: cfg(&CTRL, 0),
            uart_div_r: cfg(&UART_DIV, 0),
            dead_time: cfgs(&DEAD_TIME),
            chan_enable: cfg(&CHAN_ENABLE, 0),
            chan_falling: cfg(&CHAN_FALLING, 0),
            coinc_delay: cfgs(&COINC_DELAY),
            coinc_group: cfgs(&COINC_GROUP),
            coinc_window: cfg(&COINC_WINDOW, 0),
            coinc_gate: cfg(&COINC_GATE, 0),
            hist_config: cfg(&HIST_CONFIG, 0),
            hist_offset: cfg(&HIST_OFFSET, 0),
            hist_addr: cfg(&HIST_ADDR, 0),
            ts_threshold: cfgs(&TS_THRESHOLD),
            ts_config: cfg(&TS_CONFIG, 0),
            ts_src_mask: DFFWithInit::new((crate::testsig::channel_mask((TS_CONFIG.reset >> 4 & 7) as u8, CORE_CHANNELS) as u64).to_bits()),
            ts_dst_mask: DFFWithInit::new((crate::testsig::channel_mask((TS_CONFIG.reset >> 8 & 7) as u8, CORE_CHANNELS) as u64).to_bits()),
            ts_src_dec: Default::default(),
            ts_dst_dec: Default::default(),
            ts_pair_delay: cfg(&TS_PAIR_DELAY, 0),
            rng_config: cfg(&RNG_CONFIG, 0),
            rng_thr_z: cfg(&RNG_THR_Z, 0),
            rng_thr_class: cfg(&RNG_THR_CLASS, 0),
            rng_cutoff: cfg(&RNG_CUTOFF, 0),
            rng_slot_div: cfg(&RNG_SLOT_DIV, 0),
            rng_raw_div: cfg(&RNG_RAW_DIV, 0),
            filter_delay: cfgs(&FILTER_DELAY),
            filter_window: cfg(&FILTER_WINDOW, 0),
            filter_pass: cfg(&FILTER_PASS, 0),
            we_ctrl: Default::default(),
            we_chan_enable: Default::default(),
            we_chan_falling: Default::default(),
            we_coinc_window: Default::default(),
            we_coinc_gate: Default::default(),
            we_hist_config: Default::default(),
            we_hist_offset: Default::default(),
            we_hist_cmd: Default::default(),
            we_ts_config: Default::default(),
            we_ts_pair_delay: Default::default(),
            we_filter_window: Default::default(),
            we_filter_pass: Default::default(),
            we_dead_time: Default::default(),
            we_coinc_delay: Default::default(),
            we_ts_threshold: Default::default(),
            we_filter_delay: Default::default(),
            we_coinc_group: Default::default(),
            hist_clear: Default::default(),
            rng_reseed: Default::default(),
            rng_hclear: Default::default(),
            fire_r: Default::default(),
            lost: Default::default(),
            acq_prev: Default::default(),
            pend_t: Default::default(),
            gate_cnt: Default::default(),
            seq_prev: Default::default(),
            slot_cnt: Default::default(),
            slot_gt1: Default::default(),
            raw_gt1: Default::default(),
            slot: Default::default(),
            slot_on: Default::default(),
            raw_cnt: Default::default(),
            raw_valid: Default::default(),
            raw_bit: Default::default(),
            raw_on: Default::default(),
            rf_occ: Default::default(),
            rf_room: Default::default(),
            rf_pend: Default::default(),
            rf_out: Default::default(),
            rf_valid: Default::default(),
            rf_level: Default::default(),
            ld_on: Default::default(),
            ld_cnt: Default::default(),
            ld_v: Default::default(),
            ld_hi: Default::default(),
            ld_start: Default::default(),
            ld_fin: Default::default(),
            ld_addr: Default::default(),
            fire: Default::default(),
            status: Default::default(),
            ro: Default::default(),
            hold: Default::default(),
            rf_rd: Default::default(),
            rf_wr: Default::default(),
            rf_pop: Default::default(),
            tw_start: Default::default(),
            k_id: addr(&ID, 0),
            k_version: addr(&VERSION, 0),
            k_hash: addr(&MAP_HASH, 0),
            k_build: addr(&BUILD, 0),
            k_features: addr(&FEATURES, 0),
            k_status: addr(&STATUS, 0),
            k_bad: addr(&LINK_BAD_FRAMES, 0),
            k_skip: addr(&LINK_SKIPPED, 0),
            k_tag_level: addr(&TAG_LEVEL, 0),
            k_tag_data: addr(&TAG_DATA, 0),
            k_gate_seq: addr(&COINC_GATE_SEQ, 0),
            k_singles: addrs(&COINC_SINGLES),
            k_count: addrs(&COINC_COUNT),
            k_hist_data: addr(&HIST_DATA, 0),
            k_hist_ovf: addr(&HIST_OVERFLOW, 0),
            k_hist_cmd: addr(&HIST_CMD, 0),
            k_rng_level: addr(&RNG_LEVEL, 0),
            k_rng_data: addr(&RNG_DATA, 0),
            k_rng_missed: addr(&RNG_MISSED, 0),
            k_rng_cmd: addr(&RNG_CMD, 0),
            k_flat: addr(&FILTER_LATENCY, 0),
            k_ctrl: addr(&CTRL, 0),
            k_uart_div: addr(&UART_DIV, 0),
            k_dead_time: addrs(&DEAD_TIME),
            k_chan_enable: addr(&CHAN_ENABLE, 0),
            k_chan_falling: addr(&CHAN_FALLING, 0),
            k_coinc_delay: addrs(&COINC_DELAY),
            k_coinc_group: addrs(&COINC_GROUP),
            k_coinc_window: addr(&COINC_WINDOW, 0),
            k_coinc_gate: addr(&COINC_GATE, 0),
            k_hist_config: addr(&HIST_CONFIG, 0),
            k_hist_offset: addr(&HIST_OFFSET, 0),
            k_hist_addr: addr(&HIST_ADDR, 0),
            k_ts_threshold: addrs(&TS_THRESHOLD),
            k_ts_config: addr(&TS_CONFIG, 0),
            k_ts_pair_delay: addr(&TS_PAIR_DELAY, 0),
            k_rng_key: addrs(&RNG_KEY),
            k_rng_iv: addrs(&RNG_IV),
            k_rng_config: addr(&RNG_CONFIG, 0),
            k_rng_thr_z: addr(&RNG_THR_Z, 0),
            k_rng_thr_class: addr(&RNG_THR_CLASS, 0),
            k_rng_cutoff: addr(&RNG_CUTOFF, 0),
            k_rng_slot_div: addr(&RNG_SLOT_DIV, 0),
            k_rng_raw_div: addr(&RNG_RAW_DIV, 0),
            k_filter_delay: addrs(&FILTER_DELAY),
            k_filter_window: addr(&FILTER_WINDOW, 0),
            k_filter_pass: addr(&FILTER_PASS, 0),
            v_id: word(ID.reset),
            v_version: word(VERSION.reset),
            v_hash: word(REGMAP_HASH),
            v_build: word(build_word(board_code, clock_hz)),
            v_features: word(features),
            has_coinc: Constant::new(features & FEAT_COINC != 0),
            has_filter: Constant::new(features & FEAT_FILTER != 0),
            has_hist: Constant::new(features & FEAT_HIST != 0),
            has_tsig: Constant::new(features & FEAT_TESTSIG != 0),
            has_rng: Constant::new(features & FEAT_RNG != 0),
            v_flat: word(FILTER_LATENCY.reset),
            k_ld_last: Constant::new(9u64.to_bits()),
            lost_kind: Constant::new((crate::tagfmt::KIND_LOST as u64).to_bits()),
            // The writer may be one record behind the registered room flag: keep 2 spare.
            rf_room_limit: Constant::new(((1u64 << RNG_FIFO_ADDR_BITS) - 3).to_bits()),
        }
    }
}

impl Default for Core {
    /// The simulator's core: board code 0, 150 MHz.
    fn default() -> Self {
        Self::new(0, 150_000_000)
    }
}

impl Logic for Core {
    #[hdl_gen]
    fn update(&mut self) {
        // Control domain.
        dff_setup!(
            self, ctl_clock, a1, wd1, we1, re1, s_id, s_version, s_hash, s_build, s_features, s_flat, s_status, s_bad,
            s_skip, s_tag_level, s_tag_data, s_gate_seq, s_counts, s_hist_addr, s_hist_data, s_hist_ovf, s_rng_level,
            s_rng_data, s_rng_missed, s_wo, s_tick, ack, rdata, rempty, rvalid, ctrl, uart_div_r, hist_addr, rng_config,
            rng_thr_z, rng_thr_class, rng_cutoff, rng_slot_div, rng_raw_div, rng_reseed, rng_hclear, lost, acq_prev,
            gate_cnt, seq_prev, slot_cnt, slot_gt1, raw_gt1, slot, slot_on, raw_cnt, raw_valid, raw_bit, raw_on, rf_occ,
            rf_room, rf_pend, rf_out, rf_valid, rf_level, ld_on, ld_cnt, ld_v, ld_hi
        );
        // Tick domain.
        dff_setup!(
            self, clock, ctrl_t, chan_enable, chan_falling, coinc_window, coinc_gate, hist_config, hist_offset, ts_config,
            ts_src_mask, ts_dst_mask, ts_pair_delay, filter_window, filter_pass, hist_clear, fire_r, pend_t
        );
        dff_setup!(
            self, clock, we_ctrl, we_chan_enable, we_chan_falling, we_coinc_window, we_coinc_gate, we_hist_config,
            we_hist_offset, we_hist_cmd, we_ts_config, we_ts_pair_delay, we_filter_window, we_filter_pass
        );
        clock!(self, clock, tsig, pipe, filter, coinc, hist);
        clock!(self, ctl_clock, rng, rng_fifo, ent_sync, pll_sync, busy_sync, seq_sync, pend_sync);
        self.coinc.rd_clock.next = self.ctl_clock.val();
        self.hist.rd_clock.next = self.ctl_clock.val();
        self.xing.tick_clock.next = self.clock.val();
        self.xing.ctl_clock.next = self.ctl_clock.val();
        self.wx.tick_clock.next = self.clock.val();
        self.wx.ctl_clock.next = self.ctl_clock.val();
        self.level_x.src_clock.next = self.clock.val();
        self.level_x.dst_clock.next = self.ctl_clock.val();
        self.ovf_x.src_clock.next = self.clock.val();
        self.ovf_x.dst_clock.next = self.ctl_clock.val();

        // ---- Bus stage 1 (tick t): register the access and the one-hot read selects.
        // A write to the tick domain holds its address and data here until `wx` is done.
        self.tw_start.next = self.we1.q.val() & self.s_tick.q.val();
        if !self.tw_start.val() & !self.wx.busy.val() {
            self.a1.d.next = self.bus_addr.val();
            self.wd1.d.next = self.bus_wdata.val();
        }
        self.we1.d.next = self.bus_we.val();
        // A held TAG_DATA read stays in stage 2 (the master keeps the address until the ack).
        // It waits while the crossing is empty but records are on their way (`pend_sync`); a
        // read of TAG_LEVEL or HIST_OVERFLOW waits for its snapshot's `stable` cycle.
        self.hold.next = self.re1.q.val()
            & ((self.s_tag_data.q.val() & self.xing.empty.val() & self.pend_sync.sig_out.val())
                | (self.s_tag_level.q.val() & !self.level_x.stable.val())
                | (self.s_hist_ovf.q.val() & !self.ovf_x.stable.val()));
        self.re1.d.next = self.bus_re.val() | self.hold.val();
        self.wmask.clock.next = self.ctl_clock.val();
        self.wmask.address.next = self.bus_addr.val();
        self.shadow.read_clock.next = self.ctl_clock.val();
        // The key/IV load owns the read port while it runs (the RNG_CMD write waits).
        self.ld_addr.next = self.k_rng_iv[2].val();
        if self.ld_cnt.q.val() < 9 {
            self.ld_addr.next = self.k_rng_iv[1].val();
        }
        if self.ld_cnt.q.val() < 7 {
            self.ld_addr.next = self.k_rng_iv[0].val();
        }
        if self.ld_cnt.q.val() < 5 {
            self.ld_addr.next = self.k_rng_key[2].val();
        }
        if self.ld_cnt.q.val() < 4 {
            self.ld_addr.next = self.k_rng_key[1].val();
        }
        if self.ld_cnt.q.val() < 2 {
            self.ld_addr.next = self.k_rng_key[0].val();
        }
        if self.ld_on.q.val() {
            self.shadow.read_address.next = self.ld_addr.val();
        } else {
            self.shadow.read_address.next = self.bus_addr.val();
        }
        self.coinc.rd_addr.next = self.bus_addr.val().get_bits::<COUNT_ADDR_BITS>(0);
        self.s_id.d.next = self.bus_addr.val() == self.k_id.val();
        self.s_version.d.next = self.bus_addr.val() == self.k_version.val();
        self.s_hash.d.next = self.bus_addr.val() == self.k_hash.val();
        self.s_build.d.next = self.bus_addr.val() == self.k_build.val();
        self.s_features.d.next = self.bus_addr.val() == self.k_features.val();
        self.s_flat.d.next = self.bus_addr.val() == self.k_flat.val();
        self.s_status.d.next = self.bus_addr.val() == self.k_status.val();
        self.s_bad.d.next = self.bus_addr.val() == self.k_bad.val();
        self.s_skip.d.next = self.bus_addr.val() == self.k_skip.val();
        self.s_tag_level.d.next = self.bus_addr.val() == self.k_tag_level.val();
        self.s_tag_data.d.next = self.bus_addr.val() == self.k_tag_data.val();
        self.s_gate_seq.d.next = self.bus_addr.val() == self.k_gate_seq.val();
        // One select for the nine count words: the counter's RAM port serves them all.
        self.s_counts.d.next = false;
        for i in 0..CORE_CHANNELS {
            if self.bus_addr.val() == self.k_singles[i].val() {
                self.s_counts.d.next = true;
            }
        }
        for g in 0..GROUPS {
            if self.bus_addr.val() == self.k_count[g].val() {
                self.s_counts.d.next = true;
            }
        }
        self.s_hist_addr.d.next = self.bus_addr.val() == self.k_hist_addr.val();
        self.s_hist_data.d.next = self.bus_addr.val() == self.k_hist_data.val();
        self.s_hist_ovf.d.next = self.bus_addr.val() == self.k_hist_ovf.val();
        self.s_rng_level.d.next = self.bus_addr.val() == self.k_rng_level.val();
        self.s_rng_data.d.next = self.bus_addr.val() == self.k_rng_data.val();
        self.s_rng_missed.d.next = self.bus_addr.val() == self.k_rng_missed.val();
        self.s_wo.d.next =
            (self.bus_addr.val() == self.k_hist_cmd.val()) | (self.bus_addr.val() == self.k_rng_cmd.val());
        // The registers of the tick domain (and HIST_CMD, whose strobe is a tick-domain one).
        self.s_tick.d.next = (self.bus_addr.val() == self.k_ctrl.val())
            | (self.bus_addr.val() == self.k_chan_enable.val())
            | (self.bus_addr.val() == self.k_chan_falling.val())
            | (self.bus_addr.val() == self.k_coinc_window.val())
            | (self.bus_addr.val() == self.k_coinc_gate.val())
            | (self.bus_addr.val() == self.k_hist_config.val())
            | (self.bus_addr.val() == self.k_hist_offset.val())
            | (self.bus_addr.val() == self.k_hist_cmd.val())
            | (self.bus_addr.val() == self.k_ts_config.val())
            | (self.bus_addr.val() == self.k_ts_pair_delay.val())
            | (self.bus_addr.val() == self.k_filter_window.val())
            | (self.bus_addr.val() == self.k_filter_pass.val());
        for i in 0..CORE_CHANNELS {
            if (self.bus_addr.val() == self.k_dead_time[i].val())
                | (self.bus_addr.val() == self.k_coinc_delay[i].val())
                | (self.bus_addr.val() == self.k_ts_threshold[i].val())
                | (self.bus_addr.val() == self.k_filter_delay[i].val())
            {
                self.s_tick.d.next = true;
            }
        }
        for g in 0..GROUPS {
            if self.bus_addr.val() == self.k_coinc_group[g].val() {
                self.s_tick.d.next = true;
            }
        }

        // ---- Bus stage 2 (tick t + 1): writes.
        self.shadow.write_clock.next = self.ctl_clock.val();
        self.shadow.write_address.next = self.a1.q.val();
        self.shadow.write_data.next = self.wd1.q.val() & self.wmask.data.val();
        self.shadow.write_enable.next = self.we1.q.val() & self.wmask.data.val().get_bit(0);
        self.rng_reseed.d.next = false;
        self.rng_hclear.d.next = false;
        self.ld_start.next = false;
        // A write to a tick-domain register goes through `wx` and is acknowledged when the
        // tick side has taken it; CTRL is written on both sides.
        self.wx.start.next = self.tw_start.val();
        self.wx.addr_in.next = self.a1.q.val();
        self.wx.data_in.next = self.wd1.q.val();
        if self.we1.q.val() {
            if self.a1.q.val() == self.k_ctrl.val() {
                self.ctrl.d.next = bit_cast::<4, 32>(self.wd1.q.val());
            }
            if self.a1.q.val() == self.k_uart_div.val() {
                self.uart_div_r.d.next = bit_cast::<16, 32>(self.wd1.q.val());
            }
            if self.a1.q.val() == self.k_rng_cmd.val() {
                self.rng_reseed.d.next = self.wd1.q.val().get_bit(0);
                self.ld_start.next = self.wd1.q.val().get_bit(0);
                self.rng_hclear.d.next = self.wd1.q.val().get_bit(1);
            }
            if self.a1.q.val() == self.k_rng_config.val() {
                self.rng_config.d.next = bit_cast::<1, 32>(self.wd1.q.val());
            }
            if self.a1.q.val() == self.k_rng_thr_z.val() {
                self.rng_thr_z.d.next = bit_cast::<16, 32>(self.wd1.q.val());
            }
            if self.a1.q.val() == self.k_rng_thr_class.val() {
                self.rng_thr_class.d.next = self.wd1.q.val();
            }
            if self.a1.q.val() == self.k_rng_cutoff.val() {
                self.rng_cutoff.d.next = bit_cast::<27, 32>(self.wd1.q.val());
            }
            if self.a1.q.val() == self.k_rng_slot_div.val() {
                self.rng_slot_div.d.next = self.wd1.q.val();
            }
            if self.a1.q.val() == self.k_rng_raw_div.val() {
                self.rng_raw_div.d.next = bit_cast::<16, 32>(self.wd1.q.val());
            }
        }

        // ---- Tick domain: the write `wx` carries (its address and data are static while
        // `load` is high, see `crate::cdc`).
        for i in 0..CORE_CHANNELS {
            self.dead_time[i].clock.next = self.clock.val();
            self.dead_time[i].d.next = self.dead_time[i].q.val();
            self.coinc_delay[i].clock.next = self.clock.val();
            self.coinc_delay[i].d.next = self.coinc_delay[i].q.val();
            self.ts_threshold[i].clock.next = self.clock.val();
            self.ts_threshold[i].d.next = self.ts_threshold[i].q.val();
            self.filter_delay[i].clock.next = self.clock.val();
            self.filter_delay[i].d.next = self.filter_delay[i].q.val();
        }
        for g in 0..GROUPS {
            self.coinc_group[g].clock.next = self.clock.val();
            self.coinc_group[g].d.next = self.coinc_group[g].q.val();
        }
        // Enables: the held address decoded in the `pre_load` tick, registered.
        self.we_ctrl.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_ctrl.val());
        for i in 0..CORE_CHANNELS {
            self.we_dead_time[i].clock.next = self.clock.val();
            self.we_dead_time[i].d.next =
                self.wx.pre_load.val() & (self.wx.addr.val() == self.k_dead_time[i].val());
            self.we_coinc_delay[i].clock.next = self.clock.val();
            self.we_coinc_delay[i].d.next =
                self.wx.pre_load.val() & (self.wx.addr.val() == self.k_coinc_delay[i].val());
            self.we_ts_threshold[i].clock.next = self.clock.val();
            self.we_ts_threshold[i].d.next =
                self.wx.pre_load.val() & (self.wx.addr.val() == self.k_ts_threshold[i].val());
            self.we_filter_delay[i].clock.next = self.clock.val();
            self.we_filter_delay[i].d.next =
                self.wx.pre_load.val() & (self.wx.addr.val() == self.k_filter_delay[i].val());
        }
        for g in 0..GROUPS {
            self.we_coinc_group[g].clock.next = self.clock.val();
            self.we_coinc_group[g].d.next =
                self.wx.pre_load.val() & (self.wx.addr.val() == self.k_coinc_group[g].val());
        }
        self.we_chan_enable.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_chan_enable.val());
        self.we_chan_falling.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_chan_falling.val());
        self.we_coinc_window.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_coinc_window.val());
        self.we_coinc_gate.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_coinc_gate.val());
        self.we_hist_config.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_hist_config.val());
        self.we_hist_offset.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_hist_offset.val());
        self.we_hist_cmd.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_hist_cmd.val());
        self.we_ts_config.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_ts_config.val());
        self.we_ts_pair_delay.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_ts_pair_delay.val());
        self.we_filter_window.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_filter_window.val());
        self.we_filter_pass.d.next = self.wx.pre_load.val() & (self.wx.addr.val() == self.k_filter_pass.val());
        // The loads (`wx.data` is static in the `load` tick).
        self.hist_clear.d.next = false;
        if self.we_ctrl.q.val() {
            self.ctrl_t.d.next = bit_cast::<4, 32>(self.wx.data.val());
        }
        for i in 0..CORE_CHANNELS {
            if self.we_dead_time[i].q.val() {
                self.dead_time[i].d.next = bit_cast::<DEAD_TIME_BITS, 32>(self.wx.data.val());
            }
            if self.we_coinc_delay[i].q.val() {
                self.coinc_delay[i].d.next = bit_cast::<DELAY_BITS, 32>(self.wx.data.val());
            }
            if self.we_ts_threshold[i].q.val() {
                self.ts_threshold[i].d.next = bit_cast::<THRESHOLD_BITS, 32>(self.wx.data.val());
            }
            if self.we_filter_delay[i].q.val() {
                self.filter_delay[i].d.next = bit_cast::<FILTER_DELAY_BITS, 32>(self.wx.data.val());
            }
        }
        if self.we_chan_enable.q.val() {
            self.chan_enable.d.next = bit_cast::<CORE_CHANNELS, 32>(self.wx.data.val());
        }
        if self.we_chan_falling.q.val() {
            self.chan_falling.d.next = bit_cast::<CORE_CHANNELS, 32>(self.wx.data.val());
        }
        for g in 0..GROUPS {
            if self.we_coinc_group[g].q.val() {
                self.coinc_group[g].d.next = bit_cast::<CORE_CHANNELS, 32>(self.wx.data.val());
            }
        }
        if self.we_coinc_window.q.val() {
            self.coinc_window.d.next = bit_cast::<WINDOW_BITS, 32>(self.wx.data.val());
        }
        if self.we_coinc_gate.q.val() {
            self.coinc_gate.d.next = self.wx.data.val();
        }
        if self.we_hist_config.q.val() {
            self.hist_config.d.next = bit_cast::<12, 32>(self.wx.data.val());
        }
        if self.we_hist_offset.q.val() {
            self.hist_offset.d.next = bit_cast::<HIST_OFFSET_BITS, 32>(self.wx.data.val());
        }
        if self.we_hist_cmd.q.val() {
            self.hist_clear.d.next = self.wx.data.val().get_bit(0);
        }
        self.ts_src_dec.next = 0.into();
        self.ts_dst_dec.next = 0.into();
        for i in 0..CORE_CHANNELS {
            if self.wx.data.val().get_bits::<3>(4).index() == i {
                self.ts_src_dec.next = self.ts_src_dec.val().replace_bit(i, true);
            }
            if self.wx.data.val().get_bits::<3>(8).index() == i {
                self.ts_dst_dec.next = self.ts_dst_dec.val().replace_bit(i, true);
            }
        }
        if self.we_ts_config.q.val() {
            self.ts_config.d.next = bit_cast::<11, 32>(self.wx.data.val());
            self.ts_src_mask.d.next = self.ts_src_dec.val();
            self.ts_dst_mask.d.next = self.ts_dst_dec.val();
        }
        if self.we_ts_pair_delay.q.val() {
            self.ts_pair_delay.d.next = bit_cast::<PAIR_DELAY_BITS, 32>(self.wx.data.val());
        }
        if self.we_filter_window.q.val() {
            self.filter_window.d.next = bit_cast::<FILTER_WINDOW_BITS, 32>(self.wx.data.val());
        }
        if self.we_filter_pass.q.val() {
            self.filter_pass.d.next = bit_cast::<CORE_CHANNELS, 32>(self.wx.data.val());
        }

        // ---- Bus stage 2: reads (the AND-OR of the registered selects) and FIFO pops.
        self.status.next = 0.into();
        self.status.next = self.status.val().replace_bit(0, self.pll_sync.sig_out.val());
        self.status.next =
            self.status.val().replace_bit(1, self.xing.empty.val() & !self.pend_sync.sig_out.val());
        if self.has_rng.val() {
            self.status.next = self.status.val().replace_bit(2, self.rng.ready.val());
            self.status.next = self.status.val().replace_bit(3, self.rng.health_failed.val());
            self.status.next = self.status.val().replace_bit(4, self.rng.rct_failed.val());
            self.status.next = self.status.val().replace_bit(5, self.rng.apt_failed.val());
            self.status.next = self.status.val().replace_bit(6, self.rng.health_started.val());
            self.status.next = self.status.val().replace_bit(7, self.rng.pool_ready.val());
        }
        if self.has_hist.val() {
            self.status.next = self.status.val().replace_bit(8, self.busy_sync.sig_out.val());
        }
        self.status.next = self.status.val().replace_bit(9, self.lost.q.val());
        self.ro.next = 0.into();
        if self.s_id.q.val() {
            self.ro.next = self.ro.val() | self.v_id.val();
        }
        if self.s_version.q.val() {
            self.ro.next = self.ro.val() | self.v_version.val();
        }
        if self.s_hash.q.val() {
            self.ro.next = self.ro.val() | self.v_hash.val();
        }
        if self.s_build.q.val() {
            self.ro.next = self.ro.val() | self.v_build.val();
        }
        if self.s_features.q.val() {
            self.ro.next = self.ro.val() | self.v_features.val();
        }
        if self.s_flat.q.val() {
            self.ro.next = self.ro.val() | self.v_flat.val();
        }
        if self.s_status.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 10>(self.status.val());
        }
        if self.s_bad.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 16>(self.link_bad_frames.val());
        }
        if self.s_skip.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 16>(self.link_skipped.val());
        }
        if self.s_tag_level.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, OCCUPANCY_BITS>(self.level_x.out.val());
        }
        if self.s_tag_data.q.val() & !self.xing.empty.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, RECORD_BITS>(self.xing.data_out.val());
        }
        if self.s_gate_seq.q.val() & self.has_coinc.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 16>(self.gate_cnt.q.val());
        }
        if self.s_counts.q.val() & self.has_coinc.val() {
            self.ro.next = self.ro.val() | self.coinc.rd_data.val();
        }
        if self.s_hist_addr.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, HIST_BIN_BITS>(self.hist_addr.q.val());
        }
        if self.s_hist_data.q.val() & self.has_hist.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, HIST_COUNT_BITS>(self.hist.rd_data.val());
        }
        if self.s_hist_ovf.q.val() & self.has_hist.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, HIST_COUNT_BITS>(self.ovf_x.out.val());
        }
        if self.s_rng_level.q.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 9>(self.rf_level.q.val());
        }
        if self.s_rng_data.q.val() & self.rf_valid.q.val() & self.has_rng.val() {
            self.ro.next = self.ro.val() | self.rf_out.q.val();
        }
        if self.s_rng_missed.q.val() & self.has_rng.val() {
            self.ro.next = self.ro.val() | bit_cast::<32, 16>(self.rng.missed.val());
        }
        // The key/IV load: chunk k is read in tick k of `ld_on` and presented in the next.
        self.ld_v.d.next = self.ld_on.q.val();
        self.ld_hi.d.next = (self.ld_cnt.q.val() == 1)
            | (self.ld_cnt.q.val() == 3)
            | (self.ld_cnt.q.val() == 6)
            | (self.ld_cnt.q.val() == 8);
        if self.ld_on.q.val() {
            self.ld_cnt.d.next = self.ld_cnt.q.val() + 1;
            if self.ld_cnt.q.val() == self.k_ld_last.val() {
                self.ld_on.d.next = false;
            }
        }
        if self.ld_start.val() {
            self.ld_on.d.next = true;
            self.ld_cnt.d.next = 0.into();
        }
        // The RNG_CMD write that started a load is acknowledged after its last chunk.
        self.ld_fin.next = self.ld_v.q.val() & !self.ld_on.q.val();
        self.ack.d.next =
            ((self.re1.q.val() | self.we1.q.val()) & !self.hold.val() & !self.ld_start.val() & !self.tw_start.val())
                | self.ld_fin.val()
                | self.wx.done.val();
        self.rvalid.d.next = self.ld_fin.val()
            | self.wmask.data.val().get_bit(0)
            | self.s_id.q.val()
            | self.s_version.q.val()
            | self.s_hash.q.val()
            | self.s_build.q.val()
            | self.s_features.q.val()
            | self.s_flat.q.val()
            | self.s_status.q.val()
            | self.s_bad.q.val()
            | self.s_skip.q.val()
            | self.s_tag_level.q.val()
            | self.s_tag_data.q.val()
            | self.s_gate_seq.q.val()
            | self.s_counts.q.val()
            | self.s_hist_data.q.val()
            | self.s_hist_ovf.q.val()
            | self.s_rng_level.q.val()
            | self.s_rng_data.q.val()
            | self.s_rng_missed.q.val()
            | self.s_wo.q.val();
        self.rdata.d.next = 0.into();
        self.rempty.d.next = false;
        if self.re1.q.val() & !self.hold.val() {
            if self.wmask.data.val().get_bit(0) & !self.s_hist_addr.q.val() {
                self.rdata.d.next = self.shadow.read_data.val();
            } else {
                self.rdata.d.next = self.ro.val();
            }
            self.rempty.d.next = (self.s_tag_data.q.val() & self.xing.empty.val())
                | (self.s_rng_data.q.val() & !self.rf_valid.q.val());
        }
        self.xing.read.next = self.re1.q.val() & self.s_tag_data.q.val();
        self.rf_pop.next = self.re1.q.val() & self.s_rng_data.q.val() & self.rf_valid.q.val();
        if self.re1.q.val() & self.s_hist_data.q.val() {
            self.hist_addr.d.next = self.hist_addr.q.val() + 1;
        }
        if self.we1.q.val() & (self.a1.q.val() == self.k_hist_addr.val()) {
            self.hist_addr.d.next = bit_cast::<HIST_BIN_BITS, 32>(self.wd1.q.val());
        }
        self.bus_ack.next = self.ack.q.val();
        self.bus_rdata.next = self.rdata.q.val();
        self.bus_rempty.next = self.rempty.q.val();
        self.bus_rvalid_addr.next = self.rvalid.q.val();
        self.uart_div.next = self.uart_div_r.q.val();

        // ---- Event paths.
        self.tsig.enable.next = self.ts_config.q.val().get_bit(0);
        self.tsig.pair_enable.next = self.ts_config.q.val().get_bit(1);
        self.tsig.pair_src.next = self.ts_src_mask.q.val();
        self.tsig.pair_dst.next = self.ts_dst_mask.q.val();
        self.tsig.pair_delay.next = self.ts_pair_delay.q.val();
        self.fire.next = 0.into();
        for i in 0..CORE_CHANNELS {
            self.tsig.threshold[i].next = self.ts_threshold[i].q.val();
            self.channels[i].clock.next = self.clock.val();
            if self.ctrl_t.q.val().get_bit(2) & self.has_tsig.val() {
                self.channels[i].pin.next = self.tsig.pins.val().get_bit(i);
            } else {
                self.channels[i].pin.next = self.pins.val().get_bit(i);
            }
            self.channels[i].enable.next = self.chan_enable.q.val().get_bit(i);
            self.channels[i].falling.next = self.chan_falling.q.val().get_bit(i);
            self.channels[i].dead_time.next = self.dead_time[i].q.val();
            self.fire.next = self.fire.val().replace_bit(i, self.channels[i].fire.val());
        }
        self.fire_r.d.next = self.fire.val();
        // The tagger: fire, or the filter's kept mask, while acquiring.
        self.pipe.hits.next = 0.into();
        if self.ctrl_t.q.val().get_bit(0) {
            if self.ctrl_t.q.val().get_bit(1) & self.has_filter.val() {
                self.pipe.hits.next = self.filter.kept.val();
            } else {
                self.pipe.hits.next = self.fire.val();
            }
        }
        // The tagger's records cross to the control clock (`xing` pumps its read port).
        self.xing.src_data.next = self.pipe.data_out.val();
        self.xing.src_empty.next = self.pipe.empty.val();
        self.pipe.read.next = self.xing.src_read.val();
        self.pend_t.d.next =
            !self.pipe.empty.val() | (self.pipe.occupancy.val() != 0) | self.xing.src_unread.val();
        self.pend_sync.sig_in.next = self.pend_t.q.val();
        self.level_x.value.next = self.pipe.occupancy.val();
        // TAG_LOST (control side): a LOST record at the crossing's output; cleared when
        // CTRL.ACQUIRE is set.
        self.acq_prev.d.next = self.ctrl.q.val().get_bit(0);
        if self.ctrl.q.val().get_bit(0) & !self.acq_prev.q.val() {
            self.lost.d.next = false;
        }
        if !self.xing.empty.val() & (self.xing.data_out.val().get_bits::<2>(30) == self.lost_kind.val()) {
            self.lost.d.next = true;
        }
        self.filter.hits.next = self.fire_r.q.val();
        for i in 0..CORE_CHANNELS {
            self.filter.delay[i].next = self.filter_delay[i].q.val();
            self.coinc.delay[i].next = self.coinc_delay[i].q.val();
        }
        self.filter.window.next = self.filter_window.q.val();
        self.filter.pass.next = self.filter_pass.q.val();
        for g in 0..GROUPS {
            self.filter.group[g].next = self.coinc_group[g].q.val();
            self.coinc.group[g].next = self.coinc_group[g].q.val();
        }
        self.coinc.hits.next = 0.into();
        if self.has_coinc.val() {
            self.coinc.hits.next = self.fire_r.q.val();
        }
        self.coinc.window.next = self.coinc_window.q.val();
        self.coinc.gate.next = self.coinc_gate.q.val();
        self.hist.hits.next = 0.into();
        if self.has_hist.val() {
            self.hist.hits.next = self.fire_r.q.val();
        }
        self.hist.start_ch.next = self.hist_config.q.val().get_bits::<3>(0);
        self.hist.stop_ch.next = self.hist_config.q.val().get_bits::<3>(4);
        self.hist.shift.next = self.hist_config.q.val().get_bits::<4>(8);
        self.hist.offset.next = self.hist_offset.q.val();
        self.hist.enable.next = self.ctrl_t.q.val().get_bit(3);
        self.hist.clear.next = self.hist_clear.q.val();
        self.hist.rd_addr.next = self.hist_addr.q.val();
        self.busy_sync.sig_in.next = self.hist.busy.val();
        self.ovf_x.value.next = self.hist.overflow.val();
        // Completed gates: `gate_seq` bit 0 toggles once per gate (gates are at least 64 ticks
        // apart), counted here.
        self.seq_sync.sig_in.next = self.coinc.gate_seq.val().get_bit(0);
        self.seq_prev.d.next = self.seq_sync.sig_out.val();
        if self.seq_sync.sig_out.val() != self.seq_prev.q.val() {
            self.gate_cnt.d.next = self.gate_cnt.q.val() + 1;
        }

        // ---- Basis RNG: entropy sampler, slot divider, record FIFO.
        self.ent_sync.sig_in.next = self.entropy.val();
        self.pll_sync.sig_in.next = self.pll_locked.val();
        self.raw_on.d.next = self.rng_raw_div.q.val().any();
        self.raw_valid.d.next = false;
        self.raw_bit.d.next = self.ent_sync.sig_out.val();
        if self.raw_on.q.val() {
            if !self.raw_gt1.q.val() {
                self.raw_cnt.d.next = self.rng_raw_div.q.val();
                self.raw_gt1.d.next = self.rng_raw_div.q.val().get_bits::<15>(1).any();
                self.raw_valid.d.next = true;
            } else {
                self.raw_cnt.d.next = self.raw_cnt.q.val() - 1;
                self.raw_gt1.d.next =
                    self.raw_cnt.q.val().get_bits::<14>(2).any() | (self.raw_cnt.q.val().get_bits::<2>(0) == 3);
            }
        }
        self.slot_on.d.next = self.rng_slot_div.q.val().any();
        self.slot.d.next = false;
        if self.slot_on.q.val() {
            if !self.slot_gt1.q.val() {
                self.slot_cnt.d.next = self.rng_slot_div.q.val();
                self.slot_gt1.d.next = self.rng_slot_div.q.val().get_bits::<31>(1).any();
                self.slot.d.next = true;
            } else {
                self.slot_cnt.d.next = self.slot_cnt.q.val() - 1;
                self.slot_gt1.d.next =
                    self.slot_cnt.q.val().get_bits::<30>(2).any() | (self.slot_cnt.q.val().get_bits::<2>(0) == 3);
            }
        }
        self.rng.raw_bit.next = self.raw_bit.q.val();
        self.rng.raw_valid.next = self.raw_valid.q.val();
        self.rng.rct_cutoff.next = self.rng_cutoff.q.val().get_bits::<8>(0);
        self.rng.apt_cutoff.next = self.rng_cutoff.q.val().get_bits::<11>(16);
        self.rng.health_clear.next = self.rng_hclear.q.val();
        // Key and IV: ten 16-bit chunks from the shadow RAM after a reseed (see `ld_on`).
        self.rng.seed_valid.next = self.ld_v.q.val();
        if self.ld_hi.q.val() {
            self.rng.seed_data.next = self.shadow.read_data.val().get_bits::<16>(16);
        } else {
            self.rng.seed_data.next = self.shadow.read_data.val().get_bits::<16>(0);
        }
        self.rng.reseed.next = self.rng_reseed.q.val();
        self.rng.mix_enable.next = self.rng_config.q.val().any();
        self.rng.thr_z.next = self.rng_thr_z.q.val();
        self.rng.thr_c0.next = self.rng_thr_class.q.val().get_bits::<16>(0);
        self.rng.thr_c1.next = self.rng_thr_class.q.val().get_bits::<16>(16);
        self.rng.slot.next = self.slot.q.val();
        self.rng.rec_ready.next = self.rf_room.q.val();
        // The FIFO's writer keeps the occupancy (the FIFO leaves the room check to it); the
        // read side prefetches one record into `rf_out`, reading at most every other tick.
        self.rf_wr.next = self.rng.rec_valid.val() & self.rf_room.q.val() & self.has_rng.val();
        self.rf_rd.next = !self.rf_valid.q.val() & !self.rf_pend.q.val() & self.rng_fifo.nonempty.val() & self.has_rng.val();
        self.rng_fifo.write.next = self.rf_wr.val();
        self.rng_fifo.data_in.next = self.rng.rec_data.val();
        self.rng_fifo.read.next = self.rf_rd.val();
        self.rf_pend.d.next = self.rf_rd.val();
        if self.rf_pend.q.val() {
            self.rf_out.d.next = self.rng_fifo.data_out.val();
            self.rf_valid.d.next = true;
        }
        if self.rf_pop.val() {
            self.rf_valid.d.next = false;
        }
        if self.rf_wr.val() & !self.rf_rd.val() {
            self.rf_occ.d.next = self.rf_occ.q.val() + 1;
        }
        if !self.rf_wr.val() & self.rf_rd.val() {
            self.rf_occ.d.next = self.rf_occ.q.val() - 1;
        }
        self.rf_room.d.next = self.rf_occ.q.val() < self.rf_room_limit.val();
        if self.rf_wr.val() & !self.rf_pop.val() {
            self.rf_level.d.next = self.rf_level.q.val() + 1;
        }
        if !self.rf_wr.val() & self.rf_pop.val() {
            self.rf_level.d.next = self.rf_level.q.val() - 1;
        }

        // ---- LEDs.
        self.leds.next = 0.into();
        self.leds.next = self.leds.val().replace_bit(0, self.ctrl.q.val().get_bit(0));
        self.leds.next = self.leds.val().replace_bit(1, self.rng.ready.val() & self.has_rng.val());
        self.leds.next = self.leds.val().replace_bit(2, self.rng.health_failed.val() & self.has_rng.val());
        self.leds.next = self.leds.val().replace_bit(3, self.lost.q.val());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regmap::*;
    use crate::tagfmt::{StreamDecoder, Tag};
    use crate::testsig::{TestSignalConfig, TestSignalModel};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// What the bus answered to one access.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Reply {
        rdata: u32,
        rempty: bool,
        rvalid: bool,
    }

    /// Hand-stepped testbench: the core, the tick count, the test-signal reference model
    /// stepped in lockstep (its configuration mirrors the TS registers, effective from the
    /// tick of a write's ack), and the per-tick bus inputs and acks (for the Verilog check).
    struct Tb {
        uut: Box<Core>,
        features: u32,
        tick: u64,
        pins: u8,
        entropy: Option<ChaCha8Rng>,
        ts: TestSignalModel,
        ts_cfg: TestSignalConfig,
        ts_pending: Option<TestSignalConfig>,
        /// The tick side took a write in the last tick: the test-signal model takes a pending
        /// configuration from this tick on.
        ts_apply: bool,
        /// The first tick with the tick side's copy of the last write.
        last_load: u64,
        /// Pins of the test-signal model, by tick.
        ts_pins: Vec<u8>,
        /// Per tick: (addr, wdata, we, re, pins, entropy, control edge) driven.
        stim: Vec<(u8, u32, bool, bool, u8, bool, bool)>,
        /// (tick, reply) of every ack.
        acks: Vec<(u64, Reply)>,
    }

    /// Tick-clock cycles per control-clock cycle in the testbench (the boards' ratio; the
    /// first tick edge of a control cycle coincides with its control edge, as the PLL's
    /// outputs do). The Verilated board tests take other ratios.
    const RATIO: u64 = 2;

    /// The registers of the tick domain, whose writes cross with `wx` (HIST_CMD: its strobe).
    fn tick_domain(addr: u8) -> bool {
        [
            &CTRL, &DEAD_TIME, &CHAN_ENABLE, &CHAN_FALLING, &COINC_DELAY, &COINC_GROUP, &COINC_WINDOW, &COINC_GATE,
            &HIST_CONFIG, &HIST_OFFSET, &HIST_CMD, &TS_THRESHOLD, &TS_CONFIG, &TS_PAIR_DELAY, &FILTER_DELAY,
            &FILTER_WINDOW, &FILTER_PASS,
        ]
        .iter()
        .any(|r| addr >= r.addr && addr < r.addr + r.count)
    }

    /// Control cycles from the strobe of a tick-domain register write to its ack at
    /// [`RATIO`] 2 with aligned edges: the request's synchronizer and load (about two control
    /// cycles), the acknowledge two ticks later, its synchronizer and the ack register.
    const TICK_WRITE_BUS_LATENCY: u64 = 8;

    impl Tb {
        fn new() -> Self {
            Self::with_features(FEAT_ALL)
        }

        /// The simulator's core with only the optional blocks in `features`.
        fn with_features(features: u32) -> Self {
            let mut uut = Box::new(Core::with_features(0, 150_000_000, features));
            uut.connect_all();
            Self {
                uut,
                features,
                tick: 0,
                pins: 0,
                entropy: None,
                ts: TestSignalModel::new(CORE_CHANNELS),
                ts_cfg: TestSignalConfig::default(),
                ts_pending: None,
                ts_apply: false,
                last_load: 0,
                ts_pins: Vec::new(),
                stim: Vec::new(),
                acks: Vec::new(),
            }
        }

        /// One control cycle ([`RATIO`] ticks) with the given bus strobes; returns the reply
        /// if `bus_ack` is high in it.
        fn step(&mut self, addr: u8, wdata: u32, we: bool, re: bool) -> Option<Reply> {
            let ent = self.entropy.as_mut().map(|r| r.gen::<bool>()).unwrap_or(false);
            let mut reply = None;
            for k in 0..RATIO {
                let ctl = k == 0;
                let u = &mut self.uut;
                u.bus_addr.next = (addr as u64).into();
                u.bus_wdata.next = (wdata as u64).into();
                u.bus_we.next = we;
                u.bus_re.next = re;
                u.pins.next = (self.pins as u64).into();
                u.entropy.next = ent;
                u.pll_locked.next = true;
                u.link_bad_frames.next = 0x1234.into();
                u.link_skipped.next = 0xbeef.into();
                u.clock.next = Clock::from(false);
                u.ctl_clock.next = Clock::from(false);
                simulate(u.as_mut(), 10_000);
                if ctl {
                    reply = u.bus_ack.val().then(|| Reply {
                        rdata: u.bus_rdata.val().to_u32(),
                        rempty: u.bus_rempty.val(),
                        rvalid: u.bus_rvalid_addr.val(),
                    });
                }
                if std::mem::take(&mut self.ts_apply) {
                    if let Some(c) = self.ts_pending.take() {
                        self.ts_cfg = c;
                    }
                }
                self.ts_pins.push(self.ts.step(&self.ts_cfg));
                assert_eq!(u.tsig.pins.val().to_u8(), *self.ts_pins.last().unwrap(), "test signal at tick {}", self.tick);
                if u.wx.load.val() {
                    self.ts_apply = true;
                    self.last_load = self.tick + 1;
                }
                self.stim.push((addr, wdata, we, re, self.pins, ent, ctl));
                if let (true, Some(r)) = (ctl, reply) {
                    self.acks.push((self.tick, r));
                }
                u.clock.next = Clock::from(true);
                u.ctl_clock.next = Clock::from(ctl);
                simulate(u.as_mut(), 10_000);
                self.tick += 1;
            }
            reply
        }

        fn idle(&mut self, ticks: u64) {
            for _ in 0..ticks {
                assert!(self.step(0, 0, false, false).is_none());
            }
        }

        /// One bus access, the address held until the ack as a master does; checks that the
        /// ack comes `BUS_LATENCY` control cycles after the strobe, exactly
        /// `RESEED_BUS_LATENCY` for a RESEED write, `TICK_WRITE_BUS_LATENCY` for a write of a
        /// tick-domain register, or later only for a TAG_DATA read that waits for records
        /// on their way through the crossing and a TAG_LEVEL or HIST_OVERFLOW read that waits
        /// for its snapshot.
        fn access(&mut self, addr: u8, wdata: u32, we: bool) -> Reply {
            assert!(self.step(addr, wdata, we, !we).is_none(), "ack in the strobe tick");
            assert!(self.step(addr, wdata, false, false).is_none(), "ack one tick after the strobe");
            if we && tick_domain(addr) {
                for k in 2..TICK_WRITE_BUS_LATENCY {
                    assert!(self.step(addr, wdata, false, false).is_none(), "tick-domain write acked {k} cycles after the strobe");
                }
                return self.step(addr, wdata, false, false).expect("tick-domain write ack");
            }
            if we && addr == RNG_CMD.addr && wdata & 1 == 1 {
                for k in 2..RESEED_BUS_LATENCY {
                    assert!(self.step(addr, wdata, false, false).is_none(), "RESEED ack {k} ticks after the strobe");
                }
                return self.step(addr, wdata, false, false).expect("RESEED ack");
            }
            for k in 0..64 {
                if let Some(r) = self.step(addr, wdata, false, false) {
                    return r;
                }
                assert!(
                    [TAG_DATA.addr, TAG_LEVEL.addr, HIST_OVERFLOW.addr].contains(&addr) && !we,
                    "no ack {} cycles after the strobe",
                    k + 2
                );
            }
            panic!("a read of 0x{addr:02x} waited over 64 cycles");
        }

        fn read(&mut self, addr: u8) -> Reply {
            self.access(addr, 0, false)
        }

        fn rd(&mut self, addr: u8) -> u32 {
            let r = self.read(addr);
            assert!(r.rvalid && !r.rempty, "read of 0x{addr:02x}: {r:?}");
            r.rdata
        }

        fn write(&mut self, addr: u8, value: u32) -> Reply {
            if let Some((reg, i)) = lookup(addr) {
                if reg.access == Access::Rw && [TS_THRESHOLD.name, TS_CONFIG.name, TS_PAIR_DELAY.name].contains(&reg.name) {
                    let mut c = self.ts_pending.unwrap_or(self.ts_cfg);
                    let v = value & reg.element_mask(i);
                    match reg.name {
                        "TS_THRESHOLD" => c.threshold[i] = v as u16,
                        "TS_PAIR_DELAY" => c.pair_delay = v as u16,
                        _ => {
                            c.enable = v & 1 != 0;
                            c.pair_enable = v & 2 != 0;
                            c.pair_src = (v >> 4 & 7) as u8;
                            c.pair_dst = (v >> 8 & 7) as u8;
                        }
                    }
                    self.ts_pending = Some(c);
                }
            }
            self.access(addr, value, true)
        }

        fn wr(&mut self, r: &Register, i: usize, value: u32) {
            let rep = self.write(r.at(i), value);
            assert!(rep.rvalid && rep.rdata == 0 && !rep.rempty, "write of {}: {rep:?}", r.name);
        }

        /// Replays the recorded bus and pin inputs on the generated Verilog in Icarus Verilog
        /// and checks that every ack (tick, data, flags) is the same. Skipped without iverilog.
        fn verilog_replay(&self) {
            if std::process::Command::new("iverilog").arg("-V").output().is_err() {
                eprintln!("iverilog not found: Verilog replay skipped");
                return;
            }
            // One directory per replay: two tests replay, in parallel threads of one process.
            static REPLAYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n_replay = REPLAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("qkd-core-replay-{}-{n_replay}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let v = crate::verilog::verilog_of(&mut Core::with_features(0, 150_000_000, self.features), "qkd_core");
            std::fs::write(dir.join("core.v"), v).unwrap();
            let hex: String = self
                .stim
                .iter()
                .map(|&(a, w, we, re, p, e, c)| {
                    let x = (a as u64) << 41
                        | (w as u64) << 9
                        | (we as u64) << 8
                        | (re as u64) << 7
                        | (p as u64) << 2
                        | (e as u64) << 1
                        | c as u64;
                    format!("{x:013x}\n")
                })
                .collect();
            std::fs::write(dir.join("stim.hex"), hex).unwrap();
            let n = self.stim.len();
            let tb = format!(
                r#"module tb;
reg clock = 0; reg ctl_clock = 0; reg ctl = 0; reg [4:0] pins = 0; reg entropy = 0; reg pll_locked = 1;
reg [7:0] bus_addr = 0; reg [31:0] bus_wdata = 0; reg bus_we = 0; reg bus_re = 0;
reg [15:0] link_bad_frames = 16'h1234; reg [15:0] link_skipped = 16'hbeef;
wire bus_ack; wire bus_rempty; wire bus_rvalid_addr; wire [31:0] bus_rdata; wire [15:0] uart_div; wire [3:0] leds;
qkd_core dut(.clock(clock), .ctl_clock(ctl_clock), .pins(pins), .entropy(entropy), .pll_locked(pll_locked), .bus_addr(bus_addr),
  .bus_wdata(bus_wdata), .bus_we(bus_we), .bus_re(bus_re), .bus_ack(bus_ack), .bus_rdata(bus_rdata),
  .bus_rempty(bus_rempty), .bus_rvalid_addr(bus_rvalid_addr), .link_bad_frames(link_bad_frames),
  .link_skipped(link_skipped), .uart_div(uart_div), .leds(leds));
reg [48:0] stim [0:{last}];
integer i;
initial begin
  $readmemh("stim.hex", stim);
  for (i = 0; i < {n}; i = i + 1) begin
    {{bus_addr, bus_wdata, bus_we, bus_re, pins, entropy, ctl}} = stim[i];
    #1;
    if (ctl && bus_ack) $display("%0d %08x %0d %0d", i, bus_rdata, bus_rempty, bus_rvalid_addr);
    clock = 1; ctl_clock = ctl; #1; clock = 0; ctl_clock = 0;
  end
  $finish;
end
endmodule
"#,
                last = n - 1
            );
            std::fs::write(dir.join("tb.v"), tb).unwrap();
            let c = std::process::Command::new("iverilog")
                .current_dir(&dir)
                .args(["-o", "sim", "tb.v", "core.v"])
                .output()
                .unwrap();
            assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
            let out = std::process::Command::new("vvp").current_dir(&dir).arg("sim").output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let got: Vec<String> = text.lines().filter(|l| !l.contains("finish")).map(String::from).collect();
            let want: Vec<String> = self
                .acks
                .iter()
                .map(|(t, r)| format!("{t} {:08x} {} {}", r.rdata, r.rempty as u8, r.rvalid as u8))
                .collect();
            assert_eq!(got.len(), want.len(), "acks in iverilog vs rust-hdl");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "iverilog vs rust-hdl");
            }
            let _ = std::fs::remove_dir_all(&dir);
        }

        /// Pops TAG_DATA into `out` until it reports empty with the tagger's FIFO empty too.
        fn drain_tags(&mut self, out: &mut Vec<u32>) {
            loop {
                let r = self.read(TAG_DATA.addr);
                assert!(r.rvalid);
                if r.rempty {
                    assert_eq!(r.rdata, 0);
                    if self.uut.pipe.occupancy.val().to_u32() == 0 && self.uut.pipe.empty.val() {
                        return;
                    }
                } else {
                    out.push(r.rdata);
                }
            }
        }
    }

    fn decode(words: &[u32]) -> Vec<Tag> {
        let mut tags = Vec::new();
        StreamDecoder::new().push_all(words, &mut tags).unwrap();
        tags
    }

    const ACQUIRE: u32 = 1;
    const COINC_ONLY: u32 = 2;
    const TESTSIG: u32 = 4;
    const HIST: u32 = 8;

    /// Tags (time, channel) the test signal must give: a pulse of pin tick `k` fires at
    /// `k + 2` (synchronizer; dead time 0), for pulses entering while TESTSIG is on from
    /// `k0` and firing while ACQUIRE is on, before `k1`.
    fn expected_fires(tb: &Tb, k0: u64, k1: u64, channels: u8) -> Vec<(u64, u8)> {
        let mut v = Vec::new();
        for k in k0..k1.saturating_sub(2) {
            let p = tb.ts_pins[k as usize] & channels;
            for c in 0..CORE_CHANNELS as u8 {
                if p >> c & 1 == 1 {
                    v.push((k + 2, c));
                }
            }
        }
        v
    }

    fn tag_pairs(words: &[u32]) -> Vec<(u64, u8)> {
        let mut t: Vec<(u64, u8)> = decode(words).iter().map(|t| (t.time, t.channel)).collect();
        t.sort();
        t
    }

    /// Writes TS and channel settings for the event tests: dead time 0, thresholds, pairs.
    fn setup_events(tb: &mut Tb, thresholds: [u32; CORE_CHANNELS], pair_delay: Option<u32>) {
        for c in 0..CORE_CHANNELS {
            tb.wr(&DEAD_TIME, c, 0);
            tb.wr(&TS_THRESHOLD, c, thresholds[c]);
        }
        match pair_delay {
            Some(d) => {
                tb.wr(&TS_PAIR_DELAY, 0, d);
                tb.wr(&TS_CONFIG, 0, 1 | 2 | 1 << 8);
            }
            None => tb.wr(&TS_CONFIG, 0, 1),
        }
    }

    /// Reads TAG_DATA for about `ticks` ticks, then stops acquiring and drains; returns the
    /// words and the ack ticks of the CTRL writes that started (`k0`) and stopped (`k1`).
    fn acquire(tb: &mut Tb, ctrl: u32, ticks: u64, words: &mut Vec<u32>) -> (u64, u64) {
        tb.wr(&CTRL, 0, ctrl);
        let k0 = tb.last_load;
        while tb.tick < k0 + ticks {
            let r = tb.read(TAG_DATA.addr);
            assert!(r.rvalid);
            if !r.rempty {
                words.push(r.rdata);
            }
        }
        tb.wr(&CTRL, 0, 0);
        let k1 = tb.last_load;
        tb.idle(COINC_ONLY_SHIFT + 20);
        tb.drain_tags(words);
        (k0, k1)
    }

    /// Test-signal pulses tagged through TAG_DATA, decoded with the tag format, exactly the
    /// pulses the test-signal model made while acquiring.
    #[test]
    fn test_signal_tags_pop_through_tag_data() {
        let mut tb = Tb::new();
        setup_events(&mut tb, [900, 0, 1500, 300, 600], None);
        let mut words = Vec::new();
        tb.drain_tags(&mut words);
        let (k0, k1) = acquire(&mut tb, ACQUIRE | TESTSIG, 2500, &mut words);
        let want = expected_fires(&tb, k0, k1, 0x1f);
        assert!(want.len() > 100, "{} tags", want.len());
        assert_eq!(tag_pairs(&words), want);
        assert_eq!(tb.rd(STATUS.addr) & (1 << 9 | 1 << 1), 1 << 1, "TAG_EMPTY, no TAG_LOST");
        assert_eq!(tb.rd(TAG_LEVEL.addr), 0);
        tb.verilog_replay();
    }

    /// A core without the basis RNG, the histogram and the coincidence-only filter (like the
    /// iCEBreaker's): FEATURES says so; RNG status, level and data read 0 and its FIFO empty
    /// after a reseed with entropy and slots running; the histogram reads 0 after pairs went
    /// through it; CTRL.COINC_ONLY does nothing (every test-signal pulse is tagged).
    #[test]
    fn core_without_rng_hist_filter() {
        let f = FEAT_COINC | FEAT_TESTSIG;
        let mut tb = Tb::with_features(f);
        tb.entropy = Some(ChaCha8Rng::seed_from_u64(9));
        assert_eq!(tb.rd(FEATURES.addr), f);
        tb.wr(&RNG_RAW_DIV, 0, 1);
        tb.wr(&RNG_SLOT_DIV, 0, 8);
        tb.wr(&RNG_CMD, 0, 1);
        setup_events(&mut tb, [3000, 0, 700, 0, 300], Some(5));
        tb.wr(&HIST_CONFIG, 0, 1 << 4);
        let mut words = Vec::new();
        tb.drain_tags(&mut words);
        let (k0, k1) = acquire(&mut tb, ACQUIRE | COINC_ONLY | TESTSIG | HIST, 1500, &mut words);
        let want = expected_fires(&tb, k0, k1, 0x1f);
        assert!(want.len() > 50, "{} tags", want.len());
        assert_eq!(tag_pairs(&words), want);
        assert_eq!(tb.rd(STATUS.addr) & 0x1fc, 0, "no RNG or histogram status");
        assert_eq!(tb.rd(RNG_LEVEL.addr), 0);
        assert_eq!(tb.rd(RNG_MISSED.addr), 0);
        assert_eq!(tb.read(RNG_DATA.addr), Reply { rdata: 0, rempty: true, rvalid: true });
        tb.wr(&HIST_ADDR, 0, 0);
        let bins: Vec<u32> = (0..8).map(|_| tb.rd(HIST_DATA.addr)).collect();
        assert_eq!(bins, vec![0; 8]);
        assert_eq!(tb.rd(HIST_OVERFLOW.addr), 0);
        assert_eq!(tb.uut.leds.val().to_u32() & 0b110, 0, "RNG LEDs off");
        tb.verilog_replay();
    }

    /// A core with no optional block: FEATURES reads 0; the pins are tagged (the test signal
    /// is not there to replace them); the coincidence counter's gate sequence and counts read
    /// 0.
    #[test]
    fn core_without_optional_blocks() {
        let mut tb = Tb::with_features(0);
        assert_eq!(tb.rd(FEATURES.addr), 0);
        setup_events(&mut tb, [9000, 9000, 9000, 9000, 9000], None);
        tb.wr(&COINC_GROUP, 0, 0b00011);
        tb.wr(&COINC_GATE, 0, 100);
        tb.wr(&CTRL, 0, ACQUIRE | TESTSIG);
        // Edges on the pins: rising on channel 0 every 20 ticks, channels 0 and 1 together.
        let mut edges = 0;
        for k in 0..12 {
            tb.pins = if k % 2 == 0 { 0b00011 } else { 0 };
            edges += (k % 2 == 0) as usize;
            tb.idle(10);
        }
        tb.pins = 0;
        tb.wr(&CTRL, 0, 0);
        tb.idle(10);
        let mut words = Vec::new();
        tb.drain_tags(&mut words);
        let tags = tag_pairs(&words);
        assert_eq!(tags.len(), 2 * edges, "{tags:?}");
        assert!(tags.iter().all(|t| t.1 < 2));
        assert_eq!(tb.rd(COINC_GATE_SEQ.addr), 0);
        for c in 0..CORE_CHANNELS {
            assert_eq!(tb.rd(COINC_SINGLES.at(c)), 0);
        }
        assert_eq!(tb.rd(COINC_COUNT.at(0)), 0);
        tb.verilog_replay();
    }

    /// Coincidence-only mode: pairs (ch 0 → ch 1, 3 ticks) are kept, singles of ch 2 are
    /// dropped, ch 4 passes; the tags equal the filter's event-level model, shifted by
    /// `COINC_ONLY_SHIFT`.
    #[test]
    fn coinc_only_mode_drops_singles() {
        use crate::coinc_filter::{filter_events, FilterConfig, TickMask};
        let mut tb = Tb::new();
        setup_events(&mut tb, [1500, 0, 1500, 0, 300], Some(3));
        tb.wr(&FILTER_WINDOW, 0, 3);
        tb.wr(&COINC_GROUP, 0, 0b00011);
        tb.wr(&FILTER_PASS, 0, 0b10000);
        assert_eq!(tb.rd(regmap::FILTER_LATENCY.addr) as u64, COINC_ONLY_SHIFT);
        let mut words = Vec::new();
        tb.drain_tags(&mut words);
        let (k0, k1) = acquire(&mut tb, ACQUIRE | COINC_ONLY | TESTSIG, 1800, &mut words);
        // The fires while TESTSIG was on, through the filter model; a kept event of fire
        // tick f is tagged at f + COINC_ONLY_SHIFT, while ACQUIRE is on.
        let mut events: Vec<TickMask> = Vec::new();
        for (f, c) in expected_fires(&tb, k0, k1 + 2, 0x1f) {
            match events.last_mut() {
                Some(e) if e.tick == f => e.mask |= 1 << c,
                _ => events.push(TickMask { tick: f, mask: 1 << c }),
            }
        }
        let cfg = FilterConfig { window: 3, group: [0b00011, 0, 0, 0], pass: 0b10000, ..Default::default() };
        let mut want = Vec::new();
        for e in filter_events(CORE_CHANNELS, &events, &cfg) {
            let t = e.tick - crate::coinc_filter::FILTER_LATENCY + COINC_ONLY_SHIFT;
            if t >= k0 && t < k1 {
                want.extend((0..CORE_CHANNELS as u8).filter(|c| e.mask >> c & 1 == 1).map(|c| (t, c)));
            }
        }
        let got = tag_pairs(&words);
        assert_eq!(got, want);
        let count = |c: u8| got.iter().filter(|t| t.1 == c).count();
        assert!(count(0) > 20 && count(1) > 20 && count(4) > 2 && count(2) == 0, "{got:?}");
        assert!(events.iter().filter(|e| e.mask & 4 != 0).count() > 20, "ch 2 had singles");
    }

    /// Pairs from the test signal counted by the coincidence counter over complete gates.
    #[test]
    fn coincidence_counts_after_a_gate() {
        let mut tb = Tb::new();
        setup_events(&mut tb, [3000, 0, 0, 0, 0], Some(5));
        tb.wr(&COINC_DELAY, 0, 5);
        tb.wr(&COINC_GROUP, 0, 0b00011);
        tb.wr(&COINC_GROUP, 1, 0b00101);
        tb.wr(&CTRL, 0, TESTSIG);
        tb.wr(&COINC_GATE, 0, 500);
        let seq0 = tb.rd(COINC_GATE_SEQ.addr);
        // Skip the first (incomplete) gate and take one complete gate.
        while tb.rd(COINC_GATE_SEQ.addr) < seq0 + 2 {
            tb.idle(50);
        }
        let (singles, counts) = loop {
            let s = tb.rd(COINC_GATE_SEQ.addr);
            let singles: Vec<u32> = (0..CORE_CHANNELS).map(|c| tb.rd(COINC_SINGLES.at(c))).collect();
            let counts: Vec<u32> = (0..regmap::GROUPS).map(|g| tb.rd(COINC_COUNT.at(g))).collect();
            if tb.rd(COINC_GATE_SEQ.addr) == s {
                break (singles, counts);
            }
        };
        assert!(singles[0] >= 5, "{singles:?}");
        // A pair straddling a gate end counts both events in the same gate (delay-compensated).
        assert_eq!(singles[1], singles[0], "{singles:?}");
        assert_eq!(counts, vec![singles[0], 0, 0, 0]);
        assert_eq!(&singles[2..], &[0, 0, 0]);
    }

    /// The pair delay appears as the histogram peak, read through HIST_ADDR/HIST_DATA; a clear
    /// empties it.
    #[test]
    fn histogram_peak_at_the_pair_delay() {
        let mut tb = Tb::new();
        setup_events(&mut tb, [3000, 0, 0, 0, 0], Some(5));
        tb.wr(&HIST_CONFIG, 0, 1 << 4);
        tb.wr(&HIST_OFFSET, 0, 2);
        tb.wr(&CTRL, 0, TESTSIG | HIST);
        let k0 = tb.tick;
        tb.idle(700);
        tb.wr(&CTRL, 0, TESTSIG);
        let k1 = tb.tick;
        tb.idle(300);
        tb.wr(&HIST_ADDR, 0, 0);
        let bins: Vec<u32> = (0..16).map(|_| tb.rd(HIST_DATA.addr)).collect();
        assert_eq!(tb.rd(HIST_ADDR.addr), 16);
        // The ideal histogram of the fires (pin tick + 2), with the stops of the enabled
        // window, give lower and upper bounds (the enable takes effect a few ticks late).
        let fires = |c: u8| -> Vec<u64> {
            (0..tb.ts_pins.len() as u64).filter(|&k| tb.ts_pins[k as usize] >> c & 1 == 1).map(|k| k + 2).collect()
        };
        let (starts, stops) = (fires(0), fires(1));
        let ideal = |a: u64, b: u64| {
            let s: Vec<u64> = stops.iter().copied().filter(|&t| t >= a && t < b).collect();
            crate::histogram::ideal_histogram(&starts, &s, 2, 0, HIST_BIN_BITS).0
        };
        let (lo, hi) = (ideal(k0 + 20, k1 - 20), ideal(k0 - 20, k1 + 20));
        for i in 0..16 {
            assert!(bins[i] as u64 >= lo[i] && bins[i] as u64 <= hi[i], "bin {i}: {bins:?} vs {lo:?}..{hi:?}");
        }
        assert!(bins[7] > 10 && bins.iter().all(|&b| b <= bins[7]), "peak at 5 + 2: {bins:?}");
        assert!(bins[2..7].iter().chain(&bins[8..]).all(|&b| b == 0), "{bins:?}");
        assert_eq!(tb.rd(HIST_OVERFLOW.addr), 0);
        tb.wr(&HIST_CMD, 0, 1);
        assert_ne!(tb.rd(STATUS.addr) & 1 << 8, 0, "HIST_BUSY");
        tb.idle(1 << HIST_BIN_BITS);
        assert_eq!(tb.rd(STATUS.addr) & 1 << 8, 0);
        tb.wr(&HIST_ADDR, 0, 7);
        assert_eq!(tb.rd(HIST_DATA.addr), 0);
        assert_eq!(tb.rd(HIST_ADDR.addr), 8);
    }

    /// Choice records after a reseed, one per slot, through the record FIFO in order; a full
    /// FIFO makes missed slots, seen as gaps in the slot numbers.
    #[test]
    fn rng_records_after_a_reseed() {
        use crate::rng_model::RngRecord;
        let mut tb = Tb::new();
        tb.entropy = Some(ChaCha8Rng::seed_from_u64(3));
        tb.wr(&RNG_RAW_DIV, 0, 1);
        tb.wr(&RNG_KEY, 0, 0x1234_5678);
        tb.wr(&RNG_IV, 1, 0x9abc_def0);
        tb.wr(&RNG_CMD, 0, 1);
        let mut waited = 0;
        while tb.rd(STATUS.addr) & 1 << 2 == 0 {
            tb.idle(20);
            waited += 1;
            assert!(waited < 20, "RNG not ready");
        }
        tb.wr(&RNG_SLOT_DIV, 0, 4);
        let mut got = Vec::new();
        let mut written = Vec::new();
        let mut empties = 0;
        while got.len() < 60 {
            let r = tb.read(RNG_DATA.addr);
            if tb.uut.rng_fifo.write.val() {
                written.push(tb.uut.rng_fifo.data_in.val().to_u32());
            }
            if r.rempty {
                assert_eq!(r.rdata, 0);
                empties += 1;
            } else {
                got.push(r.rdata);
            }
        }
        assert!(empties > 0);
        let slots: Vec<u32> = got.iter().map(|&w| RngRecord::decode(w).slot).collect();
        assert!(slots.windows(2).all(|w| w[1] == w[0] + 1), "{slots:?}");
        assert_eq!(tb.rd(RNG_MISSED.addr), 0);
        let x = got.iter().filter(|&&w| RngRecord::decode(w).basis == 1).count();
        assert!((10..=50).contains(&x), "{x} of 60 in basis X");
        // Fill the FIFO: one slot per tick, no reads.
        tb.wr(&RNG_SLOT_DIV, 0, 1);
        tb.idle(300);
        let level = tb.rd(RNG_LEVEL.addr);
        assert_eq!(level, (1 << RNG_FIFO_ADDR_BITS) - 1, "FIFO (254) and output register (1)");
        tb.wr(&RNG_SLOT_DIV, 0, 0);
        let missed = tb.rd(RNG_MISSED.addr);
        assert!(missed > 10, "{missed}");
        let mut rest = Vec::new();
        loop {
            let r = tb.read(RNG_DATA.addr);
            if r.rempty {
                break;
            }
            rest.push(RngRecord::decode(r.rdata).slot);
        }
        // The generator holds one more record in its output register while the FIFO is full.
        assert_eq!(rest.len() as u32, level + 1);
        assert!(rest.windows(2).all(|w| w[1] == w[0] + 1), "no gap inside the FIFO");
        assert_eq!(tb.rd(RNG_LEVEL.addr), 0);
        assert_eq!(tb.rd(STATUS.addr) & 0b1100_1100, 0b1100_0100, "ready, started, pool, not failed");
    }

    #[test]
    fn core_verilog_passes_yosys() {
        let mut uut = Core::default();
        uut.connect_all();
        yosys_validate("qkd_core", &generate_verilog(&uut)).unwrap();
    }

    /// Every register at power-on, every rw register written and read back masked, ro
    /// registers ignoring writes, wo registers reading 0, and every unmapped address
    /// answering with `bus_rvalid_addr` low and changing nothing.
    #[test]
    fn register_bank_semantics() {
        let mut tb = Tb::new();
        tb.idle(3);
        let constant = |r: &Register| match r.name {
            "MAP_HASH" => Some(REGMAP_HASH),
            "BUILD" => Some(build_word(0, 150_000_000)),
            "FEATURES" => Some(FEAT_ALL),
            "ID" | "VERSION" | "FILTER_LATENCY" => Some(r.reset),
            "LINK_BAD_FRAMES" => Some(0x1234),
            "LINK_SKIPPED" => Some(0xbeef),
            _ => None,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut state = reset_values();
        for r in REGISTERS {
            for i in 0..r.count as usize {
                let a = r.at(i);
                let m = r.element_mask(i);
                match r.access {
                    Access::Rw => {
                        assert_eq!(tb.rd(a), r.reset & m, "{}[{i}] reset", r.name);
                        for v in [u32::MAX, rng.gen(), 0, r.reset] {
                            tb.wr(r, i, v);
                            assert_eq!(tb.rd(a), v & m, "{}[{i}] after writing {v:#x}", r.name);
                        }
                        state[a as usize] = r.reset & m;
                    }
                    Access::Ro => {
                        let before = tb.rd(a);
                        assert!(r.fits(before), "{} = {before:#x}", r.name);
                        if let Some(c) = constant(r) {
                            assert_eq!(before, c, "{}", r.name);
                        }
                        tb.wr(r, i, u32::MAX);
                        if let Some(c) = constant(r) {
                            assert_eq!(tb.rd(a), c, "{} after a write", r.name);
                        }
                    }
                    Access::Wo => {
                        assert_eq!(tb.rd(a), 0, "{}", r.name);
                    }
                    Access::Fifo => {}
                }
            }
        }
        // Hardware copies: a few registers visible at the ports or inside.
        tb.wr(&UART_DIV, 0, 0xdead_0123);
        assert_eq!(tb.uut.uart_div.val().to_u32(), 0x0123);
        // Key and IV reach the generator through the RESEED load from the shadow RAM: the
        // first keystream word after the warm-up is that of the written key and IV (no mixing,
        // no slots).
        tb.wr(&RNG_KEY, 0, 0x0123_4567);
        tb.wr(&RNG_KEY, 1, 0x89ab_cdef);
        tb.wr(&RNG_KEY, 2, 0xffff_5a5a);
        tb.wr(&RNG_IV, 0, 0x7654_3210);
        tb.wr(&RNG_IV, 2, 0x0000_0001);
        // (HEALTH_CLEAR too: the stuck entropy pin failed the tests while RNG_RAW_DIV was set.)
        tb.wr(&RNG_CMD, 0, 0b11);
        tb.idle(1152 / crate::rng_model::RNG_KS_BITS as u64 + 2);
        assert_ne!(tb.rd(STATUS.addr) & 1 << 2, 0, "RNG ready");
        let mut core = crate::rng_model::TriviumCore::load(0x5a5a_89ab_cdef_0123_4567, 1 << 64 | 0x7654_3210);
        for _ in 0..crate::rng_model::TRIVIUM_WARMUP_STEPS {
            core.step();
        }
        assert_eq!(tb.uut.rng.keystream().to_u64(), core.word(crate::rng_model::RNG_KS_BITS));
        for (r, i, v) in
            [(&RNG_KEY, 0, 0), (&RNG_KEY, 1, 0), (&RNG_KEY, 2, 0), (&RNG_IV, 0, 0), (&RNG_IV, 2, 0), (&UART_DIV, 0, 0)]
        {
            tb.wr(r, i, v);
        }
        // Unmapped addresses.
        for a in 0..=255u8 {
            if lookup(a).is_none() {
                assert_eq!(tb.read(a), Reply { rdata: 0, rempty: false, rvalid: false }, "read of 0x{a:02x}");
                assert_eq!(tb.write(a, u32::MAX), Reply { rdata: 0, rempty: false, rvalid: false }, "write of 0x{a:02x}");
            }
        }
        for r in REGISTERS.iter().filter(|r| r.access == Access::Rw) {
            for i in 0..r.count as usize {
                assert_eq!(tb.rd(r.at(i)), state[r.at(i) as usize], "{}[{i}] after the unmapped writes", r.name);
            }
        }
        // Back-to-back: a strobe in the tick of the previous ack.
        assert!(tb.step(SCRATCH.addr, 77, true, false).is_none());
        tb.step(0, 0, false, false);
        let r = tb.step(SCRATCH.addr, 0, false, true).expect("ack");
        assert!(r.rvalid);
        tb.step(0, 0, false, false);
        assert_eq!(tb.step(0, 0, false, false).map(|r| r.rdata), Some(77));
        assert!(tb.step(0, 0, false, false).is_none(), "ack is one tick long");
        tb.verilog_replay();
    }
}

/// Synthesis estimates: yosys `synth_ice40 -abc9 -dff` cell counts per block (the LUT4 and
/// flip-flop counts bound the iCE40 logic cells from below; nextpnr packs a LUT and its
/// flip-flop into one cell). Run with
/// `cargo test -p qkd-hdl --lib core::area -- --ignored --nocapture`.
#[cfg(test)]
mod area {
    use super::*;
    use crate::verilog::verilog_of;

    /// (LUT4, flip-flops, carries, block RAMs) of `module` after `synth_ice40`.
    fn cells(module: &str, verilog: &str) -> [u32; 4] {
        let dir = std::env::temp_dir().join(format!("qkd-core-area-{module}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("m.v"), verilog).unwrap();
        let y = std::process::Command::new("yosys")
            .current_dir(&dir)
            .args(["-p", &format!("synth_ice40 -abc9 -dff -top {module} -json m.json; stat"), "m.v"])
            .output()
            .expect("yosys");
        assert!(y.status.success(), "{}", String::from_utf8_lossy(&y.stderr));
        let log = String::from_utf8_lossy(&y.stdout);
        let stat = &log[log.rfind("Printing statistics").unwrap()..];
        let count = |pred: &dyn Fn(&str) -> bool| -> u32 {
            stat.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    let (name, n) = (w.next()?, w.next()?.parse::<u32>().ok()?);
                    pred(name).then_some(n)
                })
                .sum()
        };
        [
            count(&|n| n == "SB_LUT4"),
            count(&|n| n.starts_with("SB_DFF")),
            count(&|n| n == "SB_CARRY"),
            count(&|n| n == "SB_RAM40_4K"),
        ]
    }

    #[test]
    #[ignore]
    fn core_area_per_block() {
        const N: usize = CORE_CHANNELS;
        let blocks: Vec<(&str, String)> = vec![
            ("core", verilog_of(&mut Core::default(), "core")),
            ("core_up5k", verilog_of(&mut Core::with_features(1, 60_000_000, crate::top::UP5K_FEATURES), "core_up5k")),
            ("tag_pipeline", verilog_of(&mut TagPipeline::<N>::default(), "tag_pipeline")),
            ("channel_x1", verilog_of(&mut ChannelFrontEnd::default(), "channel_x1")),
            ("coincidence", verilog_of(&mut Coincidence::<N>::default(), "coincidence")),
            ("coinc_filter", verilog_of(&mut CoincFilter::<N>::default(), "coinc_filter")),
            ("histogram", verilog_of(&mut Histogram::<N, HIST_BIN_BITS>::default(), "histogram")),
            ("test_signal", verilog_of(&mut TestSignal::<N>::default(), "test_signal")),
            ("basis_rng", verilog_of(&mut BasisRng::default(), "basis_rng")),
        ];
        println!("{:<14} {:>6} {:>6} {:>6} {:>5}", "block", "LUT4", "FF", "CARRY", "BRAM");
        for (name, v) in &blocks {
            let [lut, ff, carry, ram] = cells(name, v);
            println!("{name:<14} {lut:>6} {ff:>6} {carry:>6} {ram:>5}");
        }
    }
}
