//! The Verilated time tagger against the bit-exact reference model (and rust-hdl's simulator).

use qkd_hdl::tagfmt::{Decoded, Record, StreamDecoder, Tag};
use qkd_hdl::tagger_model::{tag_edges, Edge, ReadPort, TaggerConfig, TaggerModel, PIN_TO_TAG_LATENCY};
use qkd_hdl::tagfmt::TIME_LOW_BITS;
use qkd_sim::rusthdl::RustHdlTagger;
use qkd_sim::stimulus::{generate, StimulusParams};
use qkd_sim::verilated::VerilatedTagger;

const CH: usize = VerilatedTagger::CHANNELS;

/// Runs stimulus through the Verilated model and the reference model, tick by tick, with
/// `cfg_at(tick)` applied to both; panics at the first differing tick. Returns the records.
fn compare(stim: &[u8], cfgs: &[(usize, TaggerConfig)]) -> (Vec<u32>, TaggerModel) {
    let mut v = VerilatedTagger::new();
    let mut m = TaggerModel::new(CH, cfgs[0].1);
    v.set_config(&cfgs[0].1);
    let mut next_cfg = 1;
    let mut recs = Vec::new();
    for (t, &s) in stim.iter().enumerate() {
        if next_cfg < cfgs.len() && cfgs[next_cfg].0 == t {
            v.set_config(&cfgs[next_cfg].1);
            m.set_config(cfgs[next_cfg].1);
            next_cfg += 1;
        }
        let (pins, read) = (s & 0x7f, s >> 7 != 0);
        let a = v.step(pins, read);
        let b = m.step(pins, read);
        assert_eq!(a, b, "tick {t}: Verilator {a:?} vs model {b:?}");
        recs.extend(a.popped);
    }
    (recs, m)
}

fn decode(recs: &[u32]) -> (Vec<Tag>, u64) {
    let mut d = StreamDecoder::new();
    let mut tags = Vec::new();
    d.push_all(recs, &mut tags).expect("valid record stream");
    (tags, d.lost())
}

#[test]
fn random_stimulus_million_cycles_bit_exact() {
    let dead = |d: u16| TaggerConfig { dead_time: [d; 8], ..Default::default() };
    let cfgs = [
        (0, dead(0)),
        (300_000, TaggerConfig { falling: 0b01010, ..dead(7) }),
        (600_000, TaggerConfig { enable: 0b10111, ..dead(2) }),
        (900_000, dead(40)),
    ];
    // Moderate rate with reader stalls: the FIFO fills, overflows and recovers many times.
    let p = StimulusParams {
        pulse_prob: 0.03,
        burst_prob: 0.002,
        read_prob: 0.6,
        stall_prob: 0.0004,
        stall_len: 3000,
        ..Default::default()
    };
    let stim = generate(&p, 1_200_000, 11);
    let (recs, m) = compare(&stim, &cfgs);
    let (tags, lost) = decode(&recs);
    assert!(lost > 0, "the stimulus must overflow the FIFO");
    assert!(tags.len() > 50_000, "{} tags", tags.len());
    // Every accepted channel event is either tagged or counted lost (minus those still in
    // flight at the end of the run).
    let in_flight = m.fired() - tags.len() as u64 - lost;
    assert!(in_flight <= 256 * CH as u64, "{in_flight} events unaccounted for");
}

#[test]
fn overflow_accounting_is_exact() {
    // A burst of events with the reader stopped, then a long drain: nothing in flight at the
    // end, so tags + lost must equal the accepted events exactly.
    let mut p = StimulusParams { pulse_prob: 0.05, read_prob: 0.0, ..Default::default() };
    let mut stim = generate(&p, 60_000, 3);
    p.pulse_prob = 0.0;
    p.burst_prob = 0.0;
    p.read_prob = 1.0;
    stim.extend(generate(&p, 20_000, 4));
    let (recs, m) = compare(&stim, &[(0, TaggerConfig::default())]);
    let (tags, lost) = decode(&recs);
    assert!(lost > 1000, "lost {lost}");
    assert_eq!(tags.len() as u64 + lost, m.fired(), "tags {} + lost {lost} != fired {}", tags.len(), m.fired());
    // The LOST records sit after the events that made it into the FIFO.
    let first_lost = recs.iter().position(|&r| matches!(Record::decode(r), Ok(Record::Lost(_)))).unwrap();
    assert!(first_lost >= 200, "LOST record at {first_lost}, before the FIFO could have filled");
}

#[test]
fn no_loss_below_the_drain_rate() {
    // Average event rate well below the drain rate (one record per 2 ticks of reads), with
    // simultaneous bursts: nothing may be lost.
    let p = StimulusParams { pulse_prob: 0.004, burst_prob: 0.001, read_prob: 0.5, ..Default::default() };
    let stim = generate(&p, 400_000, 5);
    let (recs, m) = compare(&stim, &[(0, TaggerConfig::default())]);
    let (tags, lost) = decode(&recs);
    assert_eq!(lost, 0);
    assert!(m.fired() - tags.len() as u64 <= 8, "fired {} tagged {}", m.fired(), tags.len());
}

#[test]
fn simultaneous_events_share_one_record() {
    let mut stim = vec![0x80u8; 100];
    stim[20] |= 0x1f;
    stim[40] |= 0b00101;
    let (recs, _) = compare(&stim, &[(0, TaggerConfig::default())]);
    let events: Vec<Record> =
        recs.iter().map(|&r| Record::decode(r).unwrap()).filter(|r| matches!(r, Record::Event { .. })).collect();
    assert_eq!(
        events,
        vec![
            Record::Event { mask: 0x1f, time_low: 20 + PIN_TO_TAG_LATENCY as u32 },
            Record::Event { mask: 0b00101, time_low: 40 + PIN_TO_TAG_LATENCY as u32 }
        ]
    );
}

