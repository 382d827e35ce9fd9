//! One-way, rate-adaptive LDPC syndrome reconciliation with blind rounds
//! (Elkouss, Martinez-Mateo, Martin: rate-compatible reconciliation by puncturing and
//! shortening; Martinez-Mateo, Elkouss, Martin: *Blind reconciliation*).
//!
//! The key is split into frames. Each frame of `n` code bits holds `k_f` key bits, `p`
//! punctured bits (random, drawn by Alice, never disclosed unless revealed) and the rest
//! shortened (fixed to 0, known to both). Alice sends the `m`-bit syndrome of every frame;
//! Bob decodes with layered belief propagation (box-plus) using his bits as side information.
//! A frame that does not decode is retried, up to [`LdpcParams::max_reveal_rounds`] round
//! trips, after Alice discloses more about it ([`LdpcParams::reveal_steps`]: few bits in the
//! first rounds, more in the later ones), by one of two rate adaptations ([`Adaptation`]):
//!
//! * **Puncturing**: Alice reveals the next punctured bits; each turns a punctured position
//!   into a shortened one, lowering the rate.
//! * **Check splitting**: frames have no punctured bits; Alice sends, for the
//!   next checks of a fixed order, the parity of half of each check's bits (the even
//!   positions of its row). Bob splits the row into two checks, one with each half, and
//!   decodes the longer code, resuming from the messages of the failed attempt. A frame thus
//!   starts on the unpunctured mother code, which decodes closer to capacity than a punctured
//!   one, and each disclosed bit adds a check of half the degree.
//! * **Extension checks, then splits** (the default): no punctured bits either; the first
//!   [`EXTENSION_ROUNDS`] rounds disclose the parities of new checks (public rows of half the
//!   mother's mean row degree, drawn from the seed) that Bob appends to the code, leaving the
//!   mother checks whole; the later rounds split checks. f 0.02 lower at QBER 1 % than
//!   splits alone.
//!
//! Frames still failing are reported in [`DoneMsg`] and **their key bits must be discarded by
//! both stations** (the returned keys already omit them; [`LdpcOutcome::discarded`] lists the
//! ranges).
//!
//! # Leakage accounting
//! Per frame, the syndrome discloses `m` bits, but the `p` punctured bits are uniform secret
//! bits whose columns of `H` are linearly independent (untainted puncturing gives them
//! disjoint supports), so they one-time-pad a `p`-dimensional part of the syndrome: the
//! syndrome leaks exactly `m - p` bits about the key. Each revealed bit (a punctured value, a
//! half parity or an extension-check parity) counts as one more bit leaked, and each frame's hash
//! ([`LdpcParams::frame_hash_bits`]) its bits. So
//! `leaked_bits = frames·(m − p + hash bits) + revealed bits` (`p = 0` with check splitting),
//! counted for every frame including discarded ones; [`LdpcStats::disclosed_bits`] also gives
//! the raw count of bits sent (`frames·(m + hash bits) + revealed`). Bob accepts a frame when
//! its syndrome and its hash match; a wrong decoding (a different word with the same syndrome)
//! then slips through only when the hashes collide too (2^-16), and the verification stage
//! ([`crate::distill::verify`]) must still follow.
//! Efficiency is `f = leaked_bits / (key_bits · h(QBER))`.
//!
//! # Messages
//! Alice → Bob [`SyndromeMsg`]; then up to `max_reveal_rounds()` times Bob → Alice
//! [`RevealRequest`], Alice → Bob [`RevealMsg`]; finally Bob → Alice [`DoneMsg`]. All are
//! serde types; every message carries enough to detect a mismatch of parameters or round.

mod code;
mod decoder;

use crate::distill::finite_key::binary_entropy;
use crate::distill::key::SecretBits;
use code::Code;
use decoder::{llr_key, Job, LLR_KNOWN};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroize;

/// Efficiency aimed at by [`reconcile_local`] and [`simulate`] (leaked bits per bit of
/// `key_bits · h(QBER)`): the first attempt is made at this efficiency or, when the codes'
/// measured median decoding efficiency lies higher, a little below that median (see
/// [`choose_params`]).
pub const DEFAULT_TARGET_EFFICIENCY: f64 = 1.10;
/// Shortest key (bits) [`choose_params`] accepts.
pub const MIN_KEY_BITS: usize = 1024;
/// Largest QBER (probability) [`choose_params`] accepts.
pub const MAX_QBER: f64 = 0.15;

/// Decoding efficiency of the codes, measured: per QBER (probability), the efficiency at which
/// half the frames of length [`CALIBRATION_FRAME`] decode in one attempt of 60 iterations
/// (`f50`), and the spread of that per-frame threshold (`sigma`, the standard deviation of a
/// probit fit to the frame error rates between 4 and 96 %). From
/// `LDPC_SEARCH_PROFILES=auto LDPC_DIAG_N=32768 LDPC_DIAG_FRAMES=64 LDPC_DIAG_Q=<qber>
/// LDPC_DIAG_F=<grid> cargo test --release -p qkd-host --lib -- --ignored
/// profile_search::profile_search --nocapture` (frame error rate on a grid of efficiencies
/// 1.00–1.25, step 0.01; 1.05–1.45, step 0.02, for QBER below 1 %), code version 4. Rows:
/// `(qber, f50, sigma)`.
const DECODING_EFFICIENCY: [(f64, f64, f64); 11] = [
    (0.005, 1.190, 0.089),
    (0.0075, 1.159, 0.072),
    (0.010, 1.134, 0.054),
    (0.015, 1.111, 0.041),
    (0.020, 1.092, 0.037),
    (0.030, 1.081, 0.027),
    (0.040, 1.070, 0.026),
    (0.050, 1.064, 0.022),
    (0.065, 1.063, 0.017),
    (0.080, 1.066, 0.018),
    (0.110, 1.067, 0.017),
];
/// Blind rounds of [`Adaptation::ExtendThenSplit`] that disclose extension checks before the
/// splits start. `cargo bench -p qkd-host --bench ldpc -- zzz_none` (2 × 2^20 bits per
/// QBER, frames of 65 536 bits), f at QBER 1 / 2 / 3 %, against 1.176 / 1.115 / 1.099 with
/// splits only: 2 rounds 1.160 / 1.113 / 1.097, 3 rounds 1.156 / 1.112 / 1.099, 4 rounds
/// 1.157 / 1.115 / 1.102; extension checks in every round 1.168 / 1.122 / 1.101 with a frame
/// in 32 lost at QBER 1 % (a few frames stay stuck on extension checks). With 2^21 bits
/// (frames of 131 072 bits), 3 rounds: 1.137 / 1.100 / 1.083 against 1.158 / 1.104 / 1.087.
const EXTENSION_ROUNDS: u32 = 3;
/// Degree of the extension checks, as a fraction of the mother code's mean row degree. Fresh
/// frames at n = 65 536, QBER 1 %, f = 1.10 + 0.06 (64 frames, 100 iterations): 0.35 / 0.5 /
/// 0.7 fail 12 / 9 / 9 % of them, against 31 % after splits and 6 % with a fresh code of that
/// rate (`decoder::profile_search::split_vs_extend`); in the protocol (extension checks in every round) 0.3 gave f 1.167 / 1.122 / 1.100 at
/// QBER 1 / 2 / 3 %, 0.5 1.168 / 1.122 / 1.101, 0.8 lost up to 9 % of the frames.
const EXTENSION_DEGREE: f64 = 0.5;
/// Frame length (bits) of the [`DECODING_EFFICIENCY`] measurements.
const CALIBRATION_FRAME: usize = 32_768;
/// Rise of the median decoding efficiency per halving of the frame length below
/// [`CALIBRATION_FRAME`] (measured at n = 16 384, code version 4: +0.017 at QBER 1 %, +0.007
/// at 2 %, +0.003 at 5 %).
const LENGTH_PENALTY: f64 = 0.015;
/// Fall of the median decoding efficiency per doubling of the frame length above
/// [`CALIBRATION_FRAME`] (measured at n = 131 072, 32 frames: f50 ≈ 1.113 / 1.075 / 1.066 at
/// QBER 1 / 2 / 3 %, 0.021 / 0.017 / 0.015 below n = 32 768; `LDPC_SEARCH_PROFILES=auto
/// LDPC_DIAG_N=131072 LDPC_DIAG_FRAMES=32 LDPC_DIAG_Q=0.01 LDPC_DIAG_F=1.04,1.06,1.08,1.10,1.12,1.14
/// cargo test --release -p qkd-host --lib -- --ignored profile_search::profile_search
/// --nocapture`). The spread falls as `1/sqrt(n)` both ways.
const LENGTH_GAIN: f64 = 0.009;
/// Longest frame (bits) [`choose_params`] picks: the longest measured ([`LENGTH_GAIN`]).
const MAX_FRAME_LEN: usize = 131_072;
/// The first attempt is made at the target efficiency, or at this many spreads above the
/// median decoding efficiency where that is lower (QBER ≳ 5 % for the default target 1.10:
/// no point in leaking more than most frames need); the first blind round then raises the
/// efficiency by [`STEP_SPREADS`] spreads, and the later ones by growing steps up to the
/// reach ([`REACH_SPREADS`]). In the protocol a frame also carries the punctured bits of the
/// blind rounds and gets [`MAX_ITERATIONS`] per attempt, so fewer frames decode at once than
/// the calibration's median suggests. Chosen from
/// `cargo bench -p qkd-host --bench ldpc -- zzz_none` runs (2 × 2^20 bits per QBER): even
/// steps of 0.35–0.7 σ reaching 2.8–5.6 σ gave f 0.01–0.04 lower than this schedule but lost
/// frames at QBER 1 % (up to 10 % of them with 0.35 σ steps; the lost frames had 2.8 σ more
/// errors than the mean, `debug_loss::debug_loss`).
const FIRST_SPREADS_ABOVE: f64 = 1.0;
const STEP_SPREADS: f64 = 0.5;
/// How far above the first attempt the last blind round reaches: this many spreads, at
/// least [`REACH_MIN`] and at most [`REACH_MAX`] (short frames have a wide spread, and the
/// punctured bits must fit the code's untainted positions, at least a third of the checks:
/// a reach of 1.0 asked for more than the codes of 10^4-bit blocks have). The raises grow geometrically from the first step (a frame that needs
/// more than most frames is rarer the further out it is) so that they add up to the reach.
/// A frame lost costs its bits out of the finite-key bound (the station subtracts them),
/// which for a satellite pass can be more than the whole key.
const REACH_SPREADS: f64 = 8.0;
const REACH_MIN: f64 = 0.15;
const REACH_MAX: f64 = 0.5;
/// Most reveal rounds a peer may ask for.
const MAX_REVEAL_ROUNDS: usize = 64;

