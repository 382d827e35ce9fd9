//! Layered normalized min-sum decoding in 16-bit fixed point, 16 frames at a time.
//!
//! Written here rather than taken from a crate because no maintained Rust LDPC crate offers
//! syndrome (Slepian–Wolf) decoding with per-bit side information, puncturing and shortening.
//!
//! Speed comes from interleaving (structure of arrays): every variable and edge holds one
//! `i16` per *lane*, each lane decoding a different frame of the same code, so the 16 lanes of
//! one edge are one 256-bit vector. The per-edge work is written once, generically over
//! [`Ops`], and instantiated twice: with AVX2 intrinsics (`_mm256_min_epi16`, `_mm256_abs_epi16`,
//! `_mm256_sign_epi16`, `_mm256_adds_epi16`, `_mm256_mulhrs_epi16`, …; chosen at run time with
//! `is_x86_feature_detected!`) and with a portable per-lane version of the same arithmetic,
//! which gives bit-identical results (tested). A lane whose frame has converged (or hit the
//! iteration limit) is refilled with the next frame at once, so lanes never idle while others
//! keep iterating. Rayon spreads chunks of frames over cores.
//!
//! Schedule: row-layered (each check updates the posteriors immediately), which needs about
//! half the iterations of flooding. Check update: min-sum scaled by `alpha/32` (rounded).
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
const ALPHA_NUM: i16 = 26;

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

/// Which implementation of the per-edge arithmetic runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// AVX2 when the CPU has it, else portable.
    Auto,
    /// Portable per-lane code (reference for the AVX2 version; chosen explicitly only by
    /// the tests that compare the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

/// Decodes all jobs (in parallel); `Some(bits)` (packed, `n` bits, matching the syndrome)
/// or `None` after `max_iter` iterations without convergence.
pub(crate) fn decode_all(code: &Code, jobs: &[Job], max_iter: u32) -> Vec<Option<Vec<u64>>> {
    decode_all_with(code, jobs, max_iter, ALPHA_NUM, Backend::Auto).0
}

/// [`decode_all`] with the min-sum normalisation factor `alpha_num / 32` and a backend; also
/// returns the iterations run per job.
pub(crate) fn decode_all_with(code: &Code, jobs: &[Job], max_iter: u32, alpha_num: i16, backend: Backend) -> (Vec<Option<Vec<u64>>>, Vec<u32>) {
    let mut out: Vec<Option<Vec<u64>>> = vec![None; jobs.len()];
    let mut iters = vec![0u32; jobs.len()];
    if jobs.is_empty() {
        return (out, iters);
    }
    // One chunk per thread: within a chunk, lanes are refilled as frames finish, so longer
    // chunks keep the registers full.
    let chunk = jobs.len().div_ceil(rayon::current_num_threads().max(1));
    jobs.par_chunks(chunk)
        .zip(out.par_chunks_mut(chunk))
        .zip(iters.par_chunks_mut(chunk))
        .for_each(|((j, o), it)| decode_chunk(code, j, max_iter, alpha_num, o, it, backend));
    (out, iters)
}

fn decode_chunk(code: &Code, jobs: &[Job], max_iter: u32, alpha: i16, out: &mut [Option<Vec<u64>>], iters: &mut [u32], backend: Backend) {
    #[cfg(target_arch = "x86_64")]
    {
        if backend == Backend::Auto && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
            // `decode_chunk_avx2`.
            unsafe { decode_chunk_avx2(code, jobs, max_iter, alpha, out, iters) };
            return;
        }
    }
    let _ = backend;
    decode_chunk_impl::<Portable>(code, jobs, max_iter, alpha, out, iters);
}

/// [`decode_chunk_impl`] with the AVX2 operations, compiled with AVX2 enabled.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn decode_chunk_avx2(code: &Code, jobs: &[Job], max_iter: u32, alpha: i16, out: &mut [Option<Vec<u64>>], iters: &mut [u32]) {
    decode_chunk_impl::<avx2::Avx2>(code, jobs, max_iter, alpha, out, iters);
}

