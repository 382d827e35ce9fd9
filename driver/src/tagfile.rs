//! The qkd tag file: a recorded tag stream (`qkd stream` writes it, `qkd replay` reads it),
//! with [`TagWriter`] and [`TagReader`].
//!
//! The file holds the raw 32-bit tag records exactly as read from `TAG_DATA` (the EVENT,
//! EPOCH and LOST records of `hdl/src/tagfmt.rs`, in order), behind a header that says how to
//! interpret them. Records are stored in CRC-checked blocks, so a truncated or damaged file is
//! detected, the damage located to the byte, and every block before it still read.
//!
//! # Format, version 1
//!
//! All integers are little endian. CRC-32 is CRC-32/ISO-HDLC (the zlib/Ethernet CRC:
//! reflected polynomial `0xEDB88320`, initial value and final XOR `0xFFFFFFFF`,
//! `crc32("123456789") = 0xCBF43926`), the CRC of the link protocol (`docs/protocol.md` §2).
//!
//! ## Header (46 + N bytes)
//!
//! | offset | size | type | field |
//! |---|---|---|---|
//! | 0 | 8 | bytes | magic: ASCII `QKDTAGS1` |
//! | 8 | 2 | u16 | format version: 1 (a reader refuses other versions) |
//! | 10 | 2 | u16 | header length H in bytes, = 46 + N: the first block starts at offset H |
//! | 12 | 2 | u16 | channel count of the tagger (the channels the masks can name) |
//! | 14 | 2 | u16 | board code (the `BUILD.BOARD` field: 0 simulator, 1 iCEBreaker, 2 iCE40-HX8K breakout) |
//! | 16 | 8 | u64 | tick rate: tagger clock in Hz (one tick = 1/rate seconds) |
//! | 24 | 4 | u32 | gateware `VERSION` register (major in bits 31:16, minor in 15:0) |
//! | 28 | 4 | u32 | gateware `MAP_HASH` register |
//! | 32 | 8 | u64 | start of the recording: nanoseconds since the UNIX epoch (UTC) |
//! | 40 | 2 | u16 | note length N in bytes (at most [`MAX_NOTE_BYTES`]) |
//! | 42 | N | UTF-8 | note: free-form text (setup, operator, ...) |
//! | 42 + N | 4 | u32 | CRC-32 of bytes 0 to 41 + N |
//!
//! ## Blocks, from offset H to the end of the file
//!
//! A data block of K records (1 ≤ K ≤ [`MAX_BLOCK_RECORDS`]; the writer makes blocks of
//! [`BLOCK_RECORDS`] and a shorter last one), 8 + 4K bytes:
//!
//! | offset | size | type | field |
//! |---|---|---|---|
//! | 0 | 4 | u32 | record count K |
//! | 4 | 4K | u32 × K | the tag records, in stream order |
//! | 4 + 4K | 4 | u32 | CRC-32 of bytes 0 to 3 + 4K of the block (count and records) |
//!
//! The last block is the **end block**, 16 bytes, written when the recording ends cleanly:
//!
//! | offset | size | type | field |
//! |---|---|---|---|
//! | 0 | 4 | u32 | 0 (marks the end block) |
//! | 4 | 8 | u64 | total records in the file's data blocks |
//! | 12 | 4 | u32 | CRC-32 of bytes 0 to 11 of the block |
//!
//! Nothing follows the end block. A file without one was cut short (the recording process
//! was killed, the disk filled); its complete blocks are still valid.
//!
//! Records are not reinterpreted: the time of an EVENT is `epoch << 22 | fine` ticks with the
//! epoch from the preceding EPOCH record ([`qkd_hdl::tagfmt::StreamDecoder`] does this), and
//! the first record of a recording is an EPOCH record when the recording started with the
//! stream. Divide a time in ticks by the tick rate for seconds since the tagger's counter
//! started; add the start time only as an approximate wall-clock reference.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qkd_hdl::protocol::CRC;
use qkd_hdl::regmap;
use qkd_hdl::tagfmt::{Decoded, StreamDecoder, Tag};

