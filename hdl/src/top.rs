//! Board tops for the iCEBreaker (iCE40UP5K-SG48) and the iCE40-HX8K breakout board
//! (iCE40HX8K-CT256), in two kinds ([`TopKind`]):
//!
//! * [`BoardTop`]: the core (time tagger, coincidence counter, correlation histogram, test
//!   signal, basis RNG) with a PLL, status LEDs and the framed UART host link;
//! * [`StreamTop`]: the tagger alone with a PLL, streaming raw tag records over the UART
//!   (the foundation top; small, and the one that meets the tagger clock on both boards);
//!
//! and the simulated board (the core and link without PLL) that `qkd-sim` verilates.
//!
//! Pins: 4 detector inputs `det[3:0]` (H, V, D, A) and `sync_in` (1PPS/sync, tagger channel
//! 4), `entropy_in` (raw entropy for the basis generator), the 12 MHz board clock `clk_12m`,
//! `uart_rx`/`uart_tx` to the board's FTDI, and four LEDs. The constraint files are
//! `constraints/<board>.pcf`.

use rust_hdl::prelude::*;

use crate::core::Core;
use crate::link::UartLink;
use crate::tagger::TimeTagger;
use crate::uart_stream::UartRecordStreamer;
use crate::verilog::TAGGER_CHANNELS;

/// A supported development board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// 1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz oscillator, FT2232H.
    IceBreaker,
    /// Lattice iCE40-HX8K breakout: iCE40HX8K-CT256, 12 MHz oscillator, FT2232H.
    Hx8k,
}

/// iCE40 PLL settings (see `icepll`): f_out = 12 MHz × (DIVF + 1) / (2^DIVQ × (DIVR + 1)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PllSettings {
    /// Reference divider.
    pub divr: u8,
    /// Feedback divider.
    pub divf: u8,
    /// Output divider (power of two).
    pub divq: u8,
    /// Loop filter range.
    pub filter_range: u8,
}

impl Board {
    /// Every supported board.
    pub const ALL: [Board; 2] = [Board::IceBreaker, Board::Hx8k];

    /// Short name, used in file names (`top_<name>.v`, `stream_<name>.v`,
    /// `constraints/<name>.pcf`).
    pub fn name(self) -> &'static str {
        match self {
            Board::IceBreaker => "icebreaker",
            Board::Hx8k => "hx8k",
        }
    }

    /// nextpnr-ice40 device and package flags.
    pub fn nextpnr_args(self) -> [&'static str; 2] {
        match self {
            Board::IceBreaker => ["--up5k", "--package=sg48"],
            Board::Hx8k => ["--hx8k", "--package=ct256"],
        }
    }

    /// Tagger clock, in MHz (the PLL output).
    pub fn clock_mhz(self) -> f64 {
        let p = self.pll();
        12.0 * (p.divf as f64 + 1.0) / ((1u32 << p.divq) as f64 * (p.divr as f64 + 1.0))
    }

    /// PLL settings for [`Self::clock_mhz`] from the 12 MHz board oscillator.
    pub fn pll(self) -> PllSettings {
        match self {
            // 60 MHz.
            Board::IceBreaker => PllSettings { divr: 0, divf: 79, divq: 4, filter_range: 1 },
            // 150 MHz.
            Board::Hx8k => PllSettings { divr: 0, divf: 49, divq: 2, filter_range: 1 },
        }
    }

    /// The control clock (register bus, UART link, basis RNG, status), in MHz: half the
    /// tagger clock, the PLL's second output (`GENCLK_HALF`, `docs/clocking.md`).
    pub fn control_clock_mhz(self) -> f64 {
        self.clock_mhz() / CTL_DIVIDER as f64
    }

    /// UART baud divisor for 3 Mbaud at the tagger clock, in ticks per bit (the `UART_DIV`
    /// unit; [`StreamTop`]'s UART runs on the tagger clock).
    pub fn baud_divisor(self) -> u16 {
        (self.clock_mhz() / 3.0).round() as u16
    }

    /// The same bit period in control-clock cycles: the core's UART link runs on the control
    /// clock ([`link_divisor`] of [`Self::baud_divisor`]).
    pub fn ctl_baud_divisor(self) -> u16 {
        link_divisor(self.baud_divisor())
    }

    /// Optional blocks of this board's core (`regmap::FEAT_*`, read back in `FEATURES`): all
    /// on the HX8K; on the UP5K, which has 5 280 logic cells, only what fits beside the
    /// tagger and the link in 60% of them ([`UP5K_FEATURES`]).
    pub fn features(self) -> u32 {
        match self {
            Board::IceBreaker => UP5K_FEATURES,
            Board::Hx8k => crate::regmap::FEAT_ALL,
        }
    }
}

