//! The authenticated classical channel: an information-theoretically secure one-time MAC
//! (Wegman–Carter) keyed from a pool of pre-shared secret bits, over length-prefixed frames
//! with sequence numbers.
//!
//! # MAC
//!
//! Wegman–Carter: the message `m` (the direction byte, the sequence number and the payload) is
//! cut into 7-byte little-endian blocks m₁..m_L (the last zero-padded), followed by one block
//! holding the byte length, and tagged as
//!
//! `t = (Σ_{i=1}^{L+1} mᵢ k^{L+2−i} + r) mod p`, p = 2⁶¹ − 1,
//!
//! with a hash key `k` and a one-time pad `r`. The polynomial hash is ε-almost-Δ-universal with
//! ε = (L+1)/p (a non-zero polynomial of degree ≤ L+1 has at most L+1 roots; the length block
//! makes messages of different lengths differ), so with a uniform pad the tag is
//! ε-almost strongly universal and a forger succeeds with probability at most (L+1)/p per
//! message, plus 2⁻⁶⁰ because k and r are drawn as 61-bit strings reduced mod p. The channel
//! sums this per message into [`ChannelStats::eps_auth`].
//!
//! **Key use.** Every tag consumes a fresh 61-bit pad ([`KEY_BITS_PER_TAG`]), never reused.
//! The hash key `k` of each direction (61 bits, [`HASH_KEY_BITS`]) is drawn from the pool once
//! per channel (one run) and used for that direction's tags only: because every tag is
//! one-time-padded, tags reveal nothing about `k`, and the bound above holds for each message
//! however many tags were seen (Wegman and Carter, JCSS 22 (1981) 265; the recycling of the hash
//! key is analysed by Portmann, IEEE Trans. Inf. Theory 60 (2014) 4383). After the run the hash
//! keys are discarded with the pool bits they came from. The first failed verification aborts
//! the run, so a forger gets one try.
//!
//! Why hand-written: the well-kept MAC crates (poly1305, ghash/polyval) are designed around a
//! computationally secure key schedule; here keys must come from a QKD key pool, with an exact
//! bit count to subtract from the key. The Mersenne-prime arithmetic is ten lines and is tested
//! against a direct evaluation.
//!
//! # Key pool and consumption
//!
//! [`KeyPool`] holds the secret bits (zeroized on drop), taken in *segments* of 61 bits:
//! segment 0 is Alice→Bob's hash key, segment 1 Bob→Alice's, and message number `s` from
//! Alice to Bob uses pad segment 2 + 2s, from Bob to Alice 3 + 2s, so both stations agree on
//! which bits key which message whatever the interleaving. A segment is used at most once (the
//! pool refuses reuse). [`KeyPool::consumed_bits`] (everything up to the highest used segment)
//! is what the caller subtracts from the distilled key to refill the pool;
//! [`KeyPool::remainder`] is the unused rest.
//!
//! # Pool alignment
//!
//! Both stations start from the same pre-shared key, but a failed run may end with their
//! pools at different points: a station that sent (or verified) one more message than its peer
//! spent one more pad. The pool left after a failed run is the pool's unused *tail* (cut to
//! whole bytes at its front, see the station), so the two remainders are suffixes of one bit
//! string and differ only in how much of its front they still hold. Before the first message
//! each station therefore sends its pool length in a 16-byte opening, `ALIGN_MAGIC` |
//! `pool bits: u64 LE`, and the station holding more drops the difference from its front
//! ([`AuthChannel::align_pools`]): those bits are unused by it and were consumed or discarded by
//! the peer. The opening is not authenticated; an adversary who alters it can only make the
//! stations discard bits or hold different pools, and the first tag then fails (a denial of
//! service, which cutting the link achieves as well). A difference above [`MAX_ALIGN_BITS`] (64
//! segments, far more than one failed run leaves) is refused without dropping anything, so a
//! forged opening costs a station at most about one run's MAC key. Pools that
//! diverged otherwise (one station refilled its pool after a run its peer did not complete)
//! fail the first tag.
//!
//! # Frames
//!
//! `len: u32 LE` (bytes that follow) | `seq: u64 LE` | payload | `tag: u64 LE`.
//! The receiver requires `seq` to be exactly the next expected number (0, 1, 2… per direction):
//! an older number is a replay, a newer one a reordering or loss; then it checks the tag. Any
//! failure poisons the channel and the run must abort.

use std::io::{Read, Write};

use bitvec::prelude::*;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::key::SecretBits;

