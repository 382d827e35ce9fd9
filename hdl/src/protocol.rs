//! The host-link frame protocol: the one definition that the gateware link engine
//! ([`crate::link`]), the simulator and the host all use, with a reference encoder and
//! decoders. The full description for third parties is `docs/protocol.md`.
//!
//! ```text
//! request  (host → device):  5A  seq  cmd     len_lo len_hi  payload[len]  crc32[4]
//! response (device → host):  A5  seq  status  len_lo len_hi  payload[len]  crc32[4]
//! ```
//!
//! * `crc32` is CRC-32/ISO-HDLC (the Ethernet/zlib CRC: reflected polynomial 0xEDB88320,
//!   init and final XOR 0xFFFFFFFF) over `seq` through the last payload byte, sent least
//!   significant byte first. All multi-byte numbers are little endian.
//! * `status` is `cmd | 0x80` on success and [`STATUS_ERROR`] on failure, with the payload
//!   `[error code, received cmd]`.
//! * Requests carry at most [`MAX_REQUEST_PAYLOAD`] bytes, responses at most
//!   [`MAX_RESPONSE_PAYLOAD`] (255 words).
//! * Exactly-once execution: the device keeps the reply to the last request of each `seq`
//!   parity; a request with the same `seq` and `cmd` as that one is answered from the stored
//!   reply and not executed again (so a retried FIFO read loses nothing). [`Cmd::Hello`]
//!   forgets the stored replies. A host keeps at most two requests outstanding and numbers
//!   new requests consecutively.

use crc::{Crc, CRC_32_ISO_HDLC};
use thiserror::Error;

/// First byte of a request frame.
pub const SYNC_REQUEST: u8 = 0x5A;
/// First byte of a response frame.
pub const SYNC_RESPONSE: u8 = 0xA5;
/// Bytes before the payload (sync, seq, cmd/status, len_lo, len_hi).
pub const HEADER_BYTES: usize = 5;
/// Bytes of CRC after the payload.
pub const CRC_BYTES: usize = 4;
/// Largest request payload, in bytes.
pub const MAX_REQUEST_PAYLOAD: usize = 8;
/// Largest number of 32-bit words in one response.
pub const MAX_RESPONSE_WORDS: usize = 255;
/// Largest response payload, in bytes.
pub const MAX_RESPONSE_PAYLOAD: usize = 4 * MAX_RESPONSE_WORDS;
/// `status` of an error response.
pub const STATUS_ERROR: u8 = 0x7F;
/// Bit set in `status` of a success response (`cmd | STATUS_OK_BIT`).
pub const STATUS_OK_BIT: u8 = 0x80;
/// A frame is abandoned (error [`ErrorCode::Timeout`]) after this many UART bit periods
/// without a byte.
pub const TIMEOUT_BIT_PERIODS: u32 = 256;
/// Words of the [`Cmd::Status`] reply.
pub const STATUS_WORDS: usize = 4;
/// Words of the [`Cmd::Hello`] reply.
pub const HELLO_WORDS: usize = 4;

/// The CRC of the protocol (identical polynomial in the gateware's bit-serial CRC).
pub const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Request commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cmd {
    /// Payload none. Forgets the stored replies; replies `ID, VERSION, MAP_HASH, BUILD`.
    Hello = 0x01,
    /// Payload `[addr, count]` (count 1..=255): replies `count` words read from `addr`,
    /// `addr + 1`, ...; an empty FIFO register reads as 0 (never a valid record).
    Read = 0x02,
    /// Payload `[addr, value (4 bytes LE)]`: writes one register; empty reply.
    Write = 0x03,
    /// Payload `[addr, count]` (count 1..=255): pops up to `count` words from the FIFO
    /// register `addr`, stopping early when it runs empty; replies the words popped.
    ReadFifo = 0x04,
    /// Payload none. Replies `STATUS, TAG_LEVEL, RNG_LEVEL, LINK_BAD_FRAMES | LINK_SKIPPED << 16`.
    Status = 0x05,
}

impl Cmd {
    /// The command with code `code`.
    pub fn from_code(code: u8) -> Option<Cmd> {
        Some(match code {
            0x01 => Cmd::Hello,
            0x02 => Cmd::Read,
            0x03 => Cmd::Write,
            0x04 => Cmd::ReadFifo,
            0x05 => Cmd::Status,
            _ => return None,
        })
    }

