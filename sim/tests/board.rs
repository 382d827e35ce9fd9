//! The Verilated board through its UART: the protocol end to end, line-rate tag streaming,
//! and robustness against a faulty line.

use qkd_hdl::protocol::{Cmd, Decoded, ErrorCode, FrameDecoder, Request};
use qkd_hdl::regmap;
use qkd_hdl::tagfmt;
use qkd_sim::board::VerilatedBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sends `req` and runs the board until a frame comes back or `limit` ticks pass.
fn exchange(b: &mut VerilatedBoard, dec: &mut FrameDecoder, req: &Request, limit: u64) -> Option<Decoded> {
    b.send(&req.encode());
    let t0 = b.ticks();
    while b.ticks() - t0 < limit {
        b.run(64);
        if let Some(f) = dec.push(&b.recv()).into_iter().next() {
            return Some(f);
        }
    }
    None
}

fn ok_words(f: Option<Decoded>, seq: u8, cmd: Cmd) -> Vec<u32> {
    match f {
        Some(Decoded::Frame { seq: s, code, payload }) if s == seq && code == cmd as u8 | 0x80 => {
            payload.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
        }
        other => panic!("seq {seq} {cmd:?}: unexpected reply {other:?}"),
    }
}

#[test]
fn hello_identifies_the_gateware_and_registers_work() {
    let mut b = VerilatedBoard::new();
    let mut d = FrameDecoder::responses();
    let w = ok_words(exchange(&mut b, &mut d, &Request::hello(0), 100_000), 0, Cmd::Hello);
    assert_eq!(w[0], regmap::ID.reset);
    assert_eq!(w[1], regmap::VERSION.reset);
    assert_eq!(w[2], regmap::REGMAP_HASH);
    ok_words(exchange(&mut b, &mut d, &Request::write(1, regmap::SCRATCH.addr, 0x1234_5678), 100_000), 1, Cmd::Write);
    let w = ok_words(exchange(&mut b, &mut d, &Request::read(2, regmap::SCRATCH.addr, 1), 100_000), 2, Cmd::Read);
    assert_eq!(w, vec![0x1234_5678]);
    match exchange(&mut b, &mut d, &Request::read(3, 0xF0, 1), 100_000) {
        Some(Decoded::Frame { seq: 3, code: 0x7F, payload }) => assert_eq!(payload, vec![ErrorCode::BadAddress as u8, Cmd::Read as u8]),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.framing_errors(), 0);
}

/// Configures the test signal on channels 0..4 at `p16`/65536 pulses per tick each, and starts
/// acquisition.
fn start_test_signal(b: &mut VerilatedBoard, d: &mut FrameDecoder, seq: &mut u8, p16: u32) {
    let mut w = |b: &mut VerilatedBoard, addr: u8, v: u32| {
        let s = *seq;
        *seq = seq.wrapping_add(1);
        ok_words(exchange(b, d, &Request::write(s, addr, v), 100_000), s, Cmd::Write);
    };
    for c in 0..4 {
        w(b, regmap::TS_THRESHOLD.at(c), p16);
    }
    w(b, regmap::TS_CONFIG.addr, 1);
    w(b, regmap::CTRL.addr, 0b101); // ACQUIRE | TESTSIG
}

