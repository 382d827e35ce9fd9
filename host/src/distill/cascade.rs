//! Cascade information reconciliation (Brassard and Salvail, 1993) with the improvements studied
//! by Martinez-Mateo, Pacher, Peev, Ciurana and Martin, "Demystifying the information
//! reconciliation protocol Cascade", Quantum Inf. Comput. 15 (2015):
//!
//! * top-level block sizes are powers of two chosen from the estimated QBER
//!   ([`CascadeParams::for_qber`]), with a second pass of larger blocks and many cheap later
//!   passes of half-key blocks that catch the rare leftovers;
//! * every pass reorders the key with a random permutation drawn from a seed both stations share
//!   ([`pass_permutation`], ChaCha8);
//! * BINARY search on dyadic sub-blocks, and the cascade effect: a corrected bit flips the error
//!   parity of the blocks containing it in every other started pass, which are then searched too;
//! * every parity Alice has disclosed is remembered (sub-block reuse): a search starts from the
//!   smallest known sub-block with odd error parity, the right half's parity is always inferred
//!   from its parent and the left half, and Alice's value of every bit a search ended on is
//!   remembered, so a two-bit sub-block holding such a bit is resolved without a query;
//! * the last top-level block parity of every pass after the first is inferred from the parity
//!   of the whole key, known from the first pass.
//!
//! Interaction: Bob ([`reconcile_bob`]) asks batches of [`ParityQuery`] of a [`ParityOracle`]
//! (Alice's side; over a network each call is one round trip). All top-level parities of all
//! passes go out in the first round trip (the set of disclosed parities is the same as when
//! asking pass by pass, since top-level parities are asked whatever happens); after that every
//! round trip advances all open searches of the started passes by one BINARY level. Searches in
//! one pass never overlap; a pass is started only when the passes before it have no odd block
//! left, which keeps searches of different passes from chasing the same error (so batching costs
//! almost no extra leakage compared with the serial protocol).
//!
//! Leakage: every answered query discloses one parity bit, and [`CascadeStats::leaked_bits`]
//! counts exactly the answered queries.

use crate::distill::finite_key::binary_entropy;
use std::collections::BTreeSet;
use std::time::Instant;

use bitvec::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroize;

use super::key::SecretBits;

/// Errors of Cascade reconciliation.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CascadeError {
    /// The parameters cannot be used (message says which one and why).
    #[error("invalid Cascade parameters: {0}")]
    InvalidParams(String),
    /// A key's length differs from the length the parameters were made for.
    #[error("key is {got} bits long but the Cascade parameters are for {expected} bits")]
    LengthMismatch {
        /// Length in the parameters, bits.
        expected: u64,
        /// Length of the key given, bits.
        got: u64,
    },
    /// A query names a pass that does not exist.
    #[error("parity query for pass {pass}, but the parameters have only {passes} passes")]
    BadPass {
        /// Pass asked for.
        pass: u32,
        /// Number of passes in the parameters.
        passes: u32,
    },
    /// A query's range is empty or runs past the end of the key.
    #[error("parity query range {start}..{end} of pass {pass} is empty or runs past the key length {n} bits")]
    BadRange {
        /// Pass of the query.
        pass: u32,
        /// First position (inclusive) in the pass's permuted order.
        start: u32,
        /// End position (exclusive).
        end: u32,
        /// Key length, bits.
        n: u64,
    },
    /// The oracle returned a different number of answers than queries sent.
    #[error("parity oracle answered {got} parities for {expected} queries")]
    AnswerCount {
        /// Queries sent.
        expected: usize,
        /// Answers received.
        got: usize,
    },
    /// Alice's answers contradict each other (a bit would have to be corrected twice).
    #[error("parity answers are inconsistent: more corrections ({flips}) than key bits ({n})")]
    Inconsistent {
        /// Corrections made when the inconsistency was detected.
        flips: u64,
        /// Key length, bits.
        n: u64,
    },
    /// The oracle (for example a network transport) failed.
    #[error("parity oracle failed: {0}")]
    Oracle(String),
}

/// One parity question from Bob: the parity of Alice's bits at positions `perm_pass[start..end]`,
/// where `perm_pass` is [`pass_permutation`] of pass `pass` (positions in the permuted order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ParityQuery {
    /// Pass number, from 0.
    pub pass: u32,
    /// First position, inclusive.
    pub start: u32,
    /// End position, exclusive.
    pub end: u32,
}

