//! Verification of reconciled keys by universal hashing.
//!
//! After reconciliation Alice and Bob each hold a string they believe equal. Alice computes a
//! short tag of hers with a hash function drawn from an almost-universal family and sends it
//! (with the choice of function) to Bob, who compares it with the tag of his string. Equal
//! strings always pass; unequal strings pass with probability at most `eps_cor`, which is the
//! correctness parameter of the finite-key analysis ([`super::finite_key`]).
//!
//! # Hash family
//! Polynomial evaluation over GF(2^64) (field polynomial x^64 + x^4 + x^3 + x + 1). A key of
//! `L` packed 64-bit words `w_1..w_L` and bit length `len` is hashed at a point `r` by Horner's
//! rule as
//!
//! `H_r = w_1·r^(L+1) + w_2·r^L + … + w_L·r^2 + len·r`,
//!
//! a polynomial in `r` of degree at most `L + 1` without constant term. Two different keys of
//! at most `L` words (of the same or of different lengths) give different polynomials, whose
//! difference has at most `L + 1` roots, so for a uniformly random `r` they collide with
//! probability at most `(L + 1) / 2^64`. The tag is the hash at `t` independent points, which
//! brings the collision probability to `((L + 1) / 2^64)^t`; [`VerifyParams::evaluations`]
//! picks the least `t` that reaches `eps_cor` for the longest key the hash key is drawn for.
//!
//! The points need not be secret: the bound holds for any pair of strings fixed before the
//! points are drawn, so they are derived from fresh shared randomness for each block *after*
//! reconciliation ([`VerifyKey::from_seed`]). The tag itself is public and reveals
//! [`VerifyTag::bits`] bits about the key; that number goes into the leakage term of the
//! key-length formula.
//!
//! # On a mismatch
//! [`verify`] returns [`VerifyError::Mismatch`] when the tags differ. The block must then be
//! discarded by both sides (it is never privacy-amplified or used); nothing is retried on the
//! same bits, because the tag has already leaked information about them.

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroize;

use super::key::SecretBits;

/// Default correctness parameter: probability that unequal keys pass verification.
pub const DEFAULT_EPS_COR: f64 = 1e-15;

/// Largest number of GF(2^64) evaluations in a tag (so tags are at most 256 bits).
pub const MAX_EVALUATIONS: usize = 4;

/// Errors of key verification.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VerifyError {
    /// `eps_cor` is not a probability strictly between 0 and 1.
    #[error("eps_cor must lie strictly between 0 and 1, got {0}")]
    InvalidEpsCor(f64),
    /// The requested `eps_cor` needs a longer tag than supported for this key length.
    #[error(
        "eps_cor = {eps_cor:e} for keys of up to {max_key_bits} bits needs {needed} GF(2^64) \
         evaluations, more than the {max} supported"
    )]
    EpsCorUnreachable {
        /// Requested correctness parameter (probability).
        eps_cor: f64,
        /// Longest key length the hash key was requested for (bits).
        max_key_bits: usize,
        /// Evaluations that would be needed.
        needed: usize,
        /// Evaluations supported ([`MAX_EVALUATIONS`]).
        max: usize,
    },
    /// The key is longer than the hash key was drawn for, so the collision bound would not hold.
    #[error(
        "key has {key_bits} bits but the verification key was drawn for at most {max_key_bits}"
    )]
    KeyTooLong {
        /// Length of the key being hashed (bits).
        key_bits: usize,
        /// Longest key the verification key covers (bits).
        max_key_bits: usize,
    },
    /// The received tag does not have the number of evaluations the verification key has.
    #[error("received tag has {got} bits, expected {expected} bits")]
    TagLength {
        /// Bits in the received tag.
        got: usize,
        /// Bits in a tag made with this verification key.
        expected: usize,
    },
    /// The tags differ: the reconciled keys are not equal, and the block must be discarded.
    #[error("verification tags ({tag_bits} bits) differ: the reconciled keys are not equal; discard the block")]
    Mismatch {
        /// Bits of the tag, which were disclosed all the same (bits).
        tag_bits: usize,
    },
}

