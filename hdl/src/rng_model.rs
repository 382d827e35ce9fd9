//! Bit-exact reference models of the random basis generator: the Trivium keystream generator
//! ([`crate::trivium`]), the SP 800-90B continuous health tests ([`crate::health`]) and the
//! basis/value/intensity chooser ([`crate::basis_rng`]); plus the Trivium specification model,
//! the health-test cutoff derivations, the record format and the statistical tests.
//!
//! Every `*Model` is cycle-accurate: `outputs()` is what the block's output ports show during
//! a tick (all outputs are registered, so they depend on the state only), and `tick(inputs)`
//! is the rising clock edge with the inputs held during that tick. All state powers on at 0,
//! as the flip-flops do.
//!
//! # Trivium bit order
//! The specification (De Cannière & Preneel) names key bits `K1..K80`, IV bits `IV1..IV80`
//! and keystream bits `z1, z2, ...`. The gateware ports use:
//! * `key`/`iv` port value: `K1` is the **most significant** bit (bit 79), `K80` is bit 0,
//!   i.e. the 80-bit integer whose binary digits read MSB-first are `K1..K80`.
//! * keystream word `ks`: bit `k` is the `k`-th bit of this word in time (`z` of step `k`),
//!   LSB first.
//!
//! The eSTREAM test vectors (and the eSTREAM reference C code) give key and IV as 10 bytes
//! that, read as a **little-endian** 80-bit integer, are exactly the port value: `K1` is bit 7
//! of the *last* byte and `K80` bit 0 of the first ([`trivium_port_from_bytes`]). Their
//! keystream bytes are `z` LSB first: byte `i` bit `j` is `z(8i+j+1)`; with `W = 8`, each
//! keystream word is one eSTREAM keystream byte. (Reading the key bytes in order with each
//! byte LSB first, as several third-party implementations do, gives different keystreams;
//! the convention here reproduces the published vectors.)

/// Trivium key and IV length, in bits.
pub const TRIVIUM_KEY_BITS: usize = 80;
/// Trivium warm-up: 4 × 288 state updates before the first keystream bit.
pub const TRIVIUM_WARMUP_STEPS: usize = 4 * 288;
/// Keystream bits the basis generator's Trivium produces per tick.
pub const RNG_KS_BITS: usize = 36;
/// Width of the slot number in a record.
pub const SLOT_BITS: usize = 28;
/// Width of a choice record.
pub const RNG_RECORD_BITS: usize = 32;
/// Width of the missed-slot counter (saturating).
pub const MISSED_BITS: usize = 16;
/// Adaptive proportion test window (SP 800-90B §4.4.2, binary sources).
pub const APT_WINDOW: usize = 1024;
/// Width of the repetition count cutoff port.
pub const RCT_CUTOFF_BITS: usize = 8;
/// Width of the adaptive proportion cutoff port.
pub const APT_CUTOFF_BITS: usize = 11;
/// Raw bits absorbed in the entropy pool before `pool_ready` (80 key + 80 IV bits).
pub const POOL_BITS: usize = 160;
/// RCT cutoff for H = 1 bit/sample, α = 2^-20: `1 + ceil(20 / 1)`.
pub const RCT_CUTOFF_DEFAULT: u32 = 21;
/// APT cutoff for H = 1 bit/sample, α = 2^-20, W = 1024 (see [`apt_cutoff`]).
pub const APT_CUTOFF_DEFAULT: u32 = 589;

// ------------------------------------------------------------------------------------------
// Trivium: the specification, literally.
// ------------------------------------------------------------------------------------------

/// Trivium as the specification text writes it: a 288-entry bit array `s1..s288` (index 0
/// unused), the key/IV load, 4·288 warm-up rounds and the keystream loop, one bit at a time.
/// Slow and obviously right; the other models are checked against it.
#[derive(Clone)]
pub struct TriviumSpec {
    s: [u8; 289],
}

impl TriviumSpec {
    /// Loads `K1..K80` and `IV1..IV80` (each entry 0 or 1) and runs the warm-up.
    pub fn new(k: &[u8; 80], iv: &[u8; 80]) -> Self {
        let mut s = [0u8; 289];
        // (s1..s93) <- (K1..K80, 0..0)
        for i in 1..=80 {
            s[i] = k[i - 1];
        }
        // (s94..s177) <- (IV1..IV80, 0..0)
        for i in 1..=80 {
            s[93 + i] = iv[i - 1];
        }
        // (s178..s288) <- (0..0, 1, 1, 1)
        s[286] = 1;
        s[287] = 1;
        s[288] = 1;
        let mut t = TriviumSpec { s };
        for _ in 0..TRIVIUM_WARMUP_STEPS {
            t.round();
        }
        t
    }