/// Answers batches of parity queries (Alice's side, possibly across a network).
/// One call is one round trip.
pub trait ParityOracle {
    /// Alice's parity (true = odd) for each query, in order.
    fn parities(&mut self, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError>;
}

/// Largest key length, bits (positions travel as `u32`).
pub const MAX_KEY_BITS: u64 = u32::MAX as u64;

/// Number of passes [`CascadeParams::for_qber`] uses.
pub const DEFAULT_PASSES: usize = 16;

/// Cascade parameters both stations must agree on (send them along with the seed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CascadeParams {
    /// Key length, bits.
    pub n: u64,
    /// For each pass, log2 of the top-level block size (bits). A value at or above
    /// ceil(log2 n) makes the pass a single block holding the whole key.
    pub block_log2: Vec<u8>,
}

impl CascadeParams {
    /// Parameters for a key of `n` bits whose QBER (probability, 0 < qber < 0.5) is estimated
    /// as `qber`: [`DEFAULT_PASSES`] passes; first blocks of 2^ceil(log2(1/qber) - 1/2) bits
    /// (the paper's choice, about 0.7/qber), second-pass blocks of about 5/qber bits (a power of
    /// two, 4 to 8 times the first), a third pass of 4096-bit blocks, then blocks of
    /// 2^(floor(log2 n) - 1) bits, half the key or less (two to four top-level parities per pass),
    /// that catch what is left. They are not 2^(ceil(log2 n) - 1): for a key just above a power
    /// of two that is one block holding nearly the whole key, so two residual errors share it in
    /// almost every pass and survive (frame error rate 6·10^-3 measured at n = 134 483, QBER 2.2%). Larger second-pass blocks leak slightly
    /// less but lengthen the cascade chains (about twice the round trips for each doubling);
    /// this choice keeps f under 1.05 at QBER 1-5% with the fewest round trips we measured.
    pub fn for_qber(n: usize, qber: f64) -> Result<Self, CascadeError> {
        if !(qber > 0.0 && qber < 0.5) {
            return Err(CascadeError::InvalidParams(format!(
                "estimated QBER {qber} is not a probability in (0, 0.5)"
            )));
        }
        let k1 = ((1.0 / qber).log2() - 0.5).ceil().max(1.0) as u8;
        let k2 = ((5.0 / qber).log2().round() as u8).max(k1 + 1);
        let whole = ceil_log2(n as u64).max(1);
        let half = (63 - (n as u64).max(1).leading_zeros() as u8).saturating_sub(1).max(1);
        let mut block_log2 = vec![k1, k2, 12u8.max(k2 + 1)];
        block_log2.resize(DEFAULT_PASSES, half);
        for b in &mut block_log2 {
            *b = (*b).min(whole.saturating_sub(1)).max(1);
        }
        Self::with_block_log2(n, block_log2)
    }

    /// Parameters with explicit block sizes (log2 of bits, one per pass); checked.
    pub fn with_block_log2(n: usize, block_log2: Vec<u8>) -> Result<Self, CascadeError> {
        let p = Self { n: n as u64, block_log2 };
        p.validate()?;
        Ok(p)
    }

    /// Checks the parameters (both stations should do this on what they receive).
    pub fn validate(&self) -> Result<(), CascadeError> {
        if self.n == 0 || self.n > MAX_KEY_BITS {
            return Err(CascadeError::InvalidParams(format!(
                "key length {} bits is not in 1..={MAX_KEY_BITS}",
                self.n
            )));
        }
        if self.block_log2.is_empty() {
            return Err(CascadeError::InvalidParams("no passes".into()));
        }
        if self.block_log2.len() > u32::MAX as usize {
            return Err(CascadeError::InvalidParams("too many passes".into()));
        }
        if let Some(b) = self.block_log2.iter().find(|&&b| b > 40) {
            return Err(CascadeError::InvalidParams(format!("block size 2^{b} bits is too large")));
        }
        Ok(())
    }

    /// Number of passes.
    pub fn passes(&self) -> u32 {
        self.block_log2.len() as u32
    }

    /// log2 of the effective top-level block size of `pass` (capped at the whole key).
    fn top_level(&self, pass: usize) -> u32 {
        u32::from(self.block_log2[pass]).min(ceil_log2(self.n) as u32)
    }

    /// Top-level block size of `pass`, bits (the last block of a pass may be shorter).
    pub fn block_size(&self, pass: u32) -> u64 {
        (1u64 << self.top_level(pass as usize)).min(self.n)
    }
}

/// Smallest `l` with 2^l >= n.
fn ceil_log2(n: u64) -> u8 {
    (64 - n.saturating_sub(1).leading_zeros()) as u8
}

/// The permutation of pass `pass` for a key of `n` bits: position `i` of the pass's order holds
/// key bit `perm[i]`. A uniformly random Fisher-Yates shuffle (rand's) driven by ChaCha8 seeded
/// with `seed` on stream `pass`, so both stations derive it from the shared seed.
pub fn pass_permutation(n: usize, seed: u64, pass: u32) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(pass));
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.shuffle(&mut rng);
    perm
}