/// Parameters of verification.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerifyParams {
    /// Correctness parameter: the largest acceptable probability that two unequal keys pass
    /// (probability, strictly between 0 and 1). Default [`DEFAULT_EPS_COR`].
    pub eps_cor: f64,
}

impl Default for VerifyParams {
    fn default() -> Self {
        Self {
            eps_cor: DEFAULT_EPS_COR,
        }
    }
}

impl VerifyParams {
    /// Number of independent GF(2^64) evaluations a tag needs so that two unequal keys of at most
    /// `max_key_bits` bits collide with probability at most `eps_cor`.
    ///
    /// Errors when `eps_cor` is not in (0, 1) or would need more than [`MAX_EVALUATIONS`].
    pub fn evaluations(&self, max_key_bits: usize) -> Result<usize, VerifyError> {
        let eps = self.eps_cor;
        if !(eps > 0.0 && eps < 1.0) {
            return Err(VerifyError::InvalidEpsCor(eps));
        }
        let per_eval = per_evaluation_security_bits(max_key_bits);
        let needed_bits = -eps.log2();
        let unreachable = |needed| VerifyError::EpsCorUnreachable {
            eps_cor: eps,
            max_key_bits,
            needed,
            max: MAX_EVALUATIONS,
        };
        if per_eval <= 0.0 {
            return Err(unreachable(usize::MAX));
        }
        let mut t = (needed_bits / per_eval).ceil().max(1.0) as usize;
        // Guard against rounding in the division: t·per_eval must reach needed_bits.
        if (t as f64) * per_eval < needed_bits {
            t += 1;
        }
        if t > MAX_EVALUATIONS {
            return Err(unreachable(t));
        }
        Ok(t)
    }

    /// Length of the tag (bits) for keys of at most `max_key_bits` bits: 64 per evaluation.
    pub fn tag_bits(&self, max_key_bits: usize) -> Result<usize, VerifyError> {
        Ok(64 * self.evaluations(max_key_bits)?)
    }
}

/// `-log2((L + 1) / 2^64)`: the security (bits) one evaluation gives for keys of at most
/// `max_key_bits` bits (`L` words).
fn per_evaluation_security_bits(max_key_bits: usize) -> f64 {
    let words = max_key_bits.div_ceil(64) as f64;
    64.0 - (words + 1.0).log2()
}

/// Upper bound on the probability that two unequal keys of at most `max_key_bits` bits get
/// equal tags with `evaluations` independent points (probability).
pub fn collision_bound(max_key_bits: usize, evaluations: usize) -> f64 {
    (-per_evaluation_security_bits(max_key_bits) * evaluations as f64).exp2()
}

/// The hash function choice: `t` evaluation points in GF(2^64), valid for keys of at most
/// `max_key_bits` bits. Zeroized on drop; `Debug` shows only the sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey {
    points: Vec<u64>,
    max_key_bits: usize,
}

impl VerifyKey {
    /// Draws the points from ChaCha20 keyed with `seed` (32 bytes of shared randomness, fresh
    /// for each block), with as many points as `params` needs for keys of `max_key_bits` bits.
    pub fn from_seed(
        params: &VerifyParams,
        max_key_bits: usize,
        seed: [u8; 32],
    ) -> Result<Self, VerifyError> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        Self::from_rng(params, max_key_bits, &mut rng)
    }

    /// Draws the points from a cryptographic random number generator.
    pub fn from_rng<R: RngCore + CryptoRng>(
        params: &VerifyParams,
        max_key_bits: usize,
        rng: &mut R,
    ) -> Result<Self, VerifyError> {
        let t = params.evaluations(max_key_bits)?;
        let points = (0..t).map(|_| rng.next_u64()).collect();
        Ok(Self {
            points,
            max_key_bits,
        })
    }

    /// Number of evaluation points.
    pub fn evaluations(&self) -> usize {
        self.points.len()
    }

    /// Longest key (bits) this hash key may be used for.
    pub fn max_key_bits(&self) -> usize {
        self.max_key_bits
    }

    /// Length of the tags it makes (bits).
    pub fn tag_bits(&self) -> usize {
        64 * self.points.len()
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VerifyKey({} points, keys up to {} bits, redacted)",
            self.points.len(),
            self.max_key_bits
        )
    }
}

