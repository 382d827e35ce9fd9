//! Mother-code construction: irregular LDPC parity-check matrices built deterministically
//! from `(n, m, seed)`, so both stations build bit-identical matrices without exchanging them.
//!
//! We construct the codes ourselves rather than shipping matrix files because the rate is
//! chosen continuously from the QBER estimate (any number of checks `m`), which no fixed code
//! table offers. The structure is IRA-like:
//! * `m - 1` degree-2 "staircase" columns (column `j` checks rows `j` and `j + 1`): many
//!   degree-2 nodes improve the BP threshold, and the chain has no cycles among them, which
//!   keeps the error floor low;
//! * the other columns get degrees from [`info_degrees`] (mostly 3, some higher), connected
//!   to checks in a socket model that keeps the check degrees concentrated (differ by ≤ 1),
//!   never puts two edges between one pair, and rejects candidates that would close a
//!   4-cycle whenever a few random attempts find an alternative;
//! * a set of *untainted* puncturable columns (Elkouss, Martinez-Mateo, Martin 2012): no
//!   check touches two of them, so every punctured bit is recoverable from one check in the
//!   first iteration, and their columns of `H` have disjoint supports, hence are linearly
//!   independent — which is what makes the leakage of a punctured frame exactly `m - p`.
//!
//! Construction is `O(edges · check degree)` and takes milliseconds; results are cached.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Version of the construction; part of [`super::LdpcParams`] so that two stations running
/// different constructions refuse to talk instead of silently failing to decode.
pub(crate) const CODE_VERSION: u32 = 4;

/// A parity-check matrix in compressed-row form plus its puncturing order.
#[derive(Debug)]
pub(crate) struct Code {
    /// Columns (bits per frame).
    pub n: usize,
    /// Rows (syndrome bits per frame).
    pub m: usize,
    /// `row_ptr[r]..row_ptr[r + 1]` indexes `cols` for row `r`.
    pub row_ptr: Vec<u32>,
    /// Column index of every edge, row by row.
    pub cols: Vec<u32>,
    /// Untainted puncturable columns, in the order they are punctured and later revealed.
    pub untainted: Vec<u32>,
    /// Largest row weight.
    pub max_row_degree: usize,
    /// Per edge, the index of the edge of the mother code it comes from (the identity for a
    /// mother code; see [`Code::split`]): how decoder messages carry over between the codes of
    /// successive blind rounds.
    pub origin: Vec<u32>,
}

impl Code {
    /// Edges (non-zero entries of `H`).
    pub fn edges(&self) -> usize {
        self.cols.len()
    }