/// `key` reordered by `perm` (bit `i` of the result is key bit `perm[i]`), built word by word.
fn permute_bits(key: &SecretBits, perm: &[u32]) -> SecretBits {
    let src = key.words();
    let mut words = vec![0u64; perm.len().div_ceil(64)];
    for (w, chunk) in words.iter_mut().zip(perm.chunks(64)) {
        let mut acc = 0u64;
        for (i, &p) in chunk.iter().enumerate() {
            acc |= ((src[(p >> 6) as usize] >> (p & 63)) & 1) << i;
        }
        *w = acc;
        acc.zeroize();
    }
    SecretBits::from_words(words, perm.len())
}

/// Alice's side: answers parity queries from her key and the shared permutations.
/// Keeps one permuted copy of the key per pass (zeroized on drop).
pub struct CascadeAlice {
    n: u64,
    permuted: Vec<SecretBits>,
    answered: u64,
    calls: u64,
}

impl CascadeAlice {
    /// Prepares Alice's answers for `key` under `params` and the shared permutation `seed`.
    pub fn new(key: &SecretBits, params: &CascadeParams, seed: u64) -> Result<Self, CascadeError> {
        params.validate()?;
        if key.len() as u64 != params.n {
            return Err(CascadeError::LengthMismatch { expected: params.n, got: key.len() as u64 });
        }
        let n = key.len();
        let permuted = (0..params.passes())
            .into_par_iter()
            .map(|pass| permute_bits(key, &pass_permutation(n, seed, pass)))
            .collect();
        Ok(Self { n: params.n, permuted, answered: 0, calls: 0 })
    }

    /// Alice's parities for `queries`, after checking every query (pass exists, range non-empty
    /// and inside the key). Does not count them; [`ParityOracle::parities`] does.
    pub fn answer(&self, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
        queries
            .iter()
            .map(|q| {
                let bits = self.permuted.get(q.pass as usize).ok_or(CascadeError::BadPass {
                    pass: q.pass,
                    passes: self.permuted.len() as u32,
                })?;
                if q.start >= q.end || u64::from(q.end) > self.n {
                    return Err(CascadeError::BadRange { pass: q.pass, start: q.start, end: q.end, n: self.n });
                }
                Ok(bits.parity(q.start as usize, q.end as usize))
            })
            .collect()
    }

    /// Parity bits disclosed so far through [`ParityOracle::parities`] (Alice's count of the
    /// leakage, bits).
    pub fn answered_queries(&self) -> u64 {
        self.answered
    }

    /// Batches answered so far through [`ParityOracle::parities`] (round trips).
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

impl ParityOracle for CascadeAlice {
    fn parities(&mut self, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
        let answers = self.answer(queries)?;
        self.answered += queries.len() as u64;
        self.calls += 1;
        Ok(answers)
    }
}

/// Outcome of [`reconcile_bob`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CascadeStats {
    /// Parity bits disclosed by Alice (= queries answered), bits.
    pub leaked_bits: u64,
    /// Oracle calls (network round trips).
    pub round_trips: u64,
    /// Passes run.
    pub passes: u32,
    /// Bits Bob flipped.
    pub corrected: u64,
}

/// A dyadic sub-block: positions `idx << level .. min((idx + 1) << level, n)` of a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    pass: u32,
    level: u8,
    idx: u32,
}

/// Bob's view of one pass: the permutation both ways, his permuted key, and for every dyadic
/// sub-block whether Alice's parity is known and, if so, whether Bob's parity differs from it
/// (odd error parity). Known sub-blocks always form whole binary trees under the top-level
/// blocks; their leaves ("frontier") partition the key.
struct BobPass {
    perm: Vec<u32>,
    inv: Vec<u32>,
    bits: SecretBits,
    top: u8,
    /// `known[l]`: sub-blocks of level `l < top` whose parity is known (top level: all).
    known: Vec<BitVec<u64, Lsb0>>,
    /// `odd[l]`: error parity of known sub-blocks of level `l` (kept exact on frontier nodes).
    odd: Vec<BitVec<u64, Lsb0>>,
}

impl BobPass {
    fn new(key: &SecretBits, n: usize, seed: u64, pass: u32, top: u8) -> Self {
        let perm = pass_permutation(n, seed, pass);
        let mut inv = vec![0u32; n];
        for (i, &p) in perm.iter().enumerate() {
            inv[p as usize] = i as u32;
        }
        let bits = permute_bits(key, &perm);
        let len = |l: u8| n.div_ceil(1usize << l);
        let known = (0..top).map(|l| bitvec![u64, Lsb0; 0; len(l)]).collect();
        let odd = (0..=top).map(|l| bitvec![u64, Lsb0; 0; len(l)]).collect();
        Self { perm, inv, bits, top, known, odd }
    }