impl Drop for VerifyKey {
    fn drop(&mut self) {
        self.points.zeroize();
    }
}

/// A verification tag: one GF(2^64) hash value per evaluation point. Public: it is sent over
/// the authenticated classical channel, and its [`bits`](Self::bits) count as leaked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyTag {
    values: Vec<u64>,
}

impl VerifyTag {
    /// A tag from its hash values (as received from the peer).
    pub fn from_values(values: Vec<u64>) -> Self {
        Self { values }
    }

    /// The hash values, one per evaluation point.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// Length of the tag (bits), i.e. the information it discloses about the key.
    pub fn bits(&self) -> usize {
        64 * self.values.len()
    }
}

/// Computes the tag of `key` under `hash_key`.
///
/// Errors with [`VerifyError::KeyTooLong`] when `key` is longer than `hash_key` was drawn for.
pub fn tag(key: &SecretBits, hash_key: &VerifyKey) -> Result<VerifyTag, VerifyError> {
    if key.len() > hash_key.max_key_bits {
        return Err(VerifyError::KeyTooLong {
            key_bits: key.len(),
            max_key_bits: hash_key.max_key_bits,
        });
    }
    Ok(VerifyTag {
        values: poly_hash(key, &hash_key.points),
    })
}

/// Checks `key` against the peer's tag `received`. Returns the number of bits the tag
/// disclosed (to add to the leakage), or [`VerifyError::Mismatch`], after which the caller
/// must discard the block.
pub fn verify(
    key: &SecretBits,
    hash_key: &VerifyKey,
    received: &VerifyTag,
) -> Result<usize, VerifyError> {
    if received.values.len() != hash_key.points.len() {
        return Err(VerifyError::TagLength {
            got: received.bits(),
            expected: hash_key.tag_bits(),
        });
    }
    let mine = tag(key, hash_key)?;
    // The tags are public, so a plain comparison leaks nothing.
    if mine == *received {
        Ok(mine.bits())
    } else {
        Err(VerifyError::Mismatch {
            tag_bits: mine.bits(),
        })
    }
}

/// Packed words of `key`, with the bits past `len()` in the last word cleared.
pub(crate) fn masked_words(key: &SecretBits) -> impl Iterator<Item = u64> + '_ {
    let words = key.words();
    let tail = key.len() % 64;
    let last = words.len().wrapping_sub(1);
    words.iter().enumerate().map(move |(i, &w)| {
        if i == last && tail != 0 {
            w & ((1u64 << tail) - 1)
        } else {
            w
        }
    })
}

