//! Sifting: from raw per-slot records to sifted key bits and the counts the finite-key
//! analysis needs, for prepare-and-measure BB84 with decoy states and for entanglement-based
//! BBM92.
//!
//! # Conventions
//!
//! * **Bases.** [`Basis::Z`] is the rectilinear basis (detectors H = 0, V = 1) and is the *key*
//!   basis; [`Basis::X`] is the diagonal basis (D = 0, A = 1) and is the *test* basis whose
//!   bits are all disclosed to estimate the phase-error rate. This is the asymmetric protocol of
//!   Lim et al. 2014 (decoy BB84) and Tomamichel et al. 2012 (BB84/BBM92) with the basis names
//!   swapped: their key basis is called X, ours Z (the Z basis is the one the time-bin/polarisation
//!   hardware measures with the higher probability).
//! * **[`SiftMode::Symmetric`]** keeps matched bits of *both* bases as key (textbook BB84);
//!   then nothing is disclosed at sifting and the error rate is estimated from a random sample
//!   of the key ([`super::estimation`]), with the phase-error rate taken equal to the bit-error
//!   rate (basis symmetry).
//! * **Intensity classes** 0, 1, 2 are the decoy intensities μ₁ > μ₂ > μ₃ (signal, decoy,
//!   weak/vacuum) in the order of the finite-key module's parameters. BBM92 uses class 0 only.
//! * **Slots.** A prepare-and-measure slot index counts emitted pulses from the start of the run;
//!   for BBM92 the same `u64` field holds a detection timestamp in ticks.
//!
//! # Squashing of multiple clicks (Bob, and both stations in BBM92)
//!
//! A detection record holds the set of detectors among H, V, D, A that clicked in the slot.
//! It is mapped to one (basis, bit) or discarded, following the squashing model for BB84
//! receivers (Beaupré, Andersson, Lütkenhaus, PRA 77, 042303 (2008); Gittsovich et al.,
//! PRA 89, 012325 (2014)):
//!
//! * no click: discarded (never announced), counted in [`SquashCounts::no_click`];
//! * exactly one click: that detector's basis and bit;
//! * both detectors of one basis (H+V or D+A) and none of the other: that basis and a
//!   uniformly random bit, counted in [`SquashCounts::double_same_basis`];
//! * clicks in both bases (any of H,V together with any of D,A): a uniformly random basis and
//!   a uniformly random bit, counted in [`SquashCounts::cross_basis`].
//!
//! The random bits come from the caller's cryptographically secure generator (the CLI uses
//! `ChaCha20Rng` seeded from the operating system). Squashing is done before the basis
//! announcement, so the announced basis of a squashed detection is the assigned one.
//!
//! # Public messages
//!
//! 1. Bob → Alice: [`DetectionAnnouncement`] (his detected slots and their bases);
//! 2. Alice → Bob: [`BasisReply`] (for every announced detection, her basis and intensity
//!    class, or [`BasisReply::NO_PARTNER`] when she has no record for it: a slot outside her
//!    run, or in BBM92 no coincidence within the window).
//!
//! Both stations then run [`sift`] on the same two messages, so they keep the same positions in
//! the same order (the order of Bob's detections).