    /// One state update; returns the keystream bit `z` of this round.
    fn round(&mut self) -> u8 {
        let s = &mut self.s;
        let mut t1 = s[66] ^ s[93];
        let mut t2 = s[162] ^ s[177];
        let mut t3 = s[243] ^ s[288];
        let z = t1 ^ t2 ^ t3;
        t1 ^= (s[91] & s[92]) ^ s[171];
        t2 ^= (s[175] & s[176]) ^ s[264];
        t3 ^= (s[286] & s[287]) ^ s[69];
        // (s1..s93) <- (t3, s1..s92); (s94..s177) <- (t1, s94..s176);
        // (s178..s288) <- (t2, s178..s287)
        for i in (2..=93).rev() {
            s[i] = s[i - 1];
        }
        s[1] = t3;
        for i in (95..=177).rev() {
            s[i] = s[i - 1];
        }
        s[94] = t1;
        for i in (179..=288).rev() {
            s[i] = s[i - 1];
        }
        s[178] = t2;
        z
    }

    /// The next keystream bit.
    pub fn next_bit(&mut self) -> u8 {
        self.round()
    }

    /// Keystream bytes in the eSTREAM convention (byte `i` bit `j` = `z(8i+j+1)`).
    pub fn keystream_bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| (0..8).fold(0u8, |acc, j| acc | (self.next_bit() << j)))
            .collect()
    }

    /// From key and IV bytes as the eSTREAM test vectors print them: the bytes read as a
    /// little-endian 80-bit integer give `K1..K80` MSB first (`K1` = bit 7 of the last byte,
    /// `K80` = bit 0 of the first byte).
    pub fn from_bytes(key: &[u8; 10], iv: &[u8; 10]) -> Self {
        let bits = |b: &[u8; 10]| -> [u8; 80] {
            let v = trivium_port_from_bytes(b);
            std::array::from_fn(|n| ((v >> (79 - n)) & 1) as u8)
        };
        Self::new(&bits(key), &bits(iv))
    }
}

/// The `key`/`iv` port value (`K1` = bit 79) for key/IV bytes as the eSTREAM test vectors
/// (and the eSTREAM reference code) give them: simply the bytes as a little-endian integer.
pub fn trivium_port_from_bytes(b: &[u8; 10]) -> u128 {
    let mut le = [0u8; 16];
    le[..10].copy_from_slice(b);
    u128::from_le_bytes(le)
}

// ------------------------------------------------------------------------------------------
// Trivium: a fast bit-serial core and the cycle-accurate block model.
// ------------------------------------------------------------------------------------------

/// A fast bit-serial Trivium: three shift registers in `u128`s, bit `i` of `a` = `s(i+1)`,
/// of `b` = `s(94+i)`, of `c` = `s(178+i)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriviumCore {
    a: u128,
    b: u128,
    c: u128,
    /// Fault injection for the negative tests: this state bit (1-based `s` index) is forced
    /// to 0 after every update; 0 = none.
    pub stuck: usize,
}

const MASK93: u128 = (1 << 93) - 1;
const MASK84: u128 = (1 << 84) - 1;
const MASK111: u128 = (1 << 111) - 1;

impl TriviumCore {
    /// Loads key and IV from port values (`K1` = bit 79). No warm-up.
    pub fn load(key: u128, iv: u128) -> Self {
        let rev80 = |x: u128| (x & ((1 << 80) - 1)).reverse_bits() >> 48;
        TriviumCore { a: rev80(key), b: rev80(iv), c: 0b111 << 108, stuck: 0 }
    }

    #[inline]
    fn bit(x: u128, i: usize) -> u8 {
        ((x >> i) & 1) as u8
    }

    /// One update; returns `z`.
    #[inline]
    pub fn step(&mut self) -> u8 {
        let (a, b, c) = (self.a, self.b, self.c);
        // s(p) lives in a bit p-1, b bit p-94, c bit p-178.
        let sa = |p: usize| Self::bit(a, p - 1);
        let sb = |p: usize| Self::bit(b, p - 94);
        let sc = |p: usize| Self::bit(c, p - 178);
        let mut t1 = sa(66) ^ sa(93);
        let mut t2 = sb(162) ^ sb(177);
        let mut t3 = sc(243) ^ sc(288);
        let z = t1 ^ t2 ^ t3;
        t1 ^= (sa(91) & sa(92)) ^ sb(171);
        t2 ^= (sb(175) & sb(176)) ^ sc(264);
        t3 ^= (sc(286) & sc(287)) ^ sa(69);
        self.a = ((a << 1) | t3 as u128) & MASK93;
        self.b = ((b << 1) | t1 as u128) & MASK84;
        self.c = ((c << 1) | t2 as u128) & MASK111;
        if self.stuck != 0 {
            let s = self.stuck - 1;
            match s {
                0..=92 => self.a &= !(1 << s),
                93..=176 => self.b &= !(1 << (s - 93)),
                _ => self.c &= !(1 << (s - 177)),
            }
        }
        z
    }