/// Tagger clock ÷ control clock on the boards: the PLL's port B is `GENCLK_HALF`.
pub const CTL_DIVIDER: u32 = 2;

/// The UART link's bit period, in control-clock cycles, for a `UART_DIV` value in ticks:
/// `UART_DIV / 2` (the boards' control clock is half the tick clock), so a `UART_DIV` of
/// `2k` or `2k + 1` ticks gives a bit of `2k` ticks; the link needs at least 4 control cycles
/// (`UART_DIV` ≥ 8).
pub fn link_divisor(uart_div_ticks: u16) -> u16 {
    uart_div_ticks / CTL_DIVIDER as u16
}

/// The iCE40 PLL primitive with two outputs: port A the tagger clock (`GENCLK`), port B the
/// control clock at half its rate (`GENCLK_HALF`, phase-aligned). `SB_PLL40_2F_PAD` on the
/// UP5K, whose clock pin feeds the PLL directly, `SB_PLL40_2F_CORE` on the HX8K.
#[derive(LogicBlock)]
pub struct Ice40Pll {
    /// 12 MHz reference clock.
    pub clock_in: Signal<In, Clock>,
    /// PLL output clock (port A): the tagger clock.
    pub clock_out: Signal<Out, Clock>,
    /// PLL output clock (port B): the control clock, half of `clock_out`.
    pub ctl_clock_out: Signal<Out, Clock>,
    /// PLL locked.
    pub locked: Signal<Out, Bit>,
    // The settings live in constants: a LogicBlock's fields must all be blocks.
    divr: Constant<Bits<4>>,
    divf: Constant<Bits<7>>,
    divq: Constant<Bits<3>>,
    filter_range: Constant<Bits<3>>,
    pad_input: Constant<Bit>,
}

impl Ice40Pll {
    /// A PLL configured for `board`.
    pub fn new(board: Board) -> Self {
        let p = board.pll();
        Self {
            clock_in: Default::default(),
            clock_out: Default::default(),
            ctl_clock_out: Default::default(),
            locked: Default::default(),
            divr: Constant::new((p.divr as u64).to_bits()),
            divf: Constant::new((p.divf as u64).to_bits()),
            divq: Constant::new((p.divq as u64).to_bits()),
            filter_range: Constant::new((p.filter_range as u64).to_bits()),
            pad_input: Constant::new(board == Board::IceBreaker),
        }
    }
}

impl Logic for Ice40Pll {
    fn update(&mut self) {
        // Behavioural model for rust-hdl simulation: pass the clock through (to both
        // outputs), locked.
        self.clock_out.next = self.clock_in.val();
        self.ctl_clock_out.next = self.clock_in.val();
        self.locked.next = true;
    }

    fn connect(&mut self) {
        self.clock_out.connect();
        self.ctl_clock_out.connect();
        self.locked.connect();
    }