use bitvec::prelude::*;
use rand::{CryptoRng, Rng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroize;

use super::key::SecretBits;

/// Number of intensity classes (decoy levels), indexed 0..=2.
pub const INTENSITY_CLASSES: usize = 3;

/// Click-mask bit of the detector H (Z basis, bit 0).
pub const CLICK_H: u8 = 1;
/// Click-mask bit of the detector V (Z basis, bit 1).
pub const CLICK_V: u8 = 2;
/// Click-mask bit of the detector D (X basis, bit 0).
pub const CLICK_D: u8 = 4;
/// Click-mask bit of the detector A (X basis, bit 1).
pub const CLICK_A: u8 = 8;

/// Errors of sifting: malformed records or messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SiftError {
    /// An intensity class above 2.
    #[error("intensity class {class} at record {index} is out of range (classes are 0..=2)")]
    BadIntensity {
        /// Record index.
        index: usize,
        /// The class found.
        class: u8,
    },
    /// An Alice record byte with bits set above bit 3.
    #[error("Alice record {index} has the unknown bits {byte:#04x} set (only bits 0..=3 are defined)")]
    BadAliceRecord {
        /// Record index.
        index: usize,
        /// The byte found.
        byte: u8,
    },
    /// A click mask with bits set above the four detectors.
    #[error("detection record {index} has click mask {mask:#04x}; only bits 0..=3 (H,V,D,A) are defined")]
    BadClicks {
        /// Record index.
        index: usize,
        /// The mask found.
        mask: u8,
    },
    /// Detection records not in strictly increasing slot order.
    #[error("detection record {index} has slot {slot}, not after the previous slot {previous} (records must be strictly increasing)")]
    Unsorted {
        /// Record index.
        index: usize,
        /// Its slot.
        slot: u64,
        /// The previous record's slot.
        previous: u64,
    },
    /// A public message whose parts disagree in length.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is inconsistent.
        detail: String,
    },
}

/// A measurement (or preparation) basis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Basis {
    /// Rectilinear (H/V): the key basis.
    Z = 0,
    /// Diagonal (D/A): the test basis in [`SiftMode::Asymmetric`].
    X = 1,
}

impl Basis {
    /// From a bit: `false` → Z, `true` → X.
    pub fn from_bit(bit: bool) -> Self {
        if bit {
            Basis::X
        } else {
            Basis::Z
        }
    }

    /// The basis as a bit: Z → `false`, X → `true`.
    pub fn bit(self) -> bool {
        self == Basis::X
    }

    /// 0 for Z, 1 for X (array index).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which matched bits become key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SiftMode {
    /// Z-basis matches are key, X-basis matches are all disclosed for phase-error estimation
    /// (Lim 2014 / Tomamichel 2012 asymmetric protocol).
    #[default]
    Asymmetric,
    /// Matches in both bases are key; errors are estimated from a random sample of the key.
    Symmetric,
}

/// Alice's prepared states for a contiguous run of slots, one byte per slot:
/// bit 0 = value bit, bit 1 = basis (0 = Z, 1 = X), bits 2–3 = intensity class (0..=2),
/// bits 4–7 zero. Slot `first_slot + i` is byte `i`. Secret: zeroized on drop, redacted Debug.
#[derive(Clone, Default)]
pub struct AliceRecords {
    first_slot: u64,
    codes: Vec<u8>,
}

impl AliceRecords {
    /// An empty run starting at slot `first_slot`.
    pub fn new(first_slot: u64) -> Self {
        Self { first_slot, codes: Vec::new() }
    }

    /// From packed bytes (the layout above), checking every byte.
    pub fn from_codes(first_slot: u64, codes: Vec<u8>) -> Result<Self, SiftError> {
        let mut rec = Self { first_slot, codes };
        if let Some((index, &byte)) = rec.codes.iter().enumerate().find(|(_, &b)| b & 0xF0 != 0) {
            rec.codes.zeroize();
            return Err(SiftError::BadAliceRecord { index, byte });
        }
        if let Some((index, &byte)) = rec.codes.iter().enumerate().find(|(_, &b)| b >> 2 > 2) {
            rec.codes.zeroize();
            return Err(SiftError::BadIntensity { index, class: byte >> 2 });
        }
        Ok(rec)
    }

    /// Appends the state of the next slot.
    pub fn push(&mut self, basis: Basis, value: bool, intensity: u8) -> Result<(), SiftError> {
        if intensity as usize >= INTENSITY_CLASSES {
            return Err(SiftError::BadIntensity { index: self.codes.len(), class: intensity });
        }
        self.codes.push(value as u8 | (basis as u8) << 1 | intensity << 2);
        Ok(())
    }

    /// Slot index of the first record.
    pub fn first_slot(&self) -> u64 {
        self.first_slot
    }

    /// Number of slots (emitted pulses).
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// True when there are no slots.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// The packed bytes (secret: the value bits are key material).
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// (basis, value, intensity class) of slot `slot`, or `None` outside the run.
    pub fn get(&self, slot: u64) -> Option<(Basis, bool, u8)> {
        let i = usize::try_from(slot.checked_sub(self.first_slot)?).ok()?;
        let c = *self.codes.get(i)?;
        Some((Basis::from_bit(c & 2 != 0), c & 1 != 0, c >> 2))
    }
}