    /// `n ≤ 64` keystream bits, the first in bit 0.
    #[inline]
    pub fn word(&mut self, n: usize) -> u64 {
        let mut w = 0u64;
        for k in 0..n {
            w |= (self.step() as u64) << k;
        }
        w
    }
}

/// Key and IV (port values, `K1` = bit 79) as the ten 16-bit chunks a load takes, in order:
/// key bits `[15:0]`, `[31:16]`, …, `[79:64]`, then the IV's likewise.
pub fn seed_chunks(key: u128, iv: u128) -> [u16; 10] {
    std::array::from_fn(|k| if k < 5 { (key >> (16 * k)) as u16 } else { (iv >> (16 * (k - 5))) as u16 })
}

/// Inputs of [`crate::trivium::Trivium`] during one tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct TriviumIn {
    /// Clear the state and start a load.
    pub reseed: bool,
    /// `load_data` is the next chunk of a load.
    pub load: bool,
    /// Key, then IV, 16 bits per load tick ([`seed_chunks`]).
    pub load_data: u16,
    /// Take the current keystream word (when `ready`).
    pub advance: bool,
}

impl TriviumIn {
    /// The eleven ticks of a reseed with `key` and `iv`: the `reseed` tick, then the ten
    /// `load` ticks.
    pub fn reseed_script(key: u128, iv: u128) -> Vec<TriviumIn> {
        let mut v = vec![TriviumIn { reseed: true, ..Default::default() }];
        v.extend(seed_chunks(key, iv).map(|d| TriviumIn { load: true, load_data: d, ..Default::default() }));
        v
    }
}

/// Outputs of [`crate::trivium::Trivium`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriviumOut {
    /// Warm-up done: `ks` is keystream.
    pub ready: bool,
    /// The current keystream word (meaningful while `ready`).
    pub ks: u64,
}

/// Cycle-accurate model of [`crate::trivium::Trivium`] with `W` keystream bits per tick.
///
/// A `reseed` tick starts a load; the next ten `load` ticks take key and IV, 16 bits each
/// ([`seed_chunks`]), and load the state with the tenth; the next `1152 / W` ticks each
/// advance it by `W` steps, and `ready` rises with the last of them. While `ready`, `ks` shows
/// the next `W` keystream bits and a tick with `advance` moves on by `W` steps. `reseed` wins
/// over everything.
#[derive(Clone, Debug)]
pub struct TriviumModel<const W: usize> {
    core: TriviumCore,
    word: u64,
    warm: usize,
    ready: bool,
    /// Chunks taken by the load in progress (`None`: no load).
    loaded: Option<usize>,
    key: u128,
    iv: u128,
}

impl<const W: usize> Default for TriviumModel<W> {
    fn default() -> Self {
        assert!(W >= 1 && W <= 64 && TRIVIUM_WARMUP_STEPS % W == 0);
        // Power-on: all state 0, the keystream word of the all-zero state is 0.
        TriviumModel { core: TriviumCore::default(), word: 0, warm: 0, ready: false, loaded: None, key: 0, iv: 0 }
    }
}

impl<const W: usize> TriviumModel<W> {
    /// Ticks of warm-up after a reseed.
    pub const WARMUP_TICKS: usize = TRIVIUM_WARMUP_STEPS / W;

    /// Fault injection (negative tests): force state bit `s(stuck)` to 0 (0 = none).
    pub fn set_stuck(&mut self, stuck: usize) {
        self.core.stuck = stuck;
    }

    /// What the output ports show in this tick.
    pub fn outputs(&self) -> TriviumOut {
        TriviumOut { ready: self.ready, ks: if self.ready { self.word } else { 0 } }
    }

    /// The rising edge.
    pub fn tick(&mut self, i: &TriviumIn) {
        if i.reseed {
            self.loaded = Some(0);
            self.key = 0;
            self.iv = 0;
            self.warm = 0;
            self.ready = false;
        } else if let Some(k) = self.loaded {
            if i.load {
                let d = i.load_data as u128;
                if k < 5 {
                    self.key |= d << (16 * k);
                } else {
                    self.iv |= d << (16 * (k - 5));
                }
                self.loaded = Some(k + 1);
                if k == 9 {
                    let stuck = self.core.stuck;
                    self.core = TriviumCore::load(self.key, self.iv);
                    self.core.stuck = stuck;
                    self.loaded = None;
                    self.warm = Self::WARMUP_TICKS;
                }
            }
        } else if self.warm != 0 {
            for _ in 0..W {
                self.core.step();
            }
            self.warm -= 1;
            if self.warm == 0 {
                self.ready = true;
                self.word = self.core.word(W);
            }
        } else if self.ready && i.advance {
            self.word = self.core.word(W);
        }
    }
}

