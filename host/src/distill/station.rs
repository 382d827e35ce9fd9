//! The two stations: the whole distillation chain between Alice and Bob over an authenticated
//! channel ([`super::auth::AuthChannel`] over any `Read + Write`: TCP, a socket pair, a pipe).
//!
//! # Protocol (message order; A = Alice, B = Bob)
//!
//! | # | dir | message | stage |
//! |---|-----|---------|-------|
//! | 1 | A→B | `Hello { version, config }` — Bob aborts unless his [`StationConfig`] is equal | setup |
//! | 2 | B→A | `Announce` ([`DetectionAnnouncement`]: detected slots/timestamps and bases) | sifting |
//! | 3 | A→B | `Reply` ([`BasisReply`] and a fresh 32-byte sample seed) | sifting |
//! | 4 | B→A | `Disclose` (all test-basis bits, the key-sample bits) | estimation |
//! | 5 | A→B | `Estimate` (error counts per intensity, sample errors); both check the abort rule | estimation |
//! | 6 | … | Cascade (`CascadeStart`, then `CascadeQuery`/`CascadeAnswer` per round trip, `CascadeDone`) or LDPC (`LdpcSyndrome`, `LdpcRevealRequest`/`LdpcReveal`…, `LdpcDone`) | reconciliation |
//! | 7 | A→B, B→A | `Verify` (per-block seeds and tags), `VerifyResult` (which blocks passed) | verification |
//! | 8 | A→B, B→A | `Amplify` (output length and the Toeplitz seed bits, novel-basis encoding), `Confirm` | privacy amplification |
//!
//! Both stations compute every decision (abort, QBER estimate for reconciliation, key length)
//! from the same public numbers, and the messages carry Alice's choices so Bob can check them:
//! any disagreement aborts. On any error a station sends `Abort { reason }` (best effort) and
//! returns the error; a station receiving `Abort` fails with [`StationError::PeerAborted`].
//! Public random choices (sample positions, Cascade/LDPC seeds, verification points, the
//! Toeplitz seed) are drawn by Alice from the operating system's generator after the data
//! they apply to is fixed.
//!
//! # Key length
//!
//! ℓ comes from [`super::finite_key`]: [`Protocol::DecoyBb84`] uses Lim et al. 2014 (their key
//! basis X is our Z: `x_detections` = our key-basis counts per intensity after the key sample
//! is removed, `z_detections`/`z_errors` = our test-basis counts and errors);
//! [`Protocol::Bb84`] and [`Protocol::Bbm92`] use Tomamichel et al. 2012 with n = key bits into
//! reconciliation, k = test-basis bits (asymmetric) or sample bits (symmetric), and
//! Q_tol = the abort threshold. leak_EC counts every reconciliation frame (discarded ones
//! included) and the verification tags of all blocks. Bits discarded after reconciliation
//! (LDPC frames that failed, verification blocks that mismatched) are subtracted from ℓ
//! (smooth min-entropy chain rule: removing d bits costs at most d bits of entropy).
//!
//! # Authentication key
//!
//! The MAC key consumed by the run ([`super::auth::KeyPool::consumed_bits`]) is taken from
//! the distilled key when [`StationConfig::replenish_psk`] is set: the next pre-shared key is
//! the unused rest of this run's pool followed by the first `consumed` bits of the
//! privacy-amplified key, and the output key is the remainder. Both are cut to whole bytes.
//! A failed run leaves the unused tail of the pool (cut to whole bytes at its front, so that
//! it ends where the peer's does); the stations' tails may differ in length when one spent
//! more pads than the other before the failure, and the next run aligns them before its first
//! message ([`AuthChannel::align_pools`], reported in [`StationReport::psk_alignment`]).
//!
//! # Files
//!
//! See [`files`] for the record, key and pre-shared-key file formats and [`synthetic`] for a
//! generator of matched input files.

pub mod files;
pub mod report;
pub mod synthetic;

use std::io::{Read, Write};
use std::time::Instant;

use bincode::Options;
use rand::rngs::OsRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroize;

use super::auth::{AuthChannel, AuthError, ChannelStats, KeyPool, PoolAlignment, Role, DEFAULT_MAX_FRAME};
use super::cascade::{self, CascadeAlice, CascadeError, CascadeParams, ParityOracle, ParityQuery};
use super::estimation::{self, ClassErrors, ErrorEstimate, EstimationError, EstimationParams};
use super::finite_key::{self, FiniteKeyError};
use super::key::SecretBits;
use super::ldpc::{self, BobStep, DoneMsg, LdpcAlice, LdpcBob, LdpcError, RevealMsg, RevealRequest, SyndromeMsg};
use super::sifting::{
    self, AliceRecords, BasisReply, Detection, DetectionAnnouncement, Measurements, SiftError, SiftMode,
    SquashCounts, INTENSITY_CLASSES,
};
use super::toeplitz::{self, ToeplitzError, ToeplitzSeed};
use super::verify::{self, VerifyError, VerifyKey, VerifyParams, VerifyTag};

/// Version of the message protocol; both stations must use the same.
pub const PROTOCOL_VERSION: u32 = 2;