impl Drop for AliceRecords {
    fn drop(&mut self) {
        self.codes.zeroize();
    }
}

impl std::fmt::Debug for AliceRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AliceRecords(first_slot {}, {} slots, redacted)", self.first_slot, self.codes.len())
    }
}

/// One detection record: the slot (or timestamp in ticks, BBM92) and the click mask
/// ([`CLICK_H`] | [`CLICK_V`] | [`CLICK_D`] | [`CLICK_A`]). For an active-basis receiver with
/// two detectors, only the bits of the chosen basis can be set.
#[derive(Clone, Copy, PartialEq, Eq, Zeroize)]
pub struct Detection {
    /// Slot index (prepare-and-measure) or timestamp in ticks (BBM92).
    pub slot: u64,
    /// Which detectors clicked (bits 0..=3 = H, V, D, A).
    pub clicks: u8,
}

impl std::fmt::Debug for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Detection(slot {}, clicks redacted)", self.slot)
    }
}

/// How a detection was turned into a (basis, bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClickClass {
    /// Exactly one detector clicked.
    Single,
    /// Both detectors of one basis clicked: random bit.
    DoubleSameBasis,
    /// Detectors of both bases clicked: random basis and bit.
    CrossBasis,
}

/// Squashes one click mask (bits 0..=3) to (basis, bit, class); `None` for no click.
/// See the module docs for the rules; `rng` supplies the random assignments.
pub fn squash<R: RngCore + CryptoRng>(clicks: u8, rng: &mut R) -> Option<(Basis, bool, ClickClass)> {
    let z = clicks & 0b11;
    let x = (clicks >> 2) & 0b11;
    match (z, x) {
        (0, 0) => None,
        (0, m) | (m, 0) => {
            let basis = if z != 0 { Basis::Z } else { Basis::X };
            if m == 0b11 {
                Some((basis, rng.gen::<bool>(), ClickClass::DoubleSameBasis))
            } else {
                Some((basis, m == 0b10, ClickClass::Single))
            }
        }
        _ => {
            let basis = Basis::from_bit(rng.gen::<bool>());
            Some((basis, rng.gen::<bool>(), ClickClass::CrossBasis))
        }
    }
}

/// Counts of the squashing step (records, not bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquashCounts {
    /// Records with no click (discarded).
    pub no_click: u64,
    /// Records with exactly one click.
    pub single: u64,
    /// Records with both detectors of one basis (random bit assigned).
    pub double_same_basis: u64,
    /// Records with clicks in both bases (random basis and bit assigned).
    pub cross_basis: u64,
}

/// A station's squashed detections: slots (or timestamps), bases (public once announced) and
/// bit values (secret).
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    slots: Vec<u64>,
    bases: BitVec<u64, Lsb0>,
    values: SecretBits,
    counts: SquashCounts,
}

impl Measurements {
    /// Squashes detection records (strictly increasing slots, click masks within 0..=0xF).
    pub fn from_detections<R: RngCore + CryptoRng>(
        records: &[Detection],
        rng: &mut R,
    ) -> Result<Self, SiftError> {
        let mut m = Measurements {
            slots: Vec::with_capacity(records.len()),
            bases: BitVec::with_capacity(records.len()),
            values: SecretBits::new(),
            counts: SquashCounts::default(),
        };
        let mut previous: Option<u64> = None;
        for (index, d) in records.iter().enumerate() {
            if d.clicks & 0xF0 != 0 {
                return Err(SiftError::BadClicks { index, mask: d.clicks });
            }
            if let Some(p) = previous {
                if d.slot <= p {
                    return Err(SiftError::Unsorted { index, slot: d.slot, previous: p });
                }
            }
            previous = Some(d.slot);
            match squash(d.clicks, rng) {
                None => m.counts.no_click += 1,
                Some((basis, value, class)) => {
                    match class {
                        ClickClass::Single => m.counts.single += 1,
                        ClickClass::DoubleSameBasis => m.counts.double_same_basis += 1,
                        ClickClass::CrossBasis => m.counts.cross_basis += 1,
                    }
                    m.slots.push(d.slot);
                    m.bases.push(basis.bit());
                    m.values.push(value);
                }
            }
        }
        Ok(m)
    }