    /// Columns of row `r`.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.cols[self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize]
    }

    /// The code with the first `s` rows of `order` (distinct rows of this mother code) each
    /// split in two: row `r` keeps the columns at even positions of its (sorted) column list,
    /// and a new row `m + j` (for `order[j]`) takes those at odd positions. The split code
    /// has `m + s` checks; its syndrome is the mother syndrome with, for every split row, the
    /// parity of its even half, and the odd half's parity is the mother bit XOR that. So
    /// each split discloses one bit, and lowers the rate with checks of half the degree
    /// (check splitting: no punctured bits needed for rate adaptation).
    pub fn split(&self, order: &[u32], s: usize) -> Code {
        assert!(s <= order.len() && s <= self.m, "split of {s} rows of {}", self.m);
        let mut is_split = vec![false; self.m];
        for &r in &order[..s] {
            assert!(!std::mem::replace(&mut is_split[r as usize], true), "row {r} split twice");
        }
        let mut row_ptr = Vec::with_capacity(self.m + s + 1);
        let mut cols = Vec::with_capacity(self.cols.len());
        let mut origin = Vec::with_capacity(self.cols.len());
        row_ptr.push(0u32);
        let push_row = |r: usize, parity: Option<usize>, cols: &mut Vec<u32>, origin: &mut Vec<u32>| {
            let lo = self.row_ptr[r] as usize;
            for (i, &c) in self.row(r).iter().enumerate() {
                if parity.map_or(true, |p| i % 2 == p) {
                    cols.push(c);
                    origin.push(self.origin[lo + i]);
                }
            }
        };
        for r in 0..self.m {
            push_row(r, is_split[r].then_some(0), &mut cols, &mut origin);
            row_ptr.push(cols.len() as u32);
        }
        for &r in &order[..s] {
            push_row(r as usize, Some(1), &mut cols, &mut origin);
            row_ptr.push(cols.len() as u32);
        }
        let max_row_degree = row_ptr.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0);
        Code { n: self.n, m: self.m + s, row_ptr, cols, untainted: Vec::new(), max_row_degree, origin }
    }

    /// Extension checks for rate adaptation ([`super::Adaptation::ExtendThenSplit`]): `count`
    /// new rows of `degree` columns each, drawn deterministically from `seed`, so that both
    /// stations build the same. A row's columns are distinct and, whenever one of 32 random
    /// tries finds one, share no check of this code with the row's other columns, so a new row
    /// closes no 4-cycle with an old one. Row `j` does not depend on `count`: a longer list
    /// starts with the shorter one.
    pub fn extension_rows(&self, count: usize, degree: usize, seed: u64) -> Vec<Vec<u32>> {
        const TRIES: usize = 32;
        if count == 0 {
            return Vec::new();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1f83_d9ab_5be0_cd19);
        let mut col_rows: Vec<Vec<u32>> = vec![Vec::new(); self.n];
        for r in 0..self.m {
            for &c in self.row(r) {
                col_rows[c as usize].push(r as u32);
            }
        }
        let degree = degree.clamp(2, self.n);
        // row_mark[r] == stamp: check r already touches a column of the row being drawn.
        let (mut row_mark, mut col_mark) = (vec![0u32; self.m], vec![0u32; self.n]);
        (1..=count as u32)
            .map(|stamp| {
                let mut row = Vec::with_capacity(degree);
                while row.len() < degree {
                    let mut pick = None;
                    for t in 0..TRIES {
                        let c = rng.gen_range(0..self.n);
                        let clear = t + 1 == TRIES || col_rows[c].iter().all(|&r| row_mark[r as usize] != stamp);
                        if col_mark[c] != stamp && clear {
                            pick = Some(c);
                            break;
                        }
                    }
                    let Some(c) = pick else { continue };
                    col_mark[c] = stamp;
                    for &r in &col_rows[c] {
                        row_mark[r as usize] = stamp;
                    }
                    row.push(c as u32);
                }
                row.sort_unstable();
                row
            })
            .collect()
    }

    /// This code with the rows `rows` appended (extension checks, [`Code::extension_rows`]).
    /// New edges get origins after this code's, numbered in the order of `rows`, so that a code
    /// extended by a prefix of the same list carries its messages onto a longer one
    /// ([`Code::carry_map`]).
    pub fn extend(&self, rows: &[Vec<u32>]) -> Code {
        let (mut row_ptr, mut cols, mut origin) = (self.row_ptr.clone(), self.cols.clone(), self.origin.clone());
        let mut next = self.origin.iter().map(|&o| o + 1).max().unwrap_or(0);
        for r in rows {
            cols.extend_from_slice(r);
            origin.extend(next..next + r.len() as u32);
            next += r.len() as u32;
            row_ptr.push(cols.len() as u32);
        }
        let max_row_degree = rows.iter().map(Vec::len).fold(self.max_row_degree, usize::max);
        Code { n: self.n, m: self.m + rows.len(), row_ptr, cols, untainted: Vec::new(), max_row_degree, origin }
    }

    /// Check-to-variable messages of `old` (one per edge, row order) carried over to this
    /// code, both split or extended from the same mother code: each edge takes the message of
    /// the edge of `old` with the same origin, and an edge `old` lacks (an extension check
    /// added since) takes 0.
    #[cfg(test)]
    pub fn carry_messages(&self, old: &Code, msgs: &[i16]) -> Vec<i16> {
        let at = self.carry_map(old);
        at.iter().map(|&e| msgs.get(e as usize).copied().unwrap_or(0)).collect()
    }

    /// Per edge of this code, the index of the edge of `old` whose message it takes over
    /// (see [`Code::carry_messages`]), `u32::MAX` for an edge `old` lacks; computed once for
    /// all the frames moving from `old` to this code.
    pub fn carry_map(&self, old: &Code) -> Vec<u32> {
        let mut at = vec![u32::MAX; old.origin.iter().map(|&o| o as usize + 1).max().unwrap_or(0)];
        for (e, &o) in old.origin.iter().enumerate() {
            at[o as usize] = e as u32;
        }
        self.origin.iter().map(|&o| at.get(o as usize).copied().unwrap_or(u32::MAX)).collect()
    }

    /// Syndrome `H·x` of the packed (LSB-first) frame `x`, packed into words.
    pub fn syndrome(&self, x: &[u64]) -> Vec<u64> {
        let mut s = vec![0u64; self.m.div_ceil(64)];
        for r in 0..self.m {
            let p = self.row(r).iter().fold(0u64, |acc, &c| acc ^ (x[c as usize / 64] >> (c % 64)));
            s[r / 64] |= (p & 1) << (r % 64);
        }
        s
    }
}