    fn is_known(&self, level: u8, idx: usize) -> bool {
        level >= self.top || self.known[level as usize][idx]
    }

    /// Level of the frontier node that contains position `q`.
    fn frontier_level(&self, q: usize) -> u8 {
        let mut l = self.top;
        while l > 0 && self.is_known(l - 1, q >> (l - 1)) {
            l -= 1;
        }
        l
    }
}

impl Drop for BobPass {
    fn drop(&mut self) {
        for o in &mut self.odd {
            o.as_raw_mut_slice().zeroize();
        }
    }
}

struct Bob<'k> {
    n: usize,
    key: &'k mut SecretBits,
    passes: Vec<BobPass>,
    /// Odd frontier nodes of started passes.
    work: BTreeSet<Node>,
    /// Key bits whose Alice value is known (a single-bit sub-block became known in some pass).
    bit_known: BitVec<u64, Lsb0>,
    /// Alice's value of the bits in `bit_known` (zeroized on drop).
    bit_alice: BitVec<u64, Lsb0>,
    started: usize,
    stats: CascadeStats,
}

impl Drop for Bob<'_> {
    fn drop(&mut self) {
        self.bit_alice.as_raw_mut_slice().zeroize();
    }
}

impl<'k> Bob<'k> {
    fn range(&self, level: u8, idx: usize) -> (usize, usize) {
        let start = idx << level;
        (start, ((idx + 1) << level).min(self.n))
    }

    fn ask(&mut self, oracle: &mut dyn ParityOracle, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
        let answers = oracle.parities(queries)?;
        if answers.len() != queries.len() {
            return Err(CascadeError::AnswerCount { expected: queries.len(), got: answers.len() });
        }
        self.stats.round_trips += 1;
        self.stats.leaked_bits += queries.len() as u64;
        Ok(answers)
    }

    /// Flips key bit `x` and updates the error parity of the frontier node holding it in every
    /// pass (the cascade effect).
    fn flip(&mut self, x: usize) -> Result<(), CascadeError> {
        self.stats.corrected += 1;
        if self.stats.corrected > self.n as u64 {
            return Err(CascadeError::Inconsistent { flips: self.stats.corrected, n: self.n as u64 });
        }
        self.key.flip(x);
        for (j, p) in self.passes.iter_mut().enumerate() {
            let q = p.inv[x] as usize;
            p.bits.flip(q);
            let level = p.frontier_level(q);
            let idx = q >> level;
            let odd = &mut p.odd[level as usize];
            let now = !odd[idx];
            odd.set(idx, now);
            if j < self.started {
                let node = Node { pass: j as u32, level, idx: idx as u32 };
                if now {
                    self.work.insert(node);
                } else {
                    self.work.remove(&node);
                }
            }
        }
        Ok(())
    }

    /// First round trip: the top-level parities of every pass (the last block of each pass
    /// after the first is inferred from the parity of the whole key).
    fn top_level_round(&mut self, oracle: &mut dyn ParityOracle) -> Result<(), CascadeError> {
        let mut queries = Vec::new();
        for (j, p) in self.passes.iter().enumerate() {
            let blocks = self.n.div_ceil(1usize << p.top);
            let asked = if j == 0 { blocks } else { blocks - 1 };
            for b in 0..asked {
                let (start, end) = self.range(p.top, b);
                queries.push(ParityQuery { pass: j as u32, start: start as u32, end: end as u32 });
            }
        }
        let answers = if queries.is_empty() { Vec::new() } else { self.ask(oracle, &queries)? };
        let mut answers = answers.into_iter();
        let mut total = false;
        for j in 0..self.passes.len() {
            let top = self.passes[j].top;
            let blocks = self.n.div_ceil(1usize << top);
            let mut acc = false;
            for b in 0..blocks {
                let alice = if j > 0 && b + 1 == blocks {
                    total ^ acc
                } else {
                    let a = answers.next().expect("one answer per query");
                    acc ^= a;
                    a
                };
                let (s, e) = self.range(top, b);
                let p = &mut self.passes[j];
                let odd = alice ^ p.bits.parity(s, e);
                p.odd[top as usize].set(b, odd);
            }
            if j == 0 {
                total = acc;
            }
        }
        Ok(())
    }

    /// Adds the odd top-level blocks of pass `started` to the work and starts it.
    fn start_next_pass(&mut self) {
        let j = self.started;
        let p = &self.passes[j];
        let top = p.top;
        for idx in p.odd[top as usize].iter_ones() {
            self.work.insert(Node { pass: j as u32, level: top, idx: idx as u32 });
        }
        self.started += 1;
    }

