//! Layered normalized min-sum decoding in 16-bit fixed point, 16 frames at a time.
//!
//! Written here rather than taken from a crate because no maintained Rust LDPC crate offers
//! syndrome (Slepian–Wolf) decoding with per-bit side information, puncturing and shortening.
//!
//! Speed comes from interleaving: every variable and edge holds one `i16` per *lane*, each
//! lane decoding a different frame of the same code. The per-edge work is then a handful of
//! element-wise operations on `[i16; 16]`, which the compiler turns into one AVX2 instruction
//! each (the AVX2 copy of the loop is selected at run time; SSE2 otherwise). A lane whose
//! frame has converged (or hit the iteration limit) is refilled with the next frame at once,
//! so lanes never idle while others keep iterating. Rayon spreads chunks of frames over cores.
//!
//! Schedule: row-layered (each check updates the posteriors immediately), which needs about
//! half the iterations of flooding. Check update: min-sum scaled by [`ALPHA_NUM`]`/32`.
//! Convergence: a lane is a candidate when, during one iteration, the hard decisions seen by
//! every check satisfied it; candidates are then confirmed with an exact syndrome check.

use super::code::Code;
use rayon::prelude::*;

/// Frames decoded side by side in one register.
const LANES: usize = 16;
type V = [i16; LANES];

/// Magnitude of a known bit (shortened or revealed): saturates the posterior.
pub(crate) const LLR_KNOWN: i16 = 16_383;
/// Bound on posteriors and check messages, so that `posterior - message` never overflows.
const LLR_MAX: i16 = 16_383;
/// Normalisation factor of min-sum, in 1/32 (0.8125).
const ALPHA_NUM: i32 = 26;

/// Channel LLR magnitude of an ordinary key bit. Normalized min-sum is scale-invariant, so on
/// a BSC (all key bits equally reliable) only the ratio to [`LLR_KNOWN`] matters.
pub(crate) const LLR_KEY: i16 = 64;

/// One frame to decode: the prior LLR of every code bit (positive = bit 0 more likely, 0 =
/// unknown, ±[`LLR_KNOWN`] = known) and the syndrome (packed, `m` bits).
pub(crate) struct Job {
    /// Prior LLR per code bit (fixed point, see [`LLR_KEY`]).
    pub llr: Vec<i16>,
    /// Target syndrome, packed LSB-first.
    pub syndrome: Vec<u64>,
}

/// Decodes all jobs (in parallel); `Some(bits)` (packed, `n` bits, matching the syndrome)
/// or `None` after `max_iter` iterations without convergence.
pub(crate) fn decode_all(code: &Code, jobs: &[Job], max_iter: u32) -> Vec<Option<Vec<u64>>> {
    decode_all_with(code, jobs, max_iter, ALPHA_NUM)
}

/// [`decode_all`] with the min-sum normalisation factor `alpha_num / 32`.
pub(crate) fn decode_all_with(code: &Code, jobs: &[Job], max_iter: u32, alpha_num: i32) -> Vec<Option<Vec<u64>>> {
    let mut out: Vec<Option<Vec<u64>>> = vec![None; jobs.len()];
    if jobs.is_empty() {
        return out;
    }
    // One chunk per thread: within a chunk, lanes are refilled as frames finish, so longer
    // chunks keep the registers full.
    let chunk = jobs.len().div_ceil(rayon::current_num_threads().max(1));
    jobs.par_chunks(chunk).zip(out.par_chunks_mut(chunk)).for_each(|(j, o)| decode_chunk(code, j, max_iter, alpha_num, o));
    out
}

fn decode_chunk(code: &Code, jobs: &[Job], max_iter: u32, alpha: i32, out: &mut [Option<Vec<u64>>]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
            // `decode_chunk_avx2`.
            unsafe { decode_chunk_avx2(code, jobs, max_iter, alpha, out) };
            return;
        }
    }
    decode_chunk_impl(code, jobs, max_iter, alpha, out);
}

/// [`decode_chunk_impl`] compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_chunk_avx2(code: &Code, jobs: &[Job], max_iter: u32, alpha: i32, out: &mut [Option<Vec<u64>>]) {
    decode_chunk_impl(code, jobs, max_iter, alpha, out);
}

/// Decoder state for `LANES` frames.
struct Lanes<'a> {
    code: &'a Code,
    /// Posterior per variable and lane.
    post: Vec<V>,
    /// Check-to-variable message per edge and lane.
    msg: Vec<V>,
    /// Syndrome per check and lane, as 0 / -1 masks.
    syn: Vec<V>,
    /// Scratch: extrinsic values of the current row.
    tmp: Vec<V>,
}