/// The QKD protocol and its physical parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Protocol {
    /// Prepare-and-measure BB84 with a signal and two decoy intensities; key length after
    /// Lim et al. 2014. Requires [`SiftMode::Asymmetric`].
    DecoyBb84 {
        /// Mean photon numbers μ₁ > μ₂ + μ₃, μ₂ > μ₃ ≥ 0 of classes 0, 1, 2 (photons/pulse).
        intensities: [f64; 3],
        /// Probabilities of choosing each class (sum 1).
        probabilities: [f64; 3],
    },
    /// Prepare-and-measure BB84 with a single-photon source (all records class 0); key length
    /// after Tomamichel et al. 2012.
    Bb84,
    /// Entanglement-based BBM92: both stations hold detection records with timestamps (ticks);
    /// key length after Tomamichel et al. 2012.
    Bbm92 {
        /// Coincidence window: |t_A − (t_B − offset)| ≤ window (ticks).
        window: u64,
        /// Bob's clock offset subtracted from his timestamps (ticks).
        offset: i64,
        /// Bob flips his bits in the Z / X basis (anti-correlated Bell states, e.g. Ψ⁻: both).
        bob_flip: [bool; 2],
    },
}

impl Protocol {
    /// A short name (`decoy-bb84`, `bb84`, `bbm92`).
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::DecoyBb84 { .. } => "decoy-bb84",
            Protocol::Bb84 => "bb84",
            Protocol::Bbm92 { .. } => "bbm92",
        }
    }
}

/// The reconciliation method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// Interactive Cascade ([`super::cascade`]).
    Cascade,
    /// One-way rate-adaptive LDPC ([`super::ldpc`]).
    Ldpc,
}

impl Method {
    /// `cascade` or `ldpc`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Cascade => "cascade",
            Method::Ldpc => "ldpc",
        }
    }
}

/// Everything both stations must agree on (Alice sends hers; Bob aborts if his differs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StationConfig {
    /// Protocol and physical parameters.
    pub protocol: Protocol,
    /// Which matched bits are key.
    pub sift_mode: SiftMode,
    /// Reconciliation method.
    pub method: Method,
    /// Sampling, ε_PE and the abort threshold.
    pub estimation: EstimationParams,
    /// Secrecy parameter ε_sec of the finite-key analysis (probability).
    pub eps_sec: f64,
    /// Correctness parameter ε_cor, split evenly over the verification blocks (probability).
    pub eps_cor: f64,
    /// Verification block size (bits): each block gets its own tag and is discarded alone on a
    /// mismatch.
    pub verify_block_bits: usize,
    /// Target efficiency of LDPC parameter choice (> 1).
    pub ldpc_target_efficiency: f64,
    /// Refill the authentication key from the distilled key (see the module docs).
    pub replenish_psk: bool,
}

impl Default for StationConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::DecoyBb84 { intensities: [0.5, 0.15, 0.0], probabilities: [0.5, 0.3, 0.2] },
            sift_mode: SiftMode::Asymmetric,
            method: Method::Cascade,
            estimation: EstimationParams::default(),
            eps_sec: 1e-10,
            eps_cor: 1e-15,
            verify_block_bits: 1 << 18,
            ldpc_target_efficiency: ldpc::DEFAULT_TARGET_EFFICIENCY,
            replenish_psk: true,
        }
    }
}

impl StationConfig {
    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<(), StationError> {
        self.estimation.validate()?;
        let bad = |s: String| Err(StationError::Config(s));
        if matches!(self.protocol, Protocol::DecoyBb84 { .. }) && self.sift_mode != SiftMode::Asymmetric {
            return bad("decoy-state BB84 needs the asymmetric sift mode (the test basis is analysed per intensity)".into());
        }
        if self.sift_mode == SiftMode::Symmetric && self.estimation.sample_fraction <= 0.0 {
            return bad("symmetric sifting discloses no test basis: set a sample fraction > 0".into());
        }
        let in_unit = |x: f64| x > 0.0 && x < 1.0;
        if !in_unit(self.eps_sec) || !in_unit(self.eps_cor) {
            return bad(format!("eps_sec {} and eps_cor {} must be in (0, 1)", self.eps_sec, self.eps_cor));
        }
        if self.verify_block_bits < 64 {
            return bad(format!("verification block of {} bits is below 64 bits", self.verify_block_bits));
        }
        Ok(())
    }
}

/// Options local to one station (not compared with the peer).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalOptions {
    /// Seed of the squashing generator (random bits for multi-clicks); `None` = from the OS.
    /// Only for reproducible tests.
    pub squash_seed: Option<u64>,
}

/// A station's raw data. Detection records are zeroized on drop.
pub enum StationInput {
    /// Alice's prepared states (prepare-and-measure).
    Prepared(AliceRecords),
    /// Detection records (Bob; and Alice in BBM92), strictly increasing slots/timestamps.
    Detections(Vec<Detection>),
}

impl Drop for StationInput {
    fn drop(&mut self) {
        if let StationInput::Detections(d) = self {
            d.zeroize();
        }
    }
}