    /// Marks sub-block `(level, idx)` of `pass` known with error parity `odd`. For a single bit
    /// this reveals Alice's value of that key bit, which is remembered for all passes.
    fn set_known(&mut self, pass: u32, level: u8, idx: usize, odd: bool) {
        let p = &mut self.passes[pass as usize];
        p.known[level as usize].set(idx, true);
        p.odd[level as usize].set(idx, odd);
        if level == 0 {
            let x = p.perm[idx] as usize;
            let alice = p.bits.get(idx) ^ odd;
            self.bit_known.set(x, true);
            self.bit_alice.set(x, alice);
        }
    }

    /// Records the error parity of the left half of the odd frontier node `v` (the right half's
    /// follows) and moves the search to the odd half.
    fn learn(&mut self, v: Node, left_odd: bool) {
        let (level, i) = (v.level - 1, 2 * v.idx as usize);
        self.set_known(v.pass, level, i, left_odd);
        self.set_known(v.pass, level, i + 1, !left_odd);
        self.work.remove(&v);
        let child = if left_odd { i } else { i + 1 };
        self.work.insert(Node { pass: v.pass, level, idx: child as u32 });
    }

    /// Error parity of the left half of `v` if it follows without a query: when `v` holds two
    /// bits and Alice's value of one of them is already known (from a search in another pass).
    fn inferred_left(&self, v: &Node) -> Option<bool> {
        if v.level != 1 {
            return None;
        }
        let p = &self.passes[v.pass as usize];
        let i = 2 * v.idx as usize;
        if i + 1 >= self.n {
            return None;
        }
        let bob_differs = |pos: usize| {
            let x = p.perm[pos] as usize;
            self.bit_known[x].then(|| self.bit_alice[x] ^ p.bits.get(pos))
        };
        bob_differs(i).or_else(|| bob_differs(i + 1).map(|right_odd| !right_odd))
    }