/// Element-wise operations on 16 lanes of `i16`; both implementations must agree bit for bit.
trait Ops: Copy {
    fn load(v: &V) -> Self;
    fn store(self, v: &mut V);
    fn splat(x: i16) -> Self;
    /// Wrapping subtraction (callers guarantee no overflow).
    fn sub(self, o: Self) -> Self;
    /// Wrapping addition.
    fn add(self, o: Self) -> Self;
    /// Saturating addition.
    fn adds(self, o: Self) -> Self;
    fn abs(self) -> Self;
    fn min(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    /// All-ones where `self > o`.
    fn gt(self, o: Self) -> Self;
    /// All-ones where `self == o`.
    fn eq(self, o: Self) -> Self;
    /// `a` where `mask` is all-ones, else `b`.
    fn select(mask: Self, a: Self, b: Self) -> Self;
    /// `self` negated where `s < 0`, zero where `s == 0`, else `self`.
    fn sign(self, s: Self) -> Self;
    /// `(self · o + 2^14) >> 15`.
    fn mulhrs(self, o: Self) -> Self;
}

/// Portable lanes.
#[derive(Clone, Copy)]
struct Portable(V);

impl Portable {
    #[inline(always)]
    fn map2(self, o: Self, f: impl Fn(i16, i16) -> i16) -> Self {
        let mut r = [0i16; LANES];
        for k in 0..LANES {
            r[k] = f(self.0[k], o.0[k]);
        }
        Portable(r)
    }
}

impl Ops for Portable {
    #[inline(always)]
    fn load(v: &V) -> Self {
        Portable(*v)
    }
    #[inline(always)]
    fn store(self, v: &mut V) {
        *v = self.0;
    }
    #[inline(always)]
    fn splat(x: i16) -> Self {
        Portable([x; LANES])
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.map2(o, i16::wrapping_sub)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.map2(o, i16::wrapping_add)
    }
    #[inline(always)]
    fn adds(self, o: Self) -> Self {
        self.map2(o, i16::saturating_add)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        self.map2(self, |a, _| a.wrapping_abs())
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        self.map2(o, std::cmp::min)
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        self.map2(o, std::cmp::max)
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        self.map2(o, |a, b| a ^ b)
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        self.map2(o, |a, b| a | b)
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self {
        self.map2(o, |a, b| -i16::from(a > b))
    }
    #[inline(always)]
    fn eq(self, o: Self) -> Self {
        self.map2(o, |a, b| -i16::from(a == b))
    }
    #[inline(always)]
    fn select(mask: Self, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|k| if mask.0[k] != 0 { a.0[k] } else { b.0[k] }))
    }
    #[inline(always)]
    fn sign(self, s: Self) -> Self {
        self.map2(s, |a, s| match s.signum() {
            -1 => a.wrapping_neg(),
            0 => 0,
            _ => a,
        })
    }
    #[inline(always)]
    fn mulhrs(self, o: Self) -> Self {
        self.map2(o, |a, b| ((i32::from(a) * i32::from(b) + 0x4000) >> 15) as i16)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 lanes. Every method is `#[inline(always)]` and only ever inlined into
    //! `decode_chunk_avx2`, which is compiled with AVX2 enabled and only called after
    //! `is_x86_feature_detected!("avx2")`.
    use super::{Ops, V};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256i);

