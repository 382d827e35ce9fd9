//! Host-side link benchmarks (issue 4 §5).
//!
//! * `decode`: the host's decoding of a tag stream as it arrives on the wire — READ_FIFO
//!   response frames of 255 records each, split into frames with their CRC checked
//!   (`FrameDecoder`), turned into words and then into 64-bit tags (`StreamDecoder`). Its
//!   baseline is the CRC alone over the same bytes (the least any frame decoder must do), so
//!   `decode/frames_to_tags` ÷ `decode/crc_only` is the cost of everything else. The line rate
//!   of the real link (3 Mbaud = 300 kB/s) is the figure it must beat by a wide margin.
//! * `stream`: end-to-end tag streaming from the Verilated board: the framed link over the
//!   board's UART pins (18.75 Mbaud in simulation), the test signal at 1 MHz per channel,
//!   `Device::read_tags` until 2 000 records have arrived. Printed after it: simulated line
//!   time against wall time (how much slower than real time the RTL simulation streams).
//!
//! `cargo bench -p qkd-driver --bench link`

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use qkd_driver::device::{Ctrl, Device, TestSignal};
use qkd_driver::simulated::sim_link;
use qkd_hdl::protocol::{Cmd, FrameDecoder, Response, CRC};
use qkd_hdl::tagfmt::{Record, StreamDecoder, Tag};
use qkd_sim::board::VerilatedBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Response frames carrying `frames × 255` realistic records: an EPOCH record, then EVENT
/// records with increasing fine times and random channel masks.
fn wire_bytes(frames: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::new();
    let mut words = vec![Record::Epoch(0).encode()];
    let mut t = 0u32;
    let mut epoch = 0u32;
    for seq in 0..frames {
        while words.len() < 255 {
            t += rng.gen_range(1..2000);
            if t >= (1 << 22) - 1 {
                // A new epoch, as the gateware writes when the fine time wraps.
                epoch += 1;
                words.push(Record::Epoch(epoch).encode());
                t = 0;
                continue;
            }
            words.push(Record::Event { mask: 1 << rng.gen_range(0..4), time_low: t }.encode());
        }
        let payload: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.extend(Response { seq: seq as u8, status: Cmd::ReadFifo as u8 | 0x80, payload }.encode());
        words.clear();
    }
    out
}

fn decode(c: &mut Criterion) {
    let bytes = wire_bytes(400);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("frames_to_tags", |b| {
        let mut tags: Vec<Tag> = Vec::with_capacity(120_000);
        b.iter(|| {
            let mut frames = FrameDecoder::responses();
            let mut stream = StreamDecoder::new();
            tags.clear();
            // Arrives in 4 KiB reads, as from a serial port.
            for chunk in bytes.chunks(4096) {
                for f in frames.push(chunk) {
                    if let qkd_hdl::protocol::Decoded::Frame { payload, .. } = f {
                        let words: Vec<u32> =
                            payload.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                        stream.push_all(&words, &mut tags).expect("a valid stream");
                    }
                }
            }
            black_box(tags.len())
        })
    });
    g.bench_function("crc_only", |b| b.iter(|| black_box(CRC.checksum(black_box(&bytes)))));
    g.finish();
}

/// Opens the Verilated board with the test signal on every detector channel at 1 MHz.
fn streaming_board() -> Device {
    let mut dev = Device::open(Box::new(sim_link(1))).expect("open the Verilated board");
    let n = dev.info().channels;
    dev.set_test_signal(&TestSignal { rate_hz: vec![1e6; n - 1], pairs: None }).expect("test signal");
    let c = dev.ctrl().expect("CTRL");
    dev.set_ctrl(Ctrl { acquire: true, testsig: true, ..c }).expect("start");
    dev
}

/// Reads until `n` records have arrived; returns them.
fn read_records(dev: &mut Device, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        got += dev.read_tags(n - got).expect("read tags").len();
    }
    got
}

fn stream(c: &mut Criterion) {
    const RECORDS: usize = 2000;
    let mut dev = streaming_board();
    let mut g = c.benchmark_group("stream");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("sim_board_read_tags", |b| b.iter(|| black_box(read_records(&mut dev, RECORDS))));
    g.finish();
    // Simulated line time against wall time, over one more read.
    let before = dev.transport().stats();
    let t0 = Instant::now();
    read_records(&mut dev, RECORDS);
    let wall = t0.elapsed().as_secs_f64();
    let after = dev.transport().stats();
    let bits = 10.0 * (after.rx_bytes + after.tx_bytes - before.rx_bytes - before.tx_bytes) as f64;
    let baud = VerilatedBoard::CLOCK_HZ / VerilatedBoard::DEFAULT_DIV as u64;
    let line = bits / baud as f64;
    println!(
        "stream: {RECORDS} records, {:.0} kB on the line = {:.3} ms of link time at {} baud in {:.3} s wall: simulation {:.0}× slower than real time",
        bits / 10.0 / 1e3,
        line * 1e3,
        baud,
        wall,
        wall / line
    );
}

criterion_group!(benches, decode, stream);
criterion_main!(benches);
