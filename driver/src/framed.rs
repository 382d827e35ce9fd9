//! The framed UART protocol, host side: [`FramedLink`] runs requests over any
//! [`ByteChannel`] (a serial port, a pseudo-terminal, the Verilated board's UART pins) with
//! sequence numbers, CRC checks, timeouts, resends and up to two requests in flight
//! (`docs/protocol.md` §2 gives the rules it follows).

use std::collections::VecDeque;
use std::time::Duration;

use qkd_hdl::protocol::{self, Cmd, Decoded, ErrorCode, FrameDecoder, MAX_RESPONSE_WORDS, STATUS_ERROR, STATUS_OK_BIT};
use qkd_hdl::regmap;

use crate::error::{DriverError, Result};
use crate::transport::{Hello, LinkStats, StatusWords, Transport};

/// A byte pipe to a device's UART.
pub trait ByteChannel: Send {
    /// What the channel is, for messages.
    fn describe(&self) -> String;
    /// Sends `bytes` (queues them; the line carries them at its own pace).
    fn send(&mut self, bytes: &[u8]) -> Result<()>;
    /// Waits up to `timeout` (device time) for bytes and appends what arrived to `out`;
    /// returns how many arrived (0 when the wait ran out).
    fn recv(&mut self, out: &mut Vec<u8>, timeout: Duration) -> Result<usize>;
    /// The line rate, in bits per second.
    fn baud(&self) -> u32;
    /// Switches the line rate, in bits per second.
    fn set_baud(&mut self, baud: u32) -> Result<()>;
    /// Lets `d` of device time pass.
    fn pause(&mut self, d: Duration) -> Result<()>;
}

/// Most requests a host keeps unanswered (the device queues one behind the one it executes).
pub const WINDOW: usize = 2;

/// One request in flight.
struct InFlight {
    /// Index of the request in its batch.
    index: usize,
    seq: u8,
    cmd: Cmd,
    frame: Vec<u8>,
    attempts: u32,
}

/// The framed protocol over a byte channel.
pub struct FramedLink<C: ByteChannel> {
    ch: C,
    seq: u8,
    dec: FrameDecoder,
    rx: Vec<u8>,
    /// Wait for a reply beyond its own line time.
    timeout: Duration,
    /// Attempts per request (the first send included).
    attempts: u32,
    stats: LinkStats,
}

/// Time the UART takes for `bytes` bytes (10 bits each) at `baud`.
fn line_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 10.0 / baud.max(1) as f64)
}

fn describe(cmd: Cmd, payload: &[u8]) -> String {
    match cmd {
        Cmd::Read | Cmd::ReadFifo | Cmd::Write => {
            let addr = payload.first().copied().unwrap_or(0);
            let name = regmap::lookup(addr).map(|(r, i)| if r.count > 1 { format!("{}[{i}]", r.name) } else { r.name.to_string() });
            format!("{cmd:?} of {} (0x{addr:02x})", name.unwrap_or_else(|| "an unmapped address".into()))
        }
        _ => format!("{cmd:?}"),
    }
}

impl<C: ByteChannel> FramedLink<C> {
    /// A link over `ch`, waiting `timeout` per attempt (beyond the reply's own line time) and
    /// making at most `attempts` attempts per request.
    pub fn new(ch: C, timeout: Duration, attempts: u32) -> Self {
        FramedLink { ch, seq: 0, dec: FrameDecoder::responses(), rx: Vec::new(), timeout, attempts: attempts.max(1), stats: LinkStats::default() }
    }

    /// The channel underneath.
    pub fn channel(&mut self) -> &mut C {
        &mut self.ch
    }