    /// Number of (squashed) detections.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing was detected.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots (or timestamps in ticks) of the detections, increasing.
    pub fn slots(&self) -> &[u64] {
        &self.slots
    }

    /// Basis of detection `i`.
    pub fn basis(&self, i: usize) -> Basis {
        Basis::from_bit(self.bases[i])
    }

    /// The bit values, one per detection (secret).
    pub fn values(&self) -> &SecretBits {
        &self.values
    }

    /// Counts of the squashing step.
    pub fn squash_counts(&self) -> SquashCounts {
        self.counts
    }

    /// Flips the bits of the bases whose flag is set (BBM92 with an anti-correlated Bell
    /// state: e.g. Ψ⁻ needs both flags on one side; Φ⁺ needs none). Index 0 = Z, 1 = X.
    pub fn flip_bases(&mut self, flip: [bool; 2]) {
        for i in 0..self.len() {
            if flip[self.basis(i).index()] {
                self.values.flip(i);
            }
        }
    }

    /// The public announcement of these detections (slots and bases; no values).
    pub fn announce(&self) -> DetectionAnnouncement {
        let mut prev = 0u64;
        let slot_deltas = self
            .slots
            .iter()
            .map(|&s| {
                let d = s - prev;
                prev = s;
                d
            })
            .collect();
        DetectionAnnouncement { slot_deltas, bases: self.bases.as_raw_slice().to_vec() }
    }
}

/// Bob's public announcement: his detected slots and bases, in increasing slot order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionAnnouncement {
    /// First slot, then the differences between consecutive slots (compact under varint
    /// encoding).
    pub slot_deltas: Vec<u64>,
    /// Bases packed LSB-first, one bit per detection (1 = X).
    pub bases: Vec<u64>,
}

impl DetectionAnnouncement {
    /// Number of announced detections.
    pub fn len(&self) -> usize {
        self.slot_deltas.len()
    }

    /// True when nothing is announced.
    pub fn is_empty(&self) -> bool {
        self.slot_deltas.is_empty()
    }

    /// Checks that the parts agree and the slots do not overflow; returns the slots.
    pub fn slots(&self) -> Result<Vec<u64>, SiftError> {
        if self.bases.len() != self.len().div_ceil(64) {
            return Err(SiftError::Malformed {
                what: "detection announcement",
                detail: format!("{} detections but {} basis words", self.len(), self.bases.len()),
            });
        }
        let mut acc = 0u64;
        let mut out = Vec::with_capacity(self.len());
        for (i, &d) in self.slot_deltas.iter().enumerate() {
            if i > 0 && d == 0 {
                return Err(SiftError::Malformed {
                    what: "detection announcement",
                    detail: format!("repeated slot at detection {i}"),
                });
            }
            acc = acc.checked_add(d).ok_or_else(|| SiftError::Malformed {
                what: "detection announcement",
                detail: format!("slot overflow at detection {i}"),
            })?;
            out.push(acc);
        }
        Ok(out)
    }

    /// Basis of detection `i` (panics if `i >= len()`; call [`Self::slots`] first to validate).
    pub fn basis(&self, i: usize) -> Basis {
        Basis::from_bit((self.bases[i / 64] >> (i % 64)) & 1 == 1)
    }
}

/// Alice's public reply: one code per announced detection,
/// `basis | intensity << 1`, or [`BasisReply::NO_PARTNER`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasisReply {
    /// One code per announced detection.
    pub codes: Vec<u8>,
}

impl BasisReply {
    /// Code of a detection Alice has no record for (outside her slots, or no coincidence).
    pub const NO_PARTNER: u8 = 0xFF;

    /// The code for (basis, intensity class).
    pub fn code(basis: Basis, intensity: u8) -> u8 {
        basis as u8 | intensity << 1
    }
}