#[test]
fn dead_time_is_applied_per_channel() {
    // Channel 0 pulses every 4 ticks, channel 1 every 4 ticks too; only channel 0 is dead for
    // 10 ticks after each event.
    let mut stim = vec![0x80u8; 400];
    for t in (10..300).step_by(4) {
        stim[t] |= 0b11;
    }
    let mut cfg = TaggerConfig::default();
    cfg.dead_time[0] = 10;
    let (recs, _) = compare(&stim, &[(0, cfg)]);
    let (tags, _) = decode(&recs);
    let ch0: Vec<u64> = tags.iter().filter(|t| t.channel == 0).map(|t| t.time).collect();
    let ch1 = tags.iter().filter(|t| t.channel == 1).count();
    assert_eq!(ch1, 73);
    assert!(ch0.windows(2).all(|w| w[1] - w[0] == 12), "{ch0:?}");
}

#[test]
fn rollover_keeps_64_bit_time_across_epochs() {
    // Sparse events over 2.3 epochs, some right at the epoch boundaries.
    let epoch = 1u64 << TIME_LOW_BITS;
    let ticks = (epoch as f64 * 2.3) as usize;
    let mut edge_ticks = vec![5u64, 1000, epoch - 3, epoch - 2 - PIN_TO_TAG_LATENCY, epoch - PIN_TO_TAG_LATENCY, epoch + 7];
    edge_ticks.extend((1..200).map(|k| k * 43_691 + 17));
    edge_ticks.extend([2 * epoch - PIN_TO_TAG_LATENCY - 1, 2 * epoch - PIN_TO_TAG_LATENCY, 2 * epoch + 1]);
    edge_ticks.sort();
    edge_ticks.dedup();
    edge_ticks.retain(|&t| (t as usize) < ticks - 100);
    // Pulses of one tick on channel 2 (edges at least 2 ticks apart).
    edge_ticks.dedup_by(|b, a| *b < *a + 2);
    let mut stim = vec![0x80u8; ticks];
    for &t in &edge_ticks {
        stim[t as usize] |= 1 << 2;
    }
    let (recs, _) = compare(&stim, &[(0, TaggerConfig::default())]);
    let (tags, lost) = decode(&recs);
    assert_eq!(lost, 0);
    let want: Vec<Tag> = edge_ticks.iter().map(|&t| Tag { time: t + PIN_TO_TAG_LATENCY, channel: 2 }).collect();
    assert_eq!(tags, want);
    let epochs = recs.iter().filter(|&&r| matches!(Record::decode(r), Ok(Record::Epoch(_)))).count();
    assert_eq!(epochs, 3, "one EPOCH record per epoch");
    // The fast event-level model gives the same records.
    let edges: Vec<Edge> = edge_ticks.iter().map(|&t| Edge { tick: t, channel: 2 }).collect();
    assert_eq!(tag_edges(CH, &TaggerConfig::default(), &edges, ticks as u64), recs);
}

#[test]
fn fast_model_equals_cycle_model() {
    // Random single-tick pulses (clean edges), reader always on, several dead times.
    let p = StimulusParams { pulse_prob: 0.02, max_width: 1, burst_prob: 0.001, read_prob: 1.0, ..Default::default() };
    let stim = generate(&p, 300_000, 9);
    let mut cfg = TaggerConfig::default();
    cfg.dead_time = [0, 3, 9, 1, 30, 0, 0, 0];
    let (recs, _) = compare(&stim, &[(0, cfg)]);
    let mut edges = Vec::new();
    let mut prev = 0u8;
    for (t, &s) in stim.iter().enumerate() {
        let rise = s & 0x1f & !prev;
        for c in 0..CH {
            if rise & (1 << c) != 0 {
                edges.push(Edge { tick: t as u64, channel: c as u8 });
            }
        }
        prev = s & 0x1f;
    }
    let fast = tag_edges(CH, &cfg, &edges, stim.len() as u64);
    // The cycle model's last few records may still be in flight at the end of the run.
    let n = recs.len();
    assert!(fast.len() >= n && fast.len() <= n + 8, "fast {} vs cycle {n} records", fast.len());
    if let Some(i) = (0..n).find(|&i| fast[i] != recs[i]) {
        panic!("record {i}: fast {:?} vs cycle {:?}", Record::decode(fast[i]), Record::decode(recs[i]));
    }
}

#[test]
fn rust_hdl_simulator_agrees() {
    let p = StimulusParams {
        pulse_prob: 0.05,
        burst_prob: 0.005,
        read_prob: 0.3,
        stall_prob: 0.002,
        stall_len: 1500,
        ..Default::default()
    };
    let stim = generate(&p, 12_000, 21);
    let cfg = TaggerConfig { dead_time: [2, 0, 5, 1, 0, 0, 0, 0], falling: 0b00100, ..Default::default() };
    let mut h = RustHdlTagger::new();
    let mut m = TaggerModel::new(CH, cfg);
    let mut v = VerilatedTagger::new();
    h.set_config(&cfg);
    v.set_config(&cfg);
    let mut pops = 0;
    for (t, &s) in stim.iter().enumerate() {
        let (pins, read) = (s & 0x7f, s >> 7 != 0);
        let a: ReadPort = h.step(pins, read);
        let b = m.step(pins, read);
        let c = v.step(pins, read);
        assert_eq!(a, b, "tick {t}: rust-hdl {a:?} vs model {b:?}");
        assert_eq!(c, b, "tick {t}: Verilator {c:?} vs model {b:?}");
        pops += a.popped.is_some() as usize;
    }
    assert!(pops > 300, "{pops} records");
    let _ = Decoded::None;
}
