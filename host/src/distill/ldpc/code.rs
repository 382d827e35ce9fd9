//! Mother codes: irregular LDPC parity-check matrices built deterministically from
//! `(n, m, seed)`, so both stations build bit-identical matrices without exchanging them.
//!
//! We construct the codes ourselves rather than shipping matrix files because the frame length
//! follows the key length; the ensembles (degree distributions) are fixed, published ones.
//!
//! * **Ensembles.** One mother code per rate in [`MOTHER_RATES`] (0.50, 0.55, …, 0.90), with the
//!   variable-node degree distributions optimised by density evolution for the BSC by Elkouss,
//!   Leverrier, Alléaume and Boutros, *Efficient reconciliation protocol for discrete-variable
//!   quantum key distribution*, ISIT 2009 (arXiv:0901.2140), as transcribed in the public
//!   `A-DaRo/qia-challenge-2025` repository (`caligo/configs/ldpc_degree_distributions.yaml`).
//!   The tables are edge-perspective `λ(x) = Σ λ_i x^(i-1)`; [`PROFILES`] lists them by node
//!   degree `i`. Check degrees are concentrated (every check has ⌊E/m⌋ or ⌈E/m⌉ edges), which
//!   matches the published `ρ(x)` (two adjacent degrees) for every rate but 0.50–0.65, where it
//!   is the usual check-concentrated simplification.
//! * **Construction.** A randomised progressive edge growth (Hu, Eleftheriou, Arnold 2005):
//!   columns are processed by increasing degree; for each new edge a breadth-first search from
//!   the column finds how far every check is in the current graph (up to [`PEG_DEPTH`] check
//!   layers, with a work budget on the deeper layers), and among [`PEG_TRIES`] free check sockets
//!   drawn at random the farthest one is taken (unreached beats any distance). Sockets keep the
//!   check degrees concentrated; drawing them at random (rather than scanning all checks for the
//!   lowest degree) keeps construction at `O(edges · budget)`, tens of milliseconds. Double
//!   edges and, whenever a free socket allows it, 4-cycles are never created.
//! * **Puncturing.** A set of *untainted* columns (Elkouss, Martinez-Mateo, Martin 2012): no
//!   check touches two of them, so every punctured bit is recoverable from one check in the
//!   first iteration, and their columns of `H` have disjoint supports, hence are linearly
//!   independent — which is what makes the leakage of a punctured frame exactly `m - p`.
//!
//! Results are cached per `(n, m, seed)`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Version of the construction; part of [`super::LdpcParams`] so that two stations running
/// different constructions refuse to talk instead of silently failing to decode.
pub(crate) const CODE_VERSION: u32 = 2;

/// Rates of the mother codes (information bits per code bit).
pub(crate) const MOTHER_RATES: [f64; 9] = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90];

/// Variable-node degree distribution of one mother code: `(node degree, fraction of edges)`.
type Lambda = &'static [(usize, f64)];