#[inline(always)]
fn decode_chunk_impl(code: &Code, jobs: &[Job], max_iter: u32, alpha: i32, out: &mut [Option<Vec<u64>>]) {
    let mut st = Lanes {
        code,
        post: vec![[LLR_KNOWN; LANES]; code.n],
        msg: vec![[0; LANES]; code.edges()],
        syn: vec![[0; LANES]; code.m],
        tmp: vec![[0; LANES]; code.max_row_degree],
    };
    let mut lane_job = [usize::MAX; LANES];
    let mut lane_iter = [0u32; LANES];
    let mut next = 0usize;
    for (lane, slot) in lane_job.iter_mut().enumerate() {
        if next < jobs.len() {
            st.load(lane, &jobs[next]);
            *slot = next;
            next += 1;
        }
    }
    while lane_job.iter().any(|&j| j != usize::MAX) {
        let unsat = st.iterate(alpha);
        let mut candidates = false;
        for lane in 0..LANES {
            if lane_job[lane] != usize::MAX {
                lane_iter[lane] += 1;
                candidates |= unsat[lane] == 0;
            }
        }
        let exact = if candidates { st.exact_unsat() } else { [-1; LANES] };
        for lane in 0..LANES {
            let job = lane_job[lane];
            if job == usize::MAX {
                continue;
            }
            let ok = unsat[lane] == 0 && exact[lane] == 0;
            if ok || lane_iter[lane] >= max_iter {
                out[job] = if ok { Some(st.hard_decision(lane)) } else { None };
                lane_iter[lane] = 0;
                if next < jobs.len() {
                    st.load(lane, &jobs[next]);
                    lane_job[lane] = next;
                    next += 1;
                } else {
                    st.park(lane);
                    lane_job[lane] = usize::MAX;
                }
            }
        }
    }
}