/// Streams tags with two READ_FIFO requests outstanding; returns (payload bytes, ticks, line
/// byte capacity in those ticks, records).
fn stream(b: &mut VerilatedBoard, d: &mut FrameDecoder, seq: &mut u8, requests: usize) -> (u64, u64, f64, Vec<u32>) {
    let mut records = Vec::new();
    let mut sent = 0;
    let mut answered = 0;
    let mut payload = 0u64;
    let mut t_first = None;
    let mut t_last = 0;
    let div = b.divisor() as f64;
    while answered < requests {
        while sent < requests && sent - answered < 2 {
            b.send(&Request::read_fifo(*seq, regmap::TAG_DATA.addr, 255).encode());
            *seq = seq.wrapping_add(1);
            sent += 1;
        }
        b.run(32);
        let bytes = b.recv();
        if !bytes.is_empty() {
            t_first.get_or_insert(b.ticks());
            t_last = b.ticks();
        }
        for f in d.push(&bytes) {
            match f {
                Decoded::Frame { code: 0x84, payload: p, .. } => {
                    payload += p.len() as u64;
                    records.extend(p.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())));
                    answered += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let ticks = t_last - t_first.unwrap();
    (payload, ticks, ticks as f64 / (10.0 * div), records)
}

#[test]
fn tag_streaming_uses_the_line_at_over_90_percent() {
    let mut b = VerilatedBoard::new();
    let mut d = FrameDecoder::responses();
    let mut seq = 0u8;
    ok_words(exchange(&mut b, &mut d, &Request::hello(seq), 100_000), 0, Cmd::Hello);
    seq += 1;
    // ~4 × 0.02 events per tick: far more than the line carries, so the FIFO never runs dry.
    start_test_signal(&mut b, &mut d, &mut seq, 1300);
    b.run(20_000);
    let (payload, ticks, capacity, records) = stream(&mut b, &mut d, &mut seq, 12);
    let ratio = payload as f64 / capacity;
    println!(
        "streamed {payload} payload bytes in {ticks} ticks at {} ticks/bit: {:.1}% of the 8N1 byte rate ({:.1}% of the raw bit rate)",
        b.divisor(),
        100.0 * ratio,
        80.0 * ratio
    );
    assert!(ratio >= 0.90, "payload is {:.1}% of the line", 100.0 * ratio);
    // The records are a valid tag stream (a LOST record marks where the FIFO overflowed).
    assert!(records.iter().all(|&r| r != 0));
    assert!(records.iter().any(|&r| tagfmt::Record::decode(r).is_ok()));
}

/// Sends requests over a line that corrupts, drops and inserts bytes in both directions; every
/// accepted reply must be correct and no corrupted request may take effect.
#[test]
fn a_faulty_line_never_yields_a_corrupt_frame() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut b = VerilatedBoard::new();
    let mut d = FrameDecoder::responses();
    let mut seq = 0u8;
    ok_words(exchange(&mut b, &mut d, &Request::hello(seq), 100_000), 0, Cmd::Hello);
    seq += 1;
    let mut acked = 0u32; // SCRATCH value after the last acknowledged write
    let mut in_flight: Option<u32> = None;
    let (mut faults, mut retries, mut good) = (0, 0, 0);
    for _ in 0..150 {
        let write = rng.gen_bool(0.5);
        let value: u32 = rng.gen();
        let req = if write { Request::write(seq, regmap::SCRATCH.addr, value) } else { Request::read(seq, regmap::SCRATCH.addr, 1) };
        if write {
            in_flight = Some(value);
        }
        loop {
            let mut bytes = req.encode();
            if rng.gen_bool(0.4) {
                faults += 1;
                match rng.gen_range(0..4) {
                    0 => {
                        let i = rng.gen_range(0..bytes.len());
                        bytes[i] ^= 1 << rng.gen_range(0..8);
                    }
                    1 => {
                        bytes.remove(rng.gen_range(0..bytes.len()));
                    }
                    2 => {
                        let i = rng.gen_range(0..=bytes.len());
                        let junk: Vec<u8> = (0..rng.gen_range(1..6)).map(|_| rng.gen()).collect();
                        bytes.splice(i..i, junk);
                    }
                    _ => {
                        let i = rng.gen_range(0..bytes.len());
                        bytes[i] = rng.gen();
                    }
                }
            }
            b.send(&bytes);
            let t0 = b.ticks();
            let mut reply = None;
            while b.ticks() - t0 < 40_000 && reply.is_none() {
                b.run(64);
                let mut back = b.recv();
                // The reply line is faulty too.
                if !back.is_empty() && rng.gen_bool(0.05) {
                    let i = rng.gen_range(0..back.len());
                    back[i] ^= 1 << rng.gen_range(0..8);
                }
                for f in d.push(&back) {
                    if let Decoded::Frame { seq: s, code, payload } = f {
                        if s == seq && code == req.cmd as u8 | 0x80 {
                            reply = Some(payload);
                        }
                    }
                }
            }
            // Let the line go quiet (a swallowed frame times out in the board), drop leftovers.
            b.run(4_000);
            b.recv();
            d.reset();
            match reply {
                Some(p) => {
                    good += 1;
                    if write {
                        assert!(p.is_empty());
                        acked = value;
                        in_flight = None;
                    } else {
                        let v = u32::from_le_bytes(p[..4].try_into().unwrap());
                        assert!(v == acked || Some(v) == in_flight, "SCRATCH read {v:#x}, expected {acked:#x}");
                    }
                    break;
                }
                None => retries += 1,
            }
        }
        seq = seq.wrapping_add(1);
    }
    // The device counted the frames it rejected.
    let w = ok_words(exchange(&mut b, &mut d, &Request::status(seq), 100_000), seq, Cmd::Status);
    println!("150 requests, {faults} faulty sends, {retries} retries, {good} good replies; device: {} bad frames, {} skipped bytes", w[3] & 0xFFFF, w[3] >> 16);
    assert!(faults > 30 && retries > 0);
}

