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


/// The clock-domain crossings of the core, end to end through the UART: detector pulses at
/// random (bursts of one every 3 ticks, pauses, pairs on several channels) are tagged while
/// the host pops TAG_DATA, and every pulse comes back as exactly one tag, in order, with its
/// tick spacing, at the boards' 2:1 ratio, at non-integer ratios, and with the control clock
/// faster than the tick. Configuration writes (CHAN_ENABLE, DEAD_TIME, CTRL) cross into the
/// tick domain, and STATUS (TAG_EMPTY, no TAG_LOST) and TAG_LEVEL come back from it.
#[test]
fn every_tag_crosses_once_and_in_order_at_any_clock_ratio() {
    use qkd_hdl::tagfmt::{StreamDecoder, Tag};
    for (tick, ctl) in [(1u64, 2u64), (100, 237), (100, 77)] {
        let mut rng = ChaCha8Rng::seed_from_u64(tick * 1000 + ctl);
        let mut b = VerilatedBoard::with_clock_periods(tick, ctl);
        let mut d = FrameDecoder::responses();
        let mut s = 0u8;
        ok_words(exchange(&mut b, &mut d, &Request::hello(s), 200_000), s, Cmd::Hello);
        s += 1;
        // Configuration into the tick domain: channels 0..3 on, dead time 0, acquiring.
        let wr = |b: &mut VerilatedBoard, d: &mut FrameDecoder, s: &mut u8, addr: u8, v: u32| {
            ok_words(exchange(b, d, &Request::write(*s, addr, v), 200_000), *s, Cmd::Write);
            *s = s.wrapping_add(1);
        };
        wr(&mut b, &mut d, &mut s, regmap::CHAN_ENABLE.addr, 0x0f);
        for c in 0..5 {
            wr(&mut b, &mut d, &mut s, regmap::DEAD_TIME.at(c), 0);
        }
        wr(&mut b, &mut d, &mut s, regmap::CTRL.addr, 1);
        // Pulses: (tick relative to the first, channel mask); channel 4 is disabled and must
        // not appear.
        let mut pins = Vec::new();
        let mut want: Vec<(u64, u8)> = Vec::new();
        // Bursts of up to ~300 tags (more than the crossing's 256: the tagger's FIFO holds the
        // rest), with pauses long enough for the UART to drain them.
        let mut biggest = 0;
        for _ in 0..16 {
            let burst = rng.gen_range(10..150);
            let before = want.len();
            for _ in 0..burst {
                let m: u8 = rng.gen_range(1..32);
                let t = pins.len() as u64;
                want.extend((0..4).filter(|c| m >> c & 1 == 1).map(|c| (t, c)));
                pins.extend([m, 0, 0]);
            }
            biggest = biggest.max(want.len() - before);
            let pause = (want.len() - before) * 450 + rng.gen_range(0..2000);
            pins.extend(std::iter::repeat(0).take(pause));
        }
        assert!(want.len() > 1000, "{} tags", want.len());
        // A burst of this many records within ~450 ticks cannot all be in the crossing (256)
        // and the UART: the crossing pushes back into the tagger's FIFO.
        assert!(biggest > 280, "biggest burst {biggest}");
        // Play the pins while popping tags, one READ_FIFO outstanding at a time.
        let mut recs = Vec::new();
        let mut outstanding = false;
        let mut k = 0;
        let mut idle = 0;
        while k < pins.len() || outstanding || idle < 3 {
            if !outstanding {
                b.send(&Request::read_fifo(s, regmap::TAG_DATA.addr, 64).encode());
                outstanding = true;
            }
            if k < pins.len() {
                let n = (pins.len() - k).min(64);
                b.run_pins(&pins[k..k + n]);
                k += n;
            } else {
                b.run(64);
            }
            for f in d.push(&b.recv()) {
                match f {
                    Decoded::Frame { seq: q, code: 0x84, payload } if q == s => {
                        let got: Vec<u32> =
                            payload.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
                        idle = if got.is_empty() && k == pins.len() { idle + 1 } else { 0 };
                        recs.extend(got);
                        outstanding = false;
                        s = s.wrapping_add(1);
                    }
                    other => panic!("{tick}:{ctl}: unexpected {other:?}"),
                }
            }
        }
        let mut tags: Vec<Tag> = Vec::new();
        let mut dec = StreamDecoder::new();
        dec.push_all(&recs, &mut tags).expect("a valid tag stream");
        assert_eq!(dec.lost(), 0, "{tick}:{ctl}: LOST records");
        let t0 = tags.first().expect("tags").time;
        assert!(tags.windows(2).all(|w| w[0].time <= w[1].time), "{tick}:{ctl}: tags out of time order");
        let mut got: Vec<(u64, u8)> = tags.iter().map(|t| (t.time - t0, t.channel)).collect();
        got.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got.len(), want_sorted.len(), "{tick}:{ctl}: tag count");
        assert_eq!(got, want_sorted, "{tick}:{ctl}: tags (relative time, channel)");
        // Status from the tick domain: all popped, nothing lost, the tagger's FIFO empty.
        let st = ok_words(exchange(&mut b, &mut d, &Request::read(s, regmap::STATUS.addr, 1), 200_000), s, Cmd::Read)[0];
        s = s.wrapping_add(1);
        assert_eq!(st & (1 << 9 | 1 << 1), 1 << 1, "{tick}:{ctl}: STATUS {st:#x}: TAG_EMPTY, no TAG_LOST");
        let lvl = ok_words(exchange(&mut b, &mut d, &Request::read(s, regmap::TAG_LEVEL.addr, 1), 200_000), s, Cmd::Read)[0];
        assert_eq!(lvl, 0, "{tick}:{ctl}: TAG_LEVEL");
        println!("{tick}:{ctl}: {} tags, {} ticks, {} control cycles", got.len(), b.ticks(), b.ctl_cycles());
    }
}