impl Lanes<'_> {
    /// Starts decoding `job` in `lane`.
    fn load(&mut self, lane: usize, job: &Job) {
        for (p, &l) in self.post.iter_mut().zip(&job.llr) {
            p[lane] = l.clamp(-LLR_MAX, LLR_MAX);
        }
        for m in self.msg.iter_mut() {
            m[lane] = 0;
        }
        for (r, s) in self.syn.iter_mut().enumerate() {
            s[lane] = -(((job.syndrome[r / 64] >> (r % 64)) & 1) as i16);
        }
    }

    /// Puts an idle lane in a state that is already a fixed point (all-zero word, zero syndrome).
    fn park(&mut self, lane: usize) {
        for p in self.post.iter_mut() {
            p[lane] = LLR_KNOWN;
        }
        for m in self.msg.iter_mut() {
            m[lane] = 0;
        }
        for s in self.syn.iter_mut() {
            s[lane] = 0;
        }
    }

    /// One layered iteration over all rows. Returns per lane a non-zero value when some
    /// check was unsatisfied by the hard decisions it saw.
    #[inline(always)]
    fn iterate(&mut self, alpha: i32) -> V {
        let code = self.code;
        let mut unsat: V = [0; LANES];
        for r in 0..code.m {
            let (lo, hi) = (code.row_ptr[r] as usize, code.row_ptr[r + 1] as usize);
            let cols = &code.cols[lo..hi];
            let msgs = &mut self.msg[lo..hi];
            let tmp = &mut self.tmp[..hi - lo];
            let mut sign = self.syn[r];
            let mut parity = self.syn[r];
            let mut min1: V = [i16::MAX; LANES];
            let mut min2: V = [i16::MAX; LANES];
            let mut argmin: V = [0; LANES];
            for (j, ((&c, m), t_out)) in cols.iter().zip(msgs.iter()).zip(tmp.iter_mut()).enumerate() {
                let p = &self.post[c as usize];
                let jj = j as i16;
                let mut t: V = [0; LANES];
                for k in 0..LANES {
                    let tk = p[k].wrapping_sub(m[k]);
                    t[k] = tk;
                    parity[k] ^= p[k] >> 15;
                    sign[k] ^= tk >> 15;
                    let a = tk.wrapping_abs();
                    let lt = a < min1[k];
                    min2[k] = if lt { min1[k] } else { min2[k].min(a) };
                    min1[k] = if lt { a } else { min1[k] };
                    argmin[k] = if lt { jj } else { argmin[k] };
                }
                *t_out = t;
            }
            for k in 0..LANES {
                unsat[k] |= parity[k];
                min1[k] = ((min1[k] as i32 * alpha) >> 5).min(LLR_MAX as i32) as i16;
                min2[k] = ((min2[k] as i32 * alpha) >> 5).min(LLR_MAX as i32) as i16;
            }
            for (j, ((&c, m), t)) in cols.iter().zip(msgs.iter_mut()).zip(tmp.iter()).enumerate() {
                let p = &mut self.post[c as usize];
                let jj = j as i16;
                for k in 0..LANES {
                    let mag = if argmin[k] == jj { min2[k] } else { min1[k] };
                    let neg = sign[k] ^ (t[k] >> 15);
                    let v = (mag ^ neg).wrapping_sub(neg);
                    m[k] = v;
                    p[k] = t[k].saturating_add(v).clamp(-LLR_MAX, LLR_MAX);
                }
            }
        }
        unsat
    }

    /// Exact syndrome check of the current hard decisions: non-zero per unsatisfied lane.
    #[inline(always)]
    fn exact_unsat(&self) -> V {
        let code = self.code;
        let mut unsat: V = [0; LANES];
        for r in 0..code.m {
            let mut acc = self.syn[r];
            for &c in code.row(r) {
                let p = &self.post[c as usize];
                for k in 0..LANES {
                    acc[k] ^= p[k] >> 15;
                }
            }
            for k in 0..LANES {
                unsat[k] |= acc[k];
            }
        }
        unsat
    }

    /// Hard decisions of one lane, packed.
    fn hard_decision(&self, lane: usize) -> Vec<u64> {
        let mut words = vec![0u64; self.code.n.div_ceil(64)];
        for (v, p) in self.post.iter().enumerate() {
            words[v / 64] |= u64::from(p[lane] < 0) << (v % 64);
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::ldpc::code;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Reference layered sum-product decoder in f64 (slow; diagnostics only).
    fn sp_decode(c: &Code, llr: &[f64], syn: &[u64], iters: usize) -> bool {
        let mut post = llr.to_vec();
        let mut msg = vec![0f64; c.edges()];
        for _ in 0..iters {
            for r in 0..c.m {
                let (lo, hi) = (c.row_ptr[r] as usize, c.row_ptr[r + 1] as usize);
                let s = if (syn[r / 64] >> (r % 64)) & 1 == 1 { -1.0 } else { 1.0 };
                let t: Vec<f64> = (lo..hi).map(|e| post[c.cols[e] as usize] - msg[e]).collect();
                let th: Vec<f64> = t.iter().map(|x| (x / 2.0).tanh().clamp(-0.999999999999, 0.999999999999)).collect();
                let prod: f64 = th.iter().product::<f64>() * s;
                for (j, e) in (lo..hi).enumerate() {
                    let v = if th[j].abs() > 1e-12 { prod / th[j] } else { 0.0 };
                    let m = 2.0 * v.clamp(-0.999999999999, 0.999999999999).atanh();
                    msg[e] = m;
                    post[c.cols[e] as usize] = t[j] + m;
                }
            }
            let ok = (0..c.m).all(|r| {
                let p = c.row(r).iter().fold(0u64, |a, &v| a ^ u64::from(post[v as usize] < 0.0));
                p == (syn[r / 64] >> (r % 64)) & 1
            });
            if ok {
                return true;
            }
        }
        false
    }

    /// Diagnostic: FER of the mother code (no puncturing) vs efficiency; run with
    /// `cargo test --release -p qkd-host --lib distill::ldpc::decoder::tests::diag -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn diag() {
        let n = 16384;
        let frames = 32;
        let profiles: [(&str, &[(usize, f64)], bool); 1] = [("3-8", &[(3, 0.7), (8, 0.3)], true)];
        let sp = std::env::var("LDPC_DIAG_SP").is_ok();
        for &q in &[0.01f64, 0.03] {
            let h = -q * q.log2() - (1.0 - q) * (1.0 - q).log2();
            for &f in &[1.25f64] {
              for (name, prof, st) in profiles.iter() {
                print!("{name:8} ");
                let m = (f * h * n as f64) as usize;
                let c = if prof.is_empty() { code::build(n, m, 1) } else { code::build_with(n, m, 1, prof, *st) };
                let mut rng = ChaCha8Rng::seed_from_u64(3);
                let jobs: Vec<Job> = (0..frames)
                    .map(|_| {
                        let x: Vec<u64> = (0..n.div_ceil(64)).map(|_| rng.gen()).collect();
                        let syndrome = c.syndrome(&x);
                        let llr = (0..n)
                            .map(|v| {
                                let b = ((x[v / 64] >> (v % 64)) & 1 == 1) ^ rng.gen_bool(q);
                                if b { -LLR_KEY } else { LLR_KEY }
                            })
                            .collect();
                        Job { llr, syndrome }
                    })
                    .collect();
                for &(alpha, iters) in &[(20, 40), (23, 40), (26, 40), (29, 40), (23, 150), (26, 150)] {
                let t = std::time::Instant::now();
                let out = decode_all_with(&c, &jobs, iters, alpha);
                let el = t.elapsed().as_secs_f64();
                let fails = out.iter().filter(|o| o.is_none()).count();
                let l0 = ((1.0 - q) / q).ln();
                let sp_fails = jobs.iter().take(if sp { 8 } else { 0 }).filter(|j| {
                    let llr: Vec<f64> = j.llr.iter().map(|&x| x as f64 / LLR_KEY as f64 * l0).collect();
                    !sp_decode(&c, &llr, &j.syndrome, 60)
                }).count();
                println!("alpha={alpha} iters={iters} q={q} f={f} m={m} edges={} maxdeg={} untainted={} FER={}/{} SP FER={}/8 {:.1} Mbit/s", c.edges(), c.max_row_degree, c.untainted.len(), fails, frames, sp_fails, (frames * n) as f64 / el / 1e6);
                }
              }
            }
        }
    }
}