// ------------------------------------------------------------------------------------------
// SP 800-90B health tests.
// ------------------------------------------------------------------------------------------

/// Repetition Count Test cutoff (SP 800-90B §4.4.1): `C = 1 + ceil(a / H)` for a false-alarm
/// probability `α = 2^-a` and a claimed min-entropy of `H` bits per sample.
pub fn rct_cutoff(h: f64, alpha_log2: u32) -> u32 {
    1 + (alpha_log2 as f64 / h).ceil() as u32
}

/// ln(n!) table.
fn ln_fact(n: usize) -> Vec<f64> {
    let mut v = vec![0.0f64; n + 1];
    for i in 1..=n {
        v[i] = v[i - 1] + (i as f64).ln();
    }
    v
}

/// Upper binomial tail `P(X ≥ k)` for `X ~ B(n, p)`.
pub fn binom_upper_tail(n: usize, p: f64, k: usize) -> f64 {
    let lf = ln_fact(n);
    (k..=n)
        .map(|j| (lf[n] - lf[j] - lf[n - j] + j as f64 * p.ln() + (n - j) as f64 * (1.0 - p).ln()).exp())
        .sum()
}

/// `CRITBINOM(n, p, 1 - α)`: the smallest `k` with `P(X ≤ k) ≥ 1 - α`, `X ~ B(n, p)`.
pub fn critbinom(n: usize, p: f64, alpha: f64) -> usize {
    (0..=n).find(|&k| binom_upper_tail(n, p, k + 1) <= alpha).unwrap_or(n)
}

/// Adaptive Proportion Test cutoff (SP 800-90B §4.4.2): `C = 1 + CRITBINOM(W, 2^-H, 1 - α)`
/// with `W` = [`APT_WINDOW`] for a binary source.
pub fn apt_cutoff(h: f64, alpha_log2: u32) -> u32 {
    1 + critbinom(APT_WINDOW, 2f64.powf(-h), 2f64.powi(-(alpha_log2 as i32))) as u32
}

/// Inputs of [`crate::health::HealthTests`] during one tick.
#[derive(Clone, Copy, Debug)]
pub struct HealthIn {
    /// Raw sample.
    pub raw_bit: bool,
    /// `raw_bit` is a new sample.
    pub raw_valid: bool,
    /// RCT cutoff `C` (fail when a run reaches `C` identical samples); ≥ 2, 0 = default.
    pub rct_cutoff: u32,
    /// APT cutoff `C` (fail when the first sample of a window occurs `C` times in it); ≥ 2,
    /// 0 = default.
    pub apt_cutoff: u32,
    /// Clear the failure flags and restart the start-up test.
    pub clear: bool,
}

impl Default for HealthIn {
    fn default() -> Self {
        HealthIn {
            raw_bit: false,
            raw_valid: false,
            rct_cutoff: RCT_CUTOFF_DEFAULT,
            apt_cutoff: APT_CUTOFF_DEFAULT,
            clear: false,
        }
    }
}

/// Outputs of [`crate::health::HealthTests`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthOut {
    /// The checked sample (one tick after it came in).
    pub out_bit: bool,
    /// `out_bit` is a checked sample that passed.
    pub out_valid: bool,
    /// A test failed (latched until `clear`).
    pub failed: bool,
    /// The repetition count test failed.
    pub rct_failed: bool,
    /// The adaptive proportion test failed.
    pub apt_failed: bool,
    /// The start-up test (one full APT window, 1024 samples) passed.
    pub started: bool,
}

/// Cycle-accurate model of [`crate::health::HealthTests`].
///
/// Cutoff ports pass a register first (their value one tick earlier is used). A `clear` tick
/// resets the tests (the sample in that tick is dropped). Otherwise a valid sample while not
/// failed runs both tests; `out_valid` rises in the next tick if the start-up window had
/// already passed and neither test failed on this sample.
#[derive(Clone, Debug, Default)]
pub struct HealthModel {
    rct_cut: u32,
    apt_cut: u32,
    rct_last: bool,
    rct_cnt: u32,
    apt_ref: bool,
    apt_cnt: u32,
    apt_idx: u32,
    rct_fail: bool,
    apt_fail: bool,
    started: bool,
    obit: bool,
    ovalid: bool,
}

impl HealthModel {
    /// What the output ports show in this tick.
    pub fn outputs(&self) -> HealthOut {
        HealthOut {
            out_bit: self.obit,
            out_valid: self.ovalid,
            failed: self.rct_fail || self.apt_fail,
            rct_failed: self.rct_fail,
            apt_failed: self.apt_fail,
            started: self.started,
        }
    }

