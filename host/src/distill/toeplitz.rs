//! Privacy amplification by Toeplitz hashing.
//!
//! The final key is `y = T·x` over GF(2), where `x` is the verified key (n bits) and `T` is an
//! m×n Toeplitz matrix given by n + m − 1 seed bits `s`:
//!
//! `T[i][j] = s[i − j + n − 1]`, so `y[i] = Σ_j s[i + n − 1 − j]·x[j]` (mod 2), i in 0..m.
//!
//! Toeplitz matrices with a uniform seed form a two-universal family, which is what the leftover
//! hash lemma needs; the seed is public (it may be sent in the clear) but must be drawn after
//! `x` is fixed, e.g. from shared randomness or a ChaCha20 stream ([`ToeplitzSeed::ChaCha20`]).
//!
//! # Algorithm (exact, no rounding)
//! `y` is the slice `[n − 1, n − 1 + m)` of the product of the polynomials S(t) = Σ s_i t^i and
//! X(t) = Σ x_j t^j over GF(2). The product is computed exactly with an *additive FFT* over the
//! field GF(2^64):
//!
//! 1. X and S are cut into 32-bit pieces, each a polynomial of degree < 32 in t, and each stored
//!    as an element of GF(2^64) in the polynomial basis. The product of two pieces has degree
//!    ≤ 62, so it is never reduced by the field polynomial: field products *are* the GF(2)\[t\]
//!    products, and field sums are XOR. Hence the product of the piece sequences, computed in
//!    GF(2^64)\[z\], gives exactly the pieces of S·X (z = t^32), which are overlap-added.
//! 2. GF(2^64)\[z\] multiplication evaluates both polynomials at the 2^k points of a GF(2)-subspace
//!    of GF(2^64), multiplies pointwise and interpolates (2^k > degree of the product). The
//!    transforms are the Lin–Chung–Han additive FFT in the "novel polynomial basis" built on a
//!    Cantor basis β_0 = 1, β_i² + β_i = β_{i−1} (S.-J. Lin, W.-H. Chung, Y. S. Han, "Novel
//!    polynomial basis and its application to Reed–Solomon erasure codes", FOCS 2014), with the
//!    change between monomial and novel basis done by the Gao–Mateer Taylor expansion at
//!    x^(2^m) + x (only XORs); see Chen, Cheng, Kuo, Li, Yang, "Faster multiplication for long
//!    binary polynomials", arXiv:1708.09746.
//!
//! Every step is an identity of field arithmetic, so the result is exact by construction (unlike
//! a floating-point FFT, there is no rounding to bound); tests compare it with
//! [`toeplitz_direct`] on many sizes. Cost: O(N log N) field multiplications for N = 2^k pieces
//! (N = 2^23 for n = 10^8, m = n/2), done four at a time with AVX2 + VPCLMULQDQ, else one at a
//! time with PCLMULQDQ, else in portable code (chosen at run time), with rayon splitting every
//! transform and basis conversion across threads. Above the leaf size two FFT levels are fused
//! per pass over memory, and the basis conversion runs in cache-sized tiles. Seeds given in
//! the novel-basis encoding ([`ToeplitzSeed::Novel`], [`ToeplitzSeed::ChaCha20`]) skip the
//! seed's basis conversion; the transform arrays are backed by transparent huge pages and the
//! two largest are kept, zeroized, for the next call.
//!
//! Intermediate arrays hold key-dependent values and are zeroized before they are freed.
//!
//! No crate offers exact long GF(2)\[t\] multiplication (gf2x is C-only), hence this module.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::{Mutex, OnceLock};
use thiserror::Error;
use zeroize::Zeroize;

use super::key::SecretBits;
use super::verify::{gf64, masked_words};

/// Largest accepted input length (bits); far above what memory allows in practice.
pub const MAX_INPUT_BITS: usize = 1 << 40;

/// Errors of privacy amplification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ToeplitzError {
    /// The input key has no bits.
    #[error("privacy amplification input is empty")]
    EmptyInput,
    /// An output of 0 bits was requested.
    #[error("privacy amplification output length must be at least 1 bit")]
    EmptyOutput,
    /// More output bits than input bits were requested.
    #[error("output length {out_bits} bits exceeds the input length {in_bits} bits")]
    OutputTooLong {
        /// Requested output length m (bits).
        out_bits: usize,
        /// Input length n (bits).
        in_bits: usize,
    },
    /// The given seed does not have n + m − 1 bits.
    #[error(
        "Toeplitz seed has {got} bits; an {out_bits}x{in_bits} matrix needs n + m - 1 = {needed}"
    )]
    SeedLength {
        /// Bits in the seed given.
        got: usize,
        /// Bits needed, n + m − 1.
        needed: usize,
        /// Output length m (bits).
        out_bits: usize,
        /// Input length n (bits).
        in_bits: usize,
    },
    /// The input exceeds [`MAX_INPUT_BITS`].
    #[error("privacy amplification input of {in_bits} bits exceeds the supported {max} bits")]
    InputTooLong {
        /// Input length n (bits).
        in_bits: usize,
        /// [`MAX_INPUT_BITS`].
        max: usize,
    },
}