/// The [`REVEAL_ROUNDS`] efficiency raises of the blind rounds: `first · g^(r−1)` with the
/// growth `g ≥ 1` that makes them add up to `reach` (bisection); even steps of `reach /
/// rounds` when steps of `first` would already pass it.
fn reveal_raises(first: f64, reach: f64) -> Vec<f64> {
    let rounds = REVEAL_ROUNDS as i32;
    let first = first.min(reach / f64::from(rounds));
    let total = |g: f64| (0..rounds).map(|r| first * g.powi(r)).sum::<f64>();
    let (mut lo, mut hi) = (1.0f64, 4.0f64);
    if total(lo) < reach {
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if total(mid) < reach {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    (0..rounds).map(|r| first * lo.powi(r)).collect()
}

/// Median decoding efficiency and spread of the codes at QBER `qber` and frame length `n`
/// (interpolated in [`DECODING_EFFICIENCY`], clamped at its ends; the spread grows as
/// `1/sqrt(n)`).
fn decoding_efficiency(qber: f64, n: usize) -> (f64, f64) {
    let t = &DECODING_EFFICIENCY;
    let (f50, sigma) = match t.iter().position(|r| r.0 >= qber) {
        None => (t[t.len() - 1].1, t[t.len() - 1].2),
        Some(0) => (t[0].1, t[0].2),
        Some(i) => {
            let (a, b) = (t[i - 1], t[i]);
            let w = (qber - a.0) / (b.0 - a.0);
            (a.1 + w * (b.1 - a.1), a.2 + w * (b.2 - a.2))
        }
    };
    let halvings = (CALIBRATION_FRAME as f64 / n as f64).log2();
    let per_halving = if halvings > 0.0 { LENGTH_PENALTY } else { LENGTH_GAIN };
    (f50 + per_halving * halvings, sigma * (CALIBRATION_FRAME as f64 / n as f64).sqrt())
}

/// Bits of the per-frame hash ([`LdpcParams::frame_hash_bits`]): a wrong decoding slips
/// through with probability 2^-16, and the verification stage still follows. At QBER 1 % and
/// frames of 65 536 bits this adds 0.3 % to the leak.
const FRAME_HASH_BITS: u32 = 16;
/// Default number of reveal round trips (the most a reconciliation with [`choose_params`] takes).
pub const REVEAL_ROUNDS: u32 = 8;
/// Layered box-plus iterations per decoding attempt (a frame retried after a reveal resumes
/// from its messages, so iterations are not wasted on it). This sets the trade between
/// efficiency and decoding speed; measured with `cargo bench -p qkd-host --bench ldpc --
/// zzz_none` (2 × 2^20 bits per QBER, QBER 1 / 2 / 3 / 4 / 5 %, code version 3, frames of
/// 32 768 bits), against 30 iterations (f 1.211 / 1.164 / 1.136 / 1.123 / 1.113, 1.4–2.9
/// Mbit/s):
/// * 60 iterations: f 1.203 / 1.156 / 1.128 / 1.115 / 1.106, at 0.8–1.8 Mbit/s;
/// * 10 iterations for the attempts after a reveal: f 1.254 / 1.192 / 1.155 / 1.145 / 1.131,
///   at 2.0–3.9 Mbit/s (20 iterations: f +0.004–0.010, 1.6–3.4 Mbit/s);
/// * stopping a frame's attempt once its count of unsatisfied checks has not fallen for 4
///   or 8 iterations gains nothing: a round lasts as long as its slowest frame, and the
///   frames that stop early are those that would have decoded a round earlier (f +0.003–0.012).
const MAX_ITERATIONS: u32 = 30;
/// Bounds on frame length (bits) accepted from a peer.
const MIN_FRAME: usize = 256;
const MAX_FRAME: usize = 1 << 20;

/// Errors of LDPC reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum LdpcError {
    /// QBER estimate outside `(0, MAX_QBER]` (or not finite).
    #[error("QBER estimate {0} is outside the supported range (0, {MAX_QBER}]")]
    QberOutOfRange(f64),
    /// Target efficiency not finite or not above 1.
    #[error("target efficiency {0} must be finite and greater than 1.0")]
    BadEfficiency(f64),
    /// Key shorter than [`MIN_KEY_BITS`].
    #[error("key of {0} bits is too short for LDPC reconciliation (minimum {MIN_KEY_BITS} bits)")]
    KeyTooShort(usize),
    /// The key length differs from the one the parameters were chosen for.
    #[error("key has {actual} bits but the parameters are for {expected} bits")]
    KeyLengthMismatch {
        /// `params.key_bits`.
        expected: usize,
        /// Length of the key given.
        actual: usize,
    },
    /// Parameters are inconsistent (e.g. received from a faulty peer).
    #[error("invalid LDPC parameters: {0}")]
    InvalidParams(String),
    /// The peer's message was built with other parameters or another code seed.
    #[error("message parameters differ from ours: {0}")]
    ParamsMismatch(String),
    /// A message is malformed (wrong sizes, frame indices, ...).
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A message arrived out of protocol order or for another round.
    #[error("protocol order: {0}")]
    OutOfOrder(String),
    /// The peer asked for more blind-round bits (punctured values or split parities) than a
    /// frame has ([`LdpcParams::reveal_capacity`]).
    #[error("frame {frame}: cannot disclose blind-round bits {from}..{to}, only {capacity} exist")]
    RevealExhausted {
        /// Frame index.
        frame: u32,
        /// First bit asked for.
        from: usize,
        /// One past the last bit asked for.
        to: usize,
        /// Blind-round bits per frame.
        capacity: usize,
    },
}

/// Parameters both stations must share (chosen by [`choose_params`] from the QBER estimate
/// and the key length; sent along with the syndromes and compared by Bob).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LdpcParams {
    /// Version of the code construction (must match on both sides).
    pub code_version: u32,
    /// Key bits reconciled (all frames together).
    pub key_bits: usize,
    /// Code length `n` (bits per frame, including punctured and shortened bits).
    pub frame_len: usize,
    /// Parity checks `m` (syndrome bits per frame).
    pub checks: usize,
    /// Number of frames the key is split into.
    pub frames: usize,
    /// Punctured bits `p` per frame at the first attempt.
    pub punctured: usize,
    /// Punctured bits revealed per frame in blind round `r` (entry `r − 1`); one entry per
    /// round, so its length is the most reveal round trips.
    pub reveal_steps: Vec<usize>,
    /// Most decoder iterations per decoding attempt.
    pub max_iterations: u32,
    /// Bits of the per-frame hash Alice sends with the syndromes (at most 64; 0: none).
    /// Bob accepts a decoded frame only when its hash matches too, so that a frame the
    /// decoder took to another word with the same syndrome (a low-weight codeword away) is
    /// retried in the next round instead of failing the verification of a whole block.
    pub frame_hash_bits: u32,
    /// QBER estimate (probability) the parameters were chosen for.
    pub qber: f64,
    /// How the blind rounds lower the rate (absent in messages of older builds: puncturing).
    #[serde(default)]
    pub adaptation: Adaptation,
}

/// How the blind rounds of [`LdpcParams`] lower the code rate for the frames still failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adaptation {
    /// Each frame carries [`LdpcParams::punctured`] random bits on untainted positions; a
    /// round reveals the values of the next ones (Elkouss et al.; Martinez-Mateo et al.).
    #[default]
    Puncture,
    /// No punctured bits: a round splits the next [`LdpcParams::reveal_step`] checks of the
    /// mother code in two (see `Code::split` in `code.rs`) and discloses the parity of one half of
    /// each (the other half's parity follows from the syndrome). One disclosed bit per
    /// split, as for a revealed punctured bit, but the first attempt decodes the whole mother
    /// code instead of a punctured one, and the lower-rate codes have lighter checks. At
    /// QBER 1–5 % this reconciles with f 0.01–0.04 lower than puncturing (see
    /// [`choose_params`]).
    SplitChecks,
    /// No punctured bits (the default): the first `rounds` blind rounds disclose the
    /// parities of *extension checks*, new rows of [`EXTENSION_DEGREE`] times the mother code's
    /// mean row degree over columns that share no mother check (`Code::extension_rows`, drawn
    /// from the seed), and Bob decodes the mother code with those rows appended
    /// (`Code::extend`); the later rounds split checks as [`Adaptation::SplitChecks`] does.
    /// An extension leaves the mother checks whole, so the code stays close to one designed
    /// at the lower rate and most frames decode a round or two earlier than after splits; but
    /// a few frames stay stuck on extension checks, and the splits of the later rounds free
    /// them. See [`EXTENSION_ROUNDS`] for the figures.
    ExtendThenSplit {
        /// Blind rounds that disclose extension checks before the splits start.
        rounds: u32,
    },
}

impl LdpcParams {
    /// Most reveal round trips (the length of [`Self::reveal_steps`]).
    pub fn max_reveal_rounds(&self) -> u32 {
        self.reveal_steps.len() as u32
    }

    /// Punctured bits revealed per frame in round `round` (from 1), if there is such a round.
    pub fn reveal_step(&self, round: u32) -> Option<usize> {
        self.reveal_steps.get((round as usize).checked_sub(1)?).copied()
    }

    /// Key bits carried by frame `f` (frames differ by at most one bit).
    pub fn frame_key_bits(&self, f: usize) -> usize {
        self.key_bits / self.frames + usize::from(f < self.key_bits % self.frames)
    }

    /// Range of key bit indices carried by frame `f`.
    pub fn frame_range(&self, f: usize) -> Range<usize> {
        let q = self.key_bits / self.frames;
        let start = f * q + f.min(self.key_bits % self.frames);
        start..start + self.frame_key_bits(f)
    }

    /// Most bits the blind rounds can disclose per frame: the punctured bits, or with
    /// [`Adaptation::SplitChecks`] the checks (each split once), or with
    /// [`Adaptation::ExtendThenSplit`] the extension checks and then the checks.
    pub fn reveal_capacity(&self) -> usize {
        match self.adaptation {
            Adaptation::Puncture => self.punctured,
            Adaptation::SplitChecks => self.checks,
            Adaptation::ExtendThenSplit { .. } => self.extension_checks() + self.checks,
        }
    }

    /// Extension checks a frame can disclose ([`Adaptation::ExtendThenSplit`]: the bits of its
    /// extension rounds; 0 otherwise).
    pub fn extension_checks(&self) -> usize {
        match self.adaptation {
            Adaptation::ExtendThenSplit { rounds } => self.reveal_steps.iter().take(rounds as usize).sum(),
            _ => 0,
        }
    }

    /// Of the first `disclosed` bits of a frame's blind rounds, how many are extension-check
    /// parities and how many split halves (with [`Adaptation::SplitChecks`], all splits).
    fn extended_and_split(&self, disclosed: usize) -> (usize, usize) {
        let extended = disclosed.min(self.extension_checks());
        (extended, disclosed - extended)
    }

    /// Bits leaked by the syndrome and hash of one frame: `checks − punctured + hash bits`.
    pub fn syndrome_leak_per_frame(&self) -> usize {
        self.checks - self.punctured + self.frame_hash_bits as usize
    }