    /// Applies the moves that need no query until none is left: a known odd single bit is
    /// flipped; a node whose right half lies past the end of the key equals its left half; a
    /// two-bit node with one bit already known is resolved by inference.
    fn free_moves(&mut self) -> Result<(), CascadeError> {
        loop {
            let n = self.n;
            let free: Vec<Node> = self
                .work
                .iter()
                .filter(|v| v.level <= 1 || ((2 * v.idx as usize + 1) << (v.level - 1)) >= n)
                .copied()
                .collect();
            let mut moved = false;
            for v in free {
                if !self.work.contains(&v) {
                    continue;
                }
                if v.level == 0 {
                    let x = self.passes[v.pass as usize].perm[v.idx as usize] as usize;
                    self.flip(x)?;
                    moved = true;
                } else if ((2 * v.idx as usize + 1) << (v.level - 1)) >= n {
                    self.set_known(v.pass, v.level - 1, 2 * v.idx as usize, true);
                    self.work.remove(&v);
                    self.work.insert(Node { pass: v.pass, level: v.level - 1, idx: 2 * v.idx });
                    moved = true;
                } else if let Some(left_odd) = self.inferred_left(&v) {
                    self.learn(v, left_odd);
                    moved = true;
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn run(&mut self, oracle: &mut dyn ParityOracle) -> Result<(), CascadeError> {
        self.top_level_round(oracle)?;
        self.start_next_pass();
        loop {
            self.free_moves()?;
            if self.work.is_empty() {
                if self.started == self.passes.len() {
                    return Ok(());
                }
                self.start_next_pass();
                continue;
            }
            // One BINARY step on every open search: ask the left half's parity.
            let nodes: Vec<Node> = self.work.iter().copied().collect();
            let queries: Vec<ParityQuery> = nodes
                .iter()
                .map(|v| {
                    let (start, end) = self.range(v.level - 1, 2 * v.idx as usize);
                    ParityQuery { pass: v.pass, start: start as u32, end: end as u32 }
                })
                .collect();
            let answers = self.ask(oracle, &queries)?;
            for ((v, q), alice) in nodes.iter().zip(&queries).zip(answers) {
                let bob = self.passes[v.pass as usize].bits.parity(q.start as usize, q.end as usize);
                self.learn(*v, alice ^ bob);
            }
        }
    }
}

/// Bob's side of Cascade: corrects `key` in place towards Alice's key by asking `oracle`
/// (Alice) parities under `params` and the shared permutation `seed`.
pub fn reconcile_bob(
    key: &mut SecretBits,
    params: &CascadeParams,
    seed: u64,
    oracle: &mut dyn ParityOracle,
) -> Result<CascadeStats, CascadeError> {
    params.validate()?;
    if key.len() as u64 != params.n {
        return Err(CascadeError::LengthMismatch { expected: params.n, got: key.len() as u64 });
    }
    let n = key.len();
    let key_now: &SecretBits = key;
    let passes = (0..params.passes())
        .into_par_iter()
        .map(|j| BobPass::new(key_now, n, seed, j, params.top_level(j as usize) as u8))
        .collect();
    let mut bob = Bob {
        n,
        key,
        passes,
        work: BTreeSet::new(),
        bit_known: bitvec![u64, Lsb0; 0; n],
        bit_alice: bitvec![u64, Lsb0; 0; n],
        started: 0,
        stats: CascadeStats::default(),
    };
    bob.stats.passes = params.passes();
    bob.run(oracle)?;
    Ok(bob.stats)
}

/// Monte-Carlo results of [`simulate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Key length, bits.
    pub n: usize,
    /// Channel QBER (probability) used to make errors and to size blocks.
    pub qber: f64,
    /// Trials run.
    pub trials: usize,
    /// Mean efficiency f = leaked_bits / (n h(qber)) (1 = Shannon limit).
    pub efficiency: f64,
    /// Standard deviation of f over trials.
    pub efficiency_std: f64,
    /// Fraction of trials with errors left after Cascade (before verification).
    pub frame_error_rate: f64,
    /// Trials with errors left.
    pub frame_errors: usize,
    /// Mean leaked parity bits per trial, bits.
    pub leaked_bits_mean: f64,
    /// Mean round trips per trial.
    pub round_trips_mean: f64,
    /// Largest round-trip count seen.
    pub round_trips_max: u64,
    /// Key bits reconciled per second of wall-clock time (both sides in one process, local
    /// oracle; the per-pass set-up runs on rayon's thread pool), bits/s.
    pub throughput_bits_per_s: f64,
}

/// Random key of `n` bits and a copy through a binary symmetric channel with error
/// probability `qber`, both from `rng`.
pub fn noisy_pair(n: usize, qber: f64, rng: &mut impl Rng) -> (SecretBits, SecretBits) {
    let mut words: Vec<u64> = (0..n.div_ceil(64)).map(|_| rng.gen()).collect();
    if !n.is_multiple_of(64) {
        // Keep the bits past the end zero, as `SecretBits::words` promises.
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (n % 64)) - 1;
        }
    }
    let alice = SecretBits::from_words(words, n);
    let mut bob = alice.clone();
    for i in 0..n {
        if rng.gen_bool(qber) {
            bob.flip(i);
        }
    }
    (alice, bob)
}

/// Monte-Carlo measurement: `trials` random keys of `n` bits with BSC(`qber`) errors reconciled
/// with [`CascadeParams::for_qber`] and a local oracle.
pub fn simulate(n: usize, qber: f64, trials: usize, seed: u64) -> Result<SimReport, CascadeError> {
    simulate_with(&CascadeParams::for_qber(n, qber)?, qber, trials, seed)
}

/// [`simulate`] with explicit parameters.
pub fn simulate_with(params: &CascadeParams, qber: f64, trials: usize, seed: u64) -> Result<SimReport, CascadeError> {
    let n = params.n as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ideal = n as f64 * binary_entropy(qber);
    let (mut fs, mut frame_errors, mut leaked, mut trips, mut trips_max) = (Vec::new(), 0, 0u64, 0u64, 0u64);
    let mut busy = 0.0f64;
    for _ in 0..trials {
        let (alice_key, mut bob_key) = noisy_pair(n, qber, &mut rng);
        let perm_seed = rng.gen();
        let t0 = Instant::now();
        let mut alice = CascadeAlice::new(&alice_key, params, perm_seed)?;
        let stats = reconcile_bob(&mut bob_key, params, perm_seed, &mut alice)?;
        busy += t0.elapsed().as_secs_f64();
        if bob_key != alice_key {
            frame_errors += 1;
        }
        fs.push(stats.leaked_bits as f64 / ideal);
        leaked += stats.leaked_bits;
        trips += stats.round_trips;
        trips_max = trips_max.max(stats.round_trips);
    }
    let t = trials.max(1) as f64;
    let mean = fs.iter().sum::<f64>() / t;
    let var = fs.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / t;
    Ok(SimReport {
        n,
        qber,
        trials,
        efficiency: mean,
        efficiency_std: var.sqrt(),
        frame_error_rate: frame_errors as f64 / t,
        frame_errors,
        leaked_bits_mean: leaked as f64 / t,
        round_trips_mean: trips as f64 / t,
        round_trips_max: trips_max,
        throughput_bits_per_s: if busy > 0.0 { (n * trials) as f64 / busy } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Oracle wrapper that checks what Bob asks for (dyadic, in-range) and counts answers.
    struct Counting<'a> {
        alice: &'a mut CascadeAlice,
        answered: u64,
    }

    impl ParityOracle for Counting<'_> {
        fn parities(&mut self, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
            for q in queries {
                let len = q.end - q.start;
                assert!(len > 0);
                let size = len.next_power_of_two();
                assert_eq!(q.start % size, 0, "query {q:?} is not a dyadic block");
            }
            self.answered += queries.len() as u64;
            self.alice.parities(queries)
        }
    }

    fn run_once(n: usize, qber: f64, seed: u64) -> (CascadeStats, SecretBits, SecretBits, u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (a, mut b) = noisy_pair(n, qber, &mut rng);
        let params = CascadeParams::for_qber(n, qber).unwrap();
        let mut alice = CascadeAlice::new(&a, &params, seed ^ 0xabcd).unwrap();
        let mut oracle = Counting { alice: &mut alice, answered: 0 };
        let stats = reconcile_bob(&mut b, &params, seed ^ 0xabcd, &mut oracle).unwrap();
        let answered = oracle.answered;
        assert_eq!(alice.answered_queries(), answered);
        assert_eq!(alice.calls(), stats.round_trips);
        (stats, a, b, answered)
    }

    #[test]
    fn corrects_all_errors_and_counts_leakage() {
        for &qber in &[0.01, 0.03, 0.05] {
            for seed in 0..3 {
                let (stats, a, b, answered) = run_once(100_000, qber, seed);
                let errors_before = stats.corrected;
                println!("qber {qber} seed {seed}: {stats:?}");
                assert_eq!(a, b, "errors left at qber {qber}, seed {seed}");
                assert_eq!(stats.leaked_bits, answered);
                assert!(errors_before > 0);
                assert_eq!(stats.passes, DEFAULT_PASSES as u32);
                assert!(stats.round_trips < 1000, "{} round trips", stats.round_trips);
            }
        }
    }

    /// The late passes split every key into at least two top-level blocks of at most half the
    /// key, also just above a power of two, where one block of 2^(ceil(log2 n) - 1) bits would
    /// hold nearly the whole key (two residual errors then stay together pass after pass).
    #[test]
    fn late_passes_split_the_key_in_halves_or_less() {
        for n in [1000usize, 1 << 17, (1 << 17) + 1, 134_483, (1 << 18) - 1, 1_000_000] {
            let p = CascadeParams::for_qber(n, 0.02).unwrap();
            for &b in &p.block_log2[3..] {
                let block = 1usize << b;
                assert!(2 * block <= n.max(2), "n = {n}: late block of {block} bits is more than half the key");
                assert!(4 * block > n, "n = {n}: late block of {block} bits is less than a quarter of the key");
            }
        }
    }

    #[test]
    fn flips_exactly_the_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (a, mut b) = noisy_pair(50_000, 0.02, &mut rng);
        let errors = a.hamming_distance(&b) as u64;
        let params = CascadeParams::for_qber(50_000, 0.02).unwrap();
        let mut alice = CascadeAlice::new(&a, &params, 5).unwrap();
        let stats = reconcile_bob(&mut b, &params, 5, &mut alice).unwrap();
        assert_eq!(a, b);
        assert_eq!(stats.corrected, errors);
    }