    fn hdl(&self) -> Verilog {
        let (prim, input) =
            if self.pad_input.val() { ("SB_PLL40_2F_PAD", "PACKAGEPIN") } else { ("SB_PLL40_2F_CORE", "REFERENCECLK") };
        Verilog::Wrapper(Wrapper {
            code: format!(
                r#"
{prim} #(
    .FEEDBACK_PATH("SIMPLE"),
    .PLLOUT_SELECT_PORTA("GENCLK"),
    .PLLOUT_SELECT_PORTB("GENCLK_HALF"),
    .DIVR(4'd{divr}),
    .DIVF(7'd{divf}),
    .DIVQ(3'd{divq}),
    .FILTER_RANGE(3'd{fr})
) pll_inst (
    .{input}(clock_in),
    .PLLOUTGLOBALA(clock_out),
    .PLLOUTGLOBALB(ctl_clock_out),
    .LOCK(locked),
    .RESETB(1'b1),
    .BYPASS(1'b0)
);
"#,
                divr = self.divr.val().index(),
                divf = self.divf.val().index(),
                divq = self.divq.val().index(),
                fr = self.filter_range.val().index()
            ),
            cores: format!(
                r#"
(* blackbox *)
module {prim}({input}, PLLOUTGLOBALA, PLLOUTGLOBALB, LOCK, RESETB, BYPASS);
    parameter FEEDBACK_PATH = "SIMPLE";
    parameter PLLOUT_SELECT_PORTA = "GENCLK";
    parameter PLLOUT_SELECT_PORTB = "GENCLK";
    parameter DIVR = 4'd0;
    parameter DIVF = 7'd0;
    parameter DIVQ = 3'd0;
    parameter FILTER_RANGE = 3'd0;
    input {input};
    output PLLOUTGLOBALA;
    output PLLOUTGLOBALB;
    output LOCK;
    input RESETB;
    input BYPASS;
endmodule
"#
            ),
        })
    }
}

/// The iCEBreaker's core: the tagger and the test signal behind the link (2 933 of the UP5K's
/// 5 280 logic cells); without the coincidence counter (with it: about 4 470), the correlation
/// histogram, the coincidence-only filter and the basis RNG. The host counts and correlates
/// from the tags.
pub const UP5K_FEATURES: u32 = crate::regmap::FEAT_TESTSIG;

/// Board code of the simulator in the `BUILD` register.
pub const BOARD_CODE_SIM: u8 = 0;

impl Board {
    /// Board code in the `BUILD` register.
    pub fn code(self) -> u8 {
        match self {
            Board::IceBreaker => 1,
            Board::Hx8k => 2,
        }
    }
}

/// The board top: PLL → core (tagger, coincidences, histogram, test signal, basis RNG, CSR
/// bank) ← UART host link.
#[derive(LogicBlock)]
pub struct BoardTop {
    /// 12 MHz board oscillator.
    pub clk_12m: Signal<In, Clock>,
    /// Detector inputs H, V, D, A (tagger channels 0–3).
    pub det: Signal<In, Bits<4>>,
    /// Sync / 1PPS input (tagger channel 4).
    pub sync_in: Signal<In, Bit>,
    /// Raw entropy input of the basis generator (e.g. a comparator on a noise diode).
    pub entropy_in: Signal<In, Bit>,
    /// UART receive line from the host (3 Mbaud 8N1 by default).
    pub uart_rx: Signal<In, Bit>,
    /// UART transmit line to the host.
    pub uart_tx: Signal<Out, Bit>,
    /// Status LEDs (active high), see [`crate::core::Core::leds`]; bit 0 is overridden with
    /// "PLL locked".
    pub led: Signal<Out, Bits<4>>,
    pll: Ice40Pll,
    core: Core,
    link: UartLink,
    lock_sync: BitSynchronizer,
    led_r: DFF<Bits<4>>,
    leds: Signal<Local, Bits<4>>,
}

impl BoardTop {
    /// The top for `board`, with the board's core ([`Board::features`]).
    pub fn new(board: Board) -> Self {
        Self::with_features(board, board.features())
    }

    /// The top for `board` with the optional blocks `features` (`regmap::FEAT_*`, read back
    /// by the host in `FEATURES`).
    pub fn with_features(board: Board, features: u32) -> Self {
        Self {
            clk_12m: Default::default(),
            det: Default::default(),
            sync_in: Default::default(),
            entropy_in: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            led: Default::default(),
            pll: Ice40Pll::new(board),
            core: Core::with_features(board.code(), (board.clock_mhz() * 1e6) as u64, features),
            link: UartLink::new(board.ctl_baud_divisor()),
            lock_sync: Default::default(),
            led_r: Default::default(),
            leds: Default::default(),
        }
    }
}

impl Logic for BoardTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_12m.val();
        // Tick domain: the core's tagger side; control domain: the core's bus side, the
        // link, the LEDs.
        self.core.clock.next = self.pll.clock_out.val();
        self.core.ctl_clock.next = self.pll.ctl_clock_out.val();
        self.link.clock.next = self.pll.ctl_clock_out.val();
        self.lock_sync.clock.next = self.pll.ctl_clock_out.val();
        self.led_r.clock.next = self.pll.ctl_clock_out.val();
        self.lock_sync.sig_in.next = self.pll.locked.val();
        self.core.pll_locked.next = self.lock_sync.sig_out.val();
        self.core.pins.next = bit_cast::<5, 4>(self.det.val()).replace_bit(4, self.sync_in.val());
        self.core.entropy.next = self.entropy_in.val();
        // The link is the bus master.
        self.link.rx.next = self.uart_rx.val();
        self.uart_tx.next = self.link.tx.val();
        // UART_DIV is in ticks, the link counts control cycles (half the tick, [`link_divisor`]).
        self.link.uart_div.next = bit_cast::<16, 15>(self.core.uart_div.val().get_bits::<15>(1));
        self.core.link_bad_frames.next = self.link.bad_frames.val();
        self.core.link_skipped.next = self.link.skipped.val();
        self.core.bus_addr.next = self.link.bus_addr.val();
        self.core.bus_wdata.next = self.link.bus_wdata.val();
        self.core.bus_we.next = self.link.bus_we.val();
        self.core.bus_re.next = self.link.bus_re.val();
        self.link.bus_ack.next = self.core.bus_ack.val();
        self.link.bus_rdata.next = self.core.bus_rdata.val();
        self.link.bus_rempty.next = self.core.bus_rempty.val();
        self.link.bus_rvalid_addr.next = self.core.bus_rvalid_addr.val();
        self.leds.next = self.core.leds.val().replace_bit(0, self.lock_sync.sig_out.val());
        self.led_r.d.next = self.leds.val();
        self.led.next = self.led_r.q.val();
    }
}

/// Which board top to build. All kinds have the same ports, so they share the pin
/// constraints `constraints/<board>.pcf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopKind {
    /// [`BoardTop`]: the board's core ([`Board::features`]) behind the framed UART host link.
    Core,
    /// [`StreamTop`]: the tagger alone, streaming raw records over the UART.
    Stream,
    /// [`BoardTop`] with the board's core less the basis RNG ([`RECEIVER_WITHOUT`]): a
    /// receiving station with passive basis choice (a beam splitter in front of the H/V and
    /// D/A detectors, as in the Micius downlinks) needs no random basis generator. On the
    /// HX8K this leaves every tick-clock block and 74 % of the logic cells instead of 95 %,
    /// and the tick clock meets 150 MHz (`docs/clocking.md`). Where the board's core has no
    /// RNG anyway (the UP5K) it is the same core as [`TopKind::Core`] and is not built.
    Receiver,
}

/// Blocks the receiver top ([`TopKind::Receiver`]) leaves out of the board's core.
pub const RECEIVER_WITHOUT: u32 = crate::regmap::FEAT_RNG;

impl TopKind {
    /// Every top kind.
    pub const ALL: [TopKind; 3] = [TopKind::Core, TopKind::Stream, TopKind::Receiver];

    /// The optional blocks (`regmap::FEAT_*`) of this kind's core on `board`; `None` for
    /// the tagger-only stream top.
    pub fn features(self, board: Board) -> Option<u32> {
        match self {
            TopKind::Core => Some(board.features()),
            TopKind::Receiver => Some(board.features() & !RECEIVER_WITHOUT),
            TopKind::Stream => None,
        }
    }

    /// Whether this kind is a distinct build on `board`: the receiver top is not where the
    /// board's core already lacks what it leaves out.
    pub fn distinct_on(self, board: Board) -> bool {
        self != TopKind::Receiver || self.features(board) != TopKind::Core.features(board)
    }

    /// Extra yosys `synth_ice40` options for this top on `board`. The HX8K core top fills
    /// ~95 % of the logic cells, and with the default options nextpnr 0.4 could not legalise
    /// its placement at seeds 1-3 nor with `--placer-heap-beta 0.95` ("Unable to find legal
    /// placement"): the eight cells of a logic tile share one clock enable, so a flip-flop
    /// enable that drives only one or two flip-flops scatters them over tiles.
    /// `-dffe_min_ce_use 4` folds such enables into the LUT in front of the flip-flop, so
    /// every enable left is shared by at least four flip-flops; the top then places (7 305
    /// logic cells, seed 1; 7 314 with 8). `scripts/timing-report` uses the same options.
    pub fn yosys_synth_options(self, board: Board) -> &'static str {
        match (self, board) {
            (TopKind::Core | TopKind::Receiver, Board::Hx8k) => "-dffe_min_ce_use 4",
            _ => "",
        }
    }

    /// Short name, the prefix of the top module and its files (`top`, `stream`, `rx`).
    pub fn name(self) -> &'static str {
        match self {
            TopKind::Core => "top",
            TopKind::Stream => "stream",
            TopKind::Receiver => "rx",
        }
    }

