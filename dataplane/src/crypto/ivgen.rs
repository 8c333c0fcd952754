//! Per-packet CBC IVs without a per-packet syscall.
//!
//! RFC 3602 §3 and RFC 2451 §2.3 require the CBC IV to be unpredictable to
//! an attacker (a predictable IV enables the chosen-plaintext attack on CBC
//! that BEAST made famous), while RFC 4303 only requires it to be carried in
//! the packet. A random read per packet would cost a `getrandom` syscall in
//! the hot path, so each IV is instead
//!
//! ```text
//! IV = AES-128_K(nonce || i)        (first 8 bytes for 64-bit-block ciphers)
//! ```
//!
//! with `K` (128 bits) and `nonce` (64 bits) drawn from the OS once per
//! thread, and `i` the count of IVs the thread has handed out. AES is a
//! pseudo-random permutation, so under a secret key the outputs are
//! indistinguishable from random; `i` never repeats on a thread, so neither
//! does an IV. This is the construction of NIST SP 800-38A Appendix C
//! (encrypting a nonce).
//!
//! One stream per thread, shared by every SA the thread seals for, rather
//! than one per SA: an IV has to be unpredictable, not tied to its SA, and a
//! key per SA made each packet of a hub's many SAs read that SA's AES
//! schedule and wait for one AES block at the unit's latency. The thread's
//! stream is computed [`POOL`] IVs at a time in AES-NI's pipelined lanes and
//! stays in cache.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128Enc;
use std::cell::RefCell;
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;

/// IVs per `encrypt_blocks` call: what AES-NI pipelines in one go.
pub(crate) const IV_BATCH: usize = 8;

/// Makes unpredictable, never-repeating CBC IVs: IV number `i` under one
/// key and nonce.
///
/// Its key schedule lives in an `aes::Aes128Enc`, wiped on drop by the
/// `aes` crate's `zeroize` feature (enabled in the workspace); the raw key
/// is held in a [`Zeroizing`] buffer only while the schedule is built.
pub struct IvGenerator {
    cipher: Aes128Enc,
    nonce: [u8; 8],
}

impl IvGenerator {
    /// Draws a fresh key and nonce from the OS; called once per thread,
    /// never per packet. The only failure is the OS refusing randomness,
    /// reported as an unusable suite because `CryptoError` has no variant
    /// for it.
    pub fn new() -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0u8; 24]);
        getrandom::getrandom(&mut seed[..])
            .map_err(|_| CryptoError::InvalidSuite("no randomness for the IV generator"))?;
        let mut key = Zeroizing::new([0u8; 16]);
        key.copy_from_slice(&seed[..16]);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&seed[16..]);
        Ok(Self::from_parts(&key, nonce))
    }

    /// A generator of known key and nonce: known-answer tests, and each
    /// thread's stream once `new` has drawn them.
    pub(crate) fn from_parts(key: &[u8; 16], nonce: [u8; 8]) -> Self {
        Self {
            cipher: Aes128Enc::new(key.into()),
            nonce,
        }
    }

    fn input(&self, seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&self.nonce);
        block[8..].copy_from_slice(&seq.to_be_bytes());
        block
    }

    /// IV number `seq`; 64-bit-block ciphers take its first 8 bytes.
    pub fn iv(&self, seq: u64) -> [u8; 16] {
        let mut block = self.input(seq).into();
        self.cipher.encrypt_block(&mut block);
        block.into()
    }

    /// IVs for several packets, eight per AES call so the pipelined AES-NI
    /// path is used. Fills `min(seqs.len(), out.len())` entries.
    pub fn ivs(&self, seqs: &[u64], out: &mut [[u8; 16]]) {
        let n = seqs.len().min(out.len());
        for (seqs, out) in seqs[..n]
            .chunks(IV_BATCH)
            .zip(out[..n].chunks_mut(IV_BATCH))
        {
            let mut blocks = [aes::Block::default(); IV_BATCH];
            for (b, &seq) in blocks.iter_mut().zip(seqs) {
                *b = self.input(seq).into();
            }
            let k = seqs.len();
            self.cipher.encrypt_blocks(&mut blocks[..k]);
            for (o, b) in out.iter_mut().zip(&blocks[..k]) {
                o.copy_from_slice(b);
            }
        }
    }
}

impl Drop for IvGenerator {
    fn drop(&mut self) {
        self.nonce.zeroize();
    }
}

/// IVs a stream computes in one go: eight AES-NI calls of [`IV_BATCH`].
pub(crate) const POOL: usize = 64;

/// One generator's IVs handed out in order, numbered from 0, computed
/// [`POOL`] at a time.
pub(crate) struct IvStream {
    gen: IvGenerator,
    /// The number of the first IV of the next pool.
    next: u64,
    pool: [[u8; 16]; POOL],
    /// The next IV of `pool` to hand out; `POOL` when it is used up.
    at: usize,
}

impl IvStream {
    fn new() -> Result<Self, CryptoError> {
        Ok(Self::with(IvGenerator::new()?))
    }

    fn with(gen: IvGenerator) -> Self {
        Self {
            gen,
            next: 0,
            pool: [[0; 16]; POOL],
            at: POOL,
        }
    }

