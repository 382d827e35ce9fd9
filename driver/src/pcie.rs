//! [`PcieTransport`]: the core's register bus over a PCIe bridge's Linux character devices.
//!
//! A PCIe bridge (an AXI-Lite adapter behind Xilinx XDMA, or a LitePCIe CSR bridge) attaches
//! to the core's register bus (`docs/protocol.md` §3) and exposes it to the host as two
//! files:
//!
//! * a **register file**: the BAR (or the part of it) where register word address `a` is the
//!   little-endian 32-bit word at byte offset `base + 4 * a`;
//! * an optional **stream file**: a card-to-host DMA channel delivering the `TAG_DATA` FIFO as
//!   a byte stream of little-endian 32-bit tag records (`hdl/src/tagfmt.rs`).
//!
//! | bridge | register file | access | stream file |
//! |---|---|---|---|
//! | Xilinx XDMA (`xdma.ko` from Xilinx `dma_ip_drivers`) | `/dev/xdma<N>_user` (the AXI-Lite user BAR) | [`RegisterAccess::Pread`]: the driver serves one 32-bit `pread`/`pwrite` per call at the file offset | `/dev/xdma<N>_c2h_<K>` (AXI-Stream card-to-host channel K) |
//! | LitePCIe, or any bridge without a register driver | `/sys/bus/pci/devices/<domain:bus:dev.fn>/resource0` (BAR 0, as root or with a udev rule) with `base` = the CSR base of the core's bridge from LiteX's `csr.csv` | [`RegisterAccess::Mmap`]: sysfs BAR files of memory BARs can only be mapped, not read | the LitePCIe DMA writer's device (`/dev/litepcie<N>`) if the bitstream routes `TAG_DATA` to it |
//!
//! Register accesses are single 32-bit loads and stores, so a read of a FIFO register pops
//! exactly one word. Over the BAR the bus's "FIFO empty" flag is not visible; an empty FIFO
//! reads as 0, which is how [`PcieTransport::read_fifo`] finds the end of the data
//! (see there for the registers where 0 is a valid word).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use qkd_hdl::regmap::{self, Access};

use crate::error::{DriverError, Result};
use crate::transport::{Hello, LinkStats, Transport};

/// Word addresses on the core's register bus (8-bit addresses).
const ADDRESS_SPACE_WORDS: u64 = 256;

/// How the register file is accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterAccess {
    /// One 4-byte `pread`/`pwrite` per register access at byte offset `base + 4 * addr`
    /// (the XDMA driver's `_user` and `_control` devices; a regular file in tests).
    Pread,
    /// The file is memory-mapped (256 words from `base`) and every access is one volatile
    /// 32-bit load or store (sysfs `resourceN` files of memory BARs, LitePCIe's BAR 0).
    Mmap,
}

/// Which files a [`PcieTransport`] opens, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcieOptions {
    /// The register file (see the module documentation).
    pub regs: PathBuf,
    /// The card-to-host DMA stream carrying `TAG_DATA`, if the bitstream has one.
    pub stream: Option<PathBuf>,
    /// Byte offset of register word 0 in the register file (a multiple of 4).
    pub base: u64,
    /// How the register file is accessed.
    pub access: RegisterAccess,
}

impl PcieOptions {
    /// Register file `regs` at offset 0 accessed with `pread`/`pwrite`, and `stream`.
    pub fn new(regs: impl Into<PathBuf>, stream: Option<PathBuf>) -> Self {
        PcieOptions { regs: regs.into(), stream, base: 0, access: RegisterAccess::Pread }
    }

    /// The Xilinx XDMA driver's files of card `index`: `/dev/xdma<index>_user`, and with
    /// `stream`, `/dev/xdma<index>_c2h_0`.
    pub fn xdma(index: u32, stream: bool) -> Self {
        Self::new(format!("/dev/xdma{index}_user"), stream.then(|| PathBuf::from(format!("/dev/xdma{index}_c2h_0"))))
    }
}

/// The register file, opened.
enum Regs {
    Pread(File),
    Mmap {
        // Keeps the mapping alive; `map` points into it.
        _file: File,
        map: memmap2::MmapRaw,
    },
}

/// The core's register bus over a PCIe bridge's character devices (see the module
/// documentation for the files each bridge provides).
pub struct PcieTransport {
    opts: PcieOptions,
    regs: Regs,
    stream: Option<File>,
    /// Bytes of an incomplete record read from the stream (0 to 3), kept for the next read.
    partial: Vec<u8>,
    stats: LinkStats,
}

