//! The host link: the framed, CRC-checked protocol of `docs/protocol.md` over a UART, as a
//! master of the core's register bus.
//!
//! Three machines run at once:
//!
//! * **Receiver** — hunts for `5A`, collects a request frame (header, at most 8 payload
//!   bytes, 4 CRC bytes) while a bit-serial CRC absorbs it, checks the CRC (by the residue),
//!   the command and the length, and hands the request, or the error to report, to a
//!   one-entry *pending* slot. A frame that completes while the slot is still full is an
//!   overrun: dropped without a reply and counted. A frame whose bytes stop for 256 bit
//!   periods is abandoned with a TIMEOUT error; a byte without stop bit inside a frame is a
//!   FRAMING error. Bytes skipped while hunting are counted.
//! * **Executor** — takes the pending request, performs its register-bus accesses and
//!   writes the reply words into a reply RAM with one 256-word half per `seq` parity; it
//!   remembers `seq`, command and length of the last reply of each parity, so a request
//!   repeated with the same `seq` and command is answered from the RAM and not executed
//!   twice (exactly once: a retried READ_FIFO loses nothing, a retried WRITE is not applied
//!   twice). It fills one half while the transmitter sends the other, which keeps the line
//!   busy when the host keeps two requests outstanding.
//! * **Transmitter** — sends a reply (from a RAM half, or an error reply from registers) and
//!   its CRC, computed bit-serially as the bytes leave.
//!
//! The bit period is the build default, or `uart_div` (the core's `UART_DIV` register) when
//! non-zero; a change applies when the link is idle, i.e. after the reply to the write that
//! changed it has been sent.

use rust_hdl::prelude::*;

use crate::crc32::{Crc32Serial, CRC32_RESIDUE};
use crate::regmap;
use crate::uart_rx::UartRx;
use crate::uart_tx::{UartTx, UART_DIV_BITS};

/// Receiver states.
#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum RxState {
    /// Waiting for `5A`.
    Hunt,
    /// Expecting the sequence number.
    Seq,
    /// Expecting the command.
    Command,
    /// Expecting the length, low byte.
    LenLo,
    /// Expecting the length, high byte.
    LenHi,
    /// Collecting payload bytes.
    Payload,
    /// Collecting the CRC bytes.
    Crc,
    /// Waiting for the CRC engine, then checking the frame.
    Check,
}

/// Executor states.
#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum ExState {
    /// Waiting for a pending request.
    Idle,
    /// Waiting until the transmitter no longer reads this parity's RAM half.
    WaitBuffer,
    /// Issuing a bus access.
    Access,
    /// Waiting for the bus acknowledge.
    WaitAck,
    /// Writing the link-counter word of a STATUS reply.
    StatusWord,
    /// Recording the stored reply.
    Finish,
    /// Handing a stored reply to the transmitter.
    SendReply,
    /// Handing an error reply to the transmitter.
    SendError,
}

/// Transmitter states.
#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum TxState {
    /// Nothing to send.
    Idle,
    /// Sending `A5`.
    Sync,
    /// Sending the sequence number.
    Seq,
    /// Sending the status byte.
    Status,
    /// Sending the length, low byte.
    LenLo,
    /// Sending the length, high byte.
    LenHi,
    /// Sending payload bytes.
    Payload,
    /// Sending the CRC bytes.
    Crc,
}

/// The UART host link, a register-bus master.
#[derive(LogicBlock)]
pub struct UartLink {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// UART receive line (from the host).
    pub rx: Signal<In, Bit>,
    /// UART transmit line (to the host).
    pub tx: Signal<Out, Bit>,
    /// Requested bit period in ticks (0: the build default).
    pub uart_div: Signal<In, Bits<UART_DIV_BITS>>,
    /// Bus: word address.
    pub bus_addr: Signal<Out, Bits<8>>,
    /// Bus: write data.
    pub bus_wdata: Signal<Out, Bits<32>>,
    /// Bus: write strobe.
    pub bus_we: Signal<Out, Bit>,
    /// Bus: read strobe.
    pub bus_re: Signal<Out, Bit>,
    /// Bus: access done.
    pub bus_ack: Signal<In, Bit>,
    /// Bus: read data (with `bus_ack`).
    pub bus_rdata: Signal<In, Bits<32>>,
    /// Bus: the FIFO register was empty (with `bus_ack`).
    pub bus_rempty: Signal<In, Bit>,
    /// Bus: the address exists (with `bus_ack`).
    pub bus_rvalid_addr: Signal<In, Bit>,
    /// Rejected frames (errors and overruns), wrapping.
    pub bad_frames: Signal<Out, Bits<16>>,
    /// Bytes skipped while hunting, and framing errors outside frames, wrapping.
    pub skipped: Signal<Out, Bits<16>>,
    /// A request is being executed or a reply sent (for an activity LED).
    pub active: Signal<Out, Bit>,

    urx: UartRx,
    utx: UartTx,
    rcrc: Crc32Serial,
    tcrc: Crc32Serial,
    ram: RAM<Bits<32>, 9>,

    default_div: Constant<Bits<UART_DIV_BITS>>,
    residue: Constant<Bits<32>>,
    a_status: Constant<Bits<8>>,
    a_tag_level: Constant<Bits<8>>,
    a_rng_level: Constant<Bits<8>>,
    a_id: Constant<Bits<8>>,

    div_set: DFF<Bit>,
    div_r: DFF<Bits<UART_DIV_BITS>>,
    div: Signal<Local, Bits<UART_DIV_BITS>>,