    /// Checks internal consistency (cheap; the puncturing capacity is checked when the code
    /// is built).
    pub fn validate(&self) -> Result<(), LdpcError> {
        let bad = |s: String| Err(LdpcError::InvalidParams(s));
        if self.code_version != code::CODE_VERSION {
            return bad(format!("code version {} (this build has {})", self.code_version, code::CODE_VERSION));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_len) {
            return bad(format!("frame length {} outside {MIN_FRAME}..={MAX_FRAME}", self.frame_len));
        }
        if self.checks < 4 || self.checks + 3 > self.frame_len {
            return bad(format!("{} checks for frame length {}", self.checks, self.frame_len));
        }
        if self.frames == 0 || self.key_bits < self.frames {
            return bad(format!("{} key bits in {} frames", self.key_bits, self.frames));
        }
        if self.punctured >= self.checks {
            return bad(format!("{} punctured bits with {} checks", self.punctured, self.checks));
        }
        if self.frame_key_bits(0) + self.punctured > self.frame_len {
            return bad(format!(
                "{} key bits + {} punctured exceed frame length {}",
                self.frame_key_bits(0),
                self.punctured,
                self.frame_len
            ));
        }
        if self.reveal_steps.len() > MAX_REVEAL_ROUNDS {
            return bad(format!("{} reveal rounds (at most {MAX_REVEAL_ROUNDS})", self.reveal_steps.len()));
        }
        if self.adaptation != Adaptation::Puncture && self.punctured != 0 {
            return bad(format!("{} punctured bits with {:?}", self.punctured, self.adaptation));
        }
        if self.extension_checks() > self.checks {
            return bad(format!("{} extension checks for {} checks (at most as many)", self.extension_checks(), self.checks));
        }
        if self.reveal_steps.iter().try_fold(0usize, |a, &s| a.checked_add(s)).map_or(true, |t| t > self.reveal_capacity()) {
            return bad(format!("reveal steps {:?} exceed the {} bits the blind rounds can disclose", self.reveal_steps, self.reveal_capacity()));
        }
        if self.frame_hash_bits > 64 {
            return bad(format!("{}-bit frame hash (at most 64)", self.frame_hash_bits));
        }
        if self.max_iterations == 0 || self.max_iterations > 10_000 {
            return bad(format!("{} iterations", self.max_iterations));
        }
        if !(self.qber > 0.0 && self.qber < 0.5) {
            return bad(format!("QBER {}", self.qber));
        }
        Ok(())
    }
}

/// Frame length (bits) for a key of `n_bits`: the longest power of two up to
/// [`MAX_FRAME_LEN`] that leaves about sixteen frames. Long frames decode closer to capacity
/// ([`LENGTH_PENALTY`], [`LENGTH_GAIN`]) and their decoding thresholds spread less, so the
/// blind rounds waste less; sixteen frames keep the decoder's lanes (16 frames per register,
/// [`decoder`]) busy, though on one core's worth of lanes of the two. Measured with `cargo
/// bench -p qkd-host --bench ldpc -- zzz_none` (2 × 2^20 bits per QBER, QBER 1 / 2 / 3 / 4 /
/// 5 %), with splits only ([`Adaptation::SplitChecks`]; the default's extension rounds take
/// 0.02 more off at QBER 1 % and up to 0.003 at 2–5 %): frames of 65 536 bits (16 frames) give f 1.176 / 1.115 / 1.099 / 1.087 / 1.085 at
/// 0.9–1.2 Mbit/s, frames of 32 768 bits (32 frames, all lanes busy) f 1.200 / 1.135 / 1.108 /
/// 1.099 / 1.090 at 1.7–2.7 Mbit/s, frames of 131 072 bits (8 frames) f 1.168 / 1.108 /
/// 1.090 / 1.081 / 1.079 at 0.3–0.45 Mbit/s. The key is what a pass is for, so the
/// efficiency wins over decoding time (a second per 10^6 bits, against a pass of minutes).
fn frame_len_for(n_bits: usize) -> usize {
    (n_bits / 16).next_power_of_two().clamp(2048, MAX_FRAME_LEN)
}

/// Frames decoded at once on the target machine (2 cores): the decoder's lanes (16 frames
/// per register) times two threads. A key needing more frames than this is split into a whole
/// number of such batches, the frame length adjusted to carry it. The blind rounds are
/// sequential and each waits for its slowest frame: with 34 frames on 32 lanes the last two
/// started only when lanes freed up, and a 2^20-bit key took ~25 % more decoder iterations
/// than with 32 (`cargo bench -p qkd-host --bench ldpc -- zzz_none`, same efficiency).
const FRAME_BATCH: usize = 32;

/// Chooses parameters for reconciling `n_bits` key bits at QBER `qber` (probability). The
/// first attempt runs at `f = min(target_efficiency, f50 + σ)` (at least 1.0), where `f50` and
/// `σ` are the measured median and spread of the codes' decoding efficiency at this QBER and
/// frame length (a table in this module, measured with `decoder::profile_search`); the
/// [`REVEAL_ROUNDS`] blind rounds then lower the rate for the frames still failing, by `σ/2`
/// first and in growing steps up to `8σ` (at least 0.15, at most 0.5) above the first attempt,
/// disclosing extension checks in the first [`EXTENSION_ROUNDS`] rounds and splitting checks
/// after ([`Adaptation::ExtendThenSplit`]). See [`simulate`] for what is reached.
pub fn choose_params(qber: f64, n_bits: usize, target_efficiency: f64) -> Result<LdpcParams, LdpcError> {
    choose_params_with(qber, n_bits, target_efficiency, Adaptation::ExtendThenSplit { rounds: EXTENSION_ROUNDS })
}

/// [`choose_params`] with the rate adaptation of the blind rounds. Without puncturing
/// ([`Adaptation::SplitChecks`], [`Adaptation::ExtendThenSplit`]) the first attempt is at the median decoding efficiency
/// (`min(target, f50)`: a split costs no more than a revealed punctured bit, and the mother
/// code loses nothing to puncturing), and the frames carry no punctured bits. Measured in one
/// run of `cargo bench -p qkd-host --bench ldpc -- zzz_none` (2 × 2^20 bits per QBER, frames of
/// 32 768 bits, code version 3, no frame lost): f 1.211 / 1.164 / 1.136 / 1.123 / 1.113 at
/// QBER 1–5 %, against 1.241 / 1.189 / 1.157 / 1.147 / 1.130 with puncturing (commit 88ae1ac).
/// With code version 4 and frames of 65 536 bits see [`frame_len_for`].
pub fn choose_params_with(qber: f64, n_bits: usize, target_efficiency: f64, adaptation: Adaptation) -> Result<LdpcParams, LdpcError> {
    if !(qber > 0.0 && qber <= MAX_QBER) {
        return Err(LdpcError::QberOutOfRange(qber));
    }
    if !(target_efficiency.is_finite() && target_efficiency > 1.0) {
        return Err(LdpcError::BadEfficiency(target_efficiency));
    }
    if n_bits < MIN_KEY_BITS {
        return Err(LdpcError::KeyTooShort(n_bits));
    }
    let n = frame_len_for(n_bits);
    let h = binary_entropy(qber);
    let (f50, sigma) = decoding_efficiency(qber, n);
    // Split and extension checks: no punctured bits, the first attempt on the mother code.
    let split = adaptation != Adaptation::Puncture;
    let f_first = target_efficiency.min(f50 + if split { 0.0 } else { FIRST_SPREADS_ABOVE } * sigma).max(1.0);
    let raises = reveal_raises(STEP_SPREADS * sigma, (REACH_SPREADS * sigma).clamp(REACH_MIN, REACH_MAX));
    let reach: f64 = raises.iter().sum();
    let shape = |k: usize| {
        // Cumulative rounding, so that the steps add up to the reach.
        let mut steps = Vec::with_capacity(raises.len());
        let (mut done, mut sum) = (0usize, 0.0);
        for r in &raises {
            sum += r;
            let upto = (sum * k as f64 * h).ceil().max((done + 1) as f64) as usize;
            steps.push(upto - done);
            done = upto;
        }
        // Punctured bits are in the syndrome but one-time-pad part of it; splits are not.
        let m = (f_first * k as f64 * h).ceil() as usize + if split { 0 } else { done };
        (steps, if split { 0 } else { done }, m)
    };
    // Largest k with k + p <= n, then spread the key evenly over the frames.
    let k_max = (n as f64 / (1.0 + if split { 0.0 } else { reach } * h)).floor() as usize;
    let k_max = (k_max.saturating_sub(2 * raises.len())..=k_max).rev().find(|&k| k + shape(k).1 <= n).unwrap_or(1);
    let mut frames = n_bits.div_ceil(k_max.max(1));
    let mut n = n;
    if frames > FRAME_BATCH {
        // Whole batches: the nearest multiple of FRAME_BATCH, each frame stretched or shrunk
        // to carry its share of the key (no shortened bits but the one by which frames differ).
        frames = FRAME_BATCH * ((frames + FRAME_BATCH / 2) / FRAME_BATCH);
        n = n_bits.div_ceil(frames) + shape(n_bits.div_ceil(frames)).1;
    }
    let k = n_bits.div_ceil(frames);
    let (steps, p, m) = shape(k);
    let params = LdpcParams {
        code_version: code::CODE_VERSION,
        key_bits: n_bits,
        frame_len: n,
        checks: m.max(4),
        frames,
        punctured: p,
        reveal_steps: steps,
        max_iterations: MAX_ITERATIONS,
        frame_hash_bits: FRAME_HASH_BITS,
        qber,
        adaptation,
    };
    params.validate()?;
    Ok(params)
}

/// Where key, punctured and shortened bits sit in a frame (same for every frame; a frame
/// with `k_f` key bits uses `fill[..k_f]` for them and shortens `fill[k_f..]`).
struct Layout {
    code: Arc<Code>,
    /// Punctured positions, in reveal order.
    punctured: Vec<u32>,
    /// All other positions, key bits first.
    fill: Vec<u32>,
    /// Interleaver: key bit `order[j]` is the `j`-th bit of the frame sequence (frame `f`
    /// carries `order[frame_range(f)]`). A public permutation drawn from the seed, so that
    /// every frame sees the key's average error rate: a satellite pass's errors are not
    /// uniform in time (the QBER rises at low elevation), and contiguous frames from its edges
    /// would fail at an efficiency that the average needs.
    order: Vec<u32>,
    /// Per hash bit, the mask of frame key bits (packed LSB-first) whose parity it is: a
    /// random binary matrix, a universal hash (two different frames collide with probability
    /// 2^-bits), public and drawn from the seed.
    hash_masks: Vec<Vec<u64>>,
    /// Without puncturing, the rows of the mother code in the order the blind rounds split
    /// them (a public permutation drawn from the seed); empty otherwise.
    split_order: Vec<u32>,
    /// With [`Adaptation::ExtendThenSplit`], the extension checks in the order the blind
    /// rounds disclose them; empty otherwise.
    ext_rows: Vec<Vec<u32>>,
}