/// Which kernel driver (or subsystem) makes `path`, for the message when it is missing.
fn expected_creator(path: &Path) -> &'static str {
    let p = path.to_string_lossy();
    if p.contains("xdma") {
        "the Xilinx XDMA driver creates it (is xdma.ko from Xilinx dma_ip_drivers loaded, and is the card enumerated? see `lspci -d 10ee:`)"
    } else if p.contains("litepcie") {
        "the LitePCIe driver creates it (is litepcie.ko from litepcie/software/kernel loaded, and is the card enumerated?)"
    } else if p.starts_with("/sys/bus/pci") || p.starts_with("/sys/devices") {
        "the kernel's PCI core creates it for an enumerated card (check the address with `lspci`; after loading a bitstream, rescan with `echo 1 > /sys/bus/pci/rescan`)"
    } else {
        "expected a PCIe bridge device file: /dev/xdma<N>_user (Xilinx XDMA driver) or /sys/bus/pci/devices/<address>/resource0 (LitePCIe BAR)"
    }
}

fn open_error(path: &Path, e: std::io::Error) -> DriverError {
    let reason = match e.kind() {
        ErrorKind::NotFound => format!("no such device file; {}", expected_creator(path)),
        ErrorKind::PermissionDenied => "permission denied (run as root, or give your user access with a udev rule)".to_string(),
        _ => e.to_string(),
    };
    DriverError::NoPort { path: path.display().to_string(), reason }
}

impl PcieTransport {
    /// Opens register file `regs` (accessed with `pread`/`pwrite`, word 0 at offset 0) and the
    /// optional DMA stream file `stream` carrying `TAG_DATA`: for XDMA card 0,
    /// `/dev/xdma0_user` and `/dev/xdma0_c2h_0`. See [`PcieTransport::open_with`] for the
    /// other ways.
    pub fn open(regs: &Path, stream: Option<&Path>) -> Result<Self> {
        Self::open_with(PcieOptions::new(regs, stream.map(Path::to_path_buf)))
    }

    /// Opens the files `opts` names: the register file read-write, the stream file read-only
    /// and non-blocking (a pipe or FIFO with nothing in it then reads as "no data yet").
    pub fn open_with(opts: PcieOptions) -> Result<Self> {
        if opts.base % 4 != 0 {
            return Err(DriverError::OutOfRange {
                register: format!("register base offset of {}", opts.regs.display()),
                value: opts.base,
                range: "a multiple of 4 bytes".into(),
            });
        }
        let file = OpenOptions::new().read(true).write(true).open(&opts.regs).map_err(|e| open_error(&opts.regs, e))?;
        let regs = match opts.access {
            RegisterAccess::Pread => Regs::Pread(file),
            RegisterAccess::Mmap => {
                let len = opts.base + 4 * ADDRESS_SPACE_WORDS;
                let map = memmap2::MmapOptions::new()
                    .len(usize::try_from(len).map_err(|_| DriverError::OutOfRange {
                        register: "register base offset".into(),
                        value: opts.base,
                        range: "within the address space".into(),
                    })?)
                    .map_raw(&file)
                    .map_err(|e| DriverError::NoPort { path: opts.regs.display().to_string(), reason: format!("cannot map {len} bytes: {e}") })?;
                Regs::Mmap { _file: file, map }
            }
        };
        let stream = match &opts.stream {
            Some(p) => Some(
                OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(p).map_err(|e| open_error(p, e))?,
            ),
            None => None,
        };
        Ok(PcieTransport { opts, regs, stream, partial: Vec::with_capacity(4), stats: LinkStats::default() })
    }

    /// The files this transport uses.
    pub fn options(&self) -> &PcieOptions {
        &self.opts
    }

    fn io_error(&self, what: &str, source: std::io::Error) -> DriverError {
        DriverError::Io { what: format!("{} ({what})", self.opts.regs.display()), source }
    }

    /// Byte offset of word address `addr` in the register file.
    fn offset(&self, addr: u64) -> u64 {
        self.opts.base + 4 * addr
    }