    /// The payload length this command requires, in bytes.
    pub fn payload_len(self) -> usize {
        match self {
            Cmd::Hello | Cmd::Status => 0,
            Cmd::Read | Cmd::ReadFifo => 2,
            Cmd::Write => 5,
        }
    }
}

/// Error codes of an error response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[repr(u8)]
pub enum ErrorCode {
    /// The frame's CRC did not match.
    #[error("CRC mismatch")]
    BadCrc = 1,
    /// The length is too large or wrong for the command, or a count is 0.
    #[error("bad length or count")]
    BadLength = 2,
    /// Unknown command code.
    #[error("unknown command")]
    UnknownCmd = 3,
    /// The frame stopped (no byte for [`TIMEOUT_BIT_PERIODS`]) before it was complete.
    #[error("frame truncated (timeout)")]
    Timeout = 4,
    /// No register at the address (or a FIFO read of a non-FIFO register).
    #[error("no such register")]
    BadAddress = 5,
    /// A frame arrived while two requests were already waiting; it was dropped.
    #[error("request overrun")]
    Overrun = 6,
    /// A byte inside the frame had no stop bit.
    #[error("UART framing error")]
    Framing = 7,
}

impl ErrorCode {
    /// The error with code `code`.
    pub fn from_code(code: u8) -> Option<ErrorCode> {
        Some(match code {
            1 => ErrorCode::BadCrc,
            2 => ErrorCode::BadLength,
            3 => ErrorCode::UnknownCmd,
            4 => ErrorCode::Timeout,
            5 => ErrorCode::BadAddress,
            6 => ErrorCode::Overrun,
            7 => ErrorCode::Framing,
            _ => return None,
        })
    }
}

/// Encodes a frame: `sync`, `seq`, `code`, length, `payload`, CRC.
pub fn encode_frame(sync: u8, seq: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_BYTES + payload.len() + CRC_BYTES);
    f.extend_from_slice(&[sync, seq, code, payload.len() as u8, (payload.len() >> 8) as u8]);
    f.extend_from_slice(payload);
    let crc = CRC.checksum(&f[1..]);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// A request, as the host builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Sequence number.
    pub seq: u8,
    /// Command.
    pub cmd: Cmd,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Request {
    /// [`Cmd::Hello`].
    pub fn hello(seq: u8) -> Self {
        Request { seq, cmd: Cmd::Hello, payload: vec![] }
    }
    /// [`Cmd::Read`] of `count` words from `addr`.
    pub fn read(seq: u8, addr: u8, count: u8) -> Self {
        Request { seq, cmd: Cmd::Read, payload: vec![addr, count] }
    }
    /// [`Cmd::Write`] of `value` to `addr`.
    pub fn write(seq: u8, addr: u8, value: u32) -> Self {
        let mut payload = vec![addr];
        payload.extend_from_slice(&value.to_le_bytes());
        Request { seq, cmd: Cmd::Write, payload }
    }
    /// [`Cmd::ReadFifo`] of up to `count` words from `addr`.
    pub fn read_fifo(seq: u8, addr: u8, count: u8) -> Self {
        Request { seq, cmd: Cmd::ReadFifo, payload: vec![addr, count] }
    }
    /// [`Cmd::Status`].
    pub fn status(seq: u8) -> Self {
        Request { seq, cmd: Cmd::Status, payload: vec![] }
    }
    /// The frame bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(SYNC_REQUEST, self.seq, self.cmd as u8, &self.payload)
    }
}