/// Where the n + m − 1 seed bits of the Toeplitz matrix come from.
///
/// A seed can be given in two encodings of the same family. [`ToeplitzSeed::Bits`] gives the
/// matrix's diagonals `s` directly (the coefficients of S(t) in the monomial basis).
/// [`ToeplitzSeed::Novel`] and [`ToeplitzSeed::ChaCha20`] give the coefficients of S in the
/// novel polynomial basis the transform works in (see the module documentation): the 32-bit
/// pieces of the n + m − 1 bits are the coefficients of X_0, X_1, … The change of basis is a
/// bijection on these bit strings (X_i has degree i with leading coefficient 1 and GF(2)
/// coefficients, so it is a unit triangular GF(2)-linear map that keeps the last, partial
/// piece), hence a uniform seed in one encoding is a uniform seed in the other: the hash
/// family, and its two-universality, are the same. The novel encoding spares the fast path
/// one basis conversion (about a sixth of its time on 10^8-bit blocks); [`seed_bits`] and
/// [`monomial_seed`] give the matrix's diagonals of such a seed.
#[derive(Debug, Clone, Copy)]
pub enum ToeplitzSeed<'a> {
    /// Novel-basis seed bits from the ChaCha20 keystream under this 32-byte key (shared
    /// randomness agreed by both stations): the first n + m − 1 bits of the stream (32-bit
    /// little-endian words, LSB first), as [`ToeplitzSeed::Novel`]. The matrix it stands for
    /// is [`seed_bits`]`(key, n + m − 1)`.
    ChaCha20([u8; 32]),
    /// Explicit seed bits, the matrix's diagonals (monomial basis); exactly n + m − 1 bits.
    Bits(&'a SecretBits),
    /// Explicit seed bits in the novel basis; exactly n + m − 1 bits. The matrix it stands for
    /// is [`monomial_seed`] of them.
    Novel(&'a SecretBits),
}

/// Number of seed bits an m×n Toeplitz matrix needs: n + m − 1.
pub fn seed_len(in_bits: usize, out_bits: usize) -> usize {
    in_bits + out_bits - 1
}

/// The matrix diagonals (monomial-basis seed, as [`ToeplitzSeed::Bits`] takes them) of
/// [`ToeplitzSeed::ChaCha20`]`(key)` for a seed of `len` = n + m − 1 bits.
pub fn seed_bits(key: [u8; 32], len: usize) -> SecretBits {
    let pieces = len.div_ceil(PIECE_BITS);
    to_monomial_bits(chacha_pieces(key, len, pieces.max(1).next_power_of_two()), len)
}

/// The matrix diagonals (monomial-basis seed) of the novel-basis seed `novel`
/// ([`ToeplitzSeed::Novel`]); as many bits as `novel` has.
pub fn monomial_seed(novel: &SecretBits) -> SecretBits {
    let len = novel.len();
    let pieces = len.div_ceil(PIECE_BITS);
    let words: Vec<u64> = masked_words(novel).collect();
    to_monomial_bits(unpacked(&words, pieces, pieces.max(1).next_power_of_two()), len)
}

/// Converts novel-basis 32-bit pieces (a power-of-two count, zero past the seed) to the
/// packed monomial-basis seed of `len` bits.
fn to_monomial_bits(mut pieces: Vec<u64>, len: usize) -> SecretBits {
    let k = pieces.len().trailing_zeros();
    from_novel(&mut pieces, k, 1);
    let mut words: Vec<u64> = (0..len.div_ceil(64))
        .map(|w| pieces[2 * w] | pieces.get(2 * w + 1).map_or(0, |h| h << 32))
        .collect();
    pieces.zeroize();
    clear_tail(&mut words, len);
    SecretBits::from_words(words, len)
}

/// A fresh `size`-element array whose first ⌈len/32⌉ elements are the 32-bit words of the
/// ChaCha20 stream under `key` (the last one cut to the `len` bits), zeros after them; filled
/// in parallel (the stream is seekable), each element written once (see [`unpacked`]).
fn chacha_pieces(key: [u8; 32], len: usize, size: usize) -> Vec<u64> {
    let pieces = len.div_ceil(PIECE_BITS);
    let tail = len % PIECE_BITS;
    fresh_array(size, |first, chunk| {
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_word_pos(first as u128);
        for (j, e) in chunk.iter_mut().enumerate() {
            let i = first + j;
            let v = if i >= pieces {
                0
            } else if i == pieces - 1 && tail != 0 {
                u64::from(rng.next_u32()) & ((1u64 << tail) - 1)
            } else {
                u64::from(rng.next_u32())
            };
            e.write(v);
        }
    })
}

/// `y = T·x` for the m×n Toeplitz matrix given by `seed` (m = `out_bits`, n = `input.len()`),
/// computed exactly with the additive FFT (see the module documentation).
pub fn toeplitz_hash(
    input: &SecretBits,
    out_bits: usize,
    seed: ToeplitzSeed<'_>,
) -> Result<SecretBits, ToeplitzError> {
    with_seed(input, out_bits, seed, |x, s| {
        let words = middle_product(x, s, input.len(), out_bits);
        SecretBits::from_words(words, out_bits)
    })
}

/// The same product as [`toeplitz_hash`] computed directly in O(n·m/64) word operations: the
/// reference the fast path is tested against (too slow for production block sizes).
pub fn toeplitz_direct(
    input: &SecretBits,
    out_bits: usize,
    seed: ToeplitzSeed<'_>,
) -> Result<SecretBits, ToeplitzError> {
    let n = input.len();
    with_seed(input, out_bits, seed, |x, s| {
        let needed = seed_len(n, out_bits);
        let s: Vec<u64> = match s {
            SeedForm::Monomial(w) => w.to_vec(),
            SeedForm::Novel(w) => masked_words(&monomial_seed(&SecretBits::from_words(w.to_vec(), needed))).collect(),
            SeedForm::ChaCha20(key) => masked_words(&seed_bits(key, needed)).collect(),
        };
        let mut y = SecretBits::zeros(out_bits);
        for i in 0..out_bits {
            if direct_bit(x, &s, n, i) {
                y.set(i, true);
            }
        }
        y
    })
}

/// A validated seed as the transforms take it.
enum SeedForm<'a> {
    /// Monomial-basis seed words (n + m − 1 bits, tail clear).
    Monomial(&'a [u64]),
    /// Novel-basis seed words (n + m − 1 bits, tail clear).
    Novel(&'a [u64]),
    /// Novel-basis seed from the ChaCha20 stream under this key.
    ChaCha20([u8; 32]),
}

/// Validates the sizes and runs `f(x, s)` on the masked input words and the seed.
fn with_seed(
    input: &SecretBits,
    out_bits: usize,
    seed: ToeplitzSeed<'_>,
    f: impl FnOnce(&[u64], SeedForm<'_>) -> SecretBits,
) -> Result<SecretBits, ToeplitzError> {
    let n = input.len();
    if n == 0 {
        return Err(ToeplitzError::EmptyInput);
    }
    if out_bits == 0 {
        return Err(ToeplitzError::EmptyOutput);
    }
    if out_bits > n {
        return Err(ToeplitzError::OutputTooLong {
            out_bits,
            in_bits: n,
        });
    }
    if n > MAX_INPUT_BITS {
        return Err(ToeplitzError::InputTooLong {
            in_bits: n,
            max: MAX_INPUT_BITS,
        });
    }
    let needed = seed_len(n, out_bits);
    let checked = |bits: &SecretBits| {
        if bits.len() != needed {
            return Err(ToeplitzError::SeedLength {
                got: bits.len(),
                needed,
                out_bits,
                in_bits: n,
            });
        }
        Ok(masked_words(bits).collect::<Vec<u64>>())
    };
    let seed_words;
    let form = match seed {
        ToeplitzSeed::ChaCha20(key) => SeedForm::ChaCha20(key),
        ToeplitzSeed::Bits(bits) => {
            seed_words = checked(bits)?;
            SeedForm::Monomial(&seed_words)
        }
        ToeplitzSeed::Novel(bits) => {
            seed_words = checked(bits)?;
            SeedForm::Novel(&seed_words)
        }
    };
    let mut x: Vec<u64> = masked_words(input).collect();
    let y = f(&x, form);
    x.zeroize();
    Ok(y)
}

/// Clears the bits at positions ≥ `len` (the words hold at least `len` bits).
fn clear_tail(words: &mut [u64], len: usize) {
    let full = len / 64;
    if !len.is_multiple_of(64) {
        words[full] &= (1u64 << (len % 64)) - 1;
    }
    let start = len.div_ceil(64);
    for w in words.iter_mut().skip(start) {
        *w = 0;
    }
}

/// Bit `i` of `T·x` by definition: parity of x AND the reversed seed window. Reading
/// `r[u] = s[n + m − 2 − u]`, `s[i + n − 1 − j] = r[(m − 1 − i) + j]`; the window is read on the
/// fly from `s` with bit reversal.
fn direct_bit(x: &[u64], s: &[u64], n: usize, i: usize) -> bool {
    // y_i = Σ_j s[i + n − 1 − j] x[j]; walk j in 64-bit steps and build the reversed window.
    let bit = |k: usize| (s[k / 64] >> (k % 64)) & 1;
    let mut acc = 0u64;
    for (wj, &xw) in x.iter().enumerate() {
        if xw == 0 {
            continue;
        }
        let mut win = 0u64;
        let base = wj * 64;
        for b in 0..64 {
            let j = base + b;
            if j >= n {
                break;
            }
            win |= bit(i + n - 1 - j) << b;
        }
        acc ^= win & xw;
    }
    acc.count_ones() & 1 == 1
}

/// Bits per GF(2^64) element in the packed polynomials (products stay below 2^63).
const PIECE_BITS: usize = 32;

/// Bits `[n − 1, n − 1 + m)` of the GF(2)\[t\] product of `s` (n + m − 1 bits) and `x` (n bits),
/// packed LSB-first, with the bits past `m` cleared.
fn middle_product(x: &[u64], s: SeedForm<'_>, n: usize, m: usize) -> Vec<u64> {
    let len_x = n.div_ceil(PIECE_BITS);
    let len_s = (n + m - 1).div_ceil(PIECE_BITS);
    let pieces = len_x + len_s - 1;
    let k = pieces.next_power_of_two().trailing_zeros();
    let size = 1usize << k;

    let mut a = unpacked(x, len_x, size);
    let (mut b, b_novel) = match s {
        SeedForm::Monomial(w) => (unpacked(w, len_s, size), false),
        SeedForm::Novel(w) => (unpacked(w, len_s, size), true),
        SeedForm::ChaCha20(key) => (chacha_pieces(key, n + m - 1, size), true),
    };
    multiply_in_place(&mut a, &mut b, k, [len_x, len_s], b_novel);
    recycle(b);

    // Product word w (bits [64w, 64w + 64)) = C[2w] ^ C[2w+1] << 32 ^ C[2w-1] >> 32.
    let product_word = |w: usize| -> u64 {
        let c = |i: usize| a.get(i).copied().unwrap_or(0);
        let prev = if w == 0 { 0 } else { c(2 * w - 1) >> 32 };
        c(2 * w) ^ (c(2 * w + 1) << 32) ^ prev
    };
    let start = n - 1;
    let (w0, sh) = (start / 64, (start % 64) as u32);
    let out_words = m.div_ceil(64);
    let mut y: Vec<u64> = (0..out_words)
        .into_par_iter()
        .map(|o| {
            let lo = product_word(w0 + o);
            if sh == 0 {
                lo
            } else {
                (lo >> sh) | (product_word(w0 + o + 1) << (64 - sh))
            }
        })
        .collect();
    recycle(a);
    clear_tail(&mut y, m);
    y
}

/// A fresh `size`-element array holding the first `pieces` 32-bit pieces of the packed
/// `words` (`out[2i]` = low half of `w_i`, `out[2i+1]` = high half) and zeros after them.
fn unpacked(words: &[u64], pieces: usize, size: usize) -> Vec<u64> {
    let piece = |i: usize| -> u64 {
        if i >= pieces {
            return 0;
        }
        let w = words[i / 2];
        if i % 2 == 0 {
            w & 0xFFFF_FFFF
        } else {
            w >> 32
        }
    };
    fresh_array(size, |first, chunk| {
        for (j, e) in chunk.iter_mut().enumerate() {
            e.write(piece(first + j));
        }
    })
}

/// A fresh `size`-element array; `fill(first, chunk)` must write every element of `chunk`,
/// the elements from index `first` on. Chunks of [`PAR_CHUNK`] are filled in parallel.
///
/// Every element is *written* once before anything reads it. A zeroed allocation
/// (`vec![0; size]`) maps the shared zero page lazily; the transforms would then read those
/// pages first and write them later, and each such copy-on-write fault flushes the TLB of every
/// CPU running the process: that cost 28 % of the run time on 10^8-bit blocks (`perf`). Large
/// arrays are also advised to use transparent huge pages (see [`advise_huge_pages`]).
fn fresh_array(size: usize, fill: impl Fn(usize, &mut [MaybeUninit<u64>]) + Sync) -> Vec<u64> {
    let mut out = spare_array(size).unwrap_or_else(|| {
        let mut v: Vec<u64> = Vec::with_capacity(size);
        advise_huge_pages(v.spare_capacity_mut());
        v
    });
    out.spare_capacity_mut()[..size]
        .par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| fill(c * PAR_CHUNK, chunk));
    // SAFETY: `fill` initialized all `size` elements (every chunk, every element).
    unsafe { out.set_len(size) };
    out
}

/// Transform arrays at least this long (elements) are kept for reuse by [`recycle`].
const RECYCLE_MIN: usize = 1 << 16;
/// At most this many arrays are kept (the two factors of one product).
const RECYCLE_MAX: usize = 2;

/// Zeroized transform arrays kept for the next product: a fresh 64 MiB array costs page faults
/// and the kernel's zeroing of every page (a fifth of the time of a 10^8-bit hash per `perf`),
/// a kept one neither. At most [`RECYCLE_MAX`] arrays, so the memory held is that of the
/// largest product computed so far; the arrays hold only zeros.
static SPARE: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// An empty kept array with room for `size` elements, not more than twice that, if any.
fn spare_array(size: usize) -> Option<Vec<u64>> {
    if size < RECYCLE_MIN {
        return None;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let i = spare.iter().position(|v| v.capacity() >= size && v.capacity() <= 2 * size)?;
    Some(spare.swap_remove(i))
}

/// Zeroizes `v` (in parallel) and keeps it for [`spare_array`], or frees it.
fn recycle(mut v: Vec<u64>) {
    v.par_chunks_mut(PAR_CHUNK).for_each(|c| c.zeroize());
    v.clear(); // the elements are zero now; no spare capacity was ever written
    if v.capacity() < RECYCLE_MIN {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    if spare.len() < RECYCLE_MAX {
        spare.push(v);
    } else if let Some(small) = spare.iter_mut().min_by_key(|k| k.capacity()) {
        if small.capacity() < v.capacity() {
            *small = v;
        }
    }
}

/// Asks Linux to back the 2 MiB-aligned part of `buf` (not yet touched) with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`; the kernel default here is `madvise`). The transforms walk
/// 64 MiB arrays at strides up to half their length; with 4 KiB pages that is 16 384 pages,
/// far beyond the TLB. Only advice: where the kernel declines, nothing changes.
fn advise_huge_pages<T>(buf: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `buf`'s allocation; MADV_HUGEPAGE changes no
            // contents and no mapping, only how later page faults are served.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Replaces `a` by the product of the GF(2^64)\[z\] polynomials `a` and `b` (both of length 2^k
/// with the product's degree below 2^k); `b` is overwritten with its transform. `used` gives
/// the number of leading coefficients of `a` and `b` that may be non-zero (the rest are zero).
/// With `b_novel`, `b` holds its coefficients in the novel basis already.
fn multiply_in_place(a: &mut [u64], b: &mut [u64], k: u32, used: [usize; 2], b_novel: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v) = vpclmul_kernels::Vpclmul::detect() {
            return multiply_with(v, a, b, k, used, b_novel);
        }
        if let Some(p) = gf64::Pclmul::detect() {
            return multiply_with(p, a, b, k, used, b_novel);
        }
    }
    multiply_with(gf64::Soft, a, b, k, used, b_novel)
}

fn multiply_with<K: Kernel>(kern: K, a: &mut [u64], b: &mut [u64], k: u32, used: [usize; 2], b_novel: bool) {
    let tw = Twiddles::new(k);
    // A polynomial of degree below 2^j has the same coefficients in the novel basis of any
    // size ≥ 2^j (X_i has degree i), all zero from 2^j on: convert only that prefix.
    let prefix = |u: usize| u.max(1).next_power_of_two().min(1 << k);
    let [pa, pb] = used.map(prefix);
    rayon::join(
        || {
            to_novel(&mut a[..pa], pa.trailing_zeros(), 1);
            fft(kern, a, 0, &tw, false);
        },
        || {
            if !b_novel {
                to_novel(&mut b[..pb], pb.trailing_zeros(), 1);
            }
            fft(kern, b, 0, &tw, false);
        },
    );
    a.par_chunks_mut(PAR_CHUNK)
        .zip(b.par_chunks(PAR_CHUNK))
        .for_each(|(x, y)| kern.pointwise(x, y));
    fft(kern, a, 0, &tw, true);
    from_novel(a, k, 1);
}

/// Slices at least this long (words) are split across rayon tasks.
const PAR_MIN: usize = 1 << 15;
/// Chunk length (words) of parallel slice operations.
const PAR_CHUNK: usize = 1 << 13;
/// Blocks at most this long (elements) are transformed by one kernel call, level by level.
const LEAF: usize = 1 << 11;

/// The Cantor basis of GF(2^64): β_0 = 1, β_i² + β_i = β_{i−1}. Its subspace polynomials
/// s_i(x) = Π_{a ∈ span(β_0..β_{i−1})} (x − a) have GF(2) coefficients, s_i(β_i) = 1 and
/// s_i(β_j) = β_{j−i} for j ≥ i.
fn cantor_basis() -> &'static [u64; 64] {
    static BASIS: OnceLock<[u64; 64]> = OnceLock::new();
    BASIS.get_or_init(|| {
        let mut beta = [0u64; 64];
        beta[0] = 1;
        for i in 1..64 {
            beta[i] = solve_artin_schreier(beta[i - 1])
                .expect("x^2 + x = beta has a root for every Cantor basis element below 64");
        }
        beta
    })
}

/// A root of x² + x = c in GF(2^64), by Gaussian elimination on the GF(2)-linear map x ↦ x² + x.
fn solve_artin_schreier(c: u64) -> Option<u64> {
    let sq = |x: u64| gf64::mul(gf64::Soft, x, x);
    // Echelon basis of the images L(e_j), each with the combination of e_j that makes it.
    let mut pivots: Vec<(u32, u64, u64)> = Vec::new();
    for j in 0..64 {
        let (mut v, mut comb) = (sq(1 << j) ^ (1 << j), 1u64 << j);
        for &(p, pv, pc) in &pivots {
            if (v >> p) & 1 == 1 {
                v ^= pv;
                comb ^= pc;
            }
        }
        if v != 0 {
            pivots.push((63 - v.leading_zeros(), v, comb));
        }
    }
    let (mut r, mut x) = (c, 0u64);
    for &(p, pv, pc) in &pivots {
        if (r >> p) & 1 == 1 {
            r ^= pv;
            x ^= pc;
        }
    }
    (r == 0 && sq(x) ^ x == c).then_some(x)
}

/// FFT twiddles λ(c) = s_i(ω_c) = Σ_t c_t β_{t+1} for block c (independent of the level i, by
/// s_i(β_{i+1+t}) = β_{1+t}), looked up in two half-width tables.
struct Twiddles {
    lo: Vec<u64>,
    hi: Vec<u64>,
    lo_bits: u32,
}

impl Twiddles {
    fn new(k: u32) -> Self {
        let beta = cantor_basis();
        let bits = k.saturating_sub(1);
        let lo_bits = bits.div_ceil(2);
        let hi_bits = bits - lo_bits;
        let table = |first: u32, count: u32| {
            let mut t = vec![0u64; 1 << count];
            for c in 1..t.len() {
                let low = c.trailing_zeros();
                t[c] = t[c & (c - 1)] ^ beta[(1 + first + low) as usize];
            }
            t
        };
        Self {
            lo: table(0, lo_bits),
            hi: table(lo_bits, hi_bits),
            lo_bits,
        }
    }

    #[inline(always)]
    fn lambda(&self, c: usize) -> u64 {
        self.lo[c & ((1 << self.lo_bits) - 1)] ^ self.hi[c >> self.lo_bits]
    }
}

/// Field kernels over slices, specialised per carry-less multiplier so that the inner loops are
/// compiled with the instructions it needs.
trait Kernel: Copy + Send + Sync {
    /// All butterfly levels of one block of `a.len()` (a power of two) elements, which is block
    /// `c0` at its level; forward (evaluation) or inverse (interpolation).
    fn block(self, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool);
    /// One butterfly level between the halves `lo`, `hi` of a block with twiddle `lambda`.
    fn butterfly(self, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool);
    /// Two butterfly levels fused, on the quarters `q` of a block: the upper level pairs
    /// (q0, q2) and (q1, q3) with twiddle `lams[0]`, the lower level pairs (q0, q1) with
    /// `lams[1]` and (q2, q3) with `lams[2]`.
    fn butterfly2(self, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool);
    /// `a[i] = a[i]·b[i]` in GF(2^64).
    fn pointwise(self, a: &mut [u64], b: &[u64]);
}

#[inline(always)]
fn butterfly2_body<M: gf64::ClMul>(m: M, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
    let [q0, q1, q2, q3] = q;
    for i in 0..q0.len() {
        let (mut a0, mut a1, mut a2, mut a3) = (q0[i], q1[i], q2[i], q3[i]);
        if inverse {
            a1 ^= a0;
            a0 ^= gf64::mul(m, lams[1], a1);
            a3 ^= a2;
            a2 ^= gf64::mul(m, lams[2], a3);
            a2 ^= a0;
            a0 ^= gf64::mul(m, lams[0], a2);
            a3 ^= a1;
            a1 ^= gf64::mul(m, lams[0], a3);
        } else {
            a0 ^= gf64::mul(m, lams[0], a2);
            a2 ^= a0;
            a1 ^= gf64::mul(m, lams[0], a3);
            a3 ^= a1;
            a0 ^= gf64::mul(m, lams[1], a1);
            a1 ^= a0;
            a2 ^= gf64::mul(m, lams[2], a3);
            a3 ^= a2;
        }
        (q0[i], q1[i], q2[i], q3[i]) = (a0, a1, a2, a3);
    }
}

#[inline(always)]
fn butterfly_body<M: gf64::ClMul>(
    m: M,
    lo: &mut [u64],
    hi: &mut [u64],
    lambda: u64,
    inverse: bool,
) {
    if inverse {
        for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
            *h ^= *l;
            *l ^= gf64::mul(m, lambda, *h);
        }
    } else {
        for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
            *l ^= gf64::mul(m, lambda, *h);
            *h ^= *l;
        }
    }
}