impl Layout {
    fn new(params: &LdpcParams, seed: u64) -> Result<Self, LdpcError> {
        params.validate()?;
        let code = code::cached(params.frame_len, params.checks, seed);
        if code.untainted.len() < params.punctured {
            return Err(LdpcError::InvalidParams(format!(
                "{} punctured bits asked, the code has {} puncturable positions",
                params.punctured,
                code.untainted.len()
            )));
        }
        let punctured = code.untainted[..params.punctured].to_vec();
        let mut is_p = vec![false; code.n];
        for &v in &punctured {
            is_p[v as usize] = true;
        }
        let mut fill: Vec<u32> = (0..code.n as u32).filter(|&v| !is_p[v as usize]).collect();
        fill.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a_1d9c_0f1e_7b33));
        let mut order: Vec<u32> = (0..params.key_bits as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x0bd3_51c7_e2a4_9f68));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x77e1_0c4a_b95d_2f13);
        let words = params.frame_key_bits(0).div_ceil(64);
        let hash_masks = (0..params.frame_hash_bits).map(|_| (0..words).map(|_| rng.gen()).collect()).collect();
        let mut split_order = Vec::new();
        if params.adaptation != Adaptation::Puncture {
            split_order = (0..code.m as u32).collect();
            split_order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x3c6e_f372_fe94_f82b));
        }
        let degree = (EXTENSION_DEGREE * code.edges() as f64 / code.m as f64).round() as usize;
        let ext_rows = code.extension_rows(params.extension_checks(), degree, seed);
        Ok(Self { code, punctured, fill, order, hash_masks, split_order, ext_rows })
    }

    /// Frame `f`'s code word (packed, `n` bits: its key bits from `key` through the
    /// interleaver, `punct`'s bits `f·p..` on the punctured positions, zeros elsewhere) and its
    /// key bits in frame order (packed). Secret: the caller zeroizes both.
    fn frame_word(&self, params: &LdpcParams, key: &SecretBits, punct: &SecretBits, f: usize) -> (Vec<u64>, Vec<u64>) {
        let p = params.punctured;
        let mut x = vec![0u64; self.code.n.div_ceil(64)];
        let mut kb = vec![0u64; params.frame_key_bits(f).div_ceil(64)];
        for (j, i) in params.frame_range(f).enumerate() {
            let v = self.fill[j] as usize;
            let b = u64::from(key.get(self.order[i] as usize));
            x[v / 64] |= b << (v % 64);
            kb[j / 64] |= b << (j % 64);
        }
        for (j, &v) in self.punctured.iter().enumerate() {
            x[v as usize / 64] |= u64::from(punct.get(f * p + j)) << (v % 64);
        }
        (x, kb)
    }

    /// Parity of the half that row `row` of the mother code keeps when split (its columns at
    /// even positions, see [`code::Code::split`]) over the packed word `x`.
    fn split_parity(&self, row: u32, x: &[u64]) -> bool {
        self.code.row(row as usize).iter().step_by(2).fold(false, |a, &c| a ^ get_bit(x, c as usize))
    }

    /// The syndrome of a frame's code after its blind rounds disclosed `disclosed` (the
    /// parities of extension checks, then split halves), from the mother syndrome `syndrome`:
    /// the code is `Code::extend` by the first extension checks, then `Code::split`.
    fn disclosed_syndrome(&self, params: &LdpcParams, syndrome: &[u64], disclosed: &[bool]) -> Vec<u64> {
        let (e, _) = params.extended_and_split(disclosed.len());
        let m = self.code.m;
        let mut ext = vec![0u64; (m + e).div_ceil(64)];
        ext[..syndrome.len()].copy_from_slice(syndrome);
        for (j, &b) in disclosed[..e].iter().enumerate() {
            ext[(m + j) / 64] |= u64::from(b) << ((m + j) % 64);
        }
        self.split_syndrome(&ext, m + e, &disclosed[e..])
    }

    /// A frame's code after its blind rounds disclosed `disclosed` bits (see
    /// [`Layout::disclosed_syndrome`]).
    fn disclosed_code(&self, params: &LdpcParams, disclosed: usize) -> Code {
        let (e, s) = params.extended_and_split(disclosed);
        match (e, s) {
            // Splits only: no copy of the mother code to extend by nothing.
            (0, _) => self.code.split(&self.split_order, s),
            (_, 0) => self.code.extend(&self.ext_rows[..e]),
            _ => self.code.extend(&self.ext_rows[..e]).split(&self.split_order, s),
        }
    }

    /// Bit `j` of a frame's blind rounds over its word `x`: an extension-check parity or a
    /// split half.
    fn disclosed_bit(&self, params: &LdpcParams, j: usize, x: &[u64]) -> bool {
        let (e, _) = params.extended_and_split(j + 1);
        if e == j + 1 {
            self.ext_rows[j].iter().fold(false, |a, &c| a ^ get_bit(x, c as usize))
        } else {
            self.split_parity(self.split_order[j - e], x)
        }
    }

    /// The syndrome of a code of `m` rows after `halves.len()` splits of rows of the mother
    /// code, from its syndrome `syndrome` and the disclosed half parities `halves`.
    fn split_syndrome(&self, syndrome: &[u64], m: usize, halves: &[bool]) -> Vec<u64> {
        let s = halves.len();
        let mut out = vec![0u64; (m + s).div_ceil(64)];
        out[..syndrome.len()].copy_from_slice(syndrome);
        for (j, (&r, &a)) in self.split_order.iter().zip(halves).enumerate() {
            let (r, whole) = (r as usize, get_bit(syndrome, r as usize));
            out[r / 64] = (out[r / 64] & !(1 << (r % 64))) | u64::from(a) << (r % 64);
            out[(m + j) / 64] |= u64::from(whole ^ a) << ((m + j) % 64);
        }
        out
    }

    /// The hash of a frame's key bits, packed LSB-first (bits past the frame's length zero).
    fn frame_hash(&self, bits: &[u64]) -> u64 {
        self.hash_masks.iter().enumerate().fold(0u64, |h, (i, mask)| {
            let parity = mask.iter().zip(bits).fold(0u32, |p, (m, b)| p ^ (m & b).count_ones()) & 1;
            h | u64::from(parity) << i
        })
    }
}

/// Statistics of one reconciliation (identical on both sides).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LdpcStats {
    /// Bits of information about the key disclosed: `frames·(m − p + hash bits) + revealed`
    /// (see module doc).
    pub leaked_bits: u64,
    /// Raw bits sent by Alice: `frames·(m + hash bits) + revealed`.
    pub disclosed_bits: u64,
    /// Bits disclosed in blind rounds: punctured values or half-check parities, by the
    /// [`Adaptation`] (included in both counts above).
    pub revealed_bits: u64,
    /// Reveal round trips used (0 when every frame decoded at once).
    pub round_trips: u64,
    /// Frames.
    pub frames: u64,
    /// Frames that failed the first attempt.
    pub first_attempt_failures: u64,
    /// Frames that never decoded (discarded).
    pub failed_frames: u64,
    /// Decodings that matched the syndrome but not the frame hash (another word; the frame
    /// was retried). Bob's count; 0 on Alice's side.
    pub wrong_decodings: u64,
    /// Key bits discarded with the failed frames.
    pub discarded_bits: u64,
    /// Key bits reconciled (input length).
    pub key_bits: u64,
    /// Bob's decoding wall time (seconds); 0 on Alice's side.
    pub decode_seconds: f64,
}

impl LdpcStats {
    /// Efficiency `leaked / (key_bits · h(qber))` for the given QBER (probability).
    pub fn efficiency(&self, qber: f64) -> f64 {
        self.leaked_bits as f64 / (self.key_bits as f64 * binary_entropy(qber))
    }
}

/// Alice → Bob: parameters, code seed and one syndrome per frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyndromeMsg {
    /// Parameters Alice used.
    pub params: LdpcParams,
    /// Code seed Alice used.
    pub seed: u64,
    /// Per frame, the `checks`-bit syndrome packed LSB-first.
    pub syndromes: Vec<Vec<u64>>,
    /// Per frame, the hash of its key bits (`frame_hash_bits` bits).
    pub frame_hashes: Vec<u64>,
}

/// Bob → Alice: frames that failed, asking for the next punctured bits of each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevealRequest {
    /// Round number, from 1.
    pub round: u32,
    /// Frame indices, strictly increasing.
    pub frames: Vec<u32>,
}

/// Alice → Bob: the next `reveal_step(round)` punctured bits of each requested frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevealMsg {
    /// Round answered.
    pub round: u32,
    /// Frames, as in the request.
    pub frames: Vec<u32>,
    /// Per frame, `reveal_step(round)` bits packed LSB-first.
    pub bits: Vec<Vec<u64>>,
}

/// Bob → Alice: frames that never decoded (both discard them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoneMsg {
    /// Frame indices, strictly increasing.
    pub discarded_frames: Vec<u32>,
}

/// Result for one station: the reconciled key without the discarded frames.
#[derive(Debug)]
pub struct LdpcOutcome {
    /// Reconciled key (input length minus `stats.discarded_bits`).
    pub key: SecretBits,
    /// Ranges of input key bit indices that were dropped (the frames' bits are interleaved
    /// over the key, so a lost frame drops bits all over it; the key keeps the input order).
    pub discarded: Vec<Range<usize>>,
    /// Statistics.
    pub stats: LdpcStats,
}

/// What Bob does next.
#[derive(Debug)]
pub enum BobStep {
    /// Send this request to Alice and pass her answer to [`LdpcBob::receive_reveal`].
    NeedMore(RevealRequest),
    /// Finished: send the [`DoneMsg`] to Alice; the outcome is Bob's reconciled key.
    Done(LdpcOutcome, DoneMsg),
}

fn check_frame_list(frames: &[u32], n_frames: usize, what: &'static str) -> Result<(), LdpcError> {
    if frames.windows(2).any(|w| w[0] >= w[1]) || frames.last().is_some_and(|&f| f as usize >= n_frames) {
        return Err(LdpcError::Malformed {
            what,
            detail: format!("frame list must be strictly increasing and below {n_frames}"),
        });
    }
    Ok(())
}

/// The reconciled key: the key bits of the frames not in `discarded` (sorted), put back in
/// key order through the interleaver `order`, and the ranges of key indices dropped.
/// `frame_bits(f)` gives frame `f`'s key bits in frame order.
fn assemble(params: &LdpcParams, order: &[u32], discarded: &[u32], frame_bits: impl Fn(usize) -> SecretBits) -> (SecretBits, Vec<Range<usize>>) {
    let mut keep = vec![true; params.key_bits];
    let mut all = SecretBits::zeros(params.key_bits);
    let mut d = discarded.iter().peekable();
    for f in 0..params.frames {
        let r = params.frame_range(f);
        if d.peek().is_some_and(|&&x| x as usize == f) {
            d.next();
            for j in r {
                keep[order[j] as usize] = false;
            }
        } else {
            let bits = frame_bits(f);
            for (i, j) in r.enumerate() {
                all.set(order[j] as usize, bits.get(i));
            }
        }
    }
    let mut key = SecretBits::new();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < keep.len() {
        let start = i;
        while i < keep.len() && keep[i] == keep[start] {
            i += 1;
        }
        if keep[start] {
            key.extend_from(&all.slice(start, i));
        } else {
            ranges.push(start..i);
        }
    }
    (key, ranges)
}