/// Prepare-and-measure: Alice's reply to Bob's announcement, and her bit value per announced
/// detection (secret; 0 where she has no partner).
pub fn alice_reply(
    alice: &AliceRecords,
    ann: &DetectionAnnouncement,
) -> Result<(BasisReply, SecretBits), SiftError> {
    let slots = ann.slots()?;
    let mut codes = Vec::with_capacity(slots.len());
    let mut values = SecretBits::zeros(slots.len());
    for (i, &s) in slots.iter().enumerate() {
        match alice.get(s) {
            Some((basis, value, k)) => {
                codes.push(BasisReply::code(basis, k));
                values.set(i, value);
            }
            None => codes.push(BasisReply::NO_PARTNER),
        }
    }
    Ok((BasisReply { codes }, values))
}

/// Matches detections of two stations by timestamp: for every `b` detection, the index of the
/// `a` detection with `|a - (b - offset)| <= window` (ticks), if any. Both lists are increasing;
/// matching is greedy in time order and uses every `a` detection at most once.
pub fn match_coincidences(a: &[u64], b: &[u64], window: u64, offset: i64) -> Vec<Option<usize>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0usize;
    let w = window as i128;
    for &tb in b {
        let t = tb as i128 - offset as i128;
        while i < a.len() && (a[i] as i128) < t - w {
            i += 1;
        }
        if i < a.len() && (a[i] as i128) <= t + w {
            out.push(Some(i));
            i += 1;
        } else {
            out.push(None);
        }
    }
    out
}

/// BBM92: Alice's reply to Bob's announced detections (timestamps in ticks) from her own
/// squashed detections, matched within `window` ticks after subtracting `offset` ticks from
/// Bob's times; and her bit value per announced detection (0 without a coincidence).
pub fn bbm92_reply(
    alice: &Measurements,
    ann: &DetectionAnnouncement,
    window: u64,
    offset: i64,
) -> Result<(BasisReply, SecretBits), SiftError> {
    let slots = ann.slots()?;
    let matches = match_coincidences(alice.slots(), &slots, window, offset);
    let mut codes = Vec::with_capacity(slots.len());
    let mut values = SecretBits::zeros(slots.len());
    for (i, m) in matches.iter().enumerate() {
        match m {
            Some(j) => {
                codes.push(BasisReply::code(alice.basis(*j), 0));
                values.set(i, alice.values().get(*j));
            }
            None => codes.push(BasisReply::NO_PARTNER),
        }
    }
    Ok((BasisReply { codes }, values))
}

/// Counts of the sifting step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiftCounts {
    /// Detections Bob announced.
    pub announced: u64,
    /// Announced detections Alice had no record for.
    pub no_partner: u64,
    /// Detections with different bases (discarded).
    pub basis_mismatch: u64,
    /// Matched-basis detections per basis and intensity class: `matched[b][k]` is n_{b,k}
    /// (b = 0 for Z, 1 for X).
    pub matched: [[u64; INTENSITY_CLASSES]; 2],
}

impl SiftCounts {
    /// Total matched detections in basis `b`.
    pub fn matched_in(&self, b: Basis) -> u64 {
        self.matched[b.index()].iter().sum()
    }
}

/// The output of sifting at one station.
#[derive(Clone, Debug, Default)]
pub struct Sifted {
    /// Key bits in Bob's detection order.
    pub key: SecretBits,
    /// Intensity class of every key bit.
    pub key_intensity: Vec<u8>,
    /// Test-basis bits (to be disclosed; empty in [`SiftMode::Symmetric`]).
    pub test: SecretBits,
    /// Intensity class of every test bit.
    pub test_intensity: Vec<u8>,
    /// Counts.
    pub counts: SiftCounts,
}