#[inline(always)]
fn block_body<M: gf64::ClMul>(m: M, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
    // Plain loops, no closures: a closure would be compiled outside the caller's target
    // features and call the carry-less multiply out of line.
    let j = a.len().trailing_zeros();
    for step in 0..j {
        let i = if inverse { step } else { j - 1 - step };
        let h = 1usize << i;
        for (b, blk) in a.chunks_exact_mut(2 * h).enumerate() {
            let lambda = tw.lambda((c0 << (j - 1 - i)) + b);
            let (lo, hi) = blk.split_at_mut(h);
            butterfly_body(m, lo, hi, lambda, inverse);
        }
    }
}

#[inline(always)]
fn pointwise_body<M: gf64::ClMul>(m: M, a: &mut [u64], b: &[u64]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x = gf64::mul(m, *x, y);
    }
}

impl Kernel for gf64::Soft {
    fn block(self, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
        block_body(self, a, c0, tw, inverse)
    }
    fn butterfly2(self, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
        butterfly2_body(self, q, lams, inverse)
    }
    fn butterfly(self, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool) {
        butterfly_body(self, lo, hi, lambda, inverse)
    }
    fn pointwise(self, a: &mut [u64], b: &[u64]) {
        pointwise_body(self, a, b)
    }
}

#[cfg(target_arch = "x86_64")]
mod pclmul_kernels {
    use super::*;
    use gf64::Pclmul;

    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn block(m: Pclmul, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
        block_body(m, a, c0, tw, inverse)
    }
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn butterfly(m: Pclmul, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool) {
        butterfly_body(m, lo, hi, lambda, inverse)
    }
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn pointwise(m: Pclmul, a: &mut [u64], b: &[u64]) {
        pointwise_body(m, a, b)
    }
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn butterfly2(m: Pclmul, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
        butterfly2_body(m, q, lams, inverse)
    }

