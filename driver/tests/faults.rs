//! The framed link over a damaged line, against the Verilated board: corrupted bytes in both
//! directions are caught by the CRC and the requests resent, every value read back exact; a
//! silent line ends in a `Timeout` error naming the request, after the configured attempts.

use std::time::Duration;

use qkd_driver::error::DriverError;
use qkd_driver::framed::{ByteChannel, FramedLink};
use qkd_driver::simulated::{SimChannel, SimulatedBoard, SIM_TIMEOUT};
use qkd_driver::transport::Transport;
use qkd_hdl::regmap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A line between host and board that flips one bit in a byte with probability `p_flip`
/// (each direction), or, when `silent`, delivers nothing from the board at all.
struct FaultyLine {
    inner: SimChannel,
    rng: ChaCha8Rng,
    p_flip: f64,
    silent: bool,
    flipped: u64,
}

impl FaultyLine {
    fn damage(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            if self.rng.gen_bool(self.p_flip) {
                *b ^= 1 << self.rng.gen_range(0..8);
                self.flipped += 1;
            }
        }
    }
}

impl ByteChannel for FaultyLine {
    fn describe(&self) -> String {
        format!("faulty line to the {}", self.inner.describe())
    }
    fn send(&mut self, bytes: &[u8]) -> qkd_driver::error::Result<()> {
        let mut b = bytes.to_vec();
        self.damage(&mut b);
        self.inner.send(&b)
    }
    fn recv(&mut self, out: &mut Vec<u8>, timeout: Duration) -> qkd_driver::error::Result<usize> {
        let mut b = Vec::new();
        let n = self.inner.recv(&mut b, timeout)?;
        if self.silent {
            return Ok(0);
        }
        self.damage(&mut b);
        out.extend_from_slice(&b);
        Ok(n)
    }
    fn baud(&self) -> u32 {
        self.inner.baud()
    }
    fn set_baud(&mut self, baud: u32) -> qkd_driver::error::Result<()> {
        self.inner.set_baud(baud)
    }
    fn pause(&mut self, d: Duration) -> qkd_driver::error::Result<()> {
        self.inner.pause(d)
    }
}

fn link(p_flip: f64, silent: bool, attempts: u32) -> FramedLink<FaultyLine> {
    let line = FaultyLine {
        inner: SimChannel::new(SimulatedBoard::new(1)),
        rng: ChaCha8Rng::seed_from_u64(7),
        p_flip,
        silent,
        flipped: 0,
    };
    FramedLink::new(line, SIM_TIMEOUT, attempts)
}

#[test]
fn corrupted_bytes_are_resent_and_every_value_is_exact() {
    let mut l = link(2e-3, false, 20);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..300 {
        let v: u32 = rng.gen();
        l.write(regmap::SCRATCH.addr, v).unwrap_or_else(|e| panic!("write {i}: {e}"));
        let back = l.read(regmap::SCRATCH.addr, 1).unwrap_or_else(|e| panic!("read {i}: {e}"));
        assert_eq!(back, vec![v], "read-back {i}");
    }
    let s = l.stats();
    let flipped = l.channel().flipped;
    println!("{flipped} bytes damaged; {s:?}");
    assert!(flipped > 10, "the line damaged only {flipped} bytes");
    assert!(s.resends > 0, "nothing was resent: {s:?}");
    assert!(s.bad_replies + s.device_errors + s.timeouts > 0, "no damage was seen: {s:?}");
}

#[test]
fn a_silent_line_times_out_naming_the_request() {
    let mut l = link(0.0, true, 3);
    match l.hello() {
        Err(e @ DriverError::Timeout { attempts: 3, .. }) => {
            let msg = e.to_string();
            assert!(msg.to_lowercase().contains("hello"), "{msg}");
        }
        other => panic!("expected a timeout after 3 attempts, got {other:?}"),
    }
}