/// Degrees of the non-staircase columns: `(degree, fraction of those columns)`, the same at
/// every rate. Chosen empirically with the box-plus layered decoder
/// (`decoder::profile_search::profile_search`, frame error rate at efficiencies 1.03–1.18,
/// 64–96 frames per point, n = 32 768, code seeds 1–4). {3: 50 %, 4: 20 %, 10: 20 %, 30: 10 %}
/// decodes half the frames at f ≈ 1.13 / 1.095 / 1.085 / 1.065 at QBER 1 / 2 / 3 / 5 %,
/// where the profiles used before (code version 3: {3: 65 %, 9: 20 %, 35: 15 %} above rate
/// 0.88, {3: 60 %, 6: 25 %, 20: 15 %} below) needed f ≈ 1.155 / 1.12 / 1.10 / 1.085; it is
/// as good or better at QBER 0.5, 8 and 11 %. The neighbours tried ({3: 45 %, 4: 25 %},
/// heavy degrees 11 or 25, 8–12 % of degree 30) are within the noise; a fifth or less of
/// columns of degree ≥ 10, or degree 40–50 for them, is clearly worse. Profiles designed by
/// Gaussian-approximation EXIT charts (`scripts/ldpc-design.py`: mostly degree 3 plus a few
/// columns of degree 30–100) decode no frame at these lengths, in float as in fixed point
/// (`decoder::float_diag`): the approximation does not hold for the BSC at high rate and
/// such columns close many short cycles among ~1500–6000 checks.
pub(crate) fn info_degrees() -> &'static [(usize, f64)] {
    &[(3, 0.50), (4, 0.20), (10, 0.20), (30, 0.10)]
}

/// Builds the code; deterministic in `(n, m, seed)`.
pub(crate) fn build(n: usize, m: usize, seed: u64) -> Code {
    build_with(n, m, seed, info_degrees(), true)
}

/// [`build`] with an explicit degree profile for the non-staircase columns, and the staircase
/// optional (without it every column follows the profile).
pub(crate) fn build_with(n: usize, m: usize, seed: u64, profile: &[(usize, f64)], staircase: bool) -> Code {
    assert!(m >= 4 && n > m + 2, "code shape n={n} m={m} is degenerate");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((n as u64) << 32) ^ (m as u64).rotate_left(17));
    let mut var_checks: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut check_vars: Vec<Vec<u32>> = vec![Vec::new(); m];
    let n_info = if staircase { n - (m - 1) } else { n };
    // Staircase columns are the last m - 1 columns.
    for j in 0..n - n_info {
        let v = n_info + j;
        for r in [j, j + 1] {
            var_checks[v].push(r as u32);
            check_vars[r].push(v as u32);
        }
    }
    // Degrees of the info columns.
    let mut degrees: Vec<usize> = Vec::with_capacity(n_info);
    let mut assigned = 0usize;
    for (i, &(d, frac)) in profile.iter().enumerate() {
        let count = if i + 1 == profile.len() { n_info - assigned } else { (frac * n_info as f64).round() as usize };
        degrees.extend(std::iter::repeat(d.min(m - 1)).take(count));
        assigned += count;
    }
    degrees.truncate(n_info);
    // Concentrated check degrees: every check gets floor or ceil of the mean.
    let e_total: usize = degrees.iter().sum::<usize>() + 2 * (n - n_info);
    let mut target: Vec<usize> = (0..m).map(|r| e_total / m + usize::from(r < e_total % m)).collect();
    target.shuffle(&mut rng);
    let mut pool: Vec<u32> = Vec::with_capacity(e_total);
    for r in 0..m {
        let cap = target[r].saturating_sub(check_vars[r].len());
        pool.extend(std::iter::repeat(r as u32).take(cap));
    }
    // Highest degrees first (they are hardest to place without short cycles).
    let mut order: Vec<usize> = (0..n_info).collect();
    order.shuffle(&mut rng);
    order.sort_by_key(|&v| std::cmp::Reverse(degrees[v]));
    // mark[c] == stamp  <=>  c is within distance 2 of the current column (or adjacent).
    let mut mark = vec![0u32; m];
    for (stamp, &v) in (1u32..).zip(order.iter()) {
        for _ in 0..degrees[v] {
            let c = pick_check(&mut rng, &mut pool, &mark, stamp, &var_checks[v], m);
            var_checks[v].push(c);
            check_vars[c as usize].push(v as u32);
            mark[c as usize] = stamp;
            for &u in &check_vars[c as usize] {
                for &c2 in &var_checks[u as usize] {
                    mark[c2 as usize] = stamp;
                }
            }
        }
    }
    // Compressed rows, columns sorted for locality.
    let mut row_ptr = Vec::with_capacity(m + 1);
    let mut cols = Vec::with_capacity(e_total);
    row_ptr.push(0u32);
    let mut max_row_degree = 0;
    for vars in check_vars.iter_mut() {
        vars.sort_unstable();
        max_row_degree = max_row_degree.max(vars.len());
        cols.extend_from_slice(vars);
        row_ptr.push(cols.len() as u32);
    }
    let untainted = untainted_set(&var_checks, m, &mut rng);
    let origin = (0..cols.len() as u32).collect();
    Code { n, m, row_ptr, cols, untainted, max_row_degree, origin }
}