    // SAFETY (all three): a `Pclmul` value exists only after run-time detection of pclmulqdq
    // and sse2, the features these functions are compiled for.
    impl Kernel for Pclmul {
        fn block(self, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
            unsafe { block(self, a, c0, tw, inverse) }
        }
        fn butterfly(self, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool) {
            unsafe { butterfly(self, lo, hi, lambda, inverse) }
        }
        fn pointwise(self, a: &mut [u64], b: &[u64]) {
            unsafe { pointwise(self, a, b) }
        }
        fn butterfly2(self, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
            unsafe { butterfly2(self, q, lams, inverse) }
        }
    }
}

/// 256-bit kernels: `vpclmulqdq` multiplies two field elements per instruction, and the
/// reduction runs on four 64-bit lanes. Levels with fewer than four butterflies per block fall
/// back to the scalar `pclmulqdq` path.
#[cfg(target_arch = "x86_64")]
mod vpclmul_kernels {
    use super::*;
    use gf64::Pclmul;
    use std::arch::x86_64::*;

    /// Only constructible on CPUs with AVX2, VPCLMULQDQ and PCLMULQDQ.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Vpclmul {
        scalar: Pclmul,
    }

    impl Vpclmul {
        pub(super) fn detect() -> Option<Self> {
            let wide = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("vpclmulqdq");
            let scalar = Pclmul::detect()?;
            wide.then_some(Self { scalar })
        }
    }

    /// Four products `x[i]·λ` in GF(2^64) (λ broadcast in all lanes).
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn mul4(x: __m256i, y: __m256i) -> __m256i {
        let even = _mm256_clmulepi64_epi128(x, y, 0x00); // lanes 0 and 2
        let odd = _mm256_clmulepi64_epi128(x, y, 0x11); // lanes 1 and 3
        let lo = _mm256_unpacklo_epi64(even, odd);
        let hi = _mm256_unpackhi_epi64(even, odd);
        // Same reduction as gf64::reduce, lane-wise.
        let t = _mm256_xor_si256(
            _mm256_xor_si256(hi, _mm256_srli_epi64(hi, 63)),
            _mm256_xor_si256(_mm256_srli_epi64(hi, 61), _mm256_srli_epi64(hi, 60)),
        );
        let u = _mm256_xor_si256(
            _mm256_xor_si256(t, _mm256_slli_epi64(t, 1)),
            _mm256_xor_si256(_mm256_slli_epi64(t, 3), _mm256_slli_epi64(t, 4)),
        );
        _mm256_xor_si256(lo, u)
    }

    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn butterfly(m: Vpclmul, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool) {
        let n = lo.len().min(hi.len());
        let n4 = n - n % 4;
        let lam = _mm256_set1_epi64x(lambda as i64);
        let (pl, ph) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        // SAFETY: i + 4 <= n4 <= both lengths, so every 32-byte access is in bounds.
        if inverse {
            for i in (0..n4).step_by(4) {
                let l = _mm256_loadu_si256(pl.add(i) as *const __m256i);
                let h = _mm256_xor_si256(_mm256_loadu_si256(ph.add(i) as *const __m256i), l);
                let l = _mm256_xor_si256(l, mul4(h, lam));
                _mm256_storeu_si256(pl.add(i) as *mut __m256i, l);
                _mm256_storeu_si256(ph.add(i) as *mut __m256i, h);
            }
        } else {
            for i in (0..n4).step_by(4) {
                let h = _mm256_loadu_si256(ph.add(i) as *const __m256i);
                let l = _mm256_xor_si256(
                    _mm256_loadu_si256(pl.add(i) as *const __m256i),
                    mul4(h, lam),
                );
                let h = _mm256_xor_si256(h, l);
                _mm256_storeu_si256(pl.add(i) as *mut __m256i, l);
                _mm256_storeu_si256(ph.add(i) as *mut __m256i, h);
            }
        }
        butterfly_body(m.scalar, &mut lo[n4..n], &mut hi[n4..n], lambda, inverse);
    }

    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn block(m: Vpclmul, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
        let len = a.len();
        let j = len.trailing_zeros();
        for step in 0..j {
            let i = if inverse { step } else { j - 1 - step };
            let h = 1usize << i;
            for (b, blk) in a.chunks_exact_mut(2 * h).enumerate() {
                let lambda = tw.lambda((c0 << (j - 1 - i)) + b);
                let (lo, hi) = blk.split_at_mut(h);
                if h >= 4 {
                    butterfly(m, lo, hi, lambda, inverse);
                } else if len < 8 {
                    butterfly_body(m.scalar, lo, hi, lambda, inverse);
                } else {
                    // h = 1 and h = 2 are done below, eight elements per step.
                    break;
                }
            }
            if h < 4 && len >= 8 {
                small_level(a, i, c0 << (j - 1 - i), tw, inverse);
            }
        }
    }

    /// Butterfly level i ∈ {0, 1} (h = 2^i) over all of `a` (length a multiple of 8), whose
    /// first block has index `c_first`: two 4-lane registers hold two blocks of four (h = 2) or
    /// four blocks of two (h = 1), rearranged into a lo vector and a hi vector.
    #[inline]
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn small_level(a: &mut [u64], i: u32, c_first: usize, tw: &Twiddles, inverse: bool) {
        let p = a.as_mut_ptr();
        for step in 0..a.len() / 8 {
            // SAFETY: 8·step + 8 <= a.len(), so both 32-byte accesses are in bounds.
            let (pa, pb) = (
                p.add(8 * step) as *mut __m256i,
                p.add(8 * step + 4) as *mut __m256i,
            );
            let (x, y) = (_mm256_loadu_si256(pa), _mm256_loadu_si256(pb));
            let (lo, hi, lam) = if i == 1 {
                let c = c_first + 2 * step;
                let (l0, l1) = (tw.lambda(c) as i64, tw.lambda(c + 1) as i64);
                (
                    _mm256_permute2x128_si256(x, y, 0x20),
                    _mm256_permute2x128_si256(x, y, 0x31),
                    _mm256_set_epi64x(l1, l1, l0, l0),
                )
            } else {
                let c = c_first + 4 * step;
                let l = |d: usize| tw.lambda(c + d) as i64;
                // unpacklo/hi interleave per 128-bit lane: lanes hold blocks (0, 2 | 1, 3).
                (
                    _mm256_unpacklo_epi64(x, y),
                    _mm256_unpackhi_epi64(x, y),
                    _mm256_set_epi64x(l(3), l(1), l(2), l(0)),
                )
            };
            let (lo, hi) = if inverse {
                let hi = _mm256_xor_si256(hi, lo);
                (_mm256_xor_si256(lo, mul4(hi, lam)), hi)
            } else {
                let lo = _mm256_xor_si256(lo, mul4(hi, lam));
                (lo, _mm256_xor_si256(hi, lo))
            };
            let (x, y) = if i == 1 {
                (
                    _mm256_permute2x128_si256(lo, hi, 0x20),
                    _mm256_permute2x128_si256(lo, hi, 0x31),
                )
            } else {
                (_mm256_unpacklo_epi64(lo, hi), _mm256_unpackhi_epi64(lo, hi))
            };
            _mm256_storeu_si256(pa, x);
            _mm256_storeu_si256(pb, y);
        }
    }

    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn pointwise(m: Vpclmul, a: &mut [u64], b: &[u64]) {
        let n = a.len().min(b.len());
        let n4 = n - n % 4;
        let (pa, pb) = (a.as_mut_ptr(), b.as_ptr());
        // SAFETY: i + 4 <= n4 <= both lengths.
        for i in (0..n4).step_by(4) {
            let x = _mm256_loadu_si256(pa.add(i) as *const __m256i);
            let y = _mm256_loadu_si256(pb.add(i) as *const __m256i);
            // mul4 multiplies by the even/odd qwords of `y` lane by lane.
            _mm256_storeu_si256(pa.add(i) as *mut __m256i, mul4(x, y));
        }
        pointwise_body(m.scalar, &mut a[n4..n], &b[n4..n]);
    }

    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq")]
    unsafe fn butterfly2(m: Vpclmul, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
        let n = q.iter().map(|x| x.len()).min().unwrap_or(0);
        let n4 = n - n % 4;
        let [l0, l1, l2] = lams.map(|l| _mm256_set1_epi64x(l as i64));
        let p = [
            q[0].as_mut_ptr(),
            q[1].as_mut_ptr(),
            q[2].as_mut_ptr(),
            q[3].as_mut_ptr(),
        ];
        for i in (0..n4).step_by(4) {
            // SAFETY: i + 4 <= n4 <= every quarter's length.
            let at = |j: usize| p[j].add(i) as *mut __m256i;
            let (mut a0, mut a1) = (_mm256_loadu_si256(at(0)), _mm256_loadu_si256(at(1)));
            let (mut a2, mut a3) = (_mm256_loadu_si256(at(2)), _mm256_loadu_si256(at(3)));
            if inverse {
                a1 = _mm256_xor_si256(a1, a0);
                a0 = _mm256_xor_si256(a0, mul4(a1, l1));
                a3 = _mm256_xor_si256(a3, a2);
                a2 = _mm256_xor_si256(a2, mul4(a3, l2));
                a2 = _mm256_xor_si256(a2, a0);
                a0 = _mm256_xor_si256(a0, mul4(a2, l0));
                a3 = _mm256_xor_si256(a3, a1);
                a1 = _mm256_xor_si256(a1, mul4(a3, l0));
            } else {
                a0 = _mm256_xor_si256(a0, mul4(a2, l0));
                a2 = _mm256_xor_si256(a2, a0);
                a1 = _mm256_xor_si256(a1, mul4(a3, l0));
                a3 = _mm256_xor_si256(a3, a1);
                a0 = _mm256_xor_si256(a0, mul4(a1, l1));
                a1 = _mm256_xor_si256(a1, a0);
                a2 = _mm256_xor_si256(a2, mul4(a3, l2));
                a3 = _mm256_xor_si256(a3, a2);
            }
            _mm256_storeu_si256(at(0), a0);
            _mm256_storeu_si256(at(1), a1);
            _mm256_storeu_si256(at(2), a2);
            _mm256_storeu_si256(at(3), a3);
        }
        let [q0, q1, q2, q3] = q;
        let tail = [
            &mut q0[n4..n],
            &mut q1[n4..n],
            &mut q2[n4..n],
            &mut q3[n4..n],
        ];
        butterfly2_body(m.scalar, tail, lams, inverse);
    }

    // SAFETY (all three): a `Vpclmul` value exists only after run-time detection of avx2,
    // vpclmulqdq and pclmulqdq, the features these functions are compiled for.
    impl Kernel for Vpclmul {
        fn block(self, a: &mut [u64], c0: usize, tw: &Twiddles, inverse: bool) {
            unsafe { block(self, a, c0, tw, inverse) }
        }
        fn butterfly(self, lo: &mut [u64], hi: &mut [u64], lambda: u64, inverse: bool) {
            unsafe { butterfly(self, lo, hi, lambda, inverse) }
        }
        fn pointwise(self, a: &mut [u64], b: &[u64]) {
            unsafe { pointwise(self, a, b) }
        }
        fn butterfly2(self, q: [&mut [u64]; 4], lams: [u64; 3], inverse: bool) {
            unsafe { butterfly2(self, q, lams, inverse) }
        }
    }
}