    /// Runs a batch of requests, at most [`WINDOW`] in flight. `next(i)` gives request `i`
    /// (or `None` when there are no more); `keep_going(reply)` is asked after each reply
    /// whether to issue more. Returns the reply payloads indexed by request, each present.
    fn batch(
        &mut self,
        mut next: impl FnMut(usize) -> Option<(Cmd, Vec<u8>)>,
        mut keep_going: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<Vec<u8>>> {
        let mut replies: Vec<Option<Vec<u8>>> = Vec::new();
        let mut flight: VecDeque<InFlight> = VecDeque::new();
        let mut issuing = true;
        let mut rejected: Option<DriverError> = None;
        let mut last_problem = String::from("no reply");
        loop {
            while issuing && flight.len() < WINDOW {
                let index = replies.len();
                let Some((cmd, payload)) = next(index) else {
                    issuing = false;
                    break;
                };
                replies.push(None);
                let seq = self.seq;
                self.seq = self.seq.wrapping_add(1);
                let frame = protocol::encode_frame(protocol::SYNC_REQUEST, seq, cmd as u8, &payload);
                self.ch.send(&frame)?;
                self.stats.requests += 1;
                self.stats.tx_bytes += frame.len() as u64;
                flight.push_back(InFlight { index, seq, cmd, frame, attempts: 1 });
            }
            if flight.is_empty() {
                break;
            }
            let wait = self.timeout + line_time(WINDOW * (protocol::HEADER_BYTES + protocol::MAX_RESPONSE_PAYLOAD + protocol::CRC_BYTES) + 32, self.ch.baud());
            let got = self.ch.recv(&mut self.rx, wait)?;
            self.stats.rx_bytes += got as u64;
            let mut resend: Vec<usize> = Vec::new();
            if got == 0 {
                self.stats.timeouts += 1;
                // Whatever partial frame is held will not complete.
                self.dec.reset();
                last_problem = format!("no reply within {wait:?}");
                resend.extend(0..flight.len());
            } else {
                let frames = self.dec.push(&self.rx);
                self.rx.clear();
                for d in frames {
                    match d {
                        Decoded::Frame { seq, code, payload } => {
                            let Some(k) = flight.iter().position(|f| f.seq == seq) else {
                                // A second reply to a resent request: the first one counted.
                                continue;
                            };
                            if code == STATUS_ERROR {
                                self.stats.device_errors += 1;
                                let ec = payload.first().and_then(|&c| ErrorCode::from_code(c));
                                let what = describe(flight[k].cmd, &flight[k].frame[protocol::HEADER_BYTES..flight[k].frame.len() - protocol::CRC_BYTES]);
                                match ec {
                                    Some(ErrorCode::UnknownCmd) | Some(ErrorCode::BadAddress) => {
                                        let f = flight.remove(k).expect("index in range");
                                        replies[f.index] = Some(Vec::new());
                                        rejected.get_or_insert(DriverError::Rejected { request: what, reason: format!("{:?}", ec.expect("known")) });
                                        issuing = false;
                                    }
                                    // The request was damaged on the way (CRC, length, timeout,
                                    // framing, overrun): send it again.
                                    _ => {
                                        last_problem = format!("device reported {ec:?}");
                                        resend.push(k);
                                    }
                                }
                            } else if code == flight[k].cmd as u8 | STATUS_OK_BIT {
                                // Replies come in request order: older requests still in
                                // flight lost theirs.
                                resend.extend(0..k);
                                let f = flight.remove(k).expect("index in range");
                                if !keep_going(&payload) {
                                    issuing = false;
                                }
                                replies[f.index] = Some(payload);
                            } else {
                                last_problem = format!("reply status 0x{code:02x} to {:?}", flight[k].cmd);
                                self.stats.bad_replies += 1;
                                resend.push(k);
                            }
                        }
                        Decoded::BadCrc { .. } | Decoded::BadLength { .. } => {
                            self.stats.bad_replies += 1;
                            last_problem = "corrupt reply".into();
                            if flight.len() == 1 {
                                resend.push(0);
                            }
                        }
                    }
                }
                self.stats.skipped_bytes = self.dec.skipped;
            }
            resend.sort_unstable();
            resend.dedup();
            // Resend in order; indexes refer to `flight` before removals above, so re-find by seq.
            let seqs: Vec<u8> = resend.iter().filter_map(|&k| flight.get(k).map(|f| f.seq)).collect();
            for s in seqs {
                let Some(k) = flight.iter().position(|f| f.seq == s) else { continue };
                let mut f = flight.remove(k).expect("index in range");
                if f.attempts >= self.attempts {
                    let what = describe(f.cmd, &f.frame[protocol::HEADER_BYTES..f.frame.len() - protocol::CRC_BYTES]);
                    return Err(DriverError::Timeout { request: what, attempts: f.attempts, timeout: wait, last: last_problem });
                }
                f.attempts += 1;
                self.ch.send(&f.frame)?;
                self.stats.requests += 1;
                self.stats.resends += 1;
                self.stats.tx_bytes += f.frame.len() as u64;
                flight.push_back(f);
            }
        }
        if let Some(e) = rejected {
            return Err(e);
        }
        Ok(replies.into_iter().map(|r| r.expect("every request answered")).collect())
    }

    /// One request, its reply payload.
    fn one(&mut self, cmd: Cmd, payload: Vec<u8>) -> Result<Vec<u8>> {
        let mut p = Some((cmd, payload));
        let mut r = self.batch(|_| p.take(), |_| true)?;
        Ok(r.pop().expect("one reply"))
    }
}

fn words(request: &str, payload: &[u8], expect: Option<usize>) -> Result<Vec<u32>> {
    if payload.len() % 4 != 0 || expect.is_some_and(|n| payload.len() != 4 * n) {
        return Err(DriverError::Malformed {
            request: request.into(),
            reason: format!("{} payload bytes, expected {}", payload.len(), expect.map_or("a multiple of 4".into(), |n| (4 * n).to_string())),
        });
    }
    Ok(payload.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

impl<C: ByteChannel> Transport for FramedLink<C> {
    fn describe(&self) -> String {
        self.ch.describe()
    }

    fn hello(&mut self) -> Result<Hello> {
        let w = words("HELLO", &self.one(Cmd::Hello, vec![])?, Some(protocol::HELLO_WORDS))?;
        Ok(Hello { id: w[0], version: w[1], map_hash: w[2], build: w[3] })
    }

    fn read(&mut self, addr: u8, count: usize) -> Result<Vec<u32>> {
        let chunks: Vec<(u8, usize)> = (0..count)
            .step_by(MAX_RESPONSE_WORDS)
            .map(|s| (addr.wrapping_add(s as u8), (count - s).min(MAX_RESPONSE_WORDS)))
            .collect();
        let replies = self.batch(|i| chunks.get(i).map(|&(a, n)| (Cmd::Read, vec![a, n as u8])), |_| true)?;
        let mut out = Vec::with_capacity(count);
        for (r, &(a, n)) in replies.iter().zip(&chunks) {
            out.extend(words(&describe(Cmd::Read, &[a]), r, Some(n))?);
        }
        Ok(out)
    }

    fn write(&mut self, addr: u8, value: u32) -> Result<()> {
        let mut p = vec![addr];
        p.extend_from_slice(&value.to_le_bytes());
        let r = self.one(Cmd::Write, p)?;
        if !r.is_empty() {
            return Err(DriverError::Malformed { request: describe(Cmd::Write, &[addr]), reason: format!("{} payload bytes, expected none", r.len()) });
        }
        Ok(())
    }

    fn read_fifo(&mut self, addr: u8, max: usize) -> Result<Vec<u32>> {
        let mut asked = 0usize;
        let replies = self.batch(
            |_| {
                (asked < max).then(|| {
                    let n = (max - asked).min(MAX_RESPONSE_WORDS);
                    asked += n;
                    (Cmd::ReadFifo, vec![addr, n as u8])
                })
            },
            // A short reply means the FIFO ran empty: stop asking (the request still in
            // flight is collected, so nothing popped is lost).
            |p| p.len() == 4 * MAX_RESPONSE_WORDS,
        )?;
        let mut out = Vec::new();
        for r in &replies {
            out.extend(words(&describe(Cmd::ReadFifo, &[addr]), r, None)?);
        }
        Ok(out)
    }

    fn status(&mut self) -> Result<StatusWords> {
        let w = words("STATUS", &self.one(Cmd::Status, vec![])?, Some(protocol::STATUS_WORDS))?;
        Ok(StatusWords { status: w[0], tag_level: w[1], rng_level: w[2], link: w[3] })
    }

    fn pause(&mut self, d: Duration) -> Result<()> {
        self.ch.pause(d)
    }

    fn uart_divisor_changed(&mut self, div: u32, clock_hz: u64) -> Result<()> {
        self.ch.set_baud((clock_hz / div.max(1) as u64) as u32)
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}