/// Edge-perspective variable degree distributions by rate (Elkouss et al. 2009, see the module
/// documentation; node degree = exponent of `x` + 1).
const PROFILES: [(f64, Lambda); 9] = [
    (
        0.50,
        &[
            (2, 0.14438),
            (3, 0.19026),
            (4, 0.01836),
            (5, 0.00233),
            (6, 0.04697),
            (8, 0.05394),
            (9, 0.05590),
            (10, 0.01290),
            (11, 0.00162),
            (14, 0.06159),
            (15, 0.13115),
            (17, 0.01481),
            (47, 0.00879),
            (49, 0.00650),
            (55, 0.00210),
            (56, 0.00099),
            (57, 0.11178),
            (58, 0.06238),
            (59, 0.05094),
            (66, 0.02230),
        ],
    ),
    (0.55, &[(2, 0.16880), (3, 0.20994), (6, 0.18095), (15, 0.03846), (16, 0.02635), (18, 0.23454), (19, 0.05815), (31, 0.08280)]),
    (0.60, &[(2, 0.11040), (3, 0.20804), (8, 0.14163), (9, 0.14858), (26, 0.14438), (27, 0.08909), (46, 0.00748), (71, 0.15038)]),
    (
        0.65,
        &[(2, 0.10451), (3, 0.15652), (4, 0.08057), (5, 0.00056), (9, 0.12151), (13, 0.10485), (15, 0.10719), (21, 0.00771), (51, 0.31656)],
    ),
    (
        0.70,
        &[
            (2, 0.05343),
            (3, 0.29406),
            (6, 0.00896),
            (9, 0.15571),
            (12, 0.12189),
            (25, 0.19872),
            (46, 0.09572),
            (62, 0.02741),
            (65, 0.04056),
            (73, 0.00354),
        ],
    ),
    (0.75, &[(2, 0.10805), (3, 0.09511), (4, 0.01449), (5, 0.13764), (6, 0.10667), (7, 0.05288), (28, 0.01107), (31, 0.47408)]),
    (0.80, &[(2, 0.09420), (3, 0.18088), (6, 0.11972), (7, 0.08550), (8, 0.09816), (17, 0.07194), (26, 0.34960)]),
    (0.85, &[(2, 0.04528), (3, 0.20537), (4, 0.05878), (5, 0.09427), (6, 0.08454), (7, 0.01176), (9, 0.05137), (21, 0.50015)]),
    (0.90, &[(2, 0.07689), (3, 0.28096), (5, 0.08933), (9, 0.19620), (12, 0.30631), (21, 0.05031)]),
];

/// Check layers searched by progressive edge growth (cycles up to length `2·(PEG_DEPTH+1)` are
/// avoided where a free socket allows).
const PEG_DEPTH: usize = 3;
/// Work budget (variable visits) for the search beyond the first layer, per edge.
const PEG_BUDGET: usize = 4096;
/// Free sockets drawn per edge.
const PEG_TRIES: usize = 24;

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

/// Checks `m` of the mother code of rate `rate` (one of [`MOTHER_RATES`]) at length `n`.
pub(crate) fn mother_checks(n: usize, rate: f64) -> usize {
    ((1.0 - rate) * n as f64).round() as usize
}

/// Degree distribution of the mother code nearest in rate to `1 - m/n`.
fn profile_for(n: usize, m: usize) -> Lambda {
    let rate = 1.0 - m as f64 / n as f64;
    PROFILES.iter().min_by(|a, b| (a.0 - rate).abs().total_cmp(&(b.0 - rate).abs())).map(|p| p.1).unwrap_or(PROFILES[0].1)
}