/// A response, as the host receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Sequence number (echo of the request's).
    pub seq: u8,
    /// `cmd | 0x80`, or [`STATUS_ERROR`].
    pub status: u8,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Response {
    /// The frame bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(SYNC_RESPONSE, self.seq, self.status, &self.payload)
    }

    /// The error this response reports, if it is an error response: (code, received cmd).
    /// An unknown error code yields `None` for the code.
    pub fn error(&self) -> Option<(Option<ErrorCode>, u8)> {
        (self.status == STATUS_ERROR)
            .then(|| (self.payload.first().and_then(|&c| ErrorCode::from_code(c)), self.payload.get(1).copied().unwrap_or(0)))
    }

    /// The payload as little-endian 32-bit words (a trailing partial word is ignored).
    pub fn words(&self) -> Vec<u32> {
        self.payload.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

/// What a [`FrameDecoder`] found in the byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A frame with a correct CRC: (seq, cmd or status, payload).
    Frame {
        /// Sequence number.
        seq: u8,
        /// Command or status byte.
        code: u8,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A frame whose CRC did not match (its seq and code as received).
    BadCrc {
        /// Sequence number as received.
        seq: u8,
        /// Command or status byte as received.
        code: u8,
    },
    /// A header announced more than the allowed payload.
    BadLength {
        /// Sequence number as received.
        seq: u8,
        /// Command or status byte as received.
        code: u8,
        /// The announced length, in bytes.
        len: usize,
    },
}

/// Splits a byte stream into frames that start with `sync`, resynchronizing after garbage:
/// bytes outside a frame are skipped (and counted); after a bad CRC or length the decoder
/// hunts for the next sync byte *after the bad frame's sync*, so a real frame hidden behind
/// a false start is still found. (The gateware's request parser, which cannot re-scan, hunts
/// after the bad frame's end instead; a host resends anything unanswered.)
#[derive(Debug)]
pub struct FrameDecoder {
    sync: u8,
    max_payload: usize,
    buf: Vec<u8>,
    /// Bytes skipped while hunting for a sync byte.
    pub skipped: u64,
}

impl FrameDecoder {
    /// A decoder for frames starting with `sync` and carrying at most `max_payload` bytes.
    pub fn new(sync: u8, max_payload: usize) -> Self {
        FrameDecoder { sync, max_payload, buf: Vec::new(), skipped: 0 }
    }

    /// A decoder of device responses.
    pub fn responses() -> Self {
        Self::new(SYNC_RESPONSE, MAX_RESPONSE_PAYLOAD)
    }

    /// A decoder of host requests.
    pub fn requests() -> Self {
        Self::new(SYNC_REQUEST, MAX_REQUEST_PAYLOAD)
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets a partial frame (after a timeout), counting its bytes as skipped.
    pub fn reset(&mut self) {
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Adds `bytes` and returns every complete frame (good or bad) now found, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            match self.buf[start..].iter().position(|&b| b == self.sync) {
                None => {
                    self.skipped += (self.buf.len() - start) as u64;
                    start = self.buf.len();
                    break;
                }
                Some(p) => {
                    self.skipped += p as u64;
                    start += p;
                }
            }
            let rest = &self.buf[start..];
            if rest.len() < HEADER_BYTES {
                break;
            }
            let (seq, code) = (rest[1], rest[2]);
            let len = rest[3] as usize | (rest[4] as usize) << 8;
            if len > self.max_payload {
                out.push(Decoded::BadLength { seq, code, len });
                self.skipped += 1;
                start += 1;
                continue;
            }
            let total = HEADER_BYTES + len + CRC_BYTES;
            if rest.len() < total {
                break;
            }
            let crc = u32::from_le_bytes([rest[total - 4], rest[total - 3], rest[total - 2], rest[total - 1]]);
            if CRC.checksum(&rest[1..total - 4]) == crc {
                out.push(Decoded::Frame { seq, code, payload: rest[HEADER_BYTES..HEADER_BYTES + len].to_vec() });
                start += total;
            } else {
                out.push(Decoded::BadCrc { seq, code });
                self.skipped += 1;
                start += 1;
            }
        }
        self.buf.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_ethernet_crc() {
        assert_eq!(CRC.checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn frames_round_trip_through_garbage() {
        let a = Request::write(7, 0x06, 0xdead_beef).encode();
        let b = Request::read(8, 0x00, 4).encode();
        let mut stream = vec![0x00, 0x5A, 0x13, 0xff];
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&[0x5A, 0x5A]);
        stream.extend_from_slice(&b);
        let mut d = FrameDecoder::requests();
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            got.extend(d.push(chunk));
        }
        let frames: Vec<_> = got.iter().filter(|x| matches!(x, Decoded::Frame { .. })).cloned().collect();
        assert_eq!(
            frames,
            vec![
                Decoded::Frame { seq: 7, code: Cmd::Write as u8, payload: vec![6, 0xef, 0xbe, 0xad, 0xde] },
                Decoded::Frame { seq: 8, code: Cmd::Read as u8, payload: vec![0, 4] },
            ]
        );
    }

    #[test]
    fn corrupted_frames_are_rejected() {
        let f = Request::write(1, 2, 3).encode();
        for i in 1..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                let mut d = FrameDecoder::requests();
                let got = d.push(&g);
                assert!(!got.iter().any(|x| matches!(x, Decoded::Frame { .. })), "byte {i} bit {bit}");
            }
        }
    }
}