    /// The rising edge.
    pub fn tick(&mut self, i: &HealthIn) {
        let failed = self.rct_fail || self.apt_fail;
        let started_old = self.started;
        // A cutoff of 0 (the power-on value) selects the default.
        let rct_cut = if self.rct_cut == 0 { RCT_CUTOFF_DEFAULT } else { self.rct_cut };
        let apt_cut = if self.apt_cut == 0 { APT_CUTOFF_DEFAULT } else { self.apt_cut };
        self.rct_cut = i.rct_cutoff & ((1 << RCT_CUTOFF_BITS) - 1);
        self.apt_cut = i.apt_cutoff & ((1 << APT_CUTOFF_BITS) - 1);
        self.obit = i.raw_bit;
        self.ovalid = false;
        if i.clear {
            self.rct_cnt = 0;
            self.apt_idx = 0;
            self.rct_fail = false;
            self.apt_fail = false;
            self.started = false;
        } else if i.raw_valid && !failed {
            let x = i.raw_bit;
            // Repetition count test.
            let rct_new = if self.rct_cnt != 0 && x == self.rct_last { self.rct_cnt + 1 } else { 1 };
            self.rct_last = x;
            self.rct_cnt = rct_new & 0xff;
            let rct_fail = rct_new >= rct_cut;
            // Adaptive proportion test.
            let apt_new = if self.apt_idx == 0 {
                self.apt_ref = x;
                1
            } else if x == self.apt_ref {
                self.apt_cnt + 1
            } else {
                self.apt_cnt
            };
            self.apt_cnt = apt_new & 0x7ff;
            let apt_fail = apt_new >= apt_cut;
            if self.apt_idx == APT_WINDOW as u32 - 1 && !rct_fail && !apt_fail {
                self.started = true;
            }
            self.apt_idx = (self.apt_idx + 1) % APT_WINDOW as u32;
            self.rct_fail = rct_fail;
            self.apt_fail = apt_fail;
            // The window-completing sample itself is not output (old `started`).
            self.ovalid = started_old && !rct_fail && !apt_fail;
        }
    }
}

// ------------------------------------------------------------------------------------------
// Records.
// ------------------------------------------------------------------------------------------

/// One choice, as the 32-bit record the block presents for the host:
/// `[31:30]` intensity class, `[29]` basis, `[28]` value, `[27:0]` slot number mod 2^28.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RngRecord {
    /// Slot number (mod 2^28), counting every `slot` strobe since power-on.
    pub slot: u32,
    /// Basis: 0 = Z (chosen with probability `thr_z / 65536`), 1 = X.
    pub basis: u8,
    /// Bit value (uniform).
    pub value: u8,
    /// Intensity class 0..=2 (signal, decoy, vacuum in decoy BB84).
    pub class: u8,
}

impl RngRecord {
    /// The 32-bit word.
    pub fn encode(self) -> u32 {
        ((self.class as u32 & 3) << 30)
            | ((self.basis as u32 & 1) << 29)
            | ((self.value as u32 & 1) << 28)
            | (self.slot & ((1 << SLOT_BITS) - 1))
    }

    /// From the 32-bit word.
    pub fn decode(w: u32) -> Self {
        RngRecord {
            slot: w & ((1 << SLOT_BITS) - 1),
            basis: ((w >> 29) & 1) as u8,
            value: ((w >> 28) & 1) as u8,
            class: (w >> 30) as u8,
        }
    }
}

/// 16-bit threshold for a probability `p` (`P = thr / 65536`, rounded).
pub fn prob_threshold(p: f64) -> u16 {
    (p * 65536.0).round().clamp(0.0, 65535.0) as u16
}

// ------------------------------------------------------------------------------------------
// The basis generator.
// ------------------------------------------------------------------------------------------

/// Inputs of [`crate::basis_rng::BasisRng`] during one tick.
#[derive(Clone, Copy, Debug)]
pub struct BasisRngIn {
    /// Raw entropy sample.
    pub raw_bit: bool,
    /// `raw_bit` is a new sample.
    pub raw_valid: bool,
    /// RCT cutoff.
    pub rct_cutoff: u32,
    /// APT cutoff.
    pub apt_cutoff: u32,
    /// Clear a health failure.
    pub health_clear: bool,
    /// Reseed strobe.
    pub reseed: bool,
    /// `seed_data` is the next chunk of key and IV.
    pub seed_valid: bool,
    /// Host key, then IV, 16 bits per chunk ([`seed_chunks`]).
    pub seed_data: u16,
    /// XOR the entropy pool into key and IV at a reseed.
    pub mix_enable: bool,
    /// P(basis = Z) · 65536.
    pub thr_z: u16,
    /// P(class 0) · 65536.
    pub thr_c0: u16,
    /// P(class 0 or 1) · 65536.
    pub thr_c1: u16,
    /// A pulse slot: draw a choice.
    pub slot: bool,
    /// The consumer takes `rec_data` this tick (when `rec_valid`).
    pub rec_ready: bool,
}