    // Receiver.
    rx_state: DFF<RxState>,
    r_seq: DFF<Bits<8>>,
    r_cmd: DFF<Bits<8>>,
    r_len: DFF<Bits<8>>,
    r_cnt: DFF<Bits<4>>,
    r_payload: DFF<Bits<40>>,
    to_pre: DFF<Bits<UART_DIV_BITS>>,
    to_cnt: DFF<Bits<9>>,
    dlv: DFF<Bit>,
    dlv_err: DFF<Bits<3>>,
    len_big: DFF<Bit>,
    len_ok: Signal<Local, Bit>,
    cmd_ok: Signal<Local, Bit>,
    bad_frames_r: DFF<Bits<16>>,
    skipped_r: DFF<Bits<16>>,

    // The pending slot.
    pend_valid: DFF<Bit>,
    pend_seq: DFF<Bits<8>>,
    pend_cmd: DFF<Bits<8>>,
    pend_err: DFF<Bits<3>>,
    pend_payload: DFF<Bits<40>>,
    take: Signal<Local, Bit>,

    // Executor.
    ex_state: DFF<ExState>,
    ex_seq: DFF<Bits<8>>,
    ex_cmd: DFF<Bits<8>>,
    ex_err: DFF<Bits<3>>,
    ex_wdata: DFF<Bits<32>>,
    ex_addr: DFF<Bits<8>>,
    ex_count: DFF<Bits<8>>,
    ex_words: DFF<Bits<9>>,
    ex_idx: DFF<Bits<2>>,
    re_r: DFF<Bit>,
    we_r: DFF<Bit>,
    st_valid: DFF<Bits<2>>,
    st_seq0: DFF<Bits<8>>,
    st_seq1: DFF<Bits<8>>,
    st_cmd0: DFF<Bits<8>>,
    st_cmd1: DFF<Bits<8>>,
    st_words0: DFF<Bits<9>>,
    st_words1: DFF<Bits<9>>,
    hit: Signal<Local, Bit>,
    go: Signal<Local, Bit>,
    go_err: Signal<Local, Bit>,
    go_words: Signal<Local, Bits<9>>,

    // Transmitter.
    tx_state: DFF<TxState>,
    t_err: DFF<Bit>,
    t_p: DFF<Bit>,
    t_seq: DFF<Bits<8>>,
    t_status: DFF<Bits<8>>,
    t_code: DFF<Bits<8>>,
    t_ecmd: DFF<Bits<8>>,
    crc_out: Signal<Local, Bits<32>>,
    t_len: DFF<Bits<16>>,
    t_left: DFF<Bits<11>>,
    t_wi: DFF<Bits<8>>,
    t_bi: DFF<Bits<2>>,
    // The reply RAM's read data, registered: a payload byte leaves a byte time (10 bit
    // periods) or more after its word's address was set, so the extra tick changes no byte,
    // and the byte select starts from flip-flops instead of the RAM's slow output.
    t_word: DFF<Bits<32>>,
    t_byte: Signal<Local, Bits<8>>,
    t_send: Signal<Local, Bit>,
    t_crc: Signal<Local, Bit>,
}

impl UartLink {
    /// A link whose bit period is `default_div` ticks until the host writes `UART_DIV`.
    pub fn new(default_div: u16) -> Self {
        assert!(default_div >= 4, "the UART needs at least 4 ticks per bit");
        Self {
            clock: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            uart_div: Default::default(),
            bus_addr: Default::default(),
            bus_wdata: Default::default(),
            bus_we: Default::default(),
            bus_re: Default::default(),
            bus_ack: Default::default(),
            bus_rdata: Default::default(),
            bus_rempty: Default::default(),
            bus_rvalid_addr: Default::default(),
            bad_frames: Default::default(),
            skipped: Default::default(),
            active: Default::default(),
            urx: Default::default(),
            utx: Default::default(),
            rcrc: Default::default(),
            tcrc: Default::default(),
            ram: Default::default(),
            default_div: Constant::new((default_div as u64).into()),
            residue: Constant::new((CRC32_RESIDUE as u64).into()),
            a_status: Constant::new((regmap::STATUS.addr as u64).into()),
            a_tag_level: Constant::new((regmap::TAG_LEVEL.addr as u64).into()),
            a_rng_level: Constant::new((regmap::RNG_LEVEL.addr as u64).into()),
            a_id: Constant::new((regmap::ID.addr as u64).into()),
            div_set: Default::default(),
            div_r: Default::default(),
            div: Default::default(),
            rx_state: Default::default(),
            r_seq: Default::default(),
            r_cmd: Default::default(),
            r_len: Default::default(),
            r_cnt: Default::default(),
            r_payload: Default::default(),
            to_pre: Default::default(),
            to_cnt: Default::default(),
            dlv: Default::default(),
            dlv_err: Default::default(),
            len_big: Default::default(),
            len_ok: Default::default(),
            cmd_ok: Default::default(),
            bad_frames_r: Default::default(),
            skipped_r: Default::default(),
            pend_valid: Default::default(),
            pend_seq: Default::default(),
            pend_cmd: Default::default(),
            pend_err: Default::default(),
            pend_payload: Default::default(),
            take: Default::default(),
            ex_state: Default::default(),
            ex_seq: Default::default(),
            ex_cmd: Default::default(),
            ex_err: Default::default(),
            ex_wdata: Default::default(),
            ex_addr: Default::default(),
            ex_count: Default::default(),
            ex_words: Default::default(),
            ex_idx: Default::default(),
            re_r: Default::default(),
            we_r: Default::default(),
            st_valid: Default::default(),
            st_seq0: Default::default(),
            st_seq1: Default::default(),
            st_cmd0: Default::default(),
            st_cmd1: Default::default(),
            st_words0: Default::default(),
            st_words1: Default::default(),
            hit: Default::default(),
            go: Default::default(),
            go_err: Default::default(),
            go_words: Default::default(),
            tx_state: Default::default(),
            t_err: Default::default(),
            t_p: Default::default(),
            t_seq: Default::default(),
            t_status: Default::default(),
            t_code: Default::default(),
            t_ecmd: Default::default(),
            crc_out: Default::default(),
            t_len: Default::default(),
            t_left: Default::default(),
            t_wi: Default::default(),
            t_bi: Default::default(),
            t_word: Default::default(),
            t_byte: Default::default(),
            t_send: Default::default(),
            t_crc: Default::default(),
        }
    }
}