    // SAFETY (all `unsafe` blocks below): AVX2 is available (see the module doc); loads and
    // stores go through references to `[i16; 16]`, exactly 32 valid bytes, unaligned access.
    impl Ops for Avx2 {
        #[inline(always)]
        fn load(v: &V) -> Self {
            Avx2(unsafe { _mm256_loadu_si256(v.as_ptr().cast()) })
        }
        #[inline(always)]
        fn store(self, v: &mut V) {
            unsafe { _mm256_storeu_si256(v.as_mut_ptr().cast(), self.0) }
        }
        #[inline(always)]
        fn splat(x: i16) -> Self {
            Avx2(unsafe { _mm256_set1_epi16(x) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_sub_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_add_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn adds(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_adds_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn abs(self) -> Self {
            Avx2(unsafe { _mm256_abs_epi16(self.0) })
        }
        #[inline(always)]
        fn min(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_min_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn max(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_max_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_xor_si256(self.0, o.0) })
        }
        #[inline(always)]
        fn or(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_or_si256(self.0, o.0) })
        }
        #[inline(always)]
        fn gt(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_cmpgt_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn eq(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_cmpeq_epi16(self.0, o.0) })
        }
        #[inline(always)]
        fn select(mask: Self, a: Self, b: Self) -> Self {
            Avx2(unsafe { _mm256_blendv_epi8(b.0, a.0, mask.0) })
        }
        #[inline(always)]
        fn sign(self, s: Self) -> Self {
            Avx2(unsafe { _mm256_sign_epi16(self.0, s.0) })
        }
        #[inline(always)]
        fn mulhrs(self, o: Self) -> Self {
            Avx2(unsafe { _mm256_mulhrs_epi16(self.0, o.0) })
        }
    }
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
fn decode_chunk_impl<O: Ops>(code: &Code, jobs: &[Job], max_iter: u32, alpha: i16, out: &mut [Option<Vec<u64>>], iters: &mut [u32]) {
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
        let unsat = st.iterate::<O>(alpha);
        let mut candidates = false;
        for lane in 0..LANES {
            if lane_job[lane] != usize::MAX {
                lane_iter[lane] += 1;
                candidates |= unsat[lane] >= 0;
            }
        }
        let exact = if candidates { st.exact_unsat::<O>() } else { [-1; LANES] };
        for lane in 0..LANES {
            let job = lane_job[lane];
            if job == usize::MAX {
                continue;
            }
            let ok = unsat[lane] >= 0 && exact[lane] >= 0;
            if ok || lane_iter[lane] >= max_iter {
                out[job] = if ok { Some(st.hard_decision(lane)) } else { None };
                iters[job] = lane_iter[lane];
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

    /// One layered iteration over all rows. Returns per lane a negative value when some
    /// check was unsatisfied by the hard decisions it saw.
    #[inline(always)]
    fn iterate<O: Ops>(&mut self, alpha: i16) -> V {
        let code = self.code;
        let (post, msg, syn, tmp) = (&mut self.post[..], &mut self.msg[..], &self.syn[..], &mut self.tmp[..]);
        let scale = O::splat(alpha * 1024);
        let (one, top, bottom) = (O::splat(1), O::splat(LLR_MAX), O::splat(-LLR_MAX));
        let mut unsat = O::splat(0);
        for r in 0..code.m {
            let (lo, hi) = (code.row_ptr[r] as usize, code.row_ptr[r + 1] as usize);
            let cols = &code.cols[lo..hi];
            let msgs = &mut msg[lo..hi];
            let tmp = &mut tmp[..hi - lo];
            let mut sign = O::load(&syn[r]);
            let mut parity = sign;
            let mut min1 = O::splat(i16::MAX);
            let mut min2 = min1;
            let mut argmin = O::splat(0);
            let mut j = O::splat(0);
            for ((&c, m), t_out) in cols.iter().zip(msgs.iter()).zip(tmp.iter_mut()) {
                let p = O::load(&post[c as usize]);
                // |p|, |m| <= LLR_MAX: no overflow.
                let t = p.sub(O::load(m));
                t.store(t_out);
                parity = parity.xor(p);
                sign = sign.xor(t);
                let a = t.abs();
                let lt = min1.gt(a);
                min2 = min2.min(min1.max(a));
                min1 = min1.min(a);
                argmin = O::select(lt, j, argmin);
                j = j.add(one);
            }
            unsat = unsat.or(parity);
            let m1 = min1.mulhrs(scale).min(top);
            let m2 = min2.mulhrs(scale).min(top);
            let mut j = O::splat(0);
            for ((&c, m), t) in cols.iter().zip(msgs.iter_mut()).zip(tmp.iter()) {
                let t = O::load(t);
                let mag = O::select(argmin.eq(j), m2, m1);
                let v = mag.sign(sign.xor(t).or(one));
                v.store(m);
                t.adds(v).min(top).max(bottom).store(&mut post[c as usize]);
                j = j.add(one);
            }
        }
        let mut out = [0; LANES];
        unsat.store(&mut out);
        out
    }

    /// Exact syndrome check of the current hard decisions: negative per unsatisfied lane.
    #[inline(always)]
    fn exact_unsat<O: Ops>(&self) -> V {
        let code = self.code;
        let mut unsat = O::splat(0);
        for r in 0..code.m {
            let mut acc = O::load(&self.syn[r]);
            for &c in code.row(r) {
                acc = acc.xor(O::load(&self.post[c as usize]));
            }
            unsat = unsat.or(acc);
        }
        let mut out = [0; LANES];
        unsat.store(&mut out);
        out
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
pub(crate) mod tests {
    use super::*;
    use crate::distill::ldpc::code;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Frames of a code with random words, noisy side information at crossover `q` and
    /// `punct` unknown (erased) positions.
    pub(crate) fn bsc_jobs(c: &Code, frames: usize, q: f64, punct: &[u32], seed: u64) -> (Vec<Job>, Vec<Vec<u64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = c.n;
        (0..frames)
            .map(|_| {
                let x: Vec<u64> = (0..n.div_ceil(64)).map(|_| rng.gen()).collect();
                let syndrome = c.syndrome(&x);
                let mut llr: Vec<i16> = (0..n)
                    .map(|v| {
                        let b = ((x[v / 64] >> (v % 64)) & 1 == 1) ^ rng.gen_bool(q);
                        if b { -LLR_KEY } else { LLR_KEY }
                    })
                    .collect();
                for &v in punct {
                    llr[v as usize] = 0;
                }
                (Job { llr, syndrome }, x)
            })
            .unzip()
    }

    #[test]
    fn avx2_and_portable_agree_and_decode() {
        let n = 2048;
        let c = code::build(n, 700, 3);
        // Mixed difficulty: some frames decode quickly, some slowly, some not at all.
        let (mut jobs, words) = bsc_jobs(&c, 24, 0.035, &c.untainted[..40], 5);
        let (hard, _) = bsc_jobs(&c, 8, 0.09, &[], 6);
        jobs.extend(hard);
        let (a, ia) = decode_all_with(&c, &jobs, 40, ALPHA_NUM, Backend::Auto);
        let (p, ip) = decode_all_with(&c, &jobs, 40, ALPHA_NUM, Backend::Portable);
        assert_eq!(a, p, "AVX2 and portable decoders disagree");
        assert_eq!(ia, ip);
        let ok = a[..24].iter().zip(&words).filter(|(o, w)| o.as_ref() == Some(*w)).count();
        assert!(ok >= 20, "only {ok}/24 easy frames decoded");
        assert!(a[24..].iter().any(Option::is_none), "hopeless frames cannot all decode");
        for (o, j) in a.iter().zip(&jobs) {
            if let Some(w) = o {
                assert_eq!(&c.syndrome(w), &j.syndrome, "accepted word with a wrong syndrome");
            }
        }
    }

    /// Diagnostic: FER, iterations and speed of the codes (no puncturing) at several efficiencies
    /// and min-sum factors; run with
    /// `cargo test --release -p qkd-host --lib distill::ldpc::decoder::tests::diag -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn diag() {
        let n: usize = std::env::var("LDPC_DIAG_N").ok().and_then(|s| s.parse().ok()).unwrap_or(16384);
        let frames = 64;
        for &q in &[0.01f64, 0.02, 0.03, 0.05] {
            let h = -q * q.log2() - (1.0 - q) * (1.0 - q).log2();
            for &f in &[1.15f64, 1.25, 1.35] {
                let m = (f * h * n as f64).round() as usize;
                let t = std::time::Instant::now();
                let c = code::build(n, m, 1);
                let build_s = t.elapsed().as_secs_f64();
                let (jobs, _) = bsc_jobs(&c, frames, q, &[], 3);
                for &alpha in &[24i16, 26, 28] {
                    let t = std::time::Instant::now();
                    let (out, it) = decode_all_with(&c, &jobs, 60, alpha, Backend::Auto);
                    let el = t.elapsed().as_secs_f64();
                    let fails = out.iter().filter(|o| o.is_none()).count();
                    let total_it: u32 = it.iter().sum();
                    println!(
                        "q={q} f={f} m={m} alpha={alpha}: FER {fails}/{frames}, mean iters {:.1}, {:.1} Mbit/s, {:.0} Mbit-iterations/s, edges {}, build {build_s:.2}s",
                        total_it as f64 / frames as f64,
                        (frames * n) as f64 / el / 1e6,
                        total_it as f64 * n as f64 / el / 1e6,
                        c.edges()
                    );
                }
            }
        }
    }
}
