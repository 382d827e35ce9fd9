//! A Verilated board served on a pseudo-terminal: `qkd sim-board` prints the `/dev/pts/N`
//! path, and every `qkd --port /dev/pts/N ...` command (and the testbench suite) talks to the
//! RTL through a real tty, exactly as to a board behind a USB-UART bridge.
//!
//! The board runs continuously (its simulated clock advances whether or not the host talks),
//! bytes from the tty go onto its UART receive line at the line rate, and the bytes it sends
//! go back to the tty. A pty has no baud rate of its own, so the server follows the host's
//! `UART_DIV` writes, as the host's UART follows them on hardware.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use qkd_hdl::protocol::{Cmd, Decoded, FrameDecoder, STATUS_OK_BIT};
use qkd_hdl::regmap;

use crate::error::{DriverError, Result};
use crate::simulated::SimulatedBoard;

/// A simulated board on a pseudo-terminal.
pub struct PtyServer {
    master: File,
    /// Held open so the master never reads EIO between host sessions.
    _slave: File,
    path: PathBuf,
    sim: SimulatedBoard,
    requests: FrameDecoder,
    replies: FrameDecoder,
    /// A `UART_DIV` write seen in the requests: (seq, new divisor), applied after its reply.
    div_change: Option<(u8, u32)>,
    out: Vec<u8>,
}

fn os_err(what: &str) -> DriverError {
    DriverError::Io { what: what.into(), source: std::io::Error::last_os_error() }
}

impl PtyServer {
    /// Opens a new pseudo-terminal for `sim`.
    pub fn open(sim: SimulatedBoard) -> Result<Self> {
        // SAFETY: plain libc calls on a descriptor we own; ptsname_r writes into our buffer.
        // No crate wraps posix_openpt without pulling in far more than these five calls.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            if fd < 0 {
                return Err(os_err("posix_openpt"));
            }
            let master = File::from_raw_fd(fd);
            if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
                return Err(os_err("grantpt/unlockpt"));
            }
            let mut buf = [0 as libc::c_char; 128];
            if libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) != 0 {
                return Err(os_err("ptsname_r"));
            }
            let path = PathBuf::from(std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned());
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| DriverError::NoPort { path: path.display().to_string(), reason: e.to_string() })?;
            // Raw mode until a host opens it and sets its own (no echo, no line editing).
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(slave.as_raw_fd(), &mut t) != 0 {
                return Err(os_err("tcgetattr"));
            }
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t) != 0 {
                return Err(os_err("tcsetattr"));
            }
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) != 0 {
                return Err(os_err("fcntl O_NONBLOCK"));
            }
            Ok(PtyServer {
                master,
                _slave: slave,
                path,
                sim,
                requests: FrameDecoder::requests(),
                replies: FrameDecoder::responses(),
                div_change: None,
                out: Vec::new(),
            })
        }
    }

    /// The tty path a host opens (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the board until `stop` is set, moving bytes between the tty and its UART.
    pub fn serve(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let bytes = &buf[..n];
                    for d in self.requests.push(bytes) {
                        if let Decoded::Frame { seq, code, payload } = d {
                            if code == Cmd::Write as u8 && payload.first() == Some(&regmap::UART_DIV.addr) && payload.len() == 5 {
                                let v = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]) & 0xFFFF;
                                if v >= 8 {
                                    self.div_change = Some((seq, v));
                                }
                            }
                        }
                    }
                    self.sim.board().send(bytes);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: no host has the tty open (cannot happen while we hold the slave).
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(e) => return Err(DriverError::Io { what: format!("pty master of {}", self.path.display()), source: e }),
            }
            self.sim.run(4096);
            let sent = self.sim.board().recv();
            if !sent.is_empty() {
                for d in self.replies.push(&sent) {
                    if let (Decoded::Frame { seq, code, .. }, Some((s, div))) = (d, self.div_change) {
                        if seq == s && code == Cmd::Write as u8 | STATUS_OK_BIT {
                            self.sim.board().set_divisor(div);
                            self.div_change = None;
                        }
                    }
                }
                self.out.extend_from_slice(&sent);
            }
            if !self.out.is_empty() {
                match self.master.write(&self.out) {
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => self.out.clear(),
                    Err(e) => return Err(DriverError::Io { what: format!("pty master of {}", self.path.display()), source: e }),
                }
            }
        }
        Ok(())
    }
}