/// The Mersenne prime 2⁶¹ − 1 of the MAC's field.
pub const P61: u64 = (1 << 61) - 1;
/// Secret bits consumed by one tag: its 61-bit one-time pad.
pub const KEY_BITS_PER_TAG: usize = 61;
/// Secret bits of the two hash keys (one per direction) a channel draws once.
pub const HASH_KEY_BITS: usize = 2 * SEGMENT_BITS;
/// Size of a pool segment (bits): one element of GF(2⁶¹ − 1).
pub const SEGMENT_BITS: usize = 61;
/// Bytes of a frame besides the payload (sequence number + tag), not counting the length.
pub const FRAME_OVERHEAD: usize = 16;
/// Default largest accepted frame (bytes).
pub const DEFAULT_MAX_FRAME: usize = 256 << 20;
/// First bytes of the pool-alignment opening ([`AuthChannel::align_pools`]); the digit is the
/// opening's version.
pub const ALIGN_MAGIC: [u8; 8] = *b"QKDPOOL1";
/// Largest difference of pool sizes (bits) that [`AuthChannel::align_pools`] resolves: one
/// failed run leaves the two pools a few segments apart (the hash keys and the pads of the
/// messages one station sent or verified and the other did not, two segments per message,
/// plus the cut to whole bytes), well within 64 segments, and the bound keeps what a forged
/// opening can make a station discard (3 912 bits) to the order of one run's MAC key.
pub const MAX_ALIGN_BITS: u64 = 64 * SEGMENT_BITS as u64 + 8;

/// Errors of the authenticated channel. Every one of them aborts the run.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The stream failed.
    #[error("channel I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// A frame longer than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length (bytes).
        len: usize,
        /// Limit (bytes).
        max: usize,
    },
    /// A frame too short to hold a sequence number and a tag.
    #[error("frame of {len} bytes is shorter than the {FRAME_OVERHEAD}-byte header and tag")]
    FrameTooShort {
        /// Length (bytes).
        len: usize,
    },
    /// The tag did not verify: the message was altered, or the pre-shared keys differ.
    #[error("authentication failed on message {seq} from {from}: tampered message or mismatched pre-shared key")]
    BadTag {
        /// Sequence number of the message.
        seq: u64,
        /// Sending station.
        from: Role,
    },
    /// A sequence number already received.
    #[error("replayed message from {from}: sequence number {seq}, expected {expected}")]
    Replayed {
        /// Sequence number received.
        seq: u64,
        /// Sequence number expected.
        expected: u64,
        /// Sending station.
        from: Role,
    },
    /// A sequence number ahead of the expected one.
    #[error("out-of-order message from {from}: sequence number {seq}, expected {expected} (reordered or lost)")]
    OutOfOrder {
        /// Sequence number received.
        seq: u64,
        /// Sequence number expected.
        expected: u64,
        /// Sending station.
        from: Role,
    },
    /// The key pool has too few bits left for the next tag.
    #[error("authentication key pool exhausted: tag needs bits {start}..{end} but the pool holds {available} bits")]
    PoolExhausted {
        /// First bit needed.
        start: usize,
        /// One past the last bit needed.
        end: usize,
        /// Pool size (bits).
        available: usize,
    },
    /// A key segment requested twice.
    #[error("authentication key segment {segment} was already used; one-time keys are never reused")]
    KeyReuse {
        /// The segment.
        segment: usize,
    },
    /// Use after an earlier failure.
    #[error("channel unusable after an earlier authentication or I/O failure")]
    Poisoned,
    /// The peer's first bytes were not a pool-alignment opening.
    #[error("the peer did not open with a key-pool alignment (first bytes {got:02x?}, expected {:02x?}): not a qkd station, or one of another protocol version", ALIGN_MAGIC)]
    BadOpening {
        /// The eight bytes received.
        got: [u8; 8],
    },
    /// The pools differ by more than one failed run explains; nothing was dropped.
    #[error("pre-shared key pools differ by more than {MAX_ALIGN_BITS} bits (this station holds {local} bits, the peer announced {peer}): not tails of one key after a failed run; check the key files or provision a new pre-shared key")]
    PoolsTooFarApart {
        /// This station's pool size (bits).
        local: u64,
        /// The size the peer announced (bits).
        peer: u64,
    },
    /// [`AuthChannel::align_pools`] called after the pool was used.
    #[error("key pools can only be aligned before the first message ({consumed} pool bits already used)")]
    AlignAfterUse {
        /// Pool bits consumed so far.
        consumed: usize,
    },
}

/// The two stations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The transmitter (prepare-and-measure) or the first detector station (BBM92).
    Alice,
    /// The receiver.
    Bob,
}

impl Role {
    /// The other station.
    pub fn peer(self) -> Role {
        match self {
            Role::Alice => Role::Bob,
            Role::Bob => Role::Alice,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Alice => "alice",
            Role::Bob => "bob",
        })
    }
}

