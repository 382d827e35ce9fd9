//! The Verilated random basis generator against its reference model, and the statistical
//! tests on 10^6 of its Verilated outputs.

use qkd_hdl::rng_model::{
    apt_cutoff, prob_threshold, rct_cutoff, rng_stats, seed_chunks, BasisRngIn, BasisRngModel, RngRecord,
};
use qkd_sim::verilated::VerilatedBasisRng;
use rand::{Rng, SeedableRng};

fn run(n: usize, thr: (u16, u16, u16), check_model_ticks: usize) -> Vec<RngRecord> {
    let mut v = VerilatedBasisRng::new();
    let mut m = BasisRngModel::default();
    let mut src = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    let mut inp = BasisRngIn {
        rct_cutoff: rct_cutoff(1.0, 40),
        apt_cutoff: apt_cutoff(1.0, 40),
        mix_enable: true,
        thr_z: thr.0,
        thr_c0: thr.1,
        thr_c1: thr.2,
        ..Default::default()
    };
    let mut ticks = 0usize;
    let mut step = |inp: &BasisRngIn, m: &mut BasisRngModel| {
        let a = v.tick(inp);
        if ticks < check_model_ticks {
            assert_eq!(a, m.outputs(), "tick {ticks}");
            m.tick(inp);
        }
        ticks += 1;
        a
    };
    // Fill the entropy pool through the health tests, then reseed with it mixed in.
    loop {
        inp.raw_bit = src.gen();
        inp.raw_valid = true;
        if step(&inp, &mut m).pool_ready {
            break;
        }
    }
    inp.reseed = true;
    step(&inp, &mut m);
    inp.reseed = false;
    // Key and IV, 16 bits per tick, as the core streams them from its register RAM.
    for d in seed_chunks(0x0123_4567_89ab_cdef_fedc, 0x0000_0000_0000_0000_0007) {
        step(&BasisRngIn { seed_valid: true, seed_data: d, ..inp }, &mut m);
    }
    inp.slot = true;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        inp.raw_bit = src.gen();
        inp.raw_valid = src.gen_ratio(1, 16);
        // Back-pressure now and then: the record port must hold its record.
        inp.rec_ready = src.gen_ratio(15, 16);
        let o = step(&inp, &mut m);
        assert!(!o.health_failed, "health test failed on a fair source");
        if o.rec_valid && inp.rec_ready {
            out.push(RngRecord::decode(o.rec_data));
        }
    }
    out
}

#[test]
fn verilated_generator_matches_model_and_passes_statistics_on_a_million_outputs() {
    let thr = (prob_threshold(0.5), prob_threshold(0.5), prob_threshold(0.75));
    // Tick-by-tick equality with the model over the first 200 000 ticks; then 10^6 records.
    let recs = run(1_000_000, thr, 200_000);
    let s = rng_stats(&recs, thr.0, thr.1, thr.2);
    println!("{s:?}");
    assert!(s.failures().is_empty(), "{:?}", s.failures());
}
