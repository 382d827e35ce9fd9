//! Board tops: the tagger core with a PLL, status LEDs and the raw UART tag stream, for the
//! iCEBreaker (iCE40UP5K-SG48) and the iCE40-HX8K breakout board (iCE40HX8K-CT256).
//!
//! Pins: 4 detector inputs `det[3:0]` (H, V, D, A) and `sync_in` (1PPS/sync, tagger channel
//! 4), the 12 MHz board clock `clk_12m`, `uart_tx` to the board's FTDI, and two LEDs (PLL
//! lock, FIFO activity). The constraint files are `constraints/<board>.pcf`.

use rust_hdl::prelude::*;

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

    /// Short name, used in file names (`top_<name>.v`, `constraints/<name>.pcf`).
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

    /// UART baud divisor for 3 Mbaud at the tagger clock, in ticks per bit.
    pub fn baud_divisor(self) -> u16 {
        (self.clock_mhz() / 3.0).round() as u16
    }
}

/// The iCE40 PLL primitive (`SB_PLL40_PAD` on the UP5K, whose clock pin feeds the PLL
/// directly, `SB_PLL40_CORE` on the HX8K).
#[derive(LogicBlock)]
pub struct Ice40Pll {
    /// 12 MHz reference clock.
    pub clock_in: Signal<In, Clock>,
    /// PLL output clock.
    pub clock_out: Signal<Out, Clock>,
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
        // Behavioural model for rust-hdl simulation: pass the clock through, locked.
        self.clock_out.next = self.clock_in.val();
        self.locked.next = true;
    }

    fn connect(&mut self) {
        self.clock_out.connect();
        self.locked.connect();
    }

    fn hdl(&self) -> Verilog {
        let (prim, input) =
            if self.pad_input.val() { ("SB_PLL40_PAD", "PACKAGEPIN") } else { ("SB_PLL40_CORE", "REFERENCECLK") };
        Verilog::Wrapper(Wrapper {
            code: format!(
                r#"
{prim} #(
    .FEEDBACK_PATH("SIMPLE"),
    .DIVR(4'd{divr}),
    .DIVF(7'd{divf}),
    .DIVQ(3'd{divq}),
    .FILTER_RANGE(3'd{fr})
) pll_inst (
    .{input}(clock_in),
    .PLLOUTGLOBAL(clock_out),
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
module {prim}({input}, PLLOUTGLOBAL, LOCK, RESETB, BYPASS);
    parameter FEEDBACK_PATH = "SIMPLE";
    parameter DIVR = 4'd0;
    parameter DIVF = 7'd0;
    parameter DIVQ = 3'd0;
    parameter FILTER_RANGE = 3'd0;
    input {input};
    output PLLOUTGLOBAL;
    output LOCK;
    input RESETB;
    input BYPASS;
endmodule
"#
            ),
        })
    }
}

/// The foundation board top: PLL → tagger → raw UART record stream.
#[derive(LogicBlock)]
pub struct BoardTop {
    /// 12 MHz board oscillator.
    pub clk_12m: Signal<In, Clock>,
    /// Detector inputs H, V, D, A (tagger channels 0–3).
    pub det: Signal<In, Bits<4>>,
    /// Sync / 1PPS input (tagger channel 4).
    pub sync_in: Signal<In, Bit>,
    /// UART transmit line to the host (3 Mbaud 8N1, raw records, LSB byte first).
    pub uart_tx: Signal<Out, Bit>,
    /// Status LEDs: bit 0 PLL locked, bit 1 tag FIFO not empty (active high; the iCEBreaker
    /// constraint file maps them to its active-low LEDs inverted in `led_n`).
    pub led: Signal<Out, Bits<2>>,
    pll: Ice40Pll,
    tagger: TimeTagger<TAGGER_CHANNELS>,
    uart: UartRecordStreamer,
    lock_sync: BitSynchronizer,
    // LED drivers: own registers, so the pads' long nets stay off the logic paths.
    led_r: DFF<Bits<2>>,
    enable_r: DFF<Bit>,
    leds: Signal<Local, Bits<2>>,
    divisor: Constant<Bits<16>>,
    dead_time: Constant<Bits<16>>,
}

impl BoardTop {
    /// The top for `board`.
    pub fn new(board: Board) -> Self {
        Self {
            clk_12m: Default::default(),
            det: Default::default(),
            sync_in: Default::default(),
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
            // 8 ticks of dead time by default (53 ns at 150 MHz): longer than the
            // synchronizer's resolution, shorter than any detector's own dead time.
            dead_time: Constant::new(8u64.to_bits()),
        }
    }
}

impl Logic for BoardTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_12m.val();
        self.tagger.clock.next = self.pll.clock_out.val();
        self.uart.clock.next = self.pll.clock_out.val();
        self.lock_sync.clock.next = self.pll.clock_out.val();
        self.lock_sync.sig_in.next = self.pll.locked.val();
        // All channels enabled once the PLL is locked; rising edges.
        self.tagger.pins.next = bit_cast::<5, 4>(self.det.val()).replace_bit(4, self.sync_in.val());
        self.led_r.clock.next = self.pll.clock_out.val();
        self.enable_r.clock.next = self.pll.clock_out.val();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_tops_synthesize_in_yosys() {
        for board in Board::ALL {
            let mut top = BoardTop::new(board);
            top.connect_all();
            yosys_validate(&format!("top_{}", board.name()), &generate_verilog(&top)).unwrap();
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