/// Errors of a station run. Every one aborts the run.
#[derive(Debug, Error)]
pub enum StationError {
    /// Channel failure (I/O, authentication, replay, …).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Malformed records or sifting messages.
    #[error("sifting: {0}")]
    Sift(#[from] SiftError),
    /// Estimation failed or the error rate is too high.
    #[error("parameter estimation: {0}")]
    Estimation(#[from] EstimationError),
    /// Cascade failed.
    #[error("cascade: {0}")]
    Cascade(#[from] CascadeError),
    /// LDPC failed.
    #[error("ldpc: {0}")]
    Ldpc(#[from] LdpcError),
    /// Verification could not run (a mismatch only discards the block).
    #[error("verification: {0}")]
    Verify(#[from] VerifyError),
    /// Privacy amplification failed.
    #[error("privacy amplification: {0}")]
    Toeplitz(#[from] ToeplitzError),
    /// The finite-key analysis rejected its inputs.
    #[error("finite-key analysis: {0}")]
    FiniteKey(#[from] FiniteKeyError),
    /// A message could not be encoded or decoded.
    #[error("message encoding: {0}")]
    Codec(String),
    /// A message other than the one the protocol expects next.
    #[error("protocol error: expected {expected}, received {got}")]
    Unexpected {
        /// Expected message.
        expected: &'static str,
        /// Received message.
        got: &'static str,
    },
    /// The peer aborted and said why.
    #[error("the peer aborted: {0}")]
    PeerAborted(String),
    /// The peer runs another protocol version.
    #[error("protocol version mismatch: ours {ours}, peer's {theirs}")]
    Version {
        /// Ours.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// Bad or mismatched configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The input does not fit the role and protocol.
    #[error("input: {0}")]
    Input(String),
    /// The peer's data contradict ours.
    #[error("inconsistent with the peer: {0}")]
    Inconsistent(String),
    /// The finite-key bound leaves no secret key.
    #[error("no secret key can be extracted: {0}")]
    NoSecretKey(String),
}

/// Seconds spent in each stage (wall clock, including waiting for the peer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Hello, announcement and sifting (s).
    pub sifting: f64,
    /// Disclosure and estimation (s).
    pub estimation: f64,
    /// Reconciliation (s).
    pub reconciliation: f64,
    /// Verification (s).
    pub verification: f64,
    /// Finite-key length and privacy amplification (s).
    pub amplification: f64,
    /// The whole run (s).
    pub total: f64,
}

/// What a run did; equal on both stations except the role, squashing, channel and timings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StationReport {
    /// `alice` or `bob`.
    pub role: String,
    /// Protocol name.
    pub protocol: String,
    /// Reconciliation method name.
    pub method: String,
    /// Slots in Alice's prepared-state records (0 at Bob and in BBM92).
    pub slots: u64,
    /// This station's squashing counts (Alice in prepare-and-measure: zeros).
    pub squash: SquashCounts,
    /// Sifting counts (n_{b,k} per basis and intensity).
    pub sift: sifting::SiftCounts,
    /// Key bits after sifting, before the sample is removed (bits).
    pub sifted_key_bits: u64,
    /// Test-basis errors per intensity (m_k, n_k).
    pub test_errors: ClassErrors,
    /// Test-basis estimate used for the abort (signal class), if any test bits.
    pub test_estimate: Option<ErrorEstimate>,
    /// Key-sample estimate, if a sample was taken.
    pub sample_estimate: Option<ErrorEstimate>,
    /// QBER estimate handed to reconciliation (probability).
    pub qber_for_reconciliation: f64,
    /// Bits entering reconciliation.
    pub reconciled_input_bits: u64,
    /// Bits disclosed by reconciliation, leak_EC (bits).
    pub leak_ec_bits: u64,
    /// Reconciliation efficiency f = leak_EC / (n h(QBER)), with the QBER estimate.
    pub efficiency: f64,
    /// Bits dropped by reconciliation (LDPC frames that failed).
    pub ec_discarded_bits: u64,
    /// Verification blocks.
    pub verify_blocks: u64,
    /// Verification blocks that mismatched (discarded).
    pub verify_failed_blocks: u64,
    /// Bits discarded by verification.
    pub verify_discarded_bits: u64,
    /// Verification tag bits disclosed, all blocks (bits).
    pub verify_tag_bits: u64,
    /// Finite-key bound before subtracting discarded bits (bits).
    pub finite_key_bits: u64,
    /// Privacy-amplification output length (bits).
    pub pa_output_bits: u64,
    /// Authentication key consumed (bits).
    pub mac_key_bits: u64,
    /// The pre-shared key pools' alignment at the start of the run (bits; see
    /// [`AuthChannel::align_pools`]): non-zero `dropped_bits` after an earlier failed run.
    pub psk_alignment: PoolAlignment,
    /// Forging-probability bound summed over this station's messages.
    pub eps_auth: f64,
    /// Key bits in the output (after refilling the pre-shared key, whole bytes).
    pub final_key_bits: u64,
    /// Bits of the next pre-shared key (whole bytes).
    pub next_psk_bits: u64,
    /// This station's channel counters (round trips, bytes).
    pub channel: ChannelStats,
    /// Stage timings.
    pub timings: StageTimings,
}

/// A successful run.
#[derive(Debug)]
pub struct StationOutput {
    /// The final secret key (whole bytes).
    pub key: SecretBits,
    /// The pre-shared key for the next run (whole bytes).
    pub next_psk: SecretBits,
    /// Counts and timings.
    pub report: StationReport,
}

/// A failed run: the error, and the pre-shared key that is left: the consumed MAC key bits
/// removed, cut to whole bytes at its front. The peer's pool may have stopped at another
/// point; both are tails of the same key, and the next run aligns them
/// ([`AuthChannel::align_pools`]).
#[derive(Debug, Error)]
#[error("{error}")]
pub struct StationFailure {
    /// Why the run stopped.
    #[source]
    pub error: StationError,
    /// Unused pre-shared key bits (whole bytes).
    pub next_psk: SecretBits,
    /// Authentication key consumed before the failure (bits).
    pub mac_key_bits: u64,
    /// Bits this station dropped from its pool to align with the peer's at the start of the
    /// run (see [`StationReport::psk_alignment`]; 0 when the run failed before).
    pub psk_dropped_bits: u64,
}

/// Bits packed in words, for disclosed (public) bit strings and seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Packed {
    len: u64,
    words: Vec<u64>,
}

impl Packed {
    fn from_bits(b: &SecretBits) -> Self {
        Self { len: b.len() as u64, words: b.words().to_vec() }
    }

    fn from_bools(b: &[bool]) -> Self {
        Self::from_bits(&SecretBits::from_bools(b))
    }

    fn to_bits(&self, what: &str) -> Result<SecretBits, StationError> {
        let len = usize::try_from(self.len).map_err(|_| StationError::Inconsistent(format!("{what}: length overflow")))?;
        if self.words.len() != len.div_ceil(64) {
            return Err(StationError::Inconsistent(format!(
                "{what}: {} bits in {} words",
                self.len,
                self.words.len()
            )));
        }
        let mut words = self.words.clone();
        if len % 64 != 0 {
            if let Some(w) = words.last_mut() {
                *w &= (1u64 << (len % 64)) - 1;
            }
        }
        Ok(SecretBits::from_words(words, len))
    }
}

/// The messages of the protocol (see the module table).
#[derive(Serialize, Deserialize)]
enum Msg {
    Hello { version: u32, config: StationConfig },
    Announce(DetectionAnnouncement),
    Reply { reply: BasisReply, sample_seed: [u8; 32] },
    Disclose { test: Packed, sample: Packed },
    Estimate { test: ClassErrors, sample_errors: u64 },
    CascadeStart { params: CascadeParams, seed: u64 },
    CascadeQuery(Vec<ParityQuery>),
    CascadeAnswer(Packed),
    CascadeDone,
    LdpcSyndrome(SyndromeMsg),
    LdpcRevealRequest(RevealRequest),
    LdpcReveal(RevealMsg),
    LdpcDone(DoneMsg),
    Verify { block_bits: u64, seeds: Vec<[u8; 32]>, tags: Vec<VerifyTag> },
    VerifyResult { passed: Vec<bool> },
    Amplify { out_bits: u64, seed: Packed },
    Confirm { out_bits: u64 },
    Abort { reason: String },
}

impl Msg {
    fn name(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::Announce(_) => "Announce",
            Msg::Reply { .. } => "Reply",
            Msg::Disclose { .. } => "Disclose",
            Msg::Estimate { .. } => "Estimate",
            Msg::CascadeStart { .. } => "CascadeStart",
            Msg::CascadeQuery(_) => "CascadeQuery",
            Msg::CascadeAnswer(_) => "CascadeAnswer",
            Msg::CascadeDone => "CascadeDone",
            Msg::LdpcSyndrome(_) => "LdpcSyndrome",
            Msg::LdpcRevealRequest(_) => "LdpcRevealRequest",
            Msg::LdpcReveal(_) => "LdpcReveal",
            Msg::LdpcDone(_) => "LdpcDone",
            Msg::Verify { .. } => "Verify",
            Msg::VerifyResult { .. } => "VerifyResult",
            Msg::Amplify { .. } => "Amplify",
            Msg::Confirm { .. } => "Confirm",
            Msg::Abort { .. } => "Abort",
        }
    }
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(DEFAULT_MAX_FRAME as u64)
}

/// Takes the expected variant out of a received message, or fails naming both.
macro_rules! expect_msg {
    ($msg:expr, $pat:pat => $out:expr, $name:literal) => {
        match $msg {
            $pat => $out,
            other => return Err(StationError::Unexpected { expected: $name, got: other.name() }),
        }
    };
}

/// The message layer over the authenticated channel.
struct Chan<S: Read + Write> {
    auth: AuthChannel<S>,
}

impl<S: Read + Write> Chan<S> {
    fn send(&mut self, msg: &Msg) -> Result<(), StationError> {
        let bytes = codec().serialize(msg).map_err(|e| StationError::Codec(e.to_string()))?;
        self.auth.send(&bytes)?;
        Ok(())
    }

    fn recv(&mut self) -> Result<Msg, StationError> {
        let bytes = self.auth.recv()?;
        let msg: Msg = codec().deserialize(&bytes).map_err(|e| StationError::Codec(e.to_string()))?;
        if let Msg::Abort { reason } = msg {
            return Err(StationError::PeerAborted(reason));
        }
        Ok(msg)
    }
}

/// Bob's parity oracle: one `CascadeQuery`/`CascadeAnswer` round trip per call.
struct NetOracle<'a, S: Read + Write> {
    chan: &'a mut Chan<S>,
    error: Option<StationError>,
}

impl<S: Read + Write> ParityOracle for NetOracle<'_, S> {
    fn parities(&mut self, queries: &[ParityQuery]) -> Result<Vec<bool>, CascadeError> {
        let r = (|| -> Result<Vec<bool>, StationError> {
            self.chan.send(&Msg::CascadeQuery(queries.to_vec()))?;
            let p = expect_msg!(self.chan.recv()?, Msg::CascadeAnswer(p) => p, "CascadeAnswer");
            Ok(p.to_bits("parity answers")?.to_bools())
        })();
        r.map_err(|e| {
            let text = e.to_string();
            self.error = Some(e);
            CascadeError::Oracle(text)
        })
    }
}

/// Runs one station over `stream` with the pre-shared key `psk`. Alice and Bob must be given
/// equal `config`s and pre-shared keys.
pub fn run_station<S: Read + Write>(
    role: Role,
    config: &StationConfig,
    local: &LocalOptions,
    input: StationInput,
    stream: S,
    psk: KeyPool,
) -> Result<StationOutput, StationFailure> {
    let mut chan = Chan { auth: AuthChannel::new(stream, psk, role) };
    let psk_alignment = match chan.auth.align_pools() {
        Ok(a) => a,
        Err(e) => {
            drop(input);
            let (mac_key_bits, next_psk) = (0, whole_bytes_from_front(chan.auth.pool().remainder()));
            return Err(StationFailure { error: StationError::Auth(e), next_psk, mac_key_bits, psk_dropped_bits: 0 });
        }
    };
    let mut report = StationReport {
        psk_alignment,
        role: role.to_string(),
        protocol: config.protocol.name().into(),
        method: config.method.name().into(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let result = config.validate().and_then(|_| run_inner(role, config, local, &input, &mut chan, &mut report));
    report.timings.total = t0.elapsed().as_secs_f64();
    drop(input);
    let mac_key_bits = chan.auth.pool().consumed_bits() as u64;
    match result {
        Ok(pa_key) => {
            report.mac_key_bits = mac_key_bits;
            report.channel = chan.auth.stats();
            report.eps_auth = report.channel.eps_auth;
            let mut next_psk = chan.auth.pool().remainder();
            let key = if config.replenish_psk {
                let take = (mac_key_bits as usize).min(pa_key.len());
                next_psk.extend_from(&pa_key.slice(0, take));
                pa_key.slice(take, pa_key.len())
            } else {
                pa_key
            };
            let key = whole_bytes(key);
            let next_psk = whole_bytes(next_psk);
            report.final_key_bits = key.len() as u64;
            report.next_psk_bits = next_psk.len() as u64;
            Ok(StationOutput { key, next_psk, report })
        }
        Err(error) => {
            let notify = !matches!(error, StationError::Auth(_) | StationError::PeerAborted(_));
            if notify {
                // Best effort: the peer may already be gone.
                let _ = chan.send(&Msg::Abort { reason: format!("{role}: {error}") });
            }
            let mac_key_bits = chan.auth.pool().consumed_bits() as u64;
            // Cut at the front: the tail stays aligned with the end of the peer's pool.
            Err(StationFailure { error, next_psk: whole_bytes_from_front(chan.auth.pool().remainder()), mac_key_bits, psk_dropped_bits: psk_alignment.dropped_bits })
        }
    }
}

/// `bits` less its first `len mod 8` bits: the tail of a pool whose end both stations share.
fn whole_bytes_from_front(bits: SecretBits) -> SecretBits {
    let cut = bits.len() % 8;
    if cut == 0 {
        bits
    } else {
        bits.slice(cut, bits.len())
    }
}

fn whole_bytes(bits: SecretBits) -> SecretBits {
    let n = bits.len() / 8 * 8;
    if n == bits.len() {
        bits
    } else {
        bits.slice(0, n)
    }
}

fn run_inner<S: Read + Write>(
    role: Role,
    config: &StationConfig,
    local: &LocalOptions,
    input: &StationInput,
    chan: &mut Chan<S>,
    report: &mut StationReport,
) -> Result<SecretBits, StationError> {
    let mut squash_rng = match local.squash_seed {
        Some(s) => ChaCha20Rng::seed_from_u64(s),
        None => ChaCha20Rng::from_rng(OsRng).map_err(|e| StationError::Input(format!("OS random generator: {e}")))?,
    };

    // ---- 1. Hello and sifting ----
    let t = Instant::now();
    let (sifted, sample_seed) = match role {
        Role::Alice => {
            chan.send(&Msg::Hello { version: PROTOCOL_VERSION, config: *config })?;
            let ann = expect_msg!(chan.recv()?, Msg::Announce(a) => a, "Announce");
            let (reply, values) = match (&config.protocol, input) {
                (Protocol::Bbm92 { window, offset, .. }, StationInput::Detections(d)) => {
                    let m = Measurements::from_detections(d, &mut squash_rng)?;
                    report.squash = m.squash_counts();
                    sifting::bbm92_reply(&m, &ann, *window, *offset)?
                }
                (Protocol::Bbm92 { .. }, StationInput::Prepared(_)) => {
                    return Err(StationError::Input("BBM92 needs Alice's detection records, not prepared states".into()))
                }
                (_, StationInput::Prepared(rec)) => {
                    report.slots = rec.len() as u64;
                    sifting::alice_reply(rec, &ann)?
                }
                (_, StationInput::Detections(_)) => {
                    return Err(StationError::Input(
                        "prepare-and-measure needs Alice's prepared-state records, not detections".into(),
                    ))
                }
            };
            let sample_seed: [u8; 32] = OsRng.gen();
            chan.send(&Msg::Reply { reply: reply.clone(), sample_seed })?;
            (sifting::sift(&ann, &reply, &values, config.sift_mode)?, sample_seed)
        }
        Role::Bob => {
            let (version, theirs) = expect_msg!(chan.recv()?, Msg::Hello { version, config } => (version, config), "Hello");
            if version != PROTOCOL_VERSION {
                return Err(StationError::Version { ours: PROTOCOL_VERSION, theirs: version });
            }
            if theirs != *config {
                return Err(StationError::Config(format!(
                    "the stations' settings differ: alice {theirs:?}, bob {config:?}"
                )));
            }
            let StationInput::Detections(d) = input else {
                return Err(StationError::Input("Bob needs detection records".into()));
            };
            let mut m = Measurements::from_detections(d, &mut squash_rng)?;
            if let Protocol::Bbm92 { bob_flip, .. } = config.protocol {
                m.flip_bases(bob_flip);
            }
            report.squash = m.squash_counts();
            let ann = m.announce();
            chan.send(&Msg::Announce(ann.clone()))?;
            let (reply, sample_seed) =
                expect_msg!(chan.recv()?, Msg::Reply { reply, sample_seed } => (reply, sample_seed), "Reply");
            (sifting::sift(&ann, &reply, m.values(), config.sift_mode)?, sample_seed)
        }
    };
    report.sift = sifted.counts;
    report.sifted_key_bits = sifted.key.len() as u64;
    report.timings.sifting = t.elapsed().as_secs_f64();

    // ---- 2. Estimation ----
    let t = Instant::now();
    let est = &config.estimation;
    let k = est.sample_size(sifted.key.len());
    let positions = estimation::sample_positions(sifted.key.len(), k, sample_seed)?;
    let (key, sample) = estimation::split_sample(&sifted.key, &positions)?;
    let mut in_sample = vec![false; sifted.key.len()];
    for &p in &positions {
        in_sample[p] = true;
    }
    let mut key_counts = [0u64; INTENSITY_CLASSES];
    for (i, &c) in sifted.key_intensity.iter().enumerate() {
        if !in_sample[i] {
            key_counts[c as usize] += 1;
        }
    }
    let (test_errors, sample_errors) = match role {
        Role::Bob => {
            chan.send(&Msg::Disclose { test: Packed::from_bits(&sifted.test), sample: Packed::from_bits(&sample) })?;
            let (test, sample_errors) =
                expect_msg!(chan.recv()?, Msg::Estimate { test, sample_errors } => (test, sample_errors), "Estimate");
            let mut mine = [0u64; INTENSITY_CLASSES];
            for &c in &sifted.test_intensity {
                mine[c as usize] += 1;
            }
            if test.bits != mine || sample_errors > k as u64 || (0..3).any(|c| test.errors[c] > test.bits[c]) {
                return Err(StationError::Inconsistent(format!(
                    "Alice's estimate (test bits {:?}, sample errors {sample_errors}) does not fit Bob's \
                     (test bits {mine:?}, sample {k})",
                    test.bits
                )));
            }
            (test, sample_errors)
        }
        Role::Alice => {
            let (bt, bs) = expect_msg!(chan.recv()?, Msg::Disclose { test, sample } => (test, sample), "Disclose");
            let bob_test = bt.to_bits("test-basis bits")?;
            let bob_sample = bs.to_bits("sample bits")?;
            let test = estimation::count_errors_by_class(&sifted.test, &bob_test, &sifted.test_intensity)?;
            let sample_errors = estimation::count_errors(&sample, &bob_sample)?;
            chan.send(&Msg::Estimate { test, sample_errors })?;
            (test, sample_errors)
        }
    };
    report.test_errors = test_errors;
    let sample_estimate = (k > 0).then(|| ErrorEstimate::new(sample_errors, k as u64, est.eps_pe));
    // The signal class decides the test-basis abort: the weak decoy's detections are mostly
    // dark counts with a 50% error rate by nature.
    let test_estimate =
        (test_errors.bits[0] > 0).then(|| ErrorEstimate::new(test_errors.errors[0], test_errors.bits[0], est.eps_pe));
    report.sample_estimate = sample_estimate;
    report.test_estimate = test_estimate;
    if let Some(e) = &sample_estimate {
        e.check(est.max_qber, "key-basis (Z) sample")?;
    }
    if let Some(e) = &test_estimate {
        e.check(est.max_qber, "test-basis (X, signal intensity)")?;
    }
    let qber = match (&sample_estimate, test_errors.total_bits()) {
        (Some(e), _) => e.rate,
        (None, n) if n > 0 => test_errors.total_errors() as f64 / n as f64,
        _ => {
            return Err(StationError::NoSecretKey(
                "no test-basis bits and no key sample: nothing to estimate the error rate from".into(),
            ))
        }
    };
    // Reconciliation needs a positive estimate within its supported range.
    let qber_ec = qber.clamp(1e-3, ldpc::MAX_QBER);
    report.qber_for_reconciliation = qber_ec;
    report.timings.estimation = t.elapsed().as_secs_f64();

    // ---- 3. Reconciliation ----
    let t = Instant::now();
    report.reconciled_input_bits = key.len() as u64;
    if key.is_empty() {
        return Err(StationError::NoSecretKey("the sifted key is empty".into()));
    }
    let (key, leak, ec_discarded) = reconcile(role, config, key, qber_ec, chan)?;
    report.leak_ec_bits = leak;
    report.ec_discarded_bits = ec_discarded;
    report.efficiency = leak as f64 / (report.reconciled_input_bits as f64 * finite_key::binary_entropy(qber_ec));
    report.timings.reconciliation = t.elapsed().as_secs_f64();

    // ---- 4. Verification ----
    let t = Instant::now();
    let block = config.verify_block_bits;
    let blocks = key.len().div_ceil(block);
    let vparams = VerifyParams { eps_cor: config.eps_cor / blocks.max(1) as f64 };
    let block_range = |i: usize| (i * block, ((i + 1) * block).min(key.len()));
    let passed: Vec<bool> = match role {
        Role::Alice => {
            let mut seeds = Vec::with_capacity(blocks);
            let mut tags = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let seed: [u8; 32] = OsRng.gen();
                let hk = VerifyKey::from_seed(&vparams, block, seed)?;
                let (a, b) = block_range(i);
                tags.push(verify::tag(&key.slice(a, b), &hk)?);
                seeds.push(seed);
            }
            chan.send(&Msg::Verify { block_bits: block as u64, seeds, tags })?;
            let passed = expect_msg!(chan.recv()?, Msg::VerifyResult { passed } => passed, "VerifyResult");
            if passed.len() != blocks {
                return Err(StationError::Inconsistent(format!("{} verification results for {blocks} blocks", passed.len())));
            }
            passed
        }
        Role::Bob => {
            let (bb, seeds, tags) = expect_msg!(chan.recv()?,
                Msg::Verify { block_bits, seeds, tags } => (block_bits, seeds, tags), "Verify");
            if bb != block as u64 || seeds.len() != blocks || tags.len() != blocks {
                return Err(StationError::Inconsistent(format!(
                    "verification of {} blocks of {bb} bits, expected {blocks} of {block}",
                    seeds.len()
                )));
            }
            let mut passed = Vec::with_capacity(blocks);
            for i in 0..blocks {
                let hk = VerifyKey::from_seed(&vparams, block, seeds[i])?;
                let (a, b) = block_range(i);
                match verify::verify(&key.slice(a, b), &hk, &tags[i]) {
                    Ok(_) => passed.push(true),
                    Err(VerifyError::Mismatch { .. }) => passed.push(false),
                    Err(e) => return Err(e.into()),
                }
            }
            chan.send(&Msg::VerifyResult { passed: passed.clone() })?;
            passed
        }
    };
    let tag_bits = blocks as u64 * vparams.tag_bits(block)? as u64;
    let mut kept = SecretBits::new();
    let mut verify_discarded = 0u64;
    for (i, ok) in passed.iter().enumerate() {
        let (a, b) = block_range(i);
        if *ok {
            kept.extend_from(&key.slice(a, b));
        } else {
            verify_discarded += (b - a) as u64;
        }
    }
    drop(key);
    report.verify_blocks = blocks as u64;
    report.verify_failed_blocks = passed.iter().filter(|p| !**p).count() as u64;
    report.verify_discarded_bits = verify_discarded;
    report.verify_tag_bits = tag_bits;
    report.timings.verification = t.elapsed().as_secs_f64();

    // ---- 5. Key length and privacy amplification ----
    let t = Instant::now();
    let bound = match config.protocol {
        Protocol::DecoyBb84 { intensities, probabilities } => {
            finite_key::decoy_key_length(&finite_key::DecoyInput {
                intensities,
                probabilities,
                x_detections: key_counts,
                z_detections: test_errors.bits,
                z_errors: test_errors.errors,
                eps_sec: config.eps_sec,
                eps_cor: config.eps_cor,
                leak_ec_bits: leak,
                verify_tag_bits: tag_bits,
            })?
            .length_bits
        }
        Protocol::Bb84 | Protocol::Bbm92 { .. } => {
            let pe_bits = match config.sift_mode {
                SiftMode::Asymmetric => test_errors.total_bits(),
                SiftMode::Symmetric => k as u64,
            };
            finite_key::bb84_key_length(&finite_key::Bb84Input {
                n: report.reconciled_input_bits,
                k: pe_bits,
                q_tol: est.max_qber,
                eps_sec: config.eps_sec,
                eps_cor: config.eps_cor,
                leak_ec_bits: leak,
                verify_tag_bits: tag_bits,
            })?
            .length_bits
        }
    };
    report.finite_key_bits = bound;
    let out_bits = bound.saturating_sub(ec_discarded + verify_discarded).min(kept.len() as u64);
    if out_bits == 0 {
        return Err(StationError::NoSecretKey(format!(
            "finite-key bound {bound} bits for {} key bits (leak_EC {leak} bits, {} bits discarded)",
            report.reconciled_input_bits,
            ec_discarded + verify_discarded
        )));
    }
    let n_in = kept.len();
    let seed = match role {
        Role::Alice => {
            let len = toeplitz::seed_len(n_in, out_bits as usize);
            let mut bytes = vec![0u8; len.div_ceil(8)];
            OsRng.fill_bytes(&mut bytes);
            let words: Vec<u64> = bytes
                .chunks(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(b)
                })
                .collect();
            let seed = Packed::from_bits(&SecretBits::from_words(words, len));
            chan.send(&Msg::Amplify { out_bits, seed: seed.clone() })?;
            let confirmed = expect_msg!(chan.recv()?, Msg::Confirm { out_bits } => out_bits, "Confirm");
            if confirmed != out_bits {
                return Err(StationError::Inconsistent(format!("Bob confirmed {confirmed} key bits, Alice has {out_bits}")));
            }
            seed.to_bits("Toeplitz seed")?
        }
        Role::Bob => {
            let (theirs, seed) =
                expect_msg!(chan.recv()?, Msg::Amplify { out_bits, seed } => (out_bits, seed), "Amplify");
            if theirs != out_bits {
                return Err(StationError::Inconsistent(format!("Alice's key length {theirs} bits, Bob's {out_bits} bits")));
            }
            let seed = seed.to_bits("Toeplitz seed")?;
            if seed.len() != toeplitz::seed_len(n_in, out_bits as usize) {
                return Err(StationError::Inconsistent(format!("Toeplitz seed of {} bits for {n_in} → {out_bits}", seed.len())));
            }
            chan.send(&Msg::Confirm { out_bits })?;
            seed
        }
    };
    // The uniform seed bits are read in the novel-basis encoding: the same Toeplitz family,
    // one basis conversion fewer (see `ToeplitzSeed`).
    let final_key = toeplitz::toeplitz_hash(&kept, out_bits as usize, ToeplitzSeed::Novel(&seed))?;
    report.pa_output_bits = out_bits;
    report.timings.amplification = t.elapsed().as_secs_f64();
    Ok(final_key)
}

/// Runs Cascade or LDPC; returns (reconciled key, leak_EC bits, bits discarded).
fn reconcile<S: Read + Write>(
    role: Role,
    config: &StationConfig,
    key: SecretBits,
    qber: f64,
    chan: &mut Chan<S>,
) -> Result<(SecretBits, u64, u64), StationError> {
    let n = key.len();
    match (config.method, role) {
        (Method::Cascade, Role::Alice) => {
            let params = CascadeParams::for_qber(n, qber)?;
            let seed: u64 = OsRng.gen();
            chan.send(&Msg::CascadeStart { params: params.clone(), seed })?;
            let mut alice = CascadeAlice::new(&key, &params, seed)?;
            loop {
                match chan.recv()? {
                    Msg::CascadeQuery(q) => {
                        // Through the oracle trait, which counts the disclosed parities.
                        let answers = alice.parities(&q)?;
                        chan.send(&Msg::CascadeAnswer(Packed::from_bools(&answers)))?;
                    }
                    Msg::CascadeDone => break,
                    other => return Err(StationError::Unexpected { expected: "CascadeQuery or CascadeDone", got: other.name() }),
                }
            }
            Ok((key, alice.answered_queries(), 0))
        }
        (Method::Cascade, Role::Bob) => {
            let (params, seed) =
                expect_msg!(chan.recv()?, Msg::CascadeStart { params, seed } => (params, seed), "CascadeStart");
            let mine = CascadeParams::for_qber(n, qber)?;
            if params != mine {
                return Err(StationError::Inconsistent(format!("Cascade parameters {params:?}, expected {mine:?}")));
            }
            let mut key = key;
            let mut oracle = NetOracle { chan, error: None };
            let stats = match cascade::reconcile_bob(&mut key, &params, seed, &mut oracle) {
                Ok(s) => s,
                Err(e) => return Err(oracle.error.take().unwrap_or(e.into())),
            };
            chan.send(&Msg::CascadeDone)?;
            Ok((key, stats.leaked_bits, 0))
        }
        (Method::Ldpc, Role::Alice) => {
            let params = ldpc::choose_params(qber, n, config.ldpc_target_efficiency)?;
            let seed: u64 = OsRng.gen();
            let (mut alice, syndromes) = LdpcAlice::new(&key, &params, seed)?;
            chan.send(&Msg::LdpcSyndrome(syndromes))?;
            loop {
                match chan.recv()? {
                    Msg::LdpcRevealRequest(req) => {
                        let rev = alice.reveal(&req)?;
                        chan.send(&Msg::LdpcReveal(rev))?;
                    }
                    Msg::LdpcDone(done) => {
                        let out = alice.finish(&done)?;
                        return Ok((out.key, out.stats.leaked_bits, out.stats.discarded_bits));
                    }
                    other => return Err(StationError::Unexpected { expected: "LdpcRevealRequest or LdpcDone", got: other.name() }),
                }
            }
        }
        (Method::Ldpc, Role::Bob) => {
            let syn = expect_msg!(chan.recv()?, Msg::LdpcSyndrome(s) => s, "LdpcSyndrome");
            let mine = ldpc::choose_params(qber, n, config.ldpc_target_efficiency)?;
            if syn.params != mine {
                return Err(StationError::Inconsistent(format!("LDPC parameters {:?}, expected {mine:?}", syn.params)));
            }
            let mut bob = LdpcBob::new(&key, &syn.params, syn.seed)?;
            let mut step = bob.receive_syndrome(&syn)?;
            loop {
                match step {
                    BobStep::NeedMore(req) => {
                        chan.send(&Msg::LdpcRevealRequest(req))?;
                        let rev = expect_msg!(chan.recv()?, Msg::LdpcReveal(r) => r, "LdpcReveal");
                        step = bob.receive_reveal(&rev)?;
                    }
                    BobStep::Done(out, done) => {
                        chan.send(&Msg::LdpcDone(done))?;
                        return Ok((out.key, out.stats.leaked_bits, out.stats.discarded_bits));
                    }
                }
            }
        }
    }
}