fn get_bit(words: &[u64], i: usize) -> bool {
    (words[i / 64] >> (i % 64)) & 1 == 1
}

/// Alice's side.
pub struct LdpcAlice {
    params: LdpcParams,
    key: SecretBits,
    /// Punctured values of all frames, `punctured` bits per frame (secret).
    punct: SecretBits,
    /// Punctured bits revealed so far, per frame.
    revealed: Vec<usize>,
    layout: Layout,
    round: u32,
    stats: LdpcStats,
}

impl std::fmt::Debug for LdpcAlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdpcAlice").field("params", &self.params).field("round", &self.round).finish_non_exhaustive()
    }
}

impl LdpcAlice {
    /// Starts reconciliation of `key` and returns the syndrome message for Bob. `seed` selects
    /// the code (public; both stations must use the same).
    pub fn new(key: &SecretBits, params: &LdpcParams, seed: u64) -> Result<(Self, SyndromeMsg), LdpcError> {
        let layout = Layout::new(params, seed)?;
        if key.len() != params.key_bits {
            return Err(LdpcError::KeyLengthMismatch { expected: params.key_bits, actual: key.len() });
        }
        let p = params.punctured;
        let mut rng = ChaCha20Rng::from_entropy();
        let mut punct = SecretBits::zeros(params.frames * p);
        for i in 0..punct.len() {
            punct.set(i, rng.gen::<bool>());
        }
        let code = &layout.code;
        let (syndromes, frame_hashes): (Vec<Vec<u64>>, Vec<u64>) = (0..params.frames)
            .into_par_iter()
            .map(|f| {
                let (mut x, mut kb) = layout.frame_word(params, key, &punct, f);
                let s = code.syndrome(&x);
                let h = layout.frame_hash(&kb);
                x.zeroize();
                kb.zeroize();
                (s, h)
            })
            .unzip();
        let stats = LdpcStats {
            leaked_bits: (params.frames * params.syndrome_leak_per_frame()) as u64,
            disclosed_bits: (params.frames * (params.checks + params.frame_hash_bits as usize)) as u64,
            frames: params.frames as u64,
            key_bits: params.key_bits as u64,
            ..Default::default()
        };
        let alice = Self {
            params: params.clone(),
            key: key.clone(),
            punct,
            revealed: vec![0; params.frames],
            layout,
            round: 0,
            stats,
        };
        Ok((alice, SyndromeMsg { params: params.clone(), seed, syndromes, frame_hashes }))
    }

    /// Answers a reveal request with the next `reveal_step(round)` punctured bits of each frame.
    pub fn reveal(&mut self, req: &RevealRequest) -> Result<RevealMsg, LdpcError> {
        if req.round != self.round + 1 || req.round > self.params.max_reveal_rounds() {
            return Err(LdpcError::OutOfOrder(format!(
                "reveal request for round {}, expected round {} of at most {}",
                req.round,
                self.round + 1,
                self.params.max_reveal_rounds()
            )));
        }
        check_frame_list(&req.frames, self.params.frames, "reveal request")?;
        let (p, cap) = (self.params.punctured, self.params.reveal_capacity());
        let step = self.params.reveal_step(req.round).unwrap_or(0);
        if let Some(&f) = req.frames.iter().find(|&&f| self.revealed[f as usize] + step > cap) {
            let from = self.revealed[f as usize];
            return Err(LdpcError::RevealExhausted { frame: f, from, to: from + step, capacity: cap });
        }
        let mut bits = Vec::with_capacity(req.frames.len());
        for &f in &req.frames {
            let f = f as usize;
            let from = self.revealed[f];
            let mut w = vec![0u64; step.div_ceil(64)];
            match self.params.adaptation {
                Adaptation::Puncture => {
                    for j in 0..step {
                        w[j / 64] |= u64::from(self.punct.get(f * p + from + j)) << (j % 64);
                    }
                }
                Adaptation::SplitChecks | Adaptation::ExtendThenSplit { .. } => {
                    let (mut x, mut kb) = self.layout.frame_word(&self.params, &self.key, &self.punct, f);
                    for j in 0..step {
                        w[j / 64] |= u64::from(self.layout.disclosed_bit(&self.params, from + j, &x)) << (j % 64);
                    }
                    x.zeroize();
                    kb.zeroize();
                }
            }
            self.revealed[f] = from + step;
            bits.push(w);
        }
        let n = (req.frames.len() * step) as u64;
        self.stats.leaked_bits += n;
        self.stats.disclosed_bits += n;
        self.stats.revealed_bits += n;
        self.stats.round_trips += 1;
        if req.round == 1 {
            self.stats.first_attempt_failures = req.frames.len() as u64;
        }
        self.round = req.round;
        Ok(RevealMsg { round: req.round, frames: req.frames.clone(), bits })
    }

    /// Finishes with Bob's list of discarded frames; returns Alice's reconciled key.
    pub fn finish(self, done: &DoneMsg) -> Result<LdpcOutcome, LdpcError> {
        check_frame_list(&done.discarded_frames, self.params.frames, "done message")?;
        let mut stats = self.stats.clone();
        let (key, discarded) =
            assemble(&self.params, &self.layout.order, &done.discarded_frames, |f| {
                let mut bits = SecretBits::zeros(self.params.frame_key_bits(f));
                for (i, j) in self.params.frame_range(f).enumerate() {
                    bits.set(i, self.key.get(self.layout.order[j] as usize));
                }
                bits
            });
        stats.failed_frames = done.discarded_frames.len() as u64;
        stats.discarded_bits = discarded.iter().map(|r| r.len() as u64).sum();
        Ok(LdpcOutcome { key, discarded, stats })
    }

    /// Statistics so far.
    pub fn stats(&self) -> &LdpcStats {
        &self.stats
    }
}

/// Bob's side.
pub struct LdpcBob {
    params: LdpcParams,
    seed: u64,
    layout: Layout,
    key: SecretBits,
    syndromes: Vec<Vec<u64>>,
    /// Alice's hash of each frame's key bits.
    frame_hashes: Vec<u64>,
    /// Revealed punctured values per frame (public once revealed).
    revealed: Vec<Vec<bool>>,
    /// Corrected key bits of each decoded frame.
    decoded: Vec<Option<SecretBits>>,
    /// Decoder messages of each failed frame, to resume from after the next reveal.
    resume: Vec<Option<Vec<i16>>>,
    /// The code those messages belong to (the mother code, or the last split code).
    resume_code: Arc<Code>,
    /// The request Bob is waiting on.
    pending: Option<RevealRequest>,
    stats: LdpcStats,
}

impl std::fmt::Debug for LdpcBob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdpcBob").field("params", &self.params).field("pending", &self.pending).finish_non_exhaustive()
    }
}

impl LdpcBob {
    /// Prepares Bob with his (noisy) `key`; `seed` must equal Alice's.
    pub fn new(key: &SecretBits, params: &LdpcParams, seed: u64) -> Result<Self, LdpcError> {
        let layout = Layout::new(params, seed)?;
        let resume_code = Arc::clone(&layout.code);
        if key.len() != params.key_bits {
            return Err(LdpcError::KeyLengthMismatch { expected: params.key_bits, actual: key.len() });
        }
        Ok(Self {
            params: params.clone(),
            seed,
            layout,
            key: key.clone(),
            syndromes: Vec::new(),
            frame_hashes: Vec::new(),
            revealed: vec![Vec::new(); params.frames],
            decoded: vec![None; params.frames],
            resume: vec![None; params.frames],
            resume_code,
            pending: None,
            stats: LdpcStats {
                frames: params.frames as u64,
                key_bits: params.key_bits as u64,
                ..Default::default()
            },
        })
    }

    /// Takes Alice's syndromes and decodes every frame.
    pub fn receive_syndrome(&mut self, msg: &SyndromeMsg) -> Result<BobStep, LdpcError> {
        if !self.syndromes.is_empty() {
            return Err(LdpcError::OutOfOrder("a second syndrome message".into()));
        }
        if msg.params != self.params {
            return Err(LdpcError::ParamsMismatch(format!("Alice's {:?} vs Bob's {:?}", msg.params, self.params)));
        }
        if msg.seed != self.seed {
            return Err(LdpcError::ParamsMismatch(format!("code seed {} vs {}", msg.seed, self.seed)));
        }
        let words = self.params.checks.div_ceil(64);
        if msg.syndromes.len() != self.params.frames || msg.syndromes.iter().any(|s| s.len() != words) {
            return Err(LdpcError::Malformed {
                what: "syndrome message",
                detail: format!("expected {} syndromes of {words} words", self.params.frames),
            });
        }
        if msg.frame_hashes.len() != self.params.frames
            || msg.frame_hashes.iter().any(|&h| self.params.frame_hash_bits < 64 && h >> self.params.frame_hash_bits != 0)
        {
            return Err(LdpcError::Malformed {
                what: "syndrome message",
                detail: format!("expected {} frame hashes of {} bits", self.params.frames, self.params.frame_hash_bits),
            });
        }
        self.syndromes = msg.syndromes.clone();
        self.frame_hashes = msg.frame_hashes.clone();
        self.stats.leaked_bits = (self.params.frames * self.params.syndrome_leak_per_frame()) as u64;
        self.stats.disclosed_bits = (self.params.frames * (self.params.checks + self.params.frame_hash_bits as usize)) as u64;
        let all: Vec<u32> = (0..self.params.frames as u32).collect();
        self.decode(&all);
        let failed = self.failed();
        self.stats.first_attempt_failures = failed.len() as u64;
        Ok(self.next_step(failed, 1))
    }

    /// Takes Alice's revealed bits and retries the frames that failed.
    pub fn receive_reveal(&mut self, msg: &RevealMsg) -> Result<BobStep, LdpcError> {
        let Some(req) = self.pending.take() else {
            return Err(LdpcError::OutOfOrder("reveal message without a pending request".into()));
        };
        if msg.round != req.round || msg.frames != req.frames {
            let detail = format!("answer for round {} ({} frames), asked round {} ({} frames)", msg.round, msg.frames.len(), req.round, req.frames.len());
            self.pending = Some(req);
            return Err(LdpcError::OutOfOrder(detail));
        }
        let step = self.params.reveal_step(msg.round).unwrap_or(0);
        if msg.bits.len() != msg.frames.len() || msg.bits.iter().any(|b| b.len() != step.div_ceil(64)) {
            self.pending = Some(req);
            return Err(LdpcError::Malformed { what: "reveal message", detail: format!("expected {step} bits per frame") });
        }
        for (&f, bits) in msg.frames.iter().zip(&msg.bits) {
            self.revealed[f as usize].extend((0..step).map(|j| get_bit(bits, j)));
        }
        let n = (msg.frames.len() * step) as u64;
        self.stats.leaked_bits += n;
        self.stats.disclosed_bits += n;
        self.stats.revealed_bits += n;
        self.stats.round_trips += 1;
        self.decode(&msg.frames);
        let failed = self.failed();
        Ok(self.next_step(failed, msg.round + 1))
    }