use crate::error::{DriverError, Result};
use crate::transport::Hello;

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"QKDTAGS1";
/// The format version this module writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the header without the note (the note's N bytes come on top).
pub const HEADER_FIXED_BYTES: usize = 46;
/// Longest note, in bytes of UTF-8.
pub const MAX_NOTE_BYTES: usize = 4096;
/// Records per block the writer makes (64 Ki records, 256 KiB).
pub const BLOCK_RECORDS: usize = 1 << 16;
/// Most records a reader accepts in one block (a larger count is taken as damage).
pub const MAX_BLOCK_RECORDS: usize = 1 << 20;

/// Offset of the note length in the header; the note follows it.
const NOTE_LEN_OFFSET: usize = 40;
/// Bytes of the end block.
const END_BLOCK_BYTES: usize = 16;

/// What a tag file says about its recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFileHeader {
    /// Tagger clock, in Hz (ticks per second).
    pub tick_hz: u64,
    /// Tagger channels.
    pub channels: u16,
    /// Board code (`BUILD.BOARD`: 0 simulator, 1 iCEBreaker, 2 iCE40-HX8K breakout).
    pub board: u16,
    /// Gateware `VERSION` register.
    pub gateware_version: u32,
    /// Gateware `MAP_HASH` register.
    pub map_hash: u32,
    /// Start of the recording, in nanoseconds since the UNIX epoch.
    pub start_unix_ns: u64,
    /// Free-form note, at most [`MAX_NOTE_BYTES`] bytes of UTF-8.
    pub note: String,
}

fn build_field(build: u32, name: &str) -> u32 {
    regmap::BUILD.fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("BUILD has a {name} field")).get(build)
}

impl TagFileHeader {
    /// The header for a recording starting now from the device that answered `hello`: the
    /// channel count, board code and tick rate come from its `BUILD` register.
    pub fn from_hello(hello: &Hello, note: impl Into<String>) -> Self {
        TagFileHeader {
            tick_hz: build_field(hello.build, "CLOCK") as u64 * 100_000,
            channels: build_field(hello.build, "CHANNELS") as u16,
            board: build_field(hello.build, "BOARD") as u16,
            gateware_version: hello.version,
            map_hash: hello.map_hash,
            start_unix_ns: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
            note: note.into(),
        }
    }

    /// The start of the recording as a wall-clock time.
    pub fn start_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.start_unix_ns)
    }

    /// Length of the encoded header, in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_FIXED_BYTES + self.note.len()
    }

    /// The header's bytes (the note must fit [`MAX_NOTE_BYTES`]).
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.encoded_len());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.encoded_len() as u16).to_le_bytes());
        b.extend_from_slice(&self.channels.to_le_bytes());
        b.extend_from_slice(&self.board.to_le_bytes());
        b.extend_from_slice(&self.tick_hz.to_le_bytes());
        b.extend_from_slice(&self.gateware_version.to_le_bytes());
        b.extend_from_slice(&self.map_hash.to_le_bytes());
        b.extend_from_slice(&self.start_unix_ns.to_le_bytes());
        debug_assert_eq!(b.len(), NOTE_LEN_OFFSET);
        b.extend_from_slice(&(self.note.len() as u16).to_le_bytes());
        b.extend_from_slice(self.note.as_bytes());
        let crc = CRC.checksum(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }
}

fn tag_error(path: &Path, reason: impl Into<String>) -> DriverError {
    DriverError::TagFile { path: path.to_path_buf(), reason: reason.into() }
}

fn io_error(path: &Path, source: std::io::Error) -> DriverError {
    DriverError::Io { what: format!("tag file {}", path.display()), source }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Writes a tag file: a header, then blocks of records, then the end block.
pub struct TagWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Records not yet in a block (fewer than [`BLOCK_RECORDS`]).
    pending: Vec<u32>,
    /// The bytes of one block, reused.
    scratch: Vec<u8>,
    written: u64,
    finished: bool,
}