impl Default for BasisRngIn {
    fn default() -> Self {
        BasisRngIn {
            raw_bit: false,
            raw_valid: false,
            rct_cutoff: RCT_CUTOFF_DEFAULT,
            apt_cutoff: APT_CUTOFF_DEFAULT,
            health_clear: false,
            reseed: false,
            seed_valid: false,
            seed_data: 0,
            mix_enable: false,
            thr_z: 0x8000,
            thr_c0: 0x8000,
            thr_c1: 0xc000,
            slot: false,
            rec_ready: true,
        }
    }
}

/// Outputs of [`crate::basis_rng::BasisRng`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BasisRngOut {
    /// The choice for the slot strobed in the previous tick is valid (one-tick pulse).
    pub choice_valid: bool,
    /// Basis of that choice (0 = Z).
    pub basis: bool,
    /// Bit value of that choice.
    pub value: bool,
    /// Intensity class of that choice (0..=2).
    pub intensity: u8,
    /// The record port holds a record.
    pub rec_valid: bool,
    /// The record ([`RngRecord`] encoding).
    pub rec_data: u32,
    /// Choices can be made: keystream ready and health tests not failed.
    pub ready: bool,
    /// A health test has failed (latched).
    pub health_failed: bool,
    /// The RCT failed.
    pub rct_failed: bool,
    /// The APT failed.
    pub apt_failed: bool,
    /// The health start-up test has passed.
    pub health_started: bool,
    /// At least [`POOL_BITS`] checked raw bits entered the pool since the last reseed.
    pub pool_ready: bool,
    /// Slots that got no valid choice (saturating).
    pub missed: u32,
}

/// Cycle-accurate model of [`crate::basis_rng::BasisRng`].
#[derive(Clone, Debug)]
pub struct BasisRngModel {
    /// The keystream generator.
    pub trng: TriviumModel<RNG_KS_BITS>,
    /// The health tests.
    pub health: HealthModel,
    pool: u128,
    pool_hi: u128,
    fresh: u32,
    slot_cnt: u32,
    missed: u32,
    choice_valid: bool,
    basis: bool,
    value: bool,
    intensity: u8,
    rec_valid: bool,
    rec_data: u32,
    /// Fault injection (negative tests): replace the keystream with a short LFSR of this
    /// many bits (0 = none).
    pub lfsr_bits: u32,
    lfsr: u64,
}

impl Default for BasisRngModel {
    fn default() -> Self {
        BasisRngModel {
            trng: Default::default(),
            health: Default::default(),
            pool: 0,
            pool_hi: 0,
            fresh: 0,
            slot_cnt: 0,
            missed: 0,
            choice_valid: false,
            basis: false,
            value: false,
            intensity: 0,
            rec_valid: false,
            rec_data: 0,
            lfsr_bits: 0,
            lfsr: 1,
        }
    }
}

/// Maps one keystream word to (basis, value, class): bits `[15:0]` against `thr_z`, bit 16
/// the value, bits `[32:17]` against `thr_c0`/`thr_c1`.
pub fn choose(ks: u64, thr_z: u16, thr_c0: u16, thr_c1: u16) -> (bool, bool, u8) {
    let r1 = (ks & 0xffff) as u16;
    let value = (ks >> 16) & 1 == 1;
    let r2 = ((ks >> 17) & 0xffff) as u16;
    let basis = r1 >= thr_z;
    let class = if r2 < thr_c0 {
        0
    } else if r2 < thr_c1 {
        1
    } else {
        2
    };
    (basis, value, class)
}

impl BasisRngModel {
    /// What the output ports show in this tick.
    pub fn outputs(&self) -> BasisRngOut {
        let h = self.health.outputs();
        BasisRngOut {
            choice_valid: self.choice_valid,
            basis: self.basis,
            value: self.value,
            intensity: self.intensity,
            rec_valid: self.rec_valid,
            rec_data: self.rec_data,
            ready: self.trng.outputs().ready && !h.failed,
            health_failed: h.failed,
            rct_failed: h.rct_failed,
            apt_failed: h.apt_failed,
            health_started: h.started,
            pool_ready: self.fresh as usize >= POOL_BITS,
            missed: self.missed,
        }
    }

    /// The next word of a short Fibonacci LFSR (fault injection).
    fn lfsr_word(&mut self) -> u64 {
        let n = self.lfsr_bits;
        // Maximal-length Fibonacci taps (feedback = XOR of the tapped bits, shifted in at the
        // top): x^7+x^6+1, x^11+x^9+1, x^16+x^14+x^13+x^11+1.
        let taps: u64 = match n {
            7 => 0b11,
            11 => 0b101,
            _ => 0b10_1101, // 16
        };
        assert!(matches!(n, 7 | 11 | 16), "LFSR fault sizes: 7, 11, 16");
        let mut w = 0u64;
        for k in 0..RNG_KS_BITS {
            let b = self.lfsr & 1;
            w |= b << k;
            let fb = (self.lfsr & taps).count_ones() as u64 & 1;
            self.lfsr = (self.lfsr >> 1) | (fb << (n - 1));
        }
        w
    }