/// A one-time MAC key: hash point `k` and pad `r`, both in 0..p. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct OneTimeKey {
    k: u64,
    r: u64,
}

impl OneTimeKey {
    /// From two 61-bit strings (reduced mod p).
    pub fn new(k: u64, r: u64) -> Self {
        Self { k: reduce(k & P61), r: reduce(r & P61) }
    }
}

impl std::fmt::Debug for OneTimeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeKey(redacted)")
    }
}

#[inline]
fn reduce(x: u64) -> u64 {
    let s = (x & P61) + (x >> 61);
    if s >= P61 {
        s - P61
    } else {
        s
    }
}

/// a·b mod p for a, b < 2⁶³.
#[inline]
fn mulmod(a: u64, b: u64) -> u64 {
    let prod = a as u128 * b as u128;
    let s = (prod as u64 & P61) + (prod >> 61) as u64;
    reduce(s)
}

/// The 7 bytes of `c` as a little-endian integer below 2⁵⁶.
#[inline]
fn load7(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..7].copy_from_slice(&c[..7]);
    u64::from_le_bytes(b)
}

/// Streaming polynomial hash over GF(p), p = 2⁶¹ − 1 (see the module docs).
struct PolyHasher {
    k: u64,
    /// k², k³, k⁴ for four blocks per step (independent multiplications pipeline).
    k2: u64,
    k3: u64,
    k4: u64,
    acc: u64,
    buf: [u8; 8],
    buf_len: usize,
    total: u64,
}

impl PolyHasher {
    fn new(k: u64) -> Self {
        let k2 = mulmod(k, k);
        Self { k, k2, k3: mulmod(k2, k), k4: mulmod(k2, k2), acc: 0, buf: [0; 8], buf_len: 0, total: 0 }
    }

    #[inline]
    fn block(&mut self, m: u64) {
        self.acc = mulmod(self.acc + m, self.k);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (7 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 7 {
                return;
            }
            let m = u64::from_le_bytes(self.buf) & ((1 << 56) - 1);
            self.block(m);
            self.buf_len = 0;
        }
        // Four blocks per step: acc·k⁴ + m₁k⁴ + m₂k³ + m₃k² + m₄k, the same as four Horner steps.
        let mut quads = data.chunks_exact(28);
        for q in &mut quads {
            let s = mulmod(self.acc + load7(&q[..7]), self.k4)
                + mulmod(load7(&q[7..14]), self.k3)
                + mulmod(load7(&q[14..21]), self.k2)
                + mulmod(load7(&q[21..28]), self.k);
            self.acc = reduce(s);
        }
        let mut chunks = quads.remainder().chunks_exact(7);
        for c in &mut chunks {
            self.block(load7(c));
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Number of blocks including the length block.
    fn blocks(&self) -> u64 {
        self.total.div_ceil(7) + 1
    }

    fn finish(mut self) -> u64 {
        if self.buf_len > 0 {
            self.buf[self.buf_len..].fill(0);
            let m = u64::from_le_bytes(self.buf) & ((1 << 56) - 1);
            self.block(m);
        }
        let len = reduce(self.total);
        self.block(len);
        self.buf.zeroize();
        self.acc
    }
}

/// The tag of the concatenation of `parts` under the one-time key `key`, and the forging
/// probability bound ε = (L+1)/p + 2⁻⁶⁰ of that message.
pub fn mac_tag(key: &OneTimeKey, parts: &[&[u8]]) -> (u64, f64) {
    let mut h = PolyHasher::new(key.k);
    for p in parts {
        h.update(p);
    }
    let eps = h.blocks() as f64 / P61 as f64 + 2f64.powi(-60);
    let t = h.finish();
    (reduce(t + key.r), eps)
}

/// Bits from bytes, bit `i` being bit `i % 8` of byte `i / 8` (LSB first; the key-file
/// layout of [`super::station::files`]).
pub fn bits_from_bytes(bytes: &[u8]) -> SecretBits {
    let words: Vec<u64> = bytes
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            let w = u64::from_le_bytes(b);
            b.zeroize();
            w
        })
        .collect();
    SecretBits::from_words(words, bytes.len() * 8)
}

/// A pool of secret bits for one-time MAC keys (see the module docs). Zeroized on drop.
#[derive(Debug, Default)]
pub struct KeyPool {
    bits: SecretBits,
    used: BitVec<u64, Lsb0>,
}

impl KeyPool {
    /// From secret bits (a pre-shared key or earlier distilled key).
    pub fn from_bits(bits: SecretBits) -> Self {
        Self { bits, used: BitVec::new() }
    }