    /// Writes the next `out.len()` IVs.
    fn fill(&mut self, out: &mut [[u8; 16]]) {
        for o in out {
            if self.at == POOL {
                self.refill();
            }
            *o = self.pool[self.at];
            self.at += 1;
        }
    }

    fn refill(&mut self) {
        let seqs: [u64; POOL] = std::array::from_fn(|k| self.next + k as u64);
        self.gen.ivs(&seqs, &mut self.pool);
        // No wrap in the life of a thread: 2^64 IVs at 10^8 a second take
        // 5 800 years.
        self.next += POOL as u64;
        self.at = 0;
    }
}

impl Drop for IvStream {
    fn drop(&mut self) {
        // The IVs not yet handed out would be the next packets' IVs.
        self.pool.zeroize();
    }
}

thread_local! {
    /// This thread's stream, made on its first IV.
    static STREAM: RefCell<Option<IvStream>> = const { RefCell::new(None) };
}

/// Fills `out` with fresh IVs from this thread's stream, making the stream
/// (one `getrandom`) on the thread's first call. Fails only if the OS
/// gives no randomness, or if called while the thread is being torn down.
pub(crate) fn fresh_ivs(out: &mut [[u8; 16]]) -> Result<(), CryptoError> {
    const NO_STREAM: CryptoError =
        CryptoError::InvalidSuite("no IV stream on this thread (no randomness from the OS)");
    STREAM
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|_| NO_STREAM)?;
            if slot.is_none() {
                *slot = Some(IvStream::new()?);
            }
            let stream = slot.as_mut().ok_or(NO_STREAM)?;
            stream.fill(out);
            Ok(())
        })
        .map_err(|_| NO_STREAM)?
}

/// Makes this thread's IV stream now, so that a worker finds out when it
/// starts, not on its first CBC packet, that the OS gives no randomness.
pub fn prime_thread_ivs() -> Result<(), CryptoError> {
    fresh_ivs(&mut [])
}

/// Replaces this thread's stream with a known one (`IvGenerator::from_parts`
/// with `key`, numbered from 0), so that two ways of sealing the same
/// packets can be made to draw the same IVs and compared byte for byte.
#[cfg(test)]
pub(crate) fn reset_stream_for_test(key: u8) {
    STREAM.with(|cell| {
        *cell.borrow_mut() = Some(IvStream::with(IvGenerator::from_parts(
            &[key; 16], [key; 8],
        )));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iv_is_aes_of_the_nonce_and_sequence_number() {
        // FIPS-197 Appendix C.1: AES-128(000102..0f, 00112233..ff) = 69c4e0d8...
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let gen = IvGenerator::from_parts(&key, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        let iv = gen.iv(0x8899_aabb_ccdd_eeff);
        assert_eq!(hex::encode(iv), "69c4e0d86a7b0430d8cdb78070b4c55a");
    }

    #[test]
    fn batched_ivs_equal_single_ivs_for_every_batch_size() {
        let gen = IvGenerator::new().unwrap();
        for n in 0..=20u64 {
            let seqs: Vec<u64> = (0..n).map(|i| i * 0x1_0000_0001 + 3).collect();
            let mut out = vec![[0u8; 16]; n as usize];
            gen.ivs(&seqs, &mut out);
            for (s, iv) in seqs.iter().zip(&out) {
                assert_eq!(*iv, gen.iv(*s));
            }
        }
    }

    #[test]
    fn a_stream_hands_out_ivs_0_1_2_across_its_refills() {
        let key = [7u8; 16];
        let gen = IvGenerator::from_parts(&key, [1; 8]);
        let mut stream = IvStream::with(IvGenerator::from_parts(&key, [1; 8]));
        let mut got = Vec::new();
        // Uneven draws, so some straddle a refill.
        for n in [1usize, 3, 60, 1, 64, 7, 129, 0, 2] {
            let mut out = vec![[0u8; 16]; n];
            stream.fill(&mut out);
            got.extend(out);
        }
        for (i, iv) in got.iter().enumerate() {
            assert_eq!(*iv, gen.iv(i as u64), "IV {i}");
        }
    }

    #[test]
    fn a_threads_ivs_do_not_repeat_and_two_threads_differ() {
        let draw = || {
            let mut ivs = vec![[0u8; 16]; 10_000];
            for chunk in ivs.chunks_mut(13) {
                fresh_ivs(chunk).unwrap();
            }
            ivs
        };
        let a = draw();
        let b = std::thread::spawn(draw).join().unwrap();
        let mut seen = std::collections::HashSet::new();
        for iv in a.iter().chain(&b) {
            assert!(seen.insert(*iv), "IV {} repeated", hex::encode(iv));
        }
    }

    #[test]
    fn mismatched_batch_lengths_fill_only_the_common_prefix() {
        let gen = IvGenerator::new().unwrap();
        let mut out = [[0u8; 16]; 3];
        gen.ivs(&[1, 2, 3, 4, 5], &mut out);
        assert_eq!(out[2], gen.iv(3));
        let mut out = [[0u8; 16]; 5];
        gen.ivs(&[1, 2], &mut out);
        assert_eq!(out[1], gen.iv(2));
        assert_eq!(out[2], [0u8; 16]);
    }
}