/// Picks a check for the next edge of the current column: a random free socket that closes
/// no 4-cycle if one is found within a few tries, else any free socket not already adjacent,
/// else (pool exhausted by duplicates) any non-adjacent check.
fn pick_check(rng: &mut ChaCha8Rng, pool: &mut Vec<u32>, mark: &[u32], stamp: u32, mine: &[u32], m: usize) -> u32 {
    const TRIES: usize = 24;
    if !pool.is_empty() {
        for _ in 0..TRIES {
            let i = rng.gen_range(0..pool.len());
            if mark[pool[i] as usize] != stamp {
                return pool.swap_remove(i);
            }
        }
        for _ in 0..TRIES {
            let i = rng.gen_range(0..pool.len());
            if !mine.contains(&pool[i]) {
                return pool.swap_remove(i);
            }
        }
        if let Some(i) = pool.iter().position(|c| !mine.contains(c)) {
            return pool.swap_remove(i);
        }
    }
    loop {
        let c = rng.gen_range(0..m as u32);
        if !mine.contains(&c) {
            return c;
        }
    }
}

/// Greedy untainted puncturing: lowest-degree columns first (random order within a degree),
/// a column is taken when none of its checks already has a punctured neighbour.
fn untainted_set(var_checks: &[Vec<u32>], m: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let mut order: Vec<u32> = (0..var_checks.len() as u32).filter(|&v| var_checks[v as usize].len() >= 2).collect();
    order.shuffle(rng);
    order.sort_by_key(|&v| var_checks[v as usize].len());
    let mut tainted = vec![false; m];
    let mut out = Vec::new();
    for v in order {
        let checks = &var_checks[v as usize];
        if checks.iter().all(|&c| !tainted[c as usize]) {
            for &c in checks {
                tainted[c as usize] = true;
            }
            out.push(v);
        }
    }
    out
}

/// Cached [`build`]: codes are shared between both stations of a process, frames and calls.
pub(crate) fn cached(n: usize, m: usize, seed: u64) -> Arc<Code> {
    const MAX_ENTRIES: usize = 16;
    static CACHE: OnceLock<Mutex<HashMap<(usize, usize, u64), Arc<Code>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&(n, m, seed)) {
        return Arc::clone(c);
    }
    let code = Arc::new(build(n, m, seed));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if guard.len() >= MAX_ENTRIES {
        guard.clear();
    }
    Arc::clone(guard.entry((n, m, seed)).or_insert(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_is_deterministic_and_well_formed() {
        let a = build(4096, 600, 7);
        let b = build(4096, 600, 7);
        let c = build(4096, 600, 8);
        assert_eq!(a.cols, b.cols);
        assert_eq!(a.row_ptr, b.row_ptr);
        assert_eq!(a.untainted, b.untainted);
        assert_ne!(a.cols, c.cols);
        // every column appears, no duplicate edge within a row
        let mut deg = vec![0usize; a.n];
        for r in 0..a.m {
            let row = a.row(r);
            assert!(row.windows(2).all(|w| w[0] < w[1]), "row {r} has a repeated column");
            for &v in row {
                deg[v as usize] += 1;
            }
        }
        assert!(deg.iter().all(|&d| d >= 2));
        // check degrees concentrated
        let (lo, hi) = (0..a.m).map(|r| a.row(r).len()).fold((usize::MAX, 0), |(l, h), d| (l.min(d), h.max(d)));
        assert!(hi - lo <= 1, "check degrees {lo}..{hi}");
        // untainted: no row has two punctured columns
        let mut p = vec![false; a.n];
        for &v in &a.untainted {
            p[v as usize] = true;
        }
        for r in 0..a.m {
            assert!(a.row(r).iter().filter(|&&v| p[v as usize]).count() <= 1);
        }
        assert!(a.untainted.len() >= a.m / 3, "only {} untainted columns", a.untainted.len());
    }
}