    fn failed(&self) -> Vec<u32> {
        (0..self.params.frames as u32).filter(|&f| self.decoded[f as usize].is_none()).collect()
    }

    fn next_step(&mut self, failed: Vec<u32>, next_round: u32) -> BobStep {
        if failed.is_empty() || next_round > self.params.max_reveal_rounds() {
            // Decoder messages depend on the key: clear them before they are dropped.
            for state in self.resume.iter_mut() {
                if let Some(m) = state.as_mut() {
                    m.zeroize();
                }
                *state = None;
            }
            let (key, discarded) = assemble(&self.params, &self.layout.order, &failed, |f| self.decoded[f].clone().unwrap_or_default());
            let mut stats = self.stats.clone();
            stats.failed_frames = failed.len() as u64;
            stats.discarded_bits = discarded.iter().map(|r| r.len() as u64).sum();
            BobStep::Done(LdpcOutcome { key, discarded, stats }, DoneMsg { discarded_frames: failed })
        } else {
            let req = RevealRequest { round: next_round, frames: failed };
            self.pending = Some(req.clone());
            BobStep::NeedMore(req)
        }
    }

    /// Decodes the given frames with what is known now and stores the successes.
    fn decode(&mut self, frames: &[u32]) {
        let start = Instant::now();
        let (params, layout, key) = (&self.params, &self.layout, &self.key);
        let n = layout.code.n;
        let key_llr = llr_key(params.qber);
        let code = match params.adaptation {
            Adaptation::Puncture => Arc::clone(&layout.code),
            Adaptation::SplitChecks | Adaptation::ExtendThenSplit { .. } => {
                // Every frame retried has been in every round so far: all have the same
                // extension checks and splits.
                let s = frames.first().map_or(0, |&f| self.revealed[f as usize].len());
                assert!(frames.iter().all(|&f| self.revealed[f as usize].len() == s), "frames decoded together differ in their disclosed checks");
                Arc::new(layout.disclosed_code(params, s))
            }
        };
        let mut jobs: Vec<Job> = frames
            .par_iter()
            .map(|&f| {
                let f = f as usize;
                let mut llr = vec![LLR_KNOWN; n];
                let rev = &self.revealed[f];
                for (j, &v) in layout.punctured.iter().enumerate() {
                    llr[v as usize] = match rev.get(j) {
                        Some(true) => -LLR_KNOWN,
                        Some(false) => LLR_KNOWN,
                        None => 0,
                    };
                }
                for (j, i) in params.frame_range(f).enumerate() {
                    llr[layout.fill[j] as usize] = if key.get(layout.order[i] as usize) { -key_llr } else { key_llr };
                }
                let syndrome = match params.adaptation {
                    Adaptation::Puncture => self.syndromes[f].clone(),
                    Adaptation::SplitChecks | Adaptation::ExtendThenSplit { .. } => layout.disclosed_syndrome(params, &self.syndromes[f], rev),
                };
                Job { llr, syndrome, resume: None }
            })
            .collect();
        // Frames that failed before resume from their last messages (the revealed bits only
        // add information), which saves the iterations already spent on them.
        let carry = (!Arc::ptr_eq(&code, &self.resume_code)).then(|| code.carry_map(&self.resume_code));
        let resume = &mut self.resume;
        let mut states: Vec<Option<Vec<i16>>> = frames.iter().map(|&f| resume[f as usize].take()).collect();
        jobs.par_iter_mut().zip(states.par_iter_mut()).for_each(|(job, state)| {
            job.resume = state.take().map(|mut m| match &carry {
                None => m,
                Some(at) => {
                    // Edges new in this code (extension checks) start from no message.
                    let carried = at.iter().map(|&e| m.get(e as usize).copied().unwrap_or(0)).collect();
                    m.zeroize();
                    carried
                }
            });
        });
        let results = decoder::decode_all(&code, &jobs, params.max_iterations);
        self.resume_code = code;
        for job in jobs.iter_mut() {
            job.llr.zeroize();
            if let Some(m) = job.resume.as_mut() {
                m.zeroize();
            }
        }
        for (&f, state) in frames.iter().zip(results.state) {
            self.resume[f as usize] = state;
        }
        for (&f, word) in frames.iter().zip(results.words) {
            let f = f as usize;
            let Some(mut word) = word else { continue };
            // Known bits must have kept their values (they always do unless the fixed-point
            // decoder saturated pathologically); otherwise treat the frame as failed.
            let kf = params.frame_key_bits(f);
            let known_ok = layout.fill[kf..].iter().all(|&v| !get_bit(&word, v as usize))
                && self.revealed[f].iter().zip(&layout.punctured).all(|(&b, &v)| get_bit(&word, v as usize) == b);
            if known_ok {
                let mut bits = SecretBits::zeros(kf);
                for j in 0..kf {
                    bits.set(j, get_bit(&word, layout.fill[j] as usize));
                }
                if layout.frame_hash(bits.words()) == self.frame_hashes[f] {
                    self.decoded[f] = Some(bits);
                } else {
                    // Another word with the same syndrome: retried after the next reveal.
                    self.stats.wrong_decodings += 1;
                }
            }
            word.zeroize();
        }
        self.stats.decode_seconds += start.elapsed().as_secs_f64();
    }

    /// Statistics so far.
    pub fn stats(&self) -> &LdpcStats {
        &self.stats
    }
}

/// Runs both stations in one process on `alice` and `bob` (equal lengths), with parameters
/// from [`choose_params`] at [`DEFAULT_TARGET_EFFICIENCY`]. On return both keys are replaced by
/// the reconciled keys (frames that failed are removed from both; see
/// [`LdpcStats::discarded_bits`]). For tests, benchmarks and reports.
pub fn reconcile_local(alice: &mut SecretBits, bob: &mut SecretBits, qber_estimate: f64, seed: u64) -> Result<LdpcStats, LdpcError> {
    let params = choose_params(qber_estimate, alice.len(), DEFAULT_TARGET_EFFICIENCY)?;
    let (a_out, b_out) = run_protocol(alice, bob, &params, seed)?;
    *alice = a_out.key;
    *bob = b_out.key;
    Ok(b_out.stats)
}

/// The message exchange between an [`LdpcAlice`] and an [`LdpcBob`] in one process.
fn run_protocol(alice: &SecretBits, bob: &SecretBits, params: &LdpcParams, seed: u64) -> Result<(LdpcOutcome, LdpcOutcome), LdpcError> {
    let (mut a, msg) = LdpcAlice::new(alice, params, seed)?;
    let mut b = LdpcBob::new(bob, params, seed)?;
    let mut step = b.receive_syndrome(&msg)?;
    loop {
        match step {
            BobStep::NeedMore(req) => {
                let rev = a.reveal(&req)?;
                step = b.receive_reveal(&rev)?;
            }
            BobStep::Done(b_out, done) => {
                let a_out = a.finish(&done)?;
                return Ok((a_out, b_out));
            }
        }
    }
}

/// Averages of [`simulate`] runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimReport {
    /// Key bits per trial.
    pub key_bits: usize,
    /// Channel QBER (probability).
    pub qber: f64,
    /// Trials run.
    pub trials: usize,
    /// Frame length (bits) and checks per frame used.
    pub frame_len: usize,
    /// Parity checks per frame.
    pub checks: usize,
    /// `Σ leaked / (Σ key bits · h(qber))` over all trials (discarded frames included).
    pub efficiency: f64,
    /// Fraction of frames discarded after all rounds.
    pub frame_error_rate: f64,
    /// Fraction of frames that failed the first attempt.
    pub first_attempt_fer: f64,
    /// Mean reveal round trips per trial.
    pub mean_round_trips: f64,
    /// Most reveal round trips in a trial.
    pub max_round_trips: u64,
    /// Bits still wrong in kept frames (undetected decoding errors), all trials.
    pub residual_errors: u64,
    /// Decodings to another word caught by the frame hash (and retried), all trials.
    pub wrong_decodings: u64,
    /// Key bits / Bob's decoding wall time (bits per second).
    pub decode_bits_per_second: f64,
}