impl TagWriter {
    /// Creates (or truncates) `path` and writes `header`.
    pub fn create(path: &Path, header: &TagFileHeader) -> Result<TagWriter> {
        if header.note.len() > MAX_NOTE_BYTES {
            return Err(tag_error(path, format!("the note is {} bytes, at most {MAX_NOTE_BYTES} fit", header.note.len())));
        }
        let file = File::create(path).map_err(|e| io_error(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header.encode()).map_err(|e| io_error(path, e))?;
        Ok(TagWriter {
            path: path.to_path_buf(),
            out,
            pending: Vec::with_capacity(BLOCK_RECORDS),
            scratch: Vec::with_capacity(8 + 4 * BLOCK_RECORDS),
            written: 0,
            finished: false,
        })
    }

    /// Appends `records` (raw `TAG_DATA` words); full blocks go to the file as they fill.
    pub fn write_records(&mut self, records: &[u32]) -> Result<()> {
        let mut rest = records;
        if !self.pending.is_empty() {
            let take = (BLOCK_RECORDS - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == BLOCK_RECORDS {
                self.write_pending()?;
            }
        }
        while rest.len() >= BLOCK_RECORDS {
            self.write_block(&rest[..BLOCK_RECORDS])?;
            rest = &rest[BLOCK_RECORDS..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn write_block(&mut self, records: &[u32]) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for r in records {
            self.scratch.extend_from_slice(&r.to_le_bytes());
        }
        let crc = CRC.checksum(&self.scratch);
        self.scratch.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.scratch).map_err(|e| io_error(&self.path, e))?;
        self.written += records.len() as u64;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let r = self.write_block(&pending);
        self.pending = pending;
        self.pending.clear();
        r
    }

    /// Writes the records held so far as a (short) block and hands everything to the OS, so
    /// a reader sees them; the file has no end block until [`TagWriter::finish`].
    pub fn flush(&mut self) -> Result<()> {
        self.write_pending()?;
        self.out.flush().map_err(|e| io_error(&self.path, e))
    }

    /// Records accepted so far.
    pub fn records(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn finish_inner(&mut self) -> Result<u64> {
        self.finished = true;
        self.write_pending()?;
        let mut end = Vec::with_capacity(END_BLOCK_BYTES);
        end.extend_from_slice(&0u32.to_le_bytes());
        end.extend_from_slice(&self.written.to_le_bytes());
        let crc = CRC.checksum(&end);
        end.extend_from_slice(&crc.to_le_bytes());
        self.out.write_all(&end).map_err(|e| io_error(&self.path, e))?;
        self.out.flush().map_err(|e| io_error(&self.path, e))?;
        self.out.get_ref().sync_data().map_err(|e| io_error(&self.path, e))?;
        Ok(self.written)
    }

    /// Writes the last block and the end block, flushes to disk; returns the records written.
    pub fn finish(mut self) -> Result<u64> {
        self.finish_inner()
    }
}

impl Drop for TagWriter {
    /// Finishes the file, best effort (errors are lost: call [`TagWriter::finish`] to see them).
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.finish_inner();
        }
    }
}

/// A channel-event loss reported by a LOST record, at its place among the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loss {
    /// Index into [`TagBlock::tags`] of the first tag after the loss.
    pub before_tag: usize,
    /// Channel events lost.
    pub count: u64,
    /// The hardware counter saturated: at least `count` were lost.
    pub saturated: bool,
}

/// The decoded records of one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagBlock {
    /// Tags, in stream order (times in ticks).
    pub tags: Vec<Tag>,
    /// Losses, in stream order.
    pub losses: Vec<Loss>,
}

