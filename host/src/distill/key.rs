//! Secret bit strings: packed, redacted in `Debug`, and zeroized when dropped.
//!
//! Every stage of distillation passes key material as [`SecretBits`]. The bits are packed
//! LSB-first into `u64` words (bit `i` is bit `i % 64` of word `i / 64`), which is the layout
//! `bitvec`'s `BitVec<u64, Lsb0>` uses, so stages can work on whole words.

use bitvec::prelude::*;
use zeroize::Zeroize;

/// A string of secret bits (sifted, reconciled or final key). Never printed, zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBits {
    bits: BitVec<u64, Lsb0>,
}

impl SecretBits {
    /// An empty string.
    pub fn new() -> Self {
        Self::default()
    }

    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        Self { bits: bitvec![u64, Lsb0; 0; len] }
    }

    /// From one `bool` per bit.
    pub fn from_bools(bits: &[bool]) -> Self {
        Self { bits: bits.iter().copied().collect() }
    }

    /// From bytes holding one bit each (0 or 1; any non-zero byte is a 1).
    pub fn from_bit_bytes(bits: &[u8]) -> Self {
        Self { bits: bits.iter().map(|&b| b != 0).collect() }
    }

    /// From packed LSB-first words, keeping the first `len` bits.
    ///
    /// # Panics
    /// If `words` holds fewer than `len` bits.
    pub fn from_words(words: Vec<u64>, len: usize) -> Self {
        assert!(words.len() * 64 >= len, "from_words: {} words hold fewer than {len} bits", words.len());
        let mut words = words;
        words.truncate(len.div_ceil(64));
        if len % 64 != 0 {
            if let Some(last) = words.last_mut() {
                *last &= (1u64 << (len % 64)) - 1;
            }
        }
        let mut bits = BitVec::<u64, Lsb0>::from_vec(words);
        bits.truncate(len);
        Self { bits }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// True when there are no bits.
    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Bit `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn get(&self, i: usize) -> bool {
        self.bits[i]
    }

    /// Sets bit `i` to `v`.
    pub fn set(&mut self, i: usize, v: bool) {
        self.bits.set(i, v);
    }

    /// Flips bit `i`.
    pub fn flip(&mut self, i: usize) {
        let v = self.bits[i];
        self.bits.set(i, !v);
    }

    /// Appends one bit.
    pub fn push(&mut self, v: bool) {
        self.bits.push(v);
    }

    /// Appends all bits of `other`.
    pub fn extend_from(&mut self, other: &SecretBits) {
        self.bits.extend_from_bitslice(&other.bits);
    }

    /// The bits as a `bitvec` slice.
    pub fn as_bitslice(&self) -> &BitSlice<u64, Lsb0> {
        &self.bits
    }

    /// The bits as a mutable `bitvec` slice.
    pub fn as_mut_bitslice(&mut self) -> &mut BitSlice<u64, Lsb0> {
        &mut self.bits
    }

    /// The packed words (LSB-first). Bits past `len()` in the last word are unspecified:
    /// mask them before use.
    pub fn words(&self) -> &[u64] {
        self.bits.as_raw_slice()
    }

    /// Bits `start..end` as a new string.
    pub fn slice(&self, start: usize, end: usize) -> SecretBits {
        Self { bits: self.bits[start..end].to_bitvec() }
    }

    /// Parity (XOR) of bits `start..end`.
    pub fn parity(&self, start: usize, end: usize) -> bool {
        self.bits[start..end].count_ones() & 1 == 1
    }

    /// Number of positions where `self` and `other` differ (they must have equal length).
    pub fn hamming_distance(&self, other: &SecretBits) -> usize {
        assert_eq!(self.len(), other.len(), "hamming_distance of strings of unequal length");
        // Compare bit slices, not raw words: bits past `len` in the last word are not part of
        // the string.
        let full = self.len() / 64;
        let head: usize =
            self.words()[..full].iter().zip(&other.words()[..full]).map(|(a, b)| (a ^ b).count_ones() as usize).sum();
        head + (full * 64..self.len()).filter(|&i| self.get(i) != other.get(i)).count()
    }

    /// One `bool` per bit (a copy the caller must treat as secret).
    pub fn to_bools(&self) -> Vec<bool> {
        self.bits.iter().by_vals().collect()
    }
}

impl std::fmt::Debug for SecretBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBits({} bits, redacted)", self.len())
    }
}

impl Zeroize for SecretBits {
    fn zeroize(&mut self) {
        self.bits.as_raw_mut_slice().zeroize();
        self.bits.clear();
    }
}

impl Drop for SecretBits {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SecretBits {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_parity() {
        let b = SecretBits::from_bools(&[true, false, true, true]);
        assert_eq!(b.len(), 4);
        assert!(b.parity(0, 4));
        assert!(!b.parity(0, 3));
        assert_eq!(b.words()[0], 0b1101);
        assert_eq!(format!("{b:?}"), "SecretBits(4 bits, redacted)");
        let c = SecretBits::from_words(vec![0b0101], 4);
        assert_eq!(b.hamming_distance(&c), 1);
        // Junk past `len` in the source word is dropped.
        let d = SecretBits::from_words(vec![u64::MAX], 3);
        assert_eq!(d.words(), &[0b111]);
        assert_eq!(d.hamming_distance(&SecretBits::from_bools(&[true, true, true])), 0);
    }
}