    /// From bytes, bit `i` being bit `i % 8` of byte `i / 8` (the key-file layout).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_bits(bits_from_bytes(bytes))
    }

    /// Pool size (bits).
    pub fn len_bits(&self) -> usize {
        self.bits.len()
    }

    /// Number of whole 61-bit segments the pool holds.
    pub fn segments(&self) -> usize {
        self.bits.len() / SEGMENT_BITS
    }

    /// Takes segment `segment` as an element of GF(p) (61 bits reduced mod p); fails if it was
    /// used before or lies beyond the pool.
    pub fn take_segment(&mut self, segment: usize) -> Result<u64, AuthError> {
        let start = segment * SEGMENT_BITS;
        let end = start + SEGMENT_BITS;
        if end > self.bits.len() {
            return Err(AuthError::PoolExhausted { start, end, available: self.bits.len() });
        }
        if self.used.len() <= segment {
            self.used.resize(segment + 1, false);
        }
        if self.used[segment] {
            return Err(AuthError::KeyReuse { segment });
        }
        self.used.set(segment, true);
        let v: u64 = self.bits.as_bitslice()[start..end].load_le();
        Ok(reduce(v))
    }

    /// Bits at or below the highest used segment: spent, whether or not every segment below
    /// it was used (bits).
    pub fn consumed_bits(&self) -> usize {
        self.used.last_one().map_or(0, |s| (s + 1) * SEGMENT_BITS)
    }

    /// The unused bits after the highest used segment (a copy), for the next run's pool.
    pub fn remainder(&self) -> SecretBits {
        self.bits.slice(self.consumed_bits(), self.bits.len())
    }

    /// Drops the first `bits` bits (at most the pool size) of a pool none of whose segments was
    /// used yet; segment numbers then count from the new front.
    fn drop_front(&mut self, bits: usize) -> Result<(), AuthError> {
        let consumed = self.consumed_bits();
        if consumed != 0 {
            return Err(AuthError::AlignAfterUse { consumed });
        }
        let bits = bits.min(self.bits.len());
        if bits > 0 {
            // The old bits are zeroized when dropped (`SecretBits`).
            self.bits = self.bits.slice(bits, self.bits.len());
        }
        Ok(())
    }
}

/// Outcome of [`AuthChannel::align_pools`] (all in bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolAlignment {
    /// This station's pool size before the alignment.
    pub local_bits: u64,
    /// The pool size the peer announced.
    pub peer_bits: u64,
    /// Bits this station dropped from the front of its pool (`local − peer` when positive).
    pub dropped_bits: u64,
}

/// Traffic and key-use counters of one station's channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received and verified.
    pub messages_received: u64,
    /// Bytes written, frames included.
    pub bytes_sent: u64,
    /// Bytes read, frames included.
    pub bytes_received: u64,
    /// Times this station waited for the peer after sending (round trips it initiated or
    /// answered).
    pub round_trips: u64,
    /// Sum of the per-message forging bounds of all tags sent and received (probability).
    pub eps_auth: f64,
}

/// An authenticated, sequenced message channel over any byte stream (TCP, a Unix socket pair,
/// an in-memory pipe).
pub struct AuthChannel<S: Read + Write> {
    stream: S,
    pool: KeyPool,
    /// Hash keys per direction, drawn on first use (zeroized on drop).
    hash_keys: Zeroizing<[Option<u64>; 2]>,
    role: Role,
    send_seq: u64,
    recv_seq: u64,
    max_frame: usize,
    sent_since_recv: bool,
    poisoned: bool,
    stats: ChannelStats,
}

impl<S: Read + Write> AuthChannel<S> {
    /// A channel for `role` over `stream`, keyed from `pool`.
    pub fn new(stream: S, pool: KeyPool, role: Role) -> Self {
        Self {
            stream,
            pool,
            hash_keys: Zeroizing::new([None; 2]),
            role,
            send_seq: 0,
            recv_seq: 0,
            max_frame: DEFAULT_MAX_FRAME,
            sent_since_recv: false,
            poisoned: false,
            stats: ChannelStats::default(),
        }
    }

    /// Sets the largest accepted frame (bytes).
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// This station's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Counters so far.
    pub fn stats(&self) -> ChannelStats {
        self.stats
    }

    /// The key pool (for [`KeyPool::consumed_bits`] and [`KeyPool::remainder`]).
    pub fn pool(&self) -> &KeyPool {
        &self.pool
    }

    /// Ends the channel, returning the stream and the pool (the hash keys are zeroized).
    pub fn into_parts(self) -> (S, KeyPool) {
        (self.stream, self.pool)
    }