/// Additive FFT (Lin–Chung–Han) of `a` (novel-basis coefficients, length 2^j), which is block
/// `c` of its level: evaluates at the points ω_p = Σ_t p_t β_t, p the position in the whole
/// array. Forward: levels from the top down; inverse: the same butterflies undone bottom up.
fn fft<K: Kernel>(kern: K, a: &mut [u64], c: usize, tw: &Twiddles, inverse: bool) {
    if a.len() <= LEAF {
        if a.len() > 1 {
            kern.block(a, c, tw, inverse);
        }
        return;
    }
    if a.len() / 2 > LEAF {
        return fft_two_levels(kern, a, c, tw, inverse);
    }
    let half = a.len() / 2;
    let lambda = tw.lambda(c);
    let (lo, hi) = a.split_at_mut(half);
    let level = |lo: &mut [u64], hi: &mut [u64]| {
        if half >= PAR_MIN {
            lo.par_chunks_mut(PAR_CHUNK)
                .zip(hi.par_chunks_mut(PAR_CHUNK))
                .for_each(|(l, h)| kern.butterfly(l, h, lambda, inverse));
        } else {
            kern.butterfly(lo, hi, lambda, inverse);
        }
    };
    if !inverse {
        level(lo, hi);
    }
    let recurse = |lo: &mut [u64], hi: &mut [u64]| {
        if half >= PAR_MIN {
            rayon::join(
                || fft(kern, lo, 2 * c, tw, inverse),
                || fft(kern, hi, 2 * c + 1, tw, inverse),
            );
        } else {
            fft(kern, lo, 2 * c, tw, inverse);
            fft(kern, hi, 2 * c + 1, tw, inverse);
        }
    };
    recurse(lo, hi);
    if inverse {
        level(lo, hi);
    }
}