fn poly_hash(key: &SecretBits, points: &[u64]) -> Vec<u64> {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = gf64::Pclmul::detect() {
        // SAFETY: `detect` confirmed the CPU supports pclmulqdq and sse2.
        return unsafe { poly_hash_pclmul(p, key, points) };
    }
    poly_hash_with(gf64::Soft, key, points)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
unsafe fn poly_hash_pclmul(m: gf64::Pclmul, key: &SecretBits, points: &[u64]) -> Vec<u64> {
    poly_hash_with(m, key, points)
}

#[inline(always)]
fn poly_hash_with<M: gf64::ClMul>(m: M, key: &SecretBits, points: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(points.len());
    // Evaluate up to two points per pass, interleaved, so two multiplication chains overlap.
    for pair in points.chunks(2) {
        match *pair {
            [r0, r1] => out.extend_from_slice(&horner::<M, 2>(m, key, [r0, r1])),
            [r0] => out.extend_from_slice(&horner::<M, 1>(m, key, [r0])),
            _ => unreachable!("chunks(2) yields one or two points"),
        }
    }
    out
}

#[inline(always)]
fn horner<M: gf64::ClMul, const T: usize>(m: M, key: &SecretBits, r: [u64; T]) -> [u64; T] {
    let mut h = [0u64; T];
    for w in masked_words(key) {
        for e in 0..T {
            h[e] = gf64::mul(m, h[e] ^ w, r[e]);
        }
    }
    for e in 0..T {
        h[e] = gf64::mul(m, h[e] ^ key.len() as u64, r[e]);
    }
    h
}

/// Arithmetic in GF(2^64) = GF(2)[x] / (x^64 + x^4 + x^3 + x + 1), elements as `u64` bit
/// vectors (bit `i` is the coefficient of x^i). Shared with [`super::toeplitz`].
///
/// Carry-less multiplication uses the x86 `pclmulqdq` instruction when the CPU has it (checked
/// at run time: a [`Pclmul`] value exists only after [`Pclmul::detect`] succeeded) and a
/// constant-time shift-and-mask loop otherwise. No crate offers a GF(2^64) field with run-time
/// dispatch to carry-less multiplication, so this small module is written here.
pub(crate) mod gf64 {
    /// A way to compute the 128-bit carry-less product of two 64-bit words.
    pub(crate) trait ClMul: Copy + Send + Sync {
        /// Carry-less product of `a` and `b` as (low word, high word).
        fn clmul(self, a: u64, b: u64) -> (u64, u64);
    }

    /// Portable carry-less multiplication (constant time; about 64 shift/mask steps).
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Soft;

    impl ClMul for Soft {
        #[inline(always)]
        fn clmul(self, a: u64, b: u64) -> (u64, u64) {
            let a = a as u128;
            let mut acc = 0u128;
            for i in 0..64 {
                let mask = 0u128.wrapping_sub(((b >> i) & 1) as u128);
                acc ^= (a << i) & mask;
            }
            (acc as u64, (acc >> 64) as u64)
        }
    }

    /// Carry-less multiplication with `pclmulqdq`; only constructible on CPUs that have it.
    #[cfg(target_arch = "x86_64")]
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Pclmul {
        _checked: (),
    }

    #[cfg(target_arch = "x86_64")]
    impl Pclmul {
        /// `Some` when the running CPU supports `pclmulqdq` and SSE2.
        pub(crate) fn detect() -> Option<Self> {
            (std::arch::is_x86_feature_detected!("pclmulqdq")
                && std::arch::is_x86_feature_detected!("sse2"))
            .then_some(Self { _checked: () })
        }
    }

    #[cfg(target_arch = "x86_64")]
    impl ClMul for Pclmul {
        #[inline(always)]
        fn clmul(self, a: u64, b: u64) -> (u64, u64) {
            use std::arch::x86_64::*;
            // SAFETY: a `Pclmul` value exists only after `detect` found pclmulqdq and sse2.
            unsafe {
                let r = _mm_clmulepi64_si128(
                    _mm_set_epi64x(0, a as i64),
                    _mm_set_epi64x(0, b as i64),
                    0x00,
                );
                (
                    _mm_cvtsi128_si64(r) as u64,
                    _mm_cvtsi128_si64(_mm_unpackhi_epi64(r, r)) as u64,
                )
            }
        }
    }

    /// Reduces the 128-bit polynomial `hi·x^64 + lo` modulo x^64 + x^4 + x^3 + x + 1.
    ///
    /// `x^64 ≡ x^4 + x^3 + x + 1`; the product `hi·(x^4+x^3+x+1)` overflows 64 bits by
    /// `o = hi>>63 ^ hi>>61 ^ hi>>60` (at most 4 bits), which is folded in by reducing
    /// `(hi ^ o)·(x^4+x^3+x+1)` truncated to 64 bits.
    #[inline(always)]
    pub(crate) fn reduce(lo: u64, hi: u64) -> u64 {
        let t = hi ^ (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
        lo ^ t ^ (t << 1) ^ (t << 3) ^ (t << 4)
    }

    /// Product of `a` and `b` in GF(2^64).
    #[inline(always)]
    pub(crate) fn mul<M: ClMul>(m: M, a: u64, b: u64) -> u64 {
        let (lo, hi) = m.clmul(a, b);
        reduce(lo, hi)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use rand::{Rng, SeedableRng};

        /// Reference: shift-and-add multiplication with reduction after every shift.
        fn mul_reference(mut a: u64, mut b: u64) -> u64 {
            let mut r = 0u64;
            while b != 0 {
                if b & 1 == 1 {
                    r ^= a;
                }
                let carry = a >> 63;
                a <<= 1;
                if carry == 1 {
                    a ^= 0x1B;
                }
                b >>= 1;
            }
            r
        }

        #[test]
        fn soft_and_pclmul_match_reference() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let edge = [0u64, 1, 2, 0x1B, u64::MAX, 1 << 63, 0xF000_0000_0000_0000];
            let mut pairs: Vec<(u64, u64)> = edge
                .iter()
                .flat_map(|&a| edge.iter().map(move |&b| (a, b)))
                .collect();
            pairs.extend((0..2000).map(|_| (rng.gen(), rng.gen())));
            for (a, b) in pairs {
                let want = mul_reference(a, b);
                assert_eq!(mul(Soft, a, b), want, "soft {a:#x}·{b:#x}");
                #[cfg(target_arch = "x86_64")]
                if let Some(p) = Pclmul::detect() {
                    assert_eq!(mul(p, a, b), want, "pclmul {a:#x}·{b:#x}");
                }
            }
        }

        #[test]
        fn field_laws() {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
            for _ in 0..500 {
                let (a, b, c): (u64, u64, u64) = (rng.gen(), rng.gen(), rng.gen());
                assert_eq!(mul(Soft, a, b), mul(Soft, b, a));
                assert_eq!(mul(Soft, a, b ^ c), mul(Soft, a, b) ^ mul(Soft, a, c));
                assert_eq!(mul(Soft, mul(Soft, a, b), c), mul(Soft, a, mul(Soft, b, c)));
                assert_eq!(mul(Soft, a, 1), a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_key(rng: &mut impl Rng, len: usize) -> SecretBits {
        let words = (0..len.div_ceil(64)).map(|_| rng.gen()).collect();
        SecretBits::from_words(words, len)
    }

    #[test]
    fn tag_length_follows_eps_and_key_length() {
        let p = VerifyParams::default();
        // 1e8 bits: L = 1_562_500 words, 64 - log2(L+1) ≈ 43.43 bits per evaluation;
        // log2(1e15) ≈ 49.83 bits needed, so two evaluations (128 bits).
        assert_eq!(p.evaluations(100_000_000).unwrap(), 2);
        assert_eq!(p.tag_bits(100_000_000).unwrap(), 128);
        // A loose eps_cor is met by one evaluation.
        assert_eq!(
            VerifyParams { eps_cor: 1e-9 }
                .evaluations(100_000_000)
                .unwrap(),
            1
        );
        let bound = collision_bound(100_000_000, 2);
        assert!(bound <= 1e-15 && bound > 1e-30, "bound {bound:e}");
    }

    #[test]
    fn invalid_or_unreachable_eps_is_rejected() {
        for eps in [0.0, 1.0, -1e-3, 2.0, f64::NAN] {
            assert!(matches!(
                VerifyParams { eps_cor: eps }.evaluations(1000),
                Err(VerifyError::InvalidEpsCor(_))
            ));
        }
        let err = VerifyParams { eps_cor: 1e-80 }
            .evaluations(100_000_000)
            .unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::EpsCorUnreachable {
                    needed: 7,
                    max: 4,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn equal_keys_pass_and_report_leak() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let params = VerifyParams::default();
        for len in [0usize, 1, 63, 64, 65, 1000, 4096, 100_003] {
            let a = random_key(&mut rng, len);
            let b = a.clone();
            let hk = VerifyKey::from_seed(&params, 200_000, rng.gen()).unwrap();
            let t = tag(&a, &hk).unwrap();
            assert_eq!(t.bits(), hk.tag_bits());
            assert_eq!(verify(&b, &hk, &t), Ok(hk.tag_bits()));
        }
    }

    #[test]
    fn single_bit_flips_and_length_changes_are_caught() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let params = VerifyParams::default();
        let a = random_key(&mut rng, 10_000);
        for trial in 0..200 {
            let hk = VerifyKey::from_seed(&params, 20_000, rng.gen()).unwrap();
            let t = tag(&a, &hk).unwrap();
            let mut b = a.clone();
            b.flip(rng.gen_range(0..a.len()));
            assert_eq!(
                verify(&b, &hk, &t),
                Err(VerifyError::Mismatch {
                    tag_bits: hk.tag_bits()
                }),
                "trial {trial}"
            );
        }
        // A key extended by zero bits differs only in its length: still caught.
        let hk = VerifyKey::from_seed(&params, 20_000, [9; 32]).unwrap();
        let t = tag(&a, &hk).unwrap();
        let mut longer = a.clone();
        longer.push(false);
        assert!(matches!(
            verify(&longer, &hk, &t),
            Err(VerifyError::Mismatch { .. })
        ));
    }

    #[test]
    fn garbage_past_the_length_is_ignored() {
        // The same 70 bits, once with dirty bits past the end of the last word.
        let a = SecretBits::from_words(vec![0xDEAD_BEEF, 0x3F], 70);
        let b = SecretBits::from_words(vec![0xDEAD_BEEF, 0xFFFF_FFFF_FFFF_FF3F], 70);
        let hk = VerifyKey::from_seed(&VerifyParams::default(), 70, [3; 32]).unwrap();
        assert_eq!(tag(&a, &hk).unwrap(), tag(&b, &hk).unwrap());
    }

    #[test]
    fn key_longer_than_drawn_for_and_wrong_tag_size_are_errors() {
        let hk = VerifyKey::from_seed(&VerifyParams::default(), 100, [1; 32]).unwrap();
        let long = SecretBits::zeros(101);
        assert_eq!(
            tag(&long, &hk).unwrap_err(),
            VerifyError::KeyTooLong {
                key_bits: 101,
                max_key_bits: 100
            }
        );
        let short = SecretBits::zeros(100);
        let bad = VerifyTag::from_values(vec![0; hk.evaluations() + 1]);
        assert!(matches!(
            verify(&short, &hk, &bad),
            Err(VerifyError::TagLength { .. })
        ));
    }

    #[test]
    fn matches_a_direct_polynomial_evaluation() {
        // H = Σ w_i r^(L+2-i) + len·r, evaluated term by term with explicit powers.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let key = random_key(&mut rng, 300);
        let hk = VerifyKey::from_seed(&VerifyParams { eps_cor: 1e-30 }, 300, [4; 32]).unwrap();
        let t = tag(&key, &hk).unwrap();
        let words: Vec<u64> = masked_words(&key).collect();
        for (e, &r) in hk.points.iter().enumerate() {
            let pow = |k: usize| (0..k).fold(1u64, |acc, _| gf64::mul(gf64::Soft, acc, r));
            let l = words.len();
            let mut h = gf64::mul(gf64::Soft, 300, r);
            for (i, &w) in words.iter().enumerate() {
                h ^= gf64::mul(gf64::Soft, w, pow(l + 1 - i));
            }
            assert_eq!(t.values()[e], h);
        }
    }

    #[test]
    fn debug_is_redacted() {
        let hk = VerifyKey::from_seed(&VerifyParams::default(), 64, [1; 32]).unwrap();
        let s = format!("{hk:?}");
        assert!(s.contains("redacted") && !s.contains(&format!("{}", hk.points[0])));
    }
}