/// Sifts at either station: keeps the announced detections whose basis equals Alice's, in
/// announcement order. `values` holds this station's bit per announced detection (Bob:
/// [`Measurements::values`]; Alice: the values from [`alice_reply`] / [`bbm92_reply`]).
pub fn sift(
    ann: &DetectionAnnouncement,
    reply: &BasisReply,
    values: &SecretBits,
    mode: SiftMode,
) -> Result<Sifted, SiftError> {
    let n = ann.len();
    if ann.bases.len() != n.div_ceil(64) {
        return Err(SiftError::Malformed {
            what: "detection announcement",
            detail: format!("{n} detections but {} basis words", ann.bases.len()),
        });
    }
    if reply.codes.len() != n || values.len() != n {
        return Err(SiftError::Malformed {
            what: "basis reply",
            detail: format!(
                "{n} announced detections, {} reply codes, {} values",
                reply.codes.len(),
                values.len()
            ),
        });
    }
    let mut out = Sifted { counts: SiftCounts { announced: n as u64, ..Default::default() }, ..Default::default() };
    for (i, &code) in reply.codes.iter().enumerate() {
        if code == BasisReply::NO_PARTNER {
            out.counts.no_partner += 1;
            continue;
        }
        let (alice_basis, k) = (Basis::from_bit(code & 1 == 1), code >> 1);
        if k as usize >= INTENSITY_CLASSES {
            return Err(SiftError::BadIntensity { index: i, class: k });
        }
        let bob_basis = ann.basis(i);
        if alice_basis != bob_basis {
            out.counts.basis_mismatch += 1;
            continue;
        }
        out.counts.matched[bob_basis.index()][k as usize] += 1;
        if mode == SiftMode::Symmetric || bob_basis == Basis::Z {
            out.key.push(values.get(i));
            out.key_intensity.push(k);
        } else {
            out.test.push(values.get(i));
            out.test_intensity.push(k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn single_clicks_map_to_detector() {
        let mut r = rng();
        assert_eq!(squash(CLICK_H, &mut r), Some((Basis::Z, false, ClickClass::Single)));
        assert_eq!(squash(CLICK_V, &mut r), Some((Basis::Z, true, ClickClass::Single)));
        assert_eq!(squash(CLICK_D, &mut r), Some((Basis::X, false, ClickClass::Single)));
        assert_eq!(squash(CLICK_A, &mut r), Some((Basis::X, true, ClickClass::Single)));
        assert_eq!(squash(0, &mut r), None);
    }

    #[test]
    fn double_clicks_are_squashed_uniformly() {
        let mut r = rng();
        let n = 20_000;
        let mut ones = 0;
        for _ in 0..n {
            let (b, v, c) = squash(CLICK_D | CLICK_A, &mut r).unwrap();
            assert_eq!((b, c), (Basis::X, ClickClass::DoubleSameBasis));
            ones += v as u32;
        }
        // Uniform bit: 10 000 ± 5σ (σ ≈ 71).
        assert!((ones as i64 - 10_000).abs() < 360, "ones = {ones}");
        let (mut x, mut v1) = (0, 0);
        for _ in 0..n {
            let (b, v, c) = squash(CLICK_H | CLICK_A, &mut r).unwrap();
            assert_eq!(c, ClickClass::CrossBasis);
            x += (b == Basis::X) as i64;
            v1 += v as i64;
        }
        assert!((x - 10_000).abs() < 360 && (v1 - 10_000).abs() < 360, "x {x} v {v1}");
        // Three or four clicks are cross-basis too.
        assert_eq!(squash(0xF, &mut r).unwrap().2, ClickClass::CrossBasis);
    }

    #[test]
    fn measurements_count_and_validate() {
        let recs = [
            Detection { slot: 3, clicks: CLICK_H },
            Detection { slot: 5, clicks: 0 },
            Detection { slot: 9, clicks: CLICK_H | CLICK_V },
            Detection { slot: 12, clicks: CLICK_V | CLICK_D },
        ];
        let m = Measurements::from_detections(&recs, &mut rng()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.slots(), &[3, 9, 12]);
        let c = m.squash_counts();
        assert_eq!((c.no_click, c.single, c.double_same_basis, c.cross_basis), (1, 1, 1, 1));
        assert_eq!(m.basis(1), Basis::Z);
        let ann = m.announce();
        assert_eq!(ann.slots().unwrap(), vec![3, 9, 12]);
        assert_eq!(ann.basis(0), Basis::Z);

        let bad = [Detection { slot: 3, clicks: 1 }, Detection { slot: 3, clicks: 1 }];
        assert_eq!(
            Measurements::from_detections(&bad, &mut rng()).unwrap_err(),
            SiftError::Unsorted { index: 1, slot: 3, previous: 3 }
        );
        let bad = [Detection { slot: 3, clicks: 0x11 }];
        assert!(matches!(Measurements::from_detections(&bad, &mut rng()), Err(SiftError::BadClicks { .. })));
    }

    #[test]
    fn alice_records_validate() {
        assert!(AliceRecords::from_codes(0, vec![0b1111]).is_err()); // intensity 3
        assert!(AliceRecords::from_codes(0, vec![0x10]).is_err());
        let a = AliceRecords::from_codes(10, vec![0b1011]).unwrap();
        assert_eq!(a.get(10), Some((Basis::X, true, 2)));
        assert_eq!(a.get(9), None);
        assert_eq!(a.get(11), None);
        let mut a = AliceRecords::new(0);
        assert!(a.push(Basis::Z, true, 3).is_err());
    }

    /// A hand-made prepare-and-measure run covering every branch of sifting.
    #[test]
    fn prepare_and_measure_sifting() {
        let mut alice = AliceRecords::new(100);
        // slot: (basis, value, intensity)
        let states = [
            (Basis::Z, true, 0),  // 100: Bob Z V → key 1
            (Basis::X, false, 1), // 101: Bob X D → test 0
            (Basis::Z, false, 2), // 102: Bob X   → mismatch
            (Basis::Z, false, 0), // 103: no detection
            (Basis::X, true, 0),  // 104: Bob X D → test, error
            (Basis::Z, false, 1), // 105: Bob Z V → key, error
        ];
        for (b, v, k) in states {
            alice.push(b, v, k).unwrap();
        }
        let bob_recs = [
            Detection { slot: 100, clicks: CLICK_V },
            Detection { slot: 101, clicks: CLICK_D },
            Detection { slot: 102, clicks: CLICK_A },
            Detection { slot: 104, clicks: CLICK_D },
            Detection { slot: 105, clicks: CLICK_V },
            Detection { slot: 200, clicks: CLICK_H }, // outside Alice's run
        ];
        let bob = Measurements::from_detections(&bob_recs, &mut rng()).unwrap();
        let ann = bob.announce();
        let (reply, alice_values) = alice_reply(&alice, &ann).unwrap();
        assert_eq!(reply.codes[5], BasisReply::NO_PARTNER);
        let sa = sift(&ann, &reply, &alice_values, SiftMode::Asymmetric).unwrap();
        let sb = sift(&ann, &reply, bob.values(), SiftMode::Asymmetric).unwrap();
        assert_eq!(sa.counts, sb.counts);
        let c = sa.counts;
        assert_eq!((c.announced, c.no_partner, c.basis_mismatch), (6, 1, 1));
        assert_eq!(c.matched, [[1, 1, 0], [1, 1, 0]]);
        assert_eq!(sa.key.to_bools(), vec![true, false]);
        assert_eq!(sb.key.to_bools(), vec![true, true]);
        assert_eq!(sa.key_intensity, vec![0, 1]);
        assert_eq!(sa.test.to_bools(), vec![false, true]);
        assert_eq!(sb.test.to_bools(), vec![false, false]);
        assert_eq!(sb.test_intensity, vec![1, 0]);

        let sym = sift(&ann, &reply, bob.values(), SiftMode::Symmetric).unwrap();
        assert_eq!(sym.key.len(), 4);
        assert!(sym.test.is_empty());
    }

    /// Random BB84 without noise: sifted keys agree exactly, and about half the detections
    /// are kept.
    #[test]
    fn random_noiseless_run_agrees() {
        let mut r = rng();
        let mut alice = AliceRecords::new(0);
        let mut recs = Vec::new();
        for slot in 0..20_000u64 {
            let (b, v, k) = (Basis::from_bit(r.gen()), r.gen::<bool>(), r.gen_range(0..3u8));
            alice.push(b, v, k).unwrap();
            if r.gen_bool(0.3) {
                let bob_basis = Basis::from_bit(r.gen());
                let bit = if bob_basis == b { v } else { r.gen() };
                let mask = match (bob_basis, bit) {
                    (Basis::Z, false) => CLICK_H,
                    (Basis::Z, true) => CLICK_V,
                    (Basis::X, false) => CLICK_D,
                    (Basis::X, true) => CLICK_A,
                };
                recs.push(Detection { slot, clicks: mask });
            }
        }
        let bob = Measurements::from_detections(&recs, &mut r).unwrap();
        let ann = bob.announce();
        let (reply, av) = alice_reply(&alice, &ann).unwrap();
        let sa = sift(&ann, &reply, &av, SiftMode::Asymmetric).unwrap();
        let sb = sift(&ann, &reply, bob.values(), SiftMode::Asymmetric).unwrap();
        assert_eq!(sa.key, sb.key);
        assert_eq!(sa.test, sb.test);
        let kept = (sa.key.len() + sa.test.len()) as f64 / recs.len() as f64;
        assert!((kept - 0.5).abs() < 0.03, "kept fraction {kept}");
    }

    #[test]
    fn coincidences_match_within_window() {
        let a = [10, 20, 30, 45];
        let b = [112, 119, 131, 200];
        // offset 100: b - 100 = 12, 19, 31, 100
        let m = match_coincidences(&a, &b, 2, 100);
        assert_eq!(m, vec![Some(0), Some(1), Some(2), None]);
        // Each a used once.
        let m = match_coincidences(&[10], &[10, 11], 3, 0);
        assert_eq!(m, vec![Some(0), None]);
    }

    #[test]
    fn bbm92_sifting_with_anticorrelation() {
        let mut r = rng();
        // Alice and Bob detect the same pairs; Bob's clock is 1000 ticks ahead, jitter ±3.
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        for i in 0..2000u64 {
            let t = 1000 + i * 50;
            let (ba, bb) = (r.gen::<bool>(), r.gen::<bool>());
            let v = r.gen::<bool>();
            let mask = |basis: bool, bit: bool| 1u8 << (2 * basis as u8 + bit as u8);
            ra.push(Detection { slot: t, clicks: mask(ba, v) });
            // Ψ⁻: anti-correlated in both bases when bases agree.
            let vb = if ba == bb { !v } else { r.gen() };
            rb.push(Detection { slot: t + 1000 + r.gen_range(0..=6) - 3, clicks: mask(bb, vb) });
        }
        let ma = Measurements::from_detections(&ra, &mut r).unwrap();
        let mut mb = Measurements::from_detections(&rb, &mut r).unwrap();
        mb.flip_bases([true, true]);
        let ann = mb.announce();
        let (reply, av) = bbm92_reply(&ma, &ann, 4, 1000).unwrap();
        assert!(reply.codes.iter().all(|&c| c != BasisReply::NO_PARTNER));
        let sa = sift(&ann, &reply, &av, SiftMode::Symmetric).unwrap();
        let sb = sift(&ann, &reply, mb.values(), SiftMode::Symmetric).unwrap();
        assert_eq!(sa.key, sb.key);
        assert!(sa.key.len() > 900 && sa.key.len() < 1100, "{}", sa.key.len());
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let ann = DetectionAnnouncement { slot_deltas: vec![1, 2], bases: vec![] };
        assert!(ann.slots().is_err());
        let ann = DetectionAnnouncement { slot_deltas: vec![1, 0], bases: vec![0] };
        assert!(ann.slots().is_err());
        let ann = DetectionAnnouncement { slot_deltas: vec![u64::MAX, 2], bases: vec![0] };
        assert!(ann.slots().is_err());
        let ann = DetectionAnnouncement { slot_deltas: vec![1], bases: vec![0] };
        let reply = BasisReply { codes: vec![0, 0] };
        assert!(sift(&ann, &reply, &SecretBits::zeros(1), SiftMode::Asymmetric).is_err());
        let reply = BasisReply { codes: vec![3 << 1] };
        assert!(sift(&ann, &reply, &SecretBits::zeros(1), SiftMode::Asymmetric).is_err());
    }
}