/// Simulates `trials` reconciliations of `n` random key bits through a BSC with crossover
/// `qber` (probability), Bob using the true QBER as estimate and `DEFAULT_TARGET_EFFICIENCY`.
///
/// # Panics
/// If the parameters are unsupported (see [`choose_params`]).
pub fn simulate(n: usize, qber: f64, trials: usize, seed: u64) -> SimReport {
    let params = choose_params(qber, n, DEFAULT_TARGET_EFFICIENCY).expect("simulate: unsupported parameters");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut leaked, mut bits, mut frames, mut failed, mut first, mut rounds, mut max_rounds, mut residual, mut secs) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0f64);
    let mut wrong = 0u64;
    for t in 0..trials {
        let mut a = SecretBits::zeros(n);
        let mut b = SecretBits::zeros(n);
        for i in 0..n {
            let x = rng.gen::<bool>();
            a.set(i, x);
            b.set(i, x ^ rng.gen_bool(qber));
        }
        let (ao, bo) = run_protocol(&a, &b, &params, seed.wrapping_add(t as u64)).expect("simulate: protocol error");
        let s = &bo.stats;
        leaked += s.leaked_bits;
        bits += s.key_bits;
        frames += s.frames;
        failed += s.failed_frames;
        first += s.first_attempt_failures;
        rounds += s.round_trips;
        max_rounds = max_rounds.max(s.round_trips);
        residual += ao.key.hamming_distance(&bo.key) as u64;
        wrong += s.wrong_decodings;
        secs += s.decode_seconds;
    }
    SimReport {
        key_bits: n,
        qber,
        trials,
        frame_len: params.frame_len,
        checks: params.checks,
        efficiency: leaked as f64 / (bits as f64 * binary_entropy(qber)),
        frame_error_rate: failed as f64 / frames.max(1) as f64,
        first_attempt_fer: first as f64 / frames.max(1) as f64,
        mean_round_trips: rounds as f64 / trials.max(1) as f64,
        max_round_trips: max_rounds,
        residual_errors: residual,
        wrong_decodings: wrong,
        decode_bits_per_second: bits as f64 / secs.max(1e-12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alice's random key and Bob's copy with i.i.d. flips at rate `qber`.
    fn keys(n: usize, qber: f64, seed: u64) -> (SecretBits, SecretBits) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut a = SecretBits::zeros(n);
        let mut b = SecretBits::zeros(n);
        for i in 0..n {
            let x = rng.gen::<bool>();
            a.set(i, x);
            b.set(i, x ^ rng.gen_bool(qber));
        }
        (a, b)
    }

    #[test]
    fn decodes_at_1_3_5_percent_for_several_seeds() {
        for &q in &[0.01, 0.03, 0.05] {
            for seed in 0..2u64 {
                let (mut a, mut b) = keys(40_000, q, 100 + seed);
                let before = a.hamming_distance(&b);
                assert!(before > 0);
                let stats = reconcile_local(&mut a, &mut b, q, seed).unwrap();
                assert_eq!(stats.failed_frames, 0, "q={q} seed={seed}: {stats:?}");
                assert_eq!(a.len(), 40_000);
                assert_eq!(a, b, "q={q} seed={seed}: keys differ after reconciliation in {} bits, {stats:?}", a.hamming_distance(&b));
                let f = stats.efficiency(q);
                assert!(f > 1.0 && f < 1.5, "q={q} seed={seed}: efficiency {f}");
            }
        }
    }

    /// The blind rounds start with small raises that grow, reach at least [`REACH_MIN`] above
    /// the first attempt, and use exactly the punctured bits.
    #[test]
    fn reveal_schedule_starts_fine_and_reaches_far() {
        let modes = [Adaptation::Puncture, Adaptation::SplitChecks, Adaptation::ExtendThenSplit { rounds: EXTENSION_ROUNDS }];
        for (&q, adaptation) in [0.01, 0.03, 0.05, 0.11].iter().flat_map(|q| modes.map(|a| (q, a))) {
            for &bits in &[20_000usize, 1 << 20] {
                let p = choose_params_with(q, bits, DEFAULT_TARGET_EFFICIENCY, adaptation).unwrap();
                let s = &p.reveal_steps;
                assert_eq!(s.len(), REVEAL_ROUNDS as usize);
                let total = s.iter().sum::<usize>();
                match adaptation {
                    Adaptation::Puncture => assert_eq!(total, p.punctured, "q={q} {bits} bits: {s:?}"),
                    Adaptation::SplitChecks => assert!(p.punctured == 0 && total <= p.checks, "q={q} {bits} bits: {s:?}"),
                    Adaptation::ExtendThenSplit { .. } => {
                        assert!(p.punctured == 0 && total - p.extension_checks() <= p.checks, "q={q} {bits} bits: {s:?}");
                        assert_eq!(p.extension_checks(), s[..EXTENSION_ROUNDS as usize].iter().sum::<usize>());
                    }
                }
                assert!(s.windows(2).all(|w| w[0] <= w[1] + 1), "q={q} {bits} bits: steps shrink: {s:?}");
                // Long frames: fine first steps that must grow to reach far. (Short frames
                // have a wide spread, and even steps of half of it already reach far.)
                if bits == 1 << 20 {
                    assert!(s[REVEAL_ROUNDS as usize - 1] >= 2 * s[0], "q={q} {bits} bits: steps do not grow: {s:?}");
                }
                let k = p.frame_key_bits(0) as f64;
                let reach = total as f64 / (k * binary_entropy(q));
                assert!(reach >= REACH_MIN - 1e-9 && reach <= REACH_MAX + 0.01, "q={q} {bits} bits: reach {reach}");
                let first = (p.checks - p.punctured) as f64 / (k * binary_entropy(q));
                // (ceil: at most one bit above)
                let one_bit = 1.0 / (k * binary_entropy(q));
                assert!(first <= DEFAULT_TARGET_EFFICIENCY + one_bit + 1e-9 && first >= 1.0, "q={q}: first attempt at f = {first}");
            }
        }
    }

    /// A key needing more than [`FRAME_BATCH`] frames of the longest length is split into
    /// whole batches of them, every frame holding its key and punctured bits, at frame lengths
    /// near [`MAX_FRAME_LEN`]; fewer frames are left as they are (about sixteen, as long as
    /// the key allows).
    #[test]
    fn long_keys_fill_whole_frame_batches() {
        for &q in &[0.01, 0.03, 0.05] {
            for &(bits, frames) in &[(1usize << 20, 16usize), (1_600_000, 13), (3_000_000, 23), (5_000_000, 32), (8_000_000, 64), (400_000, 13)] {
                let p = choose_params(q, bits, DEFAULT_TARGET_EFFICIENCY).unwrap();
                assert_eq!(p.frames, frames, "q={q} {bits} bits");
                assert!(p.frame_key_bits(0) + p.punctured <= p.frame_len, "q={q} {bits} bits: {p:?}");
                if frames >= FRAME_BATCH {
                    assert!(p.frame_len.abs_diff(MAX_FRAME_LEN) < MAX_FRAME_LEN / 4, "q={q} {bits} bits: n = {}", p.frame_len);
                } else {
                    assert_eq!(p.frame_len, frame_len_for(bits), "q={q} {bits} bits");
                }
            }
        }
        // And the stretched frames (5·10^6 bits in 32 frames of 156 250) reconcile.
        let (mut a, mut b) = keys(5_000_000, 0.03, 5);
        let stats = reconcile_local(&mut a, &mut b, 0.03, 9).unwrap();
        assert_eq!(stats.frames, 32);
        assert_eq!(a.hamming_distance(&b), 0);
    }

    #[test]
    fn layout_and_syndromes_are_deterministic_in_the_seed() {
        let params = choose_params(0.02, 20_000, 1.1).unwrap();
        let (a, _) = keys(20_000, 0.02, 1);
        let l1 = Layout::new(&params, 9).unwrap();
        let l2 = Layout::new(&params, 9).unwrap();
        let c = code::build(params.frame_len, params.checks, 9);
        assert_eq!(l1.fill, l2.fill);
        assert_eq!(l1.punctured, l2.punctured);
        assert_eq!(l1.code.cols, c.cols);
        assert_ne!(code::build(params.frame_len, params.checks, 10).cols, c.cols);
        // With no punctured bits involved, the syndrome is a function of key and seed only.
        let mut p0 = params.clone();
        p0.punctured = 0;
        p0.reveal_steps.clear();
        let (_, m1) = LdpcAlice::new(&a, &p0, 9).unwrap();
        let (_, m2) = LdpcAlice::new(&a, &p0, 9).unwrap();
        assert_eq!(m1.syndromes, m2.syndromes);
    }

    #[test]
    fn leakage_accounting_is_exact_and_agrees_on_both_sides() {
        for adaptation in [Adaptation::Puncture, Adaptation::SplitChecks, Adaptation::ExtendThenSplit { rounds: EXTENSION_ROUNDS }] {
            leakage_accounting_is_exact_with(adaptation);
        }
    }

    fn leakage_accounting_is_exact_with(adaptation: Adaptation) {
        // Estimate 2% but true QBER 3%: first attempts fail, blind rounds are needed.
        let params = choose_params_with(0.02, 60_000, 1.1, adaptation).unwrap();
        let (a, b) = keys(60_000, 0.03, 5);
        let (mut alice, msg) = LdpcAlice::new(&a, &params, 3).unwrap();
        let mut bob = LdpcBob::new(&b, &params, 3).unwrap();
        let mut revealed = 0u64;
        let mut rounds = 0u64;
        let mut step = bob.receive_syndrome(&msg).unwrap();
        let (b_out, done) = loop {
            match step {
                BobStep::NeedMore(req) => {
                    revealed += (req.frames.len() * params.reveal_step(req.round).unwrap()) as u64;
                    rounds += 1;
                    let rev = alice.reveal(&req).unwrap();
                    step = bob.receive_reveal(&rev).unwrap();
                }
                BobStep::Done(o, d) => break (o, d),
            }
        };
        assert!(rounds > 0, "the test needs blind rounds");
        let a_out = alice.finish(&done).unwrap();
        let s = &b_out.stats;
        let hash = (params.frames * params.frame_hash_bits as usize) as u64;
        assert!(hash > 0);
        let base = (params.frames * (params.checks - params.punctured)) as u64 + hash;
        assert_eq!(s.leaked_bits, base + revealed);
        assert_eq!(s.disclosed_bits, (params.frames * params.checks) as u64 + hash + revealed);
        assert_eq!(s.revealed_bits, revealed);
        assert_eq!(s.round_trips, rounds);
        let mut sa = a_out.stats.clone();
        sa.decode_seconds = s.decode_seconds;
        sa.wrong_decodings = s.wrong_decodings;
        assert_eq!(&sa, s);
        assert_eq!(a_out.key, b_out.key);
        assert_eq!(a_out.discarded, b_out.discarded);
    }

    /// Alice's disclosed bits and Bob's code agree, with splits only and with extension checks
    /// first: the syndrome of a frame's word under the code after `s` disclosed bits is the
    /// mother syndrome with those bits; a split leaves every column of its row in exactly one
    /// of the two new rows; an extension check is a new row of the built degree; messages
    /// carry over to the edges they came from, and new edges start from 0.
    #[test]
    fn disclosed_bits_match_bobs_code() {
        for adaptation in [Adaptation::SplitChecks, Adaptation::ExtendThenSplit { rounds: EXTENSION_ROUNDS }] {
            let params = choose_params_with(0.03, 30_000, 1.1, adaptation).unwrap();
            let l = Layout::new(&params, 4).unwrap();
            let (key, _) = keys(30_000, 0.03, 8);
            let none = SecretBits::new();
            let (x, _) = l.frame_word(&params, &key, &none, 1);
            let mother = l.code.syndrome(&x);
            let e_max = params.extension_checks();
            assert_eq!(l.ext_rows.len(), e_max);
            assert!(adaptation == Adaptation::SplitChecks || e_max > 0);
            let all = params.reveal_steps.iter().sum::<usize>();
            let mut old = l.code.extend(&[]);
            let mut old_msgs: Vec<i16> = (0..old.edges()).map(|e| (e % 30_000) as i16).collect();
            for s in [0, 1, 7, e_max, e_max + 5, all, e_max + l.code.m] {
                let c = l.disclosed_code(&params, s);
                let (e, splits) = params.extended_and_split(s);
                assert_eq!((c.m, e + splits), (l.code.m + s, s));
                let bits: Vec<bool> = (0..s).map(|j| l.disclosed_bit(&params, j, &x)).collect();
                assert_eq!(c.syndrome(&x), l.disclosed_syndrome(&params, &mother, &bits), "{adaptation:?}, {s} bits disclosed");
                let degree = (EXTENSION_DEGREE * l.code.edges() as f64 / l.code.m as f64).round() as usize;
                for j in 0..e {
                    assert_eq!(l.ext_rows[j].len(), degree);
                }
                for (j, &r) in l.split_order[..splits].iter().enumerate() {
                    let mut both: Vec<u32> = c.row(r as usize).iter().chain(c.row(l.code.m + e + j)).copied().collect();
                    both.sort_unstable();
                    assert_eq!(both, l.code.row(r as usize), "row {r}");
                    assert!(!c.row(l.code.m + e + j).is_empty());
                }
                let carried = c.carry_messages(&old, &old_msgs);
                let at = c.carry_map(&old);
                for (k, &o) in at.iter().enumerate() {
                    let want = if o == u32::MAX { 0 } else { old_msgs[o as usize] };
                    assert_eq!(carried[k], want);
                    if o != u32::MAX {
                        assert_eq!(c.origin[k], old.origin[o as usize]);
                    }
                }
                assert_eq!(at.iter().filter(|&&o| o == u32::MAX).count(), c.edges() - old.edges(), "only new extension edges lack a message");
                old_msgs = (0..c.edges()).map(|k| (k % 29_999) as i16).collect();
                old = c;
            }
        }
    }

    /// Check splitting reconciles with less leakage than puncturing on the same keys (QBER
    /// 3 %), and both give identical keys at both stations; extension checks before the splits
    /// (the default) leak less than splits alone at QBER 1 % (see [`EXTENSION_ROUNDS`]).
    #[test]
    fn split_checks_leak_less_than_puncturing() {
        let (mut leak, bits) = ([0u64; 4], 1usize << 18);
        let modes = [Adaptation::Puncture, Adaptation::SplitChecks, Adaptation::SplitChecks, Adaptation::ExtendThenSplit { rounds: EXTENSION_ROUNDS }];
        for (i, adaptation) in modes.into_iter().enumerate() {
            let q = if i < 2 { 0.03 } else { 0.01 };
            for seed in 0..2 {
                let (a, b) = keys(bits, q, 20 + seed);
                let params = choose_params_with(q, bits, DEFAULT_TARGET_EFFICIENCY, adaptation).unwrap();
                let (ao, bo) = run_protocol(&a, &b, &params, seed).unwrap();
                assert_eq!(ao.key, bo.key);
                assert_eq!(bo.stats.failed_frames, 0);
                leak[i] += bo.stats.leaked_bits;
            }
        }
        assert!(leak[1] < leak[0], "split {} vs puncture {} leaked bits", leak[1], leak[0]);
        assert!(leak[3] < leak[2], "QBER 1 %: extend then split {} vs split {} leaked bits", leak[3], leak[2]);
    }

    #[test]
    fn punctured_columns_are_linearly_independent() {
        // Untainted ⇒ disjoint supports ⇒ independent: the premise of leaking m - p per frame.
        let params = choose_params_with(0.05, 30_000, 1.1, Adaptation::Puncture).unwrap();
        let l = Layout::new(&params, 1).unwrap();
        let mut owner = vec![u32::MAX; l.code.m];
        for (r, o) in owner.iter_mut().enumerate() {
            for &v in l.code.row(r) {
                if l.punctured.contains(&v) {
                    assert_eq!(*o, u32::MAX, "row {r} touches two punctured columns");
                    *o = v;
                }
            }
        }
        assert!(params.punctured > 0);
    }

    #[test]
    fn mismatched_params_or_seed_or_round_is_an_error() {
        let (a, b) = keys(20_000, 0.02, 2);
        let pa = choose_params(0.02, 20_000, 1.1).unwrap();
        let pb = choose_params(0.03, 20_000, 1.1).unwrap();
        let (mut alice, msg) = LdpcAlice::new(&a, &pa, 1).unwrap();
        let mut bob = LdpcBob::new(&b, &pb, 1).unwrap();
        assert!(matches!(bob.receive_syndrome(&msg), Err(LdpcError::ParamsMismatch(_))));
        let mut bob = LdpcBob::new(&b, &pa, 2).unwrap();
        assert!(matches!(bob.receive_syndrome(&msg), Err(LdpcError::ParamsMismatch(_))));
        assert!(matches!(LdpcBob::new(&a.slice(0, 100), &pa, 1), Err(LdpcError::KeyLengthMismatch { .. })));
        let mut short = msg.clone();
        short.syndromes.pop();
        let mut bob = LdpcBob::new(&b, &pa, 1).unwrap();
        assert!(matches!(bob.receive_syndrome(&short), Err(LdpcError::Malformed { .. })));
        assert!(matches!(alice.reveal(&RevealRequest { round: 2, frames: vec![0] }), Err(LdpcError::OutOfOrder(_))));
        assert!(matches!(alice.reveal(&RevealRequest { round: 1, frames: vec![1, 0] }), Err(LdpcError::Malformed { .. })));
        let rev = RevealMsg { round: 1, frames: vec![0], bits: vec![vec![0]] };
        assert!(matches!(bob.receive_reveal(&rev), Err(LdpcError::OutOfOrder(_))));
        assert!(matches!(choose_params(0.0, 20_000, 1.1), Err(LdpcError::QberOutOfRange(_))));
        assert!(matches!(choose_params(0.3, 20_000, 1.1), Err(LdpcError::QberOutOfRange(_))));
        assert!(matches!(choose_params(0.02, 100, 1.1), Err(LdpcError::KeyTooShort(100))));
        assert!(matches!(choose_params(0.02, 20_000, 0.9), Err(LdpcError::BadEfficiency(_))));
        let mut bad = pa.clone();
        bad.reveal_steps[0] = pa.reveal_capacity();
        assert!(matches!(LdpcAlice::new(&a, &bad, 1), Err(LdpcError::InvalidParams(_))));
        let mut bad = pa.clone();
        bad.punctured = 1;
        assert!(matches!(LdpcAlice::new(&a, &bad, 1), Err(LdpcError::InvalidParams(_))), "punctured bits with split checks");
        let mut bad = pa.clone();
        bad.reveal_steps = vec![1; MAX_REVEAL_ROUNDS + 1];
        assert!(matches!(LdpcAlice::new(&a, &bad, 1), Err(LdpcError::InvalidParams(_))));
        let mut bad = pa.clone();
        bad.frame_hash_bits = 65;
        assert!(matches!(LdpcAlice::new(&a, &bad, 1), Err(LdpcError::InvalidParams(_))));
    }

    #[test]
    fn failed_frames_are_reported_and_dropped_on_both_sides() {
        let params = choose_params(0.02, 30_000, 1.1).unwrap();
        assert!(params.frames >= 3);
        let (a, mut b) = keys(30_000, 0.01, 4);
        // Ruin frame 1 (25% errors): it cannot decode even with every punctured bit revealed.
        // Its key bits are spread over the key by the interleaver.
        let order = Layout::new(&params, 8).unwrap().order;
        let mut bad: Vec<usize> = params.frame_range(1).map(|j| order[j] as usize).collect();
        bad.sort_unstable();
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        for &i in &bad {
            if rng.gen_bool(0.25) {
                b.flip(i);
            }
        }
        let (a_out, b_out) = run_protocol(&a, &b, &params, 8).unwrap();
        let dropped = |out: &LdpcOutcome| out.discarded.iter().flat_map(|r| r.clone()).collect::<Vec<usize>>();
        assert_eq!(dropped(&b_out), bad);
        assert_eq!(dropped(&a_out), bad);
        assert!(b_out.discarded.windows(2).all(|w| w[0].end < w[1].start), "ranges not merged");
        assert_eq!(b_out.stats.failed_frames, 1);
        assert_eq!(a_out.stats.failed_frames, 1);
        assert_eq!(b_out.stats.discarded_bits, bad.len() as u64);
        assert_eq!(b_out.stats.round_trips, u64::from(params.max_reveal_rounds()));
        assert_eq!(a_out.key.len(), 30_000 - bad.len());
        assert_eq!(a_out.key, b_out.key);
        // The kept key is Alice's key without frame 1's bits, in input order.
        let mut expect = SecretBits::new();
        let mut next_bad = bad.iter().peekable();
        for i in 0..a.len() {
            if next_bad.peek() == Some(&&i) {
                next_bad.next();
            } else {
                expect.extend_from(&a.slice(i, i + 1));
            }
        }
        assert_eq!(a_out.key, expect);
    }

    #[test]
    fn messages_survive_json() {
        let (a, b) = keys(20_000, 0.03, 6);
        let params = choose_params(0.03, 20_000, 1.1).unwrap();
        fn rt<T: Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
            serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
        }
        let (mut alice, msg) = LdpcAlice::new(&a, &params, 11).unwrap();
        let msg = rt(&msg);
        let mut bob = LdpcBob::new(&b, &params, 11).unwrap();
        let mut step = bob.receive_syndrome(&msg).unwrap();
        let (b_out, done) = loop {
            match step {
                BobStep::NeedMore(req) => {
                    let rev = rt(&alice.reveal(&rt(&req)).unwrap());
                    step = bob.receive_reveal(&rev).unwrap();
                }
                BobStep::Done(o, d) => break (o, rt(&d)),
            }
        };
        let a_out = alice.finish(&done).unwrap();
        assert_eq!(a_out.key, b_out.key);
        assert_eq!(a_out.discarded, b_out.discarded);
        assert!(!a_out.key.is_empty());
    }

    /// Efficiency / FER / rounds / throughput sweep (slow; run in release):
    /// `cargo test --release -p qkd-host --lib distill::ldpc::tests::efficiency_sweep -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn efficiency_sweep() {
        for &q in &[0.01, 0.02, 0.03, 0.04, 0.05] {
            let r = simulate(1_000_000, q, 2, 42);
            println!(
                "QBER {:.2}: f = {:.4}  FER = {:.4}  first-attempt FER = {:.3}  rounds mean {:.2} max {}  undetected bit errors {}  decode {:.1} Mbit/s  (n={}, m={})",
                q,
                r.efficiency,
                r.frame_error_rate,
                r.first_attempt_fer,
                r.mean_round_trips,
                r.max_round_trips,
                r.residual_errors,
                r.decode_bits_per_second / 1e6,
                r.frame_len,
                r.checks
            );
        }
    }

    /// Diagnostic: the frames still failing after each blind round of two 2^20-bit
    /// reconciliations at QBER 1 %, and each lost frame's error count against the mean.
    #[test]
    #[ignore]
    fn debug_loss() {
        let (n, qber, seed) = (1usize << 20, 0.01, 42u64);
        let params = choose_params(qber, n, DEFAULT_TARGET_EFFICIENCY).unwrap();
        println!("{params:?}");
        for t in 0..2 {
            let s = seed.wrapping_add(t as u64);
            let (a, b) = keys(n, qber, s);
            let (mut al, msg) = LdpcAlice::new(&a, &params, s).unwrap();
            let mut bob = LdpcBob::new(&b, &params, s).unwrap();
            let layout = Layout::new(&params, s).unwrap();
            let mut step = bob.receive_syndrome(&msg).unwrap();
            loop {
                match step {
                    BobStep::NeedMore(req) => {
                        println!("trial {t} round {}: {} frames fail: {:?}", req.round, req.frames.len(), &req.frames[..req.frames.len().min(8)]);
                        let rev = al.reveal(&req).unwrap();
                        step = bob.receive_reveal(&rev).unwrap();
                    }
                    BobStep::Done(o, d) => {
                        for &f in &d.discarded_frames {
                            let errs = params.frame_range(f as usize).filter(|&j| a.get(layout.order[j] as usize) != b.get(layout.order[j] as usize)).count();
                            println!("trial {t}: frame {f} lost, {errs} errors in {} bits (mean {:.0})", params.frame_key_bits(f as usize), params.frame_key_bits(f as usize) as f64 * qber);
                        }
                        println!("{:?}", o.stats);
                        break;
                    }
                }
            }
        }
    }
}