    /// Name of the top module for `board` (`top_hx8k`, `stream_icebreaker`, ...), which is
    /// also the stem of its Verilog file and of its build outputs.
    pub fn module_name(self, board: Board) -> String {
        format!("{}_{}", self.name(), board.name())
    }

    /// Verilog of this top for `board`, with the top module named [`Self::module_name`].
    pub fn verilog(self, board: Board) -> String {
        let name = self.module_name(board);
        match self {
            TopKind::Core | TopKind::Receiver => {
                let features = self.features(board).unwrap_or_default();
                crate::verilog::verilog_of(&mut BoardTop::with_features(board, features), &name)
            }
            TopKind::Stream => crate::verilog::verilog_of(&mut StreamTop::new(board), &name),
        }
    }
}

/// Tagger dead time of [`StreamTop`], in ticks (53 ns at 150 MHz): longer than the
/// synchronizer's resolution, shorter than any detector's own dead time.
pub const STREAM_DEAD_TIME: u64 = 8;

/// The tagger-only board top: PLL → time tagger (all five channels enabled on rising edges
/// once the PLL is locked, [`STREAM_DEAD_TIME`]) → raw UART record stream (3 Mbaud 8N1, each
/// 32-bit record as four bytes, least significant first, no framing). Same ports as
/// [`BoardTop`]; `uart_rx` and `entropy_in` are unused. LEDs: bit 0 PLL locked, bit 1 tag FIFO
/// not empty, bits 2–3 off.
#[derive(LogicBlock)]
pub struct StreamTop {
    /// 12 MHz board oscillator.
    pub clk_12m: Signal<In, Clock>,
    /// Detector inputs H, V, D, A (tagger channels 0–3).
    pub det: Signal<In, Bits<4>>,
    /// Sync / 1PPS input (tagger channel 4).
    pub sync_in: Signal<In, Bit>,
    /// Unused (kept so that the top shares the board's pin constraints).
    pub entropy_in: Signal<In, Bit>,
    /// Unused (kept so that the top shares the board's pin constraints).
    pub uart_rx: Signal<In, Bit>,
    /// UART transmit line to the host: the raw record stream.
    pub uart_tx: Signal<Out, Bit>,
    /// Status LEDs (active high): bit 0 PLL locked, bit 1 tag FIFO not empty.
    pub led: Signal<Out, Bits<4>>,
    pll: Ice40Pll,
    tagger: TimeTagger<TAGGER_CHANNELS>,
    uart: UartRecordStreamer,
    lock_sync: BitSynchronizer,
    // LED drivers: own registers, so the pads' long nets stay off the logic paths.
    led_r: DFF<Bits<4>>,
    enable_r: DFF<Bit>,
    leds: Signal<Local, Bits<4>>,
    divisor: Constant<Bits<16>>,
    dead_time: Constant<Bits<16>>,
}