/// [`fft`] for blocks whose halves are still above the leaf size: the top two levels in one
/// pass over memory, then the four quarters (blocks 4c..4c+3 two levels down).
fn fft_two_levels<K: Kernel>(kern: K, a: &mut [u64], c: usize, tw: &Twiddles, inverse: bool) {
    let quarter = a.len() / 4;
    let lams = [tw.lambda(c), tw.lambda(2 * c), tw.lambda(2 * c + 1)];
    let step = |a: &mut [u64]| {
        let (l, h) = a.split_at_mut(2 * quarter);
        let ((q0, q1), (q2, q3)) = (l.split_at_mut(quarter), h.split_at_mut(quarter));
        if quarter >= PAR_MIN / 2 {
            q0.par_chunks_mut(PAR_CHUNK)
                .zip(q1.par_chunks_mut(PAR_CHUNK))
                .zip(q2.par_chunks_mut(PAR_CHUNK))
                .zip(q3.par_chunks_mut(PAR_CHUNK))
                .for_each(|(((q0, q1), q2), q3)| kern.butterfly2([q0, q1, q2, q3], lams, inverse));
        } else {
            kern.butterfly2([q0, q1, q2, q3], lams, inverse);
        }
    };
    if !inverse {
        step(a);
    }
    {
        let (l, h) = a.split_at_mut(2 * quarter);
        let ((q0, q1), (q2, q3)) = (l.split_at_mut(quarter), h.split_at_mut(quarter));
        let pair = |x: &mut [u64], y: &mut [u64], cx: usize| {
            if quarter >= PAR_MIN {
                rayon::join(
                    || fft(kern, x, cx, tw, inverse),
                    || fft(kern, y, cx + 1, tw, inverse),
                );
            } else {
                fft(kern, x, cx, tw, inverse);
                fft(kern, y, cx + 1, tw, inverse);
            }
        };
        if quarter >= PAR_MIN {
            rayon::join(|| pair(q0, q1, 4 * c), || pair(q2, q3, 4 * c + 2));
        } else {
            pair(q0, q1, 4 * c);
            pair(q2, q3, 4 * c + 2);
        }
    }
    if inverse {
        step(a);
    }
}

/// `dst ^= src`, split across rayon tasks when long.
fn xor_into(dst: &mut [u64], src: &[u64]) {
    if dst.len() >= PAR_MIN {
        dst.par_chunks_mut(PAR_CHUNK)
            .zip(src.par_chunks(PAR_CHUNK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d ^= s));
    } else {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d ^= s);
    }
}

/// Largest power of two strictly below `k` (k ≥ 2).
fn split_point(k: u32) -> u32 {
    1 << (31 - (k - 1).leading_zeros())
}

/// Monomial → novel basis, in place, for every block of 2^k coefficients of `w` words in `a`
/// (each block a vector of independent polynomials, converted together). With m a power of two
/// below k and y = s_m(x) = x^(2^m) + x, the novel basis factors as
/// X_{hi·2^m + lo}(x) = X_hi(y)·X_lo(x) (because s_{i+m} = s_i ∘ s_m), so: expand f in powers
/// of y with coefficients of degree < 2^m (Taylor expansion), convert the outer polynomial in y
/// (coefficients 2^m·w words wide), then each inner polynomial (blocks of 2^m coefficients).
fn to_novel(a: &mut [u64], k: u32, w: usize) {
    if k <= 1 {
        return; // X_0 = 1, X_1 = x: the bases agree.
    }
    if tiled(a, w << k, |t| to_novel(t, k, w)) {
        return;
    }
    if k == 4 && w == 1 {
        a.chunks_exact_mut(16)
            .for_each(|b| novel16(b.try_into().expect("16 words"), false));
        return;
    }
    let m = split_point(k);
    taylor(a, k, m, w, false);
    to_novel(a, k - m, w << m);
    to_novel(a, m, w);
}

/// Inverse of [`to_novel`].
fn from_novel(a: &mut [u64], k: u32, w: usize) {
    if k <= 1 {
        return;
    }
    if tiled(a, w << k, |t| from_novel(t, k, w)) {
        return;
    }
    if k == 4 && w == 1 {
        a.chunks_exact_mut(16)
            .for_each(|b| novel16(b.try_into().expect("16 words"), true));
        return;
    }
    let m = split_point(k);
    from_novel(a, m, w);
    from_novel(a, k - m, w << m);
    taylor(a, k, m, w, true);
}

/// [`to_novel`] (or, with `inverse`, [`from_novel`]) for k = 4, w = 1 on one block of 16
/// coefficients, with constant loop bounds so that it compiles to straight-line code (the
/// general path spends most of its time in loop overhead at this size). The stages are those
/// of the general path: Taylor levels 4 and 3 at y = x^4 + x (m = 2), the outer conversion
/// (k = 2, w = 4) and the four inner ones (k = 2, w = 1).
#[inline(always)]
fn novel16(b: &mut [u64; 16], inverse: bool) {
    if inverse {
        stage16::<4, 2, 1>(b, true);
        stage16::<16, 8, 4>(b, true);
        stage16::<8, 4, 3>(b, true);
        stage16::<16, 8, 6>(b, true);
    } else {
        stage16::<16, 8, 6>(b, false);
        stage16::<8, 4, 3>(b, false);
        stage16::<16, 8, 4>(b, false);
        stage16::<4, 2, 1>(b, false);
    }
}

/// One division stage of [`novel16`]: `b[p − DIST] ^= b[p]` for p in the upper half of every
/// block of `BLOCK` words, top down (bottom up when undoing).
#[inline(always)]
fn stage16<const BLOCK: usize, const HALF: usize, const DIST: usize>(
    b: &mut [u64; 16],
    inverse: bool,
) {
    for base in (0..16).step_by(BLOCK) {
        if inverse {
            for p in HALF..BLOCK {
                b[base + p - DIST] ^= b[base + p];
            }
        } else {
            for p in (HALF..BLOCK).rev() {
                b[base + p - DIST] ^= b[base + p];
            }
        }
    }
}

/// Words per cache tile of the basis conversion.
const TILE: usize = 1 << 19;

/// When `a` holds several blocks of `block` words and is longer than a tile, runs `f` on
/// tiles of whole blocks (in parallel when long) and returns true; otherwise false.
fn tiled(a: &mut [u64], block: usize, f: impl Fn(&mut [u64]) + Sync + Send) -> bool {
    if a.len() <= block || a.len() <= TILE {
        return false;
    }
    let tile = block.max(TILE);
    if a.len() >= PAR_MIN {
        a.par_chunks_mut(tile).for_each(f);
    } else {
        a.chunks_mut(tile).for_each(f);
    }
    true
}

/// Taylor expansion at y = x^(2^m) + x of every block of 2^k coefficients (`w` words each) in
/// `a`: afterwards coefficient group u (2^m coefficients) of a block holds h_u with
/// f = Σ_u h_u(x)·y^u. Level kk (from k down to m + 1) divides every sub-block of 2^kk
/// coefficients by y^(2^r) = x^(2^(kk−1)) + x^(2^r), r = kk − 1 − m (squaring is additive in
/// characteristic 2), leaving the remainder below and the quotient above. `inverse` undoes it
/// (levels bottom up, each multiplying back by the divisor).
fn taylor(a: &mut [u64], k: u32, m: u32, w: usize, inverse: bool) {
    if k <= m {
        return;
    }
    // The levels below work on sub-blocks of 2^(k−1) coefficients: once those are small, they
    // are finished tile by tile, in cache.
    let below = |a: &mut [u64]| {
        if !tiled(a, w << (k - 1), |t| taylor(t, k - 1, m, w, inverse)) {
            taylor(a, k - 1, m, w, inverse);
        }
    };
    if inverse {
        below(a);
        divide_level(a, k, m, w, true);
    } else {
        divide_level(a, k, m, w, false);
        below(a);
    }
}