impl Default for UartLink {
    /// 3 Mbaud at 150 MHz.
    fn default() -> Self {
        Self::new(50)
    }
}

impl Logic for UartLink {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, div_set, div_r, dlv, dlv_err, len_big, rx_state, r_seq, r_cmd, r_len, r_cnt, r_payload, to_pre, to_cnt,
            bad_frames_r, skipped_r, pend_valid, pend_seq, pend_cmd, pend_err, pend_payload, ex_state, ex_seq,
            ex_cmd, ex_err, ex_wdata, ex_addr, ex_count, ex_words, ex_idx, re_r, we_r,
            st_valid, st_seq0, st_seq1, st_cmd0, st_cmd1, st_words0, st_words1, tx_state, t_err, t_p, t_seq,
            t_status, t_code, t_ecmd, t_len, t_left, t_wi, t_bi, t_word
        );
        clock!(self, clock, urx, utx, rcrc, tcrc);
        self.ram.read_clock.next = self.clock.val();
        self.ram.write_clock.next = self.clock.val();

        // ---- Bit period ----
        if self.div_set.q.val() {
            self.div.next = self.div_r.q.val();
        } else {
            self.div.next = self.default_div.val();
        }
        if (self.tx_state.q.val() == TxState::Idle)
            & (self.ex_state.q.val() == ExState::Idle)
            & !self.utx.busy.val()
            & !self.urx.busy.val()
            & (self.rx_state.q.val() == RxState::Hunt)
            & !self.pend_valid.q.val()
            & !self.dlv.q.val()
        {
            self.div_set.d.next = self.uart_div.val() != 0;
            self.div_r.d.next = self.uart_div.val();
        }
        self.urx.rx.next = self.rx.val();
        self.urx.divisor.next = self.div.val();
        self.utx.divisor.next = self.div.val();
        self.tx.next = self.utx.tx.val();
        self.bad_frames.next = self.bad_frames_r.q.val();
        self.skipped.next = self.skipped_r.q.val();
        self.active.next = (self.ex_state.q.val() != ExState::Idle) | (self.tx_state.q.val() != TxState::Idle);

        // ---- Receiver ----
        self.dlv.d.next = false;
        self.dlv_err.d.next = 0.into();
        self.rcrc.init.next = false;
        self.rcrc.load.next = false;
        self.rcrc.data.next = self.urx.data.val();
        // Timeout: bit periods since the last byte.
        if self.urx.valid.val() | self.urx.frame_err.val() | (self.rx_state.q.val() == RxState::Hunt) {
            self.to_pre.d.next = 0.into();
            self.to_cnt.d.next = 0.into();
        } else if self.to_pre.q.val() == 0 {
            self.to_pre.d.next = self.div.val() - 1;
            if !self.to_cnt.q.val().get_bit(8) {
                self.to_cnt.d.next = self.to_cnt.q.val() + 1;
            }
        } else {
            self.to_pre.d.next = self.to_pre.q.val() - 1;
        }
        // Command and length check (for the Check state).
        self.cmd_ok.next = (self.r_cmd.q.val() == 1)
            | (self.r_cmd.q.val() == 2)
            | (self.r_cmd.q.val() == 3)
            | (self.r_cmd.q.val() == 4)
            | (self.r_cmd.q.val() == 5);
        self.len_ok.next = false;
        if (self.r_cmd.q.val() == 1) | (self.r_cmd.q.val() == 5) {
            // HELLO, STATUS: no payload.
            self.len_ok.next = self.r_len.q.val() == 0;
        }
        if (self.r_cmd.q.val() == 2) | (self.r_cmd.q.val() == 4) {
            // READ, READ_FIFO: addr, count (count in 1..=255).
            self.len_ok.next = (self.r_len.q.val() == 2) & (self.r_payload.q.val().get_bits::<8>(32) != 0);
        }
        if self.r_cmd.q.val() == 3 {
            // WRITE: addr, value.
            self.len_ok.next = self.r_len.q.val() == 5;
        }
        match self.rx_state.q.val() {
            RxState::Hunt => {
                if self.urx.valid.val() {
                    if self.urx.data.val() == 0x5A {
                        self.rx_state.d.next = RxState::Seq;
                        self.rcrc.init.next = true;
                        self.r_seq.d.next = 0.into();
                        self.r_cmd.d.next = 0.into();
                    } else {
                        self.skipped_r.d.next = self.skipped_r.q.val() + 1;
                    }
                }
                if self.urx.frame_err.val() {
                    self.skipped_r.d.next = self.skipped_r.q.val() + 1;
                }
            }
            RxState::Seq => {
                if self.urx.valid.val() {
                    self.r_seq.d.next = self.urx.data.val();
                    self.rcrc.load.next = true;
                    self.rx_state.d.next = RxState::Command;
                }
            }
            RxState::Command => {
                if self.urx.valid.val() {
                    self.r_cmd.d.next = self.urx.data.val();
                    self.rcrc.load.next = true;
                    self.rx_state.d.next = RxState::LenLo;
                }
            }
            RxState::LenLo => {
                if self.urx.valid.val() {
                    self.r_len.d.next = self.urx.data.val();
                    // More than 8 bytes: 9..15 or anything with a bit above bit 3.
                    self.len_big.d.next = (self.urx.data.val().get_bits::<4>(4) != 0)
                        | (self.urx.data.val().get_bit(3) & (self.urx.data.val().get_bits::<3>(0) != 0));
                    self.rcrc.load.next = true;
                    self.rx_state.d.next = RxState::LenHi;
                }
            }
            RxState::LenHi => {
                if self.urx.valid.val() {
                    self.rcrc.load.next = true;
                    self.r_payload.d.next = 0.into();
                    if (self.urx.data.val() != 0) | self.len_big.q.val() {
                        // BAD_LENGTH, at once; hunt again from the next byte.
                        self.dlv.d.next = true;
                        self.dlv_err.d.next = 2.into();
                        self.rx_state.d.next = RxState::Hunt;
                    } else if self.r_len.q.val() == 0 {
                        self.r_cnt.d.next = 4.into();
                        self.rx_state.d.next = RxState::Crc;
                    } else {
                        self.r_cnt.d.next = self.r_len.q.val().get_bits::<4>(0);
                        self.rx_state.d.next = RxState::Payload;
                    }
                }
            }
            RxState::Payload => {
                if self.urx.valid.val() {
                    self.r_payload.d.next = (self.r_payload.q.val() >> 8) | (bit_cast::<40, 8>(self.urx.data.val()) << 32);
                    self.rcrc.load.next = true;
                    self.r_cnt.d.next = self.r_cnt.q.val() - 1;
                    if self.r_cnt.q.val() == 1 {
                        self.r_cnt.d.next = 4.into();
                        self.rx_state.d.next = RxState::Crc;
                    }
                }
            }
            RxState::Crc => {
                if self.urx.valid.val() {
                    self.rcrc.load.next = true;
                    self.r_cnt.d.next = self.r_cnt.q.val() - 1;
                    if self.r_cnt.q.val() == 1 {
                        self.rx_state.d.next = RxState::Check;
                    }
                }
            }
            RxState::Check => {
                if !self.rcrc.busy.val() {
                    self.dlv.d.next = true;
                    self.rx_state.d.next = RxState::Hunt;
                    if self.rcrc.crc.val() != self.residue.val() {
                        self.dlv_err.d.next = 1.into();
                    } else if !self.cmd_ok.val() {
                        self.dlv_err.d.next = 3.into();
                    } else if !self.len_ok.val() {
                        self.dlv_err.d.next = 2.into();
                    }
                }
            }
            _ => {
                self.rx_state.d.next = RxState::Hunt;
            }
        }
        if (self.rx_state.q.val() != RxState::Hunt) & (self.rx_state.q.val() != RxState::Check) {
            if self.urx.frame_err.val() {
                self.dlv.d.next = true;
                self.dlv_err.d.next = 7.into();
                self.rx_state.d.next = RxState::Hunt;
            } else if self.to_cnt.q.val().get_bit(8) {
                self.dlv.d.next = true;
                self.dlv_err.d.next = 4.into();
                self.rx_state.d.next = RxState::Hunt;
            }
        }

        // ---- Executor ----
        self.take.next = false;
        self.go.next = false;
        self.go_err.next = false;
        self.go_words.next = 0.into();
        self.re_r.d.next = false;
        self.we_r.d.next = false;
        self.bus_addr.next = self.ex_addr.q.val();
        self.bus_wdata.next = self.ex_wdata.q.val();
        self.bus_re.next = self.re_r.q.val();
        self.bus_we.next = self.we_r.q.val();
        // Reply words go to word `ex_words` of the RAM half of this request's seq parity.
        self.ram.write_enable.next = false;
        self.ram.write_address.next =
            bit_cast::<9, 8>(self.ex_words.q.val().get_bits::<8>(0)) | (bit_cast::<9, 8>(self.ex_seq.q.val() & 1) << 8);
        self.ram.write_data.next = self.bus_rdata.val();
        // Does the pending request repeat the stored reply of its parity?
        if self.pend_seq.q.val().get_bit(0) {
            self.hit.next = self.st_valid.q.val().get_bit(1)
                & (self.st_seq1.q.val() == self.pend_seq.q.val())
                & (self.st_cmd1.q.val() == self.pend_cmd.q.val());
        } else {
            self.hit.next = self.st_valid.q.val().get_bit(0)
                & (self.st_seq0.q.val() == self.pend_seq.q.val())
                & (self.st_cmd0.q.val() == self.pend_cmd.q.val());
        }
        match self.ex_state.q.val() {
            ExState::Idle => {
                if self.pend_valid.q.val() {
                    self.take.next = true;
                    self.ex_seq.d.next = self.pend_seq.q.val();
                    self.ex_cmd.d.next = self.pend_cmd.q.val();
                    self.ex_err.d.next = self.pend_err.q.val();
                    // Payload: WRITE addr = [7:0], value = [39:8]; READ(_FIFO) addr = [31:24],
                    // count = [39:32] (the bytes enter at the top of a 40-bit shift register).
                    self.ex_wdata.d.next = self.pend_payload.q.val().get_bits::<32>(8);
                    if self.pend_cmd.q.val() == 3 {
                        self.ex_addr.d.next = self.pend_payload.q.val().get_bits::<8>(0);
                        self.ex_count.d.next = 1.into();
                    } else {
                        self.ex_addr.d.next = self.pend_payload.q.val().get_bits::<8>(24);
                        self.ex_count.d.next = self.pend_payload.q.val().get_bits::<8>(32);
                    }
                    self.ex_words.d.next = 0.into();
                    self.ex_idx.d.next = 0.into();
                    if self.pend_err.q.val() != 0 {
                        self.ex_state.d.next = ExState::SendError;
                    } else if self.hit.val() {
                        self.ex_state.d.next = ExState::SendReply;
                    } else {
                        self.ex_state.d.next = ExState::WaitBuffer;
                    }
                }
            }
            ExState::WaitBuffer => {
                if (self.tx_state.q.val() == TxState::Idle) | (self.t_p.q.val() != self.ex_seq.q.val().get_bit(0)) {
                    self.ex_state.d.next = ExState::Access;
                    // This half of the RAM is about to change: forget its stored reply.
                    if self.ex_seq.q.val().get_bit(0) {
                        self.st_valid.d.next = self.st_valid.q.val() & 1;
                    } else {
                        self.st_valid.d.next = self.st_valid.q.val() & 2;
                    }
                    if self.ex_cmd.q.val() == 1 {
                        // HELLO: ID, VERSION, MAP_HASH, BUILD; forget every stored reply.
                        self.st_valid.d.next = 0.into();
                        self.ex_addr.d.next = self.a_id.val();
                        self.ex_count.d.next = 4.into();
                    } else if self.ex_cmd.q.val() == 5 {
                        // STATUS: STATUS, TAG_LEVEL, RNG_LEVEL, then the link counters.
                        self.ex_addr.d.next = self.a_status.val();
                        self.ex_count.d.next = 3.into();
                    }
                }
            }
            ExState::Access => {
                if self.ex_cmd.q.val() == 3 {
                    self.we_r.d.next = true;
                } else {
                    self.re_r.d.next = true;
                }
                self.ex_state.d.next = ExState::WaitAck;
            }
            ExState::WaitAck => {
                if self.bus_ack.val() {
                    if !self.bus_rvalid_addr.val() {
                        self.ex_err.d.next = 5.into();
                        self.ex_state.d.next = ExState::SendError;
                    } else if self.ex_cmd.q.val() == 3 {
                        self.ex_state.d.next = ExState::Finish;
                    } else if (self.ex_cmd.q.val() == 4) & self.bus_rempty.val() {
                        // READ_FIFO ran empty: a shorter reply.
                        self.ex_state.d.next = ExState::Finish;
                    } else {
                        self.ram.write_enable.next = true;
                        self.ex_words.d.next = self.ex_words.q.val() + 1;
                        self.ex_count.d.next = self.ex_count.q.val() - 1;
                        self.ex_idx.d.next = self.ex_idx.q.val() + 1;
                        if self.ex_cmd.q.val() == 5 {
                            if self.ex_idx.q.val() == 0 {
                                self.ex_addr.d.next = self.a_tag_level.val();
                            } else {
                                self.ex_addr.d.next = self.a_rng_level.val();
                            }
                        } else if self.ex_cmd.q.val() != 4 {
                            self.ex_addr.d.next = self.ex_addr.q.val() + 1;
                        }
                        if self.ex_count.q.val() == 1 {
                            if self.ex_cmd.q.val() == 5 {
                                self.ex_state.d.next = ExState::StatusWord;
                            } else {
                                self.ex_state.d.next = ExState::Finish;
                            }
                        } else {
                            self.ex_state.d.next = ExState::Access;
                        }
                    }
                }
            }
            ExState::StatusWord => {
                self.ram.write_enable.next = true;
                self.ram.write_data.next = bit_cast::<32, 16>(self.bad_frames_r.q.val()) | (bit_cast::<32, 16>(self.skipped_r.q.val()) << 16);
                self.ex_words.d.next = self.ex_words.q.val() + 1;
                self.ex_state.d.next = ExState::Finish;
            }
            ExState::Finish => {
                if self.ex_seq.q.val().get_bit(0) {
                    self.st_valid.d.next = self.st_valid.q.val() | 2;
                    self.st_seq1.d.next = self.ex_seq.q.val();
                    self.st_cmd1.d.next = self.ex_cmd.q.val();
                    self.st_words1.d.next = self.ex_words.q.val();
                } else {
                    self.st_valid.d.next = self.st_valid.q.val() | 1;
                    self.st_seq0.d.next = self.ex_seq.q.val();
                    self.st_cmd0.d.next = self.ex_cmd.q.val();
                    self.st_words0.d.next = self.ex_words.q.val();
                }
                self.ex_state.d.next = ExState::SendReply;
            }
            ExState::SendReply => {
                if self.tx_state.q.val() == TxState::Idle {
                    self.go.next = true;
                    if self.ex_seq.q.val().get_bit(0) {
                        self.go_words.next = self.st_words1.q.val();
                    } else {
                        self.go_words.next = self.st_words0.q.val();
                    }
                    self.ex_state.d.next = ExState::Idle;
                }
            }
            ExState::SendError => {
                if self.tx_state.q.val() == TxState::Idle {
                    self.go.next = true;
                    self.go_err.next = true;
                    self.ex_state.d.next = ExState::Idle;
                }
            }
            _ => {
                self.ex_state.d.next = ExState::Idle;
            }
        }

        // ---- The pending slot ----
        if self.take.val() {
            self.pend_valid.d.next = false;
        }
        if self.dlv.q.val() {
            if self.pend_valid.q.val() & !self.take.val() {
                // Overrun: dropped without a reply, counted.
                self.bad_frames_r.d.next = self.bad_frames_r.q.val() + 1;
            } else {
                if self.dlv_err.q.val() != 0 {
                    self.bad_frames_r.d.next = self.bad_frames_r.q.val() + 1;
                }
                self.pend_valid.d.next = true;
                self.pend_seq.d.next = self.r_seq.q.val();
                self.pend_cmd.d.next = self.r_cmd.q.val();
                self.pend_err.d.next = self.dlv_err.q.val();
                self.pend_payload.d.next = self.r_payload.q.val();
            }
        }

        // ---- Transmitter ----
        self.t_send.next = false;
        self.t_crc.next = true;
        self.t_byte.next = 0.into();
        self.tcrc.init.next = false;
        if self.t_p.q.val() {
            self.ram.read_address.next = bit_cast::<9, 8>(self.t_wi.q.val()) | 0x100;
        } else {
            self.ram.read_address.next = bit_cast::<9, 8>(self.t_wi.q.val());
        }
        self.crc_out.next = !self.tcrc.crc.val();
        self.t_word.d.next = self.ram.read_data.val();
        match self.tx_state.q.val() {
            TxState::Idle => {
                if self.go.val() {
                    self.tx_state.d.next = TxState::Sync;
                    self.tcrc.init.next = true;
                    self.t_err.d.next = self.go_err.val();
                    self.t_p.d.next = self.ex_seq.q.val().get_bit(0);
                    self.t_seq.d.next = self.ex_seq.q.val();
                    self.t_wi.d.next = 0.into();
                    self.t_bi.d.next = 0.into();
                    if self.go_err.val() {
                        self.t_status.d.next = 0x7F.into();
                        self.t_code.d.next = bit_cast::<8, 3>(self.ex_err.q.val());
                        self.t_ecmd.d.next = self.ex_cmd.q.val();
                        self.t_len.d.next = 2.into();
                    } else {
                        self.t_status.d.next = self.ex_cmd.q.val() | 0x80;
                        self.t_len.d.next = bit_cast::<16, 9>(self.go_words.val()) << 2;
                    }
                }
            }
            TxState::Sync => {
                self.t_byte.next = 0xA5.into();
                self.t_crc.next = false;
                self.t_send.next = true;
            }
            TxState::Seq => {
                self.t_byte.next = self.t_seq.q.val();
                self.t_send.next = true;
            }
            TxState::Status => {
                self.t_byte.next = self.t_status.q.val();
                self.t_send.next = true;
            }
            TxState::LenLo => {
                self.t_byte.next = self.t_len.q.val().get_bits::<8>(0);
                self.t_send.next = true;
            }
            TxState::LenHi => {
                self.t_byte.next = self.t_len.q.val().get_bits::<8>(8);
                self.t_send.next = true;
            }
            TxState::Payload => {
                if self.t_err.q.val() {
                    if self.t_bi.q.val() == 0 {
                        self.t_byte.next = self.t_code.q.val();
                    } else {
                        self.t_byte.next = self.t_ecmd.q.val();
                    }
                } else if self.t_bi.q.val() == 0 {
                    self.t_byte.next = self.t_word.q.val().get_bits::<8>(0);
                } else if self.t_bi.q.val() == 1 {
                    self.t_byte.next = self.t_word.q.val().get_bits::<8>(8);
                } else if self.t_bi.q.val() == 2 {
                    self.t_byte.next = self.t_word.q.val().get_bits::<8>(16);
                } else {
                    self.t_byte.next = self.t_word.q.val().get_bits::<8>(24);
                }
                self.t_send.next = true;
            }
            TxState::Crc => {
                self.t_crc.next = false;
                if self.t_bi.q.val() == 0 {
                    self.t_byte.next = self.crc_out.val().get_bits::<8>(0);
                } else if self.t_bi.q.val() == 1 {
                    self.t_byte.next = self.crc_out.val().get_bits::<8>(8);
                } else if self.t_bi.q.val() == 2 {
                    self.t_byte.next = self.crc_out.val().get_bits::<8>(16);
                } else {
                    self.t_byte.next = self.crc_out.val().get_bits::<8>(24);
                }
                self.t_send.next = true;
            }
            _ => {
                self.tx_state.d.next = TxState::Idle;
            }
        }
        self.utx.data.next = self.t_byte.val();
        self.utx.start.next = false;
        self.tcrc.data.next = self.t_byte.val();
        self.tcrc.load.next = false;
        if self.t_send.val() & !self.utx.busy.val() & !self.tcrc.busy.val() {
            self.utx.start.next = true;
            self.tcrc.load.next = self.t_crc.val();
            match self.tx_state.q.val() {
                TxState::Sync => {
                    self.tx_state.d.next = TxState::Seq;
                }
                TxState::Seq => {
                    self.tx_state.d.next = TxState::Status;
                }
                TxState::Status => {
                    self.tx_state.d.next = TxState::LenLo;
                }
                TxState::LenLo => {
                    self.tx_state.d.next = TxState::LenHi;
                }
                TxState::LenHi => {
                    self.t_left.d.next = self.t_len.q.val().get_bits::<11>(0);
                    if self.t_len.q.val() == 0 {
                        self.tx_state.d.next = TxState::Crc;
                    } else {
                        self.tx_state.d.next = TxState::Payload;
                    }
                }
                TxState::Payload => {
                    self.t_bi.d.next = self.t_bi.q.val() + 1;
                    if self.t_bi.q.val() == 3 {
                        self.t_wi.d.next = self.t_wi.q.val() + 1;
                    }
                    self.t_left.d.next = self.t_left.q.val() - 1;
                    if self.t_left.q.val() == 1 {
                        self.t_bi.d.next = 0.into();
                        self.tx_state.d.next = TxState::Crc;
                    }
                }
                TxState::Crc => {
                    self.t_bi.d.next = self.t_bi.q.val() + 1;
                    if self.t_bi.q.val() == 3 {
                        self.tx_state.d.next = TxState::Idle;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Cmd, Decoded, ErrorCode, FrameDecoder, Request};
    use crate::uart_rx::encode_line;
    use crate::uart_tx::decode_line;
    use std::collections::VecDeque;

    /// The link in rust-hdl's simulator, with a register-file bus slave in Rust: addresses
    /// below 0x80 exist, 0x1B is a FIFO register.
    struct Harness {
        uut: UartLink,
        div: usize,
        regs: [u32; 256],
        fifo: VecDeque<u32>,
        rx: VecDeque<bool>,
        tx: Vec<bool>,
        acks: VecDeque<(u64, bool, u8, u32)>,
        t: u64,
        accesses: u64,
    }

    const FIFO: u8 = 0x1B;

    impl Harness {
        fn new(div: u16) -> Self {
            let mut uut = UartLink::new(div);
            uut.connect_all();
            uut.clock.next = Clock::from(false);
            uut.rx.next = true;
            simulate(&mut uut, 1000);
            let mut regs = [0u32; 256];
            for (i, r) in regs.iter_mut().enumerate() {
                *r = 0x1000_0000 | i as u32;
            }
            Harness { uut, div: div as usize, regs, fifo: VecDeque::new(), rx: VecDeque::new(), tx: Vec::new(), acks: VecDeque::new(), t: 0, accesses: 0 }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.rx.extend(encode_line(bytes, self.div, 0));
        }

        /// Sends `bytes` and waits for the link to finish answering.
        fn exchange(&mut self, bytes: &[u8]) {
            self.send(bytes);
            self.settle();
        }

        fn tick(&mut self) {
            let u = &mut self.uut;
            u.rx.next = self.rx.pop_front().unwrap_or(true);
            u.bus_ack.next = false;
            u.bus_rempty.next = false;
            u.bus_rvalid_addr.next = false;
            u.bus_rdata.next = 0u64.into();
            if let Some(&(due, we, addr, wdata)) = self.acks.front() {
                if due == self.t {
                    self.acks.pop_front();
                    u.bus_ack.next = true;
                    u.bus_rvalid_addr.next = addr < 0x80;
                    if addr < 0x80 {
                        if we {
                            self.regs[addr as usize] = wdata;
                        } else if addr == FIFO {
                            match self.fifo.pop_front() {
                                Some(w) => u.bus_rdata.next = (w as u64).into(),
                                None => u.bus_rempty.next = true,
                            }
                        } else {
                            u.bus_rdata.next = (self.regs[addr as usize] as u64).into();
                        }
                    }
                }
            }
            simulate(u, 1000);
            if u.bus_re.val() || u.bus_we.val() {
                assert!(self.acks.is_empty(), "a second bus access before the ack");
                assert!(!(u.bus_re.val() && u.bus_we.val()));
                self.accesses += 1;
                self.acks.push_back((self.t + 2, u.bus_we.val(), u.bus_addr.val().index() as u8, u.bus_wdata.val().to_u32()));
            }
            self.tx.push(u.tx.val());
            u.clock.next = Clock::from(true);
            simulate(u, 1000);
            u.clock.next = Clock::from(false);
            simulate(u, 1000);
            self.t += 1;
        }

        /// Runs until the line is idle for `quiet` bit periods after the input ran out.
        fn settle(&mut self) {
            let mut idle = 0;
            while idle < 40 * self.div {
                self.tick();
                if self.rx.is_empty() && !self.uut.active.val() && *self.tx.last().unwrap() {
                    idle += 1;
                } else {
                    idle = 0;
                }
            }
        }

        fn responses(&self) -> Vec<Decoded> {
            let mut d = FrameDecoder::responses();
            let out = d.push(&decode_line(&self.tx, self.div));
            assert_eq!(d.pending(), 0);
            out
        }
    }

    fn frame(seq: u8, code: u8, payload: Vec<u8>) -> Decoded {
        Decoded::Frame { seq, code, payload }
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn err(seq: u8, code: ErrorCode, cmd: u8) -> Decoded {
        frame(seq, 0x7F, vec![code as u8, cmd])
    }

    #[test]
    fn commands_and_errors() {
        let mut h = Harness::new(4);
        h.fifo.extend([11, 22, 33]);
        h.exchange(&Request::hello(0).encode());
        h.exchange(&Request::write(1, 0x06, 0xDEAD_BEEF).encode());
        h.exchange(&Request::read(2, 0x05, 3).encode());
        h.exchange(&Request::read_fifo(3, FIFO, 5).encode());
        h.exchange(&Request::status(4).encode());
        // Errors: bad CRC, unknown command, wrong length, zero count, bad address.
        let mut bad = Request::read(5, 0x05, 1).encode();
        bad[6] ^= 0x40;
        h.exchange(&bad);
        h.exchange(&crate::protocol::encode_frame(0x5A, 6, 9, &[]));
        h.exchange(&crate::protocol::encode_frame(0x5A, 7, Cmd::Read as u8, &[1]));
        h.exchange(&Request::read(8, 0x05, 0).encode());
        h.exchange(&Request::write(9, 0x90, 1).encode());
        h.exchange(&crate::protocol::encode_frame(0x5A, 10, Cmd::Read as u8, &[0; 9]));
        h.settle();
        let r = h.responses();
        let expect = vec![
            frame(0, 0x81, words(&[0x1000_0000, 0x1000_0001, 0x1000_0002, 0x1000_0003])),
            frame(1, 0x83, vec![]),
            frame(2, 0x82, words(&[0x1000_0005, 0xDEAD_BEEF, 0x1000_0007])),
            frame(3, 0x84, words(&[11, 22, 33])),
            frame(4, 0x85, words(&[0x1000_0005, 0x1000_001A, 0x1000_006D, 0])),
            err(5, ErrorCode::BadCrc, 2),
            err(6, ErrorCode::UnknownCmd, 9),
            err(7, ErrorCode::BadLength, 2),
            err(8, ErrorCode::BadLength, 2),
            err(9, ErrorCode::BadAddress, 3),
            err(10, ErrorCode::BadLength, 2),
        ];
        assert_eq!(r.len(), expect.len(), "{r:?}");
        for (a, b) in r.iter().zip(&expect) {
            assert_eq!(a, b);
        }
        assert_eq!(h.uut.bad_frames.val().index(), 5);
    }

    #[test]
    fn a_repeated_request_is_answered_from_storage_not_executed_again() {
        let mut h = Harness::new(4);
        h.fifo.extend(1..=6);
        h.exchange(&Request::hello(7).encode());
        h.exchange(&Request::read_fifo(8, FIFO, 2).encode());
        h.exchange(&Request::read_fifo(8, FIFO, 2).encode());
        h.exchange(&Request::write(9, 0x06, 5).encode());
        h.exchange(&Request::read_fifo(10, FIFO, 2).encode());
        h.exchange(&Request::read_fifo(8, FIFO, 2).encode()); // parity 0 now holds seq 10
        h.settle();
        let accesses = h.accesses;
        h.exchange(&Request::write(9, 0x06, 5).encode());
        h.settle();
        assert_eq!(h.accesses, accesses, "a repeated WRITE must not reach the bus");
        let r = h.responses();
        assert_eq!(r[1], frame(8, 0x84, words(&[1, 2])));
        assert_eq!(r[2], frame(8, 0x84, words(&[1, 2])));
        assert_eq!(r[3], frame(9, 0x83, vec![]));
        assert_eq!(r[4], frame(10, 0x84, words(&[3, 4])));
        assert_eq!(r[5], frame(8, 0x84, words(&[5, 6])));
        assert_eq!(r[6], frame(9, 0x83, vec![]));
    }

    #[test]
    fn pipelined_requests_and_overrun() {
        let mut h = Harness::new(4);
        h.fifo.extend(0..1000);
        h.exchange(&Request::hello(0).encode());
        // Three back to back are all answered (one executing, one queued, one pending) ...
        for seq in 1..=3 {
            h.send(&Request::read_fifo(seq, FIFO, 10).encode());
        }
        h.settle();
        let r = h.responses();
        assert_eq!(r.len(), 4, "{r:?}");
        for (k, f) in r[1..].iter().enumerate() {
            let w: Vec<u32> = (10 * k as u32..10 * k as u32 + 10).collect();
            assert_eq!(f, &frame(k as u8 + 1, 0x84, words(&w)));
        }
        // ... but a burst of five overruns the pending slot: dropped, counted, no reply.
        let before = h.tx.len();
        for seq in 4..=8 {
            h.send(&Request::read(seq, 0x06, 20).encode());
        }
        h.settle();
        let mut d = FrameDecoder::responses();
        let r = d.push(&decode_line(&h.tx[before..], 4));
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(h.uut.bad_frames.val().index(), 5 - r.len());
    }

    #[test]
    fn timeout_garbage_and_framing() {
        let mut h = Harness::new(4);
        // Garbage, then a frame cut short (times out), then a good frame.
        h.send(&[0x00, 0x13, 0xFF]);
        let req = Request::read(3, 0x06, 1).encode();
        h.send(&req[..6]);
        h.rx.extend(std::iter::repeat(true).take(4 * 300));
        h.send(&Request::read(4, 0x06, 1).encode());
        h.settle();
        let r = h.responses();
        assert_eq!(r, vec![err(3, ErrorCode::Timeout, 2), frame(4, 0x82, words(&[0x1000_0006]))]);
        assert_eq!(h.uut.skipped.val().index(), 3);
        assert_eq!(h.uut.bad_frames.val().index(), 1);
    }

    #[test]
    fn the_bit_period_changes_after_the_reply() {
        let mut h = Harness::new(8);
        h.send(&Request::read(1, 0x06, 1).encode());
        h.settle();
        h.uut.uart_div.next = 5u64.into();
        h.settle();
        h.div = 5;
        let before = h.tx.len();
        h.send(&Request::read(2, 0x07, 1).encode());
        h.settle();
        let mut d = FrameDecoder::responses();
        let r = d.push(&decode_line(&h.tx[before..], 5));
        assert_eq!(r, vec![frame(2, 0x82, words(&[0x1000_0007]))]);
    }
}