impl StreamTop {
    /// The tagger-only top for `board`.
    pub fn new(board: Board) -> Self {
        Self {
            clk_12m: Default::default(),
            det: Default::default(),
            sync_in: Default::default(),
            entropy_in: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            led: Default::default(),
            pll: Ice40Pll::new(board),
            tagger: Default::default(),
            uart: Default::default(),
            lock_sync: Default::default(),
            led_r: Default::default(),
            enable_r: Default::default(),
            leds: Default::default(),
            divisor: Constant::new((board.baud_divisor() as u64).to_bits()),
            dead_time: Constant::new(STREAM_DEAD_TIME.to_bits()),
        }
    }
}

impl Logic for StreamTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_12m.val();
        self.tagger.clock.next = self.pll.clock_out.val();
        self.uart.clock.next = self.pll.clock_out.val();
        self.lock_sync.clock.next = self.pll.clock_out.val();
        self.led_r.clock.next = self.pll.clock_out.val();
        self.enable_r.clock.next = self.pll.clock_out.val();
        self.lock_sync.sig_in.next = self.pll.locked.val();
        self.tagger.pins.next = bit_cast::<5, 4>(self.det.val()).replace_bit(4, self.sync_in.val());
        // All channels enabled once the PLL is locked; rising edges.
        self.enable_r.d.next = self.lock_sync.sig_out.val();
        self.tagger.enable.next = 0.into();
        if self.enable_r.q.val() {
            self.tagger.enable.next = 0x1f.into();
        }
        self.tagger.falling.next = 0.into();
        for i in 0..5 {
            self.tagger.dead_time[i].next = self.dead_time.val();
        }
        self.uart.divisor.next = self.divisor.val();
        self.uart.data.next = self.tagger.data_out.val();
        self.uart.empty.next = self.tagger.empty.val();
        self.tagger.read.next = self.uart.read.val();
        self.uart_tx.next = self.uart.tx.val();
        self.leds.next = 0.into();
        self.leds.next = self.leds.val().replace_bit(0, self.lock_sync.sig_out.val());
        self.leds.next = self.leds.val().replace_bit(1, !self.tagger.empty.val());
        self.led_r.d.next = self.leds.val();
        self.led.next = self.led_r.q.val();
    }
}