    /// Exchanges pool sizes with the peer and drops from the front of this station's pool
    /// what it holds beyond the peer's (see the module docs, *Pool alignment*). Must come
    /// before the first message, on both stations; both write their opening before reading,
    /// so neither waits for the other.
    pub fn align_pools(&mut self) -> Result<PoolAlignment, AuthError> {
        self.check()?;
        let r = self.align_inner();
        self.poison(r)
    }

    fn align_inner(&mut self) -> Result<PoolAlignment, AuthError> {
        let consumed = self.pool.consumed_bits();
        if consumed != 0 || self.send_seq != 0 || self.recv_seq != 0 {
            return Err(AuthError::AlignAfterUse { consumed });
        }
        let local_bits = self.pool.len_bits() as u64;
        let mut opening = [0u8; 16];
        opening[..8].copy_from_slice(&ALIGN_MAGIC);
        opening[8..].copy_from_slice(&local_bits.to_le_bytes());
        self.stream.write_all(&opening)?;
        self.stream.flush()?;
        self.stats.bytes_sent += opening.len() as u64;
        let mut peer = [0u8; 16];
        match self.stream.read_exact(&mut peer) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(AuthError::Closed),
            r => r?,
        }
        self.stats.bytes_received += peer.len() as u64;
        let got: [u8; 8] = peer[..8].try_into().expect("8 bytes");
        if got != ALIGN_MAGIC {
            return Err(AuthError::BadOpening { got });
        }
        let peer_bits = u64::from_le_bytes(peer[8..].try_into().expect("8 bytes"));
        if local_bits.abs_diff(peer_bits) > MAX_ALIGN_BITS {
            return Err(AuthError::PoolsTooFarApart { local: local_bits, peer: peer_bits });
        }
        let dropped_bits = local_bits.saturating_sub(peer_bits);
        self.pool.drop_front(dropped_bits as usize)?;
        Ok(PoolAlignment { local_bits, peer_bits, dropped_bits })
    }

    /// Pad segment of message `seq` from `from`.
    fn pad_segment(from: Role, seq: u64) -> usize {
        2 + 2 * seq as usize + from.index()
    }

    /// The one-time key of message `seq` from `from`: that direction's hash key (drawn on
    /// first use) and the message's pad.
    fn tag_key(&mut self, from: Role, seq: u64) -> Result<OneTimeKey, AuthError> {
        let d = from.index();
        let k = match self.hash_keys[d] {
            Some(k) => k,
            None => {
                let k = self.pool.take_segment(d)?;
                self.hash_keys[d] = Some(k);
                k
            }
        };
        let r = self.pool.take_segment(Self::pad_segment(from, seq))?;
        Ok(OneTimeKey::new(k, r))
    }

    fn check(&self) -> Result<(), AuthError> {
        if self.poisoned {
            Err(AuthError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn poison<T>(&mut self, r: Result<T, AuthError>) -> Result<T, AuthError> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Sends one message (authenticated, with the next sequence number).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), AuthError> {
        self.check()?;
        let r = self.send_inner(payload);
        self.poison(r)
    }

    fn send_inner(&mut self, payload: &[u8]) -> Result<(), AuthError> {
        let len = payload.len() + FRAME_OVERHEAD;
        if len > self.max_frame || len > u32::MAX as usize {
            return Err(AuthError::FrameTooLarge { len, max: self.max_frame });
        }
        let seq = self.send_seq;
        let key = self.tag_key(self.role, seq)?;
        let seq_bytes = seq.to_le_bytes();
        let (tag, eps) = mac_tag(&key, &[&[self.role.index() as u8], &seq_bytes, payload]);
        let mut frame = Vec::with_capacity(4 + len);
        frame.extend_from_slice(&(len as u32).to_le_bytes());
        frame.extend_from_slice(&seq_bytes);
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&tag.to_le_bytes());
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        self.send_seq += 1;
        self.sent_since_recv = true;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        self.stats.eps_auth += eps;
        Ok(())
    }

    /// Receives the next message; fails on a closed stream, a bad sequence number or tag.
    pub fn recv(&mut self) -> Result<Vec<u8>, AuthError> {
        self.check()?;
        let r = self.recv_inner();
        self.poison(r)
    }

    fn recv_inner(&mut self) -> Result<Vec<u8>, AuthError> {
        if self.sent_since_recv {
            self.stats.round_trips += 1;
            self.sent_since_recv = false;
        }
        let mut len_bytes = [0u8; 4];
        match self.stream.read_exact(&mut len_bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(AuthError::Closed),
            r => r?,
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > self.max_frame {
            return Err(AuthError::FrameTooLarge { len, max: self.max_frame });
        }
        if len < FRAME_OVERHEAD {
            return Err(AuthError::FrameTooShort { len });
        }
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame)?;
        let from = self.role.peer();
        let seq = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
        if seq < self.recv_seq {
            return Err(AuthError::Replayed { seq, expected: self.recv_seq, from });
        }
        if seq > self.recv_seq {
            return Err(AuthError::OutOfOrder { seq, expected: self.recv_seq, from });
        }
        let key = self.tag_key(from, seq)?;
        let tag = u64::from_le_bytes(frame[len - 8..].try_into().expect("8 bytes"));
        let payload = &frame[8..len - 8];
        let (expected, eps) = mac_tag(&key, &[&[from.index() as u8], &frame[..8], payload]);
        if tag != expected {
            return Err(AuthError::BadTag { seq, from });
        }
        self.recv_seq += 1;
        self.stats.messages_received += 1;
        self.stats.bytes_received += 4 + len as u64;
        self.stats.eps_auth += eps;
        frame.truncate(len - 8);
        frame.drain(..8);
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;
    use std::io::Cursor;

    fn pool(seed: u64, bytes: usize) -> KeyPool {
        let mut b = vec![0u8; bytes];
        ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut b);
        KeyPool::from_bytes(&b)
    }

    /// Direct evaluation Σ mᵢ k^{L+2−i} with u128 arithmetic, for checking the Horner form.
    fn direct_hash(k: u64, data: &[u8]) -> u64 {
        let p = P61 as u128;
        let mut blocks: Vec<u128> = data
            .chunks(7)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..c.len()].copy_from_slice(c);
                u64::from_le_bytes(b) as u128
            })
            .collect();
        blocks.push(data.len() as u128 % p);
        let n = blocks.len();
        let mut sum = 0u128;
        for (i, m) in blocks.iter().enumerate() {
            let mut pw = 1u128;
            for _ in 0..(n - i) {
                pw = pw * k as u128 % p;
            }
            sum = (sum + m * pw) % p;
        }
        sum as u64
    }

    #[test]
    fn hash_matches_direct_evaluation_and_streaming() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        for len in [0usize, 1, 6, 7, 8, 13, 14, 15, 27, 28, 29, 56, 100, 301] {
            let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let k = rng.gen::<u64>() & P61;
            let key = OneTimeKey::new(k, 0);
            let (t, eps) = mac_tag(&key, &[&data]);
            assert_eq!(t, direct_hash(key.k, &data), "len {len}");
            assert!(eps > 0.0 && eps < 1e-15);
            // Any split into parts gives the same tag.
            for cut in 0..=len {
                let (t2, _) = mac_tag(&key, &[&data[..cut], &data[cut..]]);
                assert_eq!(t, t2, "len {len} cut {cut}");
            }
        }
        // Zero-padding does not collide with an explicit zero byte (length block).
        let key = OneTimeKey::new(12345, 678);
        assert_ne!(mac_tag(&key, &[b"ab"]).0, mac_tag(&key, &[b"ab\0"]).0);
    }

    #[test]
    fn mulmod_is_correct() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for _ in 0..1000 {
            let (a, b) = (rng.gen::<u64>() >> 1, rng.gen::<u64>() & P61);
            assert_eq!(mulmod(a, b) as u128, (a as u128 * b as u128) % P61 as u128);
        }
        assert_eq!(reduce(P61), 0);
    }

    #[test]
    fn pool_segments_are_used_once() {
        let mut p = pool(1, 64);
        assert_eq!(p.len_bits(), 512);
        assert_eq!(p.segments(), 8);
        p.take_segment(1).unwrap();
        assert!(matches!(p.take_segment(1), Err(AuthError::KeyReuse { segment: 1 })));
        assert_eq!(p.consumed_bits(), 122);
        assert_eq!(p.remainder().len(), 512 - 122);
        assert!(matches!(p.take_segment(8), Err(AuthError::PoolExhausted { .. })));
        p.take_segment(0).unwrap();
        assert_eq!(p.consumed_bits(), 122);
    }

    /// A stream that reads from a fixed buffer and records what is written.
    struct Mem {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Mem {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Mem {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn mem(input: Vec<u8>) -> Mem {
        Mem { input: Cursor::new(input), output: Vec::new() }
    }

    /// Frames Alice sends for `msgs` (concatenated) and their boundaries.
    fn alice_frames(msgs: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut a = AuthChannel::new(mem(vec![]), pool(9, 1024), Role::Alice);
        let mut cuts = vec![0];
        for m in msgs {
            a.send(m).unwrap();
            cuts.push(a.stream.output.len());
        }
        (a.stream.output, cuts)
    }

    fn bob(input: Vec<u8>) -> AuthChannel<Mem> {
        AuthChannel::new(mem(input), pool(9, 1024), Role::Bob)
    }

    #[test]
    fn messages_verify_in_order() {
        let (bytes, _) = alice_frames(&[b"hello", b"", b"third message"]);
        let mut b = bob(bytes);
        assert_eq!(b.recv().unwrap(), b"hello");
        assert_eq!(b.recv().unwrap(), b"");
        assert_eq!(b.recv().unwrap(), b"third message");
        assert!(matches!(b.recv(), Err(AuthError::Closed)));
        // Alice → Bob messages 0,1,2 use the hash key (segment 0) and pads 2, 4, 6.
        assert!(b.stats().eps_auth > 0.0);
    }

    #[test]
    fn tampering_is_detected_and_poisons() {
        let (mut bytes, _) = alice_frames(&[b"hello world"]);
        let last = bytes.len() - 1;
        for pos in [4usize, 12, last] {
            // seq byte, payload byte, tag byte
            let mut t = bytes.clone();
            t[pos] ^= 0x01;
            let mut b = bob(t);
            let e = b.recv().unwrap_err();
            if pos == 4 {
                assert!(matches!(e, AuthError::OutOfOrder { seq: 1, expected: 0, .. }), "{e}");
            } else {
                assert!(matches!(e, AuthError::BadTag { seq: 0, from: Role::Alice }), "{e}");
                assert!(e.to_string().contains("tampered"));
            }
            assert!(matches!(b.recv(), Err(AuthError::Poisoned)));
        }
        // A truncated frame with a fixed-up length also fails.
        let n = bytes.len();
        bytes.truncate(n - 1);
        bytes[..4].copy_from_slice(&((n - 5) as u32).to_le_bytes());
        assert!(matches!(bob(bytes).recv(), Err(AuthError::BadTag { .. })));
    }

    #[test]
    fn replay_and_reorder_are_detected() {
        let (bytes, cuts) = alice_frames(&[b"one", b"two"]);
        let (f0, f1) = (&bytes[cuts[0]..cuts[1]], &bytes[cuts[1]..cuts[2]]);
        let mut b = bob([f0, f0].concat());
        b.recv().unwrap();
        let e = b.recv().unwrap_err();
        assert!(matches!(e, AuthError::Replayed { seq: 0, expected: 1, .. }), "{e}");
        assert!(e.to_string().contains("replayed"));
        let mut b = bob([f1, f0].concat());
        assert!(matches!(b.recv(), Err(AuthError::OutOfOrder { seq: 1, expected: 0, .. })));
        // Reflection: Bob's own frame fed back to him fails (different direction key).
        let mut b2 = bob(vec![]);
        b2.send(b"one").unwrap();
        let mut b3 = bob(b2.stream.output.clone());
        assert!(matches!(b3.recv(), Err(AuthError::BadTag { .. })));
    }

    #[test]
    fn wrong_psk_and_oversize_frames_fail() {
        let (bytes, _) = alice_frames(&[b"hi"]);
        let mut b = AuthChannel::new(mem(bytes.clone()), pool(10, 1024), Role::Bob);
        assert!(matches!(b.recv(), Err(AuthError::BadTag { .. })));
        let mut b = bob(bytes).with_max_frame(16);
        assert!(matches!(b.recv(), Err(AuthError::FrameTooLarge { .. })));
        let mut b = bob(vec![3, 0, 0, 0, 1, 2, 3]);
        assert!(matches!(b.recv(), Err(AuthError::FrameTooShort { len: 3 })));
        // Exhausted pool.
        let mut a = AuthChannel::new(mem(vec![]), pool(9, 22), Role::Alice);
        assert!(matches!(a.send(b"x"), Err(AuthError::PoolExhausted { .. })));
    }

    #[test]
    fn duplex_over_socket_pair_counts_key_use() {
        let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = AuthChannel::new(sb, pool(5, 1024), Role::Bob);
            for _ in 0..3 {
                let m = b.recv().unwrap();
                b.send(&m).unwrap();
            }
            b.pool().consumed_bits()
        });
        let mut a = AuthChannel::new(sa, pool(5, 1024), Role::Alice);
        for i in 0..3u8 {
            a.send(&[i; 100]).unwrap();
            assert_eq!(a.recv().unwrap(), vec![i; 100]);
        }
        assert_eq!(a.stats().round_trips, 3);
        // Hash keys 0, 1 and pads 2..=7 (A: 2, 4, 6; B: 3, 5, 7).
        assert_eq!(a.pool().consumed_bits(), HASH_KEY_BITS + 6 * KEY_BITS_PER_TAG);
        assert_eq!(t.join().unwrap(), HASH_KEY_BITS + 6 * KEY_BITS_PER_TAG);
    }

    /// Runs one exchange over a socket pair after aligning the pools: Alice sends, Bob echoes.
    /// Returns both alignments and both results of the first receive.
    #[allow(clippy::type_complexity)]
    fn aligned_exchange(pa: KeyPool, pb: KeyPool) -> ((PoolAlignment, Result<Vec<u8>, AuthError>), (PoolAlignment, Result<Vec<u8>, AuthError>)) {
        let (sa, sb) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut b = AuthChannel::new(sb, pb, Role::Bob);
            let al = b.align_pools().unwrap();
            let got = b.recv();
            if let Ok(m) = &got {
                b.send(m).unwrap();
            }
            (al, got)
        });
        let mut a = AuthChannel::new(sa, pa, Role::Alice);
        let al = a.align_pools().unwrap();
        a.send(b"after a failed run").unwrap();
        let echo = a.recv();
        let bob = t.join().unwrap();
        ((al, echo), bob)
    }

    /// The tails of one pre-shared key left by a failed run (Bob spent three more segments
    /// than Alice, then both cut to whole bytes at the front) align and authenticate; the
    /// station holding more drops exactly the difference.
    #[test]
    fn pool_tails_of_different_lengths_align() {
        let base = pool(21, 256).remainder();
        let (a_from, b_from) = (2 * SEGMENT_BITS, 5 * SEGMENT_BITS);
        let front_cut = |from: usize| from + (base.len() - from) % 8;
        let pa = KeyPool::from_bits(base.slice(front_cut(a_from), base.len()));
        let pb = KeyPool::from_bits(base.slice(front_cut(b_from), base.len()));
        let (la, lb) = (pa.len_bits() as u64, pb.len_bits() as u64);
        let ((al_a, echo), (al_b, got)) = aligned_exchange(pa, pb);
        assert_eq!(got.unwrap(), b"after a failed run");
        assert_eq!(echo.unwrap(), b"after a failed run");
        assert_eq!(al_a, PoolAlignment { local_bits: la, peer_bits: lb, dropped_bits: la - lb });
        assert_eq!(al_b, PoolAlignment { local_bits: lb, peer_bits: la, dropped_bits: 0 });
        assert!(la > lb);
    }

    /// Pools of equal length but different content (diverged, or a wrong key file) fail the
    /// first tag.
    #[test]
    fn diverged_pools_fail_the_first_tag() {
        let ((al_a, echo), (al_b, got)) = aligned_exchange(pool(1, 256), pool(2, 256));
        assert_eq!((al_a.dropped_bits, al_b.dropped_bits), (0, 0));
        assert!(matches!(got, Err(AuthError::BadTag { seq: 0, from: Role::Alice })), "{got:?}");
        assert!(echo.is_err());
    }

    /// A peer that does not open with the alignment, a peer gone before it, and an alignment
    /// after the first message are errors that name what happened.
    #[test]
    fn alignment_errors() {
        let mut b = bob(b"not a qkd peer!!".to_vec());
        let e = b.align_pools().unwrap_err();
        assert!(matches!(e, AuthError::BadOpening { got } if &got == b"not a qk"), "{e:?}");
        assert!(e.to_string().contains("did not open with a key-pool alignment"));
        assert!(matches!(b.recv(), Err(AuthError::Poisoned)));
        let mut b = bob(ALIGN_MAGIC.to_vec());
        assert!(matches!(b.align_pools(), Err(AuthError::Closed)));
        // An opening announcing an empty pool would have this station drop all of its key.
        let mut b = bob([&ALIGN_MAGIC[..], &0u64.to_le_bytes()].concat());
        let e = b.align_pools().unwrap_err();
        assert!(matches!(e, AuthError::PoolsTooFarApart { local: 8192, peer: 0 }), "{e:?}");
        assert_eq!(b.pool().len_bits(), 8192, "nothing dropped");
        let mut b = bob([&ALIGN_MAGIC[..], &(8192 - MAX_ALIGN_BITS).to_le_bytes()].concat());
        assert_eq!(b.align_pools().unwrap().dropped_bits, MAX_ALIGN_BITS);
        let mut a = AuthChannel::new(mem(vec![]), pool(9, 1024), Role::Alice);
        a.send(b"x").unwrap();
        let e = a.align_pools().unwrap_err();
        assert!(matches!(e, AuthError::AlignAfterUse { consumed } if consumed == 3 * SEGMENT_BITS), "{e:?}");
    }
}