    #[test]
    fn efficiency_at_1e5_bits() {
        for &qber in &[0.01, 0.02, 0.03, 0.05] {
            let r = simulate(100_000, qber, 4, 77).unwrap();
            assert_eq!(r.frame_errors, 0);
            assert!(r.efficiency < 1.10, "f = {} at qber {qber}", r.efficiency);
            assert!(r.efficiency > 1.0, "f = {} below the Shannon limit?", r.efficiency);
        }
    }

    #[test]
    fn identical_keys_leak_only_top_level_parities() {
        let n = 10_000;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (a, _) = noisy_pair(n, 0.01, &mut rng);
        let mut b = a.clone();
        let params = CascadeParams::with_block_log2(n, vec![6, 8, 14]).unwrap();
        let mut alice = CascadeAlice::new(&a, &params, 3).unwrap();
        let stats = reconcile_bob(&mut b, &params, 3, &mut alice).unwrap();
        // Pass 0: 157 blocks; pass 1: 40 blocks, last inferred; pass 2: one block, inferred.
        assert_eq!(stats.leaked_bits, 157 + 39);
        assert_eq!(stats.round_trips, 1);
        assert_eq!(stats.corrected, 0);
    }

    #[test]
    fn permutations_agree_between_alice_and_bob() {
        let n = 1000;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (a, _) = noisy_pair(n, 0.01, &mut rng);
        let params = CascadeParams::with_block_log2(n, vec![4, 6]).unwrap();
        let alice = CascadeAlice::new(&a, &params, 11).unwrap();
        for pass in 0..2 {
            let perm = pass_permutation(n, 11, pass);
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            assert!(sorted.iter().enumerate().all(|(i, &p)| p as usize == i), "not a permutation");
            assert_eq!(perm, pass_permutation(n, 11, pass));
            for (s, e) in [(0u32, 1u32), (0, 17), (100, 356), (999, 1000)] {
                let direct = perm[s as usize..e as usize].iter().filter(|&&p| a.get(p as usize)).count() % 2 == 1;
                assert_eq!(alice.answer(&[ParityQuery { pass, start: s, end: e }]).unwrap(), vec![direct]);
            }
        }
        assert_ne!(pass_permutation(n, 11, 0), pass_permutation(n, 11, 1));
        assert_ne!(pass_permutation(n, 11, 0), pass_permutation(n, 12, 0));
    }