/// The simulated board: the same core and link as [`BoardTop`] without the PLL (the
/// simulator drives both clocks directly, at any ratio). It is what `qkd-sim` verilates. The
/// UART defaults to 8 ticks per bit (18.75 Mbaud at 150 MHz; 4 cycles of the control clock at
/// half the tick) to keep simulations short; the host may set any other rate through
/// `UART_DIV`, as on hardware.
#[derive(LogicBlock)]
pub struct SimBoard {
    /// Tick clock (150 MHz in the simulator's time base).
    pub clock: Signal<In, Clock>,
    /// Control clock (the core's bus side and the UART link; half the tick clock on the
    /// boards, which `UART_DIV` assumes).
    pub ctl_clock: Signal<In, Clock>,
    /// Detector inputs, channel c = bit c.
    pub pins: Signal<In, Bits<5>>,
    /// Raw entropy input.
    pub entropy: Signal<In, Bit>,
    /// UART receive line (host → board).
    pub uart_rx: Signal<In, Bit>,
    /// UART transmit line (board → host).
    pub uart_tx: Signal<Out, Bit>,
    /// Status LEDs of the core.
    pub led: Signal<Out, Bits<4>>,
    core: Core,
    link: UartLink,
}

/// Core clock of [`SimBoard`], in Hz.
pub const SIM_CLOCK_HZ: u64 = 150_000_000;
/// UART bit period of [`SimBoard`] until the host changes it, in ticks.
pub const SIM_UART_DIV: u16 = 8;