/// Reads a tag file block by block, checking every CRC.
pub struct TagReader {
    path: PathBuf,
    input: BufReader<File>,
    header: TagFileHeader,
    /// Byte offset of the next block.
    offset: u64,
    /// Byte offset of the block last returned.
    block_offset: u64,
    records: u64,
    /// Set once the end block was read.
    ended: bool,
    /// The error met, returned again by later calls.
    failed: Option<String>,
    decoder: StreamDecoder,
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl TagReader {
    /// Opens `path` and reads and checks its header.
    pub fn open(path: &Path) -> Result<TagReader> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut head = vec![0u8; 12];
        let got = read_full(&mut input, &mut head).map_err(|e| io_error(path, e))?;
        let magic_len = got.min(MAGIC.len());
        if head[..magic_len] != MAGIC[..magic_len] || got == 0 {
            return Err(tag_error(path, "not a qkd tag file (no QKDTAGS1 magic)"));
        }
        if got < 12 {
            return Err(tag_error(path, format!("truncated header: the file is {got} bytes long")));
        }
        let version = le_u16(&head, 8);
        if version != FORMAT_VERSION {
            return Err(tag_error(path, format!("unsupported format version {version} (this reader knows version {FORMAT_VERSION})")));
        }
        let len = le_u16(&head, 10) as usize;
        if !(HEADER_FIXED_BYTES..=HEADER_FIXED_BYTES + MAX_NOTE_BYTES).contains(&len) {
            return Err(tag_error(path, format!("corrupt header: header length {len} is outside {HEADER_FIXED_BYTES}..={}", HEADER_FIXED_BYTES + MAX_NOTE_BYTES)));
        }
        head.resize(len, 0);
        let got = 12 + read_full(&mut input, &mut head[12..]).map_err(|e| io_error(path, e))?;
        if got < len {
            return Err(tag_error(path, format!("truncated header: the file is {got} bytes long, the header {len}")));
        }
        let stored = le_u32(&head, len - 4);
        let computed = CRC.checksum(&head[..len - 4]);
        if stored != computed {
            return Err(tag_error(path, format!("header CRC mismatch (bytes 0 to {}): stored {stored:#010x}, computed {computed:#010x}", len - 5)));
        }
        let note_len = le_u16(&head, NOTE_LEN_OFFSET) as usize;
        if HEADER_FIXED_BYTES + note_len != len {
            return Err(tag_error(path, format!("corrupt header: note length {note_len} does not match header length {len}")));
        }
        let note = std::str::from_utf8(&head[NOTE_LEN_OFFSET + 2..NOTE_LEN_OFFSET + 2 + note_len])
            .map_err(|e| tag_error(path, format!("the note is not UTF-8: {e}")))?
            .to_string();
        let header = TagFileHeader {
            channels: le_u16(&head, 12),
            board: le_u16(&head, 14),
            tick_hz: le_u64(&head, 16),
            gateware_version: le_u32(&head, 24),
            map_hash: le_u32(&head, 28),
            start_unix_ns: le_u64(&head, 32),
            note,
        };
        Ok(TagReader {
            path: path.to_path_buf(),
            input,
            header,
            offset: len as u64,
            block_offset: len as u64,
            records: 0,
            ended: false,
            failed: None,
            decoder: StreamDecoder::new(),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &TagFileHeader {
        &self.header
    }

    /// Records returned so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Byte offset in the file of the block [`TagReader::next_block`] returned last.
    pub fn block_offset(&self) -> u64 {
        self.block_offset
    }

    fn fail(&mut self, reason: String) -> DriverError {
        self.failed = Some(reason.clone());
        tag_error(&self.path, reason)
    }

    /// The records of the next block; `None` after the end block. A damaged block, a
    /// truncated file or a missing end block is an error naming the byte offset (and
    /// returned again by every later call); the blocks before it were returned intact.
    pub fn next_block(&mut self) -> Result<Option<Vec<u32>>> {
        if let Some(reason) = &self.failed {
            return Err(tag_error(&self.path, reason.clone()));
        }
        if self.ended {
            return Ok(None);
        }
        let at = self.offset;
        let intact = self.records;
        let mut count = [0u8; 4];
        let got = read_full(&mut self.input, &mut count).map_err(|e| io_error(&self.path, e))?;
        if got == 0 {
            return Err(self.fail(format!(
                "ends at byte {at} without an end block (the recording was interrupted); the {intact} records before it are intact"
            )));
        }
        if got < 4 {
            return Err(self.fail(format!(
                "truncated at byte {}: block header at byte {at} ends early; the {intact} records before it are intact",
                at + got as u64
            )));
        }
        let k = u32::from_le_bytes(count) as usize;
        if k == 0 {
            return self.end_block(at, count).map(|()| None);
        }
        if k > MAX_BLOCK_RECORDS {
            return Err(self.fail(format!(
                "corrupt block header at byte {at}: {k} records, more than {MAX_BLOCK_RECORDS}; the {intact} records before it are intact"
            )));
        }
        let mut body = vec![0u8; 4 * k + 4];
        let got = read_full(&mut self.input, &mut body).map_err(|e| io_error(&self.path, e))?;
        if got < body.len() {
            return Err(self.fail(format!(
                "truncated at byte {}: block of {k} records at byte {at} ends early; the {intact} records before it are intact",
                at + 4 + got as u64
            )));
        }
        let stored = le_u32(&body, 4 * k);
        let mut digest = CRC.digest();
        digest.update(&count);
        digest.update(&body[..4 * k]);
        let computed = digest.finalize();
        if stored != computed {
            return Err(self.fail(format!(
                "CRC mismatch in the block of {k} records at byte {at} (stored {stored:#010x}, computed {computed:#010x}); the {intact} records before it are intact"
            )));
        }
        self.block_offset = at;
        self.offset = at + 8 + 4 * k as u64;
        self.records += k as u64;
        Ok(Some(body[..4 * k].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    /// Reads and checks the end block at `at` (its count field already read).
    fn end_block(&mut self, at: u64, count: [u8; 4]) -> Result<()> {
        let intact = self.records;
        let mut rest = [0u8; END_BLOCK_BYTES - 4];
        let got = read_full(&mut self.input, &mut rest).map_err(|e| io_error(&self.path, e))?;
        if got < rest.len() {
            return Err(self.fail(format!(
                "truncated at byte {}: end block at byte {at} ends early; the {intact} records before it are intact",
                at + 4 + got as u64
            )));
        }
        let mut digest = CRC.digest();
        digest.update(&count);
        digest.update(&rest[..8]);
        let computed = digest.finalize();
        let stored = le_u32(&rest, 8);
        if stored != computed {
            return Err(self.fail(format!(
                "CRC mismatch in the end block at byte {at} (stored {stored:#010x}, computed {computed:#010x}); the {intact} records before it are intact"
            )));
        }
        let total = le_u64(&rest, 0);
        if total != intact {
            return Err(self.fail(format!("the end block at byte {at} counts {total} records, the blocks before it hold {intact}")));
        }
        let mut extra = [0u8; 1];
        if read_full(&mut self.input, &mut extra).map_err(|e| io_error(&self.path, e))? != 0 {
            return Err(self.fail(format!("unexpected data after the end block, at byte {}", at + END_BLOCK_BYTES as u64)));
        }
        self.ended = true;
        Ok(())
    }

    /// The blocks that follow, as an iterator (stops after the first error).
    pub fn blocks(&mut self) -> impl Iterator<Item = Result<Vec<u32>>> + '_ {
        let mut stop = false;
        std::iter::from_fn(move || {
            if stop {
                return None;
            }
            let r = self.next_block().transpose();
            stop = matches!(r, Some(Err(_)) | None);
            r
        })
    }

    /// Every remaining record (for files that fit in memory).
    pub fn read_to_end(&mut self) -> Result<Vec<u32>> {
        let mut all = Vec::new();
        while let Some(b) = self.next_block()? {
            all.extend_from_slice(&b);
        }
        Ok(all)
    }

    /// The next block decoded to tags (time in ticks) and losses, continuing the epoch from
    /// the blocks before; `None` after the end block. A record that does not decode (an
    /// EVENT before the first EPOCH, an invalid word) is an error naming its byte offset.
    pub fn next_tags(&mut self) -> Result<Option<TagBlock>> {
        let Some(records) = self.next_block()? else { return Ok(None) };
        let mut block = TagBlock { tags: Vec::with_capacity(records.len()), losses: Vec::new() };
        for (i, &w) in records.iter().enumerate() {
            match self.decoder.push(w) {
                Ok(Decoded::None) => {}
                Ok(Decoded::Tags { tags, count }) => block.tags.extend_from_slice(&tags[..count]),
                Ok(Decoded::Lost { count, saturated }) => {
                    block.losses.push(Loss { before_tag: block.tags.len(), count, saturated })
                }
                Err(e) => {
                    let at = self.block_offset + 4 + 4 * i as u64;
                    return Err(tag_error(&self.path, format!("record at byte {at}: {e}")));
                }
            }
        }
        Ok(Some(block))
    }

    /// The decoder behind [`TagReader::next_tags`]: events decoded, events lost so far.
    pub fn decoder(&self) -> &StreamDecoder {
        &self.decoder
    }
}