    #[test]
    fn bad_queries_are_rejected() {
        let a = SecretBits::zeros(100);
        let params = CascadeParams::with_block_log2(100, vec![3, 5]).unwrap();
        let mut alice = CascadeAlice::new(&a, &params, 0).unwrap();
        let q = |pass, start, end| [ParityQuery { pass, start, end }];
        assert_eq!(alice.answer(&q(2, 0, 4)), Err(CascadeError::BadPass { pass: 2, passes: 2 }));
        assert_eq!(alice.answer(&q(0, 90, 101)), Err(CascadeError::BadRange { pass: 0, start: 90, end: 101, n: 100 }));
        assert_eq!(alice.answer(&q(1, 5, 5)), Err(CascadeError::BadRange { pass: 1, start: 5, end: 5, n: 100 }));
        assert!(alice.parities(&q(0, 0, 100)).is_ok());
        assert_eq!(alice.answered_queries(), 1);
        assert!(alice.parities(&[ParityQuery { pass: 0, start: 0, end: 1 }, q(9, 0, 1)[0]]).is_err());
        assert_eq!(alice.answered_queries(), 1, "a rejected batch discloses nothing");
        assert!(matches!(CascadeAlice::new(&SecretBits::zeros(99), &params, 0), Err(CascadeError::LengthMismatch { .. })));
        assert!(CascadeParams::with_block_log2(0, vec![3]).is_err());
        assert!(CascadeParams::with_block_log2(10, vec![]).is_err());
        assert!(CascadeParams::for_qber(10, 0.7).is_err());
    }

    #[test]
    fn wrong_answer_count_and_lying_oracle_are_errors() {
        struct Short;
        impl ParityOracle for Short {
            fn parities(&mut self, q: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
                Ok(vec![false; q.len() - 1])
            }
        }
        let params = CascadeParams::with_block_log2(64, vec![3, 4]).unwrap();
        let mut key = SecretBits::zeros(64);
        assert!(matches!(reconcile_bob(&mut key, &params, 1, &mut Short), Err(CascadeError::AnswerCount { .. })));
        struct Random(ChaCha8Rng);
        impl ParityOracle for Random {
            fn parities(&mut self, q: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
                Ok(q.iter().map(|_| self.0.gen()).collect())
            }
        }
        // A lying oracle must not hang or panic: Cascade ends (possibly wrongly) or errors.
        for s in 0..20 {
            let mut key = SecretBits::zeros(64);
            let _ = reconcile_bob(&mut key, &params, s, &mut Random(ChaCha8Rng::seed_from_u64(s)));
        }
    }

    #[test]
    fn params_roundtrip_through_serde() {
        let p = CascadeParams::for_qber(1_000_000, 0.02).unwrap();
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<CascadeParams>(&s).unwrap(), p);
        assert_eq!(p.passes() as usize, DEFAULT_PASSES);
        assert!((binary_entropy(0.11) - 0.4999).abs() < 1e-3);
    }

    /// Long sweep for the report: `cargo test --release -p qkd-host --lib cascade::tests::sweep -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sweep() {
        for &n in &[100_000usize, 1_000_000] {
            let trials = if n == 100_000 { 200 } else { 40 };
            for &qber in &[0.01, 0.02, 0.03, 0.05] {
                let r = simulate(n, qber, trials, 1).unwrap();
                println!(
                    "n={n} qber={qber}: f={:.4}±{:.4} FER={} ({}/{}) round_trips={:.1} (max {}) throughput={:.2e} bit/s",
                    r.efficiency, r.efficiency_std, r.frame_error_rate, r.frame_errors, r.trials,
                    r.round_trips_mean, r.round_trips_max, r.throughput_bits_per_s
                );
                assert!(r.efficiency <= 1.05, "f = {} > 1.05", r.efficiency);
                assert!(r.frame_error_rate <= 1e-3 || r.frame_errors == 0);
            }
        }
    }
}