impl Default for SimBoard {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            ctl_clock: Default::default(),
            pins: Default::default(),
            entropy: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            led: Default::default(),
            core: Core::new(BOARD_CODE_SIM, SIM_CLOCK_HZ),
            link: UartLink::new(link_divisor(SIM_UART_DIV)),
        }
    }
}

impl Logic for SimBoard {
    #[hdl_gen]
    fn update(&mut self) {
        self.core.clock.next = self.clock.val();
        self.core.ctl_clock.next = self.ctl_clock.val();
        self.link.clock.next = self.ctl_clock.val();
        self.core.pll_locked.next = true;
        self.core.pins.next = self.pins.val();
        self.core.entropy.next = self.entropy.val();
        self.link.rx.next = self.uart_rx.val();
        self.uart_tx.next = self.link.tx.val();
        // UART_DIV is in ticks, the link counts control cycles (half the tick, [`link_divisor`]).
        self.link.uart_div.next = bit_cast::<16, 15>(self.core.uart_div.val().get_bits::<15>(1));
        self.core.link_bad_frames.next = self.link.bad_frames.val();
        self.core.link_skipped.next = self.link.skipped.val();
        self.core.bus_addr.next = self.link.bus_addr.val();
        self.core.bus_wdata.next = self.link.bus_wdata.val();
        self.core.bus_we.next = self.link.bus_we.val();
        self.core.bus_re.next = self.link.bus_re.val();
        self.link.bus_ack.next = self.core.bus_ack.val();
        self.link.bus_rdata.next = self.core.bus_rdata.val();
        self.link.bus_rempty.next = self.core.bus_rempty.val();
        self.link.bus_rvalid_addr.next = self.core.bus_rvalid_addr.val();
        self.led.next = self.core.leds.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_tops_synthesize_in_yosys() {
        for board in Board::ALL {
            // rust-hdl's `yosys_validate` checks the hierarchy under a module named `top`,
            // the name `generate_verilog` gives the top block.
            let mut core = BoardTop::new(board);
            core.connect_all();
            let mut stream = StreamTop::new(board);
            stream.connect_all();
            let mut rx = BoardTop::with_features(board, TopKind::Receiver.features(board).unwrap());
            rx.connect_all();
            let kinds = [
                (TopKind::Core, generate_verilog(&core)),
                (TopKind::Stream, generate_verilog(&stream)),
                (TopKind::Receiver, generate_verilog(&rx)),
            ];
            for (kind, v) in kinds.into_iter().filter(|(k, _)| k.distinct_on(board)) {
                let name = kind.module_name(board);
                yosys_validate(&name, &v).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
    }

    #[test]
    fn all_top_kinds_have_the_same_ports() {
        for board in Board::ALL {
            let ports: Vec<_> = TopKind::ALL
                .iter()
                .map(|k| crate::verilog::ports_of(&k.verilog(board), &k.module_name(board)))
                .collect();
            assert_eq!(ports[0].len(), 7, "{ports:?}");
            assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
        }
    }

    #[test]
    fn pll_frequencies() {
        assert_eq!(Board::Hx8k.clock_mhz(), 150.0);
        assert_eq!(Board::IceBreaker.clock_mhz(), 60.0);
        assert_eq!(Board::Hx8k.baud_divisor(), 50);
        assert_eq!(Board::IceBreaker.baud_divisor(), 20);
    }
}