/// One Taylor level on every sub-block of 2^kk coefficients (see [`taylor`]).
fn divide_level(a: &mut [u64], kk: u32, m: u32, w: usize, inverse: bool) {
    let block = w << kk;
    let half = block / 2;
    let dist = half - (w << (kk - 1 - m));
    for b in a.chunks_exact_mut(block) {
        if inverse {
            // Bottom up: every quotient word is read before it is restored.
            let mut lo = half;
            while lo < block {
                let hi = (lo + dist).min(block);
                let (dst, src) = b.split_at_mut(lo);
                xor_into(&mut dst[lo - dist..hi - dist], &src[..hi - lo]);
                lo = hi;
            }
        } else {
            // Top down, in chunks no longer than `dist`: a[p − dist] ^= a[p] for p ≥ half.
            let mut hi = block;
            while hi > half {
                let lo = hi.saturating_sub(dist).max(half);
                let (dst, src) = b.split_at_mut(lo);
                xor_into(&mut dst[lo - dist..hi - dist], &src[..hi - lo]);
                hi = lo;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_bits(rng: &mut impl Rng, len: usize) -> SecretBits {
        let mut words: Vec<u64> = (0..len.div_ceil(64)).map(|_| rng.gen()).collect();
        clear_tail(&mut words, len);
        SecretBits::from_words(words, len)
    }

    /// T·x straight from the definition T[i][j] = s[i − j + n − 1], one bit at a time.
    fn naive(x: &SecretBits, m: usize, s: &SecretBits) -> Vec<bool> {
        let n = x.len();
        (0..m)
            .map(|i| (0..n).fold(false, |acc, j| acc ^ (s.get(i + n - 1 - j) & x.get(j))))
            .collect()
    }

    #[test]
    fn cantor_basis_properties() {
        let beta = cantor_basis();
        assert_eq!(beta[0], 1);
        for i in 1..64 {
            assert_eq!(
                gf64::mul(gf64::Soft, beta[i], beta[i]) ^ beta[i],
                beta[i - 1]
            );
        }
        // Linearly independent over GF(2): rank 64.
        let mut rows: Vec<u64> = beta.to_vec();
        let mut rank = 0;
        for bit in (0..64).rev() {
            if let Some(p) = (rank..64).find(|&r| (rows[r] >> bit) & 1 == 1) {
                rows.swap(rank, p);
                for r in 0..64 {
                    if r != rank && (rows[r] >> bit) & 1 == 1 {
                        rows[r] ^= rows[rank];
                    }
                }
                rank += 1;
            }
        }
        assert_eq!(rank, 64);
    }

    /// s_i(ω) = Σ_{u ⊆ i} ω^(2^u) for the Cantor basis.
    fn subspace_poly(i: u32, omega: u64) -> u64 {
        let mut pow = omega; // ω^(2^u)
        let mut acc = 0;
        for u in 0..=i {
            if u & i == u {
                acc ^= pow;
            }
            pow = gf64::mul(gf64::Soft, pow, pow);
        }
        acc
    }

    /// Monomial coefficients (GF(2)) of the novel basis polynomial X_j = Π s_i^{j_i}.
    fn novel_poly(j: usize) -> Vec<bool> {
        let mut p = vec![true];
        let mut i = 0;
        while (j >> i) != 0 {
            if (j >> i) & 1 == 1 {
                let deg = 1usize << i;
                let mut q = vec![false; p.len() + deg];
                for (a, &pa) in p.iter().enumerate() {
                    if !pa {
                        continue;
                    }
                    for u in 0..=i {
                        if u & i == u {
                            q[a + (1 << u)] ^= true;
                        }
                    }
                }
                p = q;
            }
            i += 1;
        }
        p
    }

    #[test]
    fn basis_conversion_matches_definition_and_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for k in 0..=9u32 {
            let n = 1usize << k;
            let d: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
            // f = Σ d_j X_j in the monomial basis.
            let mut f = vec![0u64; n];
            for (j, &dj) in d.iter().enumerate() {
                for (e, &bit) in novel_poly(j).iter().enumerate() {
                    if bit {
                        f[e] ^= dj;
                    }
                }
            }
            let mut g = f.clone();
            to_novel(&mut g, k, 1);
            assert_eq!(g, d, "to_novel, k = {k}");
            from_novel(&mut g, k, 1);
            assert_eq!(g, f, "from_novel, k = {k}");
        }
        // Larger sizes: round trip only (parallel paths included).
        for k in [12u32, 17] {
            let f: Vec<u64> = (0..1usize << k).map(|_| rng.gen()).collect();
            let mut g = f.clone();
            to_novel(&mut g, k, 1);
            from_novel(&mut g, k, 1);
            assert_eq!(g, f, "round trip, k = {k}");
        }
    }

    #[test]
    fn fft_evaluates_the_novel_basis_polynomial() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let beta = cantor_basis();
        for k in 0..=7u32 {
            let n = 1usize << k;
            let tw = Twiddles::new(k);
            let d: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
            let mut e = d.clone();
            fft(gf64::Soft, &mut e, 0, &tw, false);
            for (p, &ep) in e.iter().enumerate() {
                let omega = (0..k)
                    .filter(|t| (p >> t) & 1 == 1)
                    .fold(0, |acc, t| acc ^ beta[t as usize]);
                let want = d.iter().enumerate().fold(0u64, |acc, (j, &dj)| {
                    let xj = (0..k).filter(|i| (j >> i) & 1 == 1).fold(1u64, |v, i| {
                        gf64::mul(gf64::Soft, v, subspace_poly(i, omega))
                    });
                    acc ^ gf64::mul(gf64::Soft, dj, xj)
                });
                assert_eq!(ep, want, "k = {k}, point {p}");
            }
            fft(gf64::Soft, &mut e, 0, &tw, true);
            assert_eq!(e, d, "inverse, k = {k}");
        }
    }

    fn schoolbook(a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut c = vec![0u64; a.len() + b.len() - 1];
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                c[i + j] ^= gf64::mul(gf64::Soft, x, y);
            }
        }
        c
    }

    #[test]
    fn polynomial_product_matches_schoolbook() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for (la, lb) in [
            (1, 1),
            (1, 5),
            (3, 2),
            (7, 9),
            (64, 64),
            (100, 29),
            (700, 1300),
            (3000, 2000),
        ] {
            let a: Vec<u64> = (0..la).map(|_| rng.gen()).collect();
            let b: Vec<u64> = (0..lb).map(|_| rng.gen()).collect();
            let want = schoolbook(&a, &b);
            let k = (la + lb - 1usize).next_power_of_two().trailing_zeros();
            let run = |fa: &mut Vec<u64>, fb: &mut Vec<u64>, kernel: usize| match kernel {
                0 => multiply_with(gf64::Soft, fa, fb, k, [la, lb], false),
                #[cfg(target_arch = "x86_64")]
                1 => multiply_with(gf64::Pclmul::detect().unwrap(), fa, fb, k, [la, lb], false),
                #[cfg(target_arch = "x86_64")]
                2 => multiply_with(vpclmul_kernels::Vpclmul::detect().unwrap(), fa, fb, k, [la, lb], false),
                _ => multiply_in_place(fa, fb, k, [la, lb], false),
            };
            let mut kernels = vec![0usize, 3];
            #[cfg(target_arch = "x86_64")]
            {
                if gf64::Pclmul::detect().is_some() {
                    kernels.push(1);
                }
                if vpclmul_kernels::Vpclmul::detect().is_some() {
                    kernels.push(2);
                }
            }
            for kernel in kernels {
                let mut fa = a.clone();
                fa.resize(1 << k, 0);
                let mut fb = b.clone();
                fb.resize(1 << k, 0);
                run(&mut fa, &mut fb, kernel);
                assert_eq!(&fa[..want.len()], &want[..], "{la}x{lb}, kernel {kernel}");
                assert!(fa[want.len()..].iter().all(|&v| v == 0));
            }
        }
    }

    #[test]
    fn direct_matches_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        for n in [1usize, 2, 3, 7, 63, 64, 65, 130, 200] {
            for m in [1, n / 2, n].into_iter().filter(|&m| m >= 1) {
                let x = random_bits(&mut rng, n);
                let s = random_bits(&mut rng, n + m - 1);
                let y = toeplitz_direct(&x, m, ToeplitzSeed::Bits(&s)).unwrap();
                assert_eq!(y.to_bools(), naive(&x, m, &s), "n = {n}, m = {m}");
            }
        }
    }

    #[test]
    fn fast_matches_direct_on_many_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let mut sizes = vec![
            (1usize, 1usize),
            (2, 1),
            (2, 2),
            (31, 17),
            (32, 32),
            (33, 1),
            (64, 63),
        ];
        sizes.extend([
            (65, 64),
            (127, 3),
            (1000, 999),
            (4097, 2048),
            (20_000, 10_001),
        ]);
        for _ in 0..40 {
            let n = rng.gen_range(1..6000);
            sizes.push((n, rng.gen_range(1..=n)));
        }
        for (n, m) in sizes {
            let x = random_bits(&mut rng, n);
            let s = random_bits(&mut rng, n + m - 1);
            let fast = toeplitz_hash(&x, m, ToeplitzSeed::Bits(&s)).unwrap();
            let direct = toeplitz_direct(&x, m, ToeplitzSeed::Bits(&s)).unwrap();
            assert_eq!(fast.len(), m);
            assert!(fast == direct, "n = {n}, m = {m}");
            // Bits past m in the last word are clear.
            if m % 64 != 0 {
                assert_eq!(fast.words().last().unwrap() >> (m % 64), 0);
            }
        }
    }

    #[test]
    fn large_block_spot_checks() {
        // 2^20 + 13 input bits (parallel paths), m = n/2; 48 output bits checked directly.
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let n = (1 << 20) + 13;
        let m = n / 2;
        let x = random_bits(&mut rng, n);
        let key: [u8; 32] = rng.gen();
        let y = toeplitz_hash(&x, m, ToeplitzSeed::ChaCha20(key)).unwrap();
        let s = seed_bits(key, n + m - 1);
        let xw: Vec<u64> = masked_words(&x).collect();
        let sw: Vec<u64> = masked_words(&s).collect();
        for i in (0..48).map(|_| rng.gen_range(0..m)).chain([0, m - 1]) {
            assert_eq!(y.get(i), direct_bit(&xw, &sw, n, i), "bit {i}");
        }
    }

    #[test]
    fn chacha_seed_equals_explicit_bits_and_hash_is_linear() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (n, m) = (5000, 2100);
        let key = [42u8; 32];
        let s = seed_bits(key, n + m - 1);
        let x1 = random_bits(&mut rng, n);
        let x2 = random_bits(&mut rng, n);
        let y1 = toeplitz_hash(&x1, m, ToeplitzSeed::ChaCha20(key)).unwrap();
        assert!(y1 == toeplitz_hash(&x1, m, ToeplitzSeed::Bits(&s)).unwrap());
        let y2 = toeplitz_hash(&x2, m, ToeplitzSeed::ChaCha20(key)).unwrap();
        let mut x12 = x1.clone();
        x12.as_mut_bitslice()
            .iter_mut()
            .zip(x2.as_bitslice().iter())
            .for_each(|(mut a, b)| {
                let v = *a ^ *b;
                a.set(v);
            });
        let y12 = toeplitz_hash(&x12, m, ToeplitzSeed::ChaCha20(key)).unwrap();
        let xor: Vec<bool> = y1
            .to_bools()
            .iter()
            .zip(y2.to_bools())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(y12.to_bools(), xor);
        // A different seed gives a different output (with overwhelming probability).
        assert!(y1 != toeplitz_hash(&x1, m, ToeplitzSeed::ChaCha20([43; 32])).unwrap());
    }

    /// The three seed encodings describe the same matrices: a novel-basis seed hashes like its
    /// monomial form given as matrix diagonals, on the fast path and the direct one, and the
    /// ChaCha20 seed is the novel seed made of the stream's first n + m − 1 bits.
    #[test]
    fn seed_encodings_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        let mut sizes = vec![(1usize, 1usize), (33, 1), (64, 64), (97, 40), (4097, 2048), (20_000, 10_001)];
        for _ in 0..20 {
            let n = rng.gen_range(1..4000);
            sizes.push((n, rng.gen_range(1..=n)));
        }
        for (n, m) in sizes {
            let len = seed_len(n, m);
            let x = random_bits(&mut rng, n);
            let novel = random_bits(&mut rng, len);
            let monomial = monomial_seed(&novel);
            assert_eq!(monomial.len(), len);
            let want = toeplitz_direct(&x, m, ToeplitzSeed::Bits(&monomial)).unwrap();
            assert!(toeplitz_hash(&x, m, ToeplitzSeed::Novel(&novel)).unwrap() == want, "n = {n}, m = {m}");
            assert!(toeplitz_direct(&x, m, ToeplitzSeed::Novel(&novel)).unwrap() == want, "n = {n}, m = {m}");
            assert!(toeplitz_hash(&x, m, ToeplitzSeed::Bits(&monomial)).unwrap() == want, "n = {n}, m = {m}");

            let key: [u8; 32] = rng.gen();
            let mut stream = ChaCha20Rng::from_seed(key);
            let mut words: Vec<u64> = (0..len.div_ceil(64)).map(|_| stream.next_u64()).collect();
            clear_tail(&mut words, len);
            let stream_bits = SecretBits::from_words(words, len);
            assert!(seed_bits(key, len) == monomial_seed(&stream_bits), "n = {n}, m = {m}");
            let want = toeplitz_hash(&x, m, ToeplitzSeed::Novel(&stream_bits)).unwrap();
            assert!(toeplitz_hash(&x, m, ToeplitzSeed::ChaCha20(key)).unwrap() == want, "n = {n}, m = {m}");
            assert!(toeplitz_direct(&x, m, ToeplitzSeed::ChaCha20(key)).unwrap() == want, "n = {n}, m = {m}");
        }
    }

    /// The novel → monomial seed map is a bijection on bit strings of every length (so a
    /// uniform seed stays uniform): its GF(2) matrix, columns the images of the unit seeds, has
    /// full rank, and the last (partial) 32-bit piece of the image is that of the novel seed.
    #[test]
    fn novel_seed_map_is_a_bijection() {
        for len in [1usize, 31, 32, 33, 64, 95, 130, 257] {
            let mut rows: Vec<Vec<u64>> = (0..len)
                .map(|i| {
                    let mut e = SecretBits::zeros(len);
                    e.set(i, true);
                    let img = monomial_seed(&e);
                    // The last piece of the image is that of the unit (X_i has leading
                    // coefficient 1 and no other X_j reaches degree i).
                    let last = (len - 1) / 32 * 32;
                    assert!(
                        (last..len).all(|j| img.get(j) == e.get(j)),
                        "len {len}: unit {i} changes the last piece"
                    );
                    masked_words(&img).collect()
                })
                .collect();
            // Gaussian elimination over GF(2).
            let mut rank = 0;
            for bit in 0..len {
                let (w, b) = (bit / 64, bit % 64);
                if let Some(p) = (rank..len).find(|&r| rows[r][w] >> b & 1 == 1) {
                    rows.swap(rank, p);
                    let pivot = rows[rank].clone();
                    for (r, row) in rows.iter_mut().enumerate() {
                        if r != rank && row[w] >> b & 1 == 1 {
                            row.iter_mut().zip(&pivot).for_each(|(a, p)| *a ^= p);
                        }
                    }
                    rank += 1;
                }
            }
            assert_eq!(rank, len, "len {len}: the map is not invertible");
        }
    }

    #[test]
    fn invalid_sizes_are_errors() {
        let x = SecretBits::zeros(100);
        let s = SecretBits::zeros(149);
        assert_eq!(
            toeplitz_hash(&SecretBits::new(), 1, ToeplitzSeed::ChaCha20([0; 32])).unwrap_err(),
            ToeplitzError::EmptyInput
        );
        assert_eq!(
            toeplitz_hash(&x, 0, ToeplitzSeed::ChaCha20([0; 32])).unwrap_err(),
            ToeplitzError::EmptyOutput
        );
        assert_eq!(
            toeplitz_hash(&x, 101, ToeplitzSeed::ChaCha20([0; 32])).unwrap_err(),
            ToeplitzError::OutputTooLong {
                out_bits: 101,
                in_bits: 100
            }
        );
        assert_eq!(
            toeplitz_hash(&x, 51, ToeplitzSeed::Bits(&s)).unwrap_err(),
            ToeplitzError::SeedLength {
                got: 149,
                needed: 150,
                out_bits: 51,
                in_bits: 100
            }
        );
        assert!(toeplitz_hash(&x, 50, ToeplitzSeed::Bits(&s)).is_ok());
        assert!(toeplitz_direct(&x, 101, ToeplitzSeed::Bits(&s)).is_err());
    }
}