    /// One 32-bit load from word address `addr`.
    fn load(&mut self, addr: u8) -> Result<u32> {
        let off = self.offset(addr as u64);
        let value = match &self.regs {
            Regs::Pread(f) => {
                let mut b = [0u8; 4];
                f.read_exact_at(&mut b, off).map_err(|e| self.io_error(&format!("read of register 0x{addr:02x}"), e))?;
                u32::from_le_bytes(b)
            }
            Regs::Mmap { map, .. } => {
                // SAFETY: the mapping is `base + 1024` bytes long, `off + 4` is within it for
                // every 8-bit address, and `base` is a multiple of 4 on a page-aligned mapping,
                // so the pointer is in bounds and aligned. Volatile: every load is a bus read
                // (a FIFO pop) that must happen exactly once.
                let v = unsafe { std::ptr::read_volatile(map.as_ptr().add(off as usize).cast::<u32>()) };
                u32::from_le(v)
            }
        };
        self.stats.requests += 1;
        self.stats.rx_bytes += 4;
        Ok(value)
    }

    /// One 32-bit store of `value` to word address `addr`.
    fn store(&mut self, addr: u8, value: u32) -> Result<()> {
        let off = self.offset(addr as u64);
        match &self.regs {
            Regs::Pread(f) => {
                f.write_all_at(&value.to_le_bytes(), off).map_err(|e| self.io_error(&format!("write of register 0x{addr:02x}"), e))?;
            }
            Regs::Mmap { map, .. } => {
                // SAFETY: as in `load`: in bounds and aligned; volatile so the store is one bus
                // write.
                unsafe { std::ptr::write_volatile(map.as_mut_ptr().add(off as usize).cast::<u32>(), value.to_le()) };
            }
        }
        self.stats.requests += 1;
        self.stats.tx_bytes += 4;
        Ok(())
    }