    /// The rising edge.
    pub fn tick(&mut self, i: &BasisRngIn) {
        let h = self.health.outputs();
        let t = self.trng.outputs();
        let ok = i.slot && t.ready && !h.failed && (!self.rec_valid || i.rec_ready);
        // Trivium, with the pool mixed into the key and IV chunks.
        let mk = if i.mix_enable { self.pool as u16 } else { 0 };
        let ks = if ok && self.lfsr_bits != 0 { self.lfsr_word() } else { t.ks };
        self.trng.tick(&TriviumIn { reseed: i.reseed, load: i.seed_valid, load_data: i.seed_data ^ mk, advance: ok });
        self.health.tick(&HealthIn {
            raw_bit: i.raw_bit,
            raw_valid: i.raw_valid,
            rct_cutoff: i.rct_cutoff,
            apt_cutoff: i.apt_cutoff,
            clear: i.health_clear,
        });
        // Entropy pool: a 160-bit rotate-and-XOR accumulator of the checked raw bits; a chunk
        // tick rotates it right by 16 instead (and drops the raw bit).
        if i.reseed {
            self.fresh = 0;
        } else if h.out_valid && !i.seed_valid && (self.fresh as usize) < POOL_BITS {
            self.fresh += 1;
        }
        const M80: u128 = (1 << 80) - 1;
        if i.seed_valid {
            let (lo, hi) = (self.pool, self.pool_hi);
            self.pool = (lo >> 16) | ((hi & 0xffff) << 64);
            self.pool_hi = (hi >> 16) | ((lo & 0xffff) << 64);
        } else if h.out_valid {
            let (lo, hi) = (self.pool, self.pool_hi);
            self.pool = (((lo << 1) | (hi >> 79)) & M80) ^ (h.out_bit as u128);
            self.pool_hi = ((hi << 1) | (lo >> 79)) & M80;
        }
        // Choice.
        let (thr_z, thr_c0, thr_c1) = (i.thr_z, i.thr_c0, i.thr_c1);
        self.choice_valid = ok;
        if self.rec_valid && i.rec_ready {
            self.rec_valid = false;
        }
        if ok {
            let (basis, value, class) = choose(ks, thr_z, thr_c0, thr_c1);
            self.basis = basis;
            self.value = value;
            self.intensity = class;
            self.rec_valid = true;
            self.rec_data = RngRecord { slot: self.slot_cnt, basis: basis as u8, value: value as u8, class }.encode();
        }
        if i.slot {
            self.slot_cnt = (self.slot_cnt + 1) & ((1 << SLOT_BITS) - 1);
            if !ok && self.missed < (1 << MISSED_BITS) - 1 {
                self.missed += 1;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Statistical tests on a record stream (used on the model here, and on the Verilated RTL).
// ------------------------------------------------------------------------------------------

/// Results of [`rng_stats`].
#[derive(Clone, Debug, Default)]
pub struct RngStats {
    /// Records analysed.
    pub n: usize,
    /// Fraction of basis-Z records.
    pub p_z: f64,
    /// Bias of the basis in standard errors: `(p̂ - p) / sqrt(p (1-p) / n)`.
    pub z_basis: f64,
    /// Bias of the value bit (against 1/2) in standard errors.
    pub z_value: f64,
    /// Serial (lag-1) correlation of the basis bits.
    pub r_basis: f64,
    /// Serial (lag-1) correlation of the value bits.
    pub r_value: f64,
    /// Serial (lag-1) correlation of the intensity classes.
    pub r_class: f64,
    /// Correlation of basis and value within a record.
    pub r_basis_value: f64,
    /// Class counts.
    pub class_counts: [u64; 3],
    /// Chi-square of the class counts against the programmed probabilities (2 dof).
    pub chi2_class: f64,
    /// Records with the reserved class 3.
    pub bad_class: u64,
    /// Linear complexity (Berlekamp–Massey) of the first [`LC_BITS`] value bits; n/2 ± a few
    /// for a random sequence, at most the register length for an LFSR.
    pub lc_value: usize,
    /// Bits the linear complexity was computed over.
    pub lc_n: usize,
}

/// Value bits the linear-complexity test uses.
pub const LC_BITS: usize = 4000;

/// Linear complexity of a bit sequence over GF(2) (Berlekamp–Massey).
pub fn linear_complexity(s: &[u8]) -> usize {
    let n = s.len();
    let (mut c, mut b) = (vec![0u8; n + 1], vec![0u8; n + 1]);
    c[0] = 1;
    b[0] = 1;
    let (mut l, mut m) = (0usize, 1usize);
    for i in 0..n {
        let mut d = s[i];
        for j in 1..=l {
            d ^= c[j] & s[i - j];
        }
        if d == 0 {
            m += 1;
        } else if 2 * l <= i {
            let t = c.clone();
            for j in 0..=n - m {
                c[j + m] ^= b[j];
            }
            l = i + 1 - l;
            b = t;
            m = 1;
        } else {
            for j in 0..=n - m {
                c[j + m] ^= b[j];
            }
            m += 1;
        }
    }
    l
}

impl RngStats {
    /// `|r|` bound for the serial correlations: `5 / sqrt(n)`.
    pub fn r_bound(&self) -> f64 {
        5.0 / (self.n as f64).sqrt()
    }

    /// The reasons the stream fails (empty = passes): |z| < 5, |r| < 5/√n, χ² < 20 (2 dof,
    /// p ≈ 4.5·10⁻⁵), no class 3, linear complexity of the value bits within n/2 ± 20.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let rb = self.r_bound();
        for (name, z) in [("basis bias", self.z_basis), ("value bias", self.z_value)] {
            if !(z.abs() < 5.0) {
                f.push(format!("{name} {z:.2} sigma"));
            }
        }
        for (name, r) in [
            ("basis serial r", self.r_basis),
            ("value serial r", self.r_value),
            ("class serial r", self.r_class),
            ("basis-value r", self.r_basis_value),
        ] {
            if !(r.abs() < rb) {
                f.push(format!("{name} {r:.5} (bound {rb:.5})"));
            }
        }
        if !(self.chi2_class < 20.0) {
            f.push(format!("class chi2 {:.1}", self.chi2_class));
        }
        if self.bad_class != 0 {
            f.push(format!("{} records with class 3", self.bad_class));
        }
        // For a random sequence P(|L - n/2| > k) is about 2^-2k; 20 is far in the tail.
        if self.lc_n > 0 && (self.lc_value as f64 - self.lc_n as f64 / 2.0).abs() > 20.0 {
            f.push(format!("value linear complexity {} of {} bits", self.lc_value, self.lc_n));
        }
        f
    }
}

/// Pearson correlation of two equally long sequences.
fn correlation(x: impl Iterator<Item = f64> + Clone, y: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = x.clone().count() as f64;
    let (mx, my) = (x.clone().sum::<f64>() / n, y.clone().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return if sxx == syy { 1.0 } else { f64::NAN };
    }
    sxy / (sxx * syy).sqrt()
}

/// Bias, serial correlation and class chi-square of a record stream, against the
/// probabilities programmed as thresholds (`P(Z) = thr_z / 65536`, class 0 below `thr_c0`,
/// class 1 below `thr_c1`).
pub fn rng_stats(recs: &[RngRecord], thr_z: u16, thr_c0: u16, thr_c1: u16) -> RngStats {
    let n = recs.len();
    let nf = n as f64;
    let p = thr_z as f64 / 65536.0;
    let zc = recs.iter().filter(|r| r.basis == 0).count() as f64;
    let ones = recs.iter().filter(|r| r.value == 1).count() as f64;
    let mut counts = [0u64; 3];
    let mut bad = 0;
    for r in recs {
        match r.class {
            0..=2 => counts[r.class as usize] += 1,
            _ => bad += 1,
        }
    }
    let c0 = thr_c0 as f64 / 65536.0;
    let c1 = (thr_c1.max(thr_c0) as f64 / 65536.0) - c0;
    let probs = [c0, c1, 1.0 - c0 - c1];
    let chi2 = probs
        .iter()
        .zip(counts)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, c)| {
            let e = p * nf;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    let b = |r: &RngRecord| r.basis as f64;
    let v = |r: &RngRecord| r.value as f64;
    let c = |r: &RngRecord| r.class as f64;
    RngStats {
        n,
        p_z: zc / nf,
        z_basis: (zc / nf - p) / (p * (1.0 - p) / nf).sqrt(),
        z_value: (ones / nf - 0.5) / (0.25 / nf).sqrt(),
        r_basis: correlation(recs[..n - 1].iter().map(b), recs[1..].iter().map(b)),
        r_value: correlation(recs[..n - 1].iter().map(v), recs[1..].iter().map(v)),
        r_class: correlation(recs[..n - 1].iter().map(c), recs[1..].iter().map(c)),
        r_basis_value: correlation(recs.iter().map(b), recs.iter().map(v)),
        class_counts: counts,
        chi2_class: chi2,
        bad_class: bad,
        lc_value: linear_complexity(&recs.iter().take(LC_BITS).map(|r| r.value).collect::<Vec<_>>()),
        lc_n: n.min(LC_BITS),
    }
}