/// Column degrees for `n` columns from an edge-perspective distribution (node fractions
/// `λ_i/i` normalised, rounded by largest remainder so they sum to `n`), capped at `m - 1`.
fn column_degrees(n: usize, m: usize, lambda: Lambda) -> Vec<usize> {
    let norm: f64 = lambda.iter().map(|&(d, l)| l / d as f64).sum();
    let exact: Vec<f64> = lambda.iter().map(|&(d, l)| l / d as f64 / norm * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut rest: Vec<usize> = (0..lambda.len()).collect();
    rest.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = n - counts.iter().sum::<usize>();
    for &i in rest.iter().cycle().take(missing) {
        counts[i] += 1;
    }
    let mut degrees = Vec::with_capacity(n);
    for (&(d, _), &c) in lambda.iter().zip(&counts) {
        degrees.extend(std::iter::repeat(d.min(m - 1)).take(c));
    }
    degrees
}

/// Builds the code; deterministic in `(n, m, seed)`. The degree distribution is that of the
/// mother code nearest in rate to `1 - m/n`.
pub(crate) fn build(n: usize, m: usize, seed: u64) -> Code {
    assert!(m >= 4 && n > m + 2, "code shape n={n} m={m} is degenerate");
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((n as u64) << 32) ^ (m as u64).rotate_left(17));
    let degrees = column_degrees(n, m, profile_for(n, m));
    let e_total: usize = degrees.iter().sum();
    // Concentrated check degrees: every check gets floor or ceil of the mean.
    let mut target: Vec<usize> = (0..m).map(|r| e_total / m + usize::from(r < e_total % m)).collect();
    target.shuffle(&mut rng);
    let mut pool: Vec<u32> = Vec::with_capacity(e_total);
    for (r, &t) in target.iter().enumerate() {
        pool.extend(std::iter::repeat(r as u32).take(t));
    }
    // Columns by increasing degree (PEG order), random order within a degree; the column index
    // is random too, so that degrees are spread over the frame.
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order.sort_by_key(|&v| degrees[v]);
    let mut var_checks: Vec<Vec<u32>> = degrees.iter().map(|&d| Vec::with_capacity(d)).collect();
    let mut check_vars: Vec<Vec<u32>> = target.iter().map(|&t| Vec::with_capacity(t)).collect();
    let mut peg = Peg { check_mark: vec![0; m], check_dist: vec![0; m], var_mark: vec![0; n], stamp: 0, frontier: Vec::new(), next: Vec::new() };
    for &v in &order {
        for _ in 0..degrees[v] {
            peg.search(v as u32, &var_checks, &check_vars);
            let c = peg.pick(&mut rng, &mut pool, &var_checks[v], m);
            var_checks[v].push(c);
            check_vars[c as usize].push(v as u32);
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
    Code { n, m, row_ptr, cols, untainted, max_row_degree }
}

/// Scratch state of the progressive-edge-growth search (stamps avoid clearing per edge).
struct Peg {
    /// `check_mark[c] == stamp` ⇔ check `c` was reached by the current search.
    check_mark: Vec<u32>,
    /// Distance (check layers) of a reached check; 0 = adjacent to the column.
    check_dist: Vec<u8>,
    var_mark: Vec<u32>,
    stamp: u32,
    frontier: Vec<u32>,
    next: Vec<u32>,
}

impl Peg {
    /// Breadth-first search from column `v`: marks the checks within [`PEG_DEPTH`] layers.
    /// The first layer (checks two edges away, which would close a 4-cycle) is always
    /// complete; deeper layers stop after [`PEG_BUDGET`] variable visits.
    fn search(&mut self, v: u32, var_checks: &[Vec<u32>], check_vars: &[Vec<u32>]) {
        self.stamp += 1;
        let s = self.stamp;
        self.frontier.clear();
        self.var_mark[v as usize] = s;
        for &c in &var_checks[v as usize] {
            self.check_mark[c as usize] = s;
            self.check_dist[c as usize] = 0;
            self.frontier.push(c);
        }
        let mut work = 0usize;
        'layers: for d in 1..=PEG_DEPTH as u8 {
            self.next.clear();
            for &c in &self.frontier {
                for &u in &check_vars[c as usize] {
                    if self.var_mark[u as usize] == s {
                        continue;
                    }
                    self.var_mark[u as usize] = s;
                    for &c2 in &var_checks[u as usize] {
                        if self.check_mark[c2 as usize] != s {
                            self.check_mark[c2 as usize] = s;
                            self.check_dist[c2 as usize] = d;
                            self.next.push(c2);
                        }
                    }
                    work += 1;
                    if d > 1 && work > PEG_BUDGET {
                        break 'layers;
                    }
                }
            }
            if self.next.is_empty() {
                break;
            }
            std::mem::swap(&mut self.frontier, &mut self.next);
        }
    }

    /// Takes the farthest of a few random free sockets (unreached first); falls back to any
    /// free socket not already adjacent, then to any non-adjacent check.
    fn pick(&self, rng: &mut ChaCha8Rng, pool: &mut Vec<u32>, mine: &[u32], m: usize) -> u32 {
        let mut best: Option<(usize, u8)> = None;
        if !pool.is_empty() {
            for _ in 0..PEG_TRIES {
                let i = rng.gen_range(0..pool.len());
                let c = pool[i] as usize;
                let score = if self.check_mark[c] != self.stamp { u8::MAX } else { self.check_dist[c] };
                if score > 0 && best.map_or(true, |(_, b)| score > b) {
                    best = Some((i, score));
                    if score == u8::MAX {
                        break;
                    }
                }
            }
            if best.is_none() {
                best = pool.iter().position(|c| !mine.contains(c)).map(|i| (i, 0));
            }
        }
        if let Some((i, _)) = best {
            return pool.swap_remove(i);
        }
        loop {
            let c = rng.gen_range(0..m as u32);
            if !mine.contains(&c) {
                return c;
            }
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
    fn profiles_have_their_rates() {
        for &(rate, lambda) in &PROFILES {
            let sum: f64 = lambda.iter().map(|p| p.1).sum();
            assert!((sum - 1.0).abs() < 1e-3, "rate {rate}: λ sums to {sum}");
            // Design rate with concentrated checks: 1 - (∫ρ)/(∫λ) ≈ 1 - mean var degree / mean check degree.
            let n = 1 << 14;
            let m = mother_checks(n, rate);
            let degs = column_degrees(n, m, lambda);
            assert_eq!(degs.len(), n);
            let e: usize = degs.iter().sum();
            let int_lambda: f64 = lambda.iter().map(|&(d, l)| l / d as f64).sum();
            assert!(((e as f64 / n as f64) - 1.0 / int_lambda).abs() < 0.01, "rate {rate}");
        }
    }

    #[test]
    fn construction_is_deterministic_and_well_formed() {
        let n = 4096;
        let m = mother_checks(n, 0.8);
        let a = build(n, m, 7);
        let b = build(n, m, 7);
        let c = build(n, m, 8);
        assert_eq!(a.cols, b.cols);
        assert_eq!(a.row_ptr, b.row_ptr);
        assert_eq!(a.untainted, b.untainted);
        assert_ne!(a.cols, c.cols);
        // every column appears with its degree, no duplicate edge within a row
        let mut var_rows: Vec<Vec<u32>> = vec![Vec::new(); a.n];
        for r in 0..a.m {
            let row = a.row(r);
            assert!(row.windows(2).all(|w| w[0] < w[1]), "row {r} has a repeated column");
            for &v in row {
                var_rows[v as usize].push(r as u32);
            }
        }
        let mut got: Vec<usize> = var_rows.iter().map(Vec::len).collect();
        let mut want = column_degrees(n, m, profile_for(n, m));
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        // check degrees concentrated
        let (lo, hi) = (0..a.m).map(|r| a.row(r).len()).fold((usize::MAX, 0), |(l, h), d| (l.min(d), h.max(d)));
        assert!(hi - lo <= 1, "check degrees {lo}..{hi}");
        // PEG: no 4-cycles among the low-degree columns (two columns sharing two rows)
        let mut seen = HashMap::new();
        let mut four_cycles = 0;
        for (v, rows) in var_rows.iter().enumerate().filter(|(_, r)| r.len() <= 3) {
            for (i, &r1) in rows.iter().enumerate() {
                for &r2 in &rows[i + 1..] {
                    let key = (r1.min(r2), r1.max(r2));
                    if seen.insert(key, v).is_some() {
                        four_cycles += 1;
                    }
                }
            }
        }
        assert_eq!(four_cycles, 0, "4-cycles among degree-2/3 columns");
        // untainted: no row has two punctured columns
        let mut p = vec![false; a.n];
        for &v in &a.untainted {
            p[v as usize] = true;
        }
        for r in 0..a.m {
            assert!(a.row(r).iter().filter(|&&v| p[v as usize]).count() <= 1);
        }
        assert!(a.untainted.len() >= a.m / 4, "only {} untainted columns", a.untainted.len());
    }
}