    /// Reads what the stream file has, up to `max` whole records, keeping a trailing partial
    /// record for the next call. One `read` call (one DMA transfer on XDMA).
    fn read_stream(&mut self, max: usize) -> Result<Vec<u32>> {
        let Some(stream) = self.stream.as_mut() else { return Ok(Vec::new()) };
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; 4 * max];
        let have = self.partial.len();
        buf[..have].copy_from_slice(&self.partial);
        let got = loop {
            match stream.read(&mut buf[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break 0,
                Err(e) => {
                    let what = self.opts.stream.as_deref().unwrap_or(Path::new("stream")).display().to_string();
                    return Err(DriverError::Io { what: format!("{what} (DMA stream read)"), source: e });
                }
            }
        };
        self.stats.requests += 1;
        self.stats.rx_bytes += got as u64;
        let total = have + got;
        let whole = total / 4 * 4;
        self.partial.clear();
        self.partial.extend_from_slice(&buf[whole..total]);
        Ok(buf[..whole].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Bytes of an incomplete record held back from the stream (0 to 3).
    pub fn stream_partial_bytes(&self) -> usize {
        self.partial.len()
    }
}

impl Transport for PcieTransport {
    fn describe(&self) -> String {
        let access = match self.opts.access {
            RegisterAccess::Pread => "pread",
            RegisterAccess::Mmap => "mmap",
        };
        let mut s = format!("PCIe registers {} ({access}, base 0x{:x})", self.opts.regs.display(), self.opts.base);
        if let Some(p) = &self.opts.stream {
            s += &format!(", tag stream {}", p.display());
        }
        s
    }

    fn hello(&mut self) -> Result<Hello> {
        Ok(Hello {
            id: self.load(regmap::ID.addr)?,
            version: self.load(regmap::VERSION.addr)?,
            map_hash: self.load(regmap::MAP_HASH.addr)?,
            build: self.load(regmap::BUILD.addr)?,
        })
    }

    fn read(&mut self, addr: u8, count: usize) -> Result<Vec<u32>> {
        if addr as u64 + count as u64 > ADDRESS_SPACE_WORDS {
            return Err(DriverError::OutOfRange {
                register: format!("read of {count} registers from 0x{addr:02x}"),
                value: addr as u64 + count as u64 - 1,
                range: "word addresses 0x00 to 0xff".into(),
            });
        }
        (0..count).map(|i| self.load(addr + i as u8)).collect()
    }

    fn write(&mut self, addr: u8, value: u32) -> Result<()> {
        self.store(addr, value)
    }

    /// Pops up to `max` words from FIFO register `addr`:
    /// * `TAG_DATA` with a stream file open: what the DMA stream has, up to `max` records;
    /// * `TAG_DATA` over the BAR (and any other FIFO register): reads until a word reads 0
    ///   (the FIFO ran empty; 0 is never a tag record) or `max` words came;
    /// * `RNG_DATA`: a choice record can be 0 (class 0, basis Z, value 0, slot 0 mod 2^28), so
    ///   it reads `RNG_LEVEL` first and pops `min(level, max)` words, all valid;
    /// * `HIST_DATA` (never empty; a bin count can be 0): exactly `max` words;
    /// * a register that is not a FIFO: reads it `max` times, as READ_FIFO does on the UART.
    fn read_fifo(&mut self, addr: u8, max: usize) -> Result<Vec<u32>> {
        if addr == regmap::TAG_DATA.addr && self.stream.is_some() {
            return self.read_stream(max);
        }
        let access = regmap::lookup(addr).map(|(r, _)| r.access);
        let mut out = Vec::new();
        if addr == regmap::HIST_DATA.addr || access != Some(Access::Fifo) {
            for _ in 0..max {
                out.push(self.load(addr)?);
            }
        } else if addr == regmap::RNG_DATA.addr {
            let level = self.load(regmap::RNG_LEVEL.addr)? as usize;
            for _ in 0..level.min(max) {
                out.push(self.load(addr)?);
            }
        } else {
            while out.len() < max {
                let w = self.load(addr)?;
                if w == 0 {
                    break;
                }
                out.push(w);
            }
        }
        Ok(out)
    }

    fn pause(&mut self, d: Duration) -> Result<()> {
        std::thread::sleep(d);
        Ok(())
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use qkd_hdl::tagfmt::Record;

    /// A temp regular file of 256 words standing in for the BAR.
    fn bar(words: &[(u8, u32)]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(4 * ADDRESS_SPACE_WORDS).unwrap();
        for &(a, v) in words {
            f.as_file().write_all_at(&v.to_le_bytes(), 4 * a as u64).unwrap();
        }
        f
    }

    fn word_at(f: &File, a: u8) -> u32 {
        word_at_offset(f, 4 * a as u64)
    }

    /// The little-endian word at byte `offset` of the file.
    fn word_at_offset(f: &File, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, offset).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn registers_sit_at_four_times_their_address() {
        let f = bar(&[(0, regmap::ID_VALUE), (1, 0x1_0002), (2, 0xdead_beef), (3, 0x05dc_0105), (0x06, 0x1234_5678)]);
        let mut t = PcieTransport::open(f.path(), None).unwrap();
        let h = t.hello().unwrap();
        assert_eq!(h, Hello { id: regmap::ID_VALUE, version: 0x1_0002, map_hash: 0xdead_beef, build: 0x05dc_0105 });
        assert_eq!(t.read(regmap::SCRATCH.addr, 2).unwrap(), vec![0x1234_5678, 0]);
        t.write(regmap::COINC_GATE.addr, 0xa1b2_c3d4).unwrap();
        assert_eq!(word_at(f.as_file(), regmap::COINC_GATE.addr), 0xa1b2_c3d4);
        // Little endian on the file.
        let mut b = [0u8; 4];
        f.as_file().read_exact_at(&mut b, 4 * regmap::COINC_GATE.addr as u64).unwrap();
        assert_eq!(b, [0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(t.read(regmap::COINC_GATE.addr, 1).unwrap(), vec![0xa1b2_c3d4]);
        let s = t.stats();
        assert_eq!((s.requests, s.rx_bytes, s.tx_bytes), (4 + 2 + 1 + 1, 4 * 7, 4));
        assert!(t.read(0xff, 2).is_err(), "a read past address 0xff is refused");
    }

    #[test]
    fn base_offset_and_mmap_access() {
        let base = 0x800u64;
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(base + 4 * ADDRESS_SPACE_WORDS).unwrap();
        f.as_file().write_all_at(&regmap::ID_VALUE.to_le_bytes(), base).unwrap();
        for access in [RegisterAccess::Pread, RegisterAccess::Mmap] {
            let mut t = PcieTransport::open_with(PcieOptions { regs: f.path().into(), stream: None, base, access }).unwrap();
            assert_eq!(t.hello().unwrap().id, regmap::ID_VALUE, "{access:?}");
            t.write(regmap::SCRATCH.addr, 0x5555_0000 | access as u32).unwrap();
            drop(t);
            assert_eq!(word_at_offset(f.as_file(), base + 4 * regmap::SCRATCH.addr as u64), 0x5555_0000 | access as u32);
        }
        let bad = PcieTransport::open_with(PcieOptions { regs: f.path().into(), stream: None, base: 2, access: RegisterAccess::Pread });
        assert!(matches!(bad, Err(DriverError::OutOfRange { .. })));
    }

    #[test]
    fn fifo_over_the_bar_stops_at_zero_or_max() {
        // A regular file does not pop, so the FIFO register reads the same word every time:
        // `read_fifo` must stop at `max`; once it reads 0 it must stop there.
        let rec = Record::Epoch(7).encode();
        let f = bar(&[(regmap::TAG_DATA.addr, rec)]);
        let mut t = PcieTransport::open(f.path(), None).unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 5).unwrap(), vec![rec; 5]);
        assert_eq!(t.stats().requests, 5);
        f.as_file().write_all_at(&0u32.to_le_bytes(), 4 * regmap::TAG_DATA.addr as u64).unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 5).unwrap(), Vec::<u32>::new());
        assert_eq!(t.stats().requests, 6, "one read of the empty FIFO");
        // HIST_DATA is never empty: bins of 0 count.
        assert_eq!(t.read_fifo(regmap::HIST_DATA.addr, 3).unwrap(), vec![0; 3]);
        // RNG_DATA pops RNG_LEVEL words, zeros included.
        t.write(regmap::RNG_LEVEL.addr, 2).unwrap();
        assert_eq!(t.read_fifo(regmap::RNG_DATA.addr, 10).unwrap(), vec![0; 2]);
        assert_eq!(t.read_fifo(regmap::RNG_DATA.addr, 1).unwrap(), vec![0; 1]);
        t.write(regmap::RNG_LEVEL.addr, 0).unwrap();
        assert_eq!(t.read_fifo(regmap::RNG_DATA.addr, 10).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn stream_keeps_partial_records_across_reads() {
        let f = bar(&[(regmap::TAG_DATA.addr, 0)]);
        let mut s = tempfile::NamedTempFile::new().unwrap();
        let words: Vec<u32> = (1..=9u32).map(|i| Record::Event { mask: 1, time_low: i }.encode()).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut t = PcieTransport::open(f.path(), Some(s.path())).unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 100).unwrap(), Vec::<u32>::new());
        // 6 bytes: one record and half of the next.
        s.write_all(&bytes[..6]).unwrap();
        s.flush().unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 100).unwrap(), words[..1]);
        assert_eq!(t.stream_partial_bytes(), 2);
        // The rest, read 3 records at a time.
        s.write_all(&bytes[6..]).unwrap();
        s.flush().unwrap();
        let mut got = words[..1].to_vec();
        for _ in 0..3 {
            got.extend(t.read_fifo(regmap::TAG_DATA.addr, 3).unwrap());
        }
        assert_eq!(got.len(), 9, "3 records per call after the first");
        assert_eq!(got, words);
        assert_eq!(t.stream_partial_bytes(), 0);
        // Other FIFOs still go over the BAR.
        assert_eq!(t.read_fifo(regmap::HIST_DATA.addr, 2).unwrap(), vec![0, 0]);
        assert_eq!(t.stats().rx_bytes, 36 + 8);
    }

    #[test]
    fn stream_over_a_nonblocking_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("c2h");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let f = bar(&[]);
        let mut t = PcieTransport::open(f.path(), Some(&fifo)).unwrap();
        let mut w = OpenOptions::new().write(true).open(&fifo).unwrap();
        // Empty, with a writer: no data, no blocking.
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 8).unwrap(), Vec::<u32>::new());
        let words = [Record::Epoch(1).encode(), Record::Event { mask: 3, time_low: 9 }.encode()];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        w.write_all(&bytes[..7]).unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 8).unwrap(), words[..1]);
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 8).unwrap(), Vec::<u32>::new());
        w.write_all(&bytes[7..]).unwrap();
        assert_eq!(t.read_fifo(regmap::TAG_DATA.addr, 8).unwrap(), words[1..]);
    }

    #[test]
    fn missing_files_say_which_driver_makes_them() {
        let Err(e) = PcieTransport::open(Path::new("/nonexistent/xdma7_user"), None) else { panic!("opened a missing file") };
        let msg = e.to_string();
        assert!(matches!(e, DriverError::NoPort { .. }), "{msg}");
        assert!(msg.contains("/nonexistent/xdma7_user") && msg.contains("XDMA driver"), "{msg}");
        let f = bar(&[]);
        let Err(e) = PcieTransport::open(f.path(), Some(Path::new("/nonexistent/litepcie0"))) else { panic!("opened a missing stream") };
        assert!(e.to_string().contains("LitePCIe driver"), "{e}");
    }
}
